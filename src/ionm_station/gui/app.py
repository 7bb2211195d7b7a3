"""Entry point of the monitoring window: ``run_gui(session)``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from ionm_station.gui import theme
from ionm_station.gui.main_window import MainWindow
from ionm_station.session import Session

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


def run_gui(session: Session, settings_path: Path | None = None, alarm_window: bool = False) -> int:
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
