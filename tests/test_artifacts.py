"""Artifact detector: cautery (incl. recovery tail), saturation, lead-off, stimuli, blanking."""

from __future__ import annotations

import numpy as np
import pytest

from ionm_station.dsp.artifacts import CAUTERY_PRE_S, ArtifactDetector, ArtifactSpan, _mean_middle
from ionm_station.montage import load_montage
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import parse_scenario

FS = 10000.0
RANGE_UV = 5000.0


def _scenario(events: list[dict], duration_s: float = 12.0) -> dict:
    return {"name": "artifacts", "duration_s": duration_s, "montage": "lumbar", "ecg_scale": 1.0,
            "mains_uv": 10.0, "cautery_recovery_s": 0.15, "stim_artifact_uv_per_ma": 50.0,
            "events": events}


@pytest.fixture(scope="module")
def case() -> tuple[SimulatedAmplifier, np.ndarray]:
    doc = _scenario([
        {"kind": "cautery", "at_s": 2.0, "duration_s": 1.5},
        {"kind": "lead_off", "at_s": 6.0, "duration_s": 2.0, "channel": "L4-L VastMed"},
        {"kind": "stimulus", "at_s": 9.0, "current_ma": 20.0, "target": "L5-L"},
        {"kind": "burst", "at_s": 10.0, "duration_s": 0.1, "peak_uv": 1000.0,
         "channel": "L5-L TibAnt"},
    ])
    amp = SimulatedAmplifier(load_montage("lumbar").first(8), parse_scenario(doc, "test.toml"),
                             sample_rate_hz=FS, seed=3)
    return amp, amp.generate(0, int(12.0 * FS))


def _run(raw: np.ndarray, chunks: list[int], stimuli: tuple[int, ...] = ()) -> list[ArtifactSpan]:
    det = ArtifactDetector(raw.shape[1], FS, RANGE_UV)
    for s in stimuli:
        det.mark_stimulus(s)
    spans, pos = [], 0
    for n in chunks:
        spans += det.process(raw[pos:pos + n], pos)
        pos += n
    return spans + det.flush()


def _chunks(total: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(1, 3000)))
    sizes[-1] -= sum(sizes) - total
    return sizes


def test_cautery_span_covers_truth_including_tail(case):
    amp, raw = case
    spans = _run(raw, [len(raw)])
    cautery = [s for s in spans if s.kind == "cautery"]
    truth = [a for a in amp.truth.artifacts if a.kind == "cautery"]
    assert len(cautery) == 1 and len(truth) == 1
    span, t = cautery[0], truth[0]
    assert span.start <= t.onset and span.stop >= t.offset + 1
    assert span.start >= t.onset - (CAUTERY_PRE_S + 0.02) * FS  # the margin, not more
    assert span.stop <= t.offset + 1.0 * FS            # nor absurdly long
    assert span.channels == tuple(range(8))


def test_lead_off_span_on_its_channel_only(case):
    amp, raw = case
    spans = _run(raw, [len(raw)])
    truth = next(a for a in amp.truth.artifacts if a.kind == "lead_off")
    lead = [s for s in spans if s.kind == "lead_off"]
    assert len(lead) == 1
    assert lead[0].channels == truth.channels
    assert lead[0].start <= truth.onset and lead[0].stop >= truth.offset + 1


def test_stimulus_and_emg_are_not_artifacts(case):
    _, raw = case
    spans = _run(raw, [len(raw)])
    assert all(s.stop <= 9.0 * FS for s in spans)      # nothing from the stimulus or the burst


def test_spans_are_chunking_invariant(case):
    _, raw = case
    whole = _run(raw, [len(raw)])
    for seed in (1, 2):
        assert _run(raw, _chunks(len(raw), seed)) == whole


def test_saturation_on_one_channel():
    rng = np.random.default_rng(0)
    raw = (3.0 * rng.standard_normal((20000, 4))).astype(np.float32)
    raw[10000:10150, 2] = RANGE_UV                      # 15 ms at the rail
    spans = _run(raw, [len(raw)])
    assert len(spans) == 1
    span = spans[0]
    assert span.kind == "saturation" and span.channels == (2,)
    assert span.start <= 10000 and span.stop >= 10150 + 0.2 * FS


