"""The EMG lab window (``ionm-station lab``): a simulated needle recording and a simulated
nerve conduction study opened in it show the numbers and verdicts of ``muap`` / ``ncs``
themselves; the exports write the commands' files; a corrupt file is one line in the window.
Screenshots go to $IONM_SCREENSHOT_DIR (``docs/screenshots`` refreshes the docs)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import tempfile
from pathlib import Path

import pytest
import pytestqt  # noqa: F401  (pytest-qt is a test dependency: fail loudly if missing)

from ionm_station.cli import main
from ionm_station.gui.app import ensure_app
from ionm_station.gui.lab_ncs import COL
from ionm_station.gui.lab_needle import MUAP_COLUMNS, SPONTANEOUS_COLUMNS, cell_text
from ionm_station.gui.lab_window import LabWindow
from ionm_station.io.edf import write_edf
from ionm_station.lab import nerve_sim
from ionm_station.lab.needle_sim import simulate_pool

SCREENSHOTS = Path(os.environ.get("IONM_SCREENSHOT_DIR",
                                  Path(tempfile.gettempdir()) / "ionm-screenshots"))
EMGDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet_emgdb"
FS = 10_000.0


@pytest.fixture(scope="module")
def app():
    return ensure_app()


@pytest.fixture
def lab(app, qtbot):
    """A 1600×1000 lab window; closed (worker threads joined) and deleted afterwards."""
    window = LabWindow()
    qtbot.addWidget(window)
    window.resize(1600, 1000)
    window.show()
    yield window
    window.close()
    assert not window.busy


def _wait_idle(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.busy and not panel.status.full_text.endswith("…"),
                    timeout=20000)


def _shot(window: LabWindow, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / name))


def test_needle_recording_shows_the_muap_commands_numbers(lab, qtbot, tmp_path) -> None:
    case = simulate_pool("myopathic", seed=11, fs_hz=FS)
    edf = tmp_path / "ta.edf"
    write_edf(edf, FS, ["L5 TibAnt"], case.data_uv[:, None])
    out = tmp_path / "cmd.json"
    assert main(["muap", str(edf), "--json", str(out), "--pdf", str(tmp_path / "cmd.pdf")]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))

    panel = lab.needle
    lab.open_file(edf)
    _wait_idle(qtbot, panel)
    assert not panel.status.error, panel.status.full_text
    assert panel.view is not None
    shown = panel.view.doc
    assert {k: v for k, v in shown.items() if k != "analysis_s"} == \
        {k: v for k, v in doc.items() if k != "analysis_s"}
    t = panel.muap_table
    assert t.rowCount() == len(doc["muaps"]) == doc["summary"]["n_muaps"] > 0
    for r, m in enumerate(doc["muaps"]):
        for c, (_title, key, _lim) in enumerate(MUAP_COLUMNS):
            if key is not None:
                assert t.item(r, c).text() == cell_text(m.get(key)), (r, key)
    assert panel.verdict_label.text() == doc["summary"]["pattern"].upper()
    for reason in doc["summary"]["reasons"][:3]:
        assert reason in panel.reasons_label.toPlainText()
    assert panel.spont_table.rowCount() == len(doc["spontaneous"])
    for r, train in enumerate(doc["spontaneous"]):
        assert panel.spont_table.item(r, len(SPONTANEOUS_COLUMNS) - 1).text() == \
            str(train["grade"])
    assert panel.channel_box.currentText() == "L5 TibAnt"
    assert len(panel.view.discharges) == len(doc["muaps"])
    panel.muap_table.selectRow(2)
    assert panel.selected == 2 and panel.detail_label.text().startswith("MUAP #3:")

    # the exports write the command's files (the JSON equal but for the analysis time)
    panel.export(tmp_path / "gui.json", "json")
    _wait_idle(qtbot, panel)
    exported = json.loads((tmp_path / "gui.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in exported.items() if k != "analysis_s"} == \
        {k: v for k, v in doc.items() if k != "analysis_s"}
    panel.export(tmp_path / "gui.pdf", "pdf")
    _wait_idle(qtbot, panel)
    assert (tmp_path / "gui.pdf").read_bytes()[:5] == b"%PDF-"
    panel.export(tmp_path / "gui.pdf", "pdf")  # exists: refused in one line, file kept
    _wait_idle(qtbot, panel)
    assert panel.status.error and "exists" in panel.status.full_text
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.skipif(not EMGDB.is_dir() or "IONM_SCREENSHOT_DIR" not in os.environ,
                    reason="the docs' screenshot of a real record: set IONM_SCREENSHOT_DIR "
                           "(and have the PhysioNet emgdb)")
def test_real_needle_record_screenshot(lab, qtbot) -> None:
    panel = lab.needle
    lab.open_file(EMGDB / "emg_neuropathy.hea")
    _wait_idle(qtbot, panel)
    assert not panel.status.error, panel.status.full_text
    doc = panel.view.doc
    assert doc["muscle"] == "tibialis_anterior"
    assert panel.muap_table.rowCount() == doc["summary"]["n_muaps"]
    assert panel.verdict_label.text() == doc["summary"]["pattern"].upper()
    assert "wrapped around" in panel.status.toolTip()  # the reader's note is said
    _shot(lab, "lab_muap.png")


def test_ncs_study_shows_the_ncs_commands_numbers_and_flags(lab, qtbot, tmp_path) -> None:
    toml = nerve_sim.write_study(nerve_sim.simulate("entrapped", seed=3),
                                 tmp_path / "hand.ncs.toml")
    out = tmp_path / "cmd.json"
    assert main(["ncs", str(toml), "--json", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))

    panel = lab.ncs
    lab.open_file(toml)
    assert lab.tabs.currentWidget() is panel
    _wait_idle(qtbot, panel)
    assert not panel.status.error, panel.status.full_text
    assert panel.view.doc == doc
    t = panel.table
    for st in doc["studies"]:
        if st["kind"] == "f_wave":
            row = panel.rows[(st["name"], st["site"])]
            assert cell_text(st["min_latency_ms"]) in t.item(row, COL["onset ms"]).text()
            continue
        unit = "mV" if st["kind"] == "motor" else "µV"
        for s in st["sites"]:
            row = panel.rows[(st["name"], s["site"])]
            assert t.item(row, COL["onset ms"]).text() == cell_text(s["onset_latency_ms"])
            assert t.item(row, COL["peak ms"]).text() == cell_text(s["peak_latency_ms"])
            amp = s["amplitude_mv"] if unit == "mV" else s["amplitude_uv"]
            assert t.item(row, COL["amplitude"]).text() == f"{cell_text(amp)} {unit}"
        for seg in st["segments"]:
            label = f"{seg['from']}–{seg['to']}" if seg.get("to") else seg["from"]
            row = panel.segment_rows[(st["name"], label)]
            assert t.item(row, COL["velocity m/s"]).text() == cell_text(seg["velocity_m_s"])
    # the flags: marked in their cells with the reason, listed with their sources
    assert doc["flags"]
    assert panel.flags_table.rowCount() == len(doc["flags"])
    for f in doc["flags"]:
        row = panel.rows.get((f["study"], f["where"]))
        if row is not None and f["measure"] == "distal_latency_ms":
            assert f["reason"] in t.item(row, COL["onset ms"]).toolTip()
    assert [p["pattern"] for p in doc["patterns"]] == ["carpal_tunnel"]
    assert "CARPAL TUNNEL" in panel.pattern_label.text()
    assert len(panel.view.traces) == sum(len(st.get("sites", [st])) for st in doc["studies"])
    _shot(lab, "lab_ncs.png")

    panel.export(tmp_path / "gui.json")
    _wait_idle(qtbot, panel)
    assert (tmp_path / "gui.json").read_bytes() == out.read_bytes()


def test_corrupt_files_are_one_line_in_the_window(lab, qtbot, tmp_path) -> None:
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"not an edf at all" * 10)
    lab.open_file(junk)
    _wait_idle(qtbot, lab.needle)
    text = lab.needle.status.full_text
    assert lab.needle.status.error and "\n" not in text and "junk.edf" in text
    assert "Traceback" not in text and lab.needle.view is None
    assert not lab.needle.json_button.isEnabled()

    bad = tmp_path / "bad.ncs.toml"
    bad.write_text('recording = "nowhere.h5"\n[[study]]\nkind = "motor"\nnerve = "median"\n'
                   'channel = "APB"\nsites = [{ site = "wrist", distance_mm = -3 }]\n')
    lab.open_file(bad)
    _wait_idle(qtbot, lab.ncs)
    text = lab.ncs.status.full_text
    assert lab.ncs.status.error and "\n" not in text and "distance_mm" in text
    truncated = tmp_path / "cut.ncs.toml"
    truncated.write_text('recording = "cut.h5"\n[[study]]\nkind = "motor"\nnerve = "median"\n'
                         'channel = "APB"\nsites = [{ site = "wrist", distance_mm = 70 }]\n')
    (tmp_path / "cut.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    lab.open_file(truncated)
    _wait_idle(qtbot, lab.ncs)
    assert lab.ncs.status.error and "cut.h5" in lab.ncs.status.full_text
