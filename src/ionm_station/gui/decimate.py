"""Min/max decimation to screen pixel columns — pure numpy, no Qt.

Drawing every sample of 32 channels × 10 s × 10 kHz costs far more than a frame; averaging
samples per pixel (mean decimation) is cheap but erases single-sample spikes. Keeping the
minimum and the maximum of the samples that fall in each pixel column draws exactly the
envelope the full trace would paint, at 2 points per column.

NaN (dropped data, blanked artifacts) is ignored inside a column; a column with no finite
sample stays NaN on both points, so the drawn trace breaks there.

Two tools:

* :func:`minmax_columns` reduces one block of samples at once.
* :class:`ColumnBuffer` keeps the min/max of a fixed number of columns, each column a fixed
  span of absolute sample indices, and folds in new samples incrementally, so a display only
  reduces what arrived since its last frame. Column ``c`` covers the samples ``i`` with
  ``i * n_columns // window_samples == c`` and lives in slot ``c % n_columns``: the slot order
  *is* the sweep-mode screen order; scroll mode rolls it so the newest column is last.
"""

from __future__ import annotations

import warnings

import numpy as np


def column_edges(n_samples: int, n_columns: int) -> np.ndarray:
    """Start index of each of ``n_columns`` near-equal columns over ``n_samples`` samples."""
    return (np.arange(n_columns, dtype=np.int64) * n_samples) // n_columns


