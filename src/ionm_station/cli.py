"""Command line: ``ionm-station [run --headless ...]``.

Every user-facing error is one line on stderr (``ionm-station: error: ...``) and exit code 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ionm_station import __version__
from ionm_station.commands.args import OneLineParser, mains_hz, positive
from ionm_station.commands.biofeedback_command import add_biofeedback_parser, cmd_biofeedback
from ionm_station.commands.case_commands import (
    add_events_parser,
    add_report_parser,
    cmd_events,
    cmd_report,
)
from ionm_station.commands.inject_command import add_inject_parser, cmd_inject
from ionm_station.commands.lab_commands import LAB_COMMANDS, add_lab_parsers, cmd_lab
from ionm_station.commands.lab_window_command import add_lab_window_parser, cmd_lab_window
from ionm_station.commands.muap_command import add_muap_parser, cmd_muap
from ionm_station.commands.ncs_command import add_ncs_parser, cmd_ncs
from ionm_station.commands.recording_commands import (
    add_export_parser,
    add_info_parser,
    add_recover_parser,
    cmd_export,
    cmd_info,
    cmd_recover,
)
from ionm_station.commands.simulate_device import add_simulate_device_parser, cmd_simulate_device
from ionm_station.commands.simulate_lab import add_simulate_lab_parser, cmd_simulate_lab
from ionm_station.errors import IonmError, shown
from ionm_station.remote.commands import (
    add_publish_arguments,
    add_supervise_parser,
    check_publish_args,
    cmd_supervise,
    start_publishing,
)

if TYPE_CHECKING:  # imported where used, so that ``--help`` and bad arguments answer at once
    from ionm_station.profiles import Profile
    from ionm_station.session import Session


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ionm-station",
        description="IONM Station: intraoperative neuromonitoring EMG workstation. Without a "
                    "command it opens the monitoring window on the built-in simulated amplifier. "
                    "Research and education use only; not cleared for clinical decisions.",
    )
    parser.add_argument("--version", action="version", version=f"ionm-station {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the live monitoring pipeline (window, or --headless)",
                         description="Run the live pipeline: source → ring → DSP → detection → alarms.")
    run.add_argument("--headless", action="store_true",
                     help="no window: print a status line every second and a line for every "
                          "alarm and tile change")
    run.add_argument("--quiet", action="store_true",
                     help="with --headless: only the status lines, no alarm or tile lines")
    run.add_argument("--profile", default="simulated",
                     help="hardware profile: a name in hardware_profiles/ or a path (default: simulated)")
    run.add_argument("--montage", help="montage name (lumbar, cervical, thoracolumbar, combined32) or path")
    run.add_argument("--scenario", help="simulated amplifier: scenario name or path (default: the profile's)")
    run.add_argument("--seconds", type=positive, help="stop after this much signal (s); default: until Ctrl-C")
    run.add_argument("--port", help="serial port (serial profiles) or board port (BrainFlow profiles)")
    run.add_argument("--fast", action="store_true",
                     help="simulated amplifier or replay: as fast as possible instead of real time")
    run.add_argument("--status-interval", type=positive, metavar="S",
                     help="with --headless: seconds between status lines (default 1)")
    run.add_argument("--json", type=Path, metavar="OUT", help="write a JSON summary to OUT at the end")
    run.add_argument("--force", action="store_true", help="replace an existing --json file")
    run.add_argument("--record", type=Path, metavar="FILE.h5",
                     help="record the case into a new HDF5 file from the first sample (in the "
                          "window too; never replaces a file)")
    run.add_argument("--patient-id", default="",
                     help="case metadata stored in the recording (--record, or the window's "
                          "record button)")
    run.add_argument("--procedure", default="", help="case metadata, e.g. 'L4-S1 PLIF'")
    run.add_argument("--operator", default="", help="case metadata: who runs the monitoring")
    run.add_argument("--replay", type=Path, metavar="FILE",
                     help="replay a recording (.h5) or EDF/BDF file through the live pipeline")
    run.add_argument("--speed", type=positive,
                     help="replay speed, 0.25–16 × real time (default 1); see --fast")
    run.add_argument("--mains-hz", type=mains_hz,
                     help="mains frequency (default: the profile's, else detected)")
    run.add_argument("--adaptive-threshold", action="store_true",
                     help="raise a root's activity threshold during long continuous activity "
                          "(up to 400 µV, logged and shown on the tile; A-trains always alarm)")
    run.add_argument("--baseline", action="store_true",
                     help="check every channel's signal quality (noise, mains, ECG, lead-off, "
                          "flat) and take each root's baseline once the first seconds are in; "
                          "failing channels are named with the likely cause")
    run.add_argument("--hunt", metavar="ROOT-SIDE[,...]",
                     help="simulated amplifier: automatic stimulation-threshold hunt on these screws, "
                          "e.g. L5-R,S1-L (reported in --json)")
    run.add_argument("--listen", metavar="LABEL",
                     help="window: play this channel's free-run EMG (its clean signal) as audio "
                          "from the start, e.g. 'L5-L TibAnt' (the toolbar's Listen selector)")
    add_publish_arguments(run)

    an = sub.add_parser("analyze", help="detect free-run EMG events and artifacts in a recorded file",
                        description="Run a recorded file (EDF/EDF+/BDF) through the free-run chain "
                                    "(band-pass, mains and ECG removal, artifact blanking, detection).")
    an.add_argument("file", type=Path, help="IONM Station recording (.h5) or EDF, EDF+ or BDF file")
    an.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results here")
    an.add_argument("--profile", help="hardware profile whose montage to use (name or path)")
    an.add_argument("--montage", help="montage (name or path); default: the profile's, else the "
                                      "recording's, else from labels like 'L4-L TibAnt'")
    an.add_argument("--clean-edf", type=Path, metavar="OUT.edf",
                    help="also write the filtered, mains- and ECG-free signals as EDF+")
    an.add_argument("--mains-hz", type=mains_hz, help="mains frequency (default: detect)")
    an.add_argument("--no-ecg-removal", action="store_true", help="skip ECG template subtraction")
    an.add_argument("--force", action="store_true", help="replace existing output files")
    add_simulate_device_parser(sub)
    add_simulate_lab_parser(sub)
    add_export_parser(sub)
    add_info_parser(sub)
    add_recover_parser(sub)
    add_supervise_parser(sub)
    add_events_parser(sub)
    add_report_parser(sub)
    add_ncs_parser(sub)
    add_muap_parser(sub)
    add_inject_parser(sub)
    add_lab_parsers(sub)
    add_lab_window_parser(sub)
    add_biofeedback_parser(sub)
    return parser


#: Debian packages Qt's xcb platform needs beyond a minimal system, by library name.
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4",
                 "xcb-keysyms": "libxcb-keysyms1"}


def check_display() -> None:
    """Fail with one line, not a Qt abort, when the window cannot open on this machine."""
    import ctypes.util
    import os

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform in ("offscreen", "minimal", "vnc"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise IonmError("no display to open the monitoring window on: use `run --headless` "
                        "(or set QT_QPA_PLATFORM=offscreen)")
    if platform in ("", "xcb") and not os.environ.get("WAYLAND_DISPLAY"):
        missing = [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]
        if missing:
            raise IonmError(f"Qt needs {', '.join(missing)} for a window on X11: "
                            f"sudo apt-get install {' '.join(missing)}")


def check_run_args(args: argparse.Namespace) -> None:
    """Refuse, in one line, a ``run`` argument this run would not use (nothing is silently
    ignored)."""
    check_publish_args(args)
    given = {"--scenario": args.scenario, "--hunt": args.hunt, "--port": args.port,
             "--record": args.record}
    if args.replay is not None:
        for option, value in given.items():
            if value is not None:
                raise IonmError(f"{option} does not apply to --replay (a replay plays back a "
                                "file; it has no device, stimulator or new recording)")
    elif args.speed is not None:
        raise IonmError("--speed applies to --replay only (use --fast to run the simulated "
                        "amplifier as fast as possible)")
    case = [o for o, v in (("--patient-id", args.patient_id), ("--procedure", args.procedure),
                           ("--operator", args.operator)) if v]
    if args.headless:
        if args.listen is not None:
            raise IonmError("--listen needs the window: headless runs make no sound")
        if case and args.record is None and not args.publish_sdc:
            raise IonmError(f"{', '.join(case)}: case metadata is stored in a recording; add "
                            "--record FILE.h5 (or publish it: --publish-sdc)")
    else:
        for option, value in (("--status-interval", args.status_interval),
                              ("--quiet", args.quiet or None)):
            if value is not None:
                raise IonmError(f"{option} applies to --headless runs (the window shows the "
                                "status and every alarm itself)")


def _check_profile_args(args: argparse.Namespace, profile: Profile) -> None:
    """Refuse source arguments the profile's source would not use."""
    if profile.kind == "simulated":
        if args.port is not None:
            raise IonmError(f"--port applies to serial and BrainFlow profiles; {profile.name!r} "
                            "is the simulated amplifier")
        return
    for option, value in (("--scenario", args.scenario), ("--fast", args.fast or None)):
        if value is not None:
            raise IonmError(f"{option} applies to the simulated amplifier and replays; profile "
                            f"{profile.name!r} streams a live {profile.kind} device")


