"""Electrode pops and common-mode steps: sudden level changes that are not EMG.

Works on the band-passed, mains-free stream (µV; the chain runs it between the mains and the
ECG canceller, so the spans it finds are known well before the detector, which sees the stream
the ECG canceller's delay later). A step of A µV at sample t₀ in the raw signal — an electrode
pop (one channel, 0.1–2 mV, then an exponential decay of 50–500 ms), a common-mode step (the
same instant on several channels, 10–40 µV, decaying in 5 ms to seconds), an amplifier
recovering from a rail — reaches this stream as A × the band-pass's response to a decaying
step, whose shape is known: a sharp edge, a fall through zero within ~10 ms and a ringing tail
(10 Hz, 4th order: −0.35 at 20 ms, +0.17 at 60 ms). A MUAP, a QRS or a train does not fit it.

Per channel and sample index:

1. **Candidates**: local maxima (over :data:`CANDIDATE_SPACING_S` blocks) of the 1 ms difference
   |z(t + 1 ms) − z(t)| above :data:`CANDIDATE_SIGMA` × its noise, whose deflection is still
   on the same side 3 ms after the edge (:data:`PRESCREEN_RATIO`).
2. **Fit**: over [t₀ − :data:`PRE_S`, t₀ + :data:`FIT_S`) the window is fitted by an offset and
   a slope (the background) plus A × each template (the band-pass's response to a step
   decaying with τ in :data:`TAUS_S`), at every edge position t₀ within :data:`EDGE_SEARCH_S`;
   the best fit gives A, the fraction of the background-removed variance it explains, the
   residual over the noise and the step's significance (|A| over its least-squares error).
   Each window is also fitted over its first :data:`PRE_S` + :data:`SHORT_FIT_S` against a
   cubic background (a heartbeat under the step is smooth there, the step's edge is not); a
   window step-like only by that short fit (explained ≥ :data:`SHORT_FIT_EXPLAINED`) counts
   for common-mode steps, not for pops.
3. **Pop**: one channel whose best fit explains at least :data:`POP_FIT` with significance of at
   least :data:`POP_SIGNIFICANCE` and a step decaying no faster than :data:`POP_MIN_TAU_S`,
   or whose slow steps still explain :data:`POP_SLOW_FIT` where a faster one fits best; or, a
   QRS under it spoiling that fit, whose window fits as a step plus the same place of each of
   two beats before (the R peaks the ECG canceller knows, :data:`BEAT_REACH_S`). The ECG
   canceller keeps a pop's channel out of its QRS detection until the span ends.
4. **Common mode**: at least :data:`COMMON_MODE_MIN_CHANNELS` channels step at the same sample
   (± :data:`COMMON_MODE_SAMPLES`), each fitting as a step (explained ≥
   :data:`COMMON_MODE_FIT`, or residual within :data:`COMMON_MODE_RESIDUAL` × the noise) with
   significance ≥ :data:`COMMON_MODE_SIGNIFICANCE`: a transient on many leads at one instant is
   an artifact, not discharges of several roots. A small step fits cleanly on fewer channels:
   :data:`COMMON_MODE_PAIR` of them make one too when at least :data:`COMMON_MODE_PAIR_MEMBERS`
   channels, with the weaker fits, step the same way; so does one beside
   :data:`COMMON_MODE_CLEAN_WEAK` weaker fits that leave little but noise.
5. **Span**: from :data:`PRE_S` before the edge until the template's tail, scaled by the step,
   stays below :data:`HOLD_NOISE` × the channel's noise (longest over the span's channels; at
   least :data:`MIN_HOLD_S`, at most :data:`MAX_HOLD_S`).

The chain runs a second, common-mode-only detector on the ECG canceller's output
(``common_mode_only``): a QRS under a small common-mode step spoils its fits here on the
channels with a big heart, and the refit on earlier beats does not always save them; with the
heartbeat subtracted the step fits there.

Everything is computed from absolute sample indices on a carried history, so any chunking gives
the same spans; rows holding NaN (gaps) are never fitted. Spans are returned once decided, which
is :data:`PRE_S` + :data:`QUIET_AFTER_S` + a few ms after the edge (:data:`FIT_S` instead of
:data:`QUIET_AFTER_S` for ``common_mode_only``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view
from scipy import signal

from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.dsp.order import max_middle, median_last
from ionm_station.dsp.rows import Rows

#: Time constants (s) of the decaying steps fitted (inf: a lasting step).
TAUS_S = (math.inf, 0.2, 0.05, 0.02, 0.008)
#: Fit window (s) before and after the edge.
PRE_S = 0.002
FIT_S = 0.030
#: A step on a heartbeat: over FIT_S a QRS is no line, and a 20–40 µV step on the upstroke of
#: a beat fits no template there (tune-ptb-10k, 99.86 s: of the five channels that stepped only
#: two were step-like). Each window is also fitted over [edge − PRE_S, edge + SHORT_FIT_S)
#: against a polynomial background of degree SHORT_DEGREE: a QRS, 10–40 ms wide, is smooth
#: over 8 ms and the cubic takes it; a step's edge, sharp at the band-pass's upper edge, is a
#: discontinuity no polynomial takes.
SHORT_FIT_S = 0.006
SHORT_DEGREE = 3
#: The short fit counts as a step only where it explains at least this much of the window
#: (with its background absorbing the beat, a step's edge is nearly all that is left; the
#: small-step-in-noise route of the long fit, COMMON_MODE_RESIDUAL, says little over so few
#: samples: the top of a QRS passed it).
SHORT_FIT_EXPLAINED = 0.85
#: Candidate edges: the 1 ms difference above this many times its noise …
CANDIDATE_SIGMA = 4.5
#: … and the largest of its block of this length (s, on the absolute grid) and the blocks
#: either side.
CANDIDATE_SPACING_S = 0.002
#: The edge is searched from this long (s) before the candidate to its 1 ms difference's end.
EDGE_SEARCH_S = 0.0005
#: Only edges whose filtered deflection 3 ms after the edge is still at least this fraction of
#: the one 0.5 ms after it, on the same side of the baseline, are fitted (a step's is 0.6, a
#: step decaying in 5 ms still 0.3; most MUAP and QRS edges have turned by then).
PRESCREEN_RATIO = 0.1
#: A pop: the fit explains at least this fraction of the window's background-removed variance …
POP_FIT = 0.9
#: … the step is at least this many times its least-squares error …
POP_SIGNIFICANCE = 20.0
#: … and it decays no faster than this (s): a monophasic pulse of a few ms on one channel may
#: be a positive sharp wave, so only the slow steps of pops are taken on a single channel.
POP_MIN_TAU_S = 0.05
#: … unless a slow step (τ ≥ POP_MIN_TAU_S) still explains at least this fraction of the window
#: with POP_SIGNIFICANCE: a pop during a T wave or on a QRS fits a faster τ best, its slope
#: taken for part of the decay (extra tuning seeds 336 and 353: 364 and 192 µV pops, best τ
#: 20 ms at 0.995 and 0.992, τ 50 ms at 0.992 and 0.985, each reported as a spike at alarm
#: level). A needle spike fitted a step at 0.86 at best (seed 264, 142.51 s); a few-ms pulse
#: is far from a slow step.
POP_SLOW_FIT = 0.97
#: A heartbeat under a pop spoils those fits (150–510 µV pops on an R peak explained 0.54–0.86
#: at slow τ, the best τ 8 ms, and were reported at alarm level: extra tuning seeds 201, 202,
#: 208, 210, 217, 245, 252, 287). A step-like candidate on one channel that is no pop by them
#: is fitted again with one more regressor: the same channel at the same place of one of the
#: last BEAT_COUNT beats the ECG canceller knows (R peak + the offset within ± BEAT_REACH_S
#: that explains most), and must fit as well at that offset of an earlier one of them, within
#: ± BEAT_JITTER_S (R peaks jitter by a few samples; heart-locked: an A-train's earlier
#: cycles fit one stretch of it, not two beats at one offset: tune-mitdb-10k, 57.86 s, 0.98
#: explained by a stretch of its own train 0.25–2 s earlier; three beats, so that one spoilt
#: by an earlier pop does not hide the next). Beats are used from BEAT_NEAR_S before the
#: edge, and the stream is kept BEAT_HISTORY_S back for them. (This replaced a looser rule, a step of
#: ≥ 100 µV explaining 0.85 of its window by the long or the short fit, that took parts of
#: A-trains, B-trains and a 573 µV burst for pops: 3 spans on the nine tuning cases, no pop.)
BEAT_COUNT = 3
#: R peaks kept (the canceller may report one a little late, out of order).
BEATS_KEPT = 8
BEAT_REACH_S = 0.12
BEAT_JITTER_S = 0.003
BEAT_NEAR_S = 0.25
BEAT_HISTORY_S = 5.0
#: The refit's window starts this long (s) before the long fit's: the stretch before a pop
#: on a beat is heart alone, which the earlier beats repeat; an A-train's cycles there do not
#: stay in step with them (tune-ptb-10k-b, 170.64 s: 0.945 of a 504 µV A-train explained
#: over the long fit's window alone).
BEAT_BEFORE_S = 0.1
#: … it is a pop when each of the two fits explains BEAT_FIT of the window, the step alone
#: BEAT_STEP_SHARE of what the earlier beat leaves (pops of 108–510 µV on real R peaks:
#: 0.92–1.00 and 0.66–1.00, the lowest a 150 µV pop on MIT-BIH 100, whose beats vary; A-trains,
#: B-trains and MUAPs on the nine tuning cases at most 0.71 and 0.44), the step is at least
#: BEAT_POP_MIN_UV with POP_SIGNIFICANCE and τ ≥ BEAT_POP_MIN_TAU_S (s; a positive sharp wave
#: is smaller and turns faster), and the earlier beat enters at a heartbeat's scale,
#: BEAT_SCALE. On the second beat the step must be the same: its sign, and at least
#: BEAT_AGREE × the first fit's size instead of BEAT_POP_MIN_UV (MIT-BIH 100's beats vary:
#: extra tuning seed 589, 34.84 s, a pop on an R peak fitted 115 µV on one beat and 98 µV,
#: explaining 0.994, on the other; reported as a 183 µV spike at alarm level). BEAT_FIT was
#: 0.85: seed 667's pop on an R peak, 18.59 s, explained 0.841–0.842 over its two latest
#: beats (a 213 µV spike at alarm level).
BEAT_FIT = 0.8
BEAT_AGREE = 0.7
BEAT_STEP_SHARE = 0.6
#: A slow step (τ ≥ POP_MIN_TAU_S, ≥ QUIET_MIN_UV, POP_SIGNIFICANCE) that explains
#: QUIET_FIT of PRE_S + QUIET_AFTER_S around its edge after a quiet stretch — the
#: BEAT_BEFORE_S before it holding, a line removed, an RMS of at most QUIET_BEFORE × the step
#: — is a pop too, without any beat, even where a faster τ fits the long fit's window better:
#: a 122 µV pop 117 ms before an R peak (seed 251, 172.30 s) fitted best with τ 20 ms and was
#: a 159 µV spike at alarm level (0.88 over 60 ms at τ 50 ms, a 99 µV step there, its stretch
#: before 0.08 × the step); an A-train taken for a pop by the rule this replaced had 0.86–0.91 × the step
#: before it; a 485 µV needle spike with a quiet stretch before it fitted 0.86 over the long
#: fit's window but 0.22 over 60 ms (it has no ringing tail: seed 264, 142.51 s). Spans are
#: decided QUIET_AFTER_S and a few ms after their edge (still well ahead of the detector).
QUIET_FIT = 0.85
QUIET_BEFORE = 0.15
QUIET_AFTER_S = 0.06
QUIET_MIN_UV = 50.0
BEAT_POP_MIN_UV = 100.0
BEAT_POP_MIN_TAU_S = 0.02
BEAT_SCALE = (0.5, 2.0)
#: Common mode: at least this many channels step at one sample (± this many samples) …
COMMON_MODE_MIN_CHANNELS = 3
COMMON_MODE_SAMPLES = 2
#: … each explaining at least COMMON_MODE_MIN_FIT of the window by its step fit and either
#: leaving a residual within COMMON_MODE_RESIDUAL × its noise variance (a small step in noise)
#: or explaining at least COMMON_MODE_FIT (a large one, whose shape the templates only
#: approximate; a QRS or MUAP leaves far more: their fits explain 0.1–0.4) …
COMMON_MODE_MIN_FIT = 0.5
COMMON_MODE_RESIDUAL = 4.0
COMMON_MODE_FIT = 0.85
#: … and a step at least this many times its least-squares error. Once that many channels
#: step, any other channel whose step is as significant and explains COMMON_MODE_WEAK_FIT of
#: its window is taken too.
COMMON_MODE_SIGNIFICANCE = 8.0
COMMON_MODE_WEAK_FIT = 0.25
#: A small step (10–20 µV in 3–5 µV of noise, at 5 kHz) fits cleanly on only a few of its
#: channels: COMMON_MODE_PAIR step-like channels make a common-mode step too when, with the
#: weaker fits, at least COMMON_MODE_PAIR_MEMBERS channels step the same way (a QRS or
#: discharges on several channels at one instant have no reason to share a sign) …
COMMON_MODE_PAIR = 2
COMMON_MODE_PAIR_MEMBERS = 4
#: … of which at most this many weak ones may step the other way, then left out: a QRS's
#: upstroke 38 ms after a 11–29 µV step read as a −12 µV step on a channel the step missed
#: (extra tuning seed 200, 111.92 s: no span, three false spikes). A channel whose fit leaves
#: more than COMMON_MODE_RESIDUAL × its noise holds far more than a step (a QRS's onset: seed
#: 306, 174.09 s, −45 µV leaving 44 ×, with one weak dissenter beside it: no span, five false
#: spikes): it does not dissent, nor is it taken.
COMMON_MODE_DISSENT = 1
#: A QRS under a small common-mode step spoils its fit on the channels with a big heart (seed
#: 313, 189.72 s: 14–34 µV spikes on four channels, two of them step-like; seed 498,
#: 180.87 s: 20–40 µV on five channels 20 ms before R, one step-like, three false spikes):
#: when fewer than COMMON_MODE_MIN_CHANNELS fit, one or more, each channel that the step fit
#: leaves over COMMON_MODE_RESIDUAL × its noise is fitted again as the step (the step-like
#: channels' templates) plus the same place of two of the last beats (as a pop on a beat,
#: BEAT_REACH_S); where that leaves at most COMMON_MODE_BEAT_RESIDUAL × its noise variance,
#: with the step as significant as COMMON_MODE_SIGNIFICANCE and the same way, the channel
#: counts as step-like towards the pair rule (COMMON_MODE_PAIR_MEMBERS agreeing,
#: COMMON_MODE_DISSENT at most).
COMMON_MODE_BEAT_RESIDUAL = 4.0
#: … With one step-like channel the refits must bring them to COMMON_MODE_MIN_CHANNELS, each
#: refitted one stepping at least 1/COMMON_MODE_SPREAD as much: a spike's or a pop's edge on
#: a QRS is step-like on its channel alone, and a QRS's beat-to-beat change refits as a small
#: step of either sign (seed 264, 142.51 s: a 485 µV spike at R − 24 ms, step-like at
#: −232 µV, with refits of −4 and −5 µV and a weak fit the same way, was taken for a
#: common-mode step and blanked; seed 409, 30.38 s: a 33 µV burst on a QRS, with one refit
#: and two weak fits; seed 498's refits are 1/8 and 1/1.6 of its step-like channel's).
COMMON_MODE_SPREAD = 10.0
#: … or, with one step-like channel, at least COMMON_MODE_CLEAN_WEAK others step the same way,
#: as significant and at least 1/COMMON_MODE_SPREAD as much, with weak fits
#: (COMMON_MODE_WEAK_FIT) that leave at most COMMON_MODE_RESIDUAL × their noise: a 14–25 µV
#: transient in the P–R stretch fitted cleanly (residual 1.9–3.2 ×, significance 19–20, at one
#: sample) on four channels of which only one explained COMMON_MODE_MIN_FIT (the others
#: 0.43–0.50: a small step explains sig² / (sig² + window × residual) of its window); extra
#: tuning seed 667, 198.26 s: four false 20–30 µV spikes. (A spike or a burst on a QRS, the
#: cases above, had at most two weak fits beside it.)
COMMON_MODE_CLEAN_WEAK = 3
#: The second look (``common_mode_only``, on the ECG canceller's output): a subtracted
#: heartbeat leaves its misfit beside the step, and its fit, scaling the template over the
#: step, may have taken part of the step on the channels with a big heart. There a step-like
#: fit may leave up to AFTER_ECG_RESIDUAL × the noise variance (extra tuning seed 552,
#: 167.50 s: 14–20 µV on four channels explaining 0.52–0.59 left 3.9–5.1 ×; one was step-like
#: and a 24 µV spike was reported), and one step-like channel makes a common-mode step with
#: AFTER_ECG_CLEAN_WEAK clean weak fits, a pair with AFTER_ECG_PAIR_MEMBERS channels agreeing
#: in all (seed 625, 190.62 s: 12 and 11 µV left of 24 and 18 µV beside a step-like 22 µV;
#: 46 and 21 µV spikes were reported).
AFTER_ECG_RESIDUAL = 6.0
AFTER_ECG_CLEAN_WEAK = 2
AFTER_ECG_PAIR_MEMBERS = 3
#: A common-mode step's edge is also a span on every other channel, this long (s) after the
#: edge: a channel whose part of the step was too small or too spoilt to fit (10 µV in noise,
#: on a QRS) still reads its edge as a spike (tune-ptb-10k-b, 11.16 s: 13.5 µV).
COMMON_MODE_EDGE_S = 0.01
#: A span lasts until the step's tail is below this many times the channel's noise (σ) …
HOLD_NOISE = 1.0
#: … at least this long and at most this long (s) after the edge.
MIN_HOLD_S = 0.02
MAX_HOLD_S = 0.5
#: Noise (σ of the stream and of its 1 ms difference, from every NOISE_DECIMATION-th sample on
#: the absolute grid) per block of this length (s), the lower quartile of the last NOISE_HISTORY
#: blocks: their median was a 2.6 s A-train's, and a 33 µV common-mode step right after it on
#: that channel read as 4 σ (extra tuning seed 202, 97.42 s: reported as a 55 µV spike), a
#: 1.9 mV pop after a 900 µV train as no pop (seed 209, 144.08 s).
NOISE_BLOCK_S = 0.25
NOISE_HISTORY = 16
NOISE_DECIMATION = 4
#: Length (s) of the templates computed (tail horizon of the hold).
TEMPLATE_S = 0.5

KINDS = ("pop", "common_mode")

_T = TypeVar("_T")


def _step_design(before: int, response: np.ndarray) -> np.ndarray:
    """(before + len(response), 3) design of a window: offset, slope (over the window) and a
    step's ``response`` from ``before`` samples in (zero until then)."""
    m = before + len(response)
    return np.stack([np.ones(m), np.arange(m) / m,
                     np.concatenate([np.zeros(before), response])], axis=1)


