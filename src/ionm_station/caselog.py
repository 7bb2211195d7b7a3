"""The case's event log: what happened, in words, in time order — read from the event log.

One list for every reader: the window's Events dock, ``ionm-station events`` and the case
report. :func:`case_log` turns the station's events (live or recorded) into
:class:`LogEntry` lines of one of :data:`KINDS`:

* ``alarm`` — a tile's alarm raised, escalated or ended, acknowledged (by whom), sound
  silenced; the tile's other changes (activity, cautery, no signal) are not listed, their
  causes are;
* ``technical`` — a technical alarm raised or cleared (NOT MONITORING, SIGNAL LOST, …);
* ``fault`` — a worker fault, restart or give-up, a source error or recovery, a recording
  problem, a command the processing thread refused;
* ``not_monitored`` — signal skipped while processing restarted; ``gap`` — missing samples;
* ``marker`` — a marker (e.g. "Surgeon informed: …") or a foreign EDF+ annotation;
* ``cautery`` — an electrocautery span (detection blanked); ``lead_off`` — a lead off;
* ``settings`` — band, mains, threshold (set or adapted) changes;
* ``screw`` — a screw's threshold; ``tof`` — a train-of-four;
* ``baseline`` — a tile's baseline; ``quality`` — a channel failing the signal-quality check
  (or passing again): only changes are listed, the periodic values are trends;
* ``pacing`` — pacemaker pulses found and taken out before detection, or no longer.

Indices are those of the events (session clock live, file clock for a recording); ``tiles``
names the root-sides concerned, empty for the whole station.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ionm_station.alarms import PRIORITIES
from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.pipeline.technical import HEADLINES

#: Entry kinds, in the order filters list them.
KINDS = ("alarm", "technical", "fault", "not_monitored", "gap", "marker", "cautery", "lead_off",
         "settings", "screw", "tof", "baseline", "quality", "pacing")
#: Event kinds that are faults, and how they read.
FAULT_KINDS = {"worker_fault": "worker fault", "worker_restarted": "worker restarted",
               "worker_failed": "worker given up", "source_error": "source error",
               "source_recovered": "source recovered", "recording_error": "recording error",
               "recording_disk_low": "disk low", "command_rejected": "command refused"}


@dataclass(frozen=True)
class LogEntry:
    """One line of the case log.

    Attributes:
        index: sample index where it happened (the events' clock).
        stop: one past its end for a span (cautery, lead-off, gap), else None.
        kind: one of :data:`KINDS`.
        tiles: root-side tile keys concerned (empty: the whole station).
        text: what happened, in words.
        event: the event it was read from.
    """

    index: int
    stop: int | None
    kind: str
    tiles: tuple[str, ...]
    text: str
    event: Event

    def to_json(self, fs: float) -> dict[str, Any]:
        """JSON-ready, with times in seconds (``fs`` Hz)."""
        return {"t_s": round(self.index / fs, 4),
                "duration_s": (None if self.stop is None
                               else round((self.stop - self.index) / fs, 4)),
                "kind": self.kind, "tiles": list(self.tiles), "text": self.text,
                "event": {"kind": self.event.kind, "start": self.event.start,
                          "stop": self.event.stop, "channels": list(self.event.channels),
                          "data": self.event.data}}


def clock(seconds: float) -> str:
    """Case time as ``h:mm:ss.s`` (``0:00:40.2``)."""
    tenths = round(max(0.0, seconds) * 10)
    s, t = divmod(tenths, 10)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}.{t}"


def _number(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


class CaseLog:
    """Turns events into entries as they come (the live window feeds it the event log's new
    events), keeping what a line depends on: each tile's alarm, each channel's last quality.

    Args:
        montage: channel → tile map (root-side) and labels.
        fs: sample rate (Hz).
    """

    def __init__(self, montage: Montage, fs: float) -> None:
        self.montage = montage
        self.fs = fs
        self.alarm: dict[str, str | None] = {}  # tile → priority of its alarm now (None: none)
        self.quality: dict[int, str] = {}  # channel → cause at its last check ('' = ok)
        self._lead_offs: set[tuple[int, tuple[int, ...]]] = set()  # listed (start, channels)

    def feed(self, events: Iterable[Event]) -> list[LogEntry]:
        """The entries of ``events``, taken in the order given (a lead-off listed open is not
        listed again when its closed record follows)."""
        out = []
        for e in events:
            if e.kind == "lead_off":
                if (e.start, e.channels) in self._lead_offs:
                    continue
                self._lead_offs.add((e.start, e.channels))
            got = self.read(e)
            if got is not None:
                kind, tiles, text = got
                stop = e.stop if e.stop is not None and e.stop > e.start else None
                out.append(LogEntry(e.start, stop, kind, tuple(t for t in tiles if t), text, e))
        return out

    def tiles(self, channels: Iterable[int]) -> tuple[str, ...]:
        keys = [self.montage.channels[c].tile_key for c in channels
                if 0 <= c < len(self.montage.channels)]
        return tuple(dict.fromkeys(keys))

    def labels(self, channels: Sequence[int]) -> str:
        n = len(self.montage.channels)
        if n > 1 and len(set(channels)) == n:
            return "all channels"
        return ", ".join(self.montage.channels[c].label if 0 <= c < n else str(c) for c in channels)

    def read(self, e: Event) -> tuple[str, tuple[str, ...], str] | None:
        """(kind, tiles, text) of ``e``, or None when it is not a log line."""
        d = e.data
        k = e.kind
        if k == "alarm":
            return self._alarm(d)
        if k == "alarm_ack":
            self.alarm[d.get("tile", "")] = None
            by = f" by {d['by']}" if d.get("by") else ""
            return "alarm", (d.get("tile", ""),), f"acknowledged ({d.get('priority')}){by}"
        if k == "alarm_silence":
            return "alarm", (), f"alarm sound silenced for {_number(d.get('seconds'), 0)} s"
        if k == "technical_alarm":
            head = HEADLINES.get(d.get("condition", ""), str(d.get("condition", "")).upper())
            if d.get("what") == "cleared":
                lasted = f" after {_number(d.get('lasted_s'))} s" if d.get("lasted_s") else ""
                return "technical", (), f"{head} cleared{lasted}"
            pri = f" ({d['priority']})" if d.get("priority") else ""
            return "technical", (), f"{head} raised{pri}: {d.get('reason', '')}"
        if k in FAULT_KINDS:
            detail = d.get("error") or d.get("message") or d.get("reason") or ""
            who = d.get("worker") or d.get("command") or ""
            return "fault", (), f"{FAULT_KINDS[k]}" + (f" {who}" if who else "") + (
                f": {detail}" if detail else "")
        if k == "not_monitored":
            return "not_monitored", (), f"not monitored: {d.get('reason', '')}"
        if k == "gap":
            cause = " (recorder overrun)" if d.get("cause") == "recorder_overrun" else ""
            return "gap", (), f"{d.get('samples', e.end - e.start)} samples missing{cause}"
        if k in ("marker", "annotation"):
            return "marker", (), str(d.get("text", ""))
        if k == "artifact" and d.get("kind") == "cautery":
            return "cautery", (), "electrocautery: detection blanked"
        if k == "lead_off":
            return "lead_off", self.tiles(e.channels), f"lead off: {self.labels(e.channels)}"
        if k in ("settings", "alarm_threshold", "alarm_threshold_auto"):
            return self._settings(k, d)
        if k == "screw_result":
            key = f"{d.get('level')}-{d.get('side')}"
            mA = "no response up to the maximum" if d.get("threshold_ma") is None \
                else f"{d['threshold_ma']:.2f} mA"
            note = f"; {d['note']}" if d.get("note") else ""
            return "screw", (key,), (f"screw {key}: {mA}, {d.get('band')} "
                                     f"({d.get('stimuli')} stimuli){note}")
        if k == "tof":
            ratio = "" if d.get("ratio") is None else f", T4/T1 {d['ratio']:.2f}"
            block = f"; {d['blockade']}" if d.get("blockade") else ""
            return "tof", (str(d.get("site", "")),), f"TOF {d.get('count')}/4{ratio}{block}"
        if k == "baseline":
            return "baseline", (str(d.get("tile", "")),), baseline_text(d)
        if k == "pacing":
            return "pacing", (), pacing_text(d)
        if k == "signal_quality":
            return self._quality(e)
        return None

    def _alarm(self, d: dict[str, Any]) -> tuple[str, tuple[str, ...], str] | None:
        tile = str(d.get("tile", ""))
        before = self.alarm.get(tile)
        if d.get("state") == "alarm":
            now = d.get("priority") or "advisory"
            self.alarm[tile] = now
            if before is None:
                return "alarm", (tile,), f"alarm raised ({now}): {d.get('reason', '')}"
            if PRIORITIES.index(now) > PRIORITIES.index(before):
                return "alarm", (tile,), f"alarm escalated to {now}: {d.get('reason', '')}"
            return None
        if before is not None and d.get("state") not in ("not_monitoring", "signal_lost"):
            self.alarm[tile] = None
            return "alarm", (tile,), f"alarm ended (tile {d.get('state')})"
        return None

    def _settings(self, k: str, d: dict[str, Any]) -> tuple[str, tuple[str, ...], str]:
        if k == "alarm_threshold":
            uv = _number(d.get("threshold_uv"), 0)
            return "settings", (d.get("tile", ""),), f"event threshold {uv} µV"
        if k == "alarm_threshold_auto":
            level = "set value again" if d.get("threshold_uv") is None \
                else f"{_number(d['threshold_uv'], 0)} µV"
            why = d.get("reason", "")
            return "settings", (d.get("tile", ""),), f"automatic threshold {level} ({why})"
        parts = []
        if "band_hz" in d:
            lo, hi = d["band_hz"]
            parts.append(f"band {lo:g}–{hi:g} Hz")
        if "mains_hz" in d:
            hz = d["mains_hz"]
            parts.append("mains detected" if hz is None else f"mains {hz:g} Hz")
        parts += [f"{key} {value}" for key, value in d.items()
                  if key not in ("band_hz", "mains_hz")]
        return "settings", (), "settings: " + ", ".join(parts)

    def _quality(self, e: Event) -> tuple[str, tuple[str, ...], str] | None:
        d = e.data
        cause = d.get("cause") or ""
        channel = e.channels[0] if e.channels else -1
        before = self.quality.get(channel, "")
        self.quality[channel] = cause
        if cause == before:
            return None
        label = self.labels(e.channels)
        values = ", ".join(f"{name} {_number(d[key], digits)} {unit}" for name, key, digits, unit
                           in (("noise", "noise_rms_uv", 1, "µV RMS"),
                               ("mains", "mains_uv", 1, "µV RMS"), ("ECG", "ecg_uv", 0, "µV p-p"))
                           if d.get(key) is not None)
        if not cause:
            return "quality", self.tiles(e.channels), f"{label}: signal quality ok again ({values})"
        return "quality", self.tiles(e.channels), f"{label}: {cause} ({values})"


def baseline_text(d: dict[str, Any]) -> str:
    """A baseline entry: pass or failing channels, quiet or not, the CMAP if stimulated."""
    noise = [v for v in d.get("noise_rms_uv", []) if v is not None]
    parts = ["ok" if d.get("ok") else "FAILS " + ", ".join(
        f"{label}: {cause}" for label, cause in d.get("failing", {}).items())]
    if noise:
        parts.append(f"noise {min(noise):.1f}–{max(noise):.1f} µV RMS")
    parts.append("quiet" if d.get("quiet") else "activity during the baseline")
    cmap = d.get("cmap")
    if cmap:
        parts.append(f"CMAP {max(cmap['peak_uv']):.0f} µV at {_number(cmap.get('current_ma'))} mA")
    return "baseline: " + "; ".join(parts)


def pacing_text(d: dict[str, Any]) -> str:
    """A ``pacing`` entry: pacemaker pulses found and taken out, or no longer seen."""
    pulses = d.get("pulses", 0)
    if d.get("state") == "detected":
        return f"pacemaker pulses detected: taken out before detection ({pulses} so far)"
    return (f"pacemaker pulses no longer taken out ({pulses} so far): any that come reach "
            "the detector until learnt again")


def case_log(events: Sequence[Event], montage: Montage, fs: float) -> list[LogEntry]:
    """The log entries of a whole case's ``events`` (any order; read in time order, stable)
    for ``montage`` at ``fs`` Hz. A lead-off whose closed record exists is listed closed."""
    closed = {(e.start, e.channels) for e in events if e.kind == "lead_off" and e.stop is not None}
    return CaseLog(montage, fs).feed(
        e for e in sorted(events, key=lambda e: e.start)
        if not (e.kind == "lead_off" and e.stop is None and (e.start, e.channels) in closed))


def matches_root(entry: LogEntry, root: str) -> bool:
    """The entry concerns ``root`` (``L5`` or ``L5-L``), or the whole station."""
    if not entry.tiles:
        return True
    return any(t == root or t.startswith(f"{root}-") for t in entry.tiles)


def select(entries: Iterable[LogEntry], kinds: Collection[str] | None = None,
           root: str | None = None) -> list[LogEntry]:
    """The entries of ``kinds`` (None: all) concerning ``root`` (None: any; entries for the
    whole station always concern it)."""
    return [e for e in entries if (kinds is None or e.kind in kinds)
            and (root is None or matches_root(e, root))]
