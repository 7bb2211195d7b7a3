"""Lock-free single-producer / multi-consumer sample ring.

The ring holds the newest ``capacity`` samples of a stream in a preallocated
(capacity, n_channels) array. Samples are addressed by their absolute index (the stream
clock, see :mod:`ionm_station.stream`); sample ``i`` lives in row ``i % capacity``.

Two absolute counters (Python ints, never wrapped) coordinate producer and readers:

* ``claimed``: one past the newest sample the producer has started to write. Set *before* the
  copy, so every row the copy may overwrite belongs to a sample index ``< claimed - capacity``.
* ``published``: one past the newest sample that is completely written. Set *after* the copy.

The producer never blocks and never waits for readers. A reader copies rows out and then re-reads
``claimed``: any copied row whose index is ``< claimed - capacity`` may have been overwritten while
it was copied, so it is discarded and counted as an overrun instead of being returned torn.

No locks: the only synchronisation is that reading or assigning a Python int attribute is atomic
under the GIL, and that GIL hand-overs order the producer's copy before its ``published`` store
and the reader's copy before its ``claimed`` load. (Free-threaded CPython builds are not
supported by this reasoning.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike


@dataclass(frozen=True, eq=False)
class ReadResult:
    """Samples copied out of a ring.

    Attributes:
        start: absolute sample index of ``data[0]`` (also meaningful when ``data`` is empty: the
            index the next sample would have).
        data: a fresh copy (never a view of the ring), shape (n_samples, n_channels).
        lost: number of samples (per channel) skipped by an overrun immediately before ``start``
            in this call; 0 normally.
    """

    start: int
    data: np.ndarray
    lost: int = 0

    @property
    def n_samples(self) -> int:
        """Number of samples returned (per channel)."""
        return int(self.data.shape[0])

    @property
    def stop(self) -> int:
        """Absolute index one past the last returned sample."""
        return self.start + self.n_samples


class RingBuffer:
    """Fixed-capacity sample ring with one producer and any number of independent readers.

    Attributes:
        capacity: number of samples (per channel) the ring holds.
        n_channels: number of channels (columns).
        claimed: absolute index one past the newest sample being or having been written.
            Read-only for everyone but the producer.
        published: absolute index one past the newest fully written sample, i.e. the total
            number of samples ever written. Read-only for everyone but the producer.
    """

    def __init__(self, capacity: int, n_channels: int, dtype: DTypeLike = np.float32) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 sample, got {capacity}")
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        self.capacity = int(capacity)
        self.n_channels = int(n_channels)
        self._buf = np.zeros((self.capacity, self.n_channels), dtype=dtype)
        self.claimed = 0
        self.published = 0

    @property
    def dtype(self) -> np.dtype:
        """Sample data type of the ring."""
        return self._buf.dtype

    def write(self, data: np.ndarray) -> int:
        """Append samples (producer only; never blocks).

        Args:
            data: shape (n_samples, n_channels); cast to the ring's dtype. If ``n_samples`` exceeds
                ``capacity`` only the newest ``capacity`` rows are stored, but the counters still
                advance by ``n_samples``.

        Returns:
            Absolute index of ``data[0]``.
        """
        if data.ndim != 2 or data.shape[1] != self.n_channels:
            raise ValueError(
                f"expected data shaped (n_samples, {self.n_channels}), got {data.shape}"
            )
        return self._store(data, int(data.shape[0]))

    def write_nan(self, n: int) -> int:
        """Append ``n`` missing samples as NaN rows (a hole in the source clock; producer only).

        Costs O(min(n, capacity)): a long outage does not write rows nobody can read back.

        Returns:
            Absolute index of the first missing sample.
        """
        if not np.issubdtype(self.dtype, np.floating):
            raise TypeError(f"a {self.dtype} ring cannot hold NaN gap rows")
        rows = np.full((min(n, self.capacity), self.n_channels), np.nan, dtype=self.dtype)
        return self._store(rows, n)

    def _store(self, data: np.ndarray, n: int) -> int:
        """Advance the counters by ``n``; ``data`` holds the newest ``len(data)`` of those rows."""
        first = self.published
        if n == 0:
            return first
        self.claimed = first + n  # claim before touching any row
        cap = self.capacity
        if len(data) > cap:
            data = data[len(data) - cap :]
        landed_first = first + n - data.shape[0]
        pos = landed_first % cap
        head = min(data.shape[0], cap - pos)
        self._buf[pos : pos + head] = data[:head]
        if head < data.shape[0]:
            self._buf[: data.shape[0] - head] = data[head:]
        self.published = first + n  # publish after every row is in place
        return first

    def reader(self, start: int | None = None) -> RingReader:
        """A new reader with its own cursor.

        Args:
            start: absolute index of the first sample to read; ``None`` (default) means the current
                ``published`` (only new data). A start older than the ring still holds is reported
                as lost on the first read.
        """
        return RingReader(self, self.published if start is None else start)

    def latest(self, n: int) -> ReadResult:
        """Copy of the newest ``n`` published samples (for displays; any thread).

        At most ``min(n, capacity, published)`` samples are returned. Rows overwritten by the
        producer during the copy are dropped from the front and counted in ``lost``.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        p = self.published
        a = p - min(n, self.capacity, p)
        return self._copy_checked(a, p, a)

    def _copy_range(self, a: int, b: int) -> np.ndarray:
        """Copy rows of absolute indices [a, b) (b - a <= capacity); may be torn, caller checks."""
        cap = self.capacity
        pos = a % cap
        n = b - a
        head = min(n, cap - pos)
        if head == n:
            return self._buf[pos : pos + n].copy()
        return np.concatenate((self._buf[pos:], self._buf[: n - head]))

    def _copy_checked(self, a: int, b: int, expected: int) -> ReadResult:
        """Copy published samples [a, b), then drop any that the producer may have overwritten.

        ``expected`` is the index the caller wanted to start at; everything between it and the
        returned start is reported as lost.
        """
        out = self._copy_range(a, b)
        c = self.claimed  # re-read AFTER the copy
        s = min(max(a, c - self.capacity), b)
        return ReadResult(start=s, data=out[s - a :], lost=s - expected)


