"""The Trends dock: the case so far, from the session's event log (:mod:`ionm_station.trends`).

Tabs: A-train time and EMG events per minute (one heat-map row per root-side), signal quality
per channel over time (noise RMS, mains, ECG level of every check), train-of-four count and
T4/T1, screw thresholds by level. Redrawn every :data:`REFRESH_MS` when the event log has
grown, only the tab shown, and only while the dock is shown.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ionm_station.gui import theme
from ionm_station.session import Session
from ionm_station.trends import (
    level_order,
    quality_trend,
    screw_points,
    tile_trends,
    tof_points,
)

#: Redraw period (ms).
REFRESH_MS = 3000
#: Screw band colours (as the screw log).
BAND_COLOURS = {"likely breach": "#ff3b3b", "possible breach": "#ffb02e", "no breach": "#4caf50"}


def _plot(title: str, left: str, bottom: str = "case time (min)") -> pg.PlotWidget:
    w = pg.PlotWidget(title=title)
    p = w.getPlotItem()
    p.setMenuEnabled(False)
    p.hideButtons()
    p.setLabel("left", left, color=theme.TEXT_DIM)
    p.setLabel("bottom", bottom, color=theme.TEXT_DIM)
    p.showGrid(x=True, y=True, alpha=0.15)
    return w


class _HeatMap(pg.PlotWidget):
    """Rows = tiles, columns = minutes; row names on the left axis."""

    def __init__(self, title: str, colormap: str) -> None:
        super().__init__(title=title)
        p = self.getPlotItem()
        p.setMenuEnabled(False)
        p.hideButtons()
        p.invertY(True)
        p.setLabel("bottom", "case time (min)", color=theme.TEXT_DIM)
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get(colormap, source="matplotlib"))
        p.addItem(self.image)

    def show_data(self, keys: tuple[str, ...], data: np.ndarray, start_min: float) -> None:
        """``data`` (tiles, minutes) from ``start_min``: one row per tile, top to bottom."""
        rows_first = pg.getConfigOption("imageAxisOrder") == "row-major"
        self.image.setImage(data if rows_first else data.T, autoLevels=False,
                            levels=(0.0, max(float(data.max()), 1e-9)))
        self.image.setRect(start_min, -0.5, data.shape[1], len(keys))
        self.getPlotItem().getAxis("left").setTicks([list(enumerate(keys))])


class TrendsView(QWidget):
    """The Trends dock's contents over ``session.events``."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        theme.configure_pyqtgraph()
        self.session = session
        self._fs = float(session.info.sample_rate_hz)
        self._seen = -1
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)
        self.train = _HeatMap("A-train time per minute (s)", "inferno")
        self.rate = _HeatMap("EMG events above threshold per minute", "viridis")
        self.noise = _plot("Noise RMS per channel", "µV RMS")
        self.mains = _plot("Mains per channel", "µV RMS")
        self.ecg = _plot("ECG pick-up per channel", "µV p-p")
        self.tof = _plot("Train-of-four", "count (o) · T4/T1 × 4 (s)")
        self.screws = _plot("Screw thresholds", "mA", "level")
        quality = QWidget()
        q = QVBoxLayout(quality)
        q.setContentsMargins(0, 0, 0, 0)
        for w in (self.noise, self.mains, self.ecg):
            q.addWidget(w)
        triggered = QWidget()
        t = QVBoxLayout(triggered)
        t.setContentsMargins(0, 0, 0, 0)
        t.addWidget(self.tof)
        t.addWidget(self.screws)
        for widget, name in ((self.train, "Train time"), (self.rate, "Events/min"),
                             (quality, "Quality"), (triggered, "TOF / screws")):
            self.tabs.addTab(widget, name)
        self.tabs.currentChanged.connect(lambda _: self.refresh(force=True))
        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()

    def refresh(self, force: bool = False) -> None:
        """Redraw the tab shown if the event log has grown (or ``force``); nothing while the
        dock is hidden (tabbed behind another), so a long case costs the window nothing."""
        n = len(self.session.events)
        if not force and (n == self._seen or not self.isVisible()):
            return
        self._seen = n
        events = self.session.events.snapshot()
        tab = self.tabs.currentIndex()
        if tab in (0, 1):
            tt = tile_trends(events, self.session.montage, self._fs,
                             max(1, self.session.clean.published))
            start = float(tt.start_s[0]) / 60.0
            self.train.show_data(tt.keys, tt.train_time_s, start)
            self.rate.show_data(tt.keys, tt.event_rate, start)
        elif tab == 2:
            self._quality(events)
        else:
            self._triggered(events)

    def _quality(self, events: list) -> None:
        labels = self.session.montage.labels
        qt = quality_trend(events, len(labels), self._fs)
        colours = [pg.intColor(i, hues=max(len(labels), 1)) for i in range(len(labels))]
        for plot, data in ((self.noise, qt.noise_rms_uv), (self.mains, qt.mains_uv),
                           (self.ecg, qt.ecg_uv)):
            p = plot.getPlotItem()
            p.clear()
            for ch in range(data.shape[0]):
                p.plot(qt.t_s / 60.0, data[ch], pen=pg.mkPen(colours[ch], width=1),
                       symbol="o", symbolSize=3, symbolBrush=colours[ch], name=labels[ch],
                       connect="finite")

    def _triggered(self, events: list) -> None:
        p = self.tof.getPlotItem()
        p.clear()
        points = tof_points(events, self._fs)
        if points:
            t = np.array([x.t_s for x in points]) / 60.0
            p.plot(t, [x.count for x in points], pen=None, symbol="o", symbolBrush=theme.TEXT)
            ratio = np.array([np.nan if x.ratio is None else 4 * x.ratio for x in points])
            p.plot(t, ratio, pen=None, symbol="s", symbolBrush=BAND_COLOURS["possible breach"])
        p.setYRange(0, 4.4)
        s = self.screws.getPlotItem()
        s.clear()
        screws = screw_points(events, self._fs)
        levels = sorted({x.level for x in screws}, key=lambda lv: (level_order(lv), lv))
        for x in screws:
            ma = x.threshold_ma if x.threshold_ma is not None else 20.0
            s.plot([levels.index(x.level) + (-0.1 if x.side == "L" else 0.1)], [ma], pen=None,
                   symbol="t2" if x.side == "L" else "t3", symbolSize=12,
                   symbolBrush=BAND_COLOURS.get(x.band, theme.TEXT))
        s.getAxis("bottom").setTicks([list(enumerate(levels))])

    def stop(self) -> None:
        """Stop the refresh timer (the window is closing)."""
        self._timer.stop()
