"""The file commands end to end: run --record, info, analyze, export, replay, and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ionm_station.cli import main


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 14 s recording of the lumbar demo (the spike at 8 s and the burst at 12 s are in it)."""
    path = tmp_path_factory.mktemp("case") / "case.h5"
    assert main(["run", "--headless", "--fast", "--seconds", "14", "--record", str(path),
                 "--procedure", "L4-S1 PLIF", "--status-interval", "60"]) == 0
    return path


def test_info_reports_a_clean_recording(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["info", str(case), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_samples"] == 140_000 and doc["fs"] == 10_000 and doc["n_channels"] == 16
    assert doc["clean_close"] is True


def test_analyze_recording_finds_the_scripted_events(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    assert main(["analyze", str(case), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    found = {(e["channel"], round(e["onset_s"])) for e in doc["events"]}
    assert found == {("L4-L VastMed", 8), ("S1-R Gastroc", 12)}  # and nothing else: no ECG events
    assert doc["channels"][3] == {"label": "L5-L TibAnt", "root": "L5", "side": "L",
                                  "muscle": "tibialis anterior", "threshold_uv": 100.0,
                                  "tile": "L5-L"}
    assert set(doc["train_time_by_channel_s"]) == {c["label"] for c in doc["channels"]}
    assert set(doc["train_time_by_tile_s"]) == {c["tile"] for c in doc["channels"]}


def test_export_and_analyze_edf_agree(case: Path, tmp_path: Path) -> None:
    edf, clean, out = tmp_path / "case.edf", tmp_path / "clean.edf", tmp_path / "ev.json"
    assert main(["export", str(case), "--edf", str(edf), "--deidentify"]) == 0
    assert main(["analyze", str(edf), "--json", str(out), "--clean-edf", str(clean)]) == 0
    doc = json.loads(out.read_text())
    assert {(e["channel"], round(e["onset_s"])) for e in doc["events"]} == {
        ("L4-L VastMed", 8), ("S1-R Gastroc", 12)}
    assert doc["channels"][13]["root"] == "S1"  # roots from the EDF labels
    from ionm_station.io.edf import read_edf

    cleaned = read_edf(clean)
    assert cleaned.labels == [c["label"] for c in doc["channels"]] and cleaned.data.shape[0] >= 140_000


def test_replay_through_the_live_pipeline(case: Path, tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    before = case.read_bytes()
    assert main(["run", "--headless", "--replay", str(case), "--fast", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    status = doc["state"]["status"]
    assert status["samples"] == 140_000 and status["gaps"] == 0 and status["processed"] == 140_000
    assert doc["events"]["emg_event"] >= 2
    assert case.read_bytes() == before  # replay never writes into the file


def test_run_json_and_analyze_report_the_same_numbers(tmp_path: Path) -> None:
    """The demo's L5-L A-train recorded, then replayed live and analysed offline: the same
    events and the same train time per tile and per channel (one definition)."""
    case = tmp_path / "a_train.h5"
    assert main(["run", "--headless", "--fast", "--seconds", "46", "--record", str(case),
                 "--status-interval", "100"]) == 0
    live, offline = tmp_path / "live.json", tmp_path / "offline.json"
    assert main(["run", "--headless", "--replay", str(case), "--fast", "--json", str(live),
                 "--status-interval", "100"]) == 0
    assert main(["analyze", str(case), "--json", str(offline)]) == 0
    run, ana = json.loads(live.read_text())["state"], json.loads(offline.read_text())
    assert run["train_time_by_tile_s"]["L5-L"] > 2.5  # the 3 s train, once (union over muscles)
    assert run["train_time_by_tile_s"] == ana["train_time_by_tile_s"]
    assert run["train_time_by_channel_s"] == ana["train_time_by_channel_s"]
    assert json.loads(live.read_text())["events"]["emg_event"] == len(ana["events"])


@pytest.mark.parametrize("content", [None, b"", b"hello, not a signal file", b"0       " + b"x" * 300])
def test_bad_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       content: bytes | None) -> None:
    path = tmp_path / "bad.edf"
    if content is not None:
        path.write_bytes(content)
    for argv in (["analyze", str(path), "--json", str(tmp_path / "o.json")], ["info", str(path)],
                 ["run", "--headless", "--replay", str(path)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ionm-station: error:") and str(path) in err[0]


def test_truncated_edf_is_rejected(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edf = tmp_path / "full.edf"
    assert main(["export", str(case), "--edf", str(edf)]) == 0
    cut = tmp_path / "cut.edf"
    cut.write_bytes(edf.read_bytes()[:-12345])
    capsys.readouterr()
    assert main(["analyze", str(cut), "--json", str(tmp_path / "o.json")]) == 2
    assert "truncated" in capsys.readouterr().err
