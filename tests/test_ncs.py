"""Nerve conduction studies (``ionm-station ncs``): measures against simulated nerves with ground
truth, flags and patterns, F-waves, the carpal-tunnel worked example, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.config import load_toml
from ionm_station.lab import ncs, nerve_sim

FS = nerve_sim.FS_HZ
#: Seeds of the tests (the benchmark tunes on 0–4 and holds out 1000 on).
SEEDS = (21, 22)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(nerve type, seed) → (simulated study, analysis of its files)."""
    folder = tmp_path_factory.mktemp("ncs")
    out = {}
    for kind in nerve_sim.NERVE_TYPES:
        for seed in SEEDS:
            study = nerve_sim.simulate(kind, seed)
            path = nerve_sim.write_study(study, folder / f"{kind}-{seed}.ncs.toml")
            out[kind, seed] = (study, ncs.analyze(path))
    return out


@pytest.mark.parametrize("kind", nerve_sim.NERVE_TYPES)
def test_latency_velocity_amplitude_against_truth(analysed: dict, kind: str) -> None:
    for seed in SEEDS:
        study, result = analysed[kind, seed]
        got = {s["name"]: s for s in result["studies"]}
        assert set(got) == set(study.truth)
        for name, true in study.truth.items():
            if true["kind"] == "f_wave":
                continue
            amp = "amplitude_mv" if true["kind"] == "motor" else "amplitude_uv"
            for m, t in zip(got[name]["sites"], true["sites"], strict=True):
                assert m["response"], (name, m["site"])
                assert abs(m["onset_latency_ms"] - t["onset_latency_ms"]) <= 0.1, (name, m, t)
                assert abs(m["peak_latency_ms"] - t["peak_latency_ms"]) <= 0.1, (name, m, t)
                assert abs(m[amp] / t[amp] - 1.0) <= 0.05, (name, m[amp], t[amp])
                if true["kind"] == "motor":
                    assert abs(m["area_mvms"] / t["area_mvms"] - 1.0) <= 0.05
                    assert abs(m["duration_ms"] - t["duration_ms"]) <= 0.2
            for m, t in zip(got[name]["segments"], true["segments"], strict=True):
                assert abs(m["velocity_m_s"] - t["velocity_m_s"]) <= 2.0, (name, m, t)


#: Flags each nerve type must raise (beyond: exactly those the true values call for).
MUST = {
    "normal": set(),
    "demyelinated": {("median", "distal_latency_ms"), ("median", "velocity_m_s"),
                     ("ulnar", "distal_latency_ms")},
    "axonal": {("median", "amplitude_mv"), ("ulnar", "amplitude_mv")},
    "entrapped": {("median", "distal_latency_ms"),
                  ("median-ulnar", "sensory_peak_latency_ms_difference")},
}
MUST_NOT = {
    "normal": set(),
    "demyelinated": set(),
    "axonal": {("median", "distal_latency_ms"), ("median", "velocity_m_s"),
               ("ulnar", "distal_latency_ms")},
    "entrapped": {("median", "velocity_m_s"), ("ulnar", "distal_latency_ms"),
                  ("median", "amplitude_mv"), ("ulnar", "amplitude_mv")},
}


@pytest.mark.parametrize("kind", nerve_sim.NERVE_TYPES)
def test_flags_and_pattern_per_nerve_type(analysed: dict, kind: str) -> None:
    for seed in SEEDS:
        study, result = analysed[kind, seed]
        flags = {(f["nerve"], f["measure"]) for f in result["flags"]}
        assert flags == study.expected
        assert MUST[kind] <= flags and not MUST_NOT[kind] & flags, flags
        if kind == "normal":
            assert result["flags"] == [] and result["patterns"] == []
        else:
            assert [p["pattern"] for p in result["patterns"]] == [study.pattern]
        for f in result["flags"]:
            assert f["source"] and f["reason"].startswith(f["nerve"].replace("-", " − ")
                                                          if "-" in f["nerve"] else f["nerve"])


