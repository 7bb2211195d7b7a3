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
BrainFlowError = pytest.importorskip("brainflow.board_shim").BrainFlowError
#: How errors name the synthetic board (a regular expression).
SYNTHETIC = r"BrainFlow Synthetic \(id -1, no port\)"


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
    source._split(rows, time.monotonic())
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


@pytest.fixture
def synthetic():
    """The shipped synthetic-board profile's source, opened (closed afterwards)."""
    profile = load_profile("brainflow_synthetic")
    source = build_hardware_source(profile, montage_for(profile), None)
    source.open()
    yield source
    source.close()


def read_while(source, condition, timeout_s: float) -> list:
    """Chunks read while ``condition()`` holds (fails after ``timeout_s``)."""
    chunks = []
    t0 = time.monotonic()
    while condition():
        assert time.monotonic() - t0 < timeout_s, f"still {source.state} after {timeout_s} s"
        chunk = source.read()
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def events_of(chunks: list, kind: str) -> list:
    return [e for c in chunks for e in c.events if e.kind == kind]


def test_a_silent_board_is_lost_within_the_limit_and_resumes_after_a_counted_gap(
        synthetic) -> None:
    """The synthetic board for real: its stream stops, then starts again."""
    chunks = read_while(synthetic, lambda: synthetic.counters.samples < 50, 5.0)
    assert synthetic.state == "streaming" and synthetic.live and synthetic.workers() == []
    synthetic._board.stop_stream()
    t0 = time.monotonic()
    chunks += read_while(synthetic, lambda: synthetic.state == "streaming", 2.0)
    assert time.monotonic() - t0 < synthetic.settings.lost_after_ms / 1000 + 0.1
    time.sleep(0.3)
    synthetic._board.start_stream()
    silent_s = time.monotonic() - t0
    chunks += read_while(synthetic, lambda: synthetic.state == "lost", 2.0)
    chunks += read_while(synthetic, lambda: not chunks[-1].n_samples, 2.0)
    (lost,), (restored,) = events_of(chunks, "signal_lost"), events_of(chunks, "signal_restored")
    with_data = [c for c in chunks if c.n_samples]
    (before, after), = [(a, b) for a, b in itertools.pairwise(with_data) if b.start != a.stop]
    assert lost.start == before.stop and restored.start == after.start
    gap = after.start - before.stop
    assert gap == restored.data["lost_samples"] == synthetic.counters.dropped
    assert abs(gap - silent_s * 250) < 0.2 * 250  # the silence, on the sample clock


def test_samples_withheld_then_delivered_are_no_gap_and_lost_ones_are_counted_exactly(
        synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    """A board that stops sending (monkeypatched): while it withholds its samples the source is
    lost; samples it then delivers late fill the time (no gap); samples it never delivers
    advance the clock by exactly their number (package counter, wraps told apart by wall time)."""
    board = synthetic._board
    fetch = board.get_board_data
    chunks = read_while(synthetic, lambda: synthetic.counters.samples < 50, 5.0)
    monkeypatch.setattr(board, "get_board_data_count", lambda preset: 0)
    monkeypatch.setattr(board, "get_board_data", lambda preset: np.zeros((32, 0)))
    chunks += read_while(synthetic, lambda: synthetic.state == "streaming", 2.0)
    monkeypatch.undo()
    chunks += read_while(synthetic, lambda: synthetic.state == "lost", 2.0)
    assert synthetic.counters.dropped == 0  # withheld, not lost: contiguous
    assert all(b.start == a.stop for a, b in itertools.pairwise(c for c in chunks if c.n_samples))
    assert events_of(chunks, "signal_restored")[0].data["lost_samples"] == 0

    discarded = []
    monkeypatch.setattr(board, "get_board_data",
                        lambda preset: discarded.append(fetch(preset=preset).shape[1])
                        or np.zeros((32, 0)))
    chunks += read_while(synthetic, lambda: synthetic.state == "streaming", 2.0)
    time.sleep(0.4)  # more than half the counter's wrap (256 samples) in all
    monkeypatch.undo()
    chunks += read_while(synthetic, lambda: synthetic.state == "lost", 2.0)
    restored = events_of(chunks, "signal_restored")[-1]
    assert restored.data["lost_samples"] == sum(discarded) == synthetic.counters.dropped


def test_a_board_error_propagates_and_recover_restarts_the_session(
        synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = read_while(synthetic, lambda: synthetic.counters.samples < 50, 5.0)

    def unplugged(preset: int) -> np.ndarray:
        raise BrainFlowError("board unplugged", 7)

    monkeypatch.setattr(synthetic._board, "get_board_data", unplugged)
    with pytest.raises(DeviceError, match=f"{SYNTHETIC}: read failed"):
        synthetic.read()
    assert synthetic.state == "lost"
    time.sleep(0.2)
    synthetic.recover()  # a new session: the patched board is released
    assert synthetic.counters.reconnects == 1
    chunks += read_while(synthetic, lambda: synthetic.state != "streaming"
                         or not chunks[-1].n_samples, 3.0)
    (lost,), (restored,) = events_of(chunks, "signal_lost"), events_of(chunks, "signal_restored")
    assert "board unplugged" in lost.data["reason"]
    assert restored.data["lost_samples"] == synthetic.counters.dropped >= 0.2 * 250 - 10


def test_recover_that_cannot_restart_the_board_names_it(
        synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self) -> None:
        raise BrainFlowError("unable to prepare streaming session", 7)

    monkeypatch.setattr(brainflow_source.BoardShim, "prepare_session", refuse)
    with pytest.raises(DeviceError, match=f"{SYNTHETIC}: cannot start"):
        synthetic.recover()
    assert synthetic.state == "lost"
    assert [e.kind for e in synthetic.read().events] == ["signal_lost"]
    with pytest.raises(DeviceError, match=f"{SYNTHETIC}: no session"):
        synthetic.read()
