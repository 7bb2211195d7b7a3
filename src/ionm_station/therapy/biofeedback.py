"""EMG biofeedback: RMS envelope, calibration (MVC), work/rest protocols and their scores.

Pure numpy, no Qt, no threads: :class:`BiofeedbackCore` takes one channel's clean samples
block by block (``process(start, samples_uv)``, the sample index is the clock) and gives back
the live envelope and reward, cue and score events; the window and the headless command are
shells over it. Every measure is defined here once (and in docs/therapy.md, "Biofeedback"):

* **Display envelope** — causal moving RMS over ``smoothing_ms`` (boxcar): what the patient
  sees and what the reward follows. NaN samples (gaps, blanked artifacts) are left out of the
  window; a window with no finite sample gives NaN.
* **Scoring envelopes** — zero-lag (centred) moving RMS computed once a trial is over, so
  scores carry no smoothing lag: the *timing envelope* over :data:`TIMING_WINDOW_MS` (work
  mean, onset, release) and the *level envelope* over :data:`LEVEL_WINDOW_MS` (time in target).
* **MVC** — the largest of the maximal efforts' levels; an effort's level is the RMS of the
  clean signal over its hold, from :data:`MVC_SETTLE_S` after its onset to its rest cue
  (:func:`effort_level_uv`). Not the peak of a moving RMS: the largest of many noisy window
  estimates is biased high (+5 % with 1-s windows on the simulated surface EMG).
* **Target band** — ``band_pct`` (low, high) × MVC, in µV RMS, inclusive.
* **Trial** — a work cue, then a rest cue ``work_s`` later, ending ``rest_s`` after that. The
  *target phase* is the work phase in activation (up-training) and the rest phase in
  relaxation (down-training); maximal efforts (``mvc`` trials) have none.
* **Work mean** — the mean of the timing envelope over the whole work phase [work cue, rest cue).
* **Onset time** — from the work cue to the first sample of the work phase where the timing
  envelope reaches ≥ 75 % of the work mean (None if it never does).
* **Release time** — from the rest cue to the first sample of the rest phase where the timing
  envelope falls to ≤ 37.5 % of the work mean (None if it never does).
* **Time in target** — the fraction of the target phase's finite samples whose level
  envelope lies in the band; the session's is over all training trials' target phases pooled.
* **Reward fraction** — the fraction of the target phase during which the live reward was on
  (display envelope in the band): what the patient heard, lag included.
* **Median frequency** — of the clean signal from the onset to the rest cue (the whole work
  phase without an onset): the frequency splitting the Welch power spectrum (Hann,
  :data:`MF_SEGMENT_S` segments, 50 % overlap) into two equal halves, interpolated within the
  bin. Fatigue: the least-squares slope of the trials' median frequencies against trial
  number (Hz/trial) and against the work cue's time (Hz/min).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

PROTOCOLS = ("calibration", "activation", "relaxation")
#: Centred RMS windows (ms) of the timing envelope (work mean, onset, release) and of the level
#: envelope (time in target). Chosen on the tuning seeds of scripts/bench_biofeedback: a shorter
#: level window lets the estimate's own fluctuation (8.7 % SD at 150 ms) flicker across the band
#: edges; a longer timing window delays the release (the RMS of a falling ramp lags its mean).
TIMING_WINDOW_MS = 100.0
LEVEL_WINDOW_MS = 500.0
#: Onset: fraction of the work mean reached; release: fraction fallen to.
ONSET_FRACTION = 0.75
RELEASE_FRACTION = 0.375
#: MVC: an effort's hold starts this long (s) after its onset (75 % of its work mean): a linear
#: rise takes a quarter of its rise time from 75 % to 100 %, so 0.25 s covers rises up to 1 s ...
MVC_SETTLE_S = 0.25
#: ... unless that leaves a hold shorter than this (s): then it starts at the onset.
MVC_MIN_HOLD_S = 0.5
#: An effort's hold (and a window of :func:`max_rms_uv`) needs this fraction of finite samples.
MVC_MIN_FINITE = 0.9
#: The window (s) of :func:`max_rms_uv`, the simulator's true MVC.
MVC_WINDOW_S = 1.0
#: Welch segment (s) of the median frequency; fewer than 2 segments of signal: no value.
MF_SEGMENT_S = 0.25
#: Display smoothing limits (ms).
SMOOTHING_MS_RANGE = (20.0, 2000.0)


# --- envelopes -------------------------------------------------------------------------------

def window_samples(window_ms: float, fs: float) -> int:
    """Samples in a window of ``window_ms`` at ``fs`` Hz (at least 1)."""
    return max(1, round(window_ms * fs / 1000.0))


class RmsEnvelope:
    """Causal moving RMS (µV) over the last ``window_ms`` of samples, carried across blocks
    (any chunking gives the same output). NaN samples are left out of the window's mean."""

    def __init__(self, sample_rate_hz: float, window_ms: float) -> None:
        if not SMOOTHING_MS_RANGE[0] <= window_ms <= SMOOTHING_MS_RANGE[1]:
            raise ValueError(f"smoothing must be {SMOOTHING_MS_RANGE[0]:g}–"
                             f"{SMOOTHING_MS_RANGE[1]:g} ms, got {window_ms!r}")
        self.window_ms = float(window_ms)
        self.n = window_samples(window_ms, sample_rate_hz)
        self.reset()

    def reset(self) -> None:
        self._sq = np.zeros(self.n - 1)
        self._ok = np.zeros(self.n - 1)

    def process(self, x_uv: np.ndarray) -> np.ndarray:
        """The envelope at every sample of ``x_uv`` (1-D, µV)."""
        x = np.asarray(x_uv, dtype=np.float64)
        ok = np.isfinite(x)
        sq = np.concatenate([self._sq, np.where(ok, x * x, 0.0)])
        cnt = np.concatenate([self._ok, ok.astype(np.float64)])
        cs = np.concatenate([[0.0], np.cumsum(sq)])
        cc = np.concatenate([[0.0], np.cumsum(cnt)])
        n = self.n
        total = cs[n:] - cs[:-n]
        count = cc[n:] - cc[:-n]
        if self.n > 1:
            self._sq, self._ok = sq[-(n - 1):], cnt[-(n - 1):]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, np.sqrt(np.maximum(total, 0.0) / count), np.nan)


