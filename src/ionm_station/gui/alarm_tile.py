"""One alarm tile: a root and side's state, painted so its text fills the tile and never cuts.

Colours come from :mod:`ionm_station.gui.theme`: the clinical traffic lights, and the technical
magenta (NOT MONITORING) and cyan (SIGNAL LOST), hatched (slate grey when the run ended on
purpose). A technical condition that does not
blind the tile (RECORDING STOPPED, LOW SAMPLE RATE) is a teal band at its foot, under the
clinical state. Text placement is :func:`~ionm_station.gui.tile_layout.layout_tile`.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ionm_station.alarms import TileState
from ionm_station.gui import theme
from ionm_station.gui.tile_layout import TileLayout, layout_tile, size_unit, tile_texts

#: Gap between the tile's rounded rectangle and its widget edge (px); corner radius (px).
INSET, RADIUS = 3.0, 8.0


class AlarmTile(QWidget):
    """One tile, keyed like the alarm engine (``"L5-L"``, or a rootless channel's label).

    Args:
        key: the tile key.
        title: what the tile is headed with: the root, or the label of a rootless channel.

    Emits :attr:`clicked` with its key (clicking a tile acknowledges it).
    """

    clicked = Signal(str)

    def __init__(self, key: str, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.title = title
        self._tile = TileState(key=key, root=title, side="")
        self._layout: TileLayout | None = None
        self._unit: float | None = None
        self._flash_dark = False
        self.setMinimumSize(90, 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    @property
    def state(self) -> str:
        """The state shown: quiet, activity, alarm, blanked, no_signal, not_monitoring or
        signal_lost."""
        return self._tile.state

    @property
    def tile(self) -> TileState:
        """The tile state last shown."""
        return self._tile

    @property
    def flashing(self) -> bool:
        """True while a clinical alarm is latched (unacknowledged)."""
        return self._tile.state == "alarm" and self._tile.latched

    def set_tile(self, tile: TileState) -> None:
        """Show a new state (relaid out and repainted only when something changed)."""
        if tile != self._tile:
            self._tile = tile
            self._layout = None
            texts = tile_texts(tile, self.title)
            self.setToolTip("\n".join(t for t in (f"{self.key}: {texts.headline}", texts.reason,
                                                  texts.details, texts.technical) if t))
            self.update()

    def set_flash_phase(self, dark: bool) -> None:
        """Flash half-cycle (only a latched alarm repaints)."""
        self._flash_dark = dark
        if self.flashing:
            self.update()

    def set_size_unit(self, unit: float | None) -> None:
        """The size unit text follows (the panel's smallest tile's; None: this tile's own)."""
        if unit != self._unit:
            self._unit = unit
            self._layout = None
            self.update()

    def size_unit(self) -> float:
        """This tile's own size unit (see :func:`~ionm_station.gui.tile_layout.size_unit`)."""
        return size_unit(self.text_rect())

    def text_rect(self) -> QRectF:
        """The painted area of the tile (inside its margin)."""
        return QRectF(self.rect()).adjusted(INSET, INSET, -INSET, -INSET)

    def text_layout(self) -> TileLayout:
        """The text as painted at the current size (cached until the state or size changes)."""
        if self._layout is None:
            self._layout = layout_tile(tile_texts(self._tile, self.title), self.text_rect(),
                                       self.font(), self._unit)
        return self._layout

    def resizeEvent(self, event) -> None:  # noqa: ANN001, N802 (Qt override)
        self._layout = None
        super().resizeEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self.clicked.emit(self.key)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        t = self._tile
        bg, fg = theme.tile_colours(t.state, t.priority)
        if self.flashing and self._flash_dark:
            bg = theme.ALARM_FLASH_DARK
        r = self.text_rect()
        layout = self.text_layout()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        shape = QPainterPath()
        shape.addRoundedRect(r, RADIUS, RADIUS)
        p.setClipPath(shape)
        p.fillRect(r, QColor(bg))
        if t.state in theme.TECHNICAL_STATES:
            p.fillRect(r, QBrush(QColor(*theme.TECHNICAL_HATCH), Qt.BrushStyle.BDiagPattern))
        band_bg, band_fg = theme.TECHNICAL_BAND
        if layout.band is not None:
            p.fillRect(layout.band, QColor(band_bg))
        for line in layout.lines:
            p.setPen(QColor(band_fg if line.role == "technical" else fg))
            p.setFont(line.font)
            align = Qt.AlignmentFlag.AlignRight if line.right else Qt.AlignmentFlag.AlignLeft
            p.drawText(line.rect, align | Qt.AlignmentFlag.AlignVCenter, line.text)
        p.end()
