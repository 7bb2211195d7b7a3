"""Our serial amplifier as a :class:`~ionm_station.sources.base.Source` (pyserial).

A reader thread owns the port: it reads whatever bytes arrived (waiting at most
``read_timeout_ms``), feeds :class:`~ionm_station.sources.serial_protocol.FrameDecoder` and
queues the decoded frames with their absolute sample index; :meth:`SerialSource.read` hands
consecutive frames out as one :class:`~ionm_station.stream.Chunk` (µV = steps × ``uv_per_lsb``).

Sample clock: index 0 is the first sample received. A sequence gap of k frames advances the
index by k × samples-per-frame (the samples are counted in ``counters.dropped``), so the
acquisition thread writes a NaN gap and a ``gap`` event — never joins the pieces.

Link loss and recovery: a read error (port vanished, device closed) or no bytes for
``lost_after_ms`` turns ``state`` from ``"streaming"`` to ``"lost"`` and queues a
``signal_lost`` event at the first missing sample. The thread then reopens the port with
exponential backoff (``state == "reconnecting"``). When frames flow again, the samples lost
meanwhile are estimated from **host wall time**: round(seconds between the last frame before
the loss and the first frame after it × rate) minus that first frame's samples. (The device's
sequence counter is not used across a reconnect: the device may have restarted.) The index
advances by that many samples (counted as dropped), ``counters.reconnects`` goes up, a
``signal_restored`` event marks the first new sample, and ``state`` is ``"streaming"`` again.

Other events: a stimulus flag → ``stimulus`` (``data.current_ma``), the trigger flag →
``trigger``, a lead-off bit that sets → ``lead_off`` and clears → ``lead_restored``, each for
one channel, at the frame's first sample.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import serial

from ionm_station.errors import DeviceError
from ionm_station.events import Event
from ionm_station.profiles import SerialSettings
from ionm_station.sources import serial_protocol as sp
from ionm_station.sources.base import SourceCounters
from ionm_station.stream import Chunk, StreamInfo

#: Reconnect attempts start this long after a loss (s) and double up to MAX_BACKOFF_S.
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 1.0
#: Most bytes taken from the port per read call.
MAX_READ_BYTES = 1 << 16


@dataclass
class _Piece:
    """Samples (int32 steps, None for an event-only piece) starting at absolute ``start``."""

    start: int
    steps: np.ndarray | None
    events: list[Event] = field(default_factory=list)

    @property
    def stop(self) -> int:
        return self.start + (0 if self.steps is None else self.steps.shape[0])


def open_port(settings: SerialSettings, port: str | None = None) -> serial.Serial:
    """Open and configure the serial port (exclusive); missing or busy → DeviceError naming it."""
    name = port or settings.port
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


class SerialSource:
    """Source reading the IONM serial protocol from a port (real amplifier or the emulator).

    Args:
        settings: port, baud rate, µV per ADC step and timeouts (the profile's ``[serial]``).
        labels: one label per channel (the montage's); the device must send at least as many
            channels (extra ones are ignored).
        sample_rate_hz: the device's rate (Hz), from the profile (the protocol does not carry it).
        range_uv: amplifier input range (± µV).

    Attributes:
        state: ``"closed"``, ``"streaming"``, ``"lost"`` or ``"reconnecting"``.
        error: a fault that stops the source (e.g. the device sends too few channels).
    """

    def __init__(self, settings: SerialSettings, labels: Sequence[str], sample_rate_hz: float,
                 range_uv: float = 5000.0) -> None:
        self.settings = settings
        self.info = StreamInfo(float(sample_rate_hz), tuple(labels), float(range_uv),
                               source=f"serial {settings.port}")
        self.counters = SourceCounters()
        self.state = "closed"
        self.error: str | None = None
        self.decoder = sp.FrameDecoder()
        self._port: serial.Serial | None = None
        self._pending: deque[_Piece] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next = 0
        self._lead_off = 0
        self._last_frame_s: float | None = None
        self._last_bytes_s = 0.0
        self._resuming = False

    # --- Source protocol ---

    def open(self) -> None:
        """Open the port (DeviceError naming it if missing or busy) and start the reader."""
        self._port = open_port(self.settings)
        self.state = "streaming"
        self._last_bytes_s = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="serial-reader", daemon=True)
        self._thread.start()

    def read(self) -> Chunk | None:
        """Consecutive received samples as one chunk, or None if nothing came within
        ``read_timeout_ms``. Raises DeviceError once the source has failed (see ``error``)."""
        with self._cond:
            if not self._pending and self.error is None:
                self._cond.wait(self.settings.read_timeout_ms / 1000)
            if self.error is not None:
                raise DeviceError(self.error)
            pieces: list[_Piece] = []
            while self._pending and (not pieces or self._pending[0].start == pieces[-1].stop):
                pieces.append(self._pending.popleft())
        if not pieces:
            return None
        events = [e for p in pieces for e in p.events]
        steps = [p.steps for p in pieces if p.steps is not None]
        if steps:
            data = (np.concatenate(steps) * self.settings.uv_per_lsb).astype(np.float32)
        else:
            data = np.zeros((0, self.info.n_channels), np.float32)
        return Chunk(pieces[0].start, data, events, host_time_s=time.monotonic())

    def close(self) -> None:
        """Stop the reader and close the port. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        self._close_port()
        self.state = "closed"

    # --- reader thread ---

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_S
        lost_after_s = self.settings.lost_after_ms / 1000
        while not self._stop.is_set() and self.error is None:
            if self._port is None:
                if self._stop.wait(backoff):
                    return
                self.state = "reconnecting"
                backoff = min(2 * backoff, MAX_BACKOFF_S)
                self._reopen()
                continue
            try:
                data = self._port.read(max(1, min(self._port.in_waiting, MAX_READ_BYTES)))
            except (serial.SerialException, OSError, TypeError) as exc:
                self._lose(f"read error: {exc}")
                continue
            now = time.monotonic()
            if data:
                self._last_bytes_s = now
                self._accept(self.decoder.feed(data), now)
                backoff = FIRST_BACKOFF_S
            elif now - self._last_bytes_s > lost_after_s:
                self._lose(f"no data for {self.settings.lost_after_ms} ms")

    def _reopen(self) -> None:
        try:
            self._port = open_port(self.settings)
        except DeviceError:
            return
        self.decoder.reset()
        self._last_bytes_s = time.monotonic()

    def _close_port(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None

    def _lose(self, reason: str) -> None:
        """Link lost: close the port, report it, and let the loop reconnect."""
        self._close_port()
        if self.state == "streaming":
            self.state = "lost"
            self._resuming = True
            self._push(_Piece(self._next, None, [Event("signal_lost", self._next,
                                                       data={"reason": reason})]))

    def _accept(self, frames: list[sp.Frame], now_s: float) -> None:
        """Place decoded frames on the sample clock and queue them."""
        stats = self.decoder.stats
        self.counters.crc_errors, self.counters.resyncs = stats.crc_errors, stats.resyncs
        n_channels = self.info.n_channels
        for frame in frames:
            if frame.n_channels < n_channels:
                self.error = (f"serial port {self.settings.port}: device sends "
                              f"{frame.n_channels} channels, the profile expects {n_channels}")
                with self._cond:
                    self._cond.notify_all()
                return
            events: list[Event] = []
            if self._resuming:
                dropped = 0
                if self._last_frame_s is not None:
                    lost = round((now_s - self._last_frame_s) * self.info.sample_rate_hz)
                    dropped = max(0, lost - frame.n_samples)
                self._resuming = False
                self.counters.reconnects += 1
                self.state = "streaming"
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

    def _frame_events(self, frame: sp.Frame, start: int) -> list[Event]:
        events = []
        if frame.flags & sp.FLAG_STIMULUS:
            events.append(Event("stimulus", start + frame.event_offset,
                                data={"current_ma": frame.current_ma}))
        if frame.flags & sp.FLAG_TRIGGER:
            events.append(Event("trigger", start + frame.event_offset))
        changed = (frame.lead_off ^ self._lead_off) & ((1 << self.info.n_channels) - 1)
        for c in range(self.info.n_channels if changed else 0):
            if changed >> c & 1:
                kind = "lead_off" if frame.lead_off >> c & 1 else "lead_restored"
                events.append(Event(kind, start, channels=(c,)))
        self._lead_off = frame.lead_off
        return events

    def _push(self, piece: _Piece) -> None:
        with self._cond:
            self._pending.append(piece)
            self._cond.notify_all()
