"""Automatic stimulation-threshold hunt for one screw: bracket, then bisect.

The hunt proposes currents; the caller stimulates, measures the CMAP and reports whether the
target muscle responded. It starts at the region's decision current (8 mA lumbar), steps down
by halves while there is a response or up (×1.6) while there is none, until a response and a
non-response bracket the threshold, then bisects until the bracket is no wider than the
resolution. The threshold is the lowest current that evoked a response. A last confirming
stimulus at that current guards against a single noisy response.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ThresholdHunt:
    """State of one hunt (all currents mA).

    Args:
        start_ma: first current tried.
        min_ma, max_ma: stimulator range searched.
        resolution_ma: stop when the bracket is this narrow.
        max_stimuli: give up after this many stimuli (reports the best bracket).
    """

    start_ma: float = 8.0
    min_ma: float = 0.5
    max_ma: float = 20.0
    resolution_ma: float = 0.25
    max_stimuli: int = 14
    trials: list[tuple[float, bool]] = field(default_factory=list)
    low_ma: float | None = None  # highest current without response
    high_ma: float | None = None  # lowest current with response
    _confirmed: bool = False

    def next_current(self) -> float | None:
        """The next current to deliver (mA), or None when the hunt has finished."""
        if self.done:
            return None
        if not self.trials:
            return self._clamp(self.start_ma)
        if self.high_ma is None:  # no response yet: go up
            last = max(c for c, _ in self.trials)
            return None if last >= self.max_ma else self._clamp(last * 1.6)
        if self.low_ma is None:  # always responded: go down
            last = min(c for c, _ in self.trials)
            return None if last <= self.min_ma else self._clamp(last / 2.0)
        if self.high_ma - self.low_ma > self.resolution_ma:
            return round((self.high_ma + self.low_ma) / 2.0, 3)
        return self.high_ma  # confirmation stimulus

    def record(self, current_ma: float, responded: bool) -> None:
        """Report the outcome of a stimulus at ``current_ma``."""
        bracketed = (self.high_ma is not None and self.low_ma is not None
                     and self.high_ma - self.low_ma <= self.resolution_ma)
        self.trials.append((current_ma, responded))
        if bracketed and current_ma == self.high_ma:
            if responded:
                self._confirmed = True
                return
            # the confirming stimulus failed: the threshold is above; reopen the bracket upward
            self.low_ma = current_ma
            self.high_ma = self._clamp(current_ma + 2 * self.resolution_ma)
            return
        if responded:
            self.high_ma = current_ma if self.high_ma is None else min(self.high_ma, current_ma)
        else:
            self.low_ma = current_ma if self.low_ma is None else max(self.low_ma, current_ma)
        if self.low_ma is not None and self.high_ma is not None and self.low_ma >= self.high_ma:
            # contradictory outcomes (noise near threshold): trust the newest, widen the bracket
            if responded:
                self.low_ma = None if current_ma <= self.min_ma else self._clamp(current_ma - self.resolution_ma * 2)
            else:
                self.high_ma = self._clamp(current_ma + self.resolution_ma * 2)

    @property
    def done(self) -> bool:
        if self._confirmed or len(self.trials) >= self.max_stimuli:
            return True
        if self.trials and self.high_ma is None and max(c for c, _ in self.trials) >= self.max_ma:
            return True  # no response up to the maximum current
        return bool(self.trials) and self.low_ma is None and min(c for c, _ in self.trials) <= self.min_ma

    @property
    def threshold_ma(self) -> float | None:
        """Lowest current that evoked a response; None if none did (threshold > max_ma)."""
        return self.high_ma

    @property
    def stimuli(self) -> int:
        return len(self.trials)

    def _clamp(self, ma: float) -> float:
        return round(min(self.max_ma, max(self.min_ma, ma)), 3)
