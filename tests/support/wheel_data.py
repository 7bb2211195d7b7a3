"""Real recordings shipped inside pinned wheels on the package index: fetched at run time with
``pip download`` (no install), cached, never committed (see ../shared/README.md).

The cache is ``$IONM_WHEEL_CACHE``, else ``$XDG_CACHE_HOME/ionm-station/wheels``, else
``~/.cache/ionm-station/wheels``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: The wheels whose data is used, pinned (package → version).
PINNED = {"biosignalsnotebooks": "0.6.14"}
#: Longest wait (s) for one download.
DOWNLOAD_TIMEOUT_S = 600.0


def cache_dir() -> Path:
    """Where the wheels and the files taken out of them are kept."""
    if os.environ.get("IONM_WHEEL_CACHE"):
        return Path(os.environ["IONM_WHEEL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ionm-station" / "wheels"


def wheel_file(package: str, member: str) -> Path:
    """``member`` (a path inside the wheel) of the pinned wheel of ``package``, taken out into
    the cache; the wheel is downloaded the first time. FileNotFoundError naming the package and
    the reason where it cannot be had (no index reachable, no such member)."""
    version = PINNED[package]
    root = cache_dir() / f"{package}-{version}"
    target = root / member
    if target.is_file():
        return target
    wheels = sorted(root.glob(f"{package}-{version}-*.whl"))
    if not wheels:
        root.mkdir(parents=True, exist_ok=True)
        # downloaded apart, then moved in whole: a wheel in the cache is complete
        with tempfile.TemporaryDirectory(dir=root) as fresh:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--quiet", "-d", fresh, f"{package}=={version}"]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=DOWNLOAD_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise FileNotFoundError(f"{package}=={version}: download failed ({exc})") from exc
            got = sorted(Path(fresh).glob(f"{package}-{version}-*.whl"))
            if done.returncode != 0 or not got:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel"]
                raise FileNotFoundError(f"{package}=={version}: download failed ({tail[0]})")
            os.replace(got[0], root / got[0].name)
        wheels = sorted(root.glob(f"{package}-{version}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            data = wheel.read(member)
        except KeyError:
            raise FileNotFoundError(f"{wheels[0].name} holds no {member}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(target)  # (whole or not at all: another process may read it)
    return target
