"""Simulated voluntary surface EMG for biofeedback: a patient following work/rest cues.

A scenario's ``[biofeedback]`` table gives the session plan (the
:class:`~ionm_station.therapy.biofeedback.Protocol` the station cues) and how the simulated
patient answers each cue: reaction time, rise and fall times, plateau level and its drift (% of
the patient's MVC), the resting tone, an incomplete relaxation that fades, and the median
frequency of the EMG spectrum (first trial → last trial: fatigue). Ranges ``[low, high]`` are
drawn uniformly per trial from the amplifier's seed.

The signal on the channel is ``a(t) · x(t)``: ``a`` the amplitude (µV RMS, piecewise linear
ramps and plateaus, exponential relaxation) and ``x`` unit-RMS coloured noise of a surface-EMG
spectrum (Shwedyk et al. 1977 shape, f_l = 60 Hz, f_h = 120 Hz, median 95.6 Hz) scaled in
frequency to the trial's median frequency, one noise segment per trial (joined mid-rest).
Ground truth (:class:`VoluntaryTruth`) holds ``a`` itself, the cues and each trial's median
frequency; the true scores are the core's own scoring applied to ``a``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ionm_station.config import check_keys, in_range, low_high, optional, require
from ionm_station.errors import ConfigError
from ionm_station.therapy.biofeedback import PROTOCOLS, Cue, Protocol

#: Spectrum shape (Hz) and its median frequency on a continuous axis.
SHAPE_FL_HZ, SHAPE_FH_HZ = 60.0, 120.0

_PLAN_KEYS = {"protocol", "start_s", "mvc_trials", "mvc_work_s", "mvc_rest_s", "trials", "work_s",
              "rest_s", "band_pct"}
_PATIENT_RANGES = {  # key: default, hard limits, unit
    "rest_pct": ((1.0, 3.0), (0.0, 50.0), "% MVC"),
    "effort_pct": ((92.0, 100.0), (10.0, 100.0), "% MVC"),
    "level_pct": ((45.0, 55.0), (0.0, 100.0), "% MVC"),
    "drift_pct": ((0.0, 0.0), (-100.0, 100.0), "% MVC"),
    "residual_pct": ((0.0, 0.0), (0.0, 100.0), "% MVC"),
    "reaction_s": ((0.15, 0.35), (0.0, 5.0), "s"),
    "release_reaction_s": ((0.1, 0.3), (0.0, 5.0), "s"),
    "rise_s": ((0.2, 0.5), (0.02, 10.0), "s"),
    "fall_s": ((0.1, 0.3), (0.02, 10.0), "s"),
    "median_hz": ((95.0, 95.0), (30.0, 250.0), "Hz"),
}
KEYS = sorted(_PLAN_KEYS | set(_PATIENT_RANGES) | {"channel", "mvc_uv", "relax_tau_s"})


@dataclass(frozen=True)
class VoluntarySpec:
    """The ``[biofeedback]`` table: the plan, the channel and the simulated patient."""

    channel: str
    protocol: Protocol
    mvc_uv: float
    relax_tau_s: float
    ranges: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class VoluntaryTruth:
    """What the simulated patient did: the amplitude ``amplitude_uv[i]`` (µV RMS) at absolute
    sample i of the first pass, the cues, each cue's median frequency (Hz) and the channel."""

    channel: int
    protocol: Protocol
    cues: tuple[Cue, ...]
    amplitude_uv: np.ndarray
    median_hz: tuple[float, ...]


