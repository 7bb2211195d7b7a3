"""Tests of ECG removal: QRS detection across channels, adaptive template subtraction, streaming.

Signals are synthetic and built here (not by the simulator): one heart with P-QRS-T beats at
jittered RR intervals and a slow respiratory amplitude modulation, seen on every channel with its
own gain (10–300 µV), sign and delay (0–8 ms), optionally with premature ventricular beats of
their own morphology and axis; white noise; EMG (A-trains, bursts); cautery, gaps and lead-off.
Every component is band-passed 10 Hz–3 kHz (causal 4th-order Butterworth) like the pipeline does
before this stage, and kept apart so the truth is exact. The last tests run real ECG (MIT-BIH
record 100) from ``../shared/data`` when it is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pytest
from scipy import signal

from ionm_station.dsp import ecg as ecg_module
from ionm_station.dsp.ecg import (LEARN_BLANK_RATIO, P_WAVE_GATE_UV, EcgCanceller, Highpass30,
                                  highpass30)
from ionm_station.dsp.filters import bandpass_sos

#: ECG beat as Gaussians (centre s from R, σ s, amplitude relative to R): P, Q, R, S, T.
ECG_WAVES = ((-0.170, 0.020, 0.12), (-0.030, 0.008, -0.15), (0.000, 0.011, 1.00),
             (0.030, 0.009, -0.30), (0.290, 0.050, 0.30))
#: A premature ventricular beat: no P wave, a wide notched QRS, a discordant T wave.
VPB_WAVES = ((-0.045, 0.018, 0.50), (0.000, 0.020, -1.00), (0.045, 0.015, 0.35),
             (0.300, 0.060, -0.35))
#: QRS window used to measure residual ECG (s around R) and the distance (s) from any R
#: beyond which the output counts as ECG-free.
QRS_WINDOW_S = (-0.050, 0.110)
AWAY_S = 0.250
#: The project target: RMS in QRS windows ≤ this × RMS away from QRS.
TARGET_RATIO = 1.2


@dataclass
class Record:
    """A synthetic band-passed record: ``x`` = ecg + emg + noise + artifact (µV, (n, ch))."""

    fs: float
    x: np.ndarray
    ecg: np.ndarray
    emg: np.ndarray
    r_peaks: np.ndarray  # R-peak sample indices (int)
    gains_uv: np.ndarray
    ectopic: np.ndarray | None = None  # per beat: a premature ventricular beat


def ecg_beat(t_s: np.ndarray, waves: tuple = ECG_WAVES) -> np.ndarray:
    out = np.zeros_like(t_s)
    for centre, sigma, amplitude in waves:
        out += amplitude * np.exp(-0.5 * ((t_s - centre) / sigma) ** 2)
    return out


def muap_train(n: int, fs: float, onset_s: float, duration_s: float, rate_hz: float,
               pp_uv: float, rng: np.random.Generator) -> np.ndarray:
    """A-train: regular biphasic MUAPs (6 ms) at ``rate_hz`` with 3 % jitter, ``pp_uv`` p-p."""
    out = np.zeros(n)
    times = onset_s + np.arange(0.0, duration_s, 1.0 / rate_hz)
    times += rng.normal(0.0, 0.03 / rate_hz, len(times))
    sigma = 0.006 / 8
    t = np.arange(-4 * sigma * 2, 4 * sigma * 2, 1.0 / fs)
    for tk in times:
        i = round(tk * fs)
        frac = tk - i / fs
        shape = -(t - frac) / sigma * np.exp(-0.5 * ((t - frac) / sigma) ** 2)
        lo = i - len(t) // 2
        if 0 <= lo and lo + len(t) <= n:
            out[lo:lo + len(t)] += shape
    return out * pp_uv / (2.0 * np.exp(-0.5))


def burst(n: int, fs: float, onset_s: float, duration_s: float, pp_uv: float,
          rng: np.random.Generator) -> np.ndarray:
    """Interference-pattern burst: 50–500 Hz noise under a Hann envelope, ~``pp_uv`` p-p."""
    out = np.zeros(n)
    m = int(duration_s * fs)
    noise = signal.sosfilt(signal.butter(4, [50, min(500, 0.45 * fs)], "bandpass", fs=fs,
                                         output="sos"),
                           rng.standard_normal(m + 2000))[2000:]
    shape = noise * np.hanning(m)
    i = int(onset_s * fs)
    out[i:i + m] = shape * pp_uv / np.ptp(shape)
    return out


def make_record(fs: float = 5000.0, duration_s: float = 60.0, n_ch: int = 8, seed: int = 1,
                bpm: float = 78.0, noise_uv: float = 3.0, gains_uv: np.ndarray | None = None,
                ectopic_every: int | None = None) -> Record:
    """Band-passed ECG + white noise on ``n_ch`` channels; EMG/artifacts are added by tests.
    With ``ectopic_every`` k, every k-th beat is a premature ventricular beat (70 % of the RR
    interval, VPB_WAVES, its own gain 0.5–1.5 × and sign on each channel)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * fs)
    rr = 60.0 / bpm
    beats_s, ectopic = [], []
    t = 0.5 + rng.uniform(0, rr)
    while t < duration_s - 0.7:
        vpb = ectopic_every is not None and len(beats_s) % ectopic_every == ectopic_every - 1
        if vpb:
            t -= 0.3 * rr
        beats_s.append(t)
        ectopic.append(vpb)
        t += rr * (1.0 + rng.uniform(-0.05, 0.05)) + (0.3 * rr if vpb else 0.0)
    beats_s = np.array(beats_s)
    if gains_uv is None:
        gains_uv = np.exp(rng.uniform(np.log(10.0), np.log(300.0), n_ch))
        gains_uv[0] = 300.0
    sign = rng.choice([-1.0, 1.0], n_ch)
    delay_s = rng.uniform(0.0, 0.008, n_ch)
    vpb_axis = (rng.uniform(0.5, 1.5, n_ch) * rng.choice([-1.0, 1.0], n_ch)
                if ectopic_every is not None else None)
    ecg = np.zeros((n, n_ch))
    half = np.arange(int(-0.35 * fs), int(0.6 * fs))
    for r, vpb in zip(beats_s, ectopic):
        idx = int(r * fs) + half
        idx = idx[(idx >= 0) & (idx < n)]
        resp = 1.0 + 0.08 * np.sin(2.0 * np.pi * 0.25 * r)
        t_rel = idx[:, None] / fs - r - delay_s[None, :]
        if vpb:
            ecg[idx] += ecg_beat(t_rel, VPB_WAVES) * (gains_uv * sign * vpb_axis * resp)
        else:
            ecg[idx] += ecg_beat(t_rel) * (gains_uv * sign * resp)
    sos = bandpass_sos(10.0, 3000.0, fs)
    ecg = signal.sosfilt(sos, ecg, axis=0)
    noise = signal.sosfilt(sos, rng.standard_normal((n, n_ch)) * noise_uv, axis=0)
    return Record(fs, ecg + noise, ecg, np.zeros((n, n_ch)), np.round(beats_s * fs).astype(int),
                  gains_uv, np.array(ectopic))


def add_emg(rec: Record, channel: int, component: np.ndarray) -> None:
    """Add a raw EMG component to one channel (band-passed like the rest)."""
    bp = signal.sosfilt(bandpass_sos(10.0, 3000.0, rec.fs), component)
    rec.emg[:, channel] += bp
    rec.x[:, channel] += bp


def needle(wave: np.ndarray, pp_uv: float) -> np.ndarray:
    """A real MUAP shape (``muap_library``) trimmed to where it exceeds 2 % of its peak and
    scaled to ``pp_uv`` µV peak-to-peak."""
    keep = np.flatnonzero(np.abs(wave) >= 0.02 * np.abs(wave).max())
    wave = wave[keep[0]:keep[-1] + 1]
    return wave * pp_uv / np.ptp(wave)


def with_needles_at_hand(name: str, seed: int, fs: float
                         ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """30 s of real ECG (``real_ecg_record``) with its noise, the channel with the most
    heartbeat, the R peaks and the real MUAP shapes to add (PhysioNet EMG, shapes × samples)."""
    realcases = pytest.importorskip("support.realcases")
    ecg, noise, r_peaks = real_ecg_record(name, fs, 30.0, 8, seed)
    ch = int(np.argmax(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0)))
    return ecg + noise, ch, r_peaks, realcases.muap_library(fs)


