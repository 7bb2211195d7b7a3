"""Streaming mains-interference canceller for multichannel EMG (µV).

Method: block-wise harmonic regression locked to a tracked mains phase.

* The stream is cut into blocks of ``block_s`` (default 0.1 s) at fixed absolute sample
  boundaries, so the output does not depend on how the caller chunks the record.
* A three-state Kalman filter (phase θ in rad, angular frequency ω in rad/s and its rate ω̇ in
  rad/s²) predicts the mains phase over each block; the phase is evaluated analytically from
  the absolute sample index, θ(τ) = θ_c + ω·τ + ½·ω̇·τ² (τ in s from the block centre).
* While a block streams in, the canceller subtracts Re Σ_h P_h,c · e^{i·h·θ(τ)} (h = 1 …
  ``n_harmonics``, P_h,c the complex amplitude of harmonic h on channel c in µV) using only
  parameters learnt from earlier blocks: the stage is causal, ``delay == 0``.
* When a block is complete, a least-squares fit of an offset plus cos/sin(h·θ) on every
  channel gives that block's complex amplitudes a_h,c. Their phase against P (all channels
  and harmonics, inverse-variance weighted) is the Kalman innovation: the tracker follows
  off-nominal (± a few Hz) and drifting mains. The amplitudes, de-rotated by the measured phase
  error, update P by exponential smoothing with time constant ``amplitude_tau_s`` (a running
  mean until that much data is in).
* Robustness: a channel whose block holds a non-finite sample or a sample of magnitude ≥
  ``freeze_uv`` (electrocautery, rails) teaches nothing; if no channel is usable the tracker
  just predicts across the block (its uncertainty grows, so it re-locks quickly afterwards).
  A channel whose block residual variance exceeds its tracked noise floor (EMG bursts, trains)
  updates P with a gain scaled down by the ratio, and not at all beyond ``ACTIVITY_RATIO``. The
  floor quickly follows quieter blocks down but rises by at most ``FLOOR_RISE_PER_S``: were it
  to follow a long train up, the train (e.g. a B-train whose 4th harmonic sits on 2 × 59.5 Hz)
  would be learnt and re-emitted as a fading sinusoid (an "echo") after it stops. The phase
  measurement weights every channel by the inverse of its block residual variance,
  down-weights harmonics whose amplitude does not fit P (an EMG train at 120 Hz sits on the
  2nd harmonic of 60 Hz), and an innovation far outside its predicted spread has its variance
  inflated (soft gate). NaN rows pass as NaN.
* With ``mains_hz=None`` the first ``detect_s`` of usable signal is passed through unchanged
  while the power explained by 50/100/150 Hz and by 60/120/180 Hz are compared; the winner
  becomes :attr:`MainsCanceller.detected_hz` and the stored blocks then train the tracker.

Cancellation is equivalent to a set of adaptive notches a few tenths of a hertz wide that
follow the mains frequency, so broadband EMG, even near the harmonics, is left intact.
"""

from __future__ import annotations

