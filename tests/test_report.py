"""The case report and the event log of recorded simulated cases: the lumbar demo and the
pedicle-screw case with threshold hunts.

The PDF's text (``pdftotext``) must hold every alarm and screw threshold of the scenarios'
ground truth; every page renders (``pdftoppm``); the de-identified report holds no patient
identifier in its text, metadata or bytes; the same recording gives the same bytes twice; a
truncated or foreign file is one line and exit 2. Without poppler-utils the PDF text and page
checks skip (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from ionm_station.cli import main
from support.cases import (
    CASE,
    HUNTS,
    LUMBAR,
    SCREWS,
    SURGEON,
    record_case,
    true_alarms,
    true_thresholds,
)

SECONDS = 110.0  # the lumbar demo up to its second A-train
SCREW_SECONDS = 80.0  # the screw case: three screws and two TOFs
POPPLER = shutil.which("pdftotext") is not None and shutil.which("pdftoppm") is not None
needs_poppler = pytest.mark.skipif(not POPPLER, reason="pdftotext/pdftoppm (Debian "
                                   "poppler-utils) not installed: PDF text and pages not checked")
#: What identifies the patient in the recorded case: none may be in a de-identified report.
IDENTIFIERS = ("4711", "SMITH", "Jane", "Roe", "2025-03-01", "08:15", "MRN")


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded lumbar case, named after the patient (the file name must not leak)."""
    path = tmp_path_factory.mktemp("case") / "MRN-4711-SMITH.h5"
    record_case(path, LUMBAR, SECONDS)
    return path