def run(stage: EcgCanceller, x: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Feed ``x`` in chunks (None: whole), flush, and undo the delay: rows align with ``x``."""
    return run_blanked(stage, x, chunk)[0]


def run_blanked(stage: EcgCanceller, x: np.ndarray, chunk: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`run`, and the detection blank mask (rows align with ``x``) read as the chain
    reads it: for the rows each call outputs, right after it."""
    edges = [0, len(x)] if chunk is None else [*range(0, len(x), chunk), len(x)]
    parts, masks = [], []
    for a, b in [*pairwise(edges), (len(x), None)]:  # then the flush
        out = stage.process(x[a:b]) if b is not None else stage.flush()
        first = a - stage.delay          # input row of out[0]
        valid = min(max(0, -first), len(out))  # rows before the first input row are fill
        parts.append(out[valid:])
        masks.append(stage.blank_mask(first + valid, len(out) - valid))
    return np.concatenate(parts), np.concatenate(masks)


def qrs_mask(n: int, fs: float, r_peaks: np.ndarray, lo_s: float, hi_s: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for r in r_peaks:
        mask[max(r + int(lo_s * fs), 0):max(min(r + int(hi_s * fs), n), 0)] = True
    return mask


def residual_ratio(y: np.ndarray, fs: float, r_peaks: np.ndarray, after_s: float,
                   before_s: float | None = None) -> np.ndarray:
    """Per channel: RMS in QRS windows / RMS farther than AWAY_S from any R, over
    [after_s, before_s)."""
    n = len(y)
    span = np.zeros(n, dtype=bool)
    span[int(after_s * fs):None if before_s is None else int(before_s * fs)] = True
    qrs = qrs_mask(n, fs, r_peaks, *QRS_WINDOW_S) & span
    away = ~qrs_mask(n, fs, r_peaks, -AWAY_S, AWAY_S) & span
    return np.sqrt(np.mean(y[qrs] ** 2, axis=0) / np.mean(y[away] ** 2, axis=0))


def score_beats(found: list[int], truth: np.ndarray, fs: float, tol_s: float = 0.020,
                after: int = 0) -> tuple[float, float]:
    """Sensitivity and positive predictivity of ``found`` against ``truth`` (± tol_s)."""
    found_a = np.array([f for f in found if f >= after])
    truth = truth[truth >= after]
    tol = tol_s * fs
    matched_t = sum(bool(len(found_a)) and np.min(np.abs(found_a - r)) <= tol for r in truth)
    matched_f = sum(np.min(np.abs(truth - f)) <= tol for f in found_a)
    return matched_t / len(truth), matched_f / max(len(found_a), 1)


# --- streaming contract -------------------------------------------------------------------------


def test_chunking_gives_identical_output() -> None:
    """Output, beats and the detection blank mask (gated residuals, a new beat class) do not
    depend on the chunking."""
    rec = make_record(fs=1000.0, duration_s=16.0, n_ch=4, seed=3, ectopic_every=6)
    add_emg(rec, 1, burst(len(rec.x), rec.fs, 9.0, 0.4, 400.0, np.random.default_rng(0)))
    rec.x[5000:5040] = np.nan
    whole_stage = EcgCanceller(4, rec.fs)
    whole, whole_blank = run_blanked(whole_stage, rec.x)
    assert whole_stage.converged.all() and whole_blank[10_000:].any()
    for chunk in (1, 7, 333):
        stage = EcgCanceller(4, rec.fs)
        out, blank = run_blanked(stage, rec.x, chunk)
        assert np.allclose(out, whole, atol=1e-9, equal_nan=True), chunk
        assert stage.beats == whole_stage.beats
        assert (blank == whole_blank).all(), chunk


@pytest.mark.parametrize("fs", [2000.0, 5000.0])
def test_threshold_learnt_the_same_under_any_chunking(fs: float) -> None:
    """The candidates found while the threshold is learnt are read again with the scale in
    force when it ends, from the per-channel detection squares kept for them: those must
    still be there whatever the chunking (trimmed from the next candidate to test, a chunk
    ending between a candidate's finding and its decision lost its first rows: the levels
    differed by 0.6 % between 7-sample chunks and the whole record)."""
    rec = make_record(fs=fs, duration_s=6.0, n_ch=4, seed=5)
    levels = []
    for chunk in (None, 7, 10, 4000):
        stage = EcgCanceller(4, rec.fs)
        run(stage, rec.x, chunk)
        levels.append((stage._spk, stage._npk, tuple(stage.beats)))
    assert all(level == levels[0] for level in levels[1:]), levels


def test_chunking_random_sizes_at_5khz() -> None:
    rec = make_record(fs=5000.0, duration_s=14.0, n_ch=6, seed=4)
    whole_stage = EcgCanceller(6, rec.fs)
    whole = run(whole_stage, rec.x)
    sizes = np.random.default_rng(1).integers(1, 900, 400)
    edges = np.concatenate(([0], np.cumsum(sizes)))
    edges = edges[edges < len(rec.x)]
    stage = EcgCanceller(6, rec.fs)
    parts = [stage.process(rec.x[a:b]) for a, b in zip(edges, np.append(edges[1:], len(rec.x)))]
    out = np.concatenate(parts + [stage.flush()])[stage.delay:]
    assert np.allclose(out, whole, atol=1e-9, equal_nan=True)


def test_chunking_with_drifting_noise_levels() -> None:
    """The noise scales change between a beat and the end of the input batch it arrived in
    (each channel's noise swells and fades): alignment must use the scales in force at the
    beat, not the latest ones, or the output depends on the chunk size."""
    fs = 2000.0
    rec = make_record(fs=fs, duration_s=20.0, n_ch=6, seed=12)
    n = len(rec.x)
    rng = np.random.default_rng(5)
    t = np.arange(n)[:, None] / fs
    swell = 1.0 + 6.0 * (0.5 + 0.5 * np.sin(2.0 * np.pi * t / rng.uniform(1.5, 4.0, 6)
                                            + rng.uniform(0.0, 2.0 * np.pi, 6)))
    noise = signal.sosfilt(bandpass_sos(10.0, 3000.0, fs), rng.standard_normal((n, 6)), axis=0)
    rec.x += noise * swell
    whole_stage = EcgCanceller(6, fs)
    whole = run(whole_stage, rec.x)
    for chunk in (37, 500):
        stage = EcgCanceller(6, fs)
        out = run(stage, rec.x, chunk)
        assert stage.beats == whole_stage.beats, chunk
        assert np.allclose(out, whole, atol=1e-9, equal_nan=True), chunk


def test_delay_nan_rows_and_gaps() -> None:
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=12.0, n_ch=3, seed=5)
    rec.x[30000:30500] = np.nan
    stage = EcgCanceller(3, fs)
    assert stage.delay <= 0.33 * fs  # 329 ms: QRS core and lag search, incl. CONFIRM_REACH_S
    # and CONFIRM_LATE_S
    first = stage.process(rec.x[:stage.delay + 10])
    assert np.isnan(first[:stage.delay]).all() and np.isfinite(first[stage.delay:]).all()
    rest = stage.process(rec.x[stage.delay + 10:])
    out = np.concatenate((first, rest, stage.flush()))[stage.delay:]
    assert out.shape == rec.x.shape and out.dtype == np.float64
    assert np.isnan(out[30000:30500]).all()
    assert np.isfinite(np.delete(out, np.s_[30000:30500], axis=0)).all()
    with pytest.raises(RuntimeError):
        stage.process(rec.x[:10])
    stage.reset()
    again = run(stage, rec.x)
    assert np.allclose(again, out, atol=1e-9, equal_nan=True)


def test_qrs_a_few_samples_after_the_start() -> None:
    """Issue 10: a record that starts just before a QRS put the beat's alignment window (its
    ±12 ms lag search) before the first buffered sample; judged late, once the threshold was
    learnt (~2.7 s), it raised IndexError and stopped the whole chain. Every start offset now
    runs, and beats after the first are found."""
    fs = 10_000.0
    rec = make_record(fs=fs, duration_s=6.0, n_ch=8, seed=3, bpm=75)
    r0 = int(rec.r_peaks[0])
    for shift_ms in range(40, 130, 2):
        offset = r0 - int(shift_ms * fs / 1000)
        x = rec.x[offset:offset + int(3.5 * fs)]
        stage = EcgCanceller(8, fs)
        run(stage, x, 1000)
        end = len(x) - 0.3 * fs  # the last beat is judged on the flush's zeros
        truth = rec.r_peaks - offset
        se, ppv = score_beats([b for b in stage.beats if b < end], truth[truth < end], fs,
                              after=int(0.3 * fs))
        assert se == 1.0 and ppv == 1.0, shift_ms


@pytest.mark.parametrize(("seed", "n_ch", "end_ms"),
                         [(5, 8, 110), (5, 8, 125), (1, 8, 118), (1, 1, 110)])
def test_the_records_last_beat_is_subtracted_where_its_qrs_is_in_the_record(
        seed: int, n_ch: int, end_ms: int) -> None:
    """A record ending 110–125 ms after an R peak holds that beat's QRS; its core (fiducial
    − 100…+80 ms, the fiducial ~45 ms after R here) ends up to 15 ms past the record. The
    flush's zeros after the last row made the lag search's margin read as a flat channel, and
    the beat was left whole on every channel (extra tuning seed 619, 239.89 s: 2–15 × the
    quiet RMS on all 8 channels, 9 of the case's 23 worst beat windows). It is subtracted like
    any other now — also where the record ends 2 samples into a block (seed 1, 118 ms: that
    block, mostly zeros, read as flat on 3 channels), and where the beat is known by its shape
    alone, under the detection threshold (one channel, seed 1)."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=12.0, n_ch=n_ch, seed=seed)
    r = int(rec.r_peaks[-1])
    n = r + round(end_ms * fs / 1000)
    out = run(EcgCanceller(n_ch, fs), rec.x[:n], 500)
    noise = rec.x[:n] - rec.ecg[:n]
    window = slice(r - round(0.05 * fs), n)
    left = np.sqrt(np.mean((out[window] - noise[window]) ** 2, axis=0))
    quiet = np.sqrt(np.mean(noise ** 2, axis=0))
    heart = np.sqrt(np.mean(rec.ecg[window] ** 2, axis=0))
    assert heart[0] > 20 * quiet[0]  # (the beat is there, large)
    assert (left <= 0.7 * quiet).all(), np.round(left / quiet, 2)


def test_a_last_beat_cut_short_is_left_in_place_and_blanked() -> None:
    """A record ending 60 ms after an R peak cuts the beat's core (to ~R + 125 ms here) by
    more than RECORD_END_MARGIN_S: the beat is not fitted on the flush's zeros, it is left
    in place and its QRS window is blanked for detection on every channel with ECG."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=12.0, n_ch=8, seed=5)
    r = int(rec.r_peaks[-1])
    n = r + round(0.060 * fs)
    out, blank = run_blanked(EcgCanceller(8, fs), rec.x[:n], 500)
    window = slice(r - round(0.05 * fs), n)
    np.testing.assert_allclose(out[window], rec.x[window], atol=1e-6)
    big = np.ptp(rec.ecg[window], axis=0) > 40.0
    assert big.sum() >= 3 and blank[window][:, big].all()


def test_input_is_not_held_without_a_heartbeat() -> None:
    """A lone candidate followed by silence ends the threshold learning by time: the input
    buffer stays about one template window long (it used to keep everything from the
    candidate on, a leak of hours on a case without visible ECG)."""
    fs = 2000.0
    x = np.random.default_rng(11).normal(0.0, 3.0, (int(60 * fs), 4))
    x[int(1.0 * fs):int(1.02 * fs)] += 400.0 * np.hanning(int(0.02 * fs))[:, None]
    stage = EcgCanceller(4, fs)
    for i in range(0, len(x), int(0.1 * fs)):
        stage.process(x[i:i + int(0.1 * fs)])
        assert stage._x.stop - stage._x.start < 3.0 * fs


# --- detection ----------------------------------------------------------------------------------


def test_qrs_detection_with_emg_bursts() -> None:
    fs = 2000.0
    rec = make_record(fs=fs, duration_s=120.0, n_ch=8, seed=7)
    rng = np.random.default_rng(2)
    n = len(rec.x)
    for ch in (1, 4, 6):
        for onset in rng.uniform(2.0, 115.0, 10):
            if rng.random() < 0.5:
                add_emg(rec, ch, muap_train(n, fs, onset, rng.uniform(0.3, 3.0),
                                            rng.uniform(60, 210), rng.uniform(100, 1000), rng))
            else:
                add_emg(rec, ch, burst(n, fs, onset, rng.uniform(0.05, 0.3),
                                       rng.uniform(100, 1000), rng))
    stage = EcgCanceller(8, fs)
    run(stage, rec.x, 500)
    se, ppv = score_beats(stage.beats, rec.r_peaks, fs)
    assert se >= 0.99 and ppv >= 0.99, (se, ppv)


def test_lead_off_channel_does_not_break_detection() -> None:
    fs = 2000.0
    rec = make_record(fs=fs, duration_s=40.0, n_ch=6, seed=8)
    rec.x[int(10 * fs):int(30 * fs), 2] = 5000.0   # flat at the rail (raw-style input)
    rec.x[int(12 * fs):int(25 * fs), 3] = 0.0      # flat after the band-pass (pipeline input)
    stage = EcgCanceller(6, fs)
    out = run(stage, rec.x, 250)
    se, ppv = score_beats(stage.beats, rec.r_peaks, fs)
    assert se >= 0.99 and ppv >= 0.99, (se, ppv)
    ratio = residual_ratio(out[:, [0, 1, 4, 5]], fs, rec.r_peaks, 10.0)
    assert (ratio <= TARGET_RATIO).all(), ratio


# --- cancellation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet() -> tuple[Record, np.ndarray, np.ndarray, list[int]]:
    """40 s, 10 kHz, 8 channels, ECG 10–300 µV in 3 µV noise: (record, ours, 30 Hz HP, beats)."""
    gains = np.array([300.0, 200.0, 120.0, 60.0, 35.0, 20.0, 12.0, 250.0])
    rec = make_record(fs=10000.0, duration_s=40.0, n_ch=8, seed=11, gains_uv=gains)
    stage = EcgCanceller(8, rec.fs)
    out = run(stage, rec.x, 1000)
    return rec, out, highpass30(rec.x, rec.fs), stage.beats


def test_quiet_residual_meets_target_and_beats_highpass(quiet) -> None:
    rec, out, hp, beats = quiet
    ours = residual_ratio(out, rec.fs, rec.r_peaks, 10.0)
    theirs = residual_ratio(hp, rec.fs, rec.r_peaks, 10.0)
    raw = residual_ratio(rec.x, rec.fs, rec.r_peaks, 10.0)
    print(f"\nresidual ratio (QRS/away RMS) per channel, ECG {rec.gains_uv.round()} µV:"
          f"\n  raw   {raw.round(2)}\n  ours  {ours.round(3)}\n  HP30  {theirs.round(2)}")
    assert (ours <= TARGET_RATIO).all(), ours
    strong = rec.gains_uv >= 50.0   # where the 30 Hz high-pass visibly leaves ECG
    assert (ours[strong] < theirs[strong]).all() and ours.mean() < theirs.mean()
    se, ppv = score_beats(beats, rec.r_peaks, rec.fs)
    assert se >= 0.99 and ppv >= 0.99


def test_quiet_residual_against_truth(quiet) -> None:
    """In the QRS windows, the ECG left in the output (output − ECG-free truth) is ≤ 5 % of
    the ECG there, or below 1 µV RMS."""
    rec, out, hp, _ = quiet
    span = np.zeros(len(out), dtype=bool)
    span[int(10 * rec.fs):] = True
    qrs = qrs_mask(len(out), rec.fs, rec.r_peaks, *QRS_WINDOW_S) & span
    clean = rec.x - rec.ecg
    ecg_rms = np.sqrt(np.mean(rec.ecg[qrs] ** 2, axis=0))
    left_rms = np.sqrt(np.mean((out[qrs] - clean[qrs]) ** 2, axis=0))
    hp_rms = np.sqrt(np.mean((hp[qrs] - highpass30(clean, rec.fs)[qrs]) ** 2, axis=0))
    print(f"\nECG RMS in QRS windows {ecg_rms.round(1)} µV; left by ours {left_rms.round(2)}, "
          f"by HP30 {hp_rms.round(2)}")
    assert (left_rms <= np.maximum(0.05 * ecg_rms, 1.0)).all(), (left_rms, ecg_rms)


def test_highpass30_streams_like_whole() -> None:
    rec = make_record(fs=2000.0, duration_s=3.0, n_ch=3, seed=2)
    whole = highpass30(rec.x, rec.fs)
    stage = Highpass30(3, rec.fs)
    parts = [stage.process(rec.x[i:i + 77]) for i in range(0, len(rec.x), 77)]
    assert stage.delay == 0 and stage.flush().shape == (0, 3)
    assert np.allclose(np.concatenate(parts), whole, atol=1e-9)


def test_emg_overlapping_qrs_survives() -> None:
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=40.0, n_ch=6, seed=12,
                      gains_uv=np.array([250.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    n = len(rec.x)
    rng = np.random.default_rng(3)
    add_emg(rec, 0, muap_train(n, fs, 20.0, 4.0, 120.0, 400.0, rng))   # A-train over ~5 QRS
    add_emg(rec, 5, burst(n, fs, 30.0, 2.0, 600.0, rng))
    stage = EcgCanceller(6, fs)
    out = run(stage, rec.x, 400)
    for ch, (a, b) in ((0, (20.0, 24.0)), (5, (30.2, 31.8))):
        sl = slice(int(a * fs), int(b * fs))
        corr = np.corrcoef(out[sl, ch], rec.emg[sl, ch])[0, 1]
        raw_corr = np.corrcoef(rec.x[sl, ch], rec.emg[sl, ch])[0, 1]
        assert corr >= 0.95 and corr > raw_corr, (ch, corr, raw_corr)
    ratio = residual_ratio(out, fs, rec.r_peaks, 34.0)
    assert (ratio <= TARGET_RATIO).all(), ratio


def test_cautery_does_not_corrupt_templates() -> None:
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=45.0, n_ch=6, seed=13,
                      gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    rng = np.random.default_rng(4)
    a, b = int(20 * fs), int(22 * fs)
    cautery = np.zeros_like(rec.x)
    cautery[a:b] = np.clip(rng.normal(0.0, 4000.0, (b - a, 6)), -5000, 5000)
    cautery = signal.sosfilt(bandpass_sos(10.0, 3000.0, fs), cautery, axis=0)
    rec.x += cautery
    stage = EcgCanceller(6, fs)
    out = run(stage, rec.x, 1000)
    found = np.array(stage.beats)
    assert not ((found > a) & (found < b)).any()
    ratio = residual_ratio(out, fs, rec.r_peaks, 25.0)   # a few beats after the end
    assert (ratio <= TARGET_RATIO).all(), ratio


def test_no_heartbeat_no_subtraction() -> None:
    """Noise only (and an EMG burst): nothing is detected, the output equals the input."""
    fs = 2000.0
    rng = np.random.default_rng(9)
    x = rng.normal(0.0, 3.0, (int(20 * fs), 4))
    x[int(8 * fs):int(8.3 * fs), 1] += burst(int(0.3 * fs), fs, 0.0, 0.3, 500.0, rng)
    stage = EcgCanceller(4, fs)
    out = run(stage, x, 300)
    assert len(stage.beats) <= 2
    assert np.allclose(out, x, atol=1e-9)


def test_beat_right_after_a_stimulus_artifact_is_still_cancelled() -> None:
    """A stimulus artifact hits every channel for a few ms; it must not blind QRS detection for
    the next 200 ms as a sustained (cautery) artifact does (simulator case, beat 0.2 s after)."""
    import dataclasses

    from ionm_station.dsp.filters import BandpassFilter
    from ionm_station.montage import load_montage
    from ionm_station.sim.amplifier import SimulatedAmplifier
    from ionm_station.sim.scenario import load_scenario

    fs, n = 10_000, 45 * 10_000
    montage = load_montage("lumbar").first(8)
    sc = dataclasses.replace(load_scenario("bench_mixed"), mains_uv=0.0, mains_offset_hz=0.4)
    amp = SimulatedAmplifier(montage, sc, fs, seed=1, realtime=False)
    x = BandpassFilter(8, fs).process(amp.generate(0, n))
    stim = [s.index for s in amp.truth.stimuli if s.index < n]
    after = [b for b in amp.truth.ecg_beats for s in stim if 0 < b - s < 0.25 * fs]
    assert after, "the case must hold a beat within 250 ms after a stimulus"
    ecg = EcgCanceller(8, fs)
    for i in range(0, n, fs):
        ecg.process(x[i:i + fs])
    for b in after:
        assert min(abs(d - b) for d in ecg.beats) < 0.04 * fs


def assert_beat_subtracted(stage: EcgCanceller, out: np.ndarray, r_peaks: np.ndarray, r: int,
                           fs: float, exclude: slice | None = None) -> None:
    """The beat at ``r`` was found and subtracted: its QRS window's RMS is at most 1.5 × the
    output's RMS away from beats (after the first 5 s and outside ``exclude``), per channel."""
    assert min(abs(b - r) for b in stage.beats) <= 0.02 * fs
    window = slice(r - int(0.05 * fs), r + int(0.11 * fs))
    away = ~qrs_mask(len(out), fs, r_peaks, -AWAY_S, AWAY_S)
    away[:int(5 * fs)] = False
    if exclude is not None:
        away[exclude] = False
    ratio = np.sqrt(np.mean(out[window] ** 2, axis=0) / np.mean(out[away] ** 2, axis=0))
    assert (ratio <= 1.5).all(), ratio


def test_beat_under_the_detection_threshold_of_the_usual_shape_is_subtracted() -> None:
    """A beat whose detection energy falls under the threshold (half the size: a quarter of
    the energy) but whose shape is the dominant one is subtracted on time, not left whole."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=40.0, n_ch=6, seed=5,
                      gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    j = int(np.searchsorted(rec.r_peaks, int(25.0 * fs)))
    r = int(rec.r_peaks[j])
    half = slice(r - int(0.35 * fs), r + int(0.45 * fs))
    rec.x[half] -= 0.5 * rec.ecg[half]
    stage = EcgCanceller(6, fs)
    out, _ = run_blanked(stage, rec.x, 500)
    assert_beat_subtracted(stage, out, rec.r_peaks, r, fs)


@pytest.mark.parametrize("emg_s, left_max, late", [((25.0, 4.0), 0.3, 0.025),
                                                    ((4.5, 3.0), 0.8, 0.025),
                                                    ((25.0, 4.0), 0.3, 0.07)])
def test_beats_whose_fiducial_emg_moved_past_the_lag_search_are_subtracted(
        emg_s: tuple[float, float], left_max: float, late: float) -> None:
    """One channel carries a large QRS ``late`` s (25 or 70 ms) before the others' (small)
    ones; while a B-train there holds it out of QRS detection, the candidates' fiducial is the
    others' centroid, that much later than usual — beyond the ±15 ms lag search of an accepted
    beat. Their QRS is found by the dominant shape further back and subtracted on the other
    channels (tuning seed 228: a B-train on the adductor, four beats left whole on six
    channels, 130–157 µV; seed 287: PTB beats whose fiducial fell on a lobe ~75 ms after the
    usual one, 46 false events in 4 min), also right after the threshold was learnt, against
    templates of three beats (seed 228, 3.8 s: a 143 µV beat; what a template of 3–5 beats
    leaves is its own noise, 0.4–0.7 of these small heartbeats' p-p on the beats before the
    B-train too, and 1.0 where none is found).
    Left: the heartbeat's p-p left on the channels without EMG, as a fraction of its own."""
    onset_s, length_s = emg_s
    fs, n_ch, duration_s = 5000.0, 6, 40.0
    rng = np.random.default_rng(11)
    n = int(duration_s * fs)
    rr = 0.8 * (1.0 + rng.uniform(-0.04, 0.04, int(duration_s / 0.8)))
    beats_s = np.cumsum(rr) + 0.3
    beats_s = beats_s[beats_s < duration_s - 0.7]
    gains = np.array([300.0, 25.0, 20.0, 15.0, 25.0, 20.0]) * rng.choice([-1.0, 1.0], n_ch)
    late_s = np.array([0.0, late, late, late, late, late])
    ecg = np.zeros((n, n_ch))
    half = np.arange(int(-0.35 * fs), int(0.6 * fs))
    for r in beats_s:
        idx = int(r * fs) + half
        idx = idx[(idx >= 0) & (idx < n)]
        ecg[idx] += ecg_beat(idx[:, None] / fs - r - late_s[None, :]) * gains
    sos = bandpass_sos(10.0, 3000.0, fs)
    ecg = signal.sosfilt(sos, ecg, axis=0)
    noise = signal.sosfilt(sos, rng.standard_normal((n, n_ch)) * 3.0, axis=0)
    emg = signal.sosfilt(sos, muap_train(n, fs, onset_s, length_s, 25.0, 300.0, rng))
    x = ecg + noise
    x[:, 0] += emg
    stage = EcgCanceller(n_ch, fs)
    out = run(stage, x, 500)
    for chunk in (7, 333):  # the moved beats are judged the same whatever the chunking
        part = slice(0, int((onset_s + length_s + 1.0) * fs))
        again = run(EcgCanceller(n_ch, fs), x[part], chunk)
        assert np.allclose(again[:part.stop - int(fs)], out[:part.stop - int(fs)], atol=1e-9)
    r_peaks = np.round(beats_s * fs).astype(int)
    left = (out - noise)[:, 1:]  # the heartbeat left on the channels without EMG (µV)
    during = (r_peaks > (onset_s + 0.2) * fs) & (r_peaks < (onset_s + length_s - 1.0) * fs)
    assert during.sum() >= 2
    for r in r_peaks[during]:
        assert min(abs(b - r) for b in stage.beats) <= 0.02 * fs
        window = slice(r + int((late - 0.075) * fs), r + int((late + 0.085) * fs))
        ratio = np.ptp(left[window], axis=0) / np.ptp(ecg[window, 1:], axis=0)
        assert (ratio <= left_max).all(), ratio.round(2)


def test_beat_under_the_threshold_amid_emg_on_the_channels_with_most_ecg_is_subtracted() -> None:
    """EMG on the channels that carry most of the heart holds them out of QRS detection (its
    energy falls under the threshold) and spoils their correlation with the templates, whose
    vote outweighs the others': the shape is judged on the channels without EMG too (extra
    tuning seed 264: A- and B-trains of 570–960 µV on the three channels with the most ECG,
    two beats left whole on five channels, 14–28 µV). Half-size beats under 1500 µV A-trains
    on three channels are subtracted on the others, not left whole."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=40.0, n_ch=6, seed=5,
                      gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    rng = np.random.default_rng(2)
    x, ecg = rec.x.copy(), rec.ecg.copy()
    during = rec.r_peaks[(rec.r_peaks > 20.3 * fs) & (rec.r_peaks < 23.8 * fs)]
    for r in during:  # half the size: a quarter of the detection energy
        part = slice(r - int(0.3 * fs), r + int(0.45 * fs))
        x[part] -= 0.5 * rec.ecg[part]
        ecg[part] -= 0.5 * rec.ecg[part]
    sos = bandpass_sos(10.0, 3000.0, fs)
    for ch in (0, 1, 5):
        x[:, ch] += signal.sosfilt(sos, muap_train(len(x), fs, 20.0, 4.0, 25.0, 1500.0, rng))
    left = run(EcgCanceller(6, fs), x, 500) - (x - ecg)  # the ECG left (µV)
    assert len(during) >= 4
    for r in during:
        window = slice(r - int(0.05 * fs), r + int(0.1 * fs))
        ratio = np.ptp(left[window, 2]) / np.ptp(ecg[window, 2])
        assert ratio <= 0.5, (r / fs, round(float(ratio), 2))


def _start_up_record(duration_s: float) -> Record:
    """Six channels at 5 kHz with 20–300 µV of ECG in 2 µV of noise (the start-up tests)."""
    return make_record(fs=5000.0, duration_s=duration_s, n_ch=6, seed=3, noise_uv=2.0,
                       gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))


def _assert_cancelled_on(rec: Record, ch: int, t0_s: float, t1_s: float) -> None:
    """Run the canceller on ``rec``; every beat in [t0_s, t1_s) leaves at most 0.1 of its p-p
    on channel ``ch`` over R − 50…+110 ms."""
    fs = rec.fs
    out = run(EcgCanceller(rec.x.shape[1], fs), rec.x, 500)
    for r in rec.r_peaks[(rec.r_peaks > t0_s * fs) & (rec.r_peaks < t1_s * fs)]:
        window = slice(int(r) - int(0.05 * fs), int(r) + int(0.11 * fs))
        left = np.ptp(out[window, ch] - rec.x[window, ch] + rec.ecg[window, ch])
        assert left <= 0.1 * np.ptp(rec.ecg[window, ch]), (r / fs, left)


def test_channel_noisy_only_at_the_start_is_cancelled_from_the_first_seconds() -> None:
    """The scales start from the first block; on a channel with strong mains the mains
    canceller's first second leaves >200 Hz harmonics there (22 µV RMS against 2 µV of noise
    on tuning seed 233; here 40 µV for 0.5 s), and judged against that level the channel then
    read as flat — out of QRS detection and never learnt, its beats left whole — until the
    history forgot it (8 s:
    a 144 µV beat and 10 residuals of 30–37 µV). Until the history has filled once every
    block is learnt, so it is cancelled like the others once the first beats are learnt."""
    rec = _start_up_record(12.0)
    t = np.arange(len(rec.x)) / rec.fs
    rec.x[:, 0] += 40.0 * np.sqrt(2.0) * np.sin(2 * np.pi * 300.0 * t) * (t < 0.5)
    _assert_cancelled_on(rec, 0, 3.5, 8.0)


def test_lead_off_at_the_start_is_not_learnt_as_the_channel_s_level() -> None:
    """A channel flat (lead off) for most of the scales' first fill is not learnt as its level
    (every block with signal is, see above): learnt, its scale fell to nothing, the
    reconnected channel read wild — out of QRS detection, not learnt — for RELEARN_S (8 s).
    Its beats are cancelled like the others' once it is back."""
    rec = _start_up_record(14.0)
    rec.x[int(0.1 * rec.fs):int(1.8 * rec.fs), 1] = 0.0  # flat after the band-pass, then back
    _assert_cancelled_on(rec, 1, 5.0, 9.0)


def test_a_lead_off_is_flat_on_a_channel_connected_after_the_start() -> None:
    """A channel flat (no lead) through the scales' first fill has a σ of nothing; connected,
    it reads wild and accepts its level after RELEARN_S. A later lead-off there (0.02 µV
    left) must still read flat: out of QRS detection and its windows blanked for detection at
    every beat. Judged flat against its σ before the wild level instead (FLAT_RATIO) where
    that σ was nothing, it never did: no beat of the lead-off blanked."""
    rec = _start_up_record(32.0)
    fs, ch = rec.fs, 1
    rec.x[:int(5 * fs), ch] = 0.0
    off = slice(int(20 * fs), int(27 * fs))
    rec.x[off, ch] = 0.02 * np.random.default_rng(0).standard_normal(off.stop - off.start)
    _, blank = run_blanked(EcgCanceller(rec.x.shape[1], fs), rec.x, 500)
    beats = rec.r_peaks[(rec.r_peaks > 21 * fs) & (rec.r_peaks < 26 * fs)]
    assert len(beats) >= 4 and blank[beats, ch].all(), blank[beats, ch]


def test_beat_soon_after_cautery_clipped_at_the_rail_is_subtracted() -> None:
    """Cautery clipped by the amplifier's range is broadband noise at the rail, not a lead-off
    step: a channel is back in QRS detection as soon as after the same noise below the rail
    (tune-mitdb-5k: a beat 0.46 s after clipped cautery was neither found nor subtracted, read
    as a burst of up to 236 µV on 7 channels)."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=40.0, n_ch=6, seed=13,
                      gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    j = int(np.searchsorted(rec.r_peaks, int(25.0 * fs)))
    r = int(rec.r_peaks[j])
    b = r - int(0.40 * fs)              # cautery ends 0.4 s before the beat
    a = b - int(3.0 * fs)
    rng = np.random.default_rng(4)
    cautery = np.zeros_like(rec.x)
    cautery[a:b] = rng.normal(0.0, 6000.0, (b - a, 6))
    rec.x += signal.sosfilt(bandpass_sos(10.0, 3000.0, fs), cautery, axis=0)
    rec.x = np.clip(rec.x, -5000.0, 5000.0)  # at the rail
    stage = EcgCanceller(6, fs)
    out, _ = run_blanked(stage, rec.x, 500)
    assert_beat_subtracted(stage, out, rec.r_peaks, r, fs,
                           exclude=slice(a - int(0.5 * fs), b + int(1.0 * fs)))


def test_nan_on_one_channel_in_a_beat_keeps_templates_finite() -> None:
    """A run of missing samples on one channel inside a beat's window: the templates stay
    finite and the beats after it are still subtracted on that channel."""
    fs = 5000.0
    rec = make_record(fs=fs, duration_s=30.0, n_ch=6, seed=5,
                      gains_uv=np.array([300.0, 150.0, 80.0, 40.0, 20.0, 200.0]))
    j = int(np.searchsorted(rec.r_peaks, int(12.0 * fs)))
    r = int(rec.r_peaks[j])
    gap = slice(r + int(0.15 * fs), r + int(0.16 * fs))
    rec.x[gap, 1] = np.nan
    stage = EcgCanceller(6, fs)
    out = run(stage, rec.x, 500)
    assert np.isfinite(stage._template).all()
    finite = np.delete(out, np.s_[gap], axis=0)
    assert np.isfinite(finite).all()
    ratio = residual_ratio(out, fs, rec.r_peaks, 16.0)
    assert (ratio <= TARGET_RATIO).all(), ratio


def test_rows_at_the_rail_are_not_learnt_from() -> None:
    """A lead-off pinned at the rail reaches the canceller through the band-pass and the mains
    canceller as mains (what that canceller subtracts), not as a flat channel. Given as
    ``railed``, those rows are not learnt from: the channel's template is after the lead what
    it was before it, and its beats are subtracted as before, also past the fit's core
    (R + 120…230 ms). (Not given, the template learnt mains and no heart; the tail's own fit
    hides most of that from the output since it came, so the template is what is compared.)"""
    fs, ch = 5000.0, 3
    rec = make_record(fs=fs, duration_s=50.0, n_ch=6, seed=7,
                      gains_uv=np.array([300.0, 150.0, 80.0, 60.0, 20.0, 200.0]))
    lead = slice(int(20.0 * fs), int(28.5 * fs))
    t = np.arange(lead.stop - lead.start) / fs
    x = rec.x.copy()
    x[lead, ch] = -sum(a * np.sin(2 * np.pi * k * 50.4 * t + k) for k, a in ((1, 9.0), (3, 3.0),
                                                                           (5, 1.5), (7, 1.0)))
    railed = np.zeros(x.shape, dtype=bool)
    railed[lead, ch] = True
    def tail(t0: float, t1: float) -> np.ndarray:  # R + 120…230 ms of the beats in [t0, t1) s
        return np.concatenate([np.arange(r + int(0.12 * fs), r + int(0.23 * fs))
                               for r in rec.r_peaks if t0 * fs <= r < t1 * fs])

    before, after = tail(12.0, 19.0), tail(29.0, 36.0)
    sizes, learnt = [], []
    for given in (railed, None):
        stage = EcgCanceller(6, fs)
        parts, snapshots = [], {}
        for a in range(0, len(x), 500):
            parts.append(stage.process(x[a:a + 500], None if given is None else given[a:a + 500]))
            if a in (int(19.5 * fs), int(29.5 * fs)):
                snapshots[a] = stage._template[stage._primary(), ch].copy()
        out = np.concatenate(parts + [stage.flush()])[stage.delay:]
        misfit = out[:, ch] - (rec.x - rec.ecg)[:, ch]  # the ECG left (µV)
        sizes.append([np.sqrt(np.mean(misfit[w] ** 2)) for w in (before, after)])
        first, last = snapshots.values()
        learnt.append(np.sqrt(np.mean((last - first) ** 2)))  # the template's change (µV RMS)
    (before_given, after_given), _ = sizes
    assert after_given <= 1.5 * before_given, sizes
    assert learnt[1] >= 2.0 * learnt[0], learnt  # what learning the lead-off left


# --- real ECG -----------------------------------------------------------------------------------


def real_ecg_record(name: str, fs: float, duration_s: float, n_ch: int, seed: int,
                    noise_uv: float = 3.0, turn_rad: float = 0.0, from_s: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A real heart on ``n_ch`` channels: the whole beats of PhysioNet record ``name`` (read by
    ``support.realcases.load_ecg``: its own mains, wander and noise above 40 Hz that is not
    locked to the beat removed), looped, each channel a cos/sin mix of two of its leads scaled
    to 50–400 µV peak with a random sign; band-passed 10 Hz–3 kHz like the pipeline, with white
    noise. ``turn_rad``: every channel's mix angle turned by this much (rad), its scale kept —
    the heart's axis turned. ``from_s``: start this far (s) into the record's loop. Returns
    (ECG, noise, R peaks) — µV (n, n_ch), µV (n, n_ch), sample indices."""
    realcases = pytest.importorskip("support.realcases")
    if not realcases.DATA_DIR.is_dir():
        pytest.skip(f"{realcases.DATA_DIR} not found (PhysioNet recordings live in ../shared)")
    pytest.importorskip("wfdb", reason="reading PhysioNet records needs wfdb")
    rec = realcases.load_ecg(name)
    rng = np.random.default_rng(seed)
    lo, hi = rec.loop_bounds()
    n = int(duration_s * fs)
    shift = from_s * rec.fs
    source = lo + (shift + np.arange(n) / fs * rec.fs) % (hi - lo)  # the record's, looped
    mix, turned = np.zeros((2, rec.leads.shape[1], n_ch))
    for c in range(n_ch):
        a, b = rng.choice(rec.leads.shape[1], 2, replace=False)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        mix[[a, b], c] = np.cos(angle), np.sin(angle)
        turned[[a, b], c] = np.cos(angle + turn_rad), np.sin(angle + turn_rad)
    r = rec.r_peaks[(rec.r_peaks >= lo) & (rec.r_peaks < hi)]
    half = round(0.05 * rec.fs)
    size = np.median(np.abs((rec.leads @ mix)[r[:, None] + np.arange(-half, half)]).max(axis=1),
                     axis=0)
    leads = rec.leads @ turned
    peak = np.exp(rng.uniform(np.log(50.0), np.log(400.0), n_ch)) * rng.choice([-1.0, 1.0], n_ch)
    grid = np.arange(len(leads))
    ecg = np.column_stack([np.interp(source, grid, leads[:, c]) for c in range(n_ch)])
    sos = bandpass_sos(10.0, 3000.0, fs)
    ecg = signal.sosfilt(sos, ecg * (peak / size), axis=0)
    noise = signal.sosfilt(sos, rng.standard_normal((n, n_ch)) * noise_uv, axis=0)
    loops = np.arange(int((shift + n / fs * rec.fs) / (hi - lo)) + 1)[:, None] * (hi - lo)
    r_case = np.round((((r - lo)[None, :] + loops).ravel() - shift) * fs / rec.fs
                      ).astype(np.int64)
    return ecg, noise, np.sort(r_case[(r_case >= 0) & (r_case < n)])


@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("100", 1)])
def test_a_sinusoidal_train_is_not_fitted_as_a_beat_s_tail(name: str, seed: int) -> None:
    """An A-train is mostly below 200 Hz, so the EMG test over a beat's tail misses it, and
    the tail's fit took the train for the heartbeat. On a real heart, a 96 Hz train of 100 µV
    p-p starting 190 ms after an R peak on a channel with ~95 µV of ECG: 4.6–8.1 µV RMS of
    error in the 100 ms before its onset (read as the train starting early: simulator seed 126,
    90 ms) and 4.5–6.4 µV over the train (0.8–1.4 and 2.3–2.5 with the rule; 2.0 and 1.5 with
    the heart time courses' bound, COURSE_SPREAD; six courses rather than four, unbounded, took
    it for the beats' misfit: 3.1 and 6.3 µV). The canceller leaves the train and the rows
    before it within the noise."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 30.0, 8, seed)
    ch = int(np.argsort(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0))[1])  # little heart
    onset = int(r_peaks[r_peaks > 15 * fs][0] + 0.19 * fs)  # at the end of the beat's window
    m = int(3.0 * fs)
    emg = np.zeros(ecg.shape)
    emg[onset:onset + m, ch] = 50.0 * np.sin(2.0 * np.pi * 96.3 * np.arange(m) / fs)
    out = run(EcgCanceller(8, fs), ecg + noise + emg, 500)
    error = (out - noise - emg)[:, ch]  # ECG left, or EMG taken
    sd = float(np.std(noise[:, ch]))
    before = float(np.sqrt(np.mean(error[onset - int(0.1 * fs):onset] ** 2)))
    during = float(np.sqrt(np.mean(error[onset:onset + m] ** 2)))
    assert before < 0.6 * sd and during < sd, (before, during, sd)


def _error_under_a_train(name: str, seed: int, fs: float, on_s: float, off_s: float,
                         amplitude_uv: float) -> tuple[np.ndarray, float]:
    """55 s of a real heart (``real_ecg_record``, 8 channels) with a 96 Hz A-train of
    ``amplitude_uv`` (µV) from ``on_s`` to ``off_s`` (s) on the channel with the second least
    heart: the canceller's error there (output − noise − train, µV per row) and the noise's
    SD (µV)."""
    ecg, noise, _ = real_ecg_record(name, fs, 55.0, 8, seed)
    ch = int(np.argsort(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0))[1])
    on, off = int(on_s * fs), int(off_s * fs)
    emg = np.zeros(ecg.shape)
    emg[on:off, ch] = amplitude_uv * np.sin(2.0 * np.pi * 96.3 * np.arange(off - on) / fs)
    error = (run(EcgCanceller(8, fs), ecg + noise + emg, 500) - noise - emg)[:, ch]
    return error, float(np.std(noise[:, ch]))


@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("100", 1)])
def test_a_lasting_train_is_not_learnt_as_the_heart(name: str, seed: int) -> None:
    """A 96 Hz A-train of 100 µV p-p on one channel for 25 s leaves a large residual in every
    beat, and RESTART_REJECTS such beats in a row restarted the channel's template, which then
    learnt the train as the heart: 20.3 and 19.6 µV RMS of error over the train's last 10 s,
    6.1 and 5.6 over the 5 s after it. Those beats left the train after the QRS as well (a
    changed heartbeat's misfit is smooth there: RESTART_CONFINED): no restart, 2.0 and 2.2 µV
    over the train's last 10 s, 1.4 and 1.0 after it (the noise: 2.8)."""
    fs, off = 5000.0, 45.0
    error, sd = _error_under_a_train(name, seed, fs, 20.0, off, 50.0)
    late = float(np.sqrt(np.mean(error[int((off - 10.0) * fs):int(off * fs)] ** 2)))
    after = float(np.sqrt(np.mean(error[int(off * fs):int((off + 5.0) * fs)] ** 2)))
    assert late < sd and after < sd, (late, after, sd)


@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("100", 1)])
def test_a_channel_quiet_again_after_a_long_loud_train_is_not_read_as_flat(name: str,
                                                                           seed: int) -> None:
    """A 96 Hz A-train of 400 µV p-p on one channel for 15 s leaks through the >200 Hz
    activity measure (~30 µV RMS); wild for RELEARN_S, the channel accepted it as its new
    level, and once the train ended its noise (2.7 µV) read flat — a lead-off — for good: its
    heartbeats were no longer subtracted (13.8 and 8.5 µV RMS of error over 5–15 s after the
    train; 1.3 and 0.8 now). Flat is judged against its level before it accepted the wild one
    too (FLAT_RATIO)."""
    fs = 5000.0
    error, sd = _error_under_a_train(name, seed, fs, 20.0, 35.0, 200.0)
    after = float(np.sqrt(np.mean(error[int(40 * fs):int(50 * fs)] ** 2)))
    assert after < 0.6 * sd, after


