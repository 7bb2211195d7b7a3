"""Biofeedback sessions compared over time: the history of a patient's session results and the
trend plot (matplotlib, Agg; PNG or PDF).

A history is a list of session documents (``ionm-station biofeedback --json``) oldest first,
read from the lab database (a patient's ``biofeedback`` studies over visits) or from a folder
of session JSON files. What is followed: time in target, median onset and release time, MVC,
median frequency (first and last trial) — :data:`MEASURES`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ionm_station.errors import IonmError

#: (key in ``scores``, label, scale to the plotted unit, unit).
MEASURES = (
    ("time_in_target", "time in target", 100.0, "%"),
    ("onset_s_median", "onset (median)", 1000.0, "ms"),
    ("release_s_median", "release (median)", 1000.0, "ms"),
    ("mvc_uv", "MVC", 1.0, "µV"),
    ("median_frequency_first_hz", "median frequency, first trial", 1.0, "Hz"),
    ("median_frequency_last_hz", "median frequency, last trial", 1.0, "Hz"),
)


class HistoryError(IonmError):
    """A session file that is not a biofeedback result (one line naming it)."""


@dataclass(frozen=True)
class SessionPoint:
    """One session in a trend: when, which protocol, its scores."""

    when: str
    protocol: str
    scores: dict[str, Any]
    source: str

    def value(self, key: str) -> float | None:
        v = self.scores.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def point(doc: Any, source: str) -> SessionPoint:
    """The trend point of one session document; HistoryError if it is not one."""
    if not isinstance(doc, dict) or doc.get("kind") != "biofeedback" \
            or not isinstance(doc.get("scores"), dict):
        raise HistoryError(f"{source}: not a biofeedback session result (no kind "
                           "'biofeedback' with 'scores')")
    return SessionPoint(str(doc.get("date", "")), str(doc["scores"].get("protocol", "")),
                        doc["scores"], source)


def history_from_folder(folder: Path) -> list[SessionPoint]:
    """Every ``*.json`` session in ``folder``, oldest first (by date, then name)."""
    if not folder.is_dir():
        raise HistoryError(f"{folder}: not a folder")
    points = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HistoryError(f"{path}: cannot read a session result ({exc})") from None
        points.append(point(doc, str(path)))
    return sorted(points, key=lambda p: (p.when, p.source))


def history_from_db(conn: Any, patient: Any) -> list[SessionPoint]:
    """The patient's ``biofeedback`` studies over every visit, oldest first."""
    from ionm_station.lab import patients as pt

    points = []
    for visit in pt.visits(conn, patient):
        for study in pt.studies(conn, visit):
            if study.kind == "biofeedback":
                p = point(study.result, f"visit {visit.pk}, study {study.pk}")
                points.append(SessionPoint(p.when or visit.date, p.protocol, p.scores, p.source))
    return points


def comparison(points: list[SessionPoint]) -> list[str]:
    """Lines comparing the newest session with the one before (same protocol if any)."""
    if len(points) < 2:
        return ["first session: nothing to compare with"]
    new = points[-1]
    same = [p for p in points[:-1] if p.protocol == new.protocol] or points[:-1]
    old = same[-1]
    lines = [f"compared with the session of {old.when or old.source} ({old.protocol}):"]
    for key, label, scale, unit in MEASURES:
        a, b = old.value(key), new.value(key)
        if a is None or b is None:
            continue
        lines.append(f"  {label}: {b * scale:.0f} {unit} (was {a * scale:.0f} {unit}, "
                     f"{(b - a) * scale:+.0f})")
    return lines


def plot_trend(points: list[SessionPoint], path: Path, title: str = "",
               replace: bool = False) -> None:
    """The trend figure (one panel per measure group, sessions on x) written atomically to
    ``path`` (.png or .pdf; an existing file replaced only with ``replace``)."""
    from matplotlib.figure import Figure

    from ionm_station.outputs import atomic_output

    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "pdf"):
        raise HistoryError(f"{path}: the trend plot is .png or .pdf")
    x = list(range(1, len(points) + 1))
    fig = Figure(figsize=(9, 6.5), dpi=110)
    axes = fig.subplots(2, 2)
    panels = (
        (axes[0][0], ("time_in_target",), "time in target (%)", (0, 100)),
        (axes[0][1], ("onset_s_median", "release_s_median"), "onset / release, median (ms)", None),
        (axes[1][0], ("mvc_uv",), "MVC (µV RMS)", None),
        (axes[1][1], ("median_frequency_first_hz", "median_frequency_last_hz"),
         "median frequency (Hz)", None),
    )
    by_key = {m[0]: m for m in MEASURES}
    for ax, keys, ylabel, ylim in panels:
        for key in keys:
            _, label, scale, _unit = by_key[key]
            ys = [p.value(key) for p in points]
            xs = [xi for xi, y in zip(x, ys, strict=True) if y is not None]
            vals = [y * scale for y in ys if y is not None]
            ax.plot(xs, vals, marker="o", label=label)
        ax.set_ylabel(ylabel)
        ax.set_xticks(x, [p.when[:10] or str(i) for i, p in zip(x, points, strict=True)],
                      rotation=30, fontsize=7)
        ax.grid(True, alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(title or f"Biofeedback sessions ({len(points)})")
    fig.tight_layout()
    with atomic_output(path, replace=replace) as tmp:
        fig.savefig(tmp, format=fmt)
