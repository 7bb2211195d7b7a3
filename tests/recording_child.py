"""Child process for the SIGKILL test: a real-time simulated session recorded to argv[1].

Prints ``start <monotonic s>`` once recording has started — the time taken before the source
opened, so no sample was acquired before it —, then ``progress <acquired samples>
<samples in file> <monotonic s>`` every 50 ms, until killed.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from ionm_station.profiles import load_profile
from ionm_station.recording import CaseMetadata, Recorder
from ionm_station.session import Session, build_source, montage_for


def main(path: str) -> None:
    profile = load_profile("simulated")
    montage = montage_for(profile)
    source = build_source(profile, montage, realtime=True)
    session = Session(source, montage)
    recorder = Recorder(session.raw, session.events, session.info, montage, path,
                        case=CaseMetadata("KILL-1", "kill test", "pytest", "2025-01-01T08:00:00"),
                        counters=lambda: dataclasses.asdict(source.counters), start_index=0)
    opened = time.monotonic()
    session.start()
    recorder.start()
    print(f"start {opened:.6f}", flush=True)
    while True:
        time.sleep(0.05)
        st = recorder.status()
        print(f"progress {session.acquisition.next_index} {st.samples_written} "
              f"{time.monotonic():.6f} {st.state}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
