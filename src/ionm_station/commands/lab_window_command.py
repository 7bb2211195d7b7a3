"""``ionm-station lab [FILE]``: the EMG lab window (needle EMG and nerve conduction).

Wiring in ``cli.py``::

    from ionm_station.commands.lab_window_command import add_lab_window_parser, cmd_lab_window
    add_lab_window_parser(sub)
    ... if args.command == "lab": return cmd_lab_window(args)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ionm_station.errors import IonmError, input_problem


def add_lab_window_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``lab [FILE] [--channel LABEL] [--muscle NAME]``."""
    p = sub.add_parser("lab", help="open the EMG lab window (quantitative needle EMG, nerve "
                                   "conduction)",
                       description="Open the EMG lab window: a needle recording analysed as "
                                   "`ionm-station muap` does (MUAP overlay and table, verdict, "
                                   "spontaneous activity) and a nerve conduction study as "
                                   "`ionm-station ncs` does (waveforms, results, flags, "
                                   "patterns), with their JSON/PDF exports.")
    p.add_argument("file", type=Path, nargs="?", metavar="FILE",
                   help="needle recording (EDF/BDF, WFDB .hea, .h5) or nerve conduction study "
                        "description (.ncs.toml) to open")
    p.add_argument("--channel", metavar="LABEL", help="needle channel (default: the only or "
                                                       "the first one)")
    p.add_argument("--muscle", metavar="NAME", help="muscle for the reference limits (default: "
                                                     "from the channel label)")
    return p


def cmd_lab_window(args: argparse.Namespace) -> int:
    """Check the arguments and the display in one line each, then run the window."""
    from ionm_station.cli import check_display
    from ionm_station.lab.reference import load_reference, muscle_reference

    if args.file is not None:
        problem = input_problem(args.file)
        if problem:
            raise IonmError(f"{args.file}: {problem}")
        if args.file.suffix.lower() == ".toml" and (args.channel or args.muscle):
            raise IonmError("--channel and --muscle apply to needle recordings, not to a nerve "
                            "conduction study")
    elif args.channel or args.muscle:
        raise IonmError("--channel and --muscle need a needle recording FILE")
    if args.muscle and muscle_reference(args.muscle) is None:
        raise IonmError(f"--muscle {args.muscle}: not in the reference table (it holds "
                        + ", ".join(sorted(load_reference()["muscles"])) + ")")
    try:
        check_display()
    except IonmError as exc:
        raise IonmError(str(exc).replace("the monitoring window", "the EMG lab window").replace(
            "use `run --headless`", "use `ionm-station muap` / `ncs`")) from None
    from ionm_station.gui.lab_window import run_lab

    return run_lab(args.file, args.channel, args.muscle)
