"""Alarm sounds: distinct IEC 60601-1-8-style patterns rendered to WAV; EMG audio; no device."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from ionm_station.audio import (
    AUDIO_RATE_HZ,
    PATTERNS,
    AlarmSounder,
    emg_to_audio,
    pulse_onsets,
    render_alarm,
)


@pytest.mark.parametrize("priority", ["advisory", "caution", "warning"])
def test_alarm_pattern_round_trips_through_wav(tmp_path: Path, priority: str) -> None:
    path = tmp_path / f"{priority}.wav"
    wavfile.write(path, AUDIO_RATE_HZ, render_alarm(priority, volume=0.8))
    rate, audio = wavfile.read(path)
    assert rate == AUDIO_RATE_HZ
    onsets = pulse_onsets(audio.astype(np.float64), rate)
    expect = PATTERNS[priority].onsets_s
    assert len(onsets) == len(expect)
    np.testing.assert_allclose(onsets, expect, atol=0.012)  # within the 10 ms rise


def test_patterns_are_distinct_and_ordered_by_urgency() -> None:
    counts = [len(PATTERNS[p].onsets_s) for p in ("advisory", "caution", "warning")]
    assert counts == sorted(counts) and len(set(counts)) == 3
    freqs = [PATTERNS[p].fundamental_hz for p in ("advisory", "caution", "warning")]
    assert freqs == sorted(freqs)


def test_pulse_is_harmonic_rich() -> None:
    a = render_alarm("caution")
    spec = np.abs(np.fft.rfft(a))
    f = np.fft.rfftfreq(len(a), 1 / AUDIO_RATE_HZ)
    f0 = PATTERNS["caution"].fundamental_hz
    peaks = [spec[np.argmin(np.abs(f - k * f0))] for k in range(1, 5)]
    assert all(p > 0.1 * peaks[0] for p in peaks)  # ≥ 4 harmonics, as IEC 60601-1-8 asks


def test_volume_scales_and_clips() -> None:
    assert np.abs(render_alarm("warning", 0.25)).max() == pytest.approx(0.25, rel=0.05)
    assert np.abs(render_alarm("warning", 3.0)).max() <= 1.0 + 1e-6


def test_emg_audio_resamples_and_scales() -> None:
    fs = 10_000
    t = np.arange(fs) / fs
    emg = 250.0 * np.sin(2 * np.pi * 100 * t)
    y = emg_to_audio(emg, fs, full_scale_uv=500.0)
    assert len(y) == AUDIO_RATE_HZ
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.5, rel=0.02)


def test_no_audio_device_is_a_notice_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_sounddevice(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sounddevice)
    s = AlarmSounder()
    assert not s.available and s.notice == "audio unavailable: install libportaudio2"
    s.set_priority("warning")  # returns at once, plays nothing
    s.close()


def test_sounder_plays_patterns_on_its_worker_and_repeats() -> None:
    played: list[int] = []
    s = AlarmSounder(player=lambda block, rate: played.append(len(block)))
    s.set_priority("advisory")  # plays once
    deadline = time.monotonic() + 2
    while not played and time.monotonic() < deadline:
        time.sleep(0.005)
    s.close()
    assert s.played == ["advisory"] and len(played) == 1 and s.health().state == "stopped"


def test_a_crashing_sounder_is_restarted_and_shows_audio_off() -> None:
    """The alarm sound is a supervised worker: a fault in playback must show, not fall silent."""
    from ionm_station.events import EventLog
    from ionm_station.pipeline.supervisor import Supervisor
    from ionm_station.pipeline.technical import Vitals, assess
    from ionm_station.pipeline.worker import WorkerHealth

    calls = {"n": 0}

    def flaky(block: np.ndarray, rate: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("driver bug")

    s = AlarmSounder(player=flaky)
    ok = WorkerHealth("x", "running")
    log = EventLog()
    sup = Supervisor(lambda: [s], log, lambda: Vitals(ok, ok, others=(s.health(),)), lambda: 0)
    s.set_priority("warning")
    deadline = time.monotonic() + 2
    while s.health().state != "crashed" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [a.kind for a in assess(Vitals(ok, ok, others=(s.health(),)))] == ["audio_off"]
    sup.poll()
    assert [a.kind for a in sup.held()] == ["audio_off"]
    while not s.played and time.monotonic() < deadline:
        time.sleep(0.005)
    s.close()
    sup.stop()  # waits for the restart under way: its event is logged after the relaunch
    assert s.played == ["warning"] and s.restarts == 1
    assert log.of_kind("worker_restarted")[0].data["worker"] == "audio"
