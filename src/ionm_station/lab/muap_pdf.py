"""The one-page PDF of ``ionm-station muap``: summary, verdict, MUAP table, template overlay."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import numpy as np
from matplotlib.figure import Figure
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Table

from ionm_station.report.document import FONT, _setup_reportlab

if TYPE_CHECKING:
    from ionm_station.lab.needle import NeedleResult


def _figure(result: NeedleResult) -> bytes:
    fig = Figure(figsize=(7.0, 2.6), dpi=120)
    ax = fig.add_subplot(111)
    for u in result.muaps:
        t = (np.arange(u.template_uv.size) - u.centre) * 1000.0 / u.fs_hz
        ax.plot(t, u.template_uv, lw=0.8)
    ax.set_xlim(-15, 15)
    ax.set_xlabel("ms from alignment")
    ax.set_ylabel("µV")
    ax.set_title(f"{len(result.muaps)} MUAP templates")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_muap_pdf(path: str | Path, doc: dict, result: NeedleResult) -> None:
    _setup_reportlab()
    style = ParagraphStyle("t", fontName=FONT, fontSize=9, leading=11)
    s = doc["summary"]
    story = [Paragraph(f"<b>Quantitative needle EMG</b> — {escape(doc['file'])} "
                       f"[{escape(doc['channel'])}], muscle {escape(str(doc['muscle']))}", style),
             Paragraph(f"{s['n_muaps']} MUAPs: mean amplitude {s['mean_amplitude_uv']} µV, "
                       f"duration {s['mean_duration_ms']} ms, polyphasic "
                       f"{s['polyphasic_fraction']}. <b>{s['pattern']}</b>: "
                       + escape("; ".join(s["reasons"])), style),
             Paragraph("Spontaneous activity: " + escape(", ".join(
                 f"{k} {g}" for k, g in doc["spontaneous_grades"].items())), style),
             Image(io.BytesIO(_figure(result)), width=180 * mm, height=67 * mm)]
    rows = [["#", "amp µV", "dur ms", "area µV·ms", "phases", "turns", "rate Hz", "n"]]
    rows += [[m["id"], m["amplitude_uv"], m["duration_ms"], m["area_uvms"], m["phases"],
              m["turns"], m["firing_rate_hz"] if m["firing_rate_hz"] is not None else "-",
              m["n_discharges"]] for m in doc["muaps"][:40]]
    table = Table(rows, repeatRows=1)
    table.setStyle([("FONT", (0, 0), (-1, -1), FONT, 7)])
    story.append(table)
    SimpleDocTemplate(str(path), pagesize=A4, invariant=1, leftMargin=15 * mm,
                      rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm).build(story)
