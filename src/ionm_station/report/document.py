"""The case report as PDF (reportlab platypus), from one recording read by ranged reads.

Sections: header; summary (duration, monitored time, time not monitored and why); signal
quality and baselines; alarms; timeline; screws and TOF; trends; a waveform snapshot with scale
bars for every alarm and screw test; the event log. The recording's events are read whole
(they are small); samples only around alarms and stimuli (:meth:`Recording.read`), so memory
does not grow with the length of the case.

The same recording gives the same bytes: reportlab's invariant mode (fixed dates and document
ID), fonts embedded from matplotlib's DejaVu files, figures from :mod:`.figures`.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
import numpy as np
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Table,
    TableStyle,
)
from scipy import signal

from ionm_station import __version__
from ionm_station.caselog import case_log, clock
from ionm_station.recording.reader import Recording
from ionm_station.report import case as cs
from ionm_station.report import figures
from ionm_station.trends import quality_trend, screw_points, tile_trends, tof_points
from ionm_station.triggered import cmap

#: Waveform shown around an alarm (s before and after it was raised).
ALARM_WINDOW_S = (1.0, 1.0)
#: Stimulus-locked window shown for a screw test (ms).
SCREW_WINDOW_MS = (-10.0, 60.0)
#: Band-pass of the alarm snapshots (Hz): the free-run band, zero phase.
SNAPSHOT_BAND_HZ = (10.0, 3000.0)
#: Stimuli within this of the baseline's current are compared with it (mA).
SAME_CURRENT_MA = 0.25
#: Panels per snapshot figure.
PANELS_PER_FIGURE = 6
FONT, BOLD = "DejaVuSans", "DejaVuSans-Bold"
PAGE_MARGIN = 15 * mm
TEXT_WIDTH = A4[0] - 2 * PAGE_MARGIN


def _setup_reportlab() -> None:
    """Binary (not ASCII85) streams — reportlab's ASCII85 encoder is pure Python, seconds per
    figure — and matplotlib's DejaVu Sans embedded (the figures' font; µ, –, ✓ and ≥)."""
    rl_config.useA85 = 0
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD, str(folder / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=BOLD, italic=FONT, boldItalic=BOLD)


STYLES = {
    "title": ParagraphStyle("title", fontName=BOLD, fontSize=15, leading=19, spaceAfter=2),
    "note": ParagraphStyle("note", fontName=FONT, fontSize=7.5, leading=9.5,
                           textColor=colors.HexColor("#7a1f1f"), spaceAfter=6),
    "h1": ParagraphStyle("h1", fontName=BOLD, fontSize=11, leading=14, spaceBefore=8,
                         spaceAfter=4, keepWithNext=1),
    "body": ParagraphStyle("body", fontName=FONT, fontSize=8, leading=10.5, spaceAfter=3),
    "cell": ParagraphStyle("cell", fontName=FONT, fontSize=7, leading=8.6),
    "head": ParagraphStyle("head", fontName=BOLD, fontSize=7, leading=8.6),
}


@dataclass(frozen=True)
class ReportResult:
    """What was written: pages, alarm episodes, screws, waveform snapshots."""

    pages: int
    alarms: int
    screws: int
    snapshots: int


class _Text:
    """Every free text of the report goes through here: escaped for reportlab, and with
    ``deidentify`` the patient ID and operator removed wherever they appear."""

    def __init__(self, secrets: Sequence[str]) -> None:
        words = sorted({s.strip() for s in secrets if len(s.strip()) >= 2}, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) \
            if words else None

    def clean(self, text: Any) -> str:
        text = str(text)
        return self._pattern.sub("[removed]", text) if self._pattern else text

    def p(self, text: Any, style: str = "cell") -> Paragraph:
        """A paragraph of ``text`` (a newline breaks the line)."""
        return Paragraph(escape(self.clean(text)).replace("\n", "<br/>"), STYLES[style])


def _table(rows: Sequence[Sequence[Any]], widths: Sequence[float], text: _Text,
           zebra: bool = True, header: bool = True) -> Table:
    """A table of paragraphs (first row bold as the header), repeated header on each page."""
    cells = [[c if isinstance(c, Flowable) else text.p(c, "head" if header and i == 0 else "cell")
              for c in row] for i, row in enumerate(rows)]
    t = Table(cells, colWidths=[w * TEXT_WIDTH for w in widths], repeatRows=1 if header else 0)
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("LEFTPADDING", (0, 0), (-1, -1), 2.5), ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
             ("TOPPADDING", (0, 0), (-1, -1), 1.2), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
             ("LINEBELOW", (0, 0), (-1, 0 if header else -1), 0.5, colors.HexColor("#555555"))]
    if zebra:
        style += [("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")])]
    t.setStyle(TableStyle(style))
    return t


def _image(data: bytes) -> Image:
    """A PNG figure at the text width, keeping its aspect."""
    img = Image(io.BytesIO(data))
    scale = TEXT_WIDTH / img.imageWidth
    img.drawWidth, img.drawHeight = TEXT_WIDTH, img.imageHeight * scale
    return img


def draw_footer(canvas: Any, page: int, title: str) -> None:
    """A report page's footer: "IONM Station ``title`` — research use only, not a medical
    device" at the left, the page number at the right (the case and the visit report)."""
    canvas.saveState()
    canvas.setFont(FONT, 7)
    canvas.setFillColor(colors.HexColor("#555555"))
    canvas.drawString(PAGE_MARGIN, PAGE_MARGIN - 2 * mm,
                      f"IONM Station {title} — research use only, not a medical device")
    canvas.drawRightString(A4[0] - PAGE_MARGIN, PAGE_MARGIN - 2 * mm, f"page {page}")
    canvas.restoreState()


