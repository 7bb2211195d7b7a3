"""What each unit of a needle recording is: a voluntary MUAP or spontaneous activity, and the
grade 0–4 of each kind. Pure numpy; rules on the unit's template and its firing.

* **Myotonic discharge** — brief (fibrillation- or positive-wave-shaped) potentials firing at
  ≥ 15 Hz whose rate changes smoothly (successive intervals within 15 %) over a run of at least
  8 discharges by a factor ≥ 1.3 (waxing and waning). Units of one shape family (templates
  correlating ≥ 0.9 within ±1 ms, either sign) are taken together, since a waning amplitude
  splits a run; a brief unit firing faster than 15 Hz is never a fibrillation.
* **Positive sharp wave** — regular firing (robust interval CV < 0.1) of a potential whose
  positive peak is ≥ 1.5× its negative peak and that lasts ≥ 5 ms.
* **Fibrillation potential** — regular firing of a brief potential (< 6 ms, ≤ 3 phases,
  < 1 mV).
* **Complex repetitive discharge** — a complex potential (≥ 3 turns or ≥ 4 phases) firing at
  ≥ 3 Hz with clock-like regularity (robust CV < 0.05), in runs of at least 8.
* **Fasciculation potential** — a MUAP-shaped potential (≥ 5 ms) firing slowly and
  irregularly (median interval > 0.7 s, CV ≥ 0.1), at rest (its discharges mostly more than
  0.1 s from any voluntary discharge).
* Anything else that fires is a voluntary **MUAP**.

**Grade** (our single-site adaptation of the usual 0–4 scale, which counts needle areas): by the
number of trains of that kind — a generator (fibrillations, positive waves, fasciculations) or a
run (CRDs, myotonic discharges): 0 none, 1 one, 2 two, 3 three or four, 4 five or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from ionm_station.lab.muap import Unit

KINDS = ("fibrillation", "positive_sharp_wave", "fasciculation", "crd", "myotonic")
REGULAR_CV = 0.1
CLOCK_CV = 0.05
RUN_GAP_S = 0.3


@dataclass(frozen=True)
class Train:
    """One train of spontaneous activity."""

    kind: str
    onset_s: float
    offset_s: float
    count: int
    rate_hz: float
    amplitude_uv: float


def robust_cv(times_s: np.ndarray) -> float:
    """Spread of the inter-discharge intervals (1.4826·MAD / median); inf with < 3."""
    isi = np.diff(np.sort(times_s))
    if isi.size < 2:
        return float("inf")
    med = float(np.median(isi))
    return 1.4826 * float(np.median(np.abs(isi - med))) / med if med > 0 else float("inf")


def grade(n_trains: int) -> int:
    """0 none, 1 one train, 2 two, 3 three or four, 4 five or more."""
    return 0 if n_trains <= 0 else 1 if n_trains == 1 else 2 if n_trains == 2 else (
        3 if n_trains <= 4 else 4)


def _brief(u: Unit) -> bool:
    s = u.shape
    return s.duration_ms < 6.0 and s.phases <= 3 and s.amplitude_uv < 1000.0


def _psw(u: Unit) -> bool:
    seg = u.template_uv[u.shape.onset:u.shape.offset + 1]
    return (seg.size > 0 and seg.max() >= 1.5 * -seg.min()
            and u.shape.duration_ms >= 5.0)


def _runs(times_s: np.ndarray) -> list[np.ndarray]:
    t = np.sort(times_s)
    cut = np.flatnonzero(np.diff(t) > RUN_GAP_S) + 1
    return [r for r in np.split(t, cut) if r.size]


def _myotonic_run(t: np.ndarray) -> bool:
    if t.size < 8:
        return False
    isi = np.diff(t)
    if 1.0 / np.median(isi) < 15.0:
        return False
    steps = np.abs(np.diff(np.log(isi)))
    spread = np.percentile(isi, 90) / np.percentile(isi, 10)
    return bool(np.median(steps) < 0.15 and spread >= 1.3)


def _families(units: list[Unit]) -> list[list[int]]:
    """Indices of units whose templates correlate ≥ 0.9 (either sign, within ±1 ms)."""
    idx = list(range(len(units)))
    parent = idx[:]

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i
    for i in idx:
        a = units[i].template_uv
        for j in idx[i + 1:]:
            b = units[j].template_uv
            lag = int(units[i].fs_hz / 1000.0)  # ±1 ms
            denom = float(np.linalg.norm(a) * np.linalg.norm(b))
            if a.size != b.size or denom == 0:
                continue
            xc = signal.correlate(a, b, mode="same", method="fft")
            mid = xc.size // 2
            if float(np.abs(xc[mid - lag:mid + lag + 1]).max()) / denom >= 0.9:
                parent[root(j)] = root(i)
    fam: dict[int, list[int]] = {}
    for i in idx:
        fam.setdefault(root(i), []).append(i)
    return list(fam.values())


def _train(kind: str, t: np.ndarray, amplitude: float) -> Train:
    isi = np.diff(t)
    rate = float(1.0 / np.median(isi)) if isi.size else 0.0
    return Train(kind, float(t[0]), float(t[-1]), int(t.size), rate, amplitude)


def classify(units: list[Unit]) -> list[Train]:
    """Set every unit's ``kind`` and return the spontaneous trains, by onset."""
    trains: list[Train] = []
    brief = [i for i, u in enumerate(units) if _brief(u) or _psw(u)]
    for fam in _families([units[i] for i in brief]):
        members = [brief[k] for k in fam]
        times = np.concatenate([units[i].times_s for i in members])
        myo = [r for r in _runs(times) if _myotonic_run(r)]
        if not myo:
            continue
        inside = np.zeros(times.size, dtype=bool)
        for r in myo:
            inside |= (times >= r[0]) & (times <= r[-1])
        if inside.mean() < 0.5:
            continue
        amp = max(units[i].shape.amplitude_uv for i in members)
        trains.extend(_train("myotonic", r, amp) for r in myo)
        for i in members:
            units[i].kind = "myotonic"
    for u in units:
        if u.kind != "muap":
            continue
        t = u.times_s
        cv = robust_cv(t)
        isi = np.diff(t)
        med_isi = float(np.median(isi)) if isi.size else float("inf")
        amp = u.shape.amplitude_uv
        if cv < REGULAR_CV and _psw(u):
            u.kind = "positive_sharp_wave"
            trains.append(_train(u.kind, t, amp))
        elif cv < REGULAR_CV and _brief(u) and med_isi >= 1 / 15.0:
            u.kind = "fibrillation"
            trains.append(_train(u.kind, t, amp))
        elif (cv < CLOCK_CV and med_isi <= 1 / 3.0 and u.n >= 8
              and (u.shape.turns >= 3 or u.shape.phases >= 4)):
            u.kind = "crd"
            trains.extend(_train(u.kind, r, amp) for r in _runs(t) if r.size >= 8)
        elif med_isi > 0.7 and cv >= REGULAR_CV and u.shape.duration_ms >= 5.0:
            u.kind = "fasciculation"
            trains.append(_train(u.kind, t, amp))
    voluntary = np.sort(np.concatenate([u.times_s for u in units if u.kind == "muap"] or
                                       [np.zeros(0)]))
    for u in units:  # a fasciculation fires at rest, not amid voluntary discharges
        if u.kind == "fasciculation" and voluntary.size:
            j = np.clip(np.searchsorted(voluntary, u.times_s), 1, voluntary.size - 1)
            near = np.minimum(np.abs(voluntary[j] - u.times_s), np.abs(voluntary[j - 1] - u.times_s))
            if np.median(near) < 0.1:
                u.kind = "muap"
                trains = [t for t in trains if not (t.kind == "fasciculation"
                                                     and t.onset_s == float(u.times_s[0]))]
    return sorted(trains, key=lambda tr: tr.onset_s)


def grades(trains: list[Train]) -> dict[str, int]:
    """Grade 0–4 of every kind."""
    return {k: grade(sum(1 for t in trains if t.kind == k)) for k in KINDS}
