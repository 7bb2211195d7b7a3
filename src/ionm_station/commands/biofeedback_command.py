"""``ionm-station biofeedback``: an EMG biofeedback session (window, or ``--headless``).

Wiring in ``cli.py``::

    from ionm_station.commands.biofeedback_command import add_biofeedback_parser, cmd_biofeedback
    add_biofeedback_parser(sub)
    ... if args.command == "biofeedback": return cmd_biofeedback(args)

The session is the real one (simulated amplifier → raw ring → processing → clean ring) with a
:class:`~ionm_station.therapy.live.BiofeedbackLive` reading one channel. Errors are one line,
exit code 2.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ionm_station.commands.args import positive
from ionm_station.errors import IonmError


def _band(value: str) -> tuple[float, float]:
    """``LOW,HIGH`` in % MVC."""
    import math

    parts = value.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH in % MVC (e.g. 30,50), got "
                                         f"{value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi <= 200):
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW < HIGH <= 200 (% MVC), got {value!r}")
    return lo, hi


def _visit(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a visit number, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a visit number, got {value!r}")
    return n


def add_biofeedback_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "biofeedback", help="EMG biofeedback session: patient display, clinician view, scores",
        description="An EMG biofeedback session on the simulated amplifier: calibration (MVC), "
                    "relaxation or activation training with work/rest trials, a target band in "
                    "%% MVC and a reward while in it; per trial the time in target, onset and "
                    "release time and the median frequency; saved and compared with earlier "
                    "sessions (docs/therapy.md).")
    p.add_argument("--headless", action="store_true",
                   help="no window: a line per cue and per scored trial, then the scores")
    p.add_argument("--scenario", required=True,
                   help="simulated patient: a biofeedback scenario (bf_calibration, "
                        "bf_activation, bf_relaxation, bf_fatigue) or a path")
    p.add_argument("--seed", type=int, help="simulator seed (default: the scenario's)")
    p.add_argument("--seconds", type=positive,
                   help="stop after this much signal (s); default: the end of the plan + 1 s")
    p.add_argument("--fast", action="store_true", help="as fast as possible, not in real time")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the session result here")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--smoothing-ms", type=positive, default=250.0,
                   help="display envelope: moving RMS window (ms, 20–2000; default 250)")
    p.add_argument("--mvc-uv", type=positive, help="set the band from this MVC (µV RMS) instead "
                                                   "of the session's maximal efforts")
    p.add_argument("--band", type=_band, metavar="LOW,HIGH",
                   help="target band (%% MVC; default: the scenario's)")
    p.add_argument("--patient", metavar="ID", help="store the session in the lab database as a "
                                                   "biofeedback study of this patient (--visit)")
    p.add_argument("--visit", type=_visit, metavar="N", help="the patient's visit number")
    p.add_argument("--db", type=Path, metavar="FILE", help="lab database (default: the user's)")
    p.add_argument("--sessions", type=Path, metavar="DIR",
                   help="without the lab database: save the session JSON into DIR and trend "
                        "over the sessions there")
    p.add_argument("--trend", type=Path, metavar="OUT.png|pdf",
                   help="trend plot of this patient's sessions (--patient or --sessions)")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if (args.patient is None) != (args.visit is None):
        raise IonmError("--patient and --visit go together (the session is stored in that visit)")
    if args.db is not None and args.patient is None:
        raise IonmError("--db applies with --patient/--visit")
    if args.patient is not None and args.sessions is not None:
        raise IonmError("--sessions is for stations without the lab database; give either "
                        "--patient/--visit or --sessions")
    if args.trend is not None:
        if args.patient is None and args.sessions is None:
            raise IonmError("--trend needs the earlier sessions: --patient/--visit or --sessions")
        if args.trend.suffix.lower() not in (".png", ".pdf"):
            raise IonmError(f"--trend {args.trend}: expected a .png or .pdf file name")
    if args.sessions is not None and not args.sessions.is_dir():
        raise IonmError(f"--sessions {args.sessions}: not a folder")
    if not 20 <= args.smoothing_ms <= 2000:
        raise IonmError(f"--smoothing-ms: expected 20–2000 ms, got {args.smoothing_ms:g}")


def _lab_target(args: argparse.Namespace):
    """Open the database and find the patient and visit before any work (one line if not)."""
    from ionm_station.lab import patients as pt

    db = pt.open_db(args.db)
    try:
        patient = pt.get_patient(db.conn, args.patient)
        visit = pt.get_visit(db.conn, args.visit)
        if visit.patient != patient.pk:
            raise pt.LabDbError(f"visit {visit.pk} is not a visit of patient {args.patient!r}")
    except BaseException:
        db.close()
        raise
    return db, patient, visit


def cmd_biofeedback(args: argparse.Namespace) -> int:
    from ionm_station.outputs import check_outputs, existing_files
    from ionm_station.sim.scenario import load_scenario
    from ionm_station.therapy.biofeedback import BiofeedbackCore
    from ionm_station.therapy.live import BiofeedbackLive, protocol_for, simulated_session

    _check_args(args)
    check_outputs({"--json": args.json, "--trend": args.trend},
                  existing_files(args.scenario, args.db), force=args.force)
    if not args.headless:
        from ionm_station.cli import check_display

        check_display()
    scenario = load_scenario(args.scenario)
    if scenario.biofeedback is None:
        raise IonmError(f"--scenario {args.scenario}: not a biofeedback scenario (no "
                        "[biofeedback] table; shipped: bf_calibration, bf_activation, "
                        "bf_relaxation, bf_fatigue)")
    try:
        protocol = protocol_for(scenario, band_pct=args.band)
        protocol.check()
    except ValueError as exc:
        raise IonmError(f"--band: {exc}") from None
    lab = _lab_target(args) if args.patient is not None else None
    try:
        seconds = args.seconds or protocol.duration_s + 1.0
        session = simulated_session(scenario, seconds, seed=args.seed, fast=args.fast)
        try:
            core = BiofeedbackCore(session.info.sample_rate_hz, protocol, args.smoothing_ms,
                                   args.mvc_uv)
        except ValueError as exc:
            raise IonmError(str(exc)) from None
        channel = session.montage.labels.index(scenario.biofeedback.channel)
        live = BiofeedbackLive(session, channel, core)
        if args.headless:
            code = _run_headless(live, sys.stdout)
        else:
            from ionm_station.gui.biofeedback_window import run_biofeedback_gui

            code = run_biofeedback_gui(live)
        _finish(args, live, scenario, lab)
        return code
    finally:
        if lab is not None:
            lab[0].close()


def _run_headless(live: Any, out: Any) -> int:
    """Run the session to its end, printing cues and trial scores; Ctrl-C or SIGTERM end it
    early, cleanly (what was done is scored and saved)."""
    stop = threading.Event()
    session = live.session
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    fs = session.info.sample_rate_hz
    printed = 0
    print(f"biofeedback {live.core.protocol.kind} on {live.label} — {session.info.source} — "
          "research use only, not a medical device", file=out, flush=True)
    try:
        session.start()
        while not stop.is_set() and not session.finished:
            live.poll()
            printed = _print_events(live, out, printed, fs)
            stop.wait(0.005)
    finally:
        session.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    live.finish()
    _print_events(live, out, printed, fs)
    if stop.is_set():
        print("stopped early: the trials done so far are scored", file=out, flush=True)
    return 0


def _print_events(live: Any, out: Any, printed: int, fs: float) -> int:
    for e in live.events[printed:]:
        t = f"{e['index'] / fs:8.2f} s"
        if e["kind"] == "cue" and e["cue"] != "end":
            what = "maximal effort" if e["phase"] == "mvc" else "trial"
            print(f"{t}  {e['cue'].upper():4s} {what} {e['trial']}", file=out, flush=True)
        elif e["kind"] == "mvc":
            band = e["band_uv"]
            print(f"{t}  MVC {e['mvc_uv']:.0f} µV RMS" + (f", band {band[0]:.0f}–{band[1]:.0f} µV"
                                                          if band else ""), file=out, flush=True)
        elif e["kind"] == "trial":
            print(f"{t}  {trial_line(e['score'])}", file=out, flush=True)
    return len(live.events)


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:.0f} ms"


def trial_line(s: Any) -> str:
    """One line of a trial's scores."""
    name = "effort" if s.kind == "mvc" else "trial"
    parts = [f"{name} {s.number}: onset {_ms(s.onset_s)}", f"release {_ms(s.release_s)}"]
    if s.time_in_target is not None:
        parts.append(f"in target {s.time_in_target * 100:.0f} %")
    if s.median_frequency_hz is not None:
        parts.append(f"MF {s.median_frequency_hz:.0f} Hz")
    return ", ".join(parts)


