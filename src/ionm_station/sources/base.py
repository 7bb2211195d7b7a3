"""The one small interface every signal source implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ionm_station.stream import Chunk, StreamInfo


@dataclass
class SourceCounters:
    """What a source has seen, for the status line (all counts since open).

    Attributes:
        samples: samples per channel delivered.
        dropped: samples per channel the source knows it lost (sequence gaps).
        crc_errors: frames rejected by their checksum.
        resyncs: times the decoder had to hunt for the next frame.
        reconnects: times the link was re-established after loss.
    """

    samples: int = 0
    dropped: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    reconnects: int = 0


class Source(Protocol):
    """A stream of :class:`Chunk` s.

    ``read`` blocks at most about one block period (tens of ms) and returns ``None`` when
    nothing arrived in that time, so the acquisition thread can notice a stop request.
    Chunk ``start`` indices are absolute and increase; a jump forward is a gap (dropped samples).
    """

    info: StreamInfo
    counters: SourceCounters

    def open(self) -> None: ...

    def read(self) -> Chunk | None: ...

    def close(self) -> None: ...
