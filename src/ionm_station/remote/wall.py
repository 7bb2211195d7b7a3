"""The supervisor's wall of rooms, as plain Python: what each followed station shows, and when
its connection is lost.

A :class:`Room` holds what its link (:mod:`.consumer`) has read from one station's MDIB, in
plain values: the tiles (state, reason, train time, event rate, the present alert condition and
its signal), technical alarms, case time, patient and procedure, TOF and screws, the recent
events, the last alarm, and the clean traces in a ring. It knows when it last heard from the
station: silent for :data:`LOST_S` (the station publishes a heartbeat every 0.25 s and traces
every 0.1 s) it is CONNECTION LOST, whatever the link is doing. It also keeps the stream's
accounting (samples received and missed, per-sample latency, alarm latency) for the JSON and
the benchmark.

The :class:`Wall` is the rooms, the reader's room limit (ACNS guidance: at most 3 concurrent
cases per reader; configurable, with a warning above it) and the one priority the wall's sound
plays. Any thread may call it; the window and the headless JSON read :meth:`Wall.to_dict` and
:meth:`Room.tiles`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ionm_station.alarms import PRIORITIES, TileState
from ionm_station.io.annotations import parse_annotation
from ionm_station.pipeline.technical import loudest
from ionm_station.remote import mdib as md
from ionm_station.ring import RingBuffer

#: A room not heard from for this long is CONNECTION LOST (s).
LOST_S = 1.0
#: Default room limit per reader (ACNS: at most 3 concurrent cases).
DEFAULT_ROOM_LIMIT = 3
#: Seconds of trace each room keeps.
TRACE_SECONDS = 30.0
#: Recent events each room keeps.
EVENTS_KEPT = 200
#: Latency histogram range (ms, 1 ms bins; later samples fall in the last bin).
LATENCY_RANGE_MS = 10_000

#: Priority (alarm engine's words) of each tile condition.
CONDITION_PRIORITY = {"activity": "advisory", "atrain": "advisory", "caution": "caution",
                      "critical": "warning"}


class Histogram:
    """Counts of values in 1 ms bins: exact median and percentiles at 1 ms, fixed memory."""

    def __init__(self) -> None:
        self.counts = np.zeros(LATENCY_RANGE_MS + 1, np.int64)

    def add(self, values_ms: np.ndarray) -> None:
        """Count some values (ms; negative ones count as 0)."""
        bins = np.clip(np.rint(values_ms), 0, LATENCY_RANGE_MS).astype(np.int64)
        self.counts += np.bincount(bins, minlength=len(self.counts))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (ms), None when empty."""
        n = self.n
        if n == 0:
            return None
        return float(np.searchsorted(np.cumsum(self.counts), q * n, side="left"))

    def maximum(self) -> float | None:
        nonzero = np.flatnonzero(self.counts)
        return float(nonzero[-1]) if len(nonzero) else None


@dataclass
class StreamStats:
    """The trace stream's accounting since the room was first heard."""

    received: int = 0
    missing: int = 0
    reports: int = 0
    latency: Histogram = field(default_factory=Histogram)
    alarm_latency: Histogram = field(default_factory=Histogram)

    def to_dict(self) -> dict[str, Any]:
        total = self.received + self.missing
        return {"received": self.received, "missing": self.missing, "reports": self.reports,
                "delivered": round(self.received / total, 6) if total else None,
                "latency_ms": {"median": self.latency.quantile(0.5),
                               "p95": self.latency.quantile(0.95), "n": self.latency.n},
                "alarm_latency_ms": {"median": self.alarm_latency.quantile(0.5),
                                     "max": self.alarm_latency.maximum(),
                                     "n": self.alarm_latency.n}}


@dataclass(frozen=True)
class Snapshot:
    """A station's MDIB as first read (GetMdib): what a room is reset to.

    Attributes:
        layout: tiles, channels, screws, sample period.
        location: the room's name; patient_id: the patient context's identifier.
        values: metric handle → value; conditions: alert condition handle → presence;
        signals: alert signal handle → presence (``On``, ``Off``, ``Latch``, ``Ack``);
        silenced: the station's alarm sound is paused.
    """

    layout: md.Layout
    location: str
    patient_id: str
    values: dict[str, Any]
    conditions: dict[str, bool]
    signals: dict[str, str]
    silenced: bool


