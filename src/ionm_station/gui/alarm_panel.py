"""The surgeon's alarm panel: one big tile per nerve root and side, readable across the room.

The panel only shows what the alarm engine (``session.alarms``, see
:mod:`ionm_station.alarms`) says; it has no alarm logic. Tiles are laid out anatomically:
left side in the left column, right side in the right column, roots top to bottom in montage
order. Fonts scale with the tile, so the same panel works docked beside the traces and
full-screen on a second monitor (:class:`AlarmWindow`).
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ionm_station.alarms import TileState
from ionm_station.gui import theme

#: Flash period of an unacknowledged alarm tile (ms per half cycle).
FLASH_MS = 350
SIDE_NAMES = {"L": "LEFT", "R": "RIGHT"}


def quiet_tiles(keys: list[str]) -> list[TileState]:
    """All-quiet tiles for root-side keys like ``"L5-L"`` (while no alarm engine is attached)."""
    out = []
    for key in keys:
        root, _, side = key.partition("-")
        out.append(TileState(key=key, root=root, side=side))
    return out


def _state_text(tile: TileState) -> str:
    """Headline of a tile: what the surgeon must read first (details go below it)."""
    reason = tile.reason.lower()
    if tile.state == "alarm":
        return "A-TRAIN" if "a-train" in reason else "ALARM"
    if tile.state == "activity":
        return "ACTIVITY"
    if tile.state == "blanked":
        return "CAUTERY – blanked" if "cautery" in reason else "BLANKED"
    if tile.state == "no_signal":
        return "NO SIGNAL"
    return "QUIET"


class AlarmTile(QWidget):
    """One root-side tile, painted directly so its fonts follow its size.

    Emits :attr:`clicked` with its key (clicking a tile acknowledges it).
    """

    clicked = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        root, _, side = key.partition("-")
        self.key = key
        self._tile: TileState = TileState(key=key, root=root, side=side)
        self._flash_dark = False
        self.setMinimumSize(90, 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    @property
    def state(self) -> str:
        """Current state: quiet, activity, alarm, blanked or no_signal."""
        return self._tile.state

    @property
    def tile(self) -> TileState:
        """The tile state last shown."""
        return self._tile

    @property
    def flashing(self) -> bool:
        """True while an alarm is latched (unacknowledged)."""
        return self._tile.state == "alarm" and self._tile.latched

    def set_tile(self, tile: TileState) -> None:
        """Show a new state (repaints only when something visible changed)."""
        if tile != self._tile:
            self._tile = tile
            self.update()

    def set_flash_phase(self, dark: bool) -> None:
        """Flash half-cycle (only a latched alarm repaints)."""
        self._flash_dark = dark
        if self.flashing:
            self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        self.clicked.emit(self.key)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        t = self._tile
        bg, fg = theme.TILE_COLOURS.get(t.state, theme.TILE_COLOURS["no_signal"])
        if self.flashing and self._flash_dark:
            bg = theme.ALARM_FLASH_DARK
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = QRectF(self.rect()).adjusted(3, 3, -3, -3)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(bg))
        p.drawRoundedRect(r, 8, 8)
        h, w = r.height(), r.width()
        unit = min(h, w * 0.55)
        p.setPen(QColor(fg))

        big = QFont(self.font())
        big.setBold(True)
        big.setPixelSize(max(12, int(unit * 0.38)))
        p.setFont(big)
        top = QRectF(r.left() + 10, r.top() + 2, w - 20, h * 0.42)
        p.drawText(top, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, t.root)
        side = QFont(big)
        side.setPixelSize(max(9, int(unit * 0.20)))
        p.setFont(side)
        p.drawText(top, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                   SIDE_NAMES.get(t.side, t.side))

        mid = QFont(big)
        mid.setPixelSize(max(9, int(unit * 0.25)))
        p.setFont(mid)
        state_rect = QRectF(r.left() + 10, r.top() + h * 0.42, w - 20, h * 0.32)
        p.drawText(state_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   p.fontMetrics().elidedText(_state_text(t), Qt.TextElideMode.ElideRight,
                                              int(state_rect.width())))

        small = QFont(self.font())
        small.setPixelSize(max(8, int(unit * 0.13)))
        p.setFont(small)
        info = [f"train {t.train_time_s:.1f} s"]
        if t.state == "no_signal" and t.reason:
            info.insert(0, t.reason.split(";")[0])
        if t.last_peak_uv is not None:
            info.append(f"{t.last_peak_uv:.0f} µV")
        if t.priority:
            info.append(t.priority.upper())
        if t.silenced_until_s is not None:
            info.append("SILENCED")
        if t.state == "alarm" and not t.latched:
            info.append("ack'd")
        info_rect = QRectF(r.left() + 10, r.top() + h * 0.74, w - 20, h * 0.24)
        p.drawText(info_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   p.fontMetrics().elidedText("  ·  ".join(info), Qt.TextElideMode.ElideRight,
                                              int(info_rect.width())))
        p.end()


class AlarmPanel(QWidget):
    """Grid of :class:`AlarmTile`: left side in the left column, right in the right.

    Args:
        keys: root-side keys in montage order (``montage.root_sides()``).

    Signals:
        acknowledge_requested(str): a tile was clicked (its key).
    """

    acknowledge_requested = Signal(str)

    def __init__(self, keys: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, AlarmTile] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(4)
        roots: list[str] = []
        for key in keys:
            root = key.partition("-")[0]
            if root not in roots:
                roots.append(root)
        for key in keys:
            root, _, side = key.partition("-")
            tile = AlarmTile(key)
            tile.clicked.connect(self.acknowledge_requested)
            grid.addWidget(tile, roots.index(root), 0 if side == "L" else 1)
            self.tiles[key] = tile
        self._flash_dark = False
        self._flash = QTimer(self)
        self._flash.setInterval(FLASH_MS)
        self._flash.timeout.connect(self._toggle_flash)
        self._flash.start()

    def update_tiles(self, tiles: list[TileState]) -> None:
        """Show the alarm engine's latest snapshot (keys not on this panel are ignored)."""
        for t in tiles:
            tile = self.tiles.get(t.key)
            if tile is not None:
                tile.set_tile(t)

    def _toggle_flash(self) -> None:
        self._flash_dark = not self._flash_dark
        for tile in self.tiles.values():
            tile.set_flash_phase(self._flash_dark)


class AlarmWindow(QWidget):
    """The alarm panel alone in a top-level window, for a second monitor facing the surgeon.

    Escape or F11 closes it; the main window keeps its own docked panel.
    """

    closed = Signal()

    def __init__(self, keys: list[str], title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle(f"IONM Station — alarms — {title}")
        pal = self.palette()
        pal.setColor(self.backgroundRole(), QColor(theme.BACKGROUND))
        self.setPalette(pal)
        self.setAutoFillBackground(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        header = QLabel(title)
        header.setStyleSheet(f"color: {theme.TEXT_DIM}; font-size: 18px;")
        layout.addWidget(header)
        self.panel = AlarmPanel(keys)
        layout.addWidget(self.panel, 1)
        self.resize(900, 1000)

    def show_on_best_screen(self) -> None:
        """Full screen on the second screen if there is one, else a normal window."""
        screens = self.screen().virtualSiblings() if self.screen() else []
        if len(screens) > 1:
            self.setGeometry(screens[1].geometry())
            self.showFullScreen()
        else:
            self.show()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_F11):
            self.close()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802, ANN001 (Qt override)
        self.closed.emit()
        super().closeEvent(event)
