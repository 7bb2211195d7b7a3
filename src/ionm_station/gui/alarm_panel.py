"""The surgeon's alarm panel: one big tile per alarm-tile key, readable across the room.

The panel only shows the tiles of the station's state (:meth:`Session.state().tiles
<ionm_station.session.Session.state>`, technical alarms already laid over); it has no alarm
logic. Tiles are laid out anatomically: left side in the left column, right side in the right
column, roots top to bottom in montage order; tiles without a side (a foreign file's channels,
keyed by label) follow, two per row. Text is fitted to each tile
(:mod:`~ionm_station.gui.tile_layout`), so the same panel works docked beside the traces and
full-screen on a second monitor (:class:`AlarmWindow`).
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QKeyEvent, QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from ionm_station.alarms import TileState
from ionm_station.gui import theme
from ionm_station.gui.alarm_tile import AlarmTile
from ionm_station.montage import Montage

#: Flash period of an unacknowledged alarm tile (ms per half cycle).
FLASH_MS = 350


def tile_grid(montage: Montage) -> list[tuple[str, str, int, int]]:
    """(key, title, row, column) of every alarm tile of ``montage``: L left, R right, one row
    per root in montage order; tiles without a root or side follow, two per row."""
    first = {}
    for c in montage.channels:
        first.setdefault(c.tile_key, c)
    sided = [k for k, c in first.items() if c.root and c.side in ("L", "R")]
    roots = list(dict.fromkeys(first[k].root for k in sided))
    out = [(k, first[k].root, roots.index(first[k].root), 0 if first[k].side == "L" else 1)
           for k in sided]
    others = [k for k in first if k not in sided]
    out += [(k, first[k].root or k, len(roots) + i // 2, i % 2) for i, k in enumerate(others)]
    return out


class AlarmPanel(QWidget):
    """Grid of :class:`AlarmTile` (see :func:`tile_grid`).

    Signals:
        acknowledge_requested(str): a tile was clicked (its key).
    """

    acknowledge_requested = Signal(str)

    def __init__(self, montage: Montage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tiles: dict[str, AlarmTile] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(4)
        for key, title, row, column in tile_grid(montage):
            tile = AlarmTile(key, title)
            tile.clicked.connect(self.acknowledge_requested)
            grid.addWidget(tile, row, column)
            self.tiles[key] = tile
        self._flash_dark = False
        self._flash = QTimer(self)
        self._flash.setInterval(FLASH_MS)
        self._flash.timeout.connect(self._toggle_flash)
        self._flash.start()

    def update_tiles(self, tiles: Iterable[TileState]) -> None:
        """Show the state's tiles (keys not on this panel are ignored)."""
        for t in tiles:
            tile = self.tiles.get(t.key)
            if tile is not None:
                tile.set_tile(t)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        QTimer.singleShot(0, self, self._share_size_unit)  # once the tiles have their sizes

    def _share_size_unit(self) -> None:
        """Every tile's text follows the smallest tile, so the panel reads alike."""
        unit = min((t.size_unit() for t in self.tiles.values()), default=None)
        for tile in self.tiles.values():
            tile.set_size_unit(unit)

    def _toggle_flash(self) -> None:
        self._flash_dark = not self._flash_dark
        for tile in self.tiles.values():
            tile.set_flash_phase(self._flash_dark)


class AlarmWindow(QWidget):
    """The alarm panel alone in a top-level window, for a second monitor facing the surgeon.

    Escape or F11 closes it; the main window keeps its own docked panel.
    """

    closed = Signal()

    def __init__(self, montage: Montage, title: str, parent: QWidget | None = None) -> None:
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
        self.panel = AlarmPanel(montage)
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

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.closed.emit()
        super().closeEvent(event)
