"""A monitoring session: source, ring buffer, threads and shutdown — no Qt.

Data flow (one direction): source → acquisition thread → raw ring → processing thread
(band-pass, mains and ECG removal, artifact blanking, event detection, alarms, triggered EMG)
→ clean ring and event log → views, recorder. The GUI and the headless runner are thin
shells that start a session, read its rings with their own cursors and show its status.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ionm_station.pipeline.acquisition import AcquisitionWorker
from ionm_station.alarms import AlarmConfig
from ionm_station.clock import Clock
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.errors import ConfigError, IonmError
from ionm_station.events import EventLog
from ionm_station.montage import Montage, load_montage
from ionm_station.profiles import Profile
from ionm_station.pipeline.processing import ProcessingWorker
from ionm_station.recording import CaseMetadata, Recorder
from ionm_station.ring import RingBuffer
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import load_scenario
from ionm_station.sources.base import Source
from ionm_station.sources.factory import build_hardware_source
from ionm_station.triggered.controller import TriggeredEmg

#: Seconds of signal each ring holds (scroll-back for views, slack for slow consumers).
RING_SECONDS = 30.0


@dataclass
class SessionStatus:
    """A snapshot for status lines (all sample counts are per channel).

    Attributes:
        source: source name; source_state: ``streaming``, ``lost`` or ``reconnecting``;
        rate_hz: sample rate (Hz); elapsed_s: signal time acquired (s).
        samples: samples in the ring (gap fill included); gaps / gap_samples: holes in the
        source clock; dropped, crc_errors, resyncs, reconnects: source counters;
        overruns: samples lost by consumers that fell behind; error: a fault that ended
        acquisition, if any.
    """

    source: str
    source_state: str
    rate_hz: float
    channels: int
    samples: int
    elapsed_s: float
    gaps: int
    gap_samples: int
    dropped: int
    crc_errors: int
    resyncs: int
    reconnects: int
    overruns: int
    consumer_overruns: dict[str, int] = field(default_factory=dict)
    recording: dict | None = None
    error: str | None = None

    def line(self) -> str:
        """One-line status for the terminal."""
        state = "" if self.source_state == "streaming" else f" [{self.source_state.upper()}]"
        text = (f"{self.source}{state} {self.channels} ch @ {self.rate_hz:g} Hz | t {self.elapsed_s:7.2f} s"
                f" | samples {self.samples} | gaps {self.gaps} ({self.gap_samples} samples)"
                f" | dropped {self.dropped} | overruns {self.overruns}")
        if self.crc_errors or self.resyncs or self.reconnects:
            text += f" | crc {self.crc_errors} resync {self.resyncs} reconnect {self.reconnects}"
        if self.recording is not None:
            r = self.recording
            text += f" | REC {r['state']} {r['file_size_bytes'] / 1e6:.1f} MB"
            if r.get("message"):
                text += f" ({r['message']})"
        if self.error:
            text += f" | ERROR {self.error}"
        return text

    def to_dict(self) -> dict:
        return asdict(self)


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
    """Owns a source, its rings and worker threads.

    Args:
        source: the signal source (not yet opened).
        montage: channel ↔ muscle/root/side map, one entry per source channel.
        max_samples: stop acquiring after this many samples per channel (None: until stopped).
        ring_seconds: signal held by each ring (s).
        settings: free-run chain settings (band, mains, ECG removal).
        alarm_config: alarm engine settings.

    Attributes:
        raw: ring of samples as acquired (µV).
        filtered: ring of clean samples on the same clock, ``chain_delay`` samples behind raw.
        events: everything that happened (source events, detections, alarms, markers).
        alarms: the per root-side :class:`~ionm_station.alarms.AlarmEngine`.
        triggered: stimulus measurement, threshold hunts and train-of-four.
    """

    def __init__(self, source: Source, montage: Montage, max_samples: int | None = None,
                 ring_seconds: float = RING_SECONDS, settings: ChainSettings = ChainSettings(),
                 alarm_config: AlarmConfig = AlarmConfig()) -> None:
        if len(montage.channels) != source.info.n_channels:
            raise ConfigError(montage.name, "channels",
                              f"montage has {len(montage.channels)} channels, "
                              f"source streams {source.info.n_channels}")
        self.source = source
        self.montage = montage
        self.info = source.info
        self.events = EventLog()
        capacity = max(1024, self.info.seconds_to_samples(ring_seconds))
        self.raw = RingBuffer(capacity, self.info.n_channels)
        self.filtered = RingBuffer(capacity, self.info.n_channels)
        live = getattr(source, "realtime", True) and getattr(source, "speed", 1.0) is not None
        self.acquisition = AcquisitionWorker(source, self.raw, self.events, max_samples,
                                             backlog=None if live else self._backlog)
        stimulator = source if hasattr(source, "schedule_stimulus") else None
        self.triggered = TriggeredEmg(montage, self.info.sample_rate_hz, self.raw, self.events.append,
                                      stimulator=stimulator)
        self.dsp = ProcessingWorker(self.raw, self.filtered, self.info, montage, self.events,
                                    settings, self.triggered, alarm_config)
        self.alarms = self.dsp.alarms
        self.recorder: Recorder | None = None
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Open the source (errors name the device) and start the threads."""
        self.source.open()
        self.dsp.start()
        self.acquisition.start()
        self._started = True

    def start_recording(self, path: str | Path, case: CaseMetadata | None = None,
                        profile_doc: dict | None = None) -> Recorder:
        """Record from now on (from sample 0 if acquisition has not started) into a new file.

        Raises:
            RecordingError: the file exists or cannot be created (one line).
        """
        if self.recorder is not None and self.recorder.status().state in ("recording", "low_disk"):
            raise IonmError(f"already recording to {self.recorder.path}")
        acq = self.acquisition.counters
        src = self.source.counters
        settings = {"chain": asdict(self.dsp.settings), "thresholds_uv": list(self.alarms.thresholds_uv)}
        self.recorder = Recorder(
            self.raw, self.events, self.info, self.montage, path, case=case, profile_doc=profile_doc,
            settings=settings, start_index=None if self._started else 0,
            counters=lambda: {**asdict(src), "gaps": acq.gaps, "gap_samples": acq.gap_samples})
        self.recorder.start()
        return self.recorder

    def set_band(self, low_hz: float, high_hz: float) -> None:
        """Change the free-run band-pass (Hz); logged, and noted in the recording if any.

        Raises:
            ValueError: edges not 0 < low < high (high is clamped below Nyquist).
        """
        self.dsp.set_band(low_hz, high_hz)
        if self.recorder is not None:
            self.recorder.note_settings({"band_hz": [low_hz, high_hz]})

    def stop_recording(self) -> None:
        """Close the recording cleanly (everything acquired so far is written)."""
        if self.recorder is not None:
            self.recorder.stop()

    def stop(self) -> None:
        """Stop acquisition, let processing drain what was acquired, close the recording with
        everything (samples, detections, alarms) in it, close the source. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._started:
            self.acquisition.stop()
            self.dsp.stop(drain=True)
        self.stop_recording()
        self.source.close()

    def _backlog(self) -> int:
        """Samples the slowest raw-ring consumer (processing, recorder) has still to read."""
        cursors = [self.dsp.reader.cursor]
        if self.recorder is not None and self.recorder.status().state in ("recording", "low_disk"):
            cursors.append(self.recorder.cursor)
        return self.raw.published - min(cursors)

    @property
    def chain_delay(self) -> int:
        """Samples by which the clean (filtered) ring lags the raw ring."""
        return self.dsp.delay

    def wait_until(self, samples: int, timeout_s: float) -> bool:
        """Block until ``samples`` per channel are acquired or acquisition ends; True if reached."""
        deadline = time.monotonic() + timeout_s
        while self.acquisition.next_index < samples and not self.acquisition.finished:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return self.acquisition.next_index >= samples

    def status(self) -> SessionStatus:
        """Counters from the source, the acquisition thread and every ring consumer."""
        acq = self.acquisition.counters
        src = self.source.counters
        consumers = {"processing": self.dsp.reader.overrun_samples}
        return SessionStatus(
            source=self.info.source,
            source_state=getattr(self.source, "state", "streaming"),
            rate_hz=self.info.sample_rate_hz,
            channels=self.info.n_channels,
            samples=acq.samples,
            elapsed_s=self.info.samples_to_seconds(acq.samples),
            gaps=acq.gaps,
            gap_samples=acq.gap_samples,
            dropped=src.dropped,
            crc_errors=src.crc_errors,
            resyncs=src.resyncs,
            reconnects=src.reconnects,
            overruns=sum(consumers.values()),
            consumer_overruns=consumers,
            recording=None if self.recorder is None else self.recorder.status().to_dict(),
            error=self.acquisition.error or self.dsp.error,
        )
