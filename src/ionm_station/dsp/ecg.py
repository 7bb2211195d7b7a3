"""ECG (heartbeat) artifact removal for free-run EMG: QRS detection across all channels and
adaptive per-channel template subtraction, plus the 30 Hz high-pass baseline.

Method (Drake & Callaghan 2006; Petersen et al. 2020 — adaptive template subtraction ranks best):

* **Detection (one heart, all channels).** Each channel is averaged over 1 ms blocks (≈ 1 kHz),
  band-passed 5–40 Hz (where QRS energy sits and EMG is weak) and normalised by a robust noise
  scale σ = median|x| / 0.6745 (median over the last 2 s of 10 ms blocks, smoothed). The
  detection signal is the mean over channels of (x/σ)², each channel capped at 10⁴ so no single
  channel can carry a beat. Channels whose >200 Hz RMS in a block exceeds 3 × its usual level
  (EMG, cautery), that sit at the rail (in this stage's input, or in the amplifier's raw input
  where the caller passes it as ``railed``: the band-pass before this stage hides the rail, and
  a lead-off pinned there reaches it as the mains canceller's own synthesis — mains with
  harmonics, not flat — which templates would otherwise learn as a beat without heart: sim
  tune-10k ch4 after its 8.4 s lead-off left 1.6 µV RMS of it at R + 120…230 ms, decaying over
  ~30 beats), go flat (lead-off) or hold NaN are left out of the mean
  for that block and 200 ms after (500 ms after a step: flat, a gap, the rail reached from
  signal — not cautery clipped at the rail while it was already wild, which rings no longer
  than below it: tune-mitdb-5k's first beat 0.46 s after clipped cautery was left whole on
  7 channels, up to 236 µV). When more than half the live channels are far out of their noise at
  once (> 20 σ: cautery, a stimulus artifact; not EMG on several channels) the block is a global
  artifact: no beat is detected there nor 200 ms after. The mean is smoothed over 30 ms; maxima
  within ±30 ms are candidates (the fiducial is the centroid of the peak's top half, within
  ±10 ms), judged by a Pan–Tompkins adaptive threshold (signal and noise peak levels, threshold
  30 % of the way between them; the signal level starts at the largest candidate of the first 2 s
  and halves after 2.5 s without a beat; candidates of the first 250 ms, measured against a scale
  from a single block, neither start nor move it), a 250 ms refractory period and a search-back at
  1.66 × the mean RR interval.
  A candidate under the threshold whose QRS aligned to the dominant class's templates (of
  :data:`CONFIRM_MIN_BEATS` beats or more; searched from :data:`CONFIRM_REACH_S` before the
  fiducial; failing that, on the channels without EMG or cautery in it alone) has a
  similarity ≥ :data:`CONFIRM_SIMILARITY` is a beat all the same (subtracted
  on time; it moves neither level): its detection energy can fall short while its shape does
  not (breathing, a scale still holding cautery's recovery, EMG holding the channels with most
  of it out of detection), and left in place it read as EMG on every channel with ECG
  (tune-mitdb-5k at 178.7 s: 14–170 µV on 6 channels; P waves, T waves and other candidates
  there scored ≤ 0.7, beats ≥ 0.95). A candidate of that shape whose QRS lies before the
  accepted beats' ±15 ms lag search, under the threshold or not, is accepted where it lies;
  one found by none of these searches whose QRS lies up to :data:`CONFIRM_LATE_S` after
  that search, that much later. The
  candidates of the first 2 s are judged once it is over: they are reported and learnt from
  but not subtracted (already output); the candidate that ends it is judged on time and,
  if a beat, subtracted with the running mean of the beats before it. Without a candidate
  after those 2 s (no visible ECG) the learning ends by time, one decision lag later.
  Meanwhile nothing is subtracted, so each candidate is blanked for detection from R − 70 ms
  to R + 225 ms on every channel (from R − 140 ms, as soon as it is found, where the
  heartbeat peaks above :data:`P_WAVE_GATE_UV`: the P wave's fast part) — except where
  something peaks above :data:`LEARN_BLANK_RATIO` × that channel's heartbeat (from the
  beat-like candidates so far; before R − 70 ms, where only a P wave can be, where the
  detector would see more than :data:`P_WAVE_GATE_RATIO` × it) or holds lasting >200 Hz
  content well beyond the heartbeat's (:data:`LEARN_FAST_SIGMA`): EMG clearly bigger than
  the heart, or sitting on it, is not hidden — the window then goes to the detector whole,
  heartbeat included, so the event's p-p may hold the QRS — and the heart alone is never
  reported as EMG where it is the largest thing on the channel. Two candidates within the
  refractory period are one heartbeat's lobes: the larger stands for it and the smaller is
  not blanked again — unless the larger is a start-up transient, whose window reaches before
  the first sample and was never blanked.
  A beat's window (with the alignment margins) may reach before the first input row: the
  missing rows count as absent (not learnt from, nothing subtracted there).
* **Beat classes.** Up to :data:`MAX_CLASSES` morphologies, each with a template per channel:
  the dominant beat and ectopic ones. A beat joins the class it resembles most (median over
  channels of the normalised correlation, weighted by each template's energy over the noise);
  below :data:`NEW_CLASS_SIMILARITY` it starts a new class (replacing the one matched longest
  ago, never the dominant one), whose first beat is left in place and blanked for detection —
  unless its fit finds EMG on some channels and, the classes judged again without them, it
  resembles one after all (EMG on a few channels is no new morphology).
* **Alignment.** Each beat is aligned to its class jointly (±15 ms on a 1 ms grid, channels
  weighted by 1/σ² — a matched filter across channels), then per channel within ±2 ms of it by
  parabolic interpolation of that channel's correlation. Channels with EMG in the beat take the
  median lag of the others. When a class's beats drift away from lag 0 (the detection
  fiducial moves against the R peak with the channels it is made of), its templates move in
  their window, so the search stays centred.
* **Fit (per beat and channel).** Over the core (−100…+80 ms around the fiducial, which lies
  ~25–30 ms after the R peak) a least-squares fit of the template's gain (0.5–1.5), shift (its
  derivative, ±1 ms beyond the lag) and QRS stretch (±25 %; a template of fewer than
  ``template_beats`` beats enters it low-passed at :data:`YOUNG_FIT_LOWPASS_HZ`, its noise
  lying above the heart's band), then of the heart's leading time
  courses (the first :data:`HEART_COMPONENTS` singular vectors of the class's templates across
  channels) and their derivatives to what is left: one heart projects onto every channel, so a
  beat whose axis turned or whose QRS changed is a mix of them; noise and EMG are not (the
  time courses are low-passed at :data:`HEART_LOWPASS_HZ`, or they add the templates' noise at
  the ECG's scale; they are not fitted on a channel with EMG or an electrode pop in the beat,
  which they would follow over the whole window; and their part of the fit on a channel is
  bounded by its typical size there, times how far the heart moved on all channels: an A-train
  too slow for the EMG test is on one channel, a changed beat on all, :data:`COURSE_SPREAD`).
  The fit is subtracted over the window −100…+200 ms (R −70…+230 ms) with raised-cosine
  tapers at its edges (10 ms at its start, 30 ms at its end on the T wave:
  :data:`TAPER_END_S`), on channels where it lowers the energy over the core (never adds a
  heartbeat where there is none). The P wave (≈ 170 ms before R) lies outside the window
  and is left in place; on channels with a big heart its fast part is blanked for detection
  instead, where it is no larger than a P wave can be (:data:`P_WAVE_GATE_RATIO`) and has no
  >200 Hz content (:data:`P_WAVE_FAST_SIGMA`), decided as soon as the QRS rises through the
  detection threshold and again when the candidate is found (see
  :meth:`EcgCanceller._gate_p_wave`; a candidate under the threshold too once a beat is due,
  :data:`P_WAVE_DUE_RR`), or for a beat known by its shape alone (under the threshold) when it
  is accepted.
* **Tail (per beat and channel).** Once the whole window has arrived (when the beat's template
  update is due; none of the window from the fiducial on is output yet), the part after the
  core is fitted again on its own data: gain, shift, stretch and the heart's time courses over
  +60…+200 ms, taking over from the core's fit over its last 20 ms (raised cosine), on channels
  it was subtracted from, live and without EMG there, where it lowers the energy left over
  the tail. The core's fit alone carries only gain and shift past the core (its stretch and
  time courses fade out there), and a real heart's ST segment changes with the beat too.
* **Across channels.** What is still left over the core is predicted on each channel from the
  *other* channels' residuals by linear regression on their noise-whitened covariance (averaged
  over clean beats), and subtracted: the beat-to-beat changes of one heart are shared between
  channels; a channel's own noise and EMG never are, and are never taken from it. Nor is a
  channel whose residual is beyond :data:`SPATIAL_OUTLIER_RATIO` × its typical one (its beat
  class's, and the covariance's own) used to predict the others (EMG the >200 Hz test cannot
  see: an A-train smoothed to a sinusoid).
* **Beat to beat.** What is left after that below VARIATION_LOWPASS_HZ on a channel clean
  and subtracted is fitted with the leading principal components of the last such residuals
  its class left there (:mod:`ionm_station.dsp.beat_variation`, an optimal basis set): a real
  QRS changes from beat to beat in a few recurring ways of its own (MIT-BIH 100: its onset's
  notch moves by a few ms), and noise and EMG do not recur. The coefficients are bounded by
  their typical size, and a residual is kept only from a beat learnt into its class's
  templates, on channels free of EMG over the whole core, not outlying and with no block's
  >200 Hz RMS beyond VARIATION_HF_RATIO × the noise: a MUAP locked to the heartbeat must not
  become one of the patterns. The first beats of a class, which form its template before
  any is fitted, leave provisional residuals (each against their median) so the fit starts
  with the first beat subtracted (VARIATION_PROVISIONAL_UNTIL). The residual gate below judges
  what is left after this fit.
* **EMG and the residual gate.** A 10 ms block of a channel's residual whose >200 Hz RMS stands
  out of the noise (and is not a small part of the block: what a QRS misfit leaves is
  low-frequency), in a beat holding that much more >200 Hz power than the heartbeat fitted to
  it (a sharp R wave has its own, and a misfit leaves some of it), holds EMG: that channel
  keeps its own signal (not learnt from, not used to predict others). Where, in blocks free of
  EMG and where the heartbeat itself is visible to the event detector, the final residual
  still reads as activity to it (through its 40 Hz high-pass, 2 ms RMS above
  :data:`GATE_SIGMA` × σ) and is no larger than the heartbeat there (its block or the next
  either side), those blocks are blanked for detection (:meth:`EcgCanceller.blank_mask`),
  and the next one either side where the same holds except that the heartbeat there may be
  faint (a misfit at the QRS's onset spills into the block before, and before the QRS on for
  up to :data:`GATE_SPILL_BLOCKS`): a beat left too large is never reported as EMG, and EMG
  overlapping a beat is still found. "No larger than the heartbeat" is waived where the fit
  cannot be trusted yet: a new class, a template of fewer than ``bootstrap_beats`` beats on
  that channel, and a beat within :data:`RELOCK_S` after a sustained global artifact
  (cautery).
* **Templates.** Per class and channel: the median of its first beats, then an exponential
  average over ~32 beats, from beats clean over the whole window (no EMG, flat or rail, no
  global artifact); once converged, a beat whose QRS residual exceeds 3 × the typical one is not
  learnt, and 16 such in a row restart the template where what they left after the QRS is
  smooth (a changed heartbeat; not EMG lasting over those beats, which is there too:
  :data:`RESTART_CONFINED`). Beats found by search-back are reported
  but neither subtracted nor learnt from (their window has already been output).

Input must be mains-cancelled: uncancelled mains of ~10 µV spoils the per-beat gain and lag on
channels whose ECG is that small.

Streaming: input is cut internally into 10 ms blocks aligned to absolute sample indices, and
every decision happens at a fixed absolute position, so any chunking gives the same output.
The output lags the input by :attr:`EcgCanceller.delay` samples (329 ms at any rate from
1 kHz): a beat is judged once its core has arrived.
Memory is bounded whatever the length of the case: the input is held for about one template
window behind the output (for the first candidates up to ~2.3 s), missed candidates for
:data:`MISSED_KEPT_S` and the reported beats for the last :data:`BEATS_KEPT`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from ionm_station.dsp.beat_variation import BeatVariation, move_later
from ionm_station.dsp.filters import SosFilter, ZeroPhaseRows
from ionm_station.dsp.rows import Rows

#: median |x| of Gaussian noise is 0.6745 σ: σ = median|x| / MAD_TO_SIGMA.
MAD_TO_SIGMA = 0.6745
#: Smallest robust noise scale (µV): keeps flat channels from dividing by zero.
SCALE_FLOOR_UV = 1e-3
#: Internal block length (s): flags, scales and detection advance block by block.
BLOCK_S = 0.010
#: Robust scales are recomputed every this many blocks from the block history.
SCALE_EVERY_BLOCKS = 25
#: Weight of a new detection-band scale against the previous one (geometric average; changes
#: beyond ×2 or ÷2 are taken at once).
SCALE_SMOOTHING = 0.25
#: Detection-band scales remembered (updates SCALE_EVERY_BLOCKS apart: 4 s).
SCALE_LOG = 16
#: History of block medians behind the robust scales (s).
HISTORY_S = 2.0
#: Detection band (Hz) and rate (Hz) of the detection signal.
DETECT_BAND_HZ = (5.0, 40.0)
DETECT_RATE_HZ = 1000.0
#: High-pass corner (Hz) of the EMG/cautery activity measure (ECG has no energy there).
ACTIVITY_HP_HZ = 200.0
#: A block is "wild" on a channel when its >200 Hz RMS exceeds this many robust σ.
WILD_RATIO = 3.0
#: A block is "flat" (lead-off) when its >200 Hz RMS is below this fraction of σ — or of the
#: channel's σ before it accepted a wild level (RELEARN_S), until σ is back within twice that
#: and nothing is excluded there: once quiet again after a long loud train, it read flat for
#: good (a 15 s A-train of 400 µV p-p raised σ from 2.7 to 32 µV; after it the channel's QRS
#: was no longer subtracted: 19 µV RMS left over each beat for as long as it ran). (A running
#: minimum of σ instead fell to nothing on a channel connected after the start, and a later
#: lead-off there never read flat.)
FLAT_RATIO = 0.1
#: While the scales' history fills for the first time every block is learnt, except those
#: whose >200 Hz RMS is below this (µV): flat (an amplifier's own noise there is ≥ ~0.5 µV).
FIRST_FILL_FLAT_UV = 0.1
#: Samples at or beyond this fraction of ``rail_uv`` count as saturated.
RAIL_FRACTION = 0.98
#: More than this fraction of live channels wild at once is a global artifact (cautery).
GLOBAL_FRACTION = 0.5
#: … counting only channels whose >200 Hz RMS exceeds this many robust σ: cautery (mV of
#: broadband noise, ≥ 100 × σ) and stimulus artifacts, not EMG going on on several channels
#: at once (a beat amid it is still detected).
GLOBAL_RATIO = 20.0
#: No beat is detected this long (s) after a global artifact, and a channel stays out of
#: detection this long after it was wild, flat or saturated (filter ringing).
ARTIFACT_HOLD_S = 0.2
#: A QRS left in place — at the end of the record, or next to an artifact — is blanked for
#: detection on channels whose dominant template exceeds this (µV p-p) or that have none.
UNLEARNED_BLANK_UV = 15.0
#: A global artifact this many blocks long (30 ms) is sustained (cautery) and gets the hold-off.
LONG_ARTIFACT_BLOCKS = 3
#: A channel stays out of detection this long (s) after it was flat or saturated (the step
#: back to signal rings through the detection filter); a saturated block on a channel wild in
#: the block before and in it (cautery clipped at the rail) gets ARTIFACT_HOLD_S instead.
DEAD_HOLD_S = 0.5
#: A channel excluded this long (s) accepts its new level as normal (e.g. a noisier electrode).
RELEARN_S = 8.0
#: A channel adds at most this to the detection signal ((x/σ)², before averaging channels).
ENERGY_CAP = 1e4
#: Centred moving-average length (s) of the detection signal.
SMOOTH_S = 0.030
#: Candidates are maxima of the smoothed detection signal within ± this (s); the fiducial is
#: the centroid of the part above half the peak within that span. At ± 40 ms a PTB QRS whose
#: detection energy has three or four lobes 20–100 ms after R took the largest lobe in reach,
#: a different one from beat to beat (fiducial R + 19…+103 ms): beats fitted late left their
#: QRS onset unsubtracted (extra tuning seed 208, 5 kHz: 27 false events in 4 min; ± 30 and
#: ± 33 ms: 1). At ± 25 ms the lobes' own candidates raised the noise level until real beats
#: fell under the threshold (PTB s0010 at 10 kHz, tests/test_ecg.py).
PEAK_HALF_WINDOW_S = 0.030
#: While the threshold is learnt, two candidates within the refractory period are compared
#: by the input over fiducial − LOBE_BEFORE_S … + LOBE_AFTER_S (s): where a beat's QRS lies.
LOBE_BEFORE_S = 0.060
LOBE_AFTER_S = 0.020
#: The fiducial moves at most this far (s) from the peak towards the centroid.
CENTROID_SPAN_S = 0.010
#: While the QRS threshold is learnt, a QRS rises (see EcgCanceller._first_rise) through this
#: fraction of the largest heartbeat's detection peak so far.
LEARN_RISE_FRACTION = 0.5
#: Smallest candidate peak and smallest beat (detection units: noise averages 1).
MIN_CANDIDATE = 10.0
#: Assumed noise-peak level at start (detection units).
NOISE_PEAK_START = 2.0
#: The signal peak level starts as the largest candidate of the first this long (s).
LEARN_S = 2.0
#: Detection is blanked until the first beat is judged, but never longer than this (s): a
#: record with no visible ECG (distal muscles, a needle recording) must not stay blanked.
SETTLE_MAX_S = 4.0
#: While the threshold is learnt, a candidate's window is not blanked for detection on a
#: channel whose largest |input| there exceeds this many times its heartbeat's (the median of
#: the candidates so far): that is something else, EMG clearly bigger than the heart.
LEARN_BLANK_RATIO = 2.0
#: … nor on one where it holds fast content no heartbeat has: a >200 Hz RMS over
#: GATE_ENVELOPE_S above LEARN_FAST_SIGMA × the channel's >200 Hz noise for longer than that
#: RMS window plus LEARN_FAST_EXTRA_S in all, peaking above LEARN_FAST_RATIO × the
#: heartbeat's own there (the median of the candidates so far). EMG sitting on a heartbeat
#: need not peak at twice it: a 487 µV burst on a channel with 331 µV of ECG (extra seed 816,
#: 1.38 s) and a 572 µV spike beside a 323 µV one (seed 570, 1.45 s) were blanked whole and
#: missed; their fast content peaked at 58 and 97 σ, for 16 and 6 ms, the QRS complexes of
#: the cases traced at up to 5.3 σ. An electrode pop's edge is one impulse there, above it
#: about as long as the RMS window: a 166 µV pop 25 ms after an R peak (seed 733, 1.44 s;
#: 13 σ for 2.0 ms at 5 kHz), which the step detector cannot tell from the QRS under it
#: before it knows two beats, stays blanked; a 273 µV spike lasts 4.2 ms (seed 702, 2.19 s).
#: A larger pop, or one on a quieter channel, stays above it longer (a 166 µV step over 2 µV
#: of noise: 3.9 ms at 10 kHz) and is left open unless the step detector notes it (then the
#: window is blanked after all, see :meth:`EcgCanceller.note_steps`); only the ratio to the
#: heartbeat guards that case.
LEARN_FAST_SIGMA = 10.0
LEARN_FAST_EXTRA_S = 0.001
LEARN_FAST_RATIO = 3.0
#: The P wave's fast part is blanked while the threshold is learnt (from ~170 ms before a
#: candidate's fiducial, R − 140 ms, where slow and small: see P_WAVE_GATE_RATIO) on the channels
#: whose heartbeat peaks at least this high (µV; once the threshold is known the gate takes
#: P_WAVE_GATED_UV): PTB s0010's P waves are up to a sixth of its QRS, and on a channel with 83 µV
#: of (band-passed) heartbeat they read as 10–18 µV spikes at R − 110…−150 ms for the whole case
#: (extra tuning seed 311: 43 in 4 min), and 8–15 µV bursts at R − 146…−152 ms while the threshold
#: was learnt (seeds 642, 846: 81–85 µV of heart), when the learning blank stopped at 100 µV. (That
#: blank had kept 100 µV because each candidate's whole window was blanked too, and the longer blank
#: hid the start of a 288 µV A-train at 1.0 s, seed 226; a window holding EMG's fast content now
#: stays open, and that A-train is found. Blanking the P wave on every channel kept the detector's
#: noise floor from settling: a 440 µV spike at 1.59 s on a channel with 54 µV of ECG was missed.)
P_WAVE_GATE_UV = 60.0
#: Once the threshold is known, the P-wave gate (see P_WAVE_GATE_RATIO) opens on channels whose
#: dominant template peaks at least this high (µV); lower than the learning blank's bound, which
#: keeps more channels open while the detector's noise floor settles (above). With 60 µV, PTB
#: s0010's P waves on a channel with a 47 µV template read as 6–11 µV spikes at R − 111…−122 ms
#: (extra tuning seed 618: 6 in 4 min, once the fit of the beat-to-beat variation had lowered that
#: channel's noise floor a little; 2 before).
P_WAVE_GATED_UV = 40.0
#: Once the threshold is known, the same stretch before a beat's window (not subtracted) is
#: blanked on those channels where what the detector sees there (40 Hz high-pass, 2 ms RMS)
#: is at most this fraction of the dominant template's peak (µV/µV): a P wave's fast part
#: (real ECG: ≤ 0.04 × on MIT-BIH 100, ≤ 0.07 × on PTB s0010 without noise; with 2–4 µV of
#: it 0.103–0.11 × on tuning seed 232's anal sphincter, which 0.1 left as 21 spikes), never
#: anything clearly bigger than the heart can make there (a MUAP is kept by its >200 Hz
#: content, below).
P_WAVE_GATE_RATIO = 0.15
#: A candidate under the QRS threshold also gets the P-wave gate when found this many mean RR
#: intervals or more after the last beat (a beat is due): EMG on the channels with most of the
#: heart takes them out of QRS detection, the beat's detection peak then falls far under the
#: threshold (extra tuning seed 276, 105.49 s: 74 against 278) and it is accepted by its shape
#: alone, too late to gate its P wave, whose fast part read as a 14 µV spike at R − 138 ms.
#: (A T wave comes ~0.4–0.6 RR after its beat.) Overdue too, with no upper limit: the first
#: beat after cautery comes seconds after the last one, and stopped at the search-back
#: interval (1.66 RR) the gate left its P wave as an 11.8 µV spike (seed 258, 126.60 s). Long
#: without a beat (no visible ECG), candidates under the threshold then gate what precedes
#: them, but only where it is slow and no larger than a P wave.
P_WAVE_DUE_RR = 0.8
#: … and once a beat is due (as above) the gate is also decided as soon as the QRS detection
#: signal rises through this fraction of the threshold, not only through the threshold: a beat
#: under the threshold was found ~120 ms after its R peak, too late for its P wave, whose fast
#: part had been output and read as 12–15 µV spikes at R − 120…−138 ms (extra tuning seeds 774
#: at 52.37 and 236.89 s, 642 at 20.26 s: peaks 61–99 % of the threshold, PTB s0010).
P_WAVE_DUE_RISE_FRACTION = 0.5
#: … nor where a 2 ms RMS of its >200 Hz content exceeds this many times the channel's >200 Hz
#: noise: a P wave is slow, a MUAP is not (noise alone reaches ~1.7 × at 5 kHz).
P_WAVE_FAST_SIGMA = 3.0
#: … and when the candidate is accepted, on the channels its fit is subtracted from, the blank
#: goes on this long (s) into the window (past the taper, where the fit is whole) where the
#: output there holds no EMG and is no larger than P_WAVE_GATE_RATIO × the heartbeat: the
#: detector zeroes blanked samples before its 40 Hz high-pass, and the unsubtracted PR
#: segment right after a blank ending at the window's start read as a 17 µV spike.
P_WAVE_INTO_WINDOW_S = 0.02
#: … and on up to where the residual gate's blank of that channel begins (see
#: :meth:`EcgCanceller._gate`), when that lies at most this much further (s), under the same
#: conditions and where that stretch holds no >200 Hz content (as the P-wave gate's
#: :meth:`EcgCanceller._fast`): PTB s0010's PR segment, fitted past the taper, left 8–10 µV
#: RMS (3 σ; more than the heartbeat there, so the gate kept it) between the two blanks, read
#: as 16–31 µV spikes at R − 25…−37 ms on the channel with 333 µV of heartbeat for 12 s and
#: again later (extra tuning seed 299: 24 of its 26 false events). The gate's first blank from
#: the P blank's end on: one that ends before it (blocks judged at the window's start) does not
#: end the bridge, and one over it bridges to the next one (seed 263, 28–32 s: 11–12 µV spikes
#: at R − 33…−35 ms between the gate's blanks of the window's first 20–29 ms and from 40 ms).
P_WAVE_BRIDGE_S = 0.040
#: … nor where the >200 Hz RMS over that whole stretch exceeds this many times the channel's
#: >200 Hz noise: those misfits read 1.03–1.18 ×, a 34 µV burst of small MUAPs there 1.43 ×
#: (seed 269, 135.77 s: missed when bridged), too small for the 2 ms test.
P_WAVE_BRIDGE_HF_RATIO = 1.3
#: The P-wave gate judges what the output holds from this long (s) before the rows it may blank:
#: a MUAP straddling the gate's start otherwise showed it only its tail, slow and small, and was
#: cut in two (extra tuning seed 265: a 266 µV spike at R − 165 ms missed once channels with
#: 60–100 µV of heartbeat were gated).
P_WAVE_LOOKBACK_S = 0.015
#: Threshold position between noise and signal peak levels.
THRESHOLD_FRACTION = 0.3
#: Refractory period after a beat (s).
REFRACTORY_S = 0.25
#: Search back for a missed beat when no beat came for this many mean RR intervals.
SEARCH_BACK_RR = 1.66
#: RR intervals averaged for search-back.
RR_AVERAGE = 8
#: Without a beat for this long (s), the signal peak level halves.
RECOVER_S = 2.5
#: Template window before/after the fiducial (s).
PRE_S = 0.100
POST_S = 0.200
#: The per-beat fit, the correction across channels and the residual gate see the beat up to
#: this long (s) after the fiducial (QRS and early ST, R + ~60…100 ms): a beat is judged once its
#: input is there, which sets the output delay.
CORE_POST_S = 0.080
#: Raised-cosine taper at each window edge (s) …
TAPER_S = 0.010
#: … but at the window's end (R + ~200…230 ms, on the T wave, which goes on after it) this long:
#: the step from a subtracted T wave to one left in place, made over 10 ms, has its energy
#: around 50 Hz and read to the detector's 40 Hz high-pass as 7–12 µV spikes at R + 220…235 ms
#: on channels with a big T wave (extra tuning seeds 227, 246: seven in 4 min); over 30 ms it
#: lies around 17 Hz, which that high-pass cuts ~5×.
TAPER_END_S = 0.030
#: The window after the core is fitted again once all of it has arrived (the beat's template
#: update is due then, and none of it is output yet): gain, shift, stretch and the heart's
#: time courses over the tail — from this long (s) before the core's end to the window's
#: end — taking over from the core's fit over that overlap (raised cosine). The core's fit,
#: extended past the core by gain and shift alone, left the beat-to-beat changes of the ST
#: segment there (a QRS 3 % shorter than the template is 4 ms early at R + 125 ms: 13–49 µV
#: at R + 100…150 ms on a 150–400 µV channel, read as spikes).
TAIL_OVERLAP_S = 0.020
#: The tail's fit is kept only where what it leaves has an RMS of at most this many times the
#: channel's >200 Hz noise σ …
TAIL_LEFT_RATIO = 3.0
#: … or at most this fraction of the energy there before it, moving the subtraction by no
#: more than the template's own tail. Otherwise it fitted something besides the heartbeat.
#: An A-train (its content is mostly below 200 Hz, so the EMG test misses it) moved the fit by
#: 20–43 µV RMS where the template's own tail held 1–10 µV, leaving 21–39 σ and 69–96 % of the
#: energy (simulator seed 126); one starting just after a window moved it by 4 µV there, read
#: as the train's onset 90 ms early; a 68 Hz train on a real heart was fitted down to a third
#: of its energy but by moves of 25 µV on a 5–8 µV tail. Quiet tails leave 1.1 σ (median) and
#: at most 2.2 σ (tune-mitdb-10k, tune-ptb-10k); all beyond 2.5 σ there were A-trains (left
#: 85–97 %), a pop or cautery. A young template's tail, 4 s after a restart (tune-ptb-10k-b
#: from 80 s), was fitted from 5.3 to 3.0 σ, a third of the energy left, by 7 µV on 20 µV.
TAIL_EXPLAINED = 0.5
#: Joint (coarse, 1 ms steps) and per-channel (fine, full rate) alignment ranges (s).
COARSE_LAG_S = 0.015
FINE_LAG_S = 0.002
#: Beats after which a channel's template counts as converged (until then the median of its
#: beats); beats in its exponential average after that.
BOOTSTRAP_BEATS = 8
TEMPLATE_BEATS = 32
#: The fit's basis is made from a template low-passed here (Hz; zero phase, 2nd order) while it
#: holds fewer than TEMPLATE_BEATS beats: the median of n beats carries σ² × π / 2n of their
#: noise, then the exponential average ~σ² / n, all of it above the heart's band too (a real QRS
#: far-field holds little past 150–250 Hz; MIT-BIH 100 was sampled at 360 Hz), and every beat
#: subtracted took it back as a misfit. (The templates themselves stay as learnt: classes and
#: alignment are judged on them as before.) On 45 extra tuning seeds at 5 kHz on MIT-BIH 100
#: (1135–1399, 60 s each) the per-beat residual's 99th percentile from 3 s went from a median of
#: 1.34 to 1.28 (38 better, 3 worse by ≤ 0.06; over 1.5: 15 → 9), on 45 of PTB s0010 (10 and
#: 5 kHz) 1.05 → 1.00 (40 better, none worse). Low-passing the learnt median itself did as well
#: but moved class and EMG decisions after it. Measured on that variant: low-passed only until
#: BOOTSTRAP_BEATS, 21 of the 45 did worse (by up to 0.57: the raw median of 8 then); 200 Hz
#: gained more on MIT-BIH (median 1.24) but takes 24 % of a 150 Hz component (300 Hz: 6 %); a
#: 4th-order filter at 300 Hz did worse on 6 seeds (by up to 0.26: its ringing at the R wave).
YOUNG_FIT_LOWPASS_HZ = 300.0
#: Beat classes (morphologies, each with a template per channel): the dominant beat and
#: ectopic ones (ventricular premature beats, aberrant conduction).
MAX_CLASSES = 3
#: A beat whose similarity to every class is below this starts a new class (similarity: the
#: median over channels of the normalised correlation with the class template, weighted by the
#: template's energy over the noise; channels whose template is below the noise do not vote),
#: and still is without the channels where the beat's fit finds EMG (EcgCanceller._accept).
NEW_CLASS_SIMILARITY = 0.7
#: The dominant class takes a beat unless another one leaves less than this fraction of its
#: dissimilarity (1 − similarity): a class started by one odd beat that has grown towards the
#: dominant shape matches its beats about as well (0.9944 against 0.9915, extra seed 612),
#: and its young templates leave more behind than the dominant class's. (Only where the
#: dominant class's similarity reaches NEW_CLASS_SIMILARITY: below it the beat is no beat of
#: the dominant rhythm.)
OTHER_CLASS_DISSIMILARITY = 0.5
#: A detection candidate under the threshold is a beat all the same when its similarity to the
#: dominant class (as above, on channels whose converged template stands out of the noise; at
#: least one must) reaches this.
CONFIRM_SIMILARITY = 0.9
#: … its QRS searched for up to this long (s) before the fiducial (the lag search of an
#: accepted beat reaches COARSE_LAG_S): a candidate's fiducial is the centroid of the channels
#: included in detection, and when EMG holds a channel with a large, early QRS out of it the
#: others' later lobes put it ~55 ms after R instead of ~30 ms, often with energy far under
#: the threshold (tuning seed 228: a B-train on the adductor for 2.5 s, detection peaks 1/5 of
#: the usual, four beats left whole on six channels, 130–157 µV on the anal sphincter). A beat
#: of the dominant shape, under the threshold or not, is accepted where its QRS aligns. The
#: stage's delay grows by the extra reach. At 40 ms, PTB beats whose detection energy merged
#: into one hump peaking ~105 ms after R (the usual lobe is at ~30 ms) were taken at that
#: fiducial and made a class of their own whose window began after their QRS: the QRS onset was
#: left whole on the three channels with most ECG (extra tuning seed 287: 50 → 4 false events
#: in 4 min; the 28 PTB 10 kHz seeds 239–318: 210 → 156, 6 → 4 at alarm level).
CONFIRM_REACH_S = 0.090
#: … against the dominant class's templates once they hold this many beats (not only once
#: converged): a beat 1.5 s after the threshold was learnt, its fiducial moved by a B-train on
#: the channel with the biggest QRS, was left whole on five channels (143 µV; tuning seed 228).
CONFIRM_MIN_BEATS = 3
#: … and for up to this long (s) after the fiducial beyond COARSE_LAG_S: with EMG holding the
#: channels with most of the heart out of detection, the others' earlier lobes can put the
#: fiducial ~45 ms after R instead of ~30 ms too (extra tuning seed 552, 129.76 s: EMG on four
#: channels, the best alignment 17–19 ms after the fiducial, just past the search; the beat,
#: under the threshold, was found only by search-back and left whole on four channels, 150 µV
#: on one). Searched only where the usual reach confirms nothing; such a beat is accepted
#: that much later, and the stage's delay grows by this reach.
CONFIRM_LATE_S = 0.010
#: Per-beat fit limits: gain, shift beyond the integer lag (s) and QRS stretch (fraction).
GAIN_RANGE = (0.5, 1.5)
SHIFT_MAX_S = 0.001
STRETCH_MAX = 0.25
#: The shift and stretch terms use the derivative of the template low-passed (zero phase) here
#: (Hz): the template's own noise, differentiated and weighted by the time from the R peak,
#: would otherwise add high-frequency noise at the window's edges.
DERIVATIVE_LOWPASS_HZ = 250.0
#: A class's template is moved in its window when its beats' mean lag drifts beyond this (s)
#: (the detection fiducial moves against the R peak with the channels it is made of), so the
#: lag search stays centred.
RECENTRE_S = 0.002
#: Beats in that mean lag.
LAG_BEATS = 2
#: After that fit, each channel's residual is fitted by this many time courses of the heart
#: (the leading singular vectors of the class's templates across channels, and their
#: derivatives): one heart projects onto every channel, so a beat whose axis turned (breathing)
#: or whose QRS changed is a mix of them, while noise and EMG are not. (6 took the per-beat ECG
#: residual's 99th percentile from 1.36 to 1.28 × the quiet RMS on tune-mitdb-10k-60Hz and from
#: 1.59 to 1.47 on extra tuning seed 535, but moved a lone ventricular beat's misfit on
#: tune-mitdb-5k: its 2 s window read as mains 3.6 dB over the floor, 0.3 before.)
HEART_COMPONENTS = 4
#: … low-passed (zero phase) here (Hz): they correct how the QRS changes from beat to beat,
#: which lies where the QRS has its energy. A course mixes every channel's template, its
#: coefficient on a channel with a large ECG is large, and near-collinear courses and slopes
#: take large coefficients of opposite sign: unfiltered, the templates' own noise in them was
#: added to that channel at many times its size (tune-mitdb-10k, iliopsoas: > 200 Hz residual
#: 1.5–4 × the channel's noise over the whole QRS window against 0.2–0.4 × without them).
HEART_LOWPASS_HZ = 100.0
#: The courses' part of a beat's fit on a channel (its RMS over the template part's, fitted
#: span) is bounded at COURSE_SPREAD × its typical size there — the mean of its log over the
#: class's first beats, then an exponential average over ~COURSE_BEATS, learnt from beats
#: learnt into the templates where the bound did not cut, in force from COURSE_MIN_BEATS —
#: times how far the heart as a whole moved past its typical: the median of that lift over the
#: channels that have a typical, from COURSE_MIN_CHANNELS of them. A beat that changed shape
#: changes on every channel its heart reaches, EMG on one channel does not (an A-train too
#: slow for the >200 Hz test raised the part to 15–100 × its typical on its channel: 2.3 → 2.0
#: and 2.5 → 1.5 µV RMS of error over two such trains; the real beats of the tuning cases
#: stayed under the bound, with four courses as with six: their residual percentiles did not
#: move).
COURSE_SPREAD = 3.0
COURSE_BEATS = 32
COURSE_MIN_BEATS = 8
COURSE_MIN_CHANNELS = 3
#: EMG in a beat on a channel: a 10 ms block of its fit residual whose >200 Hz RMS exceeds
#: EMG_RATIO × the channel's >200 Hz noise σ, that excess being at least HF_SHARE of the
#: block's RMS (what a QRS misfit leaves is low-frequency; a MUAP is not), and where the beat
#: holds that much more >200 Hz power than the heartbeat fitted to it (a sharp R wave has its
#: own, and a misfit of it leaves some).
EMG_RATIO = 2.5
HF_SHARE = 0.3
#: A converged template is not updated by a beat whose residual RMS over the QRS exceeds this
#: many typical residuals; RESTART_REJECTS such beats in a row restart it — where what they
#: left was the heartbeat's. Over the window after the core (R + ~110…230 ms, the ST-T
#: segment) the core's fits leave, high-passed at GATE_HIGHPASS_HZ, at most RESTART_CONFINED
#: × the full-band residual over the core, in RMS pooled over those beats (√(Σ after² /
#: Σ core²), µV over µV). A changed heartbeat's misfit is confined to its QRS and smooth
#: after it (0.2 or less); EMG lasting over those beats is there too (≈ 1). A 96 Hz A-train
#: of 100 µV p-p lasting 30 s on one channel (too slow for the >200 Hz EMG test) restarted
#: the template, which learnt it as the heart: 17–21 µV RMS of error over its last 20 s,
#: 4–6 µV for 15 s after it (s0010, seed 3). How alike the rejected beats' residuals are
#: does not tell them apart: a train's mean residual over 16 beats kept 0.17–0.65 of its RMS
#: (a fit biased by it is alike from beat to beat), a doubled heartbeat's 0.94.
OUTLIER_RATIO = 3.0
RESIDUAL_BEATS = 16
RESTART_REJECTS = 16
RESTART_CONFINED = 0.5
#: A channel whose QRS residual RMS exceeds this many times its typical one is not used to
#: predict the others' residuals across channels: an A-train on the iliopsoas (252 µV RMS
#: against 3, little >200 Hz content) was projected onto the anal sphincter as 27–67 µV spikes
#: at each beat for 1.7 s (tuning seed 232). A heartbeat's own misfit stays well under it
#: (3–4 ×; excluded at 3 × it left a 15 µV spike, tune-mitdb-10k).
SPATIAL_OUTLIER_RATIO = 10.0
#: Residual gate: where the residual left on a channel without EMG, through the detector's
#: 40 Hz high-pass and 2 ms RMS, exceeds GATE_SIGMA × the channel's noise σ, the QRS window is
#: blanked for detection (reported by :meth:`EcgCanceller.blank_mask`).
GATE_SIGMA = 2.0
#: … only where the heartbeat itself would read as activity (GATE_ECG_SIGMA × σ) and the
#: residual's RMS in the block is at most GATE_RESIDUAL_MAX × the heartbeat's in that block or
#: the next either side (not its loudest block anywhere: the tail of a 500 µV MUAP 10 ms before
#: the core's start was blanked as a misfit).
GATE_ECG_SIGMA = 1.5
#: … and the blocks before it (the QRS's onset), up to this many, where it reads so too and is
#: no larger than the heartbeat there or beside (see :meth:`EcgCanceller._gate`).
GATE_SPILL_BLOCKS = 3
GATE_RESIDUAL_MAX = 1.0
#: … and a hole of at most this many blocks between blanked ones, where the residual reads
#: as activity and holds no EMG though larger than the heartbeat there: on MIT-BIH 100 the
#: QRS's onset moves from beat to beat, and where the template is faint its misfit is larger
#: than it (extra tuning seeds 811, 883, 601, 769: 15–20 µV spikes at R − 36…−46 ms in one
#: open block, or two, between the gate's blanks on the biggest channel).
GATE_HOLE_BLOCKS = 2
#: … except in a beat whose window starts within this long (s) after a sustained global
#: artifact's hold-off ends (cautery; not a stimulus artifact, which gets no hold-off, nor a
#: gap of a block): the fit's scale and time courses still hold the artifact's
#: recovery, so what it leaves may be larger than the heartbeat there and is gated all the
#: same where it has no EMG (the first beat after cautery, extra tuning seeds 312 and 225:
#: 19 µV and 42 µV "spikes" at the QRS onset 0.2–0.7 s after the cautery span).
RELOCK_S = 1.5
#: Ends of global artifacts are kept this long (s) beyond RELOCK_S behind the input's end
#: (a beat is decided at most a search-back interval, ~2 s, after its fiducial).
GLOB_ENDS_KEPT_S = 5.0
GATE_HIGHPASS_HZ = 40.0
GATE_ENVELOPE_S = 0.002
#: Correction across channels: the residuals' covariance (noise-whitened) is averaged over
#: SPATIAL_BEATS clean beats and used from SPATIAL_MIN_BEATS on, with at least
#: SPATIAL_MIN_CHANNELS clean channels in the beat. The whitening scale is each channel's
#: >200 Hz σ averaged (geometrically) over the same beats, not the beat's own σ: that one
#: follows the last 2 s, and an A-train's or a burst's high frequencies tripled it on their
#: channel (2 → 6 µV) for a second or two after it, which tripled the correction predicted
#: there in µV — a heartbeat's misfit does not grow with the noise (extra tuning seeds 600,
#: 183.80 s, and 888, 105.89 s: 49 and 60 µV "bursts" over a whole QRS on a channel with
#: 340–370 µV of ECG). The residual gate judges loudness against the lower of the two σ.
SPATIAL_BEATS = 32
SPATIAL_MIN_BEATS = 8
SPATIAL_MIN_CHANNELS = 3
#: A beat whose core (its QRS window) ends at most this long (s) after the record's last row
#: is subtracted at the flush (only its ST segment's start is missing); later, it is left in
#: place and blanked.
RECORD_END_MARGIN_S = 0.03
#: Beat-to-beat variation (:mod:`ionm_station.dsp.beat_variation`): the leading VARIATION_COMPONENTS
#: principal components of the last VARIATION_BEATS residuals a class left on a channel, low-passed
#: at VARIATION_LOWPASS_HZ (zero phase, 2nd order: a QRS's variation is slow, a MUAP's bulk is not),
#: fitted to a new beat's low-passed residual from VARIATION_MIN_BEATS on, each coefficient within
#: VARIATION_CLIP × its RMS over those beats. A residual is kept only from a beat learnt into the
#: templates there, free of EMG, not outlying, and with no 10 ms block whose >200 Hz RMS exceeds
#: VARIATION_HF_RATIO × the channel's steady >200 Hz σ: a 40 µV p-p needle MUAP on a 400 µV QRS
#: passes the EMG test (held against the heartbeat's own high frequencies) but reads 1.9–2.8 σ
#: there, and one locked to the heartbeat (every other beat at R − 20 ms) lost up to 22 % of its p-p
#: when it was kept (12 % without the fit); noise alone reads 1.1–1.5 σ at the worst block of a beat
#: (MIT-BIH 100 and PTB s0010 with white noise, 5–10 kHz: 0.82–1 of the beats are kept). (On the
#: MIT-BIH tuning cases the QRS onset moves from beat to beat: offline, 3 components of 32 beats
#: took the per-beat residual's 99th percentile from 1.72 to 1.35 × the quiet RMS on tune-mitdb-5k-b
#: and from 1.93 to 1.55 on tune-mitdb-10k-60Hz. In the chain, 5 components rather than 3 took it
#: from 1.28 to 1.23 and from 1.51 to 1.36, and 1.51–1.62 to 1.43–1.59 on the three worst of 20
#: extra tuning seeds at 5 kHz on MIT-BIH 100; 8 gained little more: 1.23, 1.34, 1.41–1.52.)
#: Residuals are kept once the class's template there holds VARIATION_KEEP_BEATS beats (their
#: median then no longer one beat's own shape) and fitted from VARIATION_MIN_BEATS kept ones, each
#: pattern the kept beats hold (fewer than VARIATION_COMPONENTS until then): kept only from a
#: converged template (8 beats) and fitted from 8 kept, the fit began ~16 beats into a case,
#: later still with cautery, and the first 15 s set the 99th percentile (extra tuning seed 535:
#: 1.59 over the case, 1.31 from 15 s; on MIT-BIH 100 and PTB s0010 with noise, 5 kHz, the ECG
#: left over beats 4–16 s went 2.4–5.7 → 2.0–5.7 µV RMS at the 95th percentile, and needle
#: MUAPs locked at R − 20 ms on every other beat from the first beats kept ≥ 0.87 of their p-p,
#: as before; a protocol of its own). While a template is young (fewer than ``bootstrap_beats``
#: beats: the median of its first n) it adds its own noise to the residual,
#: σ² × VARIATION_YOUNG_NOISE / n (π/2, a median's variance over a mean's for many beats; 1.2–1.5
#: for the 3–7 beats of a young template, so a little generous), and the >200 Hz bound is
#: √(1 + VARIATION_YOUNG_NOISE / n) × wider then: against the converged template's bound the first
#: beats' residuals were refused (extra tuning seed 1039's biggest-heart channel: 4.5–5.2 µV against
#: a 4.3–4.4 µV bound on four of its first six subtracted beats), and the fit began ~6 s into that
#: case. With that and fitted from 3 kept (not 4, on every template), the ECG left over beats 3–10 s
#: at the 95th percentile went 2.4–7.3 → 2.2–7.3 µV RMS (MIT-BIH 100 and PTB s0010 with noise,
#: 5 kHz, 8 seeds each; never worse), the per-beat residual's 99th percentile on the 12 worst of 38
#: extra tuning seeds at 5 kHz on MIT-BIH 100 (907–1129) from a median of 1.42 (max 1.68) to 1.34
#: (max 1.51), and needle MUAPs of 25–40 µV locked at R − 20, − 5 or + 10 ms on every other beat
#: from 2 s kept ≥ 0.83 of their p-p (0.83 before; 4 records × 3 places × 2 sizes). At 3 beats the
#: bound is 1.85 σ, near a 40 µV MUAP's 1.9–2.8 σ: the margin against keeping one rests on those
#: figures. (Since 2026-12-05 a young template enters the fit low-passed, YOUNG_FIT_LOWPASS_HZ,
#: which leaves less of its noise above 200 Hz. With this allowance at 0 on a first version of
#: that (the learnt median itself low-passed), 4 of the 45 extra tuning seeds 1135–1399 did
#: worse, by 0.04–0.12, and none better; not measured again on the version kept.)
VARIATION_BEATS = 32
VARIATION_COMPONENTS = 5
VARIATION_KEEP_BEATS = 3
VARIATION_MIN_BEATS = 3
VARIATION_CLIP = 3.0
VARIATION_HF_RATIO = 1.5
VARIATION_YOUNG_NOISE = math.pi / 2
VARIATION_LOWPASS_HZ = 250.0
#: A class's first VARIATION_KEEP_BEATS beats on a channel leave residuals too, kept as
#: provisional: each beat less the median template they formed (fitted by gain and shift, the
#: template low-passed as a young one is: YOUNG_FIT_LOWPASS_HZ), below VARIATION_LOWPASS_HZ,
#: where its >200 Hz RMS is within the young bound (VARIATION_HF_RATIO, VARIATION_YOUNG_NOISE);
#: forgotten once the channel holds this many residuals of beats fitted as usual. Without them
#: the fit began with the third beat subtracted (~5 s into a case) and the first beats' misfit
#: set the 99th percentile (extra tuning seed 1219: 2.5–3.9 σ left at 4.9 and 6.7 s on the
#: channels with the most heart).
VARIATION_PROVISIONAL_UNTIL = 4
#: A beat is subtracted with its own shape, low-passed at YOUNG_FIT_LOWPASS_HZ (what a template
#: of that one beat is fitted as), on the channels where its class's template holds fewer than
#: this many beats while another class's holds at least as many and the EMG test finds none:
#: the first beat of a new class, or an odd one classed with the one beat like it so far (not
#: a record's first beats, odd beside nothing; per channel, so also a beat of the dominant
#: class on a channel whose template was restarted or not yet learnt, where another class has
#: learnt two). Over the core at first (easing into the usual
#: fit over its last TAPER_S), over the whole window once it has arrived
#: (:meth:`EcgCanceller._fit_tail`): over the core alone, the rest of the window left 10–13 µV
#: spikes at R + 148…154 ms (extra tuning seeds 577 and 895). Fitted with another class's
#: template or with one other beat's, the lone ventricular beat of MIT-BIH 100 left 14–20 × the
#: quiet RMS over its QRS window on the channels with the most heart (seeds 1237, 1189, 240 s
#: each), and a premature atrial beat classed with an earlier odd beat 19 × (seed 1255). What
#: the beat holds below that frequency goes with it there, EMG too; the residual gate judges
#: that beat's window as a heartbeat's misfit either way (a fresh or young class: see
#: :meth:`EcgCanceller._accept`).
OWN_SHAPE_BELOW_BEATS = 2
#: Longest stretch (s) filtered at once (bounds memory when a whole record arrives).
BATCH_S = 1.0
#: Candidates missed within this long (s) before the current one are kept for search-back
#: (≥ 1.66 × the longest RR interval of a beating heart, 3 s).
MISSED_KEPT_S = 5.0
#: Detected beats kept in :attr:`EcgCanceller.beats` (≈ 15 min at 70 bpm).
BEATS_KEPT = 1000
#: Flag bits per block and channel.
_WILD, _DEAD = 1, 2


@dataclass
class _Shapes:
    """The per-beat fit's basis for one class's templates (see :meth:`EcgCanceller._fit`)."""

    mask: bytes              # the channels with a template it was made for
    basis: np.ndarray        # (channels, 3, window): template, its derivative, QRS stretch
    core: np.ndarray         # basis over the core
    gram: np.ndarray         # (channels, 3, 3) over the core
    heart: np.ndarray | None  # (2 × courses, window) the heart's time courses and slopes
    tail: np.ndarray         # (channels, 3, tail) the basis over the tail, stretch not faded
    tail_gram: np.ndarray    # (channels, 3, 3) over the tail
    tail_heart: np.ndarray | None  # (2 × courses, tail) courses and slopes, not faded


@dataclass
class _Beat:
    """A beat awaiting its template update at absolute index ``due``."""

    due: int
    fiducial: int
    klass: int         # beat class (template set)
    lags: np.ndarray   # per channel, samples
    learn: np.ndarray  # per channel: clean over the QRS, may update the class template
    rejected: np.ndarray   # per channel: clean, its QRS residual an outlier (not learnt)
    core_power: np.ndarray  # per channel: the QRS residual's mean square (µV²)
    # for the tail's fit (None: nothing was subtracted): the fit's basis, the window's first
    # row per channel (absolute), what was subtracted over the window (channels × window µV,
    # zero on the channels it was not) and the channels' >200 Hz noise σ (µV)
    shapes: _Shapes | None = None
    rows: np.ndarray | None = None
    subtracted: np.ndarray | None = None
    sigma: np.ndarray | None = None
    # the core's low-passed residual (channels × core µV) before the beat-to-beat fit, and
    # the channels it may be kept on for that fit once the beat is learnt there
    misfit: np.ndarray | None = None
    keep_misfit: np.ndarray | None = None
    # per channel: subtracted with its own shape (OWN_SHAPE_BELOW_BEATS), its tail too
    own: np.ndarray | None = None


def _median_axis1(a: np.ndarray) -> np.ndarray:
    """np.median(a, axis=1) for a (k, n, c) array, without its per-call overhead."""
    n = a.shape[1]
    h = n // 2
    s = np.ascontiguousarray(a.transpose(0, 2, 1))  # sorting short contiguous rows is fastest
    s.sort(axis=-1)
    if n % 2:
        return s[..., h]
    return (s[..., h - 1] + s[..., h]) / 2.0


def _runs(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(row, start, stop) of every run of True in each row of a 2-D bool array."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    stops = np.nonzero(edges == -1)[1]
    return list(zip(rows.tolist(), starts.tolist(), stops.tolist()))


def _moving_power(x: np.ndarray, m: int) -> np.ndarray:
    """Per row of ``x`` (rows × samples): the sum of squares over each full window of ``m``
    samples (samples − m + 1 of them)."""
    power = np.cumsum(x * x, axis=1)
    return np.concatenate((power[:, m - 1:m], power[:, m:] - power[:, :-m]), axis=1)


def _ridge_solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Least-squares coefficients from Gram matrices ``gram`` (…, terms, terms) and right-hand
    sides ``rhs`` (…, terms, k), with a ridge of 1e-9 × each matrix's trace (plus 1e-30):
    a basis that is all zeros, or two terms that coincide, still solve (to small coefficients)
    instead of raising."""
    ridge = 1e-9 * np.trace(gram, axis1=-2, axis2=-1) + 1e-30
    return np.linalg.solve(gram + ridge[..., None, None] * np.eye(gram.shape[-1]), rhs)


