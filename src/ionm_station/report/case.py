"""What a case report says, read from a recording's events (no samples): time not monitored,
alarm episodes, screws with their stimuli, train-of-four results, baselines and quality.

Every index is file-relative (sample 0 = the first recorded sample).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ionm_station.alarms import PRIORITIES
from ionm_station.detect.train_time import union_samples
from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.pipeline.technical import BLINDING, HEADLINES

#: Markers up to this long after an alarm's end (or acknowledgement) belong to it (s).
MARKER_AFTER_S = 60.0
#: A-trains starting up to this long before an alarm was raised are its cause (s).
TRAIN_BEFORE_S = 1.0


@dataclass(frozen=True)
class Interval:
    """Samples ``[start, stop)`` not monitored, why (``cause``) and in the station's words
    (``detail``)."""

    start: int
    stop: int
    cause: str
    detail: str


def not_monitored(events: Sequence[Event], n_samples: int) -> list[Interval]:
    """Every stretch of the case the station could not vouch for: processing skipped signal
    (``not_monitored``), a blinding technical alarm held (NOT MONITORING or SIGNAL LOST, from
    raised to cleared, or to the end) and samples missing (``gap``). A technical alarm without
    a priority (the run ended on purpose) is not counted."""
    out: list[Interval] = []
    raised: dict[str, Event] = {}
    for e in sorted(events, key=lambda e: e.start):
        d = e.data
        if e.kind == "not_monitored" and e.stop is not None:
            out.append(Interval(e.start, e.stop, "processing restarted", str(d.get("reason", ""))))
        elif e.kind == "gap":
            stop = e.stop if e.stop is not None else e.start + int(d.get("samples", 0))
            cause = "recorder overrun" if d.get("cause") == "recorder_overrun" else "signal gap"
            samples = d.get("samples", stop - e.start)
            out.append(Interval(e.start, stop, cause, f"{samples} samples"))
        elif e.kind == "technical_alarm" and d.get("condition") in BLINDING:
            cond = str(d["condition"])
            if d.get("what") == "raised" and d.get("priority") and cond not in raised:
                raised[cond] = e
            elif d.get("what") == "cleared" and cond in raised:
                up = raised.pop(cond)
                out.append(Interval(up.start, e.start, HEADLINES[cond],
                                    str(up.data.get("reason", ""))))
    for cond, up in raised.items():
        out.append(Interval(up.start, n_samples, HEADLINES[cond], str(up.data.get("reason", ""))))
    return sorted((i for i in out if i.stop > i.start), key=lambda i: (i.start, i.cause))


def covered_samples(intervals: Sequence[Interval], n_samples: int) -> int:
    """Samples of ``[0, n_samples)`` inside any of ``intervals`` (counted once)."""
    return union_samples((max(0, i.start), min(n_samples, i.stop)) for i in intervals
                         if min(n_samples, i.stop) > max(0, i.start))


@dataclass
class AlarmEpisode:
    """A tile's alarm from raised to acknowledged (or ended, or the end of the case).

    Attributes:
        tile: root-side key.
        start: index raised.
        end: index acknowledged or ended (the case's end while still up).
        priority: the highest priority it reached; reason: the station's words then.
        peak_uv: largest A-train on the tile around it (µV p-p; None if none was logged).
        train_time_s: the tile's train time at its end (s): the union of its A-trains so far.
        ack_index, ack_by: when and by whom it was acknowledged (None: not acknowledged).
        markers: markers entered after it was raised, up to :data:`MARKER_AFTER_S` after
            its end, and before another alarm was raised (index, text).
    """

    tile: str
    start: int
    end: int
    priority: str
    reason: str
    peak_uv: float | None = None
    train_time_s: float = 0.0
    ack_index: int | None = None
    ack_by: str | None = None
    markers: list[tuple[int, str]] = field(default_factory=list)


def alarm_episodes(events: Sequence[Event], montage: Montage, fs: float,
                   n_samples: int) -> list[AlarmEpisode]:
    """Every alarm of the case, in order raised, with peak, train time, acknowledgement and
    the markers entered while and after it."""
    open_: dict[str, AlarmEpisode] = {}
    done: list[AlarmEpisode] = []
    ordered = sorted(events, key=lambda e: e.start)
    for e in ordered:
        d = e.data
        tile = str(d.get("tile", ""))
        if e.kind == "alarm" and d.get("state") == "alarm":
            pri = d.get("priority") or "advisory"
            ep = open_.get(tile)
            if ep is None:
                open_[tile] = AlarmEpisode(tile, e.start, n_samples, pri, str(d.get("reason", "")))
            elif PRIORITIES.index(pri) > PRIORITIES.index(ep.priority):
                ep.priority, ep.reason = pri, str(d.get("reason", ""))
        elif e.kind == "alarm_ack" and tile in open_:
            ep = open_.pop(tile)
            ep.end, ep.ack_index, ep.ack_by = e.start, e.start, d.get("by")
            done.append(ep)
        elif e.kind == "alarm" and tile in open_ and d.get("state") not in ("not_monitoring",
                                                                           "signal_lost"):
            ep = open_.pop(tile)
            ep.end = e.start
            done.append(ep)
    episodes = sorted([*done, *open_.values()], key=lambda ep: (ep.start, ep.tile))
    trains = [e for e in ordered if e.kind == "emg_event" and e.channels
              and e.data.get("train_type") == "A" and e.data.get("kind") == "train"]
    markers = [(e.start, str(e.data.get("text", ""))) for e in ordered
               if e.kind in ("marker", "annotation")]
    tile_of = [c.tile_key for c in montage.channels]
    before = int(TRAIN_BEFORE_S * fs)
    after = int(MARKER_AFTER_S * fs)
    for ep in episodes:
        mine = [e for e in trains if 0 <= e.channels[0] < len(tile_of)
                and tile_of[e.channels[0]] == ep.tile]
        near = [float(e.data.get("peak_uv", 0.0)) for e in mine
                if e.end >= ep.start - before and e.start <= ep.end]
        ep.peak_uv = max(near) if near else None
        ep.train_time_s = union_samples((e.start, e.end) for e in mine if e.start < ep.end) / fs
    for i, text in markers:  # a marker belongs to the alarm(s) raised last before it
        before_it = [ep for ep in episodes if ep.start <= i <= ep.end + after]
        latest = max((ep.start for ep in before_it), default=None)
        for ep in before_it:
            if ep.start == latest:
                ep.markers.append((i, text))
    return episodes


@dataclass(frozen=True)
class Stimulus:
    """One measured stimulus: index, current (mA, None if unknown), responded, peak per
    channel (µV p-p)."""

    index: int
    current_ma: float | None
    responded: bool
    peak_uv: tuple[float, ...]


@dataclass(frozen=True)
class Screw:
    """A screw test: level, side, threshold (mA; None = no response up to the maximum), band,
    stimuli used, note, time of the result, the muscles recorded and the measured stimuli."""

    level: str
    side: str
    threshold_ma: float | None
    band: str
    stimuli: int
    note: str
    index: int
    muscles: tuple[str, ...]
    measured: tuple[Stimulus, ...]

    @property
    def key(self) -> str:
        return f"{self.level}-{self.side}"


def screws(events: Sequence[Event], montage: Montage) -> list[Screw]:
    """Every screw result with the stimuli of its hunt (the target's ``cmap`` events since the
    previous result of that screw)."""
    ordered = sorted(events, key=lambda e: e.start)
    cmaps = [e for e in ordered if e.kind == "cmap"]
    out: list[Screw] = []
    last: dict[str, int] = {}
    for e in ordered:
        if e.kind != "screw_result":
            continue
        d = e.data
        key = f"{d.get('level')}-{d.get('side')}"
        since = last.get(key, -1)
        measured = tuple(Stimulus(c.start, c.data.get("current_ma"), bool(c.data.get("responded")),
                                  tuple(float(v) for v in c.data.get("peak_uv", [])))
                         for c in cmaps
                         if c.data.get("target") == key and since < c.start <= e.start)
        last[key] = e.start
        muscles = tuple(c.muscle for c in montage.channels if c.tile_key == key)
        out.append(Screw(str(d.get("level")), str(d.get("side")), d.get("threshold_ma"),
                         str(d.get("band", "")), int(d.get("stimuli", 0)), str(d.get("note") or ""),
                         e.start, muscles, measured))
    return out


def one_window(events: Sequence[Event], kind: str, check: str | None = None,
               last: bool = False) -> list[Event]:
    """The events of ``kind`` (and ``check``, for signal quality) logged for one window: the
    first window (or the ``last``), e.g. the baseline or the last periodic check; [] if none."""
    found = [e for e in events if e.kind == kind
             and (check is None or e.data.get("check") == check)]
    if not found:
        return []
    at = (max if last else min)(e.start for e in found)
    return [e for e in found if e.start == at]
