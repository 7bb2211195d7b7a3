"""Acquisition thread and DSP stage: every sample accounted for, gaps visible, filter exact."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ionm_station.dsp.filters import BandpassFilter
from ionm_station.events import Event, EventLog
from ionm_station.pipeline.acquisition import AcquisitionWorker
from ionm_station.pipeline.commands import CommandQueue
from ionm_station.pipeline.processing import ProcessingWorker
from ionm_station.ring import RingBuffer
from ionm_station.sources.base import SourceCounters
from ionm_station.stream import Chunk, StreamInfo


class ScriptedSource:
    """Emits chunks whose channel 0 is the absolute sample index; skips given index ranges."""

    live = True
    state = "streaming"
    stimulator = None

    def __init__(self, sizes: list[int], skips: dict[int, int] | None = None,
                 n_channels: int = 3, fail_after: int | None = None, recover_after: int = 0) -> None:
        self.info = StreamInfo(1000.0, tuple(f"ch{i}" for i in range(n_channels)))
        self.counters = SourceCounters()
        self.sizes = list(sizes)
        self.skips = skips or {}
        self.fail_after = fail_after
        self.recover_after = recover_after  # recover() calls that fail before one succeeds
        self.recover_calls = 0
        self.index = 0
        self.calls = 0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def workers(self) -> list:
        return []

    def recover(self) -> None:
        self.recover_calls += 1
        if self.recover_calls <= self.recover_after:
            raise OSError("still unplugged")
        self.fail_after = None

    def read(self) -> Chunk | None:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise OSError("device unplugged")
        if not self.sizes:
            return None
        n = self.sizes.pop(0)
        self.index += self.skips.pop(len(self.sizes), 0)
        idx = np.arange(self.index, self.index + n, dtype=np.float64)
        data = np.stack([idx, -idx, idx * 0.5], axis=1).astype(np.float32)
        chunk = Chunk(self.index, data, events=[Event("tick", self.index)])
        self.index += n
        return chunk


def run_worker(source: ScriptedSource, capacity: int = 10_000, max_samples: int | None = None):
    ring = RingBuffer(capacity, source.info.n_channels)
    log = EventLog()
    reader = ring.reader(start=0)
    worker = AcquisitionWorker(source, ring, log, max_samples)
    worker.start()
    deadline = time.monotonic() + 5.0
    while (source.sizes or worker.source_fault) and not worker.finished \
            and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.stop()  # joins: the chunk being ingested lands first
    return worker, reader.read(), log


def test_contiguous_stream_lands_whole() -> None:
    worker, got, log = run_worker(ScriptedSource([100, 37, 250, 1]))
    assert worker.counters.samples == 388 and worker.counters.gaps == 0
    assert got.start == 0
    np.testing.assert_array_equal(got.data[:, 0], np.arange(388))
    assert len(log.of_kind("tick")) == 4


def test_gap_becomes_nan_rows_and_event() -> None:
    # 3 chunks of 100; before the last one the source skips 50 samples
    src = ScriptedSource([100, 100, 100], skips={0: 50})
    worker, got, log = run_worker(src, max_samples=350)
    c = worker.counters
    assert (c.samples, c.received, c.gaps, c.gap_samples) == (350, 300, 1, 50)
    col = got.data[:, 0]
    assert np.isnan(col[200:250]).all()
    np.testing.assert_array_equal(col[250:], np.arange(250, 350))  # ring index == source clock
    gap = log.of_kind("gap")[0]
    assert (gap.start, gap.stop) == (200, 250)


def test_source_fault_is_reported_and_recovered_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from ionm_station.pipeline import acquisition

    monkeypatch.setattr(acquisition, "RECOVER_FIRST_S", 0.01)
    src = ScriptedSource([10] * 100, fail_after=3, recover_after=2)
    worker, got, log = run_worker(src)
    assert worker.error is None and worker.health().state == "stopped"  # never crashed
    assert worker.counters.source_faults == 1 and src.recover_calls == 3
    assert log.of_kind("source_error")[0].data["message"] == "OSError: device unplugged"
    assert log.of_kind("source_recovered")[0].start == 30
    assert got.n_samples == 1000 and worker.source_fault is None


def test_max_samples_truncates_exactly() -> None:
    src = ScriptedSource([64] * 20)
    worker, got, _ = run_worker(src, max_samples=1000)
    assert worker.counters.samples == 1000 and got.n_samples == 1000


def test_duplicate_samples_are_dropped() -> None:
    ring = RingBuffer(1000, 3)
    worker = AcquisitionWorker(ScriptedSource([]), ring, EventLog())
    data = np.zeros((10, 3), np.float32)
    worker.ingest(Chunk(0, data))
    worker.ingest(Chunk(5, data + 1))  # overlaps 5 samples
    assert worker.counters.duplicates == 5 and worker.counters.samples == 15


@pytest.mark.parametrize("chunk", [1, 37, 500])
def test_bandpass_streaming_equals_whole_record(chunk: int) -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4000, 4)) * 20 + 300).astype(np.float32)
    x[1500:1600] = np.nan
    whole = BandpassFilter(4, 10_000).process(x)
    f = BandpassFilter(4, 10_000)
    parts = np.concatenate([f.process(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    np.testing.assert_array_equal(np.isnan(whole), np.isnan(parts))
    np.testing.assert_allclose(np.nan_to_num(parts), np.nan_to_num(whole), rtol=0, atol=1e-4)


def test_bandpass_starts_at_steady_state_and_passes_band() -> None:
    fs = 10_000
    t = np.arange(fs) / fs
    dc_plus_tone = (500 + 50 * np.sin(2 * np.pi * 200 * t))[:, None].astype(np.float32)
    y = BandpassFilter(1, fs).process(dc_plus_tone)[:, 0]
    assert abs(y[:50]).max() < 60  # no start-up step from the 500 µV offset
    assert abs(np.sqrt(np.mean(y[2000:] ** 2)) - 50 / np.sqrt(2)) < 2  # 200 Hz passes
    slow = (100 * np.sin(2 * np.pi * 1.0 * t))[:, None].astype(np.float32)
    assert abs(BandpassFilter(1, fs).process(slow)[2000:]).max() < 2  # 1 Hz drift removed


def test_bandpass_clamps_high_edge_below_nyquist() -> None:
    f = BandpassFilter(2, 2000, high_hz=3000)
    assert f.high_hz < 1000


def test_processing_keeps_sample_clock_through_overrun() -> None:
    from ionm_station.montage import load_montage

    montage = load_montage("lumbar").first(2)
    info = StreamInfo(10_000.0, montage.labels)
    raw, clean = RingBuffer(5000, 2), RingBuffer(5000, 2)
    proc = ProcessingWorker(raw, clean, info, montage, EventLog(), CommandQueue())
    rng = np.random.default_rng(0)
    raw.write((rng.standard_normal((3000, 2)) * 3).astype(np.float32))
    while proc.step():
        pass
    raw.write((rng.standard_normal((12000, 2)) * 3).astype(np.float32))  # ring now holds 10000–15000
    while proc.step():
        pass
    assert proc.reader.overrun_samples == 7_000  # 3000–10000 were overwritten unread
    assert clean.published == raw.published - proc.delay  # same clock, lagging by the chain delay
    proc.stop()
    proc.drain()
    assert clean.published == raw.published == 15_000
    got = clean.reader(start=10_000).read()
    assert np.isfinite(got.data[-1000:]).all()
