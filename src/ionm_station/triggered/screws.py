"""Pedicle-screw log and region profiles (what a stimulation threshold means).

Lumbar (Raynor et al. 2007, 4,857 screws): < 4 mA likely breach, 4–8 mA possible breach,
> 8 mA no breach. Thoracic (Raynor et al. 2002): ≥ 6 mA in bone, and a screw whose threshold
is ≥ 60 % below the mean of the patient's other screws is suspect (a breach showed a 69 %
drop). Cervical: normative data are limited, so the levels are the user's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class RegionProfile:
    """Threshold bands of a spinal region (mA) and the relative-drop rule (fraction)."""

    name: str
    likely_below_ma: float
    possible_below_ma: float
    relative_drop: float | None = None


REGIONS = {
    "lumbar": RegionProfile("lumbar", 4.0, 8.0),
    "thoracic": RegionProfile("thoracic", 6.0, 6.0, relative_drop=0.6),
    "cervical": RegionProfile("cervical", 3.0, 6.0),  # user-set: override per case
}


@dataclass(frozen=True)
class ScrewResult:
    """One tested screw: where, the threshold found (mA, None = no response up to the maximum),
    stimuli used, and the band the region profile puts it in."""

    level: str
    side: str
    threshold_ma: float | None
    stimuli: int
    band: str
    note: str = ""
    reliable: bool = True


@dataclass
class ScrewLog:
    """All screws tested in a case, classified by a region profile."""

    region: RegionProfile = REGIONS["lumbar"]
    max_ma: float = 20.0
    screws: list[ScrewResult] = field(default_factory=list)

    def classify(self, threshold_ma: float | None) -> str:
        """``likely breach`` / ``possible breach`` / ``no breach`` for a threshold (mA)."""
        if threshold_ma is None or threshold_ma >= self.region.possible_below_ma:
            return "no breach"
        if threshold_ma < self.region.likely_below_ma:
            return "likely breach"
        return "possible breach"

    def add(self, level: str, side: str, threshold_ma: float | None, stimuli: int,
            reliable: bool = True) -> ScrewResult:
        """Log a screw; the band follows the region profile (and, thoracic, the relative drop)."""
        band = self.classify(threshold_ma)
        note = ""
        drop = self.region.relative_drop
        others = [s.threshold_ma for s in self.screws if s.threshold_ma is not None]
        if drop is not None and threshold_ma is not None and others:
            mean = sum(others) / len(others)
            if threshold_ma <= (1.0 - drop) * mean:
                band = "possible breach" if band == "no breach" else band
                note = f"{100 * (1 - threshold_ma / mean):.0f} % below the mean of other screws"
        if not reliable and band == "no breach":
            note = "; ".join(filter(None, [note, "neuromuscular blockade: negative result unreliable"]))
        result = ScrewResult(level, side, threshold_ma, stimuli, band, note, reliable)
        self.screws.append(result)
        return result

    def to_json(self) -> list[dict]:
        return [asdict(s) for s in self.screws]
