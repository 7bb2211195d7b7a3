"""Patients followed over visits: a local SQLite database (stdlib :mod:`sqlite3`, no ORM).

Layout (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`, ``PRAGMA application_id`` =
:data:`APPLICATION_ID`, foreign keys on, WAL journal)::

    patients (pk, patient_id UNIQUE, name, birth_date, sex, notes, code UNIQUE)
      └─ visits (pk, patient → patients, date, operator, notes)
           └─ studies (pk, visit → visits, kind, site, result JSON, its path and SHA-256,
                       the source recording's path and SHA-256)
                └─ measures (study → studies, subject, measure, value)   [schema version 2]

``code`` is a random pseudonym given when the patient is added: de-identified exports name the
patient by it, so nothing in them is derived from an identifier. ``measures`` holds the values
followed over visits, read from each stored result by :func:`extract_measures` (a nerve's
distal latency, amplitude, velocity; a muscle's mean MUAP duration and amplitude).

Schema versions are applied in order by :data:`MIGRATIONS`, each in one transaction with the
new ``user_version``: version 1 is the records (patients, visits, studies); version 2 adds the
``measures`` table, filled from the results already stored. A database of an older version is
upgraded when opened; one of a newer version, a foreign SQLite database or a file that is not
SQLite at all is refused with one line (:class:`LabDbError`).

Trends (:func:`trends`): per subject and measure, the value at each visit; a change from the
previous visit or from the first is flagged only when larger than the measure's published
test-retest variability (``retest_variability.toml``, every limit with its source).

De-identification (:func:`export`, ``deidentify=True``): no patient ID, name, birth date,
operator, calendar date (visits are days since the first), file path or file hash; the
identifiers are also removed from free text (notes, result strings) as ``[removed]``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ionm_station.config import ConfigError, load_toml
from ionm_station.errors import IonmError

#: The layout this code writes; databases up to it are read (older ones upgraded).
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of a lab database ("IONL").
APPLICATION_ID = 0x494F4E4C
#: Study kinds (biofeedback and injection sessions are stored; no measures are read from them).
KINDS = ("needle", "ncs", "biofeedback", "injection")
VARIABILITY_FILE = "retest_variability.toml"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: What a de-identified export says instead of a withheld value.
WITHHELD = "withheld (de-identified)"
REMOVED = "[removed]"


class LabDbError(IonmError):
    """A database, patient, visit or result that cannot be used; one line naming it."""


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/ionm-station/lab.sqlite`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "ionm-station" / "lab.sqlite"


# --- schema ----------------------------------------------------------------------------------

_V1 = (
    """CREATE TABLE patients (
        pk INTEGER PRIMARY KEY,
        patient_id TEXT NOT NULL UNIQUE CHECK (length(trim(patient_id)) > 0),
        name TEXT NOT NULL DEFAULT '',
        birth_date TEXT NOT NULL DEFAULT '',
        sex TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        code TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE visits (
        pk INTEGER PRIMARY KEY,
        patient INTEGER NOT NULL REFERENCES patients(pk) ON DELETE CASCADE,
        date TEXT NOT NULL,
        operator TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX visits_by_patient ON visits(patient, date)",
    """CREATE TABLE studies (
        pk INTEGER PRIMARY KEY,
        visit INTEGER NOT NULL REFERENCES visits(pk) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('needle', 'ncs', 'biofeedback', 'injection')),
        site TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL,
        result_path TEXT,
        result_sha256 TEXT NOT NULL,
        source_path TEXT,
        source_sha256 TEXT)""",
    "CREATE INDEX studies_by_visit ON studies(visit)",
)

_V2 = (
    """CREATE TABLE measures (
        study INTEGER NOT NULL REFERENCES studies(pk) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        measure TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (study, subject, measure))""",
)


def _fill_measures(conn: sqlite3.Connection) -> None:
    """Version 2's data step: the measures of every study already stored."""
    rows = conn.execute("SELECT pk, kind, site, result FROM studies").fetchall()
    for pk, kind, site, result in rows:
        _insert_measures(conn, pk, extract_measures(kind, json.loads(result), site))


#: Step i brings a database from version i to i + 1: SQL statements, then an optional data step.
MIGRATIONS: tuple[tuple[Sequence[str], Callable[[sqlite3.Connection], None] | None], ...] = (
    (_V1, None),
    (_V2, _fill_measures),
)
assert len(MIGRATIONS) == SCHEMA_VERSION


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection, to: int = SCHEMA_VERSION) -> int:
    """Apply the schema steps from the database's version up to ``to``, each step in one
    transaction with its ``user_version``; returns the version the database had."""
    start = conn.execute("PRAGMA user_version").fetchone()[0]
    for version in range(start, to):
        statements, data_step = MIGRATIONS[version]
        with transaction(conn):
            for sql in statements:
                conn.execute(sql)
            if data_step is not None:
                data_step(conn)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {version + 1}")
    return start


