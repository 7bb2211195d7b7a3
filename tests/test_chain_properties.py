"""Properties of the whole free-run chain that must hold for any input (issue 10, "never silent").

A chain that raises leaves the surgeon's tiles green while nothing is monitored, so these tests
feed :class:`FreeRunChain` what real sources produce at their worst: any block size (1 sample to
2 s), NaN runs, rails, flat lines, QRS-like spikes at the first and last sample of the record
and of blocks, 250 Hz to 20 kHz, 1 to 64 channels, a chain started mid-stream, source lead-off
in both forms, stimuli — and check that nothing escapes, that the clean output keeps exactly one
row per input sample on the absolute clock, and that spans and events lie inside the record.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.events import Event
from ionm_station.montage import Montage, MontageChannel
from ionm_station.pipeline.chain import ChainOutput, ChainSettings, FreeRunChain

#: Largest record drawn (samples × channels): keeps each example well under a second.
BUDGET = 600_000
RATES_HZ = (250.0, 256.0, 500.0, 1000.0, 2048.0, 4000.0, 5000.0, 10_000.0, 20_000.0)


def montage(n_channels: int) -> Montage:
    roots = ("L2", "L3", "L4", "L5", "S1")
    return Montage("test", tuple(MontageChannel(f"ch{i}", "", roots[i % 5], "LR"[i // 5 % 2])
                                 for i in range(n_channels)))


@dataclass
class Case:
    fs: float
    start: int
    raw: np.ndarray                 # (n, channels) µV
    blocks: list[int]               # block sizes, summing to n
    events: list[tuple[int, Event]]  # (absolute index where the source reports it, event)
    range_uv: float


def qrs(fs: float, amplitude_uv: float) -> np.ndarray:
    """A QRS-like biphasic spike (~40 ms)."""
    t = np.arange(-0.02, 0.02, 1.0 / fs)
    return amplitude_uv * (np.exp(-0.5 * (t / 0.006) ** 2) - 0.4 * np.exp(-0.5 * ((t - 0.012) / 0.005) ** 2))


def put(raw: np.ndarray, at: int, wave: np.ndarray, channels: np.ndarray) -> None:
    """Add ``wave`` centred at row ``at`` (clipped to the record) on ``channels``."""
    lo = at - len(wave) // 2
    a, b = max(lo, 0), min(lo + len(wave), len(raw))
    if a < b:
        raw[a:b, channels] += wave[a - lo:b - lo, None]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    fs = draw(st.sampled_from(RATES_HZ) | st.floats(250.0, 20_000.0))
    n = max(1, round(draw(st.floats(0.1, 5.0)) * fs))
    n_ch = min(draw(st.integers(1, 64)), max(1, BUDGET // n))
    n = min(n, BUDGET // n_ch)
    range_uv = draw(st.sampled_from([400.0, 5000.0, 1e5]))
    start = draw(st.sampled_from([0, 1, 10**12 + 7]) | st.integers(0, 10**9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    # blocks: a drawn cycle of sizes from 1 sample to 2 s; past 150 calls, 2 s blocks
    cycle = draw(st.lists(st.one_of(st.just(1), st.integers(2, 64),
                                    st.integers(1, max(1, int(2 * fs)))), min_size=1, max_size=12))
    blocks: list[int] = []
    while sum(blocks) < n:
        size = cycle[len(blocks) % len(cycle)] if len(blocks) < 150 else int(2 * fs)
        blocks.append(min(size, n - sum(blocks)))
    bounds = np.cumsum([0] + blocks)

    raw = rng.normal(0.0, 3.0, (n, n_ch))
    t = np.arange(n) / fs
    raw += draw(st.sampled_from([0.0, 30.0])) * np.sin(2 * np.pi * 50.2 * t + 1.0)[:, None]
    all_ch = np.arange(n_ch)
    if draw(st.booleans()):  # strong ECG on every channel, the first beat a few samples in
        beat = qrs(fs, 800.0)
        for r in range(draw(st.integers(0, 20)), n, max(1, int(0.8 * fs))):
            put(raw, r, beat, all_ch)
    events: list[tuple[int, Event]] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["qrs", "nan", "rail", "flat", "stimulus", "lead_off_open",
                                     "lead_off_closed", "cautery"]))
        where = draw(st.sampled_from(["first", "last", "block_first", "block_last", "any"]))
        k = int(rng.integers(0, len(blocks)))
        at = {"first": 0, "last": n - 1, "block_first": int(bounds[k]),
              "block_last": int(bounds[k + 1]) - 1, "any": int(rng.integers(0, n))}[where]
        length = int(rng.integers(1, max(2, n // 3)))
        chans = np.flatnonzero(rng.random(n_ch) < 0.5) if n_ch > 1 else all_ch
        if not len(chans):
            chans = all_ch
        if kind == "qrs":
            put(raw, at, qrs(fs, float(rng.uniform(200, 3000))), chans)
        elif kind == "nan":
            raw[at:at + length, chans] = np.nan
        elif kind == "rail":
            raw[at:at + length, chans] = range_uv * rng.choice([-1.0, 1.0])
        elif kind == "flat":
            raw[at:at + length, chans] = float(rng.uniform(-50, 50))
        elif kind == "cautery":
            raw[at:at + length] += rng.normal(0.0, 2000.0, (len(raw[at:at + length]), n_ch))
        elif kind == "stimulus":
            events.append((start + at, Event("stimulus", start + at)))
        elif kind == "lead_off_open":  # opened; usually closed later by the same start, a stop
            channels = tuple(int(c) for c in chans)
            events.append((start + at, Event("lead_off", start + at, None, channels)))
            if rng.random() < 0.7:
                stop = start + min(at + length, n)
                events.append((stop, Event("lead_off", start + at, stop, channels)))
        else:  # the closed form, sent at onset (the simulator knows the future)
            events.append((start + at, Event("lead_off", start + at, start + min(at + length, n),
                                             tuple(int(c) for c in chans))))
    np.clip(raw, -range_uv, range_uv, out=raw)
    return Case(fs, start, raw.astype(np.float32), blocks, events, range_uv)


def run(case: Case, chain: FreeRunChain) -> tuple[list[ChainOutput], list[ArtifactSpan]]:
    """Feed the case block by block (each source event with the block where the source would
    report it), then flush; returns every output and every span open_spans() ever showed."""
    outs, seen_open, pos = [], [], case.start
    end = case.start + len(case.raw)
    for size in case.blocks:
        stop = pos + size
        mine = [e for at, e in case.events if pos <= at < stop or (stop == end and at >= end)]
        outs.append(chain.process(case.raw[pos - case.start:stop - case.start], pos, mine))
        seen_open += chain.open_spans()
        pos = stop
    outs.append(chain.flush())
    return outs, seen_open


def check(case: Case, chain: FreeRunChain, outs: list[ChainOutput],
          seen_open: list[ArtifactSpan]) -> None:
    n, first, end = len(case.raw), case.start, case.start + len(case.raw)
    # the clean stream: contiguous on the absolute clock, one row per input sample
    assert outs[0].start == first - chain.delay
    for a, b in pairwise(outs):
        assert b.start == a.start + len(a.clean)
    assert [len(o.clean) for o in outs[:-1]] == case.blocks
    clean = np.concatenate([o.clean for o in outs])
    assert clean.shape == (n + chain.delay, case.raw.shape[1])
    assert np.isnan(clean[:chain.delay]).all()          # fill rows before the first sample
    assert not np.isinf(clean).any()
    # events and spans inside the record
    for o in outs:
        for ev in o.events + o.ongoing:
            assert first <= ev.onset <= ev.offset < ev.stop <= end, ev
        for span in o.artifacts:
            assert span.stop is not None and first <= span.start < span.stop <= end, span
    # every span ever shown open is closed by the end under the same start and channels (a
    # saturation may have turned into a lead-off)
    closed: dict[tuple[int, tuple[int, ...]], set[str]] = {}
    for o in outs:
        for s in o.artifacts:
            closed.setdefault((s.start, s.channels), set()).add(s.kind)
    for span in seen_open:
        kinds = closed.get((span.start, span.channels), set())
        assert span.kind in kinds or (span.kind == "saturation" and "lead_off" in kinds), span
    assert chain.open_spans() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_chain_never_raises_and_keeps_the_clock(case: Case) -> None:
    thresholds = np.linspace(20.0, 400.0, case.raw.shape[1])
    chain = FreeRunChain(montage(case.raw.shape[1]), case.fs, case.range_uv, ChainSettings(),
                         start=case.start, thresholds_uv=thresholds)
    outs, seen_open = run(case, chain)
    check(case, chain, outs, seen_open)
    assert chain.degraded == (case.fs < 1000.0)


# --- real ECG -----------------------------------------------------------------------------------

ECG_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "physionet_ecg"
#: Annotation symbols of beats in the MIT-BIH database.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


@pytest.fixture(scope="module")
def mitdb_100() -> tuple[np.ndarray, np.ndarray]:
    """The first 70 s of MIT-BIH record 100 (PhysioNet, ODC-By; Moody & Mark 2001): both leads
    in µV at 360 Hz, and the annotated beats (sample indices)."""
    if not (ECG_DIR / "100.dat").exists():
        pytest.skip(f"real ECG not found: {ECG_DIR} (the shared data folder is absent)")
    wfdb = pytest.importorskip("wfdb", reason="reading MIT-BIH needs wfdb (pip install wfdb)")
    n = 70 * 360
    with warnings.catch_warnings():  # wfdb builds its tables with a keyword pandas deprecates
        warnings.filterwarnings("ignore", message="The inplace keyword")
        record = wfdb.rdrecord(str(ECG_DIR / "100"), sampto=n)
        ann = wfdb.rdann(str(ECG_DIR / "100"), "atr", sampto=n)
    beats = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_SYMBOLS])
    return 1000.0 * record.p_signal, beats


def ecg_channels(leads_uv: np.ndarray, fs: float, n_ch: int, gain: float, seed: int) -> np.ndarray:
    """Both leads resampled to ``fs`` and projected onto ``n_ch`` EMG channels (channel 0 at
    ``gain``, the others at 0.05–1 × ``gain``; random sign, 0–8 ms delay; the leads' R waves are
    ~1 mV), plus 3 µV noise and 15 µV of 50.2 Hz mains."""
    from scipy.signal import resample_poly

    rng = np.random.default_rng(seed)
    up = resample_poly(leads_uv, int(fs), 360, axis=0) if fs != 360 else leads_uv
    out = np.empty((len(up), n_ch))
    for c in range(n_ch):
        shift = int(rng.uniform(0, 0.008) * fs)
        lead = np.roll(up[:, c % 2], shift)
        out[:, c] = gain * (1.0 if c == 0 else rng.uniform(0.05, 1.0)) * rng.choice([-1, 1]) * lead
    t = np.arange(len(up)) / fs
    out += rng.normal(0.0, 3.0, out.shape) + 15.0 * np.sin(2 * np.pi * 50.2 * t)[:, None]
    return out.astype(np.float32)


@pytest.mark.parametrize("fs, gain", [(10_000.0, 1.0), (10_000.0, 0.3), (1000.0, 0.3),
                                      (360.0, 1.0)])
def test_real_ecg_at_any_start(mitdb_100, fs: float, gain: float) -> None:
    """Real ECG on 8 channels cut to start and end anywhere against the QRS: at the very first
    sample, a few samples to tens of ms before it, at the very last sample; records 0.1–5 s
    long, started mid-stream (``start``), in 0.1 s blocks or ragged ones. Nothing escapes and
    the clock holds at any ECG size; at trunk-muscle size (≤ 300 µV) on the full chain the ECG
    raises no event above threshold and its beats are found."""
    leads, beats_360 = mitdb_100
    x = ecg_channels(leads, fs, 8, gain, seed=int(fs))
    beats = np.round(beats_360 * fs / 360).astype(int)
    rng = np.random.default_rng(1)
    before_s = (0.0, 1 / fs, 3 / fs, 0.006, 0.03, 0.06, 0.075, 0.08, 0.1, 0.2)
    runs = [(int(beats[3 + k]) - round(b * fs), None) for k, b in enumerate(before_s)]
    runs += [(int(beats[20 + k]), "last") for k in range(4)]     # QRS at the last sample
    for offset, where in runs:
        n = int(rng.uniform(0.1, 5.0) * fs) if where is None else int(rng.choice([0.1, 2.7, 5.0]) * fs)
        if where == "last":
            offset -= n - 1
        size = int(0.1 * fs) if rng.random() < 0.5 else None  # replay blocks, else ragged ones
        blocks: list[int] = []
        while sum(blocks) < n:
            blocks.append(min(n - sum(blocks), size or int(rng.integers(1, int(0.3 * fs)))))
        case = Case(fs, offset, x[offset:offset + n], blocks, [], 5000.0)
        chain = FreeRunChain(montage(8), fs, 5000.0, start=offset)
        outs, seen_open = run(case, chain)
        check(case, chain, outs, seen_open)
        # no claim on events with 1 mV of ECG (its QRS reads as wide-band artifact on most
        # channels, so beats go unjudged) nor for a degraded chain (a 30 Hz high-pass leaves
        # part of each QRS)
        if chain.degraded or gain > 0.4:
            continue
        events = [e for o in outs for e in o.events]
        assert not [e for e in events if e.above_threshold], (offset, n, events)  # ECG is not EMG
        if n >= 4.0 * fs:  # the heart is found once learnt
            found = np.array(chain.ecg.beats) + offset
            truth = beats[(beats >= offset + 2.5 * fs) & (beats < offset + n - 0.3 * fs)]
            assert all(np.abs(found - r).min() < 0.03 * fs for r in truth), (offset, n)


# --- block boundaries ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_case() -> tuple[np.ndarray, list[Event], float]:
    """The lumbar demo's happenings (spike, burst, cautery, an L5 A-train, a B-train, a lead-off,
    a stimulus) packed into 15 s on the left-side channels, plus two saturations added to the
    raw signal: one on a lead 15 ms before the cautery (the rails come first), one alone; an
    electrode pop (0.8 mV decaying over 0.2 s) and a common-mode step (20–35 µV on 5 leads)."""
    import dataclasses

    from ionm_station.montage import load_montage
    from ionm_station.sim.amplifier import SimulatedAmplifier
    from ionm_station.sim.scenario import load_scenario

    demo = load_scenario("lumbar_demo")
    at_s = {"spike": 1.0, "burst": 1.5, "cautery": 3.0, "a_train": 6.0, "b_train": 9.0,
            "lead_off": 11.0, "stimulus": 13.5}
    events = []
    for e in demo.events:
        if e.kind in at_s and not any(x.kind == e.kind for x in events):
            channel = e.channel and e.channel.replace("-R ", "-L ")
            events.append(dataclasses.replace(e, at_s=at_s[e.kind], channel=channel,
                                              duration_s=min(e.duration_s, 2.0)))
    scenario = dataclasses.replace(demo, duration_s=15.0, loop=False, events=events)
    fs = 10_000.0
    amp = SimulatedAmplifier(load_montage("lumbar").first(8), scenario, fs, seed=3,
                             realtime=False)
    n = int(15.0 * fs)
    raw = amp.generate(0, n)
    raw[int(2.985 * fs):int(3.02 * fs), 2] = amp.range_uv
    raw[int(14.0 * fs):int(14.03 * fs), 5] = -amp.range_uv
    t = np.arange(n) / fs
    raw[:, 6] += np.where(t >= 7.7, 800.0 * np.exp(-(t - 7.7) / 0.2), 0.0)
    raw[:, [0, 1, 3, 4, 7]] += np.where(t >= 14.6, np.exp(-(t - 14.6) / 3.0), 0.0)[:, None] \
        * np.array([20.0, 35.0, 25.0, 30.0, 22.0])
    return raw, amp.events_between(0, n), fs


def test_block_boundaries_change_nothing(demo_case) -> None:
    raw, source_events, fs = demo_case
    results = []
    for block_s in (0.001, 0.01, 0.1, 1.0):
        block = int(block_s * fs)
        chain = FreeRunChain(montage(8), fs, 5000.0)
        spans, events, levels = [], [], {}
        for pos in range(0, len(raw), block):
            mine = [e for e in source_events if pos <= e.start < pos + block]
            out = chain.process(raw[pos:pos + block], pos, mine)
            spans += out.artifacts
            events += out.events
            if (pos + block) % int(fs) == 0:  # a time every blocking shares
                levels[pos + block] = {(s.kind, s.start, s.channels) for s in chain.open_spans()}
        out = chain.flush()
        results.append((sorted(spans + out.artifacts, key=lambda s: (s.start, s.kind, s.channels)),
                        sorted(events + out.events, key=lambda e: (e.onset, e.channel)), levels))
    spans, events, levels = results[0]
    kinds = {s.kind for s in spans}
    assert kinds == {"cautery", "saturation", "lead_off", "stimulus", "pop", "common_mode"}, kinds
    assert not [e for e in events if 7.7 * fs - 20 <= e.onset < 8.0 * fs or (
        14.6 * fs - 20 <= e.onset < 14.8 * fs and e.channel in (0, 1, 3, 4, 7))]  # steps: no EMG
    assert any(e.train_type == "A" for e in events)
    assert any(level for level in levels.values())
    for other_spans, other_events, other_levels in results[1:]:
        assert other_spans == spans
        assert other_events == events
        assert other_levels == levels


# --- rates, settings, API -----------------------------------------------------------------------

@pytest.mark.parametrize("fs, degraded, notes", [
    (10_000.0, False, ()),
    (5000.0, False, ("5000 Hz: band 10–2250 Hz (upper edge at 0.9 × Nyquist)",)),
    (1000.0, False, ("1000 Hz: band 10–450 Hz (upper edge at 0.9 × Nyquist)",)),
    (250.0, True, ("250 Hz: band 10–112.5 Hz (upper edge at 0.9 × Nyquist)",
                   "mains harmonics up to 112.5 Hz only",
                   "ECG removal by 30 Hz high-pass, not template subtraction (needs 1000 Hz)")),
    (100.0, True, ("100 Hz: band 10–45 Hz (upper edge at 0.9 × Nyquist)",
                   "mains removal off (needs more than 140 Hz)",
                   "ECG removal by 30 Hz high-pass, not template subtraction (needs 1000 Hz)")),
])
def test_any_rate_runs_and_says_what_it_changed(fs: float, degraded: bool,
                                                notes: tuple[str, ...]) -> None:
    chain = FreeRunChain(montage(4), fs, 5000.0)
    assert chain.degraded == degraded and chain.notes == notes
    assert (chain.ecg is None) == degraded and (chain.ecg_highpass is None) != degraded
    rng = np.random.default_rng(0)
    n = int(6 * fs)  # the full chain blanks detection until it judged a heartbeat, ≤ 4 s
    x = rng.normal(0.0, 3.0, (n, 4))
    x[int(4.5 * fs):int(4.5 * fs) + 8, 1] += 500.0 * np.array([1, -1, 1, -1, 1, -1, 1, -1])
    out = chain.process(x, 0)
    rest = chain.flush()
    clean = np.concatenate([out.clean, rest.clean])
    assert clean.shape == (n + chain.delay, 4) and np.isfinite(clean[chain.delay:]).all()
    found = [(e.channel, e.above_threshold) for e in out.events + rest.events]
    if degraded:  # small events while the noise floor settles (at 100 Hz: 10–45 Hz, ~20 s)
        found = [f for f in found if f[1]]
    assert found == [(1, True)]


def test_too_low_a_rate_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 100 Hz"):
        FreeRunChain(montage(2), 80.0, 5000.0)


def test_set_band_and_set_mains() -> None:
    chain = FreeRunChain(montage(2), 2000.0, 5000.0)
    x = np.random.default_rng(1).normal(0.0, 3.0, (4000, 2))
    chain.process(x[:2000], 0)
    assert chain.set_band(30.0, 5000.0) == (30.0, 900.0)       # clamped to 0.9 × Nyquist
    assert chain.bandpass._zi is None                          # restarts at steady state
    assert chain.notes == ("2000 Hz: band 30–900 Hz (upper edge at 0.9 × Nyquist)",)
    for low, high in ((0.0, 100.0), (200.0, 100.0), (float("nan"), 100.0)):
        with pytest.raises(ValueError):
            chain.set_band(low, high)
    assert chain.bandpass.low_hz == 30.0                       # a bad request changes nothing
    before = chain.mains
    chain.set_mains(60.0)
    assert chain.mains is not before and chain.mains.detected_hz == 60.0
    chain.set_mains(None)
    assert chain.mains.detected_hz is None and chain.settings.mains_hz is None
    with pytest.raises(ValueError):
        chain.set_mains(55.0)
    out = chain.process(x[2000:], 2000)
    assert out.start == 2000 - chain.delay and len(out.clean) == 2000

    low = FreeRunChain(montage(2), 120.0, 5000.0, ChainSettings(mains_hz=50.0))
    assert low.mains is not None and low.notes[1] == "mains harmonics up to 54 Hz only"
    low.set_mains(60.0)
    assert low.mains is None and "mains removal off (needs more than 140 Hz)" in low.notes


def test_source_lead_off_opens_and_closes_through_the_chain() -> None:
    chain = FreeRunChain(montage(4), 2000.0, 5000.0, start=10_000)
    x = np.random.default_rng(2).normal(0.0, 3.0, (20_000, 4))
    out = chain.process(x[:2000], 10_000, [Event("lead_off", 10_500, None, (2,))])
    assert chain.open_spans() == [ArtifactSpan("lead_off", 10_500, None, (2,))]
    assert np.isnan(out.clean[10_500 - out.start:, 2]).all()   # no signal shown
    chain.process(x[2000:4000], 12_000, [Event("lead_off", 10_500, 13_800, (2,))])
    assert chain.open_spans() == [ArtifactSpan("lead_off", 10_500, None, (2,))]  # margin
    out = chain.process(x[4000:], 14_000)
    assert out.artifacts == [ArtifactSpan("lead_off", 10_500, 14_400, (2,))]
    assert chain.open_spans() == []


def test_thresholds_are_shared_with_the_alarm_side() -> None:
    thresholds = np.full(2, 100.0)
    chain = FreeRunChain(montage(2), 2000.0, 5000.0, thresholds_uv=thresholds)
    assert chain.thresholds_uv is thresholds and chain.detector.thresholds_uv is thresholds
    x = np.random.default_rng(3).normal(0.0, 3.0, (12_000, 2))
    x[10_000:10_008, 0] += 150.0 * np.array([1, -1, 1, -1, 1, -1, 1, -1])
    events = chain.process(x[:9000], 0).events
    thresholds[0] = 500.0                                      # raised on the alarm side
    events += chain.process(x[9000:], 9000).events + chain.flush().events
    assert [(e.channel, e.above_threshold) for e in events] == [(0, False)]


def test_a_long_gap_in_one_chunk_is_processed_in_bounded_memory() -> None:
    """10 minutes of NaN in one call (a device back after a long gap): processed in ≤ 1 s
    pieces, so the peak is the output array itself, not copies per stage."""
    import tracemalloc

    fs, c = 1000.0, 1
    chain = FreeRunChain(montage(c), fs, 5000.0)
    rng = np.random.default_rng(4)
    chain.process(rng.normal(0.0, 3.0, (int(5 * fs), c)), 0)
    gap = np.full((int(600 * fs), c), np.nan, np.float32)
    tracemalloc.start()
    try:
        out = chain.process(gap, int(5 * fs))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isnan(out.clean[chain.delay:]).all()
    assert peak < out.clean.nbytes + 5e6
    after = chain.process(rng.normal(0.0, 3.0, (int(5 * fs), c)), int(605 * fs))
    assert np.isfinite(after.clean[-int(fs):]).all()
