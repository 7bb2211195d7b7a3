"""A cardiac pacemaker added to a rendered case: its pulses on every channel before the beats.

A pacing pulse is 0.1–1.5 ms long and reaches every channel at once, each with its own size
and sign (the channel's projection of the lead's dipole). Ventricular pulses come ``lead_s``
before each R peak; a dual-chamber pacemaker adds an atrial pulse ``av_delay_s`` before each
ventricular one, with a pattern of its own. Every beat is paced (a pacemaker-dependent heart:
the most pulses a case can have).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

#: Pulse shapes: ``rect`` a pulse then half its height the other way for twice as long (active
#: recharge); ``exp`` a pulse then a 10 % recharge decaying over 5 ms, through a 2nd-order
#: anti-alias low-pass at 0.4 × the rate (what a band-limited amplifier makes of it).
SHAPES = ("rect", "exp")


@dataclass(frozen=True)
class Pacemaker:
    """One pacemaker: the largest channel's ventricular pulse ``peak_uv`` (µV; the others
    0.2–1 × that, either sign), pulse width ``width_s`` (s), ``shape`` (see SHAPES), the
    ventricular pulse ``lead_s`` (s) before the R peak; ``atrial_uv`` (µV, None: single
    chamber) the atrial pulse's largest channel, ``av_delay_s`` (s) before the ventricular."""

    peak_uv: float
    width_s: float = 0.0005
    shape: str = "rect"
    lead_s: float = 0.06
    atrial_uv: float | None = None
    av_delay_s: float = 0.16

    def describe(self) -> str:
        """A short label, e.g. ``rect 0.5 ms 50 µV`` or ``… + atrial 30 µV at 160 ms``."""
        text = f"{self.shape} {self.width_s * 1e3:.2g} ms {self.peak_uv:.0f} µV"
        if self.atrial_uv is not None:
            text += f" + atrial {self.atrial_uv:.0f} µV {self.av_delay_s * 1e3:.0f} ms before"
        return text


def pulse(fs: float, width_s: float, shape: str) -> np.ndarray:
    """One pacing artifact of unit height at ``fs`` (Hz), ``width_s`` (s) wide (see SHAPES)."""
    w = max(1, round(width_s * fs))
    if shape == "rect":
        return np.concatenate((np.ones(w), -0.5 * np.ones(2 * w)))
    if shape != "exp":
        raise ValueError(f"unknown pulse shape {shape!r}; known: {', '.join(SHAPES)}")
    tail = -0.1 * np.exp(-np.arange(round(0.03 * fs)) / (0.005 * fs))
    return signal.lfilter(*signal.butter(2, 0.8, "lowpass"),
                          np.concatenate((np.ones(w), tail, np.zeros(10))))


def pattern(rng: np.random.Generator, peak_uv: float, n_channels: int) -> np.ndarray:
    """Per-channel pulse sizes (µV): 0.2–1 × ``peak_uv``, either sign."""
    return peak_uv * rng.uniform(0.2, 1.0, n_channels) * rng.choice([-1.0, 1.0], n_channels)


def add_pulses(x: np.ndarray, at: np.ndarray, sizes: np.ndarray, shape: np.ndarray) -> None:
    """Add ``shape`` × ``sizes`` (µV per channel) to ``x`` (samples × channels) from each
    sample index in ``at``, in place; pulses running past the end are cut short."""
    for a in at.tolist():
        part = shape[:max(0, len(x) - a)]
        x[a:a + len(part)] += part[:, None] * sizes[None, :]


def pace(raw: np.ndarray, beats: np.ndarray, fs: float, pacemaker: Pacemaker,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``raw`` (µV, samples × channels) with ``pacemaker``'s pulses before each R peak in
    ``beats`` (sample indices), patterns drawn from ``rng``: the paced copy (float64) and the
    pulses' onsets (sample indices, ascending; ventricular and atrial together)."""
    n, n_ch = raw.shape
    shape = pulse(fs, pacemaker.width_s, pacemaker.shape)
    ventricular = pattern(rng, pacemaker.peak_uv, n_ch)
    at = np.asarray(beats, dtype=np.int64) - round(pacemaker.lead_s * fs)
    paced = raw.astype(np.float64)
    onsets = [at[(at >= 0) & (at < n)]]
    add_pulses(paced, onsets[0], ventricular, shape)
    if pacemaker.atrial_uv is not None:
        atrial_at = at - round(pacemaker.av_delay_s * fs)
        onsets.append(atrial_at[(atrial_at >= 0) & (atrial_at < n)])
        add_pulses(paced, onsets[1], pattern(rng, pacemaker.atrial_uv, n_ch), shape)
    return paced, np.sort(np.concatenate(onsets))
