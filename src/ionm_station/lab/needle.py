"""One needle channel analysed end to end: units, spontaneous activity, MUAP summary, verdict.

``analyse(x_uv, fs_hz, muscle)`` → :class:`NeedleResult`, whose :meth:`~NeedleResult.to_json`
is the document of ``ionm-station muap``.

**Acceptance.** A voluntary unit is measured as a MUAP only when the needle is near it: the rise
time of its main spike (preceding positive peak to negative peak) at most
:data:`ACCEPT_RISE_MS` and its amplitude at least :data:`ACCEPT_AMPLITUDE_UV`. Concentric needle
MUAPs with a rise time ≤ 500 µs were all recorded within the motor unit's territory; those from
outside it had a long rise time and an amplitude under 50 µV ("On the selection of concentric
needle electromyogram motor unit action potentials: is the rise time criterion too
restrictive?", Muscle Nerve; abstract read, authors and year not verified here). Some labs
accept up to 1 ms (``--max-rise-ms 1``). Units not accepted are listed apart, not measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ionm_station.lab import interference as ip
from ionm_station.lab import spontaneous as sp
from ionm_station.lab.muap import MIN_DISCHARGES, Decomposition, Unit, bands, decompose
from ionm_station.lab.reference import MuscleReference, muscle_reference, verdict

#: A voluntary MUAP is reported when at least this many of its discharges were found.
MIN_MUAP_DISCHARGES = MIN_DISCHARGES
#: Acceptance: rise time of the main spike at most this (ms) ...
ACCEPT_RISE_MS = 0.5
#: ... and peak-to-peak amplitude at least this (µV).
ACCEPT_AMPLITUDE_UV = 50.0
#: Measures with per-MUAP values handed to the verdict (outlier counts).
_MEASURES = ("amplitude_uv", "duration_ms", "area_uvms", "phases", "turns")


def _not_accepted(u: Unit, max_rise_ms: float | None) -> str | None:
    """Why ``u`` is not accepted for measurement, or None when it is."""
    s = u.shape
    if u.misplaced is not None:
        return u.misplaced + " after re-centring (measured at the alignment point)"
    if s.amplitude_uv < ACCEPT_AMPLITUDE_UV:
        return f"amplitude {s.amplitude_uv:.0f} µV < {ACCEPT_AMPLITUDE_UV:g} µV"
    if max_rise_ms is not None and not np.isfinite(s.rise_time_ms):
        return "no negative peak to measure a rise time on"
    if max_rise_ms is not None and s.rise_time_ms > max_rise_ms:
        return f"rise time {s.rise_time_ms:.2f} ms > {max_rise_ms:g} ms"
    return None


@dataclass
class NeedleResult:
    fs_hz: float
    duration_s: float
    muscle: str | None
    reference: MuscleReference | None
    decomposition: Decomposition
    muaps: list[Unit]
    rejected: list[tuple[Unit, str]]
    max_rise_ms: float | None
    trains: list[sp.Train]
    pattern: str
    reasons: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    epochs: list[ip.Epoch] = field(default_factory=list)

    def means(self) -> dict[str, float | None]:
        if not self.muaps:
            return {k: None for k in ("amplitude_uv", "duration_ms", "area_uvms", "phases",
                                      "turns", "polyphasic_fraction")}
        s = [u.shape for u in self.muaps]
        return {"amplitude_uv": float(np.mean([x.amplitude_uv for x in s])),
                "duration_ms": float(np.mean([x.duration_ms for x in s])),
                "area_uvms": float(np.mean([x.area_uvms for x in s])),
                "phases": float(np.mean([x.phases for x in s])),
                "turns": float(np.mean([x.turns for x in s])),
                "polyphasic_fraction": float(np.mean([x.polyphasic for x in s]))}

    def values(self) -> dict[str, list[float]]:
        """Per-MUAP values of each measure (for outlier counts)."""
        return {k: [float(getattr(u.shape, k)) for u in self.muaps] for k in _MEASURES}

    def to_json(self) -> dict:
        m = self.means()
        def r(v: float | None, d: int = 2) -> float | None:
            return None if v is None or not np.isfinite(v) else round(v, d)
        muaps = []
        for i, u in enumerate(self.muaps):
            s = u.shape
            muaps.append({"id": i + 1, "amplitude_uv": r(s.amplitude_uv, 1),
                          "duration_ms": r(s.duration_ms), "area_uvms": r(s.area_uvms, 1),
                          "thickness_ms": r(s.thickness_ms, 3),
                          "rise_time_ms": r(s.rise_time_ms, 3), "phases": s.phases,
                          "turns": s.turns, "polyphasic": s.polyphasic,
                          "firing_rate_hz": r(u.firing_rate_hz),
                          "n_discharges": u.n, "first_s": r(float(u.times_s[0]), 3),
                          "last_s": r(float(u.times_s[-1]), 3)})
        ref = None
        if self.reference is not None:
            def table(limits: dict) -> dict:
                return {k: {"lower": v.lower, "upper": v.upper, "source": v.citation,
                            "source_verified": v.verified} for k, v in limits.items()}
            ref = {"muscle": self.reference.key, "limits": table(self.reference.limits),
                   "outlier_limits": table(self.reference.outliers)}
        rejected = [{"amplitude_uv": r(u.shape.amplitude_uv, 1),
                     "rise_time_ms": r(u.shape.rise_time_ms, 3),
                     "duration_ms": r(u.shape.duration_ms), "n_discharges": u.n,
                     "first_s": r(float(u.times_s[0]), 3), "reason": why}
                    for u, why in self.rejected]
        grades = sp.grades(self.trains)
        return {
            "fs_hz": self.fs_hz, "duration_s": round(self.duration_s, 3),
            "muscle": self.muscle, "notes": self.notes,
            "muaps": muaps,
            "not_accepted": rejected,
            "summary": {"n_muaps": len(self.muaps), "n_not_accepted": len(rejected),
                        "acceptance": {"max_rise_time_ms": self.max_rise_ms,
                                       "min_amplitude_uv": ACCEPT_AMPLITUDE_UV},
                        "mean_amplitude_uv": r(m["amplitude_uv"], 1),
                        "mean_duration_ms": r(m["duration_ms"]),
                        "mean_area_uvms": r(m["area_uvms"], 1),
                        "mean_phases": r(m["phases"]), "mean_turns": r(m["turns"]),
                        "polyphasic_fraction": r(m["polyphasic_fraction"], 3),
                        "pattern": self.pattern, "reasons": self.reasons,
                        "reference": ref},
            "spontaneous": [{"kind": t.kind, "onset_s": round(t.onset_s, 3),
                             "offset_s": round(t.offset_s, 3), "count": t.count,
                             "rate_hz": round(t.rate_hz, 2),
                             "amplitude_uv": round(t.amplitude_uv, 1),
                             "grade": grades[t.kind]} for t in self.trains],
            "spontaneous_grades": grades,
            "interference": {
                "epochs": [{"t_s": round(e.t_s, 3), "turns_per_s": round(e.turns_per_s, 1),
                            "mean_amplitude_uv": round(e.mean_amplitude_uv, 1),
                            "rms_uv": round(e.rms_uv, 1)} for e in self.epochs],
                "summary": ip.summary(self.epochs)},
            "detection": {"noise_uv": round(self.decomposition.noise_uv, 2),
                          "discharges_detected": self.decomposition.n_candidates,
                          "discharges_unassigned": self.decomposition.unassigned,
                          "units": len(self.decomposition.units)},
            "analysis_s": round(self.seconds, 3),
        }


def analyse(x_uv: np.ndarray, fs_hz: float, muscle: str | None = None,
            notes: list[str] | None = None,
            max_rise_ms: float | None = ACCEPT_RISE_MS) -> NeedleResult:
    """Analyse one needle channel (µV at ``fs_hz``) of ``muscle`` (a name in the reference
    table, or None). ``max_rise_ms`` None: no rise-time acceptance (amplitude still)."""
    t0 = time.perf_counter()
    dec = decompose(x_uv, fs_hz)
    trains = sp.classify(dec.units)
    voluntary = sorted((u for u in dec.units if u.kind == "muap" and u.n >= MIN_MUAP_DISCHARGES),
                       key=lambda u: u.times[0])
    muaps, rejected = [], []
    for u in voluntary:
        why = _not_accepted(u, max_rise_ms)
        if why is None:
            muaps.append(u)
        else:
            rejected.append((u, why))
    ref = muscle_reference(muscle)
    result = NeedleResult(fs_hz, len(x_uv) / fs_hz, muscle, ref, dec, muaps, rejected,
                          max_rise_ms, trains, "", [], 0.0, list(notes or []))
    result.pattern, result.reasons = verdict(result.means(), len(muaps), ref, result.values())
    result.epochs = ip.epochs(bands(x_uv, fs_hz)[0], fs_hz)
    if rejected:
        result.reasons.append(f"{len(rejected)} of {len(voluntary)} voluntary units not "
                              "accepted for measurement (far from the needle: rise time or "
                              "amplitude)")
    grades = sp.grades(trains)
    found = [f"{k} grade {g}" for k, g in grades.items() if g]
    if found:
        result.reasons.append("spontaneous activity: " + ", ".join(found))
    result.seconds = time.perf_counter() - t0
    return result