def _num(value: Any, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}f}{(' ' + unit) if unit else ''}"


def _cmap_text(peak_uv: Sequence[float], current_ma: float | None) -> str:
    """``"420 µV at 8.0 mA"``: the largest channel's response and the current."""
    return f"{max(peak_uv):.0f} µV at {_num(current_ma)} mA"


def _duration(seconds: float) -> str:
    """``1 h 02 min 05 s`` / ``2 min 05.3 s`` / ``4.2 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{int(m)} min {s:04.1f} s"
    h, m = divmod(int(m), 60)
    return f"{h} h {m:02d} min {int(s):02d} s"


class CaseReport:
    """Builds the report of one open recording.

    Args:
        rec: the recording (read-only; samples read around events only).
        deidentify: no patient ID, operator, dates, clock times or file name.
    """

    def __init__(self, rec: Recording, deidentify: bool = False) -> None:
        self.rec = rec
        self.deidentify = deidentify
        self.fs = rec.info.sample_rate_hz
        self.n = rec.n_samples
        self.duration_s = rec.duration_s
        self.montage = rec.montage
        self.events = [e for e in rec.events if e.start >= 0]
        self.text = _Text([rec.case.patient_id, rec.case.operator] if deidentify else [])
        self.keys = self.montage.tile_keys()
        self.episodes = cs.alarm_episodes(self.events, self.montage, self.fs, self.n)
        self.screws = cs.screws(self.events, self.montage)
        self.gaps = cs.not_monitored(self.events, self.n)
        self.snapshot_count = 0
        self._code: str | None = None  # the de-identified case code, once computed

    # --- the whole document ---

    def build(self, path: Path) -> ReportResult:
        """Write the PDF to ``path``."""
        _setup_reportlab()
        doc = SimpleDocTemplate(
            str(path), pagesize=A4, leftMargin=PAGE_MARGIN, rightMargin=PAGE_MARGIN,
            topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN + 4 * mm, invariant=1,
            title="IONM case report", author="IONM Station", subject=self.case_label(),
            creator=f"ionm-station {__version__}", producer=f"ionm-station {__version__}",
            keywords="")
        story: list[Flowable] = []
        for part in (self._header, self._summary, self._quality, self._baselines, self._alarms,
                     self._timeline, self._screws_and_tof, self._trends, self._snapshots,
                     self._event_log):
            story += part()
        doc.build(story, onFirstPage=self._footer, onLaterPages=self._footer)
        return ReportResult(doc.page, len(self.episodes), len(self.screws), self.snapshot_count)

    def case_label(self) -> str:
        """The patient ID, or with ``deidentify`` a case code: the first 10 hex digits of the
        SHA-256 of the recording's creation time and first second of samples — the same for
        the same file, and not derived from any identifier."""
        if not self.deidentify:
            return self.rec.case.patient_id or "(no patient ID)"
        if self._code is None:
            h = hashlib.sha256(repr(self.rec.created_unix_s).encode())
            h.update(np.ascontiguousarray(self.rec.read(0, int(self.fs))).tobytes())
            self._code = f"case {h.hexdigest()[:10].upper()}"
        return self._code

    def _footer(self, canvas, doc) -> None:
        draw_footer(canvas, doc.page, f"case report — {self.text.clean(self.case_label())}")

    def _t(self, index: int) -> str:
        return clock(index / self.fs)

    # --- sections ---

    def _header(self) -> list[Flowable]:
        rec, case = self.rec, self.rec.case
        chain = rec.settings_history[0].settings.get("chain", {})
        mains = chain.get("mains_hz")
        profile = rec.profile or {}
        withheld = "withheld (de-identified)"
        start = case.start_time or "not recorded"
        if case.start_time:
            try:
                start = datetime.datetime.fromisoformat(case.start_time).strftime(
                    "%Y-%m-%d %H:%M:%S %z")
            except ValueError:
                pass
        state = ("closed cleanly" if rec.clean_close
                 else "NOT closed (writer killed; run `ionm-station recover`)")
        changes = len(rec.settings_history) - 1
        band = f"{_num(chain.get('low_hz'), 0)}–{_num(chain.get('high_hz'), 0)} Hz"
        filters = (f"band-pass {band}, mains "
                   f"{'detected' if mains is None else f'{mains:g} Hz'} (adaptive canceller), "
                   f"ECG removal {'on' if chain.get('remove_ecg', True) else 'off'}")
        if changes:
            filters += f"; {changes} change(s) during the case (event log)"
        device = (f"{profile.get('name', rec.info.source)} ({profile.get('kind', 'n/a')}); "
                  f"{rec.info.n_channels} ch at {self.fs:g} Hz, ±{rec.info.range_uv:g} µV")
        montage = (f"{self.montage.name}: {len(self.montage.channels)} channels, "
                   f"{len(self.keys)} root-sides ({', '.join(self.keys)})")
        rows = [
            ("Patient", self.case_label() if self.deidentify else case.patient_id or "(none)"),
            ("Procedure", case.procedure or "(none)"),
            ("Operator", withheld if self.deidentify else case.operator or "(none)"),
            ("Start", withheld if self.deidentify else start),
            ("Duration", f"{_duration(self.duration_s)} ({self.n} samples per channel)"),
            ("Montage", montage),
            ("Device / profile", device),
            ("Filter settings", filters),
            ("Software", f"recorded by {rec.created_by or 'unknown'}; "
                         f"report by ionm-station {__version__}"),
            ("Recording", ("" if self.deidentify else f"{rec.path.name}, ") + state
             + (", recovered" if rec.recovered else "")),
        ]
        return [self.text.p("IONM case report — free-run and triggered EMG", "title"),
                self.text.p("Research and education use only. IONM Station is not a medical "
                            "device and is not cleared for clinical decisions.", "note"),
                _table(rows, (0.18, 0.82), self.text, zebra=False, header=False)]

    def _summary(self) -> list[Flowable]:
        lost = cs.covered_samples(self.gaps, self.n) / self.fs
        cautery = [e for e in self.events if e.kind == "artifact" and e.stop is not None
                   and e.data.get("kind") == "cautery"]
        cautery_s = sum(e.stop - e.start for e in cautery) / self.fs
        count = {k: sum(1 for e in self.events if e.kind == k)
                 for k in ("marker", "tof", "lead_off")}
        acked = sum(1 for e in self.episodes if e.ack_index is not None)
        share = 100 * (1 - lost / max(self.duration_s, 1e-9))
        monitored = (f"Duration {_duration(self.duration_s)}; monitored "
                     f"{_duration(self.duration_s - lost)} ({share:.1f} %); ")
        counts = (f"Alarms: {len(self.episodes)} ({acked} acknowledged). Screws tested: "
                  f"{len(self.screws)}. Train-of-four: {count['tof']}. Markers: "
                  f"{count['marker']}. Lead-offs: {count['lead_off']}. Electrocautery: "
                  f"{len(cautery)} spans, {_duration(cautery_s)} blanked.")
        out: list[Flowable] = [
            self.text.p("Summary", "h1"),
            Paragraph(escape(monitored) + f"<b>not monitored {escape(_duration(lost))}</b>.",
                      STYLES["body"]),
            self.text.p(counts, "body")]
        if self.gaps:
            by_cause: dict[str, list[cs.Interval]] = {}
            for i in self.gaps:
                by_cause.setdefault(i.cause, []).append(i)
            rows = [("Why not monitored", "times", "total", "first at", "the station's words")]
            rows += [(cause, len(items), _duration(cs.covered_samples(items, self.n) / self.fs),
                      self._t(items[0].start), items[0].detail)
                     for cause, items in by_cause.items()]
            out.append(_table(rows, (0.2, 0.07, 0.13, 0.12, 0.48), self.text))
        else:
            out.append(self.text.p("Every sample of the case was monitored.", "body"))
        return out

    def _quality(self) -> list[Flowable]:
        out: list[Flowable] = [self.text.p("Signal quality", "h1")]
        check = cs.one_window(self.events, "signal_quality", "baseline")
        which = "baseline check"
        if not check:
            check, which = cs.one_window(self.events, "signal_quality"), "first periodic check"
        if not check:
            return out + [self.text.p("No signal-quality check in this recording.", "body")]
        at = check[0].start
        window_s = (check[0].end - at) / self.fs
        out.append(self.text.p(
            f"{which.capitalize()} at {self._t(at)} over {window_s:.1f} s: noise RMS of the "
            "clean signal; mains (fundamental and harmonics) and ECG pick-up of the raw signal. "
            "Failing channels are named with the likely cause. 'During the case': periodic "
            "checks (every 60 s) that failed.", "body"))
        by_ch = {e.channels[0]: e.data for e in check if e.channels}
        periodic = [e for e in self.events if e.kind == "signal_quality" and e.channels]
        rows = [("Channel", "Muscle", "Noise µV RMS", "Mains µV RMS", "ECG µV p-p", "Result",
                 "During the case")]
        for ch, c in enumerate(self.montage.channels):
            d = by_ch.get(ch, {})
            mine = [e.data for e in periodic if e.channels[0] == ch]
            bad = [x for x in mine if not x.get("ok", True)]
            causes = ", ".join(sorted({str(x.get("cause")) for x in bad}))
            rows.append((c.label, c.muscle, _num(d.get("noise_rms_uv")), _num(d.get("mains_uv")),
                         _num(d.get("ecg_uv"), 0),
                         "ok" if d.get("ok", True) else f"FAIL: {d.get('cause')}",
                         f"{len(bad)}/{len(mine)} failed" + (f" ({causes})" if causes else "")))
        return out + [_table(rows, (0.15, 0.17, 0.11, 0.11, 0.1, 0.15, 0.21), self.text)]

    def _baselines(self) -> list[Flowable]:
        out: list[Flowable] = [self.text.p("Baselines", "h1")]
        base = cs.one_window(self.events, "baseline")
        if not base:
            return out + [self.text.p("No baseline was taken in this recording (the Baseline "
                                      "button, or `run --baseline`).", "body")]
        final = cs.one_window(self.events, "signal_quality", last=True)
        last = {e.channels[0]: e.data for e in final if e.channels}
        tof = {e.start for e in self.events if e.kind == "stimulus" and e.data.get("tof_pulse")}
        cmaps = [e for e in self.events if e.kind == "cmap" and e.data.get("responded")
                 and e.start not in tof]  # a TOF's supramaximal twitches are not a baseline
        out.append(self.text.p(f"Baseline at {self._t(base[0].start)}: each root's quiet free-run "
                               "(noise range of its channels) and its latest stimulus response "
                               "before it, if it was stimulated; compared with the last quality "
                               "check and the last response of the case at the same current "
                               f"(±{SAME_CURRENT_MA:g} mA).", "body"))
        rows = [("Root-side", "Baseline", "Noise µV RMS", "Quiet", "CMAP at baseline",
                 "Noise µV RMS now", "Last CMAP, same mA", "Change")]
        for e in base:
            d = e.data
            noise = [v for v in d.get("noise_rms_uv", []) if v is not None]
            now = [last[c]["noise_rms_uv"] for c in e.channels
                   if c in last and last[c].get("noise_rms_uv") is not None]
            cm = d.get("cmap")
            later = [] if not cm or cm.get("current_ma") is None else [
                c for c in cmaps if c.data.get("target") == d.get("tile") and c.start > e.end
                and c.data.get("current_ma") is not None
                and abs(c.data["current_ma"] - cm["current_ma"]) <= SAME_CURRENT_MA]
            change = ""
            if later and max(cm["peak_uv"]) > 0:
                a, b = max(cm["peak_uv"]), max(later[-1].data["peak_uv"])
                change = f"{100 * (b - a) / a:+.0f} %"
            failing = ", ".join(f"{k} {v}" for k, v in d.get("failing", {}).items())
            rows.append((d.get("tile"), "ok" if d.get("ok") else f"FAIL: {failing}",
                         f"{min(noise):.1f}–{max(noise):.1f}" if noise else "–",
                         "yes" if d.get("quiet") else "no",
                         _cmap_text(cm["peak_uv"], cm.get("current_ma")) if cm
                         else "not stimulated",
                         f"{min(now):.1f}–{max(now):.1f}" if now else "–",
                         _cmap_text(later[-1].data["peak_uv"], later[-1].data.get("current_ma"))
                         if later else "–", change or "–"))
        return out + [_table(rows, (0.09, 0.2, 0.1, 0.06, 0.15, 0.11, 0.15, 0.14), self.text)]

    def _alarms(self) -> list[Flowable]:
        out: list[Flowable] = [self.text.p("Alarms", "h1")]
        if not self.episodes:
            return out + [self.text.p("No alarm was raised.", "body")]
        rows = [("Time", "Root-side", "Kind", "Peak µV", "Train time s", "Acknowledged",
                 "Markers")]
        for ep in self.episodes:
            ack = "no" if ep.ack_index is None else \
                f"{self._t(ep.ack_index)}" + (f"\nby {ep.ack_by}" if ep.ack_by else "")
            rows.append((self._t(ep.start), ep.tile, f"{ep.priority}: {ep.reason}",
                         _num(ep.peak_uv, 0), _num(ep.train_time_s, 2), ack,
                         "; ".join(f"{self._t(i)} {t}" for i, t in ep.markers) or "–"))
        return out + [_table(rows, (0.1, 0.09, 0.3, 0.07, 0.08, 0.14, 0.22), self.text)]

    def _timeline(self) -> list[Flowable]:
        row = {k: i for i, k in enumerate(self.keys)}
        tile_of = [c.tile_key for c in self.montage.channels]
        spans = [figures.Span(row.get(ep.tile), ep.start / self.fs, ep.end / self.fs, "alarm")
                 for ep in self.episodes if ep.tile in row]
        spans += [figures.Span(None, i.start / self.fs, i.stop / self.fs, "not_monitored")
                  for i in self.gaps]
        trains = []
        for e in self.events:
            if e.kind == "artifact" and e.data.get("kind") == "cautery":
                spans.append(figures.Span(None, e.start / self.fs, e.end / self.fs, "cautery"))
            elif e.kind == "lead_off":
                stop = (e.stop if e.stop is not None else self.n) / self.fs
                spans += [figures.Span(row[tile_of[c]], e.start / self.fs, stop, "lead_off")
                          for c in e.channels if 0 <= c < len(tile_of)]
            elif e.kind == "emg_event" and e.data.get("train_type") == "A" and e.channels:
                trains.append((row[tile_of[e.channels[0]]], e.start / self.fs, e.end / self.fs))
        markers = [e.start / self.fs for e in self.events if e.kind in ("marker", "annotation")]
        screws = [(row[s.key], s.index / self.fs, s.band) for s in self.screws if s.key in row]
        png = figures.timeline(self.keys, self.duration_s, spans, markers, screws, trains)
        return [KeepTogether([self.text.p("Timeline", "h1"), _image(png)])]

    def _screws_and_tof(self) -> list[Flowable]:
        out: list[Flowable] = [self.text.p("Pedicle screws (triggered EMG)", "h1")]
        if self.screws:
            rows = [("Time", "Level", "Side", "Threshold mA", "Band", "Stimuli", "Muscles", "Note")]
            rows += [(self._t(s.index), s.level, s.side,
                      "> max (no response)" if s.threshold_ma is None else f"{s.threshold_ma:.2f}",
                      s.band, s.stimuli, ", ".join(s.muscles), s.note or "–")
                     for s in self.screws]
            out.append(_table(rows, (0.1, 0.06, 0.05, 0.12, 0.13, 0.07, 0.22, 0.25), self.text))
        else:
            out.append(self.text.p("No screw was tested.", "body"))
        out.append(self.text.p("Train-of-four", "h1"))
        tofs = [e for e in self.events if e.kind == "tof"]
        if not tofs:
            return out + [self.text.p("No train-of-four.", "body")]
        rows = [("Time", "Site", "Count", "T4/T1", "Amplitudes µV", "EMG")]
        rows += [(self._t(e.start), e.data.get("site"), f"{e.data.get('count')}/4",
                  _num(e.data.get("ratio"), 2),
                  ", ".join(f"{v:.0f}" for v in e.data.get("amplitudes_uv", [])),
                  e.data.get("blockade") or "reliable") for e in tofs]
        return out + [_table(rows, (0.1, 0.08, 0.07, 0.07, 0.25, 0.43), self.text)]

    def _trends(self) -> list[Flowable]:
        tiles = tile_trends(self.events, self.montage, self.fs, self.n)
        quality = quality_trend(self.events, len(self.montage.channels), self.fs)
        out: list[Flowable] = [PageBreak(), self.text.p("Trends", "h1"),
                               _image(figures.tile_trends(tiles))]
        if len(quality.t_s):
            out += [self.text.p("Signal quality over the case (✕: the channel failed that check)",
                                "body"),
                    _image(figures.quality(quality, self.montage.labels, self.duration_s))]
        out.append(_image(figures.tof_and_screws(tof_points(self.events, self.fs),
                                                 screw_points(self.events, self.fs),
                                                 self.duration_s)))
        return out

    # --- waveforms (ranged reads of the recording) ---

    def _alarm_trace(self, ep: cs.AlarmEpisode) -> figures.Trace:
        channels = [i for i, c in enumerate(self.montage.channels) if c.tile_key == ep.tile]
        before, after = (int(s * self.fs) for s in ALARM_WINDOW_S)
        a, b = max(0, ep.start - before), min(self.n, ep.start + after)
        raw = self.rec.read(a, b)[:, channels].astype(np.float64)
        missing = np.isnan(raw)
        lo, hi = SNAPSHOT_BAND_HZ
        sos = signal.butter(2, [lo, min(hi, 0.45 * self.fs)], btype="bandpass", fs=self.fs,
                            output="sos")
        y = signal.sosfiltfilt(sos, np.where(missing, 0.0, raw), axis=0) if len(raw) > 30 else raw
        y[missing] = np.nan
        t = (np.arange(a, b) - ep.start) / self.fs
        return figures.Trace(f"{ep.tile} {self._t(ep.start)} — {ep.priority} alarm", t, "s",
                             tuple(y[:, i] for i in range(len(channels))),
                             tuple(self.montage.channels[c].label for c in channels),
                             tuple("#b71c1c" for _ in channels), 0.0)

    def _screw_trace(self, s: cs.Screw) -> figures.Trace:
        channels = self.montage.channels_of(s.level, s.side)
        rows, labels, cols = [], [], []
        lo_ms, hi_ms = SCREW_WINDOW_MS
        t = None
        for stim in sorted(s.measured, key=lambda x: (x.current_ma or 0.0, x.index)):
            a, b = cmap.window_bounds(stim.index, self.fs)
            if a < 0 or b > self.n:
                continue
            r = cmap.measure(self.rec.read(a, b), stim.index, a, self.fs, channels,
                             stim.current_ma, s.key)
            ms = (np.arange(a, b) - stim.index) / self.fs * 1e3
            keep = (ms >= lo_ms) & (ms <= hi_ms)
            t = ms[keep]
            rows.append(r.waveform_uv[keep])
            mark = "✓" if r.any else "–"
            labels.append(f"{_num(stim.current_ma)} mA {mark} {r.max_uv:.0f} µV")
            cols.append(figures.COLOURS["response" if r.any else "no_response"])
        threshold = "> max" if s.threshold_ma is None else f"{s.threshold_ma:.2f} mA"
        if not rows:  # no stimulus of this screw could be read back
            t, rows, labels, cols = np.array([lo_ms, hi_ms]), [np.full(2, np.nan)], \
                ["no stimulus"], ["#000000"]
        return figures.Trace(f"screw {s.key} {self._t(s.index)} — {threshold}, {s.band}", t,
                             "ms", tuple(rows), tuple(labels), tuple(cols), 0.0)

    def _snapshots(self) -> list[Flowable]:
        traces = [self._alarm_trace(ep) for ep in self.episodes]
        traces += [self._screw_trace(s) for s in self.screws]
        self.snapshot_count = len(traces)
        if not traces:
            return []
        out: list[Flowable] = [PageBreak(), self.text.p("Waveform snapshots", "h1"), self.text.p(
            "Every alarm (raw signal of the root's muscles band-passed "
            f"{SNAPSHOT_BAND_HZ[0]:g}–{SNAPSHOT_BAND_HZ[1]:g} Hz, 1 s before to 1 s after it was "
            "raised, dashed) and every screw test (stimulus-locked responses, artifact blanked, "
            "30 Hz–3 kHz, by current; ✓ responded).", "body")]
        for i in range(0, len(traces), PANELS_PER_FIGURE):
            part = traces[i:i + PANELS_PER_FIGURE]
            caption = self.text.p(
                "; ".join(f"({i + j + 1}) {tr.title}" for j, tr in enumerate(part)), "body")
            out.append(KeepTogether([_image(figures.snapshots(part, first=i + 1)), caption]))
        return out

    def _event_log(self) -> list[Flowable]:
        entries = case_log(self.events, self.montage, self.fs)
        rows = [("Time", "Kind", "Root-side", "What happened")]
        rows += [(self._t(e.index), e.kind, ", ".join(e.tiles) or "–", e.text) for e in entries]
        return [PageBreak(), self.text.p("Event log", "h1"),
                _table(rows, (0.1, 0.1, 0.1, 0.7), self.text)]

