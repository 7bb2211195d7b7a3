"""The simulated amplifier: a deterministic multichannel EMG source with exact ground truth.

Signal model (µV): amplifier/tissue noise + slow electrode drift + ECG (one heart, per-channel
gain, sign and delay) + mains with harmonics and a drifting frequency + the scenario's script
(free-run EMG events, stimuli with artifacts and CMAPs, electrocautery with a recovery tail),
clipped to ±``range_uv`` like a real amplifier; lead-off channels sit flat at +``range_uv``.

Everything is a pure function of the absolute sample index and the seed: :meth:`generate`
renders any sample range and gives identical numbers however the stream is chunked. Noise is
drawn per fixed block of :data:`NOISE_BLOCK` samples from ``default_rng([seed, tag, block])``;
mains and drift phases are computed analytically; events are rendered once at construction and
their overlapping slices added.

Events on a root (``root = "L5"``) rather than one channel appear with gain 1 on the first
matching channel and :data:`SECONDARY_GAIN` on the others; ground truth gives the p-p of the
first (gain-1) channel and the gains.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ionm_station.clock import Clock, MonotonicClock
from ionm_station.events import Event
from ionm_station.montage import Montage, MontageChannel
from ionm_station.sim import waveforms
from ionm_station.sim.scenario import (
    CAUTERY_TAIL_TAUS,
    MUAP_MAX_S,
    TARGET_PATTERN,
    TOF_INTERVAL_S,
    TOF_PULSES,
    Scenario,
    ScriptEvent,
    expand_random,
)
from ionm_station.sim.voluntary import VoluntaryTruth, render_voluntary
from ionm_station.sources.base import Source, SourceCounters, Stimulator
from ionm_station.stream import Chunk, StreamInfo

#: Samples per noise block (noise of a block depends only on seed and block number).
NOISE_BLOCK = 4096
#: Gain of the 2nd, 3rd… channel of a root-wide event or CMAP (the first has gain 1).
SECONDARY_GAIN = 0.4
#: Longest chunk :meth:`SimulatedAmplifier.read` returns when the consumer is late (s).
MAX_CHUNK_S = 0.5
#: Delay (s) of a closed-loop stimulus after the next block start when no index is given.
STIMULUS_LEAD_S = 0.005
#: Samples below this fraction of an event's peak at its ends are not part of the event.
NEGLIGIBLE = 1e-3
#: Sinusoids (0.05–1 Hz, random per channel mix) making the slow electrode drift.
DRIFT_COMPONENTS = 3
#: Mains harmonic amplitudes relative to the fundamental (1st … 5th; odd stronger).
MAINS_HARMONICS = (1.0, 0.03, 0.2, 0.02, 0.08)
#: Cautery recovery-tail noise relative to the episode's noise level.
CAUTERY_TAIL_NOISE = 0.05
#: A-train MUAP width: σ in units of 1/(2π·rate); 1.5 makes the train near-sinusoidal.
A_TRAIN_SIGMA_CYCLES = 1.5
#: Stimulus artifact decay time constant (s).
STIM_ARTIFACT_TAU_S = 0.0003
#: CMAP size vs current: logistic centred this far above threshold (mA) with this slope (mA).
CMAP_CENTRE_ABOVE_THRESHOLD_MA = 1.0
CMAP_SLOPE_MA = 0.35
#: Train-of-four: relative T1 size and per-pulse fade ratio by block level (twitches present).
TOF_T1 = {4: 1.0, 3: 0.45, 2: 0.25, 1: 0.1, 0: 0.0}
TOF_FADE = {4: 0.98, 3: 0.75, 2: 0.7, 1: 1.0, 0: 1.0}

#: ECG peak (µV) range by muscle keyword; trunk/proximal muscles pick up the most.
_ECG_UV = (("iliops", 150, 300), ("rectus abd", 150, 300), ("anal", 150, 300),
           ("paraspinal", 100, 250), ("intercostal", 150, 300), ("trapez", 60, 150),
           ("adductor", 40, 100), ("vastus", 30, 80), ("glute", 40, 100), ("deltoid", 40, 100))
_ECG_UV_DISTAL = (10, 40)
#: CMAP latency (s) by muscle keyword (distance from the stimulated root).
_LATENCY_S = (("iliops", 0.010), ("adductor", 0.011), ("vastus", 0.012), ("anal", 0.014),
              ("tibialis", 0.016), ("peroneus", 0.016), ("gastroc", 0.017),
              ("extensor hallucis", 0.018), ("abductor hallucis", 0.020))
_LATENCY_DEFAULT_S = 0.015


# --- ground truth -------------------------------------------------------------------------


@dataclass(frozen=True)
class TruthEvent:
    """One scripted EMG event as rendered (before noise).

    Attributes:
        kind: spike | burst | a_train | b_train.
        channels: channel indices, first = gain 1.
        onset: absolute index of the first non-negligible sample.
        offset: absolute index of the last non-negligible sample (inclusive).
        peak_uv: actual peak-to-peak of the waveform alone on ``channels[0]`` (µV).
        train_type: "A", "B" or None.
        rate_hz: firing rate of trains (Hz), None otherwise.
        gains: gain per channel (p-p on channel i = ``peak_uv * gains[i]``).
    """

    kind: str
    channels: tuple[int, ...]
    onset: int
    offset: int
    peak_uv: float
    train_type: str | None = None
    rate_hz: float | None = None
    gains: tuple[float, ...] = ()


@dataclass(frozen=True)
class TruthArtifact:
    """Cautery (onset … end of the recovery tail, all channels) or lead-off (one channel);
    ``offset`` is the last affected sample (inclusive)."""

    kind: str
    channels: tuple[int, ...]
    onset: int
    offset: int


@dataclass(frozen=True)
class TruthStimulus:
    """One stimulus: sample index, current (mA), target root-side, CMAP p-p on the target's
    first channel (µV) and, for train-of-four, the pulse number 1–4."""

    index: int
    current_ma: float
    target: str
    cmap_uv: float
    tof_pulse: int | None = None


@dataclass
class GroundTruth:
    """Everything the simulator put into the signal (first pass of the script plus every
    closed-loop stimulus); ``ecg_beats`` are the heart's R-peak indices within the script."""

    events: list[TruthEvent] = field(default_factory=list)
    artifacts: list[TruthArtifact] = field(default_factory=list)
    stimuli: list[TruthStimulus] = field(default_factory=list)
    ecg_beats: list[int] = field(default_factory=list)
    voluntary: VoluntaryTruth | None = None

    def to_json_dict(self, sample_rate_hz: float) -> dict[str, Any]:
        """JSON-ready dict with times in seconds (sample index / ``sample_rate_hz``)."""
        def s(i: int) -> float:
            return i / sample_rate_hz

        return {
            "sample_rate_hz": sample_rate_hz,
            "events": [{"kind": e.kind, "channels": list(e.channels), "onset_s": s(e.onset),
                        "offset_s": s(e.offset), "peak_uv": e.peak_uv, "train_type": e.train_type,
                        "rate_hz": e.rate_hz, "gains": list(e.gains)} for e in self.events],
            "artifacts": [{"kind": a.kind, "channels": list(a.channels), "onset_s": s(a.onset),
                           "offset_s": s(a.offset)} for a in self.artifacts],
            "stimuli": [{"time_s": s(t.index), "current_ma": t.current_ma, "target": t.target,
                         "cmap_uv": t.cmap_uv, "tof_pulse": t.tof_pulse} for t in self.stimuli],
            "ecg_beats_s": [s(i) for i in self.ecg_beats],
        }


