"""Triggered-EMG controller: stimuli in, CMAP responses, screw thresholds and TOF results out.

It follows the session: stimulus events (from the source's trigger input or the simulator's
stimulator) are measured once the raw ring holds ``cmap.POST_S`` after them — on the channels
of their target root-side, or, for a stimulus without a target (a serial amplifier's), on every
channel, logged as a ``cmap`` with target None and assigned to no screw. An automatic hunt
drives a :class:`Stimulator` one stimulus at a time: the next current is chosen only after the
previous response was measured. Everything it concludes is appended to the event log
(``cmap``, ``screw_result``, ``tof``) so recordings and views see it.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.ring import RingBuffer
from ionm_station.sources.base import Stimulator
from ionm_station.triggered import cmap, tof
from ionm_station.triggered.cmap import CmapCriteria, Response
from ionm_station.triggered.hunt import ThresholdHunt
from ionm_station.triggered.screws import ScrewLog

#: Currents above this need an explicit confirmation (mA).
WARN_ABOVE_MA = 30.0
#: Pause between hunt stimuli (s) so responses never overlap.
HUNT_INTERVAL_S = 0.5
#: Newest responses per target that keep their waveform (the stacked display shows the newest
#: dozen); older ones keep their measures only — over a long case the waveforms would be tens of
#: MB, and the report measures its traces again from the recording.
WAVEFORMS_KEPT = 16


class HighCurrentNotConfirmed(ValueError):
    """A stimulus above :data:`WARN_ABOVE_MA` was requested without confirmation."""


@dataclass
class _Pending:
    """A stimulus waiting for its response window: sample index, current (mA, None if the
    source did not say), target root-side (None: measure every channel), TOF pulse 1–4."""

    index: int
    current_ma: float | None
    target: str | None
    tof_pulse: int | None


class TriggeredEmg:
    """Measures every stimulus and runs threshold hunts.

    Args:
        montage: which channels record which root-side.
        sample_rate_hz: rate of the raw ring (Hz).
        raw: the session's raw ring (µV).
        sink: receives every event this controller concludes.
        stimulator: for automatic hunts (None: measure external stimuli only).
        screw_log: where hunt results go (region profile inside).
        unreliable: returns the current blockade reason ('' when EMG is reliable).
    """

    def __init__(self, montage: Montage, sample_rate_hz: float, raw: RingBuffer,
                 sink: Callable[[Event], None], stimulator: Stimulator | None = None,
                 screw_log: ScrewLog | None = None, criteria: CmapCriteria = CmapCriteria(),
                 unreliable: Callable[[], str] = lambda: "") -> None:
        self.montage = montage
        self.fs = sample_rate_hz
        self.raw = raw
        self.sink = sink
        self.stimulator = stimulator
        self.screw_log = screw_log or ScrewLog()
        self.criteria = criteria
        self.unreliable = unreliable
        self.responses: list[Response] = []  # every response; waveforms only on the newest
        self._with_waveform: dict[str | None, deque[int]] = {}  # per target: indices, oldest first
        self.tof_results: list[tof.TofResult] = []
        self._pending: list[_Pending] = []
        self._stimulus_times: list[int] = []  # every stimulus seen (absolute indices, sorted)
        self._tof: list[Response] = []
        self._hunts: list[tuple[str, str]] = []  # queued (level, side)
        self._hunt: ThresholdHunt | None = None
        self._hunt_target: tuple[str, str] | None = None
        self._awaiting: int | None = None  # stimulus index of the hunt's outstanding stimulus
        self._next_allowed = cmap.window_bounds(0, sample_rate_hz)[1]  # a full baseline first

    # --- inputs ---

    def on_events(self, events: list[Event]) -> None:
        """Take new session events; stimuli are queued for measurement."""
        for e in events:
            if e.kind == "stimulus":
                current = e.data.get("current_ma")
                self._pending.append(_Pending(e.start, None if current is None else float(current),
                                              e.data.get("target"), e.data.get("tof_pulse")))
                bisect.insort(self._stimulus_times, e.start)

    def hunt(self, level: str, side: str) -> None:
        """Queue an automatic threshold hunt for the screw at ``level`` on ``side`` (e.g. L5, R)."""
        if self.stimulator is None:
            raise ValueError("no stimulator: automatic threshold hunts need one")
        if not self.montage.channels_of(level, side):
            raise ValueError(f"montage {self.montage.name!r} has no {level}-{side} muscle")
        self._hunts.append((level, side))

    def stimulate(self, current_ma: float, target: str, confirmed: bool = False) -> int:
        """Deliver one stimulus now; currents above :data:`WARN_ABOVE_MA` need ``confirmed``."""
        if self.stimulator is None:
            raise ValueError("no stimulator connected")
        if current_ma > WARN_ABOVE_MA and not confirmed:
            raise HighCurrentNotConfirmed(f"{current_ma:g} mA is above {WARN_ABOVE_MA:g} mA: confirm first")
        return self.stimulator.schedule_stimulus(current_ma, target)

    # --- work (called regularly by the session) ---

    def poll(self) -> None:
        """Measure stimuli whose response window is in the ring; advance hunts."""
        published = self.raw.published
        ready = [p for p in self._pending if cmap.window_bounds(p.index, self.fs)[1] <= published]
        for p in ready:
            self._pending.remove(p)
            self._measure(p)
        self._advance_hunt(published)

    @property
    def busy(self) -> bool:
        """True while a hunt or a measurement is outstanding."""
        return bool(self._pending or self._hunts or self._hunt)

    # --- internals ---

    def _channels(self, target: str | None) -> list[int]:
        """Channels measured for a stimulus: the target root-side's, or every one."""
        if target is None:
            return list(range(len(self.montage.channels)))
        level, _, side = target.partition("-")
        return self.montage.channels_of(level, side or None)

    def _missed(self, p: _Pending, reason: str) -> None:
        self.sink(Event("cmap_missed", p.index, data={"target": p.target, "reason": reason}))
        if self._awaiting == p.index:
            self._awaiting = None  # the hunt stimulates again at the same current

    def _measure(self, p: _Pending) -> None:
        channels = self._channels(p.target)
        if not channels:
            self._missed(p, f"montage {self.montage.name!r} has no {p.target} channel")
            return
        a, b = cmap.window_bounds(p.index, self.fs)
        a = max(0, a)  # a stimulus in the first 60 ms of the stream has a shorter baseline
        lo, hi = bisect.bisect_left(self._stimulus_times, a), bisect.bisect_left(self._stimulus_times, b)
        if hi - lo > 1:  # another stimulus's artifact or response would be measured as ours
            self._missed(p, "another stimulus in the window")
            return
        got = self.raw.reader(start=a).read(b - a)
        if got.lost or got.n_samples < b - a:
            self._missed(p, "data overwritten")
            return
        r = cmap.measure(got.data, p.index, a, self.fs, channels, p.current_ma, p.target, self.criteria)
        self._keep(r)
        self.sink(Event("cmap", p.index, channels=tuple(channels),
                        data={"target": p.target, "current_ma": p.current_ma, "responded": r.any,
                              "peak_uv": [round(v, 1) for v in r.peak_uv]}))
        if p.tof_pulse is not None:
            self._tof_pulse(int(p.tof_pulse), r)
        if self._awaiting == p.index and self._hunt is not None:
            self._hunt.record(p.current_ma, r.any)
            self._awaiting = None

    def _keep(self, r: Response) -> None:
        """Append ``r``; drop the waveform of its target's response beyond the newest
        :data:`WAVEFORMS_KEPT` (the list is only appended to and items replaced, so a view's copy
        stays valid)."""
        self.responses.append(r)
        kept = self._with_waveform.setdefault(r.target, deque())
        kept.append(len(self.responses) - 1)
        while len(kept) > WAVEFORMS_KEPT:
            i = kept.popleft()
            self.responses[i] = replace(self.responses[i], waveform_uv=None)

    def _tof_pulse(self, pulse: int, r: Response) -> None:
        if pulse == 1:
            self._tof = []
        self._tof.append(r)
        if pulse == tof.PULSES and len(self._tof) == tof.PULSES:
            result = tof.evaluate(r.target, self._tof)
            self.tof_results.append(result)
            self.sink(Event("tof", self._tof[0].stimulus, data={**asdict(result),
                                                                "blockade": result.blockade()}))
            self._tof = []

    def _advance_hunt(self, published: int) -> None:
        if self._awaiting is not None or self.stimulator is None:
            return
        if self._hunt is None:
            if not self._hunts:
                return
            self._hunt_target = self._hunts.pop(0)
            self._hunt = ThresholdHunt(max_ma=self.screw_log.max_ma)
        current = self._hunt.next_current()
        if current is None:
            self._finish_hunt()
            return
        if published < self._next_allowed:
            return
        level, side = self._hunt_target
        self._awaiting = self.stimulator.schedule_stimulus(current, f"{level}-{side}")
        self._next_allowed = self._awaiting + int(HUNT_INTERVAL_S * self.fs)

    def _finish_hunt(self) -> None:
        assert self._hunt is not None and self._hunt_target is not None
        level, side = self._hunt_target
        reason = self.unreliable()
        result = self.screw_log.add(level, side, self._hunt.threshold_ma, self._hunt.stimuli,
                                    reliable=not reason)
        self.sink(Event("screw_result", self.raw.published, data=asdict(result)))
        self._hunt = None
        self._hunt_target = None