def test_a_heartbeat_changed_for_good_is_learnt_again() -> None:
    """What RESTART_CONFINED keeps: the heartbeat on one channel doubled for good (an
    electrode moved; beyond the fit's gain of 0.5–1.5) leaves the same residual at every beat,
    and the channel's template is learnt again: 15.1 µV RMS of ECG left over the first 10 s,
    3.2 over 20–30 s after the change (the noise: 2.8). The same under another chunking."""
    fs = 5000.0
    ecg, noise, _ = real_ecg_record("s0010_re", fs, 50.0, 8, 3)
    ch = int(np.argmax(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0)))
    ecg[int(15 * fs):, ch] *= 2.0
    out, blank = run_blanked(EcgCanceller(8, fs), ecg + noise, 500)
    again, blank_again = run_blanked(EcgCanceller(8, fs), ecg + noise, 1337)
    assert np.allclose(out, again, atol=1e-9) and (blank == blank_again).all()
    error = (out - noise)[:, ch]
    first = float(np.sqrt(np.mean(error[int(15 * fs):int(25 * fs)] ** 2)))
    then = float(np.sqrt(np.mean(error[int(35 * fs):int(45 * fs)] ** 2)))
    assert first > 10.0 and then < 1.5 * np.std(noise[:, ch]), (first, then)


@pytest.mark.parametrize("name, seed, most_uv", [("s0010_re", 3, 8.0), ("100", 2, 2.1)])
def test_a_beat_whose_heart_turned_is_still_fitted(name: str, seed: int, most_uv: float) -> None:
    """The heart's time courses are bounded on a channel by their typical part there times
    how far the heart moved over all channels (the median; COURSE_SPREAD: an A-train is on
    one channel). Every 4th beat with the heart's axis turned by 20° on every channel (each
    channel's lead mix, R − 150…+300 ms) changes unequally across channels; it is fitted as if
    unbounded: the 95th percentile over those beats and channels of the ECG left over
    R − 60…+100 ms is 5.6 and 1.8 µV RMS (unbounded the same and 1.77; bounded on each
    channel alone 17.0 and 2.3; without the courses 17.3 and 5.0). (6.6 and 1.86 by
    2026-12-05; 6.6 and 2.01 with young templates low-passed for the fit,
    YOUNG_FIT_LOWPASS_HZ: ~10 % of MIT-BIH's 150–180 Hz is taken from them until they hold
    32 beats.)"""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 50.0, 8, seed)
    turned = real_ecg_record(name, fs, 50.0, 8, seed, turn_rad=np.radians(20.0))[0]
    beats = r_peaks[(r_peaks > 20 * fs) & (r_peaks < 48 * fs)][::4]
    span = np.arange(-int(0.15 * fs), int(0.3 * fs))
    edge = np.clip(np.minimum(span - span[0], span[-1] - span) / (0.03 * fs), 0.0, 1.0)
    weight = np.zeros(len(ecg))
    weight[beats[:, None] + span] = 0.5 - 0.5 * np.cos(np.pi * edge)
    left = run(EcgCanceller(8, fs), ecg + (turned - ecg) * weight[:, None] + noise, 500) - noise
    window = beats[:, None] + np.arange(-int(0.06 * fs), int(0.1 * fs))
    rms = np.sqrt(np.mean(left[window] ** 2, axis=1))  # beats × channels
    assert np.percentile(rms, 95) <= most_uv, np.percentile(rms, [50, 95]).round(2)


