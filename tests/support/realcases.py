"""Real-signal free-run EMG cases: real ECG and real MUAP shapes, with exact ground truth.

A case is 8 lumbar channels (µV) at 5 or 10 kHz, the sum of

- **ECG** from a real recording (``../shared/data/physionet_ecg``): MIT-BIH record 100 (360 Hz,
  2 leads, 30 min, cardiologists' beat labels incl. atrial and ventricular premature beats) or
  PTB s0010_re (1000 Hz, 15 leads, 38 s, looped on whole beats); and, for held-out cases
  only, a third heart: a resting one-lead recording from a biosignalsplux (1000 Hz, 5 min;
  fetched from a pinned wheel, :data:`WHEEL_ECG`). Each channel sees its own projection of
  the heart: a mix of two leads (the one lead, of a one-lead record), scaled to 20–400 µV
  peak (trunk and proximal muscles larger), random sign, 0–5 ms delay. The heart rate is
  time-warped by up to ±15 % (a slowly varying rate), windows start at a different place per
  seed and, in record 100, always hold a labelled premature beat. The recordings' own mains
  (60 Hz in MIT-BIH, 50 Hz in PTB and the PLUX one) and baseline wander are taken out first,
  so the case's mains is the only mains.
- **EMG events** built from real MUAPs: isolated discharges cut from the three PhysioNet
  emgdb needle records (4 kHz tibialis anterior; healthy, myopathy, neuropathy), resampled.
  Spikes (one MUAP), bursts (3–15 MUAPs of 1–3 units within 20–200 ms), A-trains (one unit
  firing at a steady 60–210 Hz for 0.2–5 s, smoothed to a near-sinusoid), B-trains (one unit
  firing irregularly at 5–40 Hz for 0.3–5 s); 30–1000 µV p-p (log-uniform, so about a quarter
  are 30–80 µV); about 40 per minute spread over the channels, never overlapping on a channel.
- **Electrocautery**: broadband bursts (2–50 mV RMS, so they rail the amplifier at
  ±:data:`RANGE_UV`) lasting 1–6 s, then per channel a recovery step of its own size and sign
  decaying with τ = 0.1–1 s.
- **Mains** 50 or 60 Hz, off-nominal by up to ±0.5 Hz, drifting slowly (±0.05–0.1 Hz), with
  harmonics 2–7 of their own amplitudes and phases (3rd 20–60 % of the fundamental, which is
  5–100 µV per channel).
- **Common-mode steps** (10–40 µV on 5–6 channels at one sample: a fast transient or a slow
  step) and **electrode pops** (one channel, 0.1–2 mV step decaying with τ = 50–500 ms).
- **Amplifier noise** 2–4 µV RMS per channel, and slow baseline wander in half the cases.

The sum is clipped at ±:data:`RANGE_UV` like the amplifier. The ground truth uses the
simulator's types (:class:`~ionm_station.sim.amplifier.GroundTruth`), so
:func:`support.scoring.score` scores it: events with onset/offset/channel/p-p, artifacts
``cautery`` (incl. its recovery tail), ``pop`` and ``common_mode`` (activity there is not EMG),
the heart's R-peak indices in ``ecg_beats``. Every component is kept, so the artifact-free
signal (EMG + noise) is there for envelope and cleaning metrics.

Everything is a deterministic function of the case's seed. Data: PhysioNet (Goldberger et al.,
Circulation 101(23):e215–e220, 2000), MIT-BIH Arrhythmia Database (Moody & Mark 2001), PTB
Diagnostic ECG Database (Bousseljot et al. 1995), Examples of Electromyograms (emgdb 1.0.0);
ODC-By 1.0. The third heart: biosignalsnotebooks 0.6.14 (PLUX, MIT licence), used, not shipped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal

from ionm_station.detect.events import DetectedEvent
from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.montage import Montage, load_montage
from ionm_station.pipeline.chain import FreeRunChain
from ionm_station.sim.amplifier import GroundTruth, TruthArtifact, TruthEvent

from .wheel_data import wheel_file

#: The shared real recordings, beside the checkout (``<repo>/../shared/data``).
DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
#: Amplifier input range (± µV): the case is clipped here.
RANGE_UV = 5000.0
N_CHANNELS = 8

# --- ECG ---
#: Mains frequency (Hz) inside each ECG recording (removed) and whether it has beat labels.
ECG_RECORDS = {"100": (60.0, True), "s0010_re": (50.0, False), "plux_5min": (50.0, False)}
#: Records not in ../shared but in a pinned wheel (``support.wheel_data``): name → (package,
#: file in the wheel). ``plux_5min`` is a third heart no chain change was tuned on until
#: 2026-12-05 (then a fault that does not depend on the heart, found on its tuning seed 376, was
#: fixed: docs/free-run-detection.md): 5 minutes of one resting lead at 1 kHz, 16 bits, from a
#: biosignalsplux (biosignalsnotebooks' ``ecg_5_min``, MIT licence), converted as
#: (ADC / 2¹⁶ − 0.5) · 3 mV — its size does not matter, each channel's heart is scaled to its
#: own peak.
WHEEL_ECG = {"plux_5min": ("biosignalsnotebooks", "biosignalsnotebooks/notebook_files/"
                                                  "osf_files/signal_samples/ecg_5_min.h5")}
#: MIT-BIH beat annotation symbols (others, e.g. ``+`` rhythm change, are not beats).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ")
#: ECG peak (µV) by muscle keyword; trunk and proximal muscles pick up most of the heart.
ECG_PEAK_UV = (("iliops", 150.0, 400.0), ("anal", 150.0, 400.0), ("adductor", 60.0, 200.0),
               ("vastus", 40.0, 150.0))
ECG_PEAK_UV_DISTAL = (20.0, 80.0)
#: Largest delay (s) of a channel's ECG behind the heart.
ECG_DELAY_MAX_S = 0.005
#: Heart-rate change: the rate factor moves linearly between knots 10–40 s apart, each drawn
#: within ±RATE_CHANGE of the recording's own rate.
RATE_CHANGE = 0.15
RATE_KNOT_S = (10.0, 40.0)
#: Each beat's R − this[0] … + this[1] (s) plays at the recording's own rate: a real QRS keeps
#: its width as the rate changes. Stretched with the rate (±RATE_CHANGE; :func:`generate`'s
#: ``legacy_heart``, the construction before 2026-12-02 that the pinned tests keep) its onset
#: misses a template averaged over the last beats by up to a millisecond (10–40 µV on a
#: 300–500 µV QRS; see docs/free-run-detection.md) …
QRS_KEPT_S = (0.06, 0.10)
#: … unless that span would reach within this long (s) of either end of the case: then only
#: its R peak keeps its place.
QRS_KEPT_EDGE_S = 0.05
#: Window (s) either side of an R peak in which a channel's ECG peak is measured.
R_WINDOW_S = 0.05
#: The looped record is cut this long (s) before an R peak (in diastole).
LOOP_CUT_BEFORE_R_S = 0.3
#: A beat whose RMS in NON_CARDIAC_BAND_HZ over R + NON_CARDIAC_S[0] … + [1] (s; the ST
#: segment and T wave, no QRS) exceeds this many times the record's median, on any lead,
#: carries activity that is not the heart's: it is cut out of the recording, from
#: LOOP_CUT_BEFORE_R_S before its R peak to as long before the next, both in diastole. In
#: MIT-BIH 100 one beat of 2,273 (1619.22 s, a 30 Hz ≈ 0.3 mV oscillation on both leads for
#: ≈ 300 ms: 6.9×; the next largest 2.2×); played onto every channel as the heart, it read as
#: 10–74 µV bursts where the truth holds none (docs/free-run-detection.md).
NON_CARDIAC_BAND_HZ = (20.0, 45.0)
NON_CARDIAC_S = (0.10, 0.40)
NON_CARDIAC_RATIO = 4.0
#: The level step at a cut is taken out over this long (s) after it.
CUT_JOIN_S = 0.1
#: Source ECG taken before the case's first sample (s), so resampling edges fall outside.
ECG_LEAD_IN_S = 0.5
#: High-pass corner (Hz) removing the recordings' baseline wander.
ECG_HIGHPASS_HZ = 0.5
#: The recordings' own mains is taken out as a line, not notched: fitted (every harmonic) by
#: least squares per SOURCE_MAINS_WINDOW_S (s) window on the samples away from QRS complexes
#: (R + SOURCE_MAINS_QRS_S, s), at the frequency found within ±SOURCE_MAINS_SEARCH_HZ of
#: nominal in SOURCE_MAINS_STEP_HZ steps. A notch (the construction before 2026-12-05) rang on
#: every QRS for ~0.2 s either side: beat-locked, left beside the canceller's window, it read
#: as mains on the chain's output — on the third heart's tuning seeds (10 kHz, 50 Hz) the
#: fundamental was 2.5–7.0 dB over the floor with the case's mains taken out of the input
#: altogether, 0.1 dB with the line fitted instead (docs/free-run-detection.md).
SOURCE_MAINS_WINDOW_S = 2.0
SOURCE_MAINS_QRS_S = (-0.08, 0.12)
SOURCE_MAINS_SEARCH_HZ = 0.5
SOURCE_MAINS_STEP_HZ = 0.005
#: The heart, not the ECG electrodes' own noise. A resting surface ECG holds chest-wall EMG and
#: electrode noise above HEART_LOWPASS_HZ (PTB s0010's limb leads 10–29 µV σ per mV of QRS,
#: MIT-BIH 100 4–7), which scaling a lead onto a limb muscle's ECG would carry there too (and
#: chest EMG is EMG: a detector should find it). So a lead keeps what is below HEART_LOWPASS_HZ
#: as recorded (P, QRS and T beat by beat), and above it what is locked to the heartbeat: each
#: beat's R −HEART_BEAT_S[0]…+HEART_BEAT_S[1] becomes the mean of the 2·HEART_NEIGHBOURS + 1
#: beats of its class (ventricular or not) nearest to it — each aligned on its QRS to
#: HEART_ALIGN_S, normalised by its below-40 Hz QRS size and scaled back to this beat's —, and
#: consecutive beats hand over at HEART_SPLIT of their RR interval (raised cosine, HEART_FADE_S).
#: The noise falls by √(2·HEART_NEIGHBOURS + 1); the beat-locked fast content stays.
HEART_LOWPASS_HZ = 40.0
HEART_NEIGHBOURS = 8
HEART_BEAT_S = (0.6, 0.9)
HEART_SPLIT, HEART_FADE_S = 0.6, 0.02
#: QRS window (s) for each beat's size and alignment; alignment resolution and reach (s).
HEART_QRS_S = (-0.06, 0.10)
HEART_ALIGN_S, HEART_ALIGN_MAX_S = 0.0005, 0.006
#: MIT-BIH labels of beats of ventricular origin (their own QRS shape).
VENTRICULAR = frozenset("VEF")

# --- MUAPs ---
EMG_RECORDS = ("healthy", "myopathy", "neuropathy")
EMG_FS = 4000.0
#: MUAP window (s) before and after its largest peak.
MUAP_PRE_S, MUAP_POST_S = 0.005, 0.007
#: A discharge counts when its peak exceeds this many σ of the record, nothing else within
#: ±MUAP_GUARD_S beyond its central ±MUAP_CORE_S reaches MUAP_ISOLATION of it, and its window's
#: first and last ms stay below MUAP_EDGE of it.
MUAP_MIN_SIGMA = 6.0
MUAP_GUARD_S, MUAP_CORE_S = 0.004, 0.0025
MUAP_ISOLATION, MUAP_EDGE = 0.35, 0.12
#: Shapes kept per record (evenly through the record).
MUAPS_PER_RECORD = 40

# --- EMG events ---
EVENTS_PER_MIN = {"b_train": 8.0, "a_train": 9.0, "burst": 11.0, "spike": 12.0}
PEAK_UV = (30.0, 1000.0)
BURST_S, BURST_MUAPS, BURST_UNITS = (0.02, 0.2), (3, 15), (1, 3)
A_TRAIN_HZ, A_TRAIN_S = (60.0, 210.0), (0.2, 5.0)
B_TRAIN_HZ, B_TRAIN_S = (5.0, 40.0), (0.3, 5.0)
#: A-trains are low-passed at this multiple of their rate (near-sinusoidal, like real ones).
A_TRAIN_LOWPASS_X_RATE = 2.0
#: Samples below this fraction of an event's largest value at its ends are not part of it.
NEGLIGIBLE = 1e-3
#: Random starts tried before an event is drawn anew (shorter) or a case declared too short.
PLACE_TRIES, EVENT_DRAWS = 500, 50
#: Spacing (s) between anything placed on the same channel; events keep CAUTERY_CLEAR_S more
#: after a cautery span, and EDGE_S from both ends of the case.
PLACE_GAP_S, CAUTERY_CLEAR_S, EDGE_S = 0.5, 1.0, 1.0
#: Spacing (s) between cautery episodes (each with its recovery tail).
CAUTERY_GAP_S = 1.5

# --- artifacts ---
CAUTERY_PER_MIN, CAUTERY_S, CAUTERY_RMS_UV = 0.75, (1.0, 6.0), (2000.0, 50000.0)
CAUTERY_STEP_UV, CAUTERY_TAU_S = (0.1 * RANGE_UV, RANGE_UV), (0.1, 1.0)
#: Cautery is keyed in pulses of these lengths (s) with these pauses (s) (RF leaks at 2 %).
CAUTERY_PULSE_S, CAUTERY_PAUSE_S, CAUTERY_LEAK = (0.1, 1.0), (0.03, 0.3), 0.02
POPS_PER_MIN, POP_UV, POP_TAU_S = 1.5, (100.0, 2000.0), (0.05, 0.5)
COMMON_MODE_PER_MIN, COMMON_MODE_UV, COMMON_MODE_CHANNELS = 1.5, (10.0, 40.0), (5, 6)
COMMON_MODE_TAU_S = {"transient": (0.005, 0.05), "step": (2.0, 10.0)}
#: An artifact span lasts while it is ≥ VISIBLE_UV through the chain's CHAIN_HIGHPASS_HZ
#: high-pass (its edge, then its tail's slope), at least MIN_ARTIFACT_S.
VISIBLE_UV, CHAIN_HIGHPASS_HZ, MIN_ARTIFACT_S = 1.0, 10.0, 0.1
#: Decays are drawn until they are this small (µV), so no step is left where they stop.
DECAY_END_UV = 0.01

# --- baseline ---
NOISE_UV = (2.0, 4.0)
WANDER_UV, WANDER_HZ, WANDER_COMPONENTS, WANDER_CHANCE = (5.0, 50.0), (0.05, 0.5), 3, 0.5
MAINS_UV, MAINS_OFFSET_HZ = (5.0, 100.0), 0.5
MAINS_DRIFT_HZ, MAINS_DRIFT_PERIOD_S = (0.05, 0.1), (20.0, 120.0)
#: Harmonic amplitude ranges relative to the fundamental (harmonics 2–7); per channel ×0.7–1.3.
MAINS_HARMONICS = ((0.02, 0.1), (0.2, 0.6), (0.01, 0.08), (0.1, 0.3), (0.01, 0.05), (0.05, 0.2))

#: Random streams per component: adding or changing one leaves the others as they were.
_STREAM = {"ecg": 1, "events": 2, "cautery": 3, "pops": 4, "noise": 5, "mains": 6, "wander": 7,
           "common_mode": 8}


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark case: seed, rate (Hz), nominal mains (Hz), ECG record, length (s)."""

    name: str
    seed: int
    rate_hz: int
    mains_hz: float
    ecg_record: str
    tuning: bool
    duration_s: float = 240.0


