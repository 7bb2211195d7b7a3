"""Artifact detector: cautery (incl. recovery tail), saturation, lead-off, stimuli, blanking."""

from __future__ import annotations

import numpy as np
import pytest

from ionm_station.dsp.artifacts import CAUTERY_PRE_S, ArtifactDetector, ArtifactSpan
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


def test_marked_stimulus_and_lead_off_blank():
    det = ArtifactDetector(4, FS, RANGE_UV)
    det.mark_stimulus(10000)
    det.mark_lead_off(20000, 25000, 3)
    noise = 3.0 * np.random.default_rng(2).standard_normal((100, 4))
    spans = det.process(noise, 0)
    assert {s.kind for s in spans} == {"stimulus", "lead_off"}
    mask = det.blank_mask(9900, 1000)
    assert not mask[:80].any() and mask[80:700].all()   # 2 ms before to 60 ms after
    lead = det.blank_mask(19000, 7000)
    assert lead[1000:6000, 3].all() and not lead[:, :3].any()
