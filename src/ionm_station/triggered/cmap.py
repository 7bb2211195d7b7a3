"""CMAP measurement after one stimulus.

The raw window around the stimulus is cleaned of the stimulus artifact (samples from 0.5 ms
before to ``blank_ms`` after the stimulus are replaced by a straight line), band-passed
30 Hz–3 kHz with zero phase (30 Hz keeps a CMAP, 10–25 ms long, and removes most of a QRS),
and the peak-to-peak amplitude is read in the latency window (default 5–40 ms). A response
needs both ``criterion_uv`` and ``snr`` × the baseline's peak-to-peak noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

#: Raw signal needed before / after the stimulus (s).
PRE_S = 0.060
POST_S = 0.060


@dataclass(frozen=True)
class CmapCriteria:
    """When a stimulus-locked deflection counts as a CMAP.

    Attributes:
        latency_ms: window after the stimulus where a CMAP may start and end (ms).
        criterion_uv: minimum peak-to-peak amplitude (µV).
        snr: minimum ratio of the window's p-p to the pre-stimulus baseline's p-p.
        blank_ms: stimulus artifact blanking after the stimulus (ms).
    """

    latency_ms: tuple[float, float] = (5.0, 40.0)
    criterion_uv: float = 50.0
    snr: float = 2.0
    blank_ms: float = 3.0


@dataclass(frozen=True)
class Response:
    """The response of each measured channel to one stimulus (µV p-p, latency ms).

    ``current_ma`` is None when the source did not report it; ``target`` (root-side) is None
    for a stimulus aimed at no known root-side, measured on every channel.
    ``channels`` are the montage channels measured; ``waveform_uv`` is the artifact-blanked,
    band-passed signal of those channels from ``PRE_S`` before to ``POST_S`` after the stimulus
    (n_samples, n_measured), for stimulus-locked stacked displays.
    """

    stimulus: int
    current_ma: float | None
    target: str | None
    peak_uv: tuple[float, ...]
    latency_ms: tuple[float | None, ...]
    responded: tuple[bool, ...]
    channels: tuple[int, ...] = ()
    waveform_uv: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def any(self) -> bool:
        """True if any channel of the target responded."""
        return any(self.responded)

    @property
    def max_uv(self) -> float:
        return max(self.peak_uv) if self.peak_uv else 0.0


def window_bounds(stimulus: int, fs: float) -> tuple[int, int]:
    """Absolute sample range [start, stop) of raw signal needed to measure ``stimulus``."""
    return stimulus - int(PRE_S * fs), stimulus + int(POST_S * fs)


def blank_and_filter(raw: np.ndarray, s: int, fs: float, blank_ms: float,
                     band_hz: tuple[float, float] = (30.0, 3000.0)) -> np.ndarray:
    """Stimulus-locked sweeps (n_samples, n_sweeps or channels) µV, all with their stimulus at
    row ``s``: the artifact from 0.5 ms before to ``blank_ms`` after the stimulus replaced by a
    straight line, then band-passed ``band_hz`` (2nd-order Butterworth, zero phase; the upper
    edge kept below 0.45 × ``fs``; a lower edge of 0 low-passes only, keeping the offset).
    Returns float64 of the same shape."""
    x = np.array(raw, dtype=np.float64)
    a, b = max(0, s - int(0.0005 * fs)), min(len(x) - 1, s + int(blank_ms * 1e-3 * fs))
    ramp = np.linspace(0.0, 1.0, b - a + 1)[:, None]
    x[a:b + 1] = x[a] + (x[b] - x[a]) * ramp
    high = min(band_hz[1], 0.45 * fs)
    sos = (signal.butter(2, [band_hz[0], high], btype="bandpass", fs=fs, output="sos")
           if band_hz[0] > 0 else signal.butter(2, high, btype="lowpass", fs=fs, output="sos"))
    return signal.sosfiltfilt(sos, x, axis=0)


def measure(raw: np.ndarray, stimulus: int, window_start: int, fs: float, channels: list[int],
            current_ma: float | None, target: str | None,
            criteria: CmapCriteria = CmapCriteria()) -> Response:
    """Measure the CMAP on ``channels`` of a raw µV window (n, n_channels) starting at
    absolute index ``window_start``, for the stimulus at absolute index ``stimulus``."""
    s = stimulus - window_start
    y = blank_and_filter(raw[:, channels], s, fs, criteria.blank_ms)
    a = max(0, s - int(0.0005 * fs))
    lo, hi = (s + int(ms * 1e-3 * fs) for ms in criteria.latency_ms)
    base = y[max(0, s - int(0.050 * fs)):a]
    win = y[lo:hi]
    p2p = win.max(axis=0) - win.min(axis=0)
    noise = base.max(axis=0) - base.min(axis=0) if len(base) else np.zeros(len(channels))
    responded = (p2p >= criteria.criterion_uv) & (p2p >= criteria.snr * noise)
    onset = []
    for c in range(len(channels)):
        above = np.flatnonzero(np.abs(win[:, c]) >= 0.2 * p2p[c])
        onset.append(float((lo + above[0] - s) / fs * 1e3) if responded[c] and len(above) else None)
    return Response(stimulus, current_ma, target, tuple(float(v) for v in p2p), tuple(onset),
                    tuple(bool(v) for v in responded), tuple(channels), y.astype(np.float32))
