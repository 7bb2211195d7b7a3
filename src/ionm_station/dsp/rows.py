"""Rows of a multichannel stream addressed by absolute sample index (a history that grows at
the end and is dropped at the start without copying on every append)."""

from __future__ import annotations

import numpy as np


class Rows:
    """2-D rows addressed by absolute sample index: appended at the end, dropped at the start."""

    def __init__(self, n_cols: int, dtype: type, start: int = 0, fill: float = 0.0) -> None:
        self._data = np.full((1024, n_cols), fill, dtype)
        self._fill = fill
        self._off = 0
        self.start = start
        self.stop = start

    def append(self, rows: np.ndarray) -> None:
        self._extend(len(rows))[:] = rows

    def _extend(self, n: int) -> np.ndarray:
        """Make room for ``n`` more rows at the end and return them (uninitialised)."""
        live = self.stop - self.start
        if self._off + live + n > len(self._data):
            if 2 * (live + n) <= len(self._data):  # room enough: move the live rows down
                self._data[:live] = self._data[self._off:self._off + live]
            else:
                data = np.empty((2 * (live + n), self._data.shape[1]), self._data.dtype)
                data[:live] = self._data[self._off:self._off + live]
                self._data = data
            self._off = 0
        i = self._off + live
        self.stop += n
        return self._data[i:i + n]

    def pad(self, n: int) -> None:
        """Append ``n`` rows of the fill value."""
        if n > 0:
            self._extend(n)[:] = self._fill

    def view(self, a: int, b: int) -> np.ndarray:
        """Rows [a, b) (absolute) as a writable view."""
        if not self.start <= a <= b <= self.stop:
            raise IndexError(f"rows {a}..{b} outside {self.start}..{self.stop}")
        return self._data[self._off + a - self.start:self._off + b - self.start]

    def window(self, a: int, b: int) -> np.ndarray:
        """Rows [a, b) (absolute) to read, NaN where they lie outside the buffer (a window that
        reaches before the first sample or past the last one)."""
        lo, hi = max(a, self.start), min(b, self.stop)
        if lo == a and hi == b:
            return self.view(a, b)
        out = np.full((b - a, self._data.shape[1]), np.nan)
        if lo < hi:
            out[lo - a:hi - a] = self.view(lo, hi)
        return out

    def drop_before(self, a: int) -> None:
        a = min(max(a, self.start), self.stop)
        self._off += a - self.start
        self.start = a
