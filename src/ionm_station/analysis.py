"""Offline analysis of a whole record through the same chain as live data (``ionm-station analyze``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ionm_station.detect.events import DetectedEvent
from ionm_station.detect.train_time import TrainTimeLedger
from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.errors import IonmError
from ionm_station.events import Event
from ionm_station.io.annotations import annotation_text
from ionm_station.montage import Montage, MontageChannel, channel_from_label
from ionm_station.pipeline.chain import ChainSettings, FreeRunChain
from ionm_station.recording.reader import Recording
from ionm_station.sources.replay import open_media

#: Samples are pushed through the chain in blocks of this length (s), as a live source would.
BLOCK_S = 1.0


@dataclass
class Record:
    """A whole record in memory: rate (Hz), labels, samples × channels µV, input range ± µV."""

    sample_rate_hz: float
    labels: list[str]
    data: np.ndarray
    range_uv: float


@dataclass
class AnalysisResult:
    """Everything ``analyze`` reports; sample indices are absolute (0 = first sample)."""

    sample_rate_hz: float
    n_samples: int
    montage: Montage
    events: list[DetectedEvent]
    artifacts: list[ArtifactSpan]
    train_time: TrainTimeLedger
    notes: tuple[str, ...] = ()
    clean: np.ndarray | None = None
    pacing_pulses: int = 0  # pacemaker pulses taken out (see dsp/pacing.py)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate_hz

    def to_json(self) -> dict:
        """The JSON document of ``ionm-station analyze`` (times in s, amplitudes in µV p-p)."""
        fs = self.sample_rate_hz
        labels = self.montage.labels
        return {
            "fs": fs,
            "duration_s": self.duration_s,
            "channels": [{"label": c.label, "root": c.root or None, "side": c.side or None,
                          "muscle": c.muscle or None, "threshold_uv": c.threshold_uv,
                          "tile": c.tile_key}
                         for c in self.montage.channels],
            "chain_notes": list(self.notes),
            "pacing_pulses": self.pacing_pulses,
            "events": [{"channel": labels[e.channel], "kind": e.kind, "train_type": e.train_type,
                        "onset_s": round(e.onset / fs, 5), "offset_s": round(e.stop / fs, 5),
                        "peak_uv": round(float(e.peak_uv), 2),
                        "rate_hz": None if e.rate_hz is None else round(float(e.rate_hz), 2),
                        "above_threshold": bool(e.above_threshold)}
                       for e in sorted(self.events, key=lambda e: (e.onset, e.channel))],
            "artifacts": [{"kind": a.kind, "onset_s": round(a.start / fs, 5),
                           "offset_s": round(a.stop / fs, 5), "channels": [labels[c] for c in a.channels]}
                          for a in sorted(self.artifacts, key=lambda a: a.start)],
            "train_time_by_tile_s": {k: round(v, 4) for k, v in self.train_time.by_tile().items()},
            "train_time_by_channel_s": {k: round(v, 4) for k, v in self.train_time.by_channel().items()},
        }


    def annotations(self, labels: list[str]) -> list[tuple[float, float | None, str]]:
        """The artifact spans and detected events as EDF+ annotations (onset s, duration s,
        text of :func:`~ionm_station.io.annotations.annotation_text` with the EDF signal
        ``labels``), with the data the live pipeline logs for them."""
        fs = self.sample_rate_hz
        events = [Event("artifact", a.start, a.stop, a.channels, {"kind": a.kind})
                  for a in self.artifacts]
        events += [e.to_event() for e in self.events]
        return [(e.start / fs, None if e.stop is None else (e.stop - e.start) / fs,
                 annotation_text(e, labels)) for e in sorted(events, key=lambda e: e.start)]


def analyze_record(record: Record, montage: Montage, settings: ChainSettings = ChainSettings(),
                   keep_clean: bool = False) -> AnalysisResult:
    """Run ``record`` through the free-run chain block by block, as if it arrived live."""
    chain = FreeRunChain(montage, record.sample_rate_hz, record.range_uv, settings)
    chain.report_ongoing = False  # only finished events are reported here
    n = record.data.shape[0]
    block = max(1, int(record.sample_rate_hz * BLOCK_S))
    events: list[DetectedEvent] = []
    spans: list[ArtifactSpan] = []
    cleans: list[np.ndarray] = []
    for start in range(0, n, block):
        out = chain.process(record.data[start:start + block], start)
        events += out.events
        spans += out.artifacts
        if keep_clean:
            cleans.append(out.clean)
    out = chain.flush()
    events += out.events
    spans += out.artifacts
    clean = None
    if keep_clean:
        cleans.append(out.clean)
        clean = np.concatenate(cleans)[chain.delay:chain.delay + n]
    ledger = TrainTimeLedger(montage, record.sample_rate_hz)
    for e in events:
        if e.kind == "train" and e.train_type == "A":
            ledger.add(e.channel, e.onset, e.stop)
    return AnalysisResult(record.sample_rate_hz, n, montage, events, spans, ledger, chain.notes,
                          clean, 0 if chain.pacing is None else chain.pacing.pulses)


def montage_from_labels(labels: list[str]) -> Montage:
    """A montage read from EDF-style labels (``L4-L TibAnt``); unknown labels keep no root."""
    return Montage("from labels", tuple(channel_from_label(lab) for lab in labels))


def match_montage(montage: Montage, labels: list[str], path: str) -> Montage:
    """The montage channels in the file's order, matched by label; every label must be known."""
    by_label = {c.label: c for c in montage.channels}
    missing = [lab for lab in labels if lab not in by_label]
    if not missing:
        return Montage(montage.name, tuple(by_label[lab] for lab in labels), montage.description)
    if len(montage.channels) == len(labels):  # same count, other labels: take them in order
        chans = tuple(MontageChannel(lab, c.muscle, c.root, c.side, c.threshold_uv)
                      for lab, c in zip(labels, montage.channels))
        return Montage(montage.name, chans, montage.description)
    raise IonmError(f"{path}: montage {montage.name!r} has no channel labelled {missing[0]!r} "
                    f"and a different channel count ({len(montage.channels)} vs {len(labels)})")


def load_record(path: str | Path) -> tuple[Record, Montage | None]:
    """Read an IONM Station recording (.h5) or an EDF/EDF+/BDF file into memory; a recording
    also gives the montage that was in force (EDF files give None)."""
    media = open_media(path)
    try:
        info = media.info
        record = Record(info.sample_rate_hz, list(info.labels), media.read(0, media.n_samples),
                        info.range_uv)
    finally:
        if isinstance(media, Recording):
            media.close()
    return record, getattr(media, "montage", None)
