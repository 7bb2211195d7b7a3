"""Train time: the one definition, shared by the alarm engine, ``run --json`` and ``analyze``.

Train time (Prell et al., J Neurosurg 2007) is the summed duration of neurotonic A-trains. Per
root and side it is the duration of the **union** of the A-train spans of that root's muscles:
one train seen on two L5 muscles at once counts once. Per channel it is that channel's own sum.
Spans are ``[start, stop)`` absolute sample indices (stop exclusive).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from ionm_station.montage import Montage


def union_samples(spans: Iterable[tuple[int, int]]) -> int:
    """Samples covered by the union of ``[start, stop)`` spans."""
    total, reach = 0, None
    for a, b in sorted(spans):
        if reach is None or a >= reach:
            total += b - a
            reach = b
        elif b > reach:
            total += b - reach
            reach = b
    return total


class TrainTimeLedger:
    """A-train spans per channel, and train time per channel and per tile (root-side) (s).

    Args:
        montage: channel i feeds the tile ``montage.channels[i].tile_key``.
        sample_rate_hz: to turn samples into seconds (Hz).
    """

    def __init__(self, montage: Montage, sample_rate_hz: float) -> None:
        self.montage = montage
        self.fs = float(sample_rate_hz)
        self._spans: list[list[tuple[int, int]]] = [[] for _ in montage.channels]
        self._keys = {i: c.tile_key for i, c in enumerate(montage.channels)}
        self._tile_samples: dict[str, int] = {}  # cached unions, dropped when a span is added

    def add(self, channel: int, start: int, stop: int) -> None:
        """Record an A-train on ``channel`` over samples ``[start, stop)``."""
        if stop > start:
            bisect.insort(self._spans[channel], (int(start), int(stop)))
            self._tile_samples.pop(self._keys[channel], None)

    def channel_s(self, channel: int) -> float:
        """Summed A-train time on one channel (s)."""
        return union_samples(self._spans[channel]) / self.fs

    def tile_s(self, key: str, extra: Iterable[tuple[int, int]] = ()) -> float:
        """Train time of tile ``key`` (s, e.g. ``"L5-L"``): union over its channels' A-trains, plus
        ``extra`` spans (e.g. an A-train still going on)."""
        extra = list(extra)
        if extra:
            return union_samples([*self._tile_spans(key), *extra]) / self.fs
        if key not in self._tile_samples:
            self._tile_samples[key] = union_samples(self._tile_spans(key))
        return self._tile_samples[key] / self.fs

    def _tile_spans(self, key: str) -> list[tuple[int, int]]:
        return [s for c, k in self._keys.items() if k == key for s in self._spans[c]]

    def by_channel(self) -> dict[str, float]:
        """Train time (s) per channel label, in montage order."""
        return {c.label: self.channel_s(i) for i, c in enumerate(self.montage.channels)}

    def by_tile(self) -> dict[str, float]:
        """Train time (s) per tile key (``"L5-L"``), in montage order."""
        return {key: self.tile_s(key) for key in self.montage.tile_keys()}
