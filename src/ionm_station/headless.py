"""Headless runner: the live pipeline without a window, with a periodic status line."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from ionm_station.session import Session, SessionStatus


def run_headless(session: Session, out: TextIO, status_interval_s: float = 1.0,
                 json_path: Path | None = None) -> int:
    """Run ``session`` until its sample limit (if any), Ctrl-C or a fault; return the exit code.

    Prints one status line every ``status_interval_s`` and a final summary. Ctrl-C or SIGTERM
    end the run with a clean shutdown (exit code 0). A source fault ends it with exit code 1.
    """
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        session.start()
        next_status = time.monotonic() + status_interval_s
        while not stop.is_set() and not session.acquisition.finished:
            stop.wait(0.02)
            if time.monotonic() >= next_status:
                print(session.status().line(), file=out, flush=True)
                next_status += status_interval_s
    finally:
        session.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    status = session.status()
    print(summary(status, session), file=out, flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps(report(session, status), indent=2))
    return 1 if status.error else 0


def report(session: Session, status: SessionStatus) -> dict:
    """The ``--json`` document: status, event counts, train time, alarm tiles, screws, TOF."""
    detector = session.dsp.chain.detector
    return {
        "status": status.to_dict(),
        "channels": list(session.info.labels),
        "events": _event_counts(session),
        "train_time_s": {k: round(v, 4) for k, v in detector.train_time_s().items()},
        "train_time_by_root_s": {k: round(v, 4) for k, v in detector.root_side_train_time_s().items()},
        "alarms": [asdict(t) for t in session.alarms.tiles()],
        "screws": session.triggered.screw_log.to_json(),
        "tof": [asdict(t) | {"blockade": t.blockade()} for t in session.triggered.tof_results],
    }


def _event_counts(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in session.events.snapshot():
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


def summary(status: SessionStatus, session: Session) -> str:
    """Closing line: samples per channel, signal time, gaps, overruns and DSP throughput."""
    processed = session.dsp.reader.cursor
    return (f"done: {status.samples} samples per channel ({status.elapsed_s:.2f} s at "
            f"{status.rate_hz:g} Hz, {status.channels} ch), gaps {status.gaps}, "
            f"dropped {status.dropped}, overruns {status.overruns}, filtered {processed}"
            + (f", ERROR {status.error}" if status.error else ""))
