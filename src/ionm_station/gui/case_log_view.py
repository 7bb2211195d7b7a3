"""The Events dock: the case's event log as it happens, the baseline check and the case report.

Entries are :mod:`ionm_station.caselog`'s (alarms raised, escalated, acknowledged and by whom,
silenced; technical alarms; faults; markers incl. "Surgeon informed: …"; cautery; lead-off;
settings; screws; TOF; baselines; signal-quality changes), fed from the session's event log on
a timer (only the new events each time). Filters: kind and root / root-side (entries for the
whole station stay listed under a root filter).

A double-click goes to the entry: live, the trace view scrolls back to it (its ring holds the
last 30 s; "Back to live" returns); in a replay, :meth:`ReplaySource.seek` plays from just
before it. The buttons submit :meth:`Session.baseline` and write the case report of the
recording (the one just closed, or the one being replayed) beside it, on a worker thread; the
window is told when it is done. Nothing here blocks the GUI thread or opens a dialog.
"""

from __future__ import annotations

import bisect
import threading
from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ionm_station.caselog import KINDS, CaseLog, LogEntry, clock, matches_root
from ionm_station.errors import IonmError
from ionm_station.gui.traces import TraceView
from ionm_station.session import Session

#: Refresh period of the list (ms).
REFRESH_MS = 500
#: A seek in a replay lands this long before the entry (s), so it is seen coming.
SEEK_BEFORE_S = 2.0
#: Colours of the kind column.
KIND_COLOURS = {"alarm": "#ff5a5f", "technical": "#e040fb", "fault": "#e040fb",
                "not_monitored": "#e040fb", "gap": "#e040fb", "marker": "#b9f6ca",
                "cautery": "#8fb4ff", "lead_off": "#d98cff", "screw": "#ffd166",
                "tof": "#ffd166", "baseline": "#7fdbca", "quality": "#ffb02e"}
ALL = "all"


def report_path(recording: Path) -> Path:
    """Where the window writes a recording's report: ``NAME-report.pdf`` beside it, or
    ``NAME-report-2.pdf`` … when that exists (a report is never replaced)."""
    path = recording.with_name(f"{recording.stem}-report.pdf")
    n = 2
    while path.exists():
        path = recording.with_name(f"{recording.stem}-report-{n}.pdf")
        n += 1
    return path


