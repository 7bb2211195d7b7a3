"""Write one case recording (HDF5, SWMR, crash-safe); see ``docs/recording-format.md``.

The writer is not thread-safe: exactly one thread (the :class:`~.recorder.Recorder`) uses it.
All datasets and attributes are created first, then the file switches to SWMR mode; from then on
only appends and in-place updates happen, and every :meth:`RecordingWriter.flush` leaves a file
that any reader (or a recovery after ``SIGKILL``) sees complete up to that flush.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ionm_station import __version__
from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.recording import format as fmt
from ionm_station.recording.format import CaseMetadata, RecordingError
from ionm_station.stream import StreamInfo


def _json(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, default=str)


def _hold_writer_lock(path: Path) -> int | None:
    """A shared ``flock`` on ``path``, held while this writer has the file open: it tells a
    recording in progress from one whose writer was killed
    (:func:`~ionm_station.recording.reader.being_recorded`); the kernel drops it when the
    process ends, however it ends. None where the file system has no locks."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


class RecordingWriter:
    """Create ``path`` (never overwrites) and append samples, events and settings to it.

    Args:
        path: new ``.h5`` file.
        info: the stream recorded (rate Hz, labels, range µV, source name).
        montage: channel ↔ muscle/root/side map in force.
        profile_doc: the hardware profile in force as a JSON-ready dict (None if none).
        settings: filter/threshold/alarm settings in force at sample 0 (JSON-ready dict).
        case: patient id, procedure, operator, start time.
        compression: None (default), ``"lzf"`` or ``"gzip"`` (level 1, with shuffle).
        first_index: session sample index of the recording's sample 0 (events are stored
            relative to it).

    Raises:
        RecordingError: the file exists or cannot be created.
    """

    def __init__(self, path: str | Path, info: StreamInfo, montage: Montage,
                 profile_doc: dict[str, Any] | None, settings: dict[str, Any], case: CaseMetadata,
                 compression: str | None = fmt.DEFAULT_COMPRESSION, first_index: int = 0) -> None:
        if compression not in fmt.COMPRESSIONS:
            raise ValueError(f"compression must be one of {fmt.COMPRESSIONS}, got {compression!r}")
        self.path = Path(path)
        self.info = info
        self.first_index = int(first_index)
        try:
            self._file = h5py.File(self.path, "w-", libver="latest")
        except (OSError, FileExistsError) as exc:
            reason = "file exists" if self.path.exists() else str(exc).split("(")[0].strip()
            raise RecordingError(f"{self.path}: cannot create recording: {reason}") from None
        self._create(info, montage, profile_doc, case, compression)
        self.n_samples = 0
        self._event_bytes = 0
        self._settings_bytes = 0
        self._clean = 0
        self._settings_bytes = self._append_text(self._settings, self._settings_line(0, settings))
        self._file.swmr_mode = True  # HDF5 drops its own file lock here
        self._lock_fd = _hold_writer_lock(self.path)
        self.flush()

    def _create(self, info: StreamInfo, montage: Montage, profile_doc: dict[str, Any] | None,
                case: CaseMetadata, compression: str | None) -> None:
        f = self._file
        ch = info.n_channels
        chunk_rows = max(1, info.seconds_to_samples(fmt.CHUNK_S))
        extra = {} if compression is None else {"compression": compression, "shuffle": True}
        if compression == "gzip":
            extra["compression_opts"] = 1
        self._samples = f.create_dataset(fmt.SAMPLES, (0, ch), maxshape=(None, ch), dtype="<f4",
                                         chunks=(chunk_rows, ch), fillvalue=np.nan, **extra)
        self._samples.attrs["unit"] = "uV"
        text = {"shape": (0,), "maxshape": (None,), "dtype": "u1",
                "chunks": (fmt.TEXT_CHUNK_BYTES,)}
        self._events = f.create_dataset(fmt.EVENTS, **text)
        self._settings = f.create_dataset(fmt.SETTINGS, **text)
        self._status = f.create_dataset(fmt.STATUS, data=np.zeros(len(fmt.STATUS_FIELDS), "<i8"))
        self._status.attrs["fields"] = _json(fmt.STATUS_FIELDS)
        self._counters = f.create_dataset(fmt.COUNTERS,
                                          data=np.zeros(len(fmt.COUNTER_FIELDS), "<i8"))
        self._counters.attrs["fields"] = _json(fmt.COUNTER_FIELDS)
        a = f.attrs
        a["format"] = fmt.FORMAT_NAME
        a["format_version"] = fmt.FORMAT_VERSION
        a["created_by"] = f"ionm-station {__version__}"
        a["created_unix_s"] = time.time()
        a["sample_rate_hz"] = float(info.sample_rate_hz)
        a["range_uv"] = float(info.range_uv)
        a["unit"] = info.unit
        a["source"] = info.source
        a["labels"] = _json(list(info.labels))
        a["montage"] = _json(fmt.montage_to_dict(montage))
        a["profile"] = _json(profile_doc)
        a["case"] = _json(case.to_dict())
        a["compression"] = compression or "none"
        a["first_session_index"] = self.first_index

    @property
    def file_size_bytes(self) -> int:
        """Size of the file on disk (bytes)."""
        return os.path.getsize(self.path)

    def append(self, data: np.ndarray) -> int:
        """Append float32 µV samples, shape (n, n_channels); returns the file index of ``data[0]``."""
        start = self.n_samples
        n = int(data.shape[0])
        if n:
            self._samples.resize(start + n, axis=0)
            self._samples[start:start + n] = np.asarray(data, dtype=np.float32)
            self.n_samples = start + n
        return start

    def append_gap(self, n: int) -> int:
        """Append ``n`` missing samples (NaN, the dataset's fill value); returns the first index."""
        start = self.n_samples
        if n > 0:
            self._samples.resize(start + n, axis=0)  # new rows read as the NaN fill value
            self.n_samples = start + n
        return start

    def add_events(self, events: list[Event]) -> None:
        """Append events keyed by *session* sample index (stored relative to ``first_index``)."""
        if events:
            text = "".join(fmt.event_to_json(e, self.first_index) + "\n" for e in events)
            self._event_bytes = self._append_text(self._events, text, self._event_bytes)

    def settings_changed(self, session_index: int, settings: dict[str, Any]) -> None:
        """Record that ``settings`` are in force from ``session_index`` on (host time = now)."""
        line = self._settings_line(session_index - self.first_index, settings)
        self._settings_bytes = self._append_text(self._settings, line, self._settings_bytes)

    def set_counters(self, counters: dict[str, int]) -> None:
        """Per-source counters (names from :data:`format.COUNTER_FIELDS`; others ignored)."""
        self._counters[:] = np.array([int(counters.get(k, 0)) for k in fmt.COUNTER_FIELDS], "<i8")

    def flush(self) -> None:
        """Commit lengths and flags, then make everything durable (HDF5 flush)."""
        status = {"samples": self.n_samples, "event_bytes": self._event_bytes,
                  "settings_bytes": self._settings_bytes, "clean_close": self._clean,
                  "recovered": 0, "last_flush_unix_ms": int(time.time() * 1000)}
        self._status[:] = np.array([status[k] for k in fmt.STATUS_FIELDS], "<i8")
        self._file.flush()

    def close(self) -> None:
        """Mark the file closed cleanly, flush and close. Idempotent."""
        if not self._file.id.valid:
            return
        self._clean = 1
        self.flush()
        self._file.close()
        self._release_lock()

    def abandon(self) -> None:
        """Close the HDF5 handle after a write error without marking the file clean."""
        try:
            if self._file.id.valid:
                self._file.close()
        except Exception:  # the file is already broken; recovery will deal with it
            pass
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops its lock
            self._lock_fd = None

    def _settings_line(self, index: int, settings: dict[str, Any]) -> str:
        return _json({"index": index, "host_time_s": time.time(), "settings": settings}) + "\n"

    @staticmethod
    def _append_text(ds: h5py.Dataset, text: str, used: int = 0) -> int:
        """Append UTF-8 ``text`` after the first ``used`` bytes of ``ds``; new length."""
        raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        ds.resize(used + len(raw), axis=0)
        ds[used:] = raw
        return used + len(raw)
