"""Constants and small shared types of the IONM Station recording format (HDF5).

The layout is specified in ``docs/recording-format.md``; this module is its single source of
names and numbers. Writer, reader and recovery all import from here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ionm_station.errors import IonmError
from ionm_station.events import Event
from ionm_station.montage import Montage, MontageChannel

#: Value of the root attribute ``format``: tells our files from foreign HDF5 files.
FORMAT_NAME = "ionm-station-recording"
#: Version of the layout below; readers refuse files with a newer major version.
FORMAT_VERSION = 1

#: Dataset of samples: float32 (n_samples, n_channels) µV, NaN = missing (gap).
SAMPLES = "samples"
#: JSON-lines byte streams (uint8, 1-D, resizable): one JSON object per line, ``\n`` separated.
EVENTS = "events"
SETTINGS = "settings"
#: int64 vector of the counters below, rewritten at every flush.
STATUS = "status"
#: int64 vector of per-source counters, rewritten at every flush.
COUNTERS = "counters"

#: Fields of the ``status`` vector, in order. Lengths are *committed* lengths: what the last
#: flush made durable. Datasets may be longer after a crash; readers use these lengths.
STATUS_FIELDS = ("samples", "event_bytes", "settings_bytes", "clean_close", "recovered",
                 "last_flush_unix_ms")
#: Fields of the ``counters`` vector, in order (all per channel where they count samples).
COUNTER_FIELDS = ("samples", "dropped", "crc_errors", "resyncs", "reconnects", "gaps",
                  "gap_samples", "recorder_gaps", "recorder_lost_samples")

#: Samples per HDF5 chunk, in seconds of signal (all channels in one chunk).
CHUNK_S = 1.0
#: Bytes per chunk of the JSON-lines streams.
TEXT_CHUNK_BYTES = 16384
#: Longest time between two flushes of a recorder (s); ≤ 1 s of data is lost on a crash.
FLUSH_INTERVAL_S = 0.5
#: Compression of the samples dataset: ``None`` (default, see the format document for the
#: measurements behind the choice), ``"lzf"`` or ``"gzip"`` (level 1); shuffle goes with both.
COMPRESSIONS = (None, "lzf", "gzip")
DEFAULT_COMPRESSION: str | None = None


class RecordingError(IonmError):
    """A recording cannot be written, opened or read; one line naming the file and problem."""


@dataclass(frozen=True)
class CaseMetadata:
    """Who and what a recording is about (the patient fields are blanked by de-identification).

    Attributes:
        patient_id: hospital patient identifier (free text, may be empty).
        procedure: e.g. ``"L4-S1 PLIF"``.
        operator: neurophysiologist / technician running the case.
        start_time: case start, ISO 8601 with offset, e.g. ``"2025-03-01T08:15:00+01:00"``.
    """

    patient_id: str = ""
    procedure: str = ""
    operator: str = ""
    start_time: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @staticmethod
    def from_dict(doc: dict[str, Any]) -> CaseMetadata:
        return CaseMetadata(**{k: str(doc.get(k, "")) for k in CaseMetadata.__dataclass_fields__})


@dataclass(frozen=True)
class SettingsChange:
    """Settings in force from sample ``index`` on (file-relative), set at ``host_time_s``
    (Unix time, s)."""

    index: int
    host_time_s: float
    settings: dict[str, Any]


def event_to_json(event: Event, offset: int = 0) -> str:
    """One JSON line for ``event``, its indices shifted by ``-offset`` (file-relative)."""
    doc = {"kind": event.kind, "start": event.start - offset,
           "stop": None if event.stop is None else event.stop - offset,
           "channels": list(event.channels), "data": event.data}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str)


def event_from_json(line: str) -> Event:
    """The :class:`Event` of one JSON line written by :func:`event_to_json`."""
    doc = json.loads(line)
    return Event(str(doc["kind"]), int(doc["start"]),
                 None if doc.get("stop") is None else int(doc["stop"]),
                 tuple(int(c) for c in doc.get("channels", ())), dict(doc.get("data") or {}))


def montage_to_dict(montage: Montage) -> dict[str, Any]:
    """JSON-ready montage (name, description, channels with label/muscle/root/side/threshold)."""
    return {"name": montage.name, "description": montage.description,
            "channels": [asdict(c) for c in montage.channels]}


def montage_from_dict(doc: dict[str, Any]) -> Montage:
    """Inverse of :func:`montage_to_dict`."""
    channels = tuple(MontageChannel(str(c["label"]), str(c["muscle"]), str(c["root"]),
                                    str(c["side"]), float(c["threshold_uv"]))
                     for c in doc["channels"])
    return Montage(str(doc["name"]), channels, str(doc.get("description", "")))