@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("100", 1)])
def test_real_beats_subtracted_past_the_core(name: str, seed: int) -> None:
    """A real heart's beats differ from their template after the QRS too (ST segment,
    timing): the window past the core (R + 90…160 ms here) is fitted on its own once it has
    arrived. Fitted only by the core's gain and shift, with its stretch and heart time
    courses fading out over 10 ms at the core's end, single beats left 7–9 µV RMS there
    (99th percentile over beats and channels in 3 µV of noise; now 4 µV; tune-ptb-10k: 13–20
    µV p-p spikes on the anal sphincter at R + 102…122 ms)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 60.0, 8, seed)
    stage = EcgCanceller(8, fs)
    left = run(stage, ecg + noise, 500) - noise  # the ECG left in the output (µV)
    beats = r_peaks[(r_peaks > 10 * fs) & (r_peaks < len(ecg) - fs)]
    window = beats[:, None] + np.arange(int(0.09 * fs), int(0.16 * fs))
    rms = np.sqrt(np.mean(left[window] ** 2, axis=1))  # beats × channels
    assert np.percentile(rms, 99) <= 5.0, np.percentile(rms, [50, 99]).round(2)


@pytest.mark.parametrize("name, seed", [("100", 2), ("s0010_re", 3)])
def test_a_real_heart_s_beat_to_beat_variation_is_subtracted(name: str, seed: int) -> None:
    """A real QRS changes a little from beat to beat (MIT-BIH 100: its onset's notch moves by
    a few ms) in ways gain, shift, stretch and the heart's time courses do not follow: the
    99th percentile over beats and channels of the ECG left over R − 60…+100 ms was 5.8 and
    5.3 µV RMS here (in 2.8 µV of noise). The leading patterns of a class's last residuals are
    fitted too (:mod:`ionm_station.dsp.beat_variation`)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 60.0, 8, seed)
    left = run(EcgCanceller(8, fs), ecg + noise, 500) - noise
    beats = r_peaks[(r_peaks > 10 * fs) & (r_peaks < len(ecg) - fs)]
    window = beats[:, None] + np.arange(int(-0.06 * fs), int(0.10 * fs))
    rms = np.sqrt(np.mean(left[window] ** 2, axis=1))  # beats × channels
    assert np.percentile(rms, 99) <= 4.5, np.percentile(rms, [50, 99]).round(2)


@pytest.mark.parametrize("seed, most_uv", [(3, 3.3), (6, 2.4)])
def test_the_first_beats_variation_is_fitted_within_seconds(seed: int, most_uv: float) -> None:
    """The beat-to-beat fit starts a few beats into a record: residuals are kept once a
    template holds VARIATION_KEEP_BEATS beats and fitted from VARIATION_MIN_BEATS kept. Kept
    only from a converged template and fitted from 8 kept, it began ~16 beats in, and PTB
    s0010's beats 4–16 s left 3.9 and 2.8 µV RMS over R − 60…+100 ms at the 95th percentile
    over beats and channels (now 2.9 and 2.0, in 2.8 µV of noise)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("s0010_re", fs, 20.0, 8, seed)
    left = run(EcgCanceller(8, fs), ecg + noise, 500) - noise
    beats = r_peaks[(r_peaks > 4 * fs) & (r_peaks < 16 * fs)]
    window = beats[:, None] + np.arange(int(-0.06 * fs), int(0.10 * fs))
    rms = np.sqrt(np.mean(left[window] ** 2, axis=1))  # beats × channels
    assert np.percentile(rms, 95) <= most_uv, np.percentile(rms, [50, 95]).round(2)


def early_ecg_left(name: str, seed: int, duration_s: float) -> np.ndarray:
    """The ECG a canceller leaves (µV RMS over R − 60…+100 ms, beats × channels) over the beats
    3–10 s into a real record with noise, 8 channels at 5 kHz."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, duration_s, 8, seed)
    left = run(EcgCanceller(8, fs), ecg + noise, 500) - noise
    beats = r_peaks[(r_peaks > 3 * fs) & (r_peaks < 10 * fs)]
    window = beats[:, None] + np.arange(int(-0.06 * fs), int(0.10 * fs))
    return np.sqrt(np.mean(left[window] ** 2, axis=1))


@pytest.mark.parametrize("name, seed, most_uv", [("s0010_re", 6, 2.7), ("100", 7, 4.6)])
def test_a_young_template_s_residuals_are_kept_for_the_variation_fit(
        name: str, seed: int, most_uv: float) -> None:
    """A young template (the median of its first beats) adds its own noise to the residuals,
    above 200 Hz too: held to the converged template's bound (VARIATION_HF_RATIO × the
    channel's >200 Hz σ), the first beats' residuals were refused (on extra tuning seed 1039
    four of the first six on its biggest heart; the fit began ~6 s in), and here beats 3–10 s
    left 3.15 and 5.14 µV RMS over R − 60…+100 ms at the 95th percentile over beats and
    channels (in 2.8 µV of noise; now 2.3 and 4.2): the bound widens with the template's own
    noise (VARIATION_YOUNG_NOISE) and the fit starts from VARIATION_MIN_BEATS (3) kept."""
    rms = early_ecg_left(name, seed, 20.0)
    assert np.percentile(rms, 95) <= most_uv, np.percentile(rms, [50, 95]).round(2)


@pytest.mark.parametrize("name, seed", [("100", 3), ("s0010_re", 1)])
def test_a_young_template_s_noise_is_not_subtracted_with_it(name: str, seed: int) -> None:
    """A young template is the median (then the average) of a few beats and holds their noise
    (σ² × π / 2n for a median of n), all above the heart's band; subtracted with it, every beat
    took it back. The fit uses it low-passed at YOUNG_FIT_LOWPASS_HZ until it holds 32 beats:
    the median over beats 3–10 s and channels of the ECG left over R − 60…+100 ms (RMS, in
    2.8 µV of noise) was 1.65 and 1.66 µV here (1.37–1.92 on seeds 1–8 of both records), now
    0.83 and 0.88 (0.69–1.28)."""
    rms = early_ecg_left(name, seed, 12.0)
    assert np.median(rms) <= 1.2, np.percentile(rms, [50, 95]).round(2)


@pytest.mark.parametrize("name, seed", [("100", 2), ("s0010_re", 6)])
def test_a_young_template_s_residuals_pass_the_high_frequency_bound(name: str, seed: int) -> None:
    """What the wider bound itself does: by 6 s (8 beats, 3 of them learnt before anything is
    subtracted) every channel with ≥ 200 µV p-p of heart keeps 4 or more residuals for the
    beat-to-beat fit. Against the converged template's bound (VARIATION_YOUNG_NOISE 0) it
    kept 1, 4, 1, 3 and 3, 4, 3, 3 here: a young template's own noise above 200 Hz read as
    too much in its first beats' residuals."""
    fs = 5000.0
    ecg, noise, _ = real_ecg_record(name, fs, 6.0, 8, seed)
    heart = np.ptp(ecg[int(2 * fs):int(5 * fs)], axis=0) >= 200.0
    stage = EcgCanceller(8, fs)
    run(stage, ecg + noise, 500)
    k = stage._primary()
    # (residuals of fitted beats: not the provisional ones of the first three)
    kept = stage._variation._count[k] - stage._variation._provisional[k].sum(axis=1)
    assert heart.sum() >= 4 and (kept[heart] >= 4).all(), (np.flatnonzero(heart), kept)


@pytest.mark.parametrize("name, seed, most_uv", [("100", 3, 3.2), ("s0010_re", 1, 3.55)])
def test_the_first_beats_residuals_start_the_beat_to_beat_fit(name: str, seed: int,
                                                              most_uv: float) -> None:
    """The three beats that form a class's first template leave provisional residuals for
    the beat-to-beat fit (VARIATION_PROVISIONAL_UNTIL), so it starts with the first beat
    subtracted, not the third: over beats 3–10 s the ECG left over R − 60…+100 ms (RMS, in
    2.8 µV of noise) reads 2.74 and 3.35 µV at the 95th percentile over beats and channels;
    3.63 and 3.79 without them (on seeds 1–8 of both records never worse, median within
    0.04 µV)."""
    rms = early_ecg_left(name, seed, 12.0)
    assert np.percentile(rms, 95) <= most_uv, np.percentile(rms, [50, 95]).round(2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_lone_ventricular_beat_is_subtracted_with_its_own_shape(seed: int) -> None:
    """MIT-BIH 100's one ventricular beat (1518 s into the record), 20 s into a stretch of it
    on 8 channels: the first beat of its class, fitted with the normal beats' template it left
    up to 20 × the quiet RMS over its QRS window on the channels with most heart (extra tuning
    seeds; 16.5–30.3 × the noise's RMS here, seeds 1–6). Subtracted with its own shape
    low-passed at 300 Hz (OWN_SHAPE_BELOW_BEATS), the ECG left over R − 60…+100 ms is at most
    2 × the noise's RMS on every channel (0.71–1.80 ×; the normal beats around it unchanged),
    and over R + 100…+250 ms, its tail, at most 1.5 × (0.57–0.82 ×; 5.9–10.1 × before)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("100", fs, 30.0, 8, seed, from_s=1498.0)
    odd = int(r_peaks[np.argmin(np.abs(r_peaks - 20.0 * fs))])
    assert np.abs(ecg[odd - 250:odd + 500]).max() > 200.0  # a heartbeat worth removing
    stage = EcgCanceller(8, fs)
    out = run(stage, ecg + noise, 500)
    assert stage._class_beats[1] == 1 and abs(stage._class_last[1] - odd) < 0.1 * fs  # its own
    left = out - noise
    window = slice(odd + int(-0.06 * fs), odd + int(0.10 * fs))
    rms = np.sqrt(np.mean(left[window] ** 2, axis=0)) / noise.std(axis=0)
    assert (rms <= 2.0).all(), rms.round(2)
    tail = slice(odd + int(0.10 * fs), odd + int(0.25 * fs))
    rms = np.sqrt(np.mean(left[tail] ** 2, axis=0)) / noise.std(axis=0)
    assert (rms <= 1.5).all(), rms.round(2)
    if seed == 1:  # the same whatever the chunking (its tail is fitted when it has arrived)
        assert np.allclose(run(EcgCanceller(8, fs), ecg + noise, 37), out, atol=1e-9,
                           equal_nan=True)


@pytest.mark.parametrize("name, seed, spread, pp_uv, first_s", [
    ("100", 2, True, 40.0, 20.0), ("s0010_re", 3, True, 40.0, 20.0),
    ("100", 2, False, 40.0, 20.0), ("s0010_re", 3, False, 40.0, 20.0),
    ("s0010_re", 3, False, 25.0, 20.0), ("100", 2, False, 25.0, 20.0),
    ("100", 2, False, 40.0, 2.0), ("s0010_re", 3, False, 40.0, 2.0)])
def test_needle_muaps_on_real_qrs_keep_their_size_through_the_variation_fit(
        name: str, seed: int, spread: bool, pp_uv: float, first_s: float) -> None:
    """Real needle MUAPs of 40 µV p-p on every other QRS of the channel with the most ECG —
    spread over R − 35…+35 ms, or all at R − 20 ms (locked to the heartbeat: a pattern that
    recurs, as the QRS's own variation does; also at 25 µV, whose >200 Hz content is nearer
    the noise the kept residuals may hold, VARIATION_HF_RATIO) — once the beat-to-beat
    variation is learnt (from 20 s) or from the first beats (2 s: residuals are kept from a
    template's third beat on): the canceller takes at most 15 % of any one's p-p (the output's
    difference with and without them). (When residuals were kept from every subtracted beat,
    the MUAP locked at R − 20 ms became one of the patterns and lost up to 41 %.)"""
    realcases = pytest.importorskip("support.realcases")
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 60.0, 8, seed)
    ch = int(np.argmax(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0)))
    library = realcases.muap_library(fs)
    spikes, spans = np.zeros_like(ecg), []
    for i, r in enumerate(r_peaks[(r_peaks > first_s * fs) & (r_peaks < 55 * fs)][::2]):
        wave = needle(library[i % len(library)] * (-1.0) ** i, pp_uv)
        onset = int(r + ((-0.035 + 0.01 * (i % 8)) if spread else -0.02) * fs)
        spikes[onset:onset + len(wave), ch] += wave
        spans.append((onset, onset + len(wave)))
    without = run(EcgCanceller(8, fs), ecg + noise, 500)
    kept = run(EcgCanceller(8, fs), ecg + noise + spikes, 500) - without
    fractions = [np.ptp(kept[a:b, ch]) / np.ptp(spikes[a:b, ch]) for a, b in spans]
    assert min(fractions) >= 0.85, np.round(sorted(fractions)[:3], 3)


def test_sharp_real_r_waves_are_not_taken_for_emg() -> None:
    """Nothing but a real heart and noise: after the first seconds nothing left in the output
    reads as activity to the event detector (its 40 Hz high-pass, 2 ms RMS above 4 σ) outside
    the windows blanked for it. A sharp R wave of a few hundred µV has 3–5 σ of its own above
    200 Hz; a young template's misfit left 2.5–4 σ of it in the residual, which the EMG test
    took for EMG: the block was neither gated nor the channel aligned on its own (MIT-BIH 100
    at 10 kHz: 56 blocks, 0.12 s of output read as activity; tune-mitdb-10k: spikes on the
    iliopsoas at R + 10 ms)."""
    fs = 10_000.0
    ecg, noise, _ = real_ecg_record("100", fs, 15.0, 8, seed=1)
    stage = EcgCanceller(8, fs)
    out, blank = run_blanked(stage, ecg + noise, 1000)
    b, a = signal.butter(2, 40.0, "highpass", fs=fs)
    high = signal.lfilter(b, a, out, axis=0)
    m = int(0.002 * fs)
    envelope = np.sqrt(np.apply_along_axis(lambda v: np.convolve(v * v, np.ones(m) / m, "same"),
                                           0, high))
    sigma = np.median(np.abs(high[int(4 * fs):]), axis=0) / 0.6745
    loud = (envelope > 4.0 * sigma) & ~blank
    assert not loud[int(4 * fs):].any(), loud[int(4 * fs):].sum(axis=0)


@pytest.mark.parametrize("fs", [1000.0, 5000.0, 10_000.0])
def test_p_waves_blanked_while_the_threshold_is_learnt(fs: float) -> None:
    """Nothing is subtracted while the QRS threshold is learnt (~2 s): every beat then reaches
    the detector whole, so it is blanked for detection on every channel to past the QRS, and
    from R − 140 ms, which holds the P wave's fast part, on the channels whose heartbeat peaks
    above P_WAVE_GATE_UV, 60 µV (MIT-BIH 100: 15–17 µV spikes at R − 108…−122 ms on the
    channels with 150–400 µV of ECG, before the window decided with the candidate, which
    starts at R − 75 ms; PTB s0010: 8–15 µV at R − 146…−152 ms with 81–85 µV), at any
    chunking; not from R − 140 ms on the others."""
    ecg, noise, r_peaks = real_ecg_record("100", fs, 6.0, 8, seed=3)
    learning = r_peaks[(r_peaks > r_peaks[0] + 0.3 * fs) & (r_peaks < r_peaks[0] + 1.9 * fs)]
    assert len(learning) >= 2
    heart = np.abs(ecg[int(0.5 * fs):int(2.5 * fs)]).max(axis=0)
    big, small = heart >= 1.2 * P_WAVE_GATE_UV, heart <= 0.8 * P_WAVE_GATE_UV
    assert big.any() and small.any()
    for chunk in (1, 97, 1000) if fs == 1000.0 else (1000,):
        _, blank = run_blanked(EcgCanceller(8, fs), ecg + noise, chunk)
        for r in learning:
            assert blank[r - int(0.07 * fs):r + int(0.2 * fs)].all(), (chunk, r / fs)
            p_wave = blank[r - int(0.14 * fs):r - int(0.1 * fs)]
            assert p_wave[:, big].all() and not p_wave[:, small].any(), (chunk, r / fs)


@pytest.mark.parametrize("name, seed", [("100", 1), ("s0010_re", 3)])
def test_emg_at_p_wave_time_is_not_blanked_while_learning(name: str, seed: int) -> None:
    """The stretch from R − 140 ms blanked while the threshold is learnt hides a P wave, not
    EMG: a 30 ms burst of 1.5 × the heartbeat there, on the channel with the most ECG, stays
    visible to the detector (simulator holdout-5k: a 253 µV B-train 140 ms before a beat on
    a channel with ~150 µV of ECG was blanked whole, tested against twice the heartbeat)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 6.0, 8, seed)
    size = np.abs(ecg[int(0.5 * fs):int(2.5 * fs)]).max(axis=0)
    ch = int(np.argmax(size))
    assert size[ch] >= 150.0
    learning = r_peaks[(r_peaks > r_peaks[0] + 0.3 * fs) & (r_peaks < r_peaks[0] + 1.9 * fs)]
    assert len(learning) >= 2
    for r in learning:
        x = ecg + noise
        x[:, ch] += burst(len(x), fs, (r - 0.14 * fs) / fs, 0.03, 1.5 * size[ch],
                          np.random.default_rng(4))
        _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
        assert not blank[r - int(0.14 * fs):r - int(0.11 * fs), ch].any(), r / fs


@pytest.mark.parametrize("name, seed", [("s0010_re", 1), ("100", 3), ("s0010_re", 5), ("100", 7)])
@pytest.mark.parametrize("fs", [5000.0, 10_000.0])
def test_p_wave_of_the_first_beats_is_gated(name: str, seed: int, fs: float) -> None:
    """The P wave before the second heartbeat of a record (R − 130…−105 ms; the first one
    at 0.3 s falls in the start-up blank) is blanked for detection on every channel with
    ≥ 120 µV of ECG. The start-up transient before the first beat reads to the detection
    signal (its scale not settled) as large as the beat itself: compared by their detection
    peaks, the transient stood for the first heartbeat, whose size (~30 µV) then opened no
    gate (MIT-BIH 100, 10 kHz, seed 7: no channel blanked); compared by their QRS in µV,
    the beat stands."""
    ecg, noise, r_peaks = real_ecg_record(name, fs, 3.0, 8, seed)
    _, blank = run_blanked(EcgCanceller(8, fs), ecg + noise, 500)
    r = int(r_peaks[1])
    assert 0.9 * fs < r < 1.2 * fs
    big = np.abs(ecg).max(axis=0) >= 120.0
    assert big.any()
    p_wave = blank[r - int(0.13 * fs):r - int(0.105 * fs)]
    assert p_wave[:, big].all(), np.flatnonzero(big & ~p_wave.all(axis=0))


@pytest.mark.parametrize("name, seed", [("s0010_re", 1), ("100", 3), ("s0010_re", 5), ("100", 7)])
@pytest.mark.parametrize("fs", [5000.0, 10_000.0])
def test_beats_after_the_learning_are_found_and_their_p_waves_gated(name: str, seed: int,
                                                                    fs: float) -> None:
    """From the first beat after the threshold is learnt (~2.5 s) on, every heartbeat is found
    and its P wave (R − 180…−110 ms) blanked on the channels with ≥ 150 µV of ECG — through
    the first beats whose templates are still young (none was: the gate waited for converged
    templates, eight beats). The learnt candidates' peaks are read again with the detection
    scale in force when the learning ends: read with the scale of the first second, the first
    beat (PTB s0010, seed 1) read 4 × the later ones, which all fell under the threshold until
    6.2 s."""
    ecg, noise, r_peaks = real_ecg_record(name, fs, 10.0, 8, seed)
    big = np.abs(ecg).max(axis=0) >= 150.0
    assert big.any()
    stage = EcgCanceller(8, fs)
    _, blank = run_blanked(stage, ecg + noise, 1000)
    found = np.array(stage.beats)
    after = r_peaks[(r_peaks > 2.3 * fs) & (r_peaks < 9.5 * fs)]
    assert all(np.abs(found - r).min() < 0.03 * fs for r in after), (after / fs).round(3)
    p_wave = np.array([blank[r - int(0.18 * fs):r - int(0.11 * fs)][:, big].mean()
                       for r in after])
    assert (p_wave == 1.0).all(), p_wave.round(2)


@pytest.mark.parametrize("name, seed", [("s0010_re", 2), ("100", 1)])
def test_electrode_pop_in_a_beat_adds_no_heartbeat_before_it(name: str, seed: int) -> None:
    """An electrode pop (an 800 µV step decaying over 0.2 s) 10–50 ms after a real R peak on a
    channel with 150–300 µV of ECG: the pop is that channel's EMG-like activity, and the
    heart's time courses, whose coefficients are not bounded, are not fitted to it. Fitted,
    they added a few hundred µV of the pop's fit to the whole window: before the pop's onset
    the output held up to 3 × the heartbeat there (tune-ptb-10k, vastus medialis: a 48.6 µV
    burst at R − 49 ms, 80 ms before the pop). Now at most the heartbeat itself is left."""
    fs = 10_000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 25.0, 8, seed)
    ch = int(np.argsort(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0))[-3])
    r = int(r_peaks[np.searchsorted(r_peaks, int(20 * fs))])
    band = bandpass_sos(10.0, 3000.0, fs)
    for offset_ms in (10, 30, 50):
        onset = r + int(offset_ms * fs / 1000)
        step = np.zeros(len(ecg))
        step[onset:] = 800.0 * np.exp(-np.arange(len(ecg) - onset) / fs / 0.2)
        x = ecg + noise
        x[:, ch] += signal.sosfilt(band, step)
        out = run(EcgCanceller(8, fs), x, 1000)
        before = slice(r - int(0.07 * fs), onset)
        left = out[before, ch] - noise[before, ch]
        ratio = np.sqrt(np.mean(left ** 2) / np.mean(ecg[before, ch] ** 2))
        assert ratio <= 1.05, (offset_ms, ratio)