#: Tuning seeds (101–107) may be looked at while tuning the chain; held-out seeds never.
CASES = (
    CaseSpec("tune-mitdb-10k", 101, 10_000, 50.0, "100", True),
    CaseSpec("tune-ptb-5k-60Hz", 102, 5_000, 60.0, "s0010_re", True),
    CaseSpec("holdout-mitdb-10k-60Hz", 9101, 10_000, 60.0, "100", False),
    CaseSpec("holdout-ptb-10k", 9102, 10_000, 50.0, "s0010_re", False),
    CaseSpec("holdout-mitdb-5k", 9103, 5_000, 50.0, "100", False),
    # added later, after the first full run: the held-out rate/record pairs with tuning seeds
    CaseSpec("tune-ptb-10k", 103, 10_000, 50.0, "s0010_re", True),
    CaseSpec("tune-mitdb-5k", 104, 5_000, 50.0, "100", True),
    # added 2026-11-30, after the third held-out run: more tuning material with the held-out
    # cases' rate/record/mains pairs (four tuning cases had stopped showing what the held-out
    # ones still had, e.g. whole beats left on several channels)
    CaseSpec("tune-mitdb-10k-60Hz", 105, 10_000, 60.0, "100", True),
    CaseSpec("tune-ptb-10k-b", 106, 10_000, 50.0, "s0010_re", True),
    CaseSpec("tune-mitdb-5k-b", 107, 5_000, 50.0, "100", True),
    # added 2026-12-04, before their first run: a third heart (WHEEL_ECG); no change to the
    # chain was tuned on it until 2026-12-05 (see WHEEL_ECG; its seeds 301–306 showed, once, a
    # fault of this construction: see SOURCE_MAINS_WINDOW_S)
    CaseSpec("holdout-plux-10k", 9104, 10_000, 50.0, "plux_5min", False),
    CaseSpec("holdout-plux-5k-60Hz", 9105, 5_000, 60.0, "plux_5min", False),
)


