"""Reference limits of quantitative needle EMG (``reference_muap.toml``) and the verdict.

Two kinds of limit, each with its source: limits of the **mean** of a muscle's MUAPs
(``[muscles.M.mean.MEASURE]``) and per-MUAP **outlier** limits (``[muscles.M.outlier.MEASURE]``).
A measure is out on one side ("mean or outliers", as multi-MUAP analysis judges a muscle) when
its mean is beyond the mean limit, or when more than :data:`OUTLIER_FRACTION` of the MUAPs (at
least :data:`OUTLIER_MIN`) lie beyond the outlier limit on that side. Where the table holds no
outlier limit for a measure, only its mean is judged and the reasons say so.

The verdict:

* **neurogenic** — amplitude or duration out on the high side (large, long units), and none
  out on the low side;
* **myopathic** — duration or amplitude out on the low side (small, short units), and none on
  the high side;
* **normal** — every mean the table holds within its limits;
* **indeterminate** — fewer than :data:`MIN_MUAPS` MUAPs, no limits for the muscle, or signs
  both ways; also when only the phases, turns or polyphasic fraction are out (they rise in both
  neurogenic and myopathic muscles).

Each reason names the measure, its value, the limit and the limit's source.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: A verdict needs at least this many MUAPs: the limits of the mean are for samples of about
#: 20 (Engstrom & Olney, Muscle Nerve 1992;15:277-281: the 95 % tolerance limits of mean
#: duration widen from 7.4-13.0 ms for 20 MUAPs to 6.6-14.2 ms for 5; Podnar & Mrkaic, Muscle
#: Nerve 2003;27:196-201: "a sample size of 20 MUPs is standard"), so a mean of fewer MUAPs
#: judged against them is out too often.
MIN_MUAPS = 20
#: Measures that decide between neurogenic and myopathic.
SIZE_MEASURES = ("amplitude_uv", "duration_ms")
#: Measures that have a value per MUAP (the polyphasic fraction is the muscle's only).
PER_MUAP = ("amplitude_uv", "duration_ms", "area_uvms", "phases", "turns", "thickness_ms")
#: Outliers: a measure is out on one side when more than this fraction of the MUAPs ...
OUTLIER_FRACTION = 0.10
#: ... and at least this many lie beyond its outlier limit on that side (3 of 20 MUAPs).
#: Our reading of the multi-MUAP practice ("mean or outliers"); not checked against a source.
OUTLIER_MIN = 3


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
    outliers: dict[str, Limit] = field(default_factory=dict)


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
            kinds: dict[str, dict[str, Limit]] = {"mean": {}, "outlier": {}}
            for kind, limits in kinds.items():
                for measure, spec in muscle.get(kind, {}).items():
                    src = table["sources"][spec["source"]]
                    limits[measure] = Limit(measure, spec.get("lower"), spec.get("upper"),
                                            spec["source"], src["citation"],
                                            bool(src.get("verified", False)))
            return MuscleReference(key, kinds["mean"], kinds["outlier"])
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


def _side(value: float, lim: Limit) -> int:
    return 1 if lim.upper is not None and value > lim.upper else (
        -1 if lim.lower is not None and value < lim.lower else 0)


def verdict(means: dict[str, float | None], n_muaps: int, ref: MuscleReference | None,
            values: dict[str, list[float]] | None = None) -> tuple[str, list[str]]:
    """(pattern, reasons) from the MUAP means and, where the table has outlier limits, the
    per-MUAP ``values`` of each measure."""
    if n_muaps < MIN_MUAPS:
        return "indeterminate", [(f"too few MUAPs: {n_muaps} measured, a verdict needs "
                                  f"{MIN_MUAPS} (the reference limits are for means of "
                                  "about 20)")]
    if ref is None:
        held = ", ".join(sorted(load_reference()["muscles"]))
        return "indeterminate", [("no reference limits for this muscle (give --muscle; "
                                  f"the table holds {held})")]
    out: dict[str, set[int]] = {}
    reasons: list[str] = []

    def src(lim: Limit) -> str:
        return lim.source + ("" if lim.verified else ", source not verified")
    for measure, lim in ref.limits.items():
        value = means.get(measure)
        side = 0 if value is None else _side(value, lim)
        if side:
            out.setdefault(measure, set()).add(side)
            word, bound = ("above the upper", lim.upper) if side > 0 else ("below the lower",
                                                                          lim.lower)
            reasons.append(f"mean {measure} {value:.3g} {word} limit {bound:g} ({src(lim)})")
    for measure, lim in ref.outliers.items():
        v = [x for x in (values or {}).get(measure, []) if x is not None]
        need = max(OUTLIER_MIN, int(OUTLIER_FRACTION * len(v)) + 1)
        for side, word, bound in ((1, "above", lim.upper), (-1, "below", lim.lower)):
            if bound is None:
                continue
            k = sum(1 for x in v if _side(x, lim) == side)
            if k >= need:
                out.setdefault(measure, set()).add(side)
                reasons.append(f"{k} of {len(v)} MUAPs with {measure} {word} the outlier limit "
                               f"{bound:g} (out from {need}; {src(lim)})")
    no_outliers = sorted(m for m in ref.limits if m not in ref.outliers and m in PER_MUAP)
    if no_outliers:
        reasons.append(f"no published per-MUAP outlier limits for {', '.join(no_outliers)} "
                       "in reference_muap.toml: judged on the mean only")
    high = [m for m in SIZE_MEASURES if 1 in out.get(m, ())]
    low = [m for m in SIZE_MEASURES if -1 in out.get(m, ())]
    other = [m for m in out if m not in SIZE_MEASURES]
    if high and low:
        return "indeterminate", [*reasons, "signs both ways (some measures high, some low)"]
    if high:
        return "neurogenic", reasons
    if low:
        return "myopathic", reasons
    if other:
        return "indeterminate", [*reasons, ("only phases/turns/polyphasic fraction are out: "
                                            "seen in both neurogenic and myopathic muscles")]
    checked = ", ".join(sorted(m for m in ref.limits if means.get(m) is not None))
    return "normal", [f"every mean within the limits of {ref.key} ({checked})", *reasons]
