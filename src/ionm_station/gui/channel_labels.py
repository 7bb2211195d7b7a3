"""Channel labels left of the traces: root and side in the side's colour, muscle, µV/div.

One label per lane, laid out to the pixel rows of the plot's lanes (the trace view tells it
where they are); two lines when a lane is tall enough, one otherwise. Clicking a label selects
that channel (for its own sensitivity).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ionm_station.gui import theme
from ionm_station.montage import Montage

#: Width (px) of the label column.
LABEL_WIDTH = 168


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
