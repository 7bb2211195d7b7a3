"""Recorded simulated cases for the case-documentation tests, through a real session recorded
from sample 0, with a baseline check: the lumbar demo (cautery, an L5-L A-train — acknowledged
by the operator, the surgeon informed —, a lead-off, scripted stimuli, a TOF, an L5-R A-train),
and the pedicle-screw case with automatic threshold hunts (and two TOFs, one in blockade).

The hunts run on the screw case: in the lumbar demo their timing (a fast run's stimuli land
where acquisition is) could put them in its cautery or A-train, which is not what is tested
here."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ionm_station.profiles import load_profile
from ionm_station.recording import CaseMetadata
from ionm_station.session import Session, build_source, montage_for
from ionm_station.sim.scenario import load_scenario

LUMBAR = "lumbar_demo"
SCREWS = "pedicle_screws"
#: Screws hunted in the screw case (root-side); true thresholds in its [thresholds_ma].
HUNTS = ("L5-R", "S1-L", "L4-L")
CASE = CaseMetadata(patient_id="MRN-4711-SMITH", procedure="L4-S1 PLIF", operator="Jane Roe",
                    start_time="2025-03-01T08:15:00+01:00")
SURGEON = "Surgeon informed: L5 A-train, retractor released"


def record_case(path: Path, scenario: str, seconds: float, hunts: tuple[str, ...] = (),
                rate_hz: float = 5000.0) -> Session:
    """Record ``scenario`` into ``path`` (as fast as the machine goes), hunting ``hunts``, and
    return the stopped session. An L5-L alarm is acknowledged by the operator and the
    surgeon-informed marker entered as soon as the tile shows it."""
    profile = dataclasses.replace(load_profile("simulated"), sample_rate_hz=rate_hz)
    montage = montage_for(profile)
    source = build_source(profile, montage, scenario=scenario, realtime=False)
    session = Session(source, montage, max_samples=source.info.seconds_to_samples(seconds))
    for key in hunts:
        session.hunt(*key.split("-"))
    session.baseline()
    session.start_recording(path, CASE, dataclasses.asdict(profile))
    session.start()
    try:
        acknowledged = False
        deadline = time.monotonic() + 600
        while not session.finished and time.monotonic() < deadline:
            if not acknowledged and session.state().tile("L5-L").state == "alarm":
                session.acknowledge("L5-L", by=CASE.operator)
                session.add_marker(SURGEON)
                acknowledged = True
            time.sleep(0.01)
    finally:
        session.stop()
    return session


def true_alarms(scenario: str, seconds: float) -> list[tuple[str, float]]:
    """(root-side, onset s) of every A-train ``scenario`` plays in the first ``seconds``."""
    montage = montage_for(load_profile("simulated"))
    out = []
    for e in load_scenario(scenario).events:
        if e.kind != "a_train" or e.at_s >= seconds:
            continue
        if e.channel is not None:
            key = next(c.tile_key for c in montage.channels if c.label == e.channel)
        else:
            key = f"{e.root}-{e.side}"
        out.append((key, e.at_s))
    return out


def true_thresholds() -> dict[str, float]:
    """The screw case's stimulation threshold of each hunted screw (mA)."""
    scenario = load_scenario(SCREWS)
    return {key: scenario.threshold_ma(key) for key in HUNTS}