# --- rendered script pieces ----------------------------------------------------------------


@dataclass(frozen=True)
class _Placed:
    """A pre-rendered waveform (µV) added to ``channels`` × ``gains`` from sample ``onset``."""

    onset: int
    wave: np.ndarray
    channels: np.ndarray
    gains: np.ndarray

    @property
    def stop(self) -> int:
        return self.onset + len(self.wave)


@dataclass(frozen=True)
class _Cautery:
    """An electrocautery episode [onset, off) and its recovery tail up to ``stop``."""

    onset: int
    off: int
    stop: int
    tau: float
    level_uv: np.ndarray
    offset_uv: np.ndarray


@dataclass(frozen=True)
class _LeadOff:
    onset: int
    stop: int
    channel: int


@dataclass
class _Script:
    """Rendered pieces of a script plus the events reported in chunks."""

    placed: list[_Placed] = field(default_factory=list)
    cautery: list[_Cautery] = field(default_factory=list)
    lead_off: list[_LeadOff] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _onsets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _stops: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def placed_overlapping(self, lo: int, hi: int) -> list[_Placed]:
        """Placed pieces that touch samples [lo, hi), in script order."""
        if len(self._onsets) != len(self.placed):
            self._onsets = np.array([p.onset for p in self.placed], dtype=np.int64)
            self._stops = np.array([p.stop for p in self.placed], dtype=np.int64)
        hits = np.flatnonzero((self._onsets < hi) & (self._stops > lo))
        return [self.placed[i] for i in hits]

    def span(self) -> int:
        """Longest piece (samples), for finding pieces that overlap a range."""
        stops = [p.stop - p.onset for p in self.placed] + [c.stop - c.onset for c in self.cautery]
        return max(stops + [lo.stop - lo.onset for lo in self.lead_off] + [1])


