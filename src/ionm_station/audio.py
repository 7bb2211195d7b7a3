"""Alarm tones and EMG audio.

Alarm sounds follow the IEC 60601-1-8 approach: each priority has its own burst pattern of
harmonic-rich pulses, so the urgency is recognisable without looking:

* warning (high): 10 pulses — 3, 2 (pause) 3, 2 — repeated every 10 s;
* caution (medium): 3 pulses, repeated every 15 s;
* advisory (low): 2 pulses, once.

Rendering is pure numpy (tests write WAV files and check the pattern). Everything sounds
through the one :class:`~ionm_station.audio_out.AudioOutput` (a callback-driven
``sounddevice`` stream, or its null device): alarm tones and the EMG audio of one channel are
mixed there. Without PortAudio or an output device the station says so in one line
(``audio unavailable: install libportaudio2``) and carries on — audio never blocks start-up or
acquisition. The :class:`AlarmSounder` is the audio worker: a supervised thread like every
other thread of the station, which sounds the alarm patterns, sets up the EMG feed the output's
callback pulls from the ring, and turns a failed stream or feed into a supervised fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

from ionm_station.audio_out import RATE_HZ, AudioOutput, EmgFeed
from ionm_station.pipeline.worker import Worker

AUDIO_RATE_HZ = RATE_HZ


@dataclass(frozen=True)
class Pattern:
    """A burst: pulse start times (s) within it, pulse length (s), fundamental (Hz), repeat (s)."""

    onsets_s: tuple[float, ...]
    pulse_s: float
    fundamental_hz: float
    repeat_s: float | None


PATTERNS = {
    "warning": Pattern((0.0, 0.1, 0.2, 0.5, 0.6, 1.4, 1.5, 1.6, 1.9, 2.0), 0.075, 880.0, 10.0),
    "caution": Pattern((0.0, 0.2, 0.4), 0.15, 660.0, 15.0),
    "advisory": Pattern((0.0, 0.25), 0.2, 440.0, None),
}


def render_pulse(pattern: Pattern, rate_hz: int = AUDIO_RATE_HZ) -> np.ndarray:
    """One pulse: fundamental plus 4 harmonics, 10 ms raised-cosine rise and fall (float, ±1)."""
    n = int(pattern.pulse_s * rate_hz)
    t = np.arange(n) / rate_hz
    tone = sum(np.sin(2 * np.pi * k * pattern.fundamental_hz * t) / k for k in range(1, 6))
    ramp = min(int(0.010 * rate_hz), n // 2)
    env = np.ones(n)
    env[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    env[n - ramp:] = env[:ramp][::-1]
    return tone * env / np.max(np.abs(tone))


def render_alarm(priority: str, volume: float = 0.5, rate_hz: int = AUDIO_RATE_HZ) -> np.ndarray:
    """One burst of the alarm sound of ``priority`` (advisory/caution/warning), float32 mono."""
    p = PATTERNS[priority]
    pulse = render_pulse(p, rate_hz)
    out = np.zeros(int((p.onsets_s[-1] + p.pulse_s) * rate_hz) + 1)
    for onset in p.onsets_s:
        i = int(onset * rate_hz)
        out[i:i + len(pulse)] += pulse
    return (np.clip(volume, 0.0, 1.0) * out).astype(np.float32)


def emg_to_audio(emg_uv: np.ndarray, sample_rate_hz: float, full_scale_uv: float = 500.0,
                 rate_hz: int = AUDIO_RATE_HZ) -> np.ndarray:
    """EMG (µV, one channel) as audio: resampled to ``rate_hz``, ±``full_scale_uv`` → ±1."""
    x = np.nan_to_num(np.asarray(emg_uv, dtype=np.float64)) / full_scale_uv
    up, down = rate_hz, int(round(sample_rate_hz))
    g = np.gcd(up, down)
    y = signal.resample_poly(x, up // g, down // g)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def pulse_onsets(audio: np.ndarray, rate_hz: int = AUDIO_RATE_HZ) -> list[float]:
    """Start times (s) of the pulses in a rendered sound (for tests and checks)."""
    win = int(0.005 * rate_hz)  # 5 ms moving RMS: smooth over the tone's own periods
    env = np.sqrt(np.convolve(np.asarray(audio, dtype=np.float64) ** 2, np.ones(win) / win, "same"))
    on = env > 0.3 * env.max()
    edges = np.flatnonzero(np.diff(on.astype(np.int8)) == 1) + 1
    starts = ([0] if on[0] else []) + edges.tolist()
    return [s / rate_hz for s in starts]


class AlarmSounder(Worker):
    """The audio worker (``audio``): sounds the alarm of the highest audible priority and, when
    told to :meth:`listen`, hands the output an EMG feed of one channel of a ring (the output's
    callback pulls it at every block: no extra thread between the ring and the sound).

    The window hands it the priority to sound (:meth:`set_priority`) and registers it with the
    session's supervisor: a fault in playback (or an output stream that stopped by itself)
    crashes the worker, which is restarted — the output reopened, the EMG feed started again at
    the newest sample — and shows as an AUDIO OFF technical alarm meanwhile. ``notice`` says why
    audio is off (no PortAudio, no device, the device vanished); it is '' when audio works.

    Args:
        volume: alarm volume 0–1.
        muted: start with alarm tones muted.
        player: plays a float block at :data:`AUDIO_RATE_HZ` without blocking (default: the
            ``output``'s :meth:`~ionm_station.audio_out.AudioOutput.play_tone`).
        output: the audio output (default: a new one on the default sound card).
    """

    def __init__(self, volume: float = 0.5, muted: bool = False,
                 player: Callable[[np.ndarray, int], object] | None = None,
                 output: AudioOutput | None = None) -> None:
        super().__init__("audio", stall_s=5.0, idle_s=0.02)
        self.volume = volume
        self.muted = muted
        self._owns_output = output is None and player is None
        self.output = output if output is not None else (None if player else AudioOutput())
        self.notice = self.output.notice if self.output is not None else ""
        if player is not None:
            self._play: Callable[[np.ndarray, int], object] | None = player
        elif self.output is not None and self.output.available:
            self._play = self.output.play_tone
        else:
            self._play = None
        self._priority: str | None = None
        self._next_s = 0.0  # when the pattern of the priority sounds again (monotonic s)
        self._listen: tuple | None = None  # (ring, channel, rate Hz, full scale µV)
        self.feed: EmgFeed | None = None
        self.played: list[str] = []  # priorities played, newest last (for status and tests)

    @property
    def available(self) -> bool:
        return self._play is not None

    def set_priority(self, priority: str | None) -> None:
        """Sound ``priority`` (None: silence) from now on; starts the thread on first use."""
        if priority != self._priority:
            self._priority = priority
            self._next_s = 0.0
        if self.available and priority:
            self._start()

    def listen(self, ring, channel: int, sample_rate_hz: float,
               full_scale_uv: float = 500.0) -> None:
        """Play ``channel`` of ``ring`` (µV at ``sample_rate_hz``) as EMG audio, ±
        ``full_scale_uv`` → ±1 (then the output's EMG volume and mute); starts the thread.
        Listening to another channel replaces the feed: the old channel's queued audio is
        dropped, the new one starts at the ring's newest sample."""
        with self._lock:  # not while a restart rebuilds the feed (on_restart)
            self._listen = (ring, int(channel), float(sample_rate_hz), float(full_scale_uv))
            if self.output is None or not self.output.available:
                return
            self.output.open()
            self._set_feed(EmgFeed(ring, channel, sample_rate_hz, self.output, full_scale_uv))
        self._start()

    def unlisten(self) -> None:
        """No more EMG audio (the feed removed, queued EMG dropped); alarm tones play on."""
        with self._lock:
            self._listen = None
            self._set_feed(None)

    @property
    def listening(self) -> int | None:
        """The channel played as EMG audio (None: none)."""
        return None if self._listen is None else self._listen[1]

    def set_emg_volume(self, volume: float) -> None:
        """EMG audio gain 0–1 (the output's; takes effect within one block)."""
        if self.output is not None:
            self.output.emg_volume = min(1.0, max(0.0, float(volume)))

    def _set_feed(self, feed: EmgFeed | None) -> None:
        self.feed = feed
        if self.output is not None:
            self.output.set_feed(feed)

    def _start(self) -> None:
        if self.output is not None and self.output.available:
            self.output.open()
        self.start()

    def close(self) -> None:
        self.stop(1.0)
        if self.output is not None:
            if self.output.feed is self.feed:
                self.output.feed = None
            if self._owns_output:
                self.output.close()

    def on_restart(self) -> None:
        """A fresh output stream if it stopped, and a fresh EMG feed at the newest sample."""
        if self.output is not None and self.output.available:
            self.output.open()
            if self._listen is not None:
                ring, channel, rate, full = self._listen
                self._set_feed(EmgFeed(ring, channel, rate, self.output, full))

    def step(self) -> int:
        done = 0
        if self.output is not None:
            self.output.check()  # a stream or feed that failed: crash, restart, AUDIO OFF
        priority = self._priority
        now = time.monotonic()
        if not priority or self._play is None or now < self._next_s:
            return done
        if not self.muted:
            try:
                self._play(render_alarm(priority, self.volume), AUDIO_RATE_HZ)
            except OSError as exc:  # a device that vanished: say so, stop trying
                self.notice = f"audio off: {exc}".splitlines()[0]
                self._play = None
                return done
            self.played.append(priority)
            del self.played[:-100]
        repeat = PATTERNS[priority].repeat_s
        if repeat is None:
            self._priority = None
        else:
            self._next_s = now + repeat
        return done + 1
