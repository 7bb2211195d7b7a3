"""EMG-guided injection: one channel, "target muscle active", motor-point stimulation, site log.

Pure numpy cores plus one runner over a :class:`~ionm_station.session.Session` (the window and
``ionm-station inject --headless`` are thin shells over :class:`InjectionGuide`):

* :class:`ActivityIndicator` — the RMS envelope of the clean channel against the muscle's own
  rest level. The rule, with its numbers:

  - frames of :data:`FRAME_S` (10 ms); the envelope is the RMS over the last
    :data:`ENVELOPE_S` (100 ms);
  - the rest level is the median envelope of the last :data:`REST_FRAMES` frames judged at rest
    (learned from the first :data:`LEARN_S` s, which must be at rest);
  - activity starts when the envelope exceeds :data:`ON_FACTOR` × rest (and rest +
    :data:`ON_MIN_UV`), and ends when it has stayed below :data:`OFF_FACTOR` × rest for
    :data:`RELEASE_S` (hysteresis: a single motor unit firing at 5 Hz does not flicker);
  - **insertion activity** is activity in its first :data:`INSERTION_MAX_S` s: the burst a needle
    movement provokes lasts less than 300 ms in normal muscle (the textbook limit), plus the
    100 ms envelope window and a 100 ms margin. Activity that ends before then stays
    ``insertion``;
  - **target active** is activity that has lasted :data:`INSERTION_MAX_S` s or more;
  - 1 ms before to 60 ms after each stimulus the state is held (the stimulus artifact and
    twitch are not muscle activity).

* :class:`MotorPointSearch` — motor-point localisation in the clinician's steps: from
  ``start_ma`` up in 1.0 mA steps until a twitch (a CMAP by the triggered-EMG criteria: ≥ 50 µV
  p-p and 2 × the baseline), then back to the last current without one and up in 0.1 mA steps;
  the motor point current is the lowest current with a twitch (0.1 mA resolution). Every
  stimulus and its response size make the response-vs-current curve.

* :class:`InjectionSite` — a log entry: muscle, side, dose (units), host time, sample index
  and the evidence: 1 s of the clean channel around the moment (0.5 s before and after,
  µV to 0.1), its RMS and the indicator's state. Logged as an ``injection`` event in the session's
  event log, so the recording (.h5) has it; :func:`save_to_lab` stores a session's sites as an
  ``injection`` study in the EMG lab's patient database.
"""

from __future__ import annotations

import datetime
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ionm_station.events import Event
from ionm_station.montage import Montage
from ionm_station.stream import Chunk
from ionm_station.triggered.cmap import CmapCriteria

#: Indicator frame (s): the state is decided every frame.
FRAME_S = 0.010
#: RMS envelope window (s).
ENVELOPE_S = 0.100
#: Seconds at the start taken as rest to learn the rest level.
LEARN_S = 1.0
#: Rest frames whose median envelope is the rest level (2 s).
REST_FRAMES = 200
#: Activity starts above ON_FACTOR × rest and ON_MIN_UV above rest (µV RMS).
ON_FACTOR = 3.0
ON_MIN_UV = 3.0
#: ... and ends after RELEASE_S below OFF_FACTOR × rest.
OFF_FACTOR = 2.0
RELEASE_S = 0.250
#: Activity younger than this is insertion activity (300 ms + envelope 100 ms + 100 ms margin).
INSERTION_MAX_S = 0.500
#: Hold around a stimulus (s before, s after).
STIM_HOLD_S = (0.001, 0.060)
#: Motor-point stimulation steps and limits (mA).
COARSE_STEP_MA = 1.0
FINE_STEP_MA = 0.1
MAX_MA = 10.0
#: Pause between stimuli of a search (s): the twitch and its measurement are over.
STIM_INTERVAL_S = 0.5
#: Evidence kept with an injection site: this long before and after the moment (s).
EVIDENCE_S = 0.5

STATES = ("rest", "insertion", "active")


