"""Run inside a private network namespace by test_remote_processes.py: discovery for real.

Two discoverable stations and a supervisor that finds them by WS-Discovery on the namespace's
own loopback (multicast routed to lo); then station 1 is killed and restarted. Prints one JSON
line with what it saw; exit 0 when every step held.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.remote_procs import (
    connected,
    kill_until_lost,
    read_wall,
    start_station,
    start_supervisor,
    stop,
    wait_for,
    wait_until_back,
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
        seen["found_s"] = round(wait_for(lambda: connected(out, "OR 1")
                                         and connected(out, "OR 2"), 60), 2)
        seen["lost_after_s"] = round(kill_until_lost(stations["OR 1"], out, "OR 1"), 2)
        seen["other_still_connected"] = connected(out, "OR 2")
        stations["OR 1"] = start_station(profile, 6501, "OR 1", log, "--discoverable")
        seen["back_after_s"] = round(wait_until_back(out, "OR 1"), 2)
        seen["rooms"] = sorted(r["room"] for r in read_wall(out)["rooms"])
    finally:
        stop(sup, *stations.values())
    print(json.dumps(seen), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
