"""TraceView: the live multichannel EMG display (one plot, one curve per channel, stacked).

The view pulls from its own cursor into a ring on a QTimer, folds the new samples into a
:class:`~ionm_station.gui.decimate.ColumnBuffer` (min/max per pixel column) and hands each
curve one vertical bar per pixel column (2 points, ``connect='pairs'``, drawn with
``drawLines``; see :func:`~ionm_station.gui.decimate.bridge_columns`) — never the raw
samples. Measured at 32 ch × 1424 columns offscreen, this paints in about half the time of a
``connect='finite'`` min/max polyline, whose NaN splitting alone cost ~13 ms per frame with a
sweep erase bar. Fixed ranges, thin pens, no antialiasing. NaN columns (gaps, blanked spans,
the sweep erase bar) are dropped, which breaks the trace. Artifact spans from the event log are tinted, detected EMG events
marked as coloured bars at the top of their channel's lane, user markers as vertical lines.

Geometry: channel ``i`` (0 = top) occupies the lane ``[n-1-i, n-i]`` in y; one lane is two
divisions, so a sensitivity of S µV/div puts ±2·S µV at the lane edges. Signals larger than
:data:`CLIP_LANES` of a lane are clipped so a railed channel cannot paint over its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QSizePolicy, QWidget

from ionm_station.events import Event, EventLog
from ionm_station.gui import theme
from ionm_station.gui.decimate import ColumnBuffer, bridge_columns
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
#: Width (px) of the channel label column.
LABEL_WIDTH = 168
#: Thinnest event mark (px), so a 5 ms spike stays visible at 20 s per screen.
MIN_MARK_PX = 3


@dataclass(frozen=True)
class _Span:
    """A rectangle to draw: absolute sample range, lanes (channels) and colour."""

    start: int
    stop: int
    channels: tuple[int, ...]
    colour: QColor
    band: tuple[float, float]  # (bottom, top) within a lane, 0..1; (0, 1) = whole lane
    above: bool  # drawn over the traces rather than under them


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


class ChannelLabels(QWidget):
    """Labels left of the traces: root-side in its side colour, muscle and sensitivity.

    Emits :attr:`channel_clicked` with the channel index when a label is clicked.
    """

    channel_clicked = Signal(int)

    def __init__(self, montage: Montage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._montage = montage
        self._top = 0.0
        self._bottom = 1.0
        self._sensitivity: list[float] = [50.0] * len(montage.channels)
        self._custom: list[bool] = [False] * len(montage.channels)
        self.setFixedWidth(LABEL_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Expanding)

    def set_geometry_band(self, top: float, bottom: float) -> None:
        """Pixel rows (in this widget) of the top and bottom edge of the lanes."""
        if (top, bottom) != (self._top, self._bottom):
            self._top, self._bottom = top, bottom
            self.update()

    def set_sensitivities(self, values_uv: list[float], custom: list[bool]) -> None:
        """µV/div per channel and whether it differs from the global setting."""
        self._sensitivity, self._custom = list(values_uv), list(custom)
        self.update()

    def _lane_height(self) -> float:
        return (self._bottom - self._top) / max(1, len(self._montage.channels))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        lane = int((event.position().y() - self._top) // max(1.0, self._lane_height()))
        if 0 <= lane < len(self._montage.channels):
            self.channel_clicked.emit(lane)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.PANEL))
        h = self._lane_height()
        big = QFont(self.font())
        big.setBold(True)
        big.setPixelSize(max(9, min(17, int(h * 0.36))))
        small = QFont(self.font())
        small.setPixelSize(max(8, min(13, int(h * 0.25))))
        two_lines = h >= 30
        w = self.width() - 8
        for i, ch in enumerate(self._montage.channels):
            y0 = self._top + i * h
            if i:
                p.setPen(QColor(theme.LANE_LINE))
                p.drawLine(0, int(y0), self.width(), int(y0))
            p.setPen(QColor(theme.side_colour(ch.side)))
            p.setFont(big)
            head = f"{ch.root} {ch.side}" if ch.root else ch.label
            sens = f"{self._sensitivity[i]:g} µV" + ("*" if self._custom[i] else "")
            if two_lines:
                p.drawText(QRectF(8, y0, w, h / 2), Qt.AlignmentFlag.AlignLeft
                           | Qt.AlignmentFlag.AlignBottom, head)
                p.setFont(small)
                p.setPen(QColor(theme.TEXT_DIM))
                p.drawText(QRectF(8, y0 + h / 2, w, h / 2), Qt.AlignmentFlag.AlignLeft
                           | Qt.AlignmentFlag.AlignTop, ch.muscle or ch.label)
                p.drawText(QRectF(8, y0, w, h / 2), Qt.AlignmentFlag.AlignRight
                           | Qt.AlignmentFlag.AlignBottom, sens)
            else:
                p.drawText(QRectF(8, y0, w, h), Qt.AlignmentFlag.AlignLeft
                           | Qt.AlignmentFlag.AlignVCenter, head)
                p.setFont(small)
                p.setPen(QColor(theme.TEXT_DIM))
                p.drawText(QRectF(8, y0, w, h), Qt.AlignmentFlag.AlignRight
                           | Qt.AlignmentFlag.AlignVCenter, f"{ch.muscle[:14]}  {sens}")
        p.end()


class TraceView(QWidget):
    """Stacked live traces of every channel of one ring.

    Args:
        ring: ring to display (the session's ``filtered`` ring: the clean signal).
        montage: one channel per ring column (labels, sides).
        sample_rate_hz: sample rate of the ring (Hz).
        events: the session's event log (artifact spans, EMG events, markers are drawn).
        frame_interval_ms: redraw period (ms); 33 ≈ 30 fps, 16 ≈ 60 fps.

    Signals:
        frame_drawn(int): after each frame that drew new samples: absolute index one past the
            newest sample now handed to the curves.
        channel_clicked(int): a channel label was clicked.
    """

    frame_drawn = Signal(int)
    channel_clicked = Signal(int)
    review_changed = Signal(float)

    def __init__(self, ring: RingBuffer, montage: Montage, sample_rate_hz: float,
                 events: EventLog, frame_interval_ms: int = 20,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        theme.configure_pyqtgraph()
        self._ring = ring
        self._montage = montage
        self._fs = float(sample_rate_hz)
        self._events = events
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
        self._reader = ring.reader()
        self._x = np.empty(0)
        self._dirty = True
        self._event_cursor = 0
        self._spans: list[Event] = []
        self.frames = 0
        self.last_drawn_index = 0

        self._labels = ChannelLabels(montage)
        self._labels.channel_clicked.connect(self.channel_clicked)
        self._plot_widget = pg.PlotWidget()
        self._plot_widget.setFrameShape(pg.QtWidgets.QFrame.Shape.NoFrame)
        self.plot = self._plot_widget.getPlotItem()
        self._setup_plot()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._labels)
        layout.addWidget(self._plot_widget, 1)

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
        self._rects: list[QGraphicsRectItem] = []
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
        return max(0.0, (min(self._ring.capacity, self._ring.published)
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
                self._spans = []
                self._event_cursor = 0  # re-read overlays for the live window
                self._dirty = True
                self.update_frame()
            return 0.0
        window = self._window_samples()
        got = self._ring.latest(window + back)
        end = got.stop - back
        review = ColumnBuffer(self._columns, window, self._n)
        keep = got.data[: max(0, end - got.start)]
        review.push(got.start, keep)
        was = self._review
        self._review, self._review_back = review, back
        if was is None:
            self._set_x()
            self._spans = []
            self._event_cursor = 0  # overlays of the whole log: history may be older than live
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
        rect = self.plot.getViewBox().sceneBoundingRect()
        view = self._plot_widget
        top = view.mapTo(self, view.mapFromScene(rect.topLeft())).y()
        bottom = view.mapTo(self, view.mapFromScene(rect.bottomLeft())).y()
        self._labels.set_geometry_band(float(top), float(bottom))

    def _rebuild(self) -> None:
        """New column buffer for the current width and timebase, refilled from the ring."""
        self._review, self._review_back = None, 0  # history is re-entered by the caller
        width = int(self.plot.getViewBox().width())
        window = self._window_samples()
        self._columns = min(max(MIN_COLUMNS, width), window)
        self._buffer = ColumnBuffer(self._columns, window, self._n)
        recent = self._ring.latest(window)
        self._buffer.push(recent.start, recent.data)
        self._reader = self._ring.reader(start=max(recent.stop, self._buffer.newest))
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
        got = self._reader.read()
        if got.n_samples:
            buf.push(got.start, got.data)
            self._dirty = True
        new_events, self._event_cursor = self._events.since(self._event_cursor)
        if new_events:
            self._spans.extend(e for e in new_events
                               if e.kind in ("artifact", "emg_event", "marker"))
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
        self._draw_spans(buf.newest)
        self.frames += 1
        self.last_drawn_index = buf.newest
        self.frame_drawn.emit(buf.newest)

    # --- overlays --------------------------------------------------------------------------------

    def _span_of(self, e: Event) -> _Span | None:
        d = e.data
        if e.kind == "artifact":
            tint = theme.ARTIFACT_TINTS.get(d.get("kind", ""), theme.ARTIFACT_TINTS["cautery"])
            return _Span(e.start, e.end, e.channels, QColor(*tint), (0.0, 1.0), True)
        if e.kind == "emg_event":
            key = d.get("kind", "spike")
            if key == "train":
                key = "train_A" if d.get("train_type") == "A" else "train_B"
            colour = QColor(theme.EVENT_COLOURS.get(key, theme.EVENT_COLOURS["spike"]))
            colour.setAlpha(235 if d.get("above_threshold", True) else 110)
            return _Span(e.start, e.end, e.channels, colour, (0.84, 0.98), True)
        if e.kind == "marker":
            return _Span(e.start, e.start, (), QColor(theme.MARKER_COLOUR), (0.0, 1.0), True)
        return None

    def _draw_spans(self, newest: int) -> None:
        """Tint artifact spans, mark EMG events and markers inside the visible window."""
        window = self._window_samples()
        erase = 0 if self._scrolling else int(window * ERASE_FRACTION) + 2 * window // self._columns
        oldest = newest - window + erase
        self._spans = [e for e in self._spans if e.end >= newest - window]
        min_w = MIN_MARK_PX * window // self._columns
        rects: list[tuple[QRectF, QColor, bool]] = []
        for e in self._spans:
            span = self._span_of(e)
            if span is None:
                continue
            a, b = max(span.start, oldest), min(max(span.stop, span.start + min_w), newest)
            if b <= a:
                continue
            lanes = span.channels or tuple(range(self._n))
            for x0, x1 in self._screen_ranges(a, b, newest, window):
                if span.channels:
                    for c in lanes:
                        base = self._n - 1 - c
                        rects.append((QRectF(x0, base + span.band[0], x1 - x0,
                                             span.band[1] - span.band[0]), span.colour,
                                      span.above))
                else:
                    rects.append((QRectF(x0, 0, x1 - x0, self._n), span.colour, span.above))
        vb = self.plot.getViewBox()
        while len(self._rects) < len(rects):
            item = QGraphicsRectItem()
            item.setPen(QPen(Qt.PenStyle.NoPen))
            vb.addItem(item, ignoreBounds=True)
            self._rects.append(item)
        for item, (rect, colour, above) in zip(self._rects, rects):
            item.setRect(rect)
            item.setBrush(QBrush(colour))
            item.setZValue(5 if above else -10)
            item.show()
        for item in self._rects[len(rects):]:
            item.hide()

    def _screen_ranges(self, a: int, b: int, newest: int,
                       window: int) -> list[tuple[float, float]]:
        """x ranges (s) where absolute samples [a, b) appear (sweep may wrap into two)."""
        fs = self._fs
        if self._scrolling:
            return [((a - newest) / fs, (b - newest) / fs)]
        out = []
        while a < b:
            lap_end = (a // window + 1) * window
            stop = min(b, lap_end)
            out.append(((a % window) / fs, ((stop - 1) % window + 1) / fs))
            a = stop
        return out
