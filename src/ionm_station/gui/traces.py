"""TraceView: the live multichannel EMG display (one plot, one curve per channel, stacked).

The view pulls from its own cursor (a :class:`~ionm_station.gui.trace_feed.TraceFeed`: the
clean ring, or the raw ring band-passed in the view while processing is down) on a QTimer,
folds the new samples into a :class:`~ionm_station.gui.decimate.ColumnBuffer` (min/max per
pixel column) and hands each curve one vertical bar per pixel column (2 points,
``connect='pairs'``, drawn with ``drawLines``; see
:func:`~ionm_station.gui.decimate.bridge_columns`) — never the raw samples. Measured at 32 ch ×
1424 columns offscreen, this paints in about half the time of a ``connect='finite'`` min/max
polyline, whose NaN splitting alone cost ~13 ms per frame with a sweep erase bar. Fixed ranges,
thin pens, no antialiasing. NaN columns (gaps, blanked spans, the sweep erase bar) are dropped,
which breaks the trace. Overlays (artifact tints, EMG-event bars, markers) are
:mod:`~ionm_station.gui.trace_overlays`; a banner (:mod:`~ionm_station.gui.trace_banner`) says
when the traces are not the monitored signal.

Geometry: channel ``i`` (0 = top) occupies the lane ``[n-1-i, n-i]`` in y; one lane is two
divisions, so a sensitivity of S µV/div puts ±2·S µV at the lane edges. Signals larger than
:data:`CLIP_LANES` of a lane are clipped so a railed channel cannot paint over its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.events import EventLog
from ionm_station.gui import theme
from ionm_station.gui.channel_labels import ChannelLabels
from ionm_station.gui.decimate import ColumnBuffer, bridge_columns
from ionm_station.gui.trace_banner import TraceBanner, TraceNotice
from ionm_station.gui.trace_feed import TraceFeed
from ionm_station.gui.trace_overlays import TraceOverlays
from ionm_station.montage import Montage
from ionm_station.ring import RingBuffer

#: Sensitivities offered (µV/div) and timebases (s).
SENSITIVITIES_UV = (10, 20, 50, 100, 200, 500, 1000)
TIMEBASES_S = (1, 2, 5, 10, 20)
#: Half-height of a channel's drawing band, in lanes (a railed channel overlaps its neighbours
#: by at most this much minus 0.5).
CLIP_LANES = 0.6
#: Width of the sweep erase bar (fraction of the window) ahead of the write position.
ERASE_FRACTION = 0.015
#: Fewest pixel columns the view decimates to (a very narrow window still draws a trace).
MIN_COLUMNS = 100


class LaneCurve(pg.PlotCurveItem):
    """A channel's curve with a fixed bounding rectangle (its lane band across the window).

    pyqtgraph recomputes a curve's bounds from its data (two nan-aware reductions per axis)
    whenever the data change; with 32 curves at screen rate that cost more than the
    decimation. The lane band is known, so the curve states it.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._lane_rect = QRectF(0.0, -CLIP_LANES - 0.1, 1.0, 2 * CLIP_LANES + 0.2)

    def set_x_span(self, x0: float, width: float) -> None:
        """x range (s) the curve can occupy."""
        self.prepareGeometryChange()
        self._lane_rect = QRectF(x0, -CLIP_LANES - 0.1, width, 2 * CLIP_LANES + 0.2)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt override)
        return self._lane_rect


