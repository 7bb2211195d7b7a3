"""Real needle EMG through `analyze`: PhysioNet emgdb (Goldberger et al., Circulation 2000;
ODC-By 1.0), tibialis anterior, 4 kHz — a patient with an L5 radiculopathy and a healthy subject.

The data sit in ../shared/data/physionet_emgdb beside the checkout (CI has them; elsewhere the
test is skipped, except under CI=true where a missing fixture is a failure).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.io.edf import write_edf

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet_emgdb"


def record_mv(name: str) -> np.ndarray:
    if not DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{DATA} missing: CI must have ../shared beside the checkout")
        pytest.skip(f"{DATA} not found (PhysioNet fixture lives in ../shared)")
    return np.loadtxt(DATA / f"emg_{name}_mV.txt", comments="#")[:, 1]


@pytest.mark.parametrize("name", ["neuropathy", "healthy"])
def test_real_tibialis_anterior_emg(tmp_path: Path, name: str) -> None:
    uv = record_mv(name) * 1000.0
    edf = tmp_path / f"{name}.edf"
    write_edf(edf, 4000, ["L5-R TibAnt"], uv[:, None], range_uv=10_000)
    out = tmp_path / "ev.json"
    assert main(["analyze", str(edf), "--json", str(out), "--mains-hz", "50"]) == 0
    doc = json.loads(out.read_text())
    assert doc["channels"][0]["root"] == "L5" and doc["channels"][0]["side"] == "R"
    assert doc["fs"] == 4000 and abs(doc["duration_s"] - len(uv) / 4000) < 0.1
    events = doc["events"]
    # a voluntary contraction (an interference pattern: continuous, irregular) is found as
    # activity lasting seconds, sized like the signal itself
    assert sum(e["offset_s"] - e["onset_s"] for e in events) >= 3.0
    assert max(e["peak_uv"] for e in events) > 0.3 * (uv.max() - uv.min())
    assert all(e["channel"] == "L5-R TibAnt" for e in events)
    # real EMG without cautery: nothing is blanked as cautery
    assert not [a for a in doc["artifacts"] if a["kind"] == "cautery"]
