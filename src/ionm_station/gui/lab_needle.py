"""Needle EMG tab of the EMG lab window: open a needle recording, choose channel and muscle,
analyse on a worker thread, show the MUAP overlay, the MUAP table, the verdict with its
reasons and the spontaneous activity; export ``muap``'s JSON and PDF.

Everything shown is read from the ``muap --json`` document (:mod:`.lab_jobs`); the only
arithmetic here is drawing (gains, grid, clipping to a cell) and marking a MUAP's value that
lies beyond the document's own per-MUAP outlier limit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ionm_station.gui import theme
from ionm_station.gui.lab_common import LabPanel, cell_text, lab_table, split, table_item
from ionm_station.gui.lab_jobs import NeedleView, needle_job, write_needle_exports
from ionm_station.gui.lab_window import table_colours

#: Verdict colours (background, text): not the alarm tiles' colours.
VERDICT_COLOURS = {"normal": ("#1f6b45", "#eafff2"), "neurogenic": ("#9a5b00", "#fff4e0"),
                   "myopathic": ("#6b2f8f", "#f6eaff"), "indeterminate": ("#3d4551", "#e8edf3")}
#: Overlay: time shown around each MUAP's alignment (ms) and the gap between cells (ms).
CELL_HALF_MS, CELL_GAP_MS = 15.0, 5.0
#: Vertical gains (µV per cell) the overlay chooses from.
GAINS_UV = (100, 200, 500, 1000, 2000, 5000, 10000, 20000)
AUTO_MUSCLE = "from the channel label"
#: MUAP table: (column title, JSON key, limit key for outliers).
MUAP_COLUMNS = (("#", "id", None), ("amplitude µV", "amplitude_uv", "amplitude_uv"),
                ("duration ms", "duration_ms", "duration_ms"), ("area µV·ms", "area_uvms",
                                                                "area_uvms"),
                ("thickness ms", "thickness_ms", None), ("rise ms", "rise_time_ms", None),
                ("phases", "phases", "phases"), ("turns", "turns", "turns"),
                ("polyphasic", "polyphasic", None), ("rate Hz", "firing_rate_hz", None),
                ("discharges", "n_discharges", None), ("first s", "first_s", None),
                ("outliers", None, None))
REJECTED_COLUMNS = (("amplitude µV", "amplitude_uv"), ("rise ms", "rise_time_ms"),
                    ("duration ms", "duration_ms"), ("discharges", "n_discharges"),
                    ("first s", "first_s"), ("why not measured", "reason"))
SPONTANEOUS_COLUMNS = (("kind", "kind"), ("onset s", "onset_s"), ("offset s", "offset_s"),
                       ("count", "count"), ("rate Hz", "rate_hz"),
                       ("amplitude µV", "amplitude_uv"), ("grade", "grade"))
MEANS = (("amplitude_uv", "mean_amplitude_uv", "amplitude µV"),
         ("duration_ms", "mean_duration_ms", "duration ms"),
         ("area_uvms", "mean_area_uvms", "area µV·ms"), ("phases", "mean_phases", "phases"),
         ("turns", "mean_turns", "turns"),
         ("polyphasic_fraction", "polyphasic_fraction", "polyphasic fraction"))


def nice_gain(amplitude_uv: float) -> float:
    """The smallest gain of :data:`GAINS_UV` holding ``amplitude_uv`` with a margin."""
    for g in GAINS_UV:
        if g >= 1.15 * amplitude_uv:
            return float(g)
    return float(GAINS_UV[-1])


def outlier_side(value: Any, limit: dict[str, Any] | None) -> int:
    """+1 above the limit's upper bound, −1 below its lower one, else 0."""
    if limit is None or not isinstance(value, (int, float)):
        return 0
    if limit.get("upper") is not None and value > limit["upper"]:
        return 1
    if limit.get("lower") is not None and value < limit["lower"]:
        return -1
    return 0


