"""The case report: ``ionm-station report CASE.h5 --pdf OUT.pdf [--deidentify]``.

:func:`write_report` reads one recording (events whole, samples by ranged reads around alarms
and stimuli) and writes its PDF atomically (:mod:`ionm_station.outputs`). The contents are in
``docs/report.md``; :mod:`.case` reads what the report says from the events, :mod:`.figures`
draws the figures (matplotlib, Agg), :mod:`.document` lays out the PDF (reportlab).
"""

from __future__ import annotations

from pathlib import Path

from ionm_station.outputs import atomic_output, check_outputs
from ionm_station.recording.reader import open_recording
from ionm_station.report.document import CaseReport, ReportResult

__all__ = ["CaseReport", "ReportResult", "write_report"]


def write_report(recording: str | Path, pdf: str | Path, deidentify: bool = False,
                 replace: bool = False) -> ReportResult:
    """Write the case report of ``recording`` to ``pdf``.

    The PDF is written beside its name and renamed when complete; an existing file is replaced
    only with ``replace``, and never the recording itself. A recording still being recorded is
    reported up to its writer's last flush.

    Raises:
        OutputError: ``pdf`` is the recording, a directory, or exists (without ``replace``).
        RecordingError: the recording is missing, foreign, truncated or damaged.
    """
    check_outputs({"": pdf}, [recording], force=replace)
    with open_recording(recording) as rec, atomic_output(pdf, replace) as tmp:
        return CaseReport(rec, deidentify).build(tmp)
