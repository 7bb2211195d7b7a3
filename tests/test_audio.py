"""Alarm sounds: distinct IEC 60601-1-8-style patterns rendered to WAV; EMG audio; no device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from ionm_station.audio import AUDIO_RATE_HZ, PATTERNS, AlarmSounder, emg_to_audio, pulse_onsets, render_alarm


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
    assert not s.available and "PortAudio" in s.notice
    s.set_priority("warning")  # returns at once, plays nothing
    s.close()
