"""Gaps in the raw stream (NaN rows: samples the source lost): bridged or waited out."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from ionm_station.analysis import Record, analyze_record
from ionm_station.dsp import gaps
from ionm_station.dsp.gaps import GapBridge
from ionm_station.pipeline.chain import FreeRunChain
from support.scoring import score

FS = 10_000.0


def _mains(n: int, hz: float = 50.3, uv: float = 300.0) -> np.ndarray:
    """(n, 2) µV: mains a little off nominal, with its 3rd harmonic, on two channels."""
    t = np.arange(n)[:, None] / FS
    return uv * (np.sin(2 * np.pi * hz * t + np.array([0.0, 1.0]))
                 + 0.3 * np.sin(2 * np.pi * 3 * hz * t + np.array([0.5, 2.0])))


def _bridged(bridge: GapBridge, x: np.ndarray, chunk: int) -> np.ndarray:
    return np.concatenate([bridge.process(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def test_a_short_gap_is_filled_with_the_mains_a_period_back() -> None:
    """A 5 ms gap in 300 µV of mains at 50.3 Hz (the bridge's period is 50 Hz's) is filled
    within 20 µV, where holding the last sample would be off by ~150 µV here."""
    x = _mains(4000)
    lost = x.copy()
    lost[2000:2050] = np.nan
    out = GapBridge(2, FS, mains_hz=50.0).process(lost)
    assert np.isfinite(out).all()
    assert np.abs(out - x).max() < 20.0, np.abs(out - x).max()
    assert np.abs(x[2000:2050] - x[1999]).max() > 140.0  # what a hold would leave


def test_a_long_gap_is_filled_over_its_first_rows_only_and_blanked_around() -> None:
    """A 100 ms gap: its first BRIDGE_MAX_S filled, the rest NaN (the stages restart after
    it); lost rows are the gap's, detection is blanked from GAP_PRE_S before it (with
    ``blank_before``) to GAP_SETTLE_S after it. A 2 ms gap is blanked from its start to
    BRIDGE_SETTLE_S after it."""
    x = _mains(30_000)
    x[5000:6000] = np.nan
    x[20_000:20_020, 1] = np.nan
    bridge = GapBridge(2, FS, blank_before=True)
    out = bridge.process(x)
    bridged = round(gaps.BRIDGE_MAX_S * FS)
    assert np.isfinite(out[5000:5000 + bridged]).all()
    assert np.isnan(out[5000 + bridged:6000]).all()
    assert np.isfinite(out[20_000:20_020]).all()
    lost, blanked = bridge.masks(0, 30_000)
    assert (np.flatnonzero(lost[:, 0]) == np.arange(5000, 6000)).all()
    pre, settle = round(gaps.GAP_PRE_S * FS), round(gaps.GAP_SETTLE_S * FS)
    assert (np.flatnonzero(blanked[:, 0]) == np.arange(5000 - pre, 6000 + settle)).all()
    short = np.arange(20_000, 20_020 + round(gaps.BRIDGE_SETTLE_S * FS)
                      + round(gaps.BRIDGE_SETTLE_PER_LOST * 20))
    assert (np.flatnonzero(blanked[:, 1]) == np.concatenate(
        (np.arange(5000 - pre, 6000 + settle), short))).all()
    assert bridge.explains(20_010, (1,), "pop") and not bridge.explains(20_010, (0, 1), "pop")


def test_the_bridge_gives_the_same_in_any_chunking() -> None:
    rng = np.random.default_rng(5)
    x = _mains(20_000) + rng.normal(0, 5, (20_000, 2))
    for at, width, ch in ((10, 3, 0), (999, 1, 1), (4000, 80, 0), (4100, 40, 1), (9000, 900, 0),
                          (19_990, 10, 1)):
        x[at:at + width, ch] = np.nan
    whole = GapBridge(2, FS, mains_hz=50.0)
    ref = whole.process(x)
    parts = ((0, 12_000), (12_000, 20_000))
    ref_masks = [whole.masks(a, b - a) for a, b in parts]
    for chunk in (1, 37, 500, 4096):
        bridge = GapBridge(2, FS, mains_hz=50.0)
        np.testing.assert_array_equal(_bridged(bridge, x, chunk), ref)
        for (a, b), theirs in zip(parts, ref_masks):
            for mine, their in zip(bridge.masks(a, b - a), theirs):
                np.testing.assert_array_equal(mine, their)


def _real_case(seconds: float, seed: int | None = None):
    """Tuning case tune-mitdb-10k (or extra tuning case ``seed``), its first ``seconds``."""
    realcases = pytest.importorskip("support.realcases")
    if not realcases.DATA_DIR.is_dir():
        pytest.skip(f"{realcases.DATA_DIR} not found (PhysioNet recordings live in ../shared)")
    pytest.importorskip("wfdb", reason="reading PhysioNet records needs wfdb")
    spec = (next(c for c in realcases.CASES if c.name == "tune-mitdb-10k") if seed is None
            else realcases.extra_spec(seed))
    return realcases.generate(spec, seconds, notched_mains=True)  # (as pinned: see case_or_skip)


@functools.cache
def _analysed(every_s: float, lost: int, channel: int | None = None):
    """Tuning case tune-mitdb-10k's first 40 s (MIT-BIH 100) with every channel (or only
    ``channel``) losing ``lost`` samples every ``every_s`` s (0: none): the case, the lost
    rows, the analysis."""
    case = _real_case(40.0)
    fs, raw = case.sample_rate_hz, case.raw.copy()
    gap_rows = np.zeros(len(raw), bool)
    for t in np.arange(0.5, 40.0, every_s) if lost else ():
        gap_rows[int(t * fs):int(t * fs) + lost] = True
    raw[gap_rows, slice(None) if channel is None else channel] = np.nan
    return case, gap_rows, analyze_record(Record(fs, list(case.montage.labels), raw,
                                                 case.range_uv), case.montage, keep_clean=True)


@pytest.mark.parametrize("every_s, lost, channel", [(1.5, 1, None), (3.3, 80, None),
                                                    (7.0, 1000, None), (7.0, 500, 0)])
def test_frames_lost_on_a_real_heart_raise_no_false_events(every_s: float, lost: int,
                                                          channel: int | None) -> None:
    """Every channel (or one) losing ``lost`` samples every ``every_s`` s. Restarting the
    filters at each gap gave 10–170 µV "bursts" on every channel right after it and left the
    next heartbeat unsubtracted (one lost sample every 1.5 s: 140 false events in 40 s). A long
    gap on one channel restarts the band-pass on all of them (a review: 129 false events on
    the others in 60 s of tune-ptb-5k-60Hz, 50 ms every 2.5 s, while only that channel was
    blanked). Now the
    case's own events only, each found unless it meets a gap's blank; the clean output is
    NaN on the lost rows and where it was without them."""
    case, gap_rows, result = _analysed(every_s, lost, channel)
    fs = case.sample_rate_hz
    scored = score(result.events, case.truth, fs, case.raw.shape[1], 40.0)
    assert scored["false_events"] == 0, scored["false"]
    long = lost > round(gaps.BRIDGE_MAX_S * fs)
    pre = round(gaps.GAP_PRE_S * fs) if long else 0
    after = round(gaps.GAP_SETTLE_S * fs if long else gaps.BRIDGE_SETTLE_S * fs
                  + gaps.BRIDGE_SETTLE_PER_LOST * lost)
    blanked = np.zeros(len(gap_rows) + after, bool)
    for g in np.flatnonzero(gap_rows):
        blanked[max(g - pre, 0):g + after + 1] = True
    for _, _, onset, _ in scored["missed"]:
        assert blanked[onset:onset + round(0.05 * fs)].any(), onset / fs
    assert len(scored["missed"]) < 0.2 * scored["n_truth"]
    _, _, whole = _analysed(every_s, 0)
    lost_rows = gap_rows[:, None] & (np.arange(case.raw.shape[1]) == channel
                                     if channel is not None else True)
    # (the band-pass restarts every channel at a row holding NaN: past a gap's bridged rows,
    # the others' rows are NaN too)
    bridged = round(gaps.BRIDGE_MAX_S * fs)
    unbridged = gap_rows & ~np.isin(np.arange(len(gap_rows)),
                                    [g + k for g in np.flatnonzero(gap_rows & ~np.roll(gap_rows, 1))
                                     for k in range(bridged)])
    np.testing.assert_array_equal(np.isnan(result.clean),
                                  np.isnan(whole.clean) | lost_rows | unbridged[:, None])


def test_a_bridged_gap_before_a_heartbeat_is_not_taken_for_one() -> None:
    """Extra tuning seed 440 (10 kHz, its first 60 s built alone as in the benchmark's gaps
    figure), an 8 ms gap at 18.0 s, 0.18 s before an R peak: the
    step back from the fill to the signal, on every channel at once, was taken for a QRS at
    17.99 s, and the real beat, inside its refractory period, was left whole (five "bursts" of
    25–139 µV at 18.14–18.18 s). The beat is found and subtracted; no false event."""
    case = _real_case(60.0, seed=440)
    fs = case.sample_rate_hz
    raw = case.raw[:round(20.0 * fs)].copy()
    raw[round(18.0 * fs):round(18.008 * fs)] = np.nan
    chain = FreeRunChain(case.montage, fs, case.range_uv)
    chain.report_ongoing = False
    events = [e for i in range(0, len(raw), 1000) for e in chain.process(raw[i:i + 1000], i).events]
    events += chain.flush().events
    beats = np.array(chain.ecg.beats) / fs
    assert not ((beats > 17.9) & (beats < 18.1)).any(), beats
    assert ((beats > 18.15) & (beats < 18.21)).any(), beats
    truth = replace(case.truth, events=[e for e in case.truth.events if e.onset < len(raw)])
    scored = score(events, truth, fs, raw.shape[1], 20.0)
    assert scored["false_events"] == 0, scored["false"]


def test_an_event_rising_as_a_gap_s_blank_ends_is_no_tail_of_it() -> None:
    """Extra tuning seed 468 (its first 60 s), a 50 ms gap at 8.0 s: its blank ends at 8.75 s,
    and a 714 µV burst rising 17 ms later was taken for the blank's tail (as after cautery,
    where the amplifier still recovers) and lost. After a gap's blank the stream has settled:
    the burst is found, at its onset."""
    case = _real_case(60.0, seed=468)
    fs = case.sample_rate_hz
    raw = case.raw[:round(12.0 * fs)].copy()
    raw[round(8.0 * fs):round(8.05 * fs)] = np.nan
    result = analyze_record(Record(fs, list(case.montage.labels), raw, case.range_uv),
                            case.montage)
    found = [e for e in result.events if e.channel == 3 and abs(e.onset / fs - 8.767) < 0.005]
    assert found and found[0].peak_uv > 600.0, [(e.channel, e.onset / fs) for e in result.events]


def test_one_channel_losing_samples_leaves_the_others_beat_detection() -> None:
    """One channel losing one sample every 15 ms for 14 s (all bridged): its blocks add nothing
    to QRS detection, the others' still do (a review: the bridged blocks were taken out on
    every channel, and no beat was found for 12 s; 42 false events on the healthy ones)."""
    case = _real_case(30.0)
    fs = case.sample_rate_hz
    raw = case.raw.copy()
    raw[np.arange(round(8 * fs), round(22 * fs), round(0.015 * fs)), 0] = np.nan
    chain = FreeRunChain(case.montage, fs, case.range_uv)
    chain.report_ongoing = False
    events = [e for i in range(0, len(raw), 5000) for e in chain.process(raw[i:i + 5000], i).events]
    events += chain.flush().events
    beats = np.array(chain.ecg.beats)
    truth = np.array(case.truth.ecg_beats)
    truth = truth[(truth > 9 * fs) & (truth < 21 * fs)]
    found = sum(np.abs(beats - r).min() < 0.03 * fs for r in truth)
    assert found >= 0.9 * len(truth), (found, len(truth))
    scored = score(events, case.truth, fs, raw.shape[1], 30.0)
    assert not [f for f in scored["false"] if f[1] != 0], scored["false"]


def test_an_electrode_pop_just_after_a_lost_frame_keeps_its_blank() -> None:
    """800 µV electrode pops (τ 0.2 s) 3 ms after a frame lost on every channel: the steps
    back from the fill are one common-mode step, so a pop there is an electrode's (a review:
    dropped as the fill's step, 3 of 4 pops lost their spans and their tails were raised as
    128–249 µV bursts). Each pop keeps its span; nothing is raised in its tail."""
    realcases = pytest.importorskip("support.realcases")
    if not realcases.DATA_DIR.is_dir():
        pytest.skip(f"{realcases.DATA_DIR} not found (PhysioNet recordings live in ../shared)")
    pytest.importorskip("wfdb", reason="reading PhysioNet records needs wfdb")
    case = realcases.generate(next(c for c in realcases.CASES if c.name == "tune-ptb-5k-60Hz"),
                              30.0, notched_mains=True)
    fs = case.sample_rate_hz
    raw = case.raw.copy()
    t = np.arange(len(raw)) / fs
    pops = [(5.2, 6), (12.3, 2), (26.1, 1)]
    for at, ch in pops:
        raw[:, ch] += np.where(t >= at, 800 * np.exp(-(t - at) / 0.2), 0).astype(raw.dtype)
        raw[round((at - 0.003) * fs), :] = np.nan
    chain = FreeRunChain(case.montage, fs, case.range_uv)
    chain.report_ongoing = False
    outs = [chain.process(raw[i:i + 5000], i) for i in range(0, len(raw), 5000)] + [chain.flush()]
    spans = [s for o in outs for s in o.artifacts if s.kind == "pop"]
    events = [e for o in outs for e in o.events]
    for at, ch in pops:
        assert any(s.channels == (ch,) and abs(s.start / fs - at) < 0.01 for s in spans), spans
        assert not [e for e in events if e.channel == ch and 0 <= e.onset / fs - at < 0.6]