import math

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
#: Kalman transitions over up to this many blocks are cached (longer ones follow gaps).
CACHED_TRANSITIONS = 16


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
        jerk_psd: Kalman process noise, spectral density of dω̇/dt (rad²/s⁵); larger follows
            faster drift, smaller averages more noise.
    """

    delay: int = 0

    def __init__(self, n_channels: int, sample_rate_hz: float, mains_hz: float | None = None,
                 n_harmonics: int = 7, block_s: float = 0.1, amplitude_tau_s: float = 1.0,
                 detect_s: float = 0.5, freeze_uv: float = 2500.0,
                 max_offset_hz: float = MAX_OFFSET_HZ, jerk_psd: float = 1e-3) -> None:
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
        self.block_len = max(round(block_s * sample_rate_hz), 4 * n_harmonics + 4)
        self.block_s = self.block_len / self.sample_rate_hz
        self.amplitude_tau_s = amplitude_tau_s
        self.detect_blocks = max(1, int(np.ceil(detect_s / self.block_s)))
        self.freeze_uv = freeze_uv
        self.max_offset_hz = max_offset_hz
        self.jerk_psd = jerk_psd
        # block-relative time of each sample (s), centred so that τ = 0 mid-block
        self._tau_s = (np.arange(self.block_len) - (self.block_len - 1) / 2.0) / self.sample_rate_hz
        self._half_tau2 = 0.5 * self._tau_s * self._tau_s
        self._memory_blocks = amplitude_tau_s / self.block_s  # amplitude smoothing (blocks)
        self._floor_rise = FLOOR_RISE_PER_S ** self.block_s  # fastest floor rise per block
        self._transitions: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # blocks → (F, Q)
        self._detect_pinv = self._detector_pinv()
        self.reset()

    # ----------------------------------------------------------------- public state

    @property
    def detected_hz(self) -> float | None:
        """Nominal mains frequency in use (Hz): the given one, or the detected one once decided."""
        return self._nominal_hz

    @property
    def frequency_hz(self) -> float | None:
        """Current estimate of the actual mains frequency (Hz), ``None`` before tracking starts."""
        if self._synth_state is None:
            return None
        return float(self._synth_state[1] / (2.0 * np.pi))

    @property
    def n_harmonics(self) -> int:
        """Harmonics actually cancelled (fundamental included), 0 before the nominal is known."""
        return self._harmonics.size

    # ----------------------------------------------------------------- stage contract

    def reset(self) -> None:
        """Forget everything learnt (including a detected mains frequency)."""
        self._n_abs = 0  # absolute index of the next input sample
        self._block = np.zeros((self.n_channels, self.block_len))  # channel-major: fast reductions
        self._block_hold = np.zeros(self.n_channels, dtype=bool)  # channels held in this block
        self._nominal_hz: float | None = None
        self._harmonics = np.zeros(0)
        self._detect_score = np.zeros(len(NOMINAL_MAINS_HZ))
        self._detect_store: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._kf_x = np.zeros(3)  # θ (rad), ω (rad/s), ω̇ (rad/s²) at the centre of block _kf_block
        self._kf_p = np.zeros((3, 3))
        self._kf_block: int | None = None
        self._phasors = np.zeros((0, self.n_channels), dtype=complex)  # P (µV), (harmonics, channels)
        self._coef = np.zeros((0, self.n_channels))  # Re P (harmonics 1…n), then −Im P
        self._weight_sum = np.zeros(self.n_channels)  # learning weight accumulated per channel
        self._noise_var = np.full(self.n_channels, np.nan)  # tracked block residual floor (µV²)
        self._synth_state: np.ndarray | None = None  # θ_c, ω, ω̇ for the block being filled
        self._synth_design = np.zeros((1, self.block_len))  # its regression matrix (see _design)
        if self.mains_hz is not None:
            self._set_nominal(float(self.mains_hz))

    def process(self, x: np.ndarray, hold: np.ndarray | None = None) -> np.ndarray:
        """Cancel mains in the next chunk ``x`` (n_samples, n_channels) µV; returns float64 µV.

        ``hold`` (n_samples, n_channels) bool, optional: samples not to learn from (the caller
        knows better, e.g. the raw input sat at a rail and the band-passed ``x`` only holds the
        filter's decay); a channel's block holding any of them teaches nothing."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected a (n, {self.n_channels}) chunk, got shape {x.shape}")
        if hold is not None and len(hold) != len(x):
            raise ValueError(f"hold has {len(hold)} rows, the chunk {len(x)}")
        out = np.empty_like(x)
        pos = 0
        while pos < len(x):
            fill = self._n_abs % self.block_len
            take = min(len(x) - pos, self.block_len - fill)
            seg = x[pos:pos + take]
            if self._synth_state is None:
                out[pos:pos + take] = seg
            else:
                out[pos:pos + take] = seg - self._synth_design[1:, fill:fill + take].T @ self._coef
            self._block[:, fill:fill + take] = seg.T
            if hold is not None:
                self._block_hold |= hold[pos:pos + take].any(axis=0)
            pos += take
            self._n_abs += take
            if fill + take == self.block_len:
                self._end_block(self._n_abs // self.block_len - 1)
        return out

    def flush(self) -> np.ndarray:
        """Nothing is held back (``delay == 0``): an empty (0, n_channels) array."""
        return np.zeros((0, self.n_channels))

    # ----------------------------------------------------------------- internals

    def _set_nominal(self, nominal_hz: float) -> None:
        self._nominal_hz = nominal_hz
        self._omega_lo = 2.0 * np.pi * (nominal_hz - self.max_offset_hz)  # tracked ω bounds (rad/s)
        self._omega_hi = 2.0 * np.pi * (nominal_hz + self.max_offset_hz)
        n = min(self.n_harmonics_max,
                harmonics_below(self.sample_rate_hz, nominal_hz, self.max_offset_hz))
        self._harmonics = np.arange(1, n + 1, dtype=float)
        self._phasors = np.zeros((n, self.n_channels), dtype=complex)
        self._coef = np.zeros((2 * n, self.n_channels))

    def _detector_pinv(self) -> np.ndarray:
        """Pseudo-inverse of the joint 50- and 60-Hz-harmonic basis over one block (as many
        harmonics of each as fit below 0.45 × the rate for both: aliased ones would mix)."""
        n_h = min(DETECT_HARMONICS, harmonics_below(self.sample_rate_hz, None, self.max_offset_hz))
        columns = [np.ones(self.block_len)]
        for f0 in NOMINAL_MAINS_HZ:
            for h in range(1, n_h + 1):
                arg = 2.0 * np.pi * h * f0 * self._tau_s
                columns += [np.cos(arg), np.sin(arg)]
        return np.linalg.pinv(np.stack(columns, axis=0))  # applied to a channel-major block

    def _usable(self, block: np.ndarray) -> np.ndarray:
        """Channels of a (channels, block_len) block to learn from: all finite, below the freeze level and not flat
        (a lead-off channel pinned at a rail is ~0 after the band-pass and would otherwise get
        an unbounded weight). NaN fails the comparisons because max/min propagate it."""
        hi, lo = block.max(axis=1), block.min(axis=1)
        return (hi < self.freeze_uv) & (lo > -self.freeze_uv) & (hi - lo > FLAT_UV)

    def _end_block(self, j: int) -> None:
        usable = self._usable(self._block) & ~self._block_hold
        self._block_hold[:] = False
        if self._nominal_hz is None:
            if usable.any():
                self._detect(j, usable)
            return
        if usable.any():
            self._learn(j, self._block, usable,
                        None if self._synth_state is None else self._synth_design)
        self._prepare(j + 1)

    def _detect(self, j: int, usable: np.ndarray) -> None:
        """Score a block for 50 vs 60 Hz; decide and train on the stored blocks when enough."""
        x = np.where(usable[:, None], self._block, 0.0)
        beta = x @ self._detect_pinv  # (channels, 1 + 2·2·DETECT_HARMONICS)
        var = x.var(axis=1)
        weight = np.where(usable & (var > 0), 1.0 / np.where(var > 0, var, 1.0), 0.0)
        per_nominal = (beta[:, 1:].T ** 2).reshape(len(NOMINAL_MAINS_HZ), -1, self.n_channels).sum(axis=1)
        self._detect_score += per_nominal @ weight
        self._detect_store.append((j, self._block.copy(), usable))
        if len(self._detect_store) < self.detect_blocks:
            return
        self._set_nominal(NOMINAL_MAINS_HZ[int(np.argmax(self._detect_score))])
        for jj, block, ok in self._detect_store:
            self._learn(jj, block, ok, None)
        self._detect_store = []
        self._prepare(j + 1)

    def _transition(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Kalman transition F and process noise Q over ``steps`` blocks (cached)."""
        fq = self._transitions.get(steps)
        if fq is None:
            t = steps * self.block_s
            f = np.array([[1.0, t, t * t / 2.0], [0.0, 1.0, t], [0.0, 0.0, 1.0]])
            q = self.jerk_psd * np.array([[t ** 5 / 20.0, t ** 4 / 8.0, t ** 3 / 6.0],
                                          [t ** 4 / 8.0, t ** 3 / 3.0, t ** 2 / 2.0],
                                          [t ** 3 / 6.0, t ** 2 / 2.0, t]])
            fq = (f, q)
            if steps <= CACHED_TRANSITIONS:  # a gap's many lengths are not kept
                self._transitions[steps] = fq
        return fq

    def _predict(self, j: int, covariance: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Kalman state and (if asked) covariance carried to the centre of block ``j``; the
        frequency stays within nominal ± max_offset_hz (a long gap must not extrapolate the
        frequency drift without bound)."""
        f, q = self._transition(j - self._kf_block)
        x = f @ self._kf_x
        x[0] = _wrap(x[0])
        x[1] = min(max(x[1], self._omega_lo), self._omega_hi)
        return x, (f @ self._kf_p @ f.T + q) if covariance else None

    def _design(self, state: np.ndarray) -> np.ndarray:
        """Regression matrix over one block for state (θ_c, ω, ω̇), transposed: an offset row,
        then cos(h·θ) for h = 1 … n_harmonics, then sin(h·θ), (1 + 2·n_harmonics, block_len).

        The harmonics come from powers of e^{iθ} (one complex exponential per sample)."""
        theta = state[0] + state[1] * self._tau_s + state[2] * self._half_tau2
        n_h = self._harmonics.size
        powers = np.empty((n_h, self.block_len), dtype=complex)
        powers[0] = np.exp(1j * theta)
        for k in range(1, n_h):
            np.multiply(powers[k - 1], powers[0], out=powers[k])
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

    def _measure_phase(self, a: np.ndarray, w: np.ndarray) -> tuple[float, float] | None:
        """Phase (rad) of a block's harmonic amplitudes ``a`` (harmonics, channels; µV) against
        the learnt ones, and its variance (rad²); ``None`` without anything to compare.

        ``w`` is each channel's inverse per-quadrature noise variance (1/µV²). The coarse phase
        comes from the fundamental; a linearised weighted least-squares step over all harmonics
        refines it. A second step down-weights each harmonic/channel whose amplitude does not fit
        the learnt one (e.g. a 120 Hz EMG train on the 2nd harmonic of 60 Hz mains)."""
        p = self._phasors
        cross = a * np.conj(p)  # a·P*, whose phase is the error (h × it for harmonic h)
        z1 = complex(cross[0] @ w)
        if z1 == 0.0:
            return None
        h = self._harmonics[:, None]
        p2 = p.real * p.real + p.imag * p.imag
        h2p2 = h * h * p2
        a2p2 = a.real * a.real + a.imag * a.imag + p2
        error = math.atan2(z1.imag, z1.real)
        weight = w
        rotated = cross * np.exp(-1j * h * error)
        for _ in range(2):
            info = float((weight * h2p2).sum())
            error += float((weight * h * rotated.imag).sum()) / info
            rotated = cross * np.exp(-1j * h * error)
            # |a·e^{−ihε} − P|² · w / 2, ≈ 1 for noise alone
            misfit = w * (a2p2 - 2.0 * rotated.real) / 2.0
            weight = w / np.maximum(1.0, misfit / MISFIT_TOLERANCE)
        return error, max(1.0 / info, MIN_PHASE_VARIANCE_RAD2)

    def _learn(self, j: int, block: np.ndarray, usable: np.ndarray,
               design: np.ndarray | None) -> None:
        """Fit block ``j`` against the predicted phase, update the tracker and the amplitudes.

        ``design`` is the block's regression matrix when already built for synthesis."""
        if self._kf_block is None:
            self._kf_x = np.array([0.0, 2.0 * np.pi * self._nominal_hz, 0.0])
            self._kf_p = np.diag([0.0, (2.0 * np.pi * INITIAL_FREQUENCY_SD_HZ) ** 2,
                                  (2.0 * np.pi * INITIAL_FREQUENCY_RATE_SD_HZ_S) ** 2])
            self._kf_block = j
        x_pred, p_pred = self._predict(j)
        n_h = self._harmonics.size
        phi = self._design(x_pred) if design is None else design
        x = block if usable.all() else np.where(usable[:, None], block, 0.0)  # (channels, samples)
        proj = phi @ x.T
        beta = np.linalg.solve(phi @ phi.T, proj)
        dof = self.block_len - phi.shape[0]
        resid_var = np.maximum(np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->j", beta, proj),
                               _TINY * dof) / dof
        a = beta[1:1 + n_h] - 1j * beta[1 + n_h:]  # (harmonics, channels) µV

        # phase innovation against the learnt amplitudes (channels already learnt only)
        known = usable & (self._weight_sum > 0)
        w = np.zeros(self.n_channels)  # 1 / per-quadrature variance, for learnt channels only
        np.divide(self.block_len, 2.0 * resid_var, out=w, where=known)
        measured = self._measure_phase(a, w)
        error = 0.0
        if measured is not None:
            error, variance = measured
            # soft gate: an innovation far outside its predicted spread counts for less
            surprise = error * error / (p_pred[0, 0] + variance)
            variance *= max(1.0, surprise / INNOVATION_GATE)
            gain = p_pred[:, 0] / (p_pred[0, 0] + variance)
            x_pred = x_pred + gain * error
            p_pred = p_pred - gain[:, None] * p_pred[0]
            x_pred[0] = _wrap(x_pred[0])
            x_pred[1] = min(max(x_pred[1], self._omega_lo), self._omega_hi)
        self._kf_x, self._kf_p, self._kf_block = x_pred, p_pred, j

        # amplitudes: de-rotate by the measured phase error, smooth, gain scaled by noise ratio
        noise_var = self._noise_var
        fresh = usable & np.isnan(noise_var)
        noise_var[fresh] = resid_var[fresh]
        ratio = np.ones(self.n_channels)  # block residual / floor, 1 for unusable channels
        np.divide(resid_var, noise_var, out=ratio, where=usable)
        # the floor falls quickly but rises slowly (at most FLOOR_RISE_PER_S): a sustained EMG
        # train must not lift it to its own level, or the train would be learnt as mains
        # A lead gone dead off the rails (so not caught as flat) shows neither its noise nor
        # its mains: far below the floor AND the learnt fundamental missing. Such a block
        # teaches nothing and leaves the floor alone, or the channel would unlearn its mains
        # and then take every normal block after it for EMG activity. (A channel that merely
        # got quieter still carries its mains, and its floor follows it down.)
        learnt = np.abs(self._phasors[0])
        dead = usable & (ratio < DEAD_RATIO) & (learnt >= DEAD_MIN_MAINS_UV) \
            & (np.abs(a[0]) < DEAD_MAINS_FRACTION * learnt)
        fall = np.where(dead, 1.0, np.sqrt(np.minimum(ratio, 1.0)))
        noise_var *= fall * np.minimum(np.maximum(ratio, 1.0) ** 0.05, self._floor_rise)
        # EMG activity well above the floor (a train firing near a harmonic) teaches nothing:
        # learning it would leave a fading "echo" of the train after it stops
        weight = np.where(usable & ~dead & (ratio <= ACTIVITY_RATIO), np.minimum(1.0, 1.0 / ratio), 0.0)
        self._weight_sum += weight
        step = weight / np.maximum(np.minimum(self._weight_sum, self._memory_blocks), 1e-12)
        self._phasors += step * (a * np.exp(-1j * self._harmonics[:, None] * error) - self._phasors)
        self._coef = np.concatenate((self._phasors.real, -self._phasors.imag))


_TINY = float(np.finfo(float).tiny)


def _wrap(angle: float) -> float:
    """``angle`` (rad) wrapped into [−π, π)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