def test_flat_channel_is_lead_off():
    rng = np.random.default_rng(1)
    raw = (3.0 * rng.standard_normal((30000, 4))).astype(np.float32)
    raw[5000:20000, 1] = 12.0                            # flat 1.5 s, not at the rail
    spans = _run(raw, [len(raw)])
    assert [(s.kind, s.channels) for s in spans] == [("lead_off", (1,))]
    assert spans[0].start <= 5000 and spans[0].stop >= 20000


def test_blank_mask_covers_open_cautery_within_latency(case):
    amp, raw = case
    onset = next(a for a in amp.truth.artifacts if a.kind == "cautery").onset
    det = ArtifactDetector(8, FS, RANGE_UV)
    latency = int(0.015 * FS)
    det.process(raw[:onset + latency], 0)
    assert [s.kind for s in det.open_spans()] == ["cautery"]
    mask = det.blank_mask(onset - 100, 1000)
    assert mask.all()                                   # pre-margin and everything after


def test_marked_spans_blank_and_are_open_until_the_stream_passes_them():
    det = ArtifactDetector(4, FS, RANGE_UV)
    det.mark_stimulus(10000)
    det.mark_lead_off(20000, 25000, 3)
    noise = 3.0 * np.random.default_rng(2).standard_normal((30000, 4))
    assert det.process(noise[:100], 0) == [] and det.open_spans() == []  # neither began yet
    mask = det.blank_mask(9900, 1000)
    assert not mask[:80].any() and mask[80:700].all()   # 2 ms before to 60 ms after
    lead = det.blank_mask(19000, 7000)
    assert lead[1000:6000, 3].all() and not lead[:, :3].any()
    assert det.process(noise[100:10050], 100) == []
    assert det.open_spans() == [ArtifactSpan("stimulus", 9980, None, (0, 1, 2, 3))]
    assert det.process(noise[10050:21000], 10050) == [
        ArtifactSpan("stimulus", 9980, 10600, (0, 1, 2, 3))]
    assert det.open_spans() == [ArtifactSpan("lead_off", 20000, None, (3,))]
    closed = det.process(noise[21000:], 21000)          # lead back at 25000 + 0.3 s margin
    assert closed == [ArtifactSpan("lead_off", 20000, 28000, (3,))] and det.open_spans() == []


def test_source_lead_off_opened_then_closed():
    det = ArtifactDetector(4, FS, RANGE_UV, start=5000)
    noise = 3.0 * np.random.default_rng(3).standard_normal((40000, 4))
    det.mark_lead_off(6000, None, 1)
    assert det.process(noise[:10000], 5000) == []
    assert det.open_spans() == [ArtifactSpan("lead_off", 6000, None, (1,))]
    assert det.blank_mask(9000, 100)[:, 1].all()          # open: blanked onwards
    det.mark_lead_off(6000, 14000, 1)                     # the source says it is back
    assert det.process(noise[10000:11000], 15000) == []
    assert det.open_spans() == [ArtifactSpan("lead_off", 6000, None, (1,))]  # margin
    assert det.process(noise[11000:], 16000) == [ArtifactSpan("lead_off", 6000, 17000, (1,))]
    assert det.open_spans() == []
    det.mark_lead_off(44000, None, 2)                     # never closed: ends with the record
    det.process(noise[:1000], 45000)
    assert det.flush() == [ArtifactSpan("lead_off", 44000, 46000, (2,))]


def _levels(raw: np.ndarray, block: int) -> tuple[list[ArtifactSpan], list[list[ArtifactSpan]]]:
    """Closed spans and the open spans after every block."""
    det = ArtifactDetector(raw.shape[1], FS, RANGE_UV)
    closed, levels = [], []
    for pos in range(0, len(raw), block):
        closed += det.process(raw[pos:pos + block], pos)
        levels.append(det.open_spans())
    return closed + det.flush(), levels


def test_saturation_just_before_cautery_is_reported_closed():
    rng = np.random.default_rng(4)
    raw = 3.0 * rng.standard_normal((40000, 8))
    raw[10000:10300, 2] = RANGE_UV                      # one lead rails 15 ms before cautery …
    raw[10150:15000] += rng.normal(0.0, 20000.0, (4850, 8))   # … and then everyone does
    np.clip(raw, -RANGE_UV, RANGE_UV, out=raw)
    closed, levels = _levels(raw, 100)
    shown = {(s.kind, s.start, s.channels) for level in levels for s in level}
    assert ("saturation", 10000 - 50, (2,)) in shown      # shown before cautery was recognised
    assert {(s.kind, s.start, s.channels) for s in closed} == shown   # and every one closed
    assert all(level == [] for level in levels[200:])    # nothing stays open after it all


