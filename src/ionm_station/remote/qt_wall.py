"""The supervisor's window: a thin Qt shell over the :class:`~.wall.Wall`.

One panel per room — its name, patient and procedure, case time, technical state and last
alarm over the station's own alarm tiles (:class:`~ionm_station.gui.alarm_panel.AlarmPanel`,
laid out as the station lays them) — and, over a room that cannot be heard, CONNECTION LOST
in the technical cyan. One alarm sound for the wall (the loudest room's priority, through the
station's :class:`~ionm_station.audio.AlarmSounder`, a supervised worker); a banner names the
rooms sounding and warns above the room limit. Clicking a room opens its live traces and
event log. Nothing here can act on a station: there is no button that would.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QMouseEvent
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ionm_station.audio import AlarmSounder
from ionm_station.gui import theme
from ionm_station.gui.alarm_panel import AlarmPanel
from ionm_station.gui.app import ensure_app
from ionm_station.gui.decimate import minmax_columns
from ionm_station.montage import Montage, MontageChannel
from ionm_station.remote.follow import Follower
from ionm_station.remote.mdib import Layout
from ionm_station.remote.wall import Room

#: How often the wall is redrawn (ms).
REFRESH_MS = 100
#: Seconds of trace in a room's detail view.
TRACE_S = 10.0


def tile_montage(layout: Layout) -> Montage:
    """A montage with one channel per tile, so the station's tile layout is reused."""
    return Montage("remote", tuple(MontageChannel(t.key, "", t.root, t.side)
                                   for t in layout.tiles))


def _event_text(e: dict) -> str:
    details = "; ".join(f"{k}={v}" for k, v in e.items() if k not in ("seq", "t_s", "kind"))
    return f"{e['t_s']:9.3f} s  {e['kind']}  {details}"