class StepDetector:
    """Streaming pop / common-mode step detector on a band-passed, mains-free µV stream.

    Args:
        n_channels: channels per chunk.
        sample_rate_hz: sampling rate (Hz).
        bandpass_sos: the band-pass in front of this stage (second-order sections): the
            templates are its responses to decaying steps.
        start: absolute index of the first sample it will see.
        common_mode_only: find common-mode steps only, no pops, and decide them as soon as
            the long fit allows (:attr:`latency` shorter by QUIET_AFTER_S − FIT_S): the
            second look on the ECG canceller's output (see
            :class:`ionm_station.pipeline.chain.FreeRunChain`).
    """

    def __init__(self, n_channels: int, sample_rate_hz: float, bandpass_sos: np.ndarray,
                 start: int = 0, common_mode_only: bool = False) -> None:
        self.n_channels = n_channels
        self.sample_rate_hz = fs = float(sample_rate_hz)
        self._pre = max(1, round(PRE_S * fs))
        self._fit = max(4, round(FIT_S * fs))
        self._diff = max(1, round(0.001 * fs))
        self._spacing = max(1, round(CANDIDATE_SPACING_S * fs))
        self._search = max(1, round(EDGE_SEARCH_S * fs))
        self._settle = max(1, round(0.0005 * fs))  # the pre-screen's two looks after the edge
        self._later = max(self._settle + 1, round(0.003 * fs))
        self._min_hold = round(MIN_HOLD_S * fs)
        self._edge_hold = round(COMMON_MODE_EDGE_S * fs)
        self._max_hold = round(MAX_HOLD_S * fs)
        self._noise_block = max(16, round(NOISE_BLOCK_S * fs))
        n_t = max(self._fit, round(TEMPLATE_S * fs))
        t = np.arange(n_t) / fs
        responses = np.array([signal.sosfilt(bandpass_sos, np.exp(-t / tau)) for tau in TAUS_S])
        self._taus = np.array(TAUS_S)
        # tail envelope: the largest |response| from each sample on (for the hold)
        self._tail = np.maximum.accumulate(np.abs(responses)[:, ::-1], axis=1)[:, ::-1]
        self._short = max(4, round(SHORT_FIT_S * fs))
        # (projector, least-squares error of each amplitude per unit noise) of the long fit
        # (offset and slope over PRE_S + FIT_S) and of the short one
        self._projector, self._units = self._projection(responses[:, :self._fit], 1)
        self._short_projector, self._short_units = self._projection(
            responses[:, :self._short], SHORT_DEGREE)
        # samples of history a decision needs on either side of an edge
        self._before = self._pre + self._search + self._spacing
        self._beat_reach = round(BEAT_REACH_S * fs)
        self._beat_near = round(BEAT_NEAR_S * fs)
        # (no earlier beats for the second look: it is given none, it refits nothing)
        self._beat_history = 0 if common_mode_only else round(BEAT_HISTORY_S * fs)
        self._beat_jitter = max(1, round(BEAT_JITTER_S * fs))
        # the refit on earlier beats: its window (BEAT_BEFORE_S more before the long fit's),
        # the design per template (background, step; pops use the slow ones) and their bases
        self._beat_lead = round(BEAT_BEFORE_S * fs)
        self._slow = np.flatnonzero(self._taus >= BEAT_POP_MIN_TAU_S)
        self._slow_pop = np.flatnonzero(self._taus >= POP_MIN_TAU_S)
        self._beat_design = [_step_design(self._beat_lead + self._pre, response[:self._fit])
                             for response in responses]
        self._beat_bases = np.stack([np.linalg.qr(d)[0] for d in self._beat_design])
        self._beat_background = np.linalg.qr(self._beat_design[0][:, :2])[0]
        self._quiet_after = round(QUIET_AFTER_S * fs)  # a step after a quiet stretch: its window
        self._quiet_design = {int(k): _step_design(self._pre, responses[k, :self._quiet_after])
                              for k in self._slow}
        self.common_mode_only = common_mode_only
        self._residual_max = AFTER_ECG_RESIDUAL if common_mode_only else COMMON_MODE_RESIDUAL
        self._clean_weak_min = AFTER_ECG_CLEAN_WEAK if common_mode_only else COMMON_MODE_CLEAN_WEAK
        self._pair_members = (AFTER_ECG_PAIR_MEMBERS if common_mode_only
                              else COMMON_MODE_PAIR_MEMBERS)
        window = self._fit if common_mode_only else max(self._fit, self._quiet_after)
        self._after = (window + self._diff + self._spacing
                       + COMMON_MODE_SAMPLES)
        self.first = start
        self.reset()

    def reset(self) -> None:
        """Forget everything; the stream starts again at :attr:`first`."""
        self._pos = self.first                  # absolute index of _hist[0]
        self._hist = np.zeros((0, self.n_channels))
        # first sample not yet examined for an edge (on the grid of candidate blocks)
        self._next = -(-(self.first + self._before) // self._spacing) * self._spacing
        self._noise_rows: list[np.ndarray] = []  # (2, channels, k) |z|, |1 ms difference|
        self._noise_history = np.full((2, self.n_channels, NOISE_HISTORY), np.nan)
        self._noise_i = 0
        # σ in force from each absolute block boundary on (the last few), NaN before the first
        self._sigma_from = np.array([self.first], np.int64)
        self._sigmas = np.full((1, 2, self.n_channels), np.nan)
        self._taken_until = np.full(self.n_channels, -1, np.int64)  # edges decided up to here
        # the stream: _hist's rows and, BEAT_HISTORY_S further back, those of earlier beats
        self._past = Rows(self.n_channels, np.float64, start=self.first)
        self._beats: list[int] = []  # R peaks the ECG canceller knows (absolute), the last few
        #: of the spans the last :meth:`process` call returned, those whose channels carry the
        #: step itself (not a common-mode step's short hold on the other channels)
        self.stepped: list[ArtifactSpan] = []

    @property
    def latency(self) -> int:
        """Samples after a span's first sample by which :meth:`process` has reported it at
        the latest (its edge's candidate block, the fit after it and the look before it)."""
        return self._before + self._after

    @property
    def lead(self) -> int:
        """Samples a span begins before its step's edge (PRE_S; a span is clipped at the
        first sample, so near it the edge lies closer to the span's start)."""
        return self._pre

    @property
    def beat_margin(self) -> int:
        """Samples from the latest R peak a refit may use (see BEAT_NEAR_S) to the earliest
        :meth:`process` examines the edge it is for: R peaks reported this long before a chunk
        starts are all there is to know for its edges."""
        return (self._beat_near + self._beat_reach + self._beat_lead + self._pre + self._fit
                + self._after)

    def process(self, z: np.ndarray, start: int,
                beats: Sequence[int] = ()) -> list[ArtifactSpan]:
        """Examine the next consecutive chunk (n, n_channels) µV starting at absolute ``start``;
        returns the pop and common-mode spans decided with it. ``beats``: R peaks (absolute
        sample indices, ascending) known so far, e.g. :attr:`EcgCanceller.beats`; only their
        last BEATS_KEPT are kept (see BEAT_REACH_S)."""
        if len(beats):
            kept = BEATS_KEPT
            self._beats = sorted(set(self._beats[-kept:]) | set(beats[-kept:]))[-kept:]
        self.stepped = []
        if start != self._pos + len(self._hist):
            raise ValueError(f"chunk starts at {start}, expected {self._pos + len(self._hist)}")
        if not len(z):
            return []
        z = np.asarray(z, dtype=np.float64)
        self._learn_noise(z, start)
        self._past.append(z)
        end = self._past.stop
        # its rows from _pos on, not a copy (valid until the next append, which may move
        # them: _learn_noise reads it before that)
        self._hist = self._past.view(self._pos, end)
        spans: list[ArtifactSpan] = []
        # edges up to here have all the data they need (whole candidate blocks)
        last = (end - self._after) // self._spacing * self._spacing
        if last > self._next:
            spans = self._examine(self._next, last)
            self._next = last
        keep_from = min(max(self._pos, self._next - self._before), end)
        self._hist = self._hist[keep_from - self._pos:]
        self._pos = keep_from
        self._past.drop_before(self._next - self._before - self._beat_history)
        return spans

    # --- noise ---

    def _learn_noise(self, z: np.ndarray, start: int) -> None:
        """Noise per channel, per block of absolute boundaries from every NOISE_DECIMATION-th
        absolute index: σ of the stream's broadband noise (median |z(t) − z(t − 1)| / 0.6745 /
        √2, for the fits: ECG and wander barely move it) and of its 1 ms difference (median
        |z(t) − z(t − 1 ms)| / 0.6745, for the candidates: the stream is band-limited, so its
        samples 1 ms apart are less alike than neighbours); each the lower quartile of the
        last NOISE_HISTORY blocks without a gap."""
        before = self._hist[len(self._hist) - self._diff:]
        zz = np.concatenate([np.full((self._diff - len(before), self.n_channels), np.nan),
                             before, z]) if len(before) < self._diff else np.concatenate([before, z])
        first = (-start) % NOISE_DECIMATION
        zt = z[first::NOISE_DECIMATION]  # the samples taken
        m = len(zt)
        # channel-major, so that a block's values per channel are contiguous for the median;
        # zz[i] is 1 ms before z[i], zz[i + diff - 1] one sample before it
        values = np.empty((2, self.n_channels, m))
        near, far = values[0].T, values[1].T
        np.subtract(zt, zz[first + self._diff - 1::NOISE_DECIMATION][:m], out=near)
        np.divide(np.abs(near, out=near), math.sqrt(2.0), out=near)
        np.abs(np.subtract(zt, zz[first::NOISE_DECIMATION][:m], out=far), out=far)
        pos = start
        while pos < start + len(z):
            stop = min((pos // self._noise_block + 1) * self._noise_block, start + len(z))
            # the samples taken in [pos, stop): those at start + first + NOISE_DECIMATION × i
            lo, hi = (min(max(-((first + start - at) // NOISE_DECIMATION), 0), m)
                      for at in (pos, stop))
            self._noise_rows.append(values[..., lo:hi])
            if stop % self._noise_block == 0:
                block = np.concatenate(self._noise_rows, axis=-1)
                self._noise_rows = []
                if block.shape[-1] and np.isfinite(block).all():
                    self._noise_history[:, :, self._noise_i % NOISE_HISTORY] = \
                        median_last(block) / 0.6745
                    self._noise_i += 1
                    history = self._noise_history[:, :, :min(self._noise_i, NOISE_HISTORY)]
                    low = (history.shape[-1] - 1) // 4  # the lower quartile of the blocks
                    sigma = np.partition(history, low, axis=-1)[..., low]
                    self._sigma_from = np.append(self._sigma_from[-NOISE_HISTORY:], stop)
                    self._sigmas = np.concatenate([self._sigmas[-NOISE_HISTORY:], sigma[None]])
            pos = stop

    def _sigma_at(self, index: np.ndarray, difference: bool = False) -> np.ndarray:
        """(len(index), channels) σ (µV) of the stream (or of its 1 ms difference) in force at
        absolute ``index``: that of the last noise block ended at or before it (so it does not
        depend on the chunking)."""
        return self._sigmas[np.searchsorted(self._sigma_from, index, side="right") - 1,
                            int(difference)]

    # --- fitting ---

    def _projection(self, templates: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
        """Projector columns for windows of PRE_S + the templates' length: the orthonormal
        basis of the background (a polynomial of ``degree``), of background plus each template
        (zero before the edge), then each template's amplitude row; and each amplitude's
        least-squares error per unit noise."""
        n = self._pre + templates.shape[1]
        tt = np.arange(n) / n
        background = [tt ** p for p in range(degree + 1)]
        bases = []
        for template in templates:
            x = np.stack(background + [np.concatenate([np.zeros(self._pre), template])], axis=1)
            bases.append((np.linalg.qr(x)[0], np.linalg.pinv(x)[-1]))
        q0 = np.linalg.qr(np.stack(background, axis=1))[0]
        projector = np.concatenate([q0] + [q for q, _ in bases]
                                   + [row[:, None] for _, row in bases], axis=1)
        return projector, np.array([np.linalg.norm(row) for _, row in bases])

    def _fits(self, windows: np.ndarray, ok: np.ndarray,
              short: bool = False) -> dict[str, np.ndarray]:
        """Best template fit of each row of ``windows`` (rows, offsets, window) at the offset
        whose window, one of the finite ones (``ok``: rows × offsets), it fits best: that
        offset's index ``pick``, amplitude ``a`` (µV), template index ``k``, residual power
        ``rss`` (µV²·samples), ``explained`` fraction of the background-removed power, the
        amplitude's least-squares error per unit noise (``unit``) and the window's length
        ``n``; the same of the best slow step (τ ≥ POP_MIN_TAU_S) as ``slow_k``, ``slow_a``,
        ``slow_unit`` and ``slow_explained``. ``short``: the short fit, over the window's first
        PRE_S + SHORT_FIT_S."""
        if short:
            windows = windows[..., :self._pre + self._short]
        projector, units = ((self._short_projector, self._short_units) if short
                            else (self._projector, self._units))
        nb = (SHORT_DEGREE if short else 1) + 1  # background columns
        energy = np.einsum("...i,...i->...", windows, windows)
        products = windows @ projector  # one BLAS product for every basis and amplitude
        n_k = len(self._taus)
        squares = products[..., :-n_k] ** 2
        null = energy - squares[..., :nb].sum(-1)
        rss = energy[..., None] - squares[..., nb:].reshape(
            *squares.shape[:-1], n_k, nb + 1).sum(-1)
        # each row's offset is the one its best template fits best; the rest is looked up at
        # that offset only, on flat (row × offset) indices (looking it all up at every offset
        # cost more than the fits' arithmetic)
        n_rows, n_offsets = ok.shape
        k = np.argmin(rss, axis=-1).ravel()
        rss = rss.reshape(n_rows * n_offsets, n_k)
        best_rss = rss[np.arange(len(rss)), k].reshape(n_rows, n_offsets)
        pick = np.argmin(np.where(ok, best_rss, np.inf), axis=1)
        rows = np.arange(n_rows)
        at = rows * n_offsets + pick
        k, rss, null = k[at], rss[at], null.ravel()[at]
        amplitudes = products.reshape(n_rows * n_offsets, -1)[at, -n_k:]
        best_rss = rss[rows, k]
        # the best of the slow steps (see POP_SLOW_FIT)
        slow = self._slow_pop[np.argmin(rss[:, self._slow_pop], axis=-1)]
        slow_rss = rss[rows, slow]
        return {"pick": pick, "k": k, "rss": best_rss, "a": amplitudes[rows, k],
                "unit": units[k], "explained": 1.0 - best_rss / np.maximum(null, 1e-12),
                "n": np.full(n_rows, windows.shape[-1]), "slow_k": slow,
                "slow_a": amplitudes[rows, slow], "slow_unit": units[slow],
                "slow_explained": 1.0 - slow_rss / np.maximum(null, 1e-12)}

    def _windows(self, channels: np.ndarray, edges: np.ndarray) -> np.ndarray:
        """(len(edges), window) samples of ``channels`` around absolute ``edges``."""
        h, n = self._hist, self._pre + self._fit
        # (start, channel, window) view (as sliding_window_view, without its checks)
        windows = as_strided(h, (len(h) - n + 1, h.shape[1], n),
                             (h.strides[0], h.strides[1], h.strides[0]), writeable=False)
        return windows[edges - self._pos - self._pre, channels]

    # --- decisions ---

    def _examine(self, first: int, last: int) -> list[ArtifactSpan]:
        """Find and judge the edges in [first, last)."""
        h = self._hist
        g = self._spacing
        lo = first - self._pos - g  # one candidate block either side
        hi = last - self._pos + g
        d = np.subtract(h[lo + self._diff:hi + self._diff], h[lo:hi])
        d = np.abs(d, out=d).reshape(-1, g, self.n_channels)
        peak = max_middle(d)  # each block's largest 1 ms difference
        if not np.isfinite(peak).all():  # (a maximum is NaN or inf where any value is)
            d = np.where(np.isfinite(d), d, -1.0)
            peak = max_middle(d)
        sigma = self._sigma_at(self._pos + lo + g * np.arange(len(peak)), difference=True)
        with np.errstate(invalid="ignore"):  # no σ yet: NaN, nothing is loud
            cand = (peak[1:-1] >= CANDIDATE_SIGMA * sigma[1:-1]) \
                & (peak[1:-1] >= peak[:-2]) & (peak[1:-1] > peak[2:])
        blocks, chans = np.nonzero(cand)
        if not len(blocks):
            return []
        # where in its block (the first of equals): looked up for the candidates only
        rows = (blocks + 1) * g + np.argmax(d[blocks + 1, :, chans], axis=1)
        at = rows + lo + self._pos  # absolute candidate indices
        order = np.lexsort((chans, at))
        at, chans = at[order], chans[order]
        # each candidate's edge: the sharpest one-sample jump within its difference, ± 1 sample
        reach = np.arange(-self._search, self._diff + 1)
        jumps = np.abs(np.diff(h[(at - self._pos)[:, None] + reach, chans[:, None]], axis=1))
        sharpest = at + reach[np.argmax(np.where(np.isfinite(jumps), jumps, -1.0), axis=1)] + 1
        # a step's filtered edge is still on the same side of the baseline 3 ms later (a
        # MUAP's or QRS's has mostly turned): only those are fitted
        rows = sharpest - self._pos
        base = h[rows[:, None] + np.arange(-self._pre, 0), chans[:, None]].mean(axis=1)
        early = h[rows + self._settle, chans] - base
        later = h[rows + self._later, chans] - base
        with np.errstate(invalid="ignore", divide="ignore"):
            keep = later / early >= PRESCREEN_RATIO
        if not keep.any():
            return []
        at, chans, sharpest = at[keep], chans[keep], sharpest[keep]
        own = self._best(chans, sharpest, 1)
        steplike = np.flatnonzero(own["steplike"])
        if not len(steplike):
            return []
        # every channel at each step-like candidate's edge (± COMMON_MODE_SAMPLES)
        c = self.n_channels
        every = self._best(np.tile(np.arange(c), len(steplike)),
                           np.repeat(own["edge"][steplike], c), COMMON_MODE_SAMPLES)
        every = {key: val.reshape(len(steplike), c) for key, val in every.items()}
        spans: list[ArtifactSpan] = []
        for j, i in enumerate(steplike):
            ch, t0 = int(chans[i]), int(own["edge"][i])
            if t0 <= self._taken_until[ch]:
                continue
            span = None
            with np.errstate(invalid="ignore"):
                members = np.flatnonzero(every["valid"][j] & (
                    every["steplike"][j]
                    | ((every["explained"][j] >= COMMON_MODE_WEAK_FIT)
                       & (every["significance"][j] >= COMMON_MODE_SIGNIFICANCE))))
            fits, amplitude, template = every["steplike"][j], every["a"][j], every["k"][j]
            n_clean = n_steplike = fits.sum()
            way = np.sign(amplitude[fits])
            single = n_steplike == 1
            if 0 < n_steplike < COMMON_MODE_MIN_CHANNELS \
                    and abs(way.sum()) == n_steplike:
                # (the channels refitted count towards a pair, never towards a common-mode
                # step of their own: the pair's agreement and dissent rules still hold)
                least = abs(amplitude[fits][0]) / COMMON_MODE_SPREAD if single else 0.0
                if not self.common_mode_only:
                    fits, amplitude, template = self._beat_members(j, t0, every, way[0], least)
                if single and fits.sum() < COMMON_MODE_MIN_CHANNELS:
                    fits = fits | self._clean_weak(j, every, way[0], least)
                n_steplike = fits.sum()
                way = np.sign(amplitude[fits])
            members = np.union1d(members, np.flatnonzero(fits))
            agree = members[np.sign(amplitude[members]) == (way[0] if len(way) else 0.0)]
            against = np.setdiff1d(members, agree)
            # a channel whose window holds far more than a step (a QRS) cannot dissent
            dissent = against[every["residual"][j, against] <= self._residual_max]
            pair = (n_steplike >= (COMMON_MODE_MIN_CHANNELS if single else COMMON_MODE_PAIR)
                    and abs(way.sum()) == n_steplike
                    and len(agree) >= self._pair_members
                    and len(dissent) <= COMMON_MODE_DISSENT)
            if (n_clean < COMMON_MODE_MIN_CHANNELS and pair) \
                    or 0 < n_steplike == abs(way.sum()):
                # a weak fit the other way from every step-like channel is something else (a
                # QRS's end: extra seed 756, 50.33 s, −28 µV against five channels' +19…+32,
                # held channel 0 for 127 ms and with it a 728 µV spike 122 ms on)
                members = agree
            if n_clean >= COMMON_MODE_MIN_CHANNELS or pair:
                span = self._span("common_mode", t0, members, amplitude[members],
                                  template[members], every["sigma"][j, members])
                others = np.setdiff1d(np.arange(c), members)
                if len(others):
                    spans += [span, ArtifactSpan("common_mode", span.start, t0 + self._edge_hold,
                                                 tuple(int(o) for o in others))]
                    self.stepped.append(span)
                    span = None
                self._taken_until[:] = np.maximum(self._taken_until, t0 + self._spacing)
            elif not self.common_mode_only:
                pop = self._pop(own, i) or self._pop_refit(ch, t0, float(own["sigma"][i]))
                if pop is not None:
                    span = self._span("pop", t0, np.array([ch]), np.array([pop[0]]),
                                      np.array([pop[1]]), own["sigma"][i:i + 1])
                    self._taken_until[ch] = max(self._taken_until[ch], t0 + self._spacing)
            if span is not None:
                spans.append(span)
                self.stepped.append(span)
        return spans

    def _clean_weak(self, j: int, every: dict[str, np.ndarray], way: float,
                    least: float) -> np.ndarray:
        """Channels of candidate ``j`` of ``every`` (see :meth:`_best`) whose weak fit is a
        clean small step ``way`` (±1) of at least ``least`` µV (COMMON_MODE_CLEAN_WEAK), all of
        them when there are at least COMMON_MODE_CLEAN_WEAK (AFTER_ECG_CLEAN_WEAK on the
        second look), else none (bool per channel)."""
        with np.errstate(invalid="ignore"):
            clean = (every["valid"][j] & ~every["steplike"][j]
                     & (every["explained"][j] >= COMMON_MODE_WEAK_FIT)
                     & (every["significance"][j] >= COMMON_MODE_SIGNIFICANCE)
                     & (every["residual"][j] <= self._residual_max)
                     & (np.sign(every["a"][j]) == way) & (np.abs(every["a"][j]) >= least))
        return clean if clean.sum() >= self._clean_weak_min else np.zeros_like(clean)

    def _beat_members(self, j: int, t0: int, every: dict[str, np.ndarray], way: float,
                      least: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidate ``j`` of ``every`` (see :meth:`_best`, channels along the second axis),
        whose step-like channels step ``way`` (±1) at edge ``t0``, with each channel whose
        window a heartbeat spoilt refitted on earlier beats (:meth:`_beat_step`, the
        step-like channels' templates): step-like channels, amplitudes (µV) and template
        indices, those refitted that step ``way`` by at least ``least`` µV counted in."""
        fits, amplitude, template = (every[key][j].copy() for key in ("steplike", "a", "k"))
        templates = np.unique(every["k"][j, fits])
        with np.errstate(invalid="ignore"):
            spoilt = np.flatnonzero(every["valid"][j] & ~fits
                                    & (every["residual"][j] > COMMON_MODE_RESIDUAL))
        for ch in spoilt.tolist():
            refit = self._beat_step(ch, t0, templates, float(every["sigma"][j, ch]))
            if refit is not None and np.sign(refit[0]) == way and abs(refit[0]) >= least:
                fits[ch] = True
                amplitude[ch], template[ch] = refit
        return fits, amplitude, template

    def _pop(self, fit: dict[str, np.ndarray], i: int) -> tuple[float, int] | None:
        """Candidate ``i`` of ``fit`` (see :meth:`_best`) as a pop on its channel by itself —
        a clean long fit of a slow step, or a slow step nearly as good as a faster best one
        (POP_SLOW_FIT) —: its amplitude (µV) and template index, else None."""
        if fit["short"][i]:
            return None
        if (fit["significance"][i] >= POP_SIGNIFICANCE and fit["explained"][i] >= POP_FIT
                and self._taus[fit["k"][i]] >= POP_MIN_TAU_S):
            return float(fit["a"][i]), int(fit["k"][i])
        amplitude = float(fit["slow_a"][i])
        if (fit["slow_explained"][i] >= POP_SLOW_FIT
                and abs(amplitude) >= POP_SIGNIFICANCE * fit["slow_unit"][i] * fit["sigma"][i]):
            return amplitude, int(fit["slow_k"][i])
        return None

    def _pop_refit(self, ch: int, t0: int, sigma: float) -> tuple[float, int] | None:
        """A pop at edge ``t0`` on channel ``ch`` (noise σ ``sigma``, µV) that the plain fits
        missed: after a quiet stretch (QUIET_FIT) or over two of the last beats known
        (BEAT_REACH_S); its amplitude (µV) and template index, or None."""
        w = self._beat_window(ch, t0)
        if w is None or not np.isfinite(sigma):
            return None
        null = w @ w - np.sum((w @ self._beat_background) ** 2)
        quiet = self._quiet_fit(ch, t0, sigma)
        if quiet is not None:
            return quiet
        return self._over_beats(w, ch, t0, self._slow, lambda stretch, k, first: self._beat_fit(
            w, stretch, k, sigma, null, first))

    def _beat_window(self, ch: int, t0: int) -> np.ndarray | None:
        """Channel ``ch`` from BEAT_BEFORE_S + PRE_S before edge ``t0`` to the long fit's end
        (µV); None where it holds a gap."""
        lead = self._beat_lead + self._pre
        w = self._past.window(t0 - lead, t0 + self._fit)[:, ch]
        return w if np.isfinite(w).all() else None

    def _over_beats(self, w: np.ndarray, ch: int, t0: int, templates: np.ndarray,
                    accept: Callable[[np.ndarray, int, _T | None], _T | None]) -> _T | None:
        """Window ``w`` of channel ``ch`` (from BEAT_BEFORE_S + PRE_S before edge ``t0``) on
        the last beats known (BEAT_REACH_S): the first ``accept(stretch, template index,
        None)`` that is not None for one of them and ``accept(stretch, template index, that
        result)`` for the same place of an earlier one, else None."""
        lead = len(w) - self._fit
        known = [b for b in self._beats
                 if b + self._beat_reach + len(w) <= t0 - self._beat_near]
        if len(known) < 2:
            return None
        beats = known[-BEAT_COUNT:][::-1]  # the latest first
        for i, anchor in enumerate(beats):
            # the window's place in this beat: R peak + the offset that explains most …
            first = anchor - self._beat_reach - lead
            k, offset, stretch = self._best_stretch(w, ch, first, 2 * self._beat_reach,
                                                    templates)
            first_fit = None if stretch is None else accept(stretch, k, None)
            if first_fit is None:
                continue
            # … and the same place in an earlier one (± BEAT_JITTER_S: R peaks' own jitter)
            for other in beats[i + 1:]:
                at = other + first + offset - anchor - self._beat_jitter
                _, _, again = self._best_stretch(w, ch, at, 2 * self._beat_jitter,
                                                 np.array([k]))
                fit = None if again is None else accept(again, k, first_fit)
                if fit is not None:
                    return fit
        return None

    def _best_stretch(self, w: np.ndarray, ch: int, first: int, span: int,
                      templates: np.ndarray) -> tuple[int, int, np.ndarray | None]:
        """Of the stretches of channel ``ch`` starting at ``first`` … ``first + span``
        (absolute), the one that, with the background and one of ``templates``, fits window
        ``w`` best: (template index, its start − ``first``, the stretch; None where the
        history holds none whole)."""
        n = len(w)
        past = self._past.window(first, first + span + n)[:, ch]
        finite = np.isfinite(past)
        clean = np.where(finite, past, 0.0)
        bad = sliding_window_view(~finite, n).any(axis=1) if not finite.all() else None
        power = np.concatenate(([0.0], np.cumsum(clean ** 2)))
        energy = power[n:] - power[:-n]  # each stretch's energy
        bases = np.concatenate(self._beat_bases[templates], axis=1)  # 3 columns per template
        # every stretch's dot products with w and the bases at once: correlation by FFT
        kernels = np.concatenate([w[:, None], bases], axis=1).T[:, ::-1]
        dots = signal.fftconvolve(clean[None, :], kernels, mode="valid", axes=1)
        on_w, on_bases = dots[0], dots[1:].T
        w_bases = w @ bases
        best = (np.inf, int(templates[0]), 0)
        for j, k in enumerate(templates):
            cols = slice(3 * j, 3 * j + 3)
            left = w @ w - w_bases[cols] @ w_bases[cols]  # what the step fit leaves
            num = on_w - on_bases[:, cols] @ w_bases[cols]
            den = energy - np.sum(on_bases[:, cols] ** 2, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                score = np.where(den > 1e-9 * np.maximum(energy, 1e-12), num ** 2 / den, 0.0)
            if bad is not None:
                score[bad] = -np.inf
            i = int(np.argmax(score))
            if np.isfinite(score[i]) and left - score[i] < best[0]:
                best = (left - score[i], int(k), i)
        _, k, i = best
        return k, i, (clean[i:i + n] if np.isfinite(best[0]) else None)

    def _quiet_fit(self, ch: int, t0: int, sigma: float) -> tuple[float, int] | None:
        """Channel ``ch`` at edge ``t0`` as a slow step after a quiet stretch (see QUIET_FIT):
        the step's amplitude (µV) and template index, or None."""
        lead = self._beat_lead
        start = t0 - self._pre
        w = self._past.window(start - lead, start + self._pre + self._quiet_after)[:, ch]
        if not np.isfinite(w).all():
            return None
        line = np.stack([np.ones(lead), np.arange(lead) / lead], axis=1)
        before = w[:lead] - line @ np.linalg.lstsq(line, w[:lead], rcond=None)[0]
        quiet_uv = math.sqrt(float(np.mean(before ** 2)))
        tail = w[lead:]
        background = self._quiet_design[int(self._slow[0])][:, :2]
        null = float(np.sum((tail - background @ np.linalg.lstsq(background, tail,
                                                                 rcond=None)[0]) ** 2))
        best = None
        for k in self._slow[self._taus[self._slow] >= POP_MIN_TAU_S]:
            design = self._quiet_design[int(k)]
            coef, *_ = np.linalg.lstsq(design, tail, rcond=None)
            rss = float(np.sum((tail - design @ coef) ** 2))
            error = sigma * math.sqrt(max(np.linalg.pinv(design.T @ design)[2, 2], 0.0))
            amplitude = float(coef[2])
            if (rss <= (1.0 - QUIET_FIT) * null and abs(amplitude) >= QUIET_MIN_UV
                    and abs(amplitude) >= POP_SIGNIFICANCE * error
                    and quiet_uv <= QUIET_BEFORE * abs(amplitude)
                    and (best is None or rss < best[0])):
                best = (rss, amplitude, int(k))
        return None if best is None else (best[1], best[2])

    def _beat_terms(self, w: np.ndarray, stretch: np.ndarray,
                    k: int) -> tuple[float, float, float, float, float]:
        """Window ``w`` fitted by the background, template ``k`` and an earlier beat's
        ``stretch``: what the fit leaves and what it leaves without the step (µV²·samples),
        the step's amplitude (µV), its least-squares error per unit noise, and the beat's
        scale."""
        design = np.column_stack([self._beat_design[k], stretch])
        coef, *_ = np.linalg.lstsq(design, w, rcond=None)
        rss = float(np.sum((w - design @ coef) ** 2))
        beat_only = np.delete(design, 2, axis=1)
        rss_beat = float(np.sum((w - beat_only @ np.linalg.lstsq(beat_only, w, rcond=None)[0])
                                ** 2))
        unit = math.sqrt(max(np.linalg.pinv(design.T @ design)[2, 2], 0.0))
        return rss, rss_beat, float(coef[2]), unit, float(coef[3])

    def _beat_fit(self, w: np.ndarray, stretch: np.ndarray, k: int, sigma: float,
                  null: float, first: tuple[float, int] | None) -> tuple[float, int] | None:
        """The step's amplitude (µV) and ``k`` if :meth:`_beat_terms` make a pop (see
        BEAT_FIT), else None. ``sigma``: the noise (µV); ``null``: what the background alone
        leaves (µV²·samples); ``first``: the same step fitted on a later beat (its amplitude
        and template), which this one must confirm (BEAT_AGREE), or None."""
        rss, rss_beat, amplitude, unit, scale = self._beat_terms(w, stretch, k)
        least = BEAT_POP_MIN_UV if first is None else BEAT_AGREE * abs(first[0])
        if (rss <= (1.0 - BEAT_FIT) * null and rss <= (1.0 - BEAT_STEP_SHARE) * rss_beat
                and abs(amplitude) >= least
                and (first is None or np.sign(amplitude) == np.sign(first[0]))
                and abs(amplitude) >= POP_SIGNIFICANCE * unit * sigma
                and BEAT_SCALE[0] <= scale <= BEAT_SCALE[1]):
            return amplitude, k
        return None

    def _beat_step(self, ch: int, t0: int, templates: np.ndarray,
                   sigma: float) -> tuple[float, int] | None:
        """A common-mode step's part on channel ``ch`` at edge ``t0`` (one of ``templates``, noise σ
        ``sigma`` µV) that a heartbeat under it spoilt (see COMMON_MODE_BEAT): its amplitude
        (µV) and template index where the window fits as the step plus the same place of two
        earlier beats, leaving noise, else None."""
        w = self._beat_window(ch, t0)
        if w is None or not np.isfinite(sigma):
            return None

        def accept(stretch: np.ndarray, k: int, _: object) -> tuple[float, int] | None:
            rss, _, amplitude, unit, scale = self._beat_terms(w, stretch, k)
            fits = (rss <= COMMON_MODE_BEAT_RESIDUAL * len(w) * sigma * sigma
                    and abs(amplitude) >= COMMON_MODE_SIGNIFICANCE * unit * sigma
                    and BEAT_SCALE[0] <= scale <= BEAT_SCALE[1])
            return (amplitude, k) if fits else None

        return self._over_beats(w, ch, t0, templates, accept)

    def _best(self, channels: np.ndarray, edges: np.ndarray, lags: int) -> dict[str, np.ndarray]:
        """Best template fit of each (channel, edge) pair over edge positions within ± ``lags``
        samples: as :meth:`_fits`, plus the ``edge`` chosen, whether its window was all finite
        (``valid``), the noise ``sigma`` there, the step's ``significance`` (|A| over its
        least-squares error), the ``residual`` over the noise and whether it is ``steplike``.
        The long fit's, unless only the short fit (see SHORT_FIT_S) is step-like: then the
        short one's (``short`` True)."""
        offsets = np.arange(-lags, lags + 1)
        shifted = edges[:, None] + offsets[None, :]
        wins = self._windows(np.repeat(channels, len(offsets)), shifted.ravel())
        wins = wins.reshape(len(edges), len(offsets), -1)
        ok = np.isfinite(wins).all(-1)
        if not ok.all():
            wins = np.where(ok[..., None], wins, 0.0)
        rows = np.arange(len(edges))
        best = None
        for short in (False, True):
            one = self._fits(wins, ok, short)
            pick = one.pop("pick")
            one["edge"] = shifted[rows, pick]
            one["valid"] = ok[rows, pick]
            one["sigma"] = self._sigma_at(one["edge"])[rows, channels]
            one["significance"] = np.abs(one["a"]) / (one["unit"] * one["sigma"])
            one["residual"] = one["rss"] / (one["n"] * one["sigma"] ** 2)
            with np.errstate(invalid="ignore"):  # no σ yet: NaN, not step-like
                fits = (one["explained"] >= SHORT_FIT_EXPLAINED) if short else (
                    (one["explained"] >= COMMON_MODE_MIN_FIT)
                    & ((one["residual"] <= self._residual_max)
                       | (one["explained"] >= COMMON_MODE_FIT)))
                one["steplike"] = one["valid"] & fits \
                    & (one["significance"] >= COMMON_MODE_SIGNIFICANCE)
            one["short"] = np.full(len(edges), short)
            if best is None:
                best = one
            else:
                take = one["steplike"] & ~best["steplike"]
                if take.any():
                    best = {key: np.where(take, one[key], val) for key, val in best.items()}
        return best

    def _span(self, kind: str, t0: int, channels: np.ndarray, amplitude_uv: np.ndarray,
              template: np.ndarray, sigma_uv: np.ndarray) -> ArtifactSpan:
        """Span of a step at ``t0`` on ``channels``: until the slowest tail is below noise."""
        hold = self._min_hold
        for a, k, sigma in zip(amplitude_uv, template, sigma_uv):
            below = np.flatnonzero(np.abs(a) * self._tail[k] <= HOLD_NOISE * sigma)
            hold = max(hold, int(below[0]) if len(below) else self._max_hold)
        return ArtifactSpan(kind, max(self.first, t0 - self._pre), t0 + min(hold, self._max_hold),
                            tuple(int(c) for c in channels))