def test_emg_clearly_bigger_than_the_heart_is_not_blanked_while_learning() -> None:
    """While the threshold is learnt each candidate's window is blanked for detection, but
    not on a channel where something peaks above twice that channel's heartbeat: a 400 µV
    burst over a QRS on the channel with the least ECG is left to the detector (tune-mitdb-10k:
    a 293 µV burst on a distal muscle at 1.18 s was blanked whole and missed), while the
    channels where the heartbeat is the largest thing stay blanked."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("100", fs, 6.0, 8, seed=2)
    ch = int(np.argmin(np.ptp(ecg[int(2 * fs):], axis=0)))
    r = int(r_peaks[(r_peaks > r_peaks[0] + 0.8 * fs)][0])  # a beat while the threshold is learnt
    x = ecg + noise
    onset = r - int(0.05 * fs)
    x[:, ch] += signal.sosfilt(bandpass_sos(10.0, 3000.0, fs),
                               burst(len(x), fs, onset / fs, 0.1, 400.0, np.random.default_rng(1)))
    _, blank = run_blanked(EcgCanceller(8, fs), x, 500)
    others = np.delete(np.arange(8), ch)
    assert blank[r - int(0.05 * fs):r + int(0.1 * fs)][:, others].all()
    assert not blank[onset:onset + int(0.1 * fs), ch].any()


def test_emg_on_a_heartbeat_is_not_blanked_while_learning_for_its_fast_content() -> None:
    """EMG on the channel with the most heart need not peak at twice its heartbeat: a 150 µV
    burst over a QRS there is left to the detector while the threshold is learnt, for its
    >200 Hz content (extra seed 816: a 487 µV burst on a channel with 331 µV of ECG at
    1.38 s was blanked whole and missed), while the other channels stay blanked over that
    window, and the same channel over the beats without EMG."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("100", fs, 6.0, 8, seed=2)
    ch = int(np.argmax(np.ptp(ecg[int(2 * fs):], axis=0)))
    learning = r_peaks[(r_peaks > r_peaks[0] + 0.5 * fs) & (r_peaks < 2.0 * fs)]
    r = int(learning[0])
    x = ecg + noise
    onset = r - int(0.05 * fs)
    x[:, ch] += signal.sosfilt(bandpass_sos(10.0, 3000.0, fs),
                               burst(len(x), fs, onset / fs, 0.1, 150.0, np.random.default_rng(1)))
    assert np.abs(x[r - int(0.07 * fs):r + int(0.225 * fs), ch]).max() \
        < LEARN_BLANK_RATIO * np.abs(ecg[r - int(0.07 * fs):r + int(0.225 * fs), ch]).max()
    _, blank = run_blanked(EcgCanceller(8, fs), x, 500)
    others = np.delete(np.arange(8), ch)
    assert blank[r - int(0.05 * fs):r + int(0.1 * fs)][:, others].all()
    assert not blank[onset + int(0.02 * fs):onset + int(0.08 * fs), ch].any()
    for other in learning[1:]:
        assert blank[other - int(0.05 * fs):other + int(0.1 * fs), ch].all()


def test_large_emg_on_heartbeats_while_learning_is_found() -> None:
    """Extra seeds 816 and 570 (PTB s0010, 10 kHz, heart as built now): EMG on heartbeats
    while the QRS threshold is learnt — a 487 µV burst on 331 µV of heart (816, ch 7, 1.38 s),
    a 572 µV spike on 323 µV (570, ch 0, 1.45 s) — and an 894 µV burst 43 ms after such a
    heartbeat's window (816, ch 7, 2.26 s), taken for the window's tail, were all missed.
    They are found, and the events up to 2.5 s are the cases' own, each within 15 ms."""
    def near(truth: list[tuple[int, float]]) -> list[tuple[int, float]]:
        return [(c, pytest.approx(t, abs=0.015)) for c, t in truth]

    events = [e for e in extra_case_events(816, 2.8, legacy_heart=False) if e[1] < 2.5]
    assert events == near([(6, 1.239), (7, 1.384), (2, 1.560), (7, 2.264)])
    events = [e for e in extra_case_events(570, 2.8, legacy_heart=False) if e[1] < 2.5]
    assert events == near([(0, 1.446)])


@pytest.mark.parametrize("name, seed, centre_ms", [("100", 3, -50), ("s0010_re", 1, -55)])
def test_misfit_at_the_qrs_edge_is_blanked(name: str, seed: int, centre_ms: int) -> None:
    """What a misfit leaves at the QRS's onset — here a smooth 12 µV bump 50–55 ms before R
    on the channel with the most ECG, no larger than the heartbeat right after it — is
    blanked even in the 10 ms block before the first one where the heartbeat itself reads as
    activity to the detector (tune-mitdb-10k: a 25 µV spike at R − 52 ms on the iliopsoas)."""
    fs = 10_000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 30.0, 8, seed)
    ch = int(np.argmax(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0)))
    x = ecg + noise
    m = int(0.012 * fs)
    beats = r_peaks[(r_peaks > 10 * fs) & (r_peaks < 28 * fs)][::2][:8]  # every other beat
    centres = beats + int(centre_ms * fs / 1000)
    for c in centres:
        x[c - m // 2:c - m // 2 + m, ch] += 12.0 * np.hanning(m)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    covered = [blank[c - m // 4:c + m // 4, ch].mean() for c in centres]
    assert np.mean(covered) >= 0.65, np.round(covered, 2)  # (0.50 and 0.25 before)


def test_gate_spills_before_the_qrs_not_after_it() -> None:
    """The residual gate blanks the judged blocks where a misfit reads as activity, the next
    block either side where it does so too and is no larger than the heartbeat, and before the
    QRS up to GATE_SPILL_BLOCKS such blocks in a row (a slow onset's misfit: tuning seed 214,
    spikes at R − 33…−37 ms two blocks before the first judged one) — after it only one (a
    burst overlapping the QRS, no larger than the heartbeat, stays visible: tuning seed 226)."""
    fs = 5000.0
    stage = EcgCanceller(2, fs)
    stage.settled_at = 0
    bl = stage._block
    n_blocks = 12
    residual = np.zeros((2, n_blocks * bl))
    loud_blocks = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]  # a misfit from block 1 to block 10
    for b in loud_blocks:
        residual[:, b * bl:(b + 1) * bl] = 40.0 * np.sin(np.arange(bl) * 2 * np.pi * 100 / fs)
    judged = np.zeros((2, n_blocks), dtype=bool)
    judged[:, 5:7] = True  # the heartbeat reads as activity in blocks 5–6 only
    clean = np.ones((2, n_blocks), dtype=bool)
    emg = np.zeros((2, n_blocks), dtype=bool)
    fid = 10_000
    no_lead = np.zeros(2, dtype=bool)
    stage._gate(fid, np.zeros(2, dtype=np.int64), residual, np.ones(2), judged, clean, ~emg,
                emg, no_lead, 0)
    start = fid - stage._pre
    covered = np.zeros(n_blocks * bl, dtype=bool)
    for a, b, channels in stage._blank:
        if 0 in channels:
            covered[a - start:b - start] = True
    blocks = covered.reshape(n_blocks, bl).all(axis=1)
    assert blocks.tolist() == [False, False, True, True, True, True, True, True] + [False] * 4
    # where the P-wave blank may bridge from and to: the gap after `after` (from the end of
    # a blank that goes on over it) and the first blank beginning past it
    for after, expected in ((0, (0, 2 * bl)), (3 * bl + 1, (8 * bl, -1)), (8 * bl, (8 * bl, -1))):
        gap, then = stage._gate(fid, np.zeros(2, dtype=np.int64), residual, np.ones(2), judged,
                                clean, ~emg, emg, no_lead, after)
        assert (gap.tolist(), then.tolist()) == ([expected[0]] * 2, [expected[1]] * 2), after


def test_gate_blanks_a_hole_of_up_to_two_blocks_between_its_blanks() -> None:
    """A misfit reading as activity in blocks 1–10, judged in blocks 2–3 and 6–7 (channel 0)
    or 2–3 and 7–8 (channel 1), larger than the heartbeat (not clean) in the blocks between:
    the hole between the gate's blanks is blanked where it holds no EMG — two blocks on
    channel 0, three on channel 1 are too many (GATE_HOLE_BLOCKS) — and a hole with EMG in it
    stays open (channel 0 again, EMG in block 4 of a second beat)."""
    fs = 5000.0
    bl = EcgCanceller(2, fs)._block
    n_blocks = 12
    residual = np.zeros((2, n_blocks * bl))
    for b in range(1, 11):
        residual[:, b * bl:(b + 1) * bl] = 40.0 * np.sin(np.arange(bl) * 2 * np.pi * 100 / fs)
    judged = np.zeros((2, n_blocks), dtype=bool)
    judged[:, 2:4] = True
    judged[0, 6:8] = True
    judged[1, 7:9] = True
    clean = judged.copy()
    no_lead = np.zeros(2, dtype=bool)

    def blanked_blocks(emg: np.ndarray) -> list[list[int]]:
        stage = EcgCanceller(2, fs)
        stage.settled_at = 0
        fid = 10_000
        stage._gate(fid, np.zeros(2, dtype=np.int64), residual, np.ones(2), judged, clean,
                    ~emg, emg, no_lead, 0)
        start = fid - stage._pre
        out = []
        for ch in (0, 1):
            covered = np.zeros(n_blocks * bl, dtype=bool)
            for a, b, channels in stage._blank:
                if ch in channels:
                    covered[a - start:b - start] = True
            out.append(np.flatnonzero(covered.reshape(n_blocks, bl).all(axis=1)).tolist())
        return out

    quiet = np.zeros((2, n_blocks), dtype=bool)
    assert blanked_blocks(quiet) == [[2, 3, 4, 5, 6, 7], [2, 3, 7, 8]]
    with_emg = quiet.copy()
    with_emg[0, 4] = True
    assert blanked_blocks(with_emg)[0] == [2, 6, 7]  # (nor block 3, loud beside EMG)


def test_gate_keeps_the_core_s_first_block_open_after_emg_just_before_it() -> None:
    """A misfit read as activity in the core's first three blocks, judged in the second: the
    gate blanks all three — unless the block just before the core holds EMG (``lead``), whose
    MUAP may reach into the first block: that one stays open (extra tuning seed 439)."""
    fs = 5000.0
    bl = EcgCanceller(1, fs)._block
    residual = np.zeros((1, 8 * bl))
    residual[:, :3 * bl] = 40.0 * np.sin(np.arange(3 * bl) * 2 * np.pi * 100 / fs)
    judged = np.zeros((1, 8), dtype=bool)
    judged[:, 1] = True
    clean, emg = np.ones((1, 8), dtype=bool), np.zeros((1, 8), dtype=bool)
    fid = 10_000
    for lead, first_blanked in ((False, 0), (True, bl)):
        stage = EcgCanceller(1, fs)
        stage.settled_at = 0
        stage._gate(fid, np.zeros(1, dtype=np.int64), residual, np.ones(1), judged, clean,
                    ~emg, emg, np.array([lead]), 0)
        assert [(a - (fid - stage._pre), b - (fid - stage._pre)) for a, b, _ in stage._blank] \
            == [(first_blanked, 3 * bl)], lead


def test_gate_says_where_the_gap_after_a_blank_is_and_where_its_next_blank_begins() -> None:
    """What the P-wave blank may bridge: from ``after`` (its own end) — or from the end of a
    gate blank that goes on over it — to where the gate's next blank begins."""
    fs = 5000.0
    stage = EcgCanceller(1, fs)
    stage.settled_at = 0
    bl = stage._block
    residual = np.zeros((1, 12 * bl))
    for b in (2, 3, 4, 8, 9):  # misfits read as activity around blocks 2–4 and 8–9 …
        residual[:, b * bl:(b + 1) * bl] = 40.0 * np.sin(np.arange(bl) * 2 * np.pi * 100 / fs)
    judged = np.zeros((1, 12), dtype=bool)
    judged[:, [3, 9]] = True  # … judged in blocks 3 and 9: two blanks with a gap between
    clean, emg = np.ones((1, 12), dtype=bool), np.zeros((1, 12), dtype=bool)
    fid = 10_000

    def gate(after: int) -> tuple[int, int]:
        gap, then = stage._gate(fid, np.zeros(1, dtype=np.int64), residual, np.ones(1), judged,
                                clean, ~emg, emg, np.zeros(1, dtype=bool), after)
        return int(gap[0]), int(then[0])

    gate(0)
    runs = [(a - (fid - stage._pre), b - (fid - stage._pre)) for a, b, _ in stage._blank]
    assert len(runs) == 2 and 0 < runs[0][0] and runs[0][1] < runs[1][0], runs
    (a1, b1), (a2, b2) = runs
    assert gate(0) == (0, a1)  # nothing over 0: the gap from 0 to the first blank
    assert gate(a1) == (b1, a2)  # a blank starting right there goes on over it
    assert gate((a1 + b1) // 2) == (b1, a2)
    assert gate(b1 + 1) == (b1 + 1, a2)  # past the first blank: up to the second
    assert gate((a2 + b2) // 2) == (b2, -1)  # over the last one: no blank after the gap


def test_channel_holding_a_slow_train_predicts_no_other(monkeypatch) -> None:
    """An A-train smoothed to a near-sinusoid has little >200 Hz content and is not told from
    a heartbeat's misfit by the EMG test; on a channel where it left a QRS residual far beyond
    the usual one it must not be used to predict the other channels' residuals (tuning seed
    232: an iliopsoas train projected onto the anal sphincter as 27–67 µV spikes at each beat).
    The channels each beat's across-channel prediction is made from are recorded here."""
    fs = 5000.0
    ecg, noise, _ = real_ecg_record("100", fs, 40.0, 8, 1)
    ch = int(np.argsort(np.ptp(ecg[int(5 * fs):int(7 * fs)], axis=0))[2])  # a small heart
    t = np.arange(len(ecg)) / fs
    x = ecg + noise
    x[:, ch] += np.where((t > 20.0) & (t < 23.0), 60.0 * np.sin(2 * np.pi * 90.0 * t), 0.0)
    used: list[tuple[float, bool]] = []
    stage = EcgCanceller(8, fs)
    spatial = stage._spatial

    def recording(residual, sigma, correct, observed, learn_from):
        used.append((float(np.sqrt(np.mean(residual[ch] ** 2))), bool(observed[ch])))
        return spatial(residual, sigma, correct, observed, learn_from)

    monkeypatch.setattr(stage, "_spatial", recording)
    run(stage, x, 500)
    typical = np.median([rms for rms, _ in used[10:20]])
    odd = [observed for rms, observed in used if rms > 12.0 * typical]
    assert len(odd) >= 2 and not any(odd), (typical, odd)
    assert all(observed for rms, observed in used[10:20])


def _bursts_at_p_waves(x: np.ndarray, size: np.ndarray, loud: np.ndarray,
                       fs: float) -> tuple[np.ndarray, int, np.ndarray]:
    """``x`` (µV) with a 30 ms, 150 µV burst at R − 140 ms of each beat in ``loud`` on the
    channel whose heartbeat peaks highest (``size``, µV); returns (x, that channel, loud)."""
    ch = int(np.argmax(size))
    rng = np.random.default_rng(4)
    for r in loud:
        x[:, ch] += burst(len(x), fs, (r - 0.14 * fs) / fs, 0.03, 150.0, rng)
    return x, ch, loud


@pytest.mark.parametrize("name, seed", [("100", 1), ("s0010_re", 3)])
def test_p_waves_blanked_once_the_threshold_is_known(name: str, seed: int) -> None:
    """The P wave lies before the template window (R − 70 ms) and is never subtracted; its
    fast part read as 11–20 µV spikes at R − 119…−133 ms on the channels with 100–400 µV of
    ECG (tune-mitdb-10k, tune-ptb-10k-b, tune-mitdb-5k-b). Every beat's R − 140…−100 ms is
    blanked for detection on the channels whose heartbeat peaks above 150 µV, never on those
    below 30 µV (the gate opens from a 40 µV template, P_WAVE_GATED_UV), and not where
    something clearly bigger than a P wave lies there (a 150 µV burst on the channel with the
    most ECG). The blank goes on into the window past its
    taper (to R − 55 ms here): the detector zeroes blanked samples before its high-pass, and
    the unsubtracted PR segment right after a blank ending at R − 70 ms read as a 17 µV spike
    (tune-ptb-5k-60Hz, anal sphincter, R − 63…−67 ms)."""
    fs = 10_000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 30.0, 8, seed)
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    faint = int(np.argmin(size))  # (one channel's heartbeat made small: 20 µV)
    ecg[:, faint] *= 20.0 / size[faint]
    size[faint] = 20.0
    big, small = size >= 150.0, size <= 30.0
    assert big.any() and small.any()
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 28 * fs)]
    x, ch, loud = _bursts_at_p_waves(ecg + noise, size, beats[::3], fs)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    quiet = np.setdiff1d(beats, loud)
    p_wave = np.array([blank[r - int(0.14 * fs):r - int(0.1 * fs)].mean(axis=0) for r in quiet])
    assert p_wave[:, big].mean() >= 0.95, p_wave[:, big].mean(axis=0).round(2)
    assert not p_wave[:, small].any()
    pr = np.array([blank[r - int(0.07 * fs):r - int(0.055 * fs)].mean(axis=0) for r in quiet])
    assert pr[:, big].mean() >= 0.95, pr[:, big].mean(axis=0).round(2)
    covered = [blank[r - int(0.14 * fs):r - int(0.11 * fs), ch].mean() for r in loud]
    assert max(covered) == 0.0, np.round(covered, 2)


