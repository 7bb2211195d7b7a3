"""Quantitative needle EMG: detect, align and group discharges into motor units (multi-MUAP
analysis after Stålberg), measure every MUAP and judge the muscle. Pure numpy/scipy.

1. **Bands.** Measurement band: 2 Hz high-pass (zero phase), the MUAP as the amplifier saw it.
   Detection band: 300 Hz–3 kHz band-pass, where near (sharp) potentials stand out.
2. **Detection.** Peaks of the rectified detection band above 5× its noise (the 10th
   percentile of 10 ms RMS: the quiet moments between discharges), at least 4 ms apart (the
   largest peak of a polyphasic potential).
3. **Alignment.** Each discharge is aligned on its detection peak to a fraction of a sample
   (parabola through the peak, then a Fourier shift of its ±25 ms window).
4. **Grouping.** Per 3 s segment (a needle site holds a few units; the same shape at another
   site is another unit), greedy template matching, largest first: a seed's template collects
   every discharge within a residual RMS of ``sqrt((1.8σ)² + (0.1·RMS(template))²)`` over
   ±3 ms (the template scaled by 0.87–1.15), the template becomes their median, twice more. A
   group of at least 4 is a unit. A group whose template matches one of the same or the next
   segment is joined to it when it goes on firing (never two discharges within 20 ms, no
   pause longer than 3 intervals); groups that are the same discharges
   seen at another of their peaks (a fixed lag between their times) keep only the largest.
   The discharges left over are grouped once more over the whole recording (slow firers).
5. **Peel-off and merge.** Every unit's sweeps are cleaned of the other units' discharges (the
   recording minus the sum of all templates at their discharges, plus the unit's own
   template), twice; then a group whose cleaned template matches a larger group's (same or
   next segment, :func:`_continues`) is joined to it (a unit's discharges that overlapped
   another's had made a group of their own).
6. **Measurement.** Each unit's template is the median of the half of its aligned discharges
   least disturbed by others (residual against the median of all), measured by
   :mod:`.measure` with the template's own noise (its first and last 5 ms). Firing rate =
   1 / median inter-discharge interval between 25 and 250 ms.
7. **What each unit is** (:mod:`.spontaneous`): a voluntary MUAP, or a spontaneous discharge.
8. **Verdict** (:mod:`.reference`): the MUAP means against the muscle's reference limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from ionm_station.lab.measure import MuapShape, measure_template

HIGHPASS_HZ = 2.0
DETECT_BAND_HZ = (300.0, 3000.0)
THRESHOLD_SD = 5.0
DEAD_MS = 4.0
HALF_WINDOW_MS = 25.0
CORE_MS = 3.0
MIN_DISCHARGES = 4
#: Discharges are grouped per segment of this length (s) first.
SEGMENT_S = 3.0
SCALE_RANGE = (0.87, 1.15)
MATCH_NOISE_SD = 1.8
MATCH_RELATIVE = 0.1
#: Voluntary firing: inter-discharge intervals counted for the rate (s).
VOLUNTARY_ISI_S = (0.025, 0.25)
#: A unit smaller than this (µV p-p) or shorter than 0.5 ms is noise that looked alike.
MIN_UNIT_UV = 30.0
#: Peel-off rounds (templates cleaned of the other units' discharges).
PEEL_ROUNDS = 2


@dataclass
class Unit:
    """One group of discharges: its template (µV, baseline removed), measures and times."""

    template_uv: np.ndarray
    centre: int  # alignment sample in the template
    shape: MuapShape
    times: np.ndarray  # sample indices of the aligned peaks (int64)
    noise_uv: float
    fs_hz: float
    kind: str = "muap"
    trains: list[tuple[int, int]] = field(default_factory=list)  # (first, last) discharge index

    @property
    def times_s(self) -> np.ndarray:
        return self.times / self.fs_hz

    @property
    def n(self) -> int:
        return int(self.times.size)

    @property
    def firing_rate_hz(self) -> float | None:
        isi = np.diff(self.times_s)
        ok = isi[(isi >= VOLUNTARY_ISI_S[0]) & (isi <= VOLUNTARY_ISI_S[1])]
        return float(1.0 / np.median(ok)) if ok.size >= 3 else None


@dataclass
class Decomposition:
    """What :func:`decompose` found in one channel."""

    fs_hz: float
    n_samples: int
    noise_uv: float
    n_candidates: int
    units: list[Unit]
    unassigned: int


def _noise_rms(x: np.ndarray, fs_hz: float) -> float:
    """Noise of ``x``: the 10th percentile of its 10 ms RMS (the quiet moments)."""
    n = max(8, int(0.01 * fs_hz))
    k = x.size // n
    if k < 3:
        return float(np.std(x))
    rms = np.sqrt((x[:k * n].reshape(k, n) ** 2).mean(axis=1))
    return float(np.percentile(rms, 10))


def bands(x_uv: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(measurement band, detection band) of ``x_uv``."""
    x = np.asarray(x_uv, dtype=float)
    x = np.where(np.isfinite(x), x, 0.0)
    hp = signal.butter(2, HIGHPASS_HZ, "highpass", fs=fs_hz, output="sos")
    hi = min(DETECT_BAND_HZ[1], 0.45 * fs_hz)
    bp = signal.butter(2, [DETECT_BAND_HZ[0], hi], "bandpass", fs=fs_hz, output="sos")
    return signal.sosfiltfilt(hp, x), signal.sosfiltfilt(bp, x)


