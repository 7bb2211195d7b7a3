"""The acquisition thread: source → ring buffer, every sample accounted for.

The worker owns the source while running. It never waits for a consumer: the ring's producer
side never blocks, and consumers that fall behind count their own overruns. A jump forward in
a chunk's start index (samples the source lost) is written into the ring as NaN rows and
logged as a ``gap`` event, so the ring's index stays equal to the source's sample clock and
views and recorders see the hole instead of two joined pieces of signal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable


from ionm_station.events import Event, EventLog
from ionm_station.ring import RingBuffer
from ionm_station.sources.base import Source
from ionm_station.stream import Chunk


#: How long a non-live source waits for slow consumers before trying again (s).
BACKLOG_WAIT_S = 0.002


@dataclass
class AcquisitionCounters:
    """Counts kept by the acquisition thread (samples are per channel).

    Attributes:
        samples: samples written to the ring, gap fill included.
        received: samples received from the source.
        gaps: number of holes in the source's sample clock.
        gap_samples: samples missing in those holes (written as NaN).
        duplicates: samples the source sent twice (index went backwards), discarded.
    """

    samples: int = 0
    received: int = 0
    gaps: int = 0
    gap_samples: int = 0
    duplicates: int = 0


class AcquisitionWorker:
    """Reads ``source`` on its own thread into ``ring`` and ``events``.

    Args:
        source: an opened :class:`~ionm_station.sources.base.Source`.
        ring: ring buffer with the source's channel count.
        events: the session's event log (source events and gaps go here).
        max_samples: stop after this many samples per channel (None: run until stopped).
        backlog: for sources that are not live (a simulator or a replay running as fast as
            possible): returns how many samples the slowest consumer still has to read; the
            worker waits while that exceeds half the ring, so nothing is overwritten unread.
            None (live devices): never wait — a device's data must be taken when it comes.
    """

    def __init__(self, source: Source, ring: RingBuffer, events: EventLog,
                 max_samples: int | None = None, backlog: Callable[[], int] | None = None) -> None:
        self.source = source
        self.ring = ring
        self.events = events
        self.max_samples = max_samples
        self.backlog = backlog
        self.counters = AcquisitionCounters()
        self.error: str | None = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="acquisition", daemon=True)

    @property
    def next_index(self) -> int:
        """Absolute index of the next sample the ring expects."""
        return self.counters.samples

    @property
    def finished(self) -> bool:
        """True once the thread has ended (limit reached, stopped, or source failed)."""
        return self._finished.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to end and wait for it (at most ``timeout_s`` s)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the thread ends; True if it did within ``timeout_s``."""
        return self._finished.wait(timeout_s)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.backlog is not None and self.backlog() > self.ring.capacity // 2:
                    self._stop.wait(BACKLOG_WAIT_S)
                    continue
                chunk = self.source.read()
                if chunk is not None and self.ingest(chunk):
                    break
        except Exception as exc:  # a driver fault must not kill the station silently
            self.error = f"{type(exc).__name__}: {exc}"
            self.events.append(Event("source_error", self.next_index, data={"message": self.error}))
        finally:
            self._finished.set()

    def ingest(self, chunk: Chunk) -> bool:
        """Account for one chunk and write it to the ring; True when ``max_samples`` is reached."""
        expected = self.next_index
        data = chunk.data
        start = chunk.start
        if start < expected:  # overlap with what we already have: keep only the new part
            overlap = min(expected - start, chunk.n_samples)
            self.counters.duplicates += overlap
            data = data[overlap:]
            start += overlap
        self.counters.received += len(data)
        if start > expected:
            self._fill_gap(expected, start)
        if self.max_samples is not None:
            data = data[: max(0, self.max_samples - self.next_index)]
        # log the chunk's events before publishing its samples: consumers that see a sample
        # can already see the stimulus or lead-off that belongs to it
        self.events.extend([e for e in chunk.events
                            if self.max_samples is None or e.start < self.max_samples])
        if len(data):
            self.ring.write(data)
            self.counters.samples += len(data)
        return self.max_samples is not None and self.next_index >= self.max_samples

    def _fill_gap(self, expected: int, start: int) -> None:
        missing = start - expected
        if self.max_samples is not None:
            missing = min(missing, self.max_samples - expected)
        self.counters.gaps += 1
        self.counters.gap_samples += start - expected
        self.events.append(Event("gap", expected, start, data={"samples": start - expected}))
        self.ring.write_nan(missing)
        self.counters.samples += missing
