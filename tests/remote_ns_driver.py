"""Run inside a private network namespace by test_remote_processes.py: discovery for real.

Two discoverable stations and a supervisor that finds them by WS-Discovery on the namespace's
own loopback (multicast routed to lo); then station 1 is killed and restarted. Prints one JSON
line with what it saw; exit 0 when every step held.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.remote_procs import (  # noqa: E402
    read_wall,
    room,
    start_station,
    start_supervisor,
    stop,
    wait_for,
    write_profile,
)


def main(folder: Path) -> int:
    profile = write_profile(folder, 4, 2000)
    log = folder / "ns.log"
    stations = {name: start_station(profile, port, name, log, "--discoverable")
                for name, port in (("OR 1", 6501), ("OR 2", 6502))}
    out = folder / "wall.json"
    sup = start_supervisor(out, log, "--discover", "--sdc-address", "127.0.0.1")
    seen: dict[str, object] = {}
    try:
        def connected(name: str) -> bool:
            r = room(read_wall(out), name)
            return r is not None and r["connection"] == "connected"

        seen["found_s"] = round(wait_for(lambda: connected("OR 1") and connected("OR 2"), 60), 2)
        stations["OR 1"].send_signal(signal.SIGKILL)
        stations["OR 1"].wait()
        killed = time.monotonic()
        wait_for(lambda: (room(read_wall(out), "OR 1") or {}).get("connection_lost"), 10)
        seen["lost_after_s"] = round(time.monotonic() - killed, 2)
        seen["other_still_connected"] = connected("OR 2")
        stations["OR 1"] = start_station(profile, 6501, "OR 1", log, "--discoverable")
        back = time.monotonic()
        wait_for(lambda: connected("OR 1") and room(read_wall(out), "OR 1")["connects"] >= 2, 60)
        seen["back_after_s"] = round(time.monotonic() - back, 2)
        seen["rooms"] = sorted(r["room"] for r in read_wall(out)["rooms"])
    finally:
        stop(sup, *stations.values())
    print(json.dumps(seen), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
