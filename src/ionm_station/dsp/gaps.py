"""Gaps in the raw stream: samples the source lost (NaN rows), bridged or waited out.

A source that drops a frame now and then (a corrupt serial frame, a lost USB packet) leaves
a gap of a few samples. Restarting every stage's filters there rang through the traces: with
one lost sample every 10 s, each gap gave 10–170 µV "bursts" on all channels right after it,
and the ECG canceller, holding every channel out of beat detection for 0.5 s after it, left
the next heartbeat whole, reported as EMG (tuning case tune-mitdb-10k: 30 false events in
60 s; 207 with one every 1.5 s).

- **Short gaps** (≤ :data:`BRIDGE_MAX_S` on a channel) are *bridged*: the stages see the
  channel one mains period earlier, shifted to meet its last measured sample (mains is most
  of what moves within a few ms, and it runs on through the gap; the last sample held where
  that period was lost too), so their filters and models run on as if nothing was lost. The
  filled rows are still no measurement: the clean output is NaN there, and detection is
  blanked over them and :data:`BRIDGE_SETTLE_S` (plus twice the gap) after, where the step
  back to the signal rings; a common-mode step found there (or a pop, where one channel lost
  samples alone) is that step, not an electrode's, and is dropped.
- **Longer gaps** reach the stages as NaN after their first :data:`BRIDGE_MAX_S`, as before:
  the filters restart at the next sample, on every channel (a row with a NaN restarts the
  band-pass), so detection is blanked on every channel from :data:`GAP_PRE_S` before
  the gap (where the chain has an ECG canceller: the heartbeat just before it is not
  subtracted) to :data:`GAP_SETTLE_S` after it ends, while the stages settle (the ECG canceller
  holds channels out of beat detection that long after a gap).

Nothing is joined: the clean output keeps every lost row NaN, and the recorder stores the raw
stream as the source gave it. A gap is judged per channel, from its first NaN row, the same
whatever the chunking.
"""

from __future__ import annotations

import numpy as np

#: Longest gap (s) bridged (filled for the stages): a lost frame or a few USB packets (one
#: sample at 250 Hz is 4 ms). Tuning cases tune-mitdb-10k and tune-ptb-10k, a gap every 3.3 s:
#: gaps of 6 and 10 ms bridged gave 0–1 false events in 60 s, 20 ms ones 4–13 (up to 300 µV).
BRIDGE_MAX_S = 0.010
#: Mains period (s) used while the mains frequency is not known: 5 cycles of 50 Hz, 6 of 60 Hz.
UNKNOWN_MAINS_PERIOD_S = 0.1
#: Detection stays blanked this long (s) after a bridged gap, plus BRIDGE_SETTLE_PER_LOST ×
#: the gap's length: the step from the filled rows back to the signal rings through the
#: band-pass, more the longer the fill (31 extra tuning seeds, 60 s each with a gap every
#: 2.5 s: 8 ms gaps left 12–21 µV events 13–21 ms after them with 10 ms alone; 1-sample and
#: 2 ms gaps none).
BRIDGE_SETTLE_S = 0.010
BRIDGE_SETTLE_PER_LOST = 2.0
#: … and this long (s) after a longer gap: the stages restart there, and the ECG canceller
#: keeps every channel out of beat detection for DEAD_HOLD_S (0.5 s) after it; a heartbeat
#: at the end of that hold goes on unsubtracted for up to 0.2 s more (its T wave: 12–24 µV
#: bursts R + 114…119 ms, right where a 0.5 s blank ended, extra tuning seeds 300 and 426).
GAP_SETTLE_S = 0.7
#: A longer gap also blanks detection this long (s) before it, where the chain holds the ECG
#: canceller: a heartbeat whose window (0.1 s before its R peak to 0.2 s after) meets the gap
#: is not subtracted whole (tune-ptb-10k, 6 ms gaps not bridged: 15–19 µV "bursts" 30–110 ms
#: before them; tune-ptb-10k-b and extra tuning seed 300: 18–34 µV 0.21–0.22 s before 50 and
#: 300 ms gaps, with 0.15 s).
GAP_PRE_S = 0.3


