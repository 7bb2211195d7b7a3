"""What an alarm tile says and how its text is laid out: every line fitted, never cut.

:func:`tile_texts` turns a :class:`~ionm_station.alarms.TileState` into the words of a tile
(title, side, headline, reason, details, technical band). :func:`layout_tile` fits them into a
rectangle: the small text (reason, details, technical band) starts at a size that follows the
tile and shrinks one pixel at a time until everything fits; the title and the headline are
each as large as their ratio to the small text allows and no wider than the tile; long text
wraps at spaces (a word longer than the line breaks inside). Only when the smallest readable
size (:data:`MIN_PX`) still does not fit do lines give way (:data:`DROP_ORDER`: details, then
the technical band, then the reason; the last kept line ends in "…") — the layout says what was
cut (:attr:`TileLayout.elided`) and the tile's tooltip keeps the whole text.

The same layout is painted and measured (tests compare each line's width with its rectangle),
so what is checked is what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QFontMetricsF

from ionm_station.alarms import TileState
from ionm_station.pipeline.technical import HEADLINES as TECHNICAL_HEADLINES

#: Smallest pixel size of any tile text (readable at arm's length on the docked panel).
MIN_PX = 10
#: Sizes relative to the small text: title (root), side name, headline.
TITLE_RATIO, SIDE_RATIO, HEADLINE_RATIO = 2.6, 1.4, 1.9
#: Largest small text as a fraction of the tile's :func:`size_unit` (wide tiles: one text row
#: less, so larger text).
SMALL_OF_UNIT, SMALL_OF_UNIT_WIDE = 0.13, 0.19
#: A tile at least this many times as wide as high puts its headline on the title row.
WIDE_RATIO = 3.0
#: Below this small-text size (px) the title and headline shrink first, by these scales.
COMPRESS_BELOW_PX = 13
TITLE_SCALES = (1.0, 0.8, 0.62)
#: Inner margin of the tile (px) and padding of the technical band (fraction of a line).
MARGIN = 8.0
BAND_PAD = 0.35
#: What gives way, in order, when even the smallest size does not fit: (lines, kept).
DROP_ORDER = (("details", 0), ("technical", 1), ("reason", 1), ("technical", 0), ("reason", 0))
SIDE_NAMES = {"L": "LEFT", "R": "RIGHT"}
#: Headline per tile state (alarm and blanked are refined by the reason, see :func:`headline`).
HEADLINES = {"quiet": "QUIET", "activity": "ACTIVITY", "alarm": "ALARM", "blanked": "BLANKED",
             "no_signal": "NO SIGNAL", **TECHNICAL_HEADLINES}
CAUTERY_NOTE = "cautery: detection blanked"


@dataclass(frozen=True)
class TileTexts:
    """The words of one tile, before layout.

    Attributes:
        title: root (``L5``), or the channel label of a tile without a root.
        side: ``LEFT`` / ``RIGHT`` / '' (no side).
        headline: the state in capitals (what the surgeon reads first).
        reason: why (technical reason, alarm reason, lead-off …); '' if nothing to add.
        details: train time, last peak, priority, silenced, acknowledged.
        technical: a technical condition that does not blind the tile ('' if none).
    """

    title: str
    side: str
    headline: str
    reason: str
    details: str
    technical: str


@dataclass(frozen=True)
class TextLine:
    """One painted line: its text, font and rectangle (left-aligned unless ``right``)."""

    role: str  # title, side, headline, reason, details, technical
    text: str
    font: QFont
    rect: QRectF
    right: bool = False


@dataclass(frozen=True)
class TileLayout:
    """Everything a tile paints, fitted to its rectangle.

    Attributes:
        lines: the text lines, top to bottom.
        band: rectangle of the technical band (None without one).
        small_px: pixel size of the small text chosen.
        elided: what was cut (``details``, ``technical``, ``reason``), only when the smallest
            size did not fit; empty normally.
    """

    lines: tuple[TextLine, ...]
    band: QRectF | None
    small_px: int
    elided: tuple[str, ...] = ()


def headline(tile: TileState) -> str:
    """The tile's state in capitals: A-TRAIN for an A-train alarm, CAUTERY for blanking."""
    reason = tile.reason.lower()
    if tile.state == "alarm" and "a-train" in reason:
        return "A-TRAIN"
    if tile.state == "blanked" and "cautery" in reason:
        return "CAUTERY – BLANKED"
    return HEADLINES.get(tile.state, tile.state.upper().replace("_", " "))


