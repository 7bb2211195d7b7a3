"""The recorder thread: raw ring + event log → one HDF5 recording, the only h5py user.

A supervised worker. It reads the session's raw ring with its own cursor and the event log with
its own position, appends both to a :class:`~.writer.RecordingWriter` and flushes at least every
:data:`~.format.FLUSH_INTERVAL_S`. It never blocks acquisition: if it falls more than a ring
behind, the lost samples are written as NaN with a ``gap`` event (never silently joined). A write
error (disk full, I/O error) stops *recording* loudly — state ``failed``, a ``recording_error``
event in the session log, RECORDING STOPPED on the tiles — while monitoring goes on. Any other
fault crashes the worker; the supervisor restarts it on the same open file, reading the ring
again from the first sample not yet in the file, so the recording has no hole. Free disk is
checked periodically and a ``recording_disk_low`` event is logged when it would last less than
an hour. Settings changes are the session's ``settings`` events, recorded as such.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ionm_station.events import Event, EventLog
from ionm_station.montage import Montage
from ionm_station.pipeline.worker import Worker
from ionm_station.recording import format as fmt
from ionm_station.recording.format import CaseMetadata, RecordingError
from ionm_station.recording.writer import RecordingWriter
from ionm_station.ring import RingBuffer, RingReader
from ionm_station.stream import StreamInfo

#: Warn when free disk space would last less than this at the current write rate (s).
LOW_DISK_HORIZON_S = 3600.0
#: Seconds between free-disk checks.
DISK_CHECK_INTERVAL_S = 10.0
#: Longest the recorder sleeps between polls of the ring (s).
POLL_S = 0.05
#: Most samples per channel taken from the ring per write (bounds memory per step).
MAX_READ_S = 1.0


@dataclass
class RecorderStatus:
    """Snapshot for status lines.

    Attributes:
        state: ``idle``, ``recording``, ``low_disk`` (recording, free disk < 1 h), ``stopped``
            or ``failed``.
        path: the recording file.
        file_size_bytes: size on disk (bytes).
        samples_written: samples per channel in the file (gap fill included).
        lost_samples: samples per channel lost to ring overruns (written as NaN).
        bytes_per_s: current write rate (bytes of file per second of wall time).
        free_bytes: free space on the file's disk at the last check (bytes; -1 before it).
        message: why it failed or warned, else None.
    """

    state: str
    path: str
    file_size_bytes: int
    samples_written: int
    lost_samples: int
    bytes_per_s: float
    free_bytes: int
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder(Worker):
    """Record a session's raw ring and event log into ``path`` on a supervised thread.

    Args:
        ring: the session's raw ring (read with a private cursor; never modified).
        events: the session's event log (read with a private position; recorder faults and
            warnings are appended to it).
        info: stream description (rate, labels, range).
        montage: montage in force.
        path: the new recording file (never overwritten).
        case: case metadata (None: all fields empty).
        profile_doc: hardware profile in force, JSON-ready (or None).
        settings: filter/threshold settings in force at the start, JSON-ready.
        counters: called at every flush for per-source counters (names in
            :data:`~.format.COUNTER_FIELDS`); None → zeros.
        start_index: session index of the first sample to record (None: the newest published).
        compression: see :class:`~.writer.RecordingWriter`.
        flush_interval_s: longest time between flushes (s), at most 1.
        disk_free: returns free bytes on the disk of a path (tests inject a fake).
    """

    def __init__(self, ring: RingBuffer, events: EventLog, info: StreamInfo, montage: Montage,
                 path: str | Path, case: CaseMetadata | None = None,
                 profile_doc: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None,
                 counters: Callable[[], dict[str, int]] | None = None,
                 start_index: int | None = None,
                 compression: str | None = fmt.DEFAULT_COMPRESSION,
                 flush_interval_s: float = fmt.FLUSH_INTERVAL_S,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> None:
        if not 0 < flush_interval_s <= 1.0:
            raise ValueError(f"flush interval must be in (0, 1] s, got {flush_interval_s}")
        super().__init__("recorder", stall_s=5.0, idle_s=min(POLL_S, flush_interval_s / 2))
        self.path = Path(path)
        self._ring = ring
        self._events = events
        self._info = info
        self._writer_args = (info, montage, profile_doc, dict(settings or {}),
                             case or CaseMetadata(), compression)
        self._counters = counters or dict
        self._start_index = start_index
        self._flush_interval_s = flush_interval_s
        self._disk_free = disk_free
        self._max_read = max(1, info.seconds_to_samples(MAX_READ_S))
        self._writer: RecordingWriter | None = None
        self._reader: RingReader | None = None
        self._event_cursor = 0
        self._rec_state = "idle"
        self._message: str | None = None
        self._samples = 0
        self._lost = 0
        self._lost_events = 0
        self._stop_at: int | None = None
        self._size = 0
        self._rate = 0.0
        self._free = -1
        self._t0 = self._last_flush = self._last_disk = time.monotonic()

    # --- control (any thread) ---

    def start(self, timeout_s: float = 10.0) -> None:
        """Create the file and start recording.

        Raises:
            RecordingError: the file cannot be created (exists, no directory, no permission).
        """
        start = self._ring.published if self._start_index is None else self._start_index
        try:
            self._writer = RecordingWriter(self.path, *self._writer_args, first_index=start)
        except RecordingError as exc:
            self._fail(str(exc), start)
            raise
        self._reader = self._ring.reader(start=start)
        self._rec_state = "recording"
        super().start()

    def stop(self, timeout_s: float = 10.0) -> RecorderStatus:
        """Write everything published so far, close the file cleanly, end the thread."""
        self._stop_at = self._ring.published
        super().stop(timeout_s)
        if self._writer is not None and self.health().state != "running":
            self._close()  # the thread is gone (failed, given up): close from here
        return self.status()

    @property
    def cursor(self) -> int:
        """Absolute index of the next raw sample the recorder will read (its backlog marker)."""
        return self._reader.cursor if self._reader is not None else self._ring.published

    @property
    def recording(self) -> bool:
        """Still writing (``recording`` or ``low_disk``)."""
        return self._rec_state in ("recording", "low_disk")

    @property
    def failure(self) -> str | None:
        """Why recording stopped on a fault (None while fine or stopped by the user)."""
        return self._message if self._rec_state == "failed" else None

    def status(self) -> RecorderStatus:
        return RecorderStatus(self._rec_state, str(self.path), self._size, self._samples, self._lost,
                              self._rate, self._free, self._message)

    # --- the worker ---

    def step(self) -> int | None:
        writer, reader = self._writer, self._reader
        if writer is None or reader is None or not self.recording:
            return None
        try:
            got = reader.read(self._max_read)
            if got.lost:
                self._lost += got.lost
                self._lost_events += 1
                writer.append_gap(got.lost)
                self._events.append(Event("gap", got.start - got.lost, got.start,
                                          data={"samples": got.lost, "cause": "recorder_overrun"}))
            writer.append(got.data)
            self._samples = writer.n_samples
            self._write_events(writer)
            now = time.monotonic()
            if now - self._last_flush >= self._flush_interval_s:
                self._flush(writer, now)
            if now - self._last_disk >= DISK_CHECK_INTERVAL_S:
                self._check_disk(reader.cursor)
                self._last_disk = now
        except OSError as exc:  # disk full, I/O error: stop recording, keep monitoring
            self._abandon(f"{self.path}: recording stopped: {type(exc).__name__}: {exc}")
            return None
        return got.n_samples + got.lost

    def on_restart(self) -> None:
        """Go on with the same file from the first sample not yet in it (no hole)."""
        if self._writer is not None:
            self._reader = self._ring.reader(start=self._writer.first_index + self._writer.n_samples)

    def on_exit(self) -> None:
        """Stopped by the user: drain what was published up to the stop, then close."""
        if self._writer is not None and self.recording:
            try:
                while self._reader is not None and self._reader.cursor < (self._stop_at or 0):
                    if not self.step():
                        break
                self._close()
            except OSError as exc:
                self._abandon(f"{self.path}: recording stopped: {type(exc).__name__}: {exc}")

    # --- internals ---

    def _close(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._write_events(writer)
        writer.set_counters(self._counter_values())
        writer.close()
        self._size = writer.file_size_bytes
        self._writer = None
        if self._rec_state != "failed":
            self._rec_state = "stopped"

    def _abandon(self, message: str) -> None:
        if self._writer is not None:
            self._writer.abandon()
            self._writer = None
        self._fail(message, self._ring.published)

    def _fail(self, message: str, index: int) -> None:
        self._rec_state = "failed"
        self._message = message
        self._events.append(Event("recording_error", index,
                                  data={"message": message, "path": str(self.path)}))

    def _flush(self, writer: RecordingWriter, now: float) -> None:
        writer.set_counters(self._counter_values())
        writer.flush()
        self._last_flush = now
        self._size = writer.file_size_bytes
        self._rate = self._size / max(now - self._t0, 1e-9)

    def _write_events(self, writer: RecordingWriter) -> None:
        new, cursor = self._events.since(self._event_cursor)
        mine = [e for e in new if e.start >= writer.first_index]
        writer.add_events(mine)
        for e in mine:
            if e.kind == "settings":
                writer.settings_changed(e.start, e.data)
        self._event_cursor = cursor

    def _counter_values(self) -> dict[str, int]:
        values = dict(self._counters())
        values.update(recorder_lost_samples=self._lost, recorder_gaps=self._lost_events)
        return values

    def _check_disk(self, index: int) -> None:
        self._free = int(self._disk_free(self.path.parent))
        if self._rate <= 0:
            return
        left_s = self._free / self._rate
        if left_s < LOW_DISK_HORIZON_S and self._rec_state == "recording":
            self._rec_state = "low_disk"
            self._message = (f"{self.path.parent}: {self._free / 1e9:.2f} GB free, "
                             f"{left_s / 60:.0f} min of recording left at "
                             f"{self._rate * 3600 / 1e9:.2f} GB/h")
            self._events.append(Event("recording_disk_low", index,
                                      data={"message": self._message, "free_bytes": self._free,
                                            "minutes_left": round(left_s / 60, 1)}))
