"""The acquisition thread: source → ring buffer, every sample accounted for.

A supervised worker that owns the source while running. It never waits for a consumer when the
source is live (a device's data must be taken as it comes): the ring's producer side never
blocks, and consumers that fall behind count their own overruns. A jump forward in a chunk's
start index (samples the source lost) is written into the ring as NaN rows and logged as a
``gap`` event, so the ring's index stays equal to the source's sample clock and views and
recorders see the hole instead of two joined pieces of signal.

A source that raises is not a crash of this thread: the fault is logged once per outage
(``source_error``), :attr:`AcquisitionWorker.source_fault` names it (the session raises SIGNAL
LOST), and the worker calls ``source.recover()`` with growing pauses until the source delivers
samples again (``source_recovered``). Only a fault in this thread's own code crashes it, for the
supervisor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ionm_station.events import Event, EventLog
from ionm_station.pipeline.worker import Worker
from ionm_station.ring import RingBuffer
from ionm_station.sources.base import Source
from ionm_station.stream import Chunk

#: How long a non-live source waits for slow consumers before trying again (s).
BACKLOG_WAIT_S = 0.002
#: Pauses between recovery attempts of a failed source (s): doubling from the first to the last.
RECOVER_FIRST_S = 0.1
RECOVER_MAX_S = 2.0


@dataclass
class AcquisitionCounters:
    """Counts kept by the acquisition thread (samples are per channel).

    Attributes:
        samples: samples written to the ring, gap fill included.
        received: samples received from the source.
        gaps: number of holes in the source's sample clock.
        gap_samples: samples missing in those holes (written as NaN).
        duplicates: samples the source sent twice (index went backwards), discarded.
        source_faults: times the source raised.
    """

    samples: int = 0
    received: int = 0
    gaps: int = 0
    gap_samples: int = 0
    duplicates: int = 0
    source_faults: int = 0


class AcquisitionWorker(Worker):
    """Reads ``source`` on its own supervised thread into ``ring`` and ``events``.

    Args:
        source: an opened :class:`~ionm_station.sources.base.Source`.
        ring: ring buffer with the source's channel count.
        events: the session's event log (source events and gaps go here).
        max_samples: finish after this many samples per channel (None: run until stopped).
        backlog: for sources that are not live (a simulator or a replay running as fast as
            possible): returns how many samples the slowest consumer still has to read; the
            worker waits while that exceeds half the ring, so nothing is overwritten unread.
            Ignored for live sources.

    Attributes:
        last_data_s: host monotonic time of the last chunk with samples (s).
        source_fault: the source's fault while it is failing (one line), else None.
    """

    def __init__(self, source: Source, ring: RingBuffer, events: EventLog,
                 max_samples: int | None = None, backlog: Callable[[], int] | None = None) -> None:
        super().__init__("acquisition", idle_s=0.0)
        self.source = source
        self.ring = ring
        self.events = events
        self.max_samples = max_samples
        self.backlog = None if source.live else backlog
        self.counters = AcquisitionCounters()
        self.last_data_s = time.monotonic()
        self.source_fault: str | None = None
        self._retry_at = 0.0
        self._retry_pause = RECOVER_FIRST_S

    @property
    def next_index(self) -> int:
        """Absolute index of the next sample the ring expects."""
        return self.counters.samples

    @property
    def finished(self) -> bool:
        """True once acquisition has ended on purpose (sample limit reached)."""
        return self.health().state == "finished"

    def start(self) -> None:
        """Start reading; the silence clock starts now, not when the worker was built."""
        self.last_data_s = time.monotonic()
        super().start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the thread ends; True if it did within ``timeout_s``."""
        return self.join(timeout_s)

    def step(self) -> int | None:
        if self.max_samples is not None and self.next_index >= self.max_samples:
            return None
        if self._retry_at and not self._recover():
            return 0
        if self.backlog is not None and self.backlog() > self.ring.capacity // 2:
            self._stop.wait(BACKLOG_WAIT_S)
            return 0
        try:
            chunk = self.source.read()
        except Exception as exc:  # a driver fault: SIGNAL LOST and recovery, not a crash
            self._fault(exc)
            return 0
        if chunk is None:
            return 0
        if chunk.n_samples:
            self.last_data_s = time.monotonic()
            if self.source_fault is not None:
                self.events.append(Event("source_recovered", self.next_index,
                                         data={"after": self.source_fault}))
                self.source_fault = None
                self._retry_pause = RECOVER_FIRST_S
        self.ingest(chunk)
        return max(1, chunk.n_samples)

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

    def _fault(self, exc: Exception) -> None:
        """The source raised: log it once per outage and schedule a recovery attempt."""
        message = f"{type(exc).__name__}: {exc}"
        if self.source_fault is None:
            self.counters.source_faults += 1
            self.events.append(Event("source_error", self.next_index, data={"message": message}))
        else:  # still failing after a recovery: wait longer before the next attempt
            self._retry_pause = min(2 * self._retry_pause, RECOVER_MAX_S)
        self.source_fault = message
        self._retry_at = time.monotonic() + self._retry_pause

    def _recover(self) -> bool:
        """Try ``source.recover()`` when due; True once it succeeded (then read again: the
        fault clears with the first samples)."""
        now = time.monotonic()
        if now < self._retry_at:
            self._stop.wait(min(0.05, self._retry_at - now))
            return False
        try:
            self.source.recover()
        except Exception as exc:
            self._fault(exc)
            return False
        self._retry_at = 0.0
        return True