class CaseLogView(QWidget):
    """The Events dock's contents.

    Args:
        session: events are read from it, the baseline submitted through it.
        traces: the trace view scrolled back on a double-click (live).

    Signals:
        message(str): for the status bar.
        report_done(str): the report was written (its path) or failed (the reason).
    """

    message = Signal(str)
    report_done = Signal(str)

    def __init__(self, session: Session, traces: TraceView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.traces = traces
        self._fs = float(session.info.sample_rate_hz)
        self._log = CaseLog(session.montage, self._fs)
        self._cursor = 0
        self.entries: list[LogEntry] = []  # every entry, in time order
        self._starts: list[int] = []
        self._report: threading.Thread | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        buttons = QHBoxLayout()
        self.baseline_button = QPushButton("Baseline check")
        self.baseline_button.setToolTip("Check every channel's signal quality (noise, mains, ECG, "
                                        "lead-off, flat) and take each root's baseline now")
        self.baseline_button.clicked.connect(self.take_baseline)
        self.report_button = QPushButton("Case report")
        self.report_button.setToolTip("Write the PDF case report of the recording (closed, or "
                                      "replayed) beside it")
        self.report_button.clicked.connect(self.write_report)
        self.live_button = QPushButton("Back to live")
        self.live_button.clicked.connect(lambda: self.traces.set_review(0.0))
        for b in (self.baseline_button, self.report_button, self.live_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        filters = QHBoxLayout()
        self.kind_box = QComboBox()
        self.kind_box.addItems([ALL, *KINDS])
        self.root_box = QComboBox()
        roots = list(dict.fromkeys(c.root for c in session.montage.channels if c.root))
        self.root_box.addItems([ALL, *roots, *session.montage.tile_keys()])
        for box in (self.kind_box, self.root_box):
            box.currentIndexChanged.connect(self._refill)
            filters.addWidget(box)
        layout.addLayout(filters)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["time", "kind", "root-side", "what happened"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for col in range(3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.go_to(self.shown[row]))
        layout.addWidget(self.table)
        self.shown: list[LogEntry] = []
        self.report_done.connect(self._report_finished)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    # --- reading ---

    def refresh(self) -> None:
        """Take the event log's new events; show the new entries that pass the filters."""
        new, self._cursor = self.session.events.since(self._cursor)
        added = sorted(self._log.feed(new), key=lambda e: e.index)
        if not added:
            return
        if not self._starts or added[0].index >= self._starts[-1]:
            self.entries += added
            self._starts += [e.index for e in added]
            self._append([e for e in added if self._passes(e)])
            return
        for e in added:  # an event logged late (a train is logged when it ends): in order
            i = bisect.bisect_right(self._starts, e.index)
            self.entries.insert(i, e)
            self._starts.insert(i, e.index)
        self._refill()

    def _passes(self, e: LogEntry) -> bool:
        kind, root = self.kind_box.currentText(), self.root_box.currentText()
        return (kind == ALL or e.kind == kind) and (root == ALL or matches_root(e, root))

    def _refill(self) -> None:
        self.table.setRowCount(0)
        self.shown = []
        self._append([e for e in self.entries if self._passes(e)])

    def _append(self, entries: list[LogEntry]) -> None:
        at_end = self.table.verticalScrollBar().value() >= self.table.verticalScrollBar().maximum()
        for e in entries:
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = (clock(e.index / self._fs), e.kind, ", ".join(e.tiles) or "–", e.text)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if col == 1:
                    item.setForeground(QColor(KIND_COLOURS.get(e.kind, "#d8dee9")))
                self.table.setItem(row, col, item)
            self.shown.append(e)
        if entries and at_end:
            self.table.scrollToBottom()

    # --- acting ---

    def go_to(self, entry: LogEntry) -> None:
        """Show ``entry``'s moment: seek a replay to just before it, or scroll the live traces
        back so it is in the middle of the screen."""
        replay = self.session.replay
        if replay is not None:
            at = replay.recording_index(entry.index) - int(SEEK_BEFORE_S * self._fs)
            replay.seek(at)
            self.message.emit(f"Replay from {clock(max(0, at) / self._fs)}: {entry.text}")
            return
        newest = self.session.clean.published
        back = (newest - entry.index) / self._fs - self.traces.timebase_s / 2
        if back > self.traces.max_review_s():
            self.message.emit(f"{clock(entry.index / self._fs)} is older than the "
                              f"{self.traces.max_review_s():.0f} s the traces hold: replay the "
                              "recording to see it")
            return
        shown = self.traces.set_review(max(back, 0.0))
        self.message.emit(f"Review: −{shown:.1f} s ({entry.text}); 'Back to live' returns")

    def take_baseline(self) -> None:
        """Submit the baseline check; the results come back as entries."""
        try:
            self.session.baseline()
        except ValueError as exc:
            self.message.emit(f"Baseline not taken: {exc}")
            return
        self.message.emit("Baseline check: measuring the next seconds of signal…")

    def recording(self) -> Path | None:
        """The recording a report can be written of: the one replayed, or the session's
        recording once it is closed (None: none, or it is still being written)."""
        replay = self.session.replay
        if replay is not None:
            path = Path(replay.media.path)
            return path if path.suffix.lower() in (".h5", ".hdf5") else None
        rec = self.session.recording_status()
        if rec is None or rec.state not in ("stopped", "failed"):
            return None
        return Path(rec.path)

    def write_report(self) -> None:
        """Write the case report beside the recording on a worker thread."""
        if self._report is not None and self._report.is_alive():
            self.message.emit("A report is being written")
            return
        source = self.recording()
        if source is None:
            status = self.session.recording_status()
            why = ("close the recording first (● Record), then press Case report"
                   if status is not None and status.state in ("recording", "low_disk")
                   else "record the case first (● Record)")
            self.message.emit(f"No report: {why}")
            return
        out = report_path(source)
        self.report_button.setEnabled(False)
        self.message.emit(f"Writing the case report of {source.name}…")

        def work() -> None:
            from ionm_station.report import write_report

            try:
                done = write_report(source, out)
            except (IonmError, OSError) as exc:
                self.report_done.emit(f"Report not written: {exc}")
                return
            self.report_done.emit(f"Report written: {out} ({done.pages} pages)")

        self._report = threading.Thread(target=work, name="case-report", daemon=True)
        self._report.start()

    def _report_finished(self, text: str) -> None:
        self.report_button.setEnabled(True)
        self.message.emit(text)

    def stop(self) -> None:
        """Stop the refresh timer (the window is closing)."""
        self._timer.stop()

    @property
    def report_running(self) -> bool:
        """A report is being written."""
        return self._report is not None and self._report.is_alive()