@pytest.fixture(scope="module")
def screw_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recorded screw case with its hunts, and its report."""
    path = tmp_path_factory.mktemp("screws") / "screws.h5"
    record_case(path, SCREWS, SCREW_SECONDS, HUNTS)
    assert main(["report", str(path), "--pdf", str(path.with_suffix(".pdf"))]) == 0
    return path


@pytest.fixture(scope="module")
def reports(case: Path) -> dict[str, Path]:
    out = {}
    for name, extra in (("full", []), ("deid", ["--deidentify"])):
        out[name] = case.with_name(f"{name}.pdf")
        assert main(["report", str(case), "--pdf", str(out[name]), *extra]) == 0
    return out


def pdf_text(path: Path, layout: bool = True) -> str:
    """The PDF's text: laid out as on the page (table rows on lines), or in the order it is
    drawn (each table cell's lines together; whitespace made single spaces)."""
    text = subprocess.run(["pdftotext", "-layout" if layout else "-raw", str(path), "-"],
                          capture_output=True, text=True, check=True).stdout
    return text if layout else " ".join(text.split())


def pdf_plain_bytes(raw: bytes) -> bytes:
    """A PDF's bytes with each stream decoded (Flate, or ASCII85 then Flate; one that is
    neither is kept as it is): what its streams hold, not compressed bytes, where three
    letters of a name turn up by chance (``Roe`` did, 1 run in ~50)."""
    def decoded(m: re.Match[bytes]) -> bytes:
        data = m.group(1)
        for decode in (zlib.decompress,
                       lambda d: zlib.decompress(base64.a85decode(d.strip(), adobe=True))):
            try:
                return decode(data)
            except (zlib.error, ValueError):
                continue
        return data
    return re.sub(rb"(?s)stream\r?\n(.*?)(?:\r?\n)?endstream", decoded, raw)


def section(text: str, start: str, end: str) -> str:
    """The text between two headings (first occurrences)."""
    a = text.index(f" {start}\n")
    return text[a:text.index(f" {end}\n", a)]


def seconds_of(clock: str) -> float:
    h, m, s = clock.split(":")
    return 3600 * int(h) + 60 * int(m) + float(s)


@needs_poppler
def test_report_holds_every_true_alarm(reports: dict[str, Path]) -> None:
    text = pdf_text(reports["full"])
    alarms = section(text, "Alarms", "Timeline")
    rows = [(m.group(2), seconds_of(m.group(1)))
            for m in re.finditer(r"(\d+:\d\d:\d\d\.\d)\s+([LS]\d-[LR])\s", alarms)]
    truth = true_alarms(LUMBAR, SECONDS)
    assert len(truth) == 2
    for key, at_s in truth:  # raised within 0.5 s of the train's onset
        assert any(k == key and 0.0 <= t - at_s <= 0.5 for k, t in rows), (key, at_s, rows)
    cells = pdf_text(reports["full"], layout=False)
    alarm_cells = cells[cells.index("Alarms Time"):cells.index("Timeline")]
    assert "by Jane Roe" in alarm_cells  # acknowledged by the operator ...
    assert SURGEON in alarm_cells  # ... and the marker that followed
    for heading in ("Summary", "Signal quality", "Baselines", "Trends", "Waveform snapshots",
                    "Event log"):
        assert f" {heading}\n" in text
    assert "MRN-4711-SMITH" in text and "Jane Roe" in text and "L4-S1 PLIF" in text
    summary = section(text, "Summary", "Signal quality")
    assert re.search(r"monitored .* not monitored", summary)
    log = cells[cells.index("Event log Time"):]
    assert "baseline: ok" in log and "lead off: L4-R VastMed" in log and SURGEON in log


@needs_poppler
def test_report_holds_every_true_screw_threshold_and_tof(screw_case: Path) -> None:
    text = pdf_text(screw_case.with_suffix(".pdf"))
    screws = section(text, "Pedicle screws (triggered EMG)", "Train-of-four")
    found = {f"{lv}-{side}": (float(ma), band) for lv, side, ma, band in re.findall(
        r"\d+:\d\d:\d\d\.\d\s+([LS]\d)\s+([LR])\s+(\d+\.\d\d)\s+(\w+ breach)", screws)}
    truth = true_thresholds()
    assert set(found) == set(truth)
    for key, true_ma in truth.items():
        assert abs(found[key][0] - true_ma) <= 0.5, (key, found)
    assert [found[k][1] for k in HUNTS] == ["likely breach", "possible breach", "no breach"]
    tof = section(text, "Train-of-four", "Trends")
    assert re.search(r"4/4\s+0\.\d\d", tof) and "2/4" in tof and "neuromuscular blockade" in tof
    cells = pdf_text(screw_case.with_suffix(".pdf"), layout=False)
    snapshots = cells[cells.index("Waveform snapshots"):cells.index("Event log Time")]
    for key in HUNTS:  # a stimulus-locked snapshot of every screw test, captioned
        assert re.search(rf"\(\d\) screw {key} \d+:\d\d:\d\d\.\d", snapshots), key


@needs_poppler
def test_every_page_renders(reports: dict[str, Path], tmp_path: Path) -> None:
    info = subprocess.run(["pdfinfo", str(reports["full"])], capture_output=True, text=True,
                          check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 5
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(reports["full"]), str(tmp_path / "p")],
                   check=True)
    images = sorted(tmp_path.glob("p-*.png"))
    assert len(images) == pages
    for image in images:  # every page has ink on it, above its footer line
        grey = np.asarray(Image.open(image).convert("L"))
        assert (grey[: int(0.9 * len(grey))] < 128).mean() > 0.0002, image.name


@needs_poppler
def test_deidentified_report_holds_no_identifier(reports: dict[str, Path]) -> None:
    path = reports["deid"]
    text = pdf_text(path)
    meta = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                          check=True).stdout
    raw = pdf_plain_bytes(path.read_bytes())
    for word in IDENTIFIERS:
        assert word.lower() not in text.lower(), word
        assert word.lower() not in meta.lower(), word
        assert word.encode() not in raw, word
    assert re.search(r"Patient\s+case [0-9A-F]{10}", text)
    assert "withheld (de-identified)" in text
    assert SURGEON in pdf_text(path, layout=False)  # clinical content stays


