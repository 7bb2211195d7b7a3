"""Streaming free-run EMG event detection: spikes, bursts, A-trains and B-trains.

Input is the clean stream (µV, band-passed, mains and ECG removed) with a blanking mask from
:class:`~ionm_station.dsp.artifacts.ArtifactDetector`. Per channel:

1. **Detection signal** ``y``: the clean signal (zero where blanked) through a 2nd-order
   :data:`DETECT_HIGHPASS_HZ` high-pass that strips ECG residue and band-pass ringing but keeps
   A-trains (≥ 60 Hz); **envelope** ``e`` = RMS of ``y`` over :data:`ENVELOPE_S` (at least
   :data:`ENVELOPE_MIN_SAMPLES` samples).
2. **Noise floor** σ = median(|y|)/0.6745 per block of :data:`BLOCK_S`, over samples neither
   blanked nor inside activity; σ is the median of the last :data:`SIGMA_HISTORY_S` of block
   values (their lower quartile while that history is still filling, so activity in the first
   usable blocks cannot set a high floor), frozen while a channel is active (re-learnt after
   :data:`SIGMA_FORCE_S` of continuous activity, like a commercial auto-threshold).
   **Before the noise floor is known** (no block yet with :data:`SIGMA_MIN_USABLE` of usable
   samples; while the ECG canceller learns its threshold it blanks a QRS window on every
   beat, so that can take seconds) the detector is not blind: a block with at least
   :data:`PROVISIONAL_MIN_USABLE` of usable samples (≥ :data:`PROVISIONAL_MIN_SAMPLES`) sets
   a *provisional* σ from them alone (not pooled; the next such block replaces it, the first
   pooled block ends it), and against it a segment must reach
   :data:`PROVISIONAL_ON_FACTOR` × ON·σ. Measured rather than absolute because the channel's
   own floor is what every later threshold is relative to (amplifier and electrode noise
   differ several-fold between channels; a fixed µV floor would either call a noisy channel's
   noise EMG or hide a quiet channel's 100 µV burst), and σ from the median of ≥ 50 samples
   has a standard error of ≤ 17 %; the doubled ON threshold covers that and the unlearnt
   heartbeat's lead-in beside its blanked QRS, so only clearly large activity (a 300 µV
   burst is ~30 σ) is reported until the floor is pooled — a monitor that misses a small
   event for a second is safer than one that alarms on the heart. The first 0.25 s block (or
   a blanked start-up) has no σ at all: nothing is detected there.
3. **Segments**: runs of ``e`` above :data:`OFF_SIGMA`·σ that reach :data:`ON_SIGMA`·σ
   (hysteresis) — on a channel whose low band (40–200 Hz) is noisier than white noise would
   make it (a real ECG's P waves and own noise), also :data:`HIGH_ON_SIGMA` in the band above
   :data:`HIGH_BAND_HZ` or :data:`LOW_ON_SIGMA` in the band below, each against its own noise
   floor; none starts in a blanked sample or within :data:`BLANK_GUARD_S` after one. A run
   that reaches ON·σ broadband but not the two-band test still continues an episode it starts
   within :data:`CONTINUE_GAP_S` of (blanked samples not counted): a small A-train whose
   fundamental lies in the noisy low band clears the two-band test only now and then.
   A segment that runs into a blanked sample is cut there if it was above threshold at least
   :data:`BLANK_LEAD_S` before it, else dropped (the blanked artifact's lead-in); one that rises
   within :data:`POST_BLANK_TAIL_S` after a blank of :data:`BRIDGE_BLANK_MAX_S` or more
   (cautery, rails, lead-off, an unsubtracted heartbeat) on a channel that was quiet before
   it begins that artifact's tail: an episode it begins gives no event unless it outlasts
   :data:`POST_BLANK_TAIL_MAX_S` — or, after a heartbeat's blank alone, outgrows
   :data:`KEPT_TAIL_RATIO` × the detection signal's p-p over that blank (its last 5 ms left
   out; so too one rising within :data:`SHORT_KEPT_TAIL_S` after a shorter heartbeat's blank).
4. **Episodes**: segments closer than :data:`GAP_S` form one episode; a regular low-rate series
   (a B-train) bridges gaps up to :data:`GAP_ISI_FACTOR` × its median inter-spike interval,
   at most :data:`GAP_MAX_S`. Up to :data:`BRIDGE_BLANK_MAX_S` of blanked samples in a gap
   (a QRS window, a stimulus) do not count towards it: activity on both sides is one episode,
   which then spans the blank (never starting or ending in it).
5. **Classification**: an episode mostly covered by periodic segments (normalised
   autocorrelation ≥ :data:`A_PERIODICITY` at one lag of a 40–300 Hz rate) is an A-train however
   short (a 50 ms, 3-MUAP train included), as is one whose MUAP peaks fire at a steady rate in
   that range over most of it (:data:`A_REGULAR_FRACTION`) — intervals of up to
   :data:`A_MAX_SKIP` periods (MUAPs of a small train missed by the peak threshold) counting
   when at least :data:`A_SINGLE_FRACTION` are of one, or most peaks having another one
   period before or after (extra peaks between MUAPs, :data:`A_PAIR_SPAN`). An episode that
   is none of these without a stray tail (fewer than :data:`A_MIN_MUAPS` peaks within
   :data:`POST_BLANK_TAIL_MAX_S` after a gap of more than :data:`CONTINUE_GAP_S`: a
   heartbeat's residue beside its blanked QRS) is the A-train before that tail. Otherwise
   ≥ :data:`TRAIN_MIN_S` long is a B-train, ≤ :data:`SPIKE_MAX_MUAPS` MUAP peaks (dominant
   polarity of ``y``) within :data:`SPIKE_MAX_S` a spike, anything else a burst.

Everything is computed from the absolute sample index (filters carry state, σ changes only at
block boundaries; the envelope's running sum is exact integer arithmetic), so any chunking
gives the same events. An event is reported once the gap after it has passed: between
:data:`GAP_S` and :data:`GAP_MAX_S` (plus the envelope window) after its last MUAP.

Bounded over a long case: a segment is cut every :data:`SEGMENT_MAX_S` and an episode is
reported once it spans :data:`EPISODE_MAX_S` (continuous activity becomes consecutive events),
so the signal and segments held per channel never exceed those lengths. Only the A-train list
behind the train-time methods grows, by one entry per A-train.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np
from scipy import signal

from ionm_station.dsp.filters import paired_rows, unpaired_rows
from ionm_station.dsp.order import median_last
from ionm_station.events import Event
from ionm_station.montage import Montage

#: High-pass corner (Hz) and order of the detection signal.
DETECT_HIGHPASS_HZ = 40.0
DETECT_HIGHPASS_ORDER = 2
#: RMS envelope window (s) …
ENVELOPE_S = 0.002
#: … of at least this many samples (below 4 kHz): an RMS over fewer samples of noise crosses
#: ON_SIGMA by chance (2 samples at 1 kHz: ~once a second on 8 channels of pure noise).
ENVELOPE_MIN_SAMPLES = 8
#: Resolution (µV²) of the envelope's running sum of squares.
ENVELOPE_QUANTUM_UV2 = 1e-3
#: Noise-floor block (s) and history (s) over which block estimates are pooled.
BLOCK_S = 0.25
SIGMA_HISTORY_S = 4.0
#: σ is estimated from every this-many-th sample (noise is band-limited; saves time) …
SIGMA_DECIMATION = 4
#: … from this rate (Hz) on; below, a 0.25 s block holds too few samples for that (at 250 Hz,
#: 16 a block made σ swing enough for ~200 false events per channel-hour of pure noise).
SIGMA_DECIMATION_MIN_HZ = 2000.0
#: A block needs this fraction of usable samples to update the noise floor.
SIGMA_MIN_USABLE = 0.5
#: Until a channel's first such block, a block with at least this fraction of usable samples
#: (and at least PROVISIONAL_MIN_SAMPLES of them on the σ grid) sets a provisional σ from them
#: alone: while the ECG canceller learns its threshold it blanks a QRS window on every beat on
#: channels with a big heart, and blocks half blanked kept σ unknown (the detector blind) for
#: over a second (a 293 µV burst at 1.18 s missed on tune-mitdb-10k, σ NaN until 1.25 s).
#: A provisional σ is not pooled into the history; the first block meeting SIGMA_MIN_USABLE
#: replaces it. Against a provisional σ a segment must reach PROVISIONAL_ON_FACTOR × ON_SIGMA
#: (OFF_SIGMA unchanged): its few samples may lie next to an unlearnt heartbeat's blanked QRS
#: (its P wave and QRS onset, 3.2 σ on tune-mitdb-10k's iliopsoas at 0.54 s), and the
#: two-band test that keeps such residue out waits for TWO_BAND_MIN_BLOCKS pooled blocks.
PROVISIONAL_MIN_USABLE = 0.2
PROVISIONAL_MIN_SAMPLES = 50
PROVISIONAL_ON_FACTOR = 2.0
#: After this long (s) without a usable block because of activity, activity counts as noise.
SIGMA_FORCE_S = 10.0
#: Envelope thresholds in σ: a segment must reach ON and lasts while above OFF.
ON_SIGMA = 3.0
OFF_SIGMA = 1.8
#: Two bands of the detection signal, split at HIGH_BAND_HZ (a 4th-order high-pass; from
#: HIGH_BAND_MIN_RATE_HZ on), each with its own noise floor (median |x| of the same quiet
#: samples; the low band's σ² is σ² − σ_high²). On a channel whose low band is noisy (below) a
#: segment must also reach HIGH_ON_SIGMA in the high band's 2 ms RMS or LOW_ON_SIGMA in the
#: low band's: a needle MUAP is sharp and broadband and clears the first even where the
#: broadband σ is inflated; an A-train near 60 Hz, or anything slow, must stand out of the low
#: band's own floor. What a real heart brings with it — the P wave's beat-to-beat variation,
#: the recording's own noise, tens of µV, bursty, on the channels with the most ECG — lies
#: mostly in the low band. A split at 500 Hz also kept out the part of an ECG record's own
#: noise between 200 and 500 Hz, but it cost sensitivity (held-out holdout-ptb-10k 0.981 →
#: 0.969, 30–80 µV 0.912 → 0.853) and its gain relied on the benchmark's ECG having nothing
#: above 500 Hz by construction (PTB sampled at 1 kHz). A monitor must not miss activity; a
#: sub-threshold false event raises no alarm: the split stays at 200 Hz.
HIGH_BAND_HZ = 200.0
HIGH_BAND_ORDER = 4
HIGH_BAND_MIN_RATE_HZ = 1000.0
HIGH_ON_SIGMA = 3.0
LOW_ON_SIGMA = 8.0
#: … once a channel's noise floor has this many blocks behind it (the first block's σ may be
#: the activity itself: a train from the first sample made its own low band "noisy").
TWO_BAND_MIN_BLOCKS = 2
#: The two-band test applies on channels whose low band's robust σ exceeds this many times
#: what white amplifier noise gives against the high band at the rate (through the detection
#: high-pass and the chain's default band-pass, 10 Hz–3 kHz clamped to 0.9 × Nyquist: 0.24 at
#: 10 kHz, 0.28 at 5 kHz, 0.48 at 2 kHz, 0.80 at 1 kHz — a fixed 0.5 sat at 1.8 × the white
#: value at 5 kHz and on it at 2 kHz, so plain channels switched the test on and off from
#: block to block); other channels keep the plain broadband test. For this decision the low
#: band's σ is measured on its own (a 4th-order HIGH_BAND_HZ low-pass of ``y``, median |x| of
#: the same quiet samples): white noise has ~94 % of its power above 200 Hz at 10 kHz, and
#: √(σ² − σ_high²) from two separately pooled medians swung 0–1.9 × the white value on
#: white noise (the low band measured on its own stays within 0.86–1.13 × it, 1–10 kHz).
LOW_NOISY_FACTOR = 1.4
#: MUAP peaks: at least this many σ in ``y`` and this fraction of the episode's largest peak,
#: at least :data:`PEAK_MIN_DISTANCE_S` apart.
PEAK_SIGMA = 3.0
PEAK_RELATIVE = 0.25
PEAK_MIN_DISTANCE_S = 0.0025
#: Episode grouping (s): segments closer than GAP_S belong together; regular series bridge
#: GAP_ISI_FACTOR × their median interval, up to GAP_MAX_S.
GAP_S = 0.25
GAP_ISI_FACTOR = 2.5
GAP_MAX_S = 0.45
#: A run that reaches ON·σ in the broadband envelope but not the two-band test (see
#: HIGH_BAND_HZ) still makes a segment when it starts within this (s) of the channel's open
#: episode (blanked samples not counted): a small A-train whose fundamental lies below
#: HIGH_BAND_HZ on a channel with a noisy low band clears the two-band test only now and then
#: and broke into spikes, bursts and B-trains; continuing only what is that close keeps the
#: ECG record's own noise from extending a spike or a burst by a few scattered crossings.
CONTINUE_GAP_S = 0.05
#: The bridging interval is taken from the MUAPs of this many most recent segments.
GAP_RECENT_SEGMENTS = 16
#: Samples within this (s) after a blanked sample are blanked too (filter settling).
BLANK_GUARD_S = 0.005
#: A segment cut short by a blank is kept (truncated at the blank) when it was above threshold
#: at least this long (s) before the blank; shorter ones are the blanked artifact's lead-in.
BLANK_LEAD_S = 0.005
#: Blanked samples between two segments do not count towards the gap between them when there
#: are at most this many seconds of them (a QRS window, a stimulus): activity going on on both
#: sides of a short blank is one episode. Longer blanks (cautery, lead-off) end an episode.
BRIDGE_BLANK_MAX_S = 0.35
#: An episode whose first segment rises within POST_BLANK_TAIL_S after such a long blank (past
#: its guard) and that spans at most POST_BLANK_TAIL_MAX_S is the artifact's tail — an
#: amplifier still recovering, a filter still ringing, a heartbeat the ECG canceller could not
#: yet subtract (its QRS begins up to tens of ms apart on different leads) — and gives no
#: event, unless the channel was active within GAP_S before the blank began (a train going on
#: through it).
POST_BLANK_TAIL_S = 0.05
POST_BLANK_TAIL_MAX_S = 0.25
#: … of any size after a blank holding an artifact's zeroed samples; after one the ECG
#: canceller's kept samples alone make (a heartbeat it did not subtract, passed through the
#: filters as it is), only while its p-p stays within this fraction of the detection
#: signal's p-p over the blank (its blanked samples but their last BLANK_GUARD_S): a
#: heartbeat's residue is smaller than the heartbeat.
KEPT_TAIL_RATIO = 0.5
#: … and so, within SHORT_KEPT_TAIL_S (past its guard), after a shorter blank of the ECG
#: canceller's kept samples alone lasting SHORT_KEPT_MIN_S or more (its guard included): a
#: heartbeat left (nearly) whole over the QRS window goes on past the window's end, and its
#: rest read as a 6–16 µV spike right there, at R + 110…118 ms (extra tuning seeds 630, 738,
#: 744, 810, 882, after gate blanks of 150–160 ms; 50–160 µV RMS blanked just before). Only
#: that close, and not after the gate's shorter blanks: a 31 µV burst on a QRS, its first
#: 50 ms blanked as a misfit, was taken for the tail of that blank (seed 655, 60.03 s).
SHORT_KEPT_TAIL_S = 0.01
SHORT_KEPT_MIN_S = 0.1
#: Classification limits.
SPIKE_MAX_S = 0.040
SPIKE_MAX_MUAPS = 2
TRAIN_MIN_S = 0.3
#: A-trains: firing rate range (Hz); a segment at least PERIODIC_MIN_S long is periodic when
#: its normalised autocorrelation at one lag in that range reaches A_PERIODICITY; an episode is
#: an A-train when periodic segments with periods within A_PERIOD_TOLERANCE of each other cover
#: A_COVERAGE of it.
A_RATE_HZ = (40.0, 300.0)
PERIODIC_MIN_S = 0.03
A_PERIODICITY = 0.7
A_PERIOD_TOLERANCE = 0.1
A_COVERAGE = 0.7
#: … or when at least A_MIN_MUAPS MUAP peaks span A_COVERAGE of it at a steady rate in that
#: range: A_REGULAR_FRACTION of their intervals within A_ISI_TOLERANCE of the median interval
#: (a small, low-rate A-train whose 2 ms envelope dips below threshold every period breaks into
#: segments too short to be periodic on their own; B-trains fire irregularly, CV ≈ 0.5).
A_MIN_MUAPS = 6
A_ISI_TOLERANCE = 0.15
A_REGULAR_FRACTION = 0.8
#: … also when some MUAPs were missed (a small train's peaks under PEAK_SIGMA): intervals of
#: up to A_MAX_SKIP periods count as steady, but at least A_SINGLE_FRACTION of all intervals
#: must be of one period (a B-train's, gamma-distributed with CV 0.5, are ~17 % by chance).
A_SINGLE_FRACTION = 0.4
A_MAX_SKIP = 10
#: … or when A_REGULAR_FRACTION of its peaks have another one period before or after them
#: (extra peaks between MUAPs), the period being the commonest difference among peaks up to
#: this many apart.
A_PAIR_SPAN = 4
#: Longest segment (s): a run above threshold is cut into segments of at most this length.
SEGMENT_MAX_S = 1.0
#: Longest episode (s): an episode that spans this long is reported and the activity after it
#: starts a new one (twice the longest B-trains, ~10 s; continuous C-train activity goes on for
#: minutes).
EPISODE_MAX_S = 20.0
#: Onset/offset correction (s): the first sample above OFF lags the visible start of a MUAP,
#: and the causal envelope outlasts its end by about one window.
ONSET_LEAD_S = 0.002
OFFSET_LAG_S = 0.002
#: σ = median(|x|) / this for Gaussian noise.
MAD_TO_SIGMA = 0.6745

KINDS = ("spike", "burst", "train")


#: An A-train still going on is reported (provisionally, for alarms) once it has lasted this (s).
ONGOING_MIN_S = 0.1
#: Signal of a still-open segment examined for its period (s).
ONGOING_WINDOW_S = 0.5

def white_band_ratio(fs: float, detect_sos: np.ndarray, high_sos: np.ndarray,
                     low_sos: np.ndarray) -> float:
    """σ of the low band (``low_sos``) over σ of the high band (``high_sos``) for white noise
    through the chain's default band-pass and the detection high-pass ``detect_sos`` at rate
    ``fs``."""
    from ionm_station.dsp.filters import MAX_EDGE_OF_NYQUIST, bandpass_sos

    band = bandpass_sos(10.0, min(3000.0, MAX_EDGE_OF_NYQUIST * fs / 2.0), fs)
    _, h = signal.sosfreqz(np.concatenate([band, detect_sos]), 4096, fs=fs)
    _, g = signal.sosfreqz(high_sos, 4096, fs=fs)
    _, lp = signal.sosfreqz(low_sos, 4096, fs=fs)
    return float(np.sqrt(np.sum(np.abs(h * lp) ** 2) / np.sum(np.abs(h * g) ** 2)))


def robust_sigma(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Robust noise σ (same unit as ``x``) = median(|x|) / 0.6745 along ``axis``."""
    return np.median(np.abs(x), axis=axis) / MAD_TO_SIGMA


