"""Drive a triggered-EMG controller from a source synchronously (no threads).

Used by benchmarks and tests, and by anything that needs a hunt's result without a running
session: it reads the source chunk by chunk into a ring and lets the controller work after
each chunk, exactly as the session's processing thread does.
"""

from __future__ import annotations

from ionm_station.ring import RingBuffer
from ionm_station.sources.base import Source
from ionm_station.triggered.controller import TriggeredEmg


def run_until_idle(source: Source, ring: RingBuffer, controller: TriggeredEmg,
                   max_samples: int, min_samples: int = 0) -> int:
    """Feed ``source`` into ``ring`` until ``controller`` is idle (after at least
    ``min_samples``) or ``max_samples`` were read; returns the samples read."""
    while ring.published < max_samples:
        chunk = source.read()
        if chunk is None:
            continue
        ring.write(chunk.data)
        controller.on_events(chunk.events)
        controller.poll()
        if not controller.busy and ring.published >= min_samples:
            break
    return ring.published
