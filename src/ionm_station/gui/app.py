"""Entry point of the monitoring window: ``run_gui(session)``."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from ionm_station.gui import theme
from ionm_station.gui.main_window import MainWindow
from ionm_station.headless import write_report
from ionm_station.recording import CaseMetadata
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


def _drain_events() -> None:
    """Run one pass of a fresh event loop, so the closed window is deleted and nothing of this
    run is left pending for whoever uses the QApplication next (a later window, a test)."""
    loop = QEventLoop()
    QTimer.singleShot(0, loop.quit)
    loop.exec()


def run_gui(session: Session, settings_path: Path | None = None, alarm_window: bool = False,
            json_path: Path | None = None, replace_json: bool = False,
            case: CaseMetadata | None = None, profile_doc: dict[str, Any] | None = None,
            listen: str | None = None) -> int:
    """Open the main window on ``session``, start it, run until the window closes or the
    session's run is finished (its sample limit, ``run --seconds``, reached).

    Whatever the session was given before (a recording started from sample 0, queued screw
    hunts, chain and alarm settings) goes on in the window as it would headless.

    Args:
        session: a :class:`~ionm_station.session.Session` that has not been started.
        settings_path: GUI settings JSON (default in the user config directory).
        alarm_window: also open the surgeon's alarm display (full screen on a second monitor).
        json_path: write the ``run --json`` report here when the run ends.
        replace_json: an existing ``json_path`` may be replaced.
        case: case metadata for recordings started with the record button.
        profile_doc: the hardware profile stored in those recordings.
        listen: play this channel's (label's) free-run EMG from the start (``run --listen``).

    Returns:
        Exit code: 0, or 1 if acquisition ended with an error. Ctrl-C / SIGTERM close the
        window cleanly. The session is always stopped (its recording closed) and the report
        written before returning.
    """
    app = ensure_app()
    window = MainWindow(session, settings_path, case=case, profile_doc=profile_doc)
    if listen is not None:
        window.listen(listen)
    previous = {s: signal.signal(s, lambda *_: window.close())
                for s in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer()  # lets the interpreter run signal handlers while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(SIGNAL_POLL_MS)
    done = QTimer()  # the run's end (``--seconds``) closes the window, as it ends a headless run
    done.timeout.connect(lambda: session.finished and window.close())
    done.start(SIGNAL_POLL_MS)
    window.closed.connect(app.quit)
    try:
        session.start()
        window.show()
        if alarm_window:
            window.toggle_alarm_window()
        app.exec()
    finally:
        wake.stop()
        done.stop()
        session.stop()
        window.closed.disconnect(app.quit)
        window.deleteLater()
        _drain_events()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if json_path is not None:
        write_report(session, json_path, replace_json)
    return 1 if session.status().error else 0
