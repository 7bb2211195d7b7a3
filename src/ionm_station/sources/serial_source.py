"""Our serial amplifier as a :class:`~ionm_station.sources.base.Source` (pyserial).

A supervised :class:`SerialReader` (a :class:`~ionm_station.pipeline.worker.Worker`) owns the
port: it reads whatever bytes arrived (waiting at most ``read_timeout_ms``), feeds
:class:`~ionm_station.sources.serial_protocol.FrameDecoder` and queues the decoded frames with
their absolute sample index; :meth:`SerialSource.read` hands consecutive frames out as one
:class:`~ionm_station.stream.Chunk` (µV = steps × ``uv_per_lsb``).

Sample clock: index 0 is the first sample received. A sequence gap of k frames advances the
index by k × samples-per-frame (the samples are counted in ``counters.dropped``), so the
acquisition thread writes a NaN gap and a ``gap`` event — never joins the pieces.

Opening the port: bytes the OS buffered before are discarded, and the frames of the first
:data:`SETTLE_S` are held back. A device streams whether or not anyone listens, so the first
frames may be old ones from its own buffer, followed by a jump of its sequence counter over the
time nobody read. A jump among the held frames longer than the time since the port opened can
only be that: the frames before it are dropped and the stream starts (index 0, or the
resumption after a reconnect) with the frame after it, at once — the seconds before the station
connected are not a gap, and no sample is counted twice. Without such a jump the held frames
are placed after :data:`SETTLE_S`.

Interruptions and recovery: a read error (port vanished, device closed) or no bytes for
``lost_after_ms`` turns ``state`` from ``"streaming"`` to ``"lost"`` and queues a
``signal_lost`` event at the first missing sample; the reader then reopens the port with
exponential backoff (``state == "reconnecting"``). An exception inside the reader (a decoder
fault) does the same and crashes the worker, kept with its traceback; the supervisor restarts
it with a reset decoder (:meth:`SerialReader.on_restart`). ``state`` is never ``"streaming"``
while the reader is not running. When frames flow again, the samples lost meanwhile are
estimated from **host wall time**: round(seconds between the last frame before the interruption
and the first frame after it × rate) minus that first frame's samples. (The device's sequence
counter is not used across a reconnect: the device may have restarted. Across a reader restart
with the port kept open it is, and gives the exact count; the wall time only tells its wraps
apart.) The index advances by that many samples (counted as dropped), a ``signal_restored``
event marks the first new sample, and ``state`` is ``"streaming"`` again;
``counters.reconnects`` counts reopened ports. Bytes the OS buffered while nobody read are
discarded when the port is reopened or the reader restarted.

Events (see :mod:`ionm_station.sources.base`): a stimulus flag → ``stimulus`` with
``current_ma`` (None when the frame says 0) and ``target`` None (the protocol has no target);
the trigger flag → ``trigger``; a lead-off bit that sets → an open ``lead_off`` (``stop``
None) for that channel at the frame's first sample, and when it clears → the closing
``lead_off`` (same start and channel, ``stop`` = the first sample with contact again).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import serial

from ionm_station.errors import DeviceError
from ionm_station.events import Event
from ionm_station.pipeline.worker import STALL_S, Worker
from ionm_station.profiles import SerialSettings
from ionm_station.sources import serial_protocol as sp
from ionm_station.sources.base import Source, SourceCounters, lost_in_interruption
from ionm_station.stream import Chunk, StreamInfo

#: Reconnect attempts start this long after a loss (s) and double up to MAX_BACKOFF_S.
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0
#: Most bytes taken from the port per read call.
MAX_READ_BYTES = 1 << 16
#: Frames are held this long after the port opens (s), to tell a device's buffered old frames
#: from the stream (see the module docstring).
SETTLE_S = 0.2
#: Allowance for read and scheduling delays when a sequence jump is compared with the time
#: since the port opened (s).
SETTLE_SLACK_S = 0.05


@dataclass
class _Piece:
    """Samples (int32 steps, None for an event-only piece) starting at absolute ``start``."""

    start: int
    steps: np.ndarray | None
    events: list[Event] = field(default_factory=list)

    @property
    def stop(self) -> int:
        return self.start + (0 if self.steps is None else self.steps.shape[0])


def open_port(settings: SerialSettings) -> serial.Serial:
    """Open and configure the serial port (exclusive); missing or busy → DeviceError naming it."""
    name = settings.port
    if not os.path.exists(name):
        raise DeviceError(f"serial port {name}: not found (is the amplifier connected, or the "
                          "emulator running: ionm-station simulate-device --link PATH?)")
    try:
        return serial.Serial(name, settings.baudrate, timeout=settings.read_timeout_ms / 1000,
                             exclusive=True)
    except (serial.SerialException, OSError) as exc:
        text = str(exc)
        if "lock" in text.lower() or "busy" in text.lower():
            raise DeviceError(f"serial port {name}: busy (opened by another program)") from None
        raise DeviceError(f"serial port {name}: cannot open: {text}") from None


class SerialReader(Worker):
    """The supervised thread that owns the port, decodes frames and places them on the clock.

    Args:
        settings: port, baud rate, µV per ADC step and timeouts (the profile's ``[serial]``).
        info: the stream (rate in Hz and channel count).
        counters: the source's counters, updated here.

    Attributes:
        link: the link as the reader last saw it: ``closed``, ``streaming``, ``lost`` or
            ``reconnecting`` (see :attr:`state` for what to show).
        fatal: a fault no restart can fix (the device sends too few channels); the reader
            finishes and :meth:`take` raises it.
    """

    def __init__(self, settings: SerialSettings, info: StreamInfo,
                 counters: SourceCounters) -> None:
        super().__init__("serial-reader", stall_s=max(STALL_S, 4 * settings.read_timeout_ms / 1000))
        self.settings = settings
        self.info = info
        self.counters = counters
        self.decoder = sp.FrameDecoder()
        self.link = "closed"
        self.fatal: str | None = None
        self._port: serial.Serial | None = None
        self._pending: deque[_Piece] = deque()
        self._cond = threading.Condition()
        self._next = 0
        self._lead_off = 0  # lead-off mask of the previous frame
        self._lead_off_since: dict[int, int] = {}  # channel → start of its open lead-off
        self._last_frame_s: float | None = None
        self._last_sequence: int | None = None  # of the last frame placed, while the port is open
        self._last_bytes_s = 0.0
        self._resuming = False  # the next frame follows an interruption: wall-time gap
        self._reconnected = False
        self._backoff = FIRST_BACKOFF_S
        self._retry_at = 0.0
        self._opened_s = 0.0
        self._settle_until: float | None = None  # frames are held until then
        self._held: list[tuple[sp.Frame, float]] = []  # (frame, arrival time)

    @property
    def state(self) -> str:
        """:attr:`link`, except ``lost`` while the link is up but this thread is not running
        (crashed, stalled, given up or finished on a fatal fault)."""
        if self.link == "streaming" and self.health().state != "running":
            return "lost"
        return self.link

    # --- used by SerialSource ---

    def connect(self) -> None:
        """Open the port (DeviceError naming it if missing or busy), discarding what the OS
        buffered before."""
        self._port = open_port(self.settings)
        self._port.reset_input_buffer()
        self.link = "streaming"
        self._last_bytes_s = time.monotonic()
        self._settle(self._last_bytes_s)

    def disconnect(self) -> None:
        """Close the port (after :meth:`stop`)."""
        self._close_port()
        self.link = "closed"

    def take(self, timeout_s: float) -> list[_Piece]:
        """Queued pieces that follow each other without a gap (waiting at most ``timeout_s``
        for the first); raises DeviceError once :attr:`fatal` is set."""
        with self._cond:
            if not self._pending and self.fatal is None:
                self._cond.wait(timeout_s)
            if self.fatal is not None:
                raise DeviceError(self.fatal)
            pieces: list[_Piece] = []
            while self._pending and (not pieces or self._pending[0].start == pieces[-1].stop):
                pieces.append(self._pending.popleft())
        return pieces

    # --- the worker ---

    def step(self) -> int | None:
        """Read and decode what arrived, or try to reopen a lost port; None once fatal."""
        generation = self.generation
        try:
            return self._step(generation)
        except Exception as exc:
            if self.current(generation):  # the stream stops here until the supervisor restarts us
                self._interrupt(f"serial reader fault: {type(exc).__name__}: {exc}")
            raise

    def on_restart(self) -> None:
        """A fresh decoder; the stream resumes after a counted gap (:meth:`_lost_before`). An
        open port is flushed of the bytes that piled up meanwhile; a closed one is reopened by
        the new thread."""
        self.decoder.reset()
        self._interrupt("serial reader restarted")
        if self._port is None:
            self._retry_at = 0.0
            return
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError):
            self._close_port()

    def _step(self, generation: int) -> int | None:
        if self.fatal is not None:
            return None
        if self._port is None:
            return self._retry_open()
        if self._settle_until is not None and time.monotonic() >= self._settle_until:
            self._release()
        try:
            data = self._port.read(max(1, min(self._port.in_waiting, MAX_READ_BYTES)))
        except (serial.SerialException, OSError, TypeError) as exc:
            data = None
            error = f"read error: {exc}"
        if not self.current(generation):
            return 0  # abandoned after a stall: a newer thread owns the stream now
        if data is None:
            self._lose(error)
            return 0
        now = time.monotonic()
        if data:
            self._last_bytes_s = now
            self._backoff = FIRST_BACKOFF_S
            self._accept(self.decoder.feed(data), now)
            return len(data)
        if now - self._last_bytes_s > self.settings.lost_after_ms / 1000:
            self._lose(f"no data for {self.settings.lost_after_ms} ms")
        return 0

    def _retry_open(self) -> int:
        """One reconnect attempt when its backoff has passed (never sleeps: heartbeat)."""
        now = time.monotonic()
        if now < self._retry_at:
            return 0
        self.link = "reconnecting"
        try:
            self._port = open_port(self.settings)
            self._port.reset_input_buffer()
        except (DeviceError, serial.SerialException, OSError):
            self._close_port()
            self._backoff = min(2 * self._backoff, MAX_BACKOFF_S)
            self._retry_at = now + self._backoff
            return 0
        self.decoder.reset()
        self._reconnected = True
        self._last_bytes_s = now
        self._settle(now)
        return 0

    def _settle(self, now_s: float) -> None:
        """The port opened at ``now_s``: hold its first frames (see the module docstring)."""
        self._opened_s = now_s
        self._settle_until = now_s + SETTLE_S
        self._held = []

    def _first_fresh(self) -> int | None:
        """Index among the held frames of the first after a sequence jump longer than the time
        since the port opened (the frames before it were buffered before), or None."""
        rate = self.info.sample_rate_hz
        first = None
        for i, (frame, arrived_s) in enumerate(self._held):
            if frame.dropped_before > (arrived_s - self._opened_s + SETTLE_SLACK_S) * rate:
                first = i
        return first

    def _release(self) -> None:
        """Place the held frames, without the device's old ones (:meth:`_first_fresh`)."""
        first = self._first_fresh() or 0
        held, self._held, self._settle_until = self._held, [], None
        if first:
            frame, arrived_s = held[first]
            held[first] = (replace(frame, dropped_before=0), arrived_s)
        for frame, arrived_s in held[first:]:
            if not self._place(frame, arrived_s):
                return

    def _close_port(self) -> None:
        """Close the port; the device may restart meanwhile, so its sequence counter is no
        longer a reference."""
        self._last_sequence = None
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None

    def _lose(self, reason: str) -> None:
        """Link lost: close the port, report it, and reconnect after the backoff."""
        self._close_port()
        self._interrupt(reason)
        self._retry_at = time.monotonic() + self._backoff

    def _interrupt(self, reason: str) -> None:
        """The stream stopped at the next sample: report it once; the next frame is placed
        after a wall-time gap."""
        if self.link == "streaming":
            self.link = "lost"
            self._resuming = True
            self._push(_Piece(self._next, None, [Event("signal_lost", self._next,
                                                       data={"reason": reason})]))

    def _accept(self, frames: list[sp.Frame], now_s: float) -> None:
        """Place decoded frames on the sample clock and queue them (held while the port
        settles)."""
        stats = self.decoder.stats
        self.counters.crc_errors, self.counters.resyncs = stats.crc_errors, stats.resyncs
        if self._settle_until is not None:
            self._held += [(frame, now_s) for frame in frames]
            if now_s >= self._settle_until or self._first_fresh() is not None:
                self._release()  # settled, or the old frames are told apart already
            return
        for frame in frames:
            if not self._place(frame, now_s):
                return

    def _place(self, frame: sp.Frame, now_s: float) -> bool:
        """Place one frame that arrived at ``now_s`` on the clock and queue it; False once the
        device turned out to send too few channels (fatal)."""
        n_channels = self.info.n_channels
        if frame.n_channels < n_channels:
            self._fail(f"serial port {self.settings.port}: device sends "
                       f"{frame.n_channels} channels, the profile expects {n_channels}")
            return False
        events: list[Event] = []
        if self._resuming:
            dropped = self._resume(frame, now_s)
            events.append(Event("signal_restored", self._next + dropped,
                                data={"lost_samples": dropped}))
        else:
            dropped = frame.dropped_before
        self._next += dropped
        self.counters.dropped += dropped
        events += self._frame_events(frame, self._next)
        self._push(_Piece(self._next, frame.samples[:, :n_channels], events))
        self._next += frame.n_samples
        self.counters.samples += frame.n_samples
        self._last_frame_s = now_s
        self._last_sequence = frame.sequence
        return True

    def _resume(self, frame: sp.Frame, now_s: float) -> int:
        """End an interruption: the samples lost before ``frame`` (see :meth:`_lost_before`)."""
        self._resuming = False
        self.counters.reconnects += int(self._reconnected)
        self._reconnected = False
        self.link = "streaming"
        return self._lost_before(frame, now_s)

    def _lost_before(self, frame: sp.Frame, now_s: float) -> int:
        """Samples lost in an interruption: from host wall time (the seconds since the last
        frame × rate, minus this frame's samples); if the port stayed open (the device did not
        restart), exactly from the sequence counter, its wraps told apart by the wall time."""
        if self._last_frame_s is None:
            return 0
        n = frame.n_samples
        wall = round((now_s - self._last_frame_s) * self.info.sample_rate_hz) - n
        counted = (None if self._last_sequence is None
                   else (frame.sequence - self._last_sequence - 1) % sp.SEQUENCE_MODULUS * n)
        return lost_in_interruption(wall, counted, sp.SEQUENCE_MODULUS * n)

    def _frame_events(self, frame: sp.Frame, start: int) -> list[Event]:
        events = []
        if frame.flags & sp.FLAG_STIMULUS:
            events.append(Event("stimulus", start + frame.event_offset,
                                data={"current_ma": frame.current_ma or None, "target": None}))
        if frame.flags & sp.FLAG_TRIGGER:
            events.append(Event("trigger", start + frame.event_offset))
        return events + self._lead_off_events(frame.lead_off, start)

    def _lead_off_events(self, mask: int, start: int) -> list[Event]:
        """Open and closing ``lead_off`` events for the channels whose bit changed at ``start``."""
        mask &= (1 << self.info.n_channels) - 1
        changed, self._lead_off = mask ^ self._lead_off, mask
        if not changed:
            return []
        events = []
        for c in (c for c in range(self.info.n_channels) if changed >> c & 1):
            if mask >> c & 1:
                self._lead_off_since[c] = start
                events.append(Event("lead_off", start, channels=(c,)))
            else:
                events.append(Event("lead_off", self._lead_off_since.pop(c), start, (c,)))
        return events

    def _fail(self, message: str) -> None:
        with self._cond:
            self.fatal = message
            self._cond.notify_all()

    def _push(self, piece: _Piece) -> None:
        with self._cond:
            self._pending.append(piece)
            self._cond.notify_all()


class SerialSource(Source):
    """Source reading the IONM serial protocol from a port (real amplifier or the emulator).

    Live; no stimulator (stimuli come in as ``stimulus`` events); one worker, the
    :class:`SerialReader`. Open it once.

    Args:
        settings: port, baud rate, µV per ADC step and timeouts (the profile's ``[serial]``).
        labels: one label per channel (the montage's); the device must send at least as many
            channels (extra ones are ignored).
        sample_rate_hz: the device's rate (Hz), from the profile (the protocol does not carry it).
        range_uv: amplifier input range (± µV).
    """

    def __init__(self, settings: SerialSettings, labels: Sequence[str], sample_rate_hz: float,
                 range_uv: float = 5000.0) -> None:
        self.settings = settings
        self.info = StreamInfo(float(sample_rate_hz), tuple(labels), float(range_uv),
                               source=f"serial {settings.port}")
        self.counters = SourceCounters()
        self.reader = SerialReader(settings, self.info, self.counters)

    @property
    def state(self) -> str:
        """``closed``, ``streaming``, ``lost`` (also while the reader is down) or
        ``reconnecting``."""
        return self.reader.state

    @property
    def live(self) -> bool:
        return True

    def workers(self) -> list[Worker]:
        return [self.reader]

    def open(self) -> None:
        """Open the port (DeviceError naming it if missing or busy) and start the reader."""
        self.reader.connect()
        self.reader.start()

    def read(self) -> Chunk | None:
        """Consecutive received samples as one chunk, or None if nothing came within
        ``read_timeout_ms``. Raises DeviceError once the source has failed for good."""
        pieces = self.reader.take(self.settings.read_timeout_ms / 1000)
        if not pieces:
            return None
        events = [e for p in pieces for e in p.events]
        steps = [p.steps for p in pieces if p.steps is not None]
        if steps:
            data = (np.concatenate(steps) * self.settings.uv_per_lsb).astype(np.float32)
        else:
            data = np.zeros((0, self.info.n_channels), np.float32)
        return Chunk(pieces[0].start, data, events, host_time_s=time.monotonic())

    def recover(self) -> None:
        """Nothing to do for link faults (the reader reconnects by itself); a fatal fault
        (wrong channel count) cannot be recovered: DeviceError naming the port."""
        if self.reader.fatal is not None:
            raise DeviceError(self.reader.fatal)

    def close(self) -> None:
        """Stop the reader and close the port. Idempotent."""
        self.reader.stop(2.0)
        self.reader.disconnect()