def test_p_waves_a_little_over_a_tenth_of_the_heartbeat_are_blanked() -> None:
    """A real heart's P wave is not always a tenth of its QRS or less: with PTB s0010's P waves
    1.6 × as big (their fast part to ~0.12 × the heartbeat on the channels with the most ECG)
    every beat's R − 140…−100 ms is still blanked there (tuning seed 232, 5 kHz: 21 spikes of
    20–37 µV at R − 107…−150 ms on the anal sphincter, 0.103–0.11 × its heartbeat), and a
    150 µV burst there still is not."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("s0010_re", fs, 30.0, 8, 3)
    scale = np.ones(len(ecg))
    for r in r_peaks:
        scale[max(r - int(0.26 * fs), 0):max(r - int(0.07 * fs), 0)] = 1.6
    ecg *= scale[:, None]
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    big = size >= 150.0
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 28 * fs)]
    x, ch, loud = _bursts_at_p_waves(ecg + noise, size, beats[::3], fs)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 500)
    quiet = np.setdiff1d(beats, loud)
    p_wave = np.array([blank[r - int(0.14 * fs):r - int(0.1 * fs)].mean(axis=0) for r in quiet])
    assert p_wave[:, big].mean(axis=0).min() >= 0.95, p_wave[:, big].mean(axis=0).round(2)
    covered = [blank[r - int(0.14 * fs):r - int(0.11 * fs), ch].mean() for r in loud]
    assert max(covered) == 0.0, np.round(covered, 2)


def test_p_wave_of_a_beat_known_by_its_shape_alone_is_blanked() -> None:
    """A beat whose detection energy falls under the threshold is a beat by its shape, judged
    when its QRS has arrived: later than the P-wave gate decided when a candidate at or above
    the threshold is found. Its P wave is gated when it is accepted (the rows from R − 140 ms
    are not output yet then) on the channels with the most ECG (extra tuning seed 276: the P
    waves of six such beats on the anal sphincter, 341 µV of ECG, read as 15–24 µV bursts at
    R − 111…−166 ms)."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("s0010_re", fs, 30.0, 8, 3)
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    big = size >= 150.0
    assert big.any()
    weak = r_peaks[(r_peaks > 12 * fs) & (r_peaks < 28 * fs)][::4]
    x = ecg + noise
    for r in weak:  # half the size: a quarter of the detection energy
        part = slice(r - int(0.3 * fs), r + int(0.45 * fs))
        x[part] -= 0.5 * ecg[part]
    stage = EcgCanceller(8, fs)
    _, blank = run_blanked(stage, x, 500)
    for r in weak:
        assert min(abs(b - r) for b in stage.beats) <= 0.02 * fs, r / fs
        p_wave = blank[r - int(0.14 * fs):r - int(0.1 * fs)][:, big].mean(axis=0)
        assert p_wave.min() >= 0.95, (r / fs, p_wave.round(2))


def test_p_waves_blanked_on_channels_with_a_moderate_heartbeat() -> None:
    """PTB s0010's P waves are large for its QRS: on a channel whose heartbeat peaks at 60–100 µV
    their fast part still reads as spikes (extra tuning seed 311: 43 of 10–18 µV at
    R − 110…−150 ms on a channel with 83 µV of band-passed heartbeat, in 4 min). Once the
    threshold is known, every beat's R − 140…−100 ms is blanked on those channels too."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("s0010_re", fs, 20.0, 8, 2)
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    moderate = (size >= 70.0) & (size < 100.0)
    assert moderate.sum() >= 2
    _, blank = run_blanked(EcgCanceller(8, fs), ecg + noise, 500)
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 19 * fs)]
    p_wave = np.array([blank[r - int(0.14 * fs):r - int(0.1 * fs)].mean(axis=0) for r in beats])
    assert p_wave[:, moderate].mean(axis=0).min() >= 0.9, p_wave.mean(axis=0).round(2)


def test_p_waves_gated_on_channels_with_a_small_heartbeat() -> None:
    """Once the threshold is known the P-wave gate opens on channels whose template peaks at
    P_WAVE_GATED_UV (40 µV) or more (extra tuning seed 618: PTB s0010's P waves read as 6–11 µV
    spikes at R − 111…−122 ms on a channel with a 47 µV template, six in 4 min): a channel
    scaled to a 50 µV template is blanked at R − 140…−100 ms, one scaled to 30 µV is not; a
    real needle MUAP of 30 µV p-p (the smallest the benchmarks score) at R − 120 ms before
    every third beat on the first is not hidden: its >200 Hz content keeps the gate off it.
    (At 25 µV one of 7 was hidden, at 18 µV all: what reads no larger than a P wave and no
    faster than the noise is gated, here as on channels with a bigger heart.)"""
    fs = 10_000.0
    ecg, noise, r_peaks = real_ecg_record("s0010_re", fs, 20.0, 8, 2)
    first = EcgCanceller(8, fs)
    run(first, ecg + noise, 1000)
    heart = np.abs(first._template[first._primary()]).max(axis=1)
    fifty, thirty = (int(ch) for ch in np.argsort(heart)[::-1][:2])  # clear P waves
    x = ecg.copy()
    x[:, fifty] *= 50.0 / heart[fifty]
    x[:, thirty] *= 30.0 / heart[thirty]
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 19 * fs)]
    with_muap = beats[::3]
    x, spikes = _needle_muaps_before(x + noise, fifty, with_muap, [0.12] * len(with_muap),
                                     30.0, fs)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    p_wave = np.array([blank[r - int(0.14 * fs):r - int(0.1 * fs)].mean(axis=0) for r in beats])
    assert p_wave[:, thirty].mean() <= 0.1, p_wave.mean(axis=0).round(2)
    without = np.setdiff1d(np.arange(len(beats)), np.arange(0, len(beats), 3))
    assert p_wave[without, fifty].mean() >= 0.9, p_wave.mean(axis=0).round(2)
    cut = [blank[a + int(0.004 * fs):b, fifty].any() for a, b in spikes]
    assert not any(cut), f"{sum(cut)} of {len(cut)} MUAPs hidden past their start"


def _needle_muaps_before(x: np.ndarray, ch: int, beats: np.ndarray, before_s: list[float],
                         pp_uv: float, fs: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``x`` with a real needle MUAP (``support.realcases.muap_library``, in turn, alternating
    sign, ``pp_uv`` µV p-p) added on channel ``ch`` from ``before_s[i]`` s before each of
    ``beats``; and the rows (start, stop) each one covers."""
    realcases = pytest.importorskip("support.realcases")
    library = realcases.muap_library(fs)
    spikes = []
    for i, (r, before) in enumerate(zip(beats, before_s, strict=True)):
        wave = needle(library[i % len(library)] * (-1.0) ** i, pp_uv)
        onset = int(r - before * fs)
        x[onset:onset + len(wave), ch] += wave
        spikes.append((onset, onset + len(wave)))
    return x, spikes


def test_p_wave_gate_never_cuts_a_muap_straddling_its_start() -> None:
    """The P-wave gate judges what lies a little before the rows it blanks too: a MUAP whose
    peak has passed when the gate starts showed it only a small, slow tail, which was blanked
    and the spike cut in two (extra tuning seed 265: a 266 µV spike at R − 165 ms on a channel
    with 67 µV of heartbeat, missed). Real needle MUAPs of 250 µV p-p starting R − 210…−155 ms
    on a channel with 60–100 µV of heartbeat are never blanked."""
    fs = 5000.0
    ecg, noise, r_peaks = real_ecg_record("100", fs, 30.0, 8, 1)
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    ch = int(np.argmax(np.where(size < 110.0, size, 0.0)))
    assert size[ch] >= 60.0
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 28 * fs)][::2]
    before = [0.21 - 0.005 * (i % 12) for i in range(len(beats))]
    x, spikes = _needle_muaps_before(ecg + noise, ch, beats, before, 250.0, fs)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 500)
    cut = [round(a / fs, 3) for a, b in spikes if blank[a:b, ch].any()]
    assert not cut, f"{len(cut)} of {len(spikes)} spikes blanked, at {cut} s"


def test_p_wave_gate_at_a_high_heart_rate() -> None:
    """At RR ≈ 400 ms (MIT-BIH 100 played at twice its speed) the stretch before a beat's
    window, R − 150…−70 ms, is the previous beat's T wave and TP segment. Nothing there is
    subtracted twice or added (the P wave is gated, not subtracted: the ECG left in the output
    there is at most what the input holds), the P wave's fast part is still blanked on the
    channels with the most ECG, and a 150 µV burst there is not."""
    fs = 10_000.0
    ecg, _, r_peaks = real_ecg_record("100", fs / 2, 40.0, 8, seed=1)  # 20 s at 10 kHz
    noise = signal.sosfilt(bandpass_sos(10.0, 3000.0, fs),
                           np.random.default_rng(0).standard_normal(ecg.shape) * 3.0, axis=0)
    assert 0.35 * fs <= np.median(np.diff(r_peaks)) <= 0.45 * fs
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    big = size >= 150.0
    assert big.any()
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < len(ecg) - fs)]
    x, ch, loud = _bursts_at_p_waves(ecg + noise, size, beats[::4], fs)
    out, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    quiet = np.setdiff1d(beats, loud)
    stretch = np.concatenate([np.arange(r - int(0.15 * fs), r - int(0.07 * fs)) for r in quiet])
    left = out[stretch] - noise[stretch]
    ratio = np.sqrt(np.mean(left ** 2, axis=0) / np.mean(ecg[stretch] ** 2, axis=0))
    assert (ratio <= 1.05).all(), ratio.round(2)
    p_wave = np.array([blank[r - int(0.14 * fs):r - int(0.1 * fs)].mean(axis=0) for r in quiet])
    assert p_wave[:, big].mean() >= 0.95, p_wave[:, big].mean(axis=0).round(2)
    covered = [blank[r - int(0.14 * fs):r - int(0.11 * fs), ch].mean() for r in loud]
    assert max(covered) == 0.0, np.round(covered, 2)


@pytest.mark.parametrize("name, seed", [("100", 1), ("s0010_re", 3)])
def test_needle_spikes_on_the_qrs_are_not_cut_by_the_gate(name: str, seed: int) -> None:
    """A real needle MUAP (PhysioNet EMG, 113 µV p-p) 10 ms before or after a real R peak on
    the channel with the most ECG: the part of it in the block that passes the >200 Hz EMG
    test is left to the detector, and so is the part in the block beside it, where it may not
    pass — blanked, the spike was cut, and the detector drops a segment that runs into a blank
    (tune-mitdb-10k: 18 of 29 such spikes found at R + 10 ms; now 27)."""
    fs = 10_000.0
    x, ch, r_peaks, library = with_needles_at_hand(name, seed, fs)
    spans = []
    for i, r in enumerate(r_peaks[(r_peaks > 8 * fs) & (r_peaks < 28 * fs)][::2]):
        wave = needle(library[i % len(library)] * (-1.0) ** i, 113.0)
        onset = int(r + (0.01 if i % 4 < 2 else -0.01) * fs)
        x[onset:onset + len(wave), ch] += wave
        spans.append((onset, onset + len(wave)))
    _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    cut = [blank[a:b, ch].any() for a, b in spans]
    assert np.mean(cut) <= 0.1, f"{sum(cut)} of {len(cut)} spikes partly blanked"


@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("100", 1)])
def test_p_waves_gated_from_the_qrs_rise(name: str, seed: int) -> None:
    """A candidate is found ~60 ms after its R peak (its look-ahead), when the rows before
    R − 150 ms have been output; a P wave starting earlier read as 8–14 µV spikes at
    R − 146…−164 ms on the channel with the most ECG (tuning seed 210: 20 events in 4 min).
    The gate is decided again when the smoothed detection signal rises through the QRS
    threshold, ~10 ms before R: R − 200…−150 ms is blanked on the channels whose heartbeat
    peaks above 150 µV (was 0–3 %), never on those below 30 µV (P_WAVE_GATED_UV). A real
    needle MUAP there (60 µV p-p on a channel with ≥ 150 µV of ECG, its 2 ms RMS below the
    gate's 0.1 × the heartbeat) is not: it has >200 Hz content a P wave has not."""
    fs = 10_000.0
    ecg, noise, r_peaks = real_ecg_record(name, fs, 30.0, 8, seed)
    size = np.abs(ecg[int(5 * fs):int(7 * fs)]).max(axis=0)
    faint = int(np.argmin(size))  # (one channel's heartbeat made small: 20 µV)
    ecg[:, faint] *= 20.0 / size[faint]
    size[faint] = 20.0
    big, small = size >= 150.0, size <= 30.0
    ch = int(np.argmax(size))
    beats = r_peaks[(r_peaks > 5 * fs) & (r_peaks < 28 * fs)]
    before = [0.18 if i % 2 else 0.13 for i in range(len(beats[::3]))]
    x, spikes = _needle_muaps_before(ecg + noise, ch, beats[::3], before, 60.0, fs)
    _, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    quiet = np.setdiff1d(beats, beats[::3])
    early = np.array([blank[r - int(0.2 * fs):r - int(0.15 * fs)].mean(axis=0) for r in quiet])
    assert early[:, big].mean() >= 0.8, early[:, big].mean(axis=0).round(2)
    assert not early[:, small].any()
    cut = [blank[a:b, ch].any() for a, b in spikes]
    assert np.mean(cut) <= 0.15, f"{sum(cut)} of {len(cut)} spikes blanked"


def extra_case_events(seed: int, until_s: float, legacy_heart: bool = True
                      ) -> list[tuple[int, float]]:
    """The chain's events (channel, onset s) on extra tuning case ``seed`` of the real-ECG
    cases (``scripts/explore_seeds``; by default with the heart as built before 2026-12-02,
    see ``realcases.extra_case_or_skip``), from its start to ``until_s``."""
    from ionm_station.analysis import Record, analyze_record

    case = pytest.importorskip("support.realcases").extra_case_or_skip(seed, legacy_heart)
    fs = case.sample_rate_hz
    raw = case.raw[:int(until_s * fs)]
    result = analyze_record(Record(fs, list(case.montage.labels), raw, case.range_uv),
                            case.montage)
    return [(int(e.channel), e.onset / fs) for e in result.events]


def test_a_start_up_transient_does_not_stand_for_the_first_heartbeat() -> None:
    """Extra tuning seed 287 (PTB s0010, 10 kHz): the start-up transient (a candidate at
    23 ms, its window reaching before the first sample, so never blanked) was larger than the
    first heartbeat 0.21 s later, so it stood for it as one beat's lobes, and the beat's
    window went unblanked: its QRS read as 27–41 µV bursts on three channels at 0.25 s. The
    beat's window is now blanked; nothing is detected before the case's first event
    (1.79 s). (An electrode pop 47 ms after the second beat's fiducial, 1.05 s, makes that
    channel's input over twice its heartbeat there: once the window was judged on the beats
    before it alone, its 12 µV QRS was left open and read as a spike at 1.01 s, until a
    noted step blanked such a window too.)"""
    events = extra_case_events(287, 2.5)
    assert not [e for e in events if e[1] < 1.7], events


def test_a_block_read_flat_at_start_up_does_not_leave_the_first_heartbeat_whole() -> None:
    """Extra tuning seed 201 (MIT-BIH 100, 10 kHz): in the first second a channel's
    >200 Hz scale still held the unconverged mains (~19 µV against 2 µV of noise), so one
    block of plain noise read as flat; that one block took the channel out of the first
    heartbeat's learning blank and the QRS read as a 20 µV burst at R (0.54 s). A channel is
    now blanked there like every other; nothing is detected before the case's first event
    (1.65 s)."""
    events = extra_case_events(201, 2.5)
    assert not [e for e in events if e[1] < 1.6], events


def test_emg_in_the_second_heartbeat_while_the_threshold_is_learnt_is_not_blanked() -> None:
    """Extra tuning seed 390 (PTB s0010, 10 kHz): a 432 µV spike on a channel with 52 µV of
    heart lies in the second heartbeat's window (1.13 s) while the threshold is learnt. The
    learning blank leaves out a channel whose input there is over twice its heartbeat, but
    the heartbeat was the median of the beats so far with this one included: of two, their
    mean, which no input is more than twice of. The spike was blanked whole and missed; it is
    now found, and nothing else is before the case's next event (1.68 s)."""
    events = extra_case_events(390, 2.0)
    assert [ch for ch, t in events if 1.1 <= t <= 1.16] == [3], events
    assert not [e for e in events if e[1] < 1.6 and not 1.1 <= e[1] <= 1.16], events


def test_emg_after_a_learning_window_s_core_is_judged_on_its_own() -> None:
    """Extra tuning seed 203 (PTB s0010, 10 kHz): while the threshold is learnt, a 181 µV
    spike on a channel with 17 µV of heart lies 115 ms after a candidate's fiducial (2.08 s),
    in its window but after the core. The window was blanked on the core's largest input
    alone, where the channel holds only the heart, and the spike was missed. The part after
    the core is now judged on its own once it has arrived. The case's two events up to 2.5 s
    are found, and nothing else."""
    events = sorted(e for e in extra_case_events(203, 3.0) if e[1] < 2.5)
    assert events == [(0, pytest.approx(1.485, abs=0.02)), (3, pytest.approx(2.077, abs=0.01))]


def test_a_pop_s_recovery_is_not_taken_for_a_heartbeat() -> None:
    """Extra tuning seed 330 (PTB s0010, 10 kHz): an electrode pop at 185.33 s on a channel
    with 49 µV of heart. Once its >200 Hz hold had ended (185.54 s) its slow recovery read 300–
    600 σ² in the QRS detection band, a candidate over the threshold 0.18 s before the next
    R peak (185.73 s) was taken for a beat, and the beat itself, within the refractory
    period after it, was left whole: 60–140 µV bursts on the three channels with the most
    heart. A pop's channel is now kept out of QRS detection until its span ends; the beat is
    subtracted, and nothing is detected on those channels there."""
    events = extra_case_events(330, 187.0)
    assert not [e for e in events if e[0] in (1, 2, 7) and 185.5 <= e[1] <= 185.9], events


def test_a_pop_s_hold_on_qrs_detection_is_the_same_in_any_chunking() -> None:
    """The pop of extra tuning seed 330 (185.33 s) through a chain started at 178 s, in 1 s
    and 37 ms chunks: the channel is held out of QRS detection from when any chunking has
    the step detector's span (its latency after the span's start), so both give the same
    events, and neither leaves the next beat whole."""
    fs, runs = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        330, 178.0, 188.0, (1.0, 0.037))
    found = [sorted((e.channel, e.onset, e.stop, e.kind) for e in events) for events, _ in runs]
    assert found[0] == found[1]
    assert not [e for e in found[0] if e[0] in (1, 2, 7) and 185.5 * fs <= e[1] <= 185.9 * fs]