def _source_and_montage(args: argparse.Namespace):
    """The source ``run`` asked for (replay, profile's device or simulator) and its montage."""
    from ionm_station.profiles import load_profile
    from ionm_station.session import build_source, montage_for

    profile = load_profile(args.profile)
    if args.replay is not None:
        from ionm_station.analysis import match_montage, montage_from_labels
        from ionm_station.montage import load_montage
        from ionm_station.sources.replay import ReplaySource, open_media

        media = open_media(args.replay)
        labels = list(media.info.labels)
        recorded = getattr(media, "montage", None)
        montage = (match_montage(load_montage(args.montage), labels, str(args.replay)) if args.montage
                   else recorded or montage_from_labels(labels))
        try:
            return (ReplaySource(media, speed=None if args.fast else args.speed or 1.0), montage,
                    profile)
        except ValueError as exc:
            raise IonmError(f"--speed: {exc}") from None
    _check_profile_args(args, profile)
    montage = montage_for(profile, args.montage)
    source = build_source(profile, montage, scenario=args.scenario,
                          realtime=False if args.fast else None, port=args.port)
    return source, montage, profile


def _session(args: argparse.Namespace, source, montage, profile, max_samples: int | None = None):
    """The session with the profile's chain, alarm and triggered settings, the command line's
    on top."""
    from ionm_station.session import Session

    chain = profile.chain_settings
    if args.mains_hz is not None:
        chain = dataclasses.replace(chain, mains_hz=args.mains_hz)
    alarms = dataclasses.replace(profile.alarm_config,
                                 adaptive=profile.alarm_config.adaptive or args.adaptive_threshold)
    return Session(source, montage, max_samples=max_samples, settings=chain, alarm_config=alarms,
                   triggered=profile.triggered)