def parse_voluntary(doc: dict[str, Any], labels: tuple[str, ...], duration_s: float,
                    path: str) -> VoluntarySpec | None:
    """Validate the scenario's ``[biofeedback]`` table (None when absent)."""
    table = optional(doc, "biofeedback", dict, path, None)
    if table is None:
        return None
    p = "biofeedback"
    check_keys(table, KEYS, path, p)
    channel = require(table, "channel", str, path, p)
    if channel not in labels:
        raise ConfigError(path, f"{p}.channel", f"unknown channel label {channel!r} (montage "
                                                f"has: {', '.join(labels)})")
    kind = require(table, "protocol", str, path, p)
    if kind not in PROTOCOLS:
        raise ConfigError(path, f"{p}.protocol", f"expected one of {', '.join(PROTOCOLS)}, "
                                                 f"got {kind!r}")
    default = Protocol(kind=kind, trials=0 if kind == "calibration" else 6,
                       mvc_trials=3 if kind == "calibration" else 2)
    fields: dict[str, Any] = {"kind": kind}
    for key in ("start_s", "mvc_work_s", "mvc_rest_s", "work_s", "rest_s"):
        value = optional(table, key, (int, float), path, getattr(default, key), p)
        fields[key] = float(in_range(value, 0.0, 3600.0, path, f"{p}.{key}", "s"))
    for key in ("mvc_trials", "trials"):
        fields[key] = int(optional(table, key, int, path, getattr(default, key), p))
    fields["band_pct"] = low_high(table, "band_pct", default.band_pct, (0.0, 200.0), "% MVC", path,
                                  "biofeedback")
    protocol = Protocol(**fields)
    if problems := protocol.problems():
        name, _, text = problems[0].partition(": ")
        key = "protocol" if name == "protocol" else name
        raise ConfigError(path, f"{p}.{key}", text)
    if protocol.duration_s > duration_s:
        raise ConfigError(path, f"{p}.trials", f"the plan runs to {protocol.duration_s:g} s, "
                                               f"past duration_s = {duration_s:g} s")
    mvc = float(in_range(optional(table, "mvc_uv", (int, float), path, 300.0, p), 5.0, 5000.0,
                         path, f"{p}.mvc_uv", "µV"))
    tau = float(in_range(optional(table, "relax_tau_s", (int, float), path, 1.0, p), 0.01, 60.0,
                         path, f"{p}.relax_tau_s", "s"))
    ranges = {k: low_high(table, k, d, lim, unit, path, "biofeedback")
              for k, (d, lim, unit) in _PATIENT_RANGES.items() if k != "median_hz"}
    d, lim, unit = _PATIENT_RANGES["median_hz"]
    ranges["median_hz"] = low_high(table, "median_hz", d, lim, unit, path, "biofeedback",
                                   ordered=False)
    slowest = min(protocol.work_s, protocol.mvc_work_s if protocol.mvc_trials else protocol.work_s)
    if ranges["reaction_s"][1] + ranges["rise_s"][1] >= slowest:
        raise ConfigError(path, f"{p}.rise_s", "reaction_s + rise_s must end within the work "
                                               f"phase ({slowest:g} s)")
    shortest = min(protocol.rest_s, protocol.mvc_rest_s if protocol.mvc_trials else protocol.rest_s)
    if ranges["release_reaction_s"][1] + ranges["fall_s"][1] >= shortest:
        raise ConfigError(path, f"{p}.fall_s", "release_reaction_s + fall_s must end within the "
                                               f"rest phase ({shortest:g} s)")
    return VoluntarySpec(channel, protocol, mvc, tau, ranges)



def spectrum_median_hz(scale: float, fs: float, n: int) -> float:
    """Median frequency (Hz) of the shape scaled by ``scale`` on the rfft grid of ``n`` samples."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    p = _shape(f / scale)
    c = np.cumsum(p)
    k = int(np.searchsorted(c, c[-1] / 2.0))
    return float(f[k])


def _shape(f: np.ndarray) -> np.ndarray:
    fl, fh = SHAPE_FL_HZ, SHAPE_FH_HZ
    return fh**4 * f**2 / ((f**2 + fl**2) * (f**2 + fh**2) ** 2)


def _noise(rng: np.random.Generator, n: int, fs: float, median_hz: float) -> np.ndarray:
    """Unit-RMS noise of ``n`` samples with the shape scaled to ``median_hz``."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    scale = median_hz / spectrum_median_hz(1.0, fs, 1 << 16)
    amp = np.sqrt(_shape(f / scale))
    spec = amp * (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f)))
    x = np.fft.irfft(spec, n)
    return x / np.sqrt(np.mean(x * x))


