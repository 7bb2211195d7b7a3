"""Operating-room dark theme: palette, colours and pyqtgraph options shared by every view."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from ionm_station.pipeline.technical import BLINDING

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
#:
#: Clinical states keep the traffic-light family (green quiet, amber activity, red alarm) plus
#: navy for cautery-blanked and dark plum for no signal (lead-off, railed). The two technical
#: states that blind a tile (IEC 60601-1-8 technical alarm conditions: the station cannot vouch
#: for the clinical state) get colours no clinical state uses, bright and saturated so they
#: read across the room: **magenta** for NOT MONITORING (processing down, stalled or behind)
#: and **cyan** for SIGNAL LOST (source silent or disconnected). Both are also hatched
#: (:data:`TECHNICAL_HATCH`), so they stay distinct without colour vision.
TILE_COLOURS = {
    "quiet": ("#17663a", "#e9fff1"),
    "activity": ("#d4a900", "#1a1400"),
    "alarm": ("#d0121b", "#ffffff"),
    "blanked": ("#2f4a78", "#dfe9ff"),
    "no_signal": ("#4b1650", "#ffc9ff"),
    "not_monitoring": ("#d4148c", "#ffffff"),
    "signal_lost": ("#00b4d8", "#00161c"),
}
#: NOT MONITORING because the run ended on purpose (end of a replay, sample limit): stated,
#: hatched, but slate grey — not an alarm.
ENDED = ("#3d4551", "#e8edf3")
#: Tile states that are technical alarms (hatched): the conditions that blind a tile.
TECHNICAL_STATES = BLINDING
#: Diagonal hatch laid over a technical tile (RGBA): darker stripes, text stays readable.
TECHNICAL_HATCH = (0, 0, 0, 46)
#: Band at the foot of a tile naming a technical condition that does not blind it
#: (RECORDING STOPPED, LOW SAMPLE RATE): (background, foreground), teal of the technical family.
TECHNICAL_BAND = ("#0b6577", "#e6fbff")
#: Background of an alarm tile in the dark half of its flash.
ALARM_FLASH_DARK = "#5c070b"
#: Status-bar and banner text colours.
AMBER = "#ffb02e"
ERROR_RED = "#ff6b6b"


def tile_colours(state: str, priority: str | None) -> tuple[str, str]:
    """(background, foreground) of a tile (or banner) in ``state``: NOT MONITORING without a
    priority — the run ended on purpose — is :data:`ENDED`, not an alarm colour."""
    if state == "not_monitoring" and priority is None:
        return ENDED
    return TILE_COLOURS.get(state, TILE_COLOURS["not_monitoring"])


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
