"""The report's figures: matplotlib (Agg), drawn to PNG bytes that are the same for the same
input (fixed size, resolution, fonts and rc settings; no timestamp or software metadata).

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly (no pyplot
state), so they can be drawn from any thread, e.g. the window's report worker.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ionm_station.trends import (
    QualityTrend,
    ScrewPoint,
    TileTrends,
    TofPoint,
    level_order,
)

#: Width of a full-width figure (inches: A4 less 15 mm margins) and its resolution (dpi).
WIDTH_IN = 7.0
DPI = 150
#: Fixed rc settings: the same bytes on every machine with this matplotlib.
RC = {"font.family": "DejaVu Sans", "font.size": 7.0, "axes.titlesize": 8.0,
      "axes.labelsize": 7.0, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
      "legend.fontsize": 6.0, "lines.linewidth": 0.8, "axes.linewidth": 0.6,
      "figure.dpi": DPI, "savefig.dpi": DPI, "image.interpolation": "nearest",
      "path.simplify": True, "axes.grid": False, "hatch.linewidth": 0.6}
#: Colours of the timeline and snapshots.
COLOURS = {"alarm": "#c62828", "cautery": "#1a237e", "lead_off": "#6a1b4d",
           "not_monitored": "#9e9e9e", "marker": "#000000", "train": "#1a1a1a",
           "response": "#1b7f3b", "no_response": "#9e9e9e",
           "likely breach": "#c62828", "possible breach": "#ef8f00", "no breach": "#2e7d32"}


def _figure(height_in: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes without metadata that would change between runs."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _minutes_axis(ax, duration_s: float) -> None:
    ax.set_xlim(0, max(duration_s, 1.0) / 60.0)
    ax.set_xlabel("case time (min)")


@dataclass(frozen=True)
class Span:
    """A span on the timeline: ``row`` (tile index, None: every row), start and stop (s),
    what it is (a key of :data:`COLOURS`)."""

    row: int | None
    start_s: float
    stop_s: float
    kind: str


def timeline(keys: Sequence[str], duration_s: float, spans: Sequence[Span],
             markers: Sequence[float], screws: Sequence[tuple[int, float, str]],
             trains: Sequence[tuple[int, float, float]]) -> bytes:
    """One row per tile: alarms (raised → acknowledged), A-trains, lead-offs, screws (▲ by
    band); cautery and time not monitored over every row; markers as vertical lines."""
    with matplotlib.rc_context(RC):
        n = len(keys)
        height = 0.15 + 0.2 * max(n, 1) + 0.75  # title room, rows, axis label and legend (in)
        fig = _figure(height)
        ax = fig.add_axes((0.08, 0.75 / height, 0.9, 0.2 * max(n, 1) / height))
        for s in spans:
            x0, w = s.start_s / 60.0, max((s.stop_s - s.start_s) / 60.0, duration_s / 60.0 / 800)
            rows = range(n) if s.row is None else [s.row]
            for r in rows:
                if s.kind == "not_monitored":
                    ax.broken_barh([(x0, w)], (r - 0.45, 0.9), facecolors="none",
                                   edgecolors=COLOURS[s.kind], hatch="////", linewidth=0.0)
                else:
                    height = 0.5 if s.kind == "lead_off" else 0.8
                    ax.broken_barh([(x0, w)], (r - height / 2, height), facecolors=COLOURS[s.kind],
                                   alpha=0.35 if s.kind == "cautery" else 0.85, linewidth=0)
        for row, a, b in trains:
            ax.plot([a / 60.0, max(b, a + 0.5) / 60.0], [row, row], color=COLOURS["train"],
                    linewidth=3.0, solid_capstyle="butt", zorder=3)
        for m in markers:
            ax.axvline(m / 60.0, color=COLOURS["marker"], linewidth=0.5, linestyle=":")
        for row, t, band in screws:
            ax.plot([t / 60.0], [row], marker="^", markersize=5, linestyle="none",
                    color=COLOURS.get(band, "#000000"), markeredgecolor="black",
                    markeredgewidth=0.4)
        ax.set_yticks(range(n), list(keys))
        ax.set_ylim(n - 0.5, -0.5)
        _minutes_axis(ax, duration_s)
        ax.grid(axis="x", linewidth=0.3, color="#dddddd")
        handles = [Patch(color=COLOURS[k], label=label, alpha=a)
                   for k, label, a in (("alarm", "alarm (raised → ack)", 0.85),
                                       ("train", "A-train", 1.0),
                                       ("cautery", "cautery", 0.35),
                                       ("lead_off", "lead off", 0.85))]
        handles.append(Patch(facecolor="none", edgecolor=COLOURS["not_monitored"],
                                                hatch="////", label="not monitored / gap"))
        handles.append(Line2D([], [], color="black", linestyle=":",
                                               label="marker"))
        handles.append(Line2D([], [], marker="^", linestyle="none",
                                               color="#888888", label="screw (band colour)"))
        fig.legend(handles=handles, loc="lower center", ncol=7, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        return png(fig)


def tile_trends(trends: TileTrends) -> bytes:
    """Train time and event rate per tile and minute, as two heat maps."""
    with matplotlib.rc_context(RC):
        n = len(trends.keys)
        fig = _figure(1.2 + 0.32 * n)
        edges = np.r_[trends.start_s, trends.start_s[-1] + 60.0 if len(trends.start_s) else 60.0]
        for i, (data, title, unit, cmap) in enumerate((
                (trends.train_time_s, "A-train time per minute", "s", "Reds"),
                (trends.event_rate, "EMG events above threshold per minute", "/min", "Blues"))):
            ax = fig.add_axes((0.08 + 0.47 * i, 0.12, 0.36, 0.8))
            mesh = ax.pcolormesh(edges / 60.0, np.arange(n + 1) - 0.5, data, cmap=cmap,
                                 vmin=0, vmax=max(float(data.max()), 1e-9), shading="flat")
            ax.set_yticks(range(n), list(trends.keys) if i == 0 else [""] * n)
            ax.set_ylim(n - 0.5, -0.5)
            ax.set_title(title)
            ax.set_xlabel("case time (min)")
            fig.colorbar(mesh, ax=ax, fraction=0.08, pad=0.02).set_label(unit)
        return png(fig)


def quality(trend: QualityTrend, labels: Sequence[str], duration_s: float) -> bytes:
    """Noise RMS, mains and ECG level of every channel at each check; failing checks ✕."""
    with matplotlib.rc_context(RC):
        fig = _figure(4.2)
        colours = matplotlib.colormaps["tab20"](np.linspace(0, 1, 20))
        rows = ((trend.noise_rms_uv, "noise (µV RMS)"), (trend.mains_uv, "mains (µV RMS)"),
                (trend.ecg_uv, "ECG (µV p-p)"))
        axes = []
        for r, (data, label) in enumerate(rows):
            ax = fig.add_axes((0.08, 0.7 - 0.29 * r, 0.72, 0.25))
            axes.append(ax)
            for ch in range(data.shape[0]):
                ax.plot(trend.t_s / 60.0, data[ch], color=colours[ch % 20], marker=".",
                        markersize=2.5, label=labels[ch] if ch < len(labels) else str(ch))
                bad = trend.failing[ch] & np.isfinite(data[ch])
                ax.plot(trend.t_s[bad] / 60.0, data[ch][bad], linestyle="none", marker="x",
                        color="#c62828", markersize=4)
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            _minutes_axis(ax, duration_s)
            if r < 2:
                ax.set_xlabel("")
                ax.tick_params(labelbottom=False)
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1, frameon=False)
        return png(fig)


def tof_and_screws(tof: Sequence[TofPoint], screws: Sequence[ScrewPoint],
                   duration_s: float) -> bytes:
    """Left: TOF count and T4/T1 over the case. Right: screw thresholds by level (L ◀, R ▶),
    coloured by band; ▲ at the top: no response up to the maximum."""
    with matplotlib.rc_context(RC):
        fig = _figure(2.4)
        ax = fig.add_axes((0.07, 0.18, 0.36, 0.72))
        if tof:
            t = np.array([p.t_s for p in tof]) / 60.0
            ax.step(t, [p.count for p in tof], where="post", color="#37474f", marker="o",
                    markersize=3, label="count")
            ax2 = ax.twinx()
            ratio = np.array([np.nan if p.ratio is None else p.ratio for p in tof])
            ax2.plot(t, ratio, color="#ef8f00", marker="s", markersize=3, linestyle="--",
                     label="T4/T1")
            ax2.set_ylim(0, 1.1)
            ax2.set_ylabel("T4/T1")
        ax.set_ylim(-0.2, 4.4)
        ax.set_yticks(range(5))
        ax.set_ylabel("TOF count")
        ax.set_title("Train-of-four" + ("" if tof else " (none)"))
        _minutes_axis(ax, duration_s)
        ax = fig.add_axes((0.57, 0.18, 0.4, 0.72))
        ordered = sorted({p.level for p in screws}, key=lambda lv: (level_order(lv), lv))
        top = max([p.threshold_ma for p in screws if p.threshold_ma is not None] + [20.0])
        for p in screws:
            x = ordered.index(p.level) + (-0.12 if p.side == "L" else 0.12)
            y, marker = (p.threshold_ma, "<" if p.side == "L" else ">") \
                if p.threshold_ma is not None else (top * 1.05, "^")
            ax.plot([x], [y], marker=marker, markersize=6, linestyle="none",
                    color=COLOURS.get(p.band, "#000000"), markeredgecolor="black",
                    markeredgewidth=0.4)
            ax.annotate(f"{p.side} {p.threshold_ma:.1f}" if p.threshold_ma is not None
                        else f"{p.side} >max", (x, y), textcoords="offset points",
                        xytext=(0, 5), ha="center", fontsize=5.5)
        ax.set_xticks(range(len(ordered)), ordered)
        ax.set_xlim(-0.6, max(len(ordered), 1) - 0.4)
        ax.set_ylim(0, top * 1.18)
        ax.set_ylabel("threshold (mA)")
        ax.set_title("Screw thresholds by level" + ("" if screws else " (none)"))
        for band in ("likely breach", "possible breach", "no breach"):
            ax.plot([], [], marker="s", linestyle="none", color=COLOURS[band], label=band)
        ax.legend(loc="upper right", frameon=False)
        return png(fig)


@dataclass(frozen=True)
class Trace:
    """One waveform panel: ``title``; time of each sample (``t`` in ``unit``, ``ms`` or
    ``s``); ``rows`` of samples (µV), each a (n,) or (n, k) array drawn on its own lane with
    its label and colour; ``mark`` an x where a dashed line is drawn (stimulus, alarm)."""

    title: str
    t: np.ndarray
    unit: str
    rows: tuple[np.ndarray, ...]
    labels: tuple[str, ...]
    colours: tuple[str, ...]
    mark: float | None = None


def _nice(value: float) -> float:
    """The 1-2-5 number at or below ``value`` (scale bars)."""
    if value <= 0 or not np.isfinite(value):
        return 1.0
    exp = 10.0 ** np.floor(np.log10(value))
    return float(max(m * exp for m in (1.0, 2.0, 5.0) if m * exp <= value))


def _panel(ax, tr: Trace) -> None:
    p2p = [float(np.nanmax(r) - np.nanmin(r)) for r in tr.rows if np.isfinite(r).any()]
    lane = max(50.0, 1.1 * max(p2p, default=50.0))
    for i, (r, label, colour) in enumerate(zip(tr.rows, tr.labels, tr.colours)):
        offset = -i * lane
        centre = float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0
        ax.plot(tr.t, (r - centre) + offset, color=colour, linewidth=0.5)
        ax.text(tr.t[0], offset + 0.3 * lane, label, fontsize=5.5, va="bottom", ha="left",
                color=colour)
    if tr.mark is not None:
        ax.axvline(tr.mark, color="#555555", linestyle="--", linewidth=0.5)
    span = float(tr.t[-1] - tr.t[0])
    bar_t, bar_uv = _nice(span / 5), _nice(lane * 0.6)
    x0 = tr.t[-1] - bar_t - span * 0.02
    y0 = -(len(tr.rows) - 0.55) * lane
    ax.plot([x0, x0 + bar_t], [y0, y0], color="black", linewidth=1.0)
    ax.plot([x0 + bar_t, x0 + bar_t], [y0, y0 + bar_uv], color="black", linewidth=1.0)
    ax.text(x0 + bar_t / 2, y0 - 0.06 * lane, f"{bar_t:g} {tr.unit}", ha="center", va="top",
            fontsize=5.5)
    ax.text(x0 + bar_t + span * 0.01, y0 + bar_uv / 2, f"{bar_uv:g} µV", ha="left",
            va="center", fontsize=5.5)
    ax.set_ylim(y0 - 0.3 * lane, 0.8 * lane)
    ax.set_xlim(tr.t[0], tr.t[-1] + span * 0.12)
    ax.set_title(tr.title, loc="left")
    ax.axis("off")


def snapshots(traces: Sequence[Trace], columns: int = 2) -> bytes:
    """Up to six waveform panels on one figure (two columns), each with scale bars."""
    with matplotlib.rc_context(RC):
        rows = max(1, -(-len(traces) // columns))
        fig = _figure(2.25 * rows)
        for i, tr in enumerate(traces):
            r, c = divmod(i, columns)
            ax = fig.add_axes((0.02 + c / columns, 1 - (r + 1) / rows + 0.02 / rows,
                               1 / columns - 0.04, 0.86 / rows))
            _panel(ax, tr)
        return png(fig)