def render_voluntary(spec: VoluntarySpec, channel: int, fs: float, n_samples: int,
                     seed: int) -> tuple[np.ndarray, VoluntaryTruth]:
    """The channel's voluntary EMG (µV, ``n_samples``) and its ground truth."""
    rng = np.random.default_rng([seed, 0xB10F])
    r = spec.ranges
    mvc = spec.mvc_uv
    cues = spec.protocol.schedule(fs)
    t = np.arange(n_samples) / fs
    rest = rng.uniform(*r["rest_pct"]) / 100.0 * mvc
    amp = np.full(n_samples, rest)
    trials = [c for c in cues if c.kind == "trial"]
    first_hz, last_hz = r["median_hz"]
    mf: list[float] = []
    for c in cues:
        w, s = c.work / fs, c.rest / fs
        start = w + rng.uniform(*r["reaction_s"])
        top = start + rng.uniform(*r["rise_s"])
        release = s + rng.uniform(*r["release_reaction_s"])
        bottom = release + rng.uniform(*r["fall_s"])
        if c.kind == "mvc":
            level0 = level1 = rng.uniform(*r["effort_pct"]) / 100.0 * mvc
            mf.append(first_hz)
        else:
            level0 = rng.uniform(*r["level_pct"]) / 100.0 * mvc
            level1 = max(0.0, level0 + rng.uniform(*r["drift_pct"]) / 100.0 * mvc)
            k = trials.index(c)
            mf.append(first_hz + (last_hz - first_hz) * (k / max(1, len(trials) - 1)))
        residual = rng.uniform(*r["residual_pct"]) / 100.0 * mvc
        # added on top of the resting tone
        up = (t >= start) & (t < top)
        amp[up] += (level0 - rest) * (t[up] - start) / (top - start)
        hold = (t >= top) & (t < release)
        amp[hold] += (level0 - rest) + (level1 - level0) * (t[hold] - top) / (release - top)
        down = (t >= release) & (t < bottom)
        amp[down] += (level1 - rest) + (residual - (level1 - rest)) * (t[down] - release) \
            / (bottom - release)
        after = t >= bottom
        amp[after] += residual * np.exp(-(t[after] - bottom) / spec.relax_tau_s)
    # one noise segment per cue, joined in the middle of each rest phase
    bounds = [0] + [(c.rest + c.end) // 2 for c in cues[:-1]] + [n_samples]
    x = np.empty(n_samples)
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if b > a:
            x[a:b] = _noise(rng, b - a, fs, mf[min(i, len(mf) - 1)] if mf else first_hz)
    true_mf = tuple(spectrum_median_hz(m / spectrum_median_hz(1.0, fs, 1 << 16), fs, 1 << 16)
                    for m in mf)
    return amp * x, VoluntaryTruth(channel, spec.protocol, tuple(cues), amp, true_mf)


def true_scores(truth: VoluntaryTruth, sample_rate_hz: float,
                mvc_uv: float | None = None) -> tuple[list[Any], Any]:
    """The true trial and session scores: the core's scoring applied to the true amplitude
    ``a(t)`` (its own MVC unless ``mvc_uv`` is given), the true median frequencies filled in.
    Returns ``(trials, session)`` as :class:`~ionm_station.therapy.biofeedback.TrialScore` and
    :class:`~ionm_station.therapy.biofeedback.SessionScores`."""
    from ionm_station.therapy.biofeedback import max_rms_uv, score_trial, session_scores

    fs, a, protocol = sample_rate_hz, truth.amplitude_uv, truth.protocol
    efforts = [c for c in truth.cues if c.kind == "mvc"]
    measured = max_rms_uv(a[efforts[0].work:efforts[-1].end], fs) if efforts else None
    mvc = mvc_uv if mvc_uv is not None else measured
    band = None if mvc is None else (protocol.band_pct[0] / 100 * mvc, protocol.band_pct[1] / 100 * mvc)
    trials, weights = [], []
    for c, mf in zip(truth.cues, truth.median_hz, strict=True):
        target = protocol.target_phase(c)
        s = score_trial(a, 0, c, fs, target, band)
        s.median_frequency_hz = mf
        trials.append(s)
        if target is not None:
            weights.append(target[1] - target[0])
    return trials, session_scores(protocol, trials, weights, measured, mvc, band)
