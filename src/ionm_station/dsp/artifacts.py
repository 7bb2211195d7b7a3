"""Artifact detection on the raw stream: electrocautery, saturation, lead-off, stimuli.

Works on the raw µV stream (before any filtering, rails at ±``range_uv``) in fixed analysis
windows of :data:`WINDOW_S` (at least :data:`WINDOW_MIN_SAMPLES` samples) aligned to absolute
sample indices, so the spans found do not depend on how the stream is chunked. Per window and
channel it measures:

* the RMS of the first difference (a crude high-pass that ignores drift and ECG; µV),
* whether any sample is at the rails (|x| ≥ :data:`RAIL_FRACTION` · range),
* whether the window is flat (peak-to-peak below :data:`FLAT_UV`).

Spans (absolute sample indices, ``stop`` one past the end):

* **cautery** — all channels: at least ``min_channels`` channels far above their own noise (or at
  the rails) for :data:`CAUTERY_CONFIRM_WINDOWS` windows in a row. The span starts
  :data:`CAUTERY_PRE_S` before the first hot window and ends once every channel is back near
  its baseline noise (the amplifier's recovery tail) plus :data:`CAUTERY_TAIL_EXTENSION` × the
  recovery time (at least :data:`CAUTERY_HANGOVER_S`), and never earlier than
  :data:`CAUTERY_MIN_POST_S` after the last hot window (band-pass ringing).
* **saturation** — one channel at the rails outside cautery; :data:`SATURATION_PRE_S` before
  the first rail sample to :data:`SATURATION_POST_S` after the last one (filter ringing).
* **lead_off** — one channel flat (or pinned at a rail) for ≥ :data:`LEAD_OFF_MIN_S`; also from
  the source (:meth:`ArtifactDetector.mark_lead_off`). A rail-pinned channel is blanked as
  saturation from its first rail sample and re-labelled lead-off once it has been flat long enough.
* **stimulus** — all channels, :data:`STIMULUS_PRE_S` before to :data:`STIMULUS_POST_S` after a
  stimulus the source reported (:meth:`ArtifactDetector.mark_stimulus`): artifact and CMAP are
  not free-run EMG.
* **pop**, **common_mode** — electrode pops and steps on many channels at one instant, found
  on the filtered stream by :class:`~ionm_station.dsp.steps.StepDetector` and handed in with
  :meth:`ArtifactDetector.mark_span`.

Latency: a cautery onset is known :data:`CAUTERY_CONFIRM_WINDOWS` windows (10 ms) after it
starts, a rail sample within one window (5 ms; 16 samples below 3.2 kHz); spans still open are blanked from their start
onwards by :meth:`ArtifactDetector.blank_mask`.

Reporting: a span is *open* from its start until the stream has passed its stop (margins
included), and is then reported closed once, by :meth:`ArtifactDetector.process` or
:meth:`ArtifactDetector.flush`; :meth:`ArtifactDetector.open_spans` lists the open ones (the
level state the alarm side reads every block). A span is identified by ``(start, channels)``:
every span ever listed open is later reported closed under the same identity. Its kind is fixed,
except that a channel's saturation turns into a lead-off (same start) once the channel has been
flat for :data:`LEAD_OFF_MIN_S`. A rail run is listed open once it has lasted the cautery
confirmation time without cautery; a run that only ever lay inside cautery is never listed and is
dropped (the cautery span covers it). Every reported span lies inside the record: starts are
clipped to the first sample, and at the end of the record stops to the last one.

Memory: closed spans are kept only until a :meth:`ArtifactDetector.blank_mask` query starts at or
after their stop (queries never go back), so what is held is bounded by the spans that end within
the chain's delay of the stream position, whatever the length of the case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ionm_station.dsp.order import middle_last, reduce_middle

#: Analysis window (s); windows are aligned to multiples of its length in samples …
WINDOW_S = 0.005
#: … and hold at least this many samples (below 3.2 kHz): the peak-to-peak of fewer samples of
#: a quiet channel's noise (1 µV) falls below FLAT_UV by chance (at 500 Hz a 2-sample window of
#: 3 µV noise was "flat" one time in eleven).
WINDOW_MIN_SAMPLES = 16
#: A sample at or beyond this fraction of the input range is at the rails.
RAIL_FRACTION = 0.98
#: A window whose peak-to-peak is below this (µV) is flat (no signal at all).
FLAT_UV = 0.5
#: Cautery: a channel is hot when its difference RMS exceeds this many times its noise …
CAUTERY_NOISE_FACTOR = 40.0
#: … and at least this much (µV, difference RMS; the largest MUAPs stay below ~100 µV).
CAUTERY_MIN_UV = 200.0
#: … raised to this (µV) for one- or two-channel recordings, where large needle MUAPs (several
#: mV) would otherwise pass for cautery; real cautery is far bigger and usually rails.
CAUTERY_FEW_CHANNELS_MIN_UV = 3000.0
#: Fraction of the channels that must be hot at once (at least 1, at most all).
CAUTERY_CHANNEL_FRACTION = 0.4
#: Consecutive hot windows that confirm a cautery onset (a stimulus artifact is shorter).
CAUTERY_CONFIRM_WINDOWS = 2
#: Margin before the first hot window (s).
CAUTERY_PRE_S = 0.150  # also covers the last heartbeat before it, which ECG removal cannot subtract
#: Recovery: a channel is quiet again below this many times its noise (difference RMS) …
CAUTERY_QUIET_FACTOR = 3.0
#: … for this long on every channel (s) …
CAUTERY_QUIET_S = 0.050
#: … then the span goes on for this many times the recovery time so far (the tail decays
#: exponentially: it is then ~100× below the noise) and at least CAUTERY_HANGOVER_S (s) …
CAUTERY_TAIL_EXTENSION = 1.5
CAUTERY_HANGOVER_S = 0.300
#: … and lasts at least this long after the last hot window (s): 10 Hz band-pass ringing.
CAUTERY_MIN_POST_S = 0.300
#: A recovery tail longer than this (s) is cut (a channel that stays noisier than before).
CAUTERY_MAX_TAIL_S = 3.0
#: Saturation margins (s): before the first and after the last rail sample (filter ringing).
SATURATION_PRE_S = 0.005
SATURATION_POST_S = 0.300
#: Rail samples closer than this (s) belong to one saturation span.
SATURATION_MERGE_S = 0.050
#: A channel flat or pinned for at least this long (s) is lead-off.
LEAD_OFF_MIN_S = 0.5
#: Stimulus blanking (s) before and after the stimulus index.
STIMULUS_PRE_S = 0.002
STIMULUS_POST_S = 0.060
#: Windows of noise history (per channel) and how often (windows) the noise is re-estimated.
NOISE_HISTORY_WINDOWS = 400
NOISE_UPDATE_WINDOWS = 20

KINDS = ("cautery", "saturation", "lead_off", "stimulus", "pop", "common_mode")
#: Kinds after which a channel has no usable signal: the clean output holds NaN there.
SIGNAL_LOST_KINDS = ("cautery", "saturation", "lead_off")


@dataclass(frozen=True)
class ArtifactSpan:
    """A stretch of samples that must not be read as EMG.

    Attributes:
        kind: one of :data:`KINDS`.
        start: absolute index of the first blanked sample.
        stop: absolute index one past the last blanked sample; None while the span is open.
        channels: channels concerned (all channels for cautery and stimuli).
    """

    kind: str
    start: int
    stop: int | None
    channels: tuple[int, ...]


@dataclass
class _StuckRun:
    """A channel at the rails or flat.

    Attributes:
        first, last: absolute index of the first bad sample and one past the last.
        born: start of the analysis window that opened the run.
        flat_since: start of the current run of flat windows, None if the last one was not flat.
        lead_off: flat for at least :data:`LEAD_OFF_MIN_S`.
        listed: shown by :meth:`ArtifactDetector.open_spans` (it then is reported when it closes).
        in_cautery: a window of the run ended while cautery was open.
    """

    first: int
    last: int
    born: int
    flat_since: int | None
    lead_off: bool = False
    listed: bool = False
    in_cautery: bool = False


class ArtifactDetector:
    """Streaming artifact detector for a (n_samples, n_channels) raw µV stream.

    Args:
        n_channels: channels per chunk.
        sample_rate_hz: sampling rate (Hz).
        range_uv: amplifier input range (µV); the raw stream saturates at ± this.
        min_channels: channels that must be hot at once for cautery; default
            :data:`CAUTERY_CHANNEL_FRACTION` of the channels, at least 1.
        start: absolute index of the first sample it will see (no span starts before it).
    """

    def __init__(self, n_channels: int, sample_rate_hz: float, range_uv: float,
                 min_channels: int | None = None, start: int = 0) -> None:
        self.n_channels = n_channels
        self.sample_rate_hz = float(sample_rate_hz)
        self.range_uv = float(range_uv)
        self.first = start
        self.min_channels = min_channels or max(1, math.ceil(CAUTERY_CHANNEL_FRACTION * n_channels))
        # with one or two channels there is no spatial evidence: only cautery-sized levels count
        self._cautery_min_uv = CAUTERY_MIN_UV if n_channels >= 3 else CAUTERY_FEW_CHANNELS_MIN_UV
        fs = self.sample_rate_hz
        self.window = max(WINDOW_MIN_SAMPLES, round(WINDOW_S * fs))
        self._s = {name: round(value * fs) for name, value in (
            ("c_pre", CAUTERY_PRE_S), ("c_quiet", CAUTERY_QUIET_S), ("c_hang", CAUTERY_HANGOVER_S),
            ("c_min_post", CAUTERY_MIN_POST_S), ("c_max_tail", CAUTERY_MAX_TAIL_S),
            ("s_pre", SATURATION_PRE_S), ("s_post", SATURATION_POST_S),
            ("s_merge", SATURATION_MERGE_S), ("lead_off", LEAD_OFF_MIN_S),
            ("st_pre", STIMULUS_PRE_S), ("st_post", STIMULUS_POST_S))}
        self.reset()

    def reset(self) -> None:
        """Forget everything: spans, noise estimates and buffered samples; the stream starts
        again at :attr:`first`."""
        c = self.n_channels
        self._pos = self.first - self.first % self.window  # absolute index of buffer[0]
        # samples before the stream began are neither flat nor at the rails
        self._buffer = np.full((self.first - self._pos, c), np.nan)
        self._prev_row: np.ndarray | None = None  # last sample before the buffer (differences)
        self._history = np.full((c, NOISE_HISTORY_WINDOWS), np.nan)  # channel-major ring
        self._history_i = 0
        self._noise = np.full(c, np.nan)      # difference RMS of the baseline (µV)
        self._hot_run = 0
        self._hot_first = 0
        self._cautery_start: int | None = None
        self._last_hot_end = 0
        self._quiet_since: int | None = None
        self._stuck: list[_StuckRun | None] = [None] * c
        self._source_open: dict[tuple[int, int], ArtifactSpan] = {}  # (start, channel) → span
        self._pending: list[ArtifactSpan] = []  # stop known, not yet passed by the stream
        self._closed: list[ArtifactSpan] = []   # passed, kept while a blank query may need them
        self._closed_bounds: np.ndarray | None = None  # (2, len(_closed)) starts, stops
        self._sq: np.ndarray | None = None       # scratch arrays of _analyse
        self._by_channel = np.zeros((c, 0))

    @property
    def position(self) -> int:
        """Absolute index of the next sample expected."""
        return self._pos + len(self._buffer)

    # --- public API ---

    def process(self, raw: np.ndarray, start: int) -> list[ArtifactSpan]:
        """Analyse the next consecutive raw chunk (n, n_channels) µV starting at absolute index
        ``start``; returns the spans the stream has now passed (closed), marked ones included."""
        raw = np.asarray(raw, dtype=np.float64)
        if start != self.position:
            raise ValueError(f"chunk starts at {start}, expected {self.position}")
        if self._prev_row is None and len(raw):
            self._prev_row = raw[0]
        data = np.concatenate([self._buffer, raw]) if len(self._buffer) else raw
        n_windows = len(data) // self.window
        if n_windows:
            self._analyse(data[:n_windows * self.window], self._pos)
            self._prev_row = data[n_windows * self.window - 1]
        self._buffer = data[n_windows * self.window:].copy()
        self._pos += n_windows * self.window
        return self._take_passed(self.position)

    def flush(self) -> list[ArtifactSpan]:
        """End of record: close every open span at the last sample seen and return every span
        not yet reported, cut to the record."""
        end = self.position
        if self._cautery_start is not None:
            self._close_cautery(max(end, self._last_hot_end))
        for c, run in enumerate(self._stuck):
            if run is not None:
                self._close_stuck(c, run, end)
        for span in self._source_open.values():
            self._add(replace(span, stop=end))
        self._source_open = {}
        return [replace(s, stop=min(s.stop, end)) for s in self._take_passed(None)
                if s.start < end]

    def open_spans(self) -> list[ArtifactSpan]:
        """Spans going on at the stream position (``stop`` None), in a fixed order: cautery, the
        channels' rail/flat runs, source lead-offs, then spans whose stop is known but not yet
        reached (margins, stimuli). Rail runs that began inside cautery are part of it."""
        pos = self.position
        spans = self._detected_open(listed_only=True)
        spans += [s for s in self._source_open.values() if s.start < pos]
        # (a span marked after the stream already passed its stop is not open any more)
        spans += [replace(s, stop=None) for s in self._pending if s.start < pos < s.stop]
        return spans

    def mark_lead_off(self, start: int, stop: int | None, channel: int) -> None:
        """A lead-off reported by the source on ``channel`` from sample ``start``: ``stop`` None
        opens it; a later call with the same ``start`` and channel and ``stop`` set closes it
        there (without an open one it is a whole lead-off at once). Blanked until ``stop`` plus
        the saturation post-margin (the reconnection transient)."""
        start = max(start, self.first)
        key = (start, channel)
        if stop is None:
            self._source_open.setdefault(key, ArtifactSpan("lead_off", start, None, (channel,)))
            return
        self._source_open.pop(key, None)
        self._add(ArtifactSpan("lead_off", start, max(stop, start) + self._s["s_post"],
                               (channel,)))

    def mark_stimulus(self, index: int) -> None:
        """A stimulus at absolute sample ``index``: blank all channels from
        :data:`STIMULUS_PRE_S` before to :data:`STIMULUS_POST_S` after it."""
        self._add(ArtifactSpan("stimulus", max(index - self._s["st_pre"], self.first),
                               max(index + self._s["st_post"], self.first + 1),
                               tuple(range(self.n_channels))))

    def mark_span(self, span: ArtifactSpan) -> None:
        """A span found elsewhere (a pop or common-mode step, with its stop): blanked and
        reported like the others; its start is clipped to the first sample. One that begins
        where every one of its channels has no signal (cautery, rails, lead-off: their edges
        are steps too) is part of that span and dropped."""
        span = replace(span, start=max(span.start, self.first))
        lost = [s for s in self._closed + self._pending + list(self._source_open.values())
                + self._detected_open(listed_only=False)
                if s.kind in SIGNAL_LOST_KINDS and s.start <= span.start
                and (s.stop is None or span.start < s.stop)]
        if not set(span.channels) <= {c for s in lost for c in s.channels}:
            self._add(span)

    def blank_mask(self, start: int, n: int, kinds: tuple[str, ...] | None = None) -> np.ndarray:
        """(n, n_channels) bool: True where samples [start, start + n) are blanked by a span (of
        ``kinds`` only, if given); open spans blank everything from their start on, rail runs
        inside cautery included. Queries must not go back: closed spans that end at or before
        ``start`` are forgotten."""
        mask = np.zeros((n, self.n_channels), bool)
        stop = start + n
        if self._closed and self._closed_bounds is None:
            self._closed_bounds = np.array([[s.start for s in self._closed],
                                            [s.stop for s in self._closed]], np.int64)
        spans: list[ArtifactSpan] = []
        if self._closed:
            starts, stops = self._closed_bounds
            spans = [self._closed[i] for i in np.flatnonzero((starts < stop) & (stops > start))]
            if stops.min() <= start:
                self._closed = [s for s in self._closed if s.stop > start]  # type: ignore[operator]
                self._closed_bounds = None
        spans += self._pending + list(self._source_open.values())
        spans += self._detected_open(listed_only=False)
        for span in spans:
            if kinds is not None and span.kind not in kinds:
                continue
            lo = max(span.start, start) - start
            hi = (stop if span.stop is None else min(span.stop, stop)) - start
            if lo < hi:
                mask[lo:hi, list(span.channels)] = True
        return mask

    # --- analysis ---

    def _analyse(self, data: np.ndarray, pos: int) -> None:
        """Whole windows ``data`` (k·window, channels) starting at absolute index ``pos``."""
        w, c = self.window, self.n_channels
        n = len(data)
        prev = data[0] if self._prev_row is None else self._prev_row
        # squared first difference (NaN → 0), without concatenating a copy of the chunk
        if self._sq is None or self._sq.shape != (n, c):
            self._sq = np.empty((n, c))  # kept between chunks: fresh large arrays page-fault
            self._by_channel = np.empty((c, n))
        sq = self._sq
        np.subtract(data[1:], data[:-1], out=sq[1:])
        np.subtract(data[0], prev, out=sq[0])
        np.multiply(sq, sq, out=sq)
        dr = np.sqrt(_mean_middle(sq.reshape(-1, w, c)))
        gap = None  # windows holding a gap (NaN) say nothing about the noise
        # (squares sum to NaN only where one is NaN: only then is the chunk searched for them)
        if np.isnan(dr).any():
            nan = np.isnan(sq)
            sq[nan] = 0.0
            gap = nan.reshape(-1, w, c).any(axis=1)
            dr = np.sqrt(_mean_middle(sq.reshape(-1, w, c)))
        # per-window extremes on channel-major rows (contiguous reductions; max/min are exact)
        np.copyto(self._by_channel, data.T)
        rows_first = self._by_channel.reshape(c, -1, w)
        # fmax/fmin skip NaN (gaps) and give NaN for an all-NaN window, without a warning
        top = np.fmax.reduce(rows_first, axis=2).T
        bottom = np.fmin.reduce(rows_first, axis=2).T
        rail_uv = RAIL_FRACTION * self.range_uv
        with np.errstate(invalid="ignore"):
            flat = (top - bottom) < FLAT_UV
            any_rail = (top >= rail_uv) | (bottom <= -rail_uv)  # = any(|x| ≥ rail_uv)
        windows = data.reshape(-1, w, c)
        odd = any_rail | flat
        odd_window = odd.any(axis=1)
        usable_dr = np.where(odd if gap is None else odd | gap, np.nan, dr)
        not_flat = ~flat
        first_index = pos // w
        k = 0
        while k < len(dr):
            # windows up to the next noise update share one noise estimate
            todo = NOISE_UPDATE_WINDOWS - (first_index + k) % NOISE_UPDATE_WINDOWS
            part = slice(k, min(k + todo, len(dr)))
            limit = np.fmax(CAUTERY_NOISE_FACTOR * self._noise, self._cautery_min_uv)
            hot = (dr[part] > limit) | any_rail[part]
            hot &= not_flat[part]
            n_hot = hot.sum(axis=1)
            busy = (self._cautery_start is not None or self._hot_run > 0
                    or bool((n_hot >= self.min_channels).any()))
            stuck = bool(odd_window[part].any()) or any(r is not None for r in self._stuck)
            rows = usable_dr[part]
            if busy or stuck:
                rows = rows.copy()
                for j in range(part.start, part.stop):
                    w_start = pos + j * w
                    if busy:
                        if self._cautery_start is not None or self._hot_run:
                            rows[j - part.start] = np.nan
                        self._cautery_window(w_start, int(n_hot[j - part.start]), dr[j], flat[j])
                    if stuck:
                        self._stuck_window(w_start, windows[j], any_rail[j], flat[j])
            self._push_history(rows)
            k = part.stop
            if (first_index + k) % NOISE_UPDATE_WINDOWS == 0:
                noise = _row_nanmedian(self._history)
                self._noise = np.where(np.isfinite(noise), noise, self._noise)

    def _push_history(self, rows: np.ndarray) -> None:
        """Append windows' ``rows`` (m, channels) to the channel-major ring of noise values."""
        m = len(rows)
        at = self._history_i % NOISE_HISTORY_WINDOWS
        if at + m <= NOISE_HISTORY_WINDOWS:
            self._history[:, at:at + m] = rows.T
        else:
            idx = (at + np.arange(m)) % NOISE_HISTORY_WINDOWS
            self._history[:, idx] = rows.T
        self._history_i += m

    def _cautery_window(self, w_start: int, n_hot: int, dr: np.ndarray, flat: np.ndarray) -> None:
        """Cautery state machine for one window with ``n_hot`` hot channels."""
        w_end = w_start + self.window
        if n_hot >= self.min_channels:
            if self._hot_run == 0:
                self._hot_first = w_start
            self._hot_run += 1
            if self._cautery_start is None and self._hot_run >= CAUTERY_CONFIRM_WINDOWS:
                self._cautery_start = max(self.first, self._hot_first - self._s["c_pre"])
            if self._cautery_start is not None:
                self._last_hot_end = w_end
                self._quiet_since = None
            return
        self._hot_run = 0
        if self._cautery_start is None:
            return
        quiet_limit = CAUTERY_QUIET_FACTOR * np.where(np.isfinite(self._noise), self._noise,
                                                      CAUTERY_MIN_UV / CAUTERY_NOISE_FACTOR)
        quiet = bool(np.all((dr < quiet_limit) | flat))
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = w_start
        if self._quiet_since is not None and w_end - self._quiet_since >= self._s["c_quiet"]:
            recovery = self._quiet_since - self._last_hot_end
            hang = max(self._s["c_hang"], round(CAUTERY_TAIL_EXTENSION * recovery))
            self._close_cautery(max(w_end + hang, self._last_hot_end + self._s["c_min_post"]))
        elif w_end - self._last_hot_end >= self._s["c_max_tail"]:
            self._close_cautery(w_end + self._s["c_hang"])

    def _close_cautery(self, stop: int) -> None:
        assert self._cautery_start is not None
        self._add(ArtifactSpan("cautery", self._cautery_start, stop, tuple(range(self.n_channels))))
        self._cautery_start = None
        self._quiet_since = None

    def _stuck_window(self, w_start: int, window: np.ndarray, any_rail: np.ndarray,
                      flat: np.ndarray) -> None:
        """Per-channel saturation / lead-off bookkeeping for one window of raw samples."""
        w = self.window
        w_end = w_start + w
        rails, flats = any_rail.tolist(), flat.tolist()
        if any(r and not f for r, f in zip(rails, flats)):
            # each channel's first and last rail sample (one look at all channels: a channel
            # at the rails has at least one)
            with np.errstate(invalid="ignore"):
                at_rail = np.abs(window) >= RAIL_FRACTION * self.range_uv
            first_rail = at_rail.argmax(axis=0).tolist()
            end_rail = (w - at_rail[::-1].argmax(axis=0)).tolist()
        for c in range(self.n_channels):
            run = self._stuck[c]
            if run is None and not (rails[c] or flats[c]):
                continue  # nothing going on on this channel
            if rails[c] or flats[c]:
                first = w_start + first_rail[c] if (rails[c] and not flats[c]) else w_start
                last = w_start + end_rail[c] if (rails[c] and not flats[c]) else w_end
                if run is not None and first - run.last > self._s["s_merge"]:
                    self._close_stuck(c, run, run.last)
                    run = None
                if run is None:
                    run = _StuckRun(first, last, w_start, None)
                    self._stuck[c] = run
                run.last = max(run.last, last)
                if flats[c]:
                    run.flat_since = w_start if run.flat_since is None else run.flat_since
                    if w_end - run.flat_since >= self._s["lead_off"]:
                        run.lead_off = True
                else:
                    run.flat_since = None
            elif run is not None:
                run.flat_since = None
                if w_end - run.last > self._s["s_merge"]:
                    self._close_stuck(c, run, run.last)
                    continue
            if run is not None:
                # listed once it outlived the cautery confirmation without cautery (at a
                # cautery onset the rails come first), or once it is a lead-off
                if self._cautery_start is not None:
                    run.in_cautery = True
                if run.lead_off or (self._cautery_start is None
                                    and w_end - run.born >= CAUTERY_CONFIRM_WINDOWS * w):
                    run.listed = True

    def _detected_open(self, listed_only: bool) -> list[ArtifactSpan]:
        """The open cautery span and the channels' rail/flat runs (only the listed ones, or all
        of them for blanking), ``stop`` None."""
        spans = []
        if self._cautery_start is not None:
            spans.append(ArtifactSpan("cautery", self._cautery_start, None,
                                      tuple(range(self.n_channels))))
        return spans + [self._run_span(c, run) for c, run in enumerate(self._stuck)
                        if run is not None and (run.listed or not listed_only)]

    def _run_span(self, c: int, run: _StuckRun, stop: int | None = None) -> ArtifactSpan:
        """Channel ``c``'s rail/flat run as a span (open while ``stop`` is None)."""
        return ArtifactSpan("lead_off" if run.lead_off else "saturation",
                            max(run.first - self._s["s_pre"], self.first), stop, (c,))

    def _close_stuck(self, c: int, run: _StuckRun, last: int) -> None:
        """Close channel ``c``'s rail/flat run; one that was never listed and lay in cautery is
        covered by the cautery span and dropped."""
        self._stuck[c] = None
        if run.listed or not run.in_cautery:
            self._add(self._run_span(c, run, last + self._s["s_post"]))

    def _add(self, span: ArtifactSpan) -> None:
        """A span whose stop is known: open until the stream passes it."""
        self._pending.append(span)

    def _take_passed(self, position: int | None) -> list[ArtifactSpan]:
        """Move the pending spans that end at or before ``position`` (None: all) to the closed
        ones and return them with those not reported yet."""
        if position is None:
            passed, self._pending = self._pending, []
        else:
            passed = [s for s in self._pending if s.stop <= position]  # type: ignore[operator]
            if passed:
                self._pending = [s for s in self._pending if s.stop > position]  # type: ignore[operator]
        if passed:
            self._closed += passed
            self._closed_bounds = None
        return passed


def _mean_middle(a: np.ndarray) -> np.ndarray:
    """``np.mean(a, axis=1)`` of a float (k, m, c) array, bit for bit: numpy sums over a middle
    axis slice by slice in order, as :func:`reduce_middle` does, but about three times slower
    (~120 µs instead of ~40 µs for 200 × 50 × 8 values)."""
    return reduce_middle(a, np.add) / a.shape[1]


def _row_nanmedian(values: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN where a row has none); much faster than
    :func:`numpy.nanmedian` for small arrays."""
    finite = np.isfinite(values)
    if values.shape[1] and finite.all():  # no gaps: the two middle order statistics suffice
        lo, hi = middle_last(values)
        return 0.5 * (lo + hi)
    count = finite.sum(axis=1)
    ordered = np.sort(values, axis=1)  # NaN sort last
    rows = np.arange(values.shape[0])
    lo = ordered[rows, np.maximum(count - 1, 0) // 2]
    hi = ordered[rows, count // 2 - (count == 0)]
    return np.where(count > 0, 0.5 * (lo + hi), np.nan)