class Room:
    """One followed station (see the module description).

    Args:
        key: the station's endpoint reference (its identity on the wall).
        url: its transport address.
    """

    def __init__(self, key: str, url: str) -> None:
        self.key = key
        self.url = url
        self._lock = threading.Lock()
        self.layout: md.Layout | None = None
        self.location = ""
        self.patient_id = ""
        self._values: dict[str, Any] = {}
        self._conditions: dict[str, bool] = {}
        self._signals: dict[str, str] = {}
        self.silenced = False
        self.connection = "connecting"
        self.reason = ""
        self.connects = 0
        self._heard: float | None = None
        self._lost_at: float | None = None
        self.last_alarm: dict[str, Any] | None = None
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=EVENTS_KEPT)
        self._event_seq = 0
        self.waves: RingBuffer | None = None
        self._wave_version: int | None = None
        self._wave_end_s: float | None = None
        self._batch = 0
        self.stats = StreamStats()

    # --- the link writes (its threads) ---

    def reset(self, snap: Snapshot) -> None:
        """A (re)connection: the station's MDIB as read now."""
        with self._lock:
            first = self.layout is None or self.layout != snap.layout
            self.layout = snap.layout
            self.location, self.patient_id = snap.location, snap.patient_id
            self._values = dict(snap.values)
            self._conditions = dict(snap.conditions)
            self._signals = dict(snap.signals)
            self.silenced = snap.silenced
            self._event_seq = 0
            self._wave_version = None
            if first:
                rate = 1.0 / snap.layout.sample_period_s
                self.waves = RingBuffer(max(1024, int(TRACE_SECONDS * rate)),
                                        max(1, len(snap.layout.labels)))
            self._take_events()
            self.connects += 1
            self.connection, self.reason = "connected", ""
            self._heard = time.monotonic()

    def set_connection(self, connection: str, reason: str = "") -> None:
        """What the link is doing: ``connecting`` or ``refused`` (with why), ``lost``."""
        with self._lock:
            if connection != "connected" and self.connection == "connected":
                self._heard = None
            self.connection, self.reason = connection, reason

    def heard(self) -> None:
        """Something arrived from the station."""
        self._heard = time.monotonic()

    def on_metrics(self, values: dict[str, Any]) -> None:
        """Metric values reported (handle → value)."""
        with self._lock:
            self._values.update(values)
            if md.EVENT_LINES in values:
                self._take_events()
        self.heard()

    def on_alerts(self, conditions: dict[str, tuple[bool, float | None]],
                  signals: dict[str, str], silenced: bool | None, received_s: float) -> None:
        """Alert states reported: condition handle → (presence, station time of the change),
        signal handle → presence, the alert system's audio pause (None: not in the report)."""
        with self._lock:
            for handle, (present, at) in conditions.items():
                if self._conditions.get(handle) != present and at is not None:
                    self.stats.alarm_latency.add(np.array([(received_s - at) * 1000.0]))
                    if present and handle.startswith("ac.tile.") \
                            and not handle.endswith(".activity"):
                        self._alarm_raised(handle, at)
                self._conditions[handle] = present
            self._signals.update(signals)
            if silenced is not None:
                self.silenced = silenced
            if self.last_alarm is not None:
                self.last_alarm["signal"] = self._signals.get(self.last_alarm["signal_handle"])
        self.heard()

    def on_waves(self, version: int, start_s: float, block: np.ndarray, received_s: float) -> None:
        """A trace report: its state version (one per report), the station time of its first
        sample (s), the samples (n × channels, µV, NaN where invalid)."""
        with self._lock:
            if self.layout is None or self.waves is None:
                return
            period = self.layout.sample_period_s
            n = len(block)
            if self._wave_version is not None:  # reports are numbered: a jump is a loss
                if version <= self._wave_version:
                    return  # a report seen already
                hole = (version - self._wave_version - 1) * self._batch
                self.stats.missing += hole
            elif self._wave_end_s is not None:  # reconnected: the time away is a hole
                hole = round((start_s - self._wave_end_s) / period)
            else:
                hole = 0
            if hole > 0:
                self.waves.write_nan(min(hole, self.waves.capacity))
            self.waves.write(block.astype(np.float32, copy=False))
            self._wave_version, self._batch = version, n
            self._wave_end_s = start_s + n * period
            self.stats.received += n
            self.stats.reports += 1
            self.stats.latency.add((received_s - start_s - np.arange(n) * period) * 1000.0)
        self.heard()

    # --- readers (any thread) ---

    def lost(self, now: float | None = None) -> bool:
        """Nothing heard for :data:`LOST_S` (or never connected)."""
        heard = self._heard
        now = time.monotonic() if now is None else now
        return heard is None or now - heard > LOST_S

    @property
    def name(self) -> str:
        """What the wall calls the room: its location, else its address."""
        return self.location or self.url

    def value(self, handle: str) -> Any:
        return self._values.get(handle)

    def tiles(self) -> list[TileState]:
        """The tiles as the station shows them (clinical priority from the alert conditions,
        latched while the alarm's signal is latched)."""
        with self._lock:
            if self.layout is None:
                return []
            out = []
            for i, t in enumerate(self.layout.tiles):
                present = next((k for k in reversed(md.TILE_CONDITIONS)
                                if self._conditions.get(md.condition_handle(i, k))), None)
                latched = present in md.SIGNALLED and \
                    self._signals.get(md.signal_handle(i, present)) == "Latch"
                state = self._values.get(md.tile_handle(i, "state")) or "quiet"
                priority = CONDITION_PRIORITY.get(present)
                if state not in ("alarm", "activity"):  # technical: sounding unless the run ended
                    priority = "warning" if self._conditions.get(
                        md.tech_condition_handle(state)) else None
                out.append(TileState(
                    t.key, t.root or t.key, t.side, state=state, priority=priority,
                    reason=self._values.get(md.tile_handle(i, "reason")) or "",
                    train_time_s=float(self._values.get(md.tile_handle(i, "train_time")) or 0.0),
                    latched=latched))
            return out

    def technical(self) -> list[str]:
        """Technical alarm kinds present at the station."""
        return [h.removeprefix("ac.tech.") for h, on in self._conditions.items()
                if on and h.startswith("ac.tech.")]

    def audible(self, now: float | None = None) -> str | None:
        """What this room asks the wall's sound to play: a lost connection is a warning; else
        what sounds at the station (None when it is silenced there)."""
        if self.lost(now):
            return "warning" if self.layout is not None or self.connection == "refused" else None
        value = self._values.get(md.AUDIBLE)
        return None if self.silenced or value in (None, "none") else str(value)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The room, JSON-ready."""
        lost = self.lost(now)
        tiles = self.tiles()
        with self._lock:
            layout = self.layout
            rates = {t.key: self._values.get(md.tile_handle(i, "event_rate"))
                     for i, t in enumerate(layout.tiles)} if layout else {}
            screws = [{"key": key, "threshold_ma": self._values.get(md.screw_handle(i, "threshold")),
                       "band": self._values.get(md.screw_handle(i, "band"))}
                      for i, key in enumerate(layout.screws if layout else ())
                      if self._values.get(md.screw_handle(i, "band")) is not None]
            return {
                "id": self.key, "url": self.url, "room": self.name,
                "connection": "lost" if lost and self.connection == "connected" else
                              ("connected" if not lost else self.connection),
                "connection_lost": lost, "reason": self.reason, "connects": self.connects,
                "patient_id": self.patient_id,
                "procedure": self._values.get(md.PROCEDURE) or "",
                "case_time_s": self._values.get(md.CASE_TIME),
                "station_clock_s": self._values.get(md.HEARTBEAT),
                "audible": self._values.get(md.AUDIBLE), "silenced": self.silenced,
                "technical": self.technical(),
                "technical_text": self._values.get(md.TECHNICAL) or "",
                "tiles": [{"key": t.key, "root": t.root, "side": t.side, "state": t.state,
                           "priority": t.priority, "latched": t.latched, "reason": t.reason,
                           "train_time_s": t.train_time_s, "event_rate_per_min": rates.get(t.key),
                           "signal": self._signal_of(i)} for i, t in enumerate(tiles)],
                "last_alarm": dict(self.last_alarm) if self.last_alarm else None,
                "tof": {"count": self._values.get(md.TOF_COUNT),
                        "ratio": self._values.get(md.TOF_RATIO),
                        "site": self._values.get(md.TOF_SITE)},
                "screws": screws,
                "events": list(self.events)[-20:],
                "stream": self.stats.to_dict(),
            }

    # --- internals (lock held) ---

    def _signal_of(self, i: int) -> str | None:
        for k in reversed(md.SIGNALLED):
            presence = self._signals.get(md.signal_handle(i, k))
            if presence not in (None, "Off"):
                return presence
        return None

    def _alarm_raised(self, handle: str, at: float) -> None:
        _, _, index, kind = handle.split(".")
        assert self.layout is not None
        i = int(index)
        self.last_alarm = {"tile": self.layout.tiles[i].key, "condition": kind,
                           "priority": CONDITION_PRIORITY[kind], "station_time_s": round(at, 3),
                           "reason": self._values.get(md.tile_handle(i, "reason")) or "",
                           "signal_handle": md.signal_handle(i, kind), "signal": None}

    def _take_events(self) -> None:
        text = self._values.get(md.EVENT_LINES) or ""
        labels = self.layout.labels if self.layout else ()
        for line in text.splitlines():
            seq_text, _, rest = line.partition(" ")
            t_text, _, annotation = rest.partition(" ")
            try:
                seq, t_s = int(seq_text), float(t_text)
            except ValueError:
                continue
            if seq <= self._event_seq:
                continue
            self._event_seq = seq
            e = parse_annotation(annotation, 0, None, labels)
            self.events.append({"seq": seq, "t_s": t_s, "kind": e.kind, **e.data})


class Wall:
    """The rooms a reader follows.

    Args:
        limit: rooms one reader should follow at most (a warning above it).
    """

    def __init__(self, limit: int = DEFAULT_ROOM_LIMIT) -> None:
        self.limit = limit
        self._rooms: dict[str, Room] = {}
        self._lock = threading.Lock()

    def room(self, key: str, url: str) -> tuple[Room, bool]:
        """The room of station ``key`` (made if new: True); its address follows ``url``."""
        with self._lock:
            room = self._rooms.get(key)
            if room is not None:
                room.url = url
                return room, False
            room = self._rooms[key] = Room(key, url)
            return room, True

    @property
    def rooms(self) -> list[Room]:
        with self._lock:
            return list(self._rooms.values())

    def warning(self) -> str:
        """The room-limit warning ('' within the limit)."""
        n = len(self._rooms)
        if n <= self.limit:
            return ""
        return (f"{n} rooms followed: more than {self.limit} concurrent cases for one reader "
                "(ACNS guidance: at most 3)")

    def audible(self, now: float | None = None) -> str | None:
        """The priority the wall's sound plays: the loudest room's."""
        return loudest([r.audible(now) for r in self.rooms])

    def sounding(self, now: float | None = None) -> list[str]:
        """Names of the rooms asking for sound, loudest first."""
        rooms = [(r.audible(now), r.name) for r in self.rooms]
        return [name for p, name in sorted(((p, n) for p, n in rooms if p),
                                           key=lambda x: -PRIORITIES.index(x[0]))]

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """The wall, JSON-ready (``supervise --headless --json``)."""
        return {"updated_s": round(time.time(), 3), "room_limit": self.limit,
                "warning": self.warning(), "audible": self.audible(now),
                "sounding": self.sounding(now),
                "rooms": [r.to_dict(now) for r in self.rooms]}
