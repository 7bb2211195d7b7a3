"""Simulated amplifier: determinism, chunk independence, pacing, ground truth, scenario errors."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import find_peaks

from ionm_station.clock import ManualClock
from ionm_station.errors import ConfigError
from ionm_station.montage import load_montage
from ionm_station.sim import waveforms
from ionm_station.sim.amplifier import SECONDARY_GAIN, SimulatedAmplifier
from ionm_station.sim.scenario import Scenario, load_scenario, parse_scenario

FS = 10000.0
MONTAGE = load_montage("lumbar")
LABELS = MONTAGE.labels


def scenario(events: list[dict] | None = None, **keys: object) -> Scenario:
    doc = {"name": "test", "duration_s": 10, "seed": 3, **keys, "events": events or []}
    return parse_scenario(doc, "test.toml")


def amp(sc: Scenario, **kwargs: object) -> SimulatedAmplifier:
    return SimulatedAmplifier(MONTAGE, sc, sample_rate_hz=kwargs.pop("fs", FS), realtime=False,
                              **kwargs)


def idx(seconds: float) -> int:
    return round(seconds * FS)


EMG_EVENTS = [
    {"kind": "spike", "channel": "L4-L VastMed", "at_s": 0.5, "peak_uv": 150},
    {"kind": "burst", "channel": "S1-R Gastroc", "at_s": 1.0, "duration_s": 0.2, "peak_uv": 400},
    {"kind": "a_train", "root": "L5", "side": "L", "at_s": 2.0, "duration_s": 1.0,
     "peak_uv": 200, "rate_hz": 120},
    {"kind": "b_train", "channel": "L3-R AddLong", "at_s": 4.0, "duration_s": 4.0,
     "peak_uv": 80, "rate_hz": 15},
]


@pytest.fixture(scope="module")
def demo() -> SimulatedAmplifier:
    return amp(load_scenario("lumbar_demo"))


# --- determinism and chunking ---------------------------------------------------------------


def test_same_seed_same_signal_and_different_seed_differs() -> None:
    sc = load_scenario("lumbar_demo")
    a, b, c = amp(sc), amp(sc), amp(sc, seed=99)
    span = (idx(39.5), idx(1.0))
    assert np.array_equal(a.generate(*span), b.generate(*span))
    assert not np.array_equal(a.generate(*span), c.generate(*span))
    assert a.truth == b.truth


@pytest.mark.parametrize("first_s", [19.5, 39.9, 79.99, 119.0])  # cautery, A-train, stimulus, loop
def test_generate_is_independent_of_chunking(demo: SimulatedAmplifier, first_s: float) -> None:
    start, n = idx(first_s), idx(2.0)
    whole = demo.generate(start, n)
    rng = np.random.default_rng(int(first_s * 100))
    for _ in range(3):
        cuts = np.sort(rng.choice(np.arange(1, n), size=12, replace=False))
        edges = [0, *cuts.tolist(), n]
        parts = [demo.generate(start + a, b - a) for a, b in itertools.pairwise(edges)]
        assert np.array_equal(np.concatenate(parts), whole)


def test_output_shape_dtype_and_info(demo: SimulatedAmplifier) -> None:
    x = demo.generate(0, 1234)
    assert x.shape == (1234, 16) and x.dtype == np.float32
    assert demo.info.labels == LABELS and demo.info.source == "simulated"
    assert demo.info.range_uv == 5000.0 and demo.info.sample_rate_hz == FS


def test_rejects_bad_rate_and_block() -> None:
    sc = scenario()
    with pytest.raises(ValueError, match="2000–20000 Hz"):
        SimulatedAmplifier(MONTAGE, sc, sample_rate_hz=1000)
    with pytest.raises(ValueError, match="block"):
        SimulatedAmplifier(MONTAGE, sc, block_s=2.0)


# --- pacing ------------------------------------------------------------------------------


def test_read_paces_against_manual_clock_without_sleeping() -> None:
    clock = ManualClock(100.0)
    a = SimulatedAmplifier(MONTAGE, scenario(), sample_rate_hz=FS, clock=clock, block_s=0.01)
    wall = time.perf_counter()
    a.open()
    clock.advance(1.0)
    chunks = []
    while sum(c.n_samples for c in chunks) < FS:
        chunks.append(a.read())
    assert sum(c.n_samples for c in chunks) == FS == a.counters.samples
    assert clock.now() == 101.0  # everything was due: no waiting
    assert max(c.n_samples for c in chunks) <= 0.5 * FS  # a late reader catches up in steps
    assert [c.start for c in chunks] == [0, *np.cumsum([c.n_samples for c in chunks])[:-1]]
    nxt = a.read()  # nothing due: waits one block on the clock
    assert (nxt.start, nxt.n_samples) == (FS, 100)
    assert clock.now() == pytest.approx(101.01)
    assert time.perf_counter() - wall < 1.0


def test_non_realtime_read_returns_blocks() -> None:
    a = amp(scenario(), block_s=0.02)
    a.open()
    chunks = [a.read() for _ in range(3)]
    assert [(c.start, c.n_samples) for c in chunks] == [(0, 200), (200, 200), (400, 200)]
    assert np.array_equal(np.concatenate([c.data for c in chunks]), a.generate(0, 600))


# --- ground truth ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emg_only() -> tuple[SimulatedAmplifier, np.ndarray]:
    a = amp(scenario(EMG_EVENTS).without_baseline())
    return a, a.generate(0, idx(10))


def test_truth_amplitude_and_extent_match_render(emg_only: tuple) -> None:
    a, x = emg_only
    assert [e.kind for e in a.truth.events] == ["spike", "burst", "a_train", "b_train"]
    for e, spec in zip(a.truth.events, EMG_EVENTS):
        for ch, gain in zip(e.channels, e.gains):
            seg = x[e.onset:e.offset + 1, ch]
            assert np.ptp(seg) == pytest.approx(e.peak_uv * gain, rel=0.01)
            assert seg[0] != 0 and seg[-1] != 0
            assert x[e.onset - 1, ch] == 0 and x[e.offset + 1, ch] == 0
        assert e.peak_uv == pytest.approx(spec["peak_uv"], rel=1e-6)
        assert idx(spec["at_s"]) <= e.onset < e.offset
    silent = np.ones(x.shape, bool)
    for e in a.truth.events:
        silent[e.onset:e.offset + 1, list(e.channels)] = False
    assert not x[silent].any()
    a_train = a.truth.events[2]
    assert a_train.channels == tuple(MONTAGE.channels_of("L5", "L"))
    assert a_train.gains == (1.0, SECONDARY_GAIN)
    assert (a_train.train_type, a_train.rate_hz) == ("A", 120)


def _peak_times(seg: np.ndarray, min_distance: int) -> np.ndarray:
    peaks, _ = find_peaks(seg, height=0.4 * seg.max(), distance=min_distance)
    return peaks / FS


def test_a_train_regular_at_its_rate_and_b_train_irregular(emg_only: tuple) -> None:
    a, x = emg_only
    at, bt = a.truth.events[2], a.truth.events[3]
    seg = x[at.onset:at.offset + 1, at.channels[0]].astype(float)
    spectrum = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(len(seg), 1 / FS)
    assert freqs[np.argmax(spectrum)] == pytest.approx(120, abs=2)
    isi_a = np.diff(_peak_times(seg, int(0.6 * FS / 120)))
    assert np.std(isi_a) / np.mean(isi_a) < 0.05
    seg_b = -x[bt.onset:bt.offset + 1, bt.channels[0]].astype(float)
    isi_b = np.diff(_peak_times(seg_b, int(0.005 * FS)))
    assert len(isi_b) > 20
    assert np.std(isi_b) / np.mean(isi_b) > 0.2
    assert 1 / np.mean(isi_b) == pytest.approx(15, rel=0.35)


@pytest.mark.parametrize("rate_hz", [60, 210])
def test_a_train_spectral_peak_at_rate_across_range(rate_hz: float) -> None:
    a = amp(scenario([{"kind": "a_train", "channel": "L5-R TibAnt", "at_s": 1, "duration_s": 2,
                       "peak_uv": 100, "rate_hz": rate_hz}]).without_baseline())
    (e,) = a.truth.events
    seg = a.generate(e.onset, e.offset + 1 - e.onset)[:, e.channels[0]].astype(float)
    spectrum = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(len(seg), 1 / FS)
    assert freqs[np.argmax(spectrum)] == pytest.approx(rate_hz, abs=1)
    second = spectrum[np.argmin(np.abs(freqs - 2 * rate_hz))]
    assert second < 0.15 * spectrum.max()  # near-sinusoidal


def test_ecg_beats_in_truth_match_heart_rate(demo: SimulatedAmplifier) -> None:
    beats = np.array(demo.truth.ecg_beats)
    rr = np.diff(beats) / FS
    assert rr.mean() == pytest.approx(60 / 72, rel=0.01)
    assert rr.min() > 0.9 * 60 / 72 and rr.max() < 1.1 * 60 / 72
    assert beats[-1] < idx(120)


def test_cautery_rails_then_recovers(demo: SimulatedAmplifier) -> None:
    (art,) = [t for t in demo.truth.artifacts if t.kind == "cautery"]
    assert art.onset == idx(20) and art.channels == tuple(range(16))
    during = demo.generate(idx(20), idx(3))
    railed = (np.abs(during) == 5000.0).mean(axis=0)
    assert (railed > 0.5).all()
    after = demo.generate(art.offset + 1, idx(1))
    assert np.abs(after).max() < 1000  # baseline again (ECG up to ~300 µV)
    assert art.offset > idx(23)  # recovery tail is part of the artifact


def test_lead_off_sits_at_rail_and_reports_event(demo: SimulatedAmplifier) -> None:
    ch = LABELS.index("L4-R VastMed")
    x = demo.generate(idx(59.9), idx(8.2))
    assert (x[idx(0.1):idx(8.1), ch] == 5000.0).all()
    assert np.abs(x[:idx(0.1), ch]).max() < 1000
    (event,) = demo.events_between(idx(59), idx(61))
    assert (event.kind, event.start, event.stop) == ("lead_off", idx(60), idx(68))
    assert event.channels == (ch,)
    assert any(t.kind == "lead_off" and t.channels == (ch,) for t in demo.truth.artifacts)


def test_looping_repeats_script_and_events(demo: SimulatedAmplifier) -> None:
    period = idx(120)
    events = demo.events_between(period + idx(79), period + idx(81))
    assert [(e.kind, e.start, e.data["current_ma"]) for e in events] == [
        ("stimulus", period + idx(80), 2.0)]
    quiet = amp(load_scenario("lumbar_demo").without_baseline())
    assert np.array_equal(quiet.generate(idx(39.9), idx(3.5)),
                          quiet.generate(period + idx(39.9), idx(3.5)))


# --- triggered EMG -------------------------------------------------------------------------


def test_cmap_grows_monotonically_with_current_around_threshold() -> None:
    currents = np.arange(3.0, 12.01, 0.5)
    events = [{"kind": "stimulus", "target": "L5-L", "at_s": 0.2 + 0.25 * i, "current_ma": c}
              for i, c in enumerate(currents)]
    sc = scenario(events, cmap_variability=0, stim_artifact_uv_per_ma=0, cmap_max_uv=800,
                  thresholds_ma={"L5-L": 6.5}).without_baseline()
    a = amp(sc)
    sizes = np.array([s.cmap_uv for s in a.truth.stimuli])
    assert (np.diff(sizes) >= 0).all()
    assert sizes[currents <= 5.5].max() < 10 and sizes[currents >= 10].min() > 750
    x = a.generate(0, idx(5))
    ch = MONTAGE.channels_of("L5", "L")[0]
    for s in a.truth.stimuli:
        window = x[s.index:s.index + idx(0.045), ch]
        assert np.ptp(window) == pytest.approx(s.cmap_uv, rel=0.01, abs=0.01)


def test_stimulus_reports_event_and_has_artifact_everywhere() -> None:
    a = amp(scenario([{"kind": "stimulus", "target": "S1-R", "at_s": 1, "current_ma": 10}])
            .without_baseline())
    (event,) = a.events_between(0, idx(10))
    assert (event.kind, event.start, event.channels) == ("stimulus", idx(1), ())
    assert event.data == {"current_ma": 10.0, "target": "S1-R"}
    x = a.generate(idx(1), idx(0.002))
    assert (np.abs(x).max(axis=0) > 100).all()


def test_schedule_stimulus_closed_loop() -> None:
    a = amp(scenario(thresholds_ma={"L4-R": 5.0}))
    a.open()
    a.read()
    at = a.schedule_stimulus(12.0, "L4-R")
    assert at == 100 + idx(0.005)
    chunk = a.read()
    assert [e.kind for e in chunk.events] == ["stimulus"]
    (truth,) = a.truth.stimuli
    assert truth.index == at and truth.target == "L4-R" and truth.cmap_uv > 700
    with pytest.raises(ValueError, match="past"):
        a.schedule_stimulus(5.0, "L4-R", at_index=10)
    with pytest.raises(ValueError, match="records"):
        a.schedule_stimulus(5.0, "C5-L")


def test_train_of_four_block_level() -> None:
    a = amp(scenario([{"kind": "tof", "target": "L4-L", "at_s": 1, "block_level": 2}]))
    pulses = a.truth.stimuli
    assert [p.tof_pulse for p in pulses] == [1, 2, 3, 4]
    assert [p.index for p in pulses] == [idx(1 + 0.5 * i) for i in range(4)]
    sizes = [p.cmap_uv for p in pulses]
    assert sizes[0] > sizes[1] > 0 and sizes[2] == sizes[3] == 0


# --- mains ------------------------------------------------------------------------------


def test_mains_frequency_is_nominal_plus_offset() -> None:
    sc = scenario(mains_hz=60, mains_offset_hz=0.4, mains_uv=10, noise_uv=0, drift_uv=0,
                  ecg_scale=0)
    a = amp(sc, fs=2000.0)
    x = a.generate(0, 20000)[:, 0].astype(float)  # 10 s: 0.1 Hz resolution
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1 / 2000.0)
    assert freqs[np.argmax(spectrum)] == pytest.approx(60.4, abs=0.05)
    third = (freqs > 170) & (freqs < 190)
    assert freqs[third][np.argmax(spectrum[third])] == pytest.approx(3 * 60.4, abs=0.1)


# --- randomised benchmark scenario ------------------------------------------------------------


def test_bench_mixed_random_events_are_unambiguous() -> None:
    a = amp(load_scenario("bench_mixed"))
    truth = a.truth
    assert a.scenario.duration_s >= 240 and len(truth.events) >= 36
    assert {e.kind for e in truth.events} == {"spike", "burst", "a_train", "b_train"}
    assert all(30 * 0.99 <= e.peak_uv <= 1000 * 1.01 for e in truth.events)
    gap = idx(0.3)
    cautery = [t for t in truth.artifacts if t.kind == "cautery"]
    for e in truth.events:
        assert all(e.offset + gap < c.onset or c.offset + gap < e.onset for c in cautery)
        assert all(e.offset + gap < s.index or s.index + gap < e.onset for s in truth.stimuli)
        same = [o for o in truth.events if o is not e and set(o.channels) & set(e.channels)]
        assert all(e.offset < o.onset or o.offset < e.onset for o in same)
    other = amp(load_scenario("bench_mixed"), seed=5).truth
    assert other.events != truth.events
    assert truth.to_json_dict(FS)["events"][0]["onset_s"] == truth.events[0].onset / FS


@pytest.mark.parametrize("name", ["lumbar_demo", "quiet", "pedicle_screws", "bench_mixed"])
def test_shipped_scenarios_load(name: str) -> None:
    sc = load_scenario(name)
    assert sc.name == name and sc.description
    x = amp(sc).generate(0, 1000)
    assert np.isfinite(x).all()


# --- malformed scenarios -----------------------------------------------------------------

GOOD = """
name = "t"
duration_s = 10
[[events]]
kind = "spike"
channel = "L5-L TibAnt"
at_s = 1
peak_uv = 100
"""


@pytest.mark.parametrize("old, new, key", [
    ("duration_s = 10", "", "duration_s"),
    ("duration_s = 10", 'duration_s = "long"', "duration_s"),
    ('kind = "spike"', 'kind = "twitch"', "events[0].kind"),
    ('channel = "L5-L TibAnt"', 'channel = "L5-L Soleus"', "events[0].channel"),
    ("at_s = 1", "at_s = 9.995", "events[0].at_s"),
    ("peak_uv = 100", "peak_uV = 100", "events[0].peak_uV"),
    ("peak_uv = 100", "peak_uv = 100000", "events[0].peak_uv"),
    ("peak_uv = 100", "", "events[0].peak_uv"),
    ('channel = "L5-L TibAnt"', 'root = "L1"', "events[0].root"),
    ('name = "t"', 'name = "t"\nmains_hz = 55', "mains_hz"),
    ("peak_uv = 100", 'peak_uv = 100\n[thresholds_ma]\n"X5-L" = 3', "thresholds_ma.X5-L"),
    ("peak_uv = 100", "peak_uv = 100\n[random]\npeak_uv = [900, 30]", "random.peak_uv"),
    ("peak_uv = 100", "peak_uv = 100\n[random]\ncautery_per_hour = 3600", "random"),
])
def test_malformed_scenario_names_file_and_key(tmp_path: Path, old: str, new: str,
                                               key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        amp(load_scenario(path))
    assert str(path) in str(info.value)
    assert info.value.key == key


def test_unknown_scenario_name() -> None:
    with pytest.raises(ConfigError, match="lumbar_demo"):
        load_scenario("no_such_case")


# --- waveforms -------------------------------------------------------------------------


def test_unit_waveforms_have_unit_size() -> None:
    t = np.linspace(-0.01, 0.01, 20001)
    assert np.ptp(waveforms.muap(t, 0.008, 2)) == pytest.approx(1, rel=1e-3)
    assert np.ptp(waveforms.muap(t, 0.008, 3)) == pytest.approx(1, rel=1e-3)
    assert np.ptp(waveforms.cmap(np.linspace(0, 0.015, 20001), 0.015)) == pytest.approx(1, rel=1e-3)
    assert waveforms.ecg_beat(np.zeros(1))[0] == pytest.approx(1, abs=0.01)
    assert waveforms.stimulus_artifact(np.array([-1e-4, 0.0]))[1] == 1.0
