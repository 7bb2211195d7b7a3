"""Free-run EMG event detector: noise floor, classification, onsets, blanking, chunking,
train time, and a scored simulator case."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ionm_station.detect import DetectedEvent, EmgEventDetector, robust_sigma
from ionm_station.dsp.artifacts import ArtifactDetector
from ionm_station.dsp.filters import BandpassFilter
from ionm_station.montage import load_montage
from ionm_station.sim import waveforms
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import load_scenario
from support.scoring import score

FS = 10000.0
MONTAGE = load_montage("lumbar").first(8)


def _noise(seconds: float, seed: int, n_channels: int = 8, sigma_uv: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = sigma_uv * rng.standard_normal((int(seconds * FS), n_channels))
    return BandpassFilter(n_channels, FS).process(raw).astype(np.float64)


def _add(x: np.ndarray, channel: int, at_s: float, times_s: np.ndarray, peak_uv: float,
         width_s: float, phases: int) -> tuple[int, int]:
    """Add MUAPs fired at ``at_s + times_s``; returns (onset, offset) sample indices."""
    wave = waveforms.render_firings(np.asarray(times_s), np.ones(len(times_s)), width_s, phases, FS)
    keep = np.flatnonzero(np.abs(wave) >= 1e-3 * np.abs(wave).max())
    wave = wave[keep[0]:keep[-1] + 1]
    wave *= peak_uv / (wave.max() - wave.min())
    start = int(at_s * FS) + int(keep[0])
    x[start:start + len(wave), channel] += wave
    return start, start + len(wave) - 1


def _detect(x: np.ndarray, chunks: list[int] | None = None, blanked: np.ndarray | None = None,
            det: EmgEventDetector | None = None) -> list[DetectedEvent]:
    det = det or EmgEventDetector(MONTAGE.first(x.shape[1]), FS)
    blanked = np.zeros(x.shape, bool) if blanked is None else blanked
    events, pos = [], 0
    for n in chunks or [len(x)]:
        events += det.process(x[pos:pos + n], pos, blanked[pos:pos + n])
        pos += n
    return events + det.flush()


def _detect_kept(x: np.ndarray, chunks: list[int] | None, blanked: np.ndarray,
                 kept: np.ndarray) -> list[DetectedEvent]:
    """Events of ``x`` fed in ``chunks`` (whole if None) with ``blanked`` samples, the ECG
    canceller's ``kept`` ones among them."""
    det = EmgEventDetector(MONTAGE.first(x.shape[1]), FS)
    events, pos = [], 0
    for n in chunks or [len(x)]:
        events += det.process(x[pos:pos + n], pos, blanked[pos:pos + n], kept[pos:pos + n])
        pos += n
    return events + det.flush()


def _chunks(total: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(1, 4000)))
    sizes[-1] -= sum(sizes) - total
    return sizes


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    """8 channels of 3 µV noise with one event of each kind on its own channel."""
    x = _noise(8.0, seed=10)
    rng = np.random.default_rng(11)
    truth = {
        "spike": (0, *_add(x, 0, 2.0, np.zeros(1), 150.0, 0.008, 3)),
        "burst": (1, *_add(x, 1, 2.0, np.sort(rng.uniform(0, 0.09, 6)), 200.0, 0.008, 3)),
        "train_A": (2, *_add(x, 2, 2.0, np.arange(0, 1.0, 1 / 100), 120.0, 0.0127, 2)),
        "short_A": (3, *_add(x, 3, 2.0, np.arange(0, 0.04, 1 / 60), 150.0, 0.012, 2)),
        "train_B": (4, *_add(x, 4, 2.0, np.cumsum(rng.gamma(4.0, 0.1 / 4, 25)), 200.0, 0.01, 3)),
        "small_spike": (5, *_add(x, 5, 3.0, np.zeros(1), 35.0, 0.006, 3)),
    }
    return x, truth


def test_robust_sigma_is_median_abs_over_0_6745():
    x = np.random.default_rng(0).normal(0.0, 3.0, (200000, 2))
    sigma = robust_sigma(x)
    assert np.allclose(sigma, np.median(np.abs(x), axis=0) / 0.6745)
    assert np.allclose(sigma, 3.0, rtol=0.02)


def test_noise_floor_learnt_per_channel():
    x = _noise(3.0, seed=1)
    x[:, 3] *= 3.0
    det = EmgEventDetector(MONTAGE, FS)
    det.process(x, 0)
    sigma = det.sigma_uv
    assert sigma[3] == pytest.approx(3.0 * np.median(np.delete(sigma, 3)), rel=0.1)


def test_noise_only_gives_no_events():
    # 8 channels × 75 s = 10 channel-minutes: target ≤ 1 false event per channel per 10 min
    x = _noise(75.0, seed=2)
    assert _detect(x, chunks=[7500] * 100) == []


