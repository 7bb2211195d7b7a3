"""EDF/BDF exchange: round trip within quantisation, labels, annotations, bad files,
the streaming EDF+ writer (header, TALs in every record, bounded blocks)."""

from __future__ import annotations

import datetime
from pathlib import Path

import edfio
import numpy as np
import pytest

from ionm_station.io.edf import EdfWriter, SignalFileError, read_edf, write_edf


def test_round_trip_within_quantisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((25_000, 3)) * 80).astype(np.float32)
    labels = ["L4-L VastMed", "L5-L TibAnt", "S1-R Gastroc"]
    p = tmp_path / "a.edf"
    write_edf(p, 10_000, labels, x, [(0.5, None, "cautery"), (1.0, 0.2, "marker: screw L5")])
    got = read_edf(p)
    assert got.sample_rate_hz == 10_000 and got.labels == labels
    assert got.data.shape == (25_000, 3)  # 2.5 s: whole 0.1 s records, no padding
    step = 2 * np.abs(x).max() / 65535
    np.testing.assert_allclose(got.data[:25_000], x, atol=step)
    texts = [a[2] for a in got.annotations]
    assert "cautery" in texts and "marker: screw L5" in texts


def test_millivolt_signals_are_scaled_and_slow_signals_skipped(tmp_path: Path) -> None:
    emg = edfio.EdfSignal(np.full(2000, 0.5), 2000, label="L5-R EHL", physical_dimension="mV",
                          physical_range=(-1, 1))
    temp = edfio.EdfSignal(np.full(10, 36.6), 10, label="Temp", physical_dimension="degC",
                           physical_range=(0, 50))
    p = tmp_path / "b.edf"
    edfio.Edf([emg, temp]).write(p)
    got = read_edf(p)
    assert got.labels == ["L5-R EHL"]
    assert abs(float(got.data[100, 0]) - 500.0) < 0.1
    assert any("Temp" in s for s in got.skipped)


def test_bdf_is_read(tmp_path: Path) -> None:
    x = np.sin(np.arange(4096) / 10) * 300
    sig = edfio.BdfSignal(x, 4096, label="C6-L Biceps", physical_dimension="uV",
                          physical_range=(-400, 400))
    p = tmp_path / "c.bdf"
    edfio.Bdf([sig]).write(p)
    got = read_edf(p)
    np.testing.assert_allclose(got.data[:, 0], x, atol=0.01)


def test_missing_foreign_and_truncated_files(tmp_path: Path) -> None:
    with pytest.raises(SignalFileError, match="file not found"):
        read_edf(tmp_path / "none.edf")
    foreign = tmp_path / "x.edf"
    foreign.write_bytes(b"PK\x03\x04 not an edf at all")
    with pytest.raises(SignalFileError, match="not an EDF or BDF"):
        read_edf(foreign)
    good = tmp_path / "g.edf"
    write_edf(good, 1000, ["a"], np.zeros((5000, 1)))
    cut = tmp_path / "cut.edf"
    cut.write_bytes(good.read_bytes()[:-777])
    with pytest.raises(SignalFileError, match="truncated"):
        read_edf(cut)
    header_only = tmp_path / "h.edf"
    header_only.write_bytes(good.read_bytes()[:100])
    with pytest.raises(SignalFileError, match="corrupt|truncated"):
        read_edf(header_only)


def _records(raw: bytes) -> tuple[int, int, list[int], list[bytes]]:
    """(n_records, ns, samples per record per signal, annotation bytes of each record)."""
    ns = int(raw[252:256])
    n_records = int(raw[236:244])
    spr = [int(raw[256 + ns * 216 + 8 * i:256 + ns * 216 + 8 * i + 8]) for i in range(ns)]
    size = 2 * sum(spr)
    body = raw[256 * (ns + 1):]
    assert len(body) == n_records * size
    return n_records, ns, spr, [body[r * size + size - 2 * spr[-1]:(r + 1) * size]
                                for r in range(n_records)]


