"""Headless runner: the live pipeline without a window — status lines, alarm lines, JSON.

It reads only what the window reads: :meth:`Session.state` and the event log.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from ionm_station.caselog import baseline_text, pacing_text
from ionm_station.events import Event
from ionm_station.outputs import write_text
from ionm_station.session import Session

#: Event kinds printed as they happen (alarm tile changes, technical alarms, worker faults).
ANNOUNCED = ("alarm", "technical_alarm", "worker_fault", "worker_restarted", "worker_failed",
             "source_error", "source_recovered", "recording_error", "not_monitored", "baseline",
             "pacing")


def run_headless(session: Session, out: TextIO, status_interval_s: float = 1.0,
                 json_path: Path | None = None, replace_json: bool = False,
                 announce: bool = True) -> int:
    """Run ``session`` until its sample limit (if any) or Ctrl-C; return the exit code.

    Prints one status line every ``status_interval_s``, a line for every alarm tile change,
    technical alarm and worker fault as it happens (unless not ``announce``: ``--quiet``), and
    a final summary. Ctrl-C or SIGTERM end
    the run with a clean shutdown. Exit code 0, or 1 when the case had time that was not
    monitored (a blinding technical alarm was raised) or a fault that was not recovered.
    The ``json_path`` report is written atomically (an existing file replaced only with
    ``replace_json``).
    """
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    cursor = 0
    try:
        session.start()
        next_status = time.monotonic() + status_interval_s
        while not stop.is_set() and not session.finished:
            stop.wait(0.02)
            if announce:
                cursor = _announce(session, out, cursor)
            if time.monotonic() >= next_status:
                print(session.status().line(), file=out, flush=True)
                next_status += status_interval_s
    finally:
        session.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if announce:
        _announce(session, out, cursor)
    state = session.state()
    print(summary(session), file=out, flush=True)
    if json_path is not None:
        write_report(session, json_path, replace_json)
    return 1 if _unmonitored(session.events.snapshot()) or state.status.error else 0


def _announce(session: Session, out: TextIO, cursor: int) -> int:
    new, cursor = session.events.since(cursor)
    fs = session.info.sample_rate_hz
    for e in new:
        if e.kind in ANNOUNCED:
            print(f"{e.start / fs:9.3f} s  {e.kind.upper():17s} {_describe(e)}", file=out, flush=True)
    return cursor


def _describe(e: Event) -> str:
    d = e.data
    if e.kind == "alarm":
        return f"{d['tile']}: {d['state']}" + (f" ({d['priority']})" if d.get("priority") else "") \
            + (f" — {d['reason']}" if d.get("reason") else "")
    if e.kind == "technical_alarm":
        return f"{d['condition']} {d['what']}: {d['reason']}"
    if e.kind == "baseline":
        return f"{d['tile']}: " + baseline_text(d).removeprefix("baseline: ")
    if e.kind == "pacing":
        return pacing_text(d)
    return "; ".join(f"{k} {v}" for k, v in d.items())


def _unmonitored(events: list[Event]) -> bool:
    return any(e.kind == "technical_alarm" and e.data["what"] == "raised" and e.data["priority"]
               and e.data["condition"] in ("not_monitoring", "signal_lost") for e in events)


def report(session: Session) -> dict:
    """The ``--json`` document: the final state (tiles, train time, thresholds, settings, worker
    health, counters), event counts, the tile and technical-alarm timelines, screws and TOF."""
    fs = session.info.sample_rate_hz
    events = session.events.snapshot()
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    trig = session.triggered_data
    return {
        "state": session.state().to_dict(),
        "channels": list(session.info.labels),
        "events": counts,
        "tile_timeline": [{"t_s": round(e.start / fs, 4), **e.data} for e in events if e.kind == "alarm"],
        "technical_timeline": [{"t_s": round(e.start / fs, 4), **e.data}
                               for e in events if e.kind == "technical_alarm"],
        "faults": [{"t_s": round(e.start / fs, 4), "kind": e.kind, **e.data} for e in events
                   if e.kind in ("worker_fault", "worker_restarted", "worker_failed", "source_error",
                                 "source_recovered", "recording_error")],
        "screws": trig.screw_log.to_json(),
        "tof": [asdict(t) | {"blockade": t.blockade()} for t in trig.tof_results],
    }


def write_report(session: Session, path: Path, replace: bool = False) -> None:
    """Write :func:`report` to ``path`` atomically (an existing file only with ``replace``)."""
    write_text(path, json.dumps(report(session), indent=2), replace)


def summary(session: Session) -> str:
    """Closing line: samples per channel, signal time, gaps, overruns, processing, faults."""
    st = session.status()
    faults = sum(1 for e in session.events.snapshot() if e.kind in ("worker_fault", "source_error"))
    return (f"done: {st.samples} samples per channel ({st.elapsed_s:.2f} s at "
            f"{st.rate_hz:g} Hz, {st.channels} ch), gaps {st.gaps}, "
            f"dropped {st.dropped}, overruns {st.overruns}, processed {st.processed}, "
            f"faults {faults}" + (f", last error {st.error}" if st.error else ""))
