"""Unit waveforms for the simulator: pure functions of time (s), no state, no randomness.

Each shape is evaluated on an array of times ``t_s`` (s) and returns a float64 array of the
same shape. Free-run shapes (MUAP, CMAP) are scaled to a peak-to-peak of 1; the ECG beat and the
stimulus artifact to a peak of 1. Callers multiply by µV.
"""

from __future__ import annotations

import math

import numpy as np

#: Peak-to-peak of the raw first derivative of a Gaussian with σ = 1: 2·e^(−1/2).
_DOG1_PP = 2.0 * math.exp(-0.5)
#: Peak-to-peak of the raw Mexican hat (1 − x²)·e^(−x²/2): 1 + 2·e^(−3/2).
_DOG2_PP = 1.0 + 2.0 * math.exp(-1.5)
#: Peak-to-peak of −sin(2πx)·sin²(πx) on [0, 1]: 2 · 3√3/8.
_CMAP_PP = 3.0 * math.sqrt(3.0) / 4.0

#: ECG beat as a sum of Gaussians: (centre s relative to R, σ s, amplitude relative to R).
_ECG_WAVES = (
    (-0.170, 0.020, 0.12),   # P
    (-0.028, 0.008, -0.12),  # Q
    (0.000, 0.010, 1.00),    # R
    (0.028, 0.009, -0.25),   # S  (Q–S spans ~90 ms)
    (0.280, 0.045, 0.30),    # T
)
#: Times (s) relative to the R peak outside which the ECG beat is negligible.
ECG_SUPPORT_S = (-0.25, 0.45)


def muap(t_s: np.ndarray, duration_s: float = 0.008, phases: int = 3) -> np.ndarray:
    """Motor-unit action potential centred on ``t_s = 0``, peak-to-peak 1.

    Args:
        t_s: times (s) relative to the MUAP centre.
        duration_s: visible duration (s), 5–12 ms for typical MUAPs; the shape is negligible
            (< 0.1 % of peak) beyond ±duration_s/2.
        phases: 2 (biphasic, first derivative of a Gaussian) or 3 (triphasic, second derivative).
    """
    sigma = duration_s / 8.0
    x = np.asarray(t_s, dtype=np.float64) / sigma
    gauss = np.exp(-0.5 * x * x)
    if phases == 2:
        return -x * gauss / _DOG1_PP
    if phases == 3:
        return -(1.0 - x * x) * gauss / _DOG2_PP
    raise ValueError(f"phases must be 2 or 3, got {phases}")


def muap_support_s(duration_s: float) -> float:
    """Half-width (s) of the window outside which :func:`muap` is negligible."""
    return duration_s / 2.0


def ecg_beat(t_s: np.ndarray) -> np.ndarray:
    """One P-QRS-T heartbeat with the R peak (value ≈ 1) at ``t_s = 0``; QRS ≈ 90 ms."""
    t = np.asarray(t_s, dtype=np.float64)
    out = np.zeros_like(t)
    for centre, sigma, amplitude in _ECG_WAVES:
        d = (t - centre) / sigma
        out += amplitude * np.exp(-0.5 * d * d)
    return out


def cmap(t_s: np.ndarray, duration_s: float = 0.015) -> np.ndarray:
    """Compound muscle action potential starting at ``t_s = 0``: biphasic, negative first,
    peak-to-peak 1, zero outside ``[0, duration_s]`` (10–20 ms typical)."""
    x = np.clip(np.asarray(t_s, dtype=np.float64) / duration_s, 0.0, 1.0) ** 0.8
    return -np.sin(2.0 * np.pi * x) * np.sin(np.pi * x) ** 2 / _CMAP_PP


def stimulus_artifact(t_s: np.ndarray, tau_s: float = 0.0003) -> np.ndarray:
    """Electrical stimulus artifact starting at ``t_s = 0``: a spike of height 1 decaying with
    time constant ``tau_s`` (s), followed by a small slower opposite-polarity tail; 0 before 0."""
    t = np.asarray(t_s, dtype=np.float64)
    tt = np.maximum(t, 0.0)
    fast = np.exp(-tt / tau_s)
    shape = fast - 0.15 * (1.0 - fast) * np.exp(-tt / (8.0 * tau_s))
    return np.where(t >= 0.0, shape, 0.0)


def stimulus_artifact_support_s(tau_s: float = 0.0003) -> float:
    """Duration (s) after which :func:`stimulus_artifact` is negligible (< 0.01 % of peak)."""
    return 80.0 * tau_s


def render_firings(
    times_s: np.ndarray,
    amplitudes: np.ndarray,
    duration_s: float,
    phases: int,
    sample_rate_hz: float,
) -> np.ndarray:
    """Sum of MUAPs fired at ``times_s`` (s, ≥ 0) with given amplitudes, sampled at
    ``sample_rate_hz``; sample 0 is time 0 minus the MUAP half-width. Vectorised (no per-sample
    loop): each MUAP is evaluated at its exact sub-sample time and accumulated with ``bincount``."""
    half = muap_support_s(duration_s)
    width = math.ceil(2.0 * half * sample_rate_hz) + 2
    times = np.asarray(times_s, dtype=np.float64)
    first = np.floor(times * sample_rate_hz).astype(np.int64)
    idx = first[:, None] + np.arange(width)[None, :]
    t_rel = idx / sample_rate_hz - half - times[:, None]
    values = muap(t_rel, duration_s, phases) * np.asarray(amplitudes)[:, None]
    return np.bincount(idx.ravel(), weights=values.ravel(), minlength=int(idx.max()) + 1)
