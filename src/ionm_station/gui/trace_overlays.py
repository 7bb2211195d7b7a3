"""Overlays of the trace view, from the event log: artifact tints, EMG-event bars, markers.

Artifact spans are tinted across their channels' lanes — closed ones from the event log, open
ones (cautery going on now) from the state snapshot up to the newest sample — detected EMG events are coloured bars
at the top of their channel's lane (dim when below threshold), user markers vertical lines
across all lanes. One reusable pool of rectangles per view; drawn in the view's coordinates
(x in seconds of the window, y in lanes: channel ``i`` occupies ``[n-1-i, n-i]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.events import Event, EventLog
from ionm_station.gui import theme

#: Event kinds drawn.
KINDS = ("artifact", "emg_event", "marker")
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


def span_of(e: Event) -> _Span | None:
    """How event ``e`` is drawn (None: not drawn)."""
    d = e.data
    if e.kind == "artifact":
        tint = theme.ARTIFACT_TINTS.get(d.get("kind", ""), theme.ARTIFACT_TINTS["cautery"])
        return _Span(e.start, e.end, e.channels, QColor(*tint), (0.0, 1.0))
    if e.kind == "emg_event":
        key = d.get("kind", "spike")
        if key == "train":
            key = "train_A" if d.get("train_type") == "A" else "train_B"
        colour = QColor(theme.EVENT_COLOURS.get(key, theme.EVENT_COLOURS["spike"]))
        colour.setAlpha(235 if d.get("above_threshold", True) else 110)
        return _Span(e.start, e.end, e.channels, colour, (0.84, 0.98))
    if e.kind == "marker":
        return _Span(e.start, e.start, (), QColor(theme.MARKER_COLOUR), (0.0, 1.0))
    return None


def screen_ranges(a: int, b: int, newest: int, window: int, fs: float,
                  scrolling: bool) -> list[tuple[float, float]]:
    """x ranges (s) where absolute samples [a, b) appear (a sweep may wrap them into two)."""
    if scrolling:
        return [((a - newest) / fs, (b - newest) / fs)]
    out = []
    while a < b:
        lap_end = (a // window + 1) * window
        stop = min(b, lap_end)
        out.append(((a % window) / fs, ((stop - 1) % window + 1) / fs))
        a = stop
    return out


class TraceOverlays:
    """Follows the event log with its own cursor and draws what falls in the window.

    Args:
        viewbox: the trace plot's view box.
        events: the session's event log.
        n_channels: lanes of the view.
        sample_rate_hz: to turn sample indices into seconds.
    """

    def __init__(self, viewbox: pg.ViewBox, events: EventLog, n_channels: int,
                 sample_rate_hz: float) -> None:
        self._vb = viewbox
        self._events = events
        self._n = n_channels
        self._fs = sample_rate_hz
        self._cursor = 0
        self._spans: list[Event] = []
        self._open: tuple[Event, ...] = ()
        self._rects: list[QGraphicsRectItem] = []

    def reset(self) -> None:
        """Forget what was taken and re-read the whole log (history may be older than live)."""
        self._cursor = 0
        self._spans = []

    def set_open(self, spans: Sequence[ArtifactSpan]) -> bool:
        """The artifact spans open now (tinted up to the newest sample); True if they changed."""
        opened = tuple(Event("artifact", s.start, None, s.channels, {"kind": s.kind}) for s in spans)
        changed = opened != self._open
        self._open = opened
        return changed

    def poll(self) -> bool:
        """Take new events from the log; True if any is drawn."""
        new, self._cursor = self._events.since(self._cursor)
        drawn = [e for e in new if e.kind in KINDS]
        self._spans.extend(drawn)
        return bool(drawn)

    def draw(self, newest: int, window: int, columns: int, scrolling: bool,
             erase: int) -> None:
        """Place the overlays of samples ``[newest - window + erase, newest)``."""
        oldest = newest - window + erase
        self._spans = [e for e in self._spans if e.end >= newest - window]
        min_w = MIN_MARK_PX * window // columns
        rects: list[tuple[QRectF, QColor]] = []
        for e in [*self._spans, *(replace(o, stop=newest) for o in self._open)]:
            span = span_of(e)
            if span is None:
                continue
            a, b = max(span.start, oldest), min(max(span.stop, span.start + min_w), newest)
            if b <= a:
                continue
            for x0, x1 in screen_ranges(a, b, newest, window, self._fs, scrolling):
                if not span.channels:
                    rects.append((QRectF(x0, 0, x1 - x0, self._n), span.colour))
                for c in span.channels:
                    base = self._n - 1 - c
                    rects.append((QRectF(x0, base + span.band[0], x1 - x0,
                                         span.band[1] - span.band[0]), span.colour))
        while len(self._rects) < len(rects):
            item = QGraphicsRectItem()
            item.setPen(QPen(Qt.PenStyle.NoPen))
            item.setZValue(5)
            self._vb.addItem(item, ignoreBounds=True)
            self._rects.append(item)
        for item, (rect, colour) in zip(self._rects, rects):
            item.setRect(rect)
            item.setBrush(QBrush(colour))
            item.show()
        for item in self._rects[len(rects):]:
            item.hide()
