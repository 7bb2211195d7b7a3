"""Screenshots of the window for the docs (and for looking at): PNGs go to
$IONM_SCREENSHOT_DIR (default: a temp folder); ``IONM_SCREENSHOT_DIR=docs/screenshots``
refreshes the docs. Every state shown is reached through the session (real detection, real
faults); only the surgeon's panel mixes states to show the palette."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from ionm_station.gui.alarm_panel import AlarmWindow  # noqa: E402
from ionm_station.gui.app import ensure_app  # noqa: E402
from ionm_station.gui.main_window import MainWindow  # noqa: E402
from ionm_station.gui.replay_bar import ReplayBar  # noqa: E402
from ionm_station.session import Session  # noqa: E402
from support.gui import Fault, hunt_session, make_session, run_to  # noqa: E402

SCREENSHOTS = Path(os.environ.get("IONM_SCREENSHOT_DIR",
                                  Path(tempfile.gettempdir()) / "ionm-screenshots"))


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return ensure_app()


def demo_at(seconds: float) -> Session:
    """The lumbar demo at 10 kHz (not real time), monitored up to ``seconds`` and held there,
    with a marker at 36.5 s."""
    session = make_session(rate_hz=10000.0, realtime=False)
    session.add_marker("Screw L5 left", int(36.5 * session.info.sample_rate_hz))
    run_to(session, seconds)
    return session


def shoot(app, qtbot, session: Session, name: str, tmp_path: Path,  # noqa: ANN001
          scroll: bool = False) -> MainWindow:
    """The main window (1600×1000) over ``session`` saved as ``name``; returned open."""
    w = MainWindow(session, tmp_path / f"{name}.json")
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.controls.mode_box.setCurrentIndex(1 if scroll else 0)
    w.show()
    qtbot.wait(300)
    w.refresh_tiles()
    w.refresh_status()
    w.traces.update_frame()
    qtbot.wait(200)
    for tile in w.alarm_panel.tiles.values():
        tile.set_flash_phase(False)  # a latched alarm in the bright half of its flash
    assert w.grab().save(str(SCREENSHOTS / name))
    return w


def test_screenshot_live_and_surgeon_panel(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    session = demo_at(43.0)
    try:
        w = shoot(app, qtbot, session, "live_view.png", tmp_path)
        assert w.state.monitoring and not w.traces.raw_mode
        tiles = list(w.state.tiles)
        w.close()
    finally:
        session.stop()
    surgeon = AlarmWindow(session.montage, "lumbar · 12 tiles")
    qtbot.addWidget(surgeon)
    surgeon.resize(1280, 800)
    surgeon.panel.update_tiles(tiles)
    by_key = {t.key: t for t in tiles}
    surgeon.panel.update_tiles([  # the palette: states the demo shows at other moments
        dataclasses.replace(by_key["L4-R"], state="no_signal", reason="lead-off / saturated"),
        dataclasses.replace(by_key["S2-L"], state="blanked", reason="cautery: detection blanked"),
    ])
    surgeon.show()
    qtbot.wait(200)
    for tile in surgeon.panel.tiles.values():
        tile.set_flash_phase(False)
    assert surgeon.grab().save(str(SCREENSHOTS / "alarm_panel.png"))
    surgeon.close()


def test_screenshot_cautery_in_scroll_mode(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    session = demo_at(24.5)
    try:
        shoot(app, qtbot, session, "live_cautery_scroll.png", tmp_path, scroll=True).close()
    finally:
        session.stop()


def test_screenshot_not_monitoring(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    """Processing that keeps failing is given up: NOT MONITORING on every tile, raw traces
    under the banner."""
    session = make_session(scenario="quiet", rate_hz=10000.0)
    real_restart = session.processing.on_restart

    def poisoned_restart() -> None:
        real_restart()
        Fault(session.processing.chain, "process", times=10**9,
              error=IndexError("rows -6..1574 outside 0..30000"))

    session.start()
    try:
        qtbot.waitUntil(lambda: session.state().monitoring, timeout=5000)
        qtbot.wait(4000)  # a picture of clean signal first
        session.processing.on_restart = poisoned_restart  # type: ignore[method-assign]
        Fault(session.processing.chain, "process", times=10**9,
              error=IndexError("rows -6..1574 outside 0..30000"))
        qtbot.waitUntil(lambda: session.processing.health().state == "failed", timeout=8000)
        w = MainWindow(session, tmp_path / "nm.json")
        qtbot.addWidget(w)
        w.resize(1600, 1000)
        w.show()
        qtbot.wait(2500)  # raw signal moving under the banner
        assert w.traces.raw_mode and w.traces.banner.isVisible()
        assert all(t.state == "not_monitoring" for t in w.state.tiles)
        assert w.grab().save(str(SCREENSHOTS / "not_monitoring.png"))
        w.close()
    finally:
        session.stop()


def test_screenshot_signal_lost_panel(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    session = make_session(scenario="quiet")
    session.start()
    try:
        qtbot.waitUntil(lambda: session.state().monitoring, timeout=5000)
        Fault(session.source, "read", times=10**9, error=OSError("amplifier unplugged"))
        qtbot.waitUntil(lambda: all(t.state == "signal_lost" for t in session.state().tiles),
                        timeout=2000)
        surgeon = AlarmWindow(session.montage, "lumbar · 12 tiles")
        qtbot.addWidget(surgeon)
        surgeon.resize(1280, 800)
        surgeon.panel.update_tiles(session.state().tiles)
        surgeon.show()
        qtbot.wait(200)
        assert surgeon.grab().save(str(SCREENSHOTS / "signal_lost_panel.png"))
        surgeon.close()
    finally:
        session.stop()


def test_screenshot_replay_bar(app, qtbot) -> None:  # noqa: ANN001
    bar = ReplayBar()
    qtbot.addWidget(bar)
    bar.resize(1600, 46)
    bar.set_position(2592.0, 7260.0)
    bar.set_events([(t, k) for t, k in ((380, "artifact"), (900, "emg_event"), (1510, "alarm"),
                                        (2200, "marker"), (2590, "emg_event"), (3100, "alarm"),
                                        (4400, "artifact"), (5100, "marker"))])
    bar.set_playing(False)
    bar.show()
    qtbot.wait(100)
    assert bar.grab().save(str(SCREENSHOTS / "replay_bar.png"))


def test_screenshot_triggered(app, qtbot, tmp_path) -> None:  # noqa: ANN001
    """The Triggered EMG dock after two threshold hunts and two trains-of-four."""
    session = hunt_session(75.0, rate_hz=10000.0, hunts=("L5-R", "S1-L"), keep_running=True)
    try:
        trig = session.triggered_data
        assert len(trig.screw_log.screws) == 2 and trig.tof_results
        w = MainWindow(session, tmp_path / "gui.json")
        qtbot.addWidget(w)
        w.resize(1600, 1000)
        w.triggered_view.target_box.setCurrentText("L5-R")
        w.show()
        w.triggered_dock.raise_()
        w.resizeDocks([w.triggered_dock], [560], Qt.Orientation.Horizontal)
        qtbot.wait(300)
        w.refresh_tiles()
        w.traces.update_frame()
        qtbot.wait(200)
        assert w.triggered_dock.grab().save(str(SCREENSHOTS / "triggered_dock.png"))
        assert w.grab().save(str(SCREENSHOTS / "triggered_window.png"))
        w.close()
    finally:
        session.stop()
