"""Nerve conduction tab of the EMG lab window: open a study description (TOML), measure it on a
worker thread, show each study's waveforms per site with latency markers, the results table
with its flags and their reasons, the comparisons and the patterns; export ``ncs``'s JSON.

Every number is read from the ``ncs --json`` document (:mod:`.lab_jobs`); the traces are the
sweeps the measurement averaged, cleaned as it cleans them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ionm_station.gui import theme
from ionm_station.gui.lab_common import LabPanel, cell_text, lab_table, split, table_item
from ionm_station.gui.lab_jobs import NCS_WINDOW_MS, NcsView, SiteTrace, ncs_job, write_ncs_json
from ionm_station.gui.lab_window import table_colours

COLUMNS = ("site", "onset ms", "peak ms", "amplitude", "peak-to-peak", "area mV·ms",
           "duration ms", "distance mm", "velocity m/s")
#: Header text per column (two lines, so the numbers set the widths).
HEADERS = ("site", "onset\nms", "peak\nms", "amplitude", "peak-to-\npeak", "area\nmV·ms",
           "duration\nms", "distance\nmm", "velocity\nm/s")
COL = {name: i for i, name in enumerate(COLUMNS)}
#: Which cell a flag's measure marks.
FLAG_COLUMN = {"distal_latency_ms": "onset ms", "onset_latency_ms": "onset ms",
               "peak_latency_ms": "peak ms", "amplitude_mv": "amplitude",
               "amplitude_uv": "amplitude", "velocity_m_s": "velocity m/s",
               "response": "amplitude", "f_min_latency_ms": "onset ms"}
#: Trace gains (µV per row) the stack chooses from.
ROW_GAINS_UV = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
ONSET_COLOUR, PEAK_COLOUR = "#5ee38b", theme.AMBER
PATTERN_COLOURS = ("#9a5b00", "#fff4e0")


def row_gain(peak_uv: float) -> float:
    for g in ROW_GAINS_UV:
        if g >= 1.1 * peak_uv:
            return float(g)
    return float(ROW_GAINS_UV[-1])


def gain_text(uv: float) -> str:
    return f"{uv / 1000:g} mV" if uv >= 1000 else f"{uv:g} µV"


class NcsPanel(LabPanel):
    """The Nerve conduction tab. ``view`` is the last study shown (None before the first)."""

    view: NcsView | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("ncs", parent)
        #: (study, site) → table row, and (study, segment: "from–to", or "from" for a sensory
        #: first site) → table row; filled with the table (keys as the flags' "where").
        self.rows: dict[tuple[str, str], int] = {}
        self.segment_rows: dict[tuple[str, str], int] = {}
        self._build()

    def _build(self) -> None:
        bar = self._file_bar("Open study…",
                             "no study (a .ncs.toml description naming its recording)")
        self.analyse_button = QPushButton("Measure again")
        self.analyse_button.clicked.connect(self.analyse)
        self.json_button = QPushButton("Export JSON…")
        self.json_button.clicked.connect(self._choose_export)
        bar.addWidget(self.analyse_button)
        bar.addWidget(self.json_button)

        self.waves = pg.GraphicsLayoutWidget()
        self.waves.ci.setSpacing(4)
        waves_box = QGroupBox("Waveforms per site, negative up (averaged; F-waves: every "
                              "sweep) · markers: onset green, negative peak amber")
        wb = QVBoxLayout(waves_box)
        wb.addWidget(self.waves)

        self.table = lab_table(list(HEADERS))
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.horizontalHeader().setSectionResizeMode(COL["site"],
                                                           QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(48)
        self.pattern_label = QLabel("")
        self.pattern_label.setWordWrap(True)
        self.pattern_label.setTextFormat(Qt.TextFormat.RichText)
        font = QFont(self.pattern_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.pattern_label.setFont(font)
        self.flags_table = lab_table(["flag", "source"])
        self.flags_table.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.Interactive)
        self.flags_table.setWordWrap(True)
        self.comparisons_label = QLabel("")
        self.comparisons_label.setWordWrap(True)
        results_box = QGroupBox("Results")
        rb = QVBoxLayout(results_box)
        rb.addWidget(self.table)
        findings = QGroupBox("Patterns, flags and comparisons")
        fb = QVBoxLayout(findings)
        fb.addWidget(self.pattern_label)
        fb.addWidget(self.comparisons_label)
        fb.addWidget(self.flags_table, 1)
        right = split(Qt.Orientation.Vertical, [results_box, findings], [520, 420])
        self._lay_out(bar, waves_box, right, [780, 820])

    def _set_enabled(self) -> None:
        busy = self.runner.busy
        self.analyse_button.setEnabled(self.path is not None and not busy)
        self.json_button.setEnabled(self.view is not None and not busy)

    # --- actions ------------------------------------------------------------------------

    def _choose_file(self) -> None:
        path = self._ask_open("Open nerve conduction study",
                              "Study descriptions (*.toml);;All files (*)")
        if path:
            self.open_study(path)

    def open_study(self, path: Path) -> None:
        """Open the study description ``path`` and measure it."""
        self._set_path(path)
        self.analyse()

    def analyse(self) -> None:
        if self.path is None:
            return
        self._start(f"Measuring {self.path.name}…", ncs_job, self.path)

    def _show(self, view: NcsView) -> None:
        doc = view.doc
        self.status.say(f"{view.path.name}: {len(doc['studies'])} studies, "
                        f"{len(doc['flags'])} flags, recording {Path(doc['recording']).name} "
                        f"at {doc['sample_rate_hz']:g} Hz; references {doc['references']}")
        self._fill_table(doc)
        self._fill_findings(doc)
        self._draw(view)

    # --- results ------------------------------------------------------------------------

    def _fill_table(self, doc: dict[str, Any]) -> None:
        t = self.table
        t.clearSpans()
        t.setRowCount(0)
        self.rows, self.segment_rows = {}, {}

        def header_row(study: dict[str, Any]) -> None:
            row = t.rowCount()
            t.insertRow(row)
            item = QTableWidgetItem(f"{study['name']}  ·  {study['channel']}")
            f = item.font()
            f.setBold(True)
            item.setFont(f)
            item.setForeground(QBrush(QColor(theme.TEXT)))
            item.setBackground(QBrush(QColor("#1b2430")))
            t.setItem(row, 0, item)
            t.setSpan(row, 0, 1, len(COLUMNS))

        def new_row(study: str, label: str, segment: bool = False) -> int:
            row = t.rowCount()
            t.insertRow(row)
            t.setItem(row, COL["site"], QTableWidgetItem(label))
            (self.segment_rows if segment else self.rows)[(study, label)] = row
            return row

        def put(row: int, column: str, value: Any, unit: str = "") -> None:
            item = table_item(value)
            if unit and value is not None:
                item.setText(f"{cell_text(value)} {unit}")
            t.setItem(row, COL[column], item)

        for st in doc["studies"]:
            name = st["name"]
            header_row(st)
            if st["kind"] == "f_wave":
                site = st.get("site") or (st.get("sites") or [{}])[0].get("site", "")
                row = new_row(name, site)
                if st.get("min_latency_ms") is None:
                    text = f"no F-wave in {st.get('stimuli')} stimuli"
                else:
                    text = (f"F min {cell_text(st['min_latency_ms'])} ms · mean "
                            f"{cell_text(st['mean_latency_ms'])} ms · max "
                            f"{cell_text(st['max_latency_ms'])} ms · persistence "
                            f"{st.get('f_waves')}/{st.get('stimuli')} "
                            f"({cell_text(st.get('persistence'))})")
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, st.get("min_latency_ms"))
                t.setItem(row, COL["onset ms"], item)
                t.setSpan(row, COL["onset ms"], 1, COL["velocity m/s"] - COL["onset ms"] + 1)
                continue
            motor = st["kind"] == "motor"
            for s in st["sites"]:
                row = new_row(name, s["site"])
                put(row, "distance mm", s.get("distance_mm"))
                if not s.get("response"):
                    item = QTableWidgetItem("no response")
                    t.setItem(row, COL["amplitude"], item)
                    continue
                put(row, "onset ms", s["onset_latency_ms"])
                put(row, "peak ms", s["peak_latency_ms"])
                if motor:
                    put(row, "amplitude", s["amplitude_mv"], "mV")
                    put(row, "peak-to-peak", s["peak_to_peak_mv"], "mV")
                    put(row, "area mV·ms", s["area_mvms"])
                else:
                    put(row, "amplitude", s["amplitude_uv"], "µV")
                    put(row, "peak-to-peak", s["peak_to_peak_uv"], "µV")
                put(row, "duration ms", s["duration_ms"])
            for seg in st.get("segments", []):
                label = (f"{seg['from']}–{seg['to']}" if seg.get("to") else seg["from"])
                row = new_row(name, label, segment=True)
                t.item(row, COL["site"]).setText(
                    f"  ↳ {seg['from']} → {seg['to']}" if seg.get("to")
                    else f"  ↳ {seg['from']} → recording")
                put(row, "distance mm", seg.get("distance_mm"))
                put(row, "velocity m/s", seg.get("velocity_m_s"))
                if seg.get("note"):
                    t.item(row, COL["site"]).setToolTip(seg["note"])
                    t.item(row, COL["site"]).setForeground(QBrush(QColor(theme.AMBER)))
        bg, fg = table_colours()
        for f in doc["flags"]:
            rows = self.segment_rows if f["measure"] == "velocity_m_s" else self.rows
            row = rows.get((f["study"], f["where"]))
            column = FLAG_COLUMN.get(f["measure"])
            if row is None or column is None:
                continue  # a comparison between studies: in the flags list
            item = t.item(row, COL[column])
            if item is None:
                item = QTableWidgetItem("")
                t.setItem(row, COL[column], item)
            item.setBackground(QBrush(bg))
            item.setForeground(QBrush(fg))
            item.setToolTip(f"{f['reason']}" + (f" — {f['source']}" if f["source"] else ""))

    def _fill_findings(self, doc: dict[str, Any]) -> None:
        bg, fg = PATTERN_COLOURS
        if doc["patterns"]:
            parts = []
            for p in doc["patterns"]:
                side = p.get("side") or "side not given"
                parts.append(f"<div style='background:{bg}; color:{fg}; padding:4px'>"
                             f"<b>{escape(p['pattern'].replace('_', ' ').upper())}</b> "
                             f"({escape(side)}): {escape(p['summary'])}</div>"
                             + "".join(f"&nbsp;&nbsp;• {escape(r)}<br>" for r in p["reasons"]))
            self.pattern_label.setText("".join(parts))
        else:
            self.pattern_label.setText("<b>no pattern</b>"
                                       + (" — no flags" if not doc["flags"] else ""))
        comps = [f"{c['name']} ({c['side']}): {cell_text(c['value_ms'])} ms"
                 + (" — FLAG" if c["flag"] else " — within the limit")
                 for c in doc.get("comparisons", [])]
        self.comparisons_label.setText("\n".join(comps) or "no comparison between nerves")
        t = self.flags_table
        t.setRowCount(0)
        for f in doc["flags"]:
            row = t.rowCount()
            t.insertRow(row)
            reason = QTableWidgetItem(f["reason"])
            reason.setForeground(QBrush(QColor(theme.ERROR_RED)))
            source = QTableWidgetItem(f["source"] or "—")
            source.setToolTip(f["source"])
            t.setItem(row, 0, reason)
            t.setItem(row, 1, source)
        t.setColumnWidth(0, 420)
        t.resizeRowsToContents()

    # --- drawing ------------------------------------------------------------------------

    def _draw(self, view: NcsView) -> None:
        self.waves.clear()
        by_study: dict[str, list[SiteTrace]] = {}
        for tr in view.traces:
            by_study.setdefault(tr.study, []).append(tr)
        studies = {st["name"]: st for st in view.doc["studies"]}
        cols = 2 if len(by_study) > 2 else 1
        col = 0
        for name, traces in by_study.items():
            wide = traces[0].kind == "f_wave"
            if col >= cols or (wide and col):
                self.waves.nextRow()
                col = 0
            st = studies.get(name, {})
            plot = self.waves.addPlot(colspan=cols if wide else 1)
            col += cols if wide else 1
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.hideAxis("left")
            plot.setLabel("bottom", "ms after the stimulus")
            plot.setMouseEnabled(False, False)
            if traces[0].kind == "f_wave":
                self._draw_f(plot, traces[0], st)
            else:
                self._draw_sites(plot, traces, st)
            lo, hi = NCS_WINDOW_MS[traces[0].kind]
            plot.setXRange(lo, hi, padding=0.01)

    def _marker(self, plot: Any, x: float | None, y0: float, h: float, colour: str) -> None:
        if x is None:
            return
        plot.addItem(pg.PlotCurveItem([x, x], [y0 - 0.1 * h, y0 + 0.4 * h],
                                      pen=pg.mkPen(colour, width=2)))

    def _draw_sites(self, plot: Any, traces: list[SiteTrace], st: dict[str, Any]) -> None:
        gain = row_gain(max(float(np.ptp(tr.y_uv)) for tr in traces))
        sites = {s["site"]: s for s in st.get("sites", [])}
        motor = st.get("kind") == "motor"
        pen = pg.mkPen(theme.TRACE_RIGHT if motor else theme.TRACE_LEFT, width=1.5)
        lo, hi = NCS_WINDOW_MS[traces[0].kind]
        for i, tr in enumerate(traces):
            y0 = -i * gain
            curve = pg.PlotCurveItem(tr.t_ms, np.clip(-tr.y_uv, -0.55 * gain, 0.75 * gain),
                                     pen=pen)
            curve.setPos(0, y0)
            plot.addItem(curve)
            s = sites.get(tr.site, {})
            if s.get("response"):
                self._marker(plot, s["onset_latency_ms"], y0, gain, ONSET_COLOUR)
                self._marker(plot, s["peak_latency_ms"], y0, gain, PEAK_COLOUR)
            label = pg.TextItem(tr.site if s.get("response") else f"{tr.site}: no response",
                                color=theme.TEXT_DIM, anchor=(0, 0))
            label.setPos(lo, y0 - 0.05 * gain)
            plot.addItem(label)
        self._scale_bar(plot, hi, 0.0, gain)
        plot.setTitle(f"{st.get('name', traces[0].study)} · {gain_text(gain)}/row",
                      color=theme.TEXT, size="10pt")
        plot.setYRange(-(len(traces) - 1) * gain - 0.6 * gain, 0.8 * gain, padding=0)

    def _draw_f(self, plot: Any, tr: SiteTrace, st: dict[str, Any]) -> None:
        sweeps = tr.y_uv
        first = st.get("min_latency_ms")
        later = tr.t_ms >= ((first - 2.0) if first is not None else 15.0)
        peak = float(np.percentile(np.max(np.abs(sweeps[:, later]), axis=1), 90))
        gain = row_gain(peak)
        latencies = st.get("latencies_ms") or [None] * len(sweeps)
        pen = pg.mkPen(theme.TRACE_OTHER, width=1)
        for i, y in enumerate(sweeps):
            y0 = -i * gain
            curve = pg.PlotCurveItem(tr.t_ms, np.clip(-y, -0.75 * gain, 0.75 * gain), pen=pen)
            curve.setPos(0, y0)
            plot.addItem(curve)
            if i < len(latencies):
                self._marker(plot, latencies[i], y0, gain, ONSET_COLOUR)
        hi = NCS_WINDOW_MS["f_wave"][1]
        self._scale_bar(plot, hi, 0.0, gain)
        persistence = (f"{st.get('f_waves')}/{st.get('stimuli')}" if st.get("stimuli") else "")
        plot.setTitle(f"{st.get('name', tr.study)} · {gain_text(gain)}/sweep (M-wave "
                      "clipped) · F min "
                      f"{cell_text(first)} ms · persistence {persistence}",
                      color=theme.TEXT, size="10pt")
        plot.setYRange(-(len(sweeps) - 1) * gain - 0.8 * gain, 0.9 * gain, padding=0)

    def _scale_bar(self, plot: Any, x: float, y: float, gain: float) -> None:
        half = gain / 2
        x = x - 0.5
        plot.addItem(pg.PlotCurveItem([x, x], [y - half, y], pen=pg.mkPen(theme.TEXT, width=2)))
        text = pg.TextItem(gain_text(half), color=theme.TEXT_DIM, anchor=(1, 0.5))
        text.setPos(x - 0.3, y - half / 2)
        plot.addItem(text)

    # --- exports ------------------------------------------------------------------------

    def _choose_export(self) -> None:
        if self.view is None:
            return
        stem = self.view.path.name.removesuffix(".toml").removesuffix(".ncs")
        default = self.view.path.with_name(f"{stem}.ncs.json")
        name, _ = QFileDialog.getSaveFileName(self, "Export JSON", str(default), "JSON (*.json)")
        if name:  # the dialog has asked before replacing a file
            self.export(Path(name), replace=True)

    def export(self, path: Path, replace: bool = False) -> int:
        """Write ``ncs``'s JSON of the study shown to ``path`` on a worker thread."""
        assert self.view is not None
        view = self.view

        def work() -> str:
            write_ncs_json(view, path, replace=replace)
            return f"JSON written: {path}"

        return self._write(path, work)

