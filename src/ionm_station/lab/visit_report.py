"""The visit report: one patient's visits, studies, trends and flagged changes as a PDF.

``ionm-station visit-report PATIENT --pdf OUT.pdf [--deidentify]``. Built from
:func:`ionm_station.lab.patients.export` (so the PDF says what ``patient show --json`` says)
with the case report's pieces (:mod:`ionm_station.report`): reportlab in invariant mode, DejaVu
Sans embedded, matplotlib figures without metadata — the same database gives the same bytes.
De-identified, the patient is its pseudonym code, visits are days since the first, and the PDF's
metadata hold no identifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, KeepTogether, SimpleDocTemplate

from ionm_station import __version__
from ionm_station.lab import patients as pt

# The case report's layout helpers, shared so both reports look and behave the same.
from ionm_station.report.document import (
    PAGE_MARGIN,
    _image,
    _setup_reportlab,
    _table,
    _Text,
    draw_footer,
)
from ionm_station.report.figures import RC, _figure, png

#: Trend panels per row and rows per figure (one figure fits a page), row height (inches).
PANELS_PER_ROW, ROWS_PER_FIGURE = 3, 4
ROW_IN = 1.9
FLAG_COLOUR = "#c62828"


class _Clean(_Text):
    """The case report's text helper with the lab's scrubber (whole-word name parts)."""

    def __init__(self, scrub: Any) -> None:
        super().__init__([])
        self._scrub = scrub

    def clean(self, text: Any) -> str:
        return self._scrub(str(text))


def trend_figure(trends: Sequence[pt.Trend]) -> bytes:
    """Small multiples, one panel per subject and measure followed at two visits or more:
    value by day since the first visit; the band is the first visit's value ± the measure's
    test-retest limit; a visit whose change is flagged is a red dot."""
    with matplotlib.rc_context(RC):
        rows = math.ceil(len(trends) / PANELS_PER_ROW)
        fig = _figure(ROW_IN * rows)
        for i, t in enumerate(trends):
            ax = fig.add_subplot(rows, PANELS_PER_ROW, i + 1)
            days = [p.day for p in t.points]
            values = [p.value for p in t.points]
            ax.plot(days, values, color="#1a1a1a", marker="o", markersize=3)
            lim = t.variability.limit_pct if t.variability else None
            if lim is not None:
                base = t.points[0].value
                lo, hi = base * (1 - lim / 100), base * (1 + lim / 100)
                ax.axhspan(lo, hi, color="#9e9e9e", alpha=0.25, linewidth=0)
            flagged = {c.after.visit for c in t.flagged}
            fx = [p.day for p in t.points if p.visit in flagged]
            fy = [p.value for p in t.points if p.visit in flagged]
            if fx:
                ax.plot(fx, fy, linestyle="none", marker="o", markersize=5, color=FLAG_COLOUR)
            ax.set_title(f"{t.label}" + (f" ({t.unit})" if t.unit else ""), fontsize=6.5)
            ax.set_xlabel("days since first visit", fontsize=6)
            span = max(days) - min(days) or 1
            ax.set_xlim(min(days) - 0.08 * span, max(days) + 0.08 * span)
            lims = list(values) + ([lo, hi] if lim is not None else [])
            pad = 0.1 * ((max(lims) - min(lims)) or abs(max(lims)) or 1.0)
            ax.set_ylim(min(lims) - pad, max(lims) + pad)
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.45 / (ROW_IN * rows) + 0.02,
                            top=1 - 0.3 / (ROW_IN * rows), wspace=0.35, hspace=0.9)
        return png(fig)


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _study_rows(study: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per measured nerve study or needle site: what, the main values, the study's own
    flags and verdict."""
    r = study["result"]
    if study["kind"] == "ncs":
        out = []
        flags = {}
        for f in r.get("flags", []) or []:
            if isinstance(f, dict):
                flags.setdefault(f.get("study", ""), []).append(str(f.get("reason", "")))
        for s in r.get("studies", []):
            vals = {m["measure"]: m["value"] for m in study["measures"]
                    if m["subject"] == s["name"]}
            shown = ", ".join(f"{m} {_fmt(v)}" for m, v in vals.items()) or "no response"
            out.append(("ncs", s["name"], shown, "; ".join(flags.get(s["name"], [])) or ""))
        names = {s["name"] for s in r.get("studies", [])}
        for name, reasons in flags.items():
            if name not in names:  # comparisons (median − ulnar)
                out.append(("ncs", str(name), "", "; ".join(reasons)))
        for p in r.get("patterns", []) or []:
            if isinstance(p, dict):
                out.append(("ncs", "pattern", str(p.get("summary", "")), ""))
        return out
    if study["kind"] == "needle":
        s = r["summary"]
        what = study["site"] or r.get("muscle") or r.get("channel") or "needle"
        values = (f"{s.get('n_muaps')} MUAPs, mean {_fmt(s.get('mean_amplitude_uv'), 0)} µV, "
                  f"{_fmt(s.get('mean_duration_ms'))} ms, polyphasic "
                  f"{_fmt(s.get('polyphasic_fraction'))}")
        return [("needle", str(what), values,
                 f"{s.get('pattern', '')}: " + "; ".join(map(str, s.get("reasons", []))))]
    return [(study["kind"], study["site"] or study["kind"], "stored (no measures read)", "")]


