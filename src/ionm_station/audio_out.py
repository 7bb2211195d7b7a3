"""The one audio output: alarm tones and EMG audio mixed in one callback.

Everything the station sounds goes through :class:`AudioOutput`. Its :meth:`AudioOutput.callback`
is the PortAudio callback (``sounddevice.OutputStream``): each call fills one block of
:data:`BLOCK_FRAMES` frames at :data:`RATE_HZ` with

* the EMG audio of one channel: at every block the callback pulls what arrived in the clean
  ring through the :class:`EmgFeed` the audio worker set up (resampled, µV / ``full_scale_uv``),
  × ``emg_volume`` (nothing while ``emg_muted``) — no thread hop between ring and sound;
* every alarm tone still playing (:meth:`AudioOutput.play_tone`, rendered by
  :mod:`ionm_station.audio` at the alarm volume);

summed and clipped to ±1. Where there is no sound card the same callback is driven by a
:class:`NullDevice` thread at the same pace and its output is kept in a buffer
(:meth:`AudioOutput.rendered`): tests and ``scripts/bench_audio`` hear exactly what a card would
play.

The EMG path keeps a jitter buffer: after a start or an underrun the callback waits until
:data:`PREFILL_S` of EMG audio is queued, then plays it in order. An underrun (the queue ran dry
while EMG audio was flowing) is counted, filled with silence, and the buffer primed again with
:data:`PREFILL_STEP_S` more (at most :data:`PREFILL_MAX_S`): on a loaded machine the buffer
grows to what the scheduling jitter needs, and no further. A
queue that grows past ``PREFILL_S`` + :data:`MAX_EXCESS_S` (the worker was held up, or the card's
clock runs slower than the amplifier's) drops its oldest frames down to the prefill; the frames
dropped are counted.

Latency of one EMG sample = the moment its frame is rendered (the callback's time plus its
position in the block, plus the card's own output delay that PortAudio reports) minus the
moment the sample arrived in the ring. Each callback logs the render time and ring index of its
first EMG frame (:attr:`AudioOutput.render_log`) so the latency can be measured through the
real callback path.

Without PortAudio (``libportaudio2`` on Linux) ``sounddevice`` cannot load: :func:`probe` says
so in one line, :data:`NO_PORTAUDIO`, and the station runs on without sound.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Output sample rate (Hz).
RATE_HZ = 44_100
#: Frames per callback (5.8 ms at 44.1 kHz).
BLOCK_FRAMES = 256
#: EMG audio queued before it starts to play, after a start or an underrun (s); each underrun
#: raises it by PREFILL_STEP_S up to PREFILL_MAX_S (a jitter buffer that adapts to the machine).
#: With 10 ms input blocks at 10 kHz, k blocks queue 441 k - 4 frames (the frames after the
#: last sample wait for the next one), so 20 ms (882 frames) starts playing at the third block,
#: with 29.9 ms queued; a prefill grown to 25 ms still does, one grown to 30 ms at the fourth.
PREFILL_S = 0.020
PREFILL_STEP_S = 0.005
PREFILL_MAX_S = 0.035
#: EMG audio queued beyond the prefill that is dropped (oldest first) to bound the latency (s).
MAX_EXCESS_S = 0.060
#: What the status bar and the headless output say when PortAudio is missing.
NO_PORTAUDIO = "audio unavailable: install libportaudio2"
NO_SOUNDDEVICE = "audio unavailable: install the sounddevice package (pip install -e .)"
NO_DEVICE = "audio unavailable: no sound output device"


def probe() -> tuple[Any, str]:
    """The ``sounddevice`` module and '' when sound can be played here, else None and one line
    saying why (no Python exception text)."""
    try:
        import sounddevice
    except OSError:  # sounddevice is there, the PortAudio library is not
        return None, NO_PORTAUDIO
    except ImportError:
        return None, NO_SOUNDDEVICE
    try:
        sounddevice.query_devices(kind="output")
    except Exception:  # PortAudioError / ValueError: no default output device
        return None, NO_DEVICE
    return sounddevice, ""


@dataclass
class AudioStats:
    """What the output has done so far.

    Attributes:
        callbacks: blocks rendered.
        frames: frames rendered.
        underruns: callbacks in which EMG audio was flowing and the queue ran dry.
        dropped_frames: EMG frames dropped to bound the latency.
        late_blocks: null device only: blocks rendered late because the thread woke late.
        status_flags: callbacks whose PortAudio status reported a problem (output underflow).
    """

    callbacks: int = 0
    frames: int = 0
    underruns: int = 0
    dropped_frames: int = 0
    late_blocks: int = 0
    status_flags: int = 0


class _Fifo:
    """EMG audio frames waiting for the callback, each with the (fractional) ring index of the
    input sample it was interpolated at. One producer (the audio worker), one consumer (the
    callback); a lock guards the few numpy copies."""

    def __init__(self, capacity: int) -> None:
        self.audio = np.zeros(capacity, np.float32)
        self.index = np.zeros(capacity, np.float64)
        self.head = 0  # next frame to play (absolute count)
        self.tail = 0  # next frame to write (absolute count)
        self.lock = threading.Lock()

    @property
    def level(self) -> int:
        return self.tail - self.head

    def push(self, audio: np.ndarray, index: np.ndarray) -> int:
        """Append frames; the oldest are overwritten if full. Returns the frames overwritten."""
        cap = len(self.audio)
        with self.lock:
            n = len(audio)
            if n > cap:
                audio, index = audio[-cap:], index[-cap:]
                n = cap
            pos = np.arange(self.tail, self.tail + n) % cap
            self.audio[pos] = audio
            self.index[pos] = index
            self.tail += n
            lost = max(0, self.level - cap)
            self.head += lost
            return lost

    def pop(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            n = min(n, self.level)
            pos = np.arange(self.head, self.head + n) % len(self.audio)
            self.head += n
            return self.audio[pos], self.index[pos]

    def drop(self, n: int) -> None:
        with self.lock:
            self.head += min(n, self.level)

    def clear(self) -> None:
        with self.lock:
            self.head = self.tail


class AudioOutput:
    """One audio output stream that mixes EMG audio and alarm tones (see the module text).

    Args:
        device: ``"auto"`` — the default sound card when PortAudio and a device are present,
            else nothing plays and :attr:`notice` says why; ``"null"`` — no card: the
            :class:`NullDevice` drives the callback in real time and keeps the output.
        rate_hz: output rate (Hz).
        block_frames: frames per callback.
        prefill_s: EMG audio queued before it plays (s).
        keep_s: seconds of output a null device keeps for :meth:`rendered`.

    Attributes:
        emg_volume: EMG audio gain 0–1 (applied in the callback: takes effect within a block).
        emg_muted: EMG audio off (alarm tones still sound).
        notice: '' when the output plays, else one line saying why not.
        stats: counters (:class:`AudioStats`).
        render_log: (render time s on :func:`time.monotonic`, ring index) of the first EMG frame
            of the most recent callbacks.
        underrun_log: render time (s on :func:`time.monotonic`) of the block in which each of
            the most recent underruns began: tells an underrun at the start from one when the
            input stopped.
    """

    def __init__(self, device: str = "auto", rate_hz: int = RATE_HZ,
                 block_frames: int = BLOCK_FRAMES, prefill_s: float = PREFILL_S,
                 keep_s: float = 10.0) -> None:
        if device not in ("auto", "null"):
            raise ValueError(f"audio device must be 'auto' or 'null', got {device!r}")
        self.device = device
        self.rate_hz = int(rate_hz)
        self.block_frames = int(block_frames)
        self.prefill = max(self.block_frames, round(prefill_s * rate_hz))
        self.prefill_max = max(self.prefill, round(PREFILL_MAX_S * rate_hz))
        self.max_level = self.prefill_max + round(MAX_EXCESS_S * rate_hz)
        self.emg_volume = 0.5
        self.emg_muted = False
        self.stats = AudioStats()
        self.render_log: deque[tuple[float, float]] = deque(maxlen=20_000)
        self.underrun_log: deque[float] = deque(maxlen=1_000)
        self._fifo = _Fifo(4 * self.max_level)
        self._priming = True
        self._flowing = False  # EMG audio has been playing since the last prime
        self._tones: list[list[Any]] = []  # [samples, position]
        self._tone_lock = threading.Lock()
        self._keep = np.zeros(max(1, round(keep_s * rate_hz)), np.float32)
        self._kept = 0
        self._stream: Any = None
        self._stream_died = False
        self._error: str | None = None
        #: the EMG feed the callback pulls from the ring at every block (None: no EMG audio);
        #: changed with :meth:`set_feed`
        self.feed: EmgFeed | None = None
        self._feed_lock = threading.Lock()  # a feed changed never mixes with a callback's pump
        self._sd = None
        self.notice = ""
        if device == "auto":
            self._sd, self.notice = probe()

    # --- lifetime ---

    @property
    def available(self) -> bool:
        """Sound can be rendered (a card, or the null device)."""
        return self.device == "null" or self._sd is not None

    @property
    def running(self) -> bool:
        return self._stream is not None

    def open(self) -> None:
        """Start the stream (idempotent); a card that cannot be opened sets :attr:`notice`."""
        if self._stream is not None or not self.available:
            return
        self._error = None
        if self.device == "null":
            self._stream = NullDevice(self.callback, self.rate_hz, self.block_frames)
            self._stream.start()
            return
        try:
            stream = self._sd.OutputStream(samplerate=self.rate_hz, blocksize=self.block_frames,
                                           channels=1, dtype="float32", latency="low",
                                           callback=self.callback,
                                           finished_callback=self._finished)
            stream.start()
        except Exception as exc:  # PortAudioError: the device is busy or vanished
            self.notice = f"audio unavailable: {_one_line(exc)}"
            self._sd = None
            return
        self._stream = stream

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:  # a device already gone: nothing left to close
                pass

    def check(self) -> None:
        """Raise RuntimeError if the stream ended by itself (device gone; the stream is closed,
        to be reopened) or the EMG feed raised in the callback (the stream plays on, without
        EMG): the audio worker calls this on every pass, so such a fault is supervised."""
        if self._error is not None:
            error, self._error = self._error, None
            if self._stream_died:  # the device's stream ended: reopened on restart
                self._stream_died = False
                self.close()
            raise RuntimeError(f"audio output fault: {error}")

    def _finished(self) -> None:
        if self._stream is not None:
            self._stream_died = True
            self._error = "the sound device stopped"

    @property
    def output_latency_s(self) -> float:
        """The card's own output delay PortAudio reports (0 for the null device)."""
        return float(getattr(self._stream, "latency", 0.0) or 0.0) if self.device == "auto" else 0.0

    # --- inputs (any thread) ---

    def play_tone(self, samples: np.ndarray, rate_hz: int = RATE_HZ) -> None:
        """Mix ``samples`` (float, ±1, at :attr:`rate_hz`) in from the next block on."""
        if rate_hz != self.rate_hz:
            raise ValueError(f"tone at {rate_hz} Hz, output at {self.rate_hz} Hz")
        with self._tone_lock:
            self._tones.append([np.asarray(samples, np.float32), 0])

    def push_emg(self, audio: np.ndarray, index: np.ndarray) -> None:
        """Queue EMG audio frames (µV / full scale) with the ring index each was taken at."""
        self.stats.dropped_frames += self._fifo.push(audio, index)

    def set_feed(self, feed: EmgFeed | None) -> None:
        """Play ``feed`` from now on (None: no EMG audio; alarm tones play on). EMG audio
        queued from the previous feed is dropped: nothing of an old channel plays after this
        returns (a callback pumping the old feed finishes first)."""
        with self._feed_lock:
            self.feed = feed
            self.reset_emg()

    def reset_emg(self) -> None:
        """Forget queued EMG audio (a new channel, a restarted feed) and prime again."""
        self._fifo.clear()
        self._priming = True
        self._flowing = False

    @property
    def emg_queued_s(self) -> float:
        return self._fifo.level / self.rate_hz

    # --- the callback (PortAudio's thread or the null device's) ---

    def callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Fill ``outdata`` (frames, 1) float32: EMG audio plus alarm tones, clipped to ±1."""
        now = time.monotonic()
        dac_delay = 0.0
        if time_info is not None and hasattr(time_info, "outputBufferDacTime"):
            dac_delay = max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
        if status:
            self.stats.status_flags += 1
        out = np.zeros(frames, np.float32)
        with self._feed_lock:
            feed = self.feed
            if feed is not None:
                try:
                    feed.pump()
                except Exception as exc:  # the worker sees it at its next pass (supervised)
                    self.feed = None
                    self._error = f"EMG audio: {type(exc).__name__}: {_one_line(exc)}"
            self._mix_emg(out, now + dac_delay)
        self._mix_tones(out)
        np.clip(out, -1.0, 1.0, out=out)
        outdata[:, 0] = out
        self.stats.callbacks += 1
        self.stats.frames += frames
        if self.device == "null":
            self._keep_output(out)

    def _mix_emg(self, out: np.ndarray, render_s: float) -> None:
        fifo, frames = self._fifo, len(out)
        if fifo.level > self.prefill + round(MAX_EXCESS_S * self.rate_hz):
            excess = fifo.level - self.prefill
            fifo.drop(excess)
            self.stats.dropped_frames += excess
        if self._priming:
            if fifo.level < self.prefill:
                return
            self._priming = False
        audio, index = fifo.pop(frames)
        n = len(audio)
        if n < frames:
            if self._flowing:
                self.stats.underruns += 1
                self.underrun_log.append(render_s)
                self.prefill = min(self.prefill_max,
                                   self.prefill + round(PREFILL_STEP_S * self.rate_hz))
            self._priming = True
            self._flowing = False
        elif n:
            self._flowing = True
        if n:
            self.render_log.append((render_s, float(index[0])))
            if not self.emg_muted:
                out[:n] += audio * np.float32(min(max(self.emg_volume, 0.0), 1.0))

    def _mix_tones(self, out: np.ndarray) -> None:
        with self._tone_lock:
            for tone in self._tones:
                samples, pos = tone
                n = min(len(out), len(samples) - pos)
                out[:n] += samples[pos:pos + n]
                tone[1] = pos + n
            self._tones = [t for t in self._tones if t[1] < len(t[0])]

    def _keep_output(self, out: np.ndarray) -> None:
        cap = len(self._keep)
        pos = np.arange(self._kept, self._kept + len(out)) % cap
        self._keep[pos] = out
        self._kept += len(out)

    def rendered(self, seconds: float | None = None) -> np.ndarray:
        """The newest ``seconds`` of output the null device rendered (all it keeps: None)."""
        cap = len(self._keep)
        n = min(self._kept, cap) if seconds is None else min(self._kept, cap,
                                                              round(seconds * self.rate_hz))
        pos = np.arange(self._kept - n, self._kept) % cap
        return self._keep[pos].copy()


class NullDevice:
    """Drives an output callback in real time with no sound card: every ``block_frames`` /
    ``rate_hz`` s on :func:`time.monotonic` it asks the callback for the next block, as a card
    would. A thread that wakes late renders the blocks it owes at once (counted as late)."""

    def __init__(self, callback: Callable[[np.ndarray, int, Any, Any], None], rate_hz: int,
                 block_frames: int) -> None:
        self._callback = callback
        self._period = block_frames / rate_hz
        self._frames = block_frames
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audio-null-device", daemon=True)
        self.latency = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(2.0)

    def close(self) -> None:
        self.stop()

    def _run(self) -> None:
        buf = np.zeros((self._frames, 1), np.float32)
        owner = getattr(self._callback, "__self__", None)
        due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due:
                self._stop.wait(due - now)
                continue
            late = now - due > self._period
            if late and owner is not None:
                owner.stats.late_blocks += 1
            if now - due > 0.5:  # asleep for long (a suspended machine): do not catch up
                due = now
            self._callback(buf, self._frames, None, None)
            due += self._period


class EmgFeed:
    """One channel of a ring as EMG audio, pulled by the output's callback (one thread): reads
    new samples with its own cursor, turns µV into
    ±1 (÷ ``full_scale_uv``) and resamples to the output rate by linear interpolation (the
    clean ring is band-limited to 3 kHz, so images above the input Nyquist are small), then
    queues the frames on the output with the ring index of each.

    Starts at the ring's newest sample (no backlog is ever played); a reader lapped by the ring
    (the worker was held up) starts again at the newest sample.
    """

    def __init__(self, ring: Any, channel: int, sample_rate_hz: float, output: AudioOutput,
                 full_scale_uv: float = 500.0) -> None:
        if not full_scale_uv > 0:
            raise ValueError(f"full scale must be > 0 µV, got {full_scale_uv}")
        self.ring = ring
        self.channel = int(channel)
        self.output = output
        self.full_scale_uv = float(full_scale_uv)
        self.step = float(sample_rate_hz) / output.rate_hz  # input samples per output frame
        self._reader = ring.reader(start=ring.published)
        self._next = float(ring.published)  # ring index of the next output frame
        self._prev: float | None = None  # the last input sample (at index cursor - 1)
        output.reset_emg()

    def pump(self) -> int:
        """Move what arrived into the output; returns input samples taken."""
        got = self._reader.read()
        if got.lost:
            self._restart_at(got.start)
        if got.n_samples == 0:
            return 0
        x = np.nan_to_num(got.data[:, self.channel].astype(np.float64)) / self.full_scale_uv
        if self._prev is None:
            xs, first = x, got.start
        else:
            xs, first = np.concatenate([[self._prev], x]), got.start - 1
        last = got.stop - 1
        if self._next < first:
            self._next = float(first)
        n = int(np.floor((last - self._next) / self.step)) + 1 if self._next <= last else 0
        if n > 0:
            pos = self._next + self.step * np.arange(n)
            audio = np.interp(pos - first, np.arange(len(xs)), xs).astype(np.float32)
            self.output.push_emg(audio, pos)
            self._next = float(pos[-1] + self.step)
        self._prev = float(x[-1])
        return got.n_samples

    def _restart_at(self, index: int) -> None:
        self._prev = None
        self._next = float(index)
        self.output.reset_emg()


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