@dataclass(frozen=True)
class DetectedEvent:
    """One free-run EMG event on one channel.

    Attributes:
        channel: channel index.
        kind: ``"spike"``, ``"burst"`` or ``"train"``.
        train_type: ``"A"`` or ``"B"`` for trains, None otherwise.
        onset: absolute index of the first sample of the first MUAP.
        offset: absolute index of the last sample of the last MUAP.
        peak_uv: largest peak-to-peak amplitude (µV) of the detection signal in the event.
        rate_hz: firing rate of trains (Hz; median interval for A, mean for B), else None.
        above_threshold: ``peak_uv`` ≥ the channel's threshold (µV p-p) when it was reported.
        n_muaps: MUAP peaks counted.
    """

    channel: int
    kind: str
    train_type: str | None
    onset: int
    offset: int
    peak_uv: float
    rate_hz: float | None
    above_threshold: bool
    n_muaps: int = 0

    @property
    def stop(self) -> int:
        """Absolute index one past the last sample (interval ends are exclusive elsewhere)."""
        return self.offset + 1

    def to_event(self) -> Event:
        """The ``emg_event`` entry the event log, recordings and reports carry (peak µV and
        rate Hz to 0.1)."""
        return Event("emg_event", self.onset, self.stop, (self.channel,),
                     {"kind": self.kind, "train_type": self.train_type,
                      "peak_uv": round(float(self.peak_uv), 1),
                      "rate_hz": None if self.rate_hz is None else round(float(self.rate_hz), 1),
                      "above_threshold": bool(self.above_threshold)})