class ActivityIndicator:
    """``process(samples µV, start index) -> [(frame start index, state, envelope µV)]``;
    state ``learning`` until the rest level is known. See the module text for the rule."""

    def __init__(self, sample_rate_hz: float) -> None:
        self.fs = float(sample_rate_hz)
        self.frame = max(1, round(FRAME_S * self.fs))
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0)
        self._pending_start: int | None = None
        self._squares: deque[float] = deque(maxlen=max(1, round(ENVELOPE_S / FRAME_S)))
        self._rest: deque[float] = deque(maxlen=REST_FRAMES)
        self._learn = round(LEARN_S / FRAME_S)
        self._since: int | None = None  # frames the current activity has lasted
        self._below = 0  # frames below the off level during activity
        self._holds: list[tuple[int, int]] = []
        self.state = "learning"
        self.envelope_uv = 0.0
        self.frames = 0

    @property
    def rest_uv(self) -> float:
        return float(np.median(self._rest)) if self._rest else math.nan

    def hold(self, stimulus: int) -> None:
        """Hold the state around a stimulus at absolute index ``stimulus``."""
        self._holds.append((stimulus - round(STIM_HOLD_S[0] * self.fs),
                            stimulus + round(STIM_HOLD_S[1] * self.fs)))

    def process(self, x_uv: np.ndarray, start: int) -> list[tuple[int, str, float]]:
        x = np.nan_to_num(np.asarray(x_uv, np.float64))
        if self._pending_start is None or len(self._pending) == 0:
            self._pending_start = start - len(self._pending)
        self._pending = np.concatenate([self._pending, x])
        out = []
        n = len(self._pending) // self.frame
        for k in range(n):
            a = self._pending_start + k * self.frame
            seg = self._pending[k * self.frame:(k + 1) * self.frame]
            held = any(lo < a + self.frame and a <= hi for lo, hi in self._holds)
            if not held:
                self._squares.append(float(np.mean(seg * seg)))
                self._decide(math.sqrt(float(np.mean(self._squares))))
            out.append((a, self.state, round(self.envelope_uv, 2)))
            self.frames += 1
        self._pending = self._pending[n * self.frame:]
        self._pending_start += n * self.frame
        self._holds = [h for h in self._holds if h[1] >= self._pending_start]
        return out

    def _decide(self, env: float) -> None:
        self.envelope_uv = env
        if self._learn > 0:
            self._learn -= 1
            self._rest.append(env)
            self.state = "learning" if self._learn else "rest"
            return
        rest = self.rest_uv
        if self._since is None:
            if env > max(ON_FACTOR * rest, rest + ON_MIN_UV):
                self._since, self._below = 0, 0
            else:
                self._rest.append(env)
                self.state = "rest"
                return
        self._since += 1
        self._below = self._below + 1 if env < OFF_FACTOR * rest else 0
        if self._below * FRAME_S >= RELEASE_S:
            self._since = None
            self.state = "rest"
            return
        lasted = (self._since - self._below) * FRAME_S  # up to its last frame above the off level
        if self.state != "active":
            self.state = "active" if lasted >= INSERTION_MAX_S else "insertion"


@dataclass
class MotorPointSearch:
    """Coarse (1.0 mA) then fine (0.1 mA) steps up to the first twitch; see the module text.

    ``next_current()`` is the current to deliver next (None: finished); ``record()`` takes
    each stimulus's outcome."""

    start_ma: float = 1.0
    max_ma: float = MAX_MA
    trials: list[tuple[float, bool, float]] = field(default_factory=list)  # (mA, twitch, µV)
    threshold_ma: float | None = None
    finished: bool = False
    _phase: str = "coarse"
    _next: float | None = None

    def next_current(self) -> float | None:
        if self.finished:
            return None
        if self._next is None:
            self._next = round(self.start_ma, 1)
        return self._next

    def record(self, current_ma: float, twitch: bool, size_uv: float) -> None:
        self.trials.append((round(current_ma, 2), bool(twitch), round(float(size_uv), 1)))
        if self._phase == "coarse":
            if twitch:
                below = max(0.0, current_ma - COARSE_STEP_MA)
                self._phase = "fine"
                self._next = round(below + FINE_STEP_MA, 1)
                if self._next >= current_ma:  # the first coarse current already twitched
                    self._end(current_ma)
            else:
                self._step(current_ma + COARSE_STEP_MA)
        elif twitch:
            self._end(current_ma)
        else:
            self._step(current_ma + FINE_STEP_MA)

    def _step(self, ma: float) -> None:
        if ma > self.max_ma + 1e-9:
            self._end(None)
        else:
            self._next = round(ma, 1)

    def _end(self, threshold: float | None) -> None:
        self.threshold_ma = None if threshold is None else round(threshold, 1)
        self.finished = True
        self._next = None