def test_a_rail_inside_cautery_is_covered_by_it():
    rng = np.random.default_rng(5)
    raw = 3.0 * rng.standard_normal((40000, 8))
    raw[10000:15000] += rng.normal(0.0, 20000.0, (5000, 8))
    np.clip(raw, -RANGE_UV, RANGE_UV, out=raw)
    closed, levels = _levels(raw, 100)
    assert [s.kind for s in closed] == ["cautery"]
    assert all([s.kind for s in level] in ([], ["cautery"]) for level in levels)


def test_pinned_lead_turns_from_saturation_into_lead_off_under_one_identity():
    rng = np.random.default_rng(6)
    raw = 3.0 * rng.standard_normal((40000, 4))
    raw[10003:25000, 1] = RANGE_UV                      # pinned at the rail for 1.5 s
    closed, levels = _levels(raw, 100)
    kinds = [s.kind for level in levels for s in level]
    assert kinds[0] == "saturation" and kinds[-1] == "lead_off"
    assert {(s.start, s.channels) for level in levels for s in level} == {(9953, (1,))}
    assert [(s.kind, s.start, s.channels) for s in closed] == [("lead_off", 9953, (1,))]
    assert closed[0].stop >= 25000 + 0.3 * FS


def test_spans_lie_inside_the_record():
    rng = np.random.default_rng(7)
    raw = 3.0 * rng.standard_normal((3000, 4))
    raw[:20, 0] = RANGE_UV                              # rails at the first sample …
    raw[-20:, 2] = -RANGE_UV                            # … and at the last
    det = ArtifactDetector(4, FS, RANGE_UV, start=100)
    det.mark_stimulus(100)                              # the first sample
    det.mark_stimulus(3099)                             # the last
    spans = det.process(raw, 100) + det.flush()
    assert {(s.kind, s.channels) for s in spans} == {("saturation", (0,)), ("saturation", (2,)),
                                                     ("stimulus", (0, 1, 2, 3))}
    assert all(100 <= s.start < s.stop <= 3100 for s in spans)


def test_closed_spans_are_forgotten_once_blank_queries_pass_them():
    det = ArtifactDetector(2, FS, RANGE_UV)
    noise = 3.0 * np.random.default_rng(8).standard_normal((2000, 2))
    pos = 0
    for k in range(200):                                # 200 stimuli, one per 0.2 s
        det.mark_stimulus(pos + 10)
        det.process(noise, pos)
        det.blank_mask(pos, len(noise))
        pos += len(noise)
    assert len(det._closed) <= 2 and len(det._pending) <= 2


def test_marked_pop_and_common_mode_spans_blank_and_close_unless_signal_was_lost():
    """Spans handed in by the step detector blank their channels and are reported closed like
    the others; one beginning where its channels had no signal (a rail's edge is a step too)
    belongs to that span and is dropped; one marked after the stream passed its stop is not
    listed open."""
    rng = np.random.default_rng(9)
    raw = 3.0 * rng.standard_normal((30000, 4))
    raw[5000:5300, 2] = RANGE_UV                        # a rail: a saturation span
    det = ArtifactDetector(4, FS, RANGE_UV)
    det.process(raw[:10000], 0)
    det.mark_span(ArtifactSpan("pop", 5290, 8000, (2,)))            # the rail's falling edge
    det.mark_span(ArtifactSpan("pop", 9000, 9500, (1,)))            # passed already
    det.mark_span(ArtifactSpan("common_mode", 9800, 11000, (0, 1, 3)))
    assert [s.kind for s in det.open_spans()] == ["common_mode"]
    assert det.blank_mask(9000, 2000)[:, [0, 1, 3]].any(axis=0).all()
    assert not det.blank_mask(9000, 2000)[1000:, 2].any()
    closed = det.process(raw[10000:], 10000) + det.flush()
    assert {(s.kind, s.start, s.channels) for s in closed} == {
        ("pop", 9000, (1,)), ("common_mode", 9800, (0, 1, 3))}


def test_window_means_are_numpy_means_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    a = (rng.standard_normal((30, 50, 8)) * 10.0 ** rng.uniform(-3, 3, 8)) ** 2
    assert np.array_equal(_mean_middle(a), np.mean(a, axis=1))
