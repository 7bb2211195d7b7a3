"""``ionm-station inject``: EMG-guided injection on one channel (window, or ``--headless``).

Headless, the simulated amplifier runs as fast as the machine allows (held to the guide's
reading position, so stimuli land where the guide is) and the plan is given on the command
line: ``--locate-at S`` starts a motor-point search at S s of signal, ``--site S:UNITS`` logs an
injection of UNITS at S s. It prints the indicator's changes, the search's stimuli and result
and the sites, and writes the report (:meth:`~ionm_station.injection.InjectionGuide.report`,
with the scenario's ground truth and the indicator's score) to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ionm_station.commands.args import positive
from ionm_station.errors import IonmError

#: Sample rate of the simulated needle channel (Hz).
DEFAULT_RATE_HZ = 10_000.0


def _site(text: str) -> tuple[float, float]:
    at, sep, units = text.partition(":")
    try:
        at_s, dose = float(at), float(units)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AT_S:UNITS (e.g. 22:50), got {text!r}") from None
    if not sep or not (0 <= at_s < 1e6) or not (0 < dose <= 1000):
        raise argparse.ArgumentTypeError(f"expected AT_S:UNITS with AT_S >= 0 and 0 < UNITS <= "
                                         f"1000, got {text!r}")
    return at_s, dose


def add_inject_parser(sub: Any) -> None:
    p = sub.add_parser("inject", help="EMG-guided injection on one channel (window, or --headless)",
                       description="Injection guidance: one channel's trace and EMG audio, a "
                                   "target-muscle-active indicator, motor-point stimulation in "
                                   "1.0 and 0.1 mA steps, and a log of injection sites with "
                                   "their EMG evidence (simulated amplifier).")
    p.add_argument("--headless", action="store_true", help="no window: run the plan and report")
    p.add_argument("--scenario", default="injection_gastroc",
                   help="simulator scenario name or path (default: injection_gastroc)")
    p.add_argument("--channel", metavar="LABEL",
                   help="the needle channel (a label of the scenario's montage; default: the "
                        "channel the scenario's events are on)")
    p.add_argument("--seconds", type=positive, help="stop after this much signal (s); headless: "
                                                    "default the scenario's length")
    p.add_argument("--rate", type=positive, default=DEFAULT_RATE_HZ, metavar="HZ",
                   help="sample rate of the simulated channel (2000–20000 Hz, default 10000)")
    p.add_argument("--locate-at", type=positive, metavar="S",
                   help="headless: start a motor-point search at S s of signal")
    p.add_argument("--site", type=_site, action="append", default=[], metavar="S:UNITS",
                   help="headless: log an injection of UNITS units at S s (repeatable)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the report here (headless)")
    p.add_argument("--record", type=Path, metavar="FILE.h5",
                   help="record the session (the injection sites are events in it)")
    p.add_argument("--db", type=Path, metavar="LAB.sqlite",
                   help="also store the session as an 'injection' study of a new visit in the "
                        "EMG lab's patient database (with --patient-id)")
    p.add_argument("--patient-id", help="the patient in --db")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")


def _check(args: argparse.Namespace) -> None:
    if not 2000 <= args.rate <= 20000:
        raise IonmError(f"--rate: the simulator makes 2000–20000 Hz, got {args.rate:g}")
    if args.headless and args.json is None:
        raise IonmError("--headless needs --json OUT (where the report goes)")
    if not args.headless:
        for option, value in (("--json", args.json), ("--locate-at", args.locate_at),
                              ("--site", args.site or None)):
            if value is not None:
                raise IonmError(f"{option} applies to --headless runs (in the window the "
                                "clinician stimulates and logs sites)")
    if (args.db is None) != (args.patient_id is None):
        raise IonmError("--db and --patient-id go together")


def _default_channel(scenario: Any) -> str | None:
    for e in scenario.events:
        if e.channel is not None:
            return e.channel
    return None


def build(args: argparse.Namespace, realtime: bool):
    """The session, guide and amplifier of an ``inject`` run."""
    from ionm_station.injection import InjectionGuide, PacedSource, single_channel
    from ionm_station.montage import load_montage
    from ionm_station.session import Session
    from ionm_station.sim.amplifier import SimulatedAmplifier
    from ionm_station.sim.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    try:
        montage, _ = single_channel(load_montage(scenario.montage),
                                    args.channel or _default_channel(scenario))
    except ValueError as exc:
        raise IonmError(f"--channel: {exc}") from None
    amp = SimulatedAmplifier(montage, scenario, sample_rate_hz=args.rate, realtime=realtime)
    seconds = args.seconds or (None if realtime else scenario.duration_s)
    limit = None if seconds is None else round(seconds * args.rate)
    holder: dict[str, Any] = {}
    # the clean ring (the guide's) lags the raw one by the chain's delay: the source is held
    # that far plus the lead ahead of the guide
    source = amp if realtime else PacedSource(
        amp, lambda: holder["guide"].position + holder["session"].chain_delay)
    session = Session(source, montage, max_samples=limit)
    guide = InjectionGuide(session, 0)
    holder.update(guide=guide, session=session)
    return session, guide, amp


def cmd_inject(args: argparse.Namespace) -> int:
    from ionm_station.audio_out import probe
    from ionm_station.outputs import check_outputs, existing_files, write_text

    _check(args)
    check_outputs({"--json": args.json, "--record": args.record},
                  [*existing_files(args.scenario), args.db], force=args.force, keep=("--record",))
    if args.db is not None and not args.db.is_file():
        raise IonmError(f"--db {args.db}: no lab database there")
    if not args.headless:
        from ionm_station.cli import check_display

        check_display()
        session, guide, _ = build(args, realtime=True)
        if args.record is not None:
            session.start_recording(args.record)
        from ionm_station.gui.injection_window import run_injection_window

        code = run_injection_window(session, guide)
        _store(args, guide, session)
        return code
    session, guide, amp = build(args, realtime=False)
    seconds = session.info.samples_to_seconds(session.acquisition.max_samples)
    for at_s, _ in args.site:
        if at_s + 0.5 > seconds:
            raise IonmError(f"--site {at_s:g}: past the end of the run ({seconds:g} s; the "
                            "evidence needs 0.5 s after it)")
    if args.locate_at is not None and args.locate_at >= seconds:
        raise IonmError(f"--locate-at {args.locate_at:g}: past the end of the run ({seconds:g} s)")
    _, notice = probe()
    print(f"inject: {guide.label} ({guide.muscle}, {guide.side}) — scenario "
          f"{amp.scenario.name} — {seconds:g} s at {args.rate:g} Hz — research use only",
          flush=True)
    if notice:
        print(notice, flush=True)
    if args.record is not None:
        session.start_recording(args.record)
    report = _run(session, guide, args, sys.stdout)
    report["truth"] = truth(guide, amp)
    write_text(args.json, json.dumps(report, indent=1), args.force)
    _store(args, guide, session)
    st = report["stimulation"]
    print(f"done: {len(report['segments'])} indicator segments, motor point "
          f"{st['motor_point_ma']} mA, {len(report['sites'])} sites -> {args.json}", flush=True)
    return 0


def _run(session: Any, guide: Any, args: argparse.Namespace, out: Any) -> dict:
    fs = session.info.sample_rate_hz
    sites = sorted(args.site)
    located = args.locate_at is None
    shown = 0
    session.start()
    try:
        while True:
            guide.poll()
            t = guide.position / fs
            if not located and t >= args.locate_at:
                guide.start_search()
                located = True
            while sites and t >= sites[0][0]:
                at_s, units = sites.pop(0)
                guide.log_site(units, index=round(at_s * fs))
            for a, state, env in guide.timeline[shown:]:
                print(f"{a / fs:9.3f} s  {state.upper():9s} envelope {env:.1f} µV", file=out,
                      flush=True)
            shown = len(guide.timeline)
            ended = session.finished and guide.position >= session.clean.published
            if ended and not guide.busy:
                break
            if ended and session.clean.published - guide.position == 0 and guide.busy:
                break  # the signal ended before the plan did: report what there is
            time.sleep(0.002)
    finally:
        session.stop()
    guide.poll()
    for c, r, t in guide.curve:
        print(f"stimulus {c:4.1f} mA: {r:7.1f} µV {'twitch' if t else '-'}", file=out)
    for s in guide.sites:
        print(f"site {s.index / fs:8.3f} s: {s.muscle} {s.side} {s.dose_units:g} U "
              f"({s.state}, {s.rms_uv:.1f} µV RMS)", file=out, flush=True)
    return guide.report()


def truth(guide: Any, amp: Any) -> dict:
    """The scenario's ground truth next to what the guide found."""
    from ionm_station.injection import _episodes, motor_point_truth_ma, score

    sc = amp.scenario
    fs = guide.fs
    frame = round(0.01 * fs)
    threshold = sc.thresholds_ma.get(guide.target)
    return {
        "episodes": [{"kind": "active" if k == "b_train" else "insertion",
                      "start_s": round(a * frame / fs, 3), "stop_s": round(b * frame / fs, 3)}
                     for k, a, b in _episodes(amp.truth, 0, frame)],
        "motor_point_ma": None if threshold is None
        else round(motor_point_truth_ma(threshold, sc.cmap_max_uv), 3),
        "threshold_ma": threshold,
        "score": score(guide, amp.truth, 0),
    }


def _store(args: argparse.Namespace, guide: Any, session: Any) -> None:
    """``--db``: the session as an ``injection`` study of a new visit of ``--patient-id``."""
    if args.db is None:
        return
    import hashlib

    from ionm_station.lab import patients

    doc = guide.report()
    text = json.dumps(doc, sort_keys=True)
    db = patients.open_db(args.db)
    try:
        patient = patients.get_patient(db.conn, args.patient_id)
        visit = patients.add_visit(db.conn, patient, notes="EMG-guided injection")
        patients.add_study(db.conn, visit, "injection", doc,
                           hashlib.sha256(text.encode()).hexdigest(),
                           site=f"{guide.muscle} {guide.side}".strip(),
                           source_path=str(args.record) if args.record else None)
    finally:
        db.close()
    print(f"stored in {args.db}: patient {args.patient_id}, visit {visit.date}, "
          f"{len(doc['sites'])} sites", flush=True)
