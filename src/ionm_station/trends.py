"""Trends over a case from its events — pure numpy, shared by the Trends dock and the report.

* per tile (root-side) and minute: **train time** (s of A-train in that minute: the union of
  the tile's channels' A-train spans, :mod:`ionm_station.detect.train_time`'s definition, cut
  at the minute edges) and **event rate** (above-threshold EMG events starting in it);
* **TOF**: count and T4/T1 of each train-of-four;
* **screws**: threshold by level and side;
* **signal quality** per channel over time: noise RMS, mains and ECG level of each check.

Indices are the events' (session clock live, file clock for a recording).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ionm_station.events import Event
from ionm_station.montage import Montage

#: Width of a trend bin (s).
BIN_S = 60.0


@dataclass(frozen=True)
class TileTrends:
    """Per tile and minute.

    Attributes:
        keys: tile keys (rows), montage order.
        start_s: start of each bin (s, columns).
        train_time_s: A-train time per tile and bin (s).
        event_rate: above-threshold EMG events per tile and bin (per minute).
    """

    keys: tuple[str, ...]
    start_s: np.ndarray
    train_time_s: np.ndarray
    event_rate: np.ndarray


@dataclass(frozen=True)
class QualityTrend:
    """Each signal-quality check (columns) per channel (rows); NaN where not measured.

    Attributes:
        t_s: time of each check (s, the start of its window).
        noise_rms_uv, mains_uv, ecg_uv: (channels, checks) arrays (µV RMS, µV RMS, µV p-p).
        failing: (channels, checks) bool, the channel failed that check.
    """

    t_s: np.ndarray
    noise_rms_uv: np.ndarray
    mains_uv: np.ndarray
    ecg_uv: np.ndarray
    failing: np.ndarray


@dataclass(frozen=True)
class TofPoint:
    """One train-of-four: time (s), site (root-side), count 0–4, T4/T1 (None without T4)."""

    t_s: float
    site: str
    count: int
    ratio: float | None


@dataclass(frozen=True)
class ScrewPoint:
    """One screw: level, side, threshold (mA; None = no response up to the maximum), band,
    time of the result (s)."""

    level: str
    side: str
    threshold_ma: float | None
    band: str
    t_s: float


def _merged(spans: np.ndarray) -> np.ndarray:
    """Union of ``[start, stop)`` rows of ``spans`` (k, 2) as disjoint sorted rows."""
    if len(spans) == 0:
        return spans.reshape(0, 2)
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    reach = np.maximum.accumulate(spans[:, 1])
    new = np.ones(len(spans), bool)
    new[1:] = spans[1:, 0] > reach[:-1]
    starts = spans[new, 0]
    ends = reach[np.r_[np.flatnonzero(new)[1:] - 1, len(spans) - 1]]
    return np.column_stack([starts, ends])


def tile_trends(events: Sequence[Event], montage: Montage, fs: float, n_samples: int,
                bin_s: float = BIN_S) -> TileTrends:
    """Train time and event rate per tile and ``bin_s`` bin over ``n_samples`` at ``fs`` Hz."""
    keys = tuple(montage.tile_keys())
    row = {k: i for i, k in enumerate(keys)}
    tile_of = np.array([row[c.tile_key] for c in montage.channels])
    width = bin_s * fs
    n_bins = max(1, int(np.ceil(n_samples / width)))
    edges = np.arange(n_bins + 1) * width
    emg = [e for e in events if e.kind == "emg_event" and e.channels]
    train = np.zeros((len(keys), n_bins))
    rate = np.zeros((len(keys), n_bins))
    if emg:
        starts = np.array([e.start for e in emg], float)
        stops = np.array([e.end for e in emg], float)
        tiles = tile_of[[e.channels[0] for e in emg]]
        above = np.array([bool(e.data.get("above_threshold")) for e in emg])
        a_train = np.array([e.data.get("kind") == "train" and e.data.get("train_type") == "A"
                            for e in emg])
        bins = np.clip((starts // width).astype(int), 0, n_bins - 1)
        np.add.at(rate, (tiles[above], bins[above]), 1.0)
        for t in np.unique(tiles[a_train]):
            spans = _merged(np.column_stack([starts, stops])[a_train & (tiles == t)])
            overlap = (np.minimum(spans[:, 1:2], edges[None, 1:])
                       - np.maximum(spans[:, :1], edges[None, :-1]))
            train[t] = np.clip(overlap, 0, None).sum(axis=0) / fs
    return TileTrends(keys, edges[:-1] / fs, train, rate * (60.0 / bin_s))


def quality_trend(events: Sequence[Event], n_channels: int, fs: float) -> QualityTrend:
    """Every ``signal_quality`` check of ``events`` as arrays (one column per check window)."""
    found = [e for e in events if e.kind == "signal_quality" and e.channels]
    times = sorted({e.start for e in found})
    col = {t: i for i, t in enumerate(times)}
    shape = (n_channels, len(times))
    noise, mains, ecg = (np.full(shape, np.nan) for _ in range(3))
    failing = np.zeros(shape, bool)
    for e in found:
        ch, j = e.channels[0], col[e.start]
        if not 0 <= ch < n_channels:
            continue
        d = e.data
        for arr, key in ((noise, "noise_rms_uv"), (mains, "mains_uv"), (ecg, "ecg_uv")):
            if d.get(key) is not None:
                arr[ch, j] = float(d[key])
        failing[ch, j] = not d.get("ok", True)
    return QualityTrend(np.array(times, float) / fs, noise, mains, ecg, failing)


def tof_points(events: Sequence[Event], fs: float) -> list[TofPoint]:
    """Every train-of-four of ``events``, in time order."""
    return [TofPoint(e.start / fs, str(e.data.get("site", "")), int(e.data.get("count", 0)),
                     e.data.get("ratio"))
            for e in sorted(events, key=lambda e: e.start) if e.kind == "tof"]


def screw_points(events: Sequence[Event], fs: float) -> list[ScrewPoint]:
    """Every screw result of ``events``, in time order."""
    return [ScrewPoint(str(e.data.get("level", "")), str(e.data.get("side", "")),
                       e.data.get("threshold_ma"), str(e.data.get("band", "")), e.start / fs)
            for e in sorted(events, key=lambda e: e.start) if e.kind == "screw_result"]


#: Spinal levels in cranio-caudal order (screws are plotted by level in this order).
LEVELS = tuple([f"C{i}" for i in range(1, 9)] + [f"T{i}" for i in range(1, 13)]
               + [f"L{i}" for i in range(1, 6)] + [f"S{i}" for i in range(1, 6)])


def level_order(level: str) -> int:
    """Cranio-caudal rank of a level (``C1`` … ``S5``); unknown levels after them."""
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)