@dataclass
class Opened:
    """An open database: the connection and the version it had before it was upgraded."""

    conn: sqlite3.Connection
    path: Path
    upgraded_from: int | None = None

    def close(self) -> None:
        self.conn.close()


def open_db(path: str | Path | None = None, create: bool = False) -> Opened:
    """Open (``create``: or make) the lab database at ``path`` (default
    :func:`default_db_path`), upgraded to :data:`SCHEMA_VERSION`.

    Raises:
        LabDbError: no database there (and not ``create``), a directory, not an SQLite file,
            a foreign SQLite database, a newer schema version, a damaged file.
    """
    path = Path(path) if path is not None else default_db_path()
    if path.is_dir():
        raise LabDbError(f"{path}: is a directory (expected the lab database file)")
    if not path.exists():
        if not create:
            raise LabDbError(f"{path}: no lab database there (add a patient first: "
                             "ionm-station patient add --id ID --name NAME"
                             + ("" if path == default_db_path() else f" --db {path}") + ")")
        if path == default_db_path():
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise LabDbError(f"{path}: folder {path.parent} does not exist")
    else:
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise LabDbError(f"{path}: cannot read ({exc.strerror})") from None
        if head and head != SQLITE_MAGIC:
            raise LabDbError(f"{path}: not an SQLite database (not a lab database)")
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise LabDbError(f"{path}: cannot open ({exc})") from None
    try:
        upgraded = _prepare(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LabDbError(f"{path}: damaged or not a database ({exc})") from None
    except BaseException:
        conn.close()
        raise
    return Opened(conn, path, upgraded)


def _prepare(conn: sqlite3.Connection, path: Path) -> int | None:
    """Check the database is ours and not newer; set the pragmas; upgrade it."""
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if app != APPLICATION_ID and (version or tables):
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise LabDbError(f"{path}: an SQLite database, but not an ionm-station lab database "
                         f"(tables: {shown or 'none'}; application id {app:#x})")
    if version > SCHEMA_VERSION:
        raise LabDbError(f"{path}: made by a newer ionm-station (schema version {version}; this "
                         f"one reads up to {SCHEMA_VERSION}): update ionm-station to use it")
    conn.execute("PRAGMA journal_mode = WAL")  # where WAL is impossible, the default stays
    if version == SCHEMA_VERSION:
        return None
    migrate(conn)
    return version if version else None


# --- records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Patient:
    pk: int
    patient_id: str
    name: str
    birth_date: str
    sex: str
    notes: str
    code: str


@dataclass(frozen=True)
class Visit:
    pk: int
    patient: int
    date: str
    operator: str
    notes: str


@dataclass(frozen=True)
class Study:
    pk: int
    visit: int
    kind: str
    site: str
    result: dict[str, Any]
    result_path: str | None
    result_sha256: str
    source_path: str | None
    source_sha256: str | None


def _check_date(text: str, what: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise LabDbError(f"{what}: expected a date YYYY-MM-DD, got {text!r}") from None


def add_patient(conn: sqlite3.Connection, patient_id: str, name: str = "", birth_date: str = "",
                sex: str = "", notes: str = "") -> Patient:
    """Add a patient; its pseudonym ``code`` is random (``P-`` and 8 hex digits)."""
    patient_id = patient_id.strip()
    if not patient_id:
        raise LabDbError("--id: the patient ID must not be empty")
    if birth_date:
        birth_date = _check_date(birth_date, "--birth-date")
    with transaction(conn):
        if conn.execute("SELECT 1 FROM patients WHERE patient_id = ?", (patient_id,)).fetchone():
            raise LabDbError(f"patient {patient_id!r} already exists")
        while True:
            code = f"P-{secrets.token_hex(4).upper()}"
            if not conn.execute("SELECT 1 FROM patients WHERE code = ?", (code,)).fetchone():
                break
        cur = conn.execute("INSERT INTO patients (patient_id, name, birth_date, sex, notes, code) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (patient_id, name.strip(), birth_date, sex.strip(), notes, code))
    return get_patient(conn, patient_id, pk=cur.lastrowid)


def get_patient(conn: sqlite3.Connection, patient_id: str, pk: int | None = None) -> Patient:
    """The patient with ``patient_id`` (or its pseudonym code); :class:`LabDbError` if none."""
    if pk is not None:
        row = conn.execute("SELECT * FROM patients WHERE pk = ?", (pk,)).fetchone()
    else:
        row = conn.execute("SELECT * FROM patients WHERE patient_id = ? OR code = ?",
                           (patient_id, patient_id)).fetchone()
    if row is None:
        raise LabDbError(f"no patient {patient_id!r} in the database")
    return Patient(*row)


def list_patients(conn: sqlite3.Connection) -> list[Patient]:
    return [Patient(*r) for r in conn.execute("SELECT * FROM patients ORDER BY patient_id")]


def add_visit(conn: sqlite3.Connection, patient: Patient, date: str | None = None,
              operator: str = "", notes: str = "") -> Visit:
    """Add a visit of ``patient`` on ``date`` (ISO; default today)."""
    date = _check_date(date, "--date") if date else datetime.date.today().isoformat()
    with transaction(conn):
        cur = conn.execute("INSERT INTO visits (patient, date, operator, notes) VALUES (?, ?, ?, ?)",
                           (patient.pk, date, operator.strip(), notes))
    return get_visit(conn, cur.lastrowid)


def get_visit(conn: sqlite3.Connection, pk: int) -> Visit:
    row = conn.execute("SELECT * FROM visits WHERE pk = ?", (pk,)).fetchone()
    if row is None:
        raise LabDbError(f"no visit {pk} in the database")
    return Visit(*row)


def visits(conn: sqlite3.Connection, patient: Patient) -> list[Visit]:
    """The patient's visits, oldest first (same date: in the order added)."""
    return [Visit(*r) for r in conn.execute(
        "SELECT * FROM visits WHERE patient = ? ORDER BY date, pk", (patient.pk,))]


def studies(conn: sqlite3.Connection, visit: Visit) -> list[Study]:
    out = []
    for r in conn.execute("SELECT * FROM studies WHERE visit = ? ORDER BY pk", (visit.pk,)):
        out.append(Study(r[0], r[1], r[2], r[3], json.loads(r[4]), *r[5:]))
    return out


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_result(path: str | Path, kind: str) -> tuple[dict[str, Any], str]:
    """The result document of ``ionm-station muap`` / ``ncs`` at ``path`` and its SHA-256,
    checked to be what ``kind`` stores.

    Raises:
        LabDbError: missing, unreadable, not JSON, not an object, or not that kind's result.
    """
    path = Path(path)
    if path.is_dir():
        raise LabDbError(f"{path}: is a directory")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabDbError(f"{path}: file not found") from None
    except OSError as exc:
        raise LabDbError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LabDbError(f"{path}: not a JSON result (byte {exc.start} is not UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise LabDbError(f"{path}: malformed JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    check_result(doc, kind, str(path))
    return doc, hashlib.sha256(data).hexdigest()


def check_result(doc: Any, kind: str, where: str) -> None:
    """Refuse a document that is not the result ``kind`` stores (what trends read must be
    there, of the right type)."""
    if kind not in KINDS:
        raise LabDbError(f"--kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(doc, dict):
        raise LabDbError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    if kind == "needle":
        summary = doc.get("summary")
        if not isinstance(summary, dict) or not isinstance(doc.get("muaps"), list):
            raise LabDbError(f"{where}: not an `ionm-station muap` result (no 'summary' object "
                             "and 'muaps' list)")
        for key in ("n_muaps", "mean_amplitude_uv", "mean_duration_ms"):
            if key not in summary or not _number_or_none(summary[key]):
                raise LabDbError(f"{where}: summary.{key}: expected a number or null")
    elif kind == "ncs":
        st = doc.get("studies")
        if not isinstance(st, list):
            raise LabDbError(f"{where}: not an `ionm-station ncs` result (no 'studies' list)")
        for i, s in enumerate(st):
            if not isinstance(s, dict) or not isinstance(s.get("name"), str) \
                    or s.get("kind") not in ("motor", "sensory", "f_wave"):
                raise LabDbError(f"{where}: studies[{i}]: expected an object with a name and a "
                                 "kind (motor, sensory or f_wave)")
            for key in ("sites", "segments"):
                if key in s and not isinstance(s[key], list):
                    raise LabDbError(f"{where}: studies[{i}].{key}: expected a list")
            for j, site in enumerate(s.get("sites", [])):
                if not isinstance(site, dict):
                    raise LabDbError(f"{where}: studies[{i}].sites[{j}]: expected an object")
                for key, value in site.items():
                    if key.endswith(("_ms", "_mv", "_uv")) and not _number_or_none(value):
                        raise LabDbError(f"{where}: studies[{i}].sites[{j}].{key}: expected a "
                                         "number or null")


def _number_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                         and math.isfinite(x))


def _num(x: Any) -> float | None:
    return float(x) if _number_or_none(x) and x is not None else None


def extract_measures(kind: str, doc: dict[str, Any], site: str = "") -> list[tuple[str, str, float]]:
    """``(subject, measure, value)`` followed over visits, read from one stored result.

    * ncs — per study (subject: its name, e.g. ``median motor R``): motor ``distal_latency_ms``,
      ``amplitude_mv`` (distal site) and ``velocity_m_s`` (first segment with a velocity);
      sensory ``onset_latency_ms``, ``peak_latency_ms``, ``amplitude_uv``, ``velocity_m_s``;
      F-waves ``f_min_latency_ms`` and ``f_persistence``. A site without response gives none.
    * needle — subject: ``site`` if given, else the muscle, else the channel: ``n_muaps``,
      ``mean_amplitude_uv``, ``mean_duration_ms``, ``polyphasic_fraction``.
    """
    out: list[tuple[str, str, float]] = []

    def put(subject: str, measure: str, value: Any) -> None:
        v = _num(value)
        if v is not None:
            out.append((subject, measure, v))

    if kind == "ncs":
        for s in doc.get("studies", []):
            name = s["name"]
            if s["kind"] == "f_wave":
                put(name, "f_min_latency_ms", s.get("min_latency_ms"))
                put(name, "f_persistence", s.get("persistence"))
                continue
            sites = s.get("sites") or []
            first = sites[0] if sites else {}
            if first.get("response", True):
                if s["kind"] == "motor":
                    put(name, "distal_latency_ms", first.get("onset_latency_ms"))
                    put(name, "amplitude_mv", first.get("amplitude_mv"))
                else:
                    put(name, "onset_latency_ms", first.get("onset_latency_ms"))
                    put(name, "peak_latency_ms", first.get("peak_latency_ms"))
                    put(name, "amplitude_uv", first.get("amplitude_uv"))
            for seg in s.get("segments") or []:
                if isinstance(seg, dict) and _num(seg.get("velocity_m_s")) is not None:
                    put(name, "velocity_m_s", seg["velocity_m_s"])
                    break
    elif kind == "needle":
        summary = doc["summary"]
        subject = site or doc.get("muscle") or doc.get("channel") or "needle"
        for key in ("n_muaps", "mean_amplitude_uv", "mean_duration_ms", "polyphasic_fraction"):
            put(str(subject), key, summary.get(key))
    return out


def _insert_measures(conn: sqlite3.Connection, study: int,
                     measures: Sequence[tuple[str, str, float]]) -> None:
    conn.executemany("INSERT OR REPLACE INTO measures (study, subject, measure, value) "
                     "VALUES (?, ?, ?, ?)", [(study, *m) for m in measures])


def add_study(conn: sqlite3.Connection, visit: Visit, kind: str, result: dict[str, Any],
              result_sha256: str, result_path: str | None = None, site: str = "",
              source_path: str | None = None, source_sha256: str | None = None) -> Study:
    """Store one result (checked by :func:`check_result`) and the measures read from it."""
    check_result(result, kind, result_path or "result")
    text = json.dumps(result, sort_keys=True, ensure_ascii=False)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO studies (visit, kind, site, result, result_path, result_sha256, "
            "source_path, source_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (visit.pk, kind, site.strip(), text, result_path, result_sha256, source_path,
             source_sha256))
        _insert_measures(conn, cur.lastrowid, extract_measures(kind, result, site.strip()))
    return next(s for s in studies(conn, visit) if s.pk == cur.lastrowid)


def study_measures(conn: sqlite3.Connection, study: Study) -> list[tuple[str, str, float]]:
    return [tuple(r) for r in conn.execute(
        "SELECT subject, measure, value FROM measures WHERE study = ? ORDER BY subject, measure",
        (study.pk,))]


# --- test-retest variability and trends ----------------------------------------------------

@dataclass(frozen=True)
class Variability:
    """A measure's test-retest limit (None: shown, never flagged) and where it comes from."""

    measure: str
    label: str
    unit: str
    kind: str
    worse: str  # "higher", "lower" or "" (either direction may be disease)
    limit_pct: float | None
    min_muaps: int
    source: str  # citation
    source_verified: bool
    derivation: str


def load_variability(path: str | Path | None = None) -> dict[str, Variability]:
    """Measure → :class:`Variability` (default: the shipped ``retest_variability.toml``)."""
    if path is None:
        path = Path(str(resources.files("ionm_station.lab") / VARIABILITY_FILE))
    where = str(path)
    doc = load_toml(path)
    sources = doc.get("sources", {})
    out = {}
    for measure, e in doc.get("measure", {}).items():
        key = f"measure.{measure}"
        src = e.get("source")
        if src != "none" and src not in sources:
            raise ConfigError(where, f"{key}.source", f"names no [sources.*] entry: {src!r}")
        limit = e.get("limit_percent")
        if limit is not None and (not isinstance(limit, (int, float)) or limit <= 0):
            raise ConfigError(where, f"{key}.limit_percent", "expected a number > 0")
        if e.get("worse", "") not in ("higher", "lower", ""):
            raise ConfigError(where, f"{key}.worse", "expected 'higher', 'lower' or ''")
        s = sources.get(src, {})
        out[measure] = Variability(
            measure, e.get("label", measure), e.get("unit", ""), e.get("kind", ""),
            e.get("worse", ""), None if limit is None else float(limit),
            int(e.get("min_muaps", 0)), s.get("citation", "no source"),
            bool(s.get("verified", False)), e.get("derivation", ""))
    return out


@dataclass(frozen=True)
class Point:
    """A measure's value at one visit (the latest study of the visit that has it)."""

    visit: int
    date: str
    day: int  # days since the patient's first visit
    value: float
    n_muaps: float | None = None


@dataclass(frozen=True)
class Change:
    """A change between two visits: ``vs`` is ``previous`` or ``first``."""

    vs: str
    before: Point
    after: Point
    change_pct: float
    flagged: bool
    direction: str  # "worse", "better", "up", "down", "none"
    why: str  # why it is or is not flagged


@dataclass
class Trend:
    subject: str
    measure: str
    variability: Variability | None
    points: list[Point] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    @property
    def label(self) -> str:
        v = self.variability
        return f"{self.subject}: {v.label if v else self.measure}"

    @property
    def unit(self) -> str:
        return self.variability.unit if self.variability else ""

    @property
    def flagged(self) -> list[Change]:
        return [c for c in self.changes if c.flagged]


def _compare(vs: str, a: Point, b: Point, var: Variability | None) -> Change:
    if a.value == 0:
        return Change(vs, a, b, math.nan, False, "none", "earlier value is 0: no relative change")
    pct = 100.0 * (b.value - a.value) / abs(a.value)
    if var is not None and var.worse and pct:
        direction = "worse" if (pct > 0) == (var.worse == "higher") else "better"
    else:
        direction = "up" if pct > 0 else "down" if pct < 0 else "none"
    if var is None or var.limit_pct is None:
        return Change(vs, a, b, pct, False, direction, "no published test-retest limit")
    if var.min_muaps and min(a.n_muaps or 0, b.n_muaps or 0) < var.min_muaps:
        return Change(vs, a, b, pct, False, direction,
                      f"fewer than {var.min_muaps} MUAPs at a visit: the limit is for means of "
                      f"{var.min_muaps}")
    flagged = round(abs(pct), 9) > var.limit_pct  # at the limit exactly is not beyond it
    why = (f"{'beyond' if flagged else 'within'} test-retest variability "
           f"(±{var.limit_pct:g} %)")
    return Change(vs, a, b, pct, flagged, direction, why)


def trends(conn: sqlite3.Connection, patient: Patient,
           variability: dict[str, Variability] | None = None) -> list[Trend]:
    """Every (subject, measure) of the patient with its value per visit, and the changes of
    each visit after the first from the previous visit and (from the third on) from the first;
    a change is flagged only beyond the measure's test-retest limit."""
    variability = load_variability() if variability is None else variability
    vis = visits(conn, patient)
    if not vis:
        return []
    first = datetime.date.fromisoformat(vis[0].date)
    rows = conn.execute(
        "SELECT v.pk, v.date, m.subject, m.measure, m.value, s.pk FROM measures m "
        "JOIN studies s ON s.pk = m.study JOIN visits v ON v.pk = s.visit "
        "WHERE v.patient = ? ORDER BY v.date, v.pk, s.pk", (patient.pk,)).fetchall()
    latest: dict[tuple[str, str], dict[int, tuple[str, float]]] = {}
    for vpk, date, subject, measure, value, _ in rows:  # a later study of a visit wins
        latest.setdefault((subject, measure), {})[vpk] = (date, value)
    out = []
    for (subject, measure), by_visit in sorted(latest.items()):
        t = Trend(subject, measure, variability.get(measure))
        n = latest.get((subject, "n_muaps"), {})
        for vpk, (date, value) in by_visit.items():
            day = (datetime.date.fromisoformat(date) - first).days
            t.points.append(Point(vpk, date, day, value, n.get(vpk, (None, None))[1]))
        for i in range(1, len(t.points)):
            t.changes.append(_compare("previous", t.points[i - 1], t.points[i], t.variability))
            if i >= 2:
                t.changes.append(_compare("first", t.points[0], t.points[i], t.variability))
        out.append(t)
    return out


def change_text(t: Trend, c: Change, day_only: bool = False) -> str:
    """``median motor R: distal motor latency 3.04 → 3.50 ms (+15.0 %, worse) from the previous
    visit (2024-01-10): beyond test-retest variability (±9.8 %)``."""
    when = f"day {c.before.day}" if day_only else c.before.date
    return (f"{t.label} {c.before.value:.4g} → {c.after.value:.4g} {t.unit} "
            f"({c.change_pct:+.1f} %, {c.direction}) from the {c.vs} visit ({when}): {c.why}")


# --- exports and de-identification ------------------------------------------------------------

class Scrubber:
    """Removes a patient's identifiers from free text: the patient ID, name, birth date and the
    visits' operators anywhere (case-insensitive), and each word of the name and operators
    (≥ 2 characters) as a whole word."""

    def __init__(self, patient: Patient, operators: Sequence[str] = ()) -> None:
        whole = {s.strip() for s in (patient.patient_id, patient.name, patient.birth_date,
                                     *operators) if len(s.strip()) >= 2}
        words = {w for s in (patient.name, *operators) for w in re.split(r"[\s,.;]+", s)
                 if len(w) >= 2} - whole
        parts = [re.escape(w) for w in sorted(whole, key=len, reverse=True)]
        parts += [rf"\b{re.escape(w)}\b" for w in sorted(words, key=len, reverse=True)]
        self._pattern = re.compile("|".join(parts), re.IGNORECASE) if parts else None

    def __call__(self, text: Any) -> str:
        text = str(text)
        return self._pattern.sub(REMOVED, text) if self._pattern else text

    def deep(self, value: Any) -> Any:
        """Every string in a JSON value scrubbed (keys too)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        if isinstance(value, dict):
            return {self(k): self.deep(v) for k, v in value.items()}
        return value


#: Keys of a stored result that name files (withheld when de-identified).
PATH_KEYS = ("file", "recording", "description")


def export(conn: sqlite3.Connection, patient: Patient, deidentify: bool = False,
           variability: dict[str, Variability] | None = None) -> dict[str, Any]:
    """The patient's record as one JSON-able document: patient, visits with their studies
    (measures and the stored results), trends with flagged changes, and the limits' sources.
    With ``deidentify`` no identifier is in it (see the module's docstring)."""
    variability = load_variability() if variability is None else variability
    vis = visits(conn, patient)
    scrub = Scrubber(patient, [v.operator for v in vis]) if deidentify else (lambda x: x)
    first = datetime.date.fromisoformat(vis[0].date) if vis else None
    if deidentify:
        head = {"code": patient.code, "patient_id": WITHHELD, "name": WITHHELD,
                "birth_date": WITHHELD, "sex": patient.sex, "notes": scrub(patient.notes)}
    else:
        head = {"code": patient.code, "patient_id": patient.patient_id, "name": patient.name,
                "birth_date": patient.birth_date, "sex": patient.sex, "notes": patient.notes}
    visits_out = []
    for v in vis:
        day = (datetime.date.fromisoformat(v.date) - first).days if first else 0
        row: dict[str, Any] = {"visit": v.pk, "day": day}
        row.update({"date": WITHHELD, "operator": WITHHELD} if deidentify
                   else {"date": v.date, "operator": v.operator})
        row["notes"] = scrub(v.notes)
        row["studies"] = []
        for s in studies(conn, v):
            result = dict(s.result)
            if deidentify:
                for k in PATH_KEYS:
                    if k in result:
                        result[k] = WITHHELD
                result = scrub.deep(result)
            row["studies"].append({
                "study": s.pk, "kind": s.kind, "site": scrub(s.site),
                "result_file": ({"path": WITHHELD, "sha256": WITHHELD} if deidentify
                                else {"path": s.result_path, "sha256": s.result_sha256}),
                "source_file": ({"path": WITHHELD, "sha256": WITHHELD} if deidentify
                                else {"path": s.source_path, "sha256": s.source_sha256}),
                "measures": [{"subject": scrub(a), "measure": m, "value": x}
                             for a, m, x in study_measures(conn, s)],
                "result": result})
        visits_out.append(row)
    trend_out, flags = [], []
    for t in trends(conn, patient, variability):
        v = t.variability
        trend_out.append({
            "subject": scrub(t.subject), "measure": t.measure, "unit": t.unit,
            "limit_percent": v.limit_pct if v else None,
            "points": [{"visit": p.visit, "day": p.day,
                        "date": WITHHELD if deidentify else p.date, "value": p.value}
                       for p in t.points],
            "changes": [{"vs": c.vs, "from_visit": c.before.visit, "to_visit": c.after.visit,
                         "change_percent": None if math.isnan(c.change_pct)
                         else round(c.change_pct, 2),
                         "direction": c.direction, "flagged": c.flagged, "why": c.why}
                        for c in t.changes]})
        flags += [scrub(change_text(t, c, day_only=deidentify)) for c in t.flagged]
    used = {t["measure"] for t in trend_out}
    limits = {m: {"label": v.label, "unit": v.unit, "limit_percent": v.limit_pct,
                  "worse": v.worse, "source": v.source, "source_verified": v.source_verified,
                  "derivation": v.derivation}
              for m, v in sorted(variability.items()) if m in used}
    return {"format": "ionm-station patient record", "schema_version": SCHEMA_VERSION,
            "deidentified": deidentify, "patient": head, "visits": visits_out,
            "trends": trend_out, "flags": flags, "limits": limits}
