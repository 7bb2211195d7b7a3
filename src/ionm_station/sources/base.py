"""The one typed interface every signal source implements, and the stimulator it may offer.

A source delivers :class:`~ionm_station.stream.Chunk` s on the sample clock and says how it is
doing (:attr:`Source.state`), whether the acquisition may wait for consumers
(:attr:`Source.live`), whether it can stimulate (:attr:`Source.stimulator`), which supervised
threads it runs (:meth:`Source.workers`) and how to re-establish it after a fault
(:meth:`Source.recover`). Implementations subclass :class:`Source` to inherit the defaults
(no stimulator, no workers, nothing to recover); a test fake may simply match it.

Source events follow one definition each:

* ``stimulus``: ``data = {"current_ma": float | None, "target": "L5-R" | None}`` (more keys
  may follow, e.g. ``tof_pulse``); a target of None means "not aimed at a known root-side".
* ``lead_off``: an event with ``stop=None`` opens a lead-off on its channels at ``start``;
  when it ends, an event of the same kind, ``start`` and channels with ``stop`` set (exclusive
  end) closes it. A source that knows the end in advance emits only the closed form.
* ``signal_lost`` at the first missing sample, ``signal_restored`` at the first sample after
  (``data.lost_samples``); the samples in between are a counted gap on the sample clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ionm_station.stream import Chunk, StreamInfo

if TYPE_CHECKING:
    from ionm_station.pipeline.worker import Worker

#: Values of :attr:`Source.state`.
STATES = ("closed", "streaming", "lost", "reconnecting", "ended")


@dataclass
class SourceCounters:
    """What a source has seen, for the status line (all counts since open).

    Attributes:
        samples: samples per channel delivered.
        dropped: samples per channel the source knows it lost (sequence gaps, and time without
            data while the link was lost, a board was silent or a reader was restarted).
        crc_errors: frames rejected by their checksum.
        resyncs: times the decoder had to hunt for the next frame.
        reconnects: times the link was re-established after loss.
    """

    samples: int = 0
    dropped: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    reconnects: int = 0


def lost_in_interruption(wall: int, counted: int | None, wrap: int) -> int:
    """Samples per channel lost while a stream was interrupted (never negative).

    Args:
        wall: the estimate from host wall time (elapsed seconds × rate, minus the samples that
            arrived with the first data after the interruption).
        counted: what the device's own counter says, known only modulo ``wrap`` (its sequence or
            package counter); None when the counter is no reference (the device may have
            restarted, e.g. after a reconnect).
        wrap: samples after which the device's counter repeats.

    Returns:
        ``wall``, or the count ≡ ``counted`` (mod ``wrap``) nearest to ``wall``: exact as long
        as the wall-time estimate is off by less than half a wrap.
    """
    if counted is None:
        return max(0, wall)
    return max(0, counted + wrap * round((wall - counted) / wrap))


class Stimulator(Protocol):
    """Something that can deliver a stimulus (the simulated amplifier, or a real stimulator)."""

    def schedule_stimulus(self, current_ma: float, target: str,
                          at_index: int | None = None) -> int:
        """Stimulate ``target`` (root-side, e.g. ``"L5-L"``) with ``current_ma`` (mA) at
        sample ``at_index`` (None: as soon as possible); returns the stimulus sample index."""
        ...


class Source(Protocol):
    """A stream of :class:`Chunk` s on the sample clock.

    ``read`` blocks at most about one block period (tens of ms) and returns ``None`` when
    nothing arrived in that time, so the acquisition thread can notice a stop request.
    Chunk ``start`` indices are absolute and increase; a jump forward is a gap (dropped
    samples), which the acquisition writes as NaN — it never joins the pieces.

    Attributes:
        info: rate, labels and input range of the stream.
        counters: what the source has seen (samples, drops, link faults).
    """

    info: StreamInfo
    counters: SourceCounters

    @property
    def state(self) -> str:
        """One of :data:`STATES`: ``closed``; ``streaming``; ``lost`` (no data from the device,
        or its reader is down); ``reconnecting``; ``ended`` (a replay or finite simulation has
        delivered everything)."""
        ...

    @property
    def live(self) -> bool:
        """True for a device whose data must be taken as it comes: the acquisition never waits
        for consumers. False for a simulator or replay running as fast as it is read."""
        ...

    @property
    def stimulator(self) -> Stimulator | None:
        """What can deliver stimuli through this source (None: none)."""
        return None

    def workers(self) -> list[Worker]:
        """The supervised threads this source runs (started by :meth:`open`, stopped by
        :meth:`close`); the supervisor restarts them when they fail."""
        return []

    def open(self) -> None:
        """Start streaming; a missing or busy device raises DeviceError naming it."""
        ...

    def read(self) -> Chunk | None:
        """The next chunk, or None when nothing arrived within about one block period."""
        ...

    def recover(self) -> None:
        """Re-establish the source after :meth:`read` raised, before reading again.

        Samples lost meanwhile are accounted on the sample clock (a counted gap, never a join).
        Raises DeviceError (one line naming the device) when it cannot; a source with nothing
        to re-establish does nothing.
        """

    def close(self) -> None:
        """Stop streaming and release the device. Idempotent."""
        ...
