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
from ionm_station.lab.needle_sim import (
    SPONTANEOUS_KINDS,
    simulate_interference,
    simulate_pool,
    simulate_rest,
)
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
    # no rise-time acceptance: the simulated fibre components are partly Gaussian, with no
    # positive peak before the main spike (a real near MUAP has one); see docs/emg-lab.md
    result = analyse(case.data_uv, FS, "tibialis anterior", max_rise_ms=None)
    amp, dur, found = _errors(case, result)
    assert found >= 0.6 * len(case.muaps)
    # a unit aligned on another of its peaks is merged at a lag (neurogenic seed 11: 24 true)
    assert len(result.muaps) <= 1.2 * len(case.muaps)
    assert np.median(amp) <= 0.05
    assert np.median(dur) <= 1.0
    assert result.pattern == pool
    assert not result.trains  # voluntary activity only


def test_interference_cloud():
    """Full effort: the neurogenic cloud sits at fewer turns and higher amplitude than the
    myopathic one (seeds 1-2: ~820 vs ~1930 turns/s, ~950-1160 vs ~330-360 µV)."""
    docs = {}
    for pool in ("neurogenic", "myopathic"):
        case = simulate_interference(pool, seed=13, fs_hz=FS)
        docs[pool] = analyse(case.data_uv, FS, "tibialis anterior").to_json()["interference"]
    neu, myo = docs["neurogenic"]["summary"], docs["myopathic"]["summary"]
    assert neu["n_epochs"] == myo["n_epochs"] == 30  # 3 s, every 100 ms epoch active
    assert neu["median_turns_per_s"] < 0.7 * myo["median_turns_per_s"]
    assert neu["median_amplitude_uv"] > 2.0 * myo["median_amplitude_uv"]
    assert neu["verdict"] is None and "no published" in neu["reason"]
    e = docs["myopathic"]["epochs"][0]
    assert set(e) == {"t_s", "turns_per_s", "mean_amplitude_uv", "rms_uv"}


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
    assert s.rise_time_ms == pytest.approx(np.sqrt(3) * 0.3, abs=0.01)  # lobe to peak


@pytest.mark.parametrize("fs", [4000.0, 20_000.0])
def test_rise_time_interpolated(fs):
    """A 4 kHz record is not read in 250 µs steps: the rise time of a sharp spike (0.43 ms,
    still band-limited at 4 kHz) and of a blunt far one (1.73 ms) within 0.03 ms."""
    t = np.arange(-25, 25, 1000 / fs)
    for w in (0.25, 1.0):
        x = -400 * (1 - (t / w) ** 2) * np.exp(-0.5 * (t / w) ** 2)
        assert measure_template(x, fs).rise_time_ms == pytest.approx(np.sqrt(3) * w, abs=0.03)


def test_off_centre_unit_recentred():
    """A unit aligned 18 ms before its main spike (a discharge detected at a small peak next
    to it, or merged at a lag) is re-centred on the spike and re-cut: measured spike within
    ±2 ms of the centre, duration as on the true template, never at the window's edge. (Before:
    neuropathy record MUAP #1, 4695 µV / 1.57 ms measured at -24 ms of the ±25 ms window.)"""
    from ionm_station.lab import muap

    fs = 4000.0
    half = round(muap.HALF_WINDOW_MS * fs / 1000)
    rng = np.random.default_rng(5)
    t_ms = np.arange(-half, half + 1) * 1000 / fs
    spike = -2000 * (1 - (t_ms / 0.4) ** 2) * np.exp(-0.5 * (t_ms / 0.4) ** 2)
    y = rng.normal(0, 5, int(3 * fs))
    times = np.arange(int(0.2 * fs), int(2.7 * fs), int(0.09 * fs))
    for i in times:
        y[i - half:i + half + 1] += spike
    lag = round(-18e-3 * fs)
    peaks = (times + lag).astype(np.int64)
    frac = np.zeros(peaks.size)
    windows = y[peaks[:, None] + np.arange(-half, half + 1)[None, :]].copy()
    group = [np.arange(peaks.size)]
    before = measure_template(muap._template(windows, 5.0, half)[0], fs, 5.0)
    assert abs(np.argmax(np.abs(muap._template(windows, 5.0, half)[0])) - half) > 0.015 * fs
    assert before.onset > half  # the old measurement: the spike 18 ms off the alignment
    groups, moved = muap._recentre(y, peaks, frac, windows, group, 5.0, half,
                                   round(muap.CORE_MS * fs / 1000), fs)
    assert moved == {0} and groups[0].size == times.size
    np.testing.assert_array_equal(np.sort(peaks[groups[0]]), times)
    t, tn = muap._template(windows[groups[0]], 5.0, half)
    assert abs(muap._main_offset(t, half)) <= 2e-3 * fs
    assert muap._misplaced(t, tn, half, fs) is None
    s = measure_template(t, fs, tn)
    true = measure_template(spike, fs, tn)
    assert abs(s.duration_ms - true.duration_ms) <= 0.5
    assert s.amplitude_uv == pytest.approx(true.amplitude_uv, rel=0.05)
    assert half - 2e-3 * fs <= s.onset and s.offset <= half + 2e-3 * fs