def centred_mean_square(x: np.ndarray, n: int, min_finite: float = 0.0) -> np.ndarray:
    """Centred moving mean of ``x``² over ``n`` samples (partial windows at the ends), NaN
    left out; NaN where fewer than ``min_finite`` × the window's samples are finite."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    cs = np.concatenate([[0.0], np.cumsum(np.where(ok, x * x, 0.0))])
    cc = np.concatenate([[0.0], np.cumsum(ok)])
    i = np.arange(len(x))
    lo = np.clip(i - n // 2, 0, len(x))
    hi = np.clip(i - n // 2 + n, 0, len(x))
    count = cc[hi] - cc[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        ms = (cs[hi] - cs[lo]) / count
    return np.where((count > 0) & (count >= min_finite * n), ms, np.nan)


def centred_rms(x_uv: np.ndarray, sample_rate_hz: float, window_ms: float) -> np.ndarray:
    """A scoring envelope: zero-lag moving RMS (µV) over ``window_ms``."""
    return np.sqrt(centred_mean_square(x_uv, window_samples(window_ms, sample_rate_hz)))


def median_frequency_hz(x_uv: np.ndarray, sample_rate_hz: float) -> float | None:
    """Median frequency (Hz) of ``x_uv``'s Welch spectrum (longest finite run used); None with
    fewer than two :data:`MF_SEGMENT_S` segments of finite signal."""
    x = _longest_finite_run(np.asarray(x_uv, dtype=np.float64))
    nper = max(8, round(MF_SEGMENT_S * sample_rate_hz))
    if len(x) < 2 * nper:
        return None
    f, p = sps.welch(x, sample_rate_hz, window="hann", nperseg=nper, noverlap=nper // 2,
                     detrend="constant")
    cum = np.cumsum(p)
    if cum[-1] <= 0:
        return None
    half = cum[-1] / 2.0
    k = int(np.searchsorted(cum, half))
    # the bin k holds the crossing: interpolate linearly in cumulative power across its width
    below = cum[k - 1] if k > 0 else 0.0
    df = f[1] - f[0]
    frac = (half - below) / p[k] if p[k] > 0 else 0.5
    return float(f[k] - df / 2.0 + frac * df)


def _longest_finite_run(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    if ok.all():
        return x
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    if len(edges) == 0:
        return x[:0]
    starts, stops = edges[::2], edges[1::2]
    k = int(np.argmax(stops - starts))
    return x[starts[k]:stops[k]]


# --- protocol --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cue:
    """One trial on the sample clock: work cue, rest cue and end (absolute indices)."""

    kind: str      # "mvc" (maximal effort of the calibration) or "trial" (training)
    number: int    # 1-based within its kind
    work: int
    rest: int
    end: int


@dataclass(frozen=True)
class Protocol:
    """A biofeedback session's plan (times in s, band in % MVC).

    ``mvc_trials`` maximal efforts (``mvc_work_s`` each, then ``mvc_rest_s`` of rest) come
    first, from ``start_s``; then ``trials`` training trials of ``work_s`` + ``rest_s``.
    A calibration runs the maximal efforts only (``trials`` = 0).
    """

    kind: str = "activation"
    start_s: float = 3.0
    mvc_trials: int = 2
    mvc_work_s: float = 3.0
    mvc_rest_s: float = 5.0
    trials: int = 6
    work_s: float = 5.0
    rest_s: float = 5.0
    band_pct: tuple[float, float] = (40.0, 60.0)

    def problems(self) -> list[str]:
        """What is wrong with this plan, one phrase each naming the setting (empty: fine)."""
        out = []
        if self.kind not in PROTOCOLS:
            out.append(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {self.kind!r}")
        for name, lo, hi in (("start_s", 0.0, 3600.0), ("mvc_work_s", 1.0, 30.0),
                             ("mvc_rest_s", 1.0, 300.0), ("work_s", 1.0, 300.0),
                             ("rest_s", 1.0, 300.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi):
                out.append(f"{name}: expected {lo:g}–{hi:g} s, got {v!r}")
        if not 0 <= self.mvc_trials <= 10:
            out.append(f"mvc_trials: expected 0–10, got {self.mvc_trials!r}")
        if not 0 <= self.trials <= 200:
            out.append(f"trials: expected 0–200, got {self.trials!r}")
        if self.kind == "calibration":
            if self.mvc_trials < 1:
                out.append("mvc_trials: a calibration needs at least 1 maximal effort")
            if self.trials:
                out.append(f"trials: a calibration runs maximal efforts only, got {self.trials}")
        elif self.kind in PROTOCOLS and self.trials < 1:
            out.append(f"trials: {self.kind} needs at least 1 trial")
        lo, hi = self.band_pct
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi <= 200.0):
            out.append(f"band_pct: expected 0 <= low < high <= 200 (% MVC), got [{lo:g}, {hi:g}]")
        return out

    def check(self) -> None:
        """Raise ValueError naming the first problem."""
        if problems := self.problems():
            raise ValueError(problems[0])

    @property
    def duration_s(self) -> float:
        """Time (s) from 0 to the end of the last trial."""
        return (self.start_s + self.mvc_trials * (self.mvc_work_s + self.mvc_rest_s)
                + self.trials * (self.work_s + self.rest_s))

    def schedule(self, sample_rate_hz: float) -> list[Cue]:
        """Every trial's cues as sample indices (cue times rounded to the nearest sample)."""
        def idx(t: float) -> int:
            return round(t * sample_rate_hz)

        cues, t = [], self.start_s
        for kind, n, work_s, rest_s in (("mvc", self.mvc_trials, self.mvc_work_s, self.mvc_rest_s),
                                        ("trial", self.trials, self.work_s, self.rest_s)):
            for k in range(n):
                cues.append(Cue(kind, k + 1, idx(t), idx(t + work_s), idx(t + work_s + rest_s)))
                t += work_s + rest_s
        return cues

    def target_phase(self, cue: Cue) -> tuple[int, int] | None:
        """[start, stop) of ``cue``'s target phase (None for a maximal effort)."""
        if cue.kind != "trial":
            return None
        return (cue.work, cue.rest) if self.kind == "activation" else (cue.rest, cue.end)


