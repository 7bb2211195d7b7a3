"""Stream description and sample chunks.

The sample index is the clock: every chunk carries the absolute index of its first
sample (0 = first sample the source produced). Host time is metadata only.
Data are laid out samples × channels (time-major), in µV unless stated otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ionm_station.events import Event


@dataclass(frozen=True)
class StreamInfo:
    """What a source streams.

    Attributes:
        sample_rate_hz: samples per second per channel (Hz).
        labels: one label per channel, e.g. ``"L5-L TibAnt"``.
        unit: physical unit of the samples after scaling (always ``"uV"`` here).
        range_uv: input range of the amplifier: samples saturate at ± this value (µV).
        source: human-readable source name for status lines ("simulated", a port, a board).
    """

    sample_rate_hz: float
    labels: tuple[str, ...]
    range_uv: float = 5000.0
    unit: str = "uV"
    source: str = "simulated"

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    def seconds_to_samples(self, seconds: float) -> int:
        """Number of samples in ``seconds`` (s), rounded to the nearest sample."""
        return int(round(seconds * self.sample_rate_hz))

    def samples_to_seconds(self, n: int) -> float:
        """Duration of ``n`` samples in seconds."""
        return n / self.sample_rate_hz


@dataclass
class Chunk:
    """A block of consecutive samples from one source.

    Attributes:
        start: absolute index of the first sample (int, the stream clock).
        data: float32 array, shape (n_samples, n_channels), µV; NaN marks missing samples.
        events: events the source itself reports inside this block (stimuli, lead-off, gaps),
            keyed by absolute sample index.
        host_time_s: host monotonic time when the block was produced (metadata only).
    """

    start: int
    data: np.ndarray
    events: list[Event] = field(default_factory=list)
    host_time_s: float = 0.0

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    @property
    def stop(self) -> int:
        """Absolute index one past the last sample."""
        return self.start + self.n_samples
