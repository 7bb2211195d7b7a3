"""The processing thread: raw ring → free-run chain → clean ring, events, alarms, triggered EMG.

One supervised worker, one direction: it reads the raw ring with its own cursor, applies the
user's commands between blocks (:mod:`~ionm_station.pipeline.commands`), pushes every block
through :class:`~ionm_station.pipeline.chain.FreeRunChain`, writes the clean signal into the
clean ring on the same sample clock (lagging the raw ring by the chain's delay), appends what it
found to the event log, feeds the alarm engine the events that ended and the artifact spans open
now, lets the triggered-EMG controller measure stimuli, and publishes a
:class:`~ionm_station.pipeline.state.ProcessingSnapshot`.

After a fault the supervisor restarts it: the chain is rebuilt at the newest acquired sample of
a live source (a non-live one — a fast replay — goes on after the block that failed); the samples
skipped are logged as ``not_monitored`` and written as NaN into the clean ring, so views and the
clean clock stay aligned; the alarm engine — latched alarms, train time,
thresholds — and the triggered-EMG controller carry over, because they are the case's history.
Raw data never stop flowing to the recorder meanwhile: the recorder reads the raw ring itself.

Signal quality (:mod:`ionm_station.quality`) is measured from the rings, never from the chain:
every :data:`QUALITY_INTERVAL_S` of signal the newest :data:`QUALITY_WINDOW_S` of raw and clean
signal give one ``signal_quality`` event per channel (``check = "periodic"``), so recordings
carry the channels' quality over the case. A :class:`~ionm_station.pipeline.commands.Baseline`
command does the same over its own window (``check = "baseline"``) and logs one ``baseline``
event per tile: the channels' quality, whether the root was quiet, and its latest stimulus
response — the snapshot later changes are compared to. Both wait while cautery is going on or
has just ended, and until the chain has run :data:`QUALITY_SETTLE_S`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from ionm_station import quality
from ionm_station.alarms import AlarmConfig, AlarmEngine
from ionm_station.events import Event, EventLog
from ionm_station.montage import Montage
from ionm_station.pipeline import commands as cmd
from ionm_station.pipeline.chain import ChainOutput, ChainSettings, FreeRunChain
from ionm_station.pipeline.state import ProcessingSnapshot
from ionm_station.pipeline.worker import Worker
from ionm_station.ring import RingBuffer
from ionm_station.stream import StreamInfo
from ionm_station.triggered.controller import TriggeredEmg

#: Largest block pushed through the chain at once (s): bounds latency and memory after a stall
#: or a long gap.
MAX_BLOCK_S = 0.1
#: Source event kinds the chain acts on.
SOURCE_KINDS = ("stimulus", "lead_off", "replay_seek")
#: Signal time between two periodic signal-quality checks (s).
QUALITY_INTERVAL_S = 60.0
#: Signal measured by a periodic check (s).
QUALITY_WINDOW_S = 2.0
#: Clean signal the chain must have produced before a check measures it (s): its start-up.
QUALITY_SETTLE_S = 1.0


@dataclass(frozen=True)
class _Check:
    """A signal-quality check waiting for its window: ``seconds`` of signal, ``check`` is
    ``"periodic"`` or ``"baseline"`` (which also logs the per-tile baseline)."""

    seconds: float
    check: str

log = logging.getLogger("ionm_station")


class ProcessingWorker(Worker):
    """Runs the free-run chain, alarms and triggered EMG on its own supervised thread.

    Args:
        raw: ring the acquisition thread writes (µV).
        clean: ring this stage writes (same capacity and channels): band-passed, mains- and
            ECG-free µV, NaN where undefined (gaps, blanked artifact, not monitored).
        info: stream description.
        montage: channel ↔ tile map and thresholds.
        events: the session's event log (read for source events, appended with results).
        commands: the session's command queue (read here only).
        settings: chain settings (band, mains, ECG removal).
        triggered: the triggered-EMG controller (None: stimuli are only blanked).
        alarm_config: alarm engine settings (train-time levels, adaptive threshold …).
        live: the source is live (a restart skips to the newest sample) or not (a restart goes
            on after the failed block).
    """

    def __init__(self, raw: RingBuffer, clean: RingBuffer, info: StreamInfo, montage: Montage,
                 events: EventLog, commands: cmd.CommandQueue,
                 settings: ChainSettings = ChainSettings(),
                 triggered: TriggeredEmg | None = None,
                 alarm_config: AlarmConfig = AlarmConfig(), live: bool = True) -> None:
        super().__init__("processing")
        self.live = live
        self.raw = raw
        self.clean = clean
        self.info = info
        self.montage = montage
        self.events = events
        self.commands = commands
        self.settings = settings
        self.triggered = triggered
        self.thresholds_uv = np.array([c.threshold_uv for c in montage.channels], float)
        self.alarms = AlarmEngine(montage, info.sample_rate_hz, alarm_config, sink=events.append,
                                  thresholds_uv=self.thresholds_uv)
        self.reader = raw.reader(start=0)
        self.chain = self._new_chain(0)
        self.settings = replace(settings, low_hz=self.chain.bandpass.low_hz,
                                high_hz=self.chain.bandpass.high_hz)  # as the chain runs it
        self.samples_in = 0  # samples per channel pushed through a chain (gap NaN included)
        self._done_to = 0  # absolute index up to which raw samples went through a chain
        self._event_cursor = 0
        self._pending: list[Event] = []  # source events not yet handed to the chain
        self._open_lead_off: dict[tuple[int, tuple[int, ...]], Event] = {}
        self._blockade = ""
        self._block = max(1, int(MAX_BLOCK_S * info.sample_rate_hz))
        self._cautery_until = 0  # end (absolute index) of the latest cautery span seen
        self._next_quality = info.seconds_to_samples(QUALITY_WINDOW_S + QUALITY_SETTLE_S)
        self._baseline: _Check | None = None
        self._pacing = ""  # the pacing state last logged ('' none yet, detected, lapsed)
        self._pulses_before = 0  # pacemaker pulses taken out by the chains before this one
        self.snapshot = self._snapshot()

    @property
    def delay(self) -> int:
        """Samples by which the clean ring lags the raw ring."""
        return self.chain.delay

    # --- the worker ---

    def step(self) -> int:
        """Apply waiting commands, process at most one block, publish the snapshot; returns
        the samples taken in (0: nothing waiting)."""
        generation = self.generation
        applied = self._apply_commands()
        self._take_source_events()
        got = self.reader.read(self._block)
        if got.lost:  # fell a whole ring behind: the chain sees the hole as a gap (NaN rows)
            for a in range(got.start - got.lost, got.start, self._block):
                b = min(a + self._block, got.start)
                self._process(np.full((b - a, self.info.n_channels), np.nan, np.float32), a, generation)
                self.beat()  # a long hole is worked through in pieces: still alive
        if len(got.data):
            self._process(got.data, got.start, generation)
        if self.triggered is not None:
            self.triggered.poll()
            self._blockade_from_tof()
        self._quality_checks()
        done = len(got.data) + got.lost
        if (done or applied) and generation == self.generation:
            self.snapshot = self._snapshot()
        return done

    def on_restart(self) -> None:
        """Rebuild the chain at the newest acquired sample (live) or after the failed block;
        keep alarms and triggered EMG."""
        at = self.raw.published if self.live else self.reader.cursor
        if at > self._done_to:
            self.events.append(Event("not_monitored", self._done_to, at,
                                     data={"reason": f"processing restarted after: {self.error}"}))
        self._done_to = at
        self.reader = self.raw.reader(start=at)
        self._pulses_before = self._pacing_pulses()
        self.chain = self._new_chain(at)
        self._note_pacing(at)  # (a new chain learns the pattern afresh: lapsed from here)
        fill = at - self.chain.delay - self.clean.published
        if fill > 0:
            self.clean.write_nan(fill)
        self._pending = [e for e in self._pending if e.start >= at]
        # lead-offs still open carry over: the new chain must keep those channels blanked
        self._pending += list(self._open_lead_off.values())
        self.snapshot = self._snapshot()

    def drain(self) -> None:
        """On the caller's thread, after :meth:`stop`: process everything already published and
        flush the chain, so the clean ring and the event log reach the last raw sample."""
        if self.health().state in ("failed", "crashed"):
            return
        generation = self.generation
        try:
            while self.step():
                pass
            self._emit(self.chain.flush(), generation)
            self.snapshot = self._snapshot()
        except Exception as exc:  # the final drain must not lose the rest of the shutdown
            log.exception("processing drain failed")
            self.error = f"{type(exc).__name__}: {exc}"

    # --- commands ---

    def _apply_commands(self) -> int:
        todo = self.commands.drain()
        for c in todo:
            try:
                self._apply(c)
            except ValueError as exc:  # checked at submit; the state may have changed since
                self.events.append(Event("command_rejected", self.reader.cursor,
                                         data={"command": type(c).__name__, "reason": str(exc)}))
        return len(todo)

    def _apply(self, c: cmd.Command) -> None:
        at = self.reader.cursor
        if isinstance(c, cmd.SetBand):
            low, high = self.chain.set_band(c.low_hz, c.high_hz)
            self.settings = replace(self.settings, low_hz=low, high_hz=high)
            self.events.append(Event("settings", at, data={"band_hz": [low, high]}))
        elif isinstance(c, cmd.SetMains):
            self.chain.set_mains(c.mains_hz)
            self.settings = replace(self.settings, mains_hz=c.mains_hz)
            self.events.append(Event("settings", at, data={"mains_hz": c.mains_hz}))
        elif isinstance(c, cmd.SetThreshold):
            self.alarms.set_threshold(c.key, c.threshold_uv)  # logs alarm_threshold
        elif isinstance(c, cmd.Acknowledge):
            self.alarms.acknowledge(c.key, c.by)
        elif isinstance(c, cmd.Silence):
            self.alarms.silence(c.seconds)
        elif isinstance(c, cmd.AddMarker):
            self.events.append(Event("marker", c.index, c.index, (), {"text": c.text}))
        elif isinstance(c, cmd.Baseline):
            self._baseline = _Check(c.seconds, "baseline")
        elif isinstance(c, (cmd.Hunt, cmd.Stimulate)):
            if self.triggered is None:
                raise ValueError("this session has no triggered EMG")
            if isinstance(c, cmd.Hunt):
                self.triggered.hunt(c.level, c.side)
            else:
                self.triggered.stimulate(c.current_ma, c.target, confirmed=c.confirmed)

    # --- blocks ---

    def _take_source_events(self) -> None:
        new, self._event_cursor = self.events.since(self._event_cursor)
        for e in new:
            if e.kind in SOURCE_KINDS:
                self._pending.append(e)
                if e.kind == "lead_off":
                    key = (e.start, e.channels)
                    if e.stop is None:
                        self._open_lead_off[key] = e
                    else:
                        self._open_lead_off.pop(key, None)
        if self.triggered is not None:
            self.triggered.on_events(new)

    def _process(self, data: np.ndarray, start: int, generation: int) -> None:
        stop = start + len(data)
        mine = [e for e in self._pending if e.start < stop]
        self._pending = [e for e in self._pending if e.start >= stop]
        self._emit(self.chain.process(data, start, mine), generation)
        if generation == self.generation:
            self._note_pacing(stop)
        self.samples_in += len(data)
        self._done_to = stop

    def _note_pacing(self, at: int) -> None:
        """Log a ``pacing`` event at raw index ``at`` when the chain starts or stops taking
        pacemaker pulses out (``state`` ``detected`` or ``lapsed``: from then on the pulses, if
        any, reach the detector until their pattern is learnt again; a restarted chain learns
        it afresh)."""
        pacing = self.chain.pacing
        paced = pacing is not None and pacing.established
        if paced != (self._pacing == "detected") and (paced or self._pacing):
            self._pacing = "detected" if paced else "lapsed"
            self.events.append(Event("pacing", at, data={
                "state": self._pacing, "pulses": self._pacing_pulses()}))

    def _pacing_pulses(self) -> int:
        """Pacemaker pulses taken out so far in the case (every chain's)."""
        pacing = self.chain.pacing
        return self._pulses_before + (0 if pacing is None else pacing.pulses)

    def _emit(self, out: ChainOutput, generation: int) -> None:
        if generation != self.generation:
            return  # an abandoned (stalled) pass: its successor owns the rings now
        defined = max(0, self.clean.published - out.start)  # rows before the clean clock: fill
        if len(out.clean) > defined:
            self.clean.write(out.clean[defined:].astype(np.float32))
        for ev in out.events:
            self.events.append(ev.to_event())
        for span in out.artifacts:
            self.events.append(Event("artifact", span.start, span.stop, span.channels, {"kind": span.kind}))
            if span.kind == "cautery" and span.stop is not None:
                self._cautery_until = max(self._cautery_until, span.stop)
        self.alarms.update(out.start + len(out.clean), out.events, self.chain.open_spans(), out.ongoing)

    # --- signal quality ---

    def _quality_checks(self) -> None:
        """Run the baseline check asked for, or the periodic one when due, once the clean ring
        holds their window after the chain's start-up and away from cautery."""
        now = self.clean.published
        if self._baseline is not None and self._measure(self._baseline, now):
            self._baseline = None
        elif now >= self._next_quality and self._measure(_Check(QUALITY_WINDOW_S, "periodic"), now):
            self._next_quality = now + self.info.seconds_to_samples(QUALITY_INTERVAL_S)

    def _measure(self, check: _Check, now: int) -> bool:
        """Measure ``check`` over the clean ring's newest samples and log its events; False
        (try again later) while the window is not there yet or cautery touches it."""
        n = self.info.seconds_to_samples(check.seconds)
        start = now - n
        if start < self.info.seconds_to_samples(QUALITY_SETTLE_S) or start < self._cautery_until \
                or any(s.kind == "cautery" for s in self.chain.open_spans()):
            return False
        raw = self.raw.reader(start=start).read(n)
        clean = self.clean.reader(start=start).read(n)
        if raw.lost or clean.lost or raw.n_samples < n or clean.n_samples < n:
            return False  # overwritten meanwhile: measure a fresh window after the next block
        off = {c for _, channels in self._open_lead_off for c in channels}
        found = quality.assess(raw.data, clean.data, self.info.sample_rate_hz,
                               self.info.range_uv, self.settings.mains_hz, off)
        for q in found:
            self.events.append(Event("signal_quality", start, now, (q.channel,),
                                     {**q.to_data(), "check": check.check}))
        if check.check == "baseline":
            responses = self.triggered.responses if self.triggered is not None else []
            activity = [e for e in self.events.snapshot()
                        if e.kind == "emg_event" and e.end > start and e.start < now
                        and e.data.get("above_threshold")]
            for key, channels, data in quality.tile_baselines(self.montage, found, activity,
                                                              responses):
                self.events.append(Event("baseline", start, now, channels, data))
        return True

    def _blockade_from_tof(self) -> None:
        results = self.triggered.tof_results if self.triggered is not None else []
        if results:
            reason = results[-1].blockade()
            if reason != self._blockade:
                self._blockade = reason
                self.alarms.set_blockade(reason, self.clean.published)

    def _new_chain(self, start: int) -> FreeRunChain:
        return FreeRunChain(self.montage, self.info.sample_rate_hz, self.info.range_uv,
                            self.settings, start=start, thresholds_uv=self.thresholds_uv)

    def _snapshot(self) -> ProcessingSnapshot:
        a = self.alarms
        return ProcessingSnapshot(
            index=self.reader.cursor, tiles=tuple(a.tiles()), audible=a.audible,
            silenced=a.silenced, train_time_by_tile=a.train_time.by_tile(),
            train_time_by_channel=a.train_time.by_channel(),
            thresholds_uv=tuple(float(t) for t in self.thresholds_uv), settings=self.settings,
            notes=self.chain.notes, open_spans=tuple(self.chain.open_spans()),
            pacing=self._pacing, pacing_pulses=self._pacing_pulses())