def _finish(args: argparse.Namespace, live: Any, scenario: Any, lab: Any) -> None:
    """Scores line, JSON, storing (database or folder), comparison and trend."""
    from ionm_station.outputs import write_text
    from ionm_station.therapy import trend
    from ionm_station.therapy.live import result

    doc = result(live, scenario, args.seed)
    doc["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    sc = doc["scores"]
    tit = sc["time_in_target"]
    print(f"scores: {sc['trials_scored']}/{sc['trials_planned']} "
          f"{'efforts' if sc['protocol'] == 'calibration' else 'trials'}, MVC "
          f"{sc['mvc_uv'] or 0:.0f} µV" + ("" if tit is None else f", time in target {tit * 100:.0f} %")
          + f", onset {_ms(sc['onset_s_median'])}, release {_ms(sc['release_s_median'])}"
          + ("" if sc["median_frequency_slope_hz_per_trial"] is None else
             f", MF slope {sc['median_frequency_slope_hz_per_trial']:+.2f} Hz/trial"), flush=True)
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.json is not None:
        write_text(args.json, text, replace=args.force)
        print(f"-> {args.json}")
    points = None
    if lab is not None:
        from ionm_station.lab import patients as pt

        db, patient, visit = lab
        study = pt.add_study(db.conn, visit, "biofeedback", doc,
                             hashlib.sha256(text.encode("utf-8")).hexdigest(),
                             result_path=None if args.json is None else str(args.json.resolve()),
                             site=live.label)
        print(f"stored as study {study.pk} of visit {visit.pk} ({patient.patient_id}) -> {db.path}")
        points = trend.history_from_db(db.conn, patient)
    elif args.sessions is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = args.sessions / f"biofeedback-{stamp}-{scenario.biofeedback.protocol.kind}.json"
        n = 1
        while path.exists():
            n += 1
            path = args.sessions / f"biofeedback-{stamp}-{n}.json"
        write_text(path, text)
        print(f"session saved -> {path}")
        points = trend.history_from_folder(args.sessions)
    if points is not None:
        for line in trend.comparison(points):
            print(line)
        if args.trend is not None:
            trend.plot_trend(points, args.trend, replace=args.force)
            print(f"trend of {len(points)} sessions -> {args.trend}")
