"""The measures of one motor unit action potential (MUAP) template: pure numpy.

One definition for everything that measures a MUAP — the analysis of a recording
(:mod:`.muap`) and the ground truth of the simulated needle EMG (:mod:`.needle_sim`) — so that
the benchmark scores the recording, the clustering and the averaging, not two definitions.

* **Amplitude** (µV): peak to peak between onset and offset. Every measure is taken on the
  template interpolated (band-limited) to ≥ 40 kHz, so a 4 kHz record's spikes are not cut.
* **Duration** (ms): from onset to offset, where the template first and last stands more than
  ``level`` (10 µV, or 4× the template's baseline noise when that is larger) away from its
  baseline. Dips under the level shorter than 2 ms (a zero crossing between phases) do not end
  the potential; a part separated from the main potential by more than 2 ms (a late
  component) is left out.
* **Area** (µV·ms): rectified area between onset and offset; **thickness** = area / amplitude.
* **Phases**: baseline crossings + 1 between onset and offset (samples within half the level of
  the baseline are not counted as a side); a MUAP with more than 4 phases is **polyphasic**.
* **Turns**: changes of direction of at least 25 µV on both sides.
* **Rise time** (ms): from the positive peak that precedes the main negative peak to that
  negative peak (the main spike's rise), measured on the template interpolated to ≥ 40 kHz
  (band-limited, so a 4 kHz record is not read in 250 µs steps). The preceding positive peak is
  the first local maximum met walking back from the negative peak (wiggles smaller than 5 % of
  the amplitude are passed over). A near MUAP's spike rises in ≤ 0.5 ms; a blunt, slow rise
  means the fibres are far from the needle (see :data:`ionm_station.lab.needle.ACCEPT_RISE_MS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

#: Onset/offset level (µV) away from the baseline.
LEVEL_UV = 10.0
#: A dip under the level shorter than this (ms) stays inside the potential.
GAP_MS = 2.0
#: A turn needs a change of at least this much (µV) on both sides.
TURN_UV = 25.0
#: More than this many phases is polyphasic.
POLYPHASIC_PHASES = 4
#: Rise time is measured on the template interpolated to at least this rate (Hz).
RISE_FS_HZ = 40_000.0
#: Every measure is taken on the template interpolated (band-limited) to at least this
#: rate (Hz): at 4 kHz a 0.3 ms spike's peak falls between samples (accepted MUAPs of the
#: PhysioNet records: amplitude +9 to +24 % against the samples alone).
MEASURE_FS_HZ = 40_000.0
#: Walking back from the negative peak, a dip below the running maximum larger than this
#: fraction of the amplitude ends the search for the preceding positive peak.
RISE_HYSTERESIS = 0.05


@dataclass(frozen=True)
class MuapShape:
    """The measures of one template; ``onset``/``offset`` are sample indices into it."""

    amplitude_uv: float
    duration_ms: float
    area_uvms: float
    phases: int
    turns: int
    onset: int
    offset: int
    rise_time_ms: float = float("nan")

    @property
    def thickness_ms(self) -> float:
        """Area / amplitude (ms)."""
        return self.area_uvms / self.amplitude_uv if self.amplitude_uv > 0 else 0.0

    @property
    def polyphasic(self) -> bool:
        return self.phases > POLYPHASIC_PHASES


def count_turns(x_uv: np.ndarray, turn_uv: float = TURN_UV) -> int:
    """Changes of direction of at least ``turn_uv`` on both sides (a loop over the local
    extrema only, never over samples)."""
    d = np.diff(x_uv)
    nz = np.flatnonzero(d != 0)
    if nz.size < 2:
        return 0
    s = np.sign(d[nz])
    ext = nz[np.flatnonzero(s[1:] != s[:-1]) + 1]  # sample index of each local extremum
    values = np.concatenate(([x_uv[0]], x_uv[ext], [x_uv[-1]]))
    turns, direction, extreme = 0, 0, float(values[0])
    start = extreme
    for v in values[1:]:
        v = float(v)
        if direction == 0:
            if v - start >= turn_uv:
                direction, extreme = 1, v
            elif start - v >= turn_uv:
                direction, extreme = -1, v
            else:
                continue
        elif direction > 0:
            if v > extreme:
                extreme = v
            elif extreme - v >= turn_uv:
                turns += 1
                direction, extreme = -1, v
        else:
            if v < extreme:
                extreme = v
            elif v - extreme >= turn_uv:
                turns += 1
                direction, extreme = 1, v
    return turns


def rise_time_ms(x_uv: np.ndarray, fs_hz: float, onset: int = 0,
                 offset: int | None = None) -> float:
    """Time (ms) from the positive peak preceding the main negative peak to that peak, on
    ``x_uv[onset:offset + 1]``; NaN when the potential has no negative phase."""
    x = np.asarray(x_uv, dtype=float)
    up = max(1, int(np.ceil(RISE_FS_HZ / fs_hz)))
    if up > 1:  # band-limited: the template is baseline at both ends
        x = signal.resample(x, x.size * up)
    lo = onset * up
    hi = x.size if offset is None else min(x.size, (offset + 1) * up)
    seg = x[lo:hi]
    if seg.size < 2 or seg.min() >= 0:
        return float("nan")
    neg = int(np.argmin(seg))
    back = seg[neg::-1]  # walking back from the negative peak
    running = np.maximum.accumulate(back)
    dropped = np.flatnonzero(running - back > RISE_HYSTERESIS * float(np.ptp(seg)))
    stop = int(dropped[0]) if dropped.size else back.size
    k = int(np.argmax(back[:stop]))
    return k * 1000.0 / (fs_hz * up)


def measure_template(x_uv: np.ndarray, fs_hz: float, noise_uv: float = 0.0,
                     peak_index: int | None = None) -> MuapShape:
    """Measure a baseline-subtracted template ``x_uv`` sampled at ``fs_hz``.

    Measured on ``x_uv`` interpolated (band-limited) to at least :data:`MEASURE_FS_HZ`;
    ``onset``/``offset`` are returned as indices into ``x_uv``.

    Args:
        noise_uv: the template's own baseline noise (RMS); the level is at least 4× it.
        peak_index: the main peak (default: the largest absolute value).
    """
    x = np.asarray(x_uv, dtype=float)
    up = max(1, int(np.ceil(MEASURE_FS_HZ / fs_hz)))
    if up > 1:  # band-limited: a sharp spike's peak falls between 4 kHz samples
        s = measure_template(signal.resample(x, x.size * up), fs_hz * up, noise_uv,
                             None if peak_index is None else int(peak_index) * up)
        return MuapShape(s.amplitude_uv, s.duration_ms, s.area_uvms, s.phases, s.turns,
                         s.onset // up, min(x.size - 1, -(-s.offset // up)), s.rise_time_ms)
    level = max(LEVEL_UV, 4.0 * noise_uv)
    peak = int(np.argmax(np.abs(x))) if peak_index is None else int(peak_index)
    above = np.flatnonzero(np.abs(x) >= level)
    if above.size == 0:
        return MuapShape(float(np.ptp(x)), 0.0, 0.0, 1, 0, peak, peak)
    gap = max(1, round(GAP_MS * fs_hz / 1000.0))
    breaks = np.flatnonzero(np.diff(above) > gap)
    starts = above[np.r_[0, breaks + 1]]
    ends = above[np.r_[breaks, above.size - 1]]
    k = int(np.clip(np.searchsorted(starts, peak, side="right") - 1, 0, starts.size - 1))
    if ends[k] < peak and k + 1 < starts.size and starts[k + 1] - peak < peak - ends[k]:
        k += 1
    on, off = int(starts[k]), int(ends[k])
    seg = x[on:off + 1]
    side = seg[np.abs(seg) >= level / 2.0]
    phases = 1 + int(np.count_nonzero(np.diff(np.sign(side)) != 0)) if side.size else 1
    return MuapShape(amplitude_uv=float(seg.max() - seg.min()),
                     duration_ms=(off - on + 1) * 1000.0 / fs_hz,
                     area_uvms=float(np.abs(seg).sum() * 1000.0 / fs_hz),
                     phases=phases, turns=count_turns(seg), onset=on, offset=off,
                     rise_time_ms=rise_time_ms(x, fs_hz, on, off))
