"""The case's event log (caselog.py), the trends (trends.py) and what the report reads from
events (report/case.py), on hand-made events with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ionm_station.caselog import KINDS, CaseLog, case_log, clock, select
from ionm_station.events import Event
from ionm_station.montage import load_montage
from ionm_station.report import case as cs
from ionm_station.trends import quality_trend, screw_points, tile_trends, tof_points

FS = 1000.0
M = load_montage("lumbar")
L5L = M.channels_of("L5", "L")[0]
L4R = M.channels_of("L4", "R")[0]


def alarm(at_s: float, tile: str, state: str, priority: str | None = None,
          reason: str = "") -> Event:
    return Event("alarm", int(at_s * FS), data={"tile": tile, "state": state,
                                                "priority": priority, "reason": reason})


def train(at_s: float, seconds: float, channel: int = L5L, peak: float = 200.0) -> Event:
    return Event("emg_event", int(at_s * FS), int((at_s + seconds) * FS), (channel,),
                 {"kind": "train", "train_type": "A", "peak_uv": peak, "above_threshold": True})


def quality(at_s: float, channel: int, cause: str | None, noise: float = 3.0) -> Event:
    return Event("signal_quality", int(at_s * FS), int((at_s + 2) * FS), (channel,),
                 {"noise_rms_uv": noise, "mains_uv": 5.0, "mains_hz": 50.0, "ecg_uv": 40.0,
                  "lead_off": cause == "lead off", "flat": False, "ok": cause is None,
                  "cause": cause, "check": "periodic"})


EVENTS = [
    alarm(40.1, "L5-L", "alarm", "advisory", "A-train ongoing 0.1 s"),
    alarm(40.2, "L5-L", "alarm", "advisory", "A-train ongoing 0.2 s"),  # same: no line
    alarm(40.6, "L5-L", "alarm", "caution", "A-train ongoing 0.6 s"),
    train(40.0, 3.0),
    Event("alarm_ack", int(45 * FS), data={"tile": "L5-L", "priority": "caution", "by": "J. Roe"}),
    alarm(45.0, "L5-L", "quiet"),
    Event("marker", int(50 * FS), int(50 * FS), data={"text": "Surgeon informed: L5 train"}),
    Event("alarm_silence", int(51 * FS), data={"seconds": 60.0}),
    Event("artifact", int(20 * FS), int(23 * FS), tuple(range(16)), {"kind": "cautery"}),
    Event("artifact", int(30 * FS), int(30.01 * FS), tuple(range(16)), {"kind": "stimulus"}),
    Event("lead_off", int(60 * FS), None, (L4R,)),
    Event("lead_off", int(60 * FS), int(68 * FS), (L4R,)),
    quality(1.0, L4R, None), quality(61.0, L4R, "lead off"), quality(121.0, L4R, None),
    quality(1.0, L5L, None), quality(61.0, L5L, None),
    Event("technical_alarm", int(70 * FS), data={"condition": "not_monitoring", "what": "raised",
                                                  "priority": "warning",
                                                  "reason": "processing stalled for 0.6 s"}),
    Event("technical_alarm", int(72.5 * FS), data={"condition": "not_monitoring",
                                                    "what": "cleared", "priority": "warning",
                                                    "reason": "processing stalled", "lasted_s": 2.5}),
    Event("gap", int(71 * FS), int(74 * FS), data={"samples": 3000}),
    Event("worker_fault", int(70 * FS), data={"worker": "processing", "error": "RuntimeError: x"}),
    Event("screw_result", int(90 * FS), data={"level": "L5", "side": "R", "threshold_ma": 3.2,
                                              "stimuli": 7, "band": "likely breach", "note": ""}),
    Event("cmap", int(85 * FS), data={"target": "L5-R", "current_ma": 3.0, "responded": False,
                                      "peak_uv": [20.0]}),
    Event("tof", int(95 * FS), data={"site": "L4-L", "count": 2, "ratio": None,
                                     "blockade": "neuromuscular blockade: EMG unreliable"}),
    Event("settings", int(100 * FS), data={"band_hz": [20.0, 2000.0]}),
    Event("alarm_threshold", int(101 * FS), data={"tile": "S1-L", "threshold_uv": 200.0}),
]


def test_entries_in_time_order_with_the_right_words() -> None:
    entries = case_log(EVENTS, M, FS)
    assert [e.index for e in entries] == sorted(e.index for e in entries)
    texts = [(clock(e.index / FS), e.kind, e.tiles, e.text) for e in entries]
    alarms = [t for t in texts if t[1] == "alarm"]
    assert [t[3].split(":")[0] for t in alarms] == [
        "alarm raised (advisory)", "alarm escalated to caution", "acknowledged (caution) by J. Roe",
        "alarm sound silenced for 60 s"]
    assert alarms[0][0] == "0:00:40.1" and alarms[0][2] == ("L5-L",)
    kinds = [e.kind for e in entries]
    assert kinds.count("lead_off") == 1  # the open record and its closed one: once, closed
    lead = next(e for e in entries if e.kind == "lead_off")
    assert lead.stop == int(68 * FS) and lead.tiles == ("L4-R",) and "L4-R VastMed" in lead.text
    quality_lines = [e.text for e in entries if e.kind == "quality"]
    assert len(quality_lines) == 2  # only changes: off, then ok again
    assert quality_lines[0].startswith("L4-R VastMed: lead off")
    assert "ok again" in quality_lines[1]
    assert {"cautery", "technical", "fault", "gap", "marker", "screw", "tof", "settings"} <= set(kinds)
    assert "stimulus" not in " ".join(t[3] for t in texts)  # stimulus blanking is not a line
    screw = next(e for e in entries if e.kind == "screw")
    assert screw.text == "screw L5-R: 3.20 mA, likely breach (7 stimuli)"
    assert set(kinds) <= set(KINDS)


def test_fed_live_equals_the_whole_case() -> None:
    ordered = sorted(EVENTS, key=lambda e: e.start)
    ordered = [e for e in ordered if not (e.kind == "lead_off" and e.stop is not None)]
    live = CaseLog(M, FS)
    got = [x for i in range(0, len(ordered), 3) for x in live.feed(ordered[i:i + 3])]
    whole = case_log([e for e in EVENTS if not (e.kind == "lead_off" and e.stop)], M, FS)
    assert [(e.index, e.text) for e in got] == [(e.index, e.text) for e in whole]


def test_filters_by_kind_and_root() -> None:
    entries = case_log(EVENTS, M, FS)
    l5 = select(entries, root="L5")
    assert all(not e.tiles or any(t.startswith("L5-") for t in e.tiles) for e in l5)
    assert any(e.kind == "screw" for e in l5) and not any(e.kind == "lead_off" for e in l5)
    only = select(entries, kinds={"marker", "alarm"}, root="L5-L")
    assert {e.kind for e in only} == {"marker", "alarm"}
    assert select(entries, kinds={"tof"}, root="S2-R") == []  # the TOF was at L4-L
    assert select(entries, kinds={"tof"}, root="L4")[0].tiles == ("L4-L",)


def test_episodes_not_monitored_and_screws() -> None:
    eps = cs.alarm_episodes(EVENTS, M, FS, int(130 * FS))
    assert len(eps) == 1
    ep = eps[0]
    assert (ep.tile, ep.priority, ep.ack_by) == ("L5-L", "caution", "J. Roe")
    assert ep.start == int(40.1 * FS) and ep.end == ep.ack_index == int(45 * FS)
    assert ep.peak_uv == 200.0 and ep.train_time_s == pytest.approx(3.0)
    assert ep.markers == [(int(50 * FS), "Surgeon informed: L5 train")]
    gaps = cs.not_monitored(EVENTS, int(130 * FS))
    assert [(g.cause, g.start / FS, g.stop / FS) for g in gaps] == [
        ("NOT MONITORING", 70.0, 72.5), ("signal gap", 71.0, 74.0)]
    assert cs.covered_samples(gaps, int(130 * FS)) == int(4 * FS)  # 70–74 s, counted once
    screws = cs.screws(EVENTS, M)
    assert len(screws) == 1 and screws[0].key == "L5-R"
    assert [s.current_ma for s in screws[0].measured] == [3.0]
    assert screws[0].muscles == ("tibialis anterior", "extensor hallucis longus")


def test_trends_per_minute_quality_tof_screws() -> None:
    events = [train(30.0, 40.0), train(50.0, 5.0, channel=M.channels_of("L5", "L")[1]),
              train(130.0, 2.0)]
    events.append(Event("emg_event", int(10 * FS), int(10.01 * FS), (L4R,),
                        {"kind": "spike", "above_threshold": True}))
    events.append(Event("emg_event", int(11 * FS), int(11.01 * FS), (L4R,),
                        {"kind": "spike", "above_threshold": False}))
    tt = tile_trends(events, M, FS, int(180 * FS))
    row = tt.keys.index("L5-L")
    # the union of two overlapping trains (30–70 s, 50–55 s), cut at the minute edges
    assert tt.train_time_s[row].tolist() == pytest.approx([30.0, 10.0, 2.0])
    assert tt.train_time_s.sum() == pytest.approx(42.0)
    assert tt.event_rate[tt.keys.index("L4-R")].tolist() == [1.0, 0.0, 0.0]
    assert tt.event_rate[row].tolist() == [2.0, 0.0, 1.0]
    qt = quality_trend(EVENTS, len(M.channels), FS)
    assert qt.t_s.tolist() == [1.0, 61.0, 121.0]
    assert qt.failing[L4R].tolist() == [False, True, False]
    assert np.isnan(qt.noise_rms_uv[L5L, 2]) and qt.noise_rms_uv[L5L, 0] == 3.0
    assert [(p.site, p.count, p.ratio) for p in tof_points(EVENTS, FS)] == [("L4-L", 2, None)]
    assert [(p.level, p.side, p.threshold_ma) for p in screw_points(EVENTS, FS)] == [("L5", "R", 3.2)]