class TraceView(QWidget):
    """Stacked live traces of every channel: the clean ring, or the raw one while processing
    is down (:meth:`show_notice`).

    Args:
        clean: the session's clean ring (shown while monitoring).
        raw: the session's raw ring (shown band-passed while processing is down).
        montage: one channel per ring column (labels, sides).
        sample_rate_hz: sample rate of the rings (Hz).
        events: the session's event log (artifact spans, EMG events, markers are drawn).
        frame_interval_ms: redraw period (ms); 33 ≈ 30 fps, 16 ≈ 60 fps.

    Signals:
        frame_drawn(int): after each frame that drew new samples: absolute index one past the
            newest sample now handed to the curves.
        channel_clicked(int): a channel label was clicked.
        review_changed(float): the wheel scrolled the review to this many seconds back.
    """

    frame_drawn = Signal(int)
    channel_clicked = Signal(int)
    review_changed = Signal(float)

    def __init__(self, clean: RingBuffer, raw: RingBuffer, montage: Montage,
                 sample_rate_hz: float, events: EventLog, frame_interval_ms: int = 20,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        theme.configure_pyqtgraph()
        self._feed = TraceFeed(clean, raw, sample_rate_hz)
        self._fs = float(sample_rate_hz)
        self._n = len(montage.channels)
        self._timebase_s = 10.0
        self._sensitivity_uv = 50.0
        self._channel_sensitivity: dict[int, float] = {}
        self._scroll = False
        self._review: ColumnBuffer | None = None  # history shown instead of the live buffer
        self._review_back = 0  # samples between the newest sample and the history's end
        self.review_enabled = False  # wheel scrolls back (set while a replay is paused)
        self._columns = 0
        self._buffer: ColumnBuffer | None = None
        self._x = np.empty(0)
        self._dirty = True
        self.frames = 0
        self.last_drawn_index = 0

        self._labels = ChannelLabels(montage)
        self._labels.channel_clicked.connect(self.channel_clicked)
        self._plot_widget = pg.PlotWidget()
        self._plot_widget.setFrameShape(pg.QtWidgets.QFrame.Shape.NoFrame)
        self.plot = self._plot_widget.getPlotItem()
        self._setup_plot()
        self.banner = TraceBanner()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        row = QHBoxLayout()
        row.setSpacing(0)
        row.addWidget(self._labels)
        row.addWidget(self._plot_widget, 1)
        layout.addLayout(row, 1)

        self.curves: list[LaneCurve] = []
        vb = self.plot.getViewBox()
        for i, ch in enumerate(montage.channels):
            curve = LaneCurve(pen=pg.mkPen(theme.side_colour(ch.side), width=1),
                              antialias=False, connect="pairs", skipFiniteCheck=False)
            curve.setSegmentedLineMode("on")
            curve.setPos(0, self._n - 1 - i + 0.5)
            vb.addItem(curve, ignoreBounds=True)
            self.curves.append(curve)
        self._grid = pg.PlotCurveItem(pen=pg.mkPen(theme.GRID, width=1), connect="pairs",
                                      antialias=False)
        self._grid.setZValue(-20)
        vb.addItem(self._grid, ignoreBounds=True)
        self._erase_line = pg.InfiniteLine(angle=90, movable=False,
                                           pen=pg.mkPen(theme.ERASE_BAR, width=1))
        self._erase_line.setZValue(10)
        vb.addItem(self._erase_line, ignoreBounds=True)
        self._overlays = TraceOverlays(vb, events, self._n, self._fs)
        vb.sigResized.connect(self._on_resized)

        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(frame_interval_ms)
        self._timer.timeout.connect(self.update_frame)
        self._update_label_sensitivities()

    # --- setup ------------------------------------------------------------------------------

    def _setup_plot(self) -> None:
        p = self.plot
        p.hideAxis("left")
        p.showAxis("bottom")
        p.setMenuEnabled(False)
        p.hideButtons()
        p.setMouseEnabled(False, False)
        p.getViewBox().disableAutoRange()
        p.getViewBox().setDefaultPadding(0.0)
        p.layout.setContentsMargins(0, 4, 8, 0)
        axis = p.getAxis("bottom")
        axis.setPen(pg.mkPen(theme.GRID))
        axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
        axis.setLabel("s", color=theme.TEXT_DIM)

    # --- public controls ----------------------------------------------------------------------

    @property
    def timebase_s(self) -> float:
        """Seconds across the screen."""
        return self._timebase_s

    @property
    def sensitivity_uv(self) -> float:
        """Global sensitivity (µV/div)."""
        return self._sensitivity_uv

    @property
    def scroll_mode(self) -> bool:
        """True: newest data at the right edge, moving left; False: sweep with an erase bar."""
        return self._scroll

    def channel_sensitivity(self, channel: int) -> float:
        """Sensitivity of one channel (µV/div): its own if set, else the global one."""
        return self._channel_sensitivity.get(channel, self._sensitivity_uv)

    def channel_overrides(self) -> dict[int, float]:
        """Channels whose sensitivity differs from the global one (index → µV/div)."""
        return dict(self._channel_sensitivity)

    def set_sensitivity(self, uv_per_div: float) -> None:
        """Global sensitivity (µV/div) for channels without their own."""
        self._sensitivity_uv = float(uv_per_div)
        self._update_label_sensitivities()
        self._dirty = True

    def set_channel_sensitivity(self, channel: int, uv_per_div: float | None) -> None:
        """Own sensitivity of ``channel`` (µV/div); ``None`` returns it to the global one."""
        if uv_per_div is None:
            self._channel_sensitivity.pop(channel, None)
        else:
            self._channel_sensitivity[channel] = float(uv_per_div)
        self._update_label_sensitivities()
        self._dirty = True

    def set_timebase(self, seconds: float) -> None:
        """Seconds across the screen (refills the display from the ring)."""
        self._timebase_s = float(seconds)
        self._rebuild()

    @property
    def _scrolling(self) -> bool:
        """Scroll layout: chosen, or forced while reviewing history."""
        return self._scroll or self._review is not None

    @property
    def review_s(self) -> float:
        """How far back (s) the shown window ends before the newest sample (0 = live)."""
        return self._review_back / self._fs if self._review is not None else 0.0

    def max_review_s(self) -> float:
        """Furthest the view can scroll back: what the ring holds beyond one window (s)."""
        ring = self._feed.ring
        return max(0.0, (min(ring.capacity, ring.published)
                         - self._window_samples()) / self._fs)

    def set_review(self, back_s: float) -> float:
        """Show the window ending ``back_s`` seconds before the newest sample (scroll layout,
        up to :meth:`max_review_s`); 0 returns to the live display. Returns the seconds used."""
        back = round(min(max(0.0, back_s), self.max_review_s()) * self._fs)
        if back <= 0 or self._buffer is None:
            if self._review is not None:
                self._review = None
                self._review_back = 0
                self._set_x()
                self._overlays.reset()  # re-read overlays for the live window
                self._dirty = True
                self.update_frame()
            return 0.0
        window = self._window_samples()
        got = self._feed.latest(window + back)
        end = got.stop - back
        review = ColumnBuffer(self._columns, window, self._n)
        keep = got.data[: max(0, end - got.start)]
        review.push(got.start, keep)
        was = self._review
        self._review, self._review_back = review, back
        if was is None:
            self._set_x()
            self._overlays.reset()  # the whole log: history may be older than live
        self._dirty = True
        self.update_frame()
        return back / self._fs

    def wheelEvent(self, event) -> None:  # noqa: ANN001, N802 (Qt override)
        """While review is enabled the wheel scrolls back / forward by a tenth of the window."""
        if not self.review_enabled:
            super().wheelEvent(event)
            return
        steps = event.angleDelta().y() / 120.0
        self.set_review(self.review_s + steps * self._timebase_s / 10)
        self.review_changed.emit(self.review_s)
        event.accept()

    def set_scroll_mode(self, scroll: bool) -> None:
        """Scroll (True) or sweep with erase bar (False)."""
        self._scroll = bool(scroll)
        self._set_x()
        self._dirty = True

    @property
    def raw_mode(self) -> bool:
        """True while the traces show the raw signal band-passed in the view."""
        return self._feed.raw_mode

    def set_open_artifacts(self, spans: Sequence[ArtifactSpan]) -> None:
        """Tint the artifact spans open now (e.g. cautery going on) up to the newest sample."""
        if self._overlays.set_open(spans):
            self._dirty = True

    @property
    def overrun_samples(self) -> int:
        """Samples per channel the view lost because it fell a whole ring behind."""
        return self._feed.overrun_samples

    def show_notice(self, notice: TraceNotice | None) -> None:
        """Show a blinding technical alarm's banner (None: hide it); while ``notice.raw`` the
        traces go on with the raw signal, back to the clean ring once it is not — each switch
        continues at the sample index the view had reached."""
        shown = self.banner.isVisibleTo(self)
        self.banner.show_notice(notice)
        if self.banner.isVisibleTo(self) != shown:  # the lanes moved: so do the labels
            QTimer.singleShot(0, self, self._place_labels)
        raw = notice is not None and notice.raw
        if raw != self._feed.raw_mode:
            self._feed.set_raw(raw, self._buffer.newest if self._buffer is not None else 0)
            self._dirty = True

    def start(self) -> None:
        """Start pulling and drawing on the timer."""
        if self._buffer is None:
            self._rebuild()
        self._timer.start()

    def stop(self) -> None:
        """Stop the redraw timer (the ring and its producer are not touched)."""
        self._timer.stop()

    # --- data ----------------------------------------------------------------------------------

    def _window_samples(self) -> int:
        return max(MIN_COLUMNS, int(round(self._timebase_s * self._fs)))

    def _on_resized(self) -> None:
        width = int(self.plot.getViewBox().width())
        if max(MIN_COLUMNS, width) != self._columns:
            self._rebuild()
        self._place_labels()

    def _place_labels(self) -> None:
        """Line the labels up with the lanes (in the label widget's own pixel rows)."""
        rect = self.plot.getViewBox().sceneBoundingRect()
        view = self._plot_widget
        offset = self._labels.y()
        top = view.mapTo(self, view.mapFromScene(rect.topLeft())).y() - offset
        bottom = view.mapTo(self, view.mapFromScene(rect.bottomLeft())).y() - offset
        self._labels.set_geometry_band(float(top), float(bottom))

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 (Qt override)
        super().resizeEvent(event)
        QTimer.singleShot(0, self, self._place_labels)  # after the layout moved the children

    def _rebuild(self) -> None:
        """New column buffer for the current width and timebase, refilled from the ring."""
        self._review, self._review_back = None, 0  # history is re-entered by the caller
        width = int(self.plot.getViewBox().width())
        window = self._window_samples()
        self._columns = min(max(MIN_COLUMNS, width), window)
        self._buffer = ColumnBuffer(self._columns, window, self._n)
        recent = self._feed.restart(window)
        self._buffer.push(recent.start, recent.data)
        self._set_x()
        self._draw_grid()
        self._dirty = True

    def _set_x(self) -> None:
        """x of the 2 points per column (s): sweep 0…T, scroll −T…0."""
        if self._buffer is None:
            return
        k = self._columns
        dt = self._timebase_s / k
        x = np.empty(2 * k)
        x[0::2] = x[1::2] = (np.arange(k) + 0.5) * dt
        if self._scrolling:
            x -= self._timebase_s
        self._x = x
        x0 = -self._timebase_s if self._scrolling else 0.0
        for curve in self.curves:
            curve.set_x_span(x0, self._timebase_s)
        self.plot.getViewBox().setRange(xRange=(x0, x0 + self._timebase_s), yRange=(0, self._n),
                                        padding=0)
        self._draw_grid()

    def _draw_grid(self) -> None:
        """Faint lane separators and one vertical line per second (per 5 s above 10 s)."""
        t0 = -self._timebase_s if self._scrolling else 0.0
        t1 = t0 + self._timebase_s
        step = 1.0 if self._timebase_s <= 10 else 5.0
        xs: list[float] = []
        ys: list[float] = []
        for lane in range(1, self._n):
            xs += [t0, t1]
            ys += [lane, lane]
        for t in np.arange(np.ceil(t0 / step) * step, t1 + 1e-9, step):
            xs += [t, t]
            ys += [0, self._n]
        self._grid.setData(np.array(xs), np.array(ys), connect="pairs")

    def _update_label_sensitivities(self) -> None:
        self._labels.set_sensitivities(
            [self.channel_sensitivity(i) for i in range(self._n)],
            [i in self._channel_sensitivity for i in range(self._n)])

    def update_frame(self) -> None:
        """Pull new samples, fold them into the columns and redraw if anything changed."""
        buf = self._buffer
        if buf is None:
            return
        got = self._feed.read()
        if got.n_samples:
            buf.push(got.start, got.data)
            self._dirty = True
        if self._overlays.poll():
            self._dirty = True
        if not self._dirty:
            return
        self._dirty = False
        if self._review is not None:
            buf = self._review
        y = buf.interleaved(self._scrolling)
        if not self._scrolling and buf.head_slot >= 0:
            gap = max(2, int(self._columns * ERASE_FRACTION))
            slots = (np.arange(1, gap + 1) + buf.head_slot) % self._columns
            y[2 * slots] = np.nan
            y[2 * slots + 1] = np.nan
            self._erase_line.setPos((buf.head_slot + 1) * self._timebase_s / self._columns)
            self._erase_line.show()
        else:
            self._erase_line.hide()
        scale = np.array([1.0 / (2.0 * self.channel_sensitivity(i)) for i in range(self._n)],
                         dtype=np.float32)
        px = self._n / max(1.0, self.plot.getViewBox().height())  # one pixel, in lanes
        lanes = bridge_columns(np.clip(y * scale, -CLIP_LANES, CLIP_LANES), px).T.copy()
        for curve, row in zip(self.curves, lanes):
            curve.setData(self._x, row)
        window = self._window_samples()
        erase = 0 if self._scrolling else int(window * ERASE_FRACTION) + 2 * window // self._columns
        self._overlays.draw(buf.newest, window, self._columns, self._scrolling, erase)
        self.frames += 1
        self.last_drawn_index = buf.newest
        self.frame_drawn.emit(buf.newest)
