"""Exchange: a recording as EDF+ (events as annotations), and a summary of any signal file.

EDF+ stores 16-bit samples: the export uses the amplifier range (± ``range_uv``) as physical
range, so samples are quantised to 2 × range / 65535 µV (0.15 µV at ± 5000 µV). NaN gaps become
0 µV and carry a ``gap`` annotation.
"""

from __future__ import annotations

import datetime
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ionm_station.errors import input_problem
from ionm_station.events import Event
from ionm_station.io.annotations import annotation_text
from ionm_station.io.edf import EdfWriter, edf_kind, edf_label
from ionm_station.outputs import atomic_output, check_outputs
from ionm_station.recording.format import CaseMetadata, RecordingError
from ionm_station.recording.reader import being_recorded, is_hdf5, open_recording
from ionm_station.sources.replay import EdfMedia

#: Samples read from the recording and written per step (s): bounds export memory.
CHUNK_S = 10.0
EQUIPMENT = "IONM_Station"


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
    """EDF+ patient / recording identification and start; de-identified: every person field
    (patient code, technician = operator) 'X' and no start (written as 01.01.85 00.00.00)."""
    start = None if deidentify else _start(case)
    patient = "X X X X" if deidentify else f"{_subfield(case.patient_id)} X X X"
    date = start.strftime("%d-%b-%Y").upper() if start else "X"
    technician = "X" if deidentify else _subfield(case.operator)
    recording = f"Startdate {date} X {technician} {EQUIPMENT} {_subfield(case.procedure)}"
    return {"patient": patient, "recording": recording, "start": start}


def export_edf(recording_path: str | Path, out_edf: str | Path, deidentify: bool = False,
               chunk_s: float = CHUNK_S, replace: bool = False) -> dict:
    """Write ``recording_path`` as EDF+ to ``out_edf``; returns a summary (samples, events).

    Every recorded event becomes an annotation (onset s, duration s for spans, and the text of
    :func:`~ionm_station.io.annotations.annotation_text`: kind, channels and every data key,
    which reads back). With ``deidentify`` the patient identification, the operator
    (technician), start date and start time are blanked. The
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
        labels = [edf_label(label) for label in rec.info.labels]
        notes = [(e.start / fs, (e.stop - e.start) / fs if e.stop and e.stop > e.start else None,
                  annotation_text(e, labels))
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


def _count_kinds(events: list[Event]) -> dict[str, int]:
    """How many events of each kind, in order of first appearance."""
    return dict(Counter(e.kind for e in events))


def info(path: str | Path, deidentify: bool = False) -> dict[str, Any]:
    """Summary of a recording of ours or an EDF/EDF+/BDF file (JSON-ready).

    Keys: path, kind, fs, channels (labels), n_channels, n_samples, duration_s, events,
    events_by_kind (an EDF+ file's annotations read back by
    :func:`~ionm_station.io.annotations.parse_annotation`), clean_close (None for EDF/BDF),
    file_size_bytes, skipped (EDF/BDF signals not read); for our recordings also
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
                "events_by_kind": _count_kinds(rec.events), "clean_close": rec.clean_close,
                "recovered": rec.recovered, "file_size_bytes": size,
                "compression": rec.compression, "format_version": rec.format_version, "counters": rec.counters,
                "montage": rec.montage.name}
            if not deidentify:
                doc["case"] = rec.case.to_dict()
            return doc
    kind = edf_kind(path)
    if kind is None:
        raise RecordingError(f"{path}: neither an IONM Station recording (HDF5) nor an EDF/BDF file")
    media = EdfMedia.load(path)
    return {"path": str(path), "kind": kind, "fs": media.info.sample_rate_hz,
            "channels": list(media.info.labels), "n_channels": media.info.n_channels,
            "n_samples": media.n_samples, "duration_s": media.n_samples / media.info.sample_rate_hz,
            "events": len(media.events), "events_by_kind": _count_kinds(media.events),
            "clean_close": None,
            "file_size_bytes": size, "skipped": media.skipped}