def test_streaming_writer_round_trip_header_and_annotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    fs, n = 2000.0, 10_150  # 5.075 s: 51 records of 0.1 s, the last one padded
    x = (rng.standard_normal((n, 4)) * 120).astype(np.float32)
    x[3000:3100, 1] = np.nan  # a gap: written as 0 µV
    # dense annotations (40 within 0.1 s) spill into the following records
    notes = [(1.0 + i / 1000, None, f"stimulus L5-L {i}") for i in range(40)]
    notes += [(0.25, 0.5, "gap ä"), (5.07, None, "last")]
    start = datetime.datetime(2025, 3, 1, 8, 15, 30)
    p = tmp_path / "s.edf"
    with EdfWriter(p, fs, ["a", "b", "c", "d"], 500.0, notes, n_samples=n,
                   patient="MRN1 M 01-JAN-1970 Doe", recording="Startdate 01-MAR-2025 X T IONM",
                   start=start) as w:
        for i in range(0, n, 777):  # blocks that do not match records
            w.write(x[i:i + 777])
    raw = p.read_bytes()
    assert raw[:8] == b"0       " and raw[192:197] == b"EDF+C"
    assert raw[168:184] == b"01.03.2508.15.30"
    assert int(raw[184:192]) == 256 * 6 and raw[244:252].strip() == b"0.1"
    n_records, ns, spr, notes_raw = _records(raw)
    assert n_records == 51 and ns == 5 and spr[:4] == [200] * 4
    for r, rec in enumerate(notes_raw):  # a time-keeping TAL opens every record
        assert rec.startswith(f"+{r / 10:g}".encode() + b"\x14\x14\x00")
    edf = edfio.read_edf(p)
    assert edf.num_data_records == 51 and edf.data_record_duration == 0.1
    assert edf.startdate == datetime.date(2025, 3, 1) and edf.starttime == datetime.time(8, 15, 30)
    assert edf.patient.code == "MRN1" and edf.patient.name == "Doe"
    step = 2 * 500 / 65535
    want = np.clip(np.nan_to_num(x), -500, 500)  # beyond the range: clipped
    for i, sig in enumerate(edf.signals):
        assert sig.physical_dimension == "uV" and sig.physical_range == (-500, 500)
        assert np.abs(sig.data[:n] - want[:, i]).max() <= step / 2 + 1e-6
        assert np.all(sig.data[n:] == pytest.approx(0, abs=step))
    got = sorted((a.onset, a.duration, a.text) for a in edf.annotations)
    assert got == sorted((o, d, t) for o, d, t in notes)
    content = read_edf(p)
    assert content.data.shape == (51 * 200, 4) and content.range_uv == 500


def test_streaming_writer_blank_header_record_size_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "b.edf"
    with EdfWriter(p, 2048, ["C6-L Biceps"], 1234.56789) as w:  # 204.8 per 0.1 s → 1 s records
        w.write(np.ones((3000, 1)) * 1000)
    raw = p.read_bytes()
    assert raw[8:15] == b"X X X X" and raw[168:184] == b"01.01.8500.00.00"
    edf = edfio.read_edf(p)
    assert edf.data_record_duration == 1 and edf.num_data_records == 2
    assert edf.signals[0].physical_max >= 1234.56789
    assert abs(edf.signals[0].data[2999] - 1000) < 0.04
    with pytest.raises(ValueError, match="whole samples"):
        EdfWriter(tmp_path / "r.edf", 1000.5, ["a"], 100)
    w = EdfWriter(tmp_path / "short.edf", 1000, ["a"], 100, [(4.5, None, "late")], n_samples=5000)
    w.write(np.zeros((1000, 1)))  # fewer samples than announced: the annotation has no room
    with pytest.raises(ValueError, match="did not fit"):
        w.close()
    with pytest.raises(ValueError, match="expected"):
        EdfWriter(tmp_path / "c.edf", 1000, ["a", "b"], 100).write(np.zeros((10, 3)))


def test_streaming_writer_header_patched_only_at_close(tmp_path: Path) -> None:
    p = tmp_path / "open.edf"
    w = EdfWriter(p, 1000, ["a"], 100)
    w.write(np.zeros((1000, 1)))
    w._file.flush()
    assert p.read_bytes()[236:244] == b"-1      "  # unknown until closed (crash-readable)
    w.close()
    assert p.read_bytes()[236:244] == b"10      "