@dataclass(frozen=True)
class InjectionSite:
    """One injection: where, how much, when, and the EMG evidence (1 s of the clean channel
    around ``index``: ``evidence_uv`` from ``evidence_start``)."""

    muscle: str
    side: str
    dose_units: float
    index: int
    time: str
    channel: str
    state: str
    rms_uv: float
    evidence_start: int
    evidence_uv: tuple[float, ...] = field(repr=False)

    def to_json(self, sample_rate_hz: float) -> dict[str, Any]:
        d = asdict(self)
        d["time_s"] = round(self.index / sample_rate_hz, 4)
        d["evidence_uv"] = list(self.evidence_uv)
        return d


def check_site(muscle: str, side: str, dose_units: float) -> None:
    """ValueError naming what is wrong with a site entry."""
    if not muscle.strip():
        raise ValueError("an injection site needs the muscle")
    if side not in ("L", "R", ""):
        raise ValueError(f"side must be L, R or empty, got {side!r}")
    if not (math.isfinite(dose_units) and 0 < dose_units <= 1000):
        raise ValueError(f"dose must be > 0 and ≤ 1000 units, got {dose_units!r}")


def motor_point_truth_ma(threshold_ma: float, cmap_max_uv: float,
                         criteria: CmapCriteria = CmapCriteria()) -> float:
    """The current (mA) at which the simulator's noise-free twitch reaches the CMAP criterion:
    the true motor point current of a scenario (the simulator's logistic inverted)."""
    from ionm_station.sim.amplifier import CMAP_CENTRE_ABOVE_THRESHOLD_MA, CMAP_SLOPE_MA

    ratio = cmap_max_uv / criteria.criterion_uv - 1.0
    return threshold_ma + CMAP_CENTRE_ABOVE_THRESHOLD_MA - CMAP_SLOPE_MA * math.log(ratio)


