"""Train-of-four (TOF): 4 supramaximal stimuli at 2 Hz, twitch count and T4/T1 ratio.

A count below 4, or a T4/T1 ratio below ``ratio_ok``, means neuromuscular blockade: free-run
and triggered EMG are unreliable (a negative screw test may be a silenced muscle). Hand-muscle
relaxation may not reflect leg muscles, so the result names the site (root-side) it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ionm_station.triggered.cmap import Response

PULSES = 4


@dataclass(frozen=True)
class TofResult:
    """One train-of-four: site, sample index of T1, twitch count (0–4), T4/T1 (None if T4 absent)."""

    site: str
    index: int
    count: int
    ratio: float | None
    amplitudes_uv: tuple[float, ...]

    def blockade(self, ratio_ok: float = 0.9) -> str:
        """'' if EMG is reliable, else the reason shown on the alarm tiles."""
        if self.count < PULSES:
            return f"neuromuscular blockade: EMG unreliable (TOF {self.count}/4 at {self.site})"
        if self.ratio is not None and self.ratio < ratio_ok:
            return f"neuromuscular blockade: EMG unreliable (T4/T1 {self.ratio:.2f} at {self.site})"
        return ""


def evaluate(site: str, responses: list[Response]) -> TofResult:
    """Twitch count and fade from the four responses of one train (pulse order)."""
    if len(responses) != PULSES:
        raise ValueError(f"a train-of-four has {PULSES} responses, got {len(responses)}")
    amps = tuple(r.max_uv if r.any else 0.0 for r in responses)
    count = 0
    for r in responses:  # twitches disappear from T4 backwards
        if not r.any:
            break
        count += 1
    ratio = amps[3] / amps[0] if count == PULSES and amps[0] > 0 else None
    return TofResult(site, responses[0].stimulus, count, ratio, amps)
