"""User commands into the processing thread: one queue, applied at a known sample index.

Every change a user makes while monitoring — band, threshold, mains frequency, acknowledge,
silence, threshold hunt, stimulus, marker, baseline check — is a command object put on one
:class:`CommandQueue`. The session checks it when it is submitted (a bad value is refused at
once, in the caller's thread, with a ValueError naming it); the processing thread applies it
between two blocks, at the sample index it has reached, and logs it once in the event log (so
recordings, views and reports see the same change at the same index). Nothing else reaches
into the processing thread's objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Union


class _Checked:
    """A command's own value check (ValueError naming the problem); none by default."""

    def check(self) -> None:
        """Raise ValueError if the values cannot be applied whatever the state."""


@dataclass(frozen=True)
class SetBand(_Checked):
    """Free-run band-pass edges (Hz); the high edge is clamped below Nyquist."""

    low_hz: float
    high_hz: float

    def check(self) -> None:
        if not (math.isfinite(self.low_hz) and math.isfinite(self.high_hz)
                and 0 < self.low_hz < self.high_hz):
            raise ValueError(f"band edges must be 0 < low < high Hz, got {self.low_hz:g}–{self.high_hz:g}")


@dataclass(frozen=True)
class SetThreshold(_Checked):
    """Event threshold (µV p-p) of every channel of one alarm tile (``"L5-L"``)."""

    key: str
    threshold_uv: float


@dataclass(frozen=True)
class SetMains(_Checked):
    """Mains frequency: 50 or 60 Hz, or None to detect it."""

    mains_hz: float | None

    def check(self) -> None:
        if self.mains_hz not in (None, 50.0, 60.0):
            raise ValueError(f"mains must be 50 or 60 Hz (or detected), got {self.mains_hz}")


@dataclass(frozen=True)
class Acknowledge(_Checked):
    """Acknowledge the latched alarm of one tile (None: all tiles); ``by`` names who did
    (logged with the acknowledgement; '' when not known)."""

    key: str | None = None
    by: str = ""


@dataclass(frozen=True)
class Silence(_Checked):
    """Silence alarm sound for ``seconds`` (None: the configured default)."""

    seconds: float | None = None

    def check(self) -> None:
        if self.seconds is not None and not (math.isfinite(self.seconds) and 0 < self.seconds <= 600):
            raise ValueError(f"silence must be 0–600 s, got {self.seconds}")


@dataclass(frozen=True)
class Hunt(_Checked):
    """Automatic stimulation-threshold hunt on the screw at ``level`` / ``side``."""

    level: str
    side: str


@dataclass(frozen=True)
class Stimulate(_Checked):
    """One stimulus of ``current_ma`` (mA) aimed at ``target`` (``"L5-R"``)."""

    current_ma: float
    target: str
    confirmed: bool = False


@dataclass(frozen=True)
class AddMarker(_Checked):
    """A marker with free text at absolute sample ``index`` (the moment it was entered)."""

    text: str
    index: int

    def check(self) -> None:
        if not self.text.strip():
            raise ValueError("a marker needs text")


@dataclass(frozen=True)
class Baseline(_Checked):
    """A signal-quality check and per-tile baseline over the newest ``seconds`` of signal
    (taken as soon as the rings hold them, away from cautery); logged as ``signal_quality``
    events per channel and ``baseline`` events per tile."""

    seconds: float = 4.0

    def check(self) -> None:
        if not (math.isfinite(self.seconds) and 1.0 <= self.seconds <= 10.0):
            raise ValueError(f"a baseline measures 1–10 s of signal, got {self.seconds}")


Command = Union[SetBand, SetThreshold, SetMains, Acknowledge, Silence, Hunt, Stimulate, AddMarker,
                Baseline]


class CommandQueue:
    """Many producers (window, headless runner, remote), one consumer (processing thread)."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[Command] = SimpleQueue()

    def put(self, command: Command) -> None:
        self._queue.put(command)

    def drain(self) -> list[Command]:
        """Every command waiting, oldest first."""
        out: list[Command] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except Empty:
                return out
