"""Stations and supervisors as real processes: a station killed and restarted, and discovery.

Loopback only; the discovery test makes its own network namespace (``unshare -rn``) with
multicast routed to its private ``lo``, so no multicast ever reaches a shared interface.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.remote_procs import (
    connected,
    free_port,
    kill_until_lost,
    room_now,
    start_station,
    start_supervisor,
    stop,
    wait_for,
    wait_until_back,
    write_profile,
)

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE_SETUP = "ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo"


def test_a_killed_station_is_lost_within_2_s_and_followed_again_when_it_returns(
        tmp_path: Path) -> None:
    profile = write_profile(tmp_path, 4, 2000)
    port = free_port()
    log = tmp_path / "procs.log"
    station = start_station(profile, port, "OR 4", log)
    out = tmp_path / "wall.json"
    sup = start_supervisor(out, log, "--connect", f"127.0.0.1:{port}")
    try:
        def the_room() -> dict:
            return room_now(out, "OR 4")

        wait_for(lambda: connected(out, "OR 4"), 60)
        wait_for(lambda: (the_room().get("case_time_s") or 0) > 0.5, 20)
        assert kill_until_lost(station, out, "OR 4") <= 2.0, log.read_text()
        assert the_room()["connection"] == "lost"
        station = start_station(profile, port, "OR 4", log)
        wait_until_back(out, "OR 4")
        before = the_room()["stream"]["received"]
        wait_for(lambda: the_room()["stream"]["received"] > before + 2000, 20)
    finally:
        stop(sup, station)


def _namespace_problem() -> str | None:
    """Why a private network namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) not installed"
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", NAMESPACE_SETUP],
                           capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def test_discovery_for_real_in_a_private_network_namespace(tmp_path: Path) -> None:
    problem = _namespace_problem()
    if problem:
        pytest.skip(problem)
    driver = ROOT / "tests" / "remote_ns_driver.py"
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c",
         f'{NAMESPACE_SETUP} && exec "$0" "$1" "$2"', sys.executable, str(driver),
         str(tmp_path)], capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    log = (tmp_path / "ns.log").read_text() if (tmp_path / "ns.log").exists() else ""
    assert done.returncode == 0, done.stdout + done.stderr + log
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["rooms"] == ["OR 1", "OR 2"]
    assert seen["lost_after_s"] <= 2.0 and seen["other_still_connected"]
    assert seen["back_after_s"] < 60
