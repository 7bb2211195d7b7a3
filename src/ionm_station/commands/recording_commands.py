"""``ionm-station export`` and ``ionm-station info``: recordings to EDF+, and file summaries.

Wiring in ``cli.py``::

    from ionm_station.commands.recording_commands import (
        add_export_parser, add_info_parser, cmd_export, cmd_info)
    add_export_parser(sub); add_info_parser(sub)
    ... if args.command == "export": return cmd_export(args)
    ... if args.command == "info": return cmd_info(args)

Errors are :class:`~ionm_station.errors.IonmError` subclasses (one line, exit code 2).
"""

from __future__ import annotations

import argparse
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
                   help="blank the patient identification, start date and start time")
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


def cmd_export(args: argparse.Namespace) -> int:
    from ionm_station.recording.export import export_edf

    done = export_edf(args.file, args.edf, deidentify=args.deidentify)
    print(f"{args.file}: {done['samples']} samples per channel, {done['annotations']} annotations"
          f" -> {args.edf}" + (" (de-identified)" if args.deidentify else ""))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ionm_station.recording.export import info

    doc = info(args.file, deidentify=args.deidentify)
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    clean = {True: "yes", False: "NO (run recovery)", None: "n/a"}[doc["clean_close"]]
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
