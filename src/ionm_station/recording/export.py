"""Exchange: a recording as EDF+ (events as annotations), and a summary of any signal file.

EDF+ stores 16-bit samples: the export uses the amplifier range (± ``range_uv``) as physical
range, so samples are quantised to 2 × range / 65535 µV (0.15 µV at ± 5000 µV). NaN gaps become
0 µV and carry a ``gap`` annotation.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

from ionm_station.errors import input_problem
from ionm_station.events import Event
from ionm_station.io.edf import EdfWriter, edf_kind, read_edf
from ionm_station.outputs import atomic_output, check_outputs
from ionm_station.recording.format import CaseMetadata, RecordingError
from ionm_station.recording.reader import being_recorded, is_hdf5, open_recording

#: Samples read from the recording and written per step (s): bounds export memory.
CHUNK_S = 10.0
EQUIPMENT = "IONM_Station"
#: Event data keys shown in annotation texts, in this order.
ANNOTATION_KEYS = ("text", "current_ma", "peak_uv", "train_type", "message", "samples")


def _subfield(text: str) -> str:
    """An EDF+ header subfield: printable ASCII, no spaces (``_``), ``X`` when unknown."""
    clean = "".join(c if 32 < ord(c) < 127 else "_" for c in text.strip().replace(" ", "_"))
    return clean or "X"


def _start(case: CaseMetadata) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(case.start_time) if case.start_time else None
    except ValueError:
        return None


def _header_fields(case: CaseMetadata, deidentify: bool) -> dict[str, Any]:
    """EDF+ patient / recording identification and start; de-identified: 'X' and no start
    (written as 01.01.85 00.00.00)."""
    start = None if deidentify else _start(case)
    patient = "X X X X" if deidentify else f"{_subfield(case.patient_id)} X X X"
    date = start.strftime("%d-%b-%Y").upper() if start else "X"
    recording = (f"Startdate {date} X {_subfield(case.operator)} {EQUIPMENT}"
                 f" {_subfield(case.procedure)}")
    return {"patient": patient, "recording": recording, "start": start}


def annotation_text(event: Event, labels: tuple[str, ...]) -> str:
    """Short EDF+ annotation text: kind, channels and the main details of ``event``."""
    parts = [event.kind]
    if event.channels:
        parts.append(",".join(labels[c] if 0 <= c < len(labels) else str(c)
                              for c in event.channels))
    parts += [f"{k}={event.data[k]}" for k in ANNOTATION_KEYS if k in event.data]
    return " ".join(str(p) for p in parts)


def export_edf(recording_path: str | Path, out_edf: str | Path, deidentify: bool = False,
               chunk_s: float = CHUNK_S, replace: bool = False) -> dict:
    """Write ``recording_path`` as EDF+ to ``out_edf``; returns a summary (samples, events).

    Every recorded event becomes an annotation (onset s, duration s for spans, text). With
    ``deidentify`` the patient identification, start date and start time are blanked. The
    samples are streamed ``chunk_s`` at a time (:class:`EdfWriter`), so memory stays bounded
    whatever the recording length. The output is written beside its final name and renamed
    when complete (:func:`~ionm_station.outputs.atomic_output`): it never replaces the
    recording, and an existing file only with ``replace``.

    Raises:
        OutputError: ``out_edf`` is the recording, a directory, or exists (without ``replace``).
        RecordingError: the recording cannot be read or the EDF+ cannot be written.
    """
    out = Path(out_edf)
    check_outputs({"": out}, [recording_path], force=replace)
    with open_recording(recording_path) as rec, atomic_output(out, replace) as tmp:
        fs = rec.info.sample_rate_hz
        notes = [(e.start / fs, (e.stop - e.start) / fs if e.stop and e.stop > e.start else None,
                  annotation_text(e, rec.info.labels))
                 for e in sorted(rec.events, key=lambda e: e.start) if e.start >= 0]
        try:
            writer = EdfWriter(tmp, fs, list(rec.info.labels), rec.info.range_uv, notes,
                               n_samples=rec.n_samples, **_header_fields(rec.case, deidentify))
        except (ValueError, OSError) as exc:
            raise RecordingError(f"{out}: cannot export: {exc}") from None
        step = max(writer.per_record, round(chunk_s * fs) // writer.per_record
                   * writer.per_record)
        try:
            for i in range(0, rec.n_samples, step):
                writer.write(rec.read(i, i + step))
        except BaseException:
            writer.abort()
            raise
        try:
            writer.close()
        except (ValueError, OSError) as exc:
            raise RecordingError(f"{out}: cannot export: {exc}") from None
        n = rec.n_samples
    return {"samples": int(n), "annotations": len(notes), "path": str(out)}


def info(path: str | Path, deidentify: bool = False) -> dict[str, Any]:
    """Summary of a recording of ours or an EDF/EDF+/BDF file (JSON-ready).

    Keys: path, kind, fs, channels (labels), n_channels, n_samples, duration_s, events,
    events_by_kind, clean_close (None for EDF/BDF), file_size_bytes; for our recordings also
    state (``closed``, ``recovered``, ``being_recorded`` by a running station, or ``killed``:
    never closed and no station writing it), last_written_s_ago, format_version, compression,
    recovered, counters and (unless ``deidentify``) case.
    """
    path = Path(path)
    problem = input_problem(path)
    if problem:
        raise RecordingError(f"{path}: {problem}")
    size = os.path.getsize(path)
    if is_hdf5(path):
        with open_recording(path) as rec:
            by_kind: dict[str, int] = {}
            for e in rec.events:
                by_kind[e.kind] = by_kind.get(e.kind, 0) + 1
            if rec.clean_close:
                state = "recovered" if rec.recovered else "closed"
            else:
                state = "being_recorded" if being_recorded(path) else "killed"
            doc: dict[str, Any] = {
                "path": str(path), "kind": "ionm-station-hdf5", "state": state,
                "last_written_s_ago": round(max(0.0, time.time() - rec.last_flush_unix_s), 3),
                "fs": rec.info.sample_rate_hz, "channels": list(rec.info.labels),
                "n_channels": rec.info.n_channels, "n_samples": rec.n_samples,
                "duration_s": rec.duration_s, "events": len(rec.events),
                "events_by_kind": by_kind, "clean_close": rec.clean_close,
                "recovered": rec.recovered, "file_size_bytes": size,
                "compression": rec.compression, "format_version": rec.format_version, "counters": rec.counters,
                "montage": rec.montage.name}
            if not deidentify:
                doc["case"] = rec.case.to_dict()
            return doc
    kind = edf_kind(path)
    if kind is None:
        raise RecordingError(f"{path}: neither an IONM Station recording (HDF5) nor an EDF/BDF file")
    content = read_edf(path)
    n = int(content.data.shape[0])
    return {"path": str(path), "kind": kind, "fs": content.sample_rate_hz,
            "channels": content.labels, "n_channels": len(content.labels), "n_samples": n,
            "duration_s": n / content.sample_rate_hz, "events": len(content.annotations),
            "events_by_kind": {"annotation": len(content.annotations)} if content.annotations
            else {}, "clean_close": None, "file_size_bytes": size, "skipped": content.skipped}
