"""Bad input files in plain words (issue 12): every malformed EDF header field is one line
naming the field, what was found and what is allowed; calibration problems name the channel; a
directory "is a directory"; random bytes in EDF files and HDF5 recordings (their headers most
of all) give exit code 0 or 2 — 2 with one line on stderr — never a traceback, and never change
the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ionm_station.cli import main
from ionm_station.io.edf import write_edf
from ionm_station.io.edf_header import FIXED_BYTES, field_offset
from ionm_station.montage import load_montage
from ionm_station.recording import CaseMetadata, RecordingWriter
from ionm_station.stream import StreamInfo

LABELS = ["L4-L VastMed", "L5-L TibAnt", "S1-R Gastroc"]
NS = len(LABELS) + 1  # and the annotation signal


def _edf(path: Path) -> bytes:
    """A valid 2 s EDF+ file of 3 channels at 1 kHz with one annotation; its bytes."""
    data = np.random.default_rng(3).normal(0, 5, (2000, 3)).astype(np.float32)
    write_edf(path, 1000.0, LABELS, data, [(0.5, None, "marker; text=incision")], range_uv=500)
    return path.read_bytes()


def _with(raw: bytes, offset: int, text: str, width: int = 8) -> bytes:
    return raw[:offset] + text.encode("latin-1").ljust(width)[:width] + raw[offset + width:]


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int = 2) -> str:
    capsys.readouterr()
    assert main(argv) == rc
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1 and lines[0].startswith("ionm-station: error: "), captured.err
    return lines[0]


def _sig(name: str, signal: int = 0) -> int:
    return field_offset(name, NS, signal)


@pytest.mark.parametrize(("offset", "text", "expected"), [
    (field_offset("start date"), "99.99.99",
     'header field "start date" is "99.99.99"; expected dd.mm.yy (day.month.year)'),
    (field_offset("start time"), "25.00.00",
     'header field "start time" is "25.00.00"; expected hh.mm.ss (hours.minutes.seconds)'),
    (field_offset("number of bytes in header record"), "xyz",
     ('header field "number of bytes in header record" is "xyz"; expected 1280 '
     "(256 bytes × (1 + 4 signals))")),
    (field_offset("number of data records"), "abc",
     'header field "number of data records" is "abc"; expected a whole number ≥ 0'),
    (field_offset("number of data records"), "-5",
     'header field "number of data records" is "-5"; expected a whole number ≥ 0'),
    (field_offset("number of data records"), "-1",
     'header field "number of data records" is "-1": the file was never finished'),
    (field_offset("number of data records"), "7",
     ('holds 20 data records of 652 bytes but its header announces 7 (header field '
     '"number of data records" is wrong)')),
    (field_offset("number of data records"), "30",
     "truncated: the header announces 30 data records of 652 bytes, the file holds only 20.00"),
    (field_offset("data record duration"), "abc",
     'header field "data record duration" is "abc"; expected a number'),
    (field_offset("data record duration"), "0",
     'header field "data record duration" is "0"; expected a positive number of seconds'),
    (field_offset("number of signals"), "abc",
     'header field "number of signals" is "abc"; expected a whole number ≥ 1'),
    (field_offset("number of signals"), "0",
     'header field "number of signals" is "0"; expected a whole number ≥ 1'),
    (field_offset("number of signals"), "99",
     'header field "number of bytes in header record" is "1280"; expected 25600'),
    (field_offset("reserved"), "EDF+D",
     'header field "reserved" is "EDF+D": a discontinuous EDF+/BDF+ file'),
    (_sig("physical minimum", 1), "abc",
     'signal 2 (L5-L TibAnt): header field "physical minimum" is "abc"; expected a number'),
    (_sig("physical maximum", 2), "nan",
     ('signal 3 (S1-R Gastroc): header field "physical maximum" is "nan"; expected a finite '
     "number")),
    (_sig("physical minimum", 0), "500",
     ("signal 1 (L4-L VastMed): physical minimum = physical maximum (500): its samples cannot "
     "be calibrated")),
    (_sig("digital minimum", 1), "32767",
     ("signal 2 (L5-L TibAnt): digital minimum = digital maximum (32767): its samples cannot "
     "be calibrated")),
    (_sig("digital maximum", 1), "-32768",
     "signal 2 (L5-L TibAnt): digital minimum = digital maximum (-32768)"),
    (_sig("digital minimum", 0), "1.5",
     ('signal 1 (L4-L VastMed): header field "digital minimum" is "1.5"; expected a whole '
     "number from -32768 to 32767")),
    (_sig("digital maximum", 0), "99999",
     'header field "digital maximum" is "99999"; expected a whole number from -32768 to 32767'),
    (_sig("samples per data record", 2), "abc",
     ('signal 3 (S1-R Gastroc): header field "samples per data record" is "abc"; expected a '
     "whole number ≥ 1")),
    (_sig("samples per data record", 2), "0",
     'header field "samples per data record" is "0"; expected a whole number ≥ 1'),
])
def test_each_malformed_header_field_is_named_in_plain_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], offset: int, text: str,
        expected: str) -> None:
    path = tmp_path / "bad.edf"
    width = 4 if offset == field_offset("number of signals") else 8
    bad = _with(_edf(path), offset, text, width)
    path.write_bytes(bad)
    for argv in (["info", str(path)], ["analyze", str(path), "--json", str(tmp_path / "o.json")],
                 ["run", "--headless", "--replay", str(path)]):
        line = _one_line(capsys, argv)
        assert f"ionm-station: error: {path}: " in line and expected in line, line
    assert path.read_bytes() == bad and not (tmp_path / "o.json").exists()


def test_cut_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cut.edf"
    raw = _edf(path)
    path.write_bytes(raw[:200])
    assert "truncated header: the file has 200 bytes, the fixed part of an EDF/BDF header " \
           "alone is 256" in _one_line(capsys, ["info", str(path)])
    path.write_bytes(raw[:FIXED_BYTES + 100])
    assert "truncated header: 4 signals need 1280 header bytes, the file has 356" in \
        _one_line(capsys, ["info", str(path)])


def test_a_directory_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "case.edf"
    folder.mkdir()
    for argv in (["info", str(folder)], ["analyze", str(folder), "--json", str(tmp_path / "o")],
                 ["export", str(folder), "--edf", str(tmp_path / "o.edf")],
                 ["run", "--headless", "--replay", str(folder)], ["recover", str(folder)]):
        assert _one_line(capsys, argv) == f"ionm-station: error: {folder}: is a directory"


@pytest.fixture(scope="module")
def good_edf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edf") / "good.edf"
    _edf(path)
    return path


@pytest.fixture(scope="module")
def good_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    montage = load_montage("lumbar")
    path = tmp_path_factory.mktemp("h5") / "good.h5"
    w = RecordingWriter(path, StreamInfo(1000.0, montage.labels, 5000.0), montage, None, {},
                        CaseMetadata("P-1"))
    w.append(np.zeros((3000, 16), np.float32))
    w.close()
    return path


#: Random changes: (where, as a fraction of the first ``limit`` bytes or of the whole file when
#: ``limit`` is None, the bytes written there).
CHANGES = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.booleans(),
                             st.binary(min_size=1, max_size=12)), min_size=1, max_size=6)


def _spoil(raw: bytes, changes: list[tuple[float, bool, bytes]], limit: int) -> bytes:
    """``raw`` with each change written at its place: in the first ``limit`` bytes (the
    header) when its flag is set, else anywhere."""
    out = bytearray(raw)
    for where, in_head, data in changes:
        at = int(where * (min(limit, len(raw)) if in_head else len(raw)))
        out[at:at + len(data)] = data
    return bytes(out[:len(raw)])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=CHANGES)
def test_random_bytes_in_an_edf_file_never_give_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], good_edf: Path,
        changes: list[tuple[float, bool, bytes]]) -> None:
    path = tmp_path / "random.edf"
    bad = _spoil(good_edf.read_bytes(), changes, FIXED_BYTES * (NS + 1))
    path.write_bytes(bad)
    capsys.readouterr()
    rc = main(["info", str(path)])  # reads the header and every sample
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert rc in (0, 2), captured.err  # 1 would be an internal error
    if rc == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ionm-station: error: {path}"), lines
    assert path.read_bytes() == bad


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=CHANGES)
def test_random_bytes_in_a_recording_never_give_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], good_h5: Path,
        changes: list[tuple[float, bool, bytes]]) -> None:
    path = tmp_path / "random.h5"
    bad = _spoil(good_h5.read_bytes(), changes, 4096)
    path.write_bytes(bad)
    for argv in (["info", str(path)], ["export", str(path), "--edf", str(tmp_path / "o.edf"),
                                       "--force"]):
        capsys.readouterr()
        rc = main(argv)
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out
        assert rc in (0, 2), captured.err
        if rc == 2:
            lines = captured.err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("ionm-station: error: "), lines
    assert path.read_bytes() == bad