def test_f_waves_min_latency_and_persistence(analysed: dict) -> None:
    for (kind, seed), (study, result) in analysed.items():
        true = study.truth["median F-waves R"]
        got = next(s for s in result["studies"] if s["kind"] == "f_wave")
        assert got["persistence"] == pytest.approx(true["persistence"]), (kind, seed)
        assert [x is None for x in got["latencies_ms"]] == [x is None for x in true["latencies_ms"]]
        assert abs(got["min_latency_ms"] - true["min_latency_ms"]) <= 0.1, (kind, seed)
        assert abs(got["mean_latency_ms"] - true["mean_latency_ms"]) <= 0.1, (kind, seed)


def test_onsets_of_synthetic_potentials_and_f_waves() -> None:
    """The pure measures on shapes whose answers are known: a negative-first potential with a
    linear start at 4.0 ms and a negative phase of 5 ms; F-waves of either polarity at known latencies, one sweep without."""
    rng = np.random.default_rng(5)
    n, s = int(0.13 * FS), int(ncs.PRE_MS * 1e-3 * FS)
    t_ms = (np.arange(n) - s) / FS * 1e3
    wave = (np.where((t_ms >= 4.0) & (t_ms < 9.0), -np.sin(np.pi * (t_ms - 4.0) / 5.0), 0.0)
            + np.where((t_ms >= 9.0) & (t_ms < 17.0), 0.4 * np.sin(np.pi * (t_ms - 9.0) / 8.0), 0))
    p = ncs.measure_potential(5000.0 * wave + rng.normal(0, 2.0, n), s, FS, "motor")
    assert p is not None
    assert abs(p["onset_latency_ms"] - 4.0) <= 0.02 and abs(p["peak_latency_ms"] - 6.5) <= 0.02
    assert abs(p["amplitude_uv"] / 5000.0 - 1) <= 0.01 and abs(p["duration_ms"] - 5.0) <= 0.05
    assert ncs.measure_potential(rng.normal(0, 2.0, n), s, FS, "motor") is None
    truth = [28.0, None, 29.3, 30.05]
    sweeps = rng.normal(0, 4.0, (n, len(truth)))
    for i, lat in enumerate(truth):
        if lat is not None:
            sign = 1.0 if i % 2 else -1.0
            sweeps[:, i] += sign * 200.0 * np.where(
                (t_ms >= lat) & (t_ms < lat + 3.0), np.sin(np.pi * (t_ms - lat) / 3.0), 0.0)
    got = ncs.f_wave_onsets(sweeps, s, FS, s + int(0.02 * FS))
    assert np.isnan(got[1])
    assert np.allclose(got[[0, 2, 3]], [28.0, 29.3, 30.05], atol=0.05)