def test_classification_and_onsets(synthetic):
    x, truth = synthetic
    events = _detect(x)
    by_channel = {e.channel: e for e in events}
    assert len(events) == len(truth)
    expect = {"spike": ("spike", None), "burst": ("burst", None), "train_A": ("train", "A"),
              "short_A": ("train", "A"), "train_B": ("train", "B"), "small_spike": ("spike", None)}
    for name, (channel, onset, offset) in truth.items():
        event = by_channel[channel]
        assert (event.kind, event.train_type) == expect[name], name
        assert abs(event.onset - onset) <= 0.005 * FS, name
        assert abs(event.offset - offset) <= 0.010 * FS, name
    assert by_channel[2].rate_hz == pytest.approx(100.0, rel=0.03)
    assert by_channel[3].rate_hz == pytest.approx(60.0, rel=0.05)
    assert by_channel[0].peak_uv == pytest.approx(150.0, rel=0.15)
    assert by_channel[0].above_threshold and not by_channel[5].above_threshold


def test_train_time_per_channel_and_root_side(synthetic):
    x, truth = synthetic
    det = EmgEventDetector(MONTAGE, FS)
    _detect(x, det=det)
    _, onset, offset = truth["train_A"]
    assert det.channel_train_time_s(2) == pytest.approx((offset - onset + 1) / FS, rel=0.05)
    assert det.channel_train_time_s(0) == 0.0
    assert det.train_time_s()[MONTAGE.channels[2].label] == det.channel_train_time_s(2)
    per_root = det.root_side_train_time_s()
    assert per_root["L4-L"] == pytest.approx(det.channel_train_time_s(2))   # channel 2 is L4-L
    assert per_root["L5-L"] == pytest.approx(det.channel_train_time_s(3)
                                             + det.channel_train_time_s(4))


def test_events_are_chunking_invariant(synthetic):
    x, _ = synthetic
    def key(e: DetectedEvent) -> tuple[int, int]:
        return e.onset, e.channel

    whole = sorted(_detect(x), key=key)
    for seed in (1, 2, 3):  # the order events are finalised in may differ, the events may not
        assert sorted(_detect(x, chunks=_chunks(len(x), seed)), key=key) == whole


def test_short_blank_inside_a_train_is_bridged(synthetic):
    x, truth = synthetic
    blanked = np.zeros(x.shape, bool)
    channel, onset, offset = truth["train_A"]
    blanked[onset + 3000:onset + 6000, :] = True          # a QRS-window-long blank mid-train
    x = x.copy()
    x[blanked] = 5000.0                                   # whatever is there must not count
    events = _detect(x, blanked=blanked)
    for e in events:                                      # no event starts or ends blanked
        assert not blanked[e.onset, e.channel] and not blanked[e.offset, e.channel]
        assert e.peak_uv < 1000.0
    a_parts = [e for e in events if e.channel == channel]
    assert len(a_parts) == 1 and (a_parts[0].kind, a_parts[0].train_type) == ("train", "A")
    assert abs(a_parts[0].onset - onset) <= 0.005 * FS
    assert abs(a_parts[0].offset - offset) <= 0.010 * FS
    assert a_parts[0].rate_hz == pytest.approx(100.0, rel=0.03)
    def key(e: DetectedEvent) -> tuple[int, int]:
        return e.onset, e.channel
    for seed in (4, 5):
        assert sorted(_detect(x, chunks=_chunks(len(x), seed), blanked=blanked), key=key) \
            == sorted(events, key=key)


def test_what_rises_as_a_long_blank_ends_is_its_tail_not_emg():
    """Right where a long blank (cautery, rails) ends, an unsubtracted heartbeat rises at once:
    not EMG, in any chunking. A burst 50 ms later, or the same
    wave after a short blank (a QRS window, a stimulus), is reported."""
    x = _noise(6.0, seed=12)
    blanked = np.zeros(x.shape, bool)
    t = np.arange(-0.02, 0.02, 1.0 / FS)                   # a QRS-like wave (~40 ms)
    ringing = 300.0 * (np.exp(-0.5 * (t / 0.006) ** 2) - 0.4 * np.exp(-0.5 * ((t - 0.012) / 0.005) ** 2))
    blanked[int(1.0 * FS):int(1.5 * FS), :4] = True      # long: 0.5 s
    blanked[int(3.0 * FS):int(3.1 * FS), 4:] = True      # short: 0.1 s
    end = int(1.5 * FS) + int(0.005 * FS)                # past the guard
    for c, at in ((0, end), (4, int(3.1 * FS) + int(0.005 * FS))):
        x[at:at + len(ringing), c] += ringing
    _add(x, 1, 1.555, np.sort(np.random.default_rng(13).uniform(0, 0.05, 5)), 200.0, 0.008, 3)
    for chunks in (None, _chunks(len(x), 14)):
        events = _detect(x, chunks=chunks, blanked=blanked)
        assert sorted(e.channel for e in events) == [1, 4], events


