"""Tests of the lock-free sample ring: index arithmetic against a reference model, then threads."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ionm_station.ring import ReadResult, RingBuffer


def rows(first: int, n: int, n_channels: int) -> np.ndarray:
    """Reference rows for absolute indices [first, first + n): channel k holds index * (k + 1)."""
    idx = np.arange(first, first + n, dtype=np.float64)
    return idx[:, None] * np.arange(1, n_channels + 1, dtype=np.float64)


class InterruptingRing(RingBuffer):
    """A ring whose producer can be made to write in the middle of a reader's copy.

    This reproduces deterministically the race the after-copy check exists for: the reader has
    read ``published`` and is copying when the producer claims and overwrites rows.
    """

    pending: np.ndarray | None = None

    def _copy_range(self, a: int, b: int) -> np.ndarray:
        if self.pending is not None:
            data, self.pending = self.pending, None
            self.write(data)
        return super()._copy_range(a, b)


# --------------------------------------------------------------------------------------------
# Single-threaded behaviour
# --------------------------------------------------------------------------------------------


def test_write_returns_first_index_and_counters_advance() -> None:
    ring = RingBuffer(8, 2)
    assert ring.write(np.zeros((3, 2), np.float32)) == 0
    assert ring.write(np.zeros((20, 2), np.float32)) == 3
    assert ring.write(np.zeros((0, 2), np.float32)) == 23
    assert ring.claimed == ring.published == 23
    assert ring.dtype == np.float32


def test_write_rejects_wrong_shape() -> None:
    ring = RingBuffer(8, 2)
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        ring.write(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        ring.write(np.zeros(3))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        RingBuffer(0, 1)
    with pytest.raises(ValueError):
        RingBuffer(4, 0)
    ring = RingBuffer(4, 1)
    with pytest.raises(ValueError):
        ring.reader(-1)
    with pytest.raises(ValueError):
        ring.reader().read(-1)
    with pytest.raises(ValueError):
        ring.latest(-1)


def test_default_reader_sees_only_new_data_and_start_zero_sees_history() -> None:
    ring = RingBuffer(16, 3, dtype=np.float64)
    ring.write(rows(0, 5, 3))
    new_only = ring.reader()
    history = ring.reader(start=0)
    ring.write(rows(5, 4, 3))
    r = new_only.read()
    assert (r.start, r.lost, r.n_samples, r.stop) == (5, 0, 4, 9)
    np.testing.assert_array_equal(r.data, rows(5, 4, 3))
    r = history.read()
    assert (r.start, r.lost) == (0, 0)
    np.testing.assert_array_equal(r.data, rows(0, 9, 3))
    empty = history.read()
    assert (empty.start, empty.n_samples, empty.lost) == (9, 0, 0)
    assert empty.data.shape == (0, 3) and empty.data.dtype == np.float64


def test_read_returns_a_copy_not_a_view() -> None:
    ring = RingBuffer(4, 1, dtype=np.float64)
    reader = ring.reader()
    ring.write(rows(0, 2, 1))
    r = reader.read()
    ring.write(rows(2, 4, 1) + 100.0)
    np.testing.assert_array_equal(r.data, rows(0, 2, 1))


def test_lapped_reader_skips_forward_and_counts_loss() -> None:
    ring = RingBuffer(10, 1, dtype=np.float64)
    reader = ring.reader()
    ring.write(rows(0, 25, 1))  # larger than capacity: only the last 10 land
    assert reader.available() == 25
    r = reader.read(max_samples=4)
    assert (r.start, r.lost) == (15, 15)
    np.testing.assert_array_equal(r.data, rows(15, 4, 1))
    r = reader.read()
    assert (r.start, r.lost) == (19, 0)
    np.testing.assert_array_equal(r.data, rows(19, 6, 1))
    assert (reader.overrun_samples, reader.overrun_events, reader.cursor) == (15, 1, 25)


def test_write_during_copy_discards_overwritten_rows_instead_of_returning_them_torn() -> None:
    ring = InterruptingRing(10, 2, dtype=np.float64)
    reader = ring.reader(start=0)
    ring.write(rows(0, 10, 2))
    # The reader sees published=10 and copies [0, 10); meanwhile the producer writes 4 samples
    # (indices 10..13 land on rows 0..3, overwriting samples 0..3).
    ring.pending = rows(10, 4, 2)
    r = reader.read()
    assert (r.start, r.lost, r.stop) == (4, 4, 10)
    np.testing.assert_array_equal(r.data, rows(4, 6, 2))
    assert (reader.overrun_samples, reader.overrun_events) == (4, 1)
    r = reader.read()
    assert (r.start, r.lost) == (10, 0)
    np.testing.assert_array_equal(r.data, rows(10, 4, 2))


def test_write_during_copy_can_discard_the_whole_copy() -> None:
    ring = InterruptingRing(10, 1, dtype=np.float64)
    reader = ring.reader(start=0)
    ring.write(rows(0, 10, 1))
    ring.pending = rows(10, 30, 1)
    r = reader.read(max_samples=5)
    assert (r.start, r.n_samples, r.lost) == (5, 0, 5)
    r = reader.read()
    assert (r.start, r.lost) == (30, 25)
    np.testing.assert_array_equal(r.data, rows(30, 10, 1))


def test_latest() -> None:
    ring = RingBuffer(8, 2, dtype=np.float64)
    r = ring.latest(5)
    assert (r.start, r.n_samples, r.lost) == (0, 0, 0)
    ring.write(rows(0, 3, 2))
    r = ring.latest(5)
    assert (r.start, r.lost) == (0, 0)
    np.testing.assert_array_equal(r.data, rows(0, 3, 2))
    ring.write(rows(3, 10, 2))
    r = ring.latest(100)
    assert (r.start, r.stop, r.lost) == (5, 13, 0)
    np.testing.assert_array_equal(r.data, rows(5, 8, 2))


# --------------------------------------------------------------------------------------------
# Property test against a reference model
# --------------------------------------------------------------------------------------------

N_READERS = 3

op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, 40)),
    st.tuples(st.just("read"), st.integers(0, N_READERS - 1), st.none() | st.integers(0, 40)),
    st.tuples(
        st.just("read_during_write"),
        st.integers(0, N_READERS - 1),
        st.none() | st.integers(0, 40),
        st.integers(1, 40),
    ),
    st.tuples(st.just("latest"), st.integers(0, 40)),
)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 17),
    n_channels=st.integers(1, 4),
    size_multiples=st.lists(st.integers(0, 3), min_size=0, max_size=6),
    ops=st.lists(op, max_size=60),
    reader_starts=st.lists(st.none() | st.just(0), min_size=N_READERS, max_size=N_READERS),
)
def test_matches_reference_model(
    capacity: int,
    n_channels: int,
    size_multiples: list[int],
    ops: list[tuple],
    reader_starts: list[int | None],
) -> None:
    ring = InterruptingRing(capacity, n_channels, dtype=np.float64)
    total = 0  # reference: sample i is rows(i, 1, n_channels); everything ever written
    # Writes of exact multiples of the capacity first, then the random operations.
    for k in size_multiples:
        assert ring.write(rows(total, k * capacity, n_channels)) == total
        total += k * capacity
    readers = [ring.reader(s) for s in reader_starts]
    cursors = [total if s is None else s for s in reader_starts]
    initial = list(cursors)
    lost_total = [0] * N_READERS
    lost_events = [0] * N_READERS
    seen: list[list[int]] = [[] for _ in range(N_READERS)]

    def check_block(r: ReadResult) -> None:
        assert r.data.shape == (r.n_samples, n_channels)
        np.testing.assert_array_equal(r.data, rows(r.start, r.n_samples, n_channels))

    for o in ops:
        if o[0] == "write":
            assert ring.write(rows(total, o[1], n_channels)) == total
            total += o[1]
        elif o[0] == "latest":
            r = ring.latest(o[1])
            n = min(o[1], capacity, total)
            assert (r.start, r.n_samples, r.lost) == (total - n, n, 0)
            check_block(r)
        else:
            i, max_n = o[1], o[2]
            interrupt = o[3] if o[0] == "read_during_write" else 0
            cur = cursors[i]
            a = max(cur, total - capacity)
            b = total if max_n is None else min(total, a + max_n)
            if interrupt and b > a:
                ring.pending = rows(total, interrupt, n_channels)
            expected_written = total + (interrupt if b > a else 0)
            r = readers[i].read(max_n)
            ring.pending = None
            if b > a:
                total = expected_written
                # Rows with index < claimed - capacity may have been overwritten during the copy.
                start = min(max(a, total - capacity), b)
                assert (r.start, r.stop, r.lost) == (start, b, start - cur)
                cursors[i] = b
            else:
                assert (r.start, r.n_samples, r.lost) == (cur, 0, 0)
            check_block(r)
            seen[i].extend(range(r.start, r.stop))
            if r.lost:
                lost_total[i] += r.lost
                lost_events[i] += 1
        assert ring.claimed == ring.published == total

    for i, reader in enumerate(readers):
        assert reader.cursor == cursors[i]
        assert reader.available() == total - cursors[i]
        assert (reader.overrun_samples, reader.overrun_events) == (lost_total[i], lost_events[i])
        # No duplicates, strictly increasing, and seen + lost accounts for every sample passed.
        assert seen[i] == sorted(set(seen[i]))
        assert len(seen[i]) + lost_total[i] == cursors[i] - initial[i]


# --------------------------------------------------------------------------------------------
# Threaded stress test
# --------------------------------------------------------------------------------------------


def stress_rows(first: int, n: int) -> np.ndarray:
    """Rows [idx, 2 idx, -idx, idx + 0.5]: channel 0 is the absolute sample index."""
    idx = np.arange(first, first + n, dtype=np.float64)
    return np.column_stack((idx, idx * 2.0, -idx, idx + 0.5))


@dataclass
class ConsumerLog:
    """What one consumer thread saw."""

    seen: int = 0
    torn_rows: int = 0
    problems: list[str] = field(default_factory=list)
    max_lag: int = 0
    overrun_samples: int = 0
    overrun_events: int = 0


def consume(
    ring: RingBuffer,
    log: ConsumerLog,
    producer_done: threading.Event,
    max_samples_choices: list[int | None],
    pause_s: float,
    seed: int,
) -> None:
    """Read until the producer is done and everything published has been read; check each block."""
    rng = np.random.default_rng(seed)
    reader = ring.reader(start=0)
    expected = 0
    while True:
        done = producer_done.is_set()
        log.max_lag = max(log.max_lag, reader.available())
        r = reader.read(max_samples_choices[rng.integers(len(max_samples_choices))])
        if r.start != expected + r.lost:
            log.problems.append(f"start {r.start} != previous stop {expected} + lost {r.lost}")
        if r.n_samples:
            d = r.data
            idx = d[:, 0]
            if not np.array_equal(idx, np.arange(r.start, r.stop, dtype=np.float64)):
                log.problems.append(f"block at {r.start} not contiguous")
            log.torn_rows += int(
                np.count_nonzero(
                    (d[:, 1] != idx * 2.0) | (d[:, 2] != -idx) | (d[:, 3] != idx + 0.5)
                )
            )
        log.seen += r.n_samples
        expected = r.stop
        if done and reader.cursor == ring.published:
            break
        if pause_s:
            time.sleep(pause_s)
        elif r.n_samples == 0:
            time.sleep(0)  # let the producer run instead of spinning on an empty ring
    if reader.overrun_samples + log.seen != ring.published:
        log.problems.append(
            f"seen {log.seen} + overrun {reader.overrun_samples} != written {ring.published}"
        )
    log.overrun_samples = reader.overrun_samples
    log.overrun_events = reader.overrun_events


@pytest.fixture
def fast_thread_switching():
    """Switch threads every 20 µs so producer writes land inside reader copies often."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(2e-5)
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_thread_switching")
def test_threaded_one_producer_three_consumers() -> None:
    total_samples = 1_000_000
    big = RingBuffer(1 << 19, 4, dtype=np.float64)  # 524,288 samples: the keeping-up consumers
    small = RingBuffer(700, 4, dtype=np.float64)  # the slow consumer is lapped constantly
    producer_done = threading.Event()
    logs = {"fast": ConsumerLog(), "small_chunks": ConsumerLog(), "slow": ConsumerLog()}
    consumers = [
        threading.Thread(target=consume, args=(big, logs["fast"], producer_done, [None], 0.0, 1)),
        threading.Thread(
            target=consume,
            args=(big, logs["small_chunks"], producer_done, [16, 128, 1024, 4096], 0.0, 2),
        ),
        threading.Thread(
            target=consume, args=(small, logs["slow"], producer_done, [None, 50, 500], 5e-4, 3)
        ),
    ]

    def produce() -> None:
        rng = np.random.default_rng(0)
        written = 0
        while written < total_samples:
            n = int(rng.integers(1, 501))
            block = stress_rows(written, n)
            assert big.write(block) == written
            small.write(block)
            written += n
            time.sleep(0)  # offer the GIL (as a device thread blocking on I/O would); never waits
        producer_done.set()

    producer = threading.Thread(target=produce)
    t0 = time.perf_counter()
    for t in consumers:
        t.start()
    producer.start()
    for t in [producer, *consumers]:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in [producer, *consumers]), "a thread hung"
    elapsed = time.perf_counter() - t0

    written = big.published
    assert written >= total_samples and small.published == written
    for name, log in logs.items():
        assert log.problems == [], name
        assert log.torn_rows == 0, name
    for name in ("fast", "small_chunks"):
        assert logs[name].seen == written, f"{name} lost data (max lag {logs[name].max_lag})"
    slow = logs["slow"]
    assert slow.seen < written, "the slow consumer was expected to be lapped"
    assert slow.overrun_events > 0 and slow.seen + slow.overrun_samples == written
    assert elapsed < 20


def test_write_nan_keeps_clock_and_costs_at_most_capacity() -> None:
    ring = RingBuffer(8, 2)
    r = ring.reader(start=0)
    ring.write(np.ones((3, 2), np.float32))
    assert ring.write_nan(1_000_000) == 3
    ring.write(np.full((2, 2), 5, np.float32))
    assert ring.published == 1_000_005
    got = r.read()
    assert got.stop == 1_000_005 and got.lost == 1_000_005 - 8
    assert np.isnan(got.data[:6]).all() and (got.data[6:] == 5).all()
    with pytest.raises(TypeError):
        RingBuffer(4, 1, dtype=np.int32).write_nan(2)
