"""``ionm-station events`` and ``report``: a case's event log, and its PDF report.

Wiring in ``cli.py``::

    from ionm_station.commands.case_commands import (
        add_events_parser, add_report_parser, cmd_events, cmd_report)
    add_events_parser(sub); add_report_parser(sub)
    ... if args.command == "events": return cmd_events(args)
    ... if args.command == "report": return cmd_report(args)

Errors are :class:`~ionm_station.errors.IonmError` subclasses (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ionm_station.caselog import KINDS
from ionm_station.errors import IonmError


def _kinds(text: str) -> list[str]:
    """``--kind alarm,marker``: known entry kinds (a usage error names an unknown one)."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown kind {', '.join(unknown) or text!r} "
                                         f"(kinds: {', '.join(KINDS)})")
    return kinds


def add_events_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``events FILE [--json OUT] [--kind K,...] [--root ROOT[-SIDE]] [--force]``."""
    p = sub.add_parser("events", help="the case's event log: alarms, markers, faults, screws, …",
                       description="Print the event log of a recording (.h5) or EDF+ file, one "
                                   "line per entry: case time, kind, root-side, what happened. "
                                   f"Kinds: {', '.join(KINDS)}.")
    p.add_argument("file", type=Path, help="IONM Station recording (.h5) or EDF+ file")
    p.add_argument("--kind", type=_kinds, metavar="K[,K...]", help="only these kinds")
    p.add_argument("--root", metavar="ROOT[-SIDE]",
                   help="only entries concerning this root (L5) or root-side (L5-L), and the "
                        "station-wide ones (technical alarms, cautery, markers, gaps)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the entries as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    return p


def add_report_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``report CASE.h5 --pdf OUT.pdf [--deidentify] [--force]``."""
    p = sub.add_parser("report", help="the case report as PDF",
                       description="Write the case report of a recording as PDF: header, summary "
                                   "(monitored time, time not monitored and why), signal quality "
                                   "and baselines, alarms, timeline, screws, TOF, waveform "
                                   "snapshots, trends, the event log. The same recording gives "
                                   "the same bytes.")
    p.add_argument("file", type=Path, help="IONM Station recording (.h5)")
    p.add_argument("--pdf", type=Path, required=True, metavar="OUT.pdf", help="PDF to write")
    p.add_argument("--deidentify", action="store_true",
                   help="no patient ID, operator, dates, clock times or file name; a case code "
                        "instead")
    p.add_argument("--force", action="store_true", help="replace an existing OUT.pdf")
    return p


def cmd_events(args: argparse.Namespace) -> int:
    """Print (and with ``--json`` write) the event log of a recording or EDF+ file."""
    from ionm_station.analysis import montage_from_labels
    from ionm_station.caselog import case_log, clock, select
    from ionm_station.outputs import check_outputs, write_text
    from ionm_station.sources.replay import open_media

    check_outputs({"--json": args.json}, [args.file], force=args.force)
    media = open_media(args.file)
    try:
        montage = getattr(media, "montage", None) or montage_from_labels(list(media.info.labels))
        fs = media.info.sample_rate_hz
        if args.root and args.root not in {k for c in montage.channels
                                           for k in (c.root, c.tile_key)}:
            raise IonmError(f"--root {args.root}: the montage of {args.file} has no such root "
                            f"(tiles: {', '.join(montage.tile_keys())})")
        entries = select(case_log(media.events, montage, fs), args.kind, args.root)
    finally:
        close = getattr(media, "close", None)
        if close is not None:
            close()
    for e in entries:
        print(f"{clock(e.index / fs):>11s}  {e.kind:13s} {', '.join(e.tiles) or '-':10s} {e.text}")
    sys.stdout.flush()
    print(f"{args.file}: {len(entries)} entries", file=sys.stderr)
    if args.json is not None:
        write_text(args.json, json.dumps([e.to_json(fs) for e in entries], indent=1,
                                         ensure_ascii=False), replace=args.force)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the PDF case report of a recording."""
    from ionm_station.outputs import check_outputs
    from ionm_station.report import write_report

    check_outputs({"--pdf": args.pdf}, [args.file], force=args.force)
    done = write_report(args.file, args.pdf, deidentify=args.deidentify, replace=args.force)
    print(f"{args.file}: {done.pages} pages, {done.alarms} alarms, {done.screws} screws, "
          f"{done.snapshots} waveform snapshots -> {args.pdf}"
          + (" (de-identified)" if args.deidentify else ""))
    return 0