@dataclass
class RealCase:
    """A rendered case: ``raw`` (samples × 8) µV as the amplifier gives it, every component
    that went into it (µV, same shape), the ground truth and the actual mean mains (Hz)."""

    spec: CaseSpec
    montage: Montage
    raw: np.ndarray
    components: dict[str, np.ndarray]
    truth: GroundTruth
    beat_labels: tuple[str, ...]
    mains_hz: float
    range_uv: float = RANGE_UV

    @property
    def sample_rate_hz(self) -> float:
        return float(self.spec.rate_hz)

    @property
    def duration_s(self) -> float:
        return self.raw.shape[0] / self.sample_rate_hz

    def artifact_free(self) -> np.ndarray:
        """EMG events plus amplifier noise (µV): what a perfect cleaning chain would output."""
        return self.components["emg"] + self.components["noise"]


#: The extra tuning cases (seeds 200 and up, ``scripts/explore_seeds``): (rate Hz, nominal
#: mains Hz, ECG record) by seed % 6.
EXTRA_COMBOS = ((10_000, 50.0, "s0010_re"), (5_000, 50.0, "100"), (10_000, 60.0, "100"),
                (10_000, 50.0, "100"), (5_000, 60.0, "s0010_re"), (10_000, 50.0, "s0010_re"))


def extra_spec(seed: int) -> CaseSpec:
    """Extra tuning case ``seed`` (never a held-out seed): its rate, mains and ECG record by
    ``seed % 6`` (EXTRA_COMBOS)."""
    rate, mains, record = EXTRA_COMBOS[seed % len(EXTRA_COMBOS)]
    return CaseSpec(f"x{seed}", seed, rate, mains, record, True)


def _skip_without_data() -> None:
    """Skip the calling test where the PhysioNet recordings (../shared) or wfdb are missing."""
    import pytest

    if not DATA_DIR.is_dir():
        pytest.skip(f"{DATA_DIR} not found (PhysioNet recordings live in ../shared)")
    pytest.importorskip("wfdb", reason="reading PhysioNet records needs wfdb")


def extra_case_or_skip(seed: int, legacy_heart: bool = True,
                       duration_s: float | None = None, notched_mains: bool = True) -> RealCase:
    """Extra tuning case ``seed`` (:func:`extra_spec`) rendered whole (or its first
    ``duration_s`` s, see :func:`generate`), by default with the heart as built before
    2026-12-02 (``legacy_heart``: the seeds and times the tests pinned before then were found
    on that construction) and with the recording's own mains notched out (``notched_mains``:
    as built before 2026-12-05; ``scripts/explore_seeds`` builds neither); skips the calling
    test where the PhysioNet recordings (../shared) or wfdb are missing."""
    _skip_without_data()
    return generate(extra_spec(seed), duration_s, legacy_heart=legacy_heart,
                    notched_mains=notched_mains)


def case_or_skip(name: str) -> RealCase:
    """The benchmark's case ``name`` (:data:`CASES`; tests use tuning ones only) rendered
    whole, with the recording's own mains notched out (as :func:`extra_case_or_skip`); skips
    the calling test where the PhysioNet recordings or wfdb are missing."""
    _skip_without_data()
    return generate(next(c for c in CASES if c.name == name), notched_mains=True)


def through_chain(case: RealCase, raw: np.ndarray, start: int,
                  chunk: int) -> tuple[list[DetectedEvent], list[ArtifactSpan]]:
    """``raw`` (µV rows of ``case`` from absolute index ``start``) through a fresh
    FreeRunChain in chunks of ``chunk`` rows, then flushed: its events and artifact spans."""
    chain = FreeRunChain(case.montage, case.sample_rate_hz, case.range_uv, start=start)
    outs = [chain.process(raw[i:i + chunk], start + i) for i in range(0, len(raw), chunk)]
    outs.append(chain.flush())
    return [e for o in outs for e in o.events], [s for o in outs for s in o.artifacts]


def extra_case_in_chunkings(seed: int, from_s: float, to_s: float, chunks_s: tuple[float, ...],
                            legacy_heart: bool = True, notched_mains: bool = True
                            ) -> tuple[float, list[tuple[list[DetectedEvent], list[ArtifactSpan]]]]:
    """Extra tuning case ``seed`` over [``from_s``, ``to_s``) s through a fresh chain (see
    :func:`through_chain`) once per chunk length in ``chunks_s`` (s): its rate (Hz) and each
    run's events and spans (absolute sample indices). Built and skipped as
    :func:`extra_case_or_skip`."""
    case = extra_case_or_skip(seed, legacy_heart, notched_mains=notched_mains)
    fs = case.sample_rate_hz
    a = int(from_s * fs)
    raw = case.raw[a:int(to_s * fs)]
    return fs, [through_chain(case, raw, a, int(c * fs)) for c in chunks_s]


def data_dir() -> Path:
    """:data:`DATA_DIR`, or FileNotFoundError saying what is missing."""
    if not DATA_DIR.is_dir():
        raise FileNotFoundError(f"real-signal cases need the PhysioNet recordings in {DATA_DIR} "
                                "(../shared/data beside the checkout)")
    return DATA_DIR


def generate(spec: CaseSpec, duration_s: float | None = None, *,
             ecg_source_noise: bool = False, legacy_heart: bool = False,
             cautery_per_min: float = CAUTERY_PER_MIN, notched_mains: bool = False) -> RealCase:
    """Render ``spec`` (first ``duration_s`` s of it; None: all of it). ``ecg_source_noise``:
    keep the ECG recording's own noise (see HEART_LOWPASS_HZ). The heart rate changes between
    the QRS complexes only (see QRS_KEPT_S), and beats carrying non-cardiac activity are cut
    out of the recording (see NON_CARDIAC_RATIO). ``legacy_heart``: the heart as built before
    2026-12-02 — every beat kept, the whole ECG played faster or slower, QRS complexes too.
    ``cautery_per_min``: cautery episodes per minute (more, to probe what follows them; the
    other components are drawn as before, placed around them). ``notched_mains``: the ECG
    recording's own mains notched out, as before 2026-12-05 (always so with ``legacy_heart``),
    not fitted and subtracted (see SOURCE_MAINS_WINDOW_S)."""
    fs = float(spec.rate_hz)
    n = round((duration_s or spec.duration_s) * fs)
    montage = load_montage("lumbar").first(N_CHANNELS)
    rng = {name: np.random.default_rng([spec.seed, tag]) for name, tag in _STREAM.items()}
    timeline = _Timeline(n, N_CHANNELS)
    artifacts = np.zeros((n, N_CHANNELS), np.float32)
    truth = GroundTruth()
    _add_cautery(artifacts, truth, timeline, rng["cautery"], fs, cautery_per_min)
    _add_pops(artifacts, truth, timeline, rng["pops"], fs)
    _add_common_mode(artifacts, truth, timeline, rng["common_mode"], fs)
    emg = np.zeros((n, N_CHANNELS), np.float32)
    _add_events(emg, truth, timeline, rng["events"], fs)
    truth.events.sort(key=lambda e: e.onset)
    truth.artifacts.sort(key=lambda a: a.onset)
    rec = load_ecg(spec.ecg_record, heart_only=not ecg_source_noise,
                   cardiac_only=not legacy_heart,
                   notched_mains=notched_mains or legacy_heart)
    ecg, beats, labels = _ecg(rec, montage, n, fs, rng["ecg"], legacy_heart)
    truth.ecg_beats = beats.tolist()
    mains, mains_hz = _mains(spec.mains_hz, n, fs, rng["mains"])
    components = {"emg": emg, "ecg": ecg, "mains": mains, "artifacts": artifacts,
                  "noise": _noise(n, rng["noise"]), "wander": _wander(n, fs, rng["wander"])}
    raw = np.clip(sum(components.values()), -RANGE_UV, RANGE_UV).astype(np.float32)
    return RealCase(spec, montage, raw, components, truth, labels, mains_hz)


