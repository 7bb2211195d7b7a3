"""Patients and visits of the EMG lab: ``patient``, ``visit``, ``study`` and ``visit-report``.

Wiring in ``cli.py``::

    from ionm_station.commands.lab_commands import add_lab_parsers, cmd_lab, LAB_COMMANDS
    add_lab_parsers(sub)
    ... if args.command in LAB_COMMANDS: return cmd_lab(args)

Every command takes ``--db PATH`` (default: ``~/.local/share/ionm-station/lab.sqlite``). Patient
identifiers leave the database only in what is asked for; every export (``patient show``,
``visit-report``) has ``--deidentify``. Outputs are written atomically and replaced only with
``--force``; errors are one line, exit 2 (:class:`~ionm_station.lab.patients.LabDbError`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: Top-level commands handled here.
LAB_COMMANDS = ("patient", "visit", "study", "visit-report")


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, metavar="PATH",
                   help="the lab database (SQLite; default ~/.local/share/ionm-station/"
                        "lab.sqlite, or under $XDG_DATA_HOME)")


def _visit_id(value: str) -> int:
    try:
        v = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a visit number, got {value!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a visit number, got {value!r}")
    return v


def add_lab_parsers(sub: argparse._SubParsersAction) -> None:
    """``patient add|show|list``, ``visit add``, ``study add``, ``visit-report``."""
    pat = sub.add_parser("patient", help="EMG lab patients: add, show (and export), list",
                         description="Patients of the EMG lab, kept in a local SQLite database "
                                     "with their visits and studies (docs/emg-lab.md).")
    psub = pat.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    p = psub.add_parser("add", help="add a patient")
    p.add_argument("--id", required=True, dest="patient_id", metavar="ID",
                   help="the clinic's patient identifier (e.g. the MRN)")
    p.add_argument("--name", default="", help="the patient's name")
    p.add_argument("--birth-date", default="", metavar="YYYY-MM-DD")
    p.add_argument("--sex", default="")
    p.add_argument("--notes", default="")
    _db_arg(p)
    p = psub.add_parser("show", help="a patient's visits, studies, trends and flagged changes",
                        description="Print a patient's visits, studies, trends and the changes "
                                    "beyond test-retest variability; --json exports the whole "
                                    "record.")
    p.add_argument("patient", metavar="ID", help="patient ID (or its code P-…)")
    p.add_argument("--json", type=Path, metavar="OUT", help="export the record as JSON")
    p.add_argument("--deidentify", action="store_true",
                   help="no ID, name, birth date, operator, dates, file paths or hashes (here "
                        "and in --json); the patient is its code")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    _db_arg(p)
    p = psub.add_parser("list", help="the patients in the database")
    p.add_argument("--deidentify", action="store_true", help="codes only")
    _db_arg(p)

    vis = sub.add_parser("visit", help="EMG lab visits: add")
    vsub = vis.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    p = vsub.add_parser("add", help="add a visit of a patient; prints its number")
    p.add_argument("patient", metavar="PATIENT", help="patient ID (or its code P-…)")
    p.add_argument("--date", metavar="YYYY-MM-DD", help="default: today")
    p.add_argument("--operator", default="", help="who examined")
    p.add_argument("--notes", default="")
    _db_arg(p)

    st = sub.add_parser("study", help="EMG lab studies: add a muap / ncs result to a visit")
    ssub = st.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    p = ssub.add_parser("add", help="store a result JSON (ionm-station muap / ncs) in a visit",
                        description="Store the JSON result of `ionm-station muap` (--kind "
                                    "needle) or `ionm-station ncs` (--kind ncs) in a visit, with "
                                    "the source recording's path and SHA-256 and the measures "
                                    "followed over visits.")
    p.add_argument("visit", type=_visit_id, metavar="VISIT", help="visit number (visit add)")
    p.add_argument("--kind", required=True, choices=("needle", "ncs", "biofeedback", "injection"))
    p.add_argument("--json", required=True, type=Path, metavar="RESULT.json", dest="result")
    p.add_argument("--source", type=Path, metavar="FILE",
                   help="the recording analysed (default: the one the result names, when it "
                        "exists); its SHA-256 is stored")
    p.add_argument("--site", default="",
                   help="needle: the muscle and side followed, e.g. 'tibialis anterior L' "
                        "(default: the result's muscle)")
    _db_arg(p)

    p = sub.add_parser("visit-report", help="a patient's visit report (PDF): visits, studies, "
                                            "trends, flagged changes",
                       description="Write a patient's visit report: the visits and their "
                                   "studies, trend plots over visits and the changes beyond "
                                   "published test-retest variability, with the limits' sources.")
    p.add_argument("patient", metavar="PATIENT", help="patient ID (or its code P-…)")
    p.add_argument("--pdf", type=Path, required=True, metavar="OUT.pdf")
    p.add_argument("--deidentify", action="store_true",
                   help="no ID, name, birth date, operator, dates or file names (text and PDF "
                        "metadata); the patient is its code")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.pdf")
    _db_arg(p)


def _open(args: argparse.Namespace, create: bool = False):
    from ionm_station.lab.patients import SCHEMA_VERSION, open_db

    db = open_db(args.db, create=create)
    if db.upgraded_from is not None:
        print(f"ionm-station: note: {db.path}: upgraded from schema version {db.upgraded_from} "
              f"to {SCHEMA_VERSION}", file=sys.stderr)
    return db


def cmd_lab(args: argparse.Namespace) -> int:
    """Run ``patient``, ``visit``, ``study`` or ``visit-report``."""
    from ionm_station.lab.patients import default_db_path
    from ionm_station.outputs import check_outputs

    action = (args.command, getattr(args, "lab_command", None))
    out = {("patient", "show"): getattr(args, "json", None),
           ("visit-report", None): getattr(args, "pdf", None)}.get(action)
    if out is not None:  # before any work; the database is an input, never overwritten
        check_outputs({"--json" if action[0] == "patient" else "--pdf": out},
                      [args.db or default_db_path()], force=args.force)
    db = _open(args, create=action == ("patient", "add"))
    try:
        if action == ("patient", "add"):
            return _patient_add(db, args)
        if action == ("patient", "show"):
            return _patient_show(db, args)
        if action == ("patient", "list"):
            return _patient_list(db, args)
        if action == ("visit", "add"):
            return _visit_add(db, args)
        if action == ("study", "add"):
            return _study_add(db, args)
        return _visit_report(db, args)
    finally:
        db.close()


def _patient_add(db, args: argparse.Namespace) -> int:
    from ionm_station.lab import patients as pt

    p = pt.add_patient(db.conn, args.patient_id, args.name, args.birth_date, args.sex, args.notes)
    print(f"patient {p.patient_id} added (code {p.code}) -> {db.path}")
    return 0


def _patient_list(db, args: argparse.Namespace) -> int:
    from ionm_station.lab import patients as pt

    for p in pt.list_patients(db.conn):
        n = len(pt.visits(db.conn, p))
        print(f"{p.code}  {n} visits" if args.deidentify
              else f"{p.patient_id}  {p.name}  ({p.code}, {n} visits)")
    return 0


def _patient_show(db, args: argparse.Namespace) -> int:
    from ionm_station.lab import patients as pt
    from ionm_station.outputs import write_text

    patient = pt.get_patient(db.conn, args.patient)
    doc = pt.export(db.conn, patient, args.deidentify)
    if args.json is not None:
        write_text(args.json, json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                   replace=args.force)
    h = doc["patient"]
    print(f"patient {h['code']}" if args.deidentify
          else f"patient {h['patient_id']} {h['name']} ({h['code']})")
    for v in doc["visits"]:
        when = f"day {v['day']}" if args.deidentify else f"{v['date']} (day {v['day']})"
        print(f"  visit {v['visit']}: {when}, operator {v['operator'] or '(none)'}, "
              f"{len(v['studies'])} studies"
              + "".join(f"; {s['kind']} {s['site'] or ''}".rstrip() for s in v["studies"]))
    for t in doc["trends"]:
        if len(t["points"]) < 2:
            continue
        values = ", ".join(f"day {p['day']}: {p['value']:.4g}" for p in t["points"])
        print(f"  trend {t['subject']} {t['measure']}: {values}")
    for f in doc["flags"]:
        print(f"  flag: {f}")
    print(f"{len(doc['visits'])} visits, {len(doc['flags'])} flagged changes"
          + (f" -> {args.json}" if args.json is not None else ""))
    return 0


def _visit_add(db, args: argparse.Namespace) -> int:
    from ionm_station.lab import patients as pt

    patient = pt.get_patient(db.conn, args.patient)
    v = pt.add_visit(db.conn, patient, args.date, args.operator, args.notes)
    print(f"visit {v.pk}: patient {args.patient}, {v.date}")
    return 0


def _study_add(db, args: argparse.Namespace) -> int:
    from ionm_station.errors import input_problem
    from ionm_station.lab import patients as pt

    visit = pt.get_visit(db.conn, args.visit)
    doc, sha = pt.read_result(args.result, args.kind)
    source_path, source_sha, note = None, None, ""
    if args.source is not None:
        problem = input_problem(args.source)
        if problem:
            raise pt.LabDbError(f"--source {args.source}: {problem}")
        source_path, source_sha = str(args.source.resolve()), pt.sha256_file(args.source)
    else:  # the recording the result names, as the analysis saw it
        named = doc.get("file") or doc.get("recording")
        if isinstance(named, str) and named:
            if Path(named).is_file():
                source_path, source_sha = str(Path(named).resolve()), pt.sha256_file(named)
            else:
                source_path = named
                note = (f"; the recording it names ({named}) is not here: its path is stored "
                        "without a SHA-256")
    study = pt.add_study(db.conn, visit, args.kind, doc, sha, str(Path(args.result).resolve()),
                         args.site, source_path, source_sha)
    measures = pt.study_measures(db.conn, study)
    subjects = sorted({m[0] for m in measures})
    print(f"study {study.pk} ({args.kind}) added to visit {visit.pk}: {len(measures)} measures"
          + (f" of {', '.join(subjects)}" if subjects else "") + note)
    return 0


def _visit_report(db, args: argparse.Namespace) -> int:
    from ionm_station.lab import patients as pt
    from ionm_station.lab.visit_report import write_visit_report

    patient = pt.get_patient(db.conn, args.patient)
    pages = write_visit_report(db.conn, patient, args.pdf, args.deidentify, args.force)
    flagged = sum(len(t.flagged) for t in pt.trends(db.conn, patient))
    print(f"visit report: {len(pt.visits(db.conn, patient))} visits, {flagged} flagged changes, "
          f"{pages} pages -> {args.pdf}")
    return 0
