"""Interference pattern analysis: turns and amplitude per epoch (the turns/amplitude "cloud").

At strong effort the MUAPs overlap and cannot be told apart; the pattern is judged instead by
its turns and the amplitude between them (Willison's turns/amplitude analysis; the cloud of
epochs as Stålberg, Nandedkar and colleagues plot it — Stålberg E et al., Electroencephalogr
Clin Neurophysiol 1983;56:672–681, not checked here). Pure numpy.

* The measurement band (2 Hz high-pass) is cut into epochs of :data:`EPOCH_MS` (100 ms).
* A **turn** is a change of direction of at least :data:`TURN_UV` (100 µV) on both sides.
* Per epoch: turns per second and the mean amplitude between successive turns (µV).
* Epochs with at least one turn are kept (baseline noise has none: 100 µV is far above
  it); the cloud is all of them (the method collects epochs over a range of efforts).
* Neurogenic patterns (few, large units) sit at few turns and high amplitude; myopathic ones
  (many small, brief units) at many turns and low amplitude.
* **Verdict**: none. A cloud is judged against per-muscle limits of the cloud; the reference
  table holds none (we found no published limits we could verify), so the cloud is reported,
  not judged, and the document says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPOCH_MS = 100.0
TURN_UV = 100.0


@dataclass(frozen=True)
class Epoch:
    t_s: float  # epoch start
    turns_per_s: float
    mean_amplitude_uv: float
    rms_uv: float


def turn_values(x_uv: np.ndarray, turn_uv: float = TURN_UV) -> np.ndarray:
    """The values at the turns of ``x_uv`` (changes of direction of ≥ ``turn_uv`` both sides),
    the first and last extreme included (a loop over local extrema, never over samples)."""
    d = np.diff(x_uv)
    nz = np.flatnonzero(d != 0)
    if nz.size < 2:
        return np.zeros(0)
    s = np.sign(d[nz])
    ext = nz[np.flatnonzero(s[1:] != s[:-1]) + 1]
    values = np.concatenate(([x_uv[0]], x_uv[ext], [x_uv[-1]]))
    out: list[float] = []
    direction, extreme, start = 0, float(values[0]), float(values[0])
    for v in values[1:]:
        v = float(v)
        if direction == 0:
            if abs(v - start) >= turn_uv:
                out.append(start)
                direction, extreme = (1 if v > start else -1), v
            continue
        if (v - extreme) * direction > 0:
            extreme = v
        elif abs(extreme - v) >= turn_uv:
            out.append(extreme)
            direction, extreme = -direction, v
    if direction:
        out.append(extreme)
    return np.asarray(out)


def epochs(y_uv: np.ndarray, fs_hz: float) -> list[Epoch]:
    """The epochs of the measurement band ``y_uv`` that hold at least one turn."""
    n = round(EPOCH_MS * fs_hz / 1000.0)
    out = []
    for k in range(y_uv.size // n):
        seg = y_uv[k * n:(k + 1) * n]
        v = turn_values(seg)
        turns = v.size - 2  # the first and last extremes are not turns
        if turns < 1:
            continue
        rms = float(np.sqrt(np.mean(seg ** 2)))
        amp = float(np.mean(np.abs(np.diff(v))))
        out.append(Epoch(k * n / fs_hz, turns * 1000.0 / EPOCH_MS, amp, rms))
    return out


def summary(eps: list[Epoch]) -> dict:
    """Medians and 90th percentiles of the cloud; verdict None (no limits in the table)."""
    if not eps:
        return {"n_epochs": 0, "verdict": None, "reason": "no active epochs"}
    turns = np.array([e.turns_per_s for e in eps])
    amp = np.array([e.mean_amplitude_uv for e in eps])
    doc = {"n_epochs": len(eps), "median_turns_per_s": round(float(np.median(turns)), 1),
           "median_amplitude_uv": round(float(np.median(amp)), 1),
           "p90_turns_per_s": round(float(np.percentile(turns, 90)), 1),
           "p90_amplitude_uv": round(float(np.percentile(amp, 90)), 1),
           "epoch_ms": EPOCH_MS, "turn_uv": TURN_UV}
    doc.update(verdict=None, reason="no published turns/amplitude cloud limits in "
                                    "reference_muap.toml: the cloud is not judged")
    return doc
