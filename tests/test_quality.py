"""Signal quality from samples (quality.py) and the baseline check through a live session."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ionm_station import quality
from ionm_station.events import Event
from ionm_station.montage import load_montage
from ionm_station.pipeline import commands as cmd
from ionm_station.triggered.cmap import Response
from support.gui import make_session

FS = 5000.0
RANGE_UV = 5000.0


def signals(seconds: float = 4.0, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Six channels: 0 clean 3 µV noise; 1 with 40 µV of 50 Hz and harmonics; 2 at the rail;
    3 flat; 4 with 25 µV RMS of noise; 5 with a 300 µV p-p ECG-like 1.2 Hz QRS train. Raw and
    clean (clean = noise only, as a chain would leave it)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    noise = rng.normal(0.0, 3.0, (n, 6))
    raw = noise.copy()
    raw[:, 1] += 40 * np.sqrt(2) * np.sin(2 * np.pi * 50.2 * t) + 10 * np.sin(2 * np.pi * 150.6 * t)
    raw[:, 2] = RANGE_UV
    raw[:, 3] = 12.0
    raw[:, 4] = rng.normal(0.0, 25.0, n)
    beat = np.exp(-0.5 * ((t % (1 / 1.2)) - 0.3) ** 2 / 0.012 ** 2)
    raw[:, 5] += 300.0 * beat
    clean = noise.copy()
    clean[:, 4] = raw[:, 4]
    clean[:, 2:4] = np.nan  # the chain blanks a railed or dead channel
    return raw, clean


def test_measures_and_causes() -> None:
    raw, clean = signals()
    q = quality.assess(raw, clean, FS, RANGE_UV)
    assert [c.cause for c in q] == ["", "high mains", "lead off", "flat", "high noise", ""]
    assert q[0].noise_rms_uv == pytest.approx(3.0, rel=0.1)
    assert q[0].mains_uv < 1.0 and q[0].mains_hz == 50.0  # detected: 50 Hz has the power
    assert q[1].mains_uv == pytest.approx(np.hypot(40.0, 10 / np.sqrt(2)), rel=0.1)
    assert q[4].noise_rms_uv == pytest.approx(25.0, rel=0.1)
    assert q[5].ecg_uv == pytest.approx(300.0, rel=0.25) and q[0].ecg_uv < 40.0
    assert q[2].lead_off and q[2].noise_rms_uv is None  # nothing clean to measure
    assert q[3].flat and not q[3].lead_off
    data = q[1].to_data()
    assert data["ok"] is False and data["cause"] == "high mains" and data["mains_hz"] == 50.0


def test_reported_lead_off_and_missing_samples() -> None:
    raw, clean = signals()
    raw[: int(3 * FS), 5] = np.nan  # 75 % of the window missing
    q = quality.assess(raw, clean, FS, RANGE_UV, mains_hz=60.0, reported_off=[0])
    assert q[0].cause == "lead off" and q[0].lead_off
    assert q[5].cause == "no signal"
    assert q[1].mains_hz == 60.0 and q[1].mains_uv < 5.0  # measured at 60 Hz, as asked


def test_robust_noise_ignores_events_and_blanked_windows() -> None:
    _, clean = signals()
    clean[1000:1400, 0] += 400.0  # an EMG burst: a few windows, not the median
    clean[5000:9000, 0] = np.nan  # blanked: windows left out
    assert quality.noise_rms(clean, FS)[0] == pytest.approx(3.0, rel=0.1)
    assert np.isnan(quality.noise_rms(np.full((100, 2), np.nan), FS)).all()


def test_tile_baselines_name_failures_quiet_and_cmap() -> None:
    montage = load_montage("lumbar")
    raw = np.random.default_rng(2).normal(0.0, 3.0, (int(4 * FS), len(montage.channels)))
    raw[:, 10] = RANGE_UV  # L4-R VastMed off
    q = quality.assess(raw, raw, FS, RANGE_UV)
    l5l = montage.channels_of("L5", "L")
    activity = [Event("emg_event", 100, 200, (montage.channels_of("S1", "R")[0],))]
    response = Response(50, 8.0, "L5-L", (420.0, 130.0), (12.0, 14.0), (True, True), tuple(l5l))
    found = {key: (ch, d) for key, ch, d in
             quality.tile_baselines(montage, q, activity, [response])}
    assert set(found) == set(montage.tile_keys())
    _, d = found["L4-R"]
    assert not d["ok"] and d["failing"] == {"L4-R VastMed": "lead off"}
    assert found["S1-R"][1]["quiet"] is False and found["L5-L"][1]["quiet"] is True
    assert found["L5-L"][1]["cmap"] == {"current_ma": 8.0, "index": 50, "peak_uv": [420.0, 130.0],
                                        "latency_ms": [12.0, 14.0]}
    assert found["L5-R"][1]["cmap"] is None and found["L5-L"][0] == tuple(l5l)


def test_baseline_command_is_checked() -> None:
    for bad in (0.5, 11.0, float("nan")):
        with pytest.raises(ValueError, match="1–10 s"):
            cmd.Baseline(bad).check()
    cmd.Baseline(2.0).check()


def test_session_baseline_and_periodic_checks_are_events() -> None:
    """A session asked for a baseline at once logs it as soon as the rings hold the window;
    the periodic check follows every 60 s of signal."""
    session = make_session(seconds=70.0, rate_hz=2000.0, realtime=False, scenario="quiet")
    session.baseline(2.0)
    session.start()
    assert session.wait_until(70 * 2000, 120)
    session.stop()
    events = session.events.snapshot()
    base = [e for e in events if e.kind == "baseline"]
    assert {e.data["tile"] for e in base} == set(session.montage.tile_keys())
    assert all(e.data["ok"] and e.data["quiet"] for e in base)
    assert all(e.stop - e.start == 4000 and e.start >= 2000 for e in base)  # after the settle
    checks = sorted({(e.start, e.data["check"]) for e in events if e.kind == "signal_quality"})
    assert [c for _, c in checks].count("baseline") == 1
    periodic = [s for s, c in checks if c == "periodic"]
    assert len(periodic) == 2 and periodic[1] - periodic[0] >= 60 * 2000
    for e in (e for e in events if e.kind == "signal_quality"):
        assert e.data["ok"], e
        assert 1.0 < e.data["noise_rms_uv"] < 6.0


def test_run_baseline_prints_each_root(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --headless --baseline``: a line per root-side once the check is measured."""
    from ionm_station.cli import main

    assert main(["run", "--headless", "--fast", "--scenario", "quiet", "--seconds", "8",
                 "--baseline", "--status-interval", "100"]) in (0, 1)  # 1: a loaded machine
    lines = [x for x in capsys.readouterr().out.splitlines() if " BASELINE " in x]
    assert len(lines) == 12
    assert all(re.search(r"[LS]\d-[LR]: ok; noise \d+\.\d–\d+\.\d µV RMS; quiet$", x)
               for x in lines), lines