def test_misplaced_unit_not_accepted():
    """A template whose main spike lies in another potential, far from the alignment point,
    is flagged (:func:`_misplaced`) and listed apart with that reason, never measured there."""
    from ionm_station.lab import muap
    from ionm_station.lab.needle import _not_accepted

    fs = 4000.0
    half = 100
    t_ms = np.arange(-half, half + 1) * 1000 / fs
    t = (-300 * (1 - (t_ms / 0.4) ** 2) * np.exp(-0.5 * (t_ms / 0.4) ** 2)
         - 2500 * (1 - ((t_ms + 17) / 0.3) ** 2) * np.exp(-0.5 * ((t_ms + 17) / 0.3) ** 2))
    why = muap._misplaced(t, 5.0, half, fs)
    assert why is not None and "-17.0 ms" in why
    shape = measure_template(t, fs, 5.0)
    unit = muap.Unit(t, half, shape, np.arange(4), 5.0, fs, misplaced=why)
    assert "alignment point" in _not_accepted(unit, 0.5)


@pytest.mark.skipif(not EMGDB.is_dir(), reason="PhysioNet emgdb not present")
def test_real_records_measured_at_the_alignment():
    """Every accepted MUAP of the three records is measured on the potential it was aligned
    on: main spike within ±2 ms of the alignment point, or a long potential that holds it, and
    onset/offset clear of the window's first and last 5 ms. (Before: neuropathy 5 accepted
    MUAPs measured on another potential, one at -24 ms of the ±25 ms window; myopathy 8.)"""
    from ionm_station.commands.muap_command import load_needle

    for name in ("healthy", "myopathy", "neuropathy"):
        fs, _, x, _, _ = load_needle(EMGDB / f"emg_{name}.hea", None)
        r = analyse(x, fs, "tibialis anterior")
        for k, u in enumerate(r.muaps):
            t, s, c = u.template_uv, u.shape, u.centre
            off_ms = (int(np.argmax(np.abs(t))) - c) * 1000 / fs
            where = (name, k + 1, off_ms, s.onset - c, s.offset - c)
            assert abs(off_ms) <= 2.0 or s.onset <= c <= s.offset, where
            assert c // 5 <= s.onset and s.offset <= t.size - 1 - c // 5, where
        assert all(u.misplaced for u, why in r.rejected if "alignment point" in why)


def test_far_units_not_accepted():
    """Blunt potentials (rise time > 0.5 ms) are listed apart and left out of the means."""
    case = simulate_pool("myopathic", seed=11, fs_hz=FS)
    rng = np.random.default_rng(3)
    t_ms = np.arange(-25, 25, 1000 / FS)
    far = -300 * (1 - (t_ms / 1.2) ** 2) * np.exp(-0.5 * (t_ms / 1.2) ** 2)
    data = case.data_uv.copy()
    for start in np.sort(rng.uniform(0.5, 29.0, 250)):
        i = int(start * FS)
        data[i:i + far.size] += far
    result = analyse(data, FS, "tibialis anterior")
    assert all(u.shape.rise_time_ms <= 0.5 for u in result.muaps)
    far_found = [why for u, why in result.rejected if u.shape.rise_time_ms > 1.5]
    assert far_found and all("rise time" in why for why in far_found)
    doc = result.to_json()
    assert doc["summary"]["n_not_accepted"] == len(doc["not_accepted"]) > 0
    assert doc["summary"]["acceptance"]["max_rise_time_ms"] == 0.5


