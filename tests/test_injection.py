"""Injection guidance: the indicator against the simulator's ground truth, the motor point
found within 0.1 mA, the site log in the recording (and the lab database), the headless
command's JSON and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.injection import (
    FRAME_S,
    ActivityIndicator,
    MotorPointSearch,
    motor_point_truth_ma,
)

RATE = "5000"  # half the default rate: the same rules, half the time


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One headless run of the whole scenario with a search and two sites, recorded."""
    d = tmp_path_factory.mktemp("inject")
    out, rec = d / "inject.json", d / "inject.h5"
    code = main(["inject", "--headless", "--scenario", "injection_gastroc", "--seconds", "60",
                 "--rate", RATE, "--json", str(out), "--record", str(rec), "--locate-at", "30",
                 "--site", "22:50", "--site", "49:25"])
    assert code == 0
    return {"doc": json.loads(out.read_text()), "h5": rec, "dir": d}


def test_indicator_matches_ground_truth(run: dict) -> None:
    score = run["doc"]["truth"]["score"]
    assert score["active_episodes"] == 3 and score["active_detected"] == 3
    assert score["insertion_episodes"] == 4 and score["insertion_not_active"] == 4
    assert score["rest_frames"] > 3000 and score["rest_false_active"] == 0
    segs = run["doc"]["segments"]
    for ep in run["doc"]["truth"]["episodes"]:  # each episode is seen within 50 ms of its start
        seen = [s for s in segs if s["state"] != "rest" and abs(s["start_s"] - ep["start_s"]) < 0.05]
        assert seen, ep


def test_motor_point_found_within_0_1_ma(run: dict) -> None:
    st = run["doc"]["stimulation"]
    truth = run["doc"]["truth"]["motor_point_ma"]
    assert truth == pytest.approx(motor_point_truth_ma(2.3, 800), abs=1e-3)
    assert st["search_finished"] and abs(st["motor_point_ma"] - truth) <= 0.1
    currents = [c["current_ma"] for c in st["curve"]]
    assert currents[:3] == [1.0, 2.0, 3.0]  # coarse steps, then fine from 2.1
    found = st["motor_point_ma"]
    fine = [round(2.1 + 0.1 * k, 1) for k in range(round((found - 2.1) / 0.1) + 1)]
    assert currents[3:] == pytest.approx(fine)  # 0.1 mA steps up to the first twitch
    sizes = [c["response_uv"] for c in st["curve"] if c["twitch"]]
    assert max(sizes) > 150  # the 3 mA twitch is large: the curve rises with current


def test_sites_are_events_in_the_recording(run: dict) -> None:
    from ionm_station.recording.reader import open_recording

    sites = run["doc"]["sites"]
    assert [(s["dose_units"], s["state"]) for s in sites] == [(50.0, "active"), (25.0, "active")]
    with open_recording(run["h5"]) as r:
        recorded = [e for e in r.events if e.kind == "injection"]
        fs = r.info.sample_rate_hz
        assert len(recorded) == 2
        e = recorded[0]
        assert e.data["muscle"] == "gastrocnemius (medial)" and e.data["side"] == "L"
        assert e.start / fs == pytest.approx(22.0, abs=1e-3)
        ev = np.array(e.data["evidence_uv"])
        assert len(ev) == round(fs)  # 1 s: 0.5 s before and after
        assert np.sqrt(np.mean(ev**2)) == pytest.approx(e.data["rms_uv"], rel=0.01)
        assert e.data["rms_uv"] > 5 * run["doc"]["rest_uv"]  # the evidence shows activity


