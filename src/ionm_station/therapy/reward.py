"""The biofeedback reward tone: a soft chime repeated while the patient is in the target band.

Rendering is pure numpy; playing goes through the station's one audio output
(:class:`~ionm_station.audio_out.AudioOutput`, its public :meth:`play_tone`), so the reward
mixes with alarm tones and never opens a second stream. :class:`RewardTone` is told the reward
state (the core's reward, on the display's clock) and queues one chime every ``every_s`` while
it is on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

#: The chime: C5 and its octave, raised-cosine in and out.
CHIME_HZ = 523.25
CHIME_S = 0.18
EVERY_S = 0.45


class ToneOutput(Protocol):
    rate_hz: int

    def play_tone(self, samples: np.ndarray, rate_hz: int = ...) -> None: ...


def render_chime(rate_hz: int, volume: float = 0.3, pitch_hz: float = CHIME_HZ,
                 length_s: float = CHIME_S) -> np.ndarray:
    """One chime (float32, ±``volume``)."""
    n = max(2, round(length_s * rate_hz))
    t = np.arange(n) / rate_hz
    tone = np.sin(2 * np.pi * pitch_hz * t) + 0.3 * np.sin(4 * np.pi * pitch_hz * t)
    ramp = min(round(0.02 * rate_hz), n // 2)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[n - ramp:] = env[:ramp][::-1]
    return (volume * tone * env / np.max(np.abs(tone))).astype(np.float32)


class RewardTone:
    """Chimes on ``output`` while the reward is on (not more often than ``every_s``)."""

    def __init__(self, output: ToneOutput, volume: float = 0.3, every_s: float = EVERY_S) -> None:
        self.output = output
        self.every_s = every_s
        self.muted = False
        self.chimes = 0
        self._chime = render_chime(output.rate_hz, volume)
        self._next_s = -np.inf

    def update(self, reward_on: bool, now_s: float) -> None:
        """The reward state at ``now_s`` (s, any monotonic clock)."""
        if not reward_on:
            self._next_s = -np.inf  # the next entry into the band chimes at once
            return
        if now_s >= self._next_s and not self.muted:
            self.output.play_tone(self._chime, self.output.rate_hz)
            self.chimes += 1
            self._next_s = now_s + self.every_s
