"""TriggeredView: triggered EMG (pedicle-screw testing, train-of-four) in one dock.

Shows, for the selected root-side target:

* a stimulus-locked stack of the latest :data:`STACK_DEPTH` responses (newest on top), each
  labelled ``current ✓/✗ peak-to-peak``, −10…+60 ms around the stimulus; responses bright,
  non-responses dim (the channel of the target with the largest response is drawn);
* the screw log (level, side, threshold, stimuli, band coloured red / amber / green, note);
* the latest train-of-four results (count, T4/T1, blockade text in amber);
* controls: automatic threshold hunt, and a single stimulus at a set current. Above
  ``WARN_ABOVE_MA`` the Stimulate button first turns into "Confirm N mA" for
  :data:`CONFIRM_S` seconds: a second press delivers it (no modal dialog).

Everything is read from :attr:`Session.triggered_data <ionm_station.session.Session.triggered_data>`
(written by the processing thread) as list snapshots on a GUI timer; hunts and stimuli go
through :meth:`Session.hunt` and :meth:`Session.stimulate` (queued for the processing thread; a
refusal there shows as ``command_rejected`` in the status bar). Nothing here blocks.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ionm_station.gui import theme
from ionm_station.session import Session
from ionm_station.triggered import cmap
from ionm_station.triggered.cmap import Response
from ionm_station.triggered.controller import WARN_ABOVE_MA
from ionm_station.triggered.screws import ScrewResult
from ionm_station.triggered.tof import TofResult

#: Responses stacked in the view (newest on top).
STACK_DEPTH = 12
#: Time span of the stack (ms, stimulus at 0).
SPAN_MS = (-10.0, 60.0)
#: How long the "Confirm N mA" button stays armed (s).
CONFIRM_S = 4.0
#: Refresh period (ms).
REFRESH_MS = 250
#: Colours: responses bright, non-responses dim; screw-log bands.
RESPONSE_COLOUR = "#7CFC9A"
NO_RESPONSE_COLOUR = "#56606b"
BAND_COLOURS = {"likely breach": ("#b3141c", "#ffffff"), "possible breach": ("#d49a00", "#1a1400"),
                "no breach": ("#17663a", "#e9fff1")}
AMBER = "#ffb02e"


def response_label(r: Response) -> str:
    """``"12.0 mA ✓ 873 µV"`` (✗ when nothing responded)."""
    return f"{r.current_ma:.1f} mA {'✓' if r.any else '✗'} {r.max_uv:.0f} µV"


def threshold_text(threshold_ma: float | None, max_ma: float | None = None) -> str:
    """A screw's threshold (mA) for the log: ``"> 30"`` when nothing responded up to the max."""
    if threshold_ma is None:
        return f"> {max_ma:g}" if max_ma else "none"
    return f"{threshold_ma:.1f}"