class RoomPanel(QFrame):
    """One room on the wall; emits :attr:`opened` with the room's key when clicked."""

    opened = Signal(str)

    def __init__(self, room: Room, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.room = room
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._layout = QVBoxLayout(self)
        self.title = QLabel()
        self.title.setStyleSheet(f"color: {theme.TEXT}; font-size: 20px; font-weight: bold;")
        self.details = QLabel()
        self.details.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.details.setWordWrap(True)
        self.banner = QLabel()
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setWordWrap(True)
        for w in (self.title, self.details, self.banner):
            self._layout.addWidget(w)
        self.tiles: AlarmPanel | None = None
        self._tiles_layout: Layout | None = None

    def refresh(self, now: float) -> None:
        """Show the room as it is now."""
        d = self.room.to_dict(now)
        case = d["case_time_s"]
        clock = "" if case is None else f"case {int(case) // 3600}:{int(case) // 60 % 60:02d}:" \
                                        f"{int(case) % 60:02d}"
        self.title.setText(f"{d['room']}   {clock}")
        alarm = d["last_alarm"]
        last = "" if not alarm else (f"last alarm: {alarm['tile']} {alarm['condition']} "
                                     f"({alarm['priority']}{', acknowledged' if alarm['signal'] == 'Ack' else ''})"
                                     f" at {time.strftime('%H:%M:%S', time.localtime(alarm['station_time_s']))}")
        self.details.setText(" · ".join(x for x in (
            f"patient {d['patient_id']}" if d["patient_id"] else "", d["procedure"],
            d["technical_text"], "SILENCED at the station" if d["silenced"] else "", last) if x))
        if d["connection_lost"]:
            bg, fg = theme.TILE_COLOURS["signal_lost"]
            what = "CONNECTION LOST" if self.room.layout is not None else d["connection"].upper()
            self.banner.setText(what + (f"\n{d['reason']}" if d["reason"] else ""))
            self.banner.setStyleSheet(f"background: {bg}; color: {fg}; font-size: 24px; "
                                      "font-weight: bold; padding: 12px;")
            self.banner.show()
        else:
            self.banner.hide()
        layout = self.room.layout
        if layout is not None and layout != self._tiles_layout:
            if self.tiles is not None:
                self.tiles.deleteLater()
            self.tiles = AlarmPanel(tile_montage(layout))
            self.tiles.acknowledge_requested.connect(lambda _key: self.opened.emit(self.room.key))
            self._layout.addWidget(self.tiles, 1)
            self._tiles_layout = layout
        if self.tiles is not None:
            self.tiles.update_tiles(self.room.tiles())
            self.tiles.setEnabled(not d["connection_lost"])

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self.opened.emit(self.room.key)


class RoomDetail(QWidget):
    """A room's live traces (min/max per pixel column, last :data:`TRACE_S`) and event log."""

    def __init__(self, room: Room) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.room = room
        self.setWindowTitle(f"IONM Station supervisor — {room.name}")
        split = QSplitter(Qt.Orientation.Vertical, self)
        self.plot = pg.PlotWidget()
        self.plot.hideAxis("left")
        self.plot.setMouseEnabled(False, False)
        self.events = QListWidget()
        split.addWidget(self.plot)
        split.addWidget(self.events)
        split.setSizes([600, 200])
        box = QVBoxLayout(self)
        box.addWidget(split)
        self._curves: list[pg.PlotDataItem] = []
        self._seen = 0
        self.resize(1100, 800)

    def refresh(self) -> None:
        """Draw the newest traces and append new events."""
        layout, waves = self.room.layout, self.room.waves
        if layout is not None and waves is not None:
            n = int(TRACE_S / layout.sample_period_s)
            data = waves.latest(n).data
            if not self._curves:
                for i, label in enumerate(layout.labels):
                    side = label.split(" ")[0][-1:] if "-" in label else ""
                    curve = self.plot.plot(pen=pg.mkPen(theme.side_colour(side), width=1),
                                           connect="finite")
                    curve.setPos(0, -i * 400.0)
                    self._curves.append(curve)
                    text = pg.TextItem(label, color=theme.TEXT_DIM, anchor=(0, 1))
                    text.setPos(0, -i * 400.0 + 150)
                    self.plot.addItem(text)
            if len(data):
                x, y = minmax_columns(data, 1500)
                x = x * layout.sample_period_s
                for i, curve in enumerate(self._curves):
                    curve.setData(x, np.clip(y[:, i], -190.0, 190.0), connect="finite")
        events = list(self.room.events)
        new = [e for e in events if e["seq"] > self._seen]
        for e in new:
            self.events.addItem(_event_text(e))
            self._seen = e["seq"]
        if new:
            self.events.scrollToBottom()


class WallWindow(QMainWindow):
    """The wall of rooms (see the module description)."""

    closed = Signal()

    def __init__(self, follower: Follower) -> None:
        super().__init__()
        self.follower = follower
        self.setWindowTitle("IONM Station — supervisor (read-only)")
        central = QWidget()
        self.setCentralWidget(central)
        box = QVBoxLayout(central)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(f"color: {theme.AMBER}; font-size: 16px; font-weight: bold;")
        box.addWidget(self.banner)
        self.grid = QGridLayout()
        box.addLayout(self.grid, 1)
        self.panels: dict[str, RoomPanel] = {}
        self.details: dict[str, RoomDetail] = {}
        self.sounder = AlarmSounder()
        follower.supervise(self.sounder)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(REFRESH_MS)
        self.resize(1600, 1000)

    def refresh(self) -> None:
        """Add new rooms, redraw every room and detail view, set the sound."""
        now = time.monotonic()
        wall = self.follower.wall
        for room in wall.rooms:
            if room.key not in self.panels:
                panel = RoomPanel(room)
                panel.opened.connect(self.open_room)
                n = len(self.panels)
                self.grid.addWidget(panel, n // 3, n % 3)
                self.panels[room.key] = panel
        for panel in self.panels.values():
            panel.refresh(now)
        for detail in self.details.values():
            if detail.isVisible():
                detail.refresh()
        sounding = wall.sounding(now)
        self.banner.setText(" · ".join(x for x in (
            wall.warning(), f"ALARM SOUND: {', '.join(sounding)}" if sounding else "",
            self.sounder.notice) if x))
        self.sounder.set_priority(wall.audible(now))

    def open_room(self, key: str) -> None:
        """Show a room's traces and event log."""
        room = next(r for r in self.follower.wall.rooms if r.key == key)
        detail = self.details.get(key) or RoomDetail(room)
        self.details[key] = detail
        detail.show()
        detail.raise_()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.timer.stop()
        self.sounder.close()
        for detail in self.details.values():
            detail.close()
        self.closed.emit()
        super().closeEvent(event)


def run_wall(follower: Follower, seconds: float | None = None) -> int:
    """Open the wall on ``follower`` until the window closes, Ctrl-C or ``seconds``."""
    app = ensure_app()
    theme.configure_pyqtgraph()
    window = WallWindow(follower)
    previous = {s: signal.signal(s, lambda *_: window.close()) for s in (signal.SIGINT,
                                                                          signal.SIGTERM)}
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    if seconds is not None:
        QTimer.singleShot(int(seconds * 1000), window.close)
    window.closed.connect(app.quit)
    try:
        follower.start()
        window.show()
        app.exec()
    finally:
        wake.stop()
        follower.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