# --- scores ----------------------------------------------------------------------------------

@dataclass
class TrialScore:
    """The scores of one trial (times s, levels µV RMS); None where not measurable."""

    kind: str
    number: int
    work_s: float
    rest_s: float
    work_mean_uv: float | None
    onset_s: float | None
    release_s: float | None
    time_in_target: float | None
    reward_fraction: float | None
    median_frequency_hz: float | None
    finite_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def score_trial(envelope_uv: np.ndarray, first: int, cue: Cue, sample_rate_hz: float,
                target: tuple[int, int] | None = None,
                band_uv: tuple[float, float] | None = None,
                signal_uv: np.ndarray | None = None,
                reward: np.ndarray | None = None,
                level_uv: np.ndarray | None = None) -> TrialScore:
    """Score one trial from its timing envelope (``envelope_uv[0]`` is sample ``first``; it
    must cover [cue.work, cue.end)) and level envelope (``level_uv``, same indexing; default
    the timing envelope); ``signal_uv`` gives the median frequency, ``reward`` (bool) the
    reward fraction. Used alike on the measured envelopes and on the simulator's true
    amplitude."""
    fs = sample_rate_hz

    def part(x: np.ndarray, a: int, b: int) -> np.ndarray:
        return x[a - first:b - first]

    work = part(envelope_uv, cue.work, cue.rest)
    rest = part(envelope_uv, cue.rest, cue.end)
    whole = part(envelope_uv, cue.work, cue.end)
    finite = float(np.isfinite(whole).mean()) if len(whole) else 0.0
    mean = float(np.nanmean(work)) if np.isfinite(work).any() else None
    onset = release = None
    if mean is not None and mean > 0:
        k = _first(work >= ONSET_FRACTION * mean)
        onset = None if k is None else k / fs
        k = _first(rest <= RELEASE_FRACTION * mean)
        release = None if k is None else k / fs
    in_target = rewarded = None
    if target is not None and band_uv is not None:
        env = part(envelope_uv if level_uv is None else level_uv, *target)
        ok = np.isfinite(env)
        if ok.any():
            in_target = float(((env[ok] >= band_uv[0]) & (env[ok] <= band_uv[1])).mean())
        if reward is not None:
            rewarded = float(part(reward, *target).mean())
    mf = None
    if signal_uv is not None:
        a = cue.work + (round(onset * fs) if onset is not None else 0)
        mf = median_frequency_hz(part(signal_uv, a, cue.rest), fs)
    return TrialScore(cue.kind, cue.number, cue.work / fs, cue.rest / fs, mean, onset, release,
                      in_target, rewarded, mf, finite)


