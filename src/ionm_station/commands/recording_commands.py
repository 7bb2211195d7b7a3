"""``ionm-station export``, ``info`` and ``recover``: recordings to EDF+, file summaries, and
the repair of a recording whose writer was killed.

Wiring in ``cli.py``::

    from ionm_station.commands.recording_commands import (
        add_export_parser, add_info_parser, add_recover_parser, cmd_export, cmd_info, cmd_recover)
    add_export_parser(sub); add_info_parser(sub); add_recover_parser(sub)
    ... if args.command == "export": return cmd_export(args)
    ... if args.command == "info": return cmd_info(args)
    ... if args.command == "recover": return cmd_recover(args)

Errors are :class:`~ionm_station.errors.IonmError` subclasses (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path


def add_export_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``export FILE.h5 --edf OUT.edf [--deidentify]``."""
    p = sub.add_parser("export", help="export a recording as EDF+ (events as annotations)",
                       description="Write an IONM Station recording (.h5) as EDF+: every channel "
                                   "in µV (16-bit, amplifier range), every event as an annotation.")
    p.add_argument("file", type=Path, help="IONM Station recording (.h5)")
    p.add_argument("--edf", type=Path, required=True, metavar="OUT.edf", help="EDF+ file to write")
    p.add_argument("--deidentify", action="store_true",
                   help="blank the patient identification, operator, start date and start time")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.edf")
    return p


def add_info_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``info FILE [--json]``."""
    p = sub.add_parser("info", help="summarise a recording or EDF/BDF file",
                       description="Duration, channels, rate, events, clean-close flag and case "
                                   "metadata of an IONM Station recording or EDF/EDF+/BDF file.")
    p.add_argument("file", type=Path, help="IONM Station recording (.h5) or EDF/EDF+/BDF file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--deidentify", action="store_true", help="leave out the case metadata")
    return p


def add_recover_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``recover FILE.h5 [--backup PATH] [--force]``."""
    p = sub.add_parser("recover", help="repair a recording whose writer was killed",
                       description="Make a recording that was never closed (the station was "
                                   "killed, crashed or lost power) a normal, closed file, in "
                                   "place: everything up to the writer's last flush (at most "
                                   "0.5 s before the end) is kept. The file as it was is copied "
                                   "first to the backup.")
    p.add_argument("file", type=Path, help="IONM Station recording (.h5)")
    p.add_argument("--backup", type=Path, metavar="PATH",
                   help="where to copy the file before repairing it "
                        "(default: FILE.before-recovery.h5 beside it)")
    p.add_argument("--force", action="store_true", help="replace an existing backup file")
    return p


def backup_path(path: Path) -> Path:
    """The default backup of ``path`` made by ``recover``: ``NAME.before-recovery.h5``."""
    return path.with_name(f"{path.stem}.before-recovery{path.suffix or '.h5'}")


def cmd_export(args: argparse.Namespace) -> int:
    from ionm_station.outputs import check_outputs
    from ionm_station.recording.export import export_edf

    check_outputs({"--edf": args.edf}, [args.file], force=args.force)
    done = export_edf(args.file, args.edf, deidentify=args.deidentify, replace=args.force)
    print(f"{args.file}: {done['samples']} samples per channel, {done['annotations']} annotations"
          f" -> {args.edf}" + (" (de-identified)" if args.deidentify else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ionm_station.recording.export import info

    doc = info(args.file, deidentify=args.deidentify)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    clean = {"closed": "yes", "recovered": "yes (recovered after its writer was killed)",
             "being_recorded": "not yet: being recorded by a running station "
                               f"(last written {doc.get('last_written_s_ago', 0):.1f} s ago)",
             "killed": "NO: its writer was killed or crashed; repair it with "
                       f"`ionm-station recover {doc['path']}`",
             None: "n/a"}[doc.get("state")]
    lines = [f"{doc['path']} ({doc['kind']}, {doc['file_size_bytes'] / 1e6:.1f} MB)",
             (f"  {doc['n_channels']} ch @ {doc['fs']:g} Hz, {doc['duration_s']:.2f} s "
              f"({doc['n_samples']} samples per channel)"),
             (f"  events: {doc['events']}"
              + "".join(f", {k} {v}" for k, v in sorted(doc["events_by_kind"].items()))),
             f"  closed cleanly: {clean}"]
    if "case" in doc:
        lines.append("  case: " + ", ".join(f"{k} {v or '-'}" for k, v in doc["case"].items()))
    print("\n".join(lines), file=sys.stdout)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    """Repair a killed recording in place after backing it up, and say what it holds now."""
    from ionm_station.recording import open_recording, recover

    report = recover(args.file, args.backup or backup_path(args.file), replace_backup=args.force)
    if not report.repaired:
        print(f"{args.file}: closed cleanly, nothing to recover")
        return 0
    with open_recording(args.file) as rec:
        last = datetime.datetime.fromtimestamp(rec.last_flush_unix_s).isoformat(" ", "seconds")
        what = (f"{rec.duration_s:.2f} s ({rec.n_samples} samples per channel, "
                f"{rec.info.n_channels} ch @ {rec.info.sample_rate_hz:g} Hz), "
                f"{len(rec.events)} events, {len(rec.settings_history)} settings records")
    print(f"{args.file}: recovered {what}, as written at {last}; "
          f"{report.discarded_rows} unflushed sample rows after that discarded; "
          f"the file as it was is kept in {report.backup}")
    return 0
