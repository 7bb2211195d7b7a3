"""Patients and visits (issue 15, part 4): the lab database, trends flagged only beyond
test-retest variability, de-identified exports, bad inputs, schema upgrades.

The simulated patient: the same right hand (``nerve_sim``, one seed) studied twice with
``ionm-station ncs``; at the second visit the median nerve's distal motor conduction is 15 %
slower and its CMAP 10 % smaller. Each visit also has a tibialis anterior needle study
(a minimal ``muap`` result, :data:`NEEDLE`). Everything is stored through the command line.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ionm_station.cli import main
from ionm_station.lab import nerve_sim
from ionm_station.lab import patients as pt

PATIENT_ID = "MRN-4711-X"
NAME = "Janette Quorra Doeberg"
BIRTH = "1961-02-03"
OPERATOR = "Robbin Smithers"
DATES = ("2024-01-10", "2024-03-20")
#: Every identifier that must not be in a de-identified export.
IDENTIFIERS = (PATIENT_ID, NAME, "Janette", "Quorra", "Doeberg", BIRTH, OPERATOR, "Robbin",
               "Smithers", *DATES)
LATENCY_FACTOR, AMPLITUDE_FACTOR = 1.15, 0.90
#: The needle studies: minimal `muap` results (the summary trends read; values chosen here) —
#: mean duration +11 % (within the 22 % limit), mean amplitude +50 % (no published limit).
NEEDLE = {v: {"muscle": "tibialis anterior", "muaps": [], "spontaneous": [],
              "summary": {"n_muaps": n, "mean_amplitude_uv": amp, "mean_duration_ms": dur,
                          "polyphasic_fraction": 0.1, "pattern": "normal", "reasons": []}}
          for v, n, amp, dur in ((1, 22, 600.0, 9.0), (2, 24, 900.0, 9.99))}


def _slower_median(draw):
    """nerve_sim's physiology with the median's distal motor latency × 1.15, CMAP × 0.90."""
    def drawn(rng, nerve_type):
        nerves = draw(rng, nerve_type)
        m = nerves["median"]
        distal = m["distal_mm"] / m["distal_cv"]
        m["distal_cv"] = m["distal_mm"] / (distal * LATENCY_FACTOR)
        m["terminal_ms"] *= LATENCY_FACTOR
        m["amp_uv"] *= AMPLITUDE_FACTOR
        return nerves
    return drawn


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _ok(capsys, *argv) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict:
    """The database of the simulated patient: two visits, an NCS and a needle study each."""
    folder = tmp_path_factory.mktemp("lab")
    db = folder / "lab.sqlite"

    def run(*args):
        assert main([str(a) for a in args]) == 0, args

    run("patient", "add", "--id", PATIENT_ID, "--name", NAME, "--birth-date", BIRTH,
        "--sex", "F", "--notes", f"{NAME} referred for hand numbness", "--db", db)
    mp = pytest.MonkeyPatch()
    try:
        for visit, date in enumerate(DATES, start=1):
            run("visit", "add", PATIENT_ID, "--date", date, "--operator", OPERATOR,
                "--notes", f"Janette reports tingling (visit {visit})", "--db", db)
            if visit == 2:
                mp.setattr(nerve_sim, "_draw", _slower_median(nerve_sim._draw))
            study = nerve_sim.simulate("normal", seed=31)
            # file names carry the patient's name, as clinics' often do
            desc = nerve_sim.write_study(study, folder / f"doeberg_janette_{visit}.ncs.toml")
            ncs_json = folder / f"doeberg_ncs_{visit}.json"
            run("ncs", desc, "--json", ncs_json)
            run("study", "add", visit, "--kind", "ncs", "--json", ncs_json, "--db", db)
            doc = {"file": str(folder / "doeberg_ta.edf"), "channel": "TA", **NEEDLE[visit]}
            needle_json = folder / f"doeberg_needle_{visit}.json"
            needle_json.write_text(json.dumps(doc))
            run("study", "add", visit, "--kind", "needle", "--json", needle_json,
                "--site", "tibialis anterior L", "--db", db)
    finally:
        mp.undo()
    return {"db": db, "folder": folder}


def _trend(conn, subject, measure) -> pt.Trend:
    patient = pt.get_patient(conn, PATIENT_ID)
    return next(t for t in pt.trends(conn, patient) if (t.subject, t.measure) == (subject, measure))


def test_latency_worse_15_percent_flagged_amplitude_10_percent_not(lab: dict) -> None:
    db = pt.open_db(lab["db"])
    try:
        lat = _trend(db.conn, "median motor R", "distal_latency_ms")
        amp = _trend(db.conn, "median motor R", "amplitude_mv")
        assert [p.date for p in lat.points] == list(DATES)
        (c,) = lat.changes
        assert c.change_pct == pytest.approx(15.0, abs=4.0)
        assert c.flagged and c.direction == "worse"
        (c,) = amp.changes
        assert c.change_pct == pytest.approx(-10.0, abs=6.0)
        assert not c.flagged and c.direction == "worse"
        assert "within test-retest variability" in c.why
        # nothing else changed beyond its limit (the ulnar nerve is the same hand's control)
        flagged = [(t.subject, t.measure) for t in pt.trends(db.conn, pt.get_patient(
            db.conn, PATIENT_ID)) for c in t.flagged]
        assert flagged == [("median motor R", "distal_latency_ms")]
        needle = _trend(db.conn, "tibialis anterior L", "mean_duration_ms")
        assert needle.changes[0].change_pct == pytest.approx(11.0)
        assert not needle.changes[0].flagged and needle.variability.limit_pct == 22.0
        needle = _trend(db.conn, "tibialis anterior L", "mean_amplitude_uv")
        assert needle.changes[0].change_pct == pytest.approx(50.0)
        assert not needle.changes[0].flagged and "no published" in needle.changes[0].why
        ulnar = _trend(db.conn, "ulnar motor R", "distal_latency_ms")
        assert abs(ulnar.changes[0].change_pct) < 1.0
    finally:
        db.close()


def test_flag_rule_at_the_limit() -> None:
    var = pt.load_variability()["distal_latency_ms"]
    a = pt.Point(1, "2024-01-01", 0, 4.0)
    assert not pt._compare("previous", a, pt.Point(2, "2024-02-01", 31, 4.0 * 1.098), var).flagged
    assert pt._compare("previous", a, pt.Point(2, "2024-02-01", 31, 4.0 * 1.099), var).flagged
    assert pt._compare("previous", a, pt.Point(2, "2024-02-01", 31, 4.0 * 0.85), var).direction \
        == "better"
    mean_amp = pt.load_variability()["mean_amplitude_uv"]
    big = pt._compare("previous", pt.Point(1, "", 0, 500.0), pt.Point(2, "", 9, 1500.0), mean_amp)
    assert not big.flagged and "no published" in big.why
    dur = pt.load_variability()["mean_duration_ms"]
    few = pt._compare("previous", pt.Point(1, "", 0, 8.0, 12), pt.Point(2, "", 9, 12.0, 25), dur)
    assert not few.flagged and "fewer than 20" in few.why
    many = pt._compare("previous", pt.Point(1, "", 0, 8.0, 22), pt.Point(2, "", 9, 12.0, 25), dur)
    assert many.flagged


def test_every_limit_names_a_source() -> None:
    for v in pt.load_variability().values():
        if v.limit_pct is not None:
            assert v.source != "no source" and v.derivation, v


def test_show_json_and_deidentified(lab: dict, tmp_path: Path, capsys) -> None:
    out = _ok(capsys, "patient", "show", PATIENT_ID, "--json", tmp_path / "full.json",
              "--db", lab["db"])
    assert PATIENT_ID in out and "flag: median motor R: distal motor latency" in out
    full = (tmp_path / "full.json").read_text()
    for word in (PATIENT_ID, NAME, BIRTH, OPERATOR, DATES[0], "doeberg_janette"):
        assert word in full  # the identified export has them (so the check below can fail)
    doc = json.loads(full)
    assert len(doc["flags"]) == 1 and doc["visits"][0]["studies"][0]["source_file"]["sha256"]

    out = _ok(capsys, "patient", "show", PATIENT_ID, "--json", tmp_path / "deid.json",
              "--deidentify", "--db", lab["db"])
    deid = (tmp_path / "deid.json").read_text()
    doc = json.loads(deid)
    for text in (out, deid):
        for word in IDENTIFIERS + ("doeberg", str(lab["folder"])):
            assert word.lower() not in text.lower(), word
    assert doc["deidentified"] and doc["patient"]["code"].startswith("P-")
    assert len(doc["flags"]) == 1 and "day 0" in doc["flags"][0]
    assert "[removed] reports tingling" in deid
    assert [v["day"] for v in doc["visits"]] == [0, 70]
    # the code finds the patient too, so de-identified work can go on
    assert doc["patient"]["code"] in _ok(capsys, "patient", "show", doc["patient"]["code"],
                                         "--deidentify", "--db", lab["db"])


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def _pdf_info(path: Path) -> str:
    return subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True,
                          check=True).stdout


def test_visit_report(lab: dict, tmp_path: Path, capsys) -> None:
    full, deid, again = tmp_path / "full.pdf", tmp_path / "deid.pdf", tmp_path / "again.pdf"
    out = _ok(capsys, "visit-report", PATIENT_ID, "--pdf", full, "--db", lab["db"])
    assert "1 flagged changes" in out
    _ok(capsys, "visit-report", PATIENT_ID, "--pdf", deid, "--deidentify", "--db", lab["db"])
    _ok(capsys, "visit-report", PATIENT_ID, "--pdf", again, "--deidentify", "--db", lab["db"])
    assert deid.read_bytes() == again.read_bytes()  # same database, same bytes
    raw = deid.read_bytes()
    for word in IDENTIFIERS:  # metadata and any uncompressed text
        assert word.encode() not in raw, word
    if shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("pdftotext/pdfinfo not installed (Debian poppler-utils): PDF text not checked")
    text, info = _pdf_text(full), _pdf_info(full)
    assert PATIENT_ID in text and OPERATOR in text and PATIENT_ID in info  # the check can fail
    assert "median motor R: distal motor latency" in text and "+15" in text
    text, info = _pdf_text(deid), _pdf_info(deid)
    for word in IDENTIFIERS + ("doeberg",):
        assert word.lower() not in text.lower(), word
        assert word.lower() not in info.lower(), word
    assert "distal motor latency" in text and "Kong X" in text
    assert "P-" in info


def _fail(capsys, *argv) -> str:
    code, out, err = _run(capsys, *argv)
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ionm-station: error: "), err
    return lines[0]


def test_bad_inputs(lab: dict, tmp_path: Path, capsys) -> None:
    db = tmp_path / "lab.sqlite"
    shutil.copy(lab["db"], db)
    assert "no patient 'NOBODY'" in _fail(capsys, "patient", "show", "NOBODY", "--db", db)
    assert "no patient" in _fail(capsys, "visit", "add", "NOBODY", "--db", db)
    assert "no visit 99" in _fail(capsys, "study", "add", 99, "--kind", "ncs", "--json",
                                  lab["folder"] / "doeberg_ncs_1.json", "--db", db)
    bad = tmp_path / "bad.json"
    bad.write_text('{"studies": [')
    assert "malformed JSON" in _fail(capsys, "study", "add", 1, "--kind", "ncs", "--json", bad,
                                     "--db", db)
    bad.write_text('{"studies": [{"name": "x", "kind": "motor", "sites": [{"amplitude_mv": "big"}]}]}')
    assert "expected a number" in _fail(capsys, "study", "add", 1, "--kind", "ncs", "--json",
                                        bad, "--db", db)
    assert "not an `ionm-station muap` result" in _fail(
        capsys, "study", "add", 1, "--kind", "needle", "--json",
        lab["folder"] / "doeberg_ncs_1.json", "--db", db)
    assert "already exists" in _fail(capsys, "patient", "add", "--id", PATIENT_ID, "--db", db)
    assert "expected a date" in _fail(capsys, "visit", "add", PATIENT_ID, "--date", "10/01/2024",
                                      "--db", db)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 40)
    assert "not an SQLite database" in _fail(capsys, "patient", "show", "X", "--db", junk)
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as c:
        c.execute("CREATE TABLE songs (title TEXT)")
    c.close()
    assert "not an ionm-station lab database" in _fail(capsys, "patient", "show", "X", "--db",
                                                       foreign)
    newer = tmp_path / "newer.sqlite"
    shutil.copy(lab["db"], newer)
    c = sqlite3.connect(newer)
    c.execute(f"PRAGMA user_version = {pt.SCHEMA_VERSION + 1}")
    c.close()
    msg = _fail(capsys, "patient", "show", PATIENT_ID, "--db", newer)
    assert "newer ionm-station" in msg and f"schema version {pt.SCHEMA_VERSION + 1}" in msg
    assert "no lab database there" in _fail(capsys, "patient", "show", "X", "--db",
                                            tmp_path / "none.sqlite")
    (tmp_path / "r.pdf").write_text("keep")
    assert "--force" in _fail(capsys, "visit-report", PATIENT_ID, "--pdf", tmp_path / "r.pdf",
                              "--db", db)
    assert (tmp_path / "r.pdf").read_text() == "keep"
    assert "is the input file" in _fail(capsys, "patient", "show", PATIENT_ID, "--json", db,
                                        "--force", "--db", db)


def test_older_schema_is_upgraded(lab: dict, tmp_path: Path, capsys) -> None:
    """A version-1 database (records, no measures table) is upgraded when opened: the measures
    are read from the results it stores, and the trends and flags are there."""
    old = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(old, isolation_level=None)
    pt.migrate(conn, to=1)
    src = sqlite3.connect(lab["db"])
    for table in ("patients", "visits", "studies"):
        rows = src.execute(f"SELECT * FROM {table}").fetchall()
        marks = ",".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    src.close()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
    code, out, err = _run(capsys, "patient", "show", PATIENT_ID, "--db", old)
    assert code == 0, err
    assert "upgraded from schema version 1 to 2" in err
    assert "flag: median motor R: distal motor latency" in out
    c = sqlite3.connect(old)
    assert c.execute("PRAGMA user_version").fetchone()[0] == pt.SCHEMA_VERSION
    c.close()
    code, out, err = _run(capsys, "patient", "show", PATIENT_ID, "--db", old)
    assert code == 0 and "upgraded" not in err


def test_database_settings(lab: dict) -> None:
    db = pt.open_db(lab["db"])
    try:
        c = db.conn
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):
            c.execute("INSERT INTO visits (patient, date) VALUES (999, '2024-01-01')")
        row = c.execute("SELECT source_path, source_sha256, result_sha256 FROM studies "
                        "WHERE kind = 'ncs' ORDER BY pk LIMIT 1").fetchone()
        assert row[0].endswith("doeberg_janette_1.h5")
        assert row[1] == pt.sha256_file(row[0]) and len(row[2]) == 64
    finally:
        db.close()
