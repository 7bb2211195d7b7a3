"""Alarm engine: detected EMG events and artifact spans → one state per nerve root and side.

Pure Python, no Qt. The processing thread calls :meth:`AlarmEngine.update` with what the chain
found — events that ended, A-trains still going on, and the artifact spans open *now* (a level,
not open/close edges, so no span can be left behind open) — and applies user commands
(threshold, acknowledge, silence). Its tiles go into the station's state snapshot; the alarm
events it appends to the session's event log are recorded with the case.

Train time per tile is the union of the A-train spans of the tile's muscles
(:class:`~ionm_station.detect.train_time.TrainTimeLedger`, the one definition).

States, by display precedence:

* ``alarm`` — a neurotonic A-train on the root (any amplitude: train time, not size, is what
  predicts palsy), raised while the train is still going on (once it has lasted 0.1 s), or
  summed A-train time past the caution (0.5 s) or warning (10 s) level (Prell et al. 2007).
  Latched until acknowledged.
* ``no_signal`` — every channel of the root is off (lead-off, railed). A lost source or a
  processing fault is a *technical* alarm laid over the tiles by
  :mod:`ionm_station.pipeline.technical`, not a state of this engine.
* ``blanked`` — electrocautery: detection is blanked, so the tile says so instead of "quiet".
* ``activity`` — a spike, burst or B-train at or above the channel's threshold (µV p-p) within
  the last ``hold_s`` (5 s, as commercial monitors show events).
* ``quiet`` — none of the above.

An optional adaptive threshold (``AlarmConfig.adaptive``) raises a root's activity threshold
during long continuous activity, up to 400 µV, and reverts after quiet, as commercial
monitors do; each change is logged and named on the tile. It never mutes an A-train.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ionm_station.detect.train_time import TrainTimeLedger
from ionm_station.events import Event
from ionm_station.montage import Montage

PRIORITIES = ("advisory", "caution", "warning")
#: Open artifact kinds that take a channel off (no usable signal on it).
OFF_KINDS = ("saturation", "lead_off")
#: Allowed event thresholds (µV p-p).
THRESHOLD_RANGE_UV = (5.0, 5000.0)
#: Recent event sizes an adaptive threshold is taken from.
ADAPTIVE_SIZES = 20


class EmgEvent(Protocol):
    """What the engine needs of a detected event (see ``detect.events.DetectedEvent``);
    ``offset`` is the last sample (inclusive)."""

    channel: int
    kind: str
    train_type: str | None
    onset: int
    offset: int
    peak_uv: float


class Span(Protocol):
    """What the engine needs of an open artifact span (see ``dsp.artifacts.ArtifactSpan``)."""

    kind: str
    channels: tuple[int, ...]


@dataclass(frozen=True)
class AlarmConfig:
    """Alarm settings (apply to every root; thresholds per channel come from the montage).

    Attributes:
        hold_s: how long an above-threshold event keeps a tile at ``activity`` (s).
        caution_train_time_s: summed A-train time per root that raises a caution (s).
        warning_train_time_s: summed A-train time per root that raises a warning (s).
        latch: alarms stay until acknowledged.
        silence_s: default audio silence after :meth:`AlarmEngine.silence` (s).
        adaptive: raise a root's activity threshold during continuous activity (off by
            default). After ``adaptive_after_s`` of activity with no gap longer than
            ``adaptive_gap_s``, the threshold becomes the median recent event size (never
            below the set threshold, at most ``adaptive_cap_uv``); it reverts to the set value
            after ``adaptive_revert_s`` of quiet. Every change is logged and shown on the tile.
            A-trains alarm whatever the threshold.
    """

    hold_s: float = 5.0
    caution_train_time_s: float = 0.5
    warning_train_time_s: float = 10.0
    latch: bool = True
    silence_s: float = 120.0
    adaptive: bool = False
    adaptive_after_s: float = 10.0
    adaptive_gap_s: float = 1.0
    adaptive_cap_uv: float = 400.0
    adaptive_revert_s: float = 15.0


@dataclass(frozen=True)
class TileState:
    """What one alarm tile shows (key ``"L5-L"``: root and side; see ``MontageChannel.tile_key``).

    ``state`` is one of ``quiet``, ``activity``, ``alarm``, ``blanked``, ``no_signal`` (from
    this engine) or ``not_monitoring``, ``signal_lost`` (technical, laid over by
    :func:`ionm_station.pipeline.technical.overlay`). ``technical`` names a technical condition
    that does not stop monitoring (e.g. ``RECORDING STOPPED``), shown beside the clinical state.
    """

    key: str
    root: str
    side: str
    state: str = "quiet"
    priority: str | None = None
    reason: str = ""
    train_time_s: float = 0.0
    last_peak_uv: float | None = None
    latched: bool = False
    silenced_until_s: float | None = None
    technical: str = ""


@dataclass
class _Root:
    key: str
    root: str
    side: str
    channels: list[int]
    last_activity: int | None = None  # sample index of the last above-threshold event's end
    last_peak_uv: float | None = None
    alarm_priority: str | None = None  # latched/active alarm
    alarm_reason: str = ""
    shown: TileState | None = None
    off_channels: frozenset[int] = frozenset()
    run_start: int | None = None  # first event of the current run of continuous activity
    run_last: int | None = None  # end of its latest event
    run_sizes: list[float] = field(default_factory=list)  # recent event sizes (µV p-p)
    auto_uv: float | None = None  # adaptive threshold in force, if any


def check_threshold(montage: Montage, key: str, threshold_uv: float) -> None:
    """Raise ValueError unless ``key`` is a tile of ``montage`` and the threshold (µV p-p) is
    finite and within :data:`THRESHOLD_RANGE_UV`."""
    if key not in montage.tile_keys():
        raise ValueError(f"no alarm tile {key!r} (tiles: {', '.join(montage.tile_keys())})")
    lo, hi = THRESHOLD_RANGE_UV
    if not lo <= threshold_uv <= hi:  # also refuses NaN
        raise ValueError(f"threshold must be {lo:g}–{hi:g} µV, got {threshold_uv}")


class AlarmEngine:
    """Per root-side alarm state from detected events and artifacts.

    Args:
        montage: channels and their thresholds (µV p-p); one tile per ``root-side``.
        sample_rate_hz: to turn sample indices into seconds.
        config: alarm settings.
        sink: called with every alarm :class:`Event` (the session passes ``EventLog.append``).
        thresholds_uv: event threshold per channel (µV p-p), shared by reference with the
            detector so one change reaches both; default: the montage's.

    Attributes:
        thresholds_uv: the per-channel thresholds in force (µV p-p).
        train_time: the tile train-time ledger.
    """

    def __init__(self, montage: Montage, sample_rate_hz: float, config: AlarmConfig = AlarmConfig(),
                 sink: Callable[[Event], None] | None = None,
                 thresholds_uv: np.ndarray | None = None) -> None:
        self.montage = montage
        self.fs = sample_rate_hz
        self.config = config
        self._sink = sink
        self._lock = threading.Lock()
        self.thresholds_uv = (np.array([c.threshold_uv for c in montage.channels], float)
                              if thresholds_uv is None else thresholds_uv)
        self.train_time = TrainTimeLedger(montage, sample_rate_hz)
        self._roots: dict[str, _Root] = {}
        self._root_of: dict[int, _Root] = {}
        for i, c in enumerate(montage.channels):
            r = self._roots.setdefault(c.tile_key, _Root(c.tile_key, c.root, c.side, []))
            r.channels.append(i)
            self._root_of[i] = r
        self._cautery_open = False
        self._blockade_reason = ""
        self._silenced_until: int | None = None
        self._now = 0
        self._ongoing_spans: dict[str, list[tuple[int, int]]] = {}  # per tile, latest update
        self._emit_changes(0)

    # --- inputs (DSP thread) ---

    def update(self, now: int, events: Sequence[EmgEvent] = (), open_spans: Sequence[Span] = (),
               ongoing: Sequence[EmgEvent] = ()) -> None:
        """Take events that ended, the artifact spans open at ``now`` (cautery blanks every
        tile; lead-off or saturation on all of a tile's channels is ``no_signal``), A-trains
        still going on (alarm at once; the tile's train time includes them while they last, the
        ledger counts them when they end) and the time ``now`` (absolute sample index)."""
        with self._lock:
            self._now = max(self._now, now)
            self._levels(open_spans)
            for e in events:
                self._event(e)
            self._ongoing_spans = {}
            for e in ongoing:
                self._ongoing(e)
            if self.config.adaptive:
                self._revert_adaptive(self._now)
            self._emit_changes(self._now)

    def set_blockade(self, reason: str, now: int) -> None:
        """Neuromuscular blockade (e.g. TOF count < 4): tiles say EMG is unreliable; '' clears."""
        with self._lock:
            self._blockade_reason = reason
            self._emit_changes(max(self._now, now))

    def set_threshold(self, key: str, threshold_uv: float) -> None:
        """Set the event threshold (µV p-p) of every channel of tile ``key``.

        Raises:
            ValueError: an unknown tile or a threshold outside 5–5000 µV.
        """
        check_threshold(self.montage, key, threshold_uv)
        with self._lock:
            for ch in self._roots[key].channels:
                self.thresholds_uv[ch] = threshold_uv
            self._log("alarm_threshold", self._now, {"tile": key, "threshold_uv": threshold_uv})

    # --- user actions (any thread) ---

    def acknowledge(self, key: str | None = None, by: str = "") -> None:
        """Clear latched alarms of one tile (``None``: all); ``by`` (who acknowledged, may be
        '') is logged with each. A new train raises them again."""
        with self._lock:
            for r in self._roots.values():
                if (key is None or r.key == key) and r.alarm_priority:
                    self._log("alarm_ack", self._now, {"tile": r.key, "priority": r.alarm_priority,
                                                       "by": by or None})
                    r.alarm_priority, r.alarm_reason = None, ""
            self._emit_changes(self._now)

    def silence(self, seconds: float | None = None) -> None:
        """Silence alarm audio for ``seconds`` (default ``config.silence_s``); tiles keep showing."""
        s = self.config.silence_s if seconds is None else seconds
        with self._lock:
            self._silenced_until = self._now + int(s * self.fs)
            self._log("alarm_silence", self._now, {"seconds": s})
            self._emit_changes(self._now)

    # --- outputs ---

    def tiles(self) -> list[TileState]:
        """Current state of every tile, in montage order (a snapshot, safe from any thread)."""
        with self._lock:
            return [r.shown for r in self._roots.values() if r.shown is not None]

    def tile(self, key: str) -> TileState:
        with self._lock:
            shown = self._roots[key].shown
            assert shown is not None
            return shown

    @property
    def silenced(self) -> bool:
        """Alarm sound (clinical and technical) is silenced now."""
        return self._silenced_until is not None and self._now < self._silenced_until

    @property
    def audible(self) -> str | None:
        """Highest clinical priority that should sound now (None when quiet or silenced)."""
        with self._lock:
            if self.silenced:
                return None
            levels = [r.alarm_priority for r in self._roots.values() if r.alarm_priority]
            return max(levels, key=PRIORITIES.index) if levels else None

    # --- internals (lock held) ---

    def _levels(self, open_spans: Sequence[Span]) -> None:
        self._cautery_open = any(s.kind == "cautery" for s in open_spans)
        off = {ch for s in open_spans if s.kind in OFF_KINDS for ch in s.channels}
        for r in self._roots.values():
            r.off_channels = frozenset(off.intersection(r.channels))

    def _event(self, e: EmgEvent) -> None:
        r = self._root_of.get(e.channel)
        if r is None:
            return
        if e.kind == "train" and e.train_type == "A":
            self.train_time.add(e.channel, e.onset, e.offset + 1)
            total = self.train_time.tile_s(r.key)
            label = self.montage.channels[e.channel].label
            self._raise(r, self._train_priority(total),
                        f"A-train {label} {e.peak_uv:.0f} µV, train time {total:.1f} s")
        if self.config.adaptive:
            self._adapt(r, e)
        if e.peak_uv >= max(self.thresholds_uv[e.channel], r.auto_uv or 0.0):
            r.last_activity = e.offset
            r.last_peak_uv = float(e.peak_uv)

    def _adapt(self, r: _Root, e: EmgEvent) -> None:
        """Track continuous activity on the root and raise its threshold after long runs."""
        cfg = self.config
        if r.run_last is None or e.onset - r.run_last > cfg.adaptive_gap_s * self.fs:
            r.run_start, r.run_sizes = e.onset, []
        r.run_last = max(e.offset, r.run_last or e.offset)
        r.run_sizes = (r.run_sizes + [float(e.peak_uv)])[-ADAPTIVE_SIZES:]
        if r.run_start is not None and r.run_last - r.run_start >= cfg.adaptive_after_s * self.fs:
            base = max(self.thresholds_uv[c] for c in r.channels)
            level = min(cfg.adaptive_cap_uv, max(base, float(np.median(r.run_sizes))))
            if level != r.auto_uv and level > base:
                r.auto_uv = level
                self._log("alarm_threshold_auto", e.offset, {"tile": r.key, "threshold_uv": round(level, 1),
                                                              "reason": "continuous activity"})

    def _revert_adaptive(self, now: int) -> None:
        for r in self._roots.values():
            if r.auto_uv is not None and r.run_last is not None \
                    and now - r.run_last >= self.config.adaptive_revert_s * self.fs:
                r.auto_uv, r.run_start, r.run_last = None, None, None
                self._log("alarm_threshold_auto", now, {"tile": r.key, "threshold_uv": None,
                                                        "reason": "quiet: set threshold again"})

    def _ongoing(self, e: EmgEvent) -> None:
        r = self._root_of.get(e.channel)
        if r is None:
            return
        label = self.montage.channels[e.channel].label
        self._ongoing_spans.setdefault(r.key, []).append((e.onset, e.offset + 1))
        total = self.train_time.tile_s(r.key, self._ongoing_spans[r.key])
        # no running figures in the reason: the log takes a line per change of reason, and
        # the tile's train time already runs with the train
        self._raise(r, self._train_priority(total), f"A-train ongoing {label}")

    def _train_priority(self, train_time_s: float) -> str:
        if train_time_s >= self.config.warning_train_time_s:
            return "warning"
        if train_time_s >= self.config.caution_train_time_s:
            return "caution"
        return "advisory"

    def _raise(self, r: _Root, priority: str, reason: str) -> None:
        current = PRIORITIES.index(r.alarm_priority) if r.alarm_priority else -1
        if PRIORITIES.index(priority) >= current:
            r.alarm_priority, r.alarm_reason = priority, reason

    def _compute(self, r: _Root, now: int) -> TileState:
        silenced = (self._silenced_until / self.fs
                    if self._silenced_until is not None and now < self._silenced_until else None)
        train_s = self.train_time.tile_s(r.key, self._ongoing_spans.get(r.key, ()))
        base = TileState(r.key, r.root, r.side, train_time_s=round(train_s, 3),
                         last_peak_uv=r.last_peak_uv, silenced_until_s=silenced)
        notes = []
        if r.auto_uv is not None:
            notes.append(f"auto threshold {r.auto_uv:.0f} µV")
        if self._cautery_open:
            notes.append("cautery: detection blanked")
        if self._blockade_reason:
            notes.append(self._blockade_reason)
        all_off = bool(r.channels) and r.off_channels >= set(r.channels)
        if r.alarm_priority:
            return replace(base, state="alarm", priority=r.alarm_priority, latched=self.config.latch,
                           reason="; ".join([r.alarm_reason, *notes]))
        if all_off:
            return replace(base, state="no_signal", reason="; ".join(["lead-off / saturated", *notes]))
        if self._cautery_open:
            return replace(base, state="blanked", reason="; ".join(notes))
        held = r.last_activity is not None and now - r.last_activity <= self.config.hold_s * self.fs
        if held:
            return replace(base, state="activity", priority="advisory",
                           reason="; ".join([f"activity {r.last_peak_uv:.0f} µV", *notes]))
        return replace(base, reason="; ".join(notes))

    def _emit_changes(self, now: int) -> None:
        for r in self._roots.values():
            new = self._compute(r, now)
            old = r.shown
            r.shown = new
            if old is None or (old.state, old.priority, old.reason) != (new.state, new.priority, new.reason):
                if old is not None or new.state != "quiet":
                    self._log("alarm", now, {"tile": r.key, "state": new.state,
                                             "priority": new.priority, "reason": new.reason})

    def _log(self, kind: str, now: int, data: dict) -> None:
        if self._sink is not None:
            self._sink(Event(kind, now, data=data))
