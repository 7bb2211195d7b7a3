"""Outputs never destroy anything (issue 12): an output that is an input is refused before
anything is read, an existing file needs --force, every output is checked before the work, and
Ctrl-C, SIGTERM or SIGKILL never leave a partial file at the final name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.events import Event
from ionm_station.io.edf import read_edf, write_edf
from ionm_station.montage import load_montage
from ionm_station.outputs import OutputError, atomic_output, check_outputs, write_text
from ionm_station.recording import CaseMetadata, RecordingWriter
from ionm_station.stream import StreamInfo

MONTAGE = load_montage("lumbar")
INFO = StreamInfo(2000.0, MONTAGE.labels, 5000.0)


def _one_line_error(capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ionm-station: error: "), err
    assert "Traceback" not in err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s recording at 2 kHz with an event."""
    path = tmp_path_factory.mktemp("outputs") / "case.h5"
    w = RecordingWriter(path, INFO, MONTAGE, None, {}, CaseMetadata("P-1", "PLIF", "A. Tech"))
    rng = np.random.default_rng(1)
    w.append(rng.normal(0, 5, (40_000, 16)).astype(np.float32))
    w.add_events([Event("marker", 100, 100, (), {"text": "incision"})])
    w.close()
    return path


@pytest.fixture
def edf(tmp_path: Path) -> Path:
    path = tmp_path / "in.edf"
    write_edf(path, 2000.0, list(MONTAGE.labels[:4]),
              np.random.default_rng(2).normal(0, 5, (20_000, 4)).astype(np.float32))
    return path


def test_an_output_that_is_an_input_is_refused_however_it_is_written(tmp_path: Path,
                                                                      case: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "link.h5").symlink_to(case)
    os.link(case, tmp_path / "hard.h5")
    for other in (case, work / ".." / ".." / case.parent.name / case.name, tmp_path / "link.h5",
                  tmp_path / "hard.h5"):
        with pytest.raises(OutputError, match="is the input file"):
            check_outputs({"--edf": other}, [case])
    with pytest.raises(OutputError, match="also the output of --json"):
        check_outputs({"--json": tmp_path / "a", "--clean-edf": work / ".." / "a"})
    with pytest.raises(OutputError, match="is a directory"):
        check_outputs({"--json": work})
    with pytest.raises(OutputError, match="does not exist"):
        check_outputs({"--json": tmp_path / "no" / "x.json"})
    (tmp_path / "there.json").write_text("{}")
    with pytest.raises(OutputError, match="use --force"):
        check_outputs({"--json": tmp_path / "there.json"})
    check_outputs({"--json": tmp_path / "there.json"}, force=True)
    with pytest.raises(OutputError, match="never replaced"):
        check_outputs({"--record": tmp_path / "there.json"}, force=True, keep=("--record",))


def test_export_onto_its_recording_leaves_it_whole(case: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = case.read_bytes()
    assert main(["export", str(case), "--edf", str(case)]) == 2
    _one_line_error(capsys, "--edf", "is the input file")
    assert case.read_bytes() == before


def test_analyze_onto_its_input_leaves_it_whole(edf: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    before = edf.read_bytes()
    out = tmp_path / "x.json"
    assert main(["analyze", str(edf), "--json", str(out), "--clean-edf", str(edf)]) == 2
    _one_line_error(capsys, "--clean-edf", "is the input file")
    assert main(["analyze", str(edf), "--json", str(edf)]) == 2
    _one_line_error(capsys, "--json", "is the input file")
    assert edf.read_bytes() == before and not out.exists()


def test_an_existing_file_is_replaced_only_with_force(case: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "notes.edf"
    target.write_text("someone's notes")
    assert main(["export", str(case), "--edf", str(target)]) == 2
    _one_line_error(capsys, "--edf", "file exists", "--force")
    assert target.read_text() == "someone's notes"
    assert main(["export", str(case), "--edf", str(target), "--force"]) == 0
    assert read_edf(target).data.shape == (40_000, 16)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.edf"]  # no temporary file left


def test_every_output_is_checked_before_the_work(edf: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.json"
    assert main(["analyze", str(edf), "--json", str(out), "--clean-edf",
                 str(tmp_path / "no" / "clean.edf")]) == 2
    _one_line_error(capsys, "--clean-edf", "does not exist")
    assert not out.exists()  # the JSON was not written either
    t0 = time.monotonic()
    assert main(["run", "--headless", "--fast", "--seconds", "600", "--json",
                 "/nonexistent/dir/out.json"]) == 2
    _one_line_error(capsys, "--json /nonexistent/dir/out.json", "does not exist")
    assert time.monotonic() - t0 < 5  # refused up front, not after the run
    assert main(["run", "--headless", "--replay", str(edf), "--json", str(edf)]) == 2
    _one_line_error(capsys, "is the input file")


def test_analyze_writes_both_outputs_or_neither(edf: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import ionm_station.io.edf as edf_mod

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", str(args[0]))

    monkeypatch.setattr(edf_mod, "write_edf", full_disk)
    assert main(["analyze", str(edf), "--json", str(tmp_path / "x.json"), "--clean-edf",
                 str(tmp_path / "clean.edf")]) == 2
    _one_line_error(capsys, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.edf"]


def test_atomic_output_keeps_the_old_file_until_the_new_one_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target, replace=True) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(OutputError, match="exists"):
        write_text(target, "new")
    write_text(target, "new", replace=True)
    assert target.read_text() == "new"


#: A child that exports ``argv[1]`` to ``argv[2]`` slowly (a 10 s pause per written block, which a
#: signal interrupts) and says when it is writing, so a signal surely arrives mid-export even on a
#: loaded machine. SIGINT is given Python's usual handler: a shell starting the tests in the
#: background hands its children SIGINT ignored.
SLOW_EXPORT = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from ionm_station.io import edf
    from ionm_station.cli import main
    write = edf.EdfWriter.write
    def slow(self, block):
        write(self, block)
        print("writing", flush=True)
        time.sleep(10.0)
    edf.EdfWriter.write = slow
    sys.exit(main(["export", sys.argv[1], "--edf", sys.argv[2]]))
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_during_export_leaves_no_partial_file(case: Path, tmp_path: Path,
                                                       sig: signal.Signals) -> None:
    out = tmp_path / "case.edf"
    child = subprocess.Popen([sys.executable, "-c", SLOW_EXPORT, str(case), str(out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(sig)
    _, err = child.communicate(timeout=30)
    assert not out.exists()
    if sig == signal.SIGKILL:  # no chance to clean up: only the hidden temporary file remains
        assert child.returncode == -signal.SIGKILL
        assert all(p.name.startswith(".case.edf.") for p in tmp_path.iterdir())
        return
    assert child.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no unfinished output left behind" in lines[0], err
    assert list(tmp_path.iterdir()) == []