class InjectionGuide:
    """The injection mode over a running session: one channel of the clean ring through the
    indicator, stimulation (manual or a motor-point search) and the site log.

    Call :meth:`poll` regularly (the window's timer, the headless loop): it reads what arrived,
    updates the indicator, follows stimuli and their responses, and completes site entries whose
    evidence is in.

    Args:
        session: a session (source with a stimulator for stimulation).
        channel: index of the guided channel in the session's montage.
    """

    def __init__(self, session: Any, channel: int = 0) -> None:
        self.session = session
        self.channel = int(channel)
        mc = session.montage.channels[self.channel]
        self.label = mc.label
        self.muscle = mc.muscle
        self.side = mc.side
        self.target = mc.root_side
        self.fs = session.info.sample_rate_hz
        self.indicator = ActivityIndicator(self.fs)
        self.timeline: list[tuple[int, str, float]] = []  # state changes (index, state, env µV)
        self.curve: list[tuple[float, float, bool]] = []  # (mA, response µV p-p, twitch)
        self.sites: list[InjectionSite] = []
        self.current_ma = 1.0
        self.search: MotorPointSearch | None = None
        self._reader = session.clean.reader(start=0)
        self._event_cursor = 0
        self._awaiting: int | None = None  # a stimulus the search waits for (index)
        self._stim_requested = False
        self._next_allowed = 0
        self._pending_sites: list[dict[str, Any]] = []
        self.position = 0  # clean-ring index read up to

    # --- actions (GUI thread / headless loop) ---

    def step_current(self, delta_ma: float) -> float:
        """Change the manual current by ``delta_ma`` (±1.0 or ±0.1), kept in 0–MAX_MA."""
        self.current_ma = round(min(MAX_MA, max(0.0, self.current_ma + delta_ma)), 1)
        return self.current_ma

    def stimulate(self, current_ma: float | None = None) -> None:
        """One stimulus now at ``current_ma`` (default the manual current) on the channel's
        target; its response joins the curve."""
        self.session.stimulate(self.current_ma if current_ma is None else float(current_ma),
                               self.target)

    def start_search(self, start_ma: float = 1.0) -> MotorPointSearch:
        """Start a motor-point search (coarse 1.0 mA, then 0.1 mA steps)."""
        self.search = MotorPointSearch(start_ma=start_ma)
        self._awaiting = None
        self._stim_requested = False
        return self.search

    def log_site(self, dose_units: float, muscle: str | None = None, side: str | None = None,
                 index: int | None = None) -> int:
        """Log an injection at ``index`` (default: the newest clean sample); the entry (an
        ``injection`` event) completes when 0.5 s after it is in. Returns the index."""
        muscle = self.muscle if muscle is None else muscle
        side = self.side if side is None else side
        check_site(muscle, side, float(dose_units))
        at = self.session.clean.published if index is None else int(index)
        self._pending_sites.append({
            "muscle": muscle.strip(), "side": side, "dose_units": float(dose_units), "index": at,
            "time": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "state": self.indicator.state, "channel": self.label})
        return at

    # --- work ---

    def poll(self) -> int:
        """Take in what arrived; returns samples read."""
        self._take_events()
        got = self._reader.read()
        n = got.n_samples
        if n:
            x = got.data[:, self.channel]
            for a, state, env in self.indicator.process(x, got.start):
                if not self.timeline or self.timeline[-1][1] != state:
                    self.timeline.append((a, state, env))
            self.position = got.stop
        self._complete_sites()
        self._advance_search()
        return n

    def _take_events(self) -> None:
        new, self._event_cursor = self.session.events.since(self._event_cursor)
        for e in new:
            if e.kind == "stimulus" and e.data.get("target") == self.target:
                self.indicator.hold(e.start)
                if self._stim_requested and self._awaiting is None:
                    self._awaiting = e.start  # the search's stimulus: wait for its response
                    self._stim_requested = False
                    self._next_allowed = e.start + round(STIM_INTERVAL_S * self.fs)
            elif e.kind == "cmap" and e.data.get("target") == self.target:
                peaks = e.data.get("peak_uv") or [0.0]
                idx = list(e.channels).index(self.channel) if self.channel in e.channels else 0
                size = float(peaks[idx])
                twitch = bool(e.data.get("responded"))
                current = float(e.data.get("current_ma") or 0.0)
                self.curve.append((current, size, twitch))
                if self.search is not None and self._awaiting == e.start:
                    self.search.record(current, twitch, size)
                    self._awaiting = None
            elif e.kind == "cmap_missed" and self._awaiting == e.start:
                self._awaiting = None  # stimulate again at the same current

    def _advance_search(self) -> None:
        s = self.search
        if s is None or s.finished or self._awaiting is not None or self._stim_requested:
            return
        if self.session.raw.published < self._next_allowed:
            return
        current = s.next_current()
        if current is None:
            return
        self._stim_requested = True
        self.session.stimulate(current, self.target)

    def _complete_sites(self) -> None:
        half = round(EVIDENCE_S * self.fs)
        clean = self.session.clean
        for p in list(self._pending_sites):
            if clean.published < p["index"] + half:
                continue
            self._pending_sites.remove(p)
            start = max(0, p["index"] - half)
            got = clean.reader(start=start).read(p["index"] + half - start)
            x = np.nan_to_num(got.data[:, self.channel].astype(np.float64))
            site = InjectionSite(
                p["muscle"], p["side"], p["dose_units"], p["index"], p["time"], p["channel"],
                p["state"], round(float(np.sqrt(np.mean(x * x))) if len(x) else 0.0, 2),
                got.start, tuple(round(float(v), 1) for v in x))
            self.sites.append(site)
            self.session.events.append(Event("injection", site.index, channels=(self.channel,),
                                              data=site.to_json(self.fs)))

    @property
    def busy(self) -> bool:
        """A search or a site entry is still waiting for signal."""
        return bool(self._pending_sites) or (self.search is not None and not self.search.finished)

    def segments(self) -> list[dict[str, Any]]:
        """The indicator's timeline as [start, stop) segments in seconds."""
        out = []
        for k, (a, state, _) in enumerate(self.timeline):
            stop = self.timeline[k + 1][0] if k + 1 < len(self.timeline) else self.position
            out.append({"state": state, "start_s": round(a / self.fs, 3),
                        "stop_s": round(stop / self.fs, 3)})
        return out

    def report(self) -> dict[str, Any]:
        """The JSON document of the headless run (and of a saved session)."""
        s = self.search
        return {
            "channel": self.label, "muscle": self.muscle, "side": self.side,
            "target": self.target, "sample_rate_hz": self.fs,
            "rule": {"frame_s": FRAME_S, "envelope_s": ENVELOPE_S, "learn_s": LEARN_S,
                     "on_factor": ON_FACTOR, "on_min_uv": ON_MIN_UV, "off_factor": OFF_FACTOR,
                     "release_s": RELEASE_S, "insertion_max_s": INSERTION_MAX_S},
            "rest_uv": round(self.indicator.rest_uv, 2) if self.indicator.frames else None,
            "segments": self.segments(),
            "stimulation": {
                "curve": [{"current_ma": c, "response_uv": r, "twitch": t}
                          for c, r, t in self.curve],
                "motor_point_ma": None if s is None else s.threshold_ma,
                "search_finished": None if s is None else s.finished,
            },
            "sites": [site.to_json(self.fs) for site in self.sites],
        }