@dataclass
class _Segment:
    """A run of envelope above threshold with its MUAP peaks (absolute indices, µV heights)."""

    start: int
    stop: int
    pp_uv: float
    peaks: tuple[np.ndarray, np.ndarray]       # positive peaks: indices, heights
    troughs: tuple[np.ndarray, np.ndarray]     # negative peaks: indices, heights (as > 0)
    period: float | None = None                # samples, when the segment is periodic
    blanked_start: int = 0                     # blanked samples on the channel before start
    blanked_stop: int = 0                      # … and before stop
    tail: float = 0.0                          # rose right after a blank: see _Open


@dataclass
class _Episode:
    segments: list[_Segment] = field(default_factory=list)
    gap: int = 0
    tail: float = 0.0                          # began as a blank's tail: see _Open
    bridged: int = 0                           # blanked samples between its segments

    @property
    def last_stop(self) -> int:
        return self.segments[-1].stop

    def muap_times(self, last: int = 0) -> np.ndarray:
        """Peak indices of the dominant polarity, small ones (< PEAK_RELATIVE of max) left out;
        from the ``last`` segments only if given."""
        segments = self.segments[-last:] if last else self.segments
        pos = [s.peaks for s in segments]
        neg = [s.troughs for s in segments]
        idx_p, h_p = np.concatenate([p[0] for p in pos]), np.concatenate([p[1] for p in pos])
        idx_n, h_n = np.concatenate([p[0] for p in neg]), np.concatenate([p[1] for p in neg])
        max_p = h_p.max() if len(h_p) else 0.0
        max_n = h_n.max() if len(h_n) else 0.0
        idx, h, top = (idx_p, h_p, max_p) if max_p >= max_n else (idx_n, h_n, max_n)
        return idx[h >= PEAK_RELATIVE * top]


@dataclass
class _Open:
    """A segment still above threshold at the end of a chunk."""

    start: int
    sigma: float
    strong: bool
    parts: list[np.ndarray] = field(default_factory=list)
    broad: bool = False                        # reached ON·σ in the broadband envelope
    blanked_start: int = 0                     # blanked samples on the channel before start
    tail: float = 0.0                          # rose right after a blank: the largest
                                               # p-p (µV) its tail may have (0: none)


