"""A biofeedback session on the live pipeline: simulated amplifier → raw ring → processing
(band-pass, mains and ECG removal) → clean ring → :class:`BiofeedbackCore`. No Qt.

:class:`BiofeedbackLive` is a view like the window's traces: it reads the clean ring with its
own cursor (a thread calls :meth:`poll`; the headless loop and the window's timer do), feeds
the core, and puts each cue into the session as a marker at its sample index (so a recording
has the cues). Reward changes are the core's ``reward`` events: the reward tone is left to the
station's audio output (docs/therapy.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ionm_station import __version__
from ionm_station.montage import load_montage
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.session import Session
from ionm_station.sim.amplifier import SimulatedAmplifier
from ionm_station.sim.scenario import Scenario, load_scenario
from ionm_station.sim.voluntary import true_scores
from ionm_station.therapy.biofeedback import (
    LEVEL_WINDOW_MS,
    TIMING_WINDOW_MS,
    BiofeedbackCore,
    Block,
    Protocol,
)

#: Sampling rate (Hz) of the simulated surface EMG and the chain's band (Hz) for it.
SAMPLE_RATE_HZ = 2000.0
SURFACE_BAND_HZ = (20.0, 450.0)
#: Seconds of signal each ring holds (the biofeedback reader must never be lapped).
RING_SECONDS = 120.0


def protocol_for(scenario: Scenario, **overrides: Any) -> Protocol:
    """The scenario's plan with the given settings replaced (None values ignored)."""
    if scenario.biofeedback is None:
        raise ValueError(f"scenario {scenario.name!r} has no [biofeedback] table")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(scenario.biofeedback.protocol, **given)


def simulated_session(scenario: Scenario, seconds: float | None = None, seed: int | None = None,
                      fast: bool = True) -> Session:
    """A session on the simulated amplifier playing ``scenario`` on its montage at
    :data:`SAMPLE_RATE_HZ`, with the surface-EMG band; ``seconds`` of signal (None: endless)."""
    montage = load_montage(scenario.montage)
    source = SimulatedAmplifier(montage, scenario, SAMPLE_RATE_HZ, seed=seed, realtime=not fast,
                                block_s=0.1 if fast else 0.01)
    limit = None if seconds is None else source.info.seconds_to_samples(seconds)
    settings = ChainSettings(low_hz=SURFACE_BAND_HZ[0], high_hz=SURFACE_BAND_HZ[1],
                             mains_hz=scenario.mains_hz)
    return Session(source, montage, max_samples=limit, settings=settings,
                   ring_seconds=RING_SECONDS)


@dataclass
class LiveCounters:
    lost_samples: int = 0
    markers: int = 0


class BiofeedbackLive:
    """The core fed from one channel of a session's clean ring.

    Args:
        session: the running (or about to run) session.
        channel: channel index.
        core: the biofeedback core (its sample rate is the session's).
        markers: put each cue into the session as a marker.
    """

    def __init__(self, session: Session, channel: int, core: BiofeedbackCore,
                 markers: bool = True) -> None:
        if not 0 <= channel < session.info.n_channels:
            raise ValueError(f"channel {channel} not in the session (0–{session.info.n_channels - 1})")
        self.session = session
        self.channel = channel
        self.core = core
        self.markers = markers
        self.reader = session.clean.reader(start=0)
        self.counters = LiveCounters()
        self.events: list[dict[str, Any]] = []

    @property
    def label(self) -> str:
        return self.session.info.labels[self.channel]

    def poll(self) -> Block | None:
        """Feed what the clean ring has new; the block for the display (None: nothing new)."""
        got = self.reader.read()
        if got.n_samples == 0:
            return None
        self.counters.lost_samples += got.lost
        block = self.core.process(got.start, got.data[:, self.channel])
        for e in self.core.drain_events():
            self.events.append(e)
            if self.markers and e["kind"] == "cue" and e["cue"] != "end":
                name = "MVC" if e["phase"] == "mvc" else "trial"
                self.session.add_marker(f"biofeedback {e['cue'].upper()} {name} {e['trial']}",
                                        e["index"])
                self.counters.markers += 1
        return block

    def finish(self) -> None:
        """After the session stopped: take the rest of the clean ring, score what is left."""
        while self.poll() is not None:
            pass
        self.core.finish()
        self.events += self.core.drain_events()


def result(live: BiofeedbackLive, scenario: Scenario | None = None,
           seed: int | None = None) -> dict[str, Any]:
    """The JSON document of a biofeedback session: settings, calibration, trials, scores,
    reward changes, counters; with the simulator's truth when it played a scenario."""
    core = live.core
    fs = core.fs
    st = live.session.status()
    doc: dict[str, Any] = {
        "kind": "biofeedback",
        "version": __version__,
        "channel": live.label,
        "sample_rate_hz": fs,
        "protocol": dataclasses.asdict(core.protocol) | {"band_pct": list(core.protocol.band_pct)},
        "settings": {"smoothing_ms": core.envelope.window_ms, "timing_window_ms": TIMING_WINDOW_MS,
                     "level_window_ms": LEVEL_WINDOW_MS,
                     "band_hz": list(SURFACE_BAND_HZ)},
        "calibration": {"mvc_measured_uv": _r(core.mvc_measured_uv), "mvc_uv": _r(core.mvc_uv),
                        "band_uv": None if core.band_uv is None else [_r(v) for v in core.band_uv]},
        "trials": [t.to_dict() for t in core.trials],
        "trials_not_reached": len(core.cues) - len(core.trials),
        "scores": core.scores().to_dict(),
        "rewards": [{"t_s": round(e["index"] / fs, 4), "on": e["on"]}
                    for e in live.events if e["kind"] == "reward"],
        "signal": {"samples": st.samples, "seconds": round(st.elapsed_s, 3), "gaps": st.gaps,
                   "lost_samples": live.counters.lost_samples},
    }
    source = live.session.source
    if scenario is not None and isinstance(source, SimulatedAmplifier) \
            and source.truth.voluntary is not None:
        t_trials, t_scores = true_scores(source.truth.voluntary, fs,
                                         None if core.protocol.mvc_trials else core.mvc_uv)
        doc["simulator"] = {"scenario": scenario.name, "seed": source.seed if seed is None else seed,
                            "truth": {"trials": [t.to_dict() for t in t_trials],
                                      "scores": t_scores.to_dict()}}
    return doc


def _r(v: float | None) -> float | None:
    return None if v is None else round(float(v), 3)


def run_scenario(name: str, seed: int | None = None, seconds: float | None = None,
                 smoothing_ms: float = 250.0, poll_s: float = 0.005) -> dict[str, Any]:
    """Play a biofeedback scenario as fast as possible through the whole pipeline and return
    :func:`result` (benchmarks and tests)."""
    import time

    scenario = load_scenario(name)
    protocol = protocol_for(scenario)
    seconds = seconds or scenario.duration_s
    session = simulated_session(scenario, seconds, seed=seed)
    core = BiofeedbackCore(session.info.sample_rate_hz, protocol, smoothing_ms)
    live = BiofeedbackLive(session, session.montage.labels.index(scenario.biofeedback.channel), core)
    session.start()
    try:
        while not session.finished:
            live.poll()
            time.sleep(poll_s)
    finally:
        session.stop()
    live.finish()
    return result(live, scenario, seed)


def envelope_trace(block: Block) -> np.ndarray:
    """The display envelope of a block (µV RMS); NaN where there was no signal."""
    return block.envelope_uv
