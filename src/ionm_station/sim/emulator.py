"""A serial amplifier emulator: the simulated amplifier streamed over a pseudo-terminal.

The emulator opens a pty, puts it in raw mode, symlinks its device side (``/dev/pts/N``) at a
chosen path and writes frames of :mod:`ionm_station.sources.serial_protocol` to it at the
amplifier's rate (or a multiple of it), as a real amplifier on a USB-serial cable would.
Anything that opens the link — :class:`~ionm_station.sources.serial_source.SerialSource`,
``ionm-station run --profile serial_amplifier``, a terminal program — sees the real protocol.

Faults are injected per frame and counted exactly (:class:`EmulatorStats`):

* ``corrupt_rate``: probability that 1–3 bytes after the frame's checked header fields
  (offset ≥ 18: stimulus current, samples, CRC) are changed; the emulator checks
  that the CRC no longer matches, so the receiver counts exactly one CRC error per corrupted
  frame and the frame's samples as dropped.
* ``drop_rate``: probability that a frame is not sent (its sequence number is still used), so
  the receiver sees a sequence gap.
* frames that find the pty's buffer and our 0.5 s send queue full (nobody reading) are not sent
  either and are counted in ``frames_unsent``.

The last frame of a ``seconds``-limited run is never faulted, so every injected fault is visible
to a receiver as a gap before a later good frame.
"""

from __future__ import annotations

import errno
import math
import os
import pty
import select
import threading
import time
import tty
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ionm_station.errors import DeviceError
from ionm_station.events import Event
from ionm_station.montage import Montage, load_montage
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import load_scenario
from ionm_station.sources import serial_protocol as sp

#: Frames are rendered this far (s of signal) ahead of sending, in one simulator call.
RENDER_BLOCK_S = 0.02
#: Longest wall time (s) of signal held in the send queue when the reader does not keep up.
MAX_QUEUE_S = 0.5
#: First byte that corruption may touch: after every header field the decoder validates, so a
#: corrupted frame is always a CRC error (never a resync) at the receiver.
CORRUPT_FROM = 18
#: Longest sleep of the pacing loop (s).
MAX_IDLE_S = 0.002
#: At the end of a run, wait at most this long (s) for a reader to take the queued frames.
FINAL_FLUSH_S = 1.0


@dataclass(frozen=True)
class EmulatorSettings:
    """What the emulated amplifier streams and which faults it injects.

    Attributes:
        link: path of the symlink to the pty's device side (a stale link is replaced).
        rate_hz: samples per second per channel (2–20 kHz, the simulator's range).
        channels: channels streamed (the first ``channels`` of ``montage``).
        montage: montage name or path; None → lumbar (≤ 16 ch) or combined32 (≤ 32 ch).
        scenario: simulator scenario name or path.
        seed: simulator seed; None → the scenario's.
        uv_per_lsb: µV of one ADC step (must match the receiving profile's ``uv_per_lsb``).
        range_uv: amplifier input range (± µV).
        samples_per_frame: samples per channel per frame; None → 1 ms of samples.
        corrupt_rate: probability per frame of corrupting it (CRC error at the receiver).
        drop_rate: probability per frame of not sending it (sequence gap at the receiver).
        disconnect_after_s: pull the cable after this many wall-clock seconds: stop mid-frame,
            close the pty and remove the link.
        seconds: stop after this much signal (s); None → until stopped.
        speed: multiple of real time (1 = real time; tests use more).
        fault_seed: seed of the fault dice; None → the simulator seed.
    """

    link: Path
    rate_hz: float = 10000.0
    channels: int = 16
    montage: str | None = None
    scenario: str = "lumbar_demo"
    seed: int | None = None
    uv_per_lsb: float = 0.1
    range_uv: float = 5000.0
    samples_per_frame: int | None = None
    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    disconnect_after_s: float | None = None
    seconds: float | None = None
    speed: float = 1.0
    fault_seed: int | None = None


@dataclass
class EmulatorStats:
    """Exact counts of what the emulator produced and injected (frames and samples per channel).

    Attributes:
        samples_per_frame: samples per channel in every frame.
        frames: frames produced (sequence numbers used).
        frames_sent: frames written intact (completely handed to the pty).
        frames_corrupted: frames written with corrupted bytes.
        frames_dropped: frames deliberately not sent.
        frames_unsent: frames not (completely) sent because nobody read the link fast enough,
            the run ended before a reader took them, or the cable was pulled mid-frame.
        bytes_sent: bytes handed to the pty.
        pulled: True when the run ended by ``disconnect_after_s`` (mid-frame).
    """

    samples_per_frame: int = 0
    frames: int = 0
    frames_sent: int = 0
    frames_corrupted: int = 0
    frames_dropped: int = 0
    frames_unsent: int = 0
    bytes_sent: int = 0
    pulled: bool = False

    @property
    def lost_samples(self) -> int:
        """Samples per channel a receiver must count as dropped (every frame not received intact)."""
        lost = self.frames_corrupted + self.frames_dropped + self.frames_unsent
        return lost * self.samples_per_frame

    def to_dict(self) -> dict:
        """JSON-ready counts, including ``lost_samples``."""
        return {**asdict(self), "lost_samples": self.lost_samples}