def _dilated(mask: np.ndarray) -> np.ndarray:
    """(rows, blocks) bool ``mask`` grown by one block either side along each row."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _holes(mask: np.ndarray, longest: int) -> np.ndarray:
    """(rows, blocks) bool: the runs of at most ``longest`` False blocks of ``mask`` with a
    True block on either side."""
    out = np.zeros_like(mask)
    n = mask.shape[1]
    for length in range(1, longest + 1):
        if n < length + 2:
            break
        hole = mask[:, :n - length - 1] & mask[:, length + 1:]
        for k in range(1, length + 1):
            hole &= ~mask[:, k:n - length - 1 + k]
        for k in range(1, length + 1):
            out[:, k:n - length - 1 + k] |= hole
    return out


def _raised_cosine_taper(length: int, ramp: int, ramp_out: int | None = None) -> np.ndarray:
    """Weights 0 → 1 over the first ``ramp`` samples and 1 → 0 over the last ``ramp_out``
    (default ``ramp``), raised cosine, 1 between."""
    def rise(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)

    out = ramp if ramp_out is None else ramp_out
    w = np.ones(length)
    w[:ramp] = rise(ramp)
    w[length - out:] = rise(out)[::-1]
    return w


class EcgCanceller:
    """Detects heartbeats across all channels and subtracts an adaptive ECG template per channel.

    Input: consecutive chunks (n, n_channels) in µV, already band-passed (10 Hz–3 kHz) and
    mains-cancelled; NaN marks missing samples. Output row k of the concatenated output is the
    cleaned input row ``k - delay``; the first ``delay`` rows are NaN. NaN input rows stay NaN.

    Args:
        n_channels: channels per chunk.
        sample_rate_hz: sampling rate (Hz), ≥ 500 Hz.
        rail_uv: amplifier range (µV); samples at ≥ 98 % of it count as saturated. None: no check.
        pre_s, post_s: template window before/after the detection fiducial (s).
        template_beats: beats in the template's exponential average (~20–40).
        bootstrap_beats: beats after which a channel's template counts as converged (until then
            it is the median of the beats so far, subtracted from the first beat on).

    Attributes:
        delay: output delay (samples).
        beats: the last :data:`BEATS_KEPT` detected R peaks (sample indices from the first input
            row, ascending), including search-back beats.
    """

    def __init__(self, n_channels: int, sample_rate_hz: float, rail_uv: float | None = 5000.0,
                 pre_s: float = PRE_S, post_s: float = POST_S,
                 template_beats: int = TEMPLATE_BEATS,
                 bootstrap_beats: int = BOOTSTRAP_BEATS) -> None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be ≥ 1, got {n_channels}")
        if sample_rate_hz < 500:
            raise ValueError(f"sample_rate_hz must be ≥ 500 Hz, got {sample_rate_hz:g}")
        fs = float(sample_rate_hz)
        self.n_channels = n_channels
        self.sample_rate_hz = fs
        self.rail_uv = rail_uv
        self.template_beats = template_beats
        self.bootstrap_beats = bootstrap_beats
        dec = max(1, round(fs / DETECT_RATE_HZ))
        self._dec = dec
        self._block = dec * max(1, round(BLOCK_S * fs / dec))
        self._smooth = max(1, round(SMOOTH_S * fs / dec / 2))           # half length, decimated
        self._peak_half = max(1, round(PEAK_HALF_WINDOW_S * fs / dec))  # decimated
        self._coarse = dec * max(1, round(COARSE_LAG_S * fs / dec))
        self._fine = max(round(FINE_LAG_S * fs), (dec + 1) // 2)
        self._lag_max = self._coarse + self._fine
        self._confirm_early = dec * max(0, round((CONFIRM_REACH_S - COARSE_LAG_S) * fs / dec))
        self._confirm_late = dec * max(0, round(CONFIRM_LATE_S * fs / dec))
        self._pre = round(pre_s * fs)
        self._post = round(post_s * fs)
        self._window = self._pre + self._post
        self._centroid = max(1, round(CENTROID_SPAN_S * fs / dec))  # decimated
        # a beat is judged once its core (to CORE_POST_S after the fiducial, lag search and
        # the shape search's late reach included) has arrived, and never before the
        # candidate's own look-ahead
        self._core_post = round(CORE_POST_S * fs)
        self._look = max((self._peak_half + self._smooth + 1) * dec,   # decision lag after a peak
                         self._centroid * dec + self._core_post + self._lag_max + 1
                         + self._confirm_late)
        if self._pre <= 0 or self._post <= self._look:
            raise ValueError("template window too short for the detection look-ahead")
        self._core = self._pre + self._core_post
        # a candidate at decimated index j is found once the input reaches (j + _seen_lag/dec)
        self._seen_lag = (self._peak_half + self._smooth + 1) * dec
        self._tail0 = self._core - round(TAIL_OVERLAP_S * fs)  # tail's start in the window
        self._learn_s = round(LEARN_S * fs)
        self._settle_max = round(SETTLE_MAX_S * fs)
        self.delay = (self._block - 1 + self._look + self._centroid * dec + self._lag_max
                      + self._confirm_early + self._pre)
        # the tail is fitted when the beat's update is due (its window's end, lag search
        # included, has arrived): rows from there on may not have been output by any chunking
        due = self._lag_max + self._post                    # after the fiducial
        if -self._pre + self._tail0 - self._lag_max < self._first_unsent(due):
            raise ValueError("the tail's fit would come after its rows were output")
        if self.delay < self._block + self._post - self._core_post:
            raise ValueError("a learning window's tail would be judged after it was output")
        self._taper = _raised_cosine_taper(self._window, round(TAPER_S * fs),
                                           round(TAPER_END_S * fs))
        overlap = self._core - self._tail0
        self._tail_blend = np.ones(self._window - self._tail0)
        self._tail_blend[:overlap] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5)
                                                        / overlap)
        self._core_taper = _raised_cosine_taper(self._core, round(TAPER_S * fs))
        # (OWN_SHAPE_BELOW_BEATS: 1 over the core, falling to 0 over its last TAPER_S)
        self._own_taper = _raised_cosine_taper(self._core, 0, round(TAPER_S * fs))
        # the stretch term acts on the QRS only: weight 1 over the core, fading out after it
        ramp = round(TAPER_S * fs)
        self._stretch_weight = np.zeros(self._window)
        self._stretch_weight[:self._core] = 1.0
        self._stretch_weight[self._core:self._core + ramp] = _raised_cosine_taper(
            2 * ramp, ramp)[ramp:]
        self._shift_max = max(1.0, SHIFT_MAX_S * fs)
        self._lowpass = ZeroPhaseRows(signal.butter(2, min(DERIVATIVE_LOWPASS_HZ, 0.4 * fs),
                                                    fs=fs, output="sos"))
        self._heart_lowpass = ZeroPhaseRows(signal.butter(2, min(HEART_LOWPASS_HZ, 0.4 * fs),
                                                          fs=fs, output="sos"))
        self._variation_lowpass = ZeroPhaseRows(signal.butter(
            2, min(VARIATION_LOWPASS_HZ, 0.4 * fs), fs=fs, output="sos"))
        self._young_lowpass = ZeroPhaseRows(signal.butter(2, min(YOUNG_FIT_LOWPASS_HZ, 0.4 * fs),
                                                         fs=fs, output="sos"))
        self._recentre = max(dec, round(RECENTRE_S * fs))
        self._ba_gate = signal.butter(2, GATE_HIGHPASS_HZ, btype="highpass", fs=fs, output="ba")
        self._zi_gate = signal.lfilter_zi(*self._ba_gate)  # for a unit step
        self._gate_envelope = max(8, round(GATE_ENVELOPE_S * fs))
        self._p_lookback = round(P_WAVE_LOOKBACK_S * fs)
        self._sos_detect = signal.butter(2, DETECT_BAND_HZ, btype="bandpass", fs=fs / dec,
                                         output="sos")
        self._ba_activity = signal.butter(2, min(ACTIVITY_HP_HZ, 0.4 * fs), btype="highpass",
                                          fs=fs, output="ba")
        self._zi_unit_activity = signal.lfilter_zi(*self._ba_activity)  # for a unit step
        self._history = max(1, round(HISTORY_S / (self._block / fs)))
        self._hold_blocks = math.ceil(ARTIFACT_HOLD_S * fs / self._block)
        self._dead_hold_blocks = math.ceil(DEAD_HOLD_S * fs / self._block)
        self._relearn_blocks = math.ceil(RELEARN_S * fs / self._block)
        self._refractory = round(REFRACTORY_S * fs)
        self._missed_kept = round(MISSED_KEPT_S * fs)
        self._recover = round(RECOVER_S * fs)
        self._batch_blocks = max(1, round(BATCH_S * fs / self._block))
        self._first_scale = SCALE_EVERY_BLOCKS * self._block  # first scale from a history
        self.reset()

    # --- public -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: templates, thresholds, beats, buffers; the next chunk is index 0."""
        c = self.n_channels
        self.beats: list[int] = []
        self._blank: list[tuple[int, int, np.ndarray]] = []  # (start, stop, channels)
        # windows' parts after the core while the threshold is learnt, judged once arrived:
        # (start, stop, the heartbeat's largest |input| and largest >200 Hz RMS per channel µV,
        # or None)
        self._unlearnt_tails: deque[tuple[int, int, np.ndarray | None, np.ndarray | None]] = deque()
        # their parts judged so far, with the channels left unblanked there (start, stop,
        # channels): a step noted later blanks them (see note_steps)
        self._unlearnt_open: deque[tuple[int, int, np.ndarray]] = deque()
        self._steps: list[tuple[int, np.ndarray]] = []  # steps noted: (first sample, channels)
        # channels kept out of QRS detection (see hold_out): (start, stop, channel)
        self._held_out: list[tuple[int, int, int]] = []
        # subtracted beats' fitted cores: (start per channel, heartbeat per channel —
        # subtracted, or left whole with a template of UNLEARNED_BLANK_UV p-p or more —, EMG per
        # channel and block)
        self._cores: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque()
        self.settled_at: int | None = None  # window start of the first judged beat
        # scales learnt again while the threshold was learnt (absolute index of each such
        # block's end), applied in time order with the decisions (see _run_events)
        self._restarts: deque[int] = deque()
        self._relearnt_to = 0  # candidates before it are not learnt from (_restart_learning)
        # … and detection blanked from the first of these rows until the second (the window
        # start of the first candidate judged since; None: not yet, until _settle_by)
        self._resettle: tuple[int, int | None] | None = None
        self._settle_by = 0
        self._finished = False
        self._record_end: float = math.inf  # input rows of the record, once flush() ends it
        self._n_in = 0          # input rows received
        self._end = 0           # input rows processed (multiple of the block)
        self._x = Rows(c, np.float64)
        self._railed_in = Rows(c, np.bool_, fill=False)  # given rail rows not yet judged
        self._lost_in = Rows(c, np.bool_, fill=False)  # given bridged-gap rows not yet judged
        self._last_bridged = np.zeros(c, bool)  # the last judged block's bridged-gap channels
        self._sub = Rows(c, np.float64)
        self._sub.pad(self._window + self._lag_max)
        lead = self._peak_half + self._smooth
        self._det = Rows(1, np.float64, start=-lead)  # detection signal, decimated
        self._det.pad(lead)
        # while the threshold is learnt: each channel's detection-band square (µV², NaN where
        # not included), decimated, to read the learnt candidates again with the final scale
        self._det_learning: Rows | None = Rows(c, np.float64, start=-lead, fill=np.nan)
        self._det_learning.pad(lead)
        # the detection-band scales (µV per channel) in force from each block on, the last few
        self._scale_log: deque[tuple[int, np.ndarray]] = deque(maxlen=SCALE_LOG)
        self._flags = Rows(c, np.int8)    # per block: _WILD | _DEAD bits
        self._glob = Rows(1, np.bool_)    # per block: global artifact (incl. hold-off)
        self._noise = Rows(c, np.float64)  # per block: >200 Hz σ in force (µV)
        self._next_candidate = 0           # next decimated index to test as a candidate
        self._next_rise = 0                # next decimated index to test for a rise
        self._last_rise = -(1 << 62)       # (absolute index) of the last rise
        self._last_due_rise = -(1 << 62)   # … of the last one under the threshold
        self._cands: deque[tuple[int, float, int]] = deque()  # found, awaiting their decision
        self._seen: deque[tuple[int, float, int]] = deque()  # found, not yet seen in order
        self._zi_detect: np.ndarray | None = None
        self._zi_activity: np.ndarray | None = None
        # robust scales: history of block medians, [activity | detection] per channel
        self._hist = np.zeros((self._history, 2 * c))
        self._hist_pos = 0
        self._hist_filled = 0
        # per channel: its >200 Hz σ (µV) before it accepted a wild level (FLAT_RATIO), else inf
        self._ordinary = np.full(c, np.inf)
        self._scale: np.ndarray | None = None
        self._excluded_run = np.zeros(c, dtype=np.int64)
        self._channel_hold = np.zeros(c, dtype=np.int64)  # blocks a channel stays left out
        self._last_wild = np.zeros(c, dtype=bool)  # per channel: wild in the last judged block
        self._hold = 0
        self._recent_artifact = np.zeros(LONG_ARTIFACT_BLOCKS - 1, bool)  # last blocks' flags
        # sustained global artifacts' runs with their hold-off (absolute sample index of each
        # run's end), kept RELOCK_S and a margin for late decisions behind the input's end
        self._glob_ends: deque[int] = deque()
        # threshold state
        self._spk: float | None = None
        self._npk = NOISE_PEAK_START
        self._last_beat: int | None = None
        self._last_recover = 0
        self._rr: deque[int] = deque(maxlen=RR_AVERAGE)
        self._missed: list[tuple[int, float]] = []  # (fiducial, peak) under threshold
        self._learning: list[tuple[int, float]] = []  # (fiducial, peak) before the first threshold
        # per heartbeat then: its detection peak, the largest |input| per channel (µV), fiducial,
        # the largest >200 Hz RMS per channel (µV, see _fast_rms)
        self._learn_sizes: list[tuple[float, np.ndarray, int, np.ndarray]] = []
        # the last candidate then: fiducial, its QRS's size (µV, see _qrs_size), whether its
        # window (or a later lobe's) was blanked
        self._learn_last: tuple[int, float, bool] | None = None
        # per channel: the heartbeat's largest |input| (µV) as learnt with the threshold
        self._learnt_heart: np.ndarray | None = None
        self._late = False  # judging a candidate whose window may already be output
        # candidates seen above the threshold (fiducial): the channels whose P wave was gated
        self._p_gated: dict[int, np.ndarray] = {}
        # templates per beat class and channel
        k, w = MAX_CLASSES, self._window
        self._template = np.zeros((k, c, w))
        self._count = np.zeros((k, c), dtype=np.int64)  # beats learned
        self._residual = np.zeros((k, c))               # typical QRS residual RMS (µV)
        self._rejects = np.zeros((k, c), dtype=np.int64)
        # per class and channel, over the rejected beats in a row: their residuals' mean square
        # over the core and (>GATE_HIGHPASS_HZ) over the window after it, summed (µV²)
        self._reject_core = np.zeros((k, c))
        self._reject_after = np.zeros((k, c))
        # per class, span (core, tail) and channel: log of the courses' typical part of a fit
        self._course = np.zeros((k, 2, c))
        self._course_beats = np.zeros((k, 2, c), dtype=np.int64)
        self._class_beats = np.zeros(k, dtype=np.int64)  # beats assigned to each class
        self._class_last = np.full(k, -1, dtype=np.int64)  # fiducial of its latest beat
        self._class_lag = np.zeros(k)                     # its beats' mean joint lag (samples)
        self._pending: deque[_Beat] = deque()
        # residual covariance across channels (noise-whitened) and beats behind each entry
        self._shape_cache: dict[int, _Shapes] = {}  # per class, until its templates change
        self._boot: dict[int, np.ndarray] = {}  # per class: its first beats (beats, c, window)
        self._cov = np.zeros((c, c))
        self._cov_beats = np.zeros((c, c), dtype=np.int64)
        self._cov_sigma = np.zeros(c)  # whitening scale (µV), over the diagonal's beats
        self._variation = BeatVariation(MAX_CLASSES, c, self._core, VARIATION_BEATS,
                                        VARIATION_COMPONENTS, VARIATION_MIN_BEATS,
                                        VARIATION_CLIP, VARIATION_PROVISIONAL_UNTIL)

    def process(self, x: np.ndarray, railed: np.ndarray | None = None,
                lost: np.ndarray | None = None) -> np.ndarray:
        """Clean the next chunk (n, n_channels) µV; returns (n, n_channels) float64 µV, delayed
        by :attr:`delay` rows (NaN before the first input row). ``railed`` (n, n_channels)
        bool, optional: where the amplifier's raw input sat at its rail — the band-pass before
        this stage hides a rail (a lead-off pinned there reaches it as what the mains canceller
        subtracts: mains, not a flat channel); such blocks count as saturated. ``lost`` (n,
        n_channels) bool, optional: rows of a gap the chain bridged (``dsp.gaps``: filled, no
        measurement); their blocks and the next add nothing to QRS detection on those channels
        (the step back to the signal is no QRS; extra tuning seed 440: an 8 ms gap 0.18 s
        before an R peak was taken for a beat, and the real one fell in its refractory
        period), and a beat whose window holds them is subtracted as any other."""
        if self._finished:
            raise RuntimeError("EcgCanceller: flush() ended the record; call reset() first")
        x64 = np.asarray(x, dtype=np.float64)
        if x64.ndim != 2 or x64.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}) samples, got {x64.shape}")
        for name, rows in (("railed", railed), ("lost", lost)):
            if rows is not None and np.shape(rows) != x64.shape:
                raise ValueError(f"{name} must be {x64.shape}, got {np.shape(rows)}")
        return self._feed(x64, railed, lost)

    def flush(self) -> np.ndarray:
        """End the record: the last ``delay`` cleaned rows (delay, n_channels) µV. Beats near the
        end are judged with zeros as look-ahead, so the last QRS window of channels with ECG, or
        without a learnt beat yet, is reported by :meth:`blank_mask`. A beat whose core ends
        within RECORD_END_MARGIN_S after the last row is subtracted all the same (the zeros
        past the end are no flat channel, nor an artifact); one ending later is left in place.
        Call :meth:`reset` before a new record."""
        if self._finished:
            raise RuntimeError("EcgCanceller: flush() already called; call reset() first")
        n_record = self._n_in
        self._record_end = n_record
        # the last beat may not be judged on zeros: its QRS window stays on the ECG channels
        # (and on those whose ECG is not known yet, as for an unlearnt beat)
        ecg_channels = self._ecg_channels()
        if len(ecg_channels):
            self._blank.append((n_record - self._pre - self._post, n_record, ecg_channels))
        out = self._feed(np.zeros((self.delay + self._block, self.n_channels)))
        self._finished = True
        self.beats = [b for b in self.beats if b < n_record]
        return out[:self.delay]

    def hold_out(self, channel: int, start: int, stop: int) -> None:
        """Keep ``channel`` out of QRS detection in the blocks that begin within [start,
        stop) (indices as :attr:`beats`): an electrode pop's recovery there is slow, strong in
        the detection band and no heartbeat (extra tuning seed 330, 185.55 s: a pop's tail
        read 300–600 σ² on a channel with 49 µV of heart once its >200 Hz hold had ended,
        made a candidate over the threshold 0.18 s before the R peak, and the beat itself,
        within the refractory period after it, was left whole on three channels: 60–140 µV).
        Must be called before the input reaches ``start`` + one block."""
        self._held_out.append((int(start), int(stop), int(channel)))

    def _apply_held_out(self, a: int, included: np.ndarray) -> None:
        """Take the channels held out (see :meth:`hold_out`) out of ``included`` (blocks ×
        channels, the first block beginning at absolute index ``a``); forget the holds that
        ended."""
        if not self._held_out:
            return
        starts = a + np.arange(len(included)) * self._block
        for start, stop, channel in self._held_out:
            included[:, channel] &= (starts < start) | (starts >= stop)
        end = a + len(included) * self._block
        self._held_out = [h for h in self._held_out if h[1] > end]

    def note_steps(self, steps: list[tuple[int, tuple[int, ...]]]) -> None:
        """Pops and common-mode steps found ahead of this canceller (see
        :mod:`ionm_station.dsp.steps`): (index of the span's first sample, as :attr:`beats`;
        its channels). One that begins inside a beat's fitted core (its QRS window, R − PRE_S
        … + CORE_POST_S at that channel's lag; a beat subtracted on some channel) spoils the
        heartbeat's fit on its channel — the fit's free heart time courses take up the step,
        and the misfit lands before the step's own blank (tuning seed 264, 10.29 s: a 1.9 mV
        pop 23 ms after the R peak left a 149 µV "spike" in the 15 ms before it) —, or leaves
        the heartbeat whole there (the step outweighs what the fit takes away) while the
        residual gate spares the block beside the step's >200 Hz onset (tune-ptb-10k,
        197.31 s: a 1 mV pop at R + 29 ms on a channel with 80 µV of heart, a 23 µV "spike"
        at R + 19…+25 ms). So that core is blanked for detection on the step's channels where
        the heartbeat was subtracted or its template reaches UNLEARNED_BLANK_UV p-p; not
        where the core holds EMG (>200 Hz, see :meth:`_emg`) before the step: that is more
        than the misfit (extra tuning seed 223, 134.26 s: a 117 µV burst
        just before an A-train's end was taken for a common-mode step). Each step must be
        noted before the rows of the cores that may hold it are output: within :attr:`delay`
        − :attr:`core_samples` of its first sample's arrival."""
        for first, channels in steps:
            step = (int(first), np.asarray(channels, dtype=np.int64))
            self._steps.append(step)
            for core in self._cores:
                self._blank_stepped_core(core, step)
            for start, stop, open_channels in self._unlearnt_open:
                self._blank_stepped_unlearnt(start, stop, open_channels, step)

    @property
    def core_samples(self) -> int:
        """Length of a beat's fitted core (samples): its QRS window, PRE_S + CORE_POST_S."""
        return self._core

    @property
    def converged(self) -> np.ndarray:
        """Per channel: True once the dominant beat's template has learnt ``bootstrap_beats``
        beats."""
        return self._count[self._primary()] >= self.bootstrap_beats

    def _ecg_channels(self) -> np.ndarray:
        """Channels whose QRS may read as EMG when it is not subtracted: the dominant beat's
        template exceeds UNLEARNED_BLANK_UV p-p there, or is not learnt yet."""
        k = self._primary()
        return np.flatnonzero((self._count[k] == 0)
                              | (np.ptp(self._template[k], axis=1) >= UNLEARNED_BLANK_UV))

    def _primary(self) -> int:
        """The beat class with the most beats (the dominant rhythm)."""
        return int(np.argmax(self._class_beats))

    # --- streaming ----------------------------------------------------------------------------

    def _feed(self, x: np.ndarray, railed: np.ndarray | None = None,
              lost: np.ndarray | None = None) -> np.ndarray:
        n = len(x)
        self._x.append(x)
        for given, rows in ((self._railed_in, railed), (self._lost_in, lost)):
            if rows is None:
                given.pad(n)
            else:
                given.append(rows)
        self._n_in += n
        while self._x.stop - self._end >= self._block:
            blocks = min((self._x.stop - self._end) // self._block, self._batch_blocks)
            self._advance(blocks)
        first = self._n_in - n - self.delay
        out = np.empty((n, self.n_channels))
        a = max(first, 0)
        b = self._n_in - self.delay
        # a core beginning from here on is of a beat accepted later, a step noted later begins
        # after the rows output so far: neither pairs with what ended before
        self._steps = [s for s in self._steps if s[0] >= b - self._window]
        while self._unlearnt_open and self._unlearnt_open[0][1] < b - self._window:
            self._unlearnt_open.popleft()
        while self._cores and self._cores[0][0].max() + self._core < b - self._window:
            self._cores.popleft()
        out[:max(0, min(n, a - first))] = np.nan
        if b > a:
            np.subtract(self._x.view(a, b), self._sub.view(a, b), out=out[a - first:])
        self._trim(max(b, 0))
        return out

    def _trim(self, emitted: int) -> None:
        keep = min(emitted, self._end - self._window - 2 * self._lag_max - 2 * self._look)
        if self._learning:  # candidates awaiting the first threshold still need their data
            keep = min(keep, self._learning[0][0] - self._window - 2 * self._lag_max)
        self._x.drop_before(keep)
        self._sub.drop_before(keep)
        self._flags.drop_before(keep // self._block - 1)
        self._glob.drop_before(keep // self._block - 1)
        self._noise.drop_before(keep // self._block - 1)
        # candidates look back at most this far from the next one to test
        self._det.drop_before(self._next_candidate - self._peak_half - self._smooth)
        if self._det_learning is not None:  # (and the learnt ones are read again)
            # from the earliest candidate not yet decided or learnt, wherever a chunk ends
            first = min([self._next_candidate] + [j for j, _, _ in list(self._cands)[:1]]
                        + [f // self._dec for f, _ in self._learning[:1]])
            self._det_learning.drop_before(first - 2 * (self._centroid + 1) - self._smooth)

    def _advance(self, n_blocks: int) -> None:
        """Filter and judge ``n_blocks`` complete blocks, then run every decision now due."""
        bl, dec, c = self._block, self._dec, self.n_channels
        a, b = self._end, self._end + n_blocks * bl
        raw = self._x.view(a, b)
        # per-block peaks only when the whole batch holds a NaN or a sample near the rail
        top = max(raw.max(), -raw.min())  # NaN if any sample is NaN
        limit = math.inf if self.rail_uv is None else RAIL_FRACTION * self.rail_uv
        if top < limit:
            gap = np.zeros(n_blocks, dtype=bool)
            railed = np.zeros((n_blocks, c), dtype=bool)
        else:
            blocks3 = raw.reshape(n_blocks, bl, c)
            peak = np.maximum(blocks3.max(axis=1), -blocks3.min(axis=1))  # NaN where one is
            gap = ~np.isfinite(peak).all(axis=1)
            railed = peak >= limit if self.rail_uv is not None else np.zeros((n_blocks, c), bool)
        given = self._railed_in.view(a, b)
        if given.any():
            railed = railed | given.reshape(n_blocks, bl, c).any(axis=1)
        self._railed_in.drop_before(b)
        bridged = self._lost_in.view(a, b).reshape(n_blocks, bl, c).any(axis=1)
        self._lost_in.drop_before(b)
        clean = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0) if gap.any() else raw
        # detection path: block means over `dec` samples (nulls at multiples of the decimated
        # rate protect the 5–40 Hz band from aliasing), then the band-pass at the low rate
        low = clean.reshape(-1, dec, c).sum(axis=1) / dec if dec > 1 else clean
        if self._zi_detect is None:
            self._zi_detect = signal.sosfilt_zi(self._sos_detect)[:, :, None] * low[0]
            self._zi_activity = self._zi_unit_activity[:, None] * clean[0]
        # the sections one by one with lfilter: the same recursion, less per-call overhead
        detect = low
        for k, section in enumerate(self._sos_detect):
            detect, self._zi_detect[k] = signal.lfilter(section[:3], section[3:], detect,
                                                        axis=0, zi=self._zi_detect[k])
        # one biquad: lfilter is the same recursion with less overhead than sosfilt
        activity, self._zi_activity = signal.lfilter(*self._ba_activity, clean, axis=0,
                                                     zi=self._zi_activity)
        detect = detect.reshape(n_blocks, bl // dec, c)
        activity = activity.reshape(n_blocks, bl, c)
        stats = np.empty((n_blocks, 2 * c))
        np.sqrt(np.einsum("kbc,kbc->kc", activity, activity) / bl, out=stats[:, :c])
        stats[:, c:] = _median_axis1(np.abs(detect))
        sigma = np.ones((n_blocks, c))
        noise = np.ones((n_blocks, c))
        wild = np.zeros((n_blocks, c), dtype=bool)
        dead = np.ones((n_blocks, c), dtype=bool)
        k = 0
        while k < n_blocks and self._scale is None:  # leading gap blocks before any scale
            if not self._start_scale(stats[k], gap[k], railed[k]):
                k += 1
        first = k  # blocks before it were judged before any scale existed
        while k < n_blocks:  # groups of blocks sharing one scale (cut at scale updates)
            index = a // bl + k
            m = min(n_blocks - k, SCALE_EVERY_BLOCKS - index % SCALE_EVERY_BLOCKS)
            part = slice(k, k + m)
            noise[part], sigma[part], wild[part], dead[part] = self._judge_scales(
                index, stats[part], gap[part], railed[part])
            k += m
        flags = (wild * _WILD | dead * _DEAD).astype(np.int8)
        included = np.zeros((n_blocks, c), dtype=bool)
        glob = np.ones(n_blocks, dtype=bool)
        held = np.zeros(n_blocks, dtype=bool)
        if first < n_blocks:
            extreme = stats[first:, :c] > GLOBAL_RATIO * noise[first:]
            included[first:], glob[first:], held[first:] = self._judge_holds(
                wild[first:], dead[first:], gap[first:], extreme)
        # a bridged gap's blocks and the next add nothing to QRS detection (the step back from
        # the fill to the signal is no QRS); a beat whose window holds one is subtracted
        filled = bridged | np.concatenate((self._last_bridged[None], bridged[:-1]))
        self._last_bridged = bridged[-1].copy()
        included &= ~glob[:, None] & ~filled  # (on the channels that lost them)
        self._apply_held_out(a, included)
        z = detect / sigma[:, None, :]
        energy = np.minimum(z * z, ENERGY_CAP) * included[:, None, :]
        det_rows = energy.sum(axis=2) / np.maximum(included.sum(axis=1), 1)[:, None]
        self._det.append(det_rows.reshape(-1, 1))
        if self._det_learning is not None:
            self._det_learning.append(np.where(included[:, None, :], detect * detect,
                                               np.nan).reshape(-1, c))
        self._flags.append(flags)
        self._glob.append(glob[:, None])
        self._note_glob_ends(a, held)  # (held blocks are global ones)
        self._noise.append(noise)
        self._end = b
        self._sub.pad(b + self._window + self._lag_max - self._sub.stop)
        self._run_events()
        self._judge_unlearnt_tails()

    def _note_glob_ends(self, a: int, held: np.ndarray) -> None:
        """Note where each run of ``held`` blocks (from absolute index ``a``: a sustained
        global artifact and its hold-off) ends — a run going on into the next input also
        where this input ends, which changes no answer of :meth:`_relocking` (its true end
        comes later, still before any beat's window) — and forget those too old to matter to
        a beat still to be decided."""
        ends = np.flatnonzero(held & ~np.append(held[1:], False))
        self._glob_ends.extend((a + (ends + 1) * self._block).tolist())
        horizon = a + len(held) * self._block - round((RELOCK_S + GLOB_ENDS_KEPT_S)
                                                      * self.sample_rate_hz)
        while self._glob_ends and self._glob_ends[0] < horizon:
            self._glob_ends.popleft()

    def _relocking(self, fid: int) -> bool:
        """Whether a beat's window (fiducial ``fid``) starts within RELOCK_S after the end of a
        sustained global artifact's hold-off. (Ends up to the core's end are counted too: a
        beat with one inside its window is never accepted.)"""
        start = fid - self._pre
        reach = round(RELOCK_S * self.sample_rate_hz)
        return any(start - reach <= end <= fid + self._core_post for end in self._glob_ends)

    def _start_scale(self, stats: np.ndarray, gap: bool, railed: np.ndarray) -> bool:
        """Start the robust scales from the first block without a gap or most channels at the
        rail (a chain started in cautery); False on such a block."""
        if gap or railed.sum() > GLOBAL_FRACTION * self.n_channels:
            return False
        self._hist[:] = stats
        self._scale = self._scales(self._hist)
        self._scale_log.append((-1, self._scale[self.n_channels:]))
        return True

    def _judge_scales(self, index: int, stats: np.ndarray, gap: np.ndarray, railed: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Judge m consecutive blocks starting at block ``index`` that share one scale, and
        update the scales from them.

        ``stats`` (m, 2·channels) holds per block the >200 Hz RMS then the detection-band
        median |x| (µV). Returns the >200 Hz σ and detection-band σ (µV) in force (each
        (channels,)), and per block and channel whether it is wild and whether it is dead.
        A block where most channels read flat at once queues a restart of the threshold
        learning (see :meth:`_run_events`).
        """
        c, m = self.n_channels, len(stats)
        steps = np.arange(m)[:, None]
        act_sigma, det_sigma = self._scale[:c], self._scale[c:]
        act = stats[:, :c]
        wild = act > WILD_RATIO * act_sigma
        dead = act < FLAT_RATIO * np.minimum(act_sigma, self._ordinary)
        dead |= railed
        if gap.any():
            dead |= gap[:, None]
        bad = wild | dead
        if bad.any():
            # run of excluded blocks per channel, up to and including each block
            last_good = np.maximum.accumulate(np.where(bad, -1, steps), axis=0)
            run = np.where(last_good >= 0, steps - last_good, self._excluded_run + steps + 1)
            self._excluded_run = run[-1]
            # a long-wild channel accepts its new level; a flat one never does (lead-off ends)
            accepted = (run > self._relearn_blocks) & ~dead
            push = ~bad | accepted
            # (not a level no signal gave: a channel connected after the start)
            first = (accepted.any(axis=0) & np.isinf(self._ordinary)
                     & (act_sigma >= FIRST_FILL_FLAT_UV))
            self._ordinary[first] = act_sigma[first]
            # … except in the history's first fill: the scales start from a single block (the
            # mains canceller's not yet converged: its >200 Hz harmonics held one channel's σ
            # at 22 µV against 2 µV of noise, so it read flat — out of QRS detection, never
            # learnt — for 8 s: tuning seed 233, a whole 144 µV beat and 10 residuals); never
            # a flat one (a lead off from the start would become the channel's level)
            push |= ((self._hist_filled + steps < self._history) & ~railed
                     & (act >= FIRST_FILL_FLAT_UV))
            # … nor when most channels read flat at once: no lead-off, but scales learnt from
            # an artifact (a chain started in cautery that did not rail: every channel read
            # flat after it, for good, and each heartbeat was reported on 6 channels)
            level = ~railed & (act >= FIRST_FILL_FLAT_UV)
            n_level = level.sum(axis=1)
            relearn = (((dead & level).sum(axis=1) > GLOBAL_FRACTION * n_level)
                       & (n_level > GLOBAL_FRACTION * c) & ~gap)
            push |= level & relearn[:, None]
            if relearn.any():  # the threshold learning restarts there (see _run_events)
                self._restarts.append((index + int(np.flatnonzero(relearn)[-1]) + 1)
                                      * self._block)
            if gap.any():
                push &= ~gap[:, None]
        else:
            self._excluded_run = np.zeros(c, dtype=np.int64)
            push = None
        pos = self._hist_pos
        if pos + m <= self._history:
            rows = slice(pos, pos + m)
        else:
            rows = (pos + np.arange(m)) % self._history
        if push is None:
            self._hist[rows] = stats
        else:
            self._hist[rows] = np.where(np.concatenate((push, push), axis=1), stats,
                                        self._hist[rows])
        self._hist_pos = (pos + m) % self._history
        self._hist_filled += m
        if (index + m) % SCALE_EVERY_BLOCKS == 0:
            if self._hist_filled < self._history:  # start-up: filled rows only
                new = self._scales(self._hist[:self._hist_filled])
            else:
                new = self._scales(self._hist)
            # the detection-band scale holds some ECG: smooth it so beats in or out of the
            # history do not make it jump
            ratio = new[c:] / self._scale[c:]
            smooth = (ratio > 0.5) & (ratio < 2.0)
            new[c:][smooth] = self._scale[c:][smooth] * ratio[smooth] ** SCALE_SMOOTHING
            self._scale = new
            self._scale_log.append((index + m, new[c:]))
            back = (new[:c] <= 2.0 * self._ordinary) & (self._excluded_run == 0)
            self._ordinary[back] = np.inf
        return act_sigma, det_sigma, wild, dead

    def _restart_learning(self, at: int) -> None:
        """The scales were learnt again up to absolute index ``at`` (see :meth:`_judge_scales`);
        while the threshold is still learnt, the candidates before it were read on scales of
        an artifact (the step at its end among them: seed 650 started in cautery learnt a
        threshold 8 × the heartbeat's from it and found no beat for 7 s). They are forgotten
        (still blanked as candidates), and detection is blanked from the rows not yet output
        when that block was judged until a candidate is judged on the new scales, for
        SETTLE_MAX_S at most, as at the start (``_resettle``)."""
        if self._spk is not None:
            return
        self._relearnt_to = max(self._relearnt_to, at)
        lo = at - self.delay
        if self._resettle is not None and self._resettle[1] is None:
            # still blanking since scales learnt again before: from there, not from this
            # block's rows (a recovery tail learns them again block after block, and the rows
            # between had not reached the detector: a chain started 0.3 s into cautery
            # reported the first heartbeat after it, 229 µV, tune-mitdb-5k at 87.50 s)
            lo = min(lo, self._resettle[0])
        self._resettle = (lo, None)
        self._settle_by = at + self._settle_max
        self._learning = [c for c in self._learning if c[0] >= at]
        self._learn_sizes = [s for s in self._learn_sizes if s[2] >= at]

    def _judge_holds(self, wild: np.ndarray, dead: np.ndarray, gap: np.ndarray,
                     extreme: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hold-offs over consecutive judged blocks: per block and channel whether it is
        included in detection, and per block whether it is a global artifact (``extreme``:
        per block and channel, >200 Hz RMS beyond GLOBAL_RATIO σ) and whether a sustained
        one's hold-off is in force there (it and its hold-off end together)."""
        m, c = wild.shape
        bad = wild | dead
        # hold-offs: a channel stays out after it was wild or flat, all after a global artifact
        live = c - dead.sum(axis=1)
        artifact = gap | (live == 0) | (extreme.sum(axis=1) > GLOBAL_FRACTION * live)
        # Only a sustained global artifact (cautery: ≥ LONG_ARTIFACT_BLOCKS in a row) holds
        # detection off afterwards (filter ringing); a brief one (a stimulus artifact, a few ms)
        # blanks its own blocks and the next, so a beat right after a stimulus is not lost.
        # blocks still to hold after each block: the latest set value minus the blocks since
        n_long = LONG_ARTIFACT_BLOCKS
        flags_run = np.concatenate((self._recent_artifact, artifact))
        if not flags_run.any() and self._hold <= 0:
            glob = held = np.zeros(m, dtype=bool)
            self._hold = 0
        else:
            k = np.arange(m)
            sustained = np.all([flags_run[i:i + m] for i in range(n_long)], axis=0)
            after = np.maximum.reduce((
                np.maximum.accumulate(np.where(sustained, self._hold_blocks + k, k)) - k,
                self._hold - (k + 1), np.zeros(m, np.int64)))
            held = np.concatenate(([self._hold], after[:-1])) > 0
            glob = artifact | flags_run[n_long - 2:n_long - 2 + m] | held
            self._hold = int(after[-1])
        self._recent_artifact = flags_run[-(n_long - 1):]
        last_wild = wild[-1].copy()
        if not bad.any() and not self._channel_hold.any():
            included = np.ones((m, c), dtype=bool)
        else:
            steps = np.arange(m)[:, None]
            # the long hold follows a step (flat, a gap, an amplifier pinned at the rail, a
            # lead coming off); a block at the rail and wild on a channel already wild in the
            # block before is broadband noise clipped by it (cautery), which rings no longer
            # than the same noise below the rail
            clipped = wild & np.concatenate((self._last_wild[None, :], wild[:-1]))
            lasting = dead & (~clipped | gap[:, None])
            ch_set = np.maximum(lasting * self._dead_hold_blocks, bad * self._hold_blocks) + steps
            ch_after = np.maximum.reduce((np.maximum.accumulate(ch_set, axis=0) - steps,
                                          self._channel_hold - (steps + 1),
                                          np.zeros((m, c), np.int64)))
            included = ~bad & (np.concatenate((self._channel_hold[None, :], ch_after[:-1])) == 0)
            self._channel_hold = ch_after[-1]
        self._last_wild = last_wild
        return included, glob, held

    def _scales(self, hist: np.ndarray) -> np.ndarray:
        """Robust scales from block history: >200 Hz σ = median block RMS, detection-band
        σ = median |x| / 0.6745 (both µV, floored)."""
        med = np.median(hist, axis=0)
        med[self.n_channels:] /= MAD_TO_SIGMA
        return np.maximum(med, SCALE_FLOOR_UV)

    # --- decisions ----------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[int, float, int]]:
        """New candidates whose look-ahead is complete: (decimated index of the peak, peak,
        fiducial as an absolute index)."""
        s, w = self._smooth, self._peak_half
        j0, j1 = self._next_candidate, self._end // self._dec - s - w  # test j in [j0, j1)
        if j1 <= j0:
            return []
        self._next_candidate = j1
        d = self._det.view(j0 - w - s, j1 + w + s)[:, 0]
        smooth = np.convolve(d, np.full(2 * s + 1, 1.0 / (2 * s + 1)), mode="valid")
        # smooth[i] belongs to decimated index j0 - w + i
        windows = sliding_window_view(smooth, w)
        before = windows[:-w - 1].max(axis=1)   # indices j-w .. j-1
        after = windows[w + 1:].max(axis=1)     # indices j+1 .. j+w
        centre = smooth[w:-w]
        hit = np.flatnonzero((centre > before) & (centre >= after) & (centre >= MIN_CANDIDATE))
        a = self._centroid
        found = []
        for i in hit:
            part = smooth[w + i - a:w + i + a + 1]
            weight = np.maximum(part - 0.5 * centre[i], 0.0)
            offset = float(np.dot(weight, np.arange(-a, a + 1)) / weight.sum())
            found.append((j0 + int(i), float(centre[i]), (j0 + int(i)) * self._dec
                          + round(offset * self._dec)))
        return found

    def _smoothed_since(self, j: int) -> tuple[int, np.ndarray]:
        """The smoothed detection signal from decimated index ``j`` − 1 to the last one known
        (the input's end less a smoothing half-length): (its first index, values)."""
        s = self._smooth
        r1 = self._end // self._dec - s
        d = self._det.view(min(j - 1, r1) - s, r1 + s)[:, 0]
        return j - 1, np.convolve(d, np.full(2 * s + 1, 1.0 / (2 * s + 1)), mode="valid")

    def _first_rise(self, first: int, smooth: np.ndarray) -> tuple[int, bool] | None:
        """The first decimated index from :attr:`_next_rise` on where ``smooth`` (the smoothed
        detection signal from index ``first``) rises through the QRS threshold in force, or
        through P_WAVE_DUE_RISE_FRACTION of it where a beat is due (P_WAVE_DUE_RR), and
        whether it reached the threshold there (None: none, or no threshold yet). A QRS
        rises through it ~10–20 ms before its R peak and is known a smoothing half-length
        later — ~60 ms before it is found as a candidate, whose peak needs PEAK_HALF_WINDOW_S
        of look-ahead. While the threshold is learnt: LEARN_RISE_FRACTION × the largest
        heartbeat's detection peak so far (none before the first)."""
        if self._spk is not None:
            threshold = self._npk + THRESHOLD_FRACTION * (self._spk - self._npk)
        elif self._learn_sizes:
            threshold = LEARN_RISE_FRACTION * self._learnt_top()
        else:
            return None
        part = smooth[self._next_rise - 1 - first:]
        up = (part[:-1] < threshold) & (part[1:] >= threshold)
        if self._spk is not None:
            low = P_WAVE_DUE_RISE_FRACTION * threshold
            due = self._due((self._next_rise + np.arange(len(up))) * self._dec)
            up |= due & (part[:-1] < low) & (part[1:] >= low)
        up = np.flatnonzero(up)
        if not len(up):
            return None
        return self._next_rise + int(up[0]), bool(part[up[0] + 1] >= threshold)

    def _due(self, at: int | np.ndarray) -> bool | np.ndarray:
        """Whether a beat is due at absolute index ``at`` (or each of them): P_WAVE_DUE_RR mean
        RR intervals or more after the last beat (never before a beat and an interval)."""
        if self._last_beat is None or not self._rr:
            return np.zeros(np.shape(at), dtype=bool) if np.ndim(at) else False
        return at - self._last_beat >= P_WAVE_DUE_RR * np.mean(self._rr)

    def _run_events(self) -> None:
        """Decide candidates, apply template updates and end a threshold learning that no
        candidate ended, in absolute-time order. A candidate is decided once the core of its
        window (lag search included) has arrived."""
        cands, seen = self._cands, self._seen
        found = self._candidates()
        cands.extend(found)
        seen.extend(found)
        first, smooth = self._smoothed_since(self._next_rise)
        known = first + len(smooth)  # rises are tested below this decimated index
        while True:
            due = self._pending[0].due if self._pending else math.inf
            due = due if due <= self._end else math.inf
            t_decide = cands[0][0] * self._dec + self._look if cands else math.inf
            t_decide = t_decide if t_decide <= self._end else math.inf
            t_seen = seen[0][0] * self._dec + self._seen_lag if seen else math.inf  # ≤ _end
            # no candidate came LEARN_S after the first (no visible ECG): learning ends by time,
            # so its candidates do not hold the input buffer forever
            timeout = (self._learning[0][0] + self._learn_s + self._look
                       if self._learning else math.inf)
            # a rise is known a smoothing half-length after it, and tested against the
            # threshold in force then (before the next event that may change it)
            t_next = min(t_seen, timeout if timeout <= self._end else math.inf, t_decide, due)
            rise = self._first_rise(first, smooth)
            j, full = rise if rise is not None else (None, True)
            t_rise = (j + self._smooth + 1) * self._dec if j is not None else math.inf
            # scales learnt again in a block: before every event later than the block's start
            # (in blocks fed one by one, those are run after the block is judged)
            if self._restarts and self._restarts[0] - self._block < min(t_next, t_rise):
                self._restart_learning(self._restarts.popleft())
                continue
            if j is not None and t_rise <= t_next:
                self._next_rise = j + 1
                last = self._last_rise if full else self._last_due_rise
                if j * self._dec - last >= self._refractory:
                    if full:
                        self._last_rise = j * self._dec
                    else:  # (the same QRS rising on through the threshold still gates)
                        self._last_due_rise = j * self._dec
                    if self._spk is None:  # (the heartbeat: as the largest one so far)
                        self._seen_while_learning((j + self._smooth + 1) * self._dec, j * self._dec,
                                                  self._learnt_top())
                    else:
                        self._gate_p_wave((j + self._smooth + 1) * self._dec, j * self._dec,
                                          math.inf, record=False)
                continue
            self._next_rise = max(self._next_rise, min(
                known, known if t_next == math.inf else t_next // self._dec - self._smooth))
            if seen and t_seen <= min(timeout, t_decide, due):
                _, peak, fid = seen.popleft()
                if self._spk is None:
                    self._seen_while_learning(t_seen, fid, peak)
                else:
                    self._gate_p_wave(t_seen, fid, peak)
            elif timeout <= self._end and timeout < t_decide and timeout < due:
                self._end_learning(None)
            elif t_decide < due:
                _, peak, fid = cands.popleft()
                self._decide(fid, peak)
            elif due < math.inf:
                self._learn(self._pending.popleft())
            else:
                return

    def _seen_while_learning(self, t_seen: int, fid: int, peak: float) -> None:
        """A candidate (fiducial ``fid``, absolute index; detection peak ``peak``) has just been
        found (at ``t_seen``, the input's end): while the threshold is being learnt, blank for
        detection what lies before its window and is not output yet — from ~170 ms before the
        fiducial (R − 140 ms) — on the live channels whose heartbeat (as in
        :meth:`_blank_unlearnt`) peaks at :data:`P_WAVE_GATE_UV` or more (before a heartbeat
        is known, as this candidate's own QRS: a 17 µV P wave before the first beat,
        tune-ptb-10k, 0.51 s). Nothing is
        subtracted before the threshold is known (~2 s): the window blanked when the candidate
        is decided starts 100 ms before the fiducial, and the P wave's fast part before it read
        as spikes (MIT-BIH 100: 14–17 µV at R − 108…−122 ms on the channels with 150–400 µV of
        ECG). Later the P wave is left in place too (outside the template window) and gated
        by :meth:`_gate_p_wave`. As that gate, this one hides only what reads to the detector
        no larger than :data:`P_WAVE_GATE_RATIO` × the heartbeat: tested against twice the
        heartbeat, a 253 µV B-train 140 ms before a beat on a channel with ~150 µV of ECG was
        blanked whole and missed (simulator, holdout-5k, 1.19 s).

        Also called (``fid`` the rise's index) as soon as the QRS rises through
        LEARN_RISE_FRACTION × the largest heartbeat so far (see :meth:`_first_rise`): the rows
        from ~R − 205 ms are not output yet then (P waves at R − 146 ms read as 10–13 µV
        spikes while the threshold was learnt, tuning seed 210)."""
        start = max(self._gate_from(t_seen), self._x.start)
        stop = fid - self._pre
        if stop - start < self._gate_envelope:
            return
        heart = self._heart_size(peak)
        if heart is None:  # the first heartbeat: its own QRS (arrived) stands for it
            heart = self._peak_between(stop, min(t_seen, fid + self._core_post))
        live = (self._flags_between(start, stop) & _DEAD) == 0
        channels = np.flatnonzero(live & (heart >= P_WAVE_GATE_UV))
        if not len(channels):
            return
        lo = max(start - self._p_lookback, self._x.start)
        self._blank_slow(lo, start, stop, self._x.view(lo, stop)[:, channels].T, channels,
                         heart[channels])

    def _gate_p_wave(self, t_seen: int, fid: int, peak: float, record: bool = True) -> None:
        """A candidate (fiducial ``fid``, absolute index; detection peak ``peak``) has just been
        found (at ``t_seen``, the input's end) once the threshold is known: blank for detection
        what lies before its window and is not output yet — from ~170 ms before the fiducial
        (R − 140 ms) — on the channels whose dominant template peaks at
        :data:`P_WAVE_GATED_UV` or more, where the output there (input minus what earlier
        beats' fits subtract) reads to the detector (40 Hz high-pass, 2 ms RMS) no larger than
        :data:`P_WAVE_GATE_RATIO` × that template's peak: the P wave's fast part. Only for a
        candidate at or above the threshold, or under it once a beat is due
        (:data:`P_WAVE_DUE_RR`), and past the refractory period (a beat to come), on channels
        live there; when the beat is accepted the blank goes on
        :data:`P_WAVE_INTO_WINDOW_S` into its window on the channels its fit is subtracted from.

        Gated, not subtracted: the P wave (R − 120…−200 ms) lies before the template window,
        and when a beat is accepted (its core has arrived) only the rows from the window's start
        less the lag search (fiducial − 117 ms, R − ~90 ms) are sure not to be output whatever
        the chunking; its fast part read as 11–20 µV spikes at R − 119…−133 ms on the channels
        with 100–400 µV of ECG (tune-mitdb-10k, tune-ptb-10k-b, tune-mitdb-5k-b), out of reach
        of a per-class P template within the 250 ms delay. The gate is decided when the
        candidate is found, ~60 ms earlier, from the output itself: it hides only what is no
        larger than a P wave can be beside that channel's QRS, so EMG clearly bigger than the
        heart there stays visible, and a previous beat's T wave (RR ≈ 400 ms) is judged after
        that beat's fit was subtracted, never subtracted again.

        Also called (``record`` False, ``peak`` infinite, ``fid`` the rise's index) as soon as
        the QRS rises through the threshold (see :meth:`_first_rise`), ~60 ms before the
        candidate is found: the rows from ~R − 205 ms are not output yet then (a P wave
        starting before R − 150 ms read as 8–14 µV spikes, tuning seed 210). Not on channels
        where the stretch holds >200 Hz content (see :meth:`_fast`): a 60 µV MUAP is smaller
        than 0.1 × a big heartbeat, and was hidden."""
        threshold = self._npk + THRESHOLD_FRACTION * (self._spk - self._npk)
        last = self._last_beat
        if last is not None and fid - last < self._refractory:
            return
        if peak < threshold and not self._due(fid):
            return
        gated = self._p_gate(self._gate_from(t_seen), fid)
        if len(gated) and record:
            self._p_gated[fid] = gated

    def _p_gate(self, start: int, fid: int) -> np.ndarray:
        """The P-wave gate of :meth:`_gate_p_wave` over rows [``start``, the window of a beat
        at fiducial ``fid``): returns the channels blanked. What follows within a block is
        judged too, where it has arrived: a blank ending in the first milliseconds of a MUAP
        makes the detector drop it as the blanked artifact's lead-in (extra tuning seed 457,
        72.28 s: a 117 µV spike 4 ms before the end of a blank decided as the QRS rose, ~60 ms
        before the candidate, where only its onset lay in the stretch judged)."""
        start = max(start, self._x.start, self._sub.start)
        stop = fid - self._pre
        if stop - start < self._gate_envelope:
            return np.zeros(0, dtype=np.int64)
        k = self._primary()
        heart = np.abs(self._template[k]).max(axis=1)
        converged = self._count[k] >= self.bootstrap_beats
        if self._learnt_heart is not None:  # until a template converges: the heartbeat as learnt
            heart = np.where(converged, heart, self._learnt_heart)
        known = converged | (self._learnt_heart is not None)
        live = (self._flags_between(start, stop) & _DEAD) == 0
        channels = np.flatnonzero(live & known & (heart >= P_WAVE_GATED_UV))
        if not len(channels):
            return channels
        lo = max(start - self._p_lookback, self._x.start, self._sub.start)
        ahead = min(stop + self._block, self._x.stop, self._sub.stop)
        out = (self._x.view(lo, ahead) - self._sub.view(lo, ahead))[:, channels].T
        return self._blank_slow(lo, start, stop, out, channels, heart[channels])

    def _blank_slow(self, lo: int, start: int, stop: int, out: np.ndarray,
                    channels: np.ndarray, heart: np.ndarray) -> np.ndarray:
        """Blank rows [start, stop) for detection on those of ``channels`` where ``out``
        (channels × samples µV, what the output holds from :data:`P_WAVE_LOOKBACK_S` before
        them, ``lo``, to ``stop`` or past it) reads to the detector no larger
        than :data:`P_WAVE_GATE_RATIO` × ``heart`` (per channel, µV) and holds no >200 Hz
        content (see :meth:`_fast`): a P wave, not EMG. Returns those channels (none where
        ``out`` is not all finite). From a noted step on (see :meth:`note_steps`) a channel's
        ``out`` is judged as held at its last value before it: the step's edge is no EMG, and
        its span is blanked (extra tuning seeds 900 at 60.50 s, 864 at 200.63 s: common-mode
        steps 113 and 97 ms before an R peak refused the gate, and the P wave before them
        read as 14–17 µV at R − 138 and −124 ms)."""
        if not np.isfinite(out).all():
            return channels[:0]
        out = self._held_at_steps(lo, out, channels)
        small = self._envelope(out).max(axis=1) <= P_WAVE_GATE_RATIO * heart
        channels = channels[small & ~self._fast(out, lo, channels)]
        if len(channels):
            self._blank.append((start, stop, channels))
        return channels

    def _held_at_steps(self, start: int, x: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """``x`` (``channels`` × samples µV from absolute row ``start``) with each channel held
        at its last value from the first sample of a noted step on it that begins inside
        ``x`` (a copy where any does)."""
        held = x
        for first, on in self._steps:
            i = first - start
            rows = np.flatnonzero(np.isin(channels, on))
            if 0 < i < x.shape[1] and len(rows):
                if held is x:
                    held = x.copy()
                held[rows, i:] = held[rows, i - 1:i]
        return held

    def _fast(self, x: np.ndarray, start: int, channels: np.ndarray) -> np.ndarray:
        """Per row of ``x`` (``channels`` × samples µV from absolute row ``start``): whether
        it holds more than a P wave can — a >200 Hz RMS over GATE_ENVELOPE_S above
        P_WAVE_FAST_SIGMA × that channel's >200 Hz noise. A P wave is slow; a MUAP is not."""
        high = self._hf(x)
        m = min(self._gate_envelope, x.shape[1])
        sigma = self._hf_noise(start, channels)
        return _moving_power(high, m).max(axis=1) > m * (P_WAVE_FAST_SIGMA * sigma) ** 2

    def _hf_noise(self, start: int, channels: np.ndarray) -> np.ndarray:
        """The >200 Hz noise σ (µV) of ``channels`` in the block of absolute row ``start`` (the
        nearest one kept)."""
        b = min(max(start // self._block, self._noise.start), self._noise.stop - 1)
        return self._noise.view(b, b + 1)[0, channels]

    def _p_quiet(self, residual: np.ndarray, until: np.ndarray, open_end: np.ndarray,
                 heart: np.ndarray, emg: np.ndarray, young: bool) -> np.ndarray:
        """Per channel: whether what the output holds over its window's first ``until``
        samples — and the block after them where ``open_end``, the blank ending into output
        (not into the residual gate's blank) — (``residual``, channels × core µV) is no larger
        than a P wave — to the detector (40 Hz high-pass, 2 ms RMS, each channel over its own
        stretch only) at most P_WAVE_GATE_RATIO × ``heart`` (µV), or ``young`` — and holds no
        ``emg`` block (channels × blocks). (The block after: a blank ending in a MUAP's first
        milliseconds makes the detector drop it — extra tuning seed 426, 223.90 s, a 93 µV
        spike at R − 52 ms, 4 ms of it in the stretch judged.)"""
        small = np.full(len(until), young)
        reach = np.where(open_end, np.minimum(until + self._block, residual.shape[1]), until)
        for u in np.unique(reach).tolist():
            rows = reach == u
            small[rows] |= (self._envelope(residual[rows, :u]).max(axis=1)
                            <= P_WAVE_GATE_RATIO * heart[rows])
        blocks = np.arange(emg.shape[1]) * self._block < reach[:, None]
        return small & ~(emg & blocks).any(axis=1)

    def _fast_at_all(self, x: np.ndarray, start: int, ch: int) -> bool:
        """Whether ``x`` (1 × samples µV of channel ``ch`` from absolute row ``start``) holds
        any >200 Hz content beyond noise: a 2 ms RMS of it as in :meth:`_fast`, or its RMS over
        all of ``x`` above :data:`P_WAVE_BRIDGE_HF_RATIO` × the channel's >200 Hz noise."""
        channels = np.array([ch])
        if self._fast(x, start, channels)[0]:
            return True
        high = self._hf(x)
        sigma = float(self._hf_noise(start, channels)[0])
        return float(np.mean(high * high)) > (P_WAVE_BRIDGE_HF_RATIO * sigma) ** 2

    def _gate_from(self, t: int) -> int:
        """The first row a P-wave gate may blank once the input up to ``t`` has arrived: the
        first one not output yet, were the delay not longer by CONFIRM_REACH_S's and
        CONFIRM_LATE_S's extensions. (Rows up to the first extension earlier made the gate
        reach ~R − 230 ms, and the blank of a beat whose QRS was blanked too grew past
        BRIDGE_BLANK_MAX_S: the detector then takes what rises right after it for an
        artifact's tail — an 82 µV spike at R + 111 ms was lost, tune-mitdb-10k 146.55 s.)"""
        return self._first_unsent(t) + self._confirm_early + self._confirm_late

    def _first_unsent(self, t: int) -> int:
        """The first row (absolute index, or relative to a common origin) sure not to be
        output yet, whatever the chunking, once the input up to ``t`` has arrived: the output
        lags the input by :attr:`delay`, and a chunk may end up to a block less one row later."""
        return t + self._block - 1 - self.delay

    def _peak_between(self, a: int, b: int) -> np.ndarray:
        """Per channel: the largest |input| (µV) over rows [a, b) (0 where none is there)."""
        return np.nanmax(np.abs(np.nan_to_num(self._x.window(a, b), nan=0.0)), axis=0,
                         initial=0.0)

    def _learnt_top(self) -> float:
        """The largest detection peak of the heartbeats judged while the threshold is learnt
        (some are), see :meth:`_settled_max`."""
        return self._settled_max([(f, p) for p, _, f, _ in self._learn_sizes])

    def _settled_max(self, found: list[tuple[int, float]]) -> float:
        """The largest detection peak of candidates (fiducial, peak; at least one) found
        after the first scale update, or of all if none is: before it the scale comes from the
        first block alone and a QRS right at the start reads many times too large."""
        settled = [p for f, p in found if f >= self._first_scale]
        return max(settled or [p for _, p in found])

    def _qrs_size(self, fid: int) -> float:
        """A candidate's size while the threshold is learnt: the largest |input| (µV) over
        fiducial − LOBE_BEFORE_S … + LOBE_AFTER_S, summed over the channels — where the QRS of a
        beat found there lies (the fiducial follows R by ~20–35 ms). Not its detection peak: the
        detection scale comes from the first block alone until its first update, and a start-up
        transient there read as large as the beat after it (MIT-BIH 100 at 10 kHz: the beat
        then ignored, its ~30 µV transient standing for the heartbeat). Not its whole window:
        a transient's reaches the beat after it."""
        a = max(fid - round(LOBE_BEFORE_S * self.sample_rate_hz), self._x.start)
        return float(self._peak_between(a, fid + round(LOBE_AFTER_S * self.sample_rate_hz)).sum())

    def _fast_rms(self, a: int, b: int) -> np.ndarray:
        """(channels, samples): the >200 Hz RMS over GATE_ENVELOPE_S (µV) of the input over
        rows [a, b) (absent rows as 0), one per full RMS window (none where fewer rows than
        that are there)."""
        x = np.nan_to_num(self._x.window(a, b), nan=0.0).T
        m = self._gate_envelope
        if x.shape[1] < m:
            return np.zeros((self.n_channels, 0))
        high = self._hf(x)
        return np.sqrt(_moving_power(high, m) / m)

    def _blank_unlearnt(self, fid: int, size: np.ndarray, rms: np.ndarray,
                        detection: float) -> None:
        """Blank for detection a candidate's window while the threshold is learnt (nothing
        subtracted) on the channels where the heartbeat is the largest thing and nothing
        fast sits on it (see :meth:`_unlearnt_channels`): its core now (``size``: the largest
        |input| there per channel, µV; ``rms``: its >200 Hz RMS, see :meth:`_fast_rms`;
        ``detection``: its detection peak, ``fid`` its fiducial), the rest of the window once
        it has arrived (:meth:`_judge_unlearnt_tails`), each part on its own largest input: a
        181 µV spike 115 ms after a fiducial, after the core, on a channel with 17 µV of heart
        was blanked whole by the core's judgement (extra tuning seed 203, 2.08 s; seed 383, a
        493 µV one at 1.87 s)."""
        heart = self._heart_size(detection, without=fid)
        fast = self._heart_size(detection, without=fid, fast=True)
        self._blank_unlearnt_part(fid - self._pre, fid + self._core_post, size, rms, heart, fast)
        self._unlearnt_tails.append((fid + self._core_post, fid + self._post, heart, fast))

    def _judge_unlearnt_tails(self) -> None:
        """Blank the learning windows' parts after the core that have arrived (see
        :meth:`_blank_unlearnt`). Their rows are output :attr:`delay` after they arrive (more
        than a block after the part's end: see ``__init__``)."""
        while self._unlearnt_tails and self._unlearnt_tails[0][1] <= self._end:
            start, stop, heart, fast = self._unlearnt_tails.popleft()
            self._blank_unlearnt_part(start, stop, self._peak_between(start, stop),
                                      self._fast_rms(start, stop), heart, fast)

    def _blank_unlearnt_part(self, start: int, stop: int, peak: np.ndarray, rms: np.ndarray,
                             heart: np.ndarray | None, heart_fast: np.ndarray | None) -> None:
        """Blank rows [start, stop) of a learning window on the channels of
        :meth:`_unlearnt_channels` (``peak``: the largest |input| there, ``rms``: its >200 Hz
        RMS, see :meth:`_fast_rms`; ``heart``: the heartbeat's largest |input|,
        ``heart_fast``: its largest >200 Hz RMS, per channel µV), and on those where a step
        noted so far lies in or just before them; the channels left open are kept for a step
        noted later (see :meth:`note_steps`)."""
        noise = self._hf_noise(start, np.arange(self.n_channels))
        fast = rms.max(axis=1, initial=0.0)
        fast_s = np.count_nonzero(rms > LEARN_FAST_SIGMA * noise[:, None], axis=1) \
            / self.sample_rate_hz  # (none where the noise is not known)
        fast_s -= self._gate_envelope / self.sample_rate_hz  # beyond one RMS window
        blanked = np.zeros(self.n_channels, dtype=bool)
        blanked[self._unlearnt_channels(peak, heart, fast, heart_fast, fast_s)] = True
        self._blank.append((start, stop, np.flatnonzero(blanked)))
        open_channels = np.flatnonzero(~blanked)
        if len(open_channels):
            self._unlearnt_open.append((start, stop, open_channels))
            for step in self._steps:
                self._blank_stepped_unlearnt(start, stop, open_channels, step)

    def _blank_stepped_unlearnt(self, start: int, stop: int, open_channels: np.ndarray,
                                step: tuple[int, np.ndarray]) -> None:
        """Blank rows [start, stop) of a learning window on its ``open_channels`` (left
        unblanked: their input was over twice the heartbeat or held lasting fast content)
        that ``step`` (first sample, channels) is on, where it begins in them or up to PRE_S
        before: the input was the step's, not EMG (extra tuning seed 287: an electrode pop
        47 ms after the second heartbeat's fiducial left its 12 µV QRS open, read as a spike
        at 1.01 s)."""
        first, channels = step
        if start - self._pre <= first < stop:
            hit = np.intersect1d(channels, open_channels)
            if len(hit):
                self._blank.append((start, stop, hit))

    @staticmethod
    def _unlearnt_channels(peak: np.ndarray, heart: np.ndarray | None, fast: np.ndarray,
                           heart_fast: np.ndarray | None, fast_s: np.ndarray) -> np.ndarray:
        """The channels to blank over part of a candidate's window while the threshold is
        learnt: those whose largest |input| there (``peak``, µV) is at most LEARN_BLANK_RATIO
        × that channel's heartbeat (``heart``, see :meth:`_heart_size`) — every channel before
        a heartbeat is known (None) — and whose >200 Hz RMS there (see :meth:`_fast_rms`)
        exceeds LEARN_FAST_SIGMA × its >200 Hz noise for at most LEARN_FAST_EXTRA_S longer
        than the RMS window (``fast_s``: how much longer, s) or peaks (``fast``, µV) at most
        at LEARN_FAST_RATIO × the heartbeat's (``heart_fast``; not compared before a
        heartbeat is known). Anything larger is not the heart: a 293 µV burst on a distal
        muscle with ~40 µV of ECG was blanked whole and missed (tune-mitdb-10k, 1.18 s), and a
        779 µV one (tune-ptb-5k-60Hz, 1.80 s). A channel flagged flat or railed in a block of
        the window is judged like the others, not left out (as :meth:`_accept` blanks one it
        cannot subtract): a flat one is blanked (its input is small; a railed one's is over
        twice its heartbeat). In the first second the flat test runs against a scale that still
        holds the unconverged mains' >200 Hz content (~19 µV against 2 µV of noise), and one
        such "flat" block had left the whole first heartbeat in place, read as a 20 µV burst at
        R (extra tuning seed 201, 0.54 s)."""
        emg = fast_s > LEARN_FAST_EXTRA_S
        if heart_fast is not None:
            emg &= fast > LEARN_FAST_RATIO * heart_fast
        if heart is None:
            return np.flatnonzero(~emg)
        return np.flatnonzero((peak <= LEARN_BLANK_RATIO * heart) & ~emg)

    def _heart_size(self, detection: float, without: int | None = None,
                    fast: bool = False) -> np.ndarray | None:
        """Per channel while the threshold is learnt: the heartbeat's largest |input| (µV;
        ``fast``: its largest >200 Hz RMS, see :meth:`_fast_rms`) —
        the median over the candidates judged so far whose detection peak reaches half the
        largest one's (``detection``, this candidate's, included): beats, not T waves or
        noise. The candidate at fiducial ``without`` is left out of the median when another
        beat is there: with one beat before it, the median of two is their mean, which an
        input is never more than twice of (extra tuning seed 390: a 432 µV spike on a channel
        with 52 µV of heart, 1.13 s, in the second beat's window, blanked whole). None when
        there is none."""
        top = max([detection] + [p for p, _, _, _ in self._learn_sizes])
        beats = [(h if fast else s, f) for p, s, f, h in self._learn_sizes if p >= 0.5 * top]
        others = [s for s, f in beats if f != without]
        sizes = others or [s for s, _ in beats]
        return np.median(sizes, axis=0) if sizes else None

    def _in_record(self, fid: int, b: int) -> int:
        """``b`` (the end of the rows judged for the beat at ``fid``), cut before the block
        holding the record's last row where the beat's core ends no more than
        RECORD_END_MARGIN_S after that row: the flush's zeros beyond it are neither a flat
        channel nor an artifact — nor is that block, mostly zeros where the record ends a few
        samples into it (a make_record seed ending 2 samples into a block left the beat whole
        on 3 of 8 channels) — and the beat is found, fitted and subtracted as any other (its
        QRS is in the record). A beat whose core ends later is judged on them: left in place,
        its window blanked (see :meth:`flush`)."""
        margin = round(RECORD_END_MARGIN_S * self.sample_rate_hz)
        if fid + self._core_post - margin <= self._record_end < b:
            return self._record_end // self._block * self._block
        return b

    def _artifact_between(self, a: int, b: int) -> bool:
        lo = max(a // self._block, self._glob.start)
        hi = min(max((b - 1) // self._block + 1, lo), self._glob.stop)
        return bool(self._glob.view(lo, max(hi, lo)).any())

    def _flags_between(self, a: int, b: int) -> np.ndarray:
        lo = max(a // self._block, self._flags.start)
        hi = min(max((b - 1) // self._block + 1, lo), self._flags.stop)
        return np.bitwise_or.reduce(self._flags.view(lo, max(hi, lo)), axis=0)

    def _decide(self, fid: int, peak: float) -> None:
        """Judge one candidate fiducial (absolute index) with detection peak ``peak``."""
        self._p_gated = {f: c for f, c in self._p_gated.items() if f >= fid}
        if fid - self._pre < 0:
            if self._spk is None:  # (a start-up transient: lobes after it are its own)
                self._learn_last = (fid, self._qrs_size(fid), False)
            return
        if self._artifact_between(fid - self._pre, self._in_record(fid, fid + self._core_post)):
            # a heartbeat at the edge of an artifact is not subtracted: its QRS is not EMG
            if self._spk is not None and peak >= self._npk + THRESHOLD_FRACTION * (
                    self._spk - self._npk):
                self._blank.append((fid - self._pre, fid + self._core_post, self._ecg_channels()))
            return
        last = self._last_beat
        if last is not None and self._rr and fid - last > SEARCH_BACK_RR * np.mean(self._rr):
            self._search_back(fid)
            last = self._last_beat
        if last is not None and fid - last < self._refractory:
            return
        if fid - max(self._last_recover, last if last is not None else 0) > self._recover:
            self._last_recover = fid
            if self._spk is not None:
                self._spk = max(self._npk, 0.5 * self._spk)
        if self._spk is None:
            # still learning the threshold: nothing is subtracted, so the detector must not take
            # a candidate QRS for EMG on any channel where it is the largest thing there
            learnt = fid >= self._relearnt_to
            if self.settled_at is None:
                self.settled_at = fid - self._pre
            if learnt and self._resettle is not None and self._resettle[1] is None:
                self._resettle = (self._resettle[0], fid - self._pre)
            size = self._peak_between(fid - self._pre, fid + self._core_post)
            rms = self._fast_rms(fid - self._pre, fid + self._core_post)
            # two candidates within the refractory period are one heartbeat's lobes (or a
            # start-up transient's): the larger one (:meth:`_qrs_size`) stands for it, a
            # smaller one is ignored as after the learning (its window, blanked too, made one
            # long blank with the beat's: the detector takes what rises right after such a
            # blank for an artifact's tail — a 516 µV spike 21 ms after it, tuning seed 204,
            # 2.13 s); it still counts for the threshold and its learning time. (When the larger
            # one comes second, the first one's blank stays: it may already be output.) Unless
            # the larger one is a start-up transient, whose window, reaching before the first
            # sample, was never blanked: the smaller one's window is then blanked all the same
            # (extra tuning seed 287: a transient at 23 ms stood for the first heartbeat, 0.26 s,
            # left whole and read as 27–41 µV bursts on three channels).
            last, self._learn_last = self._learn_last, (fid, self._qrs_size(fid), True)
            if last is not None and fid - last[0] < self._refractory:
                if self._learn_last[1] <= last[1]:
                    self._learn_last = (last[0], last[1], True)
                    if not last[2]:
                        self._blank_unlearnt(fid, size, rms, peak)
                    if learnt:
                        self._learn_threshold(fid, peak)
                    return
                if self._learn_sizes and self._learn_sizes[-1][2] == last[0]:
                    self._learn_sizes.pop()
            if learnt:
                self._learn_sizes.append((peak, size, fid, rms.max(axis=1, initial=0.0)))
            self._blank_unlearnt(fid, size, rms, peak)
            if learnt:
                self._learn_threshold(fid, peak)
            return
        threshold = self._npk + THRESHOLD_FRACTION * (self._spk - self._npk)
        lag = self._confirmed_lag(fid)
        if peak < threshold and lag is None:
            self._npk += 0.125 * (peak - self._npk)
            if self._missed and fid - self._missed[0][0] > self._missed_kept:
                self._missed = [m for m in self._missed if fid - m[0] <= self._missed_kept]
            self._missed.append((fid, peak))
            return
        shift = 0
        if lag is not None and lag < -self._coarse:
            # a beat of the dominant shape whose QRS lies before the lag search of _accept:
            # moved towards it as far as the delay keeps its window's rows unsent whatever the
            # chunking (_accept's own search covers the rest), unless that window reaches an
            # artifact the candidate's did not
            shift = max(lag, -self._confirm_early)
            if last is not None and fid + shift - last < self._refractory:
                return  # (the last beat's own QRS)
            if self._artifact_between(fid + shift - self._pre,
                                      self._in_record(fid + shift, fid + self._core_post)):
                shift = 0
        elif lag is not None and lag > self._coarse:
            # one whose QRS lies after it (CONFIRM_LATE_S): moved on by that reach, which the
            # decision's look-ahead holds (_accept's own search covers the rest)
            shift = self._confirm_late
            if self._artifact_between(fid - self._pre, self._in_record(
                    fid + shift, fid + shift + self._core_post)):
                shift = 0
        if peak >= threshold and fid >= self._first_scale:
            # (before the first scale update the scale, from one block, makes peaks read large;
            # a beat known by its shape alone leaves the levels alone)
            self._spk += 0.125 * (peak - self._spk)
        if shift and fid in self._p_gated:
            self._p_gated[fid + shift] = self._p_gated.pop(fid)
        if peak < threshold and not self._late:
            # a beat known by its shape alone was under the threshold when it was found, so
            # its P wave was not gated then; the rows from where that gate would have begun
            # are still not output (the delay holds CONFIRM_REACH_S's extension). (The
            # candidate is decided a look-ahead after its peak, at most a centroid span after
            # the fiducial.)
            start = max(self._gate_from(fid + shift + self._seen_lag),
                        self._first_unsent(fid + self._centroid * self._dec + self._look))
            gated = self._p_gate(start, fid + shift)
            if len(gated):
                self._p_gated[fid + shift] = gated
        self._accept(fid + shift)

    def _confirmed_lag(self, fid: int) -> int | None:
        """Whether a candidate is a beat of the dominant rhythm by its shape: its QRS aligned
        to the dominant class's templates of CONFIRM_MIN_BEATS beats or more (joint lag from
        CONFIRM_REACH_S before the fiducial to COARSE_LAG_S after it) has a similarity of at
        least CONFIRM_SIMILARITY, on all live channels or else on those without EMG or cautery
        in the window; failing both, the same to CONFIRM_LATE_S further after it (searched
        there from the start, it moved beats the shorter search confirmed: their window's
        blocks moved with them, and a 30 µV burst on a QRS was lost, extra tuning seed 372).
        Returns that joint lag (samples), None when it is not. A candidate under the threshold
        that is one is a beat all the same (its detection energy can fall short while the QRS
        does not: the scale right after cautery holds its recovery, a beat's axis turns with
        breathing, EMG holds the channels that carry most of it out of detection; left in place
        such a beat reads as EMG on every channel with ECG); one whose QRS lies before the lag
        search of :meth:`_accept` is accepted where it lies, one whose QRS lies after it up to
        CONFIRM_LATE_S later."""
        k = self._primary()
        early, late = self._confirm_early, self._confirm_late
        lo = fid - self._pre - self._lag_max - early
        seg = np.nan_to_num(self._x.window(lo, fid + self._core_post + self._lag_max + late
                                           + 1).T)
        sigma = self._noise.view(fid // self._block, fid // self._block + 1)[0]
        for reach in (0, late) if late else (0,):  # the late reach only where none is found
            flags = self._flags_between(lo, self._in_record(
                fid, fid + self._core_post + self._lag_max + reach))
            started = ((self._count[k] >= min(CONFIRM_MIN_BEATS, self.bootstrap_beats))
                       & ((flags & _DEAD) == 0))
            if not started.any():
                return None
            _, lag, similarity = self._align(seg, self._template[k], started, sigma,
                                             unvoted=0.0, early=early, late=reach)
            calm = started & ((flags & _WILD) == 0)
            if similarity < CONFIRM_SIMILARITY and calm.any() and not calm.all():
                # the channels without EMG or cautery in the window on their own: EMG on the
                # channels with most of the heart both drops the detection energy and spoils
                # their correlation, whose vote outweighs the others'
                _, lag, similarity = self._align(seg, self._template[k], calm, sigma,
                                                 unvoted=0.0, early=early, late=reach)
            if similarity >= CONFIRM_SIMILARITY:
                return lag
        return None

    def _learn_threshold(self, fid: int, peak: float) -> None:
        """Collect candidates for LEARN_S from the first one; the first candidate after that
        ends the learning."""
        if self._learning and fid - self._learning[0][0] >= self._learn_s:
            self._end_learning((fid, peak))
        else:
            self._learning.append((fid, peak))

    def _reread(self, fid: int, at: int) -> float:
        """The detection peak of a candidate found while the threshold was learnt (fiducial
        ``fid``, absolute index) as the scale in force at absolute index ``at`` reads it: its
        smoothed detection signal's largest value where its peak can lie (the fiducial is at
        most a centroid span from it)."""
        s, a = self._smooth, self._centroid + 1
        block = at // self._block
        scale = next(sc for b, sc in reversed(self._scale_log) if b <= block)
        j = fid // self._dec
        squares = self._det_learning.window(j - a - s, j + a + s + 1)
        energy = np.minimum(squares / scale ** 2, ENERGY_CAP)
        included = np.isfinite(energy)
        det = np.where(included, energy, 0.0).sum(axis=1) / np.maximum(included.sum(axis=1), 1)
        smooth = np.convolve(det, np.full(2 * s + 1, 1.0 / (2 * s + 1)), mode="valid")
        return float(smooth.max())

    def _end_learning(self, last: tuple[int, float] | None) -> None:
        """Start the signal peak level at the largest collected candidate and judge the
        collected ones in order, then ``last`` (fiducial, peak), the candidate that ended the
        learning (None: it ended by time)."""
        # the largest candidate of the first LEARN_S only: the one that ends the learning is
        # judged against it, not part of it
        learned, self._learning = self._learning, []
        # each peak as the detection scale in force at the end reads it: the scale settles
        # over its first seconds (mains not yet cancelled, a history of a few blocks), and a
        # beat found at 0.33 s read 4 × the later ones (PTB s0010 at 10 kHz): every beat fell
        # under the threshold for the next 6 s
        at = last[0] if last is not None else learned[0][0] + self._learn_s + self._look
        learned = [(f, self._reread(f, at)) for f, _ in learned]
        self._det_learning = None
        if self._learn_sizes:
            self._learnt_heart = self._heart_size(0.0)
        self._learn_sizes = []
        # nor from a candidate before the first scale update (kept as a guard beside the
        # reading again above)
        self._spk = self._settled_max(learned)
        self._late = True  # all are already (partly, by chunking) output
        for f, p in learned:
            self._decide(f, p)
        self._late = False
        if last is None:
            return
        # the beats accepted so far ended long ago (≥ the refractory period before it): learn
        # them now, so the candidate that ended the learning — the only one still ahead of the
        # output — is already aligned to and subtracted with their running mean
        f, p = last
        while self._pending and self._pending[0].due <= f:
            self._learn(self._pending.popleft())
        self._decide(f, p)

    def _search_back(self, fid: int) -> None:
        """Accept the largest candidate missed since the last beat if it reaches half the
        threshold; it is reported but was already output, so not subtracted."""
        threshold = self._npk + THRESHOLD_FRACTION * ((self._spk or 0.0) - self._npk)
        last = self._last_beat if self._last_beat is not None else -self._refractory
        eligible = [(p, f) for f, p in self._missed
                    if f - last >= self._refractory and fid - f >= self._refractory
                    and p >= 0.5 * threshold]
        if not eligible:
            return
        peak, f = max(eligible)
        self._spk = (self._spk or peak) + 0.25 * (peak - (self._spk or peak))
        self._note_beat(f)
        self._report_beat(f + self._peak_offset(self._template[self._primary()],
                                                np.ones(self.n_channels)))

    def _report_beat(self, r_peak: int) -> None:
        """Add an R peak (absolute index) to :attr:`beats`, keeping the last BEATS_KEPT."""
        bisect.insort(self.beats, r_peak)
        if len(self.beats) > 2 * BEATS_KEPT:
            del self.beats[:-BEATS_KEPT]

    def _note_beat(self, fid: int) -> None:
        if self._last_beat is not None:
            self._rr.append(fid - self._last_beat)
        self._last_beat = fid
        self._missed = []

    def _blank_stepped_core(self, core: tuple[np.ndarray, np.ndarray, np.ndarray],
                            step: tuple[int, np.ndarray]) -> None:
        """Blank a beat's fitted ``core`` (its start per channel, heartbeat per channel, EMG
        per channel and block) on the channels of ``step`` (first sample, channels) with a
        heartbeat where the step begins inside it and no EMG is in the core before the step's
        block (see :meth:`note_steps`)."""
        (starts, heart, emg), (first, channels) = core, step
        inside = channels[heart[channels] & (starts[channels] <= first)
                          & (first < starts[channels] + self._core)]
        for ch in inside.tolist():
            if not emg[ch, :(first - int(starts[ch])) // self._block].any():
                self._blank.append((int(starts[ch]), int(starts[ch]) + self._core,
                                    np.array([ch])))

    def _peak_offset(self, reference: np.ndarray, weights: np.ndarray) -> int:
        """Offset (samples) of the R peak from the fiducial: in the weighted energy of
        ``reference`` (channels × window) over the QRS core, the maximum of the first lobe that
        reaches half the largest (after the 10 Hz high-pass the R wave is the first big lobe,
        the S/ringing lobe after it can be as large); 0 when there is no energy."""
        energy = (weights[:, None] * reference[:, :self._core] ** 2).sum(axis=0)
        if not energy.any():
            return 0
        first = int(np.argmax(energy >= 0.5 * energy.max()))
        falling = np.flatnonzero(np.diff(energy[first:]) < 0)
        peak = first + (int(falling[0]) if len(falling) else 0)
        return peak - self._pre

    def _accept(self, fid: int) -> None:
        """Align a detected beat to its class, fit and subtract the class templates, correct
        the residual across channels, gate what is still left, report the beat and schedule
        its learning."""
        c, pre, core, lag_max = self.n_channels, self._pre, self._core, self._lag_max
        self._note_beat(fid)
        lo = fid - pre - lag_max  # the lag search may reach before the first sample
        seg = np.nan_to_num(self._x.window(lo, fid + self._core_post + lag_max + 1).T)
        flags = self._flags_between(lo, self._in_record(fid, fid + self._core_post + lag_max))
        live = (flags & _DEAD) == 0
        # the scale in force at the fiducial (not the latest one: that depends on how much
        # input has been judged, i.e. on the chunking)
        sigma = self._noise.view(fid // self._block, fid // self._block + 1)[0]
        k, lags, coarse, shapes, has, fresh = self._classify(seg, live, sigma)
        lags, beat, fit_full, residual, emg_blocks, emg, part = self._fit_beat(
            seg, lags, coarse, k, shapes, has, live, sigma)
        if fresh and (emg & has).any() and (has & ~emg).any():
            # EMG on some channels makes no new morphology: the classes judged again without
            # them (tune-ptb-10k-b, 145.02 s: A-trains on the two channels with most of the
            # heart's weight made a class of a dominant beat)
            # (no evidence is no match: a class with no template above the noise there scores 0)
            again, lags_again, coarse_again, _, _, fresh = self._classify(seg, live & ~emg, sigma,
                                                                          unvoted=0.0)
            if not fresh and again != k:  # fitted again with that class's templates
                k, coarse, has = again, coarse_again, (self._count[again] > 0) & live
                shapes = self._shapes(k, has)
                lags, beat, fit_full, residual, emg_blocks, emg, part = self._fit_beat(
                    seg, lags_again, coarse, k, shapes, has, live, sigma)
        if fresh:
            k = self._new_class()
        others = np.delete(self._count, k, axis=0)  # (odd beside a class of more beats)
        own = (live & ~emg & (self._count[k] < OWN_SHAPE_BELOW_BEATS)
               & (others.max(axis=0, initial=0) >= OWN_SHAPE_BELOW_BEATS))
        if own.any():  # (OWN_SHAPE_BELOW_BEATS)
            fit_full[own, :core] = (self._young_lowpass(beat[own]) * self._own_taper
                                    + fit_full[own, :core] * (1.0 - self._own_taper))
            residual = beat - fit_full[:, :core]
            has = has | own
            part = np.where(own, np.nan, part)  # (no courses' part to learn there)
        self._class_last[k] = fid
        self._class_beats[k] += 1
        self._class_lag[k] += (coarse - self._class_lag[k]) / min(self._class_beats[k], LAG_BEATS)
        self._report_beat(fid + coarse + self._peak_offset(
            shapes.basis[:, 0] if has.any() else beat, live / sigma ** 2))
        # subtract where the template exists and lowers the energy over the QRS (never adds a
        # heartbeat where there is none)
        apply = has & ((residual ** 2).sum(axis=1) < (beat ** 2).sum(axis=1))
        residual = np.where(apply[:, None], residual, beat)
        clean = live & ~emg
        resid_rms = np.sqrt(np.mean(residual ** 2, axis=1))
        typical = self._residual[k].copy()  # (before this beat joins it)
        learn = self._judge_residual(k, clean, resid_rms)
        pending = _Beat(fid + lag_max + self._post, fid, k, lags, learn, clean & ~learn,
                        resid_rms ** 2)
        pending.own = own & apply
        self._pending.append(pending)
        # a channel whose residual is far beyond its usual one holds something else (an
        # A-train smoothed to a near-sinusoid passes the >200 Hz test): it predicts no other
        odd = (typical > 0) & (resid_rms > SPATIAL_OUTLIER_RATIO * typical)
        correction = self._spatial(residual, sigma, apply, apply & clean & ~odd,
                                   learn_from=k == self._primary() and not self._late)
        if not (fresh or self._late):  # (a new class's beat was fitted with another's templates)
            # (a channel without a template yet has no courses' part)
            self._learn_course((k, 0), part, learn & apply & (self._count[k] > 0))
        residual -= correction
        # the channels' >200 Hz σ, steady where the beat's reads higher (an A-train's high
        # frequencies in the last 2 s: see the gate below)
        steady = np.minimum(sigma, self._steady_sigma(sigma))
        if not self._late:  # (a late beat is not subtracted)
            variation = self._beat_to_beat(k, residual, steady, apply & clean & ~odd,
                                           apply & clean & ~odd & ~emg_blocks.any(axis=1),
                                           pending)
            residual -= variation
            correction += variation
        ecg = np.where(apply[:, None], fit_full[:, :core], beat)  # the heartbeat seen there
        # what is left of a subtracted heartbeat is smaller than the heartbeat near there (its
        # block or the next one either side: a misfit in time moves it by a few ms); anything
        # larger is something else (an A-train too slow for the >200 Hz test, the tail of a
        # MUAP just before the QRS) — unless the template is young (fewer than bootstrap_beats
        # beats on that channel): like a new class's, its fit may leave more than it fits
        # where the QRS is misplaced (extra tuning seed 313, 5.05 s: a 20 µV "spike" at the
        # R peak, the fitted heartbeat faint there, two beats learnt on that channel)
        beat = self._block_rms(ecg)
        size = beat.copy()
        size[:, 1:] = np.maximum(size[:, 1:], beat[:, :-1])
        size[:, :-1] = np.maximum(size[:, :-1], beat[:, 1:])
        young = (self._count[k] < self.bootstrap_beats)[:, None]
        misfit = (fresh | ~apply[:, None] | young | self._relocking(fid)
                  | (self._block_rms(residual) <= GATE_RESIDUAL_MAX * size))
        clean = live[:, None] & ~emg_blocks & misfit
        into = round(P_WAVE_INTO_WINDOW_S * self.sample_rate_hz)
        # the block just before each channel's core: EMG there straddles the core's edge
        ahead = np.nan_to_num(self._x.window(lo - self._block, lo + 2 * lag_max).T)
        lead = sliding_window_view(ahead, self._block, axis=1)[np.arange(c), lag_max + lags]
        # loud against the channel's steady σ (an A-train's high frequencies in the last 2 s:
        # extra tuning seed 600, 183.80 s, a 35 µV misfit over the QRS left open under a
        # tripled σ)
        gap, gate_from = self._gate(fid, lags, residual, steady,
                                    clean & self._loud(ecg, steady, GATE_ECG_SIGMA), clean,
                                    live[:, None] & ~emg_blocks, emg_blocks,
                                    self._emg(lead, lead, sigma)[:, 0] & live, into)
        dead = np.setdiff1d(self._ecg_channels(), np.flatnonzero(live))
        if len(dead) and not self._late:  # flat or railed in the window: QRS left in place
            self._blank.append((fid - pre, fid + self._core_post, dead))
        p_gated = self._p_gated.pop(fid, None)
        if self._late or not apply.any():
            return
        if p_gated is not None:  # the P wave's blank goes on past the taper (see _gate_p_wave)
            # where no EMG is there and what the output holds is no larger than a P wave
            # … up to the residual gate's blank where that begins within P_WAVE_BRIDGE_S of it
            reach = into + round(P_WAVE_BRIDGE_S * self.sample_rate_hz)
            until = np.where((gate_from > into) & (gate_from <= reach), gate_from, into)
            for ch in np.flatnonzero(until > into).tolist():  # slow there, as a P wave
                if self._fast_at_all(residual[ch:ch + 1, gap[ch]:until[ch]],
                                     fid - pre + int(lags[ch] + gap[ch]), ch):
                    until[ch] = into
            heart = np.abs(shapes.basis[:, 0]).max(axis=1)
            # a young template's misfit at the QRS's onset is no P wave, but no EMG either:
            # the P blank ending right before it made it a spike (extra tuning seed 204, 5.23 s,
            # 26 µV at R − 70 ms, the 7th beat after the threshold was learnt)
            young = self._count[k] < self.bootstrap_beats
            covered = (gap > into) | (gate_from == into)  # a gate blank over or right at `into`
            quiet = apply & self._p_quiet(residual, until, (until == into) & ~covered, heart,
                                          emg_blocks, young)
            failed = (until > into) & apply & ~quiet  # a stretch too long: the 20 ms, judged again
            if failed.any():
                until = np.where(failed, into, until)
                quiet = apply & self._p_quiet(residual, until, (until == into) & ~covered, heart,
                                              emg_blocks, young)
            for ch in p_gated[quiet[p_gated]].tolist():
                self._blank.append((fid - pre, fid - pre + int(lags[ch] + until[ch]),
                                    np.array([ch])))
        heart = apply | (has & (np.ptp(shapes.basis[:, 0], axis=1) >= UNLEARNED_BLANK_UV))
        fitted = (fid - pre + lags, heart, emg_blocks)
        self._cores.append(fitted)
        for step in self._steps:
            self._blank_stepped_core(fitted, step)
        first = max(lo, self._sub.start)  # rows before the first sample are not there
        sub = self._sub.view(first, fid + self._post + lag_max)
        parts = np.where(apply[:, None], fit_full * self._taper, 0.0)
        parts[:, :core] += correction
        for ch in np.flatnonzero(apply).tolist():
            i = int(lags[ch]) + lag_max + lo - first
            sub[max(i, 0):i + self._window, ch] += parts[ch, max(-i, 0):]
        pending.shapes, pending.rows, pending.subtracted = shapes, fid - pre + lags, parts
        pending.sigma = sigma

    def _beat_to_beat(self, k: int, residual: np.ndarray, steady: np.ndarray,
                      correct: np.ndarray, keepable: np.ndarray, pending: _Beat) -> np.ndarray:
        """The beat-to-beat variation of class ``k``'s misfit in ``residual`` (channels × core
        µV, what the fit and the correction across channels left) on the ``correct`` channels,
        predicted from the residuals of the beats learnt before this one (µV, same shape, zero
        elsewhere; see :mod:`ionm_station.dsp.beat_variation`). Notes in ``pending`` the
        residual below VARIATION_LOWPASS_HZ and the channels it may be kept on once the beat
        is learnt: the ``keepable`` ones whose template holds VARIATION_KEEP_BEATS beats
        (fewer if ``bootstrap_beats`` is) where no block's >200 Hz RMS, before this fit,
        exceeds VARIATION_HF_RATIO × the channel's ``steady`` >200 Hz σ (µV), times
        √(1 + VARIATION_YOUNG_NOISE / n) while the template holds n < ``bootstrap_beats``."""
        if not (correct.any() or keepable.any()):
            return np.zeros_like(residual)
        slow = self._variation_lowpass(residual)
        hf = self._hf_block_rms(residual)
        pending.misfit = slow
        count = self._count[k]
        # a young template (the median of its first beats) adds its own noise to the residual
        widen = np.sqrt(1.0 + np.where(count < self.bootstrap_beats,
                                       VARIATION_YOUNG_NOISE / np.maximum(count, 1), 0.0))
        pending.keep_misfit = (keepable
                               & (count >= min(VARIATION_KEEP_BEATS, self.bootstrap_beats))
                               & (hf <= (VARIATION_HF_RATIO * widen * steady)[:, None]
                                  ).all(axis=1))
        if not correct.any():
            return np.zeros_like(residual)
        return self._variation.predict(k, slow, correct) * self._core_taper

    def _fit_beat(self, seg: np.ndarray, lags: np.ndarray, coarse: int, k: int,
                  shapes: _Shapes, has: np.ndarray, live: np.ndarray, sigma: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                             np.ndarray, np.ndarray]:
        """The beat's core (channels × core µV) cut from ``seg`` at ``lags`` and fitted with
        ``shapes`` (class ``k``'s) on the ``has`` channels. EMG (see :meth:`_emg`) pulls its
        channel's own lag (that channel takes the others' median instead, ``coarse`` where none
        is left) and the heart's time courses (not fitted there), so where the first fit finds
        EMG the beat is cut and fitted again. Returns the lags, the core, the fit over the
        window, the residual over the core, EMG per channel and block (of the last fit), EMG
        per channel (of the first) and the courses' part of the last fit (see
        :meth:`_fit_span`)."""
        c, core, lag_max = self.n_channels, self._core, self._lag_max
        beat = sliding_window_view(seg, core, axis=1)[np.arange(c), lag_max + lags]
        fit_full, part = self._fit(beat, shapes, has, k)
        residual = beat - fit_full[:, :core]
        emg_blocks = self._emg(beat, residual, sigma) & live[:, None]
        emg = emg_blocks.any(axis=1)
        if (emg & has).any():
            common = int(np.round(np.median(lags[has & ~emg]))) if (has & ~emg).any() else coarse
            lags = np.where(emg, common, lags)
            beat = sliding_window_view(seg, core, axis=1)[np.arange(c), lag_max + lags]
            fit_full, part = self._fit(beat, shapes, has, k, ~emg)
            residual = beat - fit_full[:, :core]
            emg_blocks = self._emg(beat, residual, sigma) & live[:, None]
        return lags, beat, fit_full, residual, emg_blocks, emg, part

    def _classify(self, seg: np.ndarray, live: np.ndarray, sigma: np.ndarray,
                  unvoted: float = 1.0) -> tuple[int, np.ndarray, int, _Shapes, np.ndarray, bool]:
        """The class the beat resembles most, its lags — per channel (samples, window start
        relative to the fiducial's) and the joint coarse lag — the basis to fit it with and
        the live channels that have one: that class's templates (for a beat that resembles
        none they still explain part of it); and whether it resembles none (fresh: a new class
        is due, see :meth:`_accept`). Classes are compared on the channels all of them have a
        template on; the dominant one keeps a beat another matches about as well
        (OTHER_CLASS_DISSIMILARITY). ``unvoted``: a class's similarity where none of those
        channels' templates stands out of the noise (see :meth:`_align`)."""
        c = self.n_channels
        best: tuple[float, int, np.ndarray, int] | None = None
        classes = [k for k in np.flatnonzero(self._class_beats > 0).tolist()
                   if ((self._count[k] > 0) & live).any()]
        # classes are compared on the channels all of them have a template on: one without a
        # template where the beat holds EMG is not spoilt by it, and won over the dominant one
        # (extra seed 732, 230.60 s: a 3-beat class without channel 7 took the beat, which was
        # then left in place there and gated, and with it a 314 µV spike at R + 37 ms)
        # (all of them on their own channels where one has no template standing out of the
        # noise there: see _align's vote)
        common = np.logical_and.reduce([self._count[k] > 0 for k in classes]) & live
        core = self._core
        if not all(((self._count[k] > 0) & common & ((self._template[k][:, :core] ** 2).sum(
                axis=1) > core * sigma ** 2)).any() for k in classes):
            common = None
        found: dict[int, tuple[float, int, np.ndarray, int]] = {}
        for k in classes:
            started = (self._count[k] > 0) & live
            lags, coarse, similarity = self._align(seg, self._template[k], started, sigma,
                                                   unvoted, voters=common)
            found[k] = (similarity, k, lags, coarse)
            if best is None or similarity > best[0]:
                best = found[k]
        if best is None:
            # no template yet: the beats so far are not learnt yet, or this is the first one
            k = self._primary() if self._class_beats.any() else self._new_class()
            has = (self._count[k] > 0) & live
            return k, np.zeros(c, dtype=np.int64), 0, self._shapes(k, has), has, False
        similarity, k, lags, coarse = best
        primary = self._primary()
        if k != primary and primary in found and found[primary][0] >= NEW_CLASS_SIMILARITY and (
                1.0 - found[primary][0] <= (1.0 - similarity) / OTHER_CLASS_DISSIMILARITY):
            similarity, k, lags, coarse = found[primary]
        has = (self._count[k] > 0) & live
        shapes = self._shapes(k, has)
        fresh = similarity < NEW_CLASS_SIMILARITY and not self._late  # (none while learning)
        return k, lags, coarse, shapes, has, fresh

    def _new_class(self) -> int:
        """A class for a new morphology: an unused one, else the one matched longest ago
        (never the dominant one); its templates start empty."""
        unused = np.flatnonzero(self._class_beats == 0)
        if len(unused):
            k = int(unused[0])
        else:
            order = np.argsort(self._class_last)
            k = int(next(i for i in order if i != self._primary()))
        self._template[k] = 0.0
        self._shape_cache.pop(k, None)
        self._boot.pop(k, None)
        self._count[k] = 0
        self._residual[k] = 0.0
        self._variation.clear(k)
        self._course[k] = 0.0
        self._course_beats[k] = 0
        self._rejects[k] = 0
        self._reject_core[k] = 0.0
        self._reject_after[k] = 0.0
        self._class_beats[k] = 0
        self._class_lag[k] = 0.0
        self._pending = deque(b for b in self._pending if b.klass != k)
        return k

    def _align(self, seg: np.ndarray, template: np.ndarray, started: np.ndarray,
               sigma: np.ndarray, unvoted: float = 1.0, early: int = 0, late: int = 0,
               voters: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
        """Lags of a beat against one class's templates: the joint lag (±COARSE_LAG_S on the
        1 ms grid, reaching ``early`` samples further back — ``seg`` then starts that much
        earlier — and ``late`` samples further on — ``seg`` then ends that much later —,
        channels weighted by 1/σ² — a matched filter across channels), then per
        channel the correlation's maximum within ±FINE_LAG_S of it, refined by a parabola.
        Returns per-channel lags (samples), the joint lag and the similarity (median over the
        channels whose template stands out of the noise of the normalised correlation, weighted
        by the template's energy over the noise — among the ``voters`` channels only where one
        of them does —; ``unvoted`` when no template does)."""
        c, core, lc, lf, dec = self.n_channels, self._core, self._coarse, self._fine, self._dec
        tmpl = template[:, :core]
        weights = np.where(started, 1.0 / sigma ** 2, 0.0)
        # correlation per channel on the decimated lag grid: lag = m·dec − lc − early
        coarse_seg = seg[:, lf:lf + early + 2 * lc + late + core][:, ::dec]
        tmpl_dec = tmpl[:, ::dec]
        n_lags = (early + 2 * lc + late) // dec + 1
        views = sliding_window_view(coarse_seg, tmpl_dec.shape[1], axis=1)[:, :n_lags]
        score = np.einsum("clt,ct->cl", views, tmpl_dec)
        best = int(np.argmax(weights @ score))
        coarse = best * dec - lc - early
        reach = -(-lf // dec)
        lo_m, hi_m = max(best - reach, 1), min(best + reach, n_lags - 2)
        if hi_m >= lo_m:
            m = lo_m + np.argmax(score[:, lo_m:hi_m + 1], axis=1)
            left, mid, right = (score[np.arange(c), m + d] for d in (-1, 0, 1))
            curve = left - 2.0 * mid + right
            peaked = curve < 0
            shift = np.where(peaked, 0.5 * (left - right) / np.where(peaked, curve, -1.0), 0.0)
            fine = (np.round((m + np.clip(shift, -0.5, 0.5)) * dec).astype(np.int64)
                    - lc - early - coarse)
        else:
            fine = np.zeros(c, dtype=np.int64)
        fine = np.clip(fine, -lf, lf)
        common = int(np.round(np.median(fine[started])))
        lags = coarse + np.where(started, fine, common)
        beat = sliding_window_view(seg, core, axis=1)[np.arange(c), self._lag_max + early + lags]
        energy = (tmpl * tmpl).sum(axis=1)
        voting = started & (energy > core * sigma ** 2)
        if voters is not None and (voting & voters).any():
            voting &= voters
        if not voting.any():
            return lags, coarse, unvoted
        beat_energy = (beat * beat).sum(axis=1)
        rho = (beat * tmpl).sum(axis=1)[voting] / np.sqrt(energy[voting] * beat_energy[voting]
                                                         + 1e-30)
        vote = (energy / sigma ** 2)[voting]
        order = np.argsort(rho)
        cumulative = np.cumsum(vote[order])
        return lags, coarse, float(rho[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])

    def _shapes(self, key: int, has: np.ndarray) -> _Shapes:
        """The fit's basis for class ``key``'s templates (channels × window µV) on the ``has``
        channels, cached until they change."""
        template = self._template[key]
        mask = has.tobytes()
        cached = self._shape_cache.get(key)
        if cached is not None and cached.mask == mask:
            return cached
        core, c = self._core, self.n_channels
        young = has & (self._count[key] < self.template_beats)  # (YOUNG_FIT_LOWPASS_HZ)
        if young.any():
            template = template.copy()
            template[young] = self._young_lowpass(template[young])
        course = None
        if has.sum() > HEART_COMPONENTS:
            # leading right singular vectors of the templates, from their channel Gram matrix
            t = template[has]
            lam, u = np.linalg.eigh(t @ t.T)
            top = np.argsort(lam)[::-1][:HEART_COMPONENTS]
            # low-passed (HEART_LOWPASS_HZ): see there
            course = self._heart_lowpass(u[:, top].T @ t)
            course /= np.maximum(np.linalg.norm(course, axis=1, keepdims=True), 1e-30)
        # the templates' and the time courses' derivatives in one go (rows are independent)
        deriv = self._derivative(template if course is None else np.concatenate((template, course)))
        r_peak = self._pre + self._peak_offset(template, has.astype(np.float64))
        stretch = deriv[:c] * (np.arange(self._window) - r_peak)
        basis = np.stack((template, deriv[:c], stretch * self._stretch_weight), axis=1)
        a = basis[:, :, :core]                                        # (c, 3, core)
        tail = np.stack((template, deriv[:c], stretch), axis=1)[:, :, self._tail0:]
        heart = tail_heart = None
        if course is not None:
            slope = deriv[c:]
            slope /= np.maximum(np.linalg.norm(slope, axis=1, keepdims=True), 1e-30)
            courses = np.concatenate((course, slope))
            heart = courses * self._stretch_weight  # the QRS only
            tail_heart = courses[:, self._tail0:]
        shapes = _Shapes(mask, basis, a, np.einsum("ckt,cmt->ckm", a, a), heart, tail,
                         np.einsum("ckt,cmt->ckm", tail, tail), tail_heart)
        self._shape_cache[key] = shapes
        return shapes

    def _fit(self, beat: np.ndarray, shapes: _Shapes, has: np.ndarray, k: int,
             courses: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The core's fit (see :meth:`_fit_span`; class ``k``'s bound) over the whole window
        (channels, window µV), and the courses' part of it per channel."""
        return self._fit_span(beat, shapes.core, shapes.gram, shapes.basis, shapes.heart,
                              None if shapes.heart is None else shapes.heart[:, :self._core],
                              has, (k, 0), courses)

    def _fit_span(self, beat: np.ndarray, fitted: np.ndarray, gram: np.ndarray,
                  basis: np.ndarray, heart: np.ndarray | None, heart_fitted: np.ndarray | None,
                  has: np.ndarray, bound: tuple[int, int],
                  courses: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-beat fit of each channel's template (channels × span of ``basis``, µV; zero
        where ``has`` is False): least squares over the fitted span (``beat``, channels ×
        span µV; ``fitted``: the basis there, ``gram`` its Gram matrices) of gain, shift (the
        template's derivative) and stretch (time from the R peak × the derivative), within
        GAIN_RANGE, ±SHIFT_MAX_S and ±STRETCH_MAX; a channel whose fit leaves them is fitted
        by gain and shift, or failing that by its gain alone. Then each channel's residual is
        fitted by the heart's leading time courses and their derivatives (``heart`` over the
        span of ``basis``, ``heart_fitted`` over the fitted one; None: from
        :data:`HEART_COMPONENTS` or fewer channels with a template), on the ``courses``
        channels (default: all of ``has``). Their part is bounded by its typical size for
        ``bound`` (class, span: 0 core, 1 tail; see COURSE_SPREAD and :meth:`_course_bound`);
        within it, on a channel with EMG or an electrode pop in the beat they fit that, and
        add it to the whole window. Returns the fit and per channel the log of the courses'
        part over the template's (RMS over the fitted span; NaN where none is fitted and where
        the bound cut it: what it cut is no heartbeat's typical, and learnt, it would wear the
        bound away under a lasting A-train)."""
        rhs = np.einsum("ckt,ct->ck", fitted, beat)
        energy = gram[:, 0, 0]
        coef = np.zeros_like(rhs)
        coef[:, 0] = np.clip(rhs[:, 0] / np.where(energy > 0, energy, 1.0), *GAIN_RANGE)
        for terms in (2, 3):  # gain and shift, then with the stretch: kept where inside limits
            g, h = gram[:, :terms, :terms], rhs[:, :terms, None]
            c = _ridge_solve(g, h)[:, :, 0]
            gain = c[:, 0]
            safe = np.where(np.abs(gain) > 1e-12, gain, 1.0)
            inside = ((gain >= GAIN_RANGE[0]) & (gain <= GAIN_RANGE[1])
                      & (np.abs(c[:, 1] / safe) <= self._shift_max))
            if terms == 3:
                inside &= np.abs(c[:, 2] / safe) <= STRETCH_MAX
            coef[inside, :terms] = c[inside]
        coef[~has] = 0.0
        fit = np.einsum("ck,ckt->ct", coef, basis)
        on = has if courses is None else has & courses
        part = np.full(len(beat), np.nan)
        if heart is not None and on.any():
            h, n = heart_fitted, beat.shape[1]
            g = h @ h.T
            c = _ridge_solve(g, h @ (beat[on] - fit[on, :n]).T)
            course = c.T @ h
            own = np.maximum(np.einsum("ij,ij->i", fit[on, :n], fit[on, :n]), 1e-30)  # template's
            size = 0.5 * (np.log(np.maximum(np.einsum("ij,ij->i", course, course), 1e-12 * own))
                          - np.log(own))
            cut = self._course_bound(bound, on, size)
            part[on] = np.where(cut > 0.0, np.nan, size)
            fit[on] += (c * np.exp(-cut)).T @ heart
        return fit, part

    def _course_bound(self, bound: tuple[int, int], on: np.ndarray, size: np.ndarray
                      ) -> np.ndarray:
        """How far (log) the courses' part ``size`` (log, per ``on`` channel) of a beat's
        fit exceeds its bound (≥ 0): COURSE_SPREAD × its typical size for ``bound`` (class,
        span) times the heart's lift, the median over the channels with a typical of their
        ``size`` over it (at least 1); zero where no bound is in force."""
        k, span = bound
        typical = self._course[k, span, on]
        known = self._course_beats[k, span, on] >= COURSE_MIN_BEATS
        if known.sum() < COURSE_MIN_CHANNELS:
            return np.zeros(len(size))
        lift = max(0.0, float(np.median(size[known] - typical[known])))
        return np.where(known, np.maximum(size - typical - math.log(COURSE_SPREAD) - lift, 0.0),
                        0.0)

    def _learn_course(self, bound: tuple[int, int], part: np.ndarray, channels: np.ndarray
                      ) -> None:
        """Add a beat's courses' part (log, per channel; see :meth:`_fit_span`) to the typical
        of ``bound`` (class, span) on the ``channels`` where it is finite."""
        k, span = bound
        sel = channels & np.isfinite(part)
        n = self._course_beats[k, span, sel] + 1
        self._course[k, span, sel] += (part[sel] - self._course[k, span, sel]) / np.minimum(
            n, COURSE_BEATS)
        self._course_beats[k, span, sel] = n

    def _derivative(self, x: np.ndarray) -> np.ndarray:
        """Time derivative (per sample) along the rows of ``x``, low-passed at
        DERIVATIVE_LOWPASS_HZ (zero phase) first."""
        return np.gradient(self._lowpass(x), axis=1)

    def _block_rms(self, x: np.ndarray) -> np.ndarray:
        """RMS of ``x`` (channels × core) over consecutive blocks of the internal block length
        (the last one shorter): (channels, blocks)."""
        starts = np.arange(0, x.shape[1], self._block)
        lengths = np.diff(np.append(starts, x.shape[1]))
        return np.sqrt(np.add.reduceat(x * x, starts, axis=1) / lengths)

    def _hf(self, x: np.ndarray) -> np.ndarray:
        """``x`` (channels × samples µV) above ACTIVITY_HP_HZ (the >200 Hz content), the
        filter started at steady state on each row's first sample."""
        return self._highpass(x, self._ba_activity, self._zi_unit_activity)

    def _hf_block_rms(self, x: np.ndarray) -> np.ndarray:
        """RMS of ``x``'s >200 Hz content (see :meth:`_hf`) per block: (channels, blocks)."""
        return self._block_rms(self._hf(x))

    def _emg(self, beat: np.ndarray, residual: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Per block and channel of ``beat`` (channels × samples µV): EMG in it — the >200 Hz
        RMS exceeds EMG_RATIO × σ (the channel's >200 Hz noise, µV) in the fit's ``residual``
        (same shape), that excess being at least HF_SHARE of the residual block's RMS, and in
        the beat once the fitted heartbeat's own >200 Hz power there is taken from it (noise
        kept). (A template that learnt something it should not have leaves high frequencies in
        the residual only: the beat is not taken for EMG then, and the template heals. A sharp
        R wave of a few hundred µV has 3–5 σ above 200 Hz itself; a young template's misfit
        left 2.5–4 σ of it in the residual, which read as EMG — its channel was then neither
        gated nor aligned on its own: tune-mitdb-10k, iliopsoas, R + 10 ms.)"""
        hf_beat, hf, hf_fit = (
            self._hf_block_rms(x) for x in (beat, residual, beat - residual))
        noise = sigma[:, None] ** 2
        excess = np.sqrt(np.maximum(hf ** 2 - noise, 0.0))
        return ((hf > EMG_RATIO * sigma[:, None])
                & (hf_beat ** 2 - hf_fit ** 2 + noise > (EMG_RATIO * sigma[:, None]) ** 2)
                & (excess >= HF_SHARE * self._block_rms(residual)))

    @staticmethod
    def _highpass(x: np.ndarray, ba: tuple[np.ndarray, np.ndarray], zi: np.ndarray) -> np.ndarray:
        """``x`` (channels × samples) through the filter ``ba`` along time, started at steady
        state on its first sample (``zi``: the filter's state for a unit step)."""
        b, a = ba
        return signal.lfilter(b, a, x, axis=1, zi=zi[None, :] * x[:, :1])[0]

    def _judge_residual(self, k: int, clean: np.ndarray, resid_rms: np.ndarray) -> np.ndarray:
        """Which clean channels may update class ``k``'s templates with this beat: any while
        the template is young; once converged, those whose QRS residual RMS (µV) is within
        OUTLIER_RATIO of the typical one, which follows them (the others are counted by
        :meth:`_judge_restart`)."""
        count = self._count[k]
        mature = count >= self.bootstrap_beats
        typical = self._residual[k]
        ok = clean & (~mature | (resid_rms <= OUTLIER_RATIO * typical))
        fitted = ok & (count > 0)  # the first beat has no template to leave a residual
        typical[fitted] += ((resid_rms[fitted] - typical[fitted])
                            / np.minimum(count[fitted], RESIDUAL_BEATS))
        return ok

    def _judge_restart(self, beat: _Beat, after_clean: np.ndarray) -> None:
        """Count the beat's rejected channels (see :meth:`_judge_residual`) now that its whole
        window has arrived, where it is clean after the core (``after_clean``: no flat, rail,
        gap or wild block there) and inside the record; RESTART_REJECTS in a row restart a
        channel's template where what the core's fits left after the core was smooth
        (RESTART_CONFINED): the heartbeat changed, no EMG lasts there."""
        k = beat.klass
        rejects, core, after = self._rejects[k], self._reject_core[k], self._reject_after[k]
        rejects[beat.learn] = 0
        core[beat.learn] = 0.0
        after[beat.learn] = 0.0
        rejected = beat.rejected & after_clean
        if not rejected.any() or beat.due > self._record_end:  # (past it: the flush's zeros)
            return
        lo = beat.fiducial - self._pre - self._lag_max
        seg = self._x.window(lo, beat.due).T
        start = beat.lags + self._lag_max if beat.rows is None else beat.rows - lo
        data = sliding_window_view(seg, self._window, axis=1)[np.arange(self.n_channels), start]
        left = data if beat.subtracted is None else data - beat.subtracted
        high = self._highpass(np.nan_to_num(left[:, self._core:]), self._ba_gate, self._zi_gate)
        rejects[rejected] += 1
        core[rejected] += beat.core_power[rejected]
        after[rejected] += np.mean(high[rejected] ** 2, axis=1)
        full = rejects >= RESTART_REJECTS
        restart = full & (after <= RESTART_CONFINED ** 2 * core)
        if restart.any():
            self._count[k][restart] = 0
            self._shape_cache.pop(k, None)
            self._template[k][restart] = 0.0
            self._residual[k][restart] = 0.0
            self._variation.clear(k, restart)
            self._course[k][:, restart] = 0.0
            self._course_beats[k][:, restart] = 0
        rejects[full] = 0
        core[full] = 0.0
        after[full] = 0.0

    def _spatial(self, residual: np.ndarray, sigma: np.ndarray, correct: np.ndarray,
                 observed: np.ndarray, learn_from: bool) -> np.ndarray:
        """The ECG left in the residual (channels × core µV) predicted across channels. One
        heart projects onto every channel, so the beat-to-beat changes the templates cannot
        follow (breathing turns the heart's axis, the QRS widens) are shared between channels,
        and amplifier noise and EMG are not. Each ``correct`` channel's residual is predicted
        from the other ``observed`` channels (clean, subtracted) by linear regression on the
        residuals' noise-whitened covariance, averaged over clean beats — never from the channel
        itself, so its own noise and EMG stay. Nor from a channel whose whitened residual power
        is over SPATIAL_OUTLIER_RATIO² × the covariance's own for it: it holds something the
        regression was not learnt on. (The ``observed`` channels exclude those far beyond the
        typical residual of their beat's class, but a class can have none yet, or have formed
        around an A-train: extra tuning seeds 457, 221.66 s, and 497, 170.05 s — an A-train
        on one channel projected onto three or four others as 40–221 µV spikes.) Returns the
        prediction (µV, tapered at the core edges; zero where none is made), scaled down on
        each channel to what that channel's own residual bears out (its least-squares gain on
        the prediction, at most 1): a channel whose residual holds less of the predicted
        misfit gets less of it (extra tuning seed 535, 140.06 and 140.94 s: a 44 µV A-train
        on one channel, under both outlier tests, was projected onto the channel with 538 µV
        of heart as 34 and 64 µV spikes at R − 49 ms where its residual held none).
        ``learn_from`` adds this beat to the covariance."""
        est = np.zeros_like(residual)
        scale = self._steady_sigma(sigma)
        white = residual / scale[:, None]
        learnt = np.diag(self._cov_beats) >= SPATIAL_MIN_BEATS
        outlying = learnt & (np.mean(white ** 2, axis=1)
                             > SPATIAL_OUTLIER_RATIO ** 2 * np.diag(self._cov))
        s = np.flatnonzero(observed & ~outlying)
        if learn_from and len(s) >= 2:
            pair = np.ix_(s, s)
            n = self._cov_beats[pair]
            rate = 1.0 / np.minimum(n + 1, SPATIAL_BEATS)
            self._cov[pair] += rate * (white[s] @ white[s].T / white.shape[1] - self._cov[pair])
            self._cov_sigma[s] = scale[s] * (sigma[s] / scale[s]) ** np.diag(rate)
            self._cov_beats[pair] = n + 1
        if len(s) < SPATIAL_MIN_CHANNELS or self._cov_beats[np.ix_(s, s)].min() < SPATIAL_MIN_BEATS:
            return est
        o = np.flatnonzero(correct & (self._cov_beats[:, s].min(axis=1) >= SPATIAL_MIN_BEATS))
        if not len(o):
            return est
        # precision of the observed channels (eigenvalues kept above half the whitened noise)
        lam, u = np.linalg.eigh(self._cov[np.ix_(s, s)])
        precision = (u / np.maximum(lam, 0.5)) @ u.T
        weighted = precision @ white[s]
        pred = np.zeros((self.n_channels, white.shape[1]))
        # an observed channel from the others: E[x_j | x_-j] = x_j - (P x)_j / P_jj
        pred[s] = white[s] - weighted / np.diag(precision)[:, None]
        others = np.setdiff1d(o, s)  # a channel with EMG: from all observed ones
        if len(others):
            pred[others] = self._cov[np.ix_(others, s)] @ weighted
        est[o] = pred[o] * scale[o, None] * self._core_taper
        power = np.einsum("ij,ij->i", est, est)
        bears = np.einsum("ij,ij->i", est, residual)
        est *= np.clip(bears / np.maximum(power, SCALE_FLOOR_UV ** 2), 0.0, 1.0)[:, None]
        return est

    def _steady_sigma(self, sigma: np.ndarray) -> np.ndarray:
        """Each channel's >200 Hz σ (µV) averaged over the beats the correction across
        channels has learnt from (see SPATIAL_BEATS); the beat's ``sigma`` where none is yet."""
        return np.where(np.diag(self._cov_beats) > 0, self._cov_sigma, sigma)

    def _loud(self, x: np.ndarray, sigma: np.ndarray, ratio: float) -> np.ndarray:
        """Per channel and block of the core: ``x`` (channels × core µV) through the event
        detector's 40 Hz high-pass has a 2 ms RMS above ``ratio`` × σ."""
        centred = self._envelope(x)
        loud = np.maximum.reduceat(centred, np.arange(0, x.shape[1], self._block), axis=1)
        return loud > ratio * sigma[:, None]

    def _envelope(self, x: np.ndarray) -> np.ndarray:
        """``x`` (channels × samples µV) as the event detector sees it: its 40 Hz high-pass
        (started at steady state), 2 ms RMS centred on each sample (µV)."""
        high = self._highpass(x, self._ba_gate, self._zi_gate)
        m = min(self._gate_envelope, x.shape[1])
        power = np.concatenate((np.zeros((len(high), 1)), np.cumsum(high * high, axis=1)), axis=1)
        # the RMS over [t, t + m) belongs to its centre; the edges repeat the nearest one
        centred = np.empty(x.shape)
        inner = centred[:, m // 2:m // 2 + power.shape[1] - m]
        np.sqrt(np.maximum(power[:, m:] - power[:, :-m], 0.0) / m, out=inner)
        centred[:, :m // 2] = inner[:, :1]
        centred[:, m // 2 + inner.shape[1]:] = inner[:, -1:]
        return centred

    def _gate(self, fid: int, lags: np.ndarray, residual: np.ndarray, sigma: np.ndarray,
              judged: np.ndarray, clean: np.ndarray, calm: np.ndarray, emg: np.ndarray,
              lead: np.ndarray, after: int) -> tuple[np.ndarray, np.ndarray]:
        """Blank for detection the parts of the QRS window where the residual (channels × core
        µV, what the output will hold) still reads as activity to the detector (see
        :meth:`_loud`) in the ``judged`` blocks (channels × blocks: live, without EMG, where the
        heartbeat itself would read as activity), and the next block either side where it
        does so too and that is ``clean`` (live, without EMG, the residual no larger than the
        heartbeat there or in the next block either side): a misfit at the QRS's edge
        spills into the block before, where the heartbeat is still faint (tune-mitdb-10k: a
        25 µV spike at R − 52 ms, in the block before the first judged one). Before the QRS
        the spill goes on, block by block, up to GATE_SPILL_BLOCKS where each reads so too
        and is clean: a slow QRS onset (PTB s0010) is faint for 30 ms, and a misfit of its
        notch left 15–26 µV spikes at R − 33…−37 ms for 30 s on tuning seed 214's biggest
        channel, two blocks before the first judged one. Not after it: a 40 µV burst at
        R + 16…+98 ms (no larger than the heartbeat) was then hidden whole (tuning seed 226).
        Between blanked blocks, a hole of up to GATE_HOLE_BLOCKS blocks is blanked where it
        reads so too and is ``calm`` (live, without EMG), larger than the heartbeat or not.

        Never a loud block right beside a loud ``emg`` block (channels × blocks): a MUAP
        straddles block edges and its other part can fall under the >200 Hz test; blanked
        there, the spike was cut and the detector dropped it (113 µV needle spikes 10 ms either
        side of a real R peak, tune-mitdb-10k: 18 of 29 found at R + 10 ms, now 27; 50 µV ones
        14 → 28). Only the next block: a MUAP spans at most two, and a misfit further on (a
        pop's pull on the fit 30 ms before it, tune-ptb-10k) stays gated. Nor the core's first
        block where ``lead`` (per channel) holds EMG in the block just before the core: extra
        tuning seed 439, 171.16 s — a 302 µV spike at R − 80 ms, its tail in the core's first
        block; blanked there, the spike ran into the blank within 5 ms and was dropped.

        Returns, per channel (samples from its window's start), where the gap after ``after``
        begins — ``after``, or the end of a blank that goes on over it — and where the first
        blank after that gap begins (-1 where none is)."""
        first_row = np.full(self.n_channels, -1)
        reached = np.full(self.n_channels, after)  # covered up to here from ``after`` on
        if self.settled_at is None:
            self.settled_at = fid - self._pre
        if self._late:  # already output (in a stream of small chunks): too late to blank
            return reached, first_row
        loud = self._loud(residual, sigma, GATE_SIGMA)
        gated = judged & loud
        if not gated.any():
            return reached, first_row
        grown = _dilated(gated) & (judged | (clean & loud))
        # further back from each row's first gated block only: the QRS's onset
        onset = grown & (np.cumsum(grown, axis=1) == 1)
        for _ in range(GATE_SPILL_BLOCKS - 1):
            earlier = np.zeros_like(onset)
            earlier[:, :-1] = onset[:, 1:]
            onset |= earlier & loud & clean
        grown |= onset
        grown |= _holes(grown, GATE_HOLE_BLOCKS) & loud & calm
        grown &= ~(_dilated(emg & loud) & loud)  # (an EMG block itself is never clean)
        grown[:, 0] &= ~(lead & loud[:, 0])
        start = fid - self._pre + lags
        for ch, first, last in _runs(grown):
            self._blank.append((int(start[ch] + first * self._block),
                                int(start[ch] + min(last * self._block, residual.shape[1])),
                                np.array([ch])))
            lo, hi = first * self._block, last * self._block
            if first_row[ch] < 0 and hi > reached[ch]:
                if lo <= reached[ch]:
                    reached[ch] = hi
                else:
                    first_row[ch] = lo
        return reached, first_row

    def blank_mask(self, start: int, n: int) -> np.ndarray:
        """(n, n_channels) bool: where the detector must not look for EMG in [start, start + n)
        — QRS windows whose residual still reads as activity (not subtracted yet: first beats,
        a new beat class; or left too large), everything before the first candidate was judged
        (at most SETTLE_MAX_S), so again from scales learnt again while the threshold was
        learnt (see :meth:`_restart_learning`) and, during the ~2 s threshold learning, each
        candidate's R − 140…+225 ms on the channels where the heartbeat is the largest thing (see
        :meth:`_blank_unlearnt`); after it, each beat's P wave on channels with a big heart
        (see :meth:`_gate_p_wave`). Older windows are dropped."""
        mask = np.zeros((n, self.n_channels), bool)
        # until the first beat is judged; if none is by SETTLE_MAX_S there is no visible ECG
        settled = min(start + n, self._settle_max) if self.settled_at is None else self.settled_at
        mask[:max(0, min(n, settled - start))] = True
        if self._resettle is not None:  # … and so again after scales learnt again
            lo, hi = self._resettle
            hi = self._settle_by if hi is None else hi
            mask[max(0, lo - start):max(0, min(n, hi - start))] = True
        self._blank = [w for w in self._blank if w[1] > start]
        for lo, hi, channels in self._blank:
            a, b = max(lo, start) - start, min(hi, start + n) - start
            if a < b:
                mask[a:b, channels] = True
        return mask

    def _learn(self, beat: _Beat) -> None:
        """Update the beat's class templates with its whole window: channels judged clean over
        the QRS and free of EMG (or flat/railed) up to the window's end; the median of the
        beats so far until ``bootstrap_beats`` of them (EMG too slow to be told from a QRS in
        one of the first beats is not learnt), then an exponential average over
        ``template_beats``."""
        lo = beat.fiducial - self._pre - self._lag_max
        if self._artifact_between(lo, beat.due):
            return
        self._fit_tail(beat)
        flags = self._flags_between(beat.fiducial + self._core_post, beat.due)
        self._judge_restart(beat, flags == 0)
        learn = beat.learn & (flags == 0)
        if not learn.any():
            return
        seg = self._x.window(lo, beat.fiducial + self._post + self._lag_max).T
        data = sliding_window_view(seg, self._window, axis=1)[np.arange(self.n_channels),
                                                              beat.lags + self._lag_max]
        learn &= np.isfinite(data).all(axis=1)
        k = beat.klass
        if beat.keep_misfit is not None:
            self._variation.add(k, beat.misfit, learn & beat.keep_misfit)
        count, template, n_boot = self._count[k], self._template[k], self.bootstrap_beats
        booting = np.flatnonzero(learn & (count < n_boot))
        if len(booting):
            boot = self._boot.get(k)
            if boot is None:
                boot = self._boot[k] = np.zeros((n_boot, self.n_channels, self._window))
            boot[count[booting], booting] = data[booting]
            for n in np.unique(count[booting] + 1).tolist():
                chs = booting[count[booting] + 1 == n]
                template[chs] = np.median(boot[:n, chs], axis=0)
                if n == VARIATION_KEEP_BEATS:
                    self._provisional_variation(k, boot[:n, chs], template[chs], chs,
                                                beat.fiducial)
        mature = learn & (count >= n_boot)
        if mature.any():
            # the learning channels only: another may hold NaN in the window (NaN × 0 is NaN)
            rate = 1.0 / np.minimum(count[mature] + 1, self.template_beats)
            template[mature] += (data[mature] - template[mature]) * rate[:, None]
        self._shape_cache.pop(k, None)
        count[learn] += 1
        if (count >= n_boot).all():
            self._boot.pop(k, None)
        self._recentre_class(k)

    def _provisional_variation(self, k: int, beats: np.ndarray, template: np.ndarray,
                               chs: np.ndarray, fid: int) -> None:
        """Keep the provisional residuals (see VARIATION_PROVISIONAL_UNTIL) of class ``k``'s
        first ``beats`` (beats × ``chs`` × window µV, as learnt; the last at fiducial ``fid``)
        against ``template`` (their median on the ``chs`` channels, µV): over the core, less
        each channel's gain and shift of the template's core low-passed at
        YOUNG_FIT_LOWPASS_HZ (the core alone, not the whole window as in the fit)."""
        c, core = self.n_channels, self._core
        shape = self._young_lowpass(template[:, :core])
        basis = np.stack((shape, self._derivative(shape)), axis=1)     # (chs, 2, core)
        gram = np.einsum("ckt,cmt->ckm", basis, basis)
        sigma = self._hf_noise(fid, np.arange(c))  # (at the last beat: not the latest block)
        bound = VARIATION_HF_RATIO * np.sqrt(1.0 + VARIATION_YOUNG_NOISE / len(beats)) * sigma
        for data in beats:
            x = data[:, :core]
            coef = _ridge_solve(gram, np.einsum("ckt,ct->ck", basis, x)[:, :, None])
            residual = np.zeros((c, core))
            residual[chs] = x - np.einsum("ck,ckt->ct", coef[:, :, 0], basis)
            hf = self._hf_block_rms(residual)
            keep = np.zeros(c, dtype=bool)
            keep[chs] = True
            self._variation.add(k, self._variation_lowpass(residual),
                                keep & (hf <= bound[:, None]).all(axis=1), provisional=True)

    def _fit_tail(self, beat: _Beat) -> None:
        """Fit the beat's window after the core again now that all of it has arrived (none of
        it is output yet): gain, shift, stretch and the heart's time courses over the tail
        (:data:`TAIL_OVERLAP_S` before the core's end to the window's end), taking over from
        the core's fit over that overlap. Only on channels it was subtracted from that are live
        and without EMG over the tail, where it lowers the energy left over the tail and leaves
        at most :data:`TAIL_LEFT_RATIO` × σ RMS, or :data:`TAIL_EXPLAINED` of that energy by
        moving the subtraction no more than the template's tail, and not over rows past the
        record's end (the flush's zeros)."""
        if beat.shapes is None or beat.due > self._record_end:
            return
        t0 = self._tail0
        rows = beat.rows + t0
        flags = self._flags_between(int(rows.min()), beat.due)
        ok = (beat.subtracted != 0.0).any(axis=1) & ((flags & _DEAD) == 0)
        if not ok.any():
            return
        lo = beat.fiducial - self._pre - self._lag_max
        seg = self._x.window(lo, beat.due).T
        data = sliding_window_view(seg, self._window - t0, axis=1)[np.arange(self.n_channels),
                                                                   rows - lo]
        ok &= np.isfinite(data).all(axis=1)
        data = np.where(ok[:, None], data, 0.0)
        old = beat.subtracted[:, t0:]
        ok &= ~self._emg(data, data - old, beat.sigma).any(axis=1)
        if not ok.any():
            return
        shapes = beat.shapes
        own = ok & beat.own if beat.own is not None else np.zeros_like(ok)
        fit, part = self._fit_span(data, shapes.tail, shapes.tail_gram, shapes.tail,
                                   shapes.tail_heart, shapes.tail_heart, ok & ~own,
                                   (beat.klass, 1))
        if own.any():  # its own shape over the whole window (OWN_SHAPE_BELOW_BEATS)
            chs = np.flatnonzero(own)
            whole = sliding_window_view(seg, self._window, axis=1)[chs, beat.rows[chs] - lo]
            fine = np.isfinite(whole).all(axis=1)
            ok[chs[~fine]] = own[chs[~fine]] = False
            if fine.any():
                fit[chs[fine]] = self._young_lowpass(whole[fine])[:, t0:]
            part[chs] = np.nan
        fit *= self._taper[t0:]
        new = old + self._tail_blend * (fit - old)
        left, before = ((data - new) ** 2).sum(axis=1), ((data - old) ** 2).sum(axis=1)
        moved, size = ((new - old) ** 2).sum(axis=1), (old ** 2).sum(axis=1)
        ok &= own | ((left < before)
                     & ((left <= (TAIL_LEFT_RATIO * beat.sigma) ** 2 * data.shape[1])
                        | ((left <= TAIL_EXPLAINED * before) & (moved <= size))))
        # (before its own learning: a new class's first beat, fitted with another class's
        # templates, is not learnt here)
        self._learn_course((beat.klass, 1), part, ok & beat.learn & (self._count[beat.klass] > 0))
        sub = self._sub.view(int(rows.min()), int(rows.max()) + self._window - t0)
        for ch in np.flatnonzero(ok).tolist():
            i = int(rows[ch] - rows.min())
            sub[i:i + self._window - t0, ch] += new[ch] - old[ch]

    def _recentre_class(self, k: int) -> None:
        """Move class ``k``'s templates in their window (on the 1 ms grid) when its beats' mean
        lag has drifted beyond RECENTRE_S, so the next beats are found near lag 0 again; the
        lags of its beats awaiting learning move with them."""
        dec = self._dec
        d = round(float(self._class_lag[k]) / dec) * dec
        if abs(d) < self._recentre:
            return
        # beats come later than the template (d > 0): its content moves later
        for t in (self._template[k], *([self._boot[k]] if k in self._boot else [])):
            move_later(t, d)
        self._shape_cache.pop(k, None)
        self._variation.shift(k, d)
        self._class_lag[k] -= d
        for b in self._pending:
            if b.klass == k:
                b.lags = b.lags - d
                if b.misfit is not None:
                    move_later(b.misfit, d)


# --- baseline ---------------------------------------------------------------------------------


def highpass30_sos(sample_rate_hz: float) -> np.ndarray:
    """4th-order Butterworth 30 Hz high-pass (Drake & Callaghan 2006) as second-order sections."""
    return signal.butter(4, 30.0, btype="highpass", fs=sample_rate_hz, output="sos")


def highpass30(x: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Whole-record baseline: 30 Hz 4th-order Butterworth high-pass, causal, started at steady
    state on the first row; x (n, channels) µV → float64 µV (NaN must not occur)."""
    return Highpass30(np.asarray(x).shape[1], sample_rate_hz).process(x)


class Highpass30(SosFilter):
    """Streaming 30 Hz high-pass baseline with the stage contract (``delay`` = 0); NaN rows
    pass as NaN and restart the filter at steady state on the next finite row."""

    def __init__(self, n_channels: int, sample_rate_hz: float) -> None:
        super().__init__(highpass30_sos(sample_rate_hz), n_channels)
        self.sample_rate_hz = sample_rate_hz