def _queue_hunts(text: str, session: Session) -> None:
    """``--hunt L5-R,S1-L``: one automatic threshold hunt per screw, in order."""
    for key in text.split(","):
        level, _, side = key.strip().partition("-")
        if f"{level}-{side}" not in session.montage.root_sides():
            raise IonmError(f"--hunt {key}: montage {session.montage.name!r} has no "
                            f"{level}-{side} muscle")
        if session.source.stimulator is None:
            raise IonmError(f"--hunt {key}: this source has no stimulator")
        session.hunt(level, side)


def _listen_label(text: str, montage) -> str:
    """``--listen LABEL``: the montage's channel label (case does not matter)."""
    for label in montage.labels:
        if label.casefold() == text.strip().casefold():
            return label
    raise IonmError(f"--listen {text}: montage {montage.name!r} has no such channel; "
                    f"channels: {', '.join(montage.labels)}")


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: the same session in the window or headless, every argument honoured in both."""
    from datetime import datetime

    from ionm_station.headless import run_headless, summary
    from ionm_station.outputs import check_outputs, existing_files
    from ionm_station.recording import CaseMetadata

    check_run_args(args)
    check_outputs({"--json": args.json, "--record": args.record},
                  [args.replay, *existing_files(args.profile, args.montage, args.scenario)],
                  force=args.force, keep=("--record",))
    if not args.headless:
        check_display()
    source, montage, profile = _source_and_montage(args)
    listen = _listen_label(args.listen, montage) if args.listen is not None else None
    limit = None if args.seconds is None else source.info.seconds_to_samples(args.seconds)
    if args.replay is not None and limit is None and args.headless:
        limit = source.n_samples  # a headless replay ends with its recording
    session = _session(args, source, montage, profile, limit)
    if args.hunt:
        _queue_hunts(args.hunt, session)
    if args.baseline:
        session.baseline()
    case = CaseMetadata(args.patient_id, args.procedure, args.operator)
    profile_doc = dataclasses.asdict(profile)
    if args.record is not None:
        start = datetime.now().astimezone().isoformat(timespec="seconds")
        session.start_recording(args.record, dataclasses.replace(case, start_time=start),
                                profile_doc)
    publisher = start_publishing(args, session) if args.publish_sdc else None
    try:
        if not args.headless:
            from ionm_station.gui.app import run_gui

            code = run_gui(session, json_path=args.json, replace_json=args.force, case=case,
                           profile_doc=profile_doc, listen=listen)
            print(summary(session), flush=True)
            return code
        print(f"IONM Station {__version__} — {session.info.source} — montage {montage.name} "
              f"({len(montage.channels)} ch) — research use only, not a medical device",
              flush=True)
        if publisher is not None:
            print(f"publishing over SDC at {publisher.url}", flush=True)
        return run_headless(session, sys.stdout, args.status_interval or 1.0, args.json,
                            args.force, announce=not args.quiet)
    finally:
        if publisher is not None:
            publisher.close()


def cmd_analyze(args: argparse.Namespace) -> int:
    import contextlib
    import json
    import time

    from ionm_station.analysis import (
        analyze_record,
        load_record,
        match_montage,
        montage_from_labels,
    )
    from ionm_station.io.edf import edf_label, write_edf
    from ionm_station.montage import load_montage
    from ionm_station.outputs import atomic_output, check_outputs, existing_files
    from ionm_station.pipeline.chain import ChainSettings
    from ionm_station.profiles import load_profile

    check_outputs({"--json": args.json, "--clean-edf": args.clean_edf},
                  [args.file, *existing_files(args.profile, args.montage)], force=args.force)
    record, recorded = load_record(args.file)
    montage_name = args.montage or (load_profile(args.profile).montage if args.profile else None)
    if montage_name:
        montage = match_montage(load_montage(montage_name), record.labels, str(args.file))
    else:
        montage = recorded or montage_from_labels(record.labels)
    settings = ChainSettings(mains_hz=args.mains_hz, remove_ecg=not args.no_ecg_removal)
    t0 = time.perf_counter()
    result = analyze_record(record, montage, settings, keep_clean=args.clean_edf is not None)
    elapsed = time.perf_counter() - t0
    with contextlib.ExitStack() as outputs:  # both files appear together, or neither
        json_tmp = outputs.enter_context(atomic_output(args.json, replace=args.force))
        json_tmp.write_text(json.dumps(result.to_json(), indent=1), encoding="utf-8")
        if args.clean_edf is not None:
            assert result.clean is not None
            edf_tmp = outputs.enter_context(atomic_output(args.clean_edf, replace=args.force))
            write_edf(edf_tmp, record.sample_rate_hz, record.labels, result.clean,
                      result.annotations([edf_label(label) for label in record.labels]))
    n_a = sum(1 for e in result.events if e.train_type == "A")
    print(f"{args.file}: {result.duration_s:.1f} s, {len(record.labels)} ch @ {record.sample_rate_hz:g} Hz: "
          f"{len(result.events)} events ({n_a} A-trains), {len(result.artifacts)} artifact spans; "
          + (f"{result.pacing_pulses} pacemaker pulses taken out; " if result.pacing_pulses else "")
          + f"analysed at {result.duration_s / max(elapsed, 1e-9):.0f}× real time -> {args.json}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so that unfinished outputs are removed on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into :class:`Terminated` in the main thread."""
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(["run"] if argv == [] or (argv is None and len(sys.argv) == 1) else argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "simulate-device":
            return cmd_simulate_device(args)
        if args.command == "simulate-lab":
            return cmd_simulate_lab(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "recover":
            return cmd_recover(args)
        if args.command == "supervise":
            return cmd_supervise(args)
        if args.command == "events":
            return cmd_events(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "ncs":
            return cmd_ncs(args)
        if args.command == "muap":
            return cmd_muap(args)
        if args.command == "inject":
            return cmd_inject(args)
        if args.command in LAB_COMMANDS:
            return cmd_lab(args)
        if args.command == "biofeedback":
            return cmd_biofeedback(args)
        if args.command == "lab":
            return cmd_lab_window(args)
    except IonmError as exc:
        print(f"ionm-station: error: {shown(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of our output went away (``info | head``): quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # an output file that cannot be written, a full disk, ...
        print(f"ionm-station: error: {shown(str(exc.filename or ''))}: "
              f"{shown(str(exc.strerror or exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        sigterm = isinstance(exc, Terminated)
        print(f"ionm-station: {'terminated (SIGTERM)' if sigterm else 'interrupted (Ctrl-C)'}; "
              "no unfinished output left behind", file=sys.stderr)
        return 143 if sigterm else 130
    except Exception as exc:  # a bug of ours: one line for the user, the traceback in the log
        from ionm_station.logs import default_log_path, log, open_log

        where = open_log(default_log_path())
        log.exception("internal error in %s", args.command)
        print(f"ionm-station: internal error: {type(exc).__name__}: {shown(str(exc))}"
              + (f" (details in {where})" if where else ""), file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