class EmgEventDetector:
    """Streaming free-run EMG event detector for a (n_samples, n_channels) clean µV stream.

    Args:
        montage: channel i is ``montage.channels[i]`` (root-side for train time).
        sample_rate_hz: sampling rate (Hz).
        on_sigma, off_sigma: envelope hysteresis thresholds in units of the noise σ.
        thresholds_uv: float array, one event threshold (µV p-p) per channel, read by reference
            when an event is reported (``above_threshold``), so a change made by its owner applies
            at once; default: the montage's thresholds.
    """

    def __init__(self, montage: Montage, sample_rate_hz: float, on_sigma: float = ON_SIGMA,
                 off_sigma: float = OFF_SIGMA, thresholds_uv: np.ndarray | None = None) -> None:
        self.montage = montage
        self.n_channels = len(montage.channels)
        self.sample_rate_hz = float(sample_rate_hz)
        self.on_sigma, self.off_sigma = on_sigma, off_sigma
        fs = self.sample_rate_hz
        self._hp = signal.butter(DETECT_HIGHPASS_ORDER, DETECT_HIGHPASS_HZ, btype="highpass",
                                 fs=fs, output="sos")
        self._hp_zi_unit = signal.sosfilt_zi(self._hp)
        self._hi = self._lo = None
        self._low_noisy = math.inf
        if fs >= HIGH_BAND_MIN_RATE_HZ:
            self._hi = signal.butter(HIGH_BAND_ORDER, HIGH_BAND_HZ, btype="highpass", fs=fs,
                                     output="sos")
            self._lo = signal.butter(HIGH_BAND_ORDER, HIGH_BAND_HZ, btype="lowpass", fs=fs,
                                     output="sos")
            self._low_noisy = LOW_NOISY_FACTOR * white_band_ratio(fs, self._hp, self._hi,
                                                                  self._lo)
        self._env_len = max(ENVELOPE_MIN_SAMPLES, round(ENVELOPE_S * fs))
        self._sigma_step = SIGMA_DECIMATION if fs >= SIGMA_DECIMATION_MIN_HZ else 1
        self._block = max(1, round(BLOCK_S * fs))
        self._history_len = max(1, round(SIGMA_HISTORY_S / BLOCK_S))
        self._force_blocks = max(1, round(SIGMA_FORCE_S / BLOCK_S))
        self._guard = round(BLANK_GUARD_S * fs)
        self._blank_lead = max(1, round(BLANK_LEAD_S * fs))
        self._bridge_max = round(BRIDGE_BLANK_MAX_S * fs)
        self._post_blank_tail = max(1, round(POST_BLANK_TAIL_S * fs))
        self._short_kept_tail = max(1, round(SHORT_KEPT_TAIL_S * fs))
        self._short_kept_min = round(SHORT_KEPT_MIN_S * fs)
        self._post_blank_tail_max = round(POST_BLANK_TAIL_MAX_S * fs)
        self._gap = round(GAP_S * fs)
        self._gap_max = round(GAP_MAX_S * fs)
        self._continue_gap = round(CONTINUE_GAP_S * fs)
        self._peak_distance = max(1, round(PEAK_MIN_DISTANCE_S * fs))
        self._offset_lag = max(round(OFFSET_LAG_S * fs), self._env_len)  # ≥ 1 envelope
        self._segment_max = max(1, round(SEGMENT_MAX_S * fs))
        self._episode_max = round(EPISODE_MAX_S * fs)
        if thresholds_uv is None:
            thresholds_uv = np.array([c.threshold_uv for c in montage.channels], float)
        if not (isinstance(thresholds_uv, np.ndarray) and thresholds_uv.shape == (self.n_channels,)
                and thresholds_uv.dtype.kind == "f"):
            raise ValueError(f"thresholds_uv must be a float array of {self.n_channels} values")
        self.thresholds_uv = thresholds_uv
        self.reset()

    def reset(self) -> None:
        """Forget all state: filters, noise floor, open events and train time."""
        c = self.n_channels
        self._first: int | None = None  # absolute index of the first sample seen
        self._next: int | None = None
        # filter states of channel pairs (see :meth:`_filtered`), complex
        self._hp_zi: np.ndarray | None = None
        self._env_tail = np.zeros((c, self._env_len - 1), np.int64)
        self._env_tail_hi = np.zeros((c, self._env_len - 1), np.int64)
        self._hi_zi = np.zeros((HIGH_BAND_ORDER // 2, (c + 1) // 2, 2), complex)
        self._lo_zi = np.zeros((HIGH_BAND_ORDER // 2, (c + 1) // 2, 2), complex)
        self._sigma = np.full(c, np.nan)
        self._sigma_hi = np.full(c, np.nan)
        self._sigma_lo = np.full(c, np.nan)
        # block noise values of the detection signal, then (from HIGH_BAND_MIN_RATE_HZ) of
        # its high band and its low band: one row per band and channel, a ring per row
        bands = 1 if self._hi is None else 3
        self._history = np.full((bands * c, self._history_len), np.nan)
        self._history_i = np.zeros(c, np.int64)
        self._stalled = np.zeros(c, np.int64)
        self._block_parts: list[tuple[np.ndarray, ...]] = []
        self._prev_above = np.zeros(c, bool)
        self._guard_until = np.full(c, -1, np.int64)
        self._open: list[_Open | None] = [None] * c
        self._episodes: list[_Episode | None] = [None] * c
        self._a_trains: list[list[tuple[int, int]]] = [[] for _ in range(c)]
        self._blanked_total = np.zeros(c, np.int64)   # blanked samples before the chunk
        self._blank_run = np.zeros(c, np.int64)       # blocked samples ending the last chunk
        self._blank_run_zeroed = np.zeros(c, bool)    # … holding a zeroed sample
        self._blank_run_lo = np.zeros(c)              # … the detection signal's least there
        self._blank_run_hi = np.zeros(c)              # … and largest (µV)
        self._blank_run_last = [np.zeros(0)] * c      # … its last blanked samples' (µV)
        # absolute (start, end) of the blanks per channel that a segment may rise as the tail
        # of, the largest p-p (µV) of that tail and how soon (samples) after the end it must
        # rise (see _note_tailed_blanks): those that may still matter (end: the first
        # unblocked sample)
        never = np.iinfo(np.int64).min // 2
        self._tailed_blanks: list[np.ndarray] = [np.zeros((0, 4))] * c
        self._last_stop = np.full(c, never)  # end of the channel's last segment kept
        self._chunk_blocked: np.ndarray | None = None  # the chunk's blanked samples
        self._chunk_start = 0
        self._scratch: dict[str, np.ndarray] = {}

    # --- public API ---

    @property
    def sigma_uv(self) -> np.ndarray:
        """Current noise σ per channel (µV) of the detection signal; NaN until learnt."""
        return self._sigma.copy()

    @property
    def two_band_channels(self) -> np.ndarray:
        """Per channel, whether the two-band test applies now (its low band is noisy)."""
        return self._noisy_low()

    def _noisy_low(self) -> np.ndarray:
        """Channels whose low band's own σ exceeds LOW_NOISY_FACTOR × the white-noise ratio ×
        σ of the high band (False while either σ is not yet learnt)."""
        with np.errstate(invalid="ignore"):
            noisy = self._sigma_lo > self._low_noisy * self._sigma_hi
        return noisy & (self._history_i >= TWO_BAND_MIN_BLOCKS)

    def process(self, clean: np.ndarray, start: int, blanked: np.ndarray | None = None,
                kept: np.ndarray | None = None, settled: np.ndarray | None = None
                ) -> list[DetectedEvent]:
        """Feed the next consecutive chunk (n, n_channels) µV starting at absolute ``start``;
        ``blanked`` (n, n_channels) bool marks samples never to detect in. A blanked sample
        enters the filters as zero (an artifact's swing would ring on past the blank), except
        where ``kept`` (n, n_channels) bool says it goes through as it is: what the ECG
        canceller blanks — a residual no larger than the heartbeat, a P wave, an unsubtracted
        beat whose blank lasts well past its QRS, the stream before its first beat is judged —
        is not an amplifier's swing, and zeroed, the step back to the signal at the blank's end
        read as a spike after it (R + 100…+120 ms, where a gated QRS core ends). ``settled``
        (n, n_channels) bool marks blanked samples whose blank lasts until the stream has
        settled (lost samples and the settle after them, ``dsp.gaps``): what rises after them
        is no artifact's tail (:data:`POST_BLANK_TAIL_S`) on their account. Returns the
        events that ended (finalised) with this chunk, ordered by onset."""
        n = len(clean)
        if self._next is not None and start != self._next:
            raise ValueError(f"chunk starts at {start}, expected {self._next}")
        if self._first is None:
            self._first = start
        self._next = start + n
        if n == 0:
            return []
        # channel-major internally: every per-channel operation runs on contiguous rows
        x = self._work("x", (self.n_channels, n), np.float64)
        np.copyto(x, np.asarray(clean).T)
        bad = ~np.isfinite(x)
        zero = bad
        if blanked is not None:
            outside = np.asarray(blanked, bool).T
            bad = bad | outside
            zero = bad if kept is None else (zero | (outside & ~np.asarray(kept, bool).T))
        if zero.any():
            x[zero] = 0.0
        blocked = self._guarded(bad, start)
        self._chunk_start, self._chunk_blocked = start, blocked
        y, hi, lo = self._filtered(x, start)
        self._note_tailed_blanks(blocked, bad,
                                 zero if settled is None else zero & ~np.asarray(settled).T,
                                 y, start)
        env, self._env_tail = self._envelope(y, self._env_tail)
        env_hi = None
        if hi is not None:  # read on the two-band channels only: computed for those
            env_hi = _RowEnvelope(self._envelope, hi, self._env_tail_hi)
            self._env_tail_hi = self._envelope(hi[:, 1 - self._env_len:], self._env_tail_hi,
                                               "env_tail")[1]
        above, strong, broad, sigma_at = self._threshold(y, env, blocked, start, hi, env_hi, lo)
        events: list[DetectedEvent] = []
        self._segments(y, above, strong, broad, blocked, sigma_at, start, events)
        self._expire(start + n, events)
        self._blanked_total += np.count_nonzero(blocked, axis=1)
        self._chunk_start, self._chunk_blocked = start + n, None
        return sorted(events, key=lambda ev: (ev.onset, ev.channel))

    def _blanked_before(self, c: int, index: int) -> int:
        """Blanked samples on channel ``c`` before absolute ``index`` (within the chunk)."""
        total = int(self._blanked_total[c])
        if self._chunk_blocked is None or index <= self._chunk_start:
            return total
        return total + int(np.count_nonzero(self._chunk_blocked[c, :index - self._chunk_start]))

    def flush(self) -> list[DetectedEvent]:
        """End of record: close open activity and return every remaining event."""
        events: list[DetectedEvent] = []
        end = self._next or 0
        for c in range(self.n_channels):
            op = self._open[c]
            if op is not None:
                self._open[c] = None
                if self._kept(c, op):
                    self._add_segment(c, self._segment(c, op, np.concatenate(op.parts), end), events)
            if self._episodes[c] is not None:
                self._finalise(c, events)
        self._prev_above[:] = False
        return sorted(events, key=lambda ev: (ev.onset, ev.channel))

    def channel_train_time_s(self, channel: int) -> float:
        """Summed duration (s) of the A-trains reported so far on ``channel``."""
        return sum(b - a + 1 for a, b in self._a_trains[channel]) / self.sample_rate_hz

    def train_time_s(self) -> dict[str, float]:
        """Train time (s, summed A-train duration reported so far) per channel label."""
        return {ch.label: self.channel_train_time_s(i) for i, ch in enumerate(self.montage.channels)}

    def root_side_train_time_s(self) -> dict[str, float]:
        """Train time (s) per root-side (``"L5-L"``): duration of the union of the A-trains of
        its channels, so a train seen on two channels of one root counts once."""
        out = {}
        for key in self.montage.root_sides():
            root, side = key.split("-")
            spans = sorted(s for c in self.montage.channels_of(root, side) for s in self._a_trains[c])
            total, reach = 0, -1
            for a, b in spans:
                if b > reach:
                    total += b - max(a, reach + 1) + 1
                    reach = b
            out[key] = total / self.sample_rate_hz
        return out

    # --- stages ---

    def _work(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A scratch array kept between chunks (fresh large arrays cost page faults every
        chunk); its content is only valid within one :meth:`process` call."""
        buf = self._scratch.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._scratch[name] = np.empty(shape, dtype)
        return buf

    def _filtered(self, x: np.ndarray, start: int
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The detection signal of the (channels, n) finite µV chunk ``x`` starting at absolute
        ``start`` and (from :data:`HIGH_BAND_MIN_RATE_HZ`) its high band, (channels, n) µV
        each, and its low band on the σ grid only (every ``_sigma_step``-th absolute index: all
        it feeds). Channels are filtered in pairs, as the real and imaginary parts of one
        complex signal: the same values bit for bit (a real filter keeps the parts apart), and
        a recursion of one or two sections is bound by its latency, so a pair costs little more
        than one channel did."""
        c = self.n_channels
        pairs = paired_rows(x)
        if self._hp_zi is None:
            self._hp_zi = paired_rows(self._hp_zi_unit[:, None, :] * x[:, 0][None, :, None],
                                      axis=1)
        y, self._hp_zi = signal.sosfilt(self._hp, pairs, axis=1, zi=self._hp_zi)
        if self._hi is None:
            return unpaired_rows(y, c), None, None
        hi, self._hi_zi = signal.sosfilt(self._hi, y, axis=1, zi=self._hi_zi)
        lo, self._lo_zi = signal.sosfilt(self._lo, y, axis=1, zi=self._lo_zi)
        grid = lo[:, (-start) % self._sigma_step::self._sigma_step]
        return unpaired_rows(y, c), unpaired_rows(hi, c), unpaired_rows(grid, c)

    def _guarded(self, blanked: np.ndarray, start: int) -> np.ndarray:
        """(channels, n) blanked samples dilated by the guard interval (carried across chunks)."""
        n = blanked.shape[1]
        carry = np.clip(self._guard_until - start, 0, n)
        any_blank = blanked.any(axis=1)
        if not any_blank.any() and not carry.any():
            return blanked
        blocked = blanked.copy()
        for c in np.flatnonzero(any_blank):
            runs = np.flatnonzero(np.diff(np.concatenate(([0], blanked[c].view(np.int8), [0]))))
            for stop in runs[1::2]:
                blocked[c, stop:stop + self._guard] = True
            self._guard_until[c] = start + int(runs[-1]) + self._guard
        for c in np.flatnonzero(carry):
            blocked[c, :carry[c]] = True
        return blocked

    def _note_tailed_blanks(self, blocked: np.ndarray, blanked: np.ndarray,
                            zeroed: np.ndarray, y: np.ndarray, start: int) -> None:
        """Record where blocked runs of at least BRIDGE_BLANK_MAX_S end in this chunk (runs
        carried across chunks count whole), and how large their tails may be: any size after
        one holding a ``zeroed`` sample (an artifact's: cautery, rails, lead-off); after one
        of the ECG canceller's kept samples alone, at most KEPT_TAIL_RATIO × the p-p of the
        detection signal ``y`` (channels × n µV) over its ``blanked`` samples — a heartbeat's
        residue is smaller than the heartbeat blanked before it (12 % of it on extra seed 895
        at 2.51 s), and taking anything that rose right after such a blank for its tail lost
        an 894 µV burst 43 ms after a learning window (seed 816, 2.26 s; 6.5 × the window's
        p-p) and a 166 µV one 6 ms after another (seed 595, 1.55 s; 0.94 ×). Not over its
        guard nor its last guard's length, where EMG rising as the blank ends would set the
        cap (extra seed 715, 177.03 s: a 733 µV spike rising 2.4 ms before a 215 ms heartbeat
        blank ended was taken for its tail). Shorter runs of kept samples alone, from
        SHORT_KEPT_MIN_S, are recorded too, their tails rising within SHORT_KEPT_TAIL_S."""
        n = blocked.shape[1]
        for c in range(self.n_channels):  # (segments rise in this chunk or later)
            rows = self._tailed_blanks[c]
            self._tailed_blanks[c] = rows[rows[:, 1] + rows[:, 3] > start]
        for c in np.flatnonzero(blocked.any(axis=1) | (self._blank_run > 0)):
            runs = np.flatnonzero(np.diff(np.concatenate(([0], blocked[c].view(np.int8), [0]))))
            starts, stops = runs[0::2], runs[1::2]
            lengths = stops - starts
            held = np.concatenate(([0], np.cumsum(zeroed[c])))
            hard = held[stops] > held[starts]
            # over each run's blanked samples but their last guard's length (carried across
            # chunks, decided once more come)
            lo, hi = np.full(len(starts), math.inf), np.full(len(starts), -math.inf)
            carried = self._blank_run_last[c] if self._blank_run[c] else np.zeros(0)
            for i, (a, b) in enumerate(zip(starts.tolist(), stops.tolist())):
                values = y[c, a:b][blanked[c, a:b]]
                if a == 0:
                    values = np.concatenate([carried, values])
                settled = values[:max(len(values) - self._guard, 0)]
                if len(settled):
                    lo[i], hi[i] = settled.min(), settled.max()
                if b == n:
                    self._blank_run_last[c] = values[len(settled):]
            if self._blank_run[c] and not (len(starts) and starts[0] == 0):
                starts, stops = np.insert(starts, 0, 0), np.insert(stops, 0, 0)  # ended with
                lengths = np.insert(lengths, 0, 0)                            # the last chunk
                hard = np.insert(hard, 0, False)
                lo, hi = np.insert(lo, 0, math.inf), np.insert(hi, 0, -math.inf)
            if self._blank_run[c]:
                lengths[0] += self._blank_run[c]
                hard[0] |= self._blank_run_zeroed[c]
                lo[0] = min(lo[0], self._blank_run_lo[c])
                hi[0] = max(hi[0], self._blank_run_hi[c])
            cap = np.where(hard, math.inf, KEPT_TAIL_RATIO * np.maximum(hi - lo, 0.0))
            long = lengths >= self._bridge_max
            ended = (long | (~hard & (lengths >= self._short_kept_min))) & (stops < n)
            window = np.where(long, self._post_blank_tail, self._short_kept_tail)
            self._tailed_blanks[c] = np.concatenate([self._tailed_blanks[c], np.column_stack(
                [start + stops[ended] - lengths[ended], start + stops[ended], cap[ended],
                 window[ended]])])
            going_on = bool(len(stops)) and stops[-1] == n
            self._blank_run[c] = lengths[-1] if going_on else 0
            self._blank_run_zeroed[c] = going_on and hard[-1]
            if going_on:
                self._blank_run_lo[c], self._blank_run_hi[c] = lo[-1], hi[-1]

    def _is_tail(self, c: int, rise: int) -> float:
        """Whether a segment rising at absolute ``rise`` on channel ``c`` would be a blank's
        tail (see :data:`POST_BLANK_TAIL_S` and :data:`SHORT_KEPT_TAIL_S`): the largest p-p
        (µV) a tail of it may have, 0.0 if it is none."""
        rows = self._tailed_blanks[c]
        rows = rows[(rows[:, 1] <= rise) & (rise - rows[:, 1] < rows[:, 3])]
        if not len(rows):
            return 0.0
        last = self._last_stop[c]
        ep = self._episodes[c]  # not yet closed, but its event (if any) will be kept
        if ep is not None and not self._short_tail(ep):
            last = max(last, ep.last_stop)
        caps = rows[last < rows[:, 0] - self._gap, 2]  # (quiet before: no train through it)
        return float(caps.max()) if len(caps) else 0.0

    def _short_tail(self, ep: _Episode) -> bool:
        """Whether an episode is a blank's short tail: no event."""
        return self._tail_of(ep.tail, ep.segments)

    def _tail_of(self, cap: float, segments: list[_Segment]) -> bool:
        """Whether ``segments`` (an episode's) rising right after a blank whose tail may
        reach ``cap`` µV p-p (0: none) are that tail: no longer than POST_BLANK_TAIL_MAX_S
        and no larger."""
        return (cap > 0.0 and segments[-1].stop - segments[0].start <= self._post_blank_tail_max
                and max(s.pp_uv for s in segments) <= cap)

    def _envelope(self, y: np.ndarray, tail: np.ndarray, name: str = "env"
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, n) RMS of ``y`` over the last ENVELOPE_S (causal), and the quantised squares
        of its last samples to carry to the next chunk. The running sum is taken in integers
        (y² in units of :data:`ENVELOPE_QUANTUM_UV2`), so it is exact and every output sample
        is identical whatever the chunking. ``tail``: the squares carried from the previous
        chunk (a row per row of ``y``); ``name``: that of the scratch arrays (the result is
        one of them, valid until the next call with that name)."""
        length = self._env_len
        c, n = y.shape
        q = np.multiply(y, y, out=self._work(name, (c, n), np.float64))
        q *= 1.0 / ENVELOPE_QUANTUM_UV2
        # sums[:, i] = Σ padded[:, :i] with padded = tail ++ quantised y² (written in place)
        sums = self._work(name + "_sums", (c, length + n), np.int64)
        sums[:, 0] = 0
        sums[:, 1:length] = tail
        sums[:, length:] = q  # truncating cast, as astype(np.int64)
        carried = sums[:, n + 1:].copy()
        np.cumsum(sums[:, 1:], axis=1, out=sums[:, 1:])
        total = np.subtract(sums[:, length:], sums[:, :-length],
                            out=self._work(name + "_total", (c, n), np.int64))
        np.multiply(total, ENVELOPE_QUANTUM_UV2 / length, out=q)
        return np.sqrt(q, out=q), carried

    def _threshold(self, y: np.ndarray, env: np.ndarray, blocked: np.ndarray, start: int,
                   hi: np.ndarray | None = None, env_hi: _RowEnvelope | None = None,
                   lo: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                              list[tuple[int, np.ndarray]]]:
        """(channels, n) masks above OFF·σ and above ON·σ (and, given the high band ``hi``
        and its envelope, above HIGH_ON_SIGMA in it or LOW_ON_SIGMA in the low band), and the
        σ in force from each local index on; σ is updated at absolute block boundaries. ``lo``
        (the low band low-passed on its own) only feeds the σ that decides whether a channel's
        low band is noisy; it holds the samples on the σ grid only (every ``_sigma_step``-th
        absolute index)."""
        n = y.shape[1]
        above = np.empty(y.shape, bool)
        strong = np.empty(y.shape, bool)
        broad = np.empty(y.shape, bool) if env_hi is not None else None
        sigma_at: list[tuple[int, np.ndarray]] = []
        pos = start
        while pos < start + n:
            stop = min((pos // self._block + 1) * self._block, start + n)
            part = slice(pos - start, stop - start)
            sig = self._sigma[:, None]
            on = self.on_sigma * np.where(self._history_i > 0, 1.0, PROVISIONAL_ON_FACTOR)
            with np.errstate(invalid="ignore"):
                np.greater(env[:, part], self.off_sigma * sig, out=above[:, part])
                above[:, part] &= ~blocked[:, part]
                np.greater(env[:, part], on[:, None] * sig, out=strong[:, part])
                if env_hi is not None:
                    np.logical_and(strong[:, part], above[:, part], out=broad[:, part])
                    self._two_band(env[:, part], env_hi, part, strong[:, part])
                strong[:, part] &= above[:, part]
            sigma_at.append((part.start, self._sigma))
            step = self._sigma_step
            every = slice(part.start + (-pos) % step, part.stop, step)
            bands = (y[:, every],)
            if hi is not None:  # lo holds the grid samples only, from the chunk's first on
                first = (every.start - (-start) % step) // step
                bands += (hi[:, every], lo[:, first:first + bands[0].shape[1]])
            self._block_parts.append((np.abs(np.concatenate(bands)),
                                      blocked[:, every] | above[:, every], blocked[:, every]))
            if stop % self._block == 0:
                self._end_block()
            pos = stop
        return above, strong, broad, sigma_at

    def _two_band(self, env: np.ndarray, env_hi: _RowEnvelope, part: slice,
                  strong: np.ndarray) -> None:
        """On the channels whose low band is noisy (:meth:`two_band_channels`), narrow the
        broadband ``strong`` mask (channels, n; written in place) to where the high band's
        envelope (``env_hi``, over the ``part`` of the chunk that ``env`` and ``strong`` hold)
        is above HIGH_ON_SIGMA × its σ or the low band's (from ``env``² − its²) above
        LOW_ON_SIGMA × its σ; the other channels keep theirs."""
        sig, sig_hi = self._sigma, self._sigma_hi
        rows = np.flatnonzero(self._noisy_low())
        if not len(rows):
            return
        e, h = env[rows], env_hi[rows][:, part]
        low_var = np.maximum(sig[rows] ** 2 - sig_hi[rows] ** 2, 0.0)[:, None]
        strong[rows] &= (h > HIGH_ON_SIGMA * sig_hi[rows, None]) \
            | (e * e - h * h > LOW_ON_SIGMA ** 2 * low_var)

    def _end_block(self) -> None:
        """Update σ from the finished block: median |y| of its quiet samples (every
        SIGMA_DECIMATION-th sample on the absolute index grid from 2 kHz on); the high and
        low bands' σ alike, all bands in one pass (one row per band and channel)."""
        magnitudes = np.concatenate([p[0] for p in self._block_parts], axis=1)
        excluded = np.concatenate([p[1] for p in self._block_parts], axis=1)
        blocked = np.concatenate([p[2] for p in self._block_parts], axis=1)
        self._block_parts = []
        size = magnitudes.shape[1]
        if size == 0:  # the stream began just before this block's end: nothing on the grid
            return
        n_quiet = size - excluded.sum(axis=1)
        usable = n_quiet >= SIGMA_MIN_USABLE * size
        busy = ~usable & (size - blocked.sum(axis=1) >= SIGMA_MIN_USABLE * size)
        self._stalled = np.where(busy, self._stalled + 1, np.where(usable, 0, self._stalled))
        forced = self._stalled >= self._force_blocks
        push = usable | forced
        provisional = (~push & (self._history_i == 0) & (n_quiet >= PROVISIONAL_MIN_SAMPLES)
                       & (n_quiet >= PROVISIONAL_MIN_USABLE * size))
        if not (push | provisional).any():
            return
        c = self.n_channels
        bands = len(self._history) // c
        by_band = magnitudes.reshape(bands, c, size)  # the same samples' |y| in each band
        values = np.full((bands, c), np.nan)
        if (usable | provisional).any():
            values = _row_nanmedian(np.where(excluded, np.nan, by_band).reshape(-1, size)
                                    ).reshape(bands, c)
        if provisional.any():
            self._set_sigma(values / MAD_TO_SIGMA, provisional)
        if not push.any():
            return
        if forced.any():
            values = np.where(forced, _row_nanmedian(np.where(blocked, np.nan, by_band)
                                                     .reshape(-1, size)).reshape(bands, c), values)
        history = self._history.reshape(bands, c, -1)
        rows = np.flatnonzero(push)
        history[:, rows, self._history_i[rows] % self._history_len] = values[:, rows]
        self._history_i[rows] += 1
        self._stalled[forced] = 0
        pushed = np.broadcast_to(self._history_i, (bands, c)).reshape(-1)
        sigmas = (_row_warmup_median(self._history, pushed) / MAD_TO_SIGMA).reshape(bands, c)
        self._set_sigma(sigmas, self._history_i > 0)

    def _sigmas(self) -> np.ndarray:
        """(bands, channels) σ in force (µV): the detection signal's, then (from
        :data:`HIGH_BAND_MIN_RATE_HZ`) its high band's and its low band's."""
        if self._hi is None:
            return self._sigma[None, :].copy()
        return np.stack([self._sigma, self._sigma_hi, self._sigma_lo])

    def _set_sigma(self, sigmas: np.ndarray, channels: np.ndarray) -> None:
        """Put the (bands, channels) σ values (µV) in force on the ``channels`` (bool mask);
        the others keep theirs (a provisional σ stays until the first pooled block)."""
        new = np.where(channels, sigmas, self._sigmas())
        self._sigma = new[0]
        if len(new) > 1:
            self._sigma_hi, self._sigma_lo = new[1], new[2]

    def _segments(self, y: np.ndarray, above: np.ndarray, strong: np.ndarray,
                  broad: np.ndarray | None,
                  blocked: np.ndarray, sigma_at: list[tuple[int, np.ndarray]], start: int,
                  events: list[DetectedEvent]) -> None:
        """Turn the (channels, n) above-threshold runs into segments; closed ones join
        episodes. A segment that ends because the next sample is blanked is dropped."""
        n = y.shape[1]
        changed = (above[:, 0] != self._prev_above) | (above[:, 1:] != above[:, :-1]).any(axis=1)
        self._prev_above = above[:, -1].copy()
        for c in np.flatnonzero(changed | np.array([o is not None for o in self._open])):
            edges = np.diff(np.concatenate(([0], above[c].view(np.int8), [0])))
            rises, falls = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            strong_c = strong[c]
            broad_c = strong_c if broad is None else broad[c]
            if len(rises):  # a run that starts and ends within the chunk, never strong (nor
                # broadband strong), is no segment (strong ⊆ broad ⊆ above: a run's strong
                # samples lie before the next rise)
                kept = (np.logical_or.reduceat(broad_c, rises) | (rises == 0) | (falls == n))
                rises, falls = rises[kept], falls[kept]
            op = self._open[c]
            if op is not None and not above[c, 0]:  # the open segment ended at the boundary
                if self._kept(c, op) and (not blocked[c, 0]
                                          or start - op.start >= self._blank_lead):
                    self._add_segment(c, self._segment(c, op, np.concatenate(op.parts), start),
                                      events)
                op = None
            for lo, hi in zip(rises, falls):
                if lo != 0 or op is None:  # else it continues the open segment
                    sigma = next(sig for first, sig in reversed(sigma_at) if first <= lo)
                    rise = start + int(lo)
                    op = _Open(rise, float(sigma[c]), False,
                               blanked_start=self._blanked_before(c, rise),
                               tail=self._is_tail(c, rise))
                # a run longer than SEGMENT_MAX_S becomes consecutive segments (absolute cuts)
                pos = int(lo)
                while (cut := op.start + self._segment_max - start) < hi:
                    op.strong = op.strong or bool(strong_c[pos:cut].any())
                    op.broad = op.broad or bool(broad_c[pos:cut].any())
                    op.parts.append(y[c, pos:cut])
                    if self._kept(c, op):
                        self._add_segment(c, self._segment(c, op, np.concatenate(op.parts),
                                                           start + cut), events)
                    op = _Open(start + cut, op.sigma, False,
                               blanked_start=self._blanked_before(c, start + cut))
                    pos = cut
                op.strong = op.strong or bool(strong_c[pos:hi].any())
                op.broad = op.broad or bool(broad_c[pos:hi].any())
                op.parts.append(y[c, pos:hi])
                if hi == n:
                    break
                if self._kept(c, op) and (not blocked[c, hi]
                                          or start + hi - op.start >= self._blank_lead):
                    self._add_segment(c, self._segment(c, op, np.concatenate(op.parts), start + hi),
                                      events)
                op = None
            self._open[c] = op if (op is not None and above[c, -1]) else None

    def _kept(self, c: int, op: _Open) -> bool:
        """Whether a closed run makes a segment: it reached ON·σ (and, on a two-band channel,
        the two-band test), or it reached ON·σ in the broadband envelope and continues channel
        ``c``'s open episode (starts within its gap): a small train whose fundamental lies in
        a noisy low band clears the two-band test only now and then, and would break up."""
        if op.strong:
            return True
        ep = self._episodes[c]
        if not op.broad or ep is None:
            return False
        blanked = self._bridged(op.blanked_start - ep.segments[-1].blanked_stop)
        return op.start - ep.last_stop - blanked <= self._continue_gap

    def _segment(self, c: int, op: _Open, ys: np.ndarray, stop: int) -> _Segment:
        height = PEAK_SIGMA * op.sigma
        pk, props = signal.find_peaks(ys, height=height, distance=self._peak_distance)
        tr, tprops = signal.find_peaks(-ys, height=height, distance=self._peak_distance)
        return _Segment(op.start, stop, float(ys.max() - ys.min()),
                        (pk + op.start, props["peak_heights"]),
                        (tr + op.start, tprops["peak_heights"]), self._period(ys),
                        op.blanked_start, self._blanked_before(c, stop), op.tail)

    def _period(self, ys: np.ndarray) -> float | None:
        """Period (samples) of a segment whose normalised autocorrelation at some lag of an
        A-train rate reaches :data:`A_PERIODICITY`; None if too short or not periodic."""
        n = len(ys)
        fs = self.sample_rate_hz
        if n < PERIODIC_MIN_S * fs:
            return None
        lo = max(2, int(fs / A_RATE_HZ[1]))
        hi = min(int(fs / A_RATE_HZ[0]), n // 2)
        if hi <= lo + 1:
            return None
        size = 1 << (2 * n - 1).bit_length()
        spec = np.fft.rfft(ys, size)
        acf = np.fft.irfft(spec * np.conj(spec), size)[:hi + 2]
        energy = np.concatenate(([0.0], np.cumsum(ys * ys)))
        lags = np.arange(lo - 1, hi + 2)
        head = energy[n - lags]                 # Σ y[0 : n-k]²
        tail = energy[n] - energy[lags]         # Σ y[k : n]²
        r = acf[lags] / np.sqrt(np.maximum(head * tail, 1e-30))
        inner = r[1:-1]
        best = float(inner.max())
        if best < A_PERIODICITY:
            return None
        i = int(np.flatnonzero(inner >= 0.9 * best)[0])
        while i + 1 < len(inner) and inner[i + 1] > inner[i]:
            i += 1  # climb to the local maximum
        a, b, c = r[i], r[i + 1], r[i + 2]
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
        return float(lags[i + 1] + shift)

    def _add_segment(self, c: int, seg: _Segment, events: list[DetectedEvent]) -> None:
        ep = self._episodes[c]
        bridged = 0
        if ep is not None:
            bridged = self._bridged(seg.blanked_start - ep.segments[-1].blanked_stop)
            if seg.start - ep.last_stop - bridged > ep.gap:
                self._finalise(c, events)
                ep, bridged = None, 0
        if ep is None:
            ep = _Episode(tail=seg.tail)
            self._episodes[c] = ep
        ep.segments.append(seg)
        ep.bridged += bridged
        if seg.stop - ep.segments[0].start >= self._episode_max:
            self._finalise(c, events)  # continuous activity: report it piece by piece
            return
        times = ep.muap_times(GAP_RECENT_SEGMENTS)
        ep.gap = self._gap
        if len(times) >= 3:
            isi = float(median_last(np.diff(np.sort(times))))
            ep.gap = int(min(max(GAP_ISI_FACTOR * isi, self._gap), self._gap_max))

    def _expire(self, end: int, events: list[DetectedEvent]) -> None:
        """Finalise episodes whose gap has passed with nothing new (open segments count)."""
        for c in range(self.n_channels):
            ep = self._episodes[c]
            if ep is None:
                continue
            op = self._open[c]
            nxt = op.start if op is not None else end
            blanked = (op.blanked_start if op is not None else self._blanked_before(c, end)) \
                - ep.segments[-1].blanked_stop
            if nxt - ep.last_stop - self._bridged(blanked) > ep.gap:
                self._finalise(c, events)

    def _bridged(self, blanked: int) -> int:
        """Samples of a gap that do not count: all its blanked ones if they are few enough."""
        return blanked if blanked <= self._bridge_max else 0

    def _a_train_rate_hz(self, ep: _Episode, length: int) -> float | None:
        """Firing rate (Hz) if periodic segments of one period cover at least
        :data:`A_COVERAGE` of the episode (``length`` samples), else None."""
        periodic = [(s.stop - s.start, s.period) for s in ep.segments if s.period is not None]
        if not periodic:
            return None
        spans = np.array([p[0] for p in periodic], float)
        periods = np.array([p[1] for p in periodic], float)
        main = float(np.median(np.repeat(periods, np.maximum(spans.astype(int) // 100, 1))))
        same = np.abs(periods - main) <= A_PERIOD_TOLERANCE * main
        if spans[same].sum() < A_COVERAGE * length:
            return None
        return self.sample_rate_hz / main

    def _steady_rate_hz(self, times: np.ndarray, length: int) -> float | None:
        """Firing rate (Hz) if the sorted MUAP peak ``times`` are A-train regular and cover
        :data:`A_COVERAGE` of ``length`` samples (blanked gaps may leave long intervals)."""
        if len(times) < A_MIN_MUAPS:
            return None
        isi = np.diff(times).astype(float)
        period = float(np.median(isi))
        if not A_RATE_HZ[0] <= self.sample_rate_hz / period <= A_RATE_HZ[1]:
            return None
        steady = np.abs(isi - period) <= A_ISI_TOLERANCE * period
        if steady.mean() < A_REGULAR_FRACTION or isi[steady].sum() + period < A_COVERAGE * length:
            return self._skipping_rate_hz(isi, length)
        return self.sample_rate_hz / float(np.mean(isi[steady]))

    def _skipping_rate_hz(self, isi: np.ndarray, length: int) -> float | None:
        """Firing rate (Hz) of a steady train some of whose MUAPs fell under the peak
        threshold (a small train in noise): the period P is the median of the intervals up to
        1.5 × their lower quartile, refined by least squares on the intervals within
        A_ISI_TOLERANCE × P of a whole number (≤ :data:`A_MAX_SKIP`) of periods;
        A_REGULAR_FRACTION of the intervals must be such, at least :data:`A_SINGLE_FRACTION`
        of them of one period, and together cover A_COVERAGE of ``length`` samples."""
        if len(isi) < 2 * A_MIN_MUAPS:
            return None
        times = np.concatenate(([0.0], np.cumsum(isi)))
        period = float(np.median(isi[isi <= 1.5 * np.quantile(isi, 0.25)]))
        if not A_RATE_HZ[0] <= self.sample_rate_hz / period <= A_RATE_HZ[1]:
            return self._paired_rate_hz(times, length)
        for _ in range(2):  # refine P on the intervals of whole periods (least squares)
            k = np.rint(isi / period)
            steady = ((k >= 1) & (k <= A_MAX_SKIP)
                      & (np.abs(isi - k * period) <= A_ISI_TOLERANCE * period))
            period = float(isi[steady].sum() / max(k[steady].sum(), 1.0)) if steady.any() \
                else period
        single = steady & (k == 1)
        if (steady.mean() < A_REGULAR_FRACTION or single.mean() < A_SINGLE_FRACTION
                or isi[steady].sum() + period < A_COVERAGE * length):
            return self._paired_rate_hz(times, length)
        return self.sample_rate_hz / float(np.mean(isi[single]))

    def _paired_rate_hz(self, times: np.ndarray, length: int) -> float | None:
        """Firing rate (Hz) of a steady train with extra peaks (a second phase of its MUAP,
        noise) between its MUAPs: P is the shortest common difference of A-train rate among
        peaks up to :data:`A_PAIR_SPAN` apart (the first local maximum with ≥ 60 % of the
        commonest's count, bins ±A_ISI_TOLERANCE wide), the median of the differences in it;
        A_REGULAR_FRACTION of the peaks must have another one P before or after (within
        A_ISI_TOLERANCE × P), and the intervals of at most 2P between such peaks must cover
        A_COVERAGE of ``length`` samples."""
        fs = self.sample_rate_hz
        n = len(times)
        lo, hi = fs / A_RATE_HZ[1], fs / A_RATE_HZ[0]
        diffs = np.concatenate([times[j:] - times[:-j]
                                for j in range(1, min(A_PAIR_SPAN, n - 1) + 1)])
        diffs = diffs[(diffs >= lo) & (diffs <= hi)]
        if len(diffs) < A_MIN_MUAPS:
            return None
        # log-spaced bins: each A_ISI_TOLERANCE wide relative to its centre
        edges = lo * (1.0 + A_ISI_TOLERANCE) ** np.arange(
            int(np.log(hi / lo) / np.log1p(A_ISI_TOLERANCE)) + 2)
        counts = np.histogram(diffs, edges)[0]
        pairs = counts[:-1] + counts[1:]  # two adjacent bins: ±tolerance
        best = int(np.flatnonzero(pairs >= 0.6 * pairs.max())[0])  # the shortest strong lag
        while best + 1 < len(pairs) and pairs[best + 1] > pairs[best]:
            best += 1
        near = diffs[(diffs >= edges[best]) & (diffs < edges[best + 2])]
        period = float(np.median(near))
        tol = A_ISI_TOLERANCE * period
        after = np.searchsorted(times, times + period - tol)
        paired_after = (after < n) & (times[np.minimum(after, n - 1)] <= times + period + tol)
        before = np.searchsorted(times, times - period + tol, side="right") - 1
        paired_before = (before >= 0) & (times[np.maximum(before, 0)] >= times - period - tol)
        paired = paired_after | paired_before
        if paired.mean() < A_REGULAR_FRACTION:
            return None
        kept = np.diff(times[paired])
        if kept[kept <= 2 * period + tol].sum() + period < A_COVERAGE * length:
            return None
        return fs / period

    def ongoing_a_trains(self) -> list[DetectedEvent]:
        """Episodes still going on that already qualify as neurotonic A-trains and have lasted
        :data:`ONGOING_MIN_S`: provisional events (offset = latest MUAP so far) so alarms can
        sound during a long train instead of after it. Nothing is counted or stored."""
        found = []
        fs = self.sample_rate_hz
        for c, ep in enumerate(self._episodes):
            segments = list(ep.segments) if ep is not None else []
            op = self._open[c]
            if op is not None and self._kept(c, op):  # a train can hold the envelope up
                ys = np.concatenate(op.parts)
                stop = op.start + len(ys)
                tail = ys[-int(ONGOING_WINDOW_S * fs):]  # bounded work per call
                recent = self._segment(c, _Open(stop - len(tail), op.sigma, True,
                                                blanked_start=op.blanked_start), tail, stop)
                segments.append(replace(recent, start=op.start))
            if not segments or segments[-1].stop - segments[0].start < ONGOING_MIN_S * fs:
                continue
            cap = ep.tail if ep is not None else op.tail if op is not None else 0.0
            if self._tail_of(cap, segments):
                continue  # maybe a blank's tail: not yet an alarm
            provisional = _Episode(segments, bridged=ep.bridged if ep is not None else 0)
            event = self._classify(c, provisional)
            if event.train_type == "A":
                found.append(event)
        return found

    def _finalise(self, c: int, events: list[DetectedEvent]) -> None:
        """Close channel ``c``'s episode: its event joins ``events``, unless it is a blank's
        short tail (see :data:`POST_BLANK_TAIL_S` and :data:`SHORT_KEPT_TAIL_S`). An A-train
        that is the episode without a stray tail (see :meth:`_without_stray_tail`) leaves that
        tail out; a tail that reaches the channel's alarm threshold (p-p) is not taken for a
        heartbeat's residue beside a blanked QRS but is closed as an episode of its own (a
        blank's short tail too, where it began as one), so it can make its own event (extra
        tuning seed 649, 5.72 s, with a 4th-order detection high-pass that was tried: a 238 µV
        spike 0.53 s after a 1.1 mV A-train, a QRS blank between, was left out with the
        tail)."""
        ep = self._episodes[c]
        assert ep is not None
        self._episodes[c] = None
        if self._short_tail(ep):
            return
        self._last_stop[c] = ep.last_stop
        event = self._classify(c, ep)
        if event.train_type == "A":
            self._a_trains[c].append((event.onset, event.offset))
        events.append(event)
        head_stop = event.offset + self._offset_lag  # the episode's last stop, or the head's
        rest = [s for s in ep.segments if s.start > head_stop]
        if rest and max(s.pp_uv for s in rest) >= self.thresholds_uv[c]:
            self._episodes[c] = _Episode(rest, tail=rest[0].tail, bridged=sum(
                self._bridged(b.blanked_start - a.blanked_stop) for a, b in pairwise(rest)))
            self._finalise(c, events)

    def _classify(self, c: int, ep: _Episode) -> DetectedEvent:
        """The event an episode makes (kind, A/B type, size, rate; the A-train before a stray
        tail, see :meth:`_finalise`); no state changes."""
        fs = self.sample_rate_hz
        onset = int(max(ep.segments[0].start - round(ONSET_LEAD_S * fs), self._first or 0))
        offset = int(max(ep.last_stop - self._offset_lag, onset))
        times = np.sort(ep.muap_times())
        n_muaps = len(times)
        pp = max(s.pp_uv for s in ep.segments)
        duration_s = (offset - onset + 1) / fs
        kind, train_type, rate = "burst", None, None
        regular_rate = self._a_train_rate_hz(ep, offset - onset + 1 - ep.bridged)
        if regular_rate is None:
            regular_rate = self._steady_rate_hz(times, offset - onset + 1 - ep.bridged)
        if regular_rate is None and len(ep.segments) > 1:
            head = self._without_stray_tail(ep)
            if head is not None:
                event = self._classify(c, head)
                if event.train_type == "A":
                    return event
        if regular_rate is not None:
            kind, train_type, rate = "train", "A", regular_rate
        elif duration_s >= TRAIN_MIN_S:
            kind, train_type = "train", "B"
            rate = (n_muaps - 1) / ((times[-1] - times[0]) / fs) if n_muaps >= 2 else None
        elif n_muaps <= SPIKE_MAX_MUAPS and duration_s <= SPIKE_MAX_S:
            kind = "spike"
        return DetectedEvent(c, kind, train_type, onset, offset, pp, rate,
                             bool(pp >= self.thresholds_uv[c]), n_muaps)


    def _without_stray_tail(self, ep: _Episode) -> _Episode | None:
        """The episode without its stray tail (else None): the segments after its earliest gap
        of more than :data:`CONTINUE_GAP_S` (blanked samples not counted) beyond which fewer than
        :data:`A_MIN_MUAPS` MUAP peaks lie within :data:`POST_BLANK_TAIL_MAX_S` — a
        heartbeat's residue next to its blanked QRS (its lead-in, what follows it), joined to
        a train that had ended before it, must not make the train fail the A-train coverage."""
        segs = ep.segments
        bridges = [self._bridged(b.blanked_start - a.blanked_stop) for a, b in pairwise(segs)]
        gaps = [b.start - a.stop - g for (a, b), g in zip(pairwise(segs), bridges)]
        cut, muaps = 0, 0
        for i in range(len(segs) - 1, 0, -1):
            muaps += max(len(segs[i].peaks[0]), len(segs[i].troughs[0]))
            if (muaps >= A_MIN_MUAPS
                    or segs[-1].stop - segs[i].start > self._post_blank_tail_max):
                break
            if gaps[i - 1] > self._continue_gap:
                cut = i
        if not cut:
            return None
        return _Episode(segs[:cut], bridged=sum(bridges[:cut - 1]))


class _RowEnvelope:
    """The envelope of a chunk's signal (:meth:`EmgEventDetector._envelope`, (rows, n)), each
    row computed when first asked for: the high band's is read on the two-band channels only.

    Args:
        envelope: the detector's envelope method.
        y: (rows, n) µV, the chunk.
        tail: the squares carried into the chunk, a row per row of ``y``.
    """

    def __init__(self, envelope: Callable[..., tuple[np.ndarray, np.ndarray]], y: np.ndarray,
                 tail: np.ndarray) -> None:
        self._envelope, self._y, self._tail = envelope, y, tail
        self._env = np.empty(y.shape)
        self._done = np.zeros(len(y), bool)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n) envelope of the ``rows`` (integer indices)."""
        missing = rows[~self._done[rows]]
        if len(missing):
            env, _ = self._envelope(self._y[missing], self._tail[missing], "env_rows")
            self._env[missing] = env
            self._done[missing] = True
        return self._env[rows]


def _row_warmup_median(values: np.ndarray, pushed: np.ndarray) -> np.ndarray:
    """Noise-floor pool per row: the median of a full history; while a row's history is
    still filling (``pushed`` < its length) the lower quartile of what it has (the minimum for
    up to 4 values), so activity in the first usable blocks cannot set a high floor."""
    full = pushed >= values.shape[1]
    if full.all():
        return _row_nanmedian(values)
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.isfinite(values).sum(axis=1)
    rows = np.arange(values.shape[0])
    low = ordered[rows, np.maximum(count - 1, 0) // 4]
    return np.where(full, _row_nanmedian(values), np.where(count > 0, low, math.nan))


def _row_nanmedian(values: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row of a 2-D array (NaN where a row has none)."""
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.isfinite(values).sum(axis=1)
    rows = np.arange(values.shape[0])
    lo = ordered[rows, np.maximum(count - 1, 0) // 2]
    hi = ordered[rows, np.maximum(count // 2 - (count == 0), 0)]
    return np.where(count > 0, 0.5 * (lo + hi), math.nan)