def effort_level_uv(x_uv: np.ndarray, first: int, cue: Cue, onset_s: float | None,
                    sample_rate_hz: float) -> float | None:
    """One maximal effort's level (µV RMS), the MVC's measure: the RMS of ``x_uv``
    (``x_uv[0]`` is sample ``first``; it must cover [cue.work, cue.rest)) over the effort's hold,
    from :data:`MVC_SETTLE_S` after its onset (``onset_s``, s after the work cue) to the rest
    cue, or from the onset when that leaves less than :data:`MVC_MIN_HOLD_S`. None without an
    onset or with fewer than :data:`MVC_MIN_FINITE` finite samples in the hold.

    One mean square over the whole hold, not the peak of a moving RMS: on a signal the peak of
    many noisy window estimates is biased high (on the simulated surface EMG, 1-s windows over
    two 3-s efforts: +5 %), which would raise both band edges."""
    fs = sample_rate_hz
    if onset_s is None:
        return None
    start = cue.work + round(onset_s * fs)
    settled = start + round(MVC_SETTLE_S * fs)
    if cue.rest - settled >= round(MVC_MIN_HOLD_S * fs):
        start = settled
    hold = x_uv[start - first:cue.rest - first]
    ok = np.isfinite(hold)
    if len(hold) == 0 or ok.mean() < MVC_MIN_FINITE:
        return None
    return float(np.sqrt(np.mean(hold[ok] ** 2)))


