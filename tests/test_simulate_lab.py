"""``ionm-station simulate-lab``: example files the EMG lab commands read back as what they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ionm_station.cli import main


def test_example_files_read_back_as_their_truth(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    demo = tmp_path / "demo"
    assert main(["simulate-lab", str(demo), "--seed", "2"]) == 0
    truth = json.loads((demo / "truth.json").read_text())
    assert sorted(truth["needle"]) == ["needle_myopathic.edf", "needle_neurogenic.edf",
                                       "needle_normal.edf"]
    for name, what in truth["needle"].items():
        out = tmp_path / f"{name}.json"
        assert main(["muap", str(demo / name), "--muscle", what["muscle"], "--max-rise-ms", "0",
                     "--json", str(out)]) == 0
        assert json.loads(out.read_text())["summary"]["pattern"] == what["pool"]
    out = tmp_path / "ncs.json"
    assert main(["ncs", str(demo / "hand_entrapped.ncs.toml"), "--json", str(out)]) == 0
    assert any("carpal tunnel" in p["summary"] for p in json.loads(out.read_text())["patterns"])
    capsys.readouterr()
    # nothing is replaced: refused in one line before anything is written
    before = {p.name: p.stat().st_mtime_ns for p in demo.iterdir()}
    assert main(["simulate-lab", str(demo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file exists" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in demo.iterdir()} == before


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("not a folder")
    assert main(["simulate-lab", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == f"ionm-station: error: {tmp_path / 'x'}: is not a folder"
