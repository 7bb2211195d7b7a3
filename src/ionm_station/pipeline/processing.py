"""The processing thread: raw ring → free-run chain → clean ring, events, alarms, triggered EMG.

One thread, one direction: it reads the raw ring with its own cursor, pushes every block
through :class:`~ionm_station.pipeline.chain.FreeRunChain`, writes the clean signal into the clean
ring on the same sample clock (the clean ring lags the raw one by the chain's delay), appends
what it found to the event log, feeds the alarm engine, and lets the triggered-EMG controller
measure stimuli. Source events (stimuli, lead-off, signal lost) reach it through the event
log; the acquisition thread logs them before it publishes the samples they belong to.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from ionm_station.alarms import AlarmConfig, AlarmEngine
from ionm_station.dsp.artifacts import ArtifactSpan
from ionm_station.pipeline.chain import ChainOutput, ChainSettings, FreeRunChain
from ionm_station.dsp.filters import BandpassFilter
from ionm_station.events import Event, EventLog
from ionm_station.montage import Montage
from ionm_station.ring import RingBuffer
from ionm_station.stream import StreamInfo
from ionm_station.triggered.controller import TriggeredEmg

#: How long the thread sleeps when no new samples are waiting (s).
IDLE_S = 0.005
#: Largest block pushed through the chain at once (s): bounds latency after a stall.
MAX_BLOCK_S = 0.1
#: Source event kinds the chain and the alarm engine act on.
SOURCE_KINDS = ("stimulus", "lead_off", "signal_lost", "signal_restored", "replay_seek")


class ProcessingWorker:
    """Runs the free-run chain, alarms and triggered EMG on its own thread.

    Args:
        raw: ring the acquisition thread writes (µV).
        clean: ring this stage writes (same capacity and channels): band-passed, mains- and
            ECG-free µV, NaN where undefined (gaps, blanked artifact).
        info: stream description.
        montage: channel ↔ root map and thresholds.
        events: the session's event log (read for source events, appended with results).
        settings: chain settings (band, mains, ECG removal).
        triggered: the triggered-EMG controller (None: stimuli are only blanked).
        alarm_config: alarm engine settings (train-time levels, adaptive threshold …).
    """

    def __init__(self, raw: RingBuffer, clean: RingBuffer, info: StreamInfo, montage: Montage,
                 events: EventLog, settings: ChainSettings = ChainSettings(),
                 triggered: TriggeredEmg | None = None,
                 alarm_config: AlarmConfig = AlarmConfig()) -> None:
        self.raw = raw
        self.clean = clean
        self.info = info
        self.events = events
        self.settings = settings
        self.reader = raw.reader(start=0)
        self.chain = FreeRunChain(montage, info.sample_rate_hz, info.range_uv, settings)
        self.alarms = AlarmEngine(montage, info.sample_rate_hz, alarm_config, sink=events.append)
        self.triggered = triggered
        self.error: str | None = None
        self._event_cursor = 0
        self._pending: list[Event] = []  # source events not yet handed to the chain
        self._open: set[tuple[str, int, tuple[int, ...]]] = set()
        self._blockade = ""
        self._new_band: tuple[float, float] | None = None
        self._block = max(1, int(MAX_BLOCK_S * info.sample_rate_hz))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="processing", daemon=True)

    @property
    def delay(self) -> int:
        """Samples by which the clean ring lags the raw ring."""
        return self.chain.delay

    def start(self) -> None:
        self._thread.start()

    def stop(self, drain: bool = True, timeout_s: float = 5.0) -> None:
        """End the thread; with ``drain`` it first processes everything already published and
        flushes the chain, so the clean ring and the event log reach the last raw sample."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if drain and self.error is None:
            while self.step():
                pass
            self._emit(self.chain.flush())

    def set_band(self, low_hz: float, high_hz: float) -> None:
        """Change the band-pass (Hz) from any thread; the processing thread applies it at its
        next step (the filter restarts at steady state) and logs a ``settings`` event."""
        BandpassFilter(1, self.info.sample_rate_hz, low_hz, high_hz)  # raises on bad edges now
        self._new_band = (low_hz, high_hz)

    def step(self) -> int:
        """Process whatever is waiting (at most one block); returns the samples processed."""
        if self._new_band is not None:
            low, high = self._new_band
            self._new_band = None
            self.chain.bandpass = BandpassFilter(self.info.n_channels, self.info.sample_rate_hz, low, high)
            self.settings = replace(self.settings, low_hz=low, high_hz=self.chain.bandpass.high_hz)
            self.events.append(Event("settings", self.reader.cursor,
                                     data={"band_hz": [low, self.chain.bandpass.high_hz]}))
        self._take_source_events()
        got = self.reader.read(self._block)
        if got.lost:  # fell a whole ring behind: the chain sees the hole as a gap (NaN rows)
            self._process(np.full((got.lost, self.info.n_channels), np.nan, np.float32),
                          got.start - got.lost)
        if len(got.data):
            self._process(got.data, got.start)
        if self.triggered is not None:
            self.triggered.poll()
            self._blockade_from_tof()
        return len(got.data)

    def _take_source_events(self) -> None:
        new, self._event_cursor = self.events.since(self._event_cursor)
        for e in new:
            if e.kind in SOURCE_KINDS:
                self._pending.append(e)
                if e.kind in ("signal_lost", "signal_restored"):
                    self.alarms.set_source_lost(e.kind == "signal_lost", e.start)
        if self.triggered is not None:
            self.triggered.on_events(new)

    def _process(self, data: np.ndarray, start: int) -> None:
        stop = start + len(data)
        mine = [e for e in self._pending if e.start < stop]
        self._pending = [e for e in self._pending if e.start >= stop]
        self._emit(self.chain.process(data, start, mine))

    def _emit(self, out: ChainOutput) -> None:
        defined = max(0, -out.start)  # rows before index 0 only fill the chain's delay
        if len(out.clean) > defined:
            self.clean.write(out.clean[defined:].astype(np.float32))
        for ev in out.events:
            self.events.append(Event("emg_event", ev.onset, ev.offset, (ev.channel,),
                                     {"kind": ev.kind, "train_type": ev.train_type,
                                      "peak_uv": round(float(ev.peak_uv), 1),
                                      "rate_hz": None if ev.rate_hz is None else round(float(ev.rate_hz), 1),
                                      "above_threshold": bool(ev.above_threshold)}))
        for span in out.artifacts:
            self.events.append(Event("artifact", span.start, span.stop, span.channels, {"kind": span.kind}))
        opened = self._newly_open()
        self.alarms.update(out.start + len(out.clean), out.events, opened, out.artifacts, out.ongoing)

    def _newly_open(self) -> list[ArtifactSpan]:
        spans = self.chain.artifacts.open_spans()
        keys = {(s.kind, s.start, s.channels) for s in spans}
        new = [s for s in spans if (s.kind, s.start, s.channels) not in self._open]
        self._open = keys
        return new

    def _blockade_from_tof(self) -> None:
        results = self.triggered.tof_results if self.triggered is not None else []
        if results:
            reason = results[-1].blockade()
            if reason != self._blockade:
                self._blockade = reason
                self.alarms.set_blockade(reason, self.clean.published)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.step() == 0:
                    self._stop.wait(IDLE_S)
        except Exception as exc:  # report, never kill the process
            self.error = f"processing: {type(exc).__name__}: {exc}"
            self.events.append(Event("processing_error", self.reader.cursor, data={"message": self.error}))