def test_site_log_goes_into_the_lab_database(run: dict) -> None:
    from ionm_station.lab import patients

    db = run["dir"] / "lab.sqlite"
    opened = patients.open_db(db, create=True)
    patients.add_patient(opened.conn, "P1", "Test Patient")
    opened.close()
    out = run["dir"] / "db.json"
    code = main(["inject", "--headless", "--seconds", "8", "--rate", RATE, "--json", str(out),
                 "--site", "7.5:30", "--db", str(db), "--patient-id", "P1"])
    assert code == 0
    opened = patients.open_db(db)
    try:
        p = patients.get_patient(opened.conn, "P1")
        (visit,) = patients.visits(opened.conn, p)
        (study,) = patients.studies(opened.conn, visit)
        assert study.kind == "injection" and study.result["sites"][0]["dose_units"] == 30.0
    finally:
        opened.close()


def test_headless_json_names_the_rule_and_channel(run: dict) -> None:
    doc = run["doc"]
    assert doc["channel"] == "S1-L Gastroc" and doc["target"] == "S1-L"
    assert doc["rule"]["insertion_max_s"] == 0.5 and doc["rule"]["envelope_s"] == 0.1
    assert doc["segments"][0]["state"] == "learning"
    assert doc["segments"][-1]["stop_s"] > 59


@pytest.mark.parametrize("argv, words", [
    (["--channel", "L5-L Nope"], "--channel: no channel 'L5-L Nope'"),
    (["--site", "22"], "expected AT_S:UNITS"),
    (["--site", "59.9:10"], "--site 59.9: past the end"),
    (["--locate-at", "70"], "--locate-at 70: past the end"),
    (["--rate", "100"], "--rate: the simulator makes 2000–20000 Hz"),
    (["--scenario", "no_such_scenario"], "no_such_scenario"),
    (["--db", "x.sqlite"], "--db and --patient-id go together"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list,
                                      words: str) -> None:
    with pytest.raises(SystemExit) if argv[0] == "--site" and ":" not in argv[1] else _no_raise():
        code = main(["inject", "--headless", "--seconds", "60", "--json",
                     str(tmp_path / "o.json"), *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_existing_json_needs_force_and_window_only_options(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o.json"
    out.write_text("{}")
    assert main(["inject", "--headless", "--seconds", "2", "--json", str(out)]) == 2
    assert out.read_text() == "{}"
    assert main(["inject", "--site", "1:10"]) == 2
    assert main(["inject", "--headless", "--seconds", "2"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and "--force" in lines[0] and "--headless" in lines[1]


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_indicator_rule_on_synthetic_signal() -> None:
    """Rest, a 200 ms burst (insertion, never active), 2 s of activity (insertion for its first
    0.5 s, then active), rest again."""
    fs = 5000
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, 6 * fs)
    x[2 * fs:int(2.2 * fs)] += rng.normal(0, 40, int(0.2 * fs))
    x[3 * fs:5 * fs] += rng.normal(0, 30, 2 * fs)
    ind = ActivityIndicator(fs)
    states = []
    for k in range(0, len(x), 173):  # odd chunks: the rule does not depend on chunking
        states += [s for _, s, _ in ind.process(x[k:k + 173], k)]
    states = np.array(states)
    t = np.arange(len(states)) * FRAME_S
    assert set(states[(t > 1.0) & (t < 1.9)]) == {"rest"}
    assert "active" not in set(states[(t > 1.9) & (t < 2.9)]) and "insertion" in set(states[(t > 2.0) & (t < 2.3)])
    assert set(states[(t > 3.0) & (t < 3.45)]) == {"insertion"}
    assert set(states[(t > 3.6) & (t < 5.0)]) == {"active"}
    assert set(states[(t > 5.5)]) == {"rest"}


def test_search_steps() -> None:
    twitch_from = 3.65
    s = MotorPointSearch(start_ma=1.0)
    seq = []
    while (c := s.next_current()) is not None:
        seq.append(c)
        s.record(c, c >= twitch_from - 1e-9, 0.0)
    assert seq == [1.0, 2.0, 3.0, 4.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7]
    assert s.threshold_ma == 3.7
    s = MotorPointSearch(start_ma=1.0, max_ma=3.0)  # nothing up to the limit
    while (c := s.next_current()) is not None:
        s.record(c, False, 0.0)
    assert s.finished and s.threshold_ma is None