def test_a_beat_whose_qrs_lies_just_past_the_lag_search_is_subtracted() -> None:
    """Extra tuning seed 552 (PTB s0010, 10 kHz), 129.76 s: EMG on four channels (spikes of
    322 and 440 µV, two B-trains) held the channels with most of the heart out of QRS
    detection, and the others' earlier lobes put the candidate's fiducial 17–19 ms before the
    dominant shape's, just past the ±15 ms search. Under the threshold, the beat was found
    only by search-back, already output: it was left whole on four channels (150 µV on one)
    and swallowed the onset of the 440 µV spike 70 ms later. The shape is now searched
    CONFIRM_LATE_S further on. From 120 s, in 1 s and 37 ms chunks, only the case's three
    events are found there, each at its own onset."""
    fs, runs = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        552, 120.0, 131.0, (1.0, 0.037))
    for events, _ in runs:
        there = sorted((e.channel, e.onset / fs) for e in events if 129.5 <= e.onset / fs < 130.0)
        assert [ch for ch, _ in there] == [0, 1, 6], there
        assert [abs(t - truth) < 0.005 for (_, t), truth in zip(there, (129.614, 129.825,
                                                                         129.862))] == [True] * 3


def test_a_young_class_without_a_channel_s_template_does_not_take_the_dominant_rhythm() -> None:
    """Extra tuning seed 732 (PTB s0010, 10 kHz, QRS width kept): a 314 µV spike on channel 7
    at 230.60 s, R + 37 ms. A class of three beats with no template on channel 7 took the
    beat from the dominant class, its similarity not spoilt by the spike there (0.992 against
    0.987); the beat was left in place on channel 7 and gated, the spike with it. Classes are
    now compared on the channels all of them have a template on (the dominant one: 0.995).
    From 210.3 s, in 1 s and 37 ms chunks, the spike is found at its onset."""
    fs, runs = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        732, 210.3, 231.5, (1.0, 0.037), legacy_heart=False)
    for events, _ in runs:
        there = [(e.channel, e.onset / fs) for e in events if 230.5 <= e.onset / fs < 230.7]
        assert [ch for ch, _ in there] == [7], there
        assert abs(there[0][1] - 230.600) < 0.003, there


def test_emg_on_a_few_channels_starts_no_new_class() -> None:
    """Tuning case tune-ptb-10k-b: at 145.02 s A-trains of 509 and 787 µV on channels 7 and 1
    (half the template energy over the noise between them) pulled the beat's similarity to the
    dominant class down to 0.40, the other six channels at 0.97–1.00, and it started a new
    class; that class's one-beat template on channel 5 held a 44 µV B-train's MUAPs, and when
    A-trains on channels 0 and 3 made the beat at 202.72 s match it, they were subtracted
    there: −25 µV spikes, a 31 µV "spike" event at 202.84 s. When a beat resembles no class,
    the classes are judged again without the channels where its fit found EMG (>200 Hz)
    before it starts one. (From the case's start: chains started at 100 or 140 s learn other
    classes.) The MIT-BIH ventricular premature beat still starts its own class: see
    test_a_ventricular_premature_beat_still_starts_a_class."""
    from ionm_station.analysis import Record, analyze_record

    realcases = pytest.importorskip("support.realcases")
    case = realcases.case_or_skip("tune-ptb-10k-b")
    fs = case.sample_rate_hz
    raw = case.raw[:int(203.2 * fs)]
    events = analyze_record(Record(fs, list(case.montage.labels), raw, case.range_uv),
                            case.montage).events
    found = sorted((int(e.channel), e.kind) for e in events if 202.5 <= e.onset / fs < 203.0)
    assert found == [], found
    trains = sorted(int(e.channel) for e in events if e.kind == "train"
                    and abs(e.onset / fs - 201.79) < 0.1)
    assert trains == [0, 3], trains


def test_an_odd_beat_with_emg_on_every_channel_still_starts_a_class() -> None:
    """A ventricular premature beat under a 40 µV, 40 Hz MUAP train on every channel (5 kHz,
    4 channels): its fit finds EMG everywhere, so no channel is left to judge it on without
    them, and it starts a class of its own as before. (A first version of that second look
    judged it on no channel at all and raised ValueError, stopping the canceller.) The
    ventricular beats after it make a class too; the dominant one keeps the rest."""
    rec = make_record(fs=5000.0, duration_s=30.0, n_ch=4, seed=3, ectopic_every=6)
    vpb = rec.r_peaks[rec.ectopic][0]
    rng = np.random.default_rng(2)
    for ch in range(4):
        add_emg(rec, ch, muap_train(len(rec.x), rec.fs, vpb / rec.fs - 0.15, 0.35, 40.0, 40.0,
                                    rng))
    stage = EcgCanceller(4, rec.fs)
    run(stage, rec.x, 1000)
    assert sorted(stage._class_beats.tolist()) == [1, 5, 32]


def test_no_evidence_is_no_match_for_an_odd_beat_with_emg() -> None:
    """A ventricular premature beat under a 40 µV MUAP train on the two channels with 300 µV of
    heart, the other two holding 1 µV (templates below the noise: they do not vote). Without
    its EMG channels nothing is left to compare it on, which is no match: it starts a class of
    its own, as it did before the second look (a version of that look scored such a class 1.0
    and the beat joined the dominant class: 36 / 2 / 0 beats; so it does here if the second
    look scores a class with no voter 1.0). The outcome depends on the MUAP train's draw, as it
    did before 2026-12-05 (draws 0–5: 36/2/0, 32/6/0, 35/1/2, 35/1/2, 35/1/2, 32/6/0); draw 2,
    pinned first, gives 36/2/0 since young templates are low-passed for the fit
    (YOUNG_FIT_LOWPASS_HZ): the EMG test no longer flags the train on the second heart channel
    (likely because the template's noise had added to that residual's >200 Hz; not traced
    further), so the second look is not a look without evidence any more. Draw 3 is."""
    rec = make_record(fs=5000.0, duration_s=30.0, n_ch=4, seed=3,
                      gains_uv=np.array([300.0, 300.0, 1.0, 1.0]), ectopic_every=6)
    vpb = rec.r_peaks[rec.ectopic][0]
    rng = np.random.default_rng(3)
    for ch in (0, 1):
        add_emg(rec, ch, muap_train(len(rec.x), rec.fs, vpb / rec.fs - 0.15, 0.35, 40.0, 40.0,
                                    rng))
    stage = EcgCanceller(4, rec.fs)
    run(stage, rec.x, 1000)
    assert stage._class_beats.tolist() == [35, 1, 2]


def test_a_ventricular_premature_beat_still_starts_a_class() -> None:
    """Tuning case tune-mitdb-10k-60Hz: MIT-BIH 100's one ventricular premature beat (R at
    120.753 s, similarity 0.46 to the dominant class on every channel) starts a class of its
    own, EMG or none: the canceller holds two classes after it. (Chain started at 100 s.)"""
    from ionm_station.pipeline.chain import FreeRunChain

    case = pytest.importorskip("support.realcases").case_or_skip("tune-mitdb-10k-60Hz")
    fs = case.sample_rate_hz
    a = int(100.0 * fs)
    chain = FreeRunChain(case.montage, fs, case.range_uv, start=a)
    counts = []
    for stop_s in (120.6, 121.4):
        b = int(stop_s * fs)
        chain.process(case.raw[a:b], a)
        counts.append(int((chain.ecg._class_beats > 0).sum()))
        a = b
    assert counts == [1, 2], counts


def test_the_dominant_class_keeps_the_beats_a_young_class_matches_about_as_well() -> None:
    """Extra tuning seed 612 (PTB s0010, 10 kHz): a class started at 129.63 s by one odd beat
    grew towards the dominant shape; compared on the same channels it matched the next beats
    a little better (0.9944 against 0.9915 at 147.14 s), took them, and its young template on
    channel 7 left a 12.6 µV "spike" at 147.22 s (and a 13.9 µV one on channel 1 at
    136.89 s). The dominant class now keeps a beat unless another leaves under
    OTHER_CLASS_DISSIMILARITY of its dissimilarity: from the start to 148 s, neither, and
    over 130–147.5 s the events found are the case's own, each within 5 ms of its onset."""
    events = extra_case_events(612, 148.0, legacy_heart=False)
    assert not [(ch, t) for ch, t in events
                if (ch == 1 and 136.8 <= t <= 137.0) or (ch == 7 and 147.1 <= t <= 147.35)]
    case = pytest.importorskip("support.realcases").extra_case_or_skip(612, legacy_heart=False)
    fs = case.sample_rate_hz
    truth = sorted((e.channels[0], e.onset / fs) for e in case.truth.events
                   if 130.0 <= e.onset / fs < 147.5)
    found = sorted((ch, t) for ch, t in events if 130.0 <= t < 147.5)
    assert len(truth) >= 5 and len(found) == len(truth), (found, truth)
    assert all(f[0] == t[0] and abs(f[1] - t[1]) < 0.005 for f, t in zip(found, truth)), \
        (found, truth)


def test_pr_segment_misfit_between_two_gate_blanks_is_blanked() -> None:
    """Extra tuning seed 263 (PTB s0010, 10 kHz), 28–32 s, the channel with 279 µV of ECG:
    the residual gate blanked the window's first 20–29 ms (judged blocks there) and again from
    40 ms; the P-wave blank, meeting the first, did not go on to the second, and the PR
    segment between them read as 11–12 µV spikes at R − 33…−35 ms, four in 4 s. The P blank
    now bridges from the end of the blank over its own to the next one (where that is slow):
    three of them go (the fourth's gap holds 1.4 × the >200 Hz noise and is left)."""
    onsets = np.array([t for ch, t in extra_case_events(263, 33.0) if ch == 0])
    assert not [t for t in (28.06, 30.29, 31.79) if (np.abs(onsets - t) < 0.02).any()], onsets


@pytest.mark.parametrize("chunk_s", [1.0, 0.037])
def test_a_pop_inside_a_beats_core_blanks_that_core_on_its_channel(
        chunk_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extra tuning seed 264 (PTB s0010, 10 kHz), 10.31 s: a 1.9 mV electrode pop on the
    channel with 381 µV of ECG, 23 ms after the R peak. The beat's fit took up the step with
    its free heart time courses and left a 149 µV misfit in the 15 ms before the pop's own
    blank, an alarm-level "spike" at 10.29 s. The step detector's span, noted by the canceller,
    now blanks that beat's fitted core on that channel — in 1 s chunks (the step is noted
    before the beat is fitted) and in 37 ms ones alike."""
    import ionm_station.analysis

    monkeypatch.setattr(ionm_station.analysis, "BLOCK_S", chunk_s)
    onsets = np.array([t for ch, t in extra_case_events(264, 12.0) if ch == 7])
    assert not (np.abs(onsets - 10.29) < 0.03).any(), onsets


@pytest.mark.parametrize("after_r_ms", [40, 60])
def test_a_pop_put_inside_a_real_beats_core_leaves_no_event_before_it_in_any_chunking(
        after_r_ms: int) -> None:
    """Extra tuning seed 264 (PTB s0010, 10 kHz), the first beat after 9 s on the channel with
    381 µV of ECG, with a −1.5 mV pop (τ 0.3 s) added 40 or 60 ms after its R peak: before,
    the beat's fit took the step up and left a 43–50 µV "spike" between the R peak and the
    pop. In 1 s and 37 ms chunks the chain now gives the same events, none there."""
    realcases = pytest.importorskip("support.realcases")
    case = realcases.extra_case_or_skip(264)
    fs = case.sample_rate_hz
    n = int(12.0 * fs)
    beats = np.array(case.truth.ecg_beats)
    r = int(beats[beats > 9.0 * fs][0])
    at = r + int(after_r_ms / 1000 * fs)
    x = case.raw[:n].copy()
    x[at:, 7] += -1500.0 * np.exp(-np.arange(n - at) / fs / 0.3)
    found = [sorted((int(e.channel), e.onset, e.offset)
                    for e in realcases.through_chain(case, x, 0, chunk)[0])
             for chunk in (int(fs), int(0.037 * fs))]
    assert found[0] == found[1]
    assert not [e for e in found[0] if e[0] == 7 and r - 0.15 * fs <= e[1] <= at], found[0]


@pytest.mark.parametrize("chunk_s", [1.0, 0.037])
def test_the_first_beat_after_cautery_is_gated_where_its_fit_leaves_more_than_the_beat(
        chunk_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extra tuning seed 225 (MIT-BIH 100, 10 kHz): cautery from 13.9 s, the chain's span
    over at 15.95 s; the first beat after it (R 16.33 s) was fitted with the scale still
    holding the cautery's recovery and left a 40 µV misfit 70 ms before R, larger than the
    heartbeat there, which the gate took for something else: a 42 µV "spike" at 16.26 s. A
    beat whose window starts within RELOCK_S after a global artifact has such a misfit gated
    (where it has no EMG) — in 1 s chunks and 37 ms ones alike."""
    import ionm_station.analysis

    monkeypatch.setattr(ionm_station.analysis, "BLOCK_S", chunk_s)
    onsets = np.array([t for ch, t in extra_case_events(225, 18.0) if ch == 0])
    assert not ((onsets > 15.9) & (onsets < 16.5)).any(), onsets


def test_a_beat_under_the_threshold_gets_its_p_wave_gated_when_it_is_due() -> None:
    """Extra tuning seed 276 (PTB s0010, 10 kHz), 105.47 s: a burst on another channel took
    it out of QRS detection and the beat's detection peak fell to 74 against a threshold of
    278; accepted by its shape alone, too late for the P-wave gate, its P wave's fast part
    read as a 14 µV spike at R − 138 ms on the channel with most ECG. A candidate under the
    threshold found 0.8 mean RR or more after the last beat gets the gate too."""
    onsets = np.array([t for ch, t in extra_case_events(276, 106.0) if ch == 7])
    assert not ((onsets > 105.30) & (onsets < 105.36)).any(), onsets


def test_a_due_beat_s_qrs_rising_under_the_threshold_decides_its_p_wave_gate() -> None:
    """Extra tuning seed 774 (PTB s0010, 10 kHz, as ``scripts/explore_seeds`` builds it), the
    beat at 52.50 s: an EMG train on channel 1 took it out of QRS detection, its detection
    peak was 149 against a threshold of 245, and it was found as a candidate ~150 ms after
    its R peak — after its P wave's fast part had been output on channel 7 (324 µV of heart),
    where it read as a 15 µV burst at R − 127 ms. A due beat's QRS rising through half the
    threshold decides the gate now; the train on channel 1 is still found. In a fresh chain
    from 46 s, in 1 s and 37 ms chunks."""
    fs, runs = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        774, 46.0, 54.0, (1.0, 0.037), legacy_heart=False, notched_mains=False)
    for events, _ in runs:
        near = {(int(e.channel), round(e.onset / fs, 2)) for e in events
                if abs(e.onset / fs - 52.375) < 0.05}
        assert near == {(1, 52.38)}, near


@pytest.mark.parametrize(("seed", "from_s", "spike_s"), [(900, 55.0, 60.498),
                                                     (864, 195.0, 200.627)])
def test_a_common_mode_step_after_a_p_wave_does_not_open_its_gate(seed: int, from_s: float,
                                                                 spike_s: float) -> None:
    """Extra tuning seeds 900 and 864 (PTB s0010, 10 kHz, as ``scripts/explore_seeds`` builds
    them): a 25–39 µV common-mode step 113 and 97 ms before an R peak, found and blanked from
    its start; but its edge's >200 Hz content, inside the stretch the P-wave gate judges,
    refused the gate on the channel with most heart (324–418 µV), and the P wave before the
    step read as a 14–17 µV event at R − 138 and −124 ms. From a noted step on, the gate
    judges a channel as held at its last value. In a fresh chain from ``from_s``, in 1 s and
    37 ms chunks."""
    fs, runs = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        seed, from_s, from_s + 7.0, (1.0, 0.037), legacy_heart=False, notched_mains=False)
    for events, _ in runs:
        near = [(int(e.channel), e.onset / fs) for e in events if abs(e.onset / fs - spike_s) < 0.1]
        assert not near, near


def test_the_window_s_end_on_the_t_wave_leaves_no_spike() -> None:
    """Extra tuning seed 227 (PTB s0010, 10 kHz), the channel with 445 µV of ECG: where the
    subtraction window ends (R + ~230 ms) the T wave goes on, and the 10 ms taper from a
    subtracted T wave to one left in place read to the detector's 40 Hz high-pass as 7–12 µV
    spikes at R + 222…234 ms (8.79, 49.30, 118.04, 120.37 s). Over 30 ms it does not."""
    onsets = np.array([t for ch, t in extra_case_events(227, 121.0) if ch == 0])
    for t in (8.79, 49.30, 118.04, 120.37):
        assert not (np.abs(onsets - t) < 0.02).any(), (t, onsets)


def test_a_young_templates_misfit_larger_than_the_heartbeat_fitted_there_is_gated() -> None:
    """Extra tuning seed 313 (MIT-BIH 100, 5 kHz), 5.05 s: the largest channel's template had
    two beats; the fit left a 20 µV misfit at the R peak, where the fitted heartbeat was
    faint, and the gate took it for something else (larger than the heartbeat there) and left
    a "spike". A young template's misfit is gated as a new class's is."""
    onsets = [t for ch, t in extra_case_events(313, 8.0) if ch == 7]
    assert not [t for t in onsets if abs(t - 5.05) < 0.03], onsets


@pytest.mark.parametrize("chunk_s", [1.0, 0.037])
def test_a_pop_that_outweighs_a_beat_s_fit_blanks_the_beat_left_whole(
        chunk_s: float) -> None:
    """Tuning case tune-ptb-10k, 197.32 s: a 1 mV electrode pop 29 ms after the R peak on the
    adductor (80 µV of heart). With the pop in its core the fit no longer lowered the beat's
    energy, so the heartbeat was left whole there and its core was not blanked (only a
    subtracted one was); the pop's >200 Hz onset read as EMG in its block, and the residual
    gate spares the block beside an EMG block: the unsubtracted QRS there was a 23 µV
    "spike" at 197.311 s. A step inside a beat's core now blanks it also where the beat was
    left whole and its template reaches 15 µV p-p. From 185 s (the chain started mid-case),
    in 1 s and 37 ms chunks: nothing before the pop on that channel, the 300 µV spike on
    channel 7 at 196.53 s still found."""
    realcases = pytest.importorskip("support.realcases")
    case = realcases.case_or_skip("tune-ptb-10k")
    fs = case.sample_rate_hz
    a, b = int(185.0 * fs), int(198.5 * fs)
    events, _ = realcases.through_chain(case, case.raw[a:b], a, int(chunk_s * fs))
    found = sorted((e.channel, round(e.onset / fs, 3)) for e in events
                   if 196.0 <= e.onset / fs < 197.4)
    assert [ch for ch, _ in found] == [7] and abs(found[0][1] - 196.532) < 0.003, found