# --- placing things without overlap --------------------------------------------------------


class _Timeline:
    """Spans already taken, per channel, so events and artifacts can be placed apart."""

    def __init__(self, n: int, n_channels: int) -> None:
        self.n = n
        self._spans = np.zeros((0, 2), np.int64)
        self._channels = np.zeros((0, n_channels), bool)

    def take(self, start: int, stop: int, channels: np.ndarray) -> None:
        """Mark samples [start, stop) of ``channels`` (indices) taken."""
        mask = np.zeros((1, self._channels.shape[1]), bool)
        mask[0, channels] = True
        self._spans = np.vstack([self._spans, [[start, stop]]])
        self._channels = np.vstack([self._channels, mask])

    def place(self, rng: np.random.Generator, length: int, channels: np.ndarray, gap: int,
              edge: int) -> int | None:
        """A random start for ``length`` samples on ``channels`` at least ``gap`` samples from
        anything taken there and ``edge`` samples from both ends; None if none was found."""
        on_channels = self._channels[:, channels].any(axis=1)
        starts, stops = self._spans[on_channels, 0], self._spans[on_channels, 1]
        for _ in range(PLACE_TRIES):
            start = int(rng.integers(edge, max(edge + 1, self.n - edge - length)))
            if start + length + edge <= self.n and not np.any(
                    (starts < start + length + gap) & (stops + gap > start)):
                return start
        return None

    def must_place(self, rng: np.random.Generator, length: int, channels: np.ndarray, gap: int,
                   edge: int) -> int:
        """:meth:`place`, or RuntimeError when the case is too short."""
        start = self.place(rng, length, channels, gap, edge)
        if start is None:
            raise RuntimeError(f"cannot place {length} samples on channels {channels.tolist()} "
                               f"of a {self.n}-sample case without overlap: it is too short")
        return start


def _count(per_min: float, n: int, fs: float) -> int:
    """How many of a thing at ``per_min`` per minute fit a case of ``n`` samples."""
    return max(1, round(per_min * n / fs / 60.0))


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None):
    """Log-uniform draw(s) within ``bounds``."""
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), size))


# --- artifacts -----------------------------------------------------------------------------


def _visible_s(step_uv: np.ndarray, tau_s: np.ndarray) -> float:
    """How long (s) steps of ``step_uv`` (µV) decaying with ``tau_s`` (s) stay ≥ VISIBLE_UV
    through a CHAIN_HIGHPASS_HZ high-pass: its edge (height step, time constant of the
    high-pass) and its tail's slope (height step·τ_hp/τ, time constant τ); the longest."""
    tau_hp = 1.0 / (2.0 * np.pi * CHAIN_HIGHPASS_HZ)
    size = np.abs(step_uv) / VISIBLE_UV
    edge = tau_hp * np.log(np.maximum(size, 1.0))
    tail = tau_s * np.log(np.maximum(size * tau_hp / tau_s, 1.0))
    return float(max(MIN_ARTIFACT_S, edge.max(), tail.max()))


def _add_decay(out: np.ndarray, start: int, step_uv: np.ndarray, tau_s: np.ndarray,
               channels: np.ndarray, fs: float) -> None:
    """Add steps of ``step_uv`` (µV) at ``start`` on ``channels`` decaying with ``tau_s`` (s),
    drawn until they are below DECAY_END_UV (or the case ends)."""
    length = math.ceil(float(np.max(tau_s * np.log(np.abs(step_uv) / DECAY_END_UV))) * fs)
    t = np.arange(min(length, out.shape[0] - start)) / fs
    out[start:start + len(t), channels] += step_uv * np.exp(-t[:, None] / tau_s)


def _cautery_gate(rng: np.random.Generator, length: int, fs: float) -> np.ndarray:
    """Cautery keying over ``length`` samples: 1 in pulses, CAUTERY_LEAK in pauses."""
    n_max = math.ceil(length / fs / CAUTERY_PULSE_S[0]) + 1
    pulses = np.round(rng.uniform(*CAUTERY_PULSE_S, n_max) * fs).astype(np.int64)
    pauses = np.round(rng.uniform(*CAUTERY_PAUSE_S, n_max) * fs).astype(np.int64)
    levels = np.tile([1.0, CAUTERY_LEAK], n_max)
    return np.repeat(levels, np.column_stack([pulses, pauses]).ravel())[:length]


def _add_cautery(out: np.ndarray, truth: GroundTruth, timeline: _Timeline,
                 rng: np.random.Generator, fs: float, per_min: float) -> None:
    """Cautery episodes (``per_min`` per minute) on every channel: keyed broadband noise,
    then per-channel recovery."""
    everywhere = np.arange(N_CHANNELS)
    for _ in range(_count(per_min, timeline.n, fs)):
        length = round(rng.uniform(*CAUTERY_S) * fs)
        step = rng.uniform(*CAUTERY_STEP_UV, N_CHANNELS) * rng.choice([-1.0, 1.0], N_CHANNELS)
        tau = rng.uniform(*CAUTERY_TAU_S, N_CHANNELS)
        tail = round(_visible_s(step, tau) * fs)
        start = timeline.must_place(rng, length + tail, everywhere, round(CAUTERY_GAP_S * fs),
                                    round(EDGE_S * fs))
        level = _log_uniform(rng, CAUTERY_RMS_UV, N_CHANNELS)
        gate = _cautery_gate(rng, length, fs)
        noise = rng.standard_normal((length, N_CHANNELS)).astype(np.float32)
        out[start:start + length] += noise * (gate[:, None] * level).astype(np.float32)
        _add_decay(out, start + length, step, tau, everywhere, fs)
        stop = start + length + tail
        timeline.take(start, stop + round(CAUTERY_CLEAR_S * fs), everywhere)
        truth.artifacts.append(TruthArtifact("cautery", tuple(everywhere.tolist()), start,
                                             stop - 1))


def _add_transient(out: np.ndarray, truth: GroundTruth, timeline: _Timeline,
                   rng: np.random.Generator, fs: float, kind: str, channels: np.ndarray,
                   step_uv: np.ndarray, tau_s: np.ndarray) -> None:
    """One decaying step on ``channels`` at a free place, with its truth span."""
    span = round(_visible_s(step_uv, tau_s) * fs)
    start = timeline.must_place(rng, span, channels, round(PLACE_GAP_S * fs), round(EDGE_S * fs))
    _add_decay(out, start, step_uv, tau_s, channels, fs)
    timeline.take(start, start + span, channels)
    truth.artifacts.append(TruthArtifact(kind, tuple(sorted(channels.tolist())), start,
                                         start + span - 1))


def _add_pops(out: np.ndarray, truth: GroundTruth, timeline: _Timeline,
              rng: np.random.Generator, fs: float) -> None:
    """Electrode pops: one channel steps by 0.1–2 mV and decays (τ 50–500 ms)."""
    for _ in range(_count(POPS_PER_MIN, timeline.n, fs)):
        channel = rng.integers(N_CHANNELS, size=1)
        step = _log_uniform(rng, POP_UV, 1) * rng.choice([-1.0, 1.0])
        _add_transient(out, truth, timeline, rng, fs, "pop", channel, step,
                       rng.uniform(*POP_TAU_S, 1))


