"""Operating-room dark theme: palette, colours and pyqtgraph options shared by every view."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#0a0d12"
PANEL = "#141a22"
GRID = "#1d2630"
LANE_LINE = "#18202a"
TEXT = "#d8dee9"
TEXT_DIM = "#7b8794"
#: Trace colours by side: left cool, right warm, both light on the dark background.
TRACE_LEFT = "#5ec8ff"
TRACE_RIGHT = "#ffc857"
TRACE_OTHER = "#c8d0da"
ERASE_BAR = "#e8eef5"

#: Detected-event marks on the traces, by ``data["kind"]`` (A-trains by train_type).
EVENT_COLOURS = {"spike": "#f2f2f2", "burst": "#ffb347", "train_B": "#ffd84d", "train_A": "#ff3b3b"}
#: Artifact tints (translucent), by ``data["kind"]``.
ARTIFACT_TINTS = {"cautery": (70, 120, 220, 70), "saturation": (220, 140, 40, 60),
                  "lead_off": (190, 60, 200, 70)}
MARKER_COLOUR = "#b9f6ca"

#: Alarm tile colours by state: (background, foreground).
TILE_COLOURS = {
    "quiet": ("#17663a", "#e9fff1"),
    "activity": ("#d4a900", "#1a1400"),
    "alarm": ("#d0121b", "#ffffff"),
    "blanked": ("#2f4a78", "#dfe9ff"),
    "no_signal": ("#4b1650", "#ffc9ff"),
}
#: Background of an alarm tile in the dark half of its flash.
ALARM_FLASH_DARK = "#5c070b"


def side_colour(side: str) -> str:
    """Trace colour of a channel on ``side`` ("L", "R" or anything else)."""
    return {"L": TRACE_LEFT, "R": TRACE_RIGHT}.get(side, TRACE_OTHER)


def configure_pyqtgraph() -> None:
    """Fast, dark pyqtgraph defaults (set in code: never through its config-file reader)."""
    pg.setConfigOptions(antialias=False, background=BACKGROUND, foreground=TEXT_DIM,
                        useOpenGL=False, imageAxisOrder="row-major")


def apply_dark_palette(app: QApplication) -> None:
    """Dark Fusion palette and a small style sheet for the whole application."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: PANEL, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND, QPalette.ColorRole.AlternateBase: PANEL,
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: "#1e2731",
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.Highlight: "#2d6cdf",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: PANEL,
        QPalette.ColorRole.ToolTipText: TEXT, QPalette.ColorRole.PlaceholderText: TEXT_DIM,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText,
                 QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#56606b"))
    app.setPalette(pal)
    app.setStyleSheet(
        "QToolBar { background: #10151c; border: none; spacing: 6px; padding: 3px; }"
        "QDockWidget::title { background: #10151c; padding: 4px; color: #9aa5b1; }"
        "QStatusBar { background: #10151c; color: #c2cad4; }"
        "QStatusBar QLabel { padding: 0 8px; }"
        "QGroupBox { border: 1px solid #25303c; border-radius: 4px; margin-top: 14px; }"
        "QGroupBox::title { subcontrol-origin: margin; left: 8px; color: #9aa5b1; }"
        "QPushButton { padding: 4px 10px; }"
        "QPushButton#ack { background: #7a1d1d; font-weight: bold; }"
        "QPushButton#silence { background: #5a4a12; font-weight: bold; }"
    )
