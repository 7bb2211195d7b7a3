"""A monitoring session: source, rings, supervised workers, one state, one command path — no Qt.

Data flow (one direction): source → acquisition worker → raw ring → processing worker
(band-pass, mains and ECG removal, artifact blanking, event detection, alarms, triggered EMG)
→ clean ring, event log and the state snapshot → views, recorder. A supervisor watches every
worker, restarts the fallen and raises technical alarms.

What views use (the window, the headless runner, remote views — all thin shells):

* read: :meth:`Session.state` (tiles with technical alarms, train time, thresholds, settings,
  worker health, counters), the ``raw`` and ``clean`` rings with their own cursors, the
  ``events`` log, :attr:`Session.triggered_data` (stimulus responses, screws, TOF);
* act: :meth:`Session.submit` with a :mod:`~ionm_station.pipeline.commands` object, or the
  shortcuts :meth:`acknowledge`, :meth:`silence`, :meth:`set_band`, :meth:`set_mains`,
  :meth:`set_threshold`, :meth:`add_marker`, :meth:`baseline`, :meth:`hunt`,
  :meth:`stimulate`; recording with :meth:`start_recording` / :meth:`stop_recording`; a
  replay through :attr:`replay`.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from ionm_station import memory
from ionm_station.alarms import AlarmConfig, check_threshold
from ionm_station.clock import Clock
from ionm_station.errors import ConfigError, IonmError
from ionm_station.events import EventLog
from ionm_station.logs import default_log_path, open_log
from ionm_station.montage import Montage, load_montage
from ionm_station.pipeline import commands as cmd
from ionm_station.pipeline.acquisition import AcquisitionWorker
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.pipeline.processing import ProcessingWorker
from ionm_station.pipeline.state import SessionStatus, StationState
from ionm_station.pipeline.supervisor import Supervisor
from ionm_station.pipeline.technical import BLINDING, HEADLINES, Vitals, assess, loudest, overlay
from ionm_station.pipeline.worker import Worker
from ionm_station.profiles import Profile
from ionm_station.recording import CaseMetadata, Recorder, RecorderStatus
from ionm_station.ring import RingBuffer
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import load_scenario
from ionm_station.sources.base import Source
from ionm_station.sources.factory import build_hardware_source
from ionm_station.sources.replay import ReplaySource
from ionm_station.triggered.controller import TriggeredEmg
from ionm_station.triggered.settings import TriggeredSettings

#: Seconds of signal each ring holds (scroll-back for views, slack for slow consumers).
RING_SECONDS = 30.0

def build_source(profile: Profile, montage: Montage, scenario: str | None = None,
                 realtime: bool | None = None, clock: Clock | None = None,
                 port: str | None = None) -> Source:
    """Make the source a profile describes, with ``montage`` naming its channels.

    ``scenario``, ``realtime`` and ``clock`` apply to the simulated amplifier; ``port``
    overrides the serial port of a serial or BrainFlow profile.
    """
    if profile.kind == "simulated":
        sim = profile.simulated
        assert sim is not None
        return SimulatedAmplifier(
            montage=montage,
            scenario=load_scenario(scenario or sim.scenario),
            sample_rate_hz=profile.sample_rate_hz,
            seed=sim.seed,
            range_uv=profile.range_uv,
            realtime=sim.realtime if realtime is None else realtime,
            clock=clock,
        )
    return build_hardware_source(profile, montage, port)


def montage_for(profile: Profile, montage_name: str | None = None) -> Montage:
    """The montage to use: named, or the profile's default; trimmed to the profile's channels."""
    montage = load_montage(montage_name or profile.montage)
    if len(montage.channels) < profile.channels:
        raise ConfigError(profile.path, "source.channels",
                          f"{profile.channels} channels but montage {montage.name!r} "
                          f"describes only {len(montage.channels)}")
    return montage.first(profile.channels)


class Session:
    """Owns a source, its rings, the supervised workers and the command queue.

    Args:
        source: the signal source (not yet opened).
        montage: channel ↔ muscle/root/side map, one entry per source channel.
        max_samples: stop acquiring after this many samples per channel (None: until stopped).
        ring_seconds: signal held by each ring (s).
        settings: free-run chain settings (band, mains, ECG removal).
        alarm_config: alarm engine settings.
        triggered: triggered-EMG settings (region, hunt limit, CMAP criteria).
        log_path: the station log (faults, tracebacks); default :func:`default_log_path`.

    Attributes:
        raw: ring of samples as acquired (µV).
        clean: ring of clean samples on the same clock, :attr:`chain_delay` samples behind raw.
        events: everything that happened (source events, detections, alarms, faults, markers).
    """

    def __init__(self, source: Source, montage: Montage, max_samples: int | None = None,
                 ring_seconds: float = RING_SECONDS, settings: ChainSettings = ChainSettings(),
                 alarm_config: AlarmConfig = AlarmConfig(),
                 triggered: TriggeredSettings = TriggeredSettings(),
                 log_path: Path | None = None) -> None:
        if len(montage.channels) != source.info.n_channels:
            raise ConfigError(montage.name, "channels",
                              f"montage has {len(montage.channels)} channels, "
                              f"source streams {source.info.n_channels}")
        self.source = source
        self.montage = montage
        self.info = source.info
        self.events = EventLog()
        self.commands = cmd.CommandQueue()
        self.log_path = open_log(log_path or default_log_path())
        capacity = max(1024, self.info.seconds_to_samples(ring_seconds))
        self.raw = RingBuffer(capacity, self.info.n_channels)
        self.clean = RingBuffer(capacity, self.info.n_channels)
        self.acquisition = AcquisitionWorker(source, self.raw, self.events, max_samples,
                                             backlog=self._backlog)
        self._triggered = TriggeredEmg(montage, self.info.sample_rate_hz, self.raw, self.events.append,
                                       stimulator=source.stimulator,
                                       screw_log=triggered.screw_log(), criteria=triggered.criteria)
        self.processing = ProcessingWorker(self.raw, self.clean, self.info, montage, self.events,
                                           self.commands, settings, self._triggered, alarm_config,
                                           live=source.live)
        self.supervisor = Supervisor(self._workers, self.events, self._vitals,
                                     lambda: self.raw.published)
        self.recorder: Recorder | None = None
        self._view_workers: list[Worker] = []
        self._started = False
        self._stopped = False

    # --- lifetime ---

    def start(self) -> None:
        """Open the source (errors name the device) and start the workers and the supervisor."""
        memory.fix_mmap_threshold()  # before the workers allocate: memory stays flat for hours
        self.source.open()
        self.processing.start()
        self.acquisition.start()
        self.supervisor.start()
        self._started = True

    def stop(self) -> None:
        """Stop acquisition, let processing drain what was acquired, close the recording with
        everything (samples, detections, alarms) in it, close the source. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.supervisor.stop()
        if self._started:
            self.acquisition.stop()
            self.processing.stop()
            self.processing.drain()
        self.stop_recording()
        self.source.close()

    @property
    def finished(self) -> bool:
        """The run ended on purpose: the sample limit was reached (end of a replay) and
        processing has taken everything in, or the session was stopped."""
        return self._stopped or (self.acquisition.finished
                                 and self.processing.reader.cursor >= self.raw.published)

    def wait_until(self, samples: int, timeout_s: float) -> bool:
        """Block until ``samples`` per channel are acquired or acquisition ends; True if reached."""
        deadline = time.monotonic() + timeout_s
        while self.acquisition.next_index < samples and not self.acquisition.finished:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return self.acquisition.next_index >= samples

    # --- reading ---

    @property
    def chain_delay(self) -> int:
        """Samples by which the clean ring lags the raw ring."""
        return self.processing.delay

    @property
    def replay(self) -> ReplaySource | None:
        """The replay source (play, pause, seek, speed), when replaying a file."""
        return self.source if isinstance(self.source, ReplaySource) else None

    @property
    def triggered_data(self) -> TriggeredEmg:
        """Stimulus responses, screw log and TOF results for views (read only: act through
        :meth:`hunt` and :meth:`stimulate`)."""
        return self._triggered

    def state(self) -> StationState:
        """The station's state now: tiles with technical alarms laid over, train time,
        thresholds, settings, worker health and counters."""
        snap = self.processing.snapshot
        held = {a.kind: a for a in self.supervisor.held()}
        held.update({a.kind: a for a in assess(self._vitals())})  # fresh beats held
        technical = sorted(held.values(), key=lambda a: list(HEADLINES).index(a.kind))
        tiles = overlay(list(snap.tiles), technical)
        audible = None if snap.silenced else loudest([snap.audible, *(a.priority for a in technical)])
        return StationState(tuple(tiles), tuple(technical), audible,
                            not any(a.kind in BLINDING for a in technical), snap,
                            tuple(w.health() for w in self._workers()), self.status())

    def status(self) -> SessionStatus:
        """Counters from the source, the acquisition worker and every ring consumer."""
        acq = self.acquisition.counters
        src = self.source.counters
        consumers = {"processing": self.processing.reader.overrun_samples}
        errors = [w.error for w in self._workers() if w.error] + [self.acquisition.source_fault]
        return SessionStatus(
            source=self.info.source, source_state=self.source.state,
            rate_hz=self.info.sample_rate_hz, channels=self.info.n_channels,
            samples=acq.samples, elapsed_s=self.info.samples_to_seconds(acq.samples),
            gaps=acq.gaps, gap_samples=acq.gap_samples, dropped=src.dropped,
            crc_errors=src.crc_errors, resyncs=src.resyncs, reconnects=src.reconnects,
            overruns=sum(consumers.values()), processed=self.processing.samples_in,
            consumer_overruns=consumers,
            recording=None if self.recorder is None else self.recorder.status().to_dict(),
            error=next((e for e in reversed(errors) if e), None),
        )

    def supervise(self, worker: Worker) -> None:
        """Watch a view's own worker too (e.g. the window's alarm sound): restarted when it
        crashes, its fault shown as a technical alarm."""
        self._view_workers.append(worker)

    # --- acting (any thread) ---

    def submit(self, command: cmd.Command) -> None:
        """Check ``command`` now (ValueError naming the problem) and queue it for the
        processing thread, which applies it at its current sample and logs it once."""
        command.check()
        if isinstance(command, cmd.SetThreshold):
            check_threshold(self.montage, command.key, command.threshold_uv)
        if isinstance(command, cmd.Acknowledge) and command.key is not None \
                and command.key not in self.montage.tile_keys():
            raise ValueError(f"no alarm tile {command.key!r}")
        self.commands.put(command)

    def acknowledge(self, key: str | None = None, by: str = "") -> None:
        """Acknowledge one tile's latched alarm (None: all); ``by`` names who did (logged)."""
        self.submit(cmd.Acknowledge(key, by))

    def silence(self, seconds: float | None = None) -> None:
        """Silence alarm sound for ``seconds`` (None: the configured default)."""
        self.submit(cmd.Silence(seconds))

    def set_band(self, low_hz: float, high_hz: float) -> None:
        """Change the free-run band-pass (Hz); logged (and so recorded) when applied."""
        self.submit(cmd.SetBand(float(low_hz), float(high_hz)))

    def set_mains(self, mains_hz: float | None) -> None:
        """Mains frequency 50 or 60 Hz, or None to detect it."""
        self.submit(cmd.SetMains(mains_hz))

    def set_threshold(self, key: str, threshold_uv: float) -> None:
        """Event threshold (µV p-p) of every channel of tile ``key``."""
        self.submit(cmd.SetThreshold(key, float(threshold_uv)))

    def add_marker(self, text: str, index: int | None = None) -> int:
        """A marker at ``index`` (default: the newest acquired sample); returns the index."""
        at = self.raw.published if index is None else int(index)
        self.submit(cmd.AddMarker(text, at))
        return at

    def baseline(self, seconds: float = 4.0) -> None:
        """Check every channel's signal quality and take each tile's baseline over the newest
        ``seconds`` (s) of signal, as soon as the rings hold them away from cautery; the results
        are ``signal_quality`` and ``baseline`` events (so the recording and report have them)."""
        self.submit(cmd.Baseline(float(seconds)))

    def hunt(self, level: str, side: str) -> None:
        """Queue an automatic threshold hunt on the screw at ``level``/``side``."""
        self.submit(cmd.Hunt(level, side))

    def stimulate(self, current_ma: float, target: str, confirmed: bool = False) -> None:
        """One stimulus of ``current_ma`` (mA) aimed at ``target``."""
        self.submit(cmd.Stimulate(float(current_ma), target, confirmed))

    # --- recording ---

    @property
    def can_record(self) -> bool:
        """Recording this session makes sense (a replay of a file is not recorded again)."""
        return self.replay is None

    def start_recording(self, path: str | Path, case: CaseMetadata | None = None,
                        profile_doc: dict | None = None) -> Recorder:
        """Record from now on (from sample 0 if acquisition has not started) into a new file.

        Raises:
            IonmError: already recording; RecordingError: the file exists or cannot be created.
        """
        if self.recorder is not None and self.recorder.recording:
            raise IonmError(f"already recording to {self.recorder.path}")
        acq = self.acquisition.counters
        src = self.source.counters
        snap = self.processing.snapshot
        settings = {"chain": asdict(snap.settings), "thresholds_uv": list(snap.thresholds_uv)}
        recorder = Recorder(
            self.raw, self.events, self.info, self.montage, path, case=case, profile_doc=profile_doc,
            settings=settings, start_index=None if self._started else 0,
            counters=lambda: {**asdict(src), "gaps": acq.gaps, "gap_samples": acq.gap_samples})
        recorder.start()
        self.recorder = recorder
        return recorder

    def stop_recording(self) -> None:
        """Close the recording cleanly (everything acquired so far is written)."""
        if self.recorder is not None:
            self.recorder.stop()

    def recording_status(self) -> RecorderStatus | None:
        """The recorder's status (None: never recorded in this session)."""
        return None if self.recorder is None else self.recorder.status()

    # --- internals ---

    def _workers(self) -> list[Worker]:
        workers: list[Worker] = [self.acquisition, self.processing, *self.source.workers()]
        if self.recorder is not None and self.recorder.recording:
            workers.append(self.recorder)
        return workers + self._view_workers

    def _vitals(self) -> Vitals:
        rec = self.recorder
        chain = self.processing.chain
        running = self._started and not self._stopped
        return Vitals(
            processing=self.processing.health(), acquisition=self.acquisition.health(),
            source_workers=tuple(w.health() for w in self.source.workers()),
            source_state=self.source.state, source_fault=self.acquisition.source_fault,
            live=self.source.live,
            silent_s=time.monotonic() - self.acquisition.last_data_s if running else 0.0,
            lag_s=self.info.samples_to_seconds(self.raw.published - self.processing.reader.cursor),
            finished=self.finished,
            recorder=rec.health() if rec is not None and rec.recording else None,
            recorder_failed=rec.failure if rec is not None else None,
            degraded=chain.notes if chain.degraded else (),
            others=tuple(w.health() for w in self._view_workers))

    def _backlog(self) -> int:
        """Samples the slowest healthy raw-ring consumer (processing, recorder) has still to
        read; a consumer given up by the supervisor does not hold acquisition back."""
        cursors = [self.raw.published]
        if self.processing.health().state != "failed":
            cursors.append(self.processing.reader.cursor)
        if self.recorder is not None and self.recorder.recording:
            cursors.append(self.recorder.cursor)
        return self.raw.published - min(cursors)