def _add_common_mode(out: np.ndarray, truth: GroundTruth, timeline: _Timeline,
                     rng: np.random.Generator, fs: float) -> None:
    """Common-mode steps: 5–6 channels jump by 10–40 µV (one sign) at the same sample, then
    return fast (a transient, τ 5–50 ms) or slowly (a step, τ 2–10 s)."""
    for _ in range(_count(COMMON_MODE_PER_MIN, timeline.n, fs)):
        k = int(rng.integers(COMMON_MODE_CHANNELS[0], COMMON_MODE_CHANNELS[1] + 1))
        channels = np.sort(rng.choice(N_CHANNELS, k, replace=False))
        step = rng.uniform(*COMMON_MODE_UV, k) * rng.choice([-1.0, 1.0])
        kind = ("transient", "step")[int(rng.integers(2))]
        tau = np.full(k, rng.uniform(*COMMON_MODE_TAU_S[kind]))
        _add_transient(out, truth, timeline, rng, fs, "common_mode", channels, step, tau)


# --- EMG events from real MUAPs ------------------------------------------------------------


def _needle_emg_uv(name: str) -> np.ndarray:
    """An emgdb record (µV). Read from the ``_mV.txt`` copy: ``emg_neuropathy.dat`` wraps
    410 samples around int16 (see the data's SOURCE.md)."""
    path = data_dir() / "physionet_emgdb" / f"emg_{name}_mV.txt"
    return np.loadtxt(path, comments="#")[:, 1] * 1000.0


def _isolated_muaps(x: np.ndarray) -> np.ndarray:
    """Isolated discharges of a 4 kHz needle record (shapes × samples, µV), each a
    MUAP_PRE_S + MUAP_POST_S window around its largest peak, ends brought to 0."""
    y = signal.sosfiltfilt(signal.butter(2, 20.0, "highpass", fs=EMG_FS, output="sos"), x)
    sigma = np.median(np.abs(y)) / 0.6745
    pre, post, guard = (round(s * EMG_FS) for s in (MUAP_PRE_S, MUAP_POST_S, MUAP_GUARD_S))
    peaks, _ = signal.find_peaks(np.abs(y), height=MUAP_MIN_SIGMA * sigma, distance=pre + post)
    peaks = peaks[(peaks >= pre + guard) & (peaks < len(y) - post - guard)]
    windows = y[peaks[:, None] + np.arange(-pre - guard, post + guard)]
    height = np.abs(y[peaks])[:, None]
    core = round(MUAP_CORE_S * EMG_FS)
    around = np.ones(windows.shape[1], bool)
    around[guard + pre - core:guard + pre + core] = False
    muaps = windows[:, guard:guard + pre + post]
    edge = round(0.001 * EMG_FS)
    ends = np.maximum(np.abs(muaps[:, :edge]).max(1), np.abs(muaps[:, -edge:]).max(1))
    good = muaps[(np.abs(windows[:, around]).max(1) < MUAP_ISOLATION * height[:, 0])
                 & (ends < MUAP_EDGE * height[:, 0])]
    good = good[np.unique(np.linspace(0, len(good) - 1, MUAPS_PER_RECORD).astype(int))]
    ramp = np.linspace(0.0, 1.0, good.shape[1])
    good = good - good[:, :1] - (good[:, -1:] - good[:, :1]) * ramp
    return good * signal.windows.tukey(good.shape[1], 0.3)


def _ratio(to_hz: float, from_hz: float) -> tuple[int, int]:
    """Up and down factors for resample_poly from ``from_hz`` to ``to_hz``."""
    r = Fraction(to_hz).limit_denominator(10_000) / Fraction(from_hz).limit_denominator(10_000)
    return r.numerator, r.denominator


@lru_cache(maxsize=4)
def muap_library(fs: float) -> np.ndarray:
    """Real MUAP shapes (shapes × samples) at ``fs`` (Hz), each scaled to p-p 1."""
    shapes = np.concatenate([_isolated_muaps(_needle_emg_uv(name)) for name in EMG_RECORDS])
    shapes = signal.resample_poly(shapes, *_ratio(fs, EMG_FS), axis=1)
    return shapes / np.ptp(shapes, axis=1, keepdims=True)


def _fire(shape: np.ndarray, times_s: np.ndarray, amplitudes: np.ndarray,
          fs: float) -> np.ndarray:
    """``shape`` fired at ``times_s`` (s, ≥ 0) with ``amplitudes``; sample 0 is time 0."""
    at = np.round(times_s * fs).astype(np.int64)
    impulses = np.bincount(at, weights=amplitudes, minlength=int(at.max()) + 1)
    return np.convolve(impulses, shape)


def _unit(rng: np.random.Generator, library: np.ndarray) -> np.ndarray:
    """One MUAP shape of the library, random polarity."""
    return library[int(rng.integers(len(library)))] * rng.choice([-1.0, 1.0])


def _spike(rng: np.random.Generator, library: np.ndarray, fs: float) -> tuple[np.ndarray, None]:
    return _unit(rng, library), None


def _burst(rng: np.random.Generator, library: np.ndarray, fs: float) -> tuple[np.ndarray, None]:
    """3–15 MUAPs of 1–3 units at random times within 20–200 ms."""
    duration = float(_log_uniform(rng, BURST_S))
    n = int(rng.integers(BURST_MUAPS[0], BURST_MUAPS[1] + 1))
    units = int(rng.integers(BURST_UNITS[0], BURST_UNITS[1] + 1))
    owner = rng.integers(units, size=n)
    times, amplitudes = rng.uniform(0.0, duration, n), rng.uniform(0.4, 1.0, n)
    parts = [_fire(_unit(rng, library), times[owner == u], amplitudes[owner == u], fs)
             for u in range(units) if np.any(owner == u)]
    wave = np.zeros(max(len(p) for p in parts))
    for p in parts:
        wave[:len(p)] += p
    return wave, None


def _a_train(rng: np.random.Generator, library: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """One unit at a steady 60–210 Hz for 0.2–5 s (±8 % slow amplitude modulation), low-passed
    at 2× its rate: a near-sinusoid, as real A-trains look."""
    rate = float(rng.uniform(*A_TRAIN_HZ))
    times = np.arange(0.0, float(_log_uniform(rng, A_TRAIN_S)), 1.0 / rate)
    modulation = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * times
                                     + rng.uniform(0, 2 * np.pi))
    wave = _fire(_unit(rng, library), times, modulation, fs)
    sos = signal.butter(4, A_TRAIN_LOWPASS_X_RATE * rate, fs=fs, output="sos")
    return signal.sosfiltfilt(sos, wave), rate


def _b_train(rng: np.random.Generator, library: np.ndarray, fs: float) -> tuple[np.ndarray, float]:
    """One unit firing irregularly (gamma intervals, CV 0.5) at ~5–40 Hz for 0.3–5 s."""
    rate = float(rng.uniform(*B_TRAIN_HZ))
    duration = float(_log_uniform(rng, B_TRAIN_S))
    min_isi = 1.5 * library.shape[1] / fs
    isi = np.maximum(rng.gamma(4.0, 0.25 / rate, int(duration * rate * 3) + 4), min_isi)
    times = np.concatenate([[0.0], np.cumsum(isi)])
    times = times[:max(2, int(np.sum(times <= duration)))]
    return _fire(_unit(rng, library), times, rng.uniform(0.6, 1.0, len(times)), fs), rate


_SHAPES = {"spike": _spike, "burst": _burst, "a_train": _a_train, "b_train": _b_train}


def _trimmed(wave: np.ndarray) -> np.ndarray:
    """``wave`` without the negligible samples at both ends."""
    keep = np.flatnonzero(np.abs(wave) >= NEGLIGIBLE * np.abs(wave).max())
    return wave[keep[0]:keep[-1] + 1]


def _add_events(out: np.ndarray, truth: GroundTruth, timeline: _Timeline,
                rng: np.random.Generator, fs: float) -> None:
    """EMG events of every kind (longest kinds first, so everything fits), one channel each;
    an event that finds no room is drawn anew (in a short case, long trains rarely fit)."""
    library = muap_library(fs)
    for kind, per_min in EVENTS_PER_MIN.items():
        for _ in range(_count(per_min, timeline.n, fs)):
            for _ in range(EVENT_DRAWS):
                shape, rate = _SHAPES[kind](rng, library, fs)
                wave = _trimmed(shape)
                channel = rng.integers(N_CHANNELS, size=1)
                start = timeline.place(rng, len(wave), channel, round(PLACE_GAP_S * fs),
                                       round(EDGE_S * fs))
                if start is not None:
                    break
            else:
                raise RuntimeError(f"no room for a {kind} in a {timeline.n}-sample case")
            wave = wave * (float(_log_uniform(rng, PEAK_UV)) / np.ptp(wave))
            out[start:start + len(wave), channel[0]] += wave
            timeline.take(start, start + len(wave), channel)
            train = {"a_train": "A", "b_train": "B"}.get(kind)
            truth.events.append(TruthEvent(kind, (int(channel[0]),), start, start + len(wave) - 1,
                                           float(np.ptp(wave.astype(np.float32))), train, rate,
                                           (1.0,)))


