"""Technical alarm conditions (IEC 60601-1-8): when the station cannot vouch for the tiles.

A clinical tile that says QUIET must mean "monitored, and quiet". This module decides, from the
health of the workers and the source, which technical conditions hold, and lays them over the
alarm engine's tiles (:func:`overlay`), so no fault can leave a green tile over an unmonitored
channel:

* ``not_monitoring`` — processing crashed, stalled, failed, is restarting, has fallen behind a
  live source, or the run has ended. Tile state ``not_monitoring``: the clinical state is
  unknown.
* ``signal_lost`` — the source is silent or disconnected, or acquisition is down. Tile state
  ``signal_lost``.
* ``recording_stopped`` — a recording the user started has stopped on a fault. Monitoring goes
  on: the tile keeps its clinical state and names the condition in ``technical``.
* ``low_sample_rate`` — the chain runs degraded (e.g. 250 Hz: no ECG removal); shown like
  ``recording_stopped`` as an advisory.
* ``audio_off`` — the alarm sound worker is down (restarting or given up): the tiles are right
  but no tone can sound; shown like ``recording_stopped``.
* ``remote_off`` — the SDC publisher (``run --publish-sdc``) is down: monitoring is right here,
  but remote supervisors see nothing new; an advisory like ``audio_off``.

Pure functions over plain values; the supervisor evaluates them every poll to log raise/clear
events, and the session evaluates them for every state snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ionm_station.alarms import PRIORITIES, TileState
from ionm_station.pipeline.worker import WorkerHealth

#: A live source with no samples for this long is lost (s).
SILENT_S = 0.5
#: Processing further behind a live source than this is not monitoring (s of signal).
MAX_LAG_S = 1.0

#: Headline per kind (what the tile says).
HEADLINES = {"not_monitoring": "NOT MONITORING", "signal_lost": "SIGNAL LOST",
             "recording_stopped": "RECORDING STOPPED", "audio_off": "AUDIO OFF",
             "remote_off": "REMOTE VIEW OFF", "low_sample_rate": "LOW SAMPLE RATE"}
#: Kinds that replace the clinical state of the tile (its state cannot be known).
BLINDING = ("not_monitoring", "signal_lost")
#: What a fault of each worker means for the tiles (others: the signal is lost).
WORKER_CONDITION = {"processing": "not_monitoring", "recorder": "recording_stopped",
                    "audio": "audio_off", "sdc-publisher": "remote_off"}
#: Priority of each condition while it holds.
PRIORITY = {"not_monitoring": "warning", "signal_lost": "warning", "recording_stopped": "caution",
            "audio_off": "advisory", "remote_off": "advisory", "low_sample_rate": "advisory"}


@dataclass(frozen=True)
class TechnicalAlarm:
    """One technical alarm condition.

    Attributes:
        kind: a key of :data:`HEADLINES`.
        priority: ``warning`` (high), ``caution`` (medium), ``advisory`` (low) or None (shown,
            not sounded: the run ended on purpose).
        reason: plain words: what failed and what the station is doing about it.
    """

    kind: str
    priority: str | None
    reason: str

    @property
    def headline(self) -> str:
        return HEADLINES[self.kind]


@dataclass(frozen=True)
class Vitals:
    """What the technical assessment looks at, gathered by the session at one moment.

    Attributes:
        processing, acquisition: worker health.
        source_workers: health of the source's own threads (e.g. the serial reader).
        source_state: ``streaming``, ``lost``, ``reconnecting``, ``paused``, ``ended`` or
            ``closed``.
        source_fault: the source raised and is being recovered (one line), else None.
        live: the source is a device (silence and lag are faults); False for fast replays.
        silent_s: wall time since the source last delivered samples (s).
        lag_s: signal waiting for processing (s).
        finished: the run ended on purpose (sample limit, end of replay, stopped).
        recorder: health of the recorder worker, or None when not recording.
        recorder_failed: the recording stopped on a fault (message), or None.
        degraded: notes of a chain running degraded (empty: full chain).
        others: health of workers views added (e.g. the window's alarm sound).
    """

    processing: WorkerHealth
    acquisition: WorkerHealth
    source_workers: tuple[WorkerHealth, ...] = ()
    source_state: str = "streaming"
    source_fault: str | None = None
    live: bool = True
    silent_s: float = 0.0
    lag_s: float = 0.0
    finished: bool = False
    recorder: WorkerHealth | None = None
    recorder_failed: str | None = None
    degraded: tuple[str, ...] = ()
    others: tuple[WorkerHealth, ...] = ()


def _down(h: WorkerHealth) -> str:
    what = {"stalled": f"stalled for {h.heartbeat_age_s:.1f} s", "crashed": "crashed, restarting",
            "failed": "failed repeatedly, stopped retrying"}.get(h.state, h.state)
    return f"{h.name} {what}" + (f" ({h.error})" if h.error and h.state != "stalled" else "")


def assess(v: Vitals) -> list[TechnicalAlarm]:
    """The technical conditions that hold for ``v``, most severe first."""
    out: list[TechnicalAlarm] = []
    if v.finished:
        out.append(TechnicalAlarm("not_monitoring", None, "run ended"))
    elif v.processing.down:
        out.append(TechnicalAlarm("not_monitoring", "warning", _down(v.processing)))
    elif v.processing.state != "running":
        out.append(TechnicalAlarm("not_monitoring", "warning", f"processing {v.processing.state}"))
    elif v.live and v.lag_s > MAX_LAG_S:
        out.append(TechnicalAlarm("not_monitoring", "warning",
                                  f"processing {v.lag_s:.1f} s behind the signal"))
    if not v.finished:
        lost = [_down(h) for h in (v.acquisition, *v.source_workers) if h.down]
        if v.source_fault:
            lost.append(f"source fault, reconnecting ({v.source_fault})")
        if v.source_state in ("lost", "reconnecting"):
            lost.append(f"source {v.source_state}")
        elif v.live and v.silent_s > SILENT_S and v.source_state == "streaming":
            lost.append(f"no samples for {v.silent_s:.1f} s")
        if lost:
            out.append(TechnicalAlarm("signal_lost", "warning", "; ".join(lost)))
    if v.recorder_failed or (v.recorder is not None and v.recorder.down):
        why = v.recorder_failed or _down(v.recorder)  # type: ignore[arg-type]
        out.append(TechnicalAlarm("recording_stopped", "caution", why))
    for h in v.others:
        if h.down:
            kind = WORKER_CONDITION.get(h.name, "signal_lost")
            out.append(TechnicalAlarm(kind, PRIORITY[kind], _down(h)))
    if v.degraded:
        out.append(TechnicalAlarm("low_sample_rate", "advisory", "; ".join(v.degraded)))
    return out


def restarted(name: str, error: str | None) -> TechnicalAlarm:
    """The technical alarm of a worker that has just been restarted after ``error``: shown
    (and held) even though the fresh worker is already healthy at the next look."""
    kind = WORKER_CONDITION.get(name, "signal_lost")
    return TechnicalAlarm(kind, PRIORITY[kind], f"{name} restarted after {error}")


def overlay(tiles: list[TileState], alarms: list[TechnicalAlarm]) -> list[TileState]:
    """The tiles as shown: a blinding condition replaces every tile's state (keeping its train
    time and naming a latched clinical alarm in the reason); the others are named in
    ``technical`` beside the clinical state."""
    blind = next((a for a in alarms if a.kind in BLINDING), None)
    notes = " · ".join(f"{a.headline}: {a.reason}" for a in alarms if a.kind not in BLINDING)
    out = []
    for t in tiles:
        if blind is not None:
            reason = blind.reason
            if t.state == "alarm":
                reason += f"; alarm before: {t.reason}"
            t = replace(t, state=blind.kind, priority=blind.priority, reason=reason, latched=False)
        out.append(replace(t, technical=notes) if notes else t)
    return out


def loudest(priorities: list[str | None]) -> str | None:
    """The highest of some priorities (None if none)."""
    levels = [p for p in priorities if p]
    return max(levels, key=PRIORITIES.index) if levels else None