class NeedlePanel(LabPanel):
    """The Needle EMG tab. ``view`` is the last analysis shown (None before the first)."""

    view: NeedleView | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("needle", parent)
        self.selected: int | None = None
        self._build()

    # --- layout -------------------------------------------------------------------------

    def _build(self) -> None:
        bar = self._file_bar("Open needle recording…", "no file")
        self.channel_box = QComboBox()
        self.channel_box.setMinimumContentsLength(12)
        self.channel_box.setToolTip("the needle channel analysed")
        self.muscle_box = QComboBox()
        self.muscle_box.setToolTip("the muscle whose reference limits are used")
        from ionm_station.lab.reference import load_reference

        self.muscle_box.addItem(AUTO_MUSCLE, None)
        for key in sorted(load_reference()["muscles"]):
            self.muscle_box.addItem(key.replace("_", " "), key)
        self.channel_box.activated.connect(lambda _i: self.analyse())
        self.muscle_box.activated.connect(lambda _i: self.analyse())
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.clicked.connect(self.analyse)
        self.json_button = QPushButton("Export JSON…")
        self.json_button.clicked.connect(lambda: self._choose_export("json"))
        self.pdf_button = QPushButton("Export PDF…")
        self.pdf_button.clicked.connect(lambda: self._choose_export("pdf"))
        bar.addWidget(QLabel("Channel"))
        bar.addWidget(self.channel_box)
        bar.addWidget(QLabel("Muscle"))
        bar.addWidget(self.muscle_box)
        for w in (self.analyse_button, self.json_button, self.pdf_button):
            bar.addWidget(w)

        # overlay grid of every MUAP (left top) and the tables (left bottom)
        self.overlay = pg.PlotWidget()
        self.overlay.setMenuEnabled(False)
        self.overlay.hideAxis("left")
        self.overlay.hideAxis("bottom")
        self.overlay.setMouseEnabled(False, False)
        self.overlay.hideButtons()
        self.overlay.scene().sigMouseClicked.connect(self._overlay_clicked)
        self.overlay_title = QLabel("MUAP overlay: aligned discharges (grey) and template of "
                                    "each unit, negative up")
        self.overlay_title.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.muap_table = lab_table([c[0] for c in MUAP_COLUMNS])
        self.muap_table.itemSelectionChanged.connect(self._row_selected)
        self.rejected_table = lab_table([c[0] for c in REJECTED_COLUMNS])
        self.tables = QTabWidget()
        self.tables.addTab(self.muap_table, "MUAPs")
        self.tables.addTab(self.rejected_table, "Not accepted")
        left_top = QWidget()
        lt = QVBoxLayout(left_top)
        lt.setContentsMargins(0, 0, 0, 0)
        lt.addWidget(self.overlay_title)
        lt.addWidget(self.overlay, 1)
        left = split(Qt.Orientation.Vertical, [left_top, self.tables], [560, 400])

        # verdict, means, selected MUAP, spontaneous activity (right)
        self.verdict_label = QLabel("—")
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = QFont(self.verdict_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.verdict_label.setFont(font)
        self.verdict_label.setMinimumHeight(40)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.reasons_label = QTextBrowser()
        self.reasons_label.setOpenLinks(False)
        self.reasons_label.setFrameShape(QFrame.Shape.NoFrame)
        self.reasons_label.setStyleSheet(f"background: {theme.PANEL};")
        self.means_table = lab_table(["measure", "mean", "lower", "upper", "source"])
        self.means_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.means_table.setFixedHeight(24 + 22 * len(MEANS) + 4)
        self.means_table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        verdict_box = QGroupBox("Verdict")
        vb = QVBoxLayout(verdict_box)
        vb.addWidget(self.verdict_label)
        vb.addWidget(self.summary_label)
        vb.addWidget(self.reasons_label, 1)
        vb.addWidget(self.means_table)

        self.detail = pg.PlotWidget()
        self.detail.setMenuEnabled(False)
        self.detail.setLabel("bottom", "ms from alignment")
        self.detail.setLabel("left", "µV")
        self.detail.showGrid(x=True, y=True, alpha=0.15)
        detail_box = QGroupBox("Selected MUAP (negative up)")
        db = QVBoxLayout(detail_box)
        self.detail_label = QLabel("click a MUAP in the overlay or the table")
        self.detail_label.setWordWrap(True)
        db.addWidget(self.detail_label)
        db.addWidget(self.detail, 1)

        self.grades_label = QLabel("")
        self.grades_label.setWordWrap(True)
        self.grades_label.setTextFormat(Qt.TextFormat.RichText)
        self.spont_table = lab_table([c[0] for c in SPONTANEOUS_COLUMNS])
        spont_box = QGroupBox("Spontaneous activity (grade 0–4, single-site adaptation)")
        sb = QVBoxLayout(spont_box)
        sb.addWidget(self.grades_label)
        sb.addWidget(self.spont_table, 1)

        right = split(Qt.Orientation.Vertical, [verdict_box, detail_box, spont_box],
                      [440, 300, 220])
        self._lay_out(bar, left, right, [980, 620])

    def _set_enabled(self) -> None:
        has_file = self.path is not None
        busy = self.runner.busy
        self.analyse_button.setEnabled(has_file and not busy)
        self.channel_box.setEnabled(self.channel_box.count() > 1 and not busy)
        ready = self.view is not None and not busy
        self.json_button.setEnabled(ready)
        self.pdf_button.setEnabled(ready)

    # --- actions ------------------------------------------------------------------------

    def _choose_file(self) -> None:
        path = self._ask_open("Open needle recording", "Needle recordings (*.edf *.EDF *.bdf "
                              "*.BDF *.hea *.h5);;All files (*)")
        if path:
            self.open_file(path)

    def open_file(self, path: Path, channel: str | None = None,
                  muscle: str | None = None) -> None:
        """Open ``path`` and analyse ``channel`` (None: the only or the first one) for
        ``muscle`` (None: from the channel label)."""
        self._set_path(path)
        self.channel_box.clear()
        if channel:
            self.channel_box.addItem(channel)
        index = self.muscle_box.findData(muscle) if muscle else 0
        if muscle and index < 0:
            from ionm_station.lab.reference import muscle_reference

            ref = muscle_reference(muscle)
            index = self.muscle_box.findData(ref.key) if ref else -1
        if index < 0:
            self.status.say(f"muscle {muscle!r} is not in the reference table", error=True)
            return
        self.muscle_box.setCurrentIndex(index)
        self.analyse()

    def analyse(self) -> None:
        """Analyse the chosen channel of the open file on the worker thread."""
        if self.path is None:
            return
        channel = self.channel_box.currentText() or None
        muscle = self.muscle_box.currentData()
        self._start(f"Analysing {self.path.name}" + (f" [{channel}]" if channel else "") + "…",
                    needle_job, self.path, channel, muscle)

    def _show(self, view: NeedleView) -> None:
        self.selected = None
        self.channel_box.blockSignals(True)
        self.channel_box.clear()
        self.channel_box.addItems(view.channels)
        self.channel_box.setCurrentText(view.doc["channel"])
        self.channel_box.blockSignals(False)
        doc = view.doc
        s = doc["summary"]
        extra = (f" ({s['n_not_accepted']} not accepted)" if s.get("n_not_accepted") else "")
        self.status.say(f"{view.path.name} [{doc['channel']}], "
                        f"{(doc['muscle'] or 'muscle not given').replace('_', ' ')}: "
                        f"{s['n_muaps']} MUAPs{extra}, {doc['duration_s']:g} s at "
                        f"{doc['fs_hz']:g} Hz, analysed in {doc['analysis_s']:g} s"
                        + (f" — {'; '.join(doc['notes'])}" if doc.get("notes") else ""))
        self._show_verdict(doc)
        self._show_tables(doc)
        self._draw_overlay(view)
        self._show_spontaneous(doc)
        if doc["muaps"]:
            self.muap_table.selectRow(0)
        else:
            self._draw_detail(None)

    # --- results ------------------------------------------------------------------------

    def _show_verdict(self, doc: dict[str, Any]) -> None:
        s = doc["summary"]
        bg, fg = VERDICT_COLOURS.get(s["pattern"], VERDICT_COLOURS["indeterminate"])
        self.verdict_label.setText(s["pattern"].upper())
        self.verdict_label.setStyleSheet(f"background: {bg}; color: {fg}; border-radius: 4px;")
        ref = s.get("reference") or {}
        acc = s.get("acceptance") or {}
        parts = [f"{s['n_muaps']} MUAPs", f"polyphasic {cell_text(s['polyphasic_fraction'])}"]
        if acc:
            rise = acc.get("max_rise_time_ms")
            parts.append(f"accepted: rise ≤ {rise:g} ms, ≥ {acc.get('min_amplitude_uv'):g} µV"
                         if rise is not None else
                         f"accepted: ≥ {acc.get('min_amplitude_uv'):g} µV (no rise-time limit)")
        parts.append(f"reference: {ref['muscle'].replace('_', ' ')}" if ref
                     else "no reference limits")
        self.summary_label.setText(" · ".join(parts))
        from xml.sax.saxutils import escape

        self.reasons_label.setHtml(f"<div style='color:{theme.TEXT}'>"
                                   + "<br>".join(f"• {escape(r)}" for r in s["reasons"])
                                   + "</div>")
        limits = ref.get("limits", {})
        t = self.means_table
        t.setRowCount(0)
        for key, skey, title in MEANS:
            lim = limits.get(key)
            row = t.rowCount()
            t.insertRow(row)
            mean = s.get(skey)
            items = [QTableWidgetItem(title), table_item(mean),
                     table_item(lim.get("lower") if lim else None),
                     table_item(lim.get("upper") if lim else None),
                     QTableWidgetItem((lim["source"] + ("" if lim.get("source_verified")
                                                        else " (not verified)"))
                                      if lim else "no limit")]
            if lim:
                items[4].setToolTip(lim["source"])
            if outlier_side(mean, lim):
                bg_c, fg_c = table_colours()
                items[1].setBackground(QBrush(bg_c))
                items[1].setForeground(QBrush(fg_c))
            for c, item in enumerate(items):
                t.setItem(row, c, item)
        t.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)

    def _show_tables(self, doc: dict[str, Any]) -> None:
        outl = ((doc["summary"].get("reference") or {}).get("outlier_limits") or {})
        t = self.muap_table
        t.blockSignals(True)
        t.setRowCount(0)
        bg, fg = table_colours()
        for m in doc["muaps"]:
            row = t.rowCount()
            t.insertRow(row)
            marks = []
            for c, (_title, key, lim_key) in enumerate(MUAP_COLUMNS):
                if key is None:
                    continue
                item = table_item(m.get(key))
                side = outlier_side(m.get(key), outl.get(lim_key)) if lim_key else 0
                if side:
                    item.setBackground(QBrush(bg))
                    item.setForeground(QBrush(fg))
                    lim = outl[lim_key]
                    item.setToolTip(f"beyond the per-MUAP outlier limit "
                                    f"({lim.get('lower')}–{lim.get('upper')}; {lim['source']})")
                    marks.append(f"{_title.split()[0]} {'↑' if side > 0 else '↓'}")
                t.setItem(row, c, item)
            last = len(MUAP_COLUMNS) - 1
            item = QTableWidgetItem(", ".join(marks) if outl else "no limits")
            if not outl:
                item.setToolTip("the reference table holds no per-MUAP outlier limits for this "
                                "muscle: judged on the means only")
                item.setForeground(QBrush(QColor(theme.TEXT_DIM)))
            t.setItem(row, last, item)
        t.blockSignals(False)
        self.tables.setTabText(0, f"MUAPs ({len(doc['muaps'])})")
        r = self.rejected_table
        r.setRowCount(0)
        rejected = doc.get("not_accepted", [])
        for m in rejected:
            row = r.rowCount()
            r.insertRow(row)
            for c, (_title, key) in enumerate(REJECTED_COLUMNS):
                r.setItem(row, c, table_item(m.get(key)))
        self.tables.setTabText(1, f"Not accepted ({len(rejected)})")

    def _show_spontaneous(self, doc: dict[str, Any]) -> None:
        grades = doc.get("spontaneous_grades", {})
        chips = []
        for kind, g in grades.items():
            colour = theme.AMBER if g else theme.TEXT_DIM
            chips.append(f"<span style='color:{colour}'>{kind.replace('_', ' ')} "
                         f"<b>{g}</b></span>")
        if not doc.get("spontaneous"):
            chips.append("— none found")
        self.grades_label.setText(" · ".join(chips))
        t = self.spont_table
        t.setRowCount(0)
        for train in doc.get("spontaneous", []):
            row = t.rowCount()
            t.insertRow(row)
            for c, (_title, key) in enumerate(SPONTANEOUS_COLUMNS):
                t.setItem(row, c, table_item(train.get(key)))

    # --- drawing ------------------------------------------------------------------------

    def _grid(self, n: int) -> int:
        """Columns of the overlay grid for ``n`` MUAPs (cells about as high as wide)."""
        w = max(1, self.overlay.width())
        h = max(1, self.overlay.height())
        return max(1, math.ceil(math.sqrt(n * w / h)))

    def _draw_overlay(self, view: NeedleView) -> None:
        plot = self.overlay.getPlotItem()
        plot.clear()
        self._cells: list[tuple[float, float]] = []
        n = len(view.templates)
        if n == 0:
            text = pg.TextItem("no MUAP accepted for measurement", color=theme.TEXT_DIM,
                               anchor=(0.5, 0.5))
            plot.addItem(text)
            text.setPos(0, 0)
            plot.setXRange(-1, 1)
            plot.setYRange(-1, 1)
            return
        amps = [float(np.ptp(t)) for t in view.templates]
        self.gain_uv = nice_gain(float(np.percentile(amps, 80)))
        cols = self._grid(n)
        rows = math.ceil(n / cols)
        cell_w = 2 * CELL_HALF_MS + CELL_GAP_MS
        cell_h = self.gain_uv * 1.1
        grey = pg.mkPen(QColor(150, 160, 172, 110), width=1)
        bright = pg.mkPen(theme.TRACE_LEFT, width=1.5)
        for i, (t, tmpl, sweeps) in enumerate(zip(view.t_ms, view.templates, view.discharges,
                                                 strict=True)):
            x0 = (i % cols) * cell_w
            y0 = -(i // cols) * cell_h
            self._cells.append((x0, y0))
            keep = np.abs(t) <= CELL_HALF_MS
            tt = t[keep]
            lim = self.gain_uv / 2
            if len(sweeps):
                ys = np.clip(-sweeps[:, keep], -lim, lim)  # negative up
                xs = np.broadcast_to(tt, ys.shape)
                connect = np.ones(ys.shape, dtype=bool)
                connect[:, -1] = False
                curve = pg.PlotCurveItem(xs.ravel(), ys.ravel(), pen=grey,
                                         connect=connect.ravel())
                curve.setPos(x0, y0)
                plot.addItem(curve)
            tc = pg.PlotCurveItem(tt, np.clip(-tmpl[keep], -lim, lim), pen=bright)
            tc.setPos(x0, y0)
            plot.addItem(tc)
            label = pg.TextItem(f"#{i + 1}", color=theme.TEXT_DIM, anchor=(0, 0))
            label.setPos(x0 - CELL_HALF_MS, y0 + lim)
            plot.addItem(label)
        self.cell_size = (cell_w, cell_h)
        self._highlight = pg.PlotCurveItem(pen=pg.mkPen(theme.AMBER, width=2))
        plot.addItem(self._highlight)
        # scale bars under the last row, at the right: half the gain (µV) and 5 ms
        bar_x = (cols - 1) * cell_w + CELL_HALF_MS
        bar_y = -(rows - 1) * cell_h - lim - 0.15 * cell_h
        half = self.gain_uv / 2
        pen = pg.mkPen(theme.TEXT, width=2)
        plot.addItem(pg.PlotCurveItem([bar_x - 5.0, bar_x, bar_x],
                                      [bar_y, bar_y, bar_y + half], pen=pen))
        ms_text = pg.TextItem("5 ms", color=theme.TEXT, anchor=(0.5, 0))
        ms_text.setPos(bar_x - 2.5, bar_y)
        uv_text = pg.TextItem(f"{half:g} µV", color=theme.TEXT, anchor=(1, 0.5))
        uv_text.setPos(bar_x - 5.5, bar_y + half / 2)
        plot.addItem(ms_text)
        plot.addItem(uv_text)
        plot.setXRange(-CELL_HALF_MS - 1, (cols - 1) * cell_w + CELL_HALF_MS + 4, padding=0)
        plot.setYRange(bar_y - 0.25 * cell_h, lim + 0.05 * cell_h, padding=0)
        self.overlay_title.setText(f"MUAP overlay: {n} units, aligned discharges (grey, up to "
                                   f"12 each) and template (blue); {self.gain_uv:g} µV per "
                                   "cell, negative up; clipped at the cell")

    def _overlay_clicked(self, event: Any) -> None:
        if self.view is None or not getattr(self, "_cells", None):
            return
        p = self.overlay.getPlotItem().vb.mapSceneToView(event.scenePos())
        cell_w, cell_h = self.cell_size
        for i, (x0, y0) in enumerate(self._cells):
            if abs(p.x() - x0) <= cell_w / 2 and abs(p.y() - y0) <= cell_h / 2:
                self.muap_table.selectRow(i)
                return

    def _row_selected(self) -> None:
        rows = self.muap_table.selectionModel().selectedRows()
        self.select(rows[0].row() if rows else None)

    def select(self, index: int | None) -> None:
        """Show MUAP ``index`` (0-based, the document's order) in the detail plot."""
        self.selected = index
        if self.view is None or index is None or index >= len(self.view.templates):
            self._draw_detail(None)
            return
        x0, y0 = self._cells[index]
        w, h = self.cell_size
        self._highlight.setData([x0 - w / 2 + 1, x0 + w / 2 - 1, x0 + w / 2 - 1,
                                 x0 - w / 2 + 1, x0 - w / 2 + 1],
                                [y0 - h / 2, y0 - h / 2, y0 + h / 2, y0 + h / 2, y0 - h / 2])
        self._draw_detail(index)

    def _draw_detail(self, index: int | None) -> None:
        plot = self.detail.getPlotItem()
        plot.clear()
        if index is None or self.view is None:
            self.detail_label.setText("click a MUAP in the overlay or the table")
            return
        v = self.view
        m = v.doc["muaps"][index]
        t, tmpl, sweeps = v.t_ms[index], v.templates[index], v.discharges[index]
        grey = pg.mkPen(QColor(150, 160, 172, 130), width=1)
        for row in sweeps:
            plot.plot(t, -row, pen=grey)
        plot.plot(t, -tmpl, pen=pg.mkPen(theme.TRACE_LEFT, width=2))
        on, off = v.limits_ms[index]
        for x in (on, off):
            plot.addItem(pg.InfiniteLine(x, angle=90, pen=pg.mkPen(theme.AMBER, width=1,
                                                                   style=Qt.PenStyle.DashLine)))
        span = max(abs(on), abs(off), 5.0) + 3.0
        plot.setXRange(-span, span, padding=0)
        peak = float(np.max(np.abs(tmpl)))
        plot.setYRange(-1.3 * peak, 1.3 * peak, padding=0)
        self.detail_label.setText(
            f"MUAP #{m['id']}: {cell_text(m['amplitude_uv'])} µV, "
            f"{cell_text(m['duration_ms'])} ms (dashed: onset and offset), "
            f"{m['phases']} phases, {m['turns']} turns, "
            f"{cell_text(m['firing_rate_hz'])} Hz, {m['n_discharges']} discharges")

    # --- exports ------------------------------------------------------------------------

    def _choose_export(self, kind: str) -> None:
        if self.view is None:
            return
        default = self.view.path.with_name(f"{self.view.path.stem}.muap.{kind}")
        name, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", str(default),
                                              f"{kind.upper()} (*.{kind})")
        if name:  # the dialog has asked before replacing a file
            self.export(Path(name), kind, replace=True)

    def export(self, path: Path, kind: str, replace: bool = False) -> int:
        """Write ``muap``'s JSON or PDF of the analysis shown to ``path`` on a worker thread;
        returns the request's token."""
        assert self.view is not None
        view = self.view

        def work() -> str:
            write_needle_exports(view, json_path=path if kind == "json" else None,
                                 pdf_path=path if kind == "pdf" else None, replace=replace)
            return f"{kind.upper()} written: {path}"

        return self._write(path, work)