def tile_texts(tile: TileState, title: str) -> TileTexts:
    """What ``tile`` says; ``title`` is its root, or the channel label of a rootless tile."""
    reason = "; ".join(p.strip() for p in tile.reason.split(";")
                       if p.strip() and p.strip() != CAUTERY_NOTE)
    details = [f"train {tile.train_time_s:.1f} s"]
    if tile.last_peak_uv is not None:
        details.append(f"{tile.last_peak_uv:.0f} µV")
    if tile.priority:
        details.append(tile.priority.upper())
    if tile.silenced_until_s is not None:
        details.append("SILENCED")
    if tile.state == "alarm" and not tile.latched:
        details.append("ack'd")
    return TileTexts(title, SIDE_NAMES.get(tile.side, tile.side), headline(tile), reason,
                     "  ·  ".join(details), tile.technical)


def _font(base: QFont, px: float, bold: bool) -> QFont:
    font = QFont(base)
    font.setPixelSize(max(1, int(px)))
    font.setBold(bold)
    return font


def _fit_width(base: QFont, bold: bool, px: float, text: str, width: float) -> QFont:
    """``text`` in the largest size ≤ ``px`` (not below :data:`MIN_PX`) no wider than ``width``."""
    size = int(px)
    while size > MIN_PX and QFontMetricsF(_font(base, size, bold)).horizontalAdvance(text) > width:
        size -= 1
    return _font(base, size, bold)


def wrap(text: str, metrics: QFontMetricsF, width: float) -> list[str]:
    """Greedy word wrap of ``text`` to ``width``; a word wider than a line breaks inside."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if metrics.horizontalAdvance(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while metrics.horizontalAdvance(word) > width and len(word) > 1:
                cut = len(word) - 1
                while cut > 1 and metrics.horizontalAdvance(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
    return lines


@dataclass
class _Plan:
    """Fonts and wrapped lines for one text size (before placing). ``inline``: the headline
    sits on the title row, between root and side (wide, low tiles), and ``row_details`` the
    details too when they fit there."""

    px: int
    title: QFont
    side: QFont
    head: QFont
    small: QFont
    reason: list[str]
    details: list[str]
    technical: list[str]
    inline: bool = False
    row_details: str = ""

    @property
    def step(self) -> float:
        return QFontMetricsF(self.small).lineSpacing()

    def height(self) -> float:
        return self.header_h() + self.middle_h() + self.band_h()

    def header_h(self) -> float:
        fonts = (self.title, self.side, self.head) if self.inline else (self.title, self.side)
        return max(QFontMetricsF(f).height() for f in fonts)

    def middle_h(self) -> float:
        head = 0.0 if self.inline else QFontMetricsF(self.head).height()
        gap = 0.3 * self.step if self.reason else 0.0
        return head + gap + self.step * (len(self.reason) + len(self.details))

    def band_h(self) -> float:
        """Height of the technical band and the gap above it (0 without one)."""
        if not self.technical:
            return 0.0
        return self.step * (len(self.technical) + 2 * BAND_PAD + 0.3)


def _candidates(px_max: int, wide: bool) -> list[tuple[int, float, bool]]:
    """(small px, title scale, inline) to try, best first: the layout of the tile's shape
    (wide: headline on the title row), the small text shrinking — below
    :data:`COMPRESS_BELOW_PX` the title and headline give way first; then the other layout.
    One shape, one layout: the tiles of a panel look alike."""
    return [(px, scale, inline) for inline in (wide, not wide)
            for px in range(px_max, MIN_PX - 1, -1)
            for scale in (TITLE_SCALES if px < COMPRESS_BELOW_PX else (1.0,))]


def _advance(font: QFont, text: str) -> float:
    return QFontMetricsF(font).horizontalAdvance(text) if text else 0.0


def _plan(texts: TileTexts, base: QFont, px: int, scale: float, width: float,
          inline: bool) -> _Plan | None:
    """The plan for one candidate size; None if an inline headline does not fit its row."""
    title_px = max(MIN_PX, px * TITLE_RATIO * scale)
    side_px = max(MIN_PX, px * SIDE_RATIO * scale)
    gap = px if texts.side else 0.0

    def header_w(title: float, side: float) -> float:
        return _advance(_font(base, title, True), texts.title) + gap + _advance(
            _font(base, side, True), texts.side)

    while title_px > MIN_PX and header_w(title_px, side_px) > width:
        title_px -= 1
        side_px = max(MIN_PX, min(side_px, title_px * SIDE_RATIO / TITLE_RATIO))
    head_px = px * HEADLINE_RATIO * max(scale, 0.7)
    small = _font(base, px, False)
    metrics = QFontMetricsF(small)
    details = wrap(texts.details, metrics, width)
    row_details = ""
    if inline:
        head = _font(base, head_px, True)
        room = width - header_w(title_px, side_px) - px - _advance(head, texts.headline)
        if room < 0:
            return None
        if _advance(small, texts.details) <= room - 2 * px:
            details, row_details = [], texts.details
    else:
        head = _fit_width(base, True, head_px, texts.headline, width)
    return _Plan(px, _font(base, title_px, True), _font(base, side_px, True), head, small,
                 wrap(texts.reason, metrics, width), details,
                 wrap(texts.technical, metrics, _band_width(metrics, width)), inline, row_details)


def _band_width(metrics: QFontMetricsF, width: float) -> float:
    return width - metrics.averageCharWidth()


def _elide_to(plan: _Plan, height: float, width: float) -> tuple[str, ...]:
    """Drop lines until ``plan`` fits ``height`` (:data:`DROP_ORDER`), the last kept reason
    and technical lines ending in "…"; returns what was cut."""
    whole = {"reason": list(plan.reason), "technical": list(plan.technical)}
    cut: list[str] = []
    for name, keep in DROP_ORDER:
        lines = getattr(plan, name)
        while len(lines) > keep and plan.height() > height:
            lines.pop()
            cut += [] if name in cut else [name]
    metrics = QFontMetricsF(plan.small)
    for name, full in whole.items():
        lines = getattr(plan, name)
        if lines and name in cut:
            room = width if name == "reason" else _band_width(metrics, width)
            tail = " ".join(full[len(lines) - 1:])
            lines[-1] = metrics.elidedText(tail, Qt.TextElideMode.ElideRight, room)
    return tuple(cut)


def size_unit(rect: QRectF) -> float:
    """What a tile's text sizes follow: min(height, 0.55 × width) of its painted area (px)."""
    return min(rect.height(), rect.width() * 0.55)