class _BlockNoise:
    """Standard-normal float32 noise (n, channels) depending only on (seed, tag, absolute index)."""

    def __init__(self, seed: int, tag: int, n_channels: int) -> None:
        self._seed, self._tag, self._n_channels = seed, tag, n_channels
        self._cache: dict[int, np.ndarray] = {}

    def _block(self, b: int) -> np.ndarray:
        if b not in self._cache:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            rng = np.random.default_rng([self._seed, self._tag, b])
            self._cache[b] = rng.standard_normal((NOISE_BLOCK, self._n_channels), np.float32)
        return self._cache[b]

    def get(self, start: int, n: int) -> np.ndarray:
        """Noise for samples [start, start + n)."""
        first, last = start // NOISE_BLOCK, (start + n - 1) // NOISE_BLOCK
        parts = [self._block(b) for b in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        offset = start - first * NOISE_BLOCK
        return joined[offset:offset + n]


def _by_muscle(channel: MontageChannel, table: tuple, default: Any) -> Any:
    muscle = channel.muscle.lower()
    for keyword, *value in table:
        if keyword in muscle:
            return value[0] if len(value) == 1 else tuple(value)
    return default


def _trim(wave: np.ndarray) -> tuple[int, np.ndarray]:
    """Drop negligible samples at both ends: (index of the first kept sample, kept part)."""
    keep = np.flatnonzero(np.abs(wave) >= NEGLIGIBLE * np.abs(wave).max())
    return int(keep[0]), wave[keep[0]:keep[-1] + 1]


def _scaled_pp(wave: np.ndarray, peak_uv: float) -> np.ndarray:
    """``wave`` scaled to a peak-to-peak of ``peak_uv`` (µV)."""
    return wave * (peak_uv / (wave.max() - wave.min()))


# --- the amplifier ------------------------------------------------------------------------


class SimulatedAmplifier(Source):
    """A :class:`~ionm_station.sources.base.Source` rendering a scenario on a montage; it is
    its own :attr:`stimulator` (closed-loop stimuli are rendered into the signal).

    Lead-off is reported in the closed form (``lead_off`` with ``stop`` set) at its onset:
    the script knows its end in advance.

    Args:
        montage: channel i records ``montage.channels[i]`` (1–64 channels).
        scenario: what happens (see :mod:`ionm_station.sim.scenario`).
        sample_rate_hz: 2000–20000 Hz.
        seed: random seed; None → ``scenario.seed``.
        range_uv: amplifier input range; the output saturates at ± this (µV).
        realtime: pace :meth:`read` against ``clock``; False → blocks as fast as asked.
        clock: pacing clock (a :class:`~ionm_station.clock.ManualClock` in tests).
        block_s: nominal chunk length (s).
    """

    def __init__(self, montage: Montage, scenario: Scenario, sample_rate_hz: float = 10000,
                 seed: int | None = None, range_uv: float = 5000.0, realtime: bool = True,
                 clock: Clock | None = None, block_s: float = 0.01) -> None:
        _check_args(montage, sample_rate_hz, range_uv, block_s)
        self.montage = montage
        self.scenario = scenario
        self.sample_rate_hz = float(sample_rate_hz)
        self.seed = scenario.seed if seed is None else int(seed)
        self.range_uv = float(range_uv)
        self.realtime = realtime
        self.info = StreamInfo(self.sample_rate_hz, montage.labels, self.range_uv,
                               source="simulated")
        self.counters = SourceCounters()
        self._clock: Clock = clock or MonotonicClock()
        self._block = max(1, round(block_s * self.sample_rate_hz))
        self._max_chunk = max(self._block, round(MAX_CHUNK_S * self.sample_rate_hz))
        self._period = round(scenario.duration_s * self.sample_rate_hz)
        self._position = 0
        self._t0: float | None = None
        self._lock = threading.RLock()  # read() and schedule_stimulus() come from two threads
        self._noise = _BlockNoise(self.seed, 1, len(montage.channels))
        self._cautery_noise = _BlockNoise(self.seed, 2, len(montage.channels))
        self._init_baseline()
        self.truth = GroundTruth(ecg_beats=self._ecg_beats_between(0, self._period).tolist())
        self._script = _Script()
        self._dynamic = _Script()
        self._n_dynamic = 0
        for number, event in enumerate(expand_random(scenario, montage, self.seed)):
            self._add_script_event(event, np.random.default_rng([self.seed, 3, number]))
        self._add_voluntary()
        self._script.events.sort(key=lambda e: e.start)
        self._script_span = self._script.span()

    @property
    def n_channels(self) -> int:
        return len(self.montage.channels)

    # --- Source interface ---

    @property
    def state(self) -> str:
        """``streaming`` between :meth:`open` and :meth:`close`, else ``closed``."""
        return "closed" if self._t0 is None else "streaming"

    @property
    def live(self) -> bool:
        """Paced in real time (``realtime``): the acquisition must not make it wait."""
        return self.realtime

    @property
    def stimulator(self) -> Stimulator:
        return self

    def open(self) -> None:
        """Start the stream at sample 0 now (by the clock)."""
        self._t0 = self._clock.now()
        self._position = 0

    def read(self) -> Chunk:
        """The next chunk: one block (more if the consumer is late, at most 0.5 s); in realtime
        mode waits on the clock until the block is due (at most one block period)."""
        if self._t0 is None:
            raise RuntimeError("open() the simulated amplifier before read()")
        n = self._samples_due() if self.realtime else self._block
        with self._lock:  # a stimulus scheduled meanwhile lands in this chunk or the next, whole
            start = self._position
            chunk = Chunk(start, self.generate(start, n), self.events_between(start, start + n),
                          host_time_s=self._clock.now())
            self._position += n
        self.counters.samples += n
        return chunk

    def close(self) -> None:
        self._t0 = None

    def _elapsed_samples(self) -> int:
        assert self._t0 is not None
        return math.floor((self._clock.now() - self._t0) * self.sample_rate_hz + 1e-6)

    def _samples_due(self) -> int:
        due = self._elapsed_samples() - self._position
        if due < self._block:
            self._clock.sleep((self._block - due) / self.sample_rate_hz)
            due = max(self._elapsed_samples() - self._position, self._block)
        return min(due, self._max_chunk)

    # --- closed-loop stimulation ---

    def schedule_stimulus(self, current_ma: float, target: str, at_index: int | None = None) -> int:
        """Stimulate ``target`` (root-side, e.g. ``"L5-L"``) with ``current_ma`` (mA) at sample
        ``at_index`` (None → the next block start + 5 ms); returns the stimulus index."""
        if not 0.0 <= current_ma <= 100.0:
            raise ValueError(f"stimulus current must be 0–100 mA, got {current_ma}")
        with self._lock:
            index = self._position + round(STIMULUS_LEAD_S * self.sample_rate_hz) \
                if at_index is None else int(at_index)
            if index < self._position:
                raise ValueError(f"stimulus at sample {index} is in the past (next sample "
                                 f"{self._position})")
            rng = np.random.default_rng([self.seed, 4, self._n_dynamic])
            self._n_dynamic += 1
            self._add_stimulus(self._dynamic, index, float(current_ma), self._target(target), rng)
        return index

    def _target(self, target: str) -> list[int]:
        """Channels of a root-side such as ``"L5-L"``; ValueError if the montage has none."""
        channels = self._target_channels(target)
        if not channels:
            raise ValueError(f"no channel of montage {self.montage.name!r} records {target!r}")
        return channels

    def _target_channels(self, target: str) -> list[int]:
        m = TARGET_PATTERN.match(target)
        return self.montage.channels_of(m["root"], m["side"]) if m else []

    # --- rendering ---

    def generate(self, start: int, n: int) -> np.ndarray:
        """Samples [start, start + n) as float32 (n, channels) µV; pure and chunking-independent.

        Accumulates in float32 (resolution < 0.001 µV at the 5000 µV rails); the phases of
        mains, drift and heartbeats are computed in float64 from the absolute index."""
        if start < 0 or n < 0:
            raise ValueError(f"need start >= 0 and n >= 0, got start={start}, n={n}")
        out = np.zeros((n, self.n_channels), np.float32)
        if n == 0:
            return out
        with self._lock:
            self._add_baseline(out, start)
            scripts = [(self._script, s) for s in self._cycle_shifts(start, n)]
            scripts.append((self._dynamic, 0))
            for script, shift in scripts:
                self._add_placed(out, start, script, shift)
                self._add_cautery(out, start, script.cautery, shift)
        np.clip(out, -self.range_uv, self.range_uv, out=out)
        for script, shift in scripts:
            self._apply_lead_off(out, start, script.lead_off, shift)
        return out

    def events_between(self, start: int, stop: int) -> list[Event]:
        """Source events (stimuli, lead-off starts) whose start lies in [start, stop)."""
        found = []
        with self._lock:
            for shift in self._cycle_shifts(start, stop - start, span=1):
                found += [_shifted(e, shift) for e in self._script.events
                          if start <= e.start + shift < stop]
            found += [e for e in self._dynamic.events if start <= e.start < stop]
        return sorted(found, key=lambda e: e.start)

    def _cycle_shifts(self, start: int, n: int, span: int | None = None) -> list[int]:
        """Offsets of the script passes that can touch [start, start + n)."""
        if not self.scenario.loop:
            return [0]
        reach = self._script_span if span is None else span
        first = max(0, (start - reach) // self._period)
        last = (start + n - 1) // self._period
        return [k * self._period for k in range(first, last + 1)]

    # --- baseline: noise, drift, mains, ECG ---

    def _init_baseline(self) -> None:
        sc, c = self.scenario, self.n_channels
        rng = np.random.default_rng([self.seed, 0])
        self._noise_uv = (sc.noise_uv * rng.uniform(0.8, 1.2, c)).astype(np.float32)
        self._drift_hz = rng.uniform(0.05, 1.0, DRIFT_COMPONENTS)
        self._drift_phase = rng.uniform(0.0, 2.0 * np.pi, DRIFT_COMPONENTS)
        self._drift_uv = (sc.drift_uv / math.sqrt(DRIFT_COMPONENTS)
                          * rng.standard_normal((DRIFT_COMPONENTS, c))).astype(np.float32)
        self._mains_uv = (sc.mains_uv * rng.uniform(0.5, 1.5, c)).astype(np.float32)
        self._mains_phase = rng.uniform(0.0, 2.0 * np.pi, len(MAINS_HARMONICS))
        self._ecg_template, self._ecg_r = self._ecg_template_for(rng)
        self._ecg_jitter = _BlockNoise(self.seed, 5, 1)
        self._artifact_gain = rng.uniform(0.3, 1.0, c) * rng.choice([-1.0, 1.0], c)
        self._latency = [round(_by_muscle(ch, _LATENCY_S, _LATENCY_DEFAULT_S)
                               * self.sample_rate_hz) for ch in self.montage.channels]
        self._cmap_s = rng.uniform(0.010, 0.020, c)

    def _ecg_template_for(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """ECG beat per channel (samples, channels) µV with per-channel gain, sign and delay
        (0–8 ms); returns it and the row of the heart's R peak."""
        fs, (before, after) = self.sample_rate_hz, waveforms.ECG_SUPPORT_S
        r_row = math.ceil(-before * fs)
        t = (np.arange(r_row + math.ceil((after + 0.008) * fs)) - r_row) / fs
        ranges = [_by_muscle(ch, _ECG_UV, _ECG_UV_DISTAL) for ch in self.montage.channels]
        gain = np.array([rng.uniform(lo, hi) for lo, hi in ranges]) * self.scenario.ecg_scale
        gain *= rng.choice([-1.0, 1.0], self.n_channels)
        delay = rng.uniform(0.0, 0.008, self.n_channels)
        template = waveforms.ecg_beat(t[:, None] - delay[None, :]) * gain[None, :]
        return template.astype(np.float32), r_row

    def _add_baseline(self, out: np.ndarray, start: int) -> None:
        n = out.shape[0]
        t_s = np.arange(start, start + n) / self.sample_rate_hz
        np.multiply(self._noise.get(start, n), self._noise_uv, out=out)
        for k in range(DRIFT_COMPONENTS):
            drift = np.sin(2.0 * np.pi * self._drift_hz[k] * t_s + self._drift_phase[k])
            out += drift.astype(np.float32)[:, None] * self._drift_uv[k]
        out += self._mains(t_s).astype(np.float32)[:, None] * self._mains_uv
        if self.scenario.ecg_scale > 0:
            self._add_ecg(out, start)

    def _mains(self, t_s: np.ndarray) -> np.ndarray:
        """Unit mains with harmonics at times ``t_s`` (s); phase is the integrated frequency
        f(t) = mains_hz + offset + drift · sin(2π t / period)."""
        sc = self.scenario
        period = sc.mains_drift_period_s
        cycles = (sc.mains_hz + sc.mains_offset_hz) * t_s \
            - sc.mains_drift_hz * period / (2.0 * np.pi) * np.cos(2.0 * np.pi * t_s / period)
        phase = 2.0 * np.pi * cycles
        total = np.zeros_like(t_s)
        for h, amplitude in enumerate(MAINS_HARMONICS, start=1):
            total += amplitude * np.sin(h * phase + self._mains_phase[h - 1])
        return total

    def _beat_indices(self, k: np.ndarray) -> np.ndarray:
        """R-peak sample index of beats ``k`` (consecutive, ≥ 0): k·T plus a jitter of up to
        ±variability/2·T, so beat-to-beat intervals vary by up to ±variability."""
        interval_s = 60.0 / self.scenario.heart_rate_bpm
        jitter = self._ecg_jitter.get(int(k[0]), len(k))[:, 0]
        offset = np.clip(jitter, -2.0, 2.0) / 4.0 * self.scenario.heart_rate_variability
        return np.round((k + offset) * interval_s * self.sample_rate_hz).astype(np.int64)

    def _ecg_beats_between(self, start: int, stop: int) -> np.ndarray:
        """R-peak indices of the beats whose R peak lies in [start, stop)."""
        samples_per_beat = 60.0 / self.scenario.heart_rate_bpm * self.sample_rate_hz
        k = np.arange(max(0, math.floor(start / samples_per_beat) - 1),
                      math.ceil(stop / samples_per_beat) + 2)
        r = self._beat_indices(k)
        return r[(r >= start) & (r < stop)]

    def _add_ecg(self, out: np.ndarray, start: int) -> None:
        stop = start + out.shape[0]
        length = len(self._ecg_template)
        for r in self._ecg_beats_between(start - length, stop + length):
            a = r - self._ecg_r
            lo, hi = max(a, start), min(a + length, stop)
            if lo < hi:
                out[lo - start:hi - start] += self._ecg_template[lo - a:hi - a]

    # --- script rendering ---

    def _add_placed(self, out: np.ndarray, start: int, script: _Script, shift: int) -> None:
        stop = start + out.shape[0]
        for p in script.placed_overlapping(start - shift, stop - shift):
            a = p.onset + shift
            lo, hi = max(a, start), min(a + len(p.wave), stop)
            out[lo - start:hi - start, p.channels] += p.wave[lo - a:hi - a, None] * p.gains

    def _add_cautery(self, out: np.ndarray, start: int, episodes: list[_Cautery],
                     shift: int) -> None:
        stop = start + out.shape[0]
        for ep in episodes:
            lo, hi = max(ep.onset + shift, start), min(ep.stop + shift, stop)
            if lo >= hi:
                continue
            after = np.maximum(np.arange(lo, hi) - (ep.off + shift), 0)
            decay = np.exp(-after / ep.tau)
            noise_scale = np.where(after > 0, CAUTERY_TAIL_NOISE, 1.0) * decay
            z = self._cautery_noise.get(lo, hi - lo)
            out[lo - start:hi - start] += z * noise_scale[:, None] * ep.level_uv \
                + decay[:, None] * ep.offset_uv

    def _apply_lead_off(self, out: np.ndarray, start: int, spans: list[_LeadOff],
                        shift: int) -> None:
        stop = start + out.shape[0]
        for span in spans:
            lo, hi = max(span.onset + shift, start), min(span.stop + shift, stop)
            if lo < hi:
                out[lo - start:hi - start, span.channel] = self.range_uv

    # --- building the script ---

    def _index(self, seconds: float) -> int:
        return round(seconds * self.sample_rate_hz)

    def _event_channels(self, event: ScriptEvent) -> list[int]:
        if event.channel is not None:
            labels = self.montage.labels
            return [labels.index(event.channel)] if event.channel in labels else []
        return self.montage.channels_of(event.root, event.side) if event.root else []

    def _add_script_event(self, event: ScriptEvent, rng: np.random.Generator) -> None:
        """Render one scripted event into the script and the ground truth. Events on channels
        this montage does not have are left out (e.g. a 16-channel scenario on 8 channels)."""
        at = self._index(event.at_s)
        if event.kind == "cautery":
            self._add_cautery_episode(event, at, rng)
        elif event.kind in ("stimulus", "tof"):
            if channels := self._target_channels(event.target or ""):
                self._add_stimuli(event, at, channels, rng)
        elif channels := self._event_channels(event):
            if event.kind == "lead_off":
                for c in channels:
                    self._add_lead_off(at, at + self._index(event.duration_s), c)
            else:
                self._add_emg(event, at, channels, rng)

    def _add_voluntary(self) -> None:
        """The biofeedback patient's voluntary EMG (``[biofeedback]``) on its channel, if this
        montage has it; its truth in :attr:`GroundTruth.voluntary`."""
        spec = self.scenario.biofeedback
        if spec is None or spec.channel not in self.montage.labels:
            return
        channel = self.montage.labels.index(spec.channel)
        wave, truth = render_voluntary(spec, channel, self.sample_rate_hz, self._period, self.seed)
        self._script.placed.append(_Placed(0, wave, np.array([channel]), np.ones(1)))
        self.truth.voluntary = truth

    def _add_emg(self, event: ScriptEvent, at: int, channels: list[int],
                 rng: np.random.Generator) -> None:
        first, wave = _trim(_emg_shape(event, rng, self.sample_rate_hz))
        wave = _scaled_pp(wave, event.peak_uv)
        gains = np.array([1.0] + [SECONDARY_GAIN] * (len(channels) - 1))
        self._script.placed.append(_Placed(at + first, wave, np.array(channels), gains))
        train = {"a_train": "A", "b_train": "B"}.get(event.kind)
        self.truth.events.append(TruthEvent(
            kind=event.kind, channels=tuple(channels), onset=at + first,
            offset=at + first + len(wave) - 1, peak_uv=float(wave.max() - wave.min()),
            train_type=train, rate_hz=event.rate_hz if train else None, gains=tuple(gains)))

    def _add_cautery_episode(self, event: ScriptEvent, at: int, rng: np.random.Generator) -> None:
        tau = self.scenario.cautery_recovery_s * self.sample_rate_hz
        off = at + self._index(event.duration_s)
        stop = off + math.ceil(CAUTERY_TAIL_TAUS * tau)
        level_uv = event.level_uv or self.scenario.cautery_uv
        level = level_uv * rng.uniform(0.3, 1.5, self.n_channels)
        offset = self.range_uv * rng.uniform(0.5, 1.5, self.n_channels) \
            * rng.choice([-1.0, 1.0], self.n_channels)
        self._script.cautery.append(_Cautery(at, off, stop, tau, level, offset))
        self.truth.artifacts.append(TruthArtifact("cautery", tuple(range(self.n_channels)),
                                                  at, stop - 1))

    def _add_lead_off(self, onset: int, stop: int, channel: int) -> None:
        self._script.lead_off.append(_LeadOff(onset, stop, channel))
        self._script.events.append(Event("lead_off", onset, stop, channels=(channel,)))
        self.truth.artifacts.append(TruthArtifact("lead_off", (channel,), onset, stop - 1))

    def _add_stimuli(self, event: ScriptEvent, at: int, channels: list[int],
                     rng: np.random.Generator) -> None:
        """A single stimulus, or the four pulses of a train-of-four (supramaximal: T1 and the
        fade depend only on the block level)."""
        if event.kind == "stimulus":
            self._add_stimulus(self._script, at, event.current_ma, channels, rng, event.target)
            return
        t1, fade = TOF_T1[event.block_level], TOF_FADE[event.block_level]
        for pulse in range(TOF_PULSES):
            size = t1 * fade**pulse if pulse < event.block_level else 0.0
            self._add_stimulus(self._script, at + self._index(pulse * TOF_INTERVAL_S),
                               event.current_ma, channels, rng, event.target,
                               tof=(pulse + 1, size * self.scenario.cmap_max_uv))

    def _add_stimulus(self, script: _Script, index: int, current_ma: float, channels: list[int],
                      rng: np.random.Generator, target: str | None = None,
                      tof: tuple[int, float] | None = None) -> None:
        """Stimulus artifact on every channel plus a CMAP on the target's channels (gain 1 on
        the first, :data:`SECONDARY_GAIN` on the others); ``tof`` = (pulse, CMAP µV)."""
        target = target or self.montage.channels[channels[0]].root_side
        fs = self.sample_rate_hz
        art_len = math.ceil(waveforms.stimulus_artifact_support_s(STIM_ARTIFACT_TAU_S) * fs)
        art_t = np.arange(art_len) / fs
        art_gain = self._artifact_gain * self.scenario.stim_artifact_uv_per_ma * current_ma
        script.placed.append(_Placed(index, waveforms.stimulus_artifact(art_t, STIM_ARTIFACT_TAU_S),
                                     np.arange(self.n_channels), art_gain))
        size = self._cmap_uv(current_ma, target, rng) if tof is None else tof[1]
        if size > 0:
            for rank, c in enumerate(channels):
                t = np.arange(math.ceil(self._cmap_s[c] * fs) + 1) / fs
                wave = _scaled_pp(waveforms.cmap(t, self._cmap_s[c]), size)
                gain = np.array([1.0 if rank == 0 else SECONDARY_GAIN])
                script.placed.append(_Placed(index + self._latency[c], wave, np.array([c]), gain))
        data: dict = {"current_ma": current_ma, "target": target}
        if tof is not None:
            data["tof_pulse"] = tof[0]  # the stimulator says which train-of-four pulse this is
        script.events.append(Event("stimulus", index, data=data))
        self.truth.stimuli.append(TruthStimulus(index, current_ma, target, float(size),
                                                None if tof is None else tof[0]))

    def _cmap_uv(self, current_ma: float, target: str, rng: np.random.Generator) -> float:
        """CMAP p-p (µV): logistic in current around the target's threshold, with trial-to-trial
        variability; ≈ 0 below threshold − 1 mA, ≈ ``cmap_max_uv`` a few mA above."""
        sc = self.scenario
        x = (current_ma - sc.threshold_ma(target) - CMAP_CENTRE_ABOVE_THRESHOLD_MA) / CMAP_SLOPE_MA
        size = sc.cmap_max_uv / (1.0 + math.exp(-x))
        return max(0.0, size * (1.0 + sc.cmap_variability * float(rng.standard_normal())))


def _check_args(montage: Montage, sample_rate_hz: float, range_uv: float, block_s: float) -> None:
    if not 1 <= len(montage.channels) <= 64:
        raise ValueError(f"the simulator makes 1–64 channels, montage has "
                         f"{len(montage.channels)}")
    if not 2000 <= sample_rate_hz <= 20000:
        raise ValueError(f"simulator sample rate must be 2000–20000 Hz, got {sample_rate_hz}")
    if not range_uv > 0:
        raise ValueError(f"amplifier range must be > 0 µV, got {range_uv}")
    if not 0 < block_s <= MAX_CHUNK_S:
        raise ValueError(f"block length must be in (0, {MAX_CHUNK_S}] s, got {block_s}")


def _shifted(event: Event, shift: int) -> Event:
    if shift == 0:
        return event
    stop = None if event.stop is None else event.stop + shift
    return Event(event.kind, event.start + shift, stop, event.channels, event.data)


# --- free-run EMG shapes ------------------------------------------------------------------


def _emg_shape(event: ScriptEvent, rng: np.random.Generator, fs: float) -> np.ndarray:
    """Unscaled waveform of a spike, burst or train; sample 0 = the event's ``at_s``."""
    if event.kind == "spike":
        return waveforms.render_firings(np.zeros(1), np.ones(1), rng.uniform(0.005, MUAP_MAX_S),
                                        int(rng.integers(2, 4)), fs)
    if event.kind == "burst":
        return _burst(event, rng, fs)
    if event.kind == "a_train":
        return _a_train(event, rng, fs)
    return _b_train(event, rng, fs)


def _burst(event: ScriptEvent, rng: np.random.Generator, fs: float) -> np.ndarray:
    """3–15 MUAPs from 1–3 motor units at irregular times within ``duration_s``."""
    n = event.n_muaps or int(rng.integers(3, 16))
    n_units = int(rng.integers(1, 4))
    unit = rng.integers(n_units, size=n)
    durations = rng.uniform(0.005, MUAP_MAX_S, n_units)
    times = np.sort(rng.uniform(0.0, event.duration_s - MUAP_MAX_S / 2, n))
    parts = [waveforms.render_firings(times[unit == u], rng.uniform(0.4, 1.0, (unit == u).sum()),
                                      durations[u], int(rng.integers(2, 4)), fs)
             for u in range(n_units) if (unit == u).any()]
    total = np.zeros(max(len(p) for p in parts))
    for p in parts:
        total[:len(p)] += p
    return total


def _a_train(event: ScriptEvent, rng: np.random.Generator, fs: float) -> np.ndarray:
    """Neurotonic A-train: one unit firing exactly at ``rate_hz`` with ±8 % slow amplitude
    modulation. The biphasic MUAP is ~2 periods wide (σ = 1.5 / (2π·rate)), so the overlapping
    MUAPs sum to a near-sinusoid (2nd harmonic < 10 % of the fundamental)."""
    width = 8.0 * A_TRAIN_SIGMA_CYCLES / (2.0 * np.pi * event.rate_hz)
    times = np.arange(0.0, max(event.duration_s - width, 0.0) + 1e-12, 1.0 / event.rate_hz)
    modulation = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(1.0, 4.0) * times
                                     + rng.uniform(0, 2 * np.pi))
    return waveforms.render_firings(times, modulation, width, 2, fs)


def _b_train(event: ScriptEvent, rng: np.random.Generator, fs: float) -> np.ndarray:
    """B-train: one unit firing irregularly (gamma intervals, CV ≈ 0.5) at ~``rate_hz``."""
    width = rng.uniform(0.006, MUAP_MAX_S)
    mean_isi = 1.0 / event.rate_hz
    n_max = int(event.duration_s * event.rate_hz * 3) + 4
    isi = np.maximum(rng.gamma(4.0, mean_isi / 4.0, n_max), 1.5 * width)
    times = np.concatenate([[0.0], np.cumsum(isi)])
    times = times[times <= event.duration_s - width]
    if len(times) < 2:
        times = np.array([0.0, max(event.duration_s - width, 1.5 * width)])
    return waveforms.render_firings(times, rng.uniform(0.6, 1.0, len(times)), width, 3, fs)
