"""Open a case recording read-only, and recover one that was never closed.

:func:`open_recording` never writes: a file being replayed or inspected stays byte-identical.
A file whose writer was killed opens too (HDF5 SWMR read), with ``clean_close`` False and the
data up to the writer's last flush. :func:`recover` turns such a file into a normal, cleanly
closed one in place (milliseconds, whatever the size): it clears the HDF5 "open for writing"
flags, cuts every dataset to its last committed length and marks the file recovered.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ionm_station.errors import input_problem
from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.outputs import atomic_output, check_outputs
from ionm_station.recording import format as fmt
from ionm_station.recording import superblock
from ionm_station.recording.format import CaseMetadata, RecordingError, SettingsChange
from ionm_station.stream import StreamInfo

HDF5_SIGNATURE = superblock.SIGNATURE


def being_recorded(path: str | Path) -> bool:
    """True while a running station's recorder has ``path`` open for writing (it holds a shared
    lock on the file until it closes it; the kernel drops the lock when a writer is killed).
    A file that was never closed and is not being recorded was left by a killed or crashed
    writer: :func:`recover` repairs it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks
        return False
    finally:
        os.close(fd)  # also drops the lock just taken
    return False


def is_hdf5(path: Path) -> bool:
    """True if ``path`` starts with the HDF5 signature."""
    with open(path, "rb") as f:
        return f.read(8) == HDF5_SIGNATURE


def _short(exc: BaseException) -> str:
    """First clause of an h5py/HDF5 message, e.g. ``truncated file: eof = 1024, ...``."""
    text = str(exc).replace("Unable to synchronously open file", "").strip(" ()")
    return text.splitlines()[0] if text else type(exc).__name__


