"""One needle channel analysed end to end: units, spontaneous activity, MUAP summary, verdict.

``analyse(x_uv, fs_hz, muscle)`` → :class:`NeedleResult`, whose :meth:`~NeedleResult.to_json`
is the document of ``ionm-station muap``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ionm_station.lab import spontaneous as sp
from ionm_station.lab.muap import MIN_DISCHARGES, Decomposition, Unit, decompose
from ionm_station.lab.reference import MuscleReference, muscle_reference, verdict

#: A voluntary MUAP is reported when at least this many of its discharges were found.
MIN_MUAP_DISCHARGES = MIN_DISCHARGES


@dataclass
class NeedleResult:
    fs_hz: float
    duration_s: float
    muscle: str | None
    reference: MuscleReference | None
    decomposition: Decomposition
    muaps: list[Unit]
    trains: list[sp.Train]
    pattern: str
    reasons: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)

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

    def to_json(self) -> dict:
        m = self.means()
        def r(v: float | None, d: int = 2) -> float | None:
            return None if v is None else round(v, d)
        muaps = []
        for i, u in enumerate(self.muaps):
            s = u.shape
            muaps.append({"id": i + 1, "amplitude_uv": r(s.amplitude_uv, 1),
                          "duration_ms": r(s.duration_ms), "area_uvms": r(s.area_uvms, 1),
                          "thickness_ms": r(s.thickness_ms, 3), "phases": s.phases,
                          "turns": s.turns, "polyphasic": s.polyphasic,
                          "firing_rate_hz": r(u.firing_rate_hz),
                          "n_discharges": u.n, "first_s": r(float(u.times_s[0]), 3),
                          "last_s": r(float(u.times_s[-1]), 3)})
        ref = None
        if self.reference is not None:
            ref = {"muscle": self.reference.key,
                   "limits": {k: {"lower": v.lower, "upper": v.upper, "source": v.citation,
                                  "source_verified": v.verified}
                              for k, v in self.reference.limits.items()}}
        grades = sp.grades(self.trains)
        return {
            "fs_hz": self.fs_hz, "duration_s": round(self.duration_s, 3),
            "muscle": self.muscle, "notes": self.notes,
            "muaps": muaps,
            "summary": {"n_muaps": len(self.muaps),
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
            "detection": {"noise_uv": round(self.decomposition.noise_uv, 2),
                          "discharges_detected": self.decomposition.n_candidates,
                          "discharges_unassigned": self.decomposition.unassigned,
                          "units": len(self.decomposition.units)},
            "analysis_s": round(self.seconds, 3),
        }


def analyse(x_uv: np.ndarray, fs_hz: float, muscle: str | None = None,
            notes: list[str] | None = None) -> NeedleResult:
    """Analyse one needle channel (µV at ``fs_hz``) of ``muscle`` (a name in the reference
    table, or None)."""
    t0 = time.perf_counter()
    dec = decompose(x_uv, fs_hz)
    trains = sp.classify(dec.units)
    muaps = [u for u in dec.units if u.kind == "muap" and u.n >= MIN_MUAP_DISCHARGES]
    muaps.sort(key=lambda u: u.times[0])
    ref = muscle_reference(muscle)
    result = NeedleResult(fs_hz, len(x_uv) / fs_hz, muscle, ref, dec, muaps, trains, "", [],
                          0.0, list(notes or []))
    result.pattern, result.reasons = verdict(result.means(), len(muaps), ref)
    grades = sp.grades(trains)
    found = [f"{k} grade {g}" for k, g in grades.items() if g]
    if found:
        result.reasons.append("spontaneous activity: " + ", ".join(found))
    result.seconds = time.perf_counter() - t0
    return result
