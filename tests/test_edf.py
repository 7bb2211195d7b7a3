"""EDF/BDF exchange: round trip within quantisation, labels, annotations, bad files."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np
import pytest

from ionm_station.io.edf import SignalFileError, read_edf, write_edf


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