def test_a_heartbeat_s_long_blank_has_a_tail_no_larger_than_the_heartbeat():
    """A long blank the ECG canceller's kept samples alone make (a heartbeat's window while its
    threshold is learnt, P wave included: 0.4 s) has a tail only as large as half the
    heartbeat's p-p in the detection signal: a 300 µV burst rising right after a blank of
    noise is reported (extra seed 816: an 894 µV burst 43 ms after one was missed), a 30 µV
    one after a blank holding a 400 µV heartbeat is its residue. After a blank holding an
    artifact's zeroed samples — here its first half, the rest kept — anything short is the
    tail, in any chunking."""
    x = _noise(6.0, seed=31, n_channels=3)
    blanked = np.zeros(x.shape, bool)
    kept = np.zeros(x.shape, bool)
    blanked[int(1.0 * FS):int(1.4 * FS)] = True
    kept[int(1.0 * FS):int(1.4 * FS), [0, 2]] = True          # the heart's alone
    kept[int(1.2 * FS):int(1.4 * FS), 1] = True               # an artifact's, then the heart's
    t = np.arange(-0.02, 0.02, 1.0 / FS)
    x[int(1.2 * FS) - len(t) // 2:int(1.2 * FS) - len(t) // 2 + len(t), 2] += \
        400.0 * np.exp(-0.5 * (t / 0.004) ** 2)               # a QRS inside channel 2's blank
    end = int(1.4 * FS) + int(0.01 * FS)                       # past the guard
    firings = np.sort(np.random.default_rng(32).uniform(0, 0.03, 4))
    for c, pp in ((0, 300.0), (1, 300.0), (2, 30.0)):
        _add(x, c, end / FS, firings, pp, 0.008, 3)
    alone = _noise(6.0, seed=31, n_channels=3)[:, 2:]
    _add(alone, 0, end / FS, firings, 30.0, 0.008, 3)
    assert [round(e.onset / FS, 2) for e in _detect(alone)] == [1.41]  # big enough to find
    edges = [int(t * FS) for t in (1.0, 1.2, 1.4, 1.405)]
    singles = [e + d for e in edges for d in range(-3, 4)]    # 1-sample chunks at the edges
    at_edges = np.diff([0, *singles, len(x)]).tolist()
    for chunks in (None, _chunks(len(x), 33), at_edges):
        events = _detect_kept(x, chunks, blanked, kept)
        assert [(e.channel, round(e.onset / FS, 2)) for e in events] == [(0, 1.41)], events


def test_a_short_heartbeat_blank_has_a_tail_only_right_after_it():
    """A 150 ms blank of the ECG canceller's kept samples alone, over a heartbeat it left
    whole (400 µV): a 30 µV burst rising right past its guard is the heartbeat's rest (extra
    seeds 630, 738, 744, 810, 882: 6–16 µV spikes at R + 110…118 ms), one rising 30 ms later
    is EMG, and so is a 300 µV one right past the guard (over half the heartbeat's p-p), in
    any chunking. A 700 µV spike rising 2 ms before the end of a blank over a 100 µV
    heartbeat is EMG too, though what is left of it past the guard is smaller than half the
    heartbeat's p-p: the cap is measured over the blank but its last 5 ms (extra seed 715,
    177.03 s: a 733 µV spike lost)."""
    x = _noise(4.0, seed=41, n_channels=4)
    blanked = np.zeros(x.shape, bool)
    blanked[int(1.0 * FS):int(1.15 * FS)] = True
    t = np.arange(-0.02, 0.02, 1.0 / FS)
    at = int(1.08 * FS) - len(t) // 2
    x[at:at + len(t)] += np.array([400.0, 400.0, 400.0, 100.0]) \
        * np.exp(-0.5 * (t / 0.004) ** 2)[:, None]
    _add(x, 3, 1.15 - 0.002, np.array([0.0]), 700.0, 0.008, 3)
    firings = np.array([0.0, 0.006, 0.013, 0.02])
    end = 1.15 + 0.007                                          # past the guard (5 ms)
    for c, pp, delay_s in ((0, 30.0, 0.0), (1, 30.0, 0.03), (2, 300.0, 0.0)):
        _add(x, c, end + delay_s, firings, pp, 0.008, 3)
    alone = _noise(4.0, seed=41, n_channels=1)
    _add(alone, 0, end, firings, 30.0, 0.008, 3)
    assert [round(e.onset / FS, 2) for e in _detect(alone)] == [1.16]  # big enough to find
    edges = [int(t * FS) for t in (1.0, 1.15, 1.155)]
    singles = [e + d for e in edges for d in range(-3, 4)]    # 1-sample chunks at the edges
    at_edges = np.diff([0, *singles, len(x)]).tolist()
    for chunks in (None, _chunks(len(x), 43), at_edges):
        events = _detect_kept(x, chunks, blanked, blanked)
        assert sorted((e.channel, round(e.onset / FS, 2)) for e in events) == [
            (1, 1.19), (2, 1.16), (3, 1.15)]


def test_a_kept_blank_ends_without_a_step():
    """A blank over a small slow residual (a QRS misfit the ECG canceller gated) that ends
    while the residual is still off zero: zeroed in the filters' input, the step back to the
    signal read as a spike right after the blank's guard (R + 100…+120 ms on tuning seeds 205,
    226, 233: 13–44 µV); passed through as it is (``kept``), nothing is found there, in any
    chunking, and a spike after the blank still is."""
    x = _noise(4.0, seed=21, n_channels=2)
    t = np.arange(int(0.08 * FS)) / FS
    misfit = 25.0 * np.sin(np.pi * t / 0.08)              # 25 µV over 80 ms: slow
    blanked = np.zeros(x.shape, bool)
    for at_s in (1.0, 2.0, 3.0):
        at = int(at_s * FS)
        x[at:at + len(misfit)] += misfit[:, None]
        blanked[at - int(0.05 * FS):at + int(0.04 * FS)] = True  # ends mid-residual
    _add(x, 1, 3.2, np.zeros(1), 80.0, 0.008, 3)
    zeroed = _detect(x, blanked=blanked)
    assert any(e.channel == 0 for e in zeroed)                 # the step's spike
    for chunks in (None, _chunks(len(x), 22)):
        events = _detect_kept(x, chunks, blanked, blanked)
        assert [(e.channel, round(e.onset / FS, 1)) for e in events] == [(1, 3.2)], events


def test_long_blank_ends_a_train_without_touching_it(synthetic):
    x, truth = synthetic
    blanked = np.zeros(x.shape, bool)
    channel, onset, offset = truth["train_A"]
    blanked[onset + 3000:onset + 8000, :] = True          # longer than any bridged blank
    x = x.copy()
    x[blanked] = 5000.0
    events = _detect(x, blanked=blanked)
    for e in events:
        assert not blanked[e.onset:e.offset + 1, e.channel].any()
    a_parts = sorted((e for e in events if e.channel == channel), key=lambda e: e.onset)
    assert len(a_parts) == 2                              # cut at the blank, not dropped
    assert abs(a_parts[0].onset - onset) <= 0.005 * FS and a_parts[0].offset < onset + 3000
    assert a_parts[1].onset > onset + 8000 and abs(a_parts[1].offset - offset) <= 0.010 * FS
    assert all(e.train_type == "A" for e in a_parts)


def test_small_low_rate_a_train_is_an_a_train():
    # ~4 σ: the 2 ms envelope dips below threshold every period, so the train comes in short
    # pieces; its steady MUAP rate still makes it an A-train, not a B-train
    x = _noise(6.0, seed=14, n_channels=1)
    onset, offset = _add(x, 0, 2.0, np.arange(0, 2.0, 1 / 100), 33.0, 0.0048, 2)
    events = _detect(x)
    assert len(events) == 1
    e = events[0]
    assert (e.kind, e.train_type) == ("train", "A")
    assert e.rate_hz == pytest.approx(100.0, rel=0.03)
    assert abs((e.offset - e.onset) - (offset - onset)) <= 0.02 * FS


def test_activity_just_before_a_blank_is_its_lead_in():
    # an artifact that starts a moment before its blank (a stimulus) is not an event
    x = _noise(4.0, seed=12, n_channels=1)
    blanked = np.zeros(x.shape, bool)
    at = int(2.0 * FS)
    x[at:at + 50, 0] += 2000.0 * np.sin(np.arange(50) / 50 * np.pi)
    blanked[at + 20:at + 620] = True
    assert _detect(x, blanked=blanked) == []


def test_activity_in_the_first_usable_blocks_does_not_set_the_noise_floor():
    x = _noise(4.0, seed=13, n_channels=1)
    _add(x, 0, 0.0, np.arange(0, 1.0, 1 / 80), 400.0, 0.015, 2)   # A-train from the start
    onset, _ = _add(x, 0, 2.0, np.zeros(1), 100.0, 0.008, 3)       # then a spike
    det = EmgEventDetector(MONTAGE.first(1), FS)
    events = _detect(x, det=det)
    assert det.sigma_uv[0] == pytest.approx(3.0, rel=0.3)
    assert any(e.kind == "spike" and abs(e.onset - onset) <= 0.005 * FS for e in events)


@pytest.fixture(scope="module")
def simulated_case() -> tuple[dict, int]:
    """120 s of the randomised benchmark (held-out seed 7), ECG and mains off (their
    cancellers are separate stages), cautery, lead-off and stimuli on."""
    scenario = dataclasses.replace(load_scenario("bench_mixed"), duration_s=120.0, ecg_scale=0.0,
                                   mains_uv=0.0)
    amp = SimulatedAmplifier(MONTAGE, scenario, sample_rate_hz=FS, seed=7)
    n = int(scenario.duration_s * FS)
    raw = amp.generate(0, n)
    clean = BandpassFilter(8, FS).process(raw)
    artifacts = ArtifactDetector(8, FS, amp.range_uv)
    det = EmgEventDetector(MONTAGE, FS)
    events, step = [], 2000
    for pos in range(0, n, step):
        for e in amp.events_between(pos, pos + step):
            if e.kind == "stimulus":
                artifacts.mark_stimulus(e.start)
        artifacts.process(raw[pos:pos + step], pos)
        events += det.process(clean[pos:pos + step], pos, artifacts.blank_mask(pos, step))
    events += det.flush()
    return score(events, amp.truth, FS, 8, scenario.duration_s), len(amp.truth.events)


def test_simulated_case_meets_targets(simulated_case):
    result, n_truth = simulated_case
    assert n_truth >= 20
    sens = result["sensitivity"]
    assert sens["ge80uV"] >= 0.97
    assert sens["30-80uV"] is None or sens["30-80uV"] >= 0.85
    assert result["false_per_hour"] <= 10.0 * 3          # ≤ 1 false event in 2 minutes
    assert result["in_cautery"] == 0
    for kind in ("burst", "a_train", "b_train"):
        if result["onset_error_ms"].get(kind) is not None:
            assert result["onset_error_ms"][kind] <= 10.0
    assert result["train_type_accuracy"] >= 0.9
    assert abs(result["a_train_time"]["relative_error"]) <= 0.1


def test_long_a_train_is_reported_while_it_goes_on() -> None:
    """A 3 s A-train must reach the alarms during the train, not 3 s later."""
    from ionm_station.detect.events import EmgEventDetector
    from ionm_station.montage import load_montage

    fs = 10_000
    rng = np.random.default_rng(8)
    n = 6 * fs
    x = rng.standard_normal((n, 1)) * 3.0
    t = np.arange(2 * fs, 5 * fs)
    x[t, 0] += 100 * np.sin(2 * np.pi * 120 * (t - 2 * fs) / fs)  # 120 Hz, 200 µV p-p, 2–5 s
    det = EmgEventDetector(load_montage("lumbar").first(1), fs)
    first_seen = None
    done = []
    for i in range(0, n, 1000):
        done += det.process(x[i:i + 1000], i)
        ongoing = det.ongoing_a_trains()
        if ongoing and first_seen is None:
            first_seen = i + 1000
            assert ongoing[0].train_type == "A" and abs(ongoing[0].rate_hz - 120) < 5
    assert first_seen is not None and first_seen <= 2.5 * fs
    final = [e for e in done + det.flush() if e.train_type == "A"]
    assert len(final) == 1 and abs(det.channel_train_time_s(0) - 3.0) < 0.3


def test_event_stop_is_one_past_its_last_sample():
    ev = DetectedEvent(0, "spike", None, 100, 120, 150.0, None, True)
    assert ev.stop == 121


def test_thresholds_are_read_by_reference(synthetic):
    """The alarm side owns the thresholds array: a change applies to the next event reported."""
    x, _ = synthetic
    thresholds = np.full(8, 100.0)
    det = EmgEventDetector(MONTAGE, FS, thresholds_uv=thresholds)
    assert det.thresholds_uv is thresholds
    spike = next(e for e in _detect(x, det=det) if e.channel == 0)
    assert spike.above_threshold
    thresholds[0] = 1000.0                                 # raised by its owner, in place
    det = EmgEventDetector(MONTAGE, FS, thresholds_uv=thresholds)
    assert not next(e for e in _detect(x, det=det) if e.channel == 0).above_threshold
    with pytest.raises(ValueError):
        EmgEventDetector(MONTAGE, FS, thresholds_uv=[100.0] * 8)  # a copy would not follow


def test_onset_never_before_the_first_sample():
    x = _noise(2.0, seed=14, n_channels=1)
    _add(x, 0, 0.0, np.arange(0, 0.3, 1 / 50), 300.0, 0.01, 2)  # active from the first sample
    start = 5_000_000
    det = EmgEventDetector(MONTAGE.first(1), FS)
    events = det.process(x, start) + det.flush()
    assert events and all(start <= e.onset <= e.offset < e.stop <= start + len(x) for e in events)


def test_stream_starting_just_before_a_noise_block_ends():
    """The first noise block can hold no sample of the decimated grid (it used to raise)."""
    fs = 360.0
    block = round(0.25 * fs)
    x = np.random.default_rng(15).normal(0.0, 3.0, (int(3 * fs), 2))
    det = EmgEventDetector(MONTAGE.first(2), fs)
    det.process(x, block - 1)
    det.flush()
    assert np.isfinite(det.sigma_uv).all()


def test_continuous_activity_is_reported_piece_by_piece():
    """Minutes of activity (a C-train, or an A-train that goes on) hold bounded state: segments
    are cut every SEGMENT_MAX_S, episodes reported every EPISODE_MAX_S, train time adds up."""
    from ionm_station.detect.events import EPISODE_MAX_S, SEGMENT_MAX_S

    fs = 2000.0
    n = int(70 * fs)
    rng = np.random.default_rng(16)
    x = rng.normal(0.0, 3.0, (n, 1))
    t = np.arange(int(5 * fs), int(60 * fs))
    x[t, 0] += 100.0 * np.sin(2 * np.pi * 120.0 * t / fs)     # a 55 s A-train
    det = EmgEventDetector(MONTAGE.first(1), fs)
    events = []
    for i in range(0, n, int(0.1 * fs)):
        events += det.process(x[i:i + int(0.1 * fs)], i)
        op, ep = det._open[0], det._episodes[0]
        assert op is None or sum(len(p) for p in op.parts) <= SEGMENT_MAX_S * fs
        assert ep is None or ep.last_stop - ep.segments[0].start <= (EPISODE_MAX_S + 1) * fs
    events += det.flush()
    assert len(events) == 3 and all(e.train_type == "A" for e in events)
    assert events[0].onset == pytest.approx(5 * fs, abs=0.01 * fs)
    assert events[-1].offset == pytest.approx(60 * fs, abs=0.01 * fs)
    assert det.channel_train_time_s(0) == pytest.approx(55.0, abs=0.1)


def test_bursty_low_band_noise_is_not_emg_a_broadband_muap_is():
    """What a real ECG brings on the channels with the most of it — the P wave's beat-to-beat
    variation, the recording's own noise — is 40–200 Hz and bursty: tens of µV that the
    broadband noise floor (amplifier noise spread to 3 kHz) reads as 3–5 σ. The low band's own
    floor keeps it out; a broadband MUAP of the same size on that channel is still found."""
    rng = np.random.default_rng(21)
    x = _noise(20.0, seed=21, n_channels=2)
    low = BandpassFilter(1, FS, 40.0, 150.0).process(rng.standard_normal((len(x), 1)))[:, 0]
    low *= 2.0 / low.std()                       # 2 µV RMS background …
    burst = np.zeros(len(x))
    for at in np.arange(0.7, 19.5, 0.8):        # … with a 30 ms burst to 3x it every 0.8 s
        a = int(at * FS)
        burst[a:a + 300] = np.hanning(300) * 2.0  # (10 events without the low band's floor)
    x[:, 0] += low * (1.0 + burst)
    onset, _ = _add(x, 0, 10.31, np.array([0.0]), 60.0, 0.0015, 3)
    events = _detect(x)
    assert [(e.channel, abs(e.onset - onset) < 0.005 * FS) for e in events] == [(0, True)]


@pytest.mark.parametrize("fs", [1000.0, 2000.0, 5000.0, 10000.0])
def test_white_noise_never_switches_the_two_band_test_on(fs):
    """Whether a channel's low band is noisy is judged against what white amplifier noise
    gives at the rate (the high band is 200 Hz–2.25 kHz at 5 kHz, 200–900 Hz at 2 kHz,
    200–450 Hz at 1 kHz): a fixed ratio (0.5) switched plain channels in and out of the
    two-band test block by block."""
    rng = np.random.default_rng(23)
    raw = 3.0 * rng.standard_normal((int(30 * fs), 8))
    x = BandpassFilter(8, fs).process(raw)
    det = EmgEventDetector(MONTAGE, fs)
    block = int(0.25 * fs)
    switched = 0
    for i in range(0, len(x), block):
        det.process(x[i:i + block], i)
        if i >= 4 * fs:
            switched += int(det.two_band_channels.sum())
    assert switched == 0


def _near_sinusoidal_train(rate_hz: float, pp_uv: float, seconds: float = 3.4) -> np.ndarray:
    """An A-train like the real-ECG cases' (one biphasic 1.2 ms MUAP per period, low-passed at
    twice the rate): ``seconds`` long at FS, ``pp_uv`` µV p-p."""
    from scipy import signal as sps
    wave = np.zeros(int(seconds * FS))
    for k in np.arange(0, seconds, 1 / rate_hz):
        i = int(k * FS)
        pulse = np.repeat([1.0, -1.0], int(0.0012 * FS))[:len(wave) - i]
        wave[i:i + len(pulse)] += pulse
    wave = sps.sosfiltfilt(sps.butter(4, 2 * rate_hz, fs=FS, output="sos"), wave)
    return wave * (pp_uv / np.ptp(wave))


def test_small_a_train_under_a_noisy_low_band_with_heartbeats_is_one_a_train():
    """A 28 µV p-p A-train at 184 Hz (a near-sinusoid, its fundamental below the two-band
    split) on a channel whose low band is noisy, with a 140 ms QRS window blanked every 0.7 s:
    its runs clear the two-band test only now and then (it broke into spikes and bursts) and
    its MUAP peaks miss the peak threshold now and then (typed B). It is one A-train for
    ≥ 95 % of its length, whatever the chunking."""
    rng = np.random.default_rng(2)
    x = BandpassFilter(1, FS).process(3.0 * rng.standard_normal((int(8 * FS), 1)))
    x = x.astype(np.float64)
    low = BandpassFilter(1, FS, 40.0, 150.0).process(rng.standard_normal((len(x), 1)))[:, 0]
    x[:, 0] += low * (2.0 / low.std())
    wave = _near_sinusoidal_train(184.0, 28.0)
    x[int(2.0 * FS):int(2.0 * FS) + len(wave), 0] += wave
    blanked = np.zeros(x.shape, bool)
    for at in np.arange(2.3, 5.4, 0.7):
        blanked[int(at * FS):int((at + 0.14) * FS), 0] = True
    det = EmgEventDetector(MONTAGE.first(1), FS)
    assert det.process(x[:int(FS)], 0, blanked[:int(FS)]) == []
    assert det.two_band_channels[0]
    det.reset()
    whole = _detect(x, blanked=blanked)
    a_time = sum(e.offset - e.onset + 1 for e in whole if e.train_type == "A")
    assert a_time >= 0.95 * len(wave)
    assert [e.rate_hz for e in whole if e.train_type == "A"] == [pytest.approx(184.0, rel=0.03)]
    assert _detect(x, _chunks(len(x), seed=5), blanked) == whole


def test_small_a_train_whose_peaks_are_often_missed_is_an_a_train():
    """A 26 µV p-p A-train at 191 Hz on 3 µV noise: a third of its MUAP peaks fall under the
    peak threshold, so its intervals are one, two, three … periods (typed B). Whole periods
    make it an A-train at its rate; irregular B-trains stay B (the same rule on gamma
    intervals, CV 0.5, 5–40 Hz, 20–200 µV: never A)."""
    rng = np.random.default_rng(1)
    x = BandpassFilter(1, FS).process(3.0 * rng.standard_normal((int(8 * FS), 1)))
    x = x.astype(np.float64)
    wave = _near_sinusoidal_train(191.0, 26.0)
    x[int(2.0 * FS):int(2.0 * FS) + len(wave), 0] += wave
    events = _detect(x)
    assert [(e.kind, e.train_type) for e in events] == [("train", "A")]
    assert events[0].rate_hz == pytest.approx(191.0, rel=0.02)
    assert abs((events[0].offset - events[0].onset) - len(wave)) <= 0.02 * FS
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        x = _noise(8.0, seed=200 + seed, n_channels=1)
        rate = rng.uniform(5, 40)
        isi = np.maximum(rng.gamma(4.0, 0.25 / rate, 200), 0.006)
        times = np.concatenate([[0.0], np.cumsum(isi)])
        _add(x, 0, 2.0, times[times <= rng.uniform(0.5, 4.0)], rng.uniform(20, 200), 0.004, 3)
        assert all(e.train_type != "A" for e in _detect(x))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_short_a_train_with_a_second_peak_per_muap_is_an_a_train(seed):
    """A 0.32 s A-train at 85 Hz whose MUAP shows two peaks of one polarity 2.4 ms apart:
    its peak intervals alternate 2.4 / 9.4 ms and no run of its envelope is long enough to be
    periodic (typed B). Peaks paired one period apart make it an A-train at 85 Hz."""
    x = _noise(4.0, seed=seed, n_channels=1)
    grid = np.arange(0, 0.32, 1 / 85.0)
    onset, _ = _add(x, 0, 2.0, grid, 40.0, 0.0015, 2)
    _, offset = _add(x, 0, 2.0024, grid, 30.0, 0.0015, 2)
    events = _detect(x)
    assert [(e.kind, e.train_type) for e in events] == [("train", "A")]
    assert events[0].rate_hz == pytest.approx(85.0, rel=0.02)
    assert abs((events[0].offset - events[0].onset) - (offset - onset)) <= 0.01 * FS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stray_blip_before_a_blanked_beat_does_not_unmake_an_a_train(seed):
    """A 0.5 s A-train at 85 Hz, then 0.22 s later a 2-peak blip cut by a blanked QRS (a
    heartbeat's lead-in): joined within the gap, it made the episode 0.73 s, which the train
    covered < 70 % of (typed B). The train is an A-train ending where it ends."""
    x = _noise(4.0, seed=seed, n_channels=1)
    onset, offset = _add(x, 0, 1.0, np.arange(0, 0.5, 1 / 85.0), 60.0, 0.004, 2)
    _add(x, 0, 1.72, np.array([0.0, 0.006]), 50.0, 0.004, 3)
    blanked = np.zeros(x.shape, bool)
    blanked[int(1.735 * FS):int(1.875 * FS)] = True
    events = _detect(x, blanked=blanked)
    assert [(e.kind, e.train_type) for e in events] == [("train", "A")]
    assert abs(events[0].onset - onset) <= 0.005 * FS
    assert abs(events[0].offset - offset) <= 0.01 * FS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_spike_at_alarm_level_after_a_train_and_a_blank_is_not_a_stray_tail(seed):
    """A 0.5 s, 300 µV A-train at 85 Hz, a blanked QRS 0.24 s after it, then a 200 µV spike
    right after the blank: joined within the gap, the spike was the A-train's stray tail (as
    a heartbeat's lead-in would be) and was left out with it — no event. At the channel's
    alarm threshold or above a tail is no heartbeat's residue: it is reported on its own
    (extra tuning seed 649, 5.72 s: a 238 µV spike after a 1.1 mV train, with a 4th-order
    detection high-pass that was tried)."""
    x = _noise(4.0, seed=seed, n_channels=1)
    _add(x, 0, 1.0, np.arange(0, 0.5, 1 / 85.0), 300.0, 0.004, 2)
    onset, _ = _add(x, 0, 1.885, np.array([0.0]), 200.0, 0.004, 3)
    blanked = np.zeros(x.shape, bool)
    blanked[int(1.735 * FS):int(1.875 * FS)] = True
    for chunks in (None, _chunks(len(x), seed)):
        events = _detect(x, chunks=chunks, blanked=blanked)
        assert [(e.kind, e.train_type) for e in events] == [("train", "A"), ("spike", None)]
        assert events[1].above_threshold
        assert abs(events[1].onset - onset) <= 0.005 * FS


def _learning_blanks(n: int, until_s: float, usable_s: float) -> np.ndarray:
    """(n, 1) blank mask like the ECG canceller's while it learns its threshold: every 0.25 s
    noise block up to ``until_s`` blanked but for its first ``usable_s``."""
    blanked = np.zeros((n, 1), bool)
    block = int(0.25 * FS)
    for a in range(0, int(until_s * FS), block):
        blanked[a + int(usable_s * FS):a + block] = True
    return blanked


def test_large_burst_before_any_block_is_half_usable_is_found():
    """Blocks more than half blanked (QRS windows while the ECG canceller learns) left σ
    unknown and the detector blind: a provisional σ from the first blocks' usable samples."""
    x = _noise(3.0, seed=31, n_channels=1)
    blanked = _learning_blanks(len(x), 1.5, 0.1)
    onset, _ = _add(x, 0, 0.78, np.array([0.0, 0.012, 0.02, 0.031]), 300.0, 0.006, 3)
    for chunks in (None, _chunks(len(x), 31)):
        events = _detect(x, chunks=chunks, blanked=blanked)
        assert [(e.kind, e.above_threshold) for e in events] == [("burst", True)]
        assert abs(events[0].onset - onset) <= 0.005 * FS


def test_heartbeat_lead_in_against_a_provisional_sigma_is_not_emg():
    """Next to each blanked QRS the unlearnt heartbeat's lead-in (slow, a few σ) reads as
    activity against the few samples of a provisional σ: it must not make events, in pure
    noise or ECG-like start-up."""
    x = _noise(3.0, seed=32, n_channels=1)
    blanked = _learning_blanks(len(x), 1.5, 0.1)
    t = np.arange(int(0.025 * FS)) / FS
    lead_in = 15.0 * np.sin(2 * np.pi * 60.0 * t) * np.hanning(len(t))
    for k in range(1, 6):
        at = int((0.25 * k + 0.065) * FS)
        x[at:at + len(t), 0] += lead_in
        qrs = int((0.25 * k + 0.15) * FS)
        x[qrs:qrs + 300, 0] += 500.0 * np.sin(np.arange(300) / 300 * 2 * np.pi)  # blanked
    assert _detect(x, blanked=blanked) == []
