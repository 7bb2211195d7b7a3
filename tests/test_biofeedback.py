"""Biofeedback (issue 16): the core on synthetic signals, scores through the live pipeline
against the simulator's truth, the headless command, bad inputs, the session trend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ionm_station.cli import main
from ionm_station.config import ConfigError
from ionm_station.sim.scenario import parse_scenario
from ionm_station.therapy import biofeedback as bf
from ionm_station.therapy import trend
from ionm_station.therapy.live import run_scenario
from ionm_station.therapy.reward import RewardTone

FS = 2000.0


# --- the core on signals we know -------------------------------------------------------------

def test_causal_envelope_is_chunking_independent_and_exact_on_a_sine():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8000) * 50.0
    x[3000:3100] = np.nan
    whole = bf.RmsEnvelope(FS, 100.0).process(x)
    env = bf.RmsEnvelope(FS, 100.0)
    cuts = [0, 1, 17, 500, 3050, 8000]
    parts = np.concatenate([env.process(x[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])
    np.testing.assert_allclose(parts, whole, rtol=1e-9)
    sine = 100.0 * np.sin(2 * np.pi * 50.0 * np.arange(4000) / FS)  # 100 ms = 5 cycles
    assert bf.RmsEnvelope(FS, 100.0).process(sine)[-1] == pytest.approx(100 / np.sqrt(2), rel=1e-6)


def test_scores_of_a_known_trial():
    """A trapezoid of known ramps: onset and release where 75 % / 37.5 % of the work mean is
    crossed, time in target from the band, MF of a pure tone."""
    cue = bf.Cue("trial", 1, 2000, 12000, 22000)  # work 1–6 s, rest 6–11 s
    t = np.arange(24000) / FS
    amp = np.full(len(t), 5.0)
    amp[(t >= 1.2) & (t < 1.6)] = 5 + 95 * (t[(t >= 1.2) & (t < 1.6)] - 1.2) / 0.4
    amp[(t >= 1.6) & (t < 6.2)] = 100.0
    down = (t >= 6.2) & (t < 6.4)
    amp[down] = 100 - 95 * (t[down] - 6.2) / 0.2
    s = bf.score_trial(amp, 0, cue, FS, target=(cue.work, cue.rest), band_uv=(80.0, 120.0))
    mean = amp[2000:12000].mean()
    assert s.work_mean_uv == pytest.approx(mean)
    assert s.onset_s == pytest.approx(0.2 + 0.4 * (0.75 * mean - 5) / 95, abs=1 / FS)
    assert s.release_s == pytest.approx(0.2 + 0.2 * (100 - 0.375 * mean) / 95, abs=1 / FS)
    assert s.time_in_target == pytest.approx((6.0 - (1.2 + 0.4 * 75 / 95)) / 5.0, abs=2 / FS / 5)
    tone = np.sin(2 * np.pi * 80.0 * t) * amp
    assert bf.median_frequency_hz(tone[2400:12000], FS) == pytest.approx(80.0, abs=2.0)


def test_protocol_schedule_and_checks():
    p = bf.Protocol("relaxation", start_s=2, mvc_trials=1, mvc_work_s=3, mvc_rest_s=4, trials=2,
                    work_s=5, rest_s=6, band_pct=(0, 5))
    cues = p.schedule(FS)
    assert [(c.kind, c.work / FS, c.rest / FS, c.end / FS) for c in cues] == [
        ("mvc", 2, 5, 9), ("trial", 9, 14, 20), ("trial", 20, 25, 31)]
    assert p.target_phase(cues[1]) == (cues[1].rest, cues[1].end)  # relaxation: the rest phase
    assert p.duration_s == 31
    for bad, word in ((dict(kind="yoga"), "protocol"), (dict(band_pct=(50, 40)), "band_pct"),
                      (dict(work_s=float("nan")), "work_s"), (dict(trials=0), "trials"),
                      (dict(kind="calibration", mvc_trials=0, trials=0), "mvc_trials")):
        with pytest.raises(ValueError, match=word):
            bf.Protocol(**bad).check()
    with pytest.raises(ValueError, match="--mvc-uv"):
        bf.BiofeedbackCore(FS, bf.Protocol(mvc_trials=0))


def test_core_reward_events_only_in_the_target_phase():
    p = bf.Protocol("activation", start_s=1, mvc_trials=0, trials=1, work_s=2, rest_s=2,
                    band_pct=(40, 60))
    core = bf.BiofeedbackCore(FS, p, smoothing_ms=50, mvc_uv=100.0)
    x = 50.0 * np.sqrt(2) * np.sin(2 * np.pi * 90 * np.arange(int(6 * FS)) / FS)  # 50 µV RMS
    for a in range(0, len(x), 333):
        core.process(a, x[a:a + 333])
    core.finish()
    events = core.drain_events()
    rewards = [e for e in events if e["kind"] == "reward"]
    assert [r["on"] for r in rewards] == [True, False]
    assert rewards[0]["index"] == 2000 and rewards[1]["index"] == 6000  # work cue, rest cue
    (trial,) = core.trials
    assert trial.time_in_target == 1.0 and trial.reward_fraction == 1.0
    assert [e["cue"] for e in events if e["kind"] == "cue"] == ["work", "rest", "end"]


def _calibration_mvc(seed: int) -> tuple[float, float]:
    """Two 3-s maximal efforts of 200 µV RMS band-limited noise (50–150 Hz, like surface EMG:
    few degrees of freedom per window): (measured MVC, the true 200 µV by the truth's measure)."""
    from scipy.signal import butter, sosfilt

    p = bf.Protocol("calibration", start_s=1, mvc_trials=2, mvc_work_s=3, mvc_rest_s=3, trials=0)
    n = int(p.duration_s * FS) + 2000
    x = sosfilt(butter(2, [50, 150], "bandpass", fs=FS, output="sos"),
                np.random.default_rng(seed).standard_normal(n))
    amp = np.full(n, 5.0)
    for c in p.schedule(FS):
        amp[c.work + 600:c.rest + 300] = 200.0  # 0.3 s reaction, 0.15 s release, as a step
    core = bf.BiofeedbackCore(FS, p)
    sig = amp * x / np.sqrt(np.mean(x * x))
    for a in range(0, n, 500):
        core.process(a, sig[a:a + 500])
    core.finish()
    assert core.mvc_measured_uv is not None
    return core.mvc_measured_uv, bf.max_rms_uv(amp, FS)


def test_mvc_is_not_biased_high_by_the_peak_of_noisy_windows():
    """The MVC is the mean square over each effort's hold, not the peak of a moving RMS: over
    20 noise draws it is within 2.5 % of the true level on average (the largest 1-s RMS read
    +7.4 % high here), each draw within 10 %."""
    errors = [m / t - 1.0 for m, t in map(_calibration_mvc, range(20))]
    assert abs(np.mean(errors)) < 0.025
    assert max(abs(e) for e in errors) < 0.10


def test_effort_level_holds_from_settle_after_onset_to_the_rest_cue():
    cue = bf.Cue("mvc", 1, 1000, 7000, 9000)
    x = np.full(10000, 10.0)
    x[1000 + 400 + 500:7000] = 100.0  # onset 0.2 s, hold from 0.45 s
    x[1000 + 400:1000 + 900] = 1000.0  # the settle is left out
    assert bf.effort_level_uv(x, 0, cue, 0.2, FS) == pytest.approx(100.0)
    assert bf.effort_level_uv(x, 0, cue, None, FS) is None
    short = bf.Cue("mvc", 1, 1000, 2600, 9000)  # 0.8 s of work: onset 0.2 s leaves 0.35 s
    y = np.full(10000, 50.0)
    assert bf.effort_level_uv(y, 0, short, 0.2, FS) == pytest.approx(50.0)
    y[1400:1600] = np.nan  # 200 of 1200 samples from the onset: < 90 % finite
    assert bf.effort_level_uv(y, 0, short, 0.2, FS) is None


# --- through the live pipeline, against the simulator's truth ----------------------------------

@pytest.fixture(scope="module")
def activation() -> dict:
    return run_scenario("bf_activation", seed=7)


@pytest.fixture(scope="module")
def fatigue() -> dict:
    return run_scenario("bf_fatigue", seed=8)


def _pairs(doc: dict, key: str) -> list[tuple[float, float]]:
    return [(m[key], t[key]) for m, t in zip(doc["trials"], doc["simulator"]["truth"]["trials"],
                                             strict=True) if t[key] is not None]


def test_activation_scores_match_the_truth(activation):
    doc = activation
    assert doc["signal"]["lost_samples"] == 0 and doc["trials_not_reached"] == 0
    truth = doc["simulator"]["truth"]["scores"]
    assert doc["scores"]["mvc_measured_uv"] == pytest.approx(truth["mvc_measured_uv"], rel=0.08)
    assert doc["scores"]["time_in_target"] == pytest.approx(truth["time_in_target"], abs=0.08)
    assert 0.2 < truth["time_in_target"] < 0.98  # the band is not trivially met or missed
    onset = [abs(m - t) for m, t in _pairs(doc, "onset_s")]
    release = [abs(m - t) for m, t in _pairs(doc, "release_s")]
    assert len(onset) == 8 and np.median(onset) < 0.05 and max(onset) < 0.15
    assert len(release) == 8 and np.median(release) < 0.05
    mf = [abs(m - t) for m, t in _pairs(doc, "median_frequency_hz")]
    assert np.median(mf) < 3.0 and max(mf) < 10.0  # 2–4.5 s of signal per trial
    assert doc["rewards"] and doc["scores"]["reward_fraction"] > 0.2


def test_fatigue_slope_matches_the_truth(fatigue):
    truth = fatigue["simulator"]["truth"]["scores"]
    assert truth["median_frequency_slope_hz_per_trial"] == pytest.approx(-32 / 9, abs=0.05)
    assert fatigue["scores"]["median_frequency_slope_hz_per_trial"] == pytest.approx(
        truth["median_frequency_slope_hz_per_trial"], abs=0.8)


# --- scenarios: unknown keys and bad plans refused ---------------------------------------------

def _scenario(**bio) -> dict:
    table = {"channel": "C4-R UpperTrap", "protocol": "activation", "trials": 2} | bio
    return {"name": "t", "duration_s": 60, "montage": "trapezius", "biofeedback": table}


@pytest.mark.parametrize("bio, key", [
    ({"tirals": 3}, "biofeedback.tirals"),
    ({"channel": "C4-X Nope"}, "biofeedback.channel"),
    ({"protocol": "yoga"}, "biofeedback.protocol"),
    ({"band_pct": [60, 40]}, "biofeedback.band_pct"),
    ({"trials": 20}, "biofeedback.trials"),  # runs past duration_s
    ({"rise_s": [0.2, 6.0]}, "biofeedback.rise_s"),
])
def test_bad_biofeedback_tables_name_the_key(bio, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_scenario(_scenario(**bio), "t.toml")


# --- the command ---------------------------------------------------------------------------------

def test_headless_command_json_force_and_folder_trend(tmp_path, capsys):
    out, sessions, plot = tmp_path / "s.json", tmp_path / "sessions", tmp_path / "trend.png"
    sessions.mkdir()
    args = ["biofeedback", "--headless", "--scenario", "bf_calibration", "--seconds", "36",
            "--fast", "--json", str(out), "--sessions", str(sessions)]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["kind"] == "biofeedback" and len(doc["trials"]) == 3
    assert doc["scores"]["mvc_uv"] == pytest.approx(
        doc["simulator"]["truth"]["scores"]["mvc_uv"], rel=0.08)
    text = capsys.readouterr().out
    assert "WORK maximal effort 1" in text and "first session" in text
    assert main(args) == 2  # the JSON exists
    assert "file exists" in capsys.readouterr().err
    assert main(args + ["--force", "--trend", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list(sessions.glob("*.json"))) == 2
    assert "compared with the session" in capsys.readouterr().out


def test_command_stores_in_the_lab_database(tmp_path, capsys):
    from ionm_station.lab import patients as pt

    db = tmp_path / "lab.sqlite"
    opened = pt.open_db(db, create=True)
    patient = pt.add_patient(opened.conn, "MRN-1", "Test Patient")
    v1, v2 = pt.add_visit(opened.conn, patient, "2026-01-05"), pt.add_visit(opened.conn, patient, "2026-02-05")
    opened.close()
    base = ["biofeedback", "--headless", "--scenario", "bf_calibration", "--fast", "--patient",
            "MRN-1", "--db", str(db)]
    assert main(base + ["--visit", str(v1.pk)]) == 0
    assert main(base + ["--visit", str(v2.pk), "--seed", "5", "--trend",
                        str(tmp_path / "t.pdf")]) == 0
    assert (tmp_path / "t.pdf").read_bytes()[:4] == b"%PDF"
    opened = pt.open_db(db)
    points = trend.history_from_db(opened.conn, pt.get_patient(opened.conn, "MRN-1"))
    opened.close()
    assert [p.protocol for p in points] == ["calibration", "calibration"]
    assert points[0].value("mvc_uv") != points[1].value("mvc_uv")
    assert "compared with the session" in capsys.readouterr().out
    assert main(base + ["--visit", "99"]) == 2
    assert "no visit 99" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--scenario", "quiet"], "not a biofeedback scenario"),
    (["--scenario", "nope"], "no such scenario"),
    (["--scenario", "bf_activation", "--band", "50,40"], "--band"),
    (["--scenario", "bf_activation", "--seconds", "nan"], "--seconds"),
    (["--scenario", "bf_activation", "--smoothing-ms", "5"], "--smoothing-ms"),
    (["--scenario", "bf_activation", "--visit", "1"], "--patient and --visit"),
    (["--scenario", "bf_activation", "--trend", "x.png"], "--trend needs"),
    (["--scenario", "bf_activation", "--sessions", "/nonexistent"], "not a folder"),
])
def test_bad_inputs_are_one_line_exit_2(extra, message, capsys):
    try:
        code = main(["biofeedback", "--headless", "--fast", *extra])
    except SystemExit as exc:  # usage errors (argument types) exit from the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_history_folder_refuses_a_foreign_file(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"kind": "ncs"}))
    with pytest.raises(trend.HistoryError, match="not a biofeedback session"):
        trend.history_from_folder(tmp_path)


def test_reward_tone_chimes_while_in_band():
    class Out:
        rate_hz = 8000
        played: list = []

        def play_tone(self, samples, rate_hz=8000):
            self.played.append(len(samples))

    out = Out()
    tone = RewardTone(out, every_s=0.5)
    for k, on in enumerate([False, True, True, True, True, False, True]):
        tone.update(on, k * 0.2)
    # at 0.2 s, at 0.8 s (0.6 s is < 0.5 s after), and at once on re-entry at 1.2 s
    assert tone.chimes == 3 and out.played == [len(tone._chime)] * 3


def test_cli_help_lists_biofeedback():
    out = subprocess.run([sys.executable, "-m", "ionm_station", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "biofeedback" in out
    assert Path(__file__).parent.parent.joinpath("scripts", "bench_biofeedback").is_file()
