"""Entry point of the monitoring window: ``run_gui(session)``."""

from __future__ import annotations

import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ionm_station.errors import IonmError
from ionm_station.gui import theme
from ionm_station.gui.main_window import MainWindow

#: How often Python gets the chance to run signal handlers (Ctrl-C) inside the Qt loop (ms).
SIGNAL_POLL_MS = 200


def ensure_app() -> QApplication:
    """The QApplication, with the dark theme (also applied to one created elsewhere, e.g. by
    pytest-qt, so screenshots show what the station shows)."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setApplicationName("IONM Station")
        app.setOrganizationName("ionm-station")
    assert isinstance(app, QApplication)
    if app.property("ionm_theme") is not True:
        theme.apply_dark_palette(app)
        app.setProperty("ionm_theme", True)
    return app


#: Where the record button puts new recordings.
RECORDINGS_DIR = Path.home() / "ionm-recordings"


def _toggle_recording(window: MainWindow, session: Any, on: bool) -> None:
    """Start a new recording file (named by date and time) or close the current one; a failure
    shows in the status bar, never in a modal dialog."""
    if not on:
        session.stop_recording()
        window.statusBar().showMessage("Recording closed", 5000)
        return
    path = RECORDINGS_DIR / f"case-{datetime.now():%Y%m%d-%H%M%S}.h5"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        session.start_recording(path)
        window.statusBar().showMessage(f"Recording to {path}", 5000)
    except (IonmError, OSError) as exc:
        window.record_button.setChecked(False)
        window.statusBar().showMessage(f"Recording not started: {exc}", 10000)


def run_gui(session: Any, settings_path: Path | None = None, alarm_window: bool = False) -> int:
    """Open the main window on ``session``, start it, run until the window closes.

    Args:
        session: a :class:`~ionm_station.session.Session` that has not been started.
        settings_path: GUI settings JSON (default in the user config directory).
        alarm_window: also open the surgeon's alarm display (full screen on a second monitor).

    Returns:
        Exit code: 0, or 1 if acquisition ended with an error. Ctrl-C / SIGTERM close the
        window cleanly. The session is always stopped before returning.
    """
    app = ensure_app()
    window = MainWindow(session, settings_path)
    window.record_toggled.connect(lambda on: _toggle_recording(window, session, on))
    window.threshold_changed.connect(session.alarms.set_threshold)
    media = getattr(session.source, "media", None)
    if media is not None and getattr(window, "replay_bar", None) is not None:
        fs = media.info.sample_rate_hz
        window.replay_bar.set_events([(e.start / fs, e.kind) for e in media.events])
    previous = {s: signal.signal(s, lambda *_: window.close())
                for s in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer()  # lets the interpreter run signal handlers while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(SIGNAL_POLL_MS)
    try:
        session.start()
        window.show()
        if alarm_window:
            window.toggle_alarm_window()
        app.exec()
    finally:
        wake.stop()
        session.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 1 if session.status().error else 0