def _open_h5(path: Path) -> tuple[h5py.File, bool]:
    """Open read-only; (file, opened_after_crash). Raises RecordingError naming the problem."""
    problem = input_problem(path)
    if problem:
        raise RecordingError(f"{path}: {problem}")
    if not is_hdf5(path):
        raise RecordingError(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r", locking=False), False
    except OSError as exc:
        if "already open for write" not in str(exc):
            raise RecordingError(f"{path}: corrupt or truncated HDF5 file ({_short(exc)})") from None
    try:  # the writer never closed it: SWMR read sees everything up to its last flush
        return h5py.File(path, "r", swmr=True, locking=False), True
    except OSError as exc:
        raise RecordingError(f"{path}: corrupt or truncated HDF5 file ({_short(exc)})") from None


def _vector(f: h5py.File, name: str, fields: tuple[str, ...]) -> dict[str, int]:
    ds = f[name]
    names = json.loads(ds.attrs["fields"])
    values = ds[()]
    got = {k: int(v) for k, v in zip(names, values)}
    return {k: got.get(k, 0) for k in fields}


def _text_lines(ds: h5py.Dataset, n_bytes: int) -> list[str]:
    return [line for line in ds[:n_bytes].tobytes().decode("utf-8").split("\n") if line]


@dataclass
class Recording:
    """An open recording (read-only). Sample indices are file-relative (0 = first sample).

    Attributes:
        path: the file.
        info: rate (Hz), labels, range (µV), source name.
        montage: the montage in force.
        profile: hardware profile document (None if none was recorded).
        case: case metadata.
        events: every committed event, file-relative indices.
        settings_history: settings in force from each index on (first one at index 0).
        counters: per-source counters at the last flush.
        clean_close: False if the writer never closed the file (crash, kill, disk full).
        recovered: True if :func:`recover` repaired it.
        n_samples: committed samples per channel.
        compression: ``"none"``, ``"lzf"`` or ``"gzip"``.
        format_version: layout version of the file.
        first_session_index: session sample index of sample 0.
        last_flush_unix_s: host time of the writer's last flush (Unix s).
        created_by: the software that wrote it (``ionm-station <version>``).
        created_unix_s: host time the file was created (Unix s).
    """

    path: Path
    info: StreamInfo
    montage: Montage
    profile: dict[str, Any] | None
    case: CaseMetadata
    events: list[Event]
    settings_history: list[SettingsChange]
    counters: dict[str, int]
    clean_close: bool
    recovered: bool
    n_samples: int
    compression: str
    format_version: int
    first_session_index: int
    last_flush_unix_s: float
    created_by: str
    created_unix_s: float
    _file: h5py.File

    @property
    def duration_s(self) -> float:
        """Recorded signal time (s)."""
        return self.n_samples / self.info.sample_rate_hz

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as float32 (n, n_channels) µV (clipped to the recording)."""
        start = min(max(0, int(start)), self.n_samples)
        stop = min(max(start, int(stop)), self.n_samples)
        try:
            return np.asarray(self._file[fmt.SAMPLES][start:stop], dtype=np.float32)
        except (OSError, RuntimeError, ValueError) as exc:
            raise RecordingError(f"{self.path}: cannot read samples {start}–{stop} "
                                 f"({_short(exc)})") from None

    def settings_at(self, index: int) -> dict[str, Any]:
        """The settings in force at file sample ``index``."""
        current = self.settings_history[0].settings
        for change in self.settings_history:
            if change.index <= index:
                current = change.settings
        return current

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_recording(path: str | Path) -> Recording:
    """Open one of our recordings read-only.

    Raises:
        RecordingError: missing, non-HDF5, foreign HDF5, newer format, truncated or corrupt.
    """
    path = Path(path)
    f, after_crash = _open_h5(path)
    try:
        return _load(path, f, after_crash)
    except RecordingError:
        f.close()
        raise
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        f.close()
        raise RecordingError(f"{path}: damaged IONM Station recording ({_short(exc)})") from None


def _load(path: Path, f: h5py.File, after_crash: bool) -> Recording:
    a = f.attrs
    if a.get("format") != fmt.FORMAT_NAME:
        raise RecordingError(f"{path}: HDF5 file is not an IONM Station recording "
                             "(no 'format' attribute)")
    version = int(a["format_version"])
    if version > fmt.FORMAT_VERSION:
        raise RecordingError(f"{path}: recording format version {version} is newer than this "
                             f"IONM Station understands ({fmt.FORMAT_VERSION})")
    status = _vector(f, fmt.STATUS, fmt.STATUS_FIELDS)
    n = status["samples"]
    if f[fmt.SAMPLES].shape[0] < n:
        raise RecordingError(f"{path}: samples dataset holds {f[fmt.SAMPLES].shape[0]} rows, "
                             f"status says {n}")
    info = StreamInfo(float(a["sample_rate_hz"]), tuple(json.loads(a["labels"])),
                      float(a["range_uv"]), str(a["unit"]), str(a["source"]))
    events = [fmt.event_from_json(line)
              for line in _text_lines(f[fmt.EVENTS], status["event_bytes"])]
    history = [SettingsChange(int(d["index"]), float(d["host_time_s"]), dict(d["settings"]))
               for d in map(json.loads, _text_lines(f[fmt.SETTINGS], status["settings_bytes"]))]
    if not history:
        raise RecordingError(f"{path}: no settings record")
    return Recording(
        path=path, info=info, montage=fmt.montage_from_dict(json.loads(a["montage"])),
        profile=json.loads(a["profile"]), case=CaseMetadata.from_dict(json.loads(a["case"])),
        events=events, settings_history=history,
        counters=_vector(f, fmt.COUNTERS, fmt.COUNTER_FIELDS),
        clean_close=bool(status["clean_close"]) and not after_crash,
        recovered=bool(status["recovered"]), n_samples=n, compression=str(a["compression"]),
        format_version=version,
        first_session_index=int(a["first_session_index"]),
        last_flush_unix_s=status["last_flush_unix_ms"] / 1000,
        created_by=str(a.get("created_by", "")), created_unix_s=float(a.get("created_unix_s", 0.0)),
        _file=f)


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover` did: samples kept (per channel), rows cut after the last flush,
    whether anything needed repair, where the original was copied (None: no copy), and how long
    it took (s)."""

    samples: int
    discarded_rows: int
    repaired: bool
    backup: Path | None
    elapsed_s: float


def recover(path: str | Path, backup: str | Path | None = None,
            replace_backup: bool = False) -> RecoveryReport:
    """Make a recording that was not closed cleanly open as a normal file; keeps every sample,
    event and setting up to the writer's last flush. A clean file is left untouched.

    Args:
        path: the recording, repaired in place.
        backup: first copy the file as it is to here (None: no copy). The copy is written
            beside its name and renamed when complete; an existing file is replaced only with
            ``replace_backup``.

    Raises:
        RecordingError: the file is being recorded right now, is not one of our recordings, or
            cannot be repaired.
    """
    path = Path(path)
    t0 = time.perf_counter()
    if being_recorded(path):
        raise RecordingError(f"{path}: is being recorded by a running station; stop that "
                             "recording first (recovery is for a file whose writer was killed)")
    with open_recording(path) as rec:
        if rec.clean_close:
            return RecoveryReport(rec.n_samples, 0, False, None, time.perf_counter() - t0)
    if backup is not None:
        check_outputs({"backup": backup}, [path], force=replace_backup)
        with atomic_output(backup, replace_backup) as tmp:
            shutil.copyfile(path, tmp)
    try:
        if superblock.open_flags(path):
            superblock.clear_open_flags(path)
        with h5py.File(path, "r+") as f:
            status = _vector(f, fmt.STATUS, fmt.STATUS_FIELDS)
            n = status["samples"]
            discarded = f[fmt.SAMPLES].shape[0] - n
            f[fmt.SAMPLES].resize(n, axis=0)
            f[fmt.EVENTS].resize(status["event_bytes"], axis=0)
            f[fmt.SETTINGS].resize(status["settings_bytes"], axis=0)
            status.update(clean_close=1, recovered=1)
            f[fmt.STATUS][:] = np.array([status[k] for k in fmt.STATUS_FIELDS], "<i8")
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: cannot recover recording ({_short(exc)})") from None
    return RecoveryReport(n, discarded, True, None if backup is None else Path(backup),
                          time.perf_counter() - t0)