class TriggeredView(QWidget):
    """The triggered-EMG dock contents over ``session.triggered_data``.

    Signals:
        message(str): something for the status bar (errors of hunt / stimulate, confirmations).
    """

    message = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        theme.configure_pyqtgraph()
        self.session = session
        self.trig = session.triggered_data
        self._fs = float(session.info.sample_rate_hz)
        self._seen: tuple = ()
        self._armed_ma: float | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(self._build_controls())

        self.plot_widget = pg.PlotWidget()
        self.plot_widget.setFrameShape(pg.QtWidgets.QFrame.Shape.NoFrame)
        self.plot_widget.setMinimumHeight(260)
        p = self.plot = self.plot_widget.getPlotItem()
        p.setMenuEnabled(False)
        p.hideButtons()
        p.setMouseEnabled(False, False)
        p.hideAxis("left")
        p.getViewBox().disableAutoRange()
        p.getViewBox().setDefaultPadding(0.0)
        p.setXRange(*SPAN_MS, padding=0.0)
        p.setYRange(-0.6, STACK_DEPTH - 0.4, padding=0.0)
        axis = p.getAxis("bottom")
        axis.setPen(pg.mkPen(theme.GRID))
        axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
        axis.setLabel("ms after stimulus", color=theme.TEXT_DIM)
        p.getViewBox().addItem(pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen(theme.TEXT_DIM, width=1,
                                                                       style=Qt.PenStyle.DashLine)))
        lo, hi = self.trig.criteria.latency_ms
        window = pg.LinearRegionItem((lo, hi), movable=False,
                                     brush=pg.mkBrush(255, 255, 255, 10),
                                     pen=pg.mkPen(None))
        window.setZValue(-30)
        p.getViewBox().addItem(window)
        self.curves: list[pg.PlotCurveItem] = []
        self.labels: list[pg.TextItem] = []
        for i in range(STACK_DEPTH):
            curve = pg.PlotCurveItem(pen=pg.mkPen(NO_RESPONSE_COLOUR, width=1), antialias=False)
            p.getViewBox().addItem(curve)
            label = pg.TextItem("", color=theme.TEXT, anchor=(1.0, 1.0))
            label.setPos(SPAN_MS[1] - 0.5, STACK_DEPTH - 1 - i + 0.45)
            p.getViewBox().addItem(label)
            self.curves.append(curve)
            self.labels.append(label)
        grid = pg.GridItem(textPen=None)
        grid.setPen(pg.mkPen(theme.GRID, width=1))
        grid.setTickSpacing(x=[10.0], y=[1.0])
        grid.setZValue(-40)
        p.getViewBox().addItem(grid)
        layout.addWidget(self.plot_widget, 3)

        self.screw_table = QTableWidget(0, 6)
        self.screw_table.setHorizontalHeaderLabels(["Level", "Side", "Threshold mA", "Stimuli",
                                                    "Band", "Note"])
        self.screw_table.verticalHeader().hide()
        self.screw_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.screw_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        head = self.screw_table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setStretchLastSection(True)
        self.screw_table.setMinimumHeight(110)
        layout.addWidget(QLabel("<b>Screw log</b>"))
        self.screw_table.setMaximumHeight(190)
        layout.addWidget(self.screw_table, 1)

        self.tof_label = QLabel("TOF: none yet")
        self.tof_label.setWordWrap(True)
        self.tof_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.tof_label)

        self._confirm_timer = QTimer(self)
        self._confirm_timer.setSingleShot(True)
        self._confirm_timer.timeout.connect(self.disarm)
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self.refresh()

    # --- construction -------------------------------------------------------------------------

    def _build_controls(self) -> QGridLayout:
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        self.target_box = QComboBox()
        for key in self.session.montage.root_sides():
            self.target_box.addItem(key)
        self.target_box.setToolTip("Root-side stimulated and shown")
        self.target_box.currentIndexChanged.connect(lambda _: self.refresh(force=True))
        can = self.trig.stimulator is not None
        why = "" if can else "This source cannot stimulate (no stimulator connected)"
        self.hunt_button = QPushButton("Hunt threshold")
        self.hunt_button.setEnabled(can)
        self.hunt_button.setToolTip(why or "Automatic threshold hunt on the selected screw")
        self.hunt_button.clicked.connect(self.hunt)
        self.current_box = QDoubleSpinBox()
        self.current_box.setRange(0.1, 100.0)
        self.current_box.setDecimals(1)
        self.current_box.setSingleStep(0.5)
        self.current_box.setValue(10.0)
        self.current_box.setSuffix(" mA")
        self.current_box.valueChanged.connect(lambda _: self.disarm())
        self.stim_button = QPushButton("Stimulate")
        self.stim_button.setEnabled(can)
        self.stim_button.setToolTip(why or f"One stimulus; above {WARN_ABOVE_MA:g} mA press "
                                           "twice to confirm")
        self.stim_button.clicked.connect(self.stimulate)
        self.busy_label = QLabel("")
        self.busy_label.setStyleSheet(f"color: {AMBER};")
        self.scale_label = QLabel("")
        self.scale_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.scale_label.setWordWrap(True)  # a narrow dock wraps it rather than widening
        grid.addWidget(QLabel("Target"), 0, 0)
        grid.addWidget(self.target_box, 0, 1)
        grid.addWidget(self.hunt_button, 0, 2)
        grid.addWidget(self.busy_label, 0, 3)
        grid.addWidget(QLabel("Current"), 1, 0)
        grid.addWidget(self.current_box, 1, 1)
        grid.addWidget(self.stim_button, 1, 2)
        grid.addWidget(self.scale_label, 1, 3)
        grid.setColumnStretch(3, 1)
        self.stim_button.setMinimumWidth(130)
        return grid

    # --- actions ------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        return self.target_box.currentText()

    def hunt(self) -> None:
        level, _, side = self.target.partition("-")
        try:
            self.session.hunt(level, side)
        except ValueError as exc:
            self.message.emit(f"Hunt not started: {exc}")
            return
        self.message.emit(f"Threshold hunt queued: {self.target}")
        self.refresh(force=True)

    @property
    def armed(self) -> bool:
        return self._armed_ma is not None

    def stimulate(self) -> None:
        """One stimulus at the set current; above the limit the first press only arms."""
        current = float(self.current_box.value())
        confirmed = self._armed_ma == current
        if current > WARN_ABOVE_MA and not confirmed:
            self._armed_ma = current
            self.stim_button.setText(f"Confirm {current:g} mA")
            self.stim_button.setStyleSheet("background: #b3141c; color: white; font-weight: bold;")
            self._confirm_timer.start(int(CONFIRM_S * 1000))
            self.message.emit(f"{current:g} mA is above {WARN_ABOVE_MA:g} mA: press Confirm "
                              f"within {CONFIRM_S:g} s")
            return
        self.disarm()
        try:
            self.session.stimulate(current, self.target, confirmed=confirmed)
        except ValueError as exc:
            self.message.emit(f"Not stimulated: {exc}")
            return
        self.message.emit(f"Stimulus {current:g} mA → {self.target}")

    def disarm(self) -> None:
        """Drop a pending high-current confirmation."""
        self._armed_ma = None
        self._confirm_timer.stop()
        self.stim_button.setText("Stimulate")
        self.stim_button.setStyleSheet("")

    def stop(self) -> None:
        self._timer.stop()
        self._confirm_timer.stop()

    # --- display --------------------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Redraw from snapshots of the controller's lists when anything changed."""
        responses = list(self.trig.responses)
        screws = list(self.trig.screw_log.screws)
        tofs = list(self.trig.tof_results)
        self.busy_label.setText("hunting…" if self.trig.busy else "")
        seen = (len(responses), len(screws), len(tofs), self.target)
        if seen == self._seen and not force:
            return
        self._seen = seen
        self._draw_stack([r for r in responses if r.target == self.target][-STACK_DEPTH:][::-1])
        self._fill_screws(screws)
        self._fill_tof(tofs[-3:])

    def _draw_stack(self, newest_first: list[Response]) -> None:
        waves = []
        for r in newest_first:
            w = r.waveform_uv
            if w is None or not len(w):
                waves.append(None)
                continue
            c = int(np.argmax(r.peak_uv)) if r.peak_uv else 0
            t = (np.arange(len(w)) / self._fs - cmap.PRE_S) * 1e3
            keep = (t >= SPAN_MS[0]) & (t <= SPAN_MS[1])
            waves.append((t[keep], np.asarray(w[keep, min(c, w.shape[1] - 1)], dtype=np.float64)))
        peaks = [np.ptp(y) for y in (w[1] for w in waves if w is not None) if len(y)]
        row_uv = max(100.0, 1.1 * max(peaks, default=0.0))  # p-p µV per row
        self.scale_label.setText(f"{row_uv:.0f} µV / row" if newest_first else
                                 f"no responses on {self.target}")
        for i, (curve, label) in enumerate(zip(self.curves, self.labels)):
            if i >= len(newest_first) or waves[i] is None:
                curve.setData([], [])
                label.setText("")
                continue
            r, (t, y) = newest_first[i], waves[i]
            offset = STACK_DEPTH - 1 - i
            y = np.clip((y - np.median(y)) / row_uv, -0.55, 0.55) + offset
            colour = RESPONSE_COLOUR if r.any else NO_RESPONSE_COLOUR
            curve.setPen(pg.mkPen(colour, width=1))
            curve.setData(t, y)
            label.setText(response_label(r))
            label.setColor(colour if r.any else theme.TEXT_DIM)

    def _fill_screws(self, screws: list[ScrewResult]) -> None:
        max_ma = self.trig.screw_log.max_ma
        self.screw_table.setRowCount(len(screws))
        for row, s in enumerate(screws):
            cells = [s.level, s.side, threshold_text(s.threshold_ma, max_ma), str(s.stimuli),
                     s.band, s.note]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 4:
                    bg, fg = BAND_COLOURS.get(s.band, (theme.PANEL, theme.TEXT))
                    item.setBackground(QColor(bg))
                    item.setForeground(QColor(fg))
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                elif col in (2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.screw_table.setItem(row, col, item)

    def _fill_tof(self, tofs: list[TofResult]) -> None:
        if not tofs:
            self.tof_label.setText(f"<span style='color:{theme.TEXT_DIM}'>TOF: none yet</span>")
            return
        lines = []
        for t in reversed(tofs):
            ratio = "—" if t.ratio is None else f"{t.ratio:.2f}"
            text = f"<b>TOF {t.site}</b>: {t.count}/4 · T4/T1 {ratio}"
            block = t.blockade()
            text += (f" · <span style='color:{AMBER}'>{block}</span>" if block
                     else f" · <span style='color:{RESPONSE_COLOUR}'>no blockade</span>")
            lines.append(text)
        self.tof_label.setText("<br>".join(lines))
