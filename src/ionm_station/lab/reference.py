"""Reference limits of quantitative needle EMG (``reference_muap.toml``) and the verdict.

The verdict from the MUAP means against the muscle's limits:

* **neurogenic** — mean amplitude or mean duration above its upper limit (large, long units),
  and no mean below a lower limit;
* **myopathic** — mean duration or mean amplitude below its lower limit (small, short units),
  and none above an upper limit;
* **normal** — every mean the table holds within its limits;
* **indeterminate** — fewer than :data:`MIN_MUAPS` MUAPs, no limits for the muscle, or signs
  both ways; also when only the phases, turns or polyphasic fraction are out (they rise in both
  neurogenic and myopathic muscles).

Each reason names the measure, its value, the limit and the limit's source.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: A verdict needs at least this many MUAPs.
MIN_MUAPS = 10
#: Measures that decide between neurogenic and myopathic.
SIZE_MEASURES = ("amplitude_uv", "duration_ms")


@dataclass(frozen=True)
class Limit:
    measure: str
    lower: float | None
    upper: float | None
    source: str
    citation: str
    verified: bool


@dataclass(frozen=True)
class MuscleReference:
    key: str
    limits: dict[str, Limit]


def load_reference() -> dict[str, Any]:
    """The reference table shipped in the package."""
    text = resources.files("ionm_station.lab").joinpath("reference_muap.toml").read_text(
        encoding="utf-8")
    return tomllib.loads(text)


def muscle_reference(name: str | None, table: dict[str, Any] | None = None
                     ) -> MuscleReference | None:
    """The limits of the muscle called ``name`` (any of its names, any case), or None."""
    if not name:
        return None
    table = table or load_reference()
    wanted = " ".join(name.lower().replace("_", " ").split())
    for key, muscle in table["muscles"].items():
        names = {" ".join(n.lower().replace("_", " ").split()) for n in muscle.get("names", [])}
        if wanted in names or wanted == key.replace("_", " "):
            limits = {}
            for measure, spec in muscle.get("mean", {}).items():
                src = table["sources"][spec["source"]]
                limits[measure] = Limit(measure, spec.get("lower"), spec.get("upper"),
                                        spec["source"], src["citation"],
                                        bool(src.get("verified", False)))
            return MuscleReference(key, limits)
    return None


def muscle_in_text(text: str, table: dict[str, Any] | None = None) -> str | None:
    """The first reference muscle whose full name appears in ``text`` (a header comment)."""
    table = table or load_reference()
    low = text.lower()
    for key, muscle in table["muscles"].items():
        for n in muscle.get("names", []):
            if len(n) > 4 and n.lower() in low:
                return key
    return None


def verdict(means: dict[str, float | None], n_muaps: int,
            ref: MuscleReference | None) -> tuple[str, list[str]]:
    """(pattern, reasons) from the MUAP means."""
    if n_muaps < MIN_MUAPS:
        return "indeterminate", [(f"only {n_muaps} MUAPs measured (a verdict needs "
                                  f"{MIN_MUAPS}; about 20 is the usual sample)")]
    if ref is None:
        held = ", ".join(sorted(load_reference()["muscles"]))
        return "indeterminate", [("no reference limits for this muscle (give --muscle; "
                                  f"the table holds {held})")]
    high, low, other, reasons = [], [], [], []
    for measure, lim in ref.limits.items():
        value = means.get(measure)
        if value is None:
            continue
        src = lim.source + ("" if lim.verified else ", source not verified")
        if lim.upper is not None and value > lim.upper:
            (high if measure in SIZE_MEASURES else other).append(measure)
            reasons.append(f"mean {measure} {value:.3g} above the upper limit {lim.upper:g} "
                           f"({src})")
        elif lim.lower is not None and value < lim.lower:
            (low if measure in SIZE_MEASURES else other).append(measure)
            reasons.append(f"mean {measure} {value:.3g} below the lower limit {lim.lower:g} "
                           f"({src})")
    if high and low:
        return "indeterminate", reasons + ["signs both ways (some means high, some low)"]
    if high:
        return "neurogenic", reasons
    if low:
        return "myopathic", reasons
    if other:
        return "indeterminate", reasons + [("only phases/turns/polyphasic fraction are out: "
                                            "seen in both neurogenic and myopathic muscles")]
    checked = ", ".join(sorted(m for m in ref.limits if means.get(m) is not None))
    return "normal", [f"every mean within the limits of {ref.key} ({checked})"]