def to_lsb(data_uv: np.ndarray, uv_per_lsb: float) -> np.ndarray:
    """µV → int32 ADC steps, rounded to nearest and clipped to the 24-bit range."""
    steps = np.rint(data_uv.astype(np.float64) / uv_per_lsb)
    return np.clip(steps, -sp.SAMPLE_MAX - 1, sp.SAMPLE_MAX).astype(np.int32)


def default_montage(channels: int, name: str | None) -> Montage:
    """The montage the emulator streams: ``name`` or lumbar / combined32 by channel count."""
    montage = load_montage(name or ("lumbar" if channels <= 16 else "combined32"))
    if len(montage.channels) < channels:
        raise DeviceError(f"montage {montage.name!r} has {len(montage.channels)} channels, "
                          f"{channels} requested; pass a montage with enough channels")
    return montage.first(channels)


class DeviceEmulator:
    """The emulated amplifier. :meth:`open` makes the link, :meth:`run` streams, :meth:`close`
    removes the link (also usable as a context manager)."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = s = settings
        self.montage = default_montage(s.channels, s.montage)
        self.amplifier = SimulatedAmplifier(self.montage, load_scenario(s.scenario), s.rate_hz,
                                            seed=s.seed, range_uv=s.range_uv, realtime=False)
        spf = s.samples_per_frame or max(1, round(s.rate_hz / 1000))
        if not 1 <= spf <= sp.MAX_SAMPLES_PER_FRAME:
            raise ValueError(f"samples per frame must be 1–{sp.MAX_SAMPLES_PER_FRAME}, got {spf}")
        for name in ("corrupt_rate", "drop_rate"):
            if not 0.0 <= getattr(s, name) <= 1.0:
                raise ValueError(f"{name} must be a probability 0–1, got {getattr(s, name)}")
        if s.speed <= 0:
            raise ValueError(f"speed must be > 0, got {s.speed}")
        self.stats = EmulatorStats(samples_per_frame=spf)
        self._spf = spf
        self._dice = np.random.default_rng(self.amplifier.seed if s.fault_seed is None
                                           else s.fault_seed)
        self._total_frames = None if s.seconds is None else math.ceil(s.seconds * s.rate_hz / spf)
        self._ready: deque[bytes] = deque()
        self._queue: deque[tuple[bytes, bool]] = deque()  # (frame, corrupted)
        self._queued_bytes = 0
        self._head_written = 0
        self._max_queue = max(65536, int(MAX_QUEUE_S * s.speed * s.rate_hz * 3 * s.channels))
        self._lead_off: list[Event] = []
        self._master: int | None = None
        self._slave: int | None = None
        self.device: str | None = None

    # --- link ---

    def open(self) -> None:
        """Create the pty (raw mode) and link its device side at ``settings.link``."""
        link = self.settings.link
        if link.exists() and not link.is_symlink():
            raise DeviceError(f"{link}: exists and is not a symlink; refusing to replace it")
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.device = os.ttyname(self._slave)
        if link.is_symlink():
            link.unlink()  # a stale link from an emulator that did not exit cleanly
        os.symlink(self.device, link)

    def close(self) -> None:
        """Remove the link (if it is still ours) and close the pty. Idempotent."""
        link = self.settings.link
        try:
            if link.is_symlink() and os.readlink(link) == self.device:
                link.unlink()
        except OSError:
            pass
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> DeviceEmulator:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- streaming ---

    def run(self, stop: threading.Event | None = None) -> EmulatorStats:
        """Stream until ``stop`` is set, ``seconds`` of signal are sent or the cable is pulled."""
        if self._master is None:
            raise RuntimeError("open() the emulator before run()")
        s = self.settings
        stop = stop or threading.Event()
        frames_per_s = s.rate_hz * s.speed / self._spf
        t0 = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if s.disconnect_after_s is not None and elapsed >= s.disconnect_after_s:
                self._pull()
                break
            due = math.floor(elapsed * frames_per_s) + 1
            if self._total_frames is not None:
                due = min(due, self._total_frames)
            while self.stats.frames < due:
                self._emit(self._next_frame())
            self._flush()
            if self._total_frames is not None and self.stats.frames >= self._total_frames:
                self._final_flush(stop)
                break
            wait = (self.stats.frames / frames_per_s) - (time.monotonic() - t0)
            self._wait(min(max(wait, 0.0), MAX_IDLE_S))
        self.stats.frames_unsent += len(self._queue)
        self._queue.clear()
        return self.stats

    def _final_flush(self, stop: threading.Event) -> None:
        """Give a reader up to :data:`FINAL_FLUSH_S` to take what is queued."""
        deadline = time.monotonic() + FINAL_FLUSH_S
        while self._queue and not stop.is_set() and time.monotonic() < deadline:
            self._wait(MAX_IDLE_S)
            self._flush()

    def _next_frame(self) -> bytes:
        if not self._ready:
            self._render(max(1, round(RENDER_BLOCK_S * self.settings.rate_hz / self._spf)))
        return self._ready.popleft()

    def _render(self, n_frames: int) -> None:
        """Encode the next ``n_frames`` frames (one simulator call) into ``_ready``."""
        spf = self._spf
        first = (self.stats.frames + len(self._ready)) * spf
        stop = first + n_frames * spf
        lsb = to_lsb(self.amplifier.generate(first, n_frames * spf), self.settings.uv_per_lsb)
        stimuli: dict[int, Event] = {}
        for event in self.amplifier.events_between(first, stop):
            if event.kind == "lead_off":
                self._lead_off.append(event)
            elif event.kind == "stimulus":
                stimuli.setdefault(event.start // spf, event)
        for k in range(n_frames):
            a = first + k * spf
            frame_no = a // spf
            self._lead_off = [e for e in self._lead_off if e.end > a]
            mask = 0
            for e in self._lead_off:
                if e.start < a + spf:
                    for c in e.channels:
                        mask |= 1 << c
            kwargs = {}
            if frame_no in stimuli:
                event = stimuli[frame_no]
                kwargs = {"flags": sp.FLAG_STIMULUS, "event_offset": event.start - a,
                          "current_ma": min(float(event.data.get("current_ma", 0.0)), 655.35)}
            self._ready.append(sp.encode_frame(frame_no, lsb[k * spf:(k + 1) * spf],
                                               lead_off=mask, **kwargs))

    def _emit(self, frame: bytes) -> None:
        """Apply the fault dice to one frame and queue it for sending."""
        s = self.settings
        self.stats.frames += 1
        last = self._total_frames is not None and self.stats.frames == self._total_frames
        roll = self._dice.random()
        if not last and roll < s.drop_rate:
            self.stats.frames_dropped += 1
            return
        if self._queued_bytes + len(frame) > self._max_queue:
            self.stats.frames_unsent += 1
            return
        corrupted = not last and roll < s.drop_rate + s.corrupt_rate
        if corrupted:
            frame = self._corrupt(frame)
        self._queue.append((frame, corrupted))
        self._queued_bytes += len(frame)

    def _corrupt(self, frame: bytes) -> bytes:
        """1–3 changed bytes at offset ≥ :data:`CORRUPT_FROM`, guaranteed to break the CRC."""
        data = bytearray(frame)
        while True:
            for _ in range(int(self._dice.integers(1, 4))):
                i = int(self._dice.integers(CORRUPT_FROM, len(data)))
                data[i] ^= int(self._dice.integers(1, 256))
            crc = int.from_bytes(data[-sp.CRC_SIZE:], "little")
            if zlib.crc32(bytes(data[:-sp.CRC_SIZE])) != crc:
                return bytes(data)

    def _flush(self) -> None:
        """Write as much of the send queue as the pty takes without blocking; a frame counts as
        sent (or corrupted) once its last byte is written."""
        assert self._master is not None
        while self._queue:
            frame, corrupted = self._queue[0]
            try:
                n = os.write(self._master, frame[self._head_written:])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            self.stats.bytes_sent += n
            self._head_written += n
            if self._head_written < len(frame):
                return
            self._queue.popleft()
            self._queued_bytes -= len(frame)
            self._head_written = 0
            if corrupted:
                self.stats.frames_corrupted += 1
            else:
                self.stats.frames_sent += 1

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; wake early when the pty can take queued bytes."""
        if self._queue and self._master is not None:
            select.select([], [self._master], [], seconds)
        elif seconds > 0:
            time.sleep(seconds)

    def _pull(self) -> None:
        """Cable pulled: half of the next frame goes out, then the link disappears."""
        frame = self._next_frame()
        self.stats.frames += 1
        self._queue.append((frame[:len(frame) // 2], False))
        self._flush()
        if not self._queue:  # the half frame went out: it is not a sent frame
            self.stats.frames_sent -= 1
            self.stats.frames_unsent += 1
        self.stats.pulled = True
        self.close()
