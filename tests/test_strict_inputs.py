"""Nothing silently ignored (issue 12): unknown keys in montages and scenarios name the nearest
valid one, every numeric argument refuses nan and inf, a binary or directory settings file is
one line, and a ``run`` argument that would not be used is refused — each a one-line error with
exit code 2 and no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ionm_station.cli import main
from ionm_station.config import PACKAGE_DIR

LUMBAR = (PACKAGE_DIR / "montages" / "lumbar.toml").read_text()
DEMO = (PACKAGE_DIR / "scenarios" / "lumbar_demo.toml").read_text()


def _code(argv: list[str]) -> int:
    """``main(argv)``'s exit code, whether returned or raised by the argument parser."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    capsys.readouterr()
    assert _code(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ionm-station: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_a_montage_typo_names_the_nearest_key(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(LUMBAR.replace("threshold_uv", "treshold_uv"))
    _refused(capsys, ["run", "--headless", "--seconds", "1", "--montage", str(typo)],
             str(typo), "channels[0].treshold_uv: unknown key (did you mean threshold_uv?)")
    table = tmp_path / "table.toml"
    table.write_text(LUMBAR.replace('name = "lumbar"', 'name = "lumbar"\ndescripton = "x"'))
    _refused(capsys, ["run", "--headless", "--seconds", "1", "--montage", str(table)],
             "descripton: unknown key (did you mean description?)")


def test_a_scenario_typo_names_the_nearest_key(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text(DEMO.replace("noise_uv", "nosie_uv", 1))
    assert "nosie_uv" in typo.read_text()
    _refused(capsys, ["run", "--headless", "--seconds", "1", "--scenario", str(typo)],
             "nosie_uv: unknown key (did you mean noise_uv?)")


def test_a_profile_typo_and_unknown_table(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = 'name = "x"\n[source]\nkind = "simulated"\nsample_rate_hz = 10000\nchannels = 16\n'
    typo = tmp_path / "typo.toml"
    typo.write_text(base + "sampel_rate_hz = 2000\n")
    _refused(capsys, ["run", "--headless", "--profile", str(typo)],
             "source.sampel_rate_hz: unknown key (did you mean sample_rate_hz?)")
    typo.write_text(base + "[extras]\na = 1\n")
    _refused(capsys, ["run", "--headless", "--profile", str(typo)], "extras: unknown table")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
@pytest.mark.parametrize("argv", [
    ["run", "--headless", "--seconds"], ["run", "--headless", "--status-interval"],
    ["run", "--headless", "--speed"], ["run", "--headless", "--mains-hz"],
    ["analyze", "x.edf", "--json", "x.json", "--mains-hz"],
    ["simulate-device", "--link", "/tmp/x", "--rate"],
    ["simulate-device", "--link", "/tmp/x", "--uv-per-lsb"],
    ["simulate-device", "--link", "/tmp/x", "--corrupt-rate"],
    ["simulate-device", "--link", "/tmp/x", "--drop-rate"],
    ["simulate-device", "--link", "/tmp/x", "--disconnect-after"],
    ["simulate-device", "--link", "/tmp/x", "--seconds"],
    ["simulate-device", "--link", "/tmp/x", "--speed"],
    ["simulate-device", "--link", "/tmp/x", "--channels"],
    ["simulate-device", "--link", "/tmp/x", "--samples-per-frame"],
])
def test_every_numeric_argument_refuses_nan_and_inf(argv: list[str], value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _refused(capsys, [*argv[:-1], f"{argv[-1]}={value}"], f"argument {argv[-1]}", value)


@pytest.mark.parametrize("option", ["--profile", "--montage", "--scenario"])
def test_a_binary_or_directory_settings_file_is_one_line(tmp_path: Path, option: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "settings.toml"
    binary.write_bytes(b"\x00\xcf\xff\xfe" + os.urandom(300))
    _refused(capsys, ["run", "--headless", "--seconds", "1", option, str(binary)],
             str(binary), "not a text file")
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    _refused(capsys, ["run", "--headless", "--seconds", "1", option, str(folder)],
             "is a directory")


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "--status-interval", "2"], "--status-interval applies to --headless runs"),
    (["run", "--quiet"], "--quiet applies to --headless runs"),
    (["run", "--headless", "--speed", "2"], "--speed applies to --replay only"),
    (["run", "--speed", "2"], "--speed applies to --replay only"),
    (["run", "--headless", "--patient-id", "P-1"],
     "--patient-id: case metadata is stored in a recording; add --record FILE.h5"),
    (["run", "--headless", "--port", "/dev/ttyUSB0"], "--port applies to serial and BrainFlow"),
    (["run", "--headless", "--profile", "serial_amplifier", "--scenario", "quiet"],
     "--scenario applies to the simulated amplifier"),
    (["run", "--headless", "--profile", "serial_amplifier", "--fast"],
     "--fast applies to the simulated amplifier"),
])
def test_a_run_argument_that_would_be_ignored_is_refused(
        argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    _refused(capsys, argv, expected)


def test_replay_refuses_device_and_recording_arguments(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--record", str(tmp_path / "again.h5")], ["--hunt", "L5-R"],
                  ["--scenario", "quiet"], ["--port", "/dev/ttyUSB0"]):
        _refused(capsys, ["run", "--headless", "--replay", str(tmp_path / "case.h5"), *extra],
                 f"{extra[0]} does not apply to --replay")


def test_quiet_keeps_only_the_status_lines(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--headless", "--fast", "--seconds", "10", "--status-interval", "0.2"]
    main(argv)  # 0, or 1 if a loaded machine stalled processing (a NOT MONITORING line then)
    loud = capsys.readouterr().out
    assert "ALARM             L4-L: activity (advisory)" in loud  # the demo's spike at 8 s
    main([*argv, "--quiet"])
    quiet = capsys.readouterr().out.splitlines()
    assert quiet[0].startswith("IONM Station") and quiet[-1].startswith("done: ")
    assert all(" | t " in line for line in quiet[1:-1])  # status lines only