def _reduce(data: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring min and max of ``data`` rows between consecutive ``starts`` (per column)."""
    with warnings.catch_warnings():  # fmin/fmax of all-NaN slices is NaN, which is what we want
        warnings.simplefilter("ignore", RuntimeWarning)
        lo = np.fmin.reduceat(data, starts, axis=0)
        hi = np.fmax.reduceat(data, starts, axis=0)
    return lo, hi


def minmax_columns(data: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce ``data`` (n_samples, n_channels) to the min and max of each pixel column.

    Returns:
        ``x`` (2·k,) float64: sample position of each point (column start, then column centre),
        and ``y`` (2·k, n_channels): the column's minimum then maximum. ``k`` is
        ``min(n_columns, n_samples)``; with no more samples than columns every sample is its own
        column (min == max). All-NaN columns give NaN.
    """
    if data.ndim != 2:
        raise ValueError(f"expected (n_samples, n_channels), got shape {data.shape}")
    if n_columns < 1:
        raise ValueError(f"n_columns must be >= 1, got {n_columns}")
    n = data.shape[0]
    if n == 0:
        return np.empty(0), np.empty((0, data.shape[1]), dtype=data.dtype)
    k = min(n_columns, n)
    starts = column_edges(n, k)
    lo, hi = _reduce(data, starts)
    widths = np.diff(np.append(starts, n))
    x = np.empty(2 * k)
    x[0::2] = starts
    x[1::2] = starts + widths / 2.0
    y = np.empty((2 * k, data.shape[1]), dtype=data.dtype)
    y[0::2] = lo
    y[1::2] = hi
    return x, y


class ColumnBuffer:
    """Incremental min/max per pixel column over the newest ``window_samples`` samples.

    Args:
        n_columns: pixel columns of the display (one slot each).
        window_samples: samples spanned by all the columns (timebase × rate).
        n_channels: channels per sample.

    Attributes:
        lo, hi: (n_columns, n_channels) float32 min and max per slot; NaN where no finite
            sample fell (not yet written, dropped, blanked).
        newest: absolute index one past the newest sample folded in (0 before any).
    """

    def __init__(self, n_columns: int, window_samples: int, n_channels: int) -> None:
        if n_columns < 1 or window_samples < n_columns:
            raise ValueError(f"need 1 <= n_columns <= window_samples, got {n_columns} columns "
                             f"for {window_samples} samples")
        self.n_columns = int(n_columns)
        self.window_samples = int(window_samples)
        self.n_channels = int(n_channels)
        self.lo = np.full((self.n_columns, self.n_channels), np.nan, dtype=np.float32)
        self.hi = np.full_like(self.lo, np.nan)
        self.newest = 0
        self._last_col = -1  # absolute column of the newest sample (may be partly filled)

    def column_of(self, index: int | np.ndarray) -> int | np.ndarray:
        """Absolute column number of absolute sample ``index``."""
        return (index * self.n_columns) // self.window_samples

    @property
    def head_slot(self) -> int:
        """Slot of the newest column (the sweep position); -1 before any sample."""
        return self._last_col % self.n_columns if self._last_col >= 0 else -1

    def push(self, start: int, data: np.ndarray) -> None:
        """Fold in samples ``data`` (n, n_channels) whose first absolute index is ``start``.

        ``start`` may jump forward (samples skipped: their columns become NaN). Samples older
        than the newest one already folded in are ignored.
        """
        if start < self.newest:
            skip = self.newest - start
            if skip >= len(data):
                return
            data, start = data[skip:], self.newest
        n = len(data)
        if n == 0:
            return
        stop = start + n
        first_col = int(self.column_of(start))
        last_col = int(self.column_of(stop - 1))
        self._clear_columns(first_col, last_col)
        # column boundaries (absolute) falling inside this block, as row offsets
        cols = np.arange(first_col, last_col + 1, dtype=np.int64)
        col_starts = -(-(cols * self.window_samples) // self.n_columns)  # ceil: first index
        offsets = np.maximum(col_starts - start, 0)
        lo, hi = _reduce(data, offsets)
        if len(cols) > self.n_columns:  # more than a whole window arrived: keep the newest
            cols, lo, hi = cols[-self.n_columns:], lo[-self.n_columns:], hi[-self.n_columns:]
        slots = cols % self.n_columns
        if cols[0] == self._last_col:  # continue the partly filled column
            lo[0] = np.fmin(lo[0], self.lo[slots[0]])
            hi[0] = np.fmax(hi[0], self.hi[slots[0]])
        self.lo[slots] = lo
        self.hi[slots] = hi
        self._last_col = last_col
        self.newest = stop

    def _clear_columns(self, first_col: int, last_col: int) -> None:
        """NaN the slots of columns skipped between the last written one and ``first_col``."""
        if self._last_col < 0:
            return
        gap_from = self._last_col + 1
        gap_to = min(first_col, gap_from + self.n_columns)  # exclusive; at most a lap
        if gap_to > gap_from:
            slots = np.arange(gap_from, gap_to) % self.n_columns
            self.lo[slots] = np.nan
            self.hi[slots] = np.nan

    def interleaved(self, scroll: bool) -> np.ndarray:
        """(2·n_columns, n_channels) min, max, min, max… in screen order.

        Sweep (``scroll=False``): slot order, the newest column at :attr:`head_slot`.
        Scroll: oldest column first, the newest last.
        """
        out = np.empty((2 * self.n_columns, self.n_channels), dtype=np.float32)
        if scroll and self._last_col >= 0:
            shift = -(self.head_slot + 1)
            out[0::2] = np.roll(self.lo, shift, axis=0)
            out[1::2] = np.roll(self.hi, shift, axis=0)
        else:
            out[0::2] = self.lo
            out[1::2] = self.hi
        return out


def bridge_columns(y: np.ndarray, min_span: float) -> np.ndarray:
    """Turn interleaved min/max columns into vertical bars that join their neighbours.

    Drawing each column as one vertical segment (``connect='pairs'``) paints about half the
    pixels of a min→max→next-min polyline, but two neighbouring columns whose ranges do not
    overlap (a steep edge) would leave a hole. Extending each column's bar to reach the
    previous column's range closes it — the bar then covers what the full-resolution line
    would paint in that column. Bars shorter than ``min_span`` (a flat line) are lengthened to
    it so they stay visible. NaN columns stay NaN (they are dropped, breaking the trace).

    Args:
        y: (2·k, n_channels) min, max, min, max… per column in screen order.
        min_span: shortest bar, in the units of ``y`` (about one pixel).

    Returns:
        A new array of the same shape.
    """
    lo, hi = y[0::2], y[1::2]
    prev_lo = np.empty_like(lo)
    prev_hi = np.empty_like(hi)
    prev_lo[0] = prev_hi[0] = np.nan
    prev_lo[1:], prev_hi[1:] = lo[:-1], hi[:-1]
    missing = np.isnan(lo)
    out = np.empty_like(y)
    new_lo = np.where(missing, np.nan, np.fmin(lo, prev_hi))
    out[0::2] = new_lo
    out[1::2] = np.where(missing, np.nan, np.maximum(np.fmax(hi, prev_lo), new_lo + min_span))
    return out