def _shift(windows: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Shift each row left by ``frac`` samples (Fourier; rows are baseline at their ends)."""
    n = windows.shape[1]
    spec = np.fft.rfft(windows, axis=1)
    k = np.arange(spec.shape[1])
    spec *= np.exp(2j * np.pi * k[None, :] * frac[:, None] / n)
    return np.fft.irfft(spec, n, axis=1)


def _match(core: np.ndarray, template: np.ndarray, noise: float) -> tuple[np.ndarray,
                                                                         np.ndarray]:
    """(residual RMS, scale) of every row of ``core`` against ``template``."""
    tt = float(template @ template)
    scale = np.clip(core @ template / max(tt, 1e-12), *SCALE_RANGE)
    resid = core - scale[:, None] * template[None, :]
    return np.sqrt((resid ** 2).mean(axis=1)), scale


def _threshold(template: np.ndarray, noise: float) -> float:
    rms = float(np.sqrt((template ** 2).mean()))
    return float(np.hypot(MATCH_NOISE_SD * noise, MATCH_RELATIVE * rms))


def _group(core: np.ndarray, noise: float) -> np.ndarray:
    """Greedy template matching, largest first; labels (-1: in no group)."""
    n = core.shape[0]
    labels = np.full(n, -1)
    free = np.ones(n, dtype=bool)
    order = np.argsort(-np.ptp(core, axis=1))
    k = 0
    for seed in order:
        if not free[seed]:
            continue
        cand = np.flatnonzero(free)
        template = core[seed]
        members = np.array([seed])
        for _ in range(3):
            resid, _ = _match(core[cand], template, noise)
            members = cand[resid < _threshold(template, noise)]
            if members.size == 0:
                members = np.array([seed])
                break
            template = np.median(core[members], axis=0)
        if members.size >= MIN_DISCHARGES:
            labels[members] = k
            k += 1
        free[members] = False
        free[seed] = False
    return labels


def _segment_groups(core: np.ndarray, peaks: np.ndarray, fs_hz: float,
                    noise: float) -> list[np.ndarray]:
    """Group each :data:`SEGMENT_S` segment on its own (a needle site holds a few units; the
    same shape at another site is another unit), then join a group to a group of the same or
    the next segment whose template matches (a unit that goes on firing). What is left is
    grouped once more over the whole recording (units that fire too slowly to make a group in
    any one segment: fasciculations, slow fibrillations)."""
    seg = (peaks // int(SEGMENT_S * fs_hz)).astype(np.int64)
    groups: list[np.ndarray] = []
    where: list[int] = []
    for s in np.unique(seg):
        members = np.flatnonzero(seg == s)
        labels = _group(core[members], noise)
        for k in range(labels.max() + 1 if labels.size else 0):
            groups.append(members[labels == k])
            where.append(int(s))
    left = np.setdiff1d(np.arange(core.shape[0]), np.concatenate(groups) if groups else [])
    labels = _group(core[left], noise)  # slow firers: too few discharges in any one segment
    for k in range(labels.max() + 1 if labels.size else 0):
        groups.append(left[labels == k])
        where.append(-10)
    if not groups:
        return []
    templates = np.array([np.median(core[g], axis=0) for g in groups])
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i in range(len(groups)):
        near = [j for j in range(i + 1, len(groups)) if where[j] - where[i] in (0, 1)]
        if not near:
            continue
        resid, _ = _match(templates[near], templates[i], noise)
        for j, r in zip(near, resid):
            if r < _threshold(templates[i], noise) and _continues(peaks[groups[i]],
                                                                  peaks[groups[j]], fs_hz):
                parent[root(j)] = root(i)
    joined: dict[int, list[np.ndarray]] = {}
    for i, g in enumerate(groups):
        joined.setdefault(root(i), []).append(g)
    return [np.sort(np.concatenate(v)) for v in joined.values()]


def _continues(a: np.ndarray, b: np.ndarray, fs_hz: float) -> bool:
    """Could ``b`` be more discharges of the unit that fired ``a``: never two within 20 ms,
    and no pause between them longer than 3 of its intervals (2 s at most)."""
    both = np.sort(np.concatenate((a, b)))
    isi = np.diff(both) / fs_hz
    if np.count_nonzero(isi < 0.02) > 0.05 * both.size:
        return False
    typical = float(np.median(np.diff(np.sort(a)))) / fs_hz if a.size > 1 else 0.1
    first, last = (a, b) if a.max() <= b.max() else (b, a)
    pause = (last.min() - first.max()) / fs_hz
    return pause <= min(3.0 * typical, 2.0)


def _same_discharges(a: np.ndarray, b: np.ndarray, fs_hz: float) -> bool:
    """True when most of ``b``'s times sit at one fixed lag (< 15 ms) from ``a``'s."""
    if a.size == 0 or b.size == 0:
        return False
    j = np.clip(np.searchsorted(a, b), 1, a.size - 1) if a.size > 1 else np.zeros(b.size, int)
    near = a[j]
    if a.size > 1:
        left = a[j - 1]
        near = np.where(np.abs(b - left) < np.abs(b - near), left, near)
    lag = b - near
    close = np.abs(lag) < 0.015 * fs_hz
    if close.sum() < 0.6 * b.size:
        return False
    med = np.median(lag[close])
    return bool(np.count_nonzero(np.abs(lag - med) <= 0.0005 * fs_hz + 1) >= 0.6 * b.size)


def _template(sweeps: np.ndarray, noise: float, half: int) -> tuple[np.ndarray, float]:
    """(template, its noise): the median of the half of the sweeps least disturbed by other
    discharges (residual against the median of all), baseline removed; the noise is the
    larger of the robust spread of its first and last 5 ms and what is left of the
    recording's noise in a median of that many sweeps."""
    med = np.median(sweeps, axis=0)
    resid = np.sqrt(((sweeps - med) ** 2).mean(axis=1))
    clean = sweeps[resid <= np.median(resid)] if sweeps.shape[0] >= 2 * MIN_DISCHARGES else sweeps
    t = np.median(clean, axis=0)
    ends = np.r_[t[:half // 5], t[-half // 5:]]
    base = float(np.median(ends))
    mad = 1.4826 * float(np.median(np.abs(ends - base)))
    return t - base, max(mad, 1.25 * noise / np.sqrt(clean.shape[0]))


def _model(n: int, peaks: np.ndarray, frac: np.ndarray, groups: list[np.ndarray],
           templates: list[np.ndarray], half: int) -> np.ndarray:
    """The recording as the sum of every unit's template at each of its discharges (each
    placed at its own sub-sample time)."""
    model = np.zeros(n)
    offsets = np.arange(-half, half + 1)
    for g, t in zip(groups, templates):
        placed = _shift(np.repeat(t[None, :], g.size, axis=0), -frac[g])
        np.add.at(model, (peaks[g][:, None] + offsets[None, :]).ravel(), placed.ravel())
    return model


def _peel_and_merge(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
                    groups: list[np.ndarray], noise: float, half: int, c0: int, step: int,
                    fs_hz: float) -> list[np.ndarray]:
    """Peel-off: every unit's sweeps are cleaned of the other units' discharges (the recording
    minus the model of all units, plus the unit's own template), written back into
    ``windows``, and the templates estimated again (:data:`PEEL_ROUNDS` times). Then a group
    whose cleaned template matches a larger group's and whose discharges could be the same
    unit's (:func:`_continues`) is joined to it: the discharges of a unit that overlapped
    another's had made a group of their own."""
    if not groups:
        return groups
    idx_all = np.concatenate(groups)
    offsets = np.arange(-half, half + 1)
    own = {int(i): k for k, g in enumerate(groups) for i in g}
    for _ in range(PEEL_ROUNDS):
        templates = [_template(windows[g], noise, half)[0] for g in groups]
        resid = y - _model(y.size, peaks, frac, groups, templates, half)
        clean = _shift(resid[peaks[idx_all][:, None] + offsets[None, :]], frac[idx_all])
        clean -= np.median(np.c_[clean[:, :half // 5], clean[:, -half // 5:]], axis=1)[:, None]
        clean += np.array([templates[own[int(i)]] for i in idx_all])
        windows[idx_all] = clean
    order = sorted(range(len(groups)), key=lambda k: -groups[k].size)
    templates = [_template(windows[g], noise, half)[0] for g in groups]
    cores = [t[half - c0:half + c0 + 1:step] for t in templates]
    merged: list[list[int]] = []
    for k in order:
        g = groups[k]
        for m in merged:
            big = groups[m[0]]
            resid, _ = _match(cores[k][None, :], cores[m[0]], noise)
            near = g.min() < big.max() + SEGMENT_S * fs_hz and g.max() > big.min() - (
                SEGMENT_S * fs_hz)
            if near and resid[0] < _threshold(cores[m[0]], noise) and _continues(
                    peaks[np.concatenate([groups[j] for j in m])], peaks[g], fs_hz):
                m.append(k)
                break
        else:
            merged.append([k])
    if len(merged) == len(groups):
        return groups
    return [np.sort(np.concatenate([groups[j] for j in m])) for m in merged]


def decompose(x_uv: np.ndarray, fs_hz: float) -> Decomposition:
    """Find the units of one needle channel (µV at ``fs_hz``)."""
    y, det = bands(x_uv, fs_hz)
    noise_det = _noise_rms(det, fs_hz)
    noise_y = _noise_rms(y, fs_hz)
    half = round(HALF_WINDOW_MS * fs_hz / 1000.0)
    height = THRESHOLD_SD * max(noise_det, 1e-9)
    peaks, _ = signal.find_peaks(np.abs(det), height=height,
                                 distance=max(1, round(DEAD_MS * fs_hz / 1000.0)))
    peaks = peaks[(peaks > half + 1) & (peaks < y.size - half - 2)]
    if peaks.size == 0:
        return Decomposition(fs_hz, y.size, noise_y, 0, [], 0)
    a, b, c = np.abs(det[peaks - 1]), np.abs(det[peaks]), np.abs(det[peaks + 1])
    denom = a - 2 * b + c
    frac = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    frac = np.clip(frac, -0.5, 0.5)
    idx = peaks[:, None] + np.arange(-half, half + 1)[None, :]
    windows = _shift(y[idx], frac)
    windows -= np.median(np.c_[windows[:, :half // 5], windows[:, -half // 5:]], axis=1)[:, None]
    c0 = round(CORE_MS * fs_hz / 1000.0)
    step = max(1, int(fs_hz // 10_000))
    core = windows[:, half - c0:half + c0 + 1:step]
    groups = _segment_groups(core, peaks, fs_hz, noise_y)
    units: list[Unit] = []
    groups.sort(key=lambda g: -np.ptp(np.median(core[g], axis=0)))
    kept: list[np.ndarray] = []
    for g in groups:  # the same discharges seen at another of their peaks: keep the largest
        if any(_same_discharges(peaks[k], peaks[g], fs_hz) for k in kept):
            continue
        kept.append(g)
    kept = _peel_and_merge(y, peaks, frac, windows, kept, noise_y, half, c0, step, fs_hz)
    for g in kept:
        t, tn = _template(windows[g], noise_y, half)
        shape = measure_template(t, fs_hz, tn, peak_index=None)
        if shape.amplitude_uv < MIN_UNIT_UV or shape.duration_ms < 0.5:
            continue  # noise that happened to look alike
        units.append(Unit(t, half, shape, np.sort(peaks[g]).astype(np.int64), tn, fs_hz))
    assigned = sum(u.n for u in units)
    return Decomposition(fs_hz, y.size, noise_y, int(peaks.size), units,
                         int(peaks.size - assigned))