def max_rms_uv(x_uv: np.ndarray, sample_rate_hz: float, window_s: float = MVC_WINDOW_S) -> float | None:
    """The largest centred ``window_s`` RMS of ``x_uv`` (windows with at least
    :data:`MVC_MIN_FINITE` finite samples); None if there is none. The simulator's true MVC:
    applied to its noise-free amplitude, the level of the strongest effort's plateau (which
    :func:`effort_level_uv` gives too, on a plateau of at least ``window_s``)."""
    n = max(1, round(window_s * sample_rate_hz))
    ms = centred_mean_square(x_uv, n, MVC_MIN_FINITE)
    if len(ms) == 0 or not np.isfinite(ms).any():
        return None
    return float(np.sqrt(np.nanmax(ms)))


def slope(x: list[float], y: list[float]) -> float | None:
    """Least-squares slope of y against x (None with fewer than 2 distinct x)."""
    if len(x) < 2 or len(set(x)) < 2:
        return None
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


@dataclass
class SessionScores:
    """A session's scores over its training trials (and the calibration)."""

    protocol: str
    mvc_measured_uv: float | None
    mvc_uv: float | None
    band_uv: tuple[float, float] | None
    trials_planned: int
    trials_scored: int
    time_in_target: float | None
    reward_fraction: float | None
    onset_s_median: float | None
    release_s_median: float | None
    median_frequency_first_hz: float | None
    median_frequency_last_hz: float | None
    median_frequency_slope_hz_per_trial: float | None
    median_frequency_slope_hz_per_min: float | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["band_uv"] = None if self.band_uv is None else [round(v, 3) for v in self.band_uv]
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in d.items()}


def _median(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def session_scores(protocol: Protocol, trials: list[TrialScore], target_samples: list[int],
                   mvc_measured_uv: float | None, mvc_uv: float | None,
                   band_uv: tuple[float, float] | None) -> SessionScores:
    """Pool the training trials' scores (``target_samples``: each trial's finite samples in its
    target phase, the weights of the pooled time in target)."""
    train = [t for t in trials if t.kind == "trial"]
    pairs = [(t.time_in_target, w) for t, w in zip(train, target_samples, strict=True)
             if t.time_in_target is not None and w > 0]
    tit = (sum(v * w for v, w in pairs) / sum(w for _, w in pairs)) if pairs else None
    rewards = [t.reward_fraction for t in train if t.reward_fraction is not None]
    with_mf = [t for t in (train or [t for t in trials if t.kind == "mvc"])
               if t.median_frequency_hz is not None]
    mfs = [t.median_frequency_hz for t in with_mf]
    return SessionScores(
        protocol=protocol.kind, mvc_measured_uv=mvc_measured_uv, mvc_uv=mvc_uv, band_uv=band_uv,
        trials_planned=protocol.trials if protocol.kind != "calibration" else protocol.mvc_trials,
        trials_scored=len(train) if protocol.kind != "calibration" else len(trials),
        time_in_target=tit, reward_fraction=float(np.mean(rewards)) if rewards else None,
        onset_s_median=_median([t.onset_s for t in train]),
        release_s_median=_median([t.release_s for t in train]),
        median_frequency_first_hz=mfs[0] if mfs else None,
        median_frequency_last_hz=mfs[-1] if mfs else None,
        median_frequency_slope_hz_per_trial=slope([t.number for t in with_mf], mfs),  # type: ignore[misc]
        median_frequency_slope_hz_per_min=(
            None if (s := slope([t.work_s / 60.0 for t in with_mf], mfs)) is None else s),  # type: ignore[misc]
    )


# --- the streaming core ----------------------------------------------------------------------

@dataclass
class Block:
    """What one :meth:`BiofeedbackCore.process` call gives the display: the display envelope
    (µV RMS) and the reward (bool) at every sample from ``start``."""

    start: int
    envelope_uv: np.ndarray
    reward: np.ndarray


@dataclass
class _Samples:
    """The channel's samples from ``first`` on (grown by doubling)."""

    first: int = -1
    n: int = 0
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def append(self, x: np.ndarray) -> None:
        if self.n + len(x) > len(self.buf):
            grown = np.full(max(2 * len(self.buf), self.n + len(x), 4096), np.nan)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:self.n + len(x)] = x
        self.n += len(x)

    def get(self, a: int, b: int) -> np.ndarray:
        """Samples [a, b), NaN where not received."""
        out = np.full(max(0, b - a), np.nan)
        lo, hi = max(a, self.first), min(b, self.first + self.n)
        if hi > lo:
            out[lo - a:hi - a] = self.buf[lo - self.first:hi - self.first]
        return out