def test_same_recording_gives_the_same_bytes(case: Path, reports: dict[str, Path]) -> None:
    for name, extra in (("full", []), ("deid", ["--deidentify"])):
        again = case.with_name(f"{name}-again.pdf")
        assert main(["report", str(case), "--pdf", str(again), *extra]) == 0
        assert again.read_bytes() == reports[name].read_bytes(), name


def test_an_existing_report_needs_force(case: Path, reports: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = reports["full"].read_bytes()
    assert main(["report", str(case), "--pdf", str(reports["full"])]) == 2
    err = capsys.readouterr().err
    assert "file exists (use --force" in err and err.count("\n") == 1
    assert main(["report", str(case), "--pdf", str(case)]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert reports["full"].read_bytes() == before


def test_events_command_lists_filters_and_writes_json(case: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", str(case)]) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = {line.split()[1] for line in lines}
    assert {"alarm", "marker", "cautery", "lead_off", "tof", "baseline"} <= kinds
    acked = [line for line in lines if "acknowledged" in line]
    assert len(acked) == 1 and "L5-L" in acked[0] and "by Jane Roe" in acked[0]
    out = tmp_path / "events.json"
    assert main(["events", str(case), "--kind", "alarm,marker", "--root", "L5-L",
                 "--json", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    doc = json.loads(out.read_text())
    assert len(doc) == len(shown) and {e["kind"] for e in doc} == {"alarm", "marker"}
    assert all(e["tiles"] == ["L5-L"] or not e["tiles"] for e in doc)
    assert any(e["text"] == SURGEON for e in doc)
    with pytest.raises(SystemExit) as exit_:
        main(["events", str(case), "--kind", "alarms"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown kind 'alarms'" in err and err.count("\n") == 1
    assert main(["events", str(case), "--root", "T9"]) == 2
    assert "no such root" in capsys.readouterr().err


def test_recording_carries_quality_baselines_and_screws(case: Path) -> None:
    from ionm_station.recording import open_recording

    with open_recording(case) as rec:
        kinds = [e.kind for e in rec.events]
        base = [e for e in rec.events if e.kind == "baseline"]
        quality = [e for e in rec.events if e.kind == "signal_quality"]
        assert {e.data["tile"] for e in base} == set(rec.montage.tile_keys())
        assert all(e.data["ok"] for e in base)  # the demo's electrodes are all on at the start
        assert {e.data["check"] for e in quality} == {"baseline", "periodic"}
        fs = rec.info.sample_rate_hz
        periodic = sorted({e.start for e in quality if e.data["check"] == "periodic"})
        assert len(periodic) >= 2 and np.diff(periodic).min() >= 59 * fs
        off = [e for e in quality if not e.data["ok"]]  # L4-R VastMed is off from 60 to 68 s
        assert all(rec.montage.channels[e.channels[0]].label == "L4-R VastMed"
                   and e.data["cause"] == "lead off" for e in off)
        assert "screw_result" not in kinds  # no hunt in this case


def test_screw_case_records_each_hunt(screw_case: Path) -> None:
    from ionm_station.recording import open_recording

    with open_recording(screw_case) as rec:
        results = [e.data for e in rec.events if e.kind == "screw_result"]
        assert [f"{d['level']}-{d['side']}" for d in results] == list(HUNTS)


def test_truncated_or_foreign_files_are_one_line(case: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.h5"
    cut.write_bytes(case.read_bytes()[:200_000])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not a recording at all\n" * 10)
    for path in (cut, foreign, junk, tmp_path / "missing.h5"):
        for argv in (["report", str(path), "--pdf", str(tmp_path / "out.pdf")],
                     ["events", str(path)]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert err.startswith("ionm-station: error: ") and err.count("\n") == 1, err
            assert "Traceback" not in err
        assert not (tmp_path / "out.pdf").exists()
    assert CASE.patient_id  # the fixture's case is the one these files were cut from
