"""Score detected free-run EMG events against the simulator's ground truth.

Matching rule: a truth event is found when a detected event on its first (gain-1) channel
overlaps [onset − :data:`MATCH_MARGIN_S`, offset + :data:`MATCH_MARGIN_S`]. A detected event is
false when it overlaps no truth event window on any of that event's channels and no stimulus
window (stimulus index to + :data:`STIMULUS_WINDOW_S`: evoked CMAPs are not free-run activity).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ionm_station.detect.events import DetectedEvent
from ionm_station.sim.amplifier import GroundTruth, TruthEvent

#: Slack (s) around a truth event within which a detection counts as a match.
MATCH_MARGIN_S = 0.020
#: Window (s) after each stimulus where detections are evoked responses, not false events.
STIMULUS_WINDOW_S = 0.060
#: Size bins (µV peak-to-peak) for sensitivity.
SIZE_BINS_UV = ((30.0, 80.0), (80.0, 200.0), (200.0, 1000.0))


def _overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 <= b1 and b0 <= a1


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}uV"


def score(detected: list[DetectedEvent], truth: GroundTruth, fs: float, n_channels: int,
          duration_s: float) -> dict[str, Any]:
    """Compare ``detected`` with ``truth`` over a record of ``duration_s`` (s) at ``fs`` (Hz).

    Returns a dict: ``n_truth``, ``n_detected``; ``sensitivity`` (overall, ``ge80uV``, per size
    bin and per kind); ``false_events`` and ``false_per_hour`` (all channels summed);
    ``in_cautery`` (detections overlapping a cautery span incl. its tail); ``onset_error_ms``
    (median |error| per truth kind); ``a_train_time`` (truth and detected seconds, relative
    error); ``train_type_accuracy`` (found trains labelled ``train`` with the right type);
    ``kind_confusion`` (truth kind → detected kind counts) and ``missed`` (the missed truth
    events as (kind, channel, onset, peak_uv))."""
    margin = round(MATCH_MARGIN_S * fs)
    stim_window = round(STIMULUS_WINDOW_S * fs)
    by_channel: dict[int, list[DetectedEvent]] = {}
    for d in detected:
        by_channel.setdefault(d.channel, []).append(d)
    used: set[int] = set()
    found: list[tuple[TruthEvent, DetectedEvent | None]] = []
    for t in truth.events:
        lo, hi = t.onset - margin, t.offset + margin
        best, best_overlap = None, -1
        for d in by_channel.get(t.channels[0], []):
            if _overlaps(d.onset, d.offset, lo, hi):
                overlap = min(d.offset, t.offset) - max(d.onset, t.onset)
                if overlap > best_overlap:
                    best, best_overlap = d, overlap
        for c in t.channels:
            for d in by_channel.get(c, []):
                if _overlaps(d.onset, d.offset, lo, hi):
                    used.add(id(d))
        found.append((t, best))
    stimuli = [s.index for s in truth.stimuli]
    cautery = [(a.onset, a.offset) for a in truth.artifacts if a.kind == "cautery"]
    false = [d for d in detected if id(d) not in used
             and not any(_overlaps(d.onset, d.offset, s, s + stim_window) for s in stimuli)]
    in_cautery = [d for d in detected
                  if any(_overlaps(d.onset, d.offset, a, b) for a, b in cautery)]

    def sens(items: list[tuple[TruthEvent, DetectedEvent | None]]) -> float | None:
        return None if not items else sum(d is not None for _, d in items) / len(items)

    sensitivity: dict[str, Any] = {"all": sens(found),
                                   "ge80uV": sens([f for f in found if f[0].peak_uv >= 80.0])}
    for lo, hi in SIZE_BINS_UV:
        sensitivity[_bin_label(lo, hi)] = sens([f for f in found if lo <= f[0].peak_uv < hi])
    kinds = sorted({t.kind for t in truth.events})
    for k in kinds:
        sensitivity[k] = sens([f for f in found if f[0].kind == k])
    onset_ms = {k: _median([abs(d.onset - t.onset) / fs * 1000.0 for t, d in found
                            if d is not None and t.kind == k]) for k in kinds}
    confusion: dict[str, dict[str, int]] = {}
    for t, d in found:
        label = "missed" if d is None else d.kind + (d.train_type or "")
        confusion.setdefault(t.kind, {}).setdefault(label, 0)
        confusion[t.kind][label] += 1
    trains = [(t, d) for t, d in found if t.train_type is not None and d is not None]
    type_ok = [d is not None and d.kind == "train" and d.train_type == t.train_type
               for t, d in trains]
    truth_a = sum((t.offset - t.onset + 1) for t in truth.events if t.train_type == "A") / fs
    det_a = sum((d.offset - d.onset + 1) for d in detected if d.train_type == "A") / fs
    return {
        "n_truth": len(truth.events),
        "n_detected": len(detected),
        "sensitivity": sensitivity,
        "false_events": len(false),
        "false_per_hour": len(false) / duration_s * 3600.0,
        "in_cautery": len(in_cautery),
        "onset_error_ms": onset_ms,
        "a_train_time": {"truth_s": truth_a, "detected_s": det_a,
                         "relative_error": (det_a - truth_a) / truth_a if truth_a else None},
        "train_type_accuracy": sum(type_ok) / len(type_ok) if type_ok else None,
        "kind_confusion": confusion,
        "missed": [(t.kind, t.channels[0], t.onset, round(t.peak_uv, 1))
                   for t, d in found if d is None],
        "false": [(d.kind, d.channel, d.onset, round(d.peak_uv, 1)) for d in false],
        "n_channels": n_channels,
    }


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None
