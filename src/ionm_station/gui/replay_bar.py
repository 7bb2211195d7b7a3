"""Replay controls: play/pause, speed, a seekable timeline with event ticks, previous/next event.

The bar only emits requests; whoever owns the replay source connects them (it never modifies
a recording). Positions are seconds from the start of the recording.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

from ionm_station.gui import theme

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Tick colours on the timeline by event kind (others: dim grey).
TICK_COLOURS = {"alarm": "#ff3b3b", "emg_event": "#ffd84d", "artifact": "#6f8fd8",
                "marker": theme.MARKER_COLOUR, "stimulus": "#c792ea"}


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


class Timeline(QWidget):
    """A track with event ticks and a position handle; click or drag to seek.

    Signals:
        seek_requested(float): position (s) the user clicked or dragged to.
    """

    seek_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.duration_s = 0.0
        self.position_s = 0.0
        self._ticks: list[tuple[float, str]] = []
        self.setMinimumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_ticks(self, ticks: list[tuple[float, str]]) -> None:
        """Event ticks as (time s, kind)."""
        self._ticks = list(ticks)
        self.update()

    def _x(self, t: float) -> float:
        return 6 + (self.width() - 12) * (t / self.duration_s if self.duration_s > 0 else 0.0)

    def _seek_to(self, x: float) -> None:
        if self.duration_s > 0:
            frac = min(1.0, max(0.0, (x - 6) / max(1, self.width() - 12)))
            self.seek_requested.emit(frac * self.duration_s)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self._seek_to(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._seek_to(event.position().x())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        h = self.height()
        p.fillRect(self.rect(), QColor(theme.BACKGROUND))
        p.fillRect(QRectF(6, h / 2 - 3, self.width() - 12, 6), QColor(theme.GRID))
        p.fillRect(QRectF(6, h / 2 - 3, self._x(self.position_s) - 6, 6), QColor("#2d6cdf"))
        for t, kind in self._ticks:
            p.setPen(QPen(QColor(TICK_COLOURS.get(kind, theme.TEXT_DIM)), 2))
            x = self._x(t)
            p.drawLine(int(x), 3, int(x), int(h / 2 - 5))
        p.setPen(QPen(QColor("#ffffff"), 3))
        x = self._x(self.position_s)
        p.drawLine(int(x), 2, int(x), h - 2)
        p.end()


class ReplayBar(QWidget):
    """Transport controls for replaying a recording.

    Signals:
        play_toggled(bool): True to play, False to pause.
        speed_changed(float): replay speed (× real time).
        seek_requested(float): jump to this position (s).
        step_event(int): -1 previous event, +1 next event.
    """

    play_toggled = Signal(bool)
    speed_changed = Signal(float)
    seek_requested = Signal(float)
    step_event = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._playing = True
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        self.prev_button = QPushButton("◀◀ Prev event")
        self.prev_button.setToolTip("Jump to the previous event (Ctrl+Left)")
        self.prev_button.clicked.connect(lambda: self.step_event.emit(-1))
        self.play_button = QPushButton()
        self.play_button.setToolTip("Play / pause the replay (P)")
        self.play_button.setMinimumWidth(90)
        self.play_button.clicked.connect(lambda: self.set_playing(not self._playing, emit=True))
        self.next_button = QPushButton("Next event ▶▶")
        self.next_button.setToolTip("Jump to the next event (Ctrl+Right)")
        self.next_button.clicked.connect(lambda: self.step_event.emit(1))
        self.speed = QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(
            lambda i: self.speed_changed.emit(float(self.speed.itemData(i))))
        self.timeline = Timeline()
        self.timeline.seek_requested.connect(self.seek_requested)
        self.time_label = QLabel()
        self.time_label.setMinimumWidth(150)
        self.time_label.setStyleSheet("font-family: monospace; font-size: 14px;")
        badge = QLabel("REPLAY · read-only")
        badge.setStyleSheet("color: #ffb347; font-weight: bold; padding: 0 8px;")
        for w in (badge, self.prev_button, self.play_button, self.next_button, self.speed):
            layout.addWidget(w)
        layout.addWidget(self.timeline, 1)
        layout.addWidget(self.time_label)
        self.set_playing(True)
        self.set_position(0.0, 0.0)

    @property
    def playing(self) -> bool:
        """Whether the bar shows the replay as playing."""
        return self._playing

    def set_playing(self, playing: bool, emit: bool = False) -> None:
        """Show play or pause; with ``emit`` also ask the owner to switch."""
        self._playing = playing
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
        if emit:
            self.play_toggled.emit(playing)

    def set_position(self, position_s: float, duration_s: float) -> None:
        """Current position and total length of the recording (s)."""
        self.timeline.position_s = position_s
        self.timeline.duration_s = duration_s
        self.timeline.update()
        self.time_label.setText(f"{_clock(position_s)} / {_clock(duration_s)}")

    def set_events(self, ticks: list[tuple[float, str]]) -> None:
        """Events to mark on the timeline as (time s, kind)."""
        self.timeline.set_ticks(ticks)