def test_carpal_tunnel_worked_example_through_the_command(tmp_path: Path, capsys) -> None:
    study = nerve_sim.simulate("entrapped", 31)
    description = nerve_sim.write_study(study, tmp_path / "carpal.ncs.toml")
    out = tmp_path / "carpal.json"
    assert main(["ncs", str(description), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text(encoding="utf-8"))
    (pattern,) = doc["patterns"]
    assert pattern["pattern"] == "carpal_tunnel" and pattern["side"] == "R"
    assert any(r.startswith("median distal motor latency") for r in pattern["reasons"])
    assert "carpal tunnel pattern" in text and "flag: median distal motor latency" in text
    (cmp,) = doc["comparisons"]
    assert cmp["flag"] and cmp["value_ms"] >= 0.5
    # the same study of a normal hand: no flag, no pattern; the median − ulnar difference small
    normal = nerve_sim.write_study(nerve_sim.simulate("normal", 31), tmp_path / "n.ncs.toml")
    assert main(["ncs", str(normal), "--json", str(tmp_path / "n.json")]) == 0
    doc = json.loads((tmp_path / "n.json").read_text(encoding="utf-8"))
    assert doc["flags"] == [] and doc["patterns"] == []
    assert abs(doc["comparisons"][0]["value_ms"]) < 0.5
    # an existing output is refused without --force, replaced with it
    assert main(["ncs", str(description), "--json", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["ncs", str(description), "--json", str(out), "--force"]) == 0


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ionm-station: error: ") and err.count("\n") == 1, err
    return err


def test_bad_inputs_are_one_line_exit_2(tmp_path: Path, capsys) -> None:
    study = nerve_sim.simulate("normal", 3)
    good = nerve_sim.write_study(study, tmp_path / "hand.ncs.toml")
    out = str(tmp_path / "o.json")
    text = good.read_text(encoding="utf-8")

    def variant(name: str, body: str) -> str:
        p = tmp_path / name
        p.write_text(body, encoding="utf-8")
        return str(p)

    err = _one_line_error(capsys, ["ncs", variant("a.ncs.toml", text.replace(
        'site = "median elbow"', 'site = "median axilla"')), "--json", out])
    assert "'median axilla' has no stimulus" in err and "median elbow" in err
    err = _one_line_error(capsys, ["ncs", variant("b.ncs.toml", text.replace(
        "distance_mm = 140", "distance_mm = 0", 1)), "--json", out])
    assert "study[2].sites[0].distance_mm" in err and "> 0 mm" in err
    err = _one_line_error(capsys, ["ncs", variant("c.ncs.toml", text.replace(
        "distance_mm = 140", "distance_mm = -5", 1)), "--json", out])
    assert "> 0 mm" in err
    err = _one_line_error(capsys, ["ncs", variant("d.ncs.toml", text.replace(
        'channel = "ADM"', 'channel = "FDI"')), "--json", out])
    assert "'FDI' is not in the recording" in err
    err = _one_line_error(capsys, ["ncs", variant("e.ncs.toml", text.replace(
        'kind = "sensory"', 'kind = "sensroy"', 1)), "--json", out])
    assert "study[2].kind" in err
    err = _one_line_error(capsys, ["ncs", variant("f.ncs.toml", text.replace(
        "sites = [{ site = \"median wrist D4\", distance_mm = 140 }]",
        "sites = [{ site = \"median wrist D4\" }]")), "--json", out])
    assert "needs its distance" in err
    _one_line_error(capsys, ["ncs", str(tmp_path / "nothing.ncs.toml"), "--json", out])
    # a recording without stimuli
    quiet = nerve_sim.simulate("normal", 3)
    quiet.events = []
    err = _one_line_error(capsys, ["ncs", str(nerve_sim.write_study(quiet, tmp_path / "q.ncs.toml")),
                                   "--json", out])
    assert "no stimulus events" in err
    # a stimulus too close to the end of the recording
    short = nerve_sim.simulate("normal", 3)
    last = short.events[-1].start
    short.samples = short.samples[:last + int(0.05 * FS)]
    err = _one_line_error(capsys, ["ncs", str(nerve_sim.write_study(short, tmp_path / "s.ncs.toml")),
                                   "--json", out])
    assert "truncated" in err
    # a truncated file
    h5 = tmp_path / "hand.h5"
    data = h5.read_bytes()
    h5.write_bytes(data[:len(data) // 2])
    err = _one_line_error(capsys, ["ncs", str(good), "--json", out])
    assert "hand.h5" in err
    assert not Path(out).exists()


def test_every_reference_value_has_a_source() -> None:
    limits, comparisons = ncs.load_references()
    assert limits and comparisons
    for lim in limits + comparisons:
        assert "doi:" in lim.source and lim.derivation, lim
    doc = load_toml(Path(__file__).resolve().parent.parent / "pyproject.toml")
    assert "lab/reference_ncs.toml" in doc["tool"]["setuptools"]["package-data"]["ionm_station"]
