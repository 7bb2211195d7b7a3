"""Streaming mains-interference canceller for multichannel EMG (µV).

Method: block-wise harmonic regression locked to a tracked mains phase.

* The stream is cut into blocks of ``block_s`` (default 0.1 s) at fixed absolute sample
  boundaries, so the output does not depend on how the caller chunks the record.
* A Kalman filter tracks the mains phase, and each harmonic's phase on its own: the common
  phase θ (rad), angular frequency ω (rad/s) and its rate ω̇ (rad/s²), and for every harmonic
  h ≥ 2 its own phase offset ψ_h (rad) and frequency offset ν_h (rad/s) from h·θ. Harmonic h
  is evaluated analytically from the absolute sample index, φ_h(τ) = h·(θ_c + ω·τ + ½·ω̇·τ²)
  + ψ_h + ν_h·τ (τ in s from the block centre). A harmonic is thus not h × a fundamental
  estimate with its error multiplied by h: its own phase is measured every block and corrects
  its own state (a weak harmonic, whose own measurement says little, follows h·θ).
* While a block streams in, the canceller subtracts Re Σ_h g_h,c·P_h,c · e^{i·φ_h(τ)} (h = 1 …
  ``n_harmonics``, P_h,c the complex amplitude of harmonic h on channel c in µV, g_h,c its
  Wiener gain max(0, 1 − E|error|²/|P|²), so a harmonic that is not there is not added back)
  using only parameters learnt from earlier blocks: the stage is causal, ``delay == 0``.
* When a block is complete, a least-squares fit of an offset plus cos/sin φ_h on every
  channel gives that block's complex amplitudes a_h,c. Their phase against P, harmonic by
  harmonic (channels inverse-variance weighted), is the Kalman measurement: the tracker follows
  off-nominal (± a few Hz) and drifting mains (drifting by at most
  :data:`MAX_FREQUENCY_RATE_HZ_S`). The amplitudes, turned by the phase correction
  the tracker made for their harmonic, update P by exponential smoothing with time constant
  ``amplitude_tau_s`` (a running mean until that much data is in, each block counting as much
  as the channel's noise floor then was low against its present one); a channel whose block
  amplitudes misfit P by far more than usual (a lead moved) is smoothed with
  :data:`AMPLITUDE_FAST_TAU_S` until it fits again.
* Robustness: a channel whose block holds a non-finite sample or a sample of magnitude ≥
  ``freeze_uv`` (electrocautery, rails) teaches nothing; if no channel is usable the tracker
  just predicts across the block (its uncertainty grows, so it re-locks quickly afterwards).
  Samples the caller holds (after a rail, the band-pass decaying) teach no amplitude but still
  measure the phase, so the tracker re-locks on the first clean block after cautery.
  A channel whose block residual variance exceeds its tracked noise floor (EMG bursts, trains)
  updates P with a gain scaled down by the ratio, and not at all beyond ``ACTIVITY_RATIO``. The
  floor quickly follows quieter blocks down but rises by at most ``FLOOR_RISE_PER_S``: were it
  to follow a long train up, the train (e.g. a B-train whose 4th harmonic sits on 2 × 59.5 Hz)
  would be learnt and re-emitted as a fading sinusoid (an "echo") after it stops. A
  sinusoidal train within a fraction of a hertz of a harmonic (an A-train at 119.6 Hz on
  2 × 59.5 Hz) is fitted whole by the block, so it leaves the residual at the floor; it shows
  as that harmonic's amplitude misfitting P far beyond its usual (``HARMONIC_OUTLIER_RATIO``)
  while the fundamental fits, and such a harmonic teaches nothing (a moved lead moves the
  fundamental too) for up to ``HARMONIC_OUTLIER_MAX_S``: a line that stays is mains. While a
  channel's usual misfit is still being learnt, only a far larger misfit counts
  (``HARMONIC_OUTLIER_SETTLING_RATIO``), from ``OUTLIER_SETTLE_S`` of its blocks on. The phase
  measurement weights every channel by the inverse of its block residual variance,
  down-weights harmonics whose amplitude does not fit P (an EMG train at 120 Hz sits on the
  2nd harmonic of 60 Hz), and an innovation far outside its predicted spread has its variance
  inflated (soft gate). NaN rows pass as NaN.
* With ``mains_hz=None`` a 50 Hz and a 60 Hz tracker both learn from the first block on and
  the output is the one whose harmonics (50/100/150 vs 60/120/180 Hz, fitted jointly) explain
  more power so far, so mains is cancelled from the second block on; after ``detect_s`` of
  usable signal the leader becomes :attr:`MainsCanceller.detected_hz` and goes on alone. (A
  canceller that passed the first 0.5 s through left mains in the ECG canceller's first
  templates: lines 20 dB above the floor 6–8 s into the real-ECG cases.)

Cancellation is equivalent to a set of adaptive notches a few tenths of a hertz wide that
follow the mains frequency, so broadband EMG, even near the harmonics, is left intact.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

#: A block whose residual variance exceeds this many times the channel's noise floor holds EMG
#: activity: the amplitudes do not learn from it.
ACTIVITY_RATIO = 3.0
#: A dead lead: block residual variance below this fraction of the floor …
DEAD_RATIO = 0.1
#: … and its fundamental below this fraction of the learnt one …
DEAD_MAINS_FRACTION = 0.2
#: … on a channel that has learnt at least this much mains (µV).
DEAD_MIN_MAINS_UV = 1.0
#: … learnt well: its square at least this many times its squared standard error.
DEAD_MIN_SNR = 25.0
#: A block whose peak-to-peak is below this (µV) is flat (lead-off), not signal.
FLAT_UV = 0.5
#: Nominal mains frequencies the detector chooses between (Hz).
NOMINAL_MAINS_HZ = (50.0, 60.0)
#: Harmonics compared by the 50/60 Hz detector (50/100/150 vs 60/120/180 Hz).
DETECT_HARMONICS = 3
#: Highest harmonic frequency kept, as a fraction of the sampling rate.
MAX_HARMONIC_OF_FS = 0.45
#: Initial standard deviation of the mains frequency about nominal (Hz).
INITIAL_FREQUENCY_SD_HZ = 1.0
#: Initial standard deviation of the mains frequency rate (Hz/s).
INITIAL_FREQUENCY_RATE_SD_HZ_S = 0.1
#: Normalised amplitude misfit (1 = noise alone) above which a harmonic of a channel is
#: down-weighted in the phase measurement.
MISFIT_TOLERANCE = 9.0
#: Normalised squared phase innovation (1 = as expected) beyond which the measurement variance
#: is inflated in proportion, so outliers (EMG trains locked to a harmonic) barely move the tracker.
INNOVATION_GATE = 16.0
#: Fastest rise of a channel's tracked noise floor (factor per second; it falls quickly). Slow
#: enough that a sustained train (B-trains last up to ~10 s) cannot lift the floor to its own
#: level and so be learnt as mains; a genuinely noisier channel resumes learning within seconds.
FLOOR_RISE_PER_S = 1.05
#: Smallest phase-measurement variance the tracker trusts (rad²).
MIN_PHASE_VARIANCE_RAD2 = 1e-8
#: Default limit of the tracked frequency about nominal (Hz).
MAX_OFFSET_HZ = 3.0
#: Largest tracked rate of change of the mains frequency (Hz/s): a grid drifts by hundredths
#: of a hertz per second. Unbounded, a rate misread in the first blocks (a stream started in a
#: cautery's recovery tail, seed 650: 0.8 Hz/s) ran the tracker off to the frequency limit.
MAX_FREQUENCY_RATE_HZ_S = 0.1
#: Kalman transitions over up to this many blocks are cached (longer ones follow gaps).
CACHED_TRANSITIONS = 16
#: Default time constant (s) of the harmonic-amplitude smoothing: long enough that broadband
#: noise near a harmonic barely moves the learnt amplitude (at 1 s a channel with 3 µV of white
#: noise kept ~0.06 µV of amplitude error, ~3 dB above the floor at 5 kHz), short enough to
#: follow a lead being moved; until that much signal is in, a running mean (fast start).
AMPLITUDE_TAU_S = 4.0
#: Time constant (s) of the amplitude smoothing while a channel's amplitudes are changing (a
#: lead moved): the block amplitudes then misfit the learnt ones …
AMPLITUDE_FAST_TAU_S = 0.3
#: … by this many times their usual misfit (mean over the harmonics of each one's normalised
#: misfit over its own running level, so a channel with much ECG near 50 Hz is judged against
#: its own noise), smoothed with CHANGE_SMOOTHING per block …
CHANGE_RATIO = 3.0
CHANGE_SMOOTHING = 0.3
#: … where the usual misfit is a running mean over this long (s) of a channel's first blocks,
#: then follows with this time constant.
MISFIT_LEVEL_TAU_S = 10.0
#: A harmonic (2nd and up) whose block amplitude misfits the learnt one by more than this many
#: times its usual misfit, and than the fundamental's relative misfit on the channel, is EMG
#: firing on that harmonic (an A-train at 119.6 Hz on 2 × 59.5 Hz mains), not mains: it teaches
#: that harmonic nothing and does not count as a moved lead (which moves the fundamental too).
HARMONIC_OUTLIER_RATIO = 9.0
#: … for at most this long (s) in a row: a line that stays is mains (a harmonic that appeared or
#: grew, a device switched on) and is learnt then. A-trains last up to a few seconds; unbounded,
#: a new 10 µV 3rd harmonic was left uncancelled for 20–30 s, until the harmonic's usual misfit
#: had crept up to it.
HARMONIC_OUTLIER_MAX_S = 5.0
#: While the usual misfit level settles (the first MISFIT_LEVEL_TAU_S of judged blocks) a harmonic
#: is such an outlier only beyond this many times (not HARMONIC_OUTLIER_RATIO), and not before
#: OUTLIER_SETTLE_S of judged blocks: the level then rests on a few blocks. Quiet blocks (no EMG,
#: no cautery) of 52 real-ECG tuning cases' first 11 s misfit up to 28 × beyond the fundamental
#: from 0.5 to 1 s of judged blocks, 16 × after, against ~10³–10⁴ × for a 30 µV A-train on a
#: harmonic. Untested while settling, an A-train at 149.45 Hz on a 3rd harmonic at 149.58 Hz from
#: 1.3 s (third heart's seed 376) was learnt as mains and lifted the level 10³-fold: an echo of the
#: train was subtracted for 15 s after it (6.1 dB over the floor after 5 s).
HARMONIC_OUTLIER_SETTLING_RATIO = 80.0
#: … tested from this long (s) of a channel's judged blocks on.
OUTLIER_SETTLE_S = 0.5
#: Default process noise of each harmonic's own frequency offset (rad²/s³, see
#: :class:`MainsCanceller`).
HARMONIC_PSD = 1e-5
#: Initial standard deviation of a harmonic's own frequency offset from h × the fundamental (Hz).
INITIAL_HARMONIC_OFFSET_SD_HZ = 0.002
#: Largest tracked offset of a harmonic's frequency from h × the fundamental (Hz).
MAX_HARMONIC_OFFSET_HZ = 1.0


def mains_min_rate_hz(mains_hz: float | None, max_offset_hz: float = MAX_OFFSET_HZ) -> float:
    """The canceller needs a sampling rate above this (Hz): the fundamental of ``mains_hz``
    (None: of both 50 and 60 Hz, to tell them apart), ± ``max_offset_hz``, must lie below
    0.45 × the rate (140 Hz for 60 Hz mains)."""
    highest_hz = max(NOMINAL_MAINS_HZ) if mains_hz is None else mains_hz
    return (highest_hz + max_offset_hz) / MAX_HARMONIC_OF_FS


def harmonics_below(sample_rate_hz: float, mains_hz: float | None,
                    max_offset_hz: float = MAX_OFFSET_HZ) -> int:
    """Harmonics of ``mains_hz`` (None: of both 50 and 60 Hz) that lie below 0.45 × the rate
    (Hz) however far the frequency is off nominal."""
    highest_hz = max(NOMINAL_MAINS_HZ) if mains_hz is None else mains_hz
    return int(MAX_HARMONIC_OF_FS * sample_rate_hz // (highest_hz + max_offset_hz))


def mains_fits(sample_rate_hz: float, mains_hz: float | None,
               max_offset_hz: float = MAX_OFFSET_HZ) -> bool:
    """Whether the canceller can run at ``sample_rate_hz`` (Hz) (see :func:`mains_min_rate_hz`)."""
    return (mains_hz is None or mains_hz > 0.0) \
        and sample_rate_hz > mains_min_rate_hz(mains_hz, max_offset_hz)


class MainsTracker:
    """Track and remove mains of a known nominal frequency (see the module docstring); the
    public stage is :class:`MainsCanceller`, which also decides 50 or 60 Hz.

    Args:
        n_channels: channels in each chunk.
        sample_rate_hz: sampling rate (Hz).
        nominal_hz: nominal mains frequency (Hz).
        n_harmonics: harmonics cancelled (fundamental included), reduced so the highest stays
            below 0.45 × ``sample_rate_hz``.
        block_s: length of the estimation blocks (s); parameters change at block boundaries.
        amplitude_tau_s: time constant of the harmonic-amplitude smoothing (s).
        freeze_uv: a channel's block with any |sample| ≥ this (µV) is not learnt from.
        max_offset_hz: the tracked frequency is kept within nominal ± this (Hz).
        jerk_psd: Kalman process noise of the common phase, spectral density of dω̇/dt
            (rad²/s⁵); larger follows faster drift, smaller averages more noise.
        harmonic_psd: Kalman process noise of each harmonic's own frequency offset, spectral
            density of dν_h/dt (rad²/s³); 0 locks every harmonic to h × the fundamental.
    """

    def __init__(self, n_channels: int, sample_rate_hz: float, nominal_hz: float,
                 n_harmonics: int = 7, block_s: float = 0.1,
                 amplitude_tau_s: float = AMPLITUDE_TAU_S, freeze_uv: float = 2500.0,
                 max_offset_hz: float = MAX_OFFSET_HZ, jerk_psd: float = 1e-3,
                 harmonic_psd: float = HARMONIC_PSD) -> None:
        self.n_channels = n_channels
        self.sample_rate_hz = float(sample_rate_hz)
        self.nominal_hz = float(nominal_hz)
        self.block_len = block_len(sample_rate_hz, block_s, n_harmonics)
        self.block_s = self.block_len / self.sample_rate_hz
        self.amplitude_tau_s = amplitude_tau_s
        self.freeze_uv = freeze_uv
        self.max_offset_hz = max_offset_hz
        self.jerk_psd = jerk_psd
        self.harmonic_psd = harmonic_psd
        # block-relative time of each sample (s), centred so that τ = 0 mid-block
        self._tau_s = (np.arange(self.block_len) - (self.block_len - 1) / 2.0) / self.sample_rate_hz
        self._half_tau2 = 0.5 * self._tau_s * self._tau_s
        self._memory_blocks = amplitude_tau_s / self.block_s  # amplitude smoothing (blocks)
        self._fast_blocks = min(AMPLITUDE_FAST_TAU_S, amplitude_tau_s) / self.block_s
        self._level_step = self.block_s / MISFIT_LEVEL_TAU_S
        self._outlier_settle_blocks = math.ceil(OUTLIER_SETTLE_S / self.block_s - 1e-9)
        self._floor_rise = FLOOR_RISE_PER_S ** self.block_s  # fastest floor rise per block
        self._omega_lo = 2.0 * np.pi * (nominal_hz - max_offset_hz)  # tracked ω bounds (rad/s)
        self._omega_hi = 2.0 * np.pi * (nominal_hz + max_offset_hz)
        self._omega_rate_max = 2.0 * np.pi * MAX_FREQUENCY_RATE_HZ_S  # (rad/s²)
        n = min(n_harmonics, harmonics_below(self.sample_rate_hz, nominal_hz, max_offset_hz))
        self._harmonics = np.arange(1, n + 1, dtype=float)
        size = 3 + 2 * (n - 1)
        self._observe = np.zeros((n, size))  # phase of harmonic h = row h−1 · tracker state
        self._observe[:, 0] = self._harmonics
        self._observe[np.arange(1, n), 3 + 2 * np.arange(n - 1)] = 1.0
        self._h2 = (self._harmonics * self._harmonics)[:, None]  # h², (harmonics, 1)
        self._minus_ih = -1j * self._harmonics[:, None]  # −i·h, (harmonics, 1)
        self._transitions: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # blocks → (F, Q)
        self.reset()

    # ----------------------------------------------------------------- public state

    @property
    def frequency_hz(self) -> float | None:
        """Current estimate of the actual mains frequency (Hz), ``None`` before tracking starts."""
        if self._synth_state is None:
            return None
        return float(self._synth_state[1] / (2.0 * np.pi))

    @property
    def harmonic_frequencies_hz(self) -> np.ndarray | None:
        """Current estimate of each harmonic's own frequency (Hz; fundamental first): h × the
        fundamental plus the harmonic's tracked offset; ``None`` before tracking starts."""
        if self._synth_state is None:
            return None
        offsets = np.concatenate(([0.0], self._synth_state[4::2]))
        return (self._harmonics * self._synth_state[1] + offsets) / (2.0 * np.pi)

    @property
    def n_harmonics(self) -> int:
        """Harmonics cancelled (fundamental included), those below 0.45 × the rate."""
        return self._harmonics.size

    # ----------------------------------------------------------------- stage contract

    def reset(self) -> None:
        """Forget everything learnt."""
        n = self._harmonics.size
        self._n_abs = 0  # absolute index of the next input sample
        self._block = np.zeros((self.n_channels, self.block_len))  # channel-major: fast reductions
        self._block_hold = np.zeros(self.n_channels, dtype=bool)  # channels held in this block
        # tracker state at the centre of block _kf_block: θ (rad), ω (rad/s), ω̇ (rad/s²), then
        # per harmonic h ≥ 2 its phase offset ψ_h (rad) and frequency offset ν_h (rad/s) from h·θ
        self._kf_x = np.zeros(self._observe.shape[1])
        self._kf_p = np.zeros((self._kf_x.size, self._kf_x.size))
        self._kf_block: int | None = None
        self._phasors = np.zeros((n, self.n_channels), dtype=complex)  # P (µV), (harmonics, channels)
        self._power = np.zeros((n, self.n_channels))  # |P|² (µV²), kept with P by _cancelled
        self._coef = np.zeros((2 * n, self.n_channels))  # Re P (harmonics 1…n), then −Im P
        self._weight_sum = np.zeros(self.n_channels)  # learning weight accumulated per channel
        self._info = np.zeros(self.n_channels)  # … each block's over the floor then (1/µV²)
        self._change = np.zeros(self.n_channels)  # smoothed relative amplitude misfit per channel
        self._misfit_level = np.ones((n, self.n_channels))  # usual normalised misfit
        self._judged = np.zeros(self.n_channels)  # blocks whose misfit was judged, per channel
        self._outlier_run = np.zeros((n, self.n_channels))  # blocks in a row each was an outlier
        self._noise_var = np.full(self.n_channels, np.nan)  # tracked block residual floor (µV²)
        self._synth_state: np.ndarray | None = None  # tracker state for the block being filled
        self._synth_design = np.zeros((1, self.block_len))  # its regression matrix (see _design)

    def process(self, x: np.ndarray, hold: np.ndarray | None = None) -> np.ndarray:
        """Cancel mains in the next chunk ``x`` (n_samples, n_channels) float64 µV, ``hold`` as
        in :meth:`MainsCanceller.process`; returns float64 µV."""
        out = np.empty_like(x)
        pos = 0
        while pos < len(x):
            fill = self._n_abs % self.block_len
            take = min(len(x) - pos, self.block_len - fill)
            seg = x[pos:pos + take]
            if self._synth_state is None:
                out[pos:pos + take] = seg
            else:
                np.subtract(seg, self._synth_design[1:, fill:fill + take].T @ self._coef,
                            out=out[pos:pos + take])
            self._block[:, fill:fill + take] = seg.T
            if hold is not None:
                self._block_hold |= hold[pos:pos + take].any(axis=0)
            pos += take
            self._n_abs += take
            if fill + take == self.block_len:
                self._end_block(self._n_abs // self.block_len - 1)
        return out

    # ----------------------------------------------------------------- internals

    def _end_block(self, j: int) -> None:
        usable = _usable(self._block, self.freeze_uv)
        learnable = usable & ~self._block_hold
        self._block_hold[:] = False
        if usable.any():
            self._learn(j, self._block, usable, learnable,
                        None if self._synth_state is None else self._synth_design)
        self._prepare(j + 1)

    def _transition(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Kalman transition F and process noise Q over ``steps`` blocks (cached): the common
        phase integrates ω and ω̇ (ω̇ a random walk of density ``jerk_psd``), each harmonic's
        phase offset integrates its frequency offset (a random walk of density ``harmonic_psd``)."""
        fq = self._transitions.get(steps)
        if fq is None:
            t = steps * self.block_s
            size = self._kf_x.size
            f = np.eye(size)
            q = np.zeros((size, size))
            f[0, 1], f[0, 2], f[1, 2] = t, t * t / 2.0, t
            q[:3, :3] = self.jerk_psd * np.array([[t ** 5 / 20.0, t ** 4 / 8.0, t ** 3 / 6.0],
                                                  [t ** 4 / 8.0, t ** 3 / 3.0, t ** 2 / 2.0],
                                                  [t ** 3 / 6.0, t ** 2 / 2.0, t]])
            offsets = np.arange(3, size, 2)
            f[offsets, offsets + 1] = t
            q[offsets, offsets] = self.harmonic_psd * t ** 3 / 3.0
            q[offsets, offsets + 1] = q[offsets + 1, offsets] = self.harmonic_psd * t ** 2 / 2.0
            q[offsets + 1, offsets + 1] = self.harmonic_psd * t
            fq = (f, q)
            if steps <= CACHED_TRANSITIONS:  # a gap's many lengths are not kept
                self._transitions[steps] = fq
        return fq

    def _bounded(self, x: np.ndarray) -> np.ndarray:
        """``x`` with its phases wrapped into [−π, π), the frequency within nominal ±
        max_offset_hz (a long gap must not extrapolate the frequency drift without bound), its
        rate of change within ± :data:`MAX_FREQUENCY_RATE_HZ_S` and each harmonic's frequency
        offset within ± :data:`MAX_HARMONIC_OFFSET_HZ`."""
        x[0] = _wrap(x[0])
        x[3::2] = (x[3::2] + np.pi) % (2.0 * np.pi) - np.pi
        x[1] = min(max(x[1], self._omega_lo), self._omega_hi)
        x[2] = min(max(x[2], -self._omega_rate_max), self._omega_rate_max)
        limit = 2.0 * np.pi * MAX_HARMONIC_OFFSET_HZ
        x[4::2] = np.minimum(np.maximum(x[4::2], -limit), limit)
        return x

    def _predict(self, j: int, covariance: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Kalman state and (if asked) covariance carried to the centre of block ``j``."""
        f, q = self._transition(j - self._kf_block)
        x = self._bounded(f @ self._kf_x)
        return x, (f @ self._kf_p @ f.T + q) if covariance else None

    def _predict_covariance(self, j: int) -> np.ndarray:
        """The covariance of :meth:`_predict` alone."""
        f, q = self._transition(j - self._kf_block)
        return f @ self._kf_p @ f.T + q

    def _design(self, state: np.ndarray) -> np.ndarray:
        """Regression matrix over one block for a tracker state, transposed: an offset row,
        then cos φ_h for h = 1 … n_harmonics, then sin φ_h, (1 + 2·n_harmonics, block_len),
        with φ_h(τ) = h·(θ + ω·τ + ½·ω̇·τ²) + ψ_h + ν_h·τ.

        The harmonics come from powers of e^{iθ(τ)} (one complex exponential per sample),
        turned by each harmonic's own offset."""
        theta = state[0] + state[1] * self._tau_s + state[2] * self._half_tau2
        n_h = self._harmonics.size
        powers = np.empty((n_h, self.block_len), dtype=complex)
        np.exp(1j * theta, out=powers[0])
        for k in range(1, n_h):
            np.multiply(powers[k - 1], powers[0], out=powers[k])
        if n_h > 1:  # e^{i(ψ_h + ν_h·τ)}: a start and a per-sample turn, multiplied along
            turns = np.empty((n_h - 1, self.block_len), dtype=complex)
            turns[:, 0] = np.exp(1j * (state[3::2] + state[4::2] * self._tau_s[0]))
            turns[:, 1:] = np.exp(1j * state[4::2] / self.sample_rate_hz)[:, None]
            powers[1:] *= np.multiply.accumulate(turns, axis=1, out=turns)
        design = np.empty((1 + 2 * n_h, self.block_len))
        design[0] = 1.0
        design[1:1 + n_h] = powers.real
        design[1 + n_h:] = powers.imag
        return design

    def _prepare(self, j: int) -> None:
        """Set the synthesis parameters for block ``j`` once amplitudes have been learnt."""
        if self._kf_block is None or not self._weight_sum.any():
            return
        self._synth_state = self._predict(j, covariance=False)[0]
        self._synth_design = self._design(self._synth_state)

    def _measure_phases(self, a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Phase (rad) of each harmonic of a block's amplitudes ``a`` (harmonics, channels; µV)
        against the learnt ones, and its variance (rad², inf where nothing is known); ``None``
        without anything to compare.

        ``w`` is each channel's inverse per-quadrature noise variance (1/µV²). A common phase
        error ε (coarse from the fundamental, refined by linearised weighted least squares over
        all harmonics) takes out what they share; each harmonic's own phase is then ε·h plus the
        phase of its weighted, ε-rotated cross products. Harmonic/channel pairs whose amplitude
        does not fit the learnt one (e.g. a 120 Hz EMG train on the 2nd harmonic of 60 Hz mains)
        are down-weighted."""
        p = self._phasors
        cross = a * np.conj(p)  # a·P*, whose phase is the error
        z1 = complex(cross[0] @ w)
        if z1 == 0.0:
            return None
        h, minus_ih = self._harmonics[:, None], self._minus_ih
        p2 = self._power
        h2p2 = self._h2 * p2
        a2p2 = a.real * a.real + a.imag * a.imag + p2
        error = math.atan2(z1.imag, z1.real)
        weight = w  # broadcast over the harmonics until the misfit sets its own
        rotated = cross * np.exp(minus_ih * error)
        for _ in range(2):
            info = float((weight * h2p2).sum())
            error += float((weight * h * rotated.imag).sum()) / info
            rotated = cross * np.exp(minus_ih * error)
            # |a·e^{−ihε} − P|² · w / 2, ≈ 1 for noise alone
            misfit = w * (a2p2 - 2.0 * rotated.real) / 2.0
            weight = w / np.maximum(1.0, misfit / MISFIT_TOLERANCE)
        own = (weight * rotated).sum(axis=1)
        info_h = (weight * p2).sum(axis=1)
        phases = self._harmonics * error + np.arctan2(own.imag, own.real)  # np.angle, leaner
        variances = np.full(info_h.shape, np.inf)
        np.divide(1.0, info_h, out=variances, where=info_h > 0.0)
        return phases, np.maximum(variances, MIN_PHASE_VARIANCE_RAD2)

    def _update_tracker(self, x: np.ndarray, p: np.ndarray, phases: np.ndarray,
                        variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kalman update of the predicted state ``x`` and covariance ``p`` with each harmonic's
        measured phase (rad, against ``x``) in turn; a measurement far outside its predicted
        spread, given those before it, has its variance inflated (soft gate)."""
        start = x
        p = p.copy()
        # row h of the observation is h + 1 at θ and 1 at ψ_h: row · v = (h + 1)·v_θ + v_ψ
        # (Python floats for the scalars: the same IEEE arithmetic without numpy's per-call cost)
        for h, (phase, var_h) in enumerate(zip(phases.tolist(), variances.tolist())):
            if not math.isfinite(var_h):
                continue
            k, own = float(h + 1), 1 + 2 * h
            seen = k * float(x[0] - start[0])
            ph = k * p[:, 0]
            if h:
                seen += float(x[own] - start[own])
                ph += p[:, own]
            spread = k * float(ph[0]) + float(ph[own]) if h else float(ph[0])
            innovation = phase - seen
            variance = var_h * max(1.0, innovation * innovation / (spread + var_h) / INNOVATION_GATE)
            gain = ph / (spread + variance)
            x = x + gain * innovation
            p -= gain[:, None] * ph
        return self._bounded(x), p

    def _observed(self, v: np.ndarray) -> np.ndarray:
        """Each harmonic's phase (rad) in a tracker state (or change of state) ``v``:
        ``self._observe @ v`` from its two non-zero columns, h at θ and 1 at ψ_h."""
        phases = self._harmonics * v[0]
        phases[1:] += v[3::2]
        return phases

    def _cancelled(self) -> np.ndarray:
        """Synthesis coefficients (Re P, then −Im P) with each learnt amplitude shrunk by the
        Wiener gain max(0, 1 − E|error|²/|P|²): a harmonic that is not there (its learnt
        amplitude no bigger than the estimate's own noise, e.g. after one block of noise, which
        reads as ~0.2 µV of every harmonic) is not added back, a real one is cancelled whole.
        Keeps |P|² (µV²) for the next block's phase measurement."""
        p = self._phasors
        blocks = np.minimum(self._weight_sum, 2.0 * self._memory_blocks)  # averaged, effectively
        error_var = np.zeros(self.n_channels)  # E|P − true|² (µV²) from the noise floor
        noise_var = self._noise_var
        np.divide(4.0 * np.where(np.isnan(noise_var), 0.0, noise_var) / self.block_len, blocks,
                  out=error_var, where=blocks > 0)
        power = self._power = p.real * p.real + p.imag * p.imag
        present = power > 0
        gain = np.zeros(power.shape)
        np.divide(error_var, power, out=gain, where=present)
        g = np.maximum(1.0 - gain, 0.0) * present
        return np.concatenate((p.real * g, -p.imag * g))

    def _learn(self, j: int, block: np.ndarray, usable: np.ndarray, learnable: np.ndarray,
               design: np.ndarray | None) -> None:
        """Fit block ``j`` against the predicted phase, update the tracker (from the ``usable``
        channels) and the amplitudes (from the ``learnable`` ones).

        ``design`` is the block's regression matrix when already built for synthesis."""
        if self._kf_block is None:
            self._kf_x[1] = 2.0 * np.pi * self.nominal_hz
            initial = np.zeros(self._kf_x.size)
            initial[1] = (2.0 * np.pi * INITIAL_FREQUENCY_SD_HZ) ** 2
            initial[2] = (2.0 * np.pi * INITIAL_FREQUENCY_RATE_SD_HZ_S) ** 2
            initial[4::2] = (2.0 * np.pi * INITIAL_HARMONIC_OFFSET_SD_HZ) ** 2
            self._kf_p = np.diag(initial)
            self._kf_block = j
        if design is None:
            x_pred, p_pred = self._predict(j)
            phi = self._design(x_pred)
        else:  # the synthesis state is this prediction (the tracker has not moved since)
            x_pred, p_pred = self._synth_state, self._predict_covariance(j)
            phi = design
        n_h = self._harmonics.size
        x = block if usable.all() else np.where(usable[:, None], block, 0.0)  # (channels, samples)
        proj = phi @ x.T
        beta = np.linalg.solve(phi @ phi.T, proj)
        dof = self.block_len - phi.shape[0]
        resid_var = np.maximum(np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->j", beta, proj),
                               _TINY * dof) / dof
        a = beta[1:1 + n_h] - 1j * beta[1 + n_h:]  # (harmonics, channels) µV

        # phase innovations against the learnt amplitudes (channels already learnt only)
        known = usable & (self._weight_sum > 0)
        w = np.zeros(self.n_channels)  # 1 / per-quadrature variance, for learnt channels only
        np.divide(self.block_len, 2.0 * resid_var, out=w, where=known)
        measured = self._measure_phases(a, w)
        x_post, p_post = (x_pred, p_pred) if measured is None else \
            self._update_tracker(x_pred, p_pred, *measured)
        self._kf_x, self._kf_p, self._kf_block = x_post, p_post, j
        # each harmonic's phase moved by this much: the block's amplitudes in the new frame
        turn = np.exp(-1j * _wrap_array(self._observed(x_post - x_pred)))[:, None]

        # amplitudes: smoothed, gain scaled by the noise ratio
        noise_var = self._noise_var
        np.copyto(noise_var, resid_var, where=learnable & np.isnan(noise_var))  # fresh channels
        ratio = np.ones(self.n_channels)  # block residual / floor, 1 for channels not learnt from
        np.divide(resid_var, noise_var, out=ratio, where=learnable)
        # the floor falls quickly but rises slowly (at most FLOOR_RISE_PER_S): a sustained EMG
        # train must not lift it to its own level, or the train would be learnt as mains
        # A lead gone dead off the rails (so not caught as flat) shows neither its noise nor
        # its mains: far below the floor AND the learnt fundamental missing. Such a block
        # teaches nothing and leaves the floor alone, or the channel would unlearn its mains
        # and then take every normal block after it for EMG activity. (A channel that merely
        # got quieter still carries its mains, and its floor follows it down.)
        # (Only a fundamental learnt well: one learnt from a single block of cautery below
        # freeze_uv, 59 ± 37 µV, took every block after it for a dead lead — nothing learnt
        # for good, 180 µV of mains residue read as trains: tune-ptb-10k restarted in cautery.)
        dead = learnable & (ratio < DEAD_RATIO)
        if dead.any():  # (rare: most blocks need not look at the learnt fundamental)
            learnt = np.abs(self._phasors[0])
            # its squared standard error is 4 / (block_len · _info) µV²
            reliable = learnt * learnt * self._info * self.block_len >= 4.0 * DEAD_MIN_SNR
            dead &= (learnt >= DEAD_MIN_MAINS_UV) & reliable \
                & (np.abs(a[0]) < DEAD_MAINS_FRACTION * learnt)
        fall = np.where(dead, 1.0, np.sqrt(np.minimum(ratio, 1.0)))
        noise_var *= fall * np.minimum(np.maximum(ratio, 1.0) ** 0.05, self._floor_rise)
        # EMG activity well above the floor (a train firing near a harmonic) teaches nothing:
        # learning it would leave a fading "echo" of the train after it stops
        calm = learnable & ~dead & (ratio <= ACTIVITY_RATIO)
        weight = np.where(calm, np.minimum(1.0, 1.0 / ratio), 0.0)
        self._weight_sum += weight
        np.add(self._info, weight / noise_var, out=self._info, where=weight > 0)
        # amplitudes that misfit well beyond their usual (a moved lead) are learnt faster
        moved = a * turn - self._phasors
        judged = known & calm
        misfit = w * (moved.real ** 2 + moved.imag ** 2) / 2.0  # ≈ 1 for white noise alone
        own = misfit / self._misfit_level  # each harmonic's misfit over its usual
        # a narrowband train sits within a fraction of a hertz of one harmonic, so the block fit
        # takes it in whole (the residual, hence ``ratio``, stays at the floor); learnt, its
        # line stays subtracted after it stops, a fading sinusoid read as the train going on
        # (judged with a wider margin while the usual level settles, and not in the first
        # blocks, whose level rests on a few of them: see HARMONIC_OUTLIER_SETTLING_RATIO)
        settling = self._judged + 1 <= MISFIT_LEVEL_TAU_S / self.block_s
        beyond = np.where(settling, HARMONIC_OUTLIER_SETTLING_RATIO, HARMONIC_OUTLIER_RATIO)
        outlier = np.zeros(own.shape, dtype=bool)
        outlier[1:] = judged & (self._judged >= self._outlier_settle_blocks) \
            & (own[1:] > beyond * np.maximum(own[0], 1.0))
        # the run goes on over blocks not judged (a burst, a hold), ends where the harmonic fits
        run = np.where(judged, 0.0, self._outlier_run)
        any_outlier = bool(outlier.any())  # (rare: most blocks skip the outliers' bookkeeping)
        if any_outlier:
            run = np.where(outlier, self._outlier_run + 1, run)
            outlier &= run * self.block_s <= HARMONIC_OUTLIER_MAX_S
            any_outlier = bool(outlier.any())
        self._outlier_run = run
        if any_outlier:  # the mean over the harmonics
            relative = np.where(outlier, 0.0, own).sum(axis=0) / (n_h - outlier.sum(axis=0))
        else:
            relative = own.sum(axis=0) / n_h
        self._change = np.where(judged, self._change + CHANGE_SMOOTHING * (relative - self._change),
                                self._change)
        changing = self._change > CHANGE_RATIO
        # the usual level: a running mean over the first blocks, then followed slowly, each
        # block counting at most CHANGE_RATIO × the level (a moved lead barely lifts it); an
        # outlier is left out (its block still counts in the running mean's step)
        self._judged += judged
        level_step = np.maximum(self._level_step, 1.0 / np.maximum(self._judged, 1))
        toward = np.where(settling, misfit, np.minimum(misfit, CHANGE_RATIO * self._misfit_level))
        self._misfit_level += np.where(judged & ~outlier, level_step, 0.0) \
            * (toward - self._misfit_level)
        memory = np.where(changing, self._fast_blocks, self._memory_blocks)
        # the blocks learnt so far as so many of the present floor: those learnt where it was
        # higher count less (a stream started in a cautery's recovery tail, seed 850: the tail's
        # blocks, learnt as the floor fell, kept 20–60 µV of mains on two channels for 15 s)
        learnt_blocks = np.where(weight > 0, self._info * noise_var, 0.0)
        step = weight / np.maximum(np.minimum(learnt_blocks, memory), 1e-12)
        self._phasors += np.where(outlier, 0.0, step * moved) if any_outlier else step * moved
        self._coef = self._cancelled()


class MainsCanceller:
    """Remove 50/60 Hz mains and its harmonics from a (n_samples, n_channels) µV stream.

    Args:
        n_channels: channels in each chunk.
        sample_rate_hz: sampling rate (Hz).
        mains_hz: nominal mains frequency (Hz); ``None`` detects 50 or 60 Hz from the signal.
        n_harmonics: harmonics cancelled (fundamental included), reduced so the highest stays
            below 0.45 × ``sample_rate_hz``.
        block_s: length of the estimation blocks (s); parameters change at block boundaries.
        amplitude_tau_s: time constant of the harmonic-amplitude smoothing (s).
        detect_s: usable signal examined before deciding 50 vs 60 Hz (s).
        freeze_uv: a channel's block with any |sample| ≥ this (µV) is not learnt from.
        max_offset_hz: the tracked frequency is kept within nominal ± this (Hz).
        jerk_psd: Kalman process noise of the common phase, spectral density of dω̇/dt
            (rad²/s⁵); larger follows faster drift, smaller averages more noise.
        harmonic_psd: Kalman process noise of each harmonic's own frequency offset, spectral
            density of dν_h/dt (rad²/s³); 0 locks every harmonic to h × the fundamental.
    """

    delay: int = 0

    def __init__(self, n_channels: int, sample_rate_hz: float, mains_hz: float | None = None,
                 n_harmonics: int = 7, block_s: float = 0.1,
                 amplitude_tau_s: float = AMPLITUDE_TAU_S, detect_s: float = 0.5,
                 freeze_uv: float = 2500.0, max_offset_hz: float = MAX_OFFSET_HZ,
                 jerk_psd: float = 1e-3, harmonic_psd: float = HARMONIC_PSD) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be ≥ 1, got {n_channels}")
        if n_harmonics < 1:
            raise ValueError(f"n_harmonics must be ≥ 1, got {n_harmonics}")
        if not mains_fits(sample_rate_hz, mains_hz, max_offset_hz):
            highest_hz = max(NOMINAL_MAINS_HZ) if mains_hz is None else mains_hz
            raise ValueError(f"mains {highest_hz!r} Hz (± {max_offset_hz:g}) does not fit below "
                             f"{MAX_HARMONIC_OF_FS:g} × {sample_rate_hz:g} Hz")
        self.n_channels = n_channels
        self.sample_rate_hz = float(sample_rate_hz)
        self.mains_hz = mains_hz
        self.n_harmonics_max = n_harmonics
        self.block_len = block_len(sample_rate_hz, block_s, n_harmonics)
        self.block_s = self.block_len / self.sample_rate_hz
        self.detect_blocks = max(1, int(np.ceil(detect_s / self.block_s)))
        self.freeze_uv = freeze_uv
        self._new_tracker = partial(MainsTracker, n_channels, self.sample_rate_hz,
                                    n_harmonics=n_harmonics, block_s=block_s,
                                    amplitude_tau_s=amplitude_tau_s, freeze_uv=freeze_uv,
                                    max_offset_hz=max_offset_hz, jerk_psd=jerk_psd,
                                    harmonic_psd=harmonic_psd)
        self._tau_s = (np.arange(self.block_len) - (self.block_len - 1) / 2.0) / self.sample_rate_hz
        self._detect_pinv = self._detector_pinv(max_offset_hz)
        self.reset()

    # ----------------------------------------------------------------- public state

    @property
    def detected_hz(self) -> float | None:
        """Nominal mains frequency in use (Hz): the given one, or the detected one once decided."""
        return None if self._tracker is None else self._tracker.nominal_hz

    @property
    def frequency_hz(self) -> float | None:
        """Current estimate of the actual mains frequency (Hz), ``None`` before tracking starts
        (or while 50 vs 60 Hz is still being decided)."""
        return None if self._tracker is None else self._tracker.frequency_hz

    @property
    def harmonic_frequencies_hz(self) -> np.ndarray | None:
        """Each harmonic's own tracked frequency (Hz; fundamental first), see
        :attr:`MainsTracker.harmonic_frequencies_hz`; ``None`` before tracking starts."""
        return None if self._tracker is None else self._tracker.harmonic_frequencies_hz

    @property
    def n_harmonics(self) -> int:
        """Harmonics actually cancelled (fundamental included), 0 before the nominal is known."""
        return 0 if self._tracker is None else self._tracker.n_harmonics

    # ----------------------------------------------------------------- stage contract

    def reset(self) -> None:
        """Forget everything learnt (including a detected mains frequency)."""
        self._tracker: MainsTracker | None = None
        self._candidates: list[MainsTracker] = []
        if self.mains_hz is not None:
            self._tracker = self._new_tracker(float(self.mains_hz))
        else:  # both candidates track and cancel while the evidence is weighed
            self._candidates = [self._new_tracker(hz) for hz in NOMINAL_MAINS_HZ]
        self._n_abs = 0  # absolute index of the next input sample
        self._block = np.zeros((self.n_channels, self.block_len))  # channel-major: fast reductions
        self._block_hold = np.zeros(self.n_channels, dtype=bool)  # channels held in this block
        self._detect_score = np.zeros(len(NOMINAL_MAINS_HZ))
        self._detect_blocks_seen = 0
        self._winner = 0  # index of the decided candidate
        self.decided_at: int | None = None  # rows in when 50 or 60 Hz was decided

    def process(self, x: np.ndarray, hold: np.ndarray | None = None) -> np.ndarray:
        """Cancel mains in the next chunk ``x`` (n_samples, n_channels) µV; returns float64 µV.

        ``hold`` (n_samples, n_channels) bool, optional: samples whose amplitude and noise floor
        are not to be learnt from (the caller knows better, e.g. the raw input sat at a rail and
        the band-passed ``x`` only holds the filter's decay); a channel's block holding any of
        them still measures the mains phase, so the tracker re-locks as soon as the signal is
        back, but teaches no amplitude.

        Until 50 or 60 Hz is decided (``mains_hz=None``), both candidates learn and the output
        is that of the one leading on the evidence so far (chosen at block boundaries)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n, {self.n_channels}) chunk, got shape {x.shape}")
        if hold is not None and len(hold) != len(x):
            raise ValueError(f"hold has {len(hold)} rows, the chunk {len(x)}")
        if self._tracker is not None:
            return self._tracker.process(x, hold)
        outs = [c.process(x, hold) for c in self._candidates]
        out = np.empty_like(x)
        pos = 0
        while pos < len(x) and self._tracker is None:
            fill = self._n_abs % self.block_len
            take = min(len(x) - pos, self.block_len - fill)
            out[pos:pos + take] = outs[int(np.argmax(self._detect_score))][pos:pos + take]
            self._block[:, fill:fill + take] = x[pos:pos + take].T
            if hold is not None:
                self._block_hold |= hold[pos:pos + take].any(axis=0)
            pos += take
            self._n_abs += take
            if fill + take == self.block_len:
                self._end_detect_block()
        if pos < len(x):  # decided within this chunk: the rest is the winner's
            out[pos:] = outs[self._winner][pos:]
        return out

    def flush(self) -> np.ndarray:
        """Nothing is held back (``delay == 0``): an empty (0, n_channels) array."""
        return np.zeros((0, self.n_channels))

    # ----------------------------------------------------------------- internals

    def _detector_pinv(self, max_offset_hz: float) -> np.ndarray:
        """Pseudo-inverse of the joint 50- and 60-Hz-harmonic basis over one block (as many
        harmonics of each as fit below 0.45 × the rate for both: aliased ones would mix)."""
        n_h = min(DETECT_HARMONICS, harmonics_below(self.sample_rate_hz, None, max_offset_hz))
        columns = [np.ones(self.block_len)]
        for f0 in NOMINAL_MAINS_HZ:
            for h in range(1, n_h + 1):
                arg = 2.0 * np.pi * h * f0 * self._tau_s
                columns += [np.cos(arg), np.sin(arg)]
        return np.linalg.pinv(np.stack(columns, axis=0))  # applied to a channel-major block

    def _end_detect_block(self) -> None:
        """Score a finished block for 50 vs 60 Hz (channels that may be learnt from only); once
        ``detect_s`` of such blocks are in, the leader becomes the tracker."""
        learnable = _usable(self._block, self.freeze_uv) & ~self._block_hold
        self._block_hold[:] = False
        if not learnable.any():
            return
        x = np.where(learnable[:, None], self._block, 0.0)
        beta = x @ self._detect_pinv  # (channels, 1 + 2·2·DETECT_HARMONICS)
        var = x.var(axis=1)
        weight = np.where(learnable & (var > 0), 1.0 / np.where(var > 0, var, 1.0), 0.0)
        per_nominal = (beta[:, 1:].T ** 2).reshape(len(NOMINAL_MAINS_HZ), -1, self.n_channels).sum(axis=1)
        self._detect_score += per_nominal @ weight
        self._detect_blocks_seen += 1
        if self._detect_blocks_seen >= self.detect_blocks:
            self._winner = int(np.argmax(self._detect_score))
            self.decided_at = self._n_abs
            self._tracker = self._candidates[self._winner]
            self._candidates = []


def block_len(sample_rate_hz: float, block_s: float, n_harmonics: int) -> int:
    """Samples per estimation block: ``block_s`` (s) at ``sample_rate_hz`` (Hz), at least enough
    for an offset and the cos/sin pairs of ``n_harmonics`` with room for the residual."""
    return max(round(block_s * sample_rate_hz), 4 * n_harmonics + 4)


def _usable(block: np.ndarray, freeze_uv: float) -> np.ndarray:
    """Channels of a (channels, block_len) block to learn from: all finite, below the freeze
    level (µV) and not flat (a lead-off channel pinned at a rail is ~0 after the band-pass and
    would otherwise get an unbounded weight). NaN fails the comparisons because max/min
    propagate it."""
    hi, lo = block.max(axis=1), block.min(axis=1)
    return (hi < freeze_uv) & (lo > -freeze_uv) & (hi - lo > FLAT_UV)


_TINY = float(np.finfo(float).tiny)


def _wrap(angle: float) -> float:
    """``angle`` (rad) wrapped into [−π, π)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _wrap_array(angles: np.ndarray) -> np.ndarray:
    """``angles`` (rad) wrapped into [−π, π)."""
    return (angles + np.pi) % (2.0 * np.pi) - np.pi
