"""The window's case documentation: Events dock (entries, filters, double-click to review or
seek, baseline button, "Surgeon informed" preset, case report button) and Trends dock.
Screenshots of both docks go to $IONM_SCREENSHOT_DIR (``docs/screenshots`` refreshes the docs)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import pytest  # noqa: E402
import pytestqt  # noqa: E402,F401  (pytest-qt is a test dependency: fail loudly if missing)
from PySide6.QtCore import Qt  # noqa: E402

from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.case_log_view import ALL, report_path  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.recording import CaseMetadata  # noqa: E402
from ionm_station.session import Session  # noqa: E402
from ionm_station.sources.replay import ReplaySource, open_media  # noqa: E402
from support.gui import SounderStandIn, a_train, detect, make_session, run_to  # noqa: E402

CASE = CaseMetadata(patient_id="P-1", procedure="L4-S1 PLIF", operator="J. Roe")
SCREENSHOTS = Path(os.environ.get("IONM_SCREENSHOT_DIR",
                                  Path(tempfile.gettempdir()) / "ionm-screenshots"))


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    return ensure_app()


def window(qtbot, session: Session, folder: Path) -> MainWindow:  # noqa: ANN001
    w = MainWindow(session, folder / "gui.json", sounder=SounderStandIn(),
                   recordings_dir=folder / "rec", case=CASE)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    return w


def test_events_dock_lists_acknowledges_by_operator_and_filters(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    session = make_session(scenario="quiet")
    w = window(qtbot, session, tmp_path)
    session.start()
    try:
        log = w.case_log
        w.events_dock.raise_()
        qtbot.waitUntil(lambda: session.clean.published > 2 * 2000, timeout=10000)
        log.baseline_button.click()
        qtbot.waitUntil(lambda: sum(e.kind == "baseline" for e in log.entries) == 12,
                        timeout=15000)
        detect(session, session.clean.published / 2000, [a_train(session, "L5-L", 1.0, 0.8)])
        qtbot.waitUntil(lambda: any(e.kind == "alarm" for e in log.entries), timeout=10000)
        qtbot.keyClick(w, Qt.Key.Key_A)
        qtbot.keyClick(w, Qt.Key.Key_F9)  # "Surgeon informed:" waits for its free text
        edit = w.controls.marker_edit
        assert edit.text() == "Surgeon informed: " and (edit.hasFocus() or w.focusWidget() is edit)
        qtbot.keyClicks(edit, "L5 train, retractor released")
        qtbot.keyClick(edit, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: any(e.kind == "marker" for e in log.entries), timeout=10000)
        qtbot.waitUntil(lambda: any("acknowledged" in e.text for e in log.entries), timeout=10000)
        texts = [e.text for e in log.shown]
        assert any(t.startswith("alarm raised") for t in texts)
        assert any(t.startswith("acknowledged (") and t.endswith(") by J. Roe") for t in texts)
        assert "Surgeon informed: L5 train, retractor released" in texts
        assert log.table.rowCount() == len(log.shown)
        log.kind_box.setCurrentText("marker")
        assert {e.kind for e in log.shown} == {"marker"} and log.table.rowCount() == 1
        log.kind_box.setCurrentText(ALL)
        log.root_box.setCurrentText("S1-R")
        assert all(not e.tiles or e.tiles == ("S1-R",) for e in log.shown)
        assert not any(e.kind == "alarm" and e.tiles == ("L5-L",) for e in log.shown)
        log.root_box.setCurrentText(ALL)
        # double-click: the live traces scroll back to it, "Back to live" returns
        qtbot.waitUntil(lambda: w.traces.max_review_s() > 3.0, timeout=15000)
        row = next(i for i, e in enumerate(log.shown) if e.kind == "marker")
        log.table.cellDoubleClicked.emit(row, 0)
        assert w.traces.review_s > 0 and "Review" in w.status.currentMessage()
        log.live_button.click()
        assert w.traces.review_s == 0.0
        # no closed recording yet: the report button says what to do
        log.report_button.click()
        assert "record the case first" in w.status.currentMessage()
    finally:
        w.close()
        session.stop()


def test_report_button_and_seek_in_a_replay(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    recording = tmp_path / "case.h5"
    live = make_session(seconds=30.0, rate_hz=2000.0, realtime=False, scenario="lumbar_demo")
    live.start_recording(recording, dataclasses.replace(CASE, start_time="2025-03-01T08:15:00"))
    live.add_marker("incision", 2 * 2000)
    live.start()
    assert live.wait_until(30 * 2000, 120)
    live.stop()
    session = Session(ReplaySource(open_media(recording), speed=1.0), live.montage)
    w = window(qtbot, session, tmp_path)
    session.start()
    try:
        log = w.case_log
        qtbot.waitUntil(lambda: any(e.kind == "cautery" for e in log.entries)
                        or session.raw.published > 25 * 2000, timeout=30000)
        session.replay.pause()
        marker = next(e for e in log.entries if e.kind == "marker")
        row = log.shown.index(marker)
        log.table.cellDoubleClicked.emit(row, 0)
        assert session.replay.position == 0  # 2 s before the marker at 2 s
        log.report_button.click()
        qtbot.waitUntil(lambda: not log.report_running and "Report" in w.status.currentMessage(),
                        timeout=120000)
        out = tmp_path / "case-report.pdf"
        assert out.is_file() and out.read_bytes().startswith(b"%PDF")
        assert str(out) in w.status.currentMessage()
        assert report_path(recording) == tmp_path / "case-report-2.pdf"  # never replaced
    finally:
        w.close()
        session.stop()


def test_trends_dock_draws_the_case(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    session = make_session(seconds=70.0, rate_hz=2000.0, realtime=False, scenario="lumbar_demo")
    session.start()
    assert session.wait_until(70 * 2000, 120)
    session.stop()
    w = window(qtbot, session, tmp_path)
    try:
        trends = w.trends
        trends.tabs.setCurrentIndex(0)
        trends.refresh(force=True)
        image = trends.train.image.image
        rows = image if pg.getConfigOption("imageAxisOrder") == "row-major" else image.T
        assert rows.shape == (12, 2)  # tiles × minutes
        assert rows[session.montage.tile_keys().index("L5-L"), 0] > 2.0  # the 40 s A-train
        trends.tabs.setCurrentIndex(2)
        curves = trends.noise.getPlotItem().listDataItems()
        assert len(curves) == 16
        y = curves[0].getData()[1]
        assert np.isfinite(y).sum() >= 1  # a periodic check at least
        trends.tabs.setCurrentIndex(3)
        assert len(trends.tof.getPlotItem().listDataItems()) == 0  # no TOF before 95 s
    finally:
        w.close()


def test_docks_screenshots(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    """The lumbar demo at 70 s (10 kHz) with a baseline and the surgeon informed after the
    L5-L A-train: the Events dock (left) and the Trends dock's train time."""
    session = make_session(rate_hz=10000.0, realtime=False)
    fs = session.info.sample_rate_hz
    session.baseline()
    session.add_marker("Surgeon informed: L5 A-train, retractor released", int(44 * fs))
    run_to(session, 70.0)
    try:
        w = window(qtbot, session, tmp_path)
        w.resizeDocks([w.events_dock], [620], Qt.Orientation.Horizontal)
        w.events_dock.raise_()
        w.case_log.refresh()
        qtbot.wait(300)
        w.refresh_tiles()
        w.refresh_status()
        for tile in w.alarm_panel.tiles.values():
            tile.set_flash_phase(False)
        kinds = {e.kind for e in w.case_log.shown}
        assert {"baseline", "cautery", "alarm", "marker", "lead_off", "quality"} <= kinds
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert w.grab().save(str(SCREENSHOTS / "events_dock.png"))
        w.trends_dock.raise_()
        w.trends.tabs.setCurrentIndex(0)
        w.trends.refresh(force=True)
        qtbot.wait(200)
        assert w.grab().save(str(SCREENSHOTS / "trends_dock.png"))
        w.close()
    finally:
        session.stop()
