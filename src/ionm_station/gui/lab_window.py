"""The EMG lab window (``ionm-station lab [FILE]``): quantitative needle EMG and nerve
conduction, a thin shell over the headless cores of ``ionm-station muap`` and ``ncs``.

Two tabs, :class:`~ionm_station.gui.lab_needle.NeedlePanel` and
:class:`~ionm_station.gui.lab_ncs.NcsPanel`. Every analysis and export runs on a worker thread
(:class:`JobRunner`); its result comes back through a Qt signal carrying the request's token,
so a reply to an older request is dropped. A failure is one line in the panel's status line
(an unexpected one also goes, with its traceback, to the station log) — never a dialog or a
traceback. Closing the window waits for the worker threads.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QResizeEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QSizePolicy, QTabWidget, QWidget

from ionm_station.errors import IonmError, shown
from ionm_station.gui import theme

#: The suffix of a nerve conduction study description; anything else opens as a needle file.
NCS_SUFFIX = ".toml"


def one_line(exc: BaseException) -> str:
    """A failure as the command line would print it (one line, unprintable bytes escaped)."""
    if isinstance(exc, OSError) and not isinstance(exc, IonmError):
        text = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    else:
        text = str(exc)
    return shown(" ".join(text.split()))


class JobRunner(QObject):
    """Runs one function at a time per request on a Python thread and signals back.

    Signals:
        finished(token, result): the job of request ``token`` returned ``result``.
        failed(token, message): it raised; ``message`` is one line.

    ``token`` is the newest request's number: a receiver drops replies to older ones.
    """

    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.token = 0
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> int:
        """Run ``fn(*args)`` on a new thread; returns the request's token."""
        self.token += 1
        token = self.token

        def work() -> None:
            try:
                result = fn(*args)
            except (IonmError, OSError) as exc:
                self.failed.emit(token, one_line(exc))
                return
            except Exception as exc:  # noqa: BLE001 (a bug of ours: one line, traceback in the log)
                from ionm_station.logs import default_log_path, log, open_log

                where = open_log(default_log_path())
                log.exception("EMG lab window: %s failed", self.name)
                self.failed.emit(token, f"internal error: {type(exc).__name__}: "
                                        f"{one_line(exc)}"
                                 + (f" (details in {where})" if where else ""))
                return
            self.finished.emit(token, result)

        self._threads = [t for t in self._threads if t.is_alive()]
        thread = threading.Thread(target=work, name=f"lab-{self.name}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return token

    @property
    def busy(self) -> bool:
        """A job is still running."""
        return any(t.is_alive() for t in self._threads)

    def join(self) -> None:
        """Wait for every job started (the window is closing)."""
        for t in self._threads:
            t.join()
        self._threads.clear()


class StatusLine(QLabel):
    """One line of status: elided to its width (whole in the tooltip); errors in red."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.error = False
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.say("")

    def say(self, text: str, error: bool = False, colour: str | None = None) -> None:
        """Show ``text`` (first line only); ``error`` shows it in red."""
        self._text = text.splitlines()[0] if text else ""
        self.error = error
        self.setStyleSheet(f"color: {colour or (theme.ERROR_RED if error else theme.TEXT)};"
                           " padding: 2px 6px;")
        self.setToolTip(self._text)
        self._elide()

    @property
    def full_text(self) -> str:
        return self._text

    def _elide(self) -> None:
        width = max(40, self.width() - 14)
        super().setText(self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideMiddle,
                                                      width))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()


def table_colours() -> tuple[QColor, QColor]:
    """(background, text) of a flagged table cell."""
    return QColor("#7a1d1d"), QColor("#ffffff")


class LabWindow(QMainWindow):
    """The EMG lab window: a Needle EMG tab and a Nerve conduction tab.

    Signals:
        closed: the window has closed (its worker threads joined).
    """

    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        from ionm_station.gui.lab_ncs import NcsPanel
        from ionm_station.gui.lab_needle import NeedlePanel

        super().__init__(parent)
        theme.configure_pyqtgraph()
        self.setWindowTitle("IONM Station — EMG lab (research and education use only; not for "
                            "clinical decisions)")
        self.tabs = QTabWidget()
        self.needle = NeedlePanel()
        self.ncs = NcsPanel()
        self.tabs.addTab(self.needle, "Needle EMG")
        self.tabs.addTab(self.ncs, "Nerve conduction")
        self.setCentralWidget(self.tabs)
        self.resize(1600, 1000)

    def open_file(self, path: str | Path, channel: str | None = None,
                  muscle: str | None = None) -> None:
        """Open a needle recording, or (``.toml``) a nerve conduction study, in its tab."""
        path = Path(path)
        if path.suffix.lower() == NCS_SUFFIX:
            self.tabs.setCurrentWidget(self.ncs)
            self.ncs.open_study(path)
        else:
            self.tabs.setCurrentWidget(self.needle)
            self.needle.open_file(path, channel, muscle)

    @property
    def busy(self) -> bool:
        return self.needle.busy or self.ncs.busy

    def closeEvent(self, event: QCloseEvent) -> None:
        self.needle.shutdown()
        self.ncs.shutdown()
        super().closeEvent(event)
        self.closed.emit()


def run_lab(path: Path | None = None, channel: str | None = None,
            muscle: str | None = None) -> int:
    """Open the EMG lab window (with ``path`` opened, if given) and run until it is closed.
    Ctrl-C / SIGTERM close it. Returns 0."""
    from ionm_station.gui.app import _drain_events, ensure_app

    app = ensure_app()
    window = LabWindow()
    previous = {s: signal.signal(s, lambda *_: window.close())
                for s in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer()  # lets the interpreter run signal handlers while Qt waits
    wake.timeout.connect(lambda: None)
    wake.start(200)
    loop = QEventLoop()
    window.closed.connect(loop.quit)
    try:
        window.show()
        if path is not None:
            window.open_file(path, channel, muscle)
        loop.exec()
    finally:
        wake.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        window.deleteLater()
        _drain_events()
    del app
    return 0


if __name__ == "__main__":  # pragma: no cover (manual use)
    sys.exit(run_lab(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
