"""The station log: worker faults with their tracebacks, restarts, technical alarms, internal
errors. One file per user (``$IONM_STATION_LOG_DIR`` or ``~/.local/state/ionm-station``); the
case's event log and recording hold the same facts without the tracebacks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("ionm_station")


def default_log_path() -> Path:
    """Where worker faults and their tracebacks are logged: ``$IONM_STATION_LOG_DIR`` or the
    user state directory (``~/.local/state/ionm-station/station.log``)."""
    base = os.environ.get("IONM_STATION_LOG_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "ionm-station")
    return Path(base) / "station.log"


def open_log(path: Path) -> Path | None:
    """Send the station's log (faults, restarts, technical alarms) to ``path`` (once per file);
    returns the path, or None if it cannot be written (the event log still has everything)."""
    target = str(path.resolve())
    if any(getattr(h, "baseFilename", None) == target for h in log.handlers):
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path
