"""Stations and supervisors as processes, for the remote tests and scripts/bench_remote.

Every process is ``python -m ionm_station``; stations run the simulated amplifier from a
profile written next to them (channels and rate chosen by the caller), headless and quiet.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ionm_station.profiles import load_profile


def write_profile(folder: Path, channels: int, rate_hz: float) -> Path:
    """A copy of the simulated profile with ``channels`` at ``rate_hz``."""
    text = Path(load_profile("simulated").path).read_text(encoding="utf-8")
    text = text.replace("sample_rate_hz = 10000", f"sample_rate_hz = {rate_hz:g}")
    text = text.replace("channels = 16", f"channels = {channels}")
    path = folder / f"sim_{channels}ch_{rate_hz:g}hz.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start_station(profile: Path, port: int, room: str, log: Path, *extra: str,
                  address: str = "127.0.0.1") -> subprocess.Popen:
    """A publishing station (plain HTTP unless ``extra`` says otherwise)."""
    transport = [] if "--certs" in extra else ["--insecure"]
    return subprocess.Popen(
        [sys.executable, "-m", "ionm_station", "run", "--headless", "--quiet", "--profile",
         str(profile), "--publish-sdc", "--sdc-address", address, "--sdc-port", str(port),
         "--room", room, "--status-interval", "60", *transport, *extra],
        stdout=log.open("ab"), stderr=subprocess.STDOUT)


def start_supervisor(json_path: Path, log: Path, *args: str) -> subprocess.Popen:
    """A headless supervisor keeping ``json_path`` up to date."""
    transport = [] if "--certs" in args else ["--insecure"]
    return subprocess.Popen(
        [sys.executable, "-m", "ionm_station", "supervise", "--headless", "--json",
         str(json_path), "--force", *transport, *args],
        stdout=log.open("ab"), stderr=subprocess.STDOUT)


def read_wall(path: Path) -> dict[str, Any]:
    """The supervisor's JSON (an empty wall before it is first written)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"rooms": []}


def room(wall: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in wall["rooms"] if r["room"] == name), None)


def room_now(path: Path, name: str) -> dict[str, Any]:
    """Room ``name`` as the supervisor's JSON at ``path`` shows it now ({} before it does)."""
    return room(read_wall(path), name) or {}


def connected(path: Path, name: str) -> bool:
    return room_now(path, name).get("connection") == "connected"


def kill_until_lost(station: subprocess.Popen, path: Path, name: str) -> float:
    """Kill ``station`` (SIGKILL) and wait, 10 s at most, until the supervisor writing ``path``
    says room ``name``'s connection is lost; returns the seconds from the kill to that."""
    station.send_signal(signal.SIGKILL)
    station.wait()
    return wait_for(lambda: room_now(path, name).get("connection_lost"), 10)


def wait_until_back(path: Path, name: str) -> float:
    """Seconds, 60 at most, until room ``name`` (restarted) is connected again."""
    return wait_for(lambda: connected(path, name) and room_now(path, name).get("connects", 0) >= 2,
                    60)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout_s: float = 30.0, poll_s: float = 0.02) -> float:
    """Seconds until ``predicate()`` is true; raises TimeoutError after ``timeout_s``."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"not within {timeout_s} s")
        time.sleep(poll_s)
    return time.monotonic() - t0


def stop(*procs: subprocess.Popen) -> None:
    """Terminate processes (SIGTERM, then SIGKILL after 10 s)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
