"""Every shipped profile is started through the command line: simulated ones run headless,
BrainFlow's synthetic board runs for real, and a hardware profile without its hardware fails in
one line on stderr naming the port or device, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ionm_station.config import shipped_names
from ionm_station.profiles import Profile, load_profile

#: The installed command (the venv's entry point), as a user runs it.
COMMAND = Path(sys.executable).with_name("ionm-station")
SYNTHETIC_BOARD = -1


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(COMMAND), "run", "--headless", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def needs_hardware(profile: Profile) -> bool:
    return profile.kind == "serial" or (profile.kind == "brainflow"
                                        and profile.brainflow.board_id != SYNTHETIC_BOARD)


PROFILES = shipped_names("profiles")
RUNNABLE = [n for n in PROFILES if not needs_hardware(load_profile(n))]
HARDWARE = [n for n in PROFILES if needs_hardware(load_profile(n))]


def test_the_shipped_profiles_are_all_covered() -> None:
    assert {"simulated", "brainflow_synthetic"} <= set(RUNNABLE)
    assert {"serial_amplifier", "openbci_cyton", "ant_neuro_eego_24b"} <= set(HARDWARE)


@pytest.mark.parametrize("name", RUNNABLE)
def test_profile_runs_headless(name: str) -> None:
    """Simulated profiles for 1.5 s; the BrainFlow synthetic board for 3 s, for real."""
    profile = load_profile(name)
    seconds = 3.0 if profile.kind == "brainflow" else 1.5
    done = run("--profile", name, "--seconds", str(seconds))
    assert done.returncode == 0, done.stderr
    samples = round(seconds * profile.sample_rate_hz)
    assert f"done: {samples} samples per channel" in done.stdout
    assert f"{profile.channels} ch)" in done.stdout and "ERROR" not in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", HARDWARE)
def test_profile_without_its_hardware_fails_in_one_line(name: str, tmp_path: Path) -> None:
    """A profile with a port is pointed at one that does not exist; one without (a USB board
    found by its SDK) is tried as it is."""
    profile = load_profile(name)
    port = str(tmp_path / "no-such-port")
    has_port = profile.serial is not None or bool(profile.brainflow.serial_port)
    done = run("--profile", name, "--seconds", "1", *(["--port", port] if has_port else []))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ionm-station: error: ")
    assert port in line if has_port else f"id {profile.brainflow.board_id}" in line
