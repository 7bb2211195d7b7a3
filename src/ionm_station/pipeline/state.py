"""The station's one state snapshot, read by every view.

The processing thread publishes a :class:`ProcessingSnapshot` after each block (one reference
assignment: readers never see half of one). :meth:`ionm_station.session.Session.state` adds the
counters, the workers' health and the technical alarms laid over the tiles, and returns a
:class:`StationState` — the only thing the window, the headless status line, ``run --json``, the
recorder's summary and any remote view read. They all show the same tiles, train time and
thresholds because there is no second place to read them from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ionm_station.alarms import TileState
from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.pipeline.technical import TechnicalAlarm
from ionm_station.pipeline.worker import WorkerHealth


@dataclass(frozen=True)
class ProcessingSnapshot:
    """What the processing thread knows after a block.

    Attributes:
        index: absolute sample index processed up to (raw samples taken in).
        tiles: the alarm engine's tiles (clinical state only).
        audible: highest clinical priority that should sound (None: quiet or silenced).
        silenced: alarm sound is silenced now.
        train_time_by_tile, train_time_by_channel: train time (s) per tile key / channel label.
        thresholds_uv: event threshold per channel (µV p-p), as the detector and alarms use it.
        settings: the chain settings in force (band as the chain runs it, mains, ECG removal).
        notes: how the chain runs if degraded (empty: full chain).
        open_spans: artifact spans open now (cautery, saturation, lead-off), for views to tint.
        pacing: the pacemaker-pulse stage's state as last logged (``pacing`` events):
            ``detected`` (pulses are taken out of the signal now, their samples filled as lost
            before detection; :mod:`ionm_station.dsp.pacing`), ``lapsed`` (no longer), or ''
            (never established in the case).
        pacing_pulses: pacemaker pulses taken out so far in the case (while a pattern is
            learnt too).
    """

    index: int
    tiles: tuple[TileState, ...]
    audible: str | None
    silenced: bool
    train_time_by_tile: dict[str, float]
    train_time_by_channel: dict[str, float]
    thresholds_uv: tuple[float, ...]
    settings: ChainSettings
    notes: tuple[str, ...] = ()
    open_spans: tuple[ArtifactSpan, ...] = ()
    pacing: str = ""
    pacing_pulses: int = 0


@dataclass
class SessionStatus:
    """Counters for status lines (all sample counts are per channel).

    Attributes:
        source: source name; source_state: ``streaming``, ``lost``, ``reconnecting``, ``ended``
        or ``closed``; rate_hz: sample rate (Hz); elapsed_s: signal time acquired (s).
        samples: samples in the ring (gap fill included); gaps / gap_samples: holes in the
        source clock; dropped, crc_errors, resyncs, reconnects: source counters;
        overruns: samples lost by consumers that fell behind; processed: samples pushed through
        the free-run chain (skipped while processing restarted: not counted);
        recording: the recorder's status, if recording; error: the last worker fault, if any.
    """

    source: str
    source_state: str
    rate_hz: float
    channels: int
    samples: int
    elapsed_s: float
    gaps: int
    gap_samples: int
    dropped: int
    crc_errors: int
    resyncs: int
    reconnects: int
    overruns: int
    processed: int = 0
    consumer_overruns: dict[str, int] = field(default_factory=dict)
    recording: dict | None = None
    error: str | None = None

    def line(self) -> str:
        """One-line status for the terminal."""
        state = "" if self.source_state == "streaming" else f" [{self.source_state.upper()}]"
        text = (f"{self.source}{state} {self.channels} ch @ {self.rate_hz:g} Hz | t {self.elapsed_s:7.2f} s"
                f" | samples {self.samples} | gaps {self.gaps} ({self.gap_samples} samples)"
                f" | dropped {self.dropped} | overruns {self.overruns}")
        if self.crc_errors or self.resyncs or self.reconnects:
            text += f" | crc {self.crc_errors} resync {self.resyncs} reconnect {self.reconnects}"
        if self.recording is not None:
            r = self.recording
            text += f" | REC {r['state']} {r['file_size_bytes'] / 1e6:.1f} MB"
            if r.get("message"):
                text += f" ({r['message']})"
        if self.error:
            text += f" | ERROR {self.error}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StationState:
    """Everything a view shows, at one moment.

    Attributes:
        tiles: the alarm tiles as shown (technical alarms laid over the clinical state).
        technical: technical alarm conditions that hold, most severe first.
        audible: highest priority that should sound now, clinical or technical (None: quiet
            or silenced).
        monitoring: free-run monitoring is running (no blinding technical alarm).
        processing: the processing thread's last snapshot (train time, thresholds, settings).
        workers: health of every supervised worker.
        status: counters.
    """

    tiles: tuple[TileState, ...]
    technical: tuple[TechnicalAlarm, ...]
    audible: str | None
    monitoring: bool
    processing: ProcessingSnapshot
    workers: tuple[WorkerHealth, ...]
    status: SessionStatus

    def tile(self, key: str) -> TileState:
        """The tile of ``key`` (KeyError if the montage has none)."""
        for t in self.tiles:
            if t.key == key:
                return t
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``run --json``, remote views)."""
        p = self.processing
        return {
            "monitoring": self.monitoring,
            "audible": self.audible,
            "tiles": [asdict(t) for t in self.tiles],
            "technical": [asdict(a) | {"headline": a.headline} for a in self.technical],
            "train_time_by_tile_s": {k: round(v, 4) for k, v in p.train_time_by_tile.items()},
            "train_time_by_channel_s": {k: round(v, 4) for k, v in p.train_time_by_channel.items()},
            "thresholds_uv": list(p.thresholds_uv),
            "settings": asdict(p.settings),
            "chain_notes": list(p.notes),
            "open_spans": [asdict(a) for a in p.open_spans],
            "pacing": {"state": p.pacing or None, "pulses_taken_out": p.pacing_pulses},
            "processed_index": p.index,
            "workers": [asdict(w) for w in self.workers],
            "status": self.status.to_dict(),
        }