def test_a_step_noted_after_a_beats_core_was_fitted_blanks_that_core() -> None:
    """A step blanks a fitted core on each of its channels where it begins inside the core, the
    channel has a heartbeat template and no EMG lies before it in the core; nowhere else."""
    ecg = EcgCanceller(5, 5000.0)
    core = ecg.core_samples
    emg = np.zeros((5, -(-core // 50)), bool)  # 10 ms blocks at 5 kHz
    emg[4, 0] = True  # EMG in the core's first block, before the step
    ecg._cores.append((np.array([100, 110, 120, 130, 100]),
                       np.array([True, True, False, True, True]), emg))
    ecg.note_steps([(150, (0, 2, 3, 4)), (50, (1,)), (130 + core, (3,))])
    ecg.settled_at = 0
    mask = ecg.blank_mask(0, 2000)
    assert mask[100:100 + core, 0].all() and not mask[:100, 0].any()
    assert not mask[100 + core:, 0].any()
    assert not mask[:, 1].any() and not mask[:, 2].any()  # before its core; no template
    assert mask[130:130 + core, 3].all() and not mask[130 + core:, 3].any()
    assert not mask[:, 4].any()  # EMG before the step


@pytest.mark.parametrize("fit", [False, True])
@pytest.mark.parametrize("name, seed", [("s0010_re", 3), ("s0010_re", 1)])
def test_pr_segment_misfit_between_the_p_blank_and_the_gate_is_blanked(
        name: str, seed: int, fit: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The P-wave blank reaches 20 ms into the window, the residual gate begins at the QRS's
    onset; between them (R − 70…−30 ms here) a slow PR-segment misfit larger than the
    heartbeat there — which keeps the gate off it — read as 16–31 µV spikes at R − 25…−37 ms
    for seconds on end (extra tuning seed 299, 333 µV of ECG). The P blank now runs on to the
    gate's where that is near: without the fit of the beat-to-beat variation a slow 20 µV wave
    there is blanked, while a real needle MUAP (113 µV p-p) at the same place in the other
    beats is not touched. With it, a slow wave locked to every other beat, as here, is one of
    the patterns it learns (slow and locked to the heartbeat: the heart's), and where it is
    not blanked about half of it is left at most (2.2–10.0 µV p-p of 20 here, means 3.5 and
    6.7; 2.0–9.4, means 3.2 and 6.6, before the fit began a few beats into the record)."""
    if not fit:
        monkeypatch.setattr(ecg_module, "VARIATION_MIN_BEATS", 10 ** 9)
    fs = 10_000.0
    x, ch, r_peaks, library = with_needles_at_hand(name, seed, fs)
    plain = x.copy()
    beats = r_peaks[(r_peaks > 10 * fs) & (r_peaks < 28 * fs)]
    m = int(0.03 * fs)
    slow, spikes = [], []
    for i, r in enumerate(beats):
        if i % 2 == 0:  # one cycle of 33 Hz, 20 µV p-p, R − 60…−30 ms: slow, no >200 Hz content
            c = int(r - 0.045 * fs)
            x[c - m // 2:c - m // 2 + m, ch] += 10.0 * np.sin(np.linspace(0, 2 * np.pi, m))
            slow.append(c)
        elif i % 4 == 1:
            wave = needle(library[i % len(library)], 113.0)
            onset = int(r - 0.05 * fs)
            x[onset:onset + len(wave), ch] += wave
            spikes.append((onset, onset + len(wave)))
    out, blank = run_blanked(EcgCanceller(8, fs), x, 1000)
    covered = np.array([blank[c - m // 4:c + m // 4, ch].mean() for c in slow[2:]])
    if fit:
        left = out[:, ch] - run(EcgCanceller(8, fs), plain, 1000)[:, ch]
        open_ = [np.ptp(left[c - m // 2:c + m // 2]) for c in np.array(slow[2:])[covered < 0.9]]
        assert max(open_, default=0.0) <= 0.55 * 20.0, np.round(open_, 1)
    else:
        assert covered.mean() >= 0.9, np.round(covered, 2)
    # (the P blank's first 20 ms into the window may touch a spike's first 1–3 ms, as before)
    cut = [blank[a + int(0.004 * fs):b, ch].any() for a, b in spikes]
    assert not any(cut), f"{sum(cut)} of {len(cut)} spikes blanked past their start"


def test_only_a_sustained_global_artifact_starts_the_re_lock_waiver() -> None:
    """The re-lock waiver (a misfit larger than the heartbeat gated in beats within RELOCK_S
    after a global artifact) follows cautery, whose hold-off marks a sustained artifact — not
    stimulus artifacts, which are global for a block or two: at 0.7 Hz stimulation they made
    every beat "re-locking" and the waiver was never off."""
    fs = 5000.0
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 3.0, (int(10 * fs), 8))
    for t in (2.0, 3.4, 4.8):  # stimuli: 0.5 ms, 2 mV on every channel
        x[int(t * fs):int(t * fs) + int(0.0005 * fs)] += 2000.0
    x[int(6 * fs):int(7 * fs)] += rng.normal(0.0, 5000.0, (int(fs), 8))  # 1 s of cautery
    stage = EcgCanceller(8, fs)
    run(stage, x, 500)
    ends = np.asarray(stage._glob_ends) / fs  # (the state under test)
    ends = ends[ends < 9.5]  # (the flush judges blocks past the input's end as gaps)
    # within the cautery where a chunk cut its run, and the run's end: its hold-off's
    assert len(ends) and ((ends >= 6.0) & (ends <= 7.5)).all() and ends.max() > 7.0, ends
    assert not stage._relocking(int(5.3 * fs))  # (0.5 s after a stimulus)
    assert stage._relocking(int(7.6 * fs))



@pytest.mark.parametrize("seed, from_s, to_s, window_s, found", [
    (457, 200.0, 222.3, (221.6, 221.75), [7]),
    (497, 140.0, 170.4, (169.95, 170.15), []),
])
def test_a_channel_far_beyond_its_learnt_residual_predicts_no_other(
        seed: int, from_s: float, to_s: float, window_s: tuple[float, float],
        found: list[int]) -> None:
    """An A-train in a heartbeat's fitted core leaves a residual far beyond the channel's
    usual one. The cross-channel correction predicts no channel from such a one — but it was
    judged against the typical residual of the beat's class, and a class can have none yet or
    have formed around an A-train. Extra tuning seed 457 (MIT-BIH 100, 5 kHz): a 933 µV
    A-train starts on channel 7 59 ms after R (221.58 s) and makes the beat a new class; its
    onset was projected onto four channels as 40–221 µV spikes at 221.66 s. Seed 497 (PTB
    s0010, 10 kHz): a 504 µV A-train on channel 7 through a beat of a class of five whose
    typical residual there is 39 µV; 101 and 13 µV spikes on channels 6 and 3 at 170.04 s.
    Each channel's whitened residual power is now judged against the covariance's own, too.
    Only the injected events are found there (chains started partway)."""
    fs, [(events, _)] = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        seed, from_s, to_s, (1.0,))
    near = sorted({int(e.channel) for e in events if window_s[0] <= e.onset / fs <= window_s[1]})
    assert near == found, [(int(e.channel), e.onset / fs) for e in events]


def test_a_spike_whose_tail_reaches_into_a_heartbeat_s_core_is_found() -> None:
    """Extra tuning seed 439 (MIT-BIH 100, 5 kHz): a 302 µV spike on channel 1 at 171.16 s,
    80 ms before an R peak, its tail in the first 10 ms block of the beat's fitted core. The
    residual gate took the tail for a misfit at the QRS's edge and blanked the block; the
    spike ran into the blank within 5 ms of rising and the detector dropped it as a blanked
    artifact's lead-in. EMG in the block just before the core now keeps the core's first block
    open, like EMG in a block of the core keeps the next one."""
    events = extra_case_events(439, 171.6)
    assert [ch for ch, t in events if 171.14 <= t <= 171.18] == [1], events


def test_a_p_wave_blank_does_not_end_in_a_spike_s_first_milliseconds() -> None:
    """Extra tuning seed 457 (MIT-BIH 100, 5 kHz): a 117 µV spike on channel 1 at 72.28 s,
    108 ms before an R peak. The P-wave gate decided as the QRS rose judged the stretch up to
    the beat's window, where only the spike's first 4 ms lay, and blanked it; the spike then
    started in a blank and was dropped. What follows the stretch within a block is judged
    too; the spike is found."""
    events = extra_case_events(457, 72.6)
    assert [ch for ch, t in events if 72.26 <= t <= 72.31] == [1], events


def test_a_p_wave_blank_into_the_window_does_not_end_in_a_spike() -> None:
    """Extra tuning seed 426 (PTB s0010, 10 kHz): a 93 µV spike on channel 7 at 223.90 s,
    52 ms before an R peak. A P-wave blank goes on 20 ms into the beat's window where what
    the output holds there is no larger than a P wave; the spike's first 4 ms lay in that
    stretch, the blank ended in it and the detector dropped the spike. The block after the
    stretch is judged too; the spike is found. (Chain started at 180 s.)"""
    fs, [(events, _)] = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        426, 180.0, 224.3, (1.0,))
    near = [int(e.channel) for e in events if 223.85 <= e.onset / fs <= 223.95]
    assert near == [7], [(int(e.channel), e.onset / fs) for e in events]


@pytest.mark.parametrize("seed, from_s, to_s, window_s, channel", [
    (888, 80.0, 106.2, (105.8, 106.0), 7),
    (600, 100.0, 184.2, (183.75, 183.9), 0),
    (535, 100.0, 141.6, (140.0, 141.0), 0),
])
def test_the_correction_across_channels_adds_no_misfit(
        seed: int, from_s: float, to_s: float, window_s: tuple[float, float],
        channel: int) -> None:
    """The cross-channel correction, predicted from the other channels' residuals, once added
    a misfit where there was none:
    - extra tuning seed 888 (PTB s0010, 10 kHz), 105.89 s, and seed 600, 183.80 s: it was
      whitened by the beat's own >200 Hz σ, which an A-train or a burst just before had
      tripled on the channel with 340–370 µV of heart, and the correction predicted there
      in µV grew with it: 60 and 49 µV "bursts" over the whole QRS. (At seed 600 the gate
      judged that beat against the tripled σ too and left its 35 µV misfit open.)
    - seed 535 (MIT-BIH 100, 5 kHz), 140.06 and 140.94 s: a 44 µV A-train on channel 1,
      under the outlier tests, was projected onto channel 0 (538 µV of heart) as 34 and
      64 µV spikes at R − 49 ms.
    Chains started partway; nothing is found on that channel there."""
    fs, [(events, _)] = pytest.importorskip("support.realcases").extra_case_in_chunkings(
        seed, from_s, to_s, (1.0,))
    there = [(int(e.channel), e.onset / fs) for e in events
             if window_s[0] <= e.onset / fs <= window_s[1]]
    assert not [e for e in there if e[0] == channel], there


def test_the_correction_across_channels_does_not_follow_the_beat_s_noise_estimate() -> None:
    """A misfit shared by four channels (3 : 1 : 1.5 : −1, its size varying from beat to
    beat, 2 µV of noise) is learnt over 40 beats; the next beat's misfit on channel 0 is then
    predicted from the others — and predicted the same when those channels' >200 Hz σ reads
    3 × higher in that beat (an A-train's high frequencies just before it): the misfit does
    not grow or shrink with the noise estimate."""
    stage = EcgCanceller(4, 5000.0)
    rng = np.random.default_rng(7)
    shape = np.sin(np.linspace(0.0, 3 * np.pi, stage._core))
    mix = np.array([3.0, 1.0, 1.5, -1.0])[:, None]

    def misfit() -> np.ndarray:
        return mix * rng.normal(1.0, 0.5) * 10.0 * shape + rng.normal(0.0, 2.0, (4, len(shape)))

    sigma, everyone = np.full(4, 2.0), np.ones(4, bool)
    for _ in range(40):
        stage._spatial(misfit(), sigma, everyone, everyone, True)
    residual = misfit()
    usual = stage._spatial(residual, sigma, everyone, everyone, False)
    noisy = sigma * np.array([1.0, 3.0, 3.0, 3.0])
    then = stage._spatial(residual, noisy, everyone, everyone, False)
    assert np.std(residual[0] - usual[0]) < 0.3 * np.std(residual[0])
    np.testing.assert_allclose(then[0], usual[0], atol=0.05 * np.ptp(usual[0]))


@pytest.mark.parametrize("seed, until_s, channel, at_s", [(811, 21.5, 0, 20.5216),
                                                          (883, 30.5, 0, 29.63)])
def test_a_misfit_in_a_hole_between_gate_blanks_is_blanked(seed: int, until_s: float,
                                                          channel: int, at_s: float) -> None:
    """Extra tuning seeds 811 and 883 (MIT-BIH 100, 5 kHz): on the biggest channel (225 and
    329 µV of heart) the QRS's onset moves from beat to beat, and where the template is faint
    its misfit (11–40 µV RMS per 10 ms block, no EMG) was larger than the heartbeat there: one
    block, between blocks the residual gate blanked, was left open and read as a 19 µV and a
    20 µV spike at R − 46 and R − 36 ms. Such a hole (GATE_HOLE_BLOCKS) is blanked now: no
    event there, and the case's own events before are still found."""
    events = extra_case_events(seed, until_s, legacy_heart=False)
    assert not [(c, t) for c, t in events if c == channel and abs(t - at_s) < 0.05], events
    case = pytest.importorskip("support.realcases").extra_case_or_skip(seed, False)
    fs = case.sample_rate_hz
    truth = sorted({e.channels[0] for e in case.truth.events if e.onset / fs < until_s - 0.5})
    assert truth and truth == sorted({c for c, t in events if t < until_s - 0.5})


def test_a_canceller_started_amid_cautery_below_the_rail_learns_the_heart_after_it() -> None:
    """A stream started in 3 s of cautery that does not reach the rail (800 µV RMS of broadband
    noise): the scales started from its first block read every channel flat after it, for
    good — out of QRS detection, no beat ever found or subtracted. Most channels flat at once
    is no lead-off: their new level is learnt, and the beats after the cautery are cancelled
    as after a clean start."""
    rec = _start_up_record(14.0)
    fs = rec.fs
    end = int(3.0 * fs)
    noise = np.random.default_rng(8).normal(0.0, 800.0, (end, rec.x.shape[1]))
    rec.x[:end] += signal.sosfilt(bandpass_sos(10.0, 3000.0, fs), noise, axis=0)
    assert np.abs(rec.x).max() < 0.98 * 5000.0  # never at the rail
    _assert_cancelled_on(rec, 0, 8.0, 12.0)
    _assert_cancelled_on(rec, 5, 8.0, 12.0)


@pytest.mark.parametrize("chunk_s", [0.1, 0.037])
def test_a_chain_started_amid_cautery_blanks_the_first_heartbeat_after_it(chunk_s: float) -> None:
    """Tuning case tune-mitdb-5k, a chain started 0.3 s into the cautery from 82.90 s (a
    station restarted during surgery): its span ends at 87.395 s, and the first heartbeat
    after it (R at 87.502 s, 344 µV on channel 7) comes before any is known. The recovery
    tail learns the canceller's scales again block after block; each time, the blank that
    holds until a beat is judged restarted from that block's rows, and the rows between, not
    yet at the detector, were never blanked: that QRS was reported as a 229 µV burst, at
    alarm level. The blank now runs from the first time the scales were learnt again."""
    realcases = pytest.importorskip("support.realcases")
    case = realcases.case_or_skip("tune-mitdb-5k")
    fs = case.sample_rate_hz
    start, stop = int(83.203 * fs), int(92.0 * fs)
    r = int(87.502 * fs)
    assert np.abs(case.components["ecg"][r - 50:r + 50, 7]).max() > 300.0  # (the premise)
    events, spans = realcases.through_chain(case, case.raw[start:stop], start, int(chunk_s * fs))
    assert any(s.kind == "cautery" and abs(s.stop / fs - 87.395) < 0.01 for s in spans), spans
    assert not [e for e in events if 87.3 <= e.onset / fs <= 90.3], events


def test_missing_samples_while_the_threshold_is_learnt_do_not_restart_it() -> None:
    """A block with a missing sample reads dead on every channel; it is no block where most
    channels read flat at once (scales learnt from an artifact): with one missing sample every
    1.5 s on one channel, taken for such blocks, the threshold learning restarted at each and
    detection stayed blanked, no beat found or subtracted for 20 s. The threshold is learnt
    and the beats are found as before that rule: 6 of 13 (the gaps themselves cost the rest, a
    weakness of its own, see docs/free-run-detection.md)."""
    rec = _start_up_record(14.0)
    for t in np.arange(0.5, 14.0, 1.5):
        rec.x[int(t * rec.fs), 0] = np.nan
    stage = EcgCanceller(rec.x.shape[1], rec.fs)
    run(stage, rec.x, 500)
    assert stage._spk is not None
    sensitivity, _ = score_beats(stage.beats, rec.r_peaks, rec.fs, after=int(3.0 * rec.fs))
    assert sensitivity >= 0.45, sensitivity


@pytest.mark.parametrize("seed, from_s, to_s", [(900, 39.97, 60.0), (650, 100.34, 124.0)])
def test_a_chain_started_amid_cautery_reports_the_case_s_events_only(seed: int, from_s: float,
                                                                    to_s: float) -> None:
    """Extra tuning seeds 900 (PTB s0010, 10 kHz) and 650 (MIT-BIH 100, 10 kHz), a chain (a
    restarted station) started 0.3 s into a cautery episode. Seed 900: the ECG canceller's
    scales started from the cautery and read every channel flat after it, so no beat was ever
    found: each heartbeat was reported on up to 6 channels (121 events in 20 s, up to 200 µV).
    Seed 650: a candidate at the cautery's end set a threshold 8 × the heartbeat's (no beat
    found for 7 s), and the mains tracker read a frequency rate of 0.8 Hz/s in the recovery
    tail and ran off to 63 Hz, its residue reported as A-trains of 200–700 µV. Now only the
    case's own events are found there, each at its onset, as from the case's start, in 0.1 s
    and in 37 ms chunks."""
    realcases = pytest.importorskip("support.realcases")
    fs, runs = realcases.extra_case_in_chunkings(seed, from_s, to_s, (0.1, 0.037),
                                                  legacy_heart=False)
    case = realcases.extra_case_or_skip(seed, legacy_heart=False)
    truth = sorted((e.channels[0], e.onset / fs) for e in case.truth.events
                   if from_s * fs <= e.onset < (to_s - 0.5) * fs)
    for events, _ in runs:
        found = sorted((int(e.channel), e.onset / fs) for e in events
                       if e.onset < (to_s - 0.5) * fs)
        assert truth and [c for c, _ in found] == [c for c, _ in truth], found
        assert all(abs(t - u) < 0.01 for (_, t), (_, u) in zip(found, truth)), found
