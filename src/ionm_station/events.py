"""Append-only event log keyed by absolute sample index.

Everything that happens in a case (stimuli, detected activity, alarms, artifacts, markers,
gaps, setting changes) is an :class:`Event`. The log only grows; readers keep their own
position and ask for what is new, so a GUI, a recorder and the alarm engine can all
follow it without coordination.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, located on the sample clock (slotted: a long case keeps tens of
    thousands in memory).

    Attributes:
        kind: what it is, e.g. ``"stimulus"``, ``"gap"``, ``"lead_off"``, ``"marker"``.
        start: absolute sample index where it begins.
        stop: absolute sample index one past its end (== start for instantaneous events).
        channels: channel indices concerned (empty = whole stream).
        data: small JSON-serialisable details (units in key names: ``current_ma``, ``peak_uv``).
    """

    kind: str
    start: int
    stop: int | None = None
    channels: tuple[int, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """Absolute index one past the end; ``start`` for instantaneous events."""
        return self.start if self.stop is None else self.stop


class EventLog:
    """Thread-safe, append-only list of events.

    Appends may come from any thread; readers use :meth:`since` with their own cursor.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def extend(self, events: list[Event]) -> None:
        if events:
            with self._lock:
                self._events.extend(events)

    def __len__(self) -> int:
        return len(self._events)

    def since(self, cursor: int) -> tuple[list[Event], int]:
        """Events appended after position ``cursor``, and the new cursor."""
        with self._lock:
            new = self._events[cursor:]
            return new, cursor + len(new)

    def snapshot(self) -> list[Event]:
        """A copy of every event so far."""
        with self._lock:
            return list(self._events)

    def of_kind(self, kind: str) -> list[Event]:
        """Every event of one kind, in append order."""
        with self._lock:
            return [e for e in self._events if e.kind == kind]