# --- real ECG ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EcgRecord:
    """An ECG recording ready for use: leads (samples × leads, mV) with its own mains and
    baseline wander removed, R-peak sample indices and beat symbols (``?``: not labelled)."""

    name: str
    fs: float
    leads: np.ndarray
    r_peaks: np.ndarray
    labels: np.ndarray

    def loop_bounds(self) -> tuple[int, int]:
        """[start, stop) of the whole beats that are looped: from just before the 2nd R peak to
        just before the last."""
        cut = round(LOOP_CUT_BEFORE_R_S * self.fs)
        return int(self.r_peaks[1]) - cut, int(self.r_peaks[-1]) - cut


@lru_cache(maxsize=4)
def load_ecg(name: str, heart_only: bool = True, cardiac_only: bool = False,
             notched_mains: bool = False) -> EcgRecord:
    """Read an ECG record of :data:`ECG_RECORDS` from ``physionet_ecg`` with wfdb (or from its
    pinned wheel, :data:`WHEEL_ECG`); R peaks from its ``.atr`` beat labels, or detected on all
    leads together where it has none.
    ``heart_only``: the recording's own noise above HEART_LOWPASS_HZ removed (:func:`_heart_only`);
    False keeps it (the construction before 2026-11-30). ``cardiac_only``: the beats carrying
    non-cardiac activity cut out (:func:`_cardiac_only`). The recording's own mains is fitted
    and subtracted (:func:`_without_mains`), or with ``notched_mains`` notched out as before
    2026-12-05 (:func:`_notched`; unlabelled records have their R peaks found on the notched
    leads either way)."""
    mains_hz, annotated = ECG_RECORDS[name]
    if name in WHEEL_ECG:
        fs, recorded = _plux_ecg(wheel_file(*WHEEL_ECG[name]))
        ann = None
    else:
        path = str(data_dir() / "physionet_ecg" / name)
        with warnings.catch_warnings():  # wfdb builds its tables with a keyword pandas deprecates
            warnings.filterwarnings("ignore", message="The inplace keyword")
            import wfdb

            record = wfdb.rdrecord(path)
            ann = wfdb.rdann(path, "atr") if annotated else None
        fs, recorded = float(record.fs), record.p_signal
    leads = _highpassed(recorded, fs)
    notched = _notched(leads, fs, mains_hz) if notched_mains or ann is None else None
    if ann is not None:
        symbols = np.array(ann.symbol)
        beat = np.isin(symbols, list(BEAT_SYMBOLS))
        r_peaks, labels = np.asarray(ann.sample)[beat], symbols[beat]
    else:
        r_peaks = _detect_r(notched, fs)
        labels = np.full(len(r_peaks), "?")
    leads = notched if notched_mains else _without_mains(leads, fs, mains_hz,
                                                         r_peaks.astype(np.int64))
    if heart_only:
        leads = _heart_only(leads, r_peaks.astype(np.int64), labels, fs)
    rec = EcgRecord(name, fs, leads, r_peaks.astype(np.int64), labels)
    return _cardiac_only(rec) if cardiac_only else rec


def _plux_ecg(path: Path) -> tuple[float, np.ndarray]:
    """Sample rate (Hz) and leads (samples × leads, mV) of an OpenSignals HDF5 ECG recording
    (one device, raw 16-bit channels)."""
    import h5py

    with h5py.File(path, "r") as f:
        device = f[next(iter(f))]
        fs = float(device.attrs["sampling rate"])
        raw = device["raw"]
        names = sorted((k for k in raw if k.startswith("channel_")), key=lambda k: int(k[8:]))
        adc = np.column_stack([raw[k][:, 0] for k in names]).astype(np.float64)
    return fs, (adc / 2.0 ** 16 - 0.5) * 3.0


def _heart_only(leads: np.ndarray, r_peaks: np.ndarray, labels: np.ndarray,
                fs: float) -> np.ndarray:
    """``leads`` (samples × leads, mV) with their content above HEART_LOWPASS_HZ (zero-phase
    split) replaced by its beat-locked part (see HEART_NEIGHBOURS); none outside the beats."""
    low = signal.sosfiltfilt(signal.butter(4, HEART_LOWPASS_HZ, "lowpass", fs=fs, output="sos"),
                             leads, axis=0)
    high = leads - low
    offsets = np.arange(-round(HEART_BEAT_S[0] * fs), round(HEART_BEAT_S[1] * fs) + 1)
    qrs = np.arange(round(HEART_QRS_S[0] * fs), round(HEART_QRS_S[1] * fs) + 1)
    r = r_peaks[(r_peaks + offsets[0] >= 0) & (r_peaks + offsets[-1] < len(leads))]
    label = labels[np.searchsorted(r_peaks, r)]
    windows = r[:, None] + offsets  # beats × window (samples)
    fast = high[windows]  # beats × window × leads
    size = np.maximum(np.ptp(low[r[:, None] + qrs], axis=1), 1e-6)  # beats × leads
    ventricular = np.isin(label, list(VENTRICULAR))
    for group in (ventricular, ~ventricular):
        if group.sum() >= 2 * HEART_NEIGHBOURS + 1:  # else too few to average: as recorded
            fast[group] = _neighbour_mean(fast[group], size[group], qrs - offsets[0], fs)
    split = r[:-1] + HEART_SPLIT * np.diff(r)  # where beat b hands over to beat b + 1
    begin = np.concatenate([[windows[0, 0] - HEART_FADE_S * fs], split])
    end = np.concatenate([split, [windows[-1, -1] + HEART_FADE_S * fs]])
    weight = _fade_in(windows - begin[:, None], fs) * (1.0 - _fade_in(windows - end[:, None], fs))
    out = low.copy()
    np.add.at(out, windows.ravel(), (fast * weight[:, :, None]).reshape(-1, leads.shape[1]))
    return out


