"""Throwaway certificates for the SDC tests, made with the openssl commands docs/remote.md gives.

``make_site(folder)`` makes a CA and, signed by it, one certificate folder per name
(``ca.pem``, ``cert.pem``, ``key.pem``: what ``--certs DIR`` reads). A second call with another
folder makes another, unrelated site: its certificates are unknown to the first.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DAYS = "2"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_site(folder: Path, names: tuple[str, ...] = ("station", "supervisor")) -> dict[str, Path]:
    """A CA in ``folder`` and a certificate folder per name (name → folder)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: no certificates for the TLS tests")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", DAYS,
             "-subj", "/CN=IONM test CA", cwd=folder)
    out = {}
    for name in names:
        d = folder / name
        d.mkdir()
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}/key.pem", "-out", f"{name}/req.csr",
                 "-subj", f"/CN={name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}/req.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}/cert.pem", "-days", DAYS, cwd=folder)
        shutil.copy(folder / "ca.pem", d / "ca.pem")
        out[name] = d
    return out