# --- a simulator held to the reader (headless runs as fast as the machine allows) ----------


class PacedSource:
    """A non-live simulated amplifier that never runs more than ``lead_s`` ahead of
    ``position()`` (the guide's read position): a fast headless run whose stimuli land where
    the guide is, as they would live. Everything else is the wrapped amplifier's."""

    def __init__(self, amplifier: Any, position: Callable[[], int], lead_s: float = 0.3) -> None:
        self.amp = amplifier
        self.info = amplifier.info
        self.counters = amplifier.counters
        self._position = position
        self._lead = round(lead_s * amplifier.sample_rate_hz)
        self._wait = threading.Event()

    @property
    def state(self) -> str:
        return self.amp.state

    @property
    def live(self) -> bool:
        return False

    @property
    def stimulator(self) -> Any:
        return self.amp

    def workers(self) -> list:
        return []

    def open(self) -> None:
        self.amp.open()

    def read(self) -> Chunk | None:
        if self.amp.counters.samples >= self._position() + self._lead:
            self._wait.wait(0.002)
            return None
        return self.amp.read()

    def recover(self) -> None:
        self.amp.recover()

    def close(self) -> None:
        self.amp.close()


def single_channel(montage: Montage, label: str | None) -> tuple[Montage, int]:
    """A montage of one channel (``label``; default the first) and that channel's index in
    the full montage. ValueError naming the labels when there is none such."""
    if label is None:
        return Montage(montage.name, montage.channels[:1], montage.description), 0
    if label not in montage.labels:
        raise ValueError(f"no channel {label!r} in montage {montage.name!r} (it has: "
                         f"{', '.join(montage.labels)})")
    i = montage.labels.index(label)
    return Montage(montage.name, (montage.channels[i],), montage.description), i


# --- scoring against the simulator's ground truth ------------------------------------------


def score(guide: InjectionGuide, truth: Any, channel: int = 0) -> dict[str, Any]:
    """Agreement of the indicator with the truth: per true episode (insertion bursts must never
    show ``active``; each active episode must show ``active`` for ≥ 80 % of its time after the
    insertion limit) and per rest frame (away from episodes by 0.6 s: never ``active``)."""
    fs, frame = guide.fs, round(FRAME_S * guide.fs)
    shown = np.array(["learning"] * (guide.position // frame), dtype=object)
    for k, (a, state, _) in enumerate(guide.timeline):
        stop = guide.timeline[k + 1][0] if k + 1 < len(guide.timeline) else guide.position
        shown[a // frame:stop // frame] = state
    episodes: dict[str, list[bool]] = {"active": [], "insertion": []}
    busy = np.zeros(len(shown), bool)
    margin = round(0.6 / FRAME_S)
    for kind, a, b in _episodes(truth, channel, frame):
        b = min(len(shown), b)
        busy[max(0, a - margin):b + margin] = True
        if a >= len(shown):
            continue
        if kind == "burst":
            episodes["insertion"].append(bool((shown[a:b + margin] != "active").all()))
        else:
            late = a + round(INSERTION_MAX_S / FRAME_S) + 5
            part = shown[late:b]
            episodes["active"].append(bool(len(part) and (part == "active").mean() >= 0.8))
    rest = shown[~busy & (shown != "learning")]
    return {
        "active_episodes": len(episodes["active"]),
        "active_detected": sum(episodes["active"]),
        "insertion_episodes": len(episodes["insertion"]),
        "insertion_not_active": sum(episodes["insertion"]),
        "rest_frames": len(rest),
        "rest_false_active": int((rest == "active").sum()),
        "frame_s": FRAME_S, "sample_rate_hz": fs,
    }


def _episodes(truth: Any, channel: int, frame: int) -> list[tuple[str, int, int]]:
    """True episodes on ``channel`` as (kind, first frame, stop frame): overlapping B-trains
    (motor units of one contraction) merged into one ``b_train`` episode; each burst one."""
    spans = sorted((e.kind, e.onset // frame, e.offset // frame + 1) for e in truth.events
                   if channel in e.channels and e.kind in ("b_train", "burst"))
    out: list[tuple[str, int, int]] = []
    for kind, a, b in sorted(spans, key=lambda x: x[1]):
        if out and kind == "b_train" == out[-1][0] and a <= out[-1][2]:
            out[-1] = (kind, out[-1][1], max(b, out[-1][2]))
        else:
            out.append((kind, a, b))
    return out
