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
5. **One event, one group** (:func:`_drop_explained`, :func:`_drop_locked`): a large
   potential is detected at two or more of its peaks, and each alignment could make or join a
   group; a discharge explained by another group's (larger) template placed at its discharge,
   or locked at a fixed lag to another group's discharges, is dropped. Modelled twice, such
   events made the peel-off swing from round to round.
6. **Merge at a lag** (:func:`_merge_lagged`): a group whose template matches a larger one's
   at a lag within ±8 ms (the same unit aligned on another of its peaks, because an overlap
   moved the detection peak) is joined to it and realigned when the discharges could be one
   unit firing (:func:`_continues`; at a lag, or for a small group matched loosely, they must
   also fall in the larger train's gaps, :func:`_fills_gaps`).
7. **Peel-off** (:func:`_peel`, :data:`PEEL_ROUNDS` damped rounds): every unit's sweeps are
   moved halfway to their cleaned value (the recording minus the model of all units, each
   template only where its potential is, plus the unit's own template). Then the merge again
   on the cleaned templates, and the peel-off again when it joined anything.
8. **Re-centring** (:func:`_recentre`): a unit whose measured potential does not hold its
   alignment point while its main spike is more than :data:`RECENTRE_MS` away, or reaches the
   window's edge (:func:`_misplaced`), is realigned on its main spike, re-cut and peeled
   again; one still misplaced is marked (:attr:`Unit.misplaced`, not accepted).
9. **Measurement.** Each unit's template is the median of the half of its aligned discharges
   least disturbed by others (residual against the median of all), measured by
   :mod:`.measure` with the template's own noise (its first and last 5 ms). Firing rate =
   1 / median inter-discharge interval between 25 and 250 ms.
10. **What each unit is** (:mod:`.spontaneous`): a voluntary MUAP, or a spontaneous discharge.
11. **Verdict** (:mod:`.reference`): the MUAP means against the muscle's reference limits.
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
PEEL_ROUNDS = 4
#: Each peel-off round moves the sweeps this fraction of the way to their cleaned value.
PEEL_STEP = 0.5


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
    #: Why the template cannot be measured where it is, after re-centring
    #: (:func:`_misplaced`; the unit is not accepted), or None.
    misplaced: str | None = None

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


def _support(t: np.ndarray, noise: float, fs_hz: float) -> np.ndarray:
    """``t`` kept only where the potential is (from 1 ms before the first sample more than
    3× ``noise`` from baseline to 1 ms after the last, cosine ends of 0.5 ms), zero elsewhere:
    what a template holds beyond its potential (other units' discharges that did not average
    out, noise) must not be subtracted from the other units' sweeps."""
    above = np.flatnonzero(np.abs(t) >= max(3.0 * noise, 5.0))
    if above.size == 0:
        return np.zeros_like(t)
    pad, ramp = round(1e-3 * fs_hz), max(1, round(0.5e-3 * fs_hz))
    lo, hi = max(0, above[0] - pad), min(t.size - 1, above[-1] + pad)
    w = np.zeros(t.size)
    w[lo:hi + 1] = 1.0
    k = np.arange(1, ramp + 1)
    taper = 0.5 - 0.5 * np.cos(np.pi * k / (ramp + 1))
    left = np.arange(lo - ramp, lo)
    right = np.arange(hi + ramp, hi, -1)
    w[left[left >= 0]] = taper[left >= 0]
    w[right[right < t.size]] = taper[right < t.size]
    return t * w


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


#: A group is compared with a larger one at lags up to this (ms): the same unit's discharges
#: aligned on another of its peaks (an overlap moved the detection peak).
MAX_LAG_MS = 8.0
#: A group of fewer than 2 x MIN_DISCHARGES joined at a lag (its discharges overlapped
#: others', so its template is not clean) may match this much more loosely, when its
#: discharges fill the gaps of the larger unit's train (:func:`_fills_gaps`).
FEW_LOOSER = 2.0
#: A gap of the larger train (in its intervals) that a joined discharge may fall in.
GAP_STEPS = 6.0
#: Two discharges of one group closer than this (ms) after realignment are one discharge.
SAME_DISCHARGE_MS = 1.0


def _best_lag(a: np.ndarray, b: np.ndarray, c0: int, step: int, max_lag: int) -> float:
    """Lag (samples, fraction included) at which ``b``'s full template best matches ``a``'s
    core: ``b[half + lag]`` is ``a[half]``."""
    half = a.size // 2
    core = a[half - c0:half + c0 + 1]
    lags = np.arange(-max_lag, max_lag + 1)
    lags = lags[(half - c0 + lags >= 0) & (half + c0 + lags < b.size)]
    view = np.lib.stride_tricks.sliding_window_view(b, core.size)[half - c0 + lags]
    score = view[:, ::step] @ core[::step]
    k = int(np.argmax(score))
    if 0 < k < lags.size - 1:
        y0, y1, y2 = score[k - 1:k + 2]
        d = y0 - 2 * y1 + y2
        return float(lags[k] + (0.5 * (y0 - y2) / d if d < 0 else 0.0))
    return float(lags[k])


def _realign(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
             idx: np.ndarray, lag: float, half: int) -> np.ndarray:
    """Move the alignment of discharges ``idx`` by ``lag`` samples (re-cut from ``y``);
    returns those that stay inside the recording."""
    tau = peaks[idx] + frac[idx] + lag
    p = np.round(tau).astype(peaks.dtype)
    ok = (p > half + 1) & (p < y.size - half - 2)
    idx, p, f = idx[ok], p[ok], (tau - np.round(tau))[ok]
    if idx.size:
        w = _shift(y[p[:, None] + np.arange(-half, half + 1)[None, :]], f)
        w -= np.median(np.c_[w[:, :half // 5], w[:, -half // 5:]], axis=1)[:, None]
        peaks[idx], frac[idx], windows[idx] = p, f, w
    return idx


#: Another unit's discharge within this (ms) is checked for explaining a discharge.
EXPLAIN_WINDOW_MS = 20.0
#: A discharge is the same event as another group's when that group's template, placed at
#: its discharge, holds more than this fraction of the discharge's core (±3 ms) energy.
EXPLAINED_FRACTION = 0.5


def _drop_explained(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
                    groups: list[np.ndarray], noise: float, half: int, c0: int,
                    fs_hz: float, check: set[int] | None = None) -> list[np.ndarray]:
    """Every event in one group at most. A large potential is detected at two or more of its
    peaks (≥ 4 ms apart), and each alignment can make or join a group, so one event could sit
    in several groups; modelled twice, it made the peel-off swing (each round's template
    was the recording minus the other copy: 2-round period, neuropathy mean amplitude
    2078/1343/3103/2089 µV at 0-3 rounds). Groups are taken largest first; a discharge of a
    later group is dropped (left unassigned) when the template of a discharge already kept,
    within ±:data:`EXPLAIN_WINDOW_MS`, placed at its time, holds more than
    :data:`EXPLAINED_FRACTION` of the discharge's energy over ±3 ms. A group left with fewer
    than :data:`MIN_DISCHARGES` goes. ``check``: only these groups (indices) are checked,
    after all the others (which are kept as they are)."""
    if len(groups) < 2:
        return groups
    win = EXPLAIN_WINDOW_MS * fs_hz / 1000.0
    reach = min(round(win) + c0, half)
    offs = np.arange(-c0, c0 + 1)
    order = sorted(range(len(groups)), key=lambda k: (check is not None and k in check,
                                                      -groups[k].size))
    kept_idx: list[np.ndarray] = []
    kept_t: list[np.ndarray] = []
    placed: dict[int, np.ndarray] = {}
    out: list[np.ndarray] = []
    for k in order:
        g = groups[k]
        t, tn = _template(windows[g], noise, half)
        t = _support(t, tn, fs_hz)
        if kept_idx and (check is None or k in check):
            ki = np.concatenate(kept_idx)
            kt = np.concatenate(kept_t)
            srt = np.argsort(peaks[ki])
            ki, kt = ki[srt], kt[srt]
            lo = np.searchsorted(peaks[ki], peaks[g] - win)
            hi = np.searchsorted(peaks[ki], peaks[g] + win, side="right")
            keep = np.ones(g.size, dtype=bool)
            for n, j in enumerate(g):
                core = y[peaks[j] + offs]
                energy = float(core @ core)
                for m in range(lo[n], hi[n]):
                    i = int(ki[m])
                    d = int(peaks[j] - peaks[i])
                    if abs(d) > reach - c0:
                        continue
                    if i not in placed:
                        placed[i] = _shift(kt[m][None, :], -frac[i:i + 1])[0]
                    model = placed[i][half + d + offs]
                    if model @ core > EXPLAINED_FRACTION * energy:
                        keep[n] = False
                        break
            g = g[keep]
        if g.size >= MIN_DISCHARGES or (check is not None and k not in check):
            out.append(g)
            kept_idx.append(g)
            kept_t.append(np.repeat(t[None, :], g.size, axis=0))
    return out


def _fills_gaps(a: np.ndarray, b: np.ndarray, fs_hz: float) -> bool:
    """Do the times ``b`` (samples) fall in the gaps of the firing train ``a``: each one at
    least half an interval from ``a``'s neighbours and in a gap of at most :data:`GAP_STEPS`
    intervals, for
    at least 3/4 of them (a unit's discharges that were aligned on another of its peaks,
    because another unit's discharge overlapped, are missing from its train). Needed before a
    group is joined to another at a lag: small short potentials match many others at some
    lag."""
    a = np.sort(a)
    isi = np.diff(a) / fs_hz
    isi = isi[(isi >= VOLUNTARY_ISI_S[0]) & (isi <= VOLUNTARY_ISI_S[1])]
    if isi.size < 2:
        return False
    step = float(np.median(isi)) * fs_hz
    j = np.searchsorted(a, b)
    inside = (j > 0) & (j < a.size)
    jj = np.clip(j, 1, a.size - 1)
    prev, nxt = b - a[jj - 1], a[jj] - b
    ok = inside & (prev >= 0.5 * step) & (nxt >= 0.5 * step) & (prev + nxt <= GAP_STEPS * step)
    return bool(np.count_nonzero(ok) >= 0.75 * b.size)


#: Discharges of two groups locked at one lag within this (ms) are the same events.
LOCK_WINDOW_MS = 20.0
#: ... the lag varying by at most this (ms) ...
LOCK_JITTER_MS = 0.5
#: ... for at least this many of them, and at least half of those within the window.
LOCK_MIN = 3


def _drop_locked(peaks: np.ndarray, frac: np.ndarray, groups: list[np.ndarray],
                 fs_hz: float) -> tuple[list[np.ndarray], int]:
    """Every discharge in one group at most. A discharge of a group that sits at one fixed lag
    (±:data:`LOCK_JITTER_MS`, within ±:data:`LOCK_WINDOW_MS`) from discharges of a group
    earlier in the list (more discharges) is the same event detected at another of its peaks;
    it is dropped (left unassigned) when at least :data:`LOCK_MIN` of the group's discharges,
    and half of those near the other group's, share that lag (two units firing independently
    are not locked to half a millisecond). A group left with fewer than
    :data:`MIN_DISCHARGES` goes. Modelling such an event twice made the peel-off swing:
    each round's template was the recording minus the other's. Returns (groups, dropped)."""
    win, jit = LOCK_WINDOW_MS * fs_hz / 1000.0, LOCK_JITTER_MS * fs_hz / 1000.0
    order = sorted(range(len(groups)), key=lambda k: -groups[k].size)
    kept: list[np.ndarray] = []
    dropped = 0
    for k in order:
        g = groups[k]
        tb = peaks[g] + frac[g]
        locked = np.zeros(g.size, dtype=bool)
        for a in kept:
            ta = peaks[a] + frac[a]
            if ta.min() > tb.max() + win or ta.max() < tb.min() - win:
                continue
            lag = tb[:, None] - ta[None, :]
            near = np.abs(lag) < win
            if np.count_nonzero(near.any(axis=1)) < LOCK_MIN:
                continue
            values = np.sort(lag[near])
            count = np.searchsorted(values, values + 2 * jit, side="right") - np.arange(
                values.size)
            best = int(np.argmax(count))
            if count[best] < LOCK_MIN:
                continue
            centre = float(np.median(values[best:best + count[best]]))
            hit = (np.abs(lag - centre) <= jit).any(axis=1)
            if np.count_nonzero(hit) >= max(LOCK_MIN, 0.5 * np.count_nonzero(
                    near.any(axis=1))):
                locked |= hit
        rest = g[~locked]
        dropped += int(np.count_nonzero(locked))
        if rest.size >= MIN_DISCHARGES:
            kept.append(rest)
        else:
            dropped += int(rest.size)
    return kept, dropped


def _merge_lagged(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
                  groups: list[np.ndarray], noise: float, half: int, c0: int, step: int,
                  fs_hz: float) -> list[np.ndarray]:
    """Join a group to a larger one (same or next segment) whose template it matches at some
    lag within ±:data:`MAX_LAG_MS` (the same unit's discharges aligned on another of its
    peaks, or the same discharges detected twice), when the joined discharges could be one
    unit firing (:func:`_continues`). The joined discharges are realigned by that lag; those
    that then fall within :data:`SAME_DISCHARGE_MS` of one already in the group are the same
    discharge and are dropped (left unassigned), so no discharge is modelled twice."""
    if len(groups) < 2:
        return groups
    templates = [_template(windows[g], noise, half)[0] for g in groups]
    order = sorted(range(len(groups)), key=lambda k: (-groups[k].size, -np.ptp(templates[k])))
    max_lag = round(MAX_LAG_MS * fs_hz / 1000.0)
    same = SAME_DISCHARGE_MS * fs_hz / 1000.0
    seg = SEGMENT_S * fs_hz
    kept: list[tuple[np.ndarray, np.ndarray]] = []  # (members, template)
    for k in order:
        g, tb = groups[k], templates[k]
        for m, (members, ta) in enumerate(kept):
            if not (g.min() < members.max() + seg and g.max() > members.min() - seg):
                continue
            lag = _best_lag(ta, tb, c0, step, max_lag)
            moved = _shift(tb[None, :], np.array([lag]))[0]
            core_a = ta[half - c0:half + c0 + 1:step]
            core_b = moved[half - c0:half + c0 + 1:step]
            resid, _ = _match(core_b[None, :], core_a, noise)
            strict = resid[0] < _threshold(core_a, noise)
            if not strict and not (g.size < 2 * MIN_DISCHARGES and resid[0] < FEW_LOOSER
                                   * _threshold(core_a, noise)):
                continue
            tau = peaks[g] + frac[g] + lag
            t_a = peaks[members] + frac[members]
            j = np.clip(np.searchsorted(t_a, tau), 1, max(1, t_a.size - 1))
            near = np.minimum(np.abs(t_a[np.minimum(j, t_a.size - 1)] - tau),
                              np.abs(t_a[j - 1] - tau))
            new = g[near >= same]
            if new.size and not _continues(peaks[members], np.round(tau[near >= same]),
                                           fs_hz):
                continue
            if new.size and (abs(lag) > same or not strict) and not _fills_gaps(
                    t_a, tau[near >= same], fs_hz):
                continue
            if new.size:
                new = _realign(y, peaks, frac, windows, new, lag, half)
            members = np.concatenate((members, new))
            members = members[np.argsort(peaks[members] + frac[members])]
            kept[m] = (members, ta)
            break
        else:
            g = g[np.argsort(peaks[g] + frac[g])]
            kept.append((g, tb))
    return [np.sort(m) for m, _ in kept]


def _peel(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
          groups: list[np.ndarray], noise: float, half: int, fs_hz: float,
          rounds: int, only: set[int] | None = None) -> None:
    """Peel-off: every unit's sweeps are cleaned of the other units' discharges (the recording
    minus the model of all units, plus the unit's own template) and written back into
    ``windows``, ``rounds`` times. Templates enter the model only where their potential is
    (:func:`_support`); every discharge is in one group at most (:func:`_merge_lagged`).
    ``only``: the sweeps of these groups (indices) only; the others' stay as they are."""
    if not groups:
        return
    idx_all = np.concatenate([g for k, g in enumerate(groups) if only is None or k in only]
                             or [np.zeros(0, dtype=np.int64)])
    if idx_all.size == 0:
        return
    offsets = np.arange(-half, half + 1)
    own = {int(i): k for k, g in enumerate(groups) for i in g}
    for _ in range(rounds):
        templates = []
        for g in groups:
            t, tn = _template(windows[g], noise, half)
            templates.append(_support(t, tn, fs_hz))
        resid = y - _model(y.size, peaks, frac, groups, templates, half)
        clean = _shift(resid[peaks[idx_all][:, None] + offsets[None, :]], frac[idx_all])
        clean += np.array([templates[own[int(i)]] for i in idx_all])
        clean -= np.median(np.c_[clean[:, :half // 5], clean[:, -half // 5:]], axis=1)[:, None]
        windows[idx_all] = PEEL_STEP * clean + (1.0 - PEEL_STEP) * windows[idx_all]


#: A unit's main spike (its template's largest absolute value) must lie within this (ms) of
#: its alignment point; farther, the unit is re-centred on it (:func:`_recentre`).
RECENTRE_MS = 2.0
#: Re-centring passes (each followed by the peel-off).
RECENTRE_PASSES = 2


def _main_offset(t: np.ndarray, half: int) -> float:
    """Where the main spike (largest absolute value) of template ``t`` is, in samples from its
    alignment point ``half`` (fraction from a parabola through the peak)."""
    a = np.abs(t)
    k = int(np.argmax(a))
    frac = 0.0
    if 0 < k < a.size - 1:
        y0, y1, y2 = a[k - 1:k + 2]
        d = y0 - 2 * y1 + y2
        frac = float(np.clip(0.5 * (y0 - y2) / d, -0.5, 0.5)) if d < 0 else 0.0
    return k + frac - half


def _misplaced(t: np.ndarray, noise: float, half: int, fs_hz: float) -> str | None:
    """Why template ``t`` (aligned at ``half``) cannot be measured where it is, or None: the
    potential measured from its main spike (:func:`.measure_template`) must hold the
    alignment point when the main spike is more than :data:`RECENTRE_MS` from it (a long
    potential aligned on another of its components is fine; a spike of another potential,
    left in a median of few sweeps, is not), and must keep clear of the window's first and
    last 5 ms (its baseline)."""
    shape = measure_template(t, fs_hz, noise)
    off = _main_offset(t, half) * 1000.0 / fs_hz
    edge = half // 5
    if shape.onset < edge or shape.offset > t.size - 1 - edge:
        return (f"the potential measured reaches the window's edge (main spike {off:+.1f} ms "
                "from the alignment point)")
    if abs(off) > RECENTRE_MS and not shape.onset <= half <= shape.offset:
        return f"main spike {off:+.1f} ms from the alignment point, in another potential"
    return None


def _recentre(y: np.ndarray, peaks: np.ndarray, frac: np.ndarray, windows: np.ndarray,
              groups: list[np.ndarray], noise: float, half: int, c0: int,
              fs_hz: float) -> tuple[list[np.ndarray], set[int]]:
    """Re-centre every unit that cannot be measured where it is (:func:`_misplaced`) and
    whose main spike lies more than :data:`RECENTRE_MS` from its alignment point: its
    discharges are realigned on the main spike and re-cut from the recording
    (:func:`_realign`). A discharge detected at a small peak next to a large potential, or a
    group merged at a lag (:func:`_merge_lagged`), could leave a template whose largest spike
    sat at the window's edge (neuropathy record: 4695 uV, 1.57 ms, measured at -24 ms of the
    +-25 ms window). A re-centred discharge that another unit's template already explains (the
    same event, :func:`_drop_explained`) is dropped; a group left with fewer than
    :data:`MIN_DISCHARGES` goes. Returns (groups, the indices of the re-centred ones)."""
    limit = RECENTRE_MS * fs_hz / 1000.0
    out: list[np.ndarray] = []
    moved: set[int] = set()
    for g in groups:
        t, tn = _template(windows[g], noise, half)
        lag = _main_offset(t, half)
        if abs(lag) > limit and _misplaced(t, tn, half, fs_hz):
            g = np.sort(_realign(y, peaks, frac, windows, g, lag, half))
            moved.add(len(out))
        out.append(g)
    if not moved:
        return groups, moved
    # _drop_explained keeps the unchecked groups first and in order, then the checked ones
    kept = _drop_explained(y, peaks, frac, windows, out, noise, half, c0, fs_hz, check=moved)
    first = len(groups) - len(moved)
    return kept, set(range(first, len(kept)))


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
    kept = _drop_explained(y, peaks, frac, windows, kept, noise_y, half, c0, fs_hz)
    kept, _ = _drop_locked(peaks, frac, kept, fs_hz)
    kept = _merge_lagged(y, peaks, frac, windows, kept, noise_y, half, c0, step, fs_hz)
    _peel(y, peaks, frac, windows, kept, noise_y, half, fs_hz, PEEL_ROUNDS)
    n_before = len(kept)
    kept = _merge_lagged(y, peaks, frac, windows, kept, noise_y, half, c0, step, fs_hz)
    if len(kept) < n_before:  # realigned discharges were re-cut from the recording
        _peel(y, peaks, frac, windows, kept, noise_y, half, fs_hz, PEEL_ROUNDS)
    for _ in range(RECENTRE_PASSES):
        kept, moved = _recentre(y, peaks, frac, windows, kept, noise_y, half, c0, fs_hz)
        if not moved:
            break
        # the re-centred sweeps were re-cut from the recording: peel those (only, so that
        # the other units' templates and measures stay as they were)
        _peel(y, peaks, frac, windows, kept, noise_y, half, fs_hz, PEEL_ROUNDS, only=moved)
    limit = round(RECENTRE_MS * fs_hz / 1000.0)
    near = np.arange(half - limit, half + limit + 1)
    for g in kept:
        t, tn = _template(windows[g], noise_y, half)
        why = _misplaced(t, tn, half, fs_hz)
        # still misplaced: measured at the alignment point, never accepted (needle.py)
        peak = None if why is None else int(near[np.argmax(np.abs(t[near]))])
        shape = measure_template(t, fs_hz, tn, peak_index=peak)
        if shape.amplitude_uv < MIN_UNIT_UV or shape.duration_ms < 0.5:
            continue  # noise that happened to look alike
        units.append(Unit(t, half, shape, np.sort(peaks[g]).astype(np.int64), tn, fs_hz,
                          misplaced=why))
    assigned = sum(u.n for u in units)
    return Decomposition(fs_hz, y.size, noise_y, int(peaks.size), units,
                         int(peaks.size - assigned))
