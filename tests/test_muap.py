"""Quantitative needle EMG (issue 15): simulated pools with ground truth, spontaneous activity,
the real PhysioNet needle recordings, and the ``muap`` command's bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.lab.measure import measure_template
from ionm_station.lab.needle import analyse
from ionm_station.lab.needle_sim import SPONTANEOUS_KINDS, simulate_pool, simulate_rest
from ionm_station.lab.reference import Limit, MuscleReference, verdict

EMGDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "physionet_emgdb"
FS = 10_000.0


def _errors(case, result):
    """Amplitude (relative) and duration (ms) errors of found units matched to true ones by
    their discharge times (≥ 80 % within 6 ms), each true unit once."""
    amp, dur, used = [], [], set()
    for u in result.muaps:
        best = max(range(len(case.muaps)), key=lambda j: np.mean(
            np.abs(u.times_s[:, None] - case.muaps[j].times_s[None, :]).min(1) < 0.006))
        hit = np.mean(np.abs(u.times_s[:, None] - case.muaps[best].times_s[None, :]).min(1)
                      < 0.006)
        if hit >= 0.8 and best not in used:
            used.add(best)
            t = case.muaps[best].shape
            amp.append(abs(u.shape.amplitude_uv / t.amplitude_uv - 1))
            dur.append(abs(u.shape.duration_ms - t.duration_ms))
    return np.array(amp), np.array(dur), len(used)


@pytest.mark.parametrize("pool", ["normal", "neurogenic", "myopathic"])
def test_pool_measures_and_verdict(pool):
    case = simulate_pool(pool, seed=11, fs_hz=FS)
    result = analyse(case.data_uv, FS, "tibialis anterior")
    amp, dur, found = _errors(case, result)
    assert found >= 0.6 * len(case.muaps)
    assert np.median(amp) <= 0.05
    assert np.median(dur) <= (2.5 if pool == "neurogenic" else 1.0)
    assert result.pattern == pool
    assert not result.trains  # voluntary activity only


@pytest.mark.parametrize("kind", [*SPONTANEOUS_KINDS, None])
def test_spontaneous_kind(kind):
    case = simulate_rest(kind, seed=12, fs_hz=FS, duration_s=20.0)
    result = analyse(case.data_uv, FS)
    counts = {}
    for t in result.trains:
        counts[t.kind] = counts.get(t.kind, 0) + 1
    if kind is None:
        assert counts == {}
    else:
        assert max(counts, key=counts.get) == kind, counts


def test_measure_triphasic_template():
    fs = 20_000.0
    t = np.arange(-25, 25, 1000 / fs)
    x = -500 * (1 - (t / 0.3) ** 2) * np.exp(-0.5 * (t / 0.3) ** 2)
    s = measure_template(x, fs)
    assert s.phases == 3 and s.turns == 3  # up to the first lobe, the peak, the last lobe
    assert s.amplitude_uv == pytest.approx(500 + 2 * 500 * np.exp(-1.5), rel=0.01)


def test_verdict_reasons():
    ref = MuscleReference("m", {"duration_ms": Limit("duration_ms", 7.0, 11.0, "s", "S", True)})
    assert verdict({"duration_ms": 13.0}, 20, ref)[0] == "neurogenic"
    pattern, reasons = verdict({"duration_ms": 5.0}, 20, ref)
    assert pattern == "myopathic" and "below the lower limit 7" in reasons[0]
    assert verdict({"duration_ms": 9.0}, 20, ref)[0] == "normal"
    assert verdict({"duration_ms": 9.0}, 3, ref)[0] == "indeterminate"
    assert verdict({"duration_ms": 9.0}, 20, None)[0] == "indeterminate"


@pytest.mark.skipif(not EMGDB.is_dir(), reason="PhysioNet emgdb not present")
@pytest.mark.parametrize("name,expected", [("myopathy", "myopathic"),
                                           ("neuropathy", "neurogenic")])
def test_real_records(tmp_path, name, expected):
    out = tmp_path / "out.json"
    assert main(["muap", str(EMGDB / f"emg_{name}.hea"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["muscle"] == "tibialis_anterior"
    assert doc["summary"]["n_muaps"] >= 20
    assert doc["summary"]["pattern"] == expected
    if name == "neuropathy":  # 410 samples wrapped around int16 (SOURCE.md): said, not hidden
        assert any("wrapped around" in n for n in doc["notes"])
        assert min(m["amplitude_uv"] for m in doc["muaps"]) > 0


def _fail(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ionm-station: error:")
    return err[0]


def test_muap_bad_inputs(tmp_path, capsys):
    out = str(tmp_path / "o.json")
    assert "file not found" in _fail(capsys, ["muap", str(tmp_path / "none.edf"), "--json", out])
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"not an edf at all" * 10)
    _fail(capsys, ["muap", str(junk), "--json", out])
    hea = tmp_path / "bad.hea"
    hea.write_text("bad 1 4000 100\nbad.dat 16 10000/mV 16 0 0 0 0 EMG\n")
    assert "bad.hea" in _fail(capsys, ["muap", str(hea), "--json", out])
    (tmp_path / "o.json").write_text("{}")
    assert "--force" in _fail(capsys, ["muap", str(junk), "--json", out])
    assert "not in the reference table" in _fail(
        capsys, ["muap", str(junk), "--json", str(tmp_path / "p.json"), "--muscle", "nose"])
