"""A recording (ours, or EDF/EDF+/BDF) as a live :class:`~ionm_station.sources.base.Source`.

Replay goes through the same acquisition → DSP → detection → alarm pipeline as live data.

**Two clocks.** ``Chunk.start`` counts *played* samples and never jumps, so the session's sample
clock, rings and gap accounting work unchanged: a seek is not a dropped-sample gap and must not
be NaN-filled (forward) or discarded as duplicates (backward). Where the played samples come
from is the *recording* index: :attr:`ReplaySource.position`, and
:meth:`ReplaySource.recording_index` maps any played index back to the recording. Every seek
bumps :attr:`ReplaySource.seek_generation` and puts a ``replay_seek`` event
(``data = {from_sample, to_sample, generation}``) at the first played sample after the jump, so
stateful consumers (filters, detectors) can reset there instead of seeing a step.

Recorded *source* events (:data:`REPLAYED_KINDS`: stimuli, triggers, lead-off, signal loss,
markers) are re-emitted in ``Chunk.events`` as they are played, moved to the played clock, with
``data["recording_sample"]`` = their index in the recording; what the station concluded when it
recorded (detections, alarms, artifacts) is not: the pipeline concludes afresh, with the
settings of the replay, and the recorded conclusions stay in ``media.events``. They follow the
source event definitions of :mod:`ionm_station.sources.base` (:func:`as_source_events`): a recorded
lead-off whose end is known (its closing event, or an older recording's ``lead_restored``
edge) is played once, in the closed form, at its start; stimuli always carry ``current_ma`` and
``target``.

Pacing: played samples = anchor + elapsed clock time × rate × speed, re-anchored at every play,
speed change and seek; speed ``None`` plays as fast as the consumer reads.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ionm_station.clock import Clock, MonotonicClock
from ionm_station.errors import input_problem
from ionm_station.events import Event
from ionm_station.io.annotations import parse_annotation
from ionm_station.io.edf import edf_kind, read_edf
from ionm_station.recording.format import RecordingError
from ionm_station.recording.reader import is_hdf5, open_recording
from ionm_station.sources.base import Source, SourceCounters
from ionm_station.stream import Chunk, StreamInfo

MIN_SPEED, MAX_SPEED = 0.25, 16.0
#: Longest chunk one read returns when the consumer is late (s of recording).
MAX_CHUNK_S = 0.5


class ReplayMedia(Protocol):
    """What replay needs from a file: stream info, length, events, random access."""

    path: Path
    info: StreamInfo
    n_samples: int
    events: list[Event]

    def read(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class EdfMedia:
    """An EDF/EDF+/BDF file held in memory; its annotations become events: ours (exported by
    IONM Station) as the events they stand for, others as ``annotation`` events
    (:func:`~ionm_station.io.annotations.parse_annotation`).

    Attributes:
        skipped: signals not read (another rate, another unit), with the reason.
    """

    path: Path
    info: StreamInfo
    data: np.ndarray
    events: list[Event]
    skipped: list[str] = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.data[max(0, start):max(0, stop)]

    @staticmethod
    def load(path: Path) -> EdfMedia:
        content = read_edf(path)
        fs = content.sample_rate_hz
        events = [parse_annotation(text, round(onset * fs),
                                   None if not duration else round((onset + duration) * fs),
                                   content.labels)
                  for onset, duration, text in content.annotations]
        info = StreamInfo(fs, tuple(content.labels), content.range_uv, source=path.name)
        return EdfMedia(path, info, content.data, sorted(events, key=lambda e: e.start),
                        content.skipped)


def open_media(path: str | Path) -> ReplayMedia:
    """Our HDF5 recording (read-only) or an EDF/BDF file, told apart by their first bytes."""
    path = Path(path)
    problem = input_problem(path)
    if problem:
        raise RecordingError(f"{path}: {problem}")
    if is_hdf5(path):
        return open_recording(path)
    if edf_kind(path) is not None:
        return EdfMedia.load(path)
    raise RecordingError(f"{path}: neither an IONM Station recording (HDF5) nor an EDF/BDF file")


#: Recorded event kinds a replay plays back into the pipeline (what the source reported, and
#: the user's markers and EDF+ annotations).
REPLAYED_KINDS = ("stimulus", "trigger", "lead_off", "lead_restored", "signal_lost",
                  "signal_restored", "marker", "annotation")


def as_source_events(events: list[Event]) -> list[Event]:
    """Recorded source events (sorted by start; other kinds are left out) in the source event
    definitions: an opening
    ``lead_off`` whose end the recording holds becomes one closed ``lead_off``; its closing
    event and legacy ``lead_restored`` edges are dropped; stimuli get ``current_ma`` and
    ``target`` (None where the recording lacks them)."""
    closed = {(e.start, e.channels) for e in events if e.kind == "lead_off" and e.stop is not None}
    out: list[Event] = []
    open_at: dict[int, int] = {}  # channel → position in ``out`` of its open lead-off
    for e in events:
        if e.kind == "lead_off" and e.stop is None:
            if (e.start, e.channels) not in closed:
                open_at.update((c, len(out)) for c in e.channels)
                out.append(e)
        elif e.kind == "lead_off":
            out.append(e)
        elif e.kind == "lead_restored":
            for c in e.channels:
                if (i := open_at.pop(c, None)) is not None:
                    out[i] = replace(out[i], stop=e.start)
        elif e.kind == "stimulus":
            out.append(replace(e, data={"current_ma": None, "target": None, **e.data}))
        elif e.kind in REPLAYED_KINDS:
            out.append(e)
    return out


class ReplaySource(Source):
    """Plays ``media`` paced by ``clock``; controls may be called from any thread.

    Args:
        media: an open :class:`~.reader.Recording` or :class:`EdfMedia`.
        speed: 0.25–16 × real time, or None for as fast as possible.
        clock: pacing clock (a :class:`~ionm_station.clock.ManualClock` in tests).
        block_s: nominal chunk length (s of recording).
        emit_events: re-emit the recorded events while playing.
    """

    def __init__(self, media: ReplayMedia, speed: float | None = 1.0, clock: Clock | None = None,
                 block_s: float = 0.01, emit_events: bool = True) -> None:
        self.media = media
        fs = media.info.sample_rate_hz
        self.info = StreamInfo(fs, media.info.labels, media.info.range_uv, media.info.unit,
                               source=f"replay {media.path.name}")
        self.counters = SourceCounters()
        self.seek_generation = 0
        self._clock: Clock = clock or MonotonicClock()
        self._block = max(1, round(block_s * fs))
        self._max_chunk = max(self._block, round(MAX_CHUNK_S * fs))
        self._emit = emit_events
        recorded = sorted(media.events, key=lambda e: e.start)
        self._marks = recorded  # every recorded event: places to jump to
        self._mark_starts = [e.start for e in recorded]
        self._events = as_source_events(recorded)  # what is played back into the pipeline
        self._starts = [e.start for e in self._events]
        self._lock = threading.Lock()
        self._speed = self._checked(speed)
        self._paused = False
        self._opened = False
        self._position = 0  # recording index of the next sample to play
        self._played = 0  # played-clock index of the next sample (Chunk.start)
        self._segments: list[tuple[int, int]] = [(0, 0)]  # (played index, recording index)
        self._pending: list[Event] = []
        self._anchor_time = 0.0
        self._anchor_played = 0

    # --- state and controls ---

    @property
    def position(self) -> int:
        """Recording index of the next sample to be played."""
        return self._position

    @property
    def position_s(self) -> float:
        """:attr:`position` in seconds of recording."""
        return self._position / self.info.sample_rate_hz

    @property
    def n_samples(self) -> int:
        """Length of the recording (samples per channel)."""
        return self.media.n_samples

    @property
    def at_end(self) -> bool:
        """True when everything up to the end of the recording has been played."""
        return self._position >= self.media.n_samples

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float | None:
        """Replay speed (× real time); None = as fast as possible."""
        return self._speed

    def set_speed(self, speed: float | None) -> None:
        """Change speed (0.25–16, or None); playback goes on from where it is."""
        checked = self._checked(speed)
        with self._lock:
            self._speed = checked
            self._reanchor()

    def play(self) -> None:
        with self._lock:
            self._paused = False
            self._reanchor()

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def seek(self, sample: int) -> int:
        """Continue playing from recording index ``sample`` (clipped to the recording)."""
        target = min(max(0, int(sample)), self.media.n_samples)
        with self._lock:
            if target != self._position:
                self.seek_generation += 1
                self._pending.append(Event("replay_seek", self._played, data={
                    "from_sample": self._position, "to_sample": target,
                    "generation": self.seek_generation}))
                self._position = target
                if self._segments[-1][0] == self._played:
                    self._segments.pop()
                self._segments.append((self._played, target))
            self._reanchor()
        return target

    def seek_time(self, seconds: float) -> int:
        """Seek to ``seconds`` (s) from the start of the recording; returns the sample index."""
        return self.seek(round(seconds * self.info.sample_rate_hz))

    def next_event(self, kinds: tuple[str, ...] | None = None) -> Event | None:
        """Seek to the first recorded event (of ``kinds``) after the current position."""
        i = bisect.bisect_right(self._mark_starts, self._position)
        found = next((e for e in self._marks[i:] if kinds is None or e.kind in kinds), None)
        if found is not None:
            self.seek(found.start)
        return found

    def previous_event(self, kinds: tuple[str, ...] | None = None) -> Event | None:
        """Seek to the last recorded event (of ``kinds``) before the current position."""
        i = bisect.bisect_left(self._mark_starts, self._position)
        found = next((e for e in reversed(self._marks[:i]) if kinds is None or e.kind in kinds),
                     None)
        if found is not None:
            self.seek(found.start)
        return found

    def recording_index(self, played_index: int) -> int:
        """Recording index of the sample played at ``played_index`` (the session's clock)."""
        starts = [p for p, _ in self._segments]
        played, rec = self._segments[bisect.bisect_right(starts, played_index) - 1]
        return rec + played_index - played

    # --- Source interface ---

    @property
    def state(self) -> str:
        """``closed`` until :meth:`open` and after :meth:`close`, ``ended`` once the whole
        recording was played, else ``streaming`` (paused included)."""
        if not self._opened:
            return "closed"
        return "ended" if self.at_end else "streaming"

    @property
    def live(self) -> bool:
        """Paced against the clock (a speed is set); as fast as possible is not live. Follows
        :meth:`set_speed`."""
        return self._speed is not None

    def open(self) -> None:
        """Start playing at the current position now (by the clock)."""
        with self._lock:
            self._opened = True
            self._reanchor()

    def read(self) -> Chunk | None:
        """The next chunk when due; None (after at most one block period) while paused or at
        the end of the recording."""
        if not self._opened:
            raise RuntimeError("open() the replay source before read()")
        with self._lock:
            n = self._due()
            if n > 0:
                return self._take(n)
            wait = self._wait_s()
        self._clock.sleep(wait)
        with self._lock:
            n = self._due(at_least_block=True)
            return self._take(n) if n > 0 else None

    def close(self) -> None:
        self._opened = False

    # --- internals (called with the lock held) ---

    @staticmethod
    def _checked(speed: float | None) -> float | None:
        if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"replay speed must be {MIN_SPEED:g}–{MAX_SPEED:g}× "
                             f"(or as fast as possible), got {speed:g}")
        return None if speed is None else float(speed)

    def _reanchor(self) -> None:
        self._anchor_time = self._clock.now()
        self._anchor_played = self._played

    def _due(self, at_least_block: bool = False) -> int:
        """Samples to play now: a full block only (or as many as late, up to MAX_CHUNK_S)."""
        left = self.media.n_samples - self._position
        if self._paused or left <= 0:
            return 0
        if self._speed is None:
            return min(self._block, left)
        elapsed = self._clock.now() - self._anchor_time
        due = self._anchor_played + math.floor(
            elapsed * self.info.sample_rate_hz * self._speed + 1e-6) - self._played
        if at_least_block:
            due = max(due, self._block)
        return min(due, self._max_chunk, left) if due >= self._block else 0

    def _wait_s(self) -> float:
        """How long to sleep before the next block is due (one block period if idle)."""
        if self._paused or self.at_end:
            return self._block / self.info.sample_rate_hz
        if self._speed is None:
            return 0.0
        ahead = self._played + self._block - self._anchor_played  # samples since the anchor
        due_at = ahead / (self.info.sample_rate_hz * self._speed)
        return max(0.0, due_at - (self._clock.now() - self._anchor_time))

    def _take(self, n: int) -> Chunk:
        start = self._position
        data = self.media.read(start, start + n)
        events = self._pending
        self._pending = []
        if self._emit:
            lo = bisect.bisect_left(self._starts, start)
            hi = bisect.bisect_left(self._starts, start + n)
            shift = self._played - start
            events += [Event(e.kind, e.start + shift, None if e.stop is None else e.stop + shift,
                             e.channels, {**e.data, "recording_sample": e.start})
                       for e in self._events[lo:hi]]
        chunk = Chunk(self._played, data, events, host_time_s=self._clock.now())
        self._position += n
        self._played += n
        self.counters.samples += n
        return chunk