class RingReader:
    """One consumer's cursor into a :class:`RingBuffer`. Never modifies the ring.

    A reader must be used by one thread at a time; different readers are independent.

    Attributes:
        cursor: absolute index of the next sample this reader will return.
        overrun_samples: total samples (per channel) lost to overruns so far.
        overrun_events: number of :meth:`read` calls that lost anything.
    """

    def __init__(self, ring: RingBuffer, start: int) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self._ring = ring
        self.cursor = int(start)
        self.overrun_samples = 0
        self.overrun_events = 0

    def available(self) -> int:
        """Published samples not yet read; more than ``capacity`` means this reader was lapped.

        Negative if the reader was started beyond ``published``.
        """
        return self._ring.published - self.cursor

    def read(self, max_samples: int | None = None) -> ReadResult:
        """Copy out the next samples, at most ``max_samples`` (default: all available).

        If the producer lapped this reader, the oldest unread samples are skipped and reported in
        ``ReadResult.lost``; returned data are contiguous from ``ReadResult.start`` and never torn.
        """
        if max_samples is not None and max_samples < 0:
            raise ValueError(f"max_samples must be >= 0, got {max_samples}")
        ring = self._ring
        p = ring.published
        a = max(self.cursor, p - ring.capacity)
        b = p if max_samples is None else min(p, a + max_samples)
        if b <= a:
            return ReadResult(start=self.cursor, data=ring._buf[:0].copy())
        result = ring._copy_checked(a, b, self.cursor)
        self.cursor = b
        if result.lost:
            self.overrun_samples += result.lost
            self.overrun_events += 1
        return result
