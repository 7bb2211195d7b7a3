"""The report's figures: matplotlib (Agg), drawn to PNG bytes that are the same for the same
input (fixed size, resolution, fonts and rc settings; no timestamp or software metadata).

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly (no pyplot
state), so they can be drawn from any thread, e.g. the window's report worker.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
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
#: Pixel columns a waveform panel is reduced to (min and max per column) before drawing.
COLUMNS = 500
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
        bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
        least = duration_s / 60.0 / 800  # a span shorter than a pixel column still shows
        for s in spans:
            x0, w = s.start_s / 60.0, max((s.stop_s - s.start_s) / 60.0, least)
            for r in range(n) if s.row is None else [s.row]:
                bars.setdefault((r, s.kind), []).append((x0, w))
        for (r, kind), xranges in bars.items():  # one collection per row and kind
            if kind == "not_monitored":
                ax.broken_barh(xranges, (r - 0.45, 0.9), facecolors="none",
                               edgecolors=COLOURS[kind], hatch="////", linewidth=0.0)
            else:
                height = 0.5 if kind == "lead_off" else 0.8
                ax.broken_barh(xranges, (r - height / 2, height), facecolors=COLOURS[kind],
                               alpha=0.35 if kind == "cautery" else 0.85, linewidth=0)
        if trains:
            rows, a, b = (np.array(x, float) for x in zip(*trains))
            ax.hlines(rows, a / 60.0, np.maximum(b, a + 0.5) / 60.0, color=COLOURS["train"],
                      linewidth=3.0, zorder=3)
        if markers:
            ax.vlines(np.asarray(markers) / 60.0, -0.5, n - 0.5, color=COLOURS["marker"],
                      linewidth=0.5, linestyle=":")
        for band in sorted({b for _, _, b in screws}):
            xs = [t / 60.0 for _, t, b in screws if b == band]
            ys = [row for row, _, b in screws if b == band]
            ax.plot(xs, ys, marker="^", markersize=5, linestyle="none",
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
        fig = _figure(0.9 + 0.22 * n)
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
        fig = _figure(3.6)
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
        fig = _figure(2.2)
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
            ax.legend(handles=[*ax.get_lines(), *ax2.get_lines()], loc="lower left",
                      frameon=False)
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


def envelope(t: np.ndarray, y: np.ndarray, columns: int = COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """``y`` (n,) or (n, k) as its min and max per column (2 points per column, in time order)
    when longer than 2 × ``columns``: what a drawing that wide shows, no spike lost (as the
    live traces do)."""
    if len(t) <= 2 * columns:
        return t, y
    per = len(t) // columns
    n = per * columns
    blocks = y[:n].reshape(columns, per, *y.shape[1:])
    with warnings.catch_warnings():  # a column of missing samples stays NaN (a break)
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(blocks, axis=1), np.nanmax(blocks, axis=1)
    tt = t[:n].reshape(columns, per)
    return (np.column_stack([tt[:, 0], tt[:, -1]]).ravel(),
            np.stack([lo, hi], axis=1).reshape(2 * columns, *y.shape[1:]))


def _panel(ax, tr: Trace, x0: float, top: float) -> None:  # noqa: ANN001 (an Axes)
    """Draw ``tr`` in the unit box whose top-left corner is (``x0``, ``top``) of ``ax``'s
    data coordinates: title, one lane per row with its label, the mark, scale bars."""
    ax.text(x0 + 0.02, top - 0.02, tr.title, ha="left", va="top", fontsize=7.5)
    p2p = [float(np.nanmax(r) - np.nanmin(r)) for r in tr.rows if np.isfinite(r).any()]
    lane_uv = max(50.0, 1.1 * max(p2p, default=50.0))
    body_top, body_bottom = top - 0.12, top - 0.9
    lane = (body_top - body_bottom) / len(tr.rows)
    k = lane / lane_uv  # data units per µV
    span = float(tr.t[-1] - tr.t[0]) or 1.0
    sx = 0.8 / span  # data units per time unit
    left = x0 + 0.03
    for i, (r, label, colour) in enumerate(zip(tr.rows, tr.labels, tr.colours)):
        mid = body_top - (i + 0.5) * lane
        centre = float(np.nanmedian(r)) if np.isfinite(r).any() else 0.0
        t, y = envelope(tr.t, r)
        ax.plot(left + (t - tr.t[0]) * sx, mid + (y - centre) * k, color=colour, linewidth=0.5)
        ax.text(left, mid + 0.3 * lane, label, fontsize=5.5, va="bottom", ha="left",
                color=colour)
    if tr.mark is not None:
        xm = left + (tr.mark - tr.t[0]) * sx
        ax.plot([xm, xm], [body_bottom, body_top], color="#555555", linestyle="--",
                linewidth=0.5)
    bar_t, bar_uv = _nice(span / 5), _nice(lane_uv * 0.6)
    xb, yb = left + 0.8 - bar_t * sx, body_bottom - 0.02
    ax.plot([xb, xb + bar_t * sx, xb + bar_t * sx], [yb, yb, yb + bar_uv * k], color="black",
            linewidth=1.0)
    ax.text(xb + bar_t * sx / 2, yb - 0.015, f"{bar_t:g} {tr.unit}", ha="center", va="top",
            fontsize=5.5)
    ax.text(xb + bar_t * sx + 0.01, yb + bar_uv * k / 2, f"{bar_uv:g} µV", ha="left",
            va="center", fontsize=5.5)


def snapshots(traces: Sequence[Trace], columns: int = 2, first: int = 1) -> bytes:
    """Up to six waveform panels on one figure (two columns), each with scale bars, numbered
    from ``first`` (their captions are the report's text); one axes for all of them (an axes
    per panel costs more than the drawing)."""
    with matplotlib.rc_context(RC):
        rows = max(1, -(-len(traces) // columns))
        fig = _figure(2.25 * rows)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_xlim(0, columns)
        ax.set_ylim(-rows, 0)
        ax.axis("off")
        for i, tr in enumerate(traces):
            r, c = divmod(i, columns)
            _panel(ax, dataclasses.replace(tr, title=f"({first + i}) {tr.title}"), float(c),
                   -float(r))
        return png(fig)