def build(doc: dict[str, Any], trends: Sequence[pt.Trend], path: Path, scrub: Any) -> int:
    """Write the PDF of ``doc`` (:func:`patients.export`) to ``path``; returns the pages."""
    _setup_reportlab()
    text = _Clean(scrub)
    deid = doc["deidentified"]
    head = doc["patient"]
    label = f"patient {head['code']}" if deid else f"{head['patient_id']} {head['name']}".strip()
    pdf = SimpleDocTemplate(
        str(path), pagesize=A4, leftMargin=PAGE_MARGIN, rightMargin=PAGE_MARGIN,
        topMargin=PAGE_MARGIN, bottomMargin=PAGE_MARGIN + 4 * mm, invariant=1,
        title="EMG lab visit report", author="IONM Station", subject=label,
        creator=f"ionm-station {__version__}", producer=f"ionm-station {__version__}",
        keywords="")
    story: list[Flowable] = [
        text.p("EMG lab visit report — nerve conduction and quantitative needle EMG", "title"),
        text.p("Research and education use only. IONM Station is not a medical device and is not "
               "cleared for clinical decisions.", "note")]
    visits = doc["visits"]
    period = (f"{len(visits)} visits over {visits[-1]['day']} days" if visits else "no visits")
    rows = [("Patient", label if deid else head["patient_id"]),
            ("Name", head["name"]), ("Birth date", head["birth_date"] or "(none)"),
            ("Sex", head["sex"] or "(none)"), ("Code", head["code"]), ("Visits", period)]
    if head["notes"]:
        rows.append(("Notes", head["notes"]))
    story.append(_table(rows, (0.18, 0.82), text, zebra=False, header=False))

    story.append(text.p("Flagged changes", "h1"))
    story.append(text.p(
        "A change between two visits is flagged only when it is larger than the measure's "
        "published test-retest variability (limits and sources at the end). Changes within it "
        "are shown in the trends but not flagged.", "body"))
    if doc["flags"]:
        story += [text.p("⚑ " + f, "body") for f in doc["flags"]]
    else:
        story.append(text.p("None: every change is within test-retest variability, or has no "
                            "published limit.", "body"))

    story.append(text.p("Visits and studies", "h1"))
    for v in visits:
        when = f"day {v['day']}" if deid else f"{v['date']} (day {v['day']})"
        story.append(text.p(f"Visit {v['visit']} — {when} — operator {v['operator'] or '(none)'}"
                            + (f" — {v['notes']}" if v["notes"] else ""), "body"))
        srows: list[tuple[str, ...]] = [("kind", "what", "values", "the study's own flags")]
        for s in v["studies"]:
            srows += _study_rows(s)
        if len(srows) > 1:
            story.append(_table(srows, (0.08, 0.2, 0.4, 0.32), text))
        else:
            story.append(text.p("No studies stored.", "body"))

    followed = [t for t in trends if len(t.points) >= 2]
    title = text.p("Trends", "h1")
    if followed:
        step = PANELS_PER_ROW * ROWS_PER_FIGURE
        images = [_image(trend_figure(followed[i:i + step]))
                  for i in range(0, len(followed), step)]
        story.append(KeepTogether([
            title, text.p("Grey band: the first visit's value ± the test-retest limit; red: a "
                          "visit whose change is flagged.", "body"), images[0]]))
        story += images[1:]
        trows: list[tuple[str, ...]] = [("subject: measure", "visits (day: value)",
                                         "last change", "limit")]
        for t in followed:
            c = next((c for c in reversed(t.changes) if c.vs == "previous"), None)
            trows.append((
                t.label, ", ".join(f"{p.day}: {p.value:.4g}" for p in t.points),
                "–" if c is None or math.isnan(c.change_pct)
                else f"{c.change_pct:+.1f} % ({c.direction}){' ⚑' if c.flagged else ''}",
                f"±{t.variability.limit_pct:g} %" if t.variability and t.variability.limit_pct
                else "none published"))
        story.append(_table(trows, (0.3, 0.35, 0.2, 0.15), text))
    else:
        story += [title, text.p("No measure was followed at two visits yet.", "body")]

    story.append(text.p("Test-retest limits and their sources", "h1"))
    lrows: list[tuple[str, ...]] = [("measure", "limit", "source", "how")]
    for m, lim in doc["limits"].items():
        src = lim["source"] + ("" if lim["source_verified"] else " (NOT verified)")
        lrows.append((f"{lim['label']} ({m})",
                       "none" if lim["limit_percent"] is None else f"±{lim['limit_percent']:g} %",
                       src, lim["derivation"]))
    story.append(_table(lrows, (0.2, 0.08, 0.36, 0.36), text))

    def footer(canvas, d) -> None:
        draw_footer(canvas, d.page, f"visit report — {text.clean(label)}")

    pdf.build(story, onFirstPage=footer, onLaterPages=footer)
    return pdf.page


def write_visit_report(conn: Any, patient: pt.Patient, path: str | Path,
                       deidentify: bool = False, replace: bool = False) -> int:
    """Write the visit report of ``patient`` to ``path`` atomically; returns the pages."""
    from ionm_station.outputs import atomic_output

    variability = pt.load_variability()
    doc = pt.export(conn, patient, deidentify, variability)
    trends = pt.trends(conn, patient, variability)
    if deidentify:
        scrub = pt.Scrubber(patient, [v.operator for v in pt.visits(conn, patient)])
    else:
        def scrub(x: Any) -> str:
            return str(x)
    if deidentify:  # the trend labels carry subjects (site names): scrubbed too
        trends = [pt.Trend(scrub(t.subject), t.measure, t.variability, t.points, t.changes)
                  for t in trends]
    with atomic_output(path, replace) as tmp:
        return build(doc, trends, tmp, scrub)