def test_verdict_reasons():
    ref = MuscleReference("m", {"duration_ms": Limit("duration_ms", 7.0, 11.0, "s", "S", True)})
    assert verdict({"duration_ms": 13.0}, 20, ref)[0] == "neurogenic"
    pattern, reasons = verdict({"duration_ms": 5.0}, 20, ref)
    assert pattern == "myopathic" and "below the lower limit 7" in reasons[0]
    assert verdict({"duration_ms": 9.0}, 20, ref)[0] == "normal"
    assert verdict({"duration_ms": 9.0}, 3, ref)[0] == "indeterminate"
    assert verdict({"duration_ms": 9.0}, 20, None)[0] == "indeterminate"
    assert any("no published per-MUAP outlier limits for duration_ms" in r
               for r in verdict({"duration_ms": 9.0}, 20, ref)[1])


def test_verdict_mean_or_outliers():
    """A normal mean with more than 10 % (and >= 3) MUAPs beyond the outlier limit is out."""
    lim = Limit("amplitude_uv", 200.0, 1000.0, "s", "S", True)
    out = Limit("amplitude_uv", 100.0, 2000.0, "o", "O", True)
    ref = MuscleReference("m", {"amplitude_uv": lim}, {"amplitude_uv": out})
    amps = [600.0] * 17 + [2500.0] * 3
    pattern, reasons = verdict({"amplitude_uv": 825.0}, 20, ref, {"amplitude_uv": amps})
    assert pattern == "neurogenic" and "3 of 20 MUAPs" in reasons[0]
    amps = [600.0] * 18 + [2500.0] * 2  # 2 of 20: within what healthy muscles show
    assert verdict({"amplitude_uv": 765.0}, 20, ref, {"amplitude_uv": amps})[0] == "normal"
    assert not any("no published" in r for r in verdict({"amplitude_uv": 765.0}, 20, ref,
                                                         {"amplitude_uv": amps})[1])


@pytest.mark.skipif(not EMGDB.is_dir(), reason="PhysioNet emgdb not present")
@pytest.mark.parametrize("name,expected", [
    pytest.param("healthy", "normal", marks=pytest.mark.xfail(
        strict=True, reason="not normal: ~8-12 accepted MUAPs in 12.7 s, fewer than the 20 a "
                            "verdict needs (indeterminate); their mean amplitude (~365 uV) is "
                            "also below the derived lower limit 477.5 uV, the mean duration "
                            "(~7.7 ms) just above 7.49 ms (docs/emg-lab.md)")),
    ("myopathy", "myopathic"), ("neuropathy", "neurogenic")])
def test_real_records(tmp_path, name, expected):
    out = tmp_path / "out.json"
    assert main(["muap", str(EMGDB / f"emg_{name}.hea"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["muscle"] == "tibialis_anterior"
    assert doc["summary"]["n_muaps"] >= (8 if name == "healthy" else 20)
    assert all(m["rise_time_ms"] <= 0.5 and m["amplitude_uv"] >= 50 for m in doc["muaps"])
    assert doc["summary"]["pattern"] == expected
    if name == "neuropathy":  # 410 samples wrapped around int16 (SOURCE.md): said, not hidden
        assert any("wrapped around" in n for n in doc["notes"])
        assert min(m["amplitude_uv"] for m in doc["muaps"]) > 0


@pytest.mark.skipif(not EMGDB.is_dir(), reason="PhysioNet emgdb not present")
def test_real_records_stable_across_peel_rounds(monkeypatch):
    """The summary must not swing with an internal iteration count: with one peel-off round
    fewer and one more than the default (4), the mean amplitudes stay within 10 % and the
    mean durations within 20 % of each other on every record, and the verdict does not change
    where one is given. (Before: neuropathy 2078/1343/3103/2089 uV at 0-3 rounds, one event
    modelled twice.)"""
    from ionm_station.commands.muap_command import load_needle
    from ionm_station.lab import muap

    default = muap.PEEL_ROUNDS
    for name in ("healthy", "myopathy", "neuropathy"):
        fs, _, x, _, _ = load_needle(EMGDB / f"emg_{name}.hea", None)
        runs = {}
        for rounds in (default - 1, default + 1):
            monkeypatch.setattr(muap, "PEEL_ROUNDS", rounds)
            r = analyse(x, fs, "tibialis anterior")
            runs[rounds] = (r.means(), r.pattern)
        (a, pa), (b, pb) = runs.values()
        assert abs(a["amplitude_uv"] / b["amplitude_uv"] - 1) <= 0.10, (name, a, b)
        assert abs(a["duration_ms"] / b["duration_ms"] - 1) <= 0.20, (name, a, b)
        assert pa == pb, (name, pa, pb)


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
