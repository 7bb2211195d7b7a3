"""The banner over the traces while a blinding technical alarm holds, and what it says.

:func:`trace_notice` reads the station's state: while processing is down or behind (NOT
MONITORING with a priority) the traces show the raw signal band-passed in the view, and the
banner says that nothing is removed or detected and why; a run that ended is NOT MONITORING
too, but the clean ring holds all of it, so the traces stay clean; SIGNAL LOST says why no new
samples come. The banner has the colours of the tile state it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from ionm_station.gui import theme
from ionm_station.pipeline.state import StationState


@dataclass(frozen=True)
class TraceNotice:
    """What the traces show under a blinding technical alarm.

    Attributes:
        text: the banner.
        kind: the technical alarm kind (``not_monitoring`` / ``signal_lost``) and
        priority: its priority (None: the run ended on purpose) — together, its colours.
        raw: show the raw signal band-passed in the view (processing is down).
    """

    text: str
    kind: str
    priority: str | None
    raw: bool


def trace_notice(state: StationState) -> TraceNotice | None:
    """The banner and trace source for ``state`` (None: monitoring, clean traces, no banner)."""
    blind = [a for a in state.technical if a.kind in theme.TECHNICAL_STATES]
    if not blind:
        return None
    first = blind[0]
    raw = first.kind == "not_monitoring" and first.priority is not None
    if raw:
        text = f"{first.headline} — raw signal, no artifact removal or detection: {first.reason}"
    else:
        text = f"{first.headline} — {first.reason}"
    text += "".join(f"  ·  {a.headline}: {a.reason}" for a in blind[1:])
    return TraceNotice(text, first.kind, first.priority, raw)


class TraceBanner(QLabel):
    """A full-width strip above the traces; hidden while monitoring."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        # never widens the window: the text wraps to whatever width the traces have
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.hide()

    def show_notice(self, notice: TraceNotice | None) -> None:
        """Show ``notice`` in its alarm's colours, or hide (None)."""
        if notice is None:
            self.hide()
            return
        bg, fg = theme.tile_colours(notice.kind, notice.priority)
        self.setStyleSheet(f"background: {bg}; color: {fg}; font-weight: bold; font-size: 16px;"
                           " padding: 6px 12px;")
        self.setText(notice.text)
        self.show()
