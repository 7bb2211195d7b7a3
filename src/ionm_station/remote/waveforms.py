"""Clean traces for the remote view: at most 2 kHz, every spike keeping its height.

:class:`PeakDecimator` keeps, of each run of ``factor`` clean samples, the one of largest
magnitude (its sign kept): a 1 ms spike keeps its peak at 2 kHz where averaging would halve
it, as the window's min/max drawing keeps every spike. The stream is for a reader's eyes, not
for analysis (it aliases what lies above 1 kHz). Groups are aligned to the absolute sample
index, so the output index of a sample is the same whatever the chunking; a NaN in a group (a
gap, time not monitored) makes its output NaN.
"""

from __future__ import annotations

import math

import numpy as np

#: Highest rate of the published traces (Hz).
MAX_RATE_HZ = 2000.0


def decimation_factor(rate_hz: float, max_rate_hz: float = MAX_RATE_HZ) -> int:
    """The smallest whole factor that brings ``rate_hz`` to at most ``max_rate_hz``."""
    return max(1, math.ceil(rate_hz / max_rate_hz - 1e-9))


class PeakDecimator:
    """Streaming peak-keeping decimation by ``factor`` of ``n_channels`` channels.

    Output sample ``m`` stands for input samples ``[m * factor, (m + 1) * factor)``.
    """

    def __init__(self, factor: int, n_channels: int) -> None:
        self.factor = int(factor)
        self._held = np.empty((0, n_channels), np.float32)
        self._next: int | None = None  # absolute input index after the held rows

    def push(self, start: int, data: np.ndarray) -> tuple[int, np.ndarray]:
        """Take input rows from absolute index ``start``; return the first output index and
        the output rows now complete (possibly none). A ``start`` that does not follow the
        previous push (samples skipped) drops the incomplete group held."""
        k = self.factor
        if self._next != start:
            self._held = self._held[:0]
            skip = -start % k  # begin at a group boundary
            data, start = data[skip:], start + skip
        else:
            start -= len(self._held)
            data = np.concatenate((self._held, data)) if len(self._held) else data
        whole = len(data) // k * k
        self._held = data[whole:].astype(np.float32, copy=True)
        self._next = start + len(data)
        first = start // k
        if whole == 0:
            return first, data[:0].astype(np.float32)
        groups = data[:whole].reshape(-1, k, data.shape[1])
        pick = np.argmax(np.abs(groups), axis=1)  # NaN wins: a gap stays a gap
        out = np.take_along_axis(groups, pick[:, None, :], axis=1)[:, 0, :]
        return first, out.astype(np.float32)