class GapBridge:
    """Finds the gaps of a raw stream (n, channels) µV chunk by chunk, fills each channel's
    first :data:`BRIDGE_MAX_S` of any gap, and says which rows are lost and which are blanked
    for detection.

    Args:
        n_channels: channels per row.
        sample_rate_hz: sampling rate (Hz).
        start: absolute index of the first row.
        blank_before: blank detection :data:`GAP_PRE_S` before a gap that is not bridged
            (the caller reads the masks of a row at least :attr:`lead` rows after it has been
            processed: the chain's delay).
        mains_hz: the nominal mains frequency (Hz; None: not known), the period a gap is
            filled from.
    """

    def __init__(self, n_channels: int, sample_rate_hz: float, start: int = 0,
                 blank_before: bool = False, mains_hz: float | None = None) -> None:
        self.n_channels = n_channels
        self._bridge = max(1, round(BRIDGE_MAX_S * sample_rate_hz))
        self._pre = round(GAP_PRE_S * sample_rate_hz) if blank_before else 0
        #: samples after a gap's start by which the masks for rows before it are final
        self.lead = self._pre + self._bridge + 1
        self._bridge_settle = round(BRIDGE_SETTLE_S * sample_rate_hz)
        self._settle = round(GAP_SETTLE_S * sample_rate_hz)
        self._next = start
        self._fs = sample_rate_hz
        self.set_mains(mains_hz)
        # the raw rows (µV) of the longest period and a bridge
        self._hist = np.full((round(UNKNOWN_MAINS_PERIOD_S * sample_rate_hz) + self._bridge + 1,
                              n_channels), np.nan)
        self._open = np.full(n_channels, -1, np.int64)  # start of the gap going on (-1: none)
        # ended gaps whose blanks may still reach rows not yet read, one row each (absolute
        # indices): channel, first lost row, one past the last, blank start and stop, bridged
        self._gaps = np.zeros((0, 6), np.int64)

    def set_mains(self, mains_hz: float | None) -> None:
        """The nominal mains frequency (Hz; None: not known) whose period fills a gap."""
        self._period = max(self._bridge + 1, round(self._fs / mains_hz) if mains_hz
                           else round(UNKNOWN_MAINS_PERIOD_S * self._fs))

    def splice(self) -> None:
        """The stream jumps here (a replay seek): no gap after it is filled from before it."""
        self._hist[:] = np.nan

    def process(self, raw: np.ndarray) -> np.ndarray:
        """The next chunk (n, channels) µV as the stages are to see it: NaN rows within
        :data:`BRIDGE_MAX_S` of their gap's start are filled (see the module docstring; a gap
        before any sample stays NaN). Returns ``raw`` itself when it holds no gap."""
        n, start, p = len(raw), self._next, self._period
        self._next += n
        lost = np.isnan(raw)
        if not lost.any() and (self._open < 0).all():
            self._remember(raw)
            return raw
        h = len(self._hist)
        cols = np.arange(self.n_channels)
        ext = np.concatenate((self._hist, raw))  # row e: absolute index start − h + e
        # each row's latest measured row (in ext): in the chunk, or before it — where a gap
        # goes on into the chunk, the row before its start (outside ext once it is too long)
        latest = np.maximum.accumulate(np.where(lost, -1, np.arange(n)[:, None]), axis=0)
        before = np.where(self._open >= 0, self._open - start - 1 + h, h - 1)
        latest = np.where(latest >= 0, latest + h, before[None, :])
        bridged = lost & (np.arange(n)[:, None] + h - latest <= self._bridge)
        at = np.maximum(latest, 0)
        anchor = ext[at, cols]  # the last measured sample (NaN before the first one)
        # a period back, moved to meet the last measured sample; held where either is lost
        # (the history keeps the lost rows lost: any chunking fills alike)
        offset = anchor - ext[np.maximum(at - p, 0), cols]
        predicted = np.where(at >= p, ext[h - p:h - p + n] + offset, np.nan)
        predicted = np.where(np.isfinite(predicted), predicted, anchor)
        fill = bridged & np.isfinite(anchor)
        filled = raw.astype(np.float64, copy=True)
        filled[fill] = predicted[fill]
        self._note_runs(lost, start)
        self._remember(raw)
        return filled

    def _remember(self, rows: np.ndarray) -> None:
        """Keep the raw rows of the last period and a bridge (the offset of a fill reaches a
        period back from a gap's start)."""
        h = len(self._hist)
        if len(rows) >= h:
            self._hist[:] = rows[-h:]
        else:
            self._hist[:h - len(rows)] = self._hist[len(rows):]
            self._hist[h - len(rows):] = rows

    def _note_runs(self, lost: np.ndarray, start: int) -> None:
        """Open and end the gaps in ``lost`` (rows from absolute ``start``)."""
        before = np.concatenate(((self._open >= 0)[None, :], lost[:-1]))
        # per channel, in time order, the gaps' first rows (one going on first) and their ends
        open_ch, open_row = np.nonzero((lost & ~before).T)
        end_ch, end_row = np.nonzero((~lost & before).T)
        going = np.flatnonzero(self._open >= 0)
        first_ch = np.concatenate((going, open_ch))
        first = np.concatenate((self._open[going], start + open_row))
        order = np.argsort(first_ch, kind="stable")  # (going ones lead each channel's list)
        first_ch, first = first_ch[order], first[order]
        # the k-th end on a channel closes its k-th first row
        rank = np.arange(len(end_ch)) - np.searchsorted(end_ch, end_ch)
        closes = np.searchsorted(first_ch, end_ch) + rank
        stop = start + end_row
        began = first[closes]
        bridged = stop - began <= self._bridge
        settle = np.where(bridged, self._bridge_settle
                          + np.round(BRIDGE_SETTLE_PER_LOST * (stop - began)).astype(np.int64),
                          self._settle)
        self._gaps = np.concatenate((self._gaps, np.column_stack((
            end_ch, began, stop, np.where(bridged, began, began - self._pre), stop + settle,
            bridged))))
        unclosed = np.ones(len(first), bool)
        unclosed[closes] = False
        self._open[:] = -1
        self._open[first_ch[unclosed]] = first[unclosed]  # (at most one per channel)

    def lost(self, start: int, n: int) -> np.ndarray | None:
        """(n, channels) bool: the rows [start, start + n) no sample came for (bridged ones
        included; None: none). Rows of gaps :meth:`masks` has forgotten are not asked for."""
        going = np.flatnonzero(self._open >= 0)
        if not len(self._gaps) and not len(going):
            return None
        g = self._gaps[self._gaps[:, 2] > start]  # (ended before these rows: none of them)
        if not len(g) and not len(going):
            return None
        lost = _spans(n, self.n_channels, start, g[:, 0], g[:, 1], g[:, 2])
        for ch in going.tolist():
            lost[max(int(self._open[ch]) - start, 0):, ch] = True
        return lost if lost.any() else None

    def explains(self, index: int, channels: tuple[int, ...], kind: str) -> bool:
        """Whether a step span of ``kind`` found at absolute ``index`` (its start) on
        ``channels`` is the step back to the signal after a bridged gap on each of them (from
        its start to the end of its blank): not an electrode's, and blanked already. A pop
        (one channel) is only where its channel lost samples alone: where all lost them at
        once, their steps back are one common-mode step, and a pop is an electrode's (a
        review: 800 µV pops 3–8 ms after a one-sample gap lost their spans, their tails
        raised as 128–249 µV bursts)."""
        g = self._gaps
        at = g[(g[:, 5] == 1) & (g[:, 1] <= index) & (index < g[:, 4])]
        if kind == "pop":
            at = at[[np.count_nonzero(g[:, 1] == first) == 1 for first in at[:, 1]]]
        return set(channels) <= set(at[:, 0].tolist())

    def masks(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """For rows [start, start + n): (lost, blanked) bool (n, channels) — the rows no
        sample came for, and those plus the blank around each gap — or None where there are
        neither. Queries must not go back: gaps whose blank ends at or before ``start`` are
        forgotten."""
        self._gaps = g = self._gaps[self._gaps[:, 4] > start]
        going = np.flatnonzero(self._open >= 0)
        if not len(g) and not len(going):
            return None
        c = self.n_channels
        lost = self.lost(start, n)
        if lost is None:
            lost = np.zeros((n, c), bool)
        blanked = lost | _spans(n, c, start, g[:, 0], g[:, 3], g[:, 4])
        long = g[g[:, 5] == 0]
        if len(long):  # the band-pass restarts every channel after a NaN row: blank them all
            blanked |= _spans(n, 1, start, np.zeros(len(long), np.int64), long[:, 3], long[:, 4])
        for ch in going.tolist():
            first = int(self._open[ch])
            going_long = self._next - first > self._bridge  # (known for every row it pre-blanks)
            blanked[max(first - (self._pre if going_long else 0) - start, 0):,
                    slice(None) if going_long else ch] = True
        return lost, blanked


def _spans(n: int, n_channels: int, start: int, channels: np.ndarray, lo: np.ndarray,
           hi: np.ndarray) -> np.ndarray:
    """(n, n_channels) bool: rows [start, start + n) inside any [lo, hi) (absolute) on its
    channel."""
    edges = np.zeros((n + 1, n_channels), np.int64)
    a, b = np.clip(lo - start, 0, n), np.clip(hi - start, 0, n)
    keep = a < b
    np.add.at(edges, (a[keep], channels[keep]), 1)
    np.add.at(edges, (b[keep], channels[keep]), -1)
    return np.cumsum(edges[:-1], axis=0) > 0