def _fade_in(samples: np.ndarray, fs: float) -> np.ndarray:
    """0 → 1 raised cosine over ±HEART_FADE_S/2 around ``samples`` = 0."""
    x = np.clip(samples / (HEART_FADE_S * fs) + 0.5, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def _neighbour_mean(fast: np.ndarray, size: np.ndarray, qrs: np.ndarray, fs: float) -> np.ndarray:
    """Each beat's ``fast`` window (beats × window × leads, mV) replaced by the mean of its
    2·HEART_NEIGHBOURS + 1 nearest beats, each normalised by its ``size`` (beats × leads) and
    scaled to this beat's; beats are aligned on their ``qrs`` samples (window indices) to
    HEART_ALIGN_S (cross-correlation with their median, upsampled) before averaging and
    shifted back after (a Fourier-domain fractional delay on a zero-padded window)."""
    normal = fast / size[:, None, :]
    up = max(1, math.ceil(1.0 / (HEART_ALIGN_S * fs)))
    fine = signal.resample_poly(normal[:, qrs], up, 1, axis=1)
    reach = round(HEART_ALIGN_MAX_S * fs * up)
    reference = np.median(fine, axis=0)[reach:fine.shape[1] - reach]
    lags = np.arange(-reach, reach + 1)
    match = np.stack([np.einsum("bwl,wl->b", fine[:, reach + k:fine.shape[1] - reach + k],
                                reference) for k in lags], axis=1)
    delay = lags[np.argmax(match, axis=1)] / up  # samples by which each beat is late
    n = fast.shape[1] + 2 * math.ceil(HEART_ALIGN_MAX_S * fs) + 1
    turn = np.exp(-2j * np.pi * np.fft.rfftfreq(n)[None, :] * delay[:, None])[:, :, None]
    aligned = np.fft.irfft(np.fft.rfft(normal, n, axis=1) / turn, n, axis=1)
    k = 2 * HEART_NEIGHBOURS + 1
    total = np.cumsum(np.concatenate([np.zeros((1,) + aligned.shape[1:]), aligned]), axis=0)
    first = np.clip(np.arange(len(aligned)) - HEART_NEIGHBOURS, 0, len(aligned) - k)
    mean = (total[first + k] - total[first]) / k
    back = np.fft.irfft(np.fft.rfft(mean, n, axis=1) * turn, n, axis=1)
    return back[:, :fast.shape[1]] * size[:, None, :]


def _highpassed(x: np.ndarray, fs: float) -> np.ndarray:
    """``x`` (samples × leads) zero-phase high-passed at ECG_HIGHPASS_HZ (baseline wander out)."""
    return signal.sosfiltfilt(signal.butter(2, ECG_HIGHPASS_HZ, "highpass", fs=fs, output="sos"),
                              x, axis=0)


def _notched(y: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    """``y`` notched (Q 30, zero phase) at every harmonic of ``mains_hz`` below Nyquist: the
    construction before 2026-12-05, kept for ``notched_mains`` (and ``legacy_heart``) and to
    find an unlabelled record's R peaks on. Each QRS rings through the notch
    for ~0.2 s either side, beat-locked, so the heart carried a line at the recording's mains
    beside its QRS (see SOURCE_MAINS_WINDOW_S)."""
    for f in np.arange(mains_hz, fs / 2.0 - 1.0, mains_hz):
        b, a = signal.iirnotch(f, 30.0, fs)
        y = signal.filtfilt(b, a, y, axis=0)
    return y


def _without_mains(y: np.ndarray, fs: float, mains_hz: float, r_peaks: np.ndarray) -> np.ndarray:
    """``y`` (samples × leads) less the recording's own mains: its frequency found within
    ±SOURCE_MAINS_SEARCH_HZ of ``mains_hz`` on the samples away from QRS complexes
    (SOURCE_MAINS_QRS_S around each R peak of ``r_peaks``), then, per SOURCE_MAINS_WINDOW_S
    window (half overlapping, raised-cosine cross-faded), every harmonic below Nyquist fitted
    on those samples by least squares and subtracted throughout. Only the line goes: no notch
    rings on the QRS (see SOURCE_MAINS_WINDOW_S)."""
    n = len(y)
    away = np.ones(n, bool)
    for a, b in np.clip(r_peaks[:, None] + np.round(np.array(SOURCE_MAINS_QRS_S) * fs)
                        .astype(np.int64), 0, n):
        away[a:b] = False
    t = np.arange(n) / fs
    size = max(n, math.ceil(fs / SOURCE_MAINS_STEP_HZ))  # (zero-padded to the step)
    power = np.sum(np.abs(np.fft.rfft(np.where(away[:, None], y, 0.0), size, axis=0)) ** 2,
                   axis=1)
    bins = np.fft.rfftfreq(size, 1.0 / fs)
    near = np.abs(bins - mains_hz) <= SOURCE_MAINS_SEARCH_HZ
    f0 = float(bins[near][np.argmax(power[near])])
    freqs = np.arange(f0, fs / 2.0 - 1.0, f0)
    win = min(n, round(SOURCE_MAINS_WINDOW_S * fs))
    hop = max(1, win // 2)
    starts = sorted(set(range(0, n - win + 1, hop)) | {n - win})
    fit, weight = np.zeros(y.shape), np.zeros(n)
    taper = np.hanning(win + 2)[1:-1]
    for i, a in enumerate(starts):
        part = slice(a, a + win)
        angle = 2.0 * np.pi * np.outer(t[part], freqs)
        design = np.hstack((np.cos(angle), np.sin(angle)))
        keep = away[part]
        if keep.sum() < 2 * design.shape[1]:
            continue
        beta = np.linalg.lstsq(design[keep], y[part][keep], rcond=None)[0]
        w = taper.copy()
        if i == 0:
            w[:win // 2] = 1.0  # (the ends are in one window only)
        if i == len(starts) - 1:
            w[win // 2:] = 1.0
        fit[part] += w[:, None] * (design @ beta)
        weight[part] += w
    return y - fit / np.maximum(weight, 1e-12)[:, None]


def _detect_r(leads: np.ndarray, fs: float) -> np.ndarray:
    """R peaks of an unlabelled record: peaks of the 5–30 Hz vector magnitude of all leads."""
    sos = signal.butter(2, [5.0, 30.0], "bandpass", fs=fs, output="sos")
    energy = np.sqrt((signal.sosfiltfilt(sos, leads, axis=0) ** 2).sum(axis=1))
    peaks, _ = signal.find_peaks(energy, height=0.4 * np.percentile(energy, 99),
                                 distance=round(0.3 * fs))
    return peaks


def _cardiac_only(rec: EcgRecord) -> EcgRecord:
    """``rec`` with the beats that carry non-cardiac activity (NON_CARDIAC_RATIO) cut out,
    each from LOOP_CUT_BEFORE_R_S before its R peak to as long before the next; the level
    step at each cut ramped out over CUT_JOIN_S. The first and last beats, and a beat within
    LOOP_CUT_BEFORE_R_S of the one before, are never cut (the cut would reach a kept R peak
    or before the record)."""
    fs, r = rec.fs, rec.r_peaks
    band = signal.sosfiltfilt(signal.butter(4, NON_CARDIAC_BAND_HZ, "bandpass", fs=fs,
                                            output="sos"), rec.leads, axis=0)
    a, b = round(NON_CARDIAC_S[0] * fs), round(NON_CARDIAC_S[1] * fs)
    inside = np.flatnonzero(r[:-1] + b < len(band))
    rms = np.sqrt(np.stack([np.mean(band[r[i] + a:r[i] + b] ** 2, axis=0) for i in inside]))
    cut = round(LOOP_CUT_BEFORE_R_S * fs)
    cuttable = (inside >= 1) & (r[inside] - cut > r[np.maximum(inside - 1, 0)])
    odd = inside[(rms > NON_CARDIAC_RATIO * np.median(rms, axis=0)).any(axis=1) & cuttable]
    if not len(odd):
        return rec
    keep = np.ones(len(rec.leads), bool)
    for i in odd.tolist():
        keep[r[i] - cut:r[i + 1] - cut] = False
    leads = rec.leads[keep]
    ramp = np.linspace(1.0, 0.0, round(CUT_JOIN_S * fs) + 1)[1:]
    for i in odd.tolist():  # (each cut's first kept sample, in the new indices)
        j = int(np.count_nonzero(keep[:r[i + 1] - cut]))
        if j == 0 or j >= len(leads):
            continue
        span = leads[j:j + len(ramp)]
        span += np.outer(ramp[:len(span)], leads[j - 1] - leads[j])
    kept = np.delete(np.arange(len(r)), odd)
    index = np.cumsum(keep) - 1
    return EcgRecord(rec.name, fs, leads, index[r[kept]].astype(np.int64), rec.labels[kept])


def _looped(rec: EcgRecord, start: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``m`` samples of the record's looped whole beats from ``start`` (within the loop): leads,
    R peaks (stream samples) and their labels. The loop is ramp-corrected so it joins smoothly."""
    lo, hi = rec.loop_bounds()
    ramp = np.arange(hi - lo) / (hi - lo)
    loop = rec.leads[lo:hi] - np.outer(ramp, rec.leads[hi] - rec.leads[lo])
    inside = (rec.r_peaks >= lo) & (rec.r_peaks < hi)
    passes = np.arange(math.ceil((start + m) / (hi - lo)) + 1)[:, None] * (hi - lo)
    beats = (rec.r_peaks[inside] - lo + passes).ravel() - start
    labels = np.tile(rec.labels[inside], len(passes))
    keep = (beats >= 0) & (beats < m)
    return loop[(start + np.arange(m)) % (hi - lo)], beats[keep], labels[keep]


def _window_start(rec: EcgRecord, m: int, rng: np.random.Generator) -> int:
    """Where a window of ``m`` samples starts in the loop: around a random premature beat of a
    labelled record (so every case holds one), anywhere otherwise."""
    lo, hi = rec.loop_bounds()
    inside = (rec.r_peaks >= lo) & (rec.r_peaks < hi)
    ectopic = rec.r_peaks[inside & ~np.isin(rec.labels, ["N", "?"])] - lo
    if len(ectopic) and m < hi - lo:
        anchor = int(rng.choice(ectopic))
        return int(np.clip(anchor - rng.uniform(0.1, 0.9) * m, 0, hi - lo - m))
    return int(rng.integers(hi - lo))


def _source_time_s(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Recording time (s) played at each of ``n`` case samples: the playback rate moves
    linearly between knots RATE_KNOT_S apart within 1 ± RATE_CHANGE."""
    knots = np.cumsum(rng.uniform(*RATE_KNOT_S, math.ceil(n / fs / RATE_KNOT_S[0]) + 5)) \
        - RATE_KNOT_S[1]
    rates = rng.uniform(1.0 - RATE_CHANGE, 1.0 + RATE_CHANGE, len(knots))
    rate = np.interp(np.arange(n) / fs, knots, rates)
    return ECG_LEAD_IN_S + (np.cumsum(rate) - rate[0]) / fs


def _qrs_at_own_rate(source_s: np.ndarray, beat_s: np.ndarray, fs: float) -> np.ndarray:
    """``source_s`` (recording time, s, at each case sample; see :func:`_source_time_s`)
    re-timed so that each beat's R − QRS_KEPT_S[0] … + QRS_KEPT_S[1] (``beat_s``: R peaks,
    recording time) plays at the recording's own rate, every R peak at the same case time as
    before: the rate change is taken up between the QRS complexes, each stretch between them
    played at one rate. (A beat whose kept span would reach within QRS_KEPT_EDGE_S of either
    end of the case keeps only its R peak's place.)"""
    case_s = np.arange(len(source_s)) / fs
    pre, post = QRS_KEPT_S
    inside = (beat_s > source_s[0]) & (beat_s < source_s[-1])
    beat_s = beat_s[inside]
    at_r = np.interp(beat_s, source_s, case_s)  # each R peak's case time, as before
    edge = QRS_KEPT_EDGE_S
    whole = (beat_s - pre - edge > source_s[0]) & (beat_s + post + edge < source_s[-1]) \
        & (at_r - pre - edge > case_s[0]) & (at_r + post + edge < case_s[-1])
    span = np.where(whole[:, None], [-pre, post], 0.0)  # the kept span around each R (s)
    knots_source = np.concatenate([[source_s[0]], (beat_s[:, None] + span).ravel(),
                                   [source_s[-1]]])
    knots_case = np.concatenate([[case_s[0]], (at_r[:, None] + span).ravel(), [case_s[-1]]])
    keep = np.concatenate([[True], np.column_stack([np.ones_like(whole), whole]).ravel(), [True]])
    knots_source, knots_case = knots_source[keep], knots_case[keep]
    if not (np.all(np.diff(knots_source) > 0) and np.all(np.diff(knots_case) > 0)):
        raise RuntimeError("the kept QRS spans overlap: beats closer than "
                           f"{pre + post:.2f} s apart at the case's rate")
    return np.interp(case_s, knots_case, knots_source)


def _lead_mix(n_leads: int, rng: np.random.Generator) -> np.ndarray:
    """Weights (leads × channels): each channel a cos/sin mix of two different leads (a
    one-lead record: that lead on every channel)."""
    weights = np.zeros((n_leads, N_CHANNELS))
    if n_leads == 1:
        return weights + 1.0
    for c in range(N_CHANNELS):
        a, b = rng.choice(n_leads, 2, replace=False)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        weights[[a, b], c] = np.cos(angle), np.sin(angle)
    return weights


def _ecg_peak_uv(montage: Montage, rng: np.random.Generator) -> np.ndarray:
    """Target ECG peak per channel (µV) by muscle, with a random sign."""
    ranges = [next(((lo, hi) for key, lo, hi in ECG_PEAK_UV if key in ch.muscle.lower()),
                   ECG_PEAK_UV_DISTAL) for ch in montage.channels]
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges]) \
        * rng.choice([-1.0, 1.0], len(ranges))


def _ecg(rec: EcgRecord, montage: Montage, n: int, fs: float, rng: np.random.Generator,
         legacy_heart: bool = False) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The ECG component (n × 8, µV) from ``rec``, the heart's R-peak indices in the case and
    their beat labels. The QRS complexes are played at their own rate
    (:func:`_qrs_at_own_rate`) unless ``legacy_heart``."""
    source_s = _source_time_s(n, fs, rng)
    m = math.ceil((source_s[-1] + 2 * ECG_LEAD_IN_S) * rec.fs)
    leads, beats, labels = _looped(rec, _window_start(rec, m, rng), m)
    if not legacy_heart:
        source_s = _qrs_at_own_rate(source_s, beats / rec.fs, fs)
    mixed = leads @ _lead_mix(leads.shape[1], rng)
    half = round(R_WINDOW_S * rec.fs)
    around_r = np.clip(beats[:, None] + np.arange(-half, half + 1), 0, m - 1)
    natural = np.median(np.abs(mixed[around_r]).max(axis=1), axis=0)
    mixed *= _ecg_peak_uv(montage, rng) / natural
    resampled = signal.resample_poly(mixed, *_ratio(fs, rec.fs), axis=0)
    delay_s = rng.uniform(0.0, ECG_DELAY_MAX_S, N_CHANNELS)
    grid = np.arange(len(resampled)) / fs
    ecg = np.column_stack([np.interp(source_s - delay_s[c], grid, resampled[:, c])
                           for c in range(N_CHANNELS)]).astype(np.float32)
    beat_s = beats / rec.fs
    inside = (beat_s >= source_s[0]) & (beat_s <= source_s[-1])
    r_case = np.round(np.interp(beat_s[inside], source_s, np.arange(n))).astype(np.int64)
    return ecg, r_case, tuple(labels[inside].tolist())


# --- baseline: noise, wander, mains --------------------------------------------------------


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White amplifier noise (n × 8, µV), 2–4 µV RMS per channel."""
    sigma = rng.uniform(*NOISE_UV, N_CHANNELS).astype(np.float32)
    return rng.standard_normal((n, N_CHANNELS), np.float32) * sigma


def _wander(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Slow baseline wander (n × 8, µV) in half the cases: 3 sinusoids of 0.05–0.5 Hz, 5–50 µV
    per channel together; zeros otherwise."""
    out = np.zeros((n, N_CHANNELS), np.float32)
    if rng.random() < WANDER_CHANCE:
        t = np.arange(n) / fs
        amp = _log_uniform(rng, WANDER_UV, N_CHANNELS) / math.sqrt(WANDER_COMPONENTS)
        for f in rng.uniform(*WANDER_HZ, WANDER_COMPONENTS):
            phase = rng.uniform(0.0, 2.0 * np.pi, N_CHANNELS)
            out += (np.sin(2.0 * np.pi * f * t[:, None] + phase) * amp).astype(np.float32)
    return out


def _mains(nominal_hz: float, n: int, fs: float,
           rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Mains (n × 8, µV) with harmonics 1–7 and its mean frequency (Hz): off-nominal by up to
    ±0.5 Hz, drifting sinusoidally; fundamental 5–100 µV per channel, harmonics with their own
    relative amplitudes and phases (each varied per channel)."""
    mean_hz = nominal_hz + rng.uniform(-MAINS_OFFSET_HZ, MAINS_OFFSET_HZ)
    drift, period = rng.uniform(*MAINS_DRIFT_HZ), rng.uniform(*MAINS_DRIFT_PERIOD_S)
    t = np.arange(n) / fs
    cycles = mean_hz * t - drift * period / (2 * np.pi) * np.cos(2 * np.pi * t / period
                                                                  + rng.uniform(0, 2 * np.pi))
    relative = np.array([1.0] + [rng.uniform(lo, hi) for lo, hi in MAINS_HARMONICS])
    amp = relative[:, None] * _log_uniform(rng, MAINS_UV, N_CHANNELS)[None, :]
    amp[1:] *= rng.uniform(0.7, 1.3, (len(relative) - 1, N_CHANNELS))
    phase = rng.uniform(0, 2 * np.pi, len(relative))[:, None] \
        + rng.uniform(-0.3, 0.3, (len(relative), N_CHANNELS))
    out = np.zeros((n, N_CHANNELS), np.float32)
    for h in range(len(relative)):
        angle = 2 * np.pi * (h + 1) * cycles
        out += (np.sin(angle)[:, None] * (amp[h] * np.cos(phase[h]))
                + np.cos(angle)[:, None] * (amp[h] * np.sin(phase[h]))).astype(np.float32)
    return out, float(mean_hz)
