"""What the two tabs of the EMG lab window share (:mod:`.lab_needle`, :mod:`.lab_ncs`): how a
JSON value is shown in a table, the read-only tables, and :class:`LabPanel` — a file opened,
analysed on a worker thread, the newest result shown, exports written on another thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLayout,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ionm_station.gui import theme
from ionm_station.gui.lab_window import JobRunner, StatusLine


def cell_text(value: Any) -> str:
    """How a JSON value is shown in a table: the number as the document has it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("_", " ")


def lab_table(headers: list[str]) -> QTableWidget:
    """A read-only table, whole rows selected one at a time, columns fitted to their text."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setDefaultSectionSize(22)
    return table


def table_item(value: Any) -> QTableWidgetItem:
    """A cell showing ``value`` (:func:`cell_text`), holding it as its data; numbers right."""
    item = QTableWidgetItem(cell_text(value))
    item.setData(Qt.ItemDataRole.UserRole, value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def split(orientation: Qt.Orientation, widgets: list[QWidget], sizes: list[int]) -> QSplitter:
    """``widgets`` side by side (``Qt.Orientation.Horizontal``) or stacked, sized ``sizes``."""
    splitter = QSplitter(orientation)
    for w in widgets:
        splitter.addWidget(w)
    splitter.setSizes(sizes)
    return splitter


class LabPanel(QWidget):
    """A tab of the EMG lab window. ``path`` is the file open, ``view`` the last result shown
    (None before the first); analyses run on ``runner`` (named ``name``), exports on
    ``exports``; ``status`` is the tab's status line.

    A subclass builds its widgets, lays them out with :meth:`_file_bar` and :meth:`_lay_out`,
    and defines ``_set_enabled()`` and ``_show(view)`` (a result of the newest request)."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.view: Any = None
        self.status = StatusLine()
        self.runner = JobRunner(name, self)
        self.runner.finished.connect(self._done)
        self.runner.failed.connect(self._failed)
        self.exports = JobRunner(f"{name}-export", self)
        self.exports.finished.connect(lambda _t, text: self.status.say(text))
        self.exports.failed.connect(lambda _t, text: self.status.say(text, error=True))

    # --- to define in a subclass ---------------------------------------------------------

    def _set_enabled(self) -> None:
        raise NotImplementedError

    def _show(self, view: Any) -> None:
        raise NotImplementedError

    def _choose_file(self) -> None:
        raise NotImplementedError

    # --- layout -------------------------------------------------------------------------

    def _file_bar(self, open_text: str, no_file_text: str) -> QHBoxLayout:
        """The top bar begun: ``open_button`` (calls ``_choose_file``) and ``file_label``,
        then the stretch; the subclass adds its own controls at the right."""
        bar = QHBoxLayout()
        self.open_button = QPushButton(open_text)
        self.open_button.clicked.connect(self._choose_file)
        self.file_label = QLabel(no_file_text)
        self.file_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        bar.addWidget(self.open_button)
        bar.addWidget(self.file_label)
        bar.addStretch(1)
        return bar

    def _lay_out(self, bar: QLayout, left: QWidget, right: QWidget, sizes: list[int]) -> None:
        """The tab: ``bar``, the status line, then ``left`` and ``right`` side by side."""
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.status)
        layout.addWidget(split(Qt.Orientation.Horizontal, [left, right], sizes), 1)
        self._set_enabled()

    # --- actions ------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.runner.busy or self.exports.busy

    def _ask_open(self, title: str, filters: str) -> Path | None:
        """The file the user chose in an open dialog (None: cancelled)."""
        name, _ = QFileDialog.getOpenFileName(
            self, title, str(self.path.parent if self.path else Path.cwd()), filters)
        return Path(name) if name else None

    def _set_path(self, path: Path) -> None:
        self.path = Path(path)
        self.file_label.setText(self.path.name)
        self.file_label.setToolTip(str(self.path))

    def _start(self, message: str, job: Callable[..., Any], *args: Any) -> None:
        """Run ``job(*args)`` on the worker thread, saying ``message`` until it returns."""
        self.runner.submit(job, *args)
        self.status.say(message, colour=theme.AMBER)
        self._set_enabled()

    def _failed(self, token: int, text: str) -> None:
        if token != self.runner.token:
            return
        self.status.say(text, error=True)
        self._set_enabled()

    def _done(self, token: int, view: Any) -> None:
        if token != self.runner.token:
            return
        self.view = view
        self._show(view)
        self._set_enabled()

    def _write(self, path: Path, work: Callable[[], str]) -> int:
        """Run the export ``work`` (it returns the line to say) on the export thread; returns
        the request's token."""
        self.status.say(f"Writing {path.name}…", colour=theme.AMBER)
        return self.exports.submit(work)

    def shutdown(self) -> None:
        """Wait for the worker threads (the window is closing)."""
        self.runner.join()
        self.exports.join()