class BiofeedbackCore:
    """One biofeedback session on one channel, fed block by block on the sample clock.

    Args:
        sample_rate_hz: the channel's rate.
        protocol: the plan (checked: ValueError naming the setting).
        smoothing_ms: display envelope window (ms).
        mvc_uv: the MVC to set the band from (µV RMS); None: measured from the session's
            maximal efforts (a training protocol without efforts then needs it).

    Events (:meth:`drain_events`), each a dict with ``kind`` and the sample ``index``:
    ``cue`` (``cue`` work/rest/end, ``phase`` mvc/trial, ``trial``), ``reward`` (``on``),
    ``mvc`` (``mvc_uv``, ``band_uv``) and ``trial`` (``score``).
    """

    def __init__(self, sample_rate_hz: float, protocol: Protocol, smoothing_ms: float = 250.0,
                 mvc_uv: float | None = None) -> None:
        protocol.check()
        if protocol.kind != "calibration" and protocol.mvc_trials == 0 and mvc_uv is None:
            raise ValueError(f"{protocol.kind} without maximal efforts needs the MVC "
                             "(--mvc-uv, or mvc_trials >= 1)")
        if mvc_uv is not None and not (math.isfinite(mvc_uv) and mvc_uv > 0):
            raise ValueError(f"mvc_uv: expected a positive number (µV), got {mvc_uv!r}")
        self.fs = float(sample_rate_hz)
        self.protocol = protocol
        self.cues = protocol.schedule(self.fs)
        self.envelope = RmsEnvelope(self.fs, smoothing_ms)
        self._given_mvc = mvc_uv
        self._half = window_samples(max(TIMING_WINDOW_MS, LEVEL_WINDOW_MS), self.fs) // 2 + 1
        self.reset()

    def reset(self) -> None:
        """Back to before the first sample."""
        self.envelope.reset()
        self.samples = _Samples()
        self.rewards = _Samples()
        self.mvc_measured_uv: float | None = None
        self.mvc_uv: float | None = self._given_mvc
        self.trials: list[TrialScore] = []
        self._target_n: list[int] = []
        self._next_cue_event = 0
        self._next_score = 0
        self._reward_on = False
        self._events: list[dict[str, Any]] = []
        self._calibrated = self.protocol.mvc_trials == 0
        self._cue_times = sorted(
            [(c.work, "work", c) for c in self.cues] + [(c.rest, "rest", c) for c in self.cues]
            + [(c.end, "end", c) for c in self.cues], key=lambda t: t[0])

    @property
    def band_uv(self) -> tuple[float, float] | None:
        """The target band (µV RMS), once the MVC is known."""
        if self.mvc_uv is None:
            return None
        lo, hi = self.protocol.band_pct
        return lo / 100.0 * self.mvc_uv, hi / 100.0 * self.mvc_uv

    @property
    def next_index(self) -> int:
        return self.samples.first + self.samples.n if self.samples.first >= 0 else 0

    def phase_at(self, index: int) -> tuple[str, Cue | None]:
        """("WAIT" | "WORK" | "REST" | "DONE", the trial) at sample ``index``."""
        for c in self.cues:
            if c.work <= index < c.rest:
                return "WORK", c
            if c.rest <= index < c.end:
                return "REST", c
        if self.cues and index >= self.cues[-1].end:
            return "DONE", None
        return "WAIT", None

    @property
    def done(self) -> bool:
        """Every trial is scored."""
        return self._next_score >= len(self.cues)

    def process(self, start: int, x_uv: np.ndarray) -> Block:
        """Take the samples ``x_uv`` (1-D, µV) from absolute index ``start``. A gap since the
        last block (``start`` beyond :attr:`next_index`) is filled with NaN."""
        x = np.asarray(x_uv, dtype=np.float64)
        if self.samples.first < 0:
            self.samples.first = self.rewards.first = start
        elif start != self.next_index:
            if start < self.next_index:
                raise ValueError(f"block starts at {start}, expected {self.next_index}")
            gap = np.full(start - self.next_index, np.nan)
            self.envelope.process(gap)
            self.samples.append(gap)
            self.rewards.append(np.zeros_like(gap))
        env = self.envelope.process(x)
        reward = self._reward(start, env)
        self.samples.append(x)
        self.rewards.append(reward.astype(np.float64))
        stop = start + len(x)
        self._cue_events(stop)
        self._score_due(stop)
        return Block(start, env, reward)

    def finish(self) -> None:
        """End of the stream: score what can be scored (trials not reached stay unscored)."""
        self._score_due(self.next_index, final=True)

    def drain_events(self) -> list[dict[str, Any]]:
        out, self._events = self._events, []
        return out

    def scores(self) -> SessionScores:
        return session_scores(self.protocol, self.trials, self._target_n, self.mvc_measured_uv,
                              self.mvc_uv, self.band_uv)

    # --- internals ---

    def _reward(self, start: int, env: np.ndarray) -> np.ndarray:
        reward = np.zeros(len(env), dtype=bool)
        band = self.band_uv
        if band is None or not self._calibrated:
            return self._edges(start, reward)
        stop = start + len(env)
        for c in self.cues:
            span = self.protocol.target_phase(c)
            if span is None or span[1] <= start or span[0] >= stop:
                continue
            a, b = max(span[0], start) - start, min(span[1], stop) - start
            e = env[a:b]
            reward[a:b] = np.isfinite(e) & (e >= band[0]) & (e <= band[1])
        return self._edges(start, reward)

    def _edges(self, start: int, reward: np.ndarray) -> np.ndarray:
        """Log a ``reward`` event at each change."""
        prev = self._reward_on
        for k in np.flatnonzero(np.diff(np.concatenate([[prev], reward]).astype(np.int8))):
            self._events.append({"kind": "reward", "index": start + int(k), "on": bool(reward[k])})
        if len(reward):
            self._reward_on = bool(reward[-1])
        return reward

    def _cue_events(self, stop: int) -> None:
        while self._next_cue_event < len(self._cue_times) and \
                self._cue_times[self._next_cue_event][0] < stop:
            index, what, c = self._cue_times[self._next_cue_event]
            self._events.append({"kind": "cue", "index": index, "cue": what, "phase": c.kind,
                                 "trial": c.number})
            self._next_cue_event += 1

    def _score_due(self, stop: int, final: bool = False) -> None:
        while self._next_score < len(self.cues):
            c = self.cues[self._next_score]
            if stop < c.end + self._half and not (final and stop >= c.end):
                return
            if c.kind == "trial" and not self._calibrated:
                self._calibrate()
            self._score(c)
            self._next_score += 1
            if c.kind == "mvc" and c.number == self.protocol.mvc_trials:
                self._calibrate()

    def _calibrate(self) -> None:
        scored = [t for t in self.trials if t.kind == "mvc"]
        if scored:
            efforts = [c for c in self.cues if c.kind == "mvc"]
            levels = [effort_level_uv(self.samples.get(c.work, c.rest), c.work, c, t.onset_s, self.fs)
                      for c, t in zip(efforts, scored)]
            found = [v for v in levels if v is not None]
            self.mvc_measured_uv = max(found) if found else None
            if self._given_mvc is None:
                self.mvc_uv = self.mvc_measured_uv
        self._calibrated = True
        self._events.append({"kind": "mvc", "index": self.next_index,
                             "mvc_uv": self.mvc_uv, "mvc_measured_uv": self.mvc_measured_uv,
                             "band_uv": self.band_uv})

    def _score(self, c: Cue) -> None:
        a, b = c.work - self._half, c.end + self._half
        x = self.samples.get(a, b)
        env = centred_rms(x, self.fs, TIMING_WINDOW_MS)
        level = centred_rms(x, self.fs, LEVEL_WINDOW_MS)
        target = self.protocol.target_phase(c)
        score = score_trial(env, a, c, self.fs, target, self.band_uv, signal_uv=x,
                            reward=self.rewards.get(a, b) > 0.5, level_uv=level)
        self.trials.append(score)
        if c.kind == "trial":
            assert target is not None
            self._target_n.append(int(np.isfinite(level[target[0] - a:target[1] - a]).sum()))
        self._events.append({"kind": "trial", "index": c.end, "score": score})