def layout_tile(texts: TileTexts, rect: QRectF, base: QFont,
                unit: float | None = None) -> TileLayout:
    """Fit ``texts`` into ``rect`` (the tile's painted area) with fonts derived from ``base``;
    the largest size follows ``unit`` (default :func:`size_unit` of ``rect``; a panel passes
    its smallest tile's, so tiles one pixel apart do not differ in size)."""
    inner = rect.adjusted(MARGIN, 4.0, -MARGIN, -4.0)
    width, height = max(1.0, inner.width()), max(1.0, inner.height())
    unit = size_unit(rect) if unit is None else unit
    wide = rect.width() >= WIDE_RATIO * rect.height()
    px_max = max(MIN_PX, int(unit * (SMALL_OF_UNIT_WIDE if wide else SMALL_OF_UNIT)))
    plans = (_plan(texts, base, px, scale, width, inline)
             for px, scale, inline in _candidates(px_max, wide))
    fitting = next((p for p in plans if p is not None and p.height() <= height), None)
    plan = fitting or _plan(texts, base, MIN_PX, TITLE_SCALES[-1], width, False)
    assert plan is not None  # a stacked plan always exists
    elided = _elide_to(plan, height, width)
    return _place(texts, plan, inner, rect, elided)


def _place(texts: TileTexts, plan: _Plan, inner: QRectF, rect: QRectF,
           elided: tuple[str, ...]) -> TileLayout:
    """Lines top to bottom — title row, headline, reason, details — centred as one block in
    the room above the technical band, which sits at the foot of the tile."""
    x, w, step = inner.left(), inner.width(), plan.step
    lines: list[TextLine] = []
    band = None
    bottom = inner.bottom()
    if plan.technical:
        band_h = plan.band_h() - 0.3 * step
        band = QRectF(rect.left(), rect.bottom() - band_h, rect.width(), band_h)
        y = band.top() + BAND_PAD * step
        for text in plan.technical:
            lines.append(TextLine("technical", text, plan.small, QRectF(x, y, w, step)))
            y += step
        bottom = band.top() - 0.3 * step
    header_h = plan.header_h()
    top = inner.top() + max(0.0, (bottom - inner.top() - header_h - plan.middle_h()) / 2)
    row = QRectF(x, top, w, header_h)
    lines.append(TextLine("title", texts.title, plan.title, row))
    if texts.side:
        lines.append(TextLine("side", texts.side, plan.side, row, right=True))
    y = top + header_h
    if plan.inline:
        left = x + _advance(plan.title, texts.title) + plan.px
        lines.append(TextLine("headline", texts.headline, plan.head,
                              QRectF(left, top, x + w - left, header_h)))
        if plan.row_details:
            right = w - _advance(plan.side, texts.side) - plan.px
            lines.append(TextLine("details", plan.row_details, plan.small,
                                  QRectF(x, top, right, header_h), right=True))
    else:
        head_h = QFontMetricsF(plan.head).height()
        lines.append(TextLine("headline", texts.headline, plan.head, QRectF(x, y, w, head_h)))
        y += head_h
    y += 0.3 * step if plan.reason else 0.0
    for role, group in (("reason", plan.reason), ("details", plan.details)):
        for text in group:
            lines.append(TextLine(role, text, plan.small, QRectF(x, y, w, step)))
            y += step
    return TileLayout(tuple(lines), band, plan.px, elided)
