"""What the EMG lab window's worker thread runs: plain Python, no Qt.

Every number the window shows comes from the headless cores, called exactly as the commands
call them: ``needle_job`` runs ``load_needle`` and ``analyse`` of ``ionm-station muap`` and
builds the same JSON document; ``ncs_job`` runs ``ncs.analyze`` of ``ionm-station ncs``.
Beside the documents they return only what is drawn: the aligned discharges of each MUAP (cut
from the measurement band at the times the analysis found) and the cleaned, averaged sweep of
each nerve conduction site (the sweeps of an F-wave study), cleaned by the same
``blank_and_filter`` with the same constants as the measurement. The exports write the
commands' files through the commands' writers (``outputs``, ``write_muap_pdf``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ionm_station.errors import input_problem

#: At most this many discharges of a unit are drawn over its template.
MAX_DISCHARGES_DRAWN = 12


@dataclass
class NeedleView:
    """One needle channel analysed: the ``muap --json`` document, the result it was made of,
    the channels of the file, and per MUAP (in the document's order) the discharges drawn
    (rows, µV, baseline removed) with their time axis (ms from the alignment)."""

    path: Path
    channels: list[str]
    doc: dict[str, Any]
    result: Any  # lab.needle.NeedleResult
    discharges: list[np.ndarray] = field(default_factory=list)
    templates: list[np.ndarray] = field(default_factory=list)
    t_ms: list[np.ndarray] = field(default_factory=list)
    #: (onset, offset) of each template in ms from the alignment (the measure's own indices).
    limits_ms: list[tuple[float, float]] = field(default_factory=list)


def needle_channels(path: Path) -> list[str]:
    """The channel labels of a needle recording (EDF/BDF, WFDB header, .h5); one-line errors
    as ``muap`` gives them."""
    from ionm_station.commands.muap_command import NeedleInputError

    problem = input_problem(path)
    if problem:
        raise NeedleInputError(f"{path}: {problem}")
    if path.suffix.lower() in (".hea", ".dat") and path.with_suffix(".hea").is_file():
        import wfdb

        try:
            header = wfdb.rdheader(str(path.with_suffix("")))
        except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise NeedleInputError(f"{path}: not a readable WFDB record ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
                                   ) from None
        return list(header.sig_name or [])
    from ionm_station.recording import Recording
    from ionm_station.sources.replay import open_media

    media = open_media(path)
    try:
        return list(media.info.labels)
    finally:
        if isinstance(media, Recording):
            media.close()


def needle_job(path: str | Path, channel: str | None = None,
               muscle: str | None = None) -> NeedleView:
    """Analyse one channel (None: the only one, or the first of several) of ``path`` for
    ``muscle`` (None: named by the channel label or the WFDB header, as ``muap`` does)."""
    from ionm_station.commands.muap_command import load_needle
    from ionm_station.lab.muap import bands
    from ionm_station.lab.needle import analyse
    from ionm_station.lab.reference import muscle_in_text

    path = Path(path)
    channels = needle_channels(path)
    if channel is None and len(channels) > 1:
        channel = channels[0]
    fs, label, x, notes, text = load_needle(path, channel)
    result = analyse(x, fs, muscle or muscle_in_text(text), notes)
    doc = {"file": str(path), "channel": label, **result.to_json()}
    view = NeedleView(path, channels, doc, result)
    y, _ = bands(x, fs)  # the measurement band the templates were cut from
    for unit in result.muaps:
        half = unit.centre
        times = unit.times[(unit.times >= half) & (unit.times < y.size - half - 1)]
        pick = times[np.unique(np.linspace(0, times.size - 1,
                                           min(MAX_DISCHARGES_DRAWN, times.size)).astype(int))]
        rows = y[pick[:, None] + np.arange(-half, half + 1)[None, :]]
        ends = np.c_[rows[:, :half // 5], rows[:, -(half // 5):]]
        view.discharges.append(rows - np.median(ends, axis=1)[:, None])
        view.templates.append(unit.template_uv)
        t = (np.arange(unit.template_uv.size) - half) * 1000.0 / fs
        view.t_ms.append(t)
        view.limits_ms.append((float(t[unit.shape.onset]),
                               float(t[min(unit.shape.offset, t.size - 1)])))
    return view


def write_needle_exports(view: NeedleView, json_path: Path | None = None,
                         pdf_path: Path | None = None, replace: bool = False) -> None:
    """Write ``muap``'s JSON and/or PDF of ``view`` (atomically, as the command does)."""
    from ionm_station.lab.muap_pdf import write_muap_pdf
    from ionm_station.outputs import atomic_output, check_outputs

    check_outputs({"": json_path, " ": pdf_path}, [view.path], force=replace)
    with contextlib.ExitStack() as outputs:
        if json_path is not None:
            tmp = outputs.enter_context(atomic_output(json_path, replace=replace))
            tmp.write_text(json.dumps(view.doc, indent=1), encoding="utf-8")
        if pdf_path is not None:
            pdf_tmp = outputs.enter_context(atomic_output(pdf_path, replace=replace))
            write_muap_pdf(pdf_tmp, view.doc, view.result)


# --- nerve conduction ---------------------------------------------------------------------

#: Time shown per study kind (ms from the stimulus).
NCS_WINDOW_MS = {"motor": (-2.0, 30.0), "sensory": (-2.0, 12.0), "f_wave": (-2.0, 60.0)}


@dataclass
class SiteTrace:
    """What is drawn of one site: the cleaned averaged sweep (µV, 1-D; baseline at 0) or, for
    F-waves, every cleaned sweep (stimuli × samples); time axis in ms from the stimulus."""

    study: str
    kind: str
    site: str
    t_ms: np.ndarray
    y_uv: np.ndarray


@dataclass
class NcsView:
    """A nerve conduction study: the ``ncs --json`` document and the traces drawn."""

    path: Path
    doc: dict[str, Any]
    traces: list[SiteTrace]


def ncs_traces(description_path: Path) -> list[SiteTrace]:
    """Each site's cleaned sweep(s), as :func:`ionm_station.lab.ncs.measure_study` cleans
    them."""
    from ionm_station.lab import ncs
    from ionm_station.recording import open_recording
    from ionm_station.triggered.cmap import blank_and_filter

    desc = ncs.load_description(description_path)
    out: list[SiteTrace] = []
    with open_recording(desc.recording) as rec:
        fs = rec.info.sample_rate_hz
        labels = list(rec.info.labels)
        by_site = ncs.stimuli_by_site(rec.events)
        s = int(ncs.PRE_MS * 1e-3 * fs)
        for study in desc.studies:
            lo, hi = NCS_WINDOW_MS[study.kind]
            keep = slice(s + int(lo * 1e-3 * fs), s + int(hi * 1e-3 * fs))
            for site in study.sites:
                stimuli = by_site.get(site.site)
                if not stimuli or study.channel not in labels:
                    continue  # analyze() has said why already
                raw = ncs._sweeps(rec, labels.index(study.channel), stimuli, fs,
                                  str(description_path))
                clean = blank_and_filter(raw, s, fs, ncs.BLANK_MS, ncs.BANDS[study.kind])
                clean = clean - np.median(clean[s - int(0.025 * fs):s - int(0.001 * fs)], axis=0)
                y = clean.T if study.kind == "f_wave" else clean.mean(axis=1)
                t = (np.arange(clean.shape[0]) - s) * 1000.0 / fs
                out.append(SiteTrace(study.name, study.kind, site.site, t[keep],
                                     y[..., keep]))
    return out


def ncs_job(path: str | Path) -> NcsView:
    """Measure a study description as ``ionm-station ncs`` does, and its traces."""
    from ionm_station.lab.ncs import NcsError, analyze

    path = Path(path)
    problem = input_problem(path)
    if problem:
        raise NcsError(f"{path}: {problem}")
    doc = analyze(path)
    return NcsView(path, doc, ncs_traces(path))


def write_ncs_json(view: NcsView, json_path: Path, replace: bool = False) -> None:
    """Write ``ncs``'s JSON of ``view`` (atomically, as the command does)."""
    from ionm_station.outputs import check_outputs, write_text

    check_outputs({"": json_path}, [view.path, Path(view.doc["recording"])], force=replace)
    write_text(json_path, json.dumps(view.doc, indent=1, ensure_ascii=False) + "\n",
               replace=replace)
