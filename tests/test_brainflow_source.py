"""The BrainFlow adapter on BrainFlow's synthetic board (250 Hz, no hardware, no network)."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import numpy as np
import pytest

from ionm_station.errors import DeviceError
from ionm_station.montage import load_montage
from ionm_station.profiles import load_profile
from ionm_station.session import montage_for
from ionm_station.sources.factory import build_hardware_source

brainflow_source = pytest.importorskip(
    "ionm_station.sources.brainflow_source",
    reason="BrainFlow's native library cannot be loaded here")
package_steps = brainflow_source.package_steps
BrainFlowSource = brainflow_source.BrainFlowSource


def test_package_counter_gaps_and_wrap() -> None:
    assert package_steps(None, np.array([7, 8, 9])).tolist() == [0, 0, 0]
    assert package_steps(254, np.array([255, 0, 1, 4, 5])).tolist() == [0, 0, 0, 2, 0]
    assert package_steps(250, np.array([2])).tolist() == [7]  # 251…255, 0, 1 lost


def test_synthetic_board_streams_scaled_continuous_chunks() -> None:
    profile = load_profile("brainflow_synthetic")
    montage = montage_for(profile)
    source = build_hardware_source(profile, montage, None)
    assert isinstance(source, BrainFlowSource)
    assert source.info.sample_rate_hz == 250 and source.info.n_channels == 16
    source.open()
    try:
        chunks = []
        t0 = time.monotonic()
        while source.counters.samples < 100 and time.monotonic() - t0 < 5:
            chunk = source.read()
            if chunk is not None:
                chunks.append(chunk)
    finally:
        source.close()
    assert source.counters.samples >= 100 and source.counters.dropped == 0
    assert chunks[0].start == 0
    assert all(b.start == a.stop for a, b in itertools.pairwise(chunks))
    data = np.concatenate([c.data for c in chunks])
    assert data.dtype == np.float32 and data.shape[1] == 16 and np.isfinite(data).all()
    assert data.std(axis=0).min() > 0  # every mapped row carries signal


def test_drops_advance_the_clock() -> None:
    profile = load_profile("brainflow_synthetic")
    source = build_hardware_source(profile, montage_for(profile), None)
    rows = np.zeros((32, 6))
    rows[0] = [10, 11, 14, 15, 16, 20]  # package counter: 2 lost, then 3 lost
    rows[1:17] = np.arange(6)
    source._split(rows)
    chunks = list(source._pending)
    assert [(c.start, c.n_samples) for c in chunks] == [(0, 2), (4, 3), (10, 1)]
    assert source.counters.dropped == 5 and source.counters.samples == 6


def test_missing_board_names_board_and_port() -> None:
    profile = load_profile("openbci_cyton")
    source = build_hardware_source(profile, montage_for(profile), "/dev/no-such-cyton")
    with pytest.raises(DeviceError, match=r"Cyton \(id 0, /dev/no-such-cyton\)"):
        source.open()


def test_board_with_too_few_rows_is_refused() -> None:
    profile = load_profile("brainflow_synthetic")
    montage = load_montage("combined32")
    with pytest.raises(DeviceError, match="16 EMG/EXG rows, the profile needs 32"):
        build_hardware_source(replace(profile, channels=32), montage, None)
