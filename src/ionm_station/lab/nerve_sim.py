"""Simulated nerve conduction studies with ground truth: a recording and its study description.

One simulated study is the carpal-tunnel work-up of one hand (``docs/emg-lab.md``): median motor
(APB; wrist and elbow), ulnar motor (ADM; wrist and below elbow), median and ulnar sensory
(antidromic, both recorded at digit 4, 140 mm), median F-waves (20 stimuli at the wrist).
:func:`write_study` writes it as a study description (``NAME.ncs.toml``) and the recording it
names (``NAME.h5``, 20 kHz, every stimulus an event with its ``site``), the input of
``ionm-station ncs``; :func:`simulate` returns the same signals and the ground truth.

Nerve types (``NERVE_TYPES``), applied to the median nerve; the ulnar is its own comparison:

* ``normal`` — both nerves normal.
* ``demyelinated`` — both nerves (a demyelinating polyneuropathy): conduction velocity 26–34 m/s,
  more temporal dispersion, prolonged terminal latency.
* ``axonal`` — both nerves: CMAP amplitudes 1.2–2.4 mV (median) and 2.5–5 mV (ulnar), SNAPs a
  third of normal, velocities normal or slightly low.
* ``entrapped`` — median only, at the wrist (carpal tunnel): a focal delay of 2–3 ms (motor) and
  1–1.5 ms (sensory) in the carpal tunnel, forearm velocity and ulnar normal.

Waveforms. A compound potential is a unit potential convolved with the arrival times of its
fibres: the fastest fibre arrives at the onset latency (the ground truth), slower ones spread
over ``spread`` of the conduction time with a density falling linearly from the fastest. The
unit is negative first (a half sine of ``t1_ms``) then positive (a half sine of ``t2_ms`` at
``tail`` of the height). Truth amplitudes, areas, durations and peak latencies are read from
the noise-free potential on a 5 µs grid with the analysis' own definitions. F-waves are 1–3 motor
units per sweep at latencies from the fastest F (antidromic to the cord and back, +1 ms) over a
chronodispersion. Noise is white Gaussian; every stimulus adds an artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ionm_station.events import Event
from ionm_station.montage import Montage, MontageChannel
from ionm_station.recording import CaseMetadata, RecordingWriter
from ionm_station.sim.waveforms import stimulus_artifact
from ionm_station.stream import StreamInfo

FS_HZ = 20_000.0
NERVE_TYPES = ("normal", "demyelinated", "axonal", "entrapped")
#: Channels of the simulated recording: label, muscle or digit, root, side.
CHANNELS = (("APB", "abductor pollicis brevis", "T1"), ("ADM", "abductor digiti minimi", "C8"),
            ("D4", "digit 4 (ring electrodes)", ""))
#: Stimuli per site by study kind (a SNAP under ``SMALL_SNAP_UV`` is averaged over
#: ``SMALL_SNAP_SWEEPS``, as one averages more for a small response); time between stimuli (s).
SWEEPS = {"motor": 3, "sensory": 20, "f_wave": 20}
SMALL_SNAP_UV, SMALL_SNAP_SWEEPS = 12.0, 60
INTERVAL_S = 0.2
#: Raw noise (µV RMS, white at 20 kHz) on the muscle and digit channels.
NOISE_UV = {"APB": 6.0, "ADM": 6.0, "D4": 2.0}
_GRID_S = 5e-6  # fine time grid of the noise-free potentials (s)
_SPAN_S = 0.1  # potentials are rendered from the stimulus to this time after it (s)


@dataclass(frozen=True)
class Potential:
    """One noise-free compound potential after a stimulus (times ms after the stimulus)."""

    onset_ms: float
    width_ms: float  # spread of fibre arrival times
    amplitude_uv: float  # height of the unit potential (the compound's is read from the shape)
    t1_ms: float
    t2_ms: float
    tail: float

    def render(self, t_s: np.ndarray) -> np.ndarray:
        """The potential (µV) at times ``t_s`` (s after the stimulus)."""
        grid = np.arange(0.0, _SPAN_S, _GRID_S)
        wave = np.interp(t_s, grid, _compound(self, grid), left=0.0, right=0.0)
        return wave

    def truth(self) -> dict[str, float]:
        """Onset and peak latency (ms), baseline-to-negative-peak amplitude (µV), negative-peak
        duration (ms) and area (µV·ms) of the noise-free potential."""
        grid = np.arange(0.0, _SPAN_S, _GRID_S)
        y = _compound(self, grid)
        k = int(np.argmin(y))
        after = np.flatnonzero(y[k:] >= 0.0)
        end = k + (int(after[0]) if len(after) else len(y) - 1 - k)
        start = round(self.onset_ms * 1e-3 / _GRID_S)
        area = float(-y[start:end].sum() * _GRID_S * 1e3)
        return {"onset_latency_ms": self.onset_ms, "peak_latency_ms": grid[k] * 1e3,
                "amplitude_uv": float(-y[k]), "duration_ms": (end - start) * _GRID_S * 1e3,
                "area_uvms": area, "peak_to_peak_uv": float(y.max() - y[k])}


def _unit(t_ms: np.ndarray, t1: float, t2: float, tail: float) -> np.ndarray:
    """Unit potential: −sin on [0, t1), +tail·sin on [t1, t1 + t2), 0 elsewhere."""
    neg = np.where((t_ms >= 0) & (t_ms < t1), -np.sin(np.pi * t_ms / t1), 0.0)
    u = t_ms - t1
    pos = np.where((u >= 0) & (u < t2), tail * np.sin(np.pi * u / t2), 0.0)
    return neg + pos


def _compound(p: Potential, grid_s: np.ndarray) -> np.ndarray:
    """``p`` on ``grid_s``: the unit convolved with the fibre arrival density."""
    dt_ms = _GRID_S * 1e3
    n = max(1, round(p.width_ms / dt_ms))
    density = 1.0 - np.arange(n) / n  # fastest fibres most numerous; onset = fastest arrival
    density /= density.sum()
    t_ms = grid_s * 1e3 - p.onset_ms
    unit = _unit(t_ms, p.t1_ms, p.t2_ms, p.tail)
    return p.amplitude_uv * np.convolve(unit, density)[:len(grid_s)]


@dataclass
class SimulatedStudy:
    """A simulated hand: signals (n, 3) µV at ``FS_HZ``, stimulus events, the study description
    (TOML text without the recording line) and the ground truth.

    ``truth`` maps a study name (``"median motor"``, ``"ulnar sensory"``, ``"median F-waves"``)
    to its true values: per site onset/peak latency (ms), amplitude (mV motor, µV sensory),
    area, duration; per segment velocity (m/s); for F-waves the per-sweep onsets (None: no F),
    minimum and mean latency and persistence. ``expected`` lists the flags the ground truth
    calls for against the shipped references, as ``(nerve, measure)`` pairs, and ``pattern`` the
    pattern expected (None for a normal hand).
    """

    nerve_type: str
    seed: int
    samples: np.ndarray
    events: list[Event]
    description: str
    truth: dict[str, Any] = field(default_factory=dict)
    expected: set[tuple[str, str]] = field(default_factory=set)
    pattern: str | None = None


def _draw(rng: np.random.Generator, nerve_type: str) -> dict[str, Any]:
    """The hand's physiology for ``nerve_type`` (velocities m/s, distances mm, times ms)."""
    demyel = nerve_type == "demyelinated"
    axonal = nerve_type == "axonal"
    base = rng.uniform(54.0, 62.0)  # this subject's forearm motor velocity
    nerves: dict[str, dict[str, Any]] = {}
    for nerve in ("median", "ulnar"):
        cv = base * rng.uniform(0.97, 1.03) + (2.0 if nerve == "ulnar" else 0.0)
        if demyel:
            cv = rng.uniform(26.0, 34.0)
        elif axonal:
            cv -= rng.uniform(0.0, 4.0)
        sensory_cv = cv * rng.uniform(0.98, 1.02) if not demyel else rng.uniform(30.0, 38.0)
        terminal = rng.uniform(1.4, 1.8) if nerve == "median" else rng.uniform(1.0, 1.4)
        if demyel:
            terminal += rng.uniform(0.4, 0.7)
        amp_mv = rng.uniform(6.0, 12.0) if nerve == "median" else rng.uniform(9.0, 14.0)
        snap_uv = rng.uniform(20.0, 40.0) if nerve == "median" else rng.uniform(15.0, 35.0)
        if axonal:  # well under the reference limits (3.0 and 7.4 mV)
            amp_mv = rng.uniform(1.2, 2.4) if nerve == "median" else rng.uniform(2.5, 5.0)
            snap_uv *= rng.uniform(0.3, 0.45)
        entrapped = nerve == "median" and nerve_type == "entrapped"
        nerves[nerve] = {
            "cv": cv, "distal_cv": cv * (0.65 if demyel else 0.75), "sensory_cv": sensory_cv,
            "terminal_ms": terminal, "amp_uv": amp_mv * 1e3, "snap_uv": snap_uv,
            "spread": 0.35 if demyel else 0.15,
            "focal_motor_ms": rng.uniform(2.0, 3.0) if entrapped else 0.0,
            "focal_sensory_ms": rng.uniform(1.0, 1.5) if entrapped else 0.0,
            "amp_factor": rng.uniform(0.75, 0.9) if entrapped else 1.0,
            "distal_mm": float(round(rng.uniform(65.0, 80.0) if nerve == "median"
                                     else rng.uniform(70.0, 85.0))),
            "forearm_mm": float(round(rng.uniform(200.0, 250.0) if nerve == "median"
                                      else rng.uniform(200.0, 240.0))),
            "t1_ms": rng.uniform(4.5, 6.0), "t2_ms": rng.uniform(6.0, 9.0),
            "snap_t1_ms": rng.uniform(0.7, 0.9),
        }
    nerves["median"]["cord_mm"] = float(round(rng.uniform(700.0, 800.0)))
    nerves["median"]["persistence"] = rng.uniform(0.6, 0.95)
    return nerves


def _motor(n: dict[str, Any]) -> tuple[Potential, Potential]:
    """Distal and proximal CMAPs of one nerve."""
    distal_conduction = n["distal_mm"] / n["distal_cv"] + n["focal_motor_ms"]
    distal_onset = distal_conduction + n["terminal_ms"]
    forearm = n["forearm_mm"] / n["cv"]
    width_d = distal_conduction * n["spread"] / (1.0 - n["spread"])
    width_p = (distal_conduction + forearm) * n["spread"] / (1.0 - n["spread"])
    amp = n["amp_uv"] * n["amp_factor"]
    shape = {"t1_ms": n["t1_ms"], "t2_ms": n["t2_ms"], "tail": 0.45}
    return (Potential(distal_onset, width_d, amp, **shape),
            Potential(distal_onset + forearm, width_p, amp * 0.95, **shape))


def _sensory(n: dict[str, Any]) -> Potential:
    """The SNAP at digit 4 after wrist stimulation, 140 mm."""
    conduction = 140.0 / n["sensory_cv"] + n["focal_sensory_ms"]
    width = conduction * n["spread"] * 0.5 / (1.0 - n["spread"])
    return Potential(conduction, width, n["snap_uv"], n["snap_t1_ms"], 1.2, 0.5)


def _expected(nerve_type: str, truth: dict[str, Any]) -> tuple[set[tuple[str, str]], str | None]:
    """Flags and pattern the ground truth calls for against the shipped reference values."""
    from ionm_station.lab.ncs import expected_flags

    flags = expected_flags(truth)
    pattern = {"normal": None, "demyelinated": "demyelinating", "axonal": "axonal",
               "entrapped": "carpal_tunnel"}[nerve_type]
    return flags, pattern


def simulate(nerve_type: str = "normal", seed: int = 0) -> SimulatedStudy:
    """One simulated hand of ``nerve_type`` (:data:`NERVE_TYPES`), reproducible from ``seed``."""
    if nerve_type not in NERVE_TYPES:
        raise ValueError(f"nerve type must be one of {', '.join(NERVE_TYPES)}, got {nerve_type!r}")
    rng = np.random.default_rng(seed)
    nerves = _draw(rng, nerve_type)
    labels = [c[0] for c in CHANNELS]
    # (site, channel, potential or F-wave marker, study kind, stimuli)
    plan: list[tuple[str, str, Any, str, int]] = []
    truth: dict[str, Any] = {}
    for nerve, channel, prox in (("median", "APB", "elbow"), ("ulnar", "ADM", "below elbow")):
        n = nerves[nerve]
        distal, proximal = _motor(n)
        td, tp = distal.truth(), proximal.truth()
        truth[f"{nerve} motor R"] = {
            "name": f"{nerve} motor R", "kind": "motor", "nerve": nerve, "side": "R",
            "channel": channel,
            "sites": [{"site": f"{nerve} wrist", "distance_mm": n["distal_mm"], **_mv(td)},
                      {"site": f"{nerve} {prox}", "distance_mm": n["forearm_mm"], **_mv(tp)}],
            "segments": [{"from": f"{nerve} wrist", "to": f"{nerve} {prox}",
                          "distance_mm": n["forearm_mm"],
                          "velocity_m_s": n["forearm_mm"] / (tp["onset_latency_ms"]
                                                             - td["onset_latency_ms"])}]}
        plan += [(f"{nerve} wrist", channel, distal, "motor", SWEEPS["motor"]),
                 (f"{nerve} {prox}", channel, proximal, "motor", SWEEPS["motor"])]
    for nerve in ("median", "ulnar"):
        p = _sensory(nerves[nerve])
        t = p.truth()
        site = f"{nerve} wrist D4"
        truth[f"{nerve} sensory R"] = {
            "name": f"{nerve} sensory R", "kind": "sensory", "nerve": nerve, "side": "R",
            "channel": "D4", "sites": [{"site": site, "distance_mm": 140.0, **t}],
            "segments": [{"from": site, "to": None, "distance_mm": 140.0,
                          "velocity_m_s": 140.0 / t["onset_latency_ms"]}]}
        small = t["amplitude_uv"] < SMALL_SNAP_UV
        plan.append((site, "D4", p, "sensory", SMALL_SNAP_SWEEPS if small else SWEEPS["sensory"]))
    m = nerves["median"]
    m_wave, _ = _motor(m)
    f_fastest = m_wave.onset_ms + 2.0 * m["cord_mm"] / (m["cv"] * 1.05) + 1.0
    chrono = 2.0 * m["cord_mm"] / (m["cv"] * 1.05) * m["spread"] / (1 - m["spread"]) * 0.5
    plan.append(("median wrist F", "APB", ("F", m_wave, f_fastest, chrono), "f_wave",
                 SWEEPS["f_wave"]))

    n_stim = sum(count for *_, count in plan)
    n = int((0.1 + n_stim * INTERVAL_S + 0.2) * FS_HZ)
    data = rng.normal(0.0, 1.0, (n, len(labels))) * np.array([NOISE_UV[c] for c in labels])
    data += rng.uniform(-50.0, 50.0, len(labels))  # electrode offsets
    width = int(_SPAN_S * FS_HZ)
    t_s = np.arange(width) / FS_HZ
    art = stimulus_artifact(t_s, 2e-5)  # a 0.1 ms pulse, well-placed ground
    events: list[Event] = []
    index = int(0.1 * FS_HZ)
    f_onsets: list[float | None] = []
    for site, channel, pot, kind, count in plan:
        ch = labels.index(channel)
        for _ in range(count):
            if kind == "f_wave":
                _, mw, fastest, spread_ms = pot
                wave = mw.render(t_s)
                onset = None
                if rng.random() < m["persistence"]:
                    k = int(rng.integers(1, 4))
                    lats = fastest + rng.uniform(0.0, spread_ms, k)
                    onset = float(lats.min())
                    for lat in lats:
                        unit = Potential(float(lat), 0.0, rng.uniform(150.0, 400.0),
                                         rng.uniform(2.5, 4.0), 4.0, 0.5)
                        wave = wave + unit.render(t_s)
                f_onsets.append(onset)
            else:
                wave = pot.render(t_s)
            data[index:index + width, ch] += wave
            data[index:index + width] += art[:, None] * rng.uniform(500.0, 1500.0)
            current = 20.0 if kind != "sensory" else 12.0
            events.append(Event("stimulus", index, None, (),
                                {"current_ma": current, "target": None, "site": site}))
            index += int(INTERVAL_S * FS_HZ)
    present = [x for x in f_onsets if x is not None]
    truth["median F-waves R"] = {
        "name": "median F-waves R", "kind": "f_wave", "nerve": "median", "side": "R",
        "channel": "APB", "site": "median wrist F", "latencies_ms": f_onsets,
        "min_latency_ms": min(present), "mean_latency_ms": float(np.mean(present)),
        "max_latency_ms": max(present), "persistence": len(present) / len(f_onsets)}
    study = SimulatedStudy(nerve_type, seed, data.astype(np.float32), events,
                           _description(nerves), truth)
    study.expected, study.pattern = _expected(nerve_type, truth)
    return study


def _mv(t: dict[str, float]) -> dict[str, float]:
    """Motor truth in the analysis' units: amplitude and peak-to-peak mV, area mV·ms."""
    return {"onset_latency_ms": t["onset_latency_ms"], "amplitude_mv": t["amplitude_uv"] / 1e3,
            "peak_to_peak_mv": t["peak_to_peak_uv"] / 1e3, "area_mvms": t["area_uvms"] / 1e3,
            "duration_ms": t["duration_ms"], "peak_latency_ms": t["peak_latency_ms"]}


def _description(nerves: dict[str, Any]) -> str:
    """The study description (TOML) of the simulated hand, without its ``recording`` line."""
    med, uln = nerves["median"], nerves["ulnar"]
    studies = (
        ("motor", "median", "APB", (("median wrist", med["distal_mm"]),
                                    ("median elbow", med["forearm_mm"]))),
        ("motor", "ulnar", "ADM", (("ulnar wrist", uln["distal_mm"]),
                                   ("ulnar below elbow", uln["forearm_mm"]))),
        ("sensory", "median", "D4", (("median wrist D4", 140.0),)),
        ("sensory", "ulnar", "D4", (("ulnar wrist D4", 140.0),)),
        ("f_wave", "median", "APB", (("median wrist F", None),)),
    )
    blocks = ['side = "R"\n']
    for kind, nerve, channel, sites in studies:
        listed = ",\n         ".join(
            f'{{ site = "{site}"' + ("" if mm is None else f", distance_mm = {mm:g}") + " }"
            for site, mm in sites)
        blocks.append(f'[[study]]\nkind = "{kind}"\nnerve = "{nerve}"\nchannel = "{channel}"\n'
                      f"sites = [{listed}]\n")
    return "\n".join(blocks)


def write_study(study: SimulatedStudy, path: str | Path) -> Path:
    """Write ``study`` as ``path`` (the study description, ``NAME.ncs.toml``) and the recording
    it names beside it (``NAME.h5``); returns the description's path. Neither may exist."""
    path = Path(path)
    stem = path.name[:-len(".ncs.toml")] if path.name.endswith(".ncs.toml") else path.stem
    h5 = path.with_name(f"{stem}.h5")
    labels = tuple(c[0] for c in CHANNELS)
    montage = Montage("ncs hand", tuple(MontageChannel(label, muscle, root, "R")
                                        for label, muscle, root in CHANNELS),
                      "simulated nerve conduction study of one hand")
    info = StreamInfo(FS_HZ, labels, range_uv=50_000.0, source="simulated nerves")
    writer = RecordingWriter(h5, info, montage, None, {"kind": "nerve conduction simulation"},
                             CaseMetadata(procedure=f"NCS simulation ({study.nerve_type}, "
                                                    f"seed {study.seed})"))
    try:
        writer.append(study.samples)
        writer.add_events(study.events)
    finally:
        writer.close()
    head = (f"# Simulated nerve conduction study: {study.nerve_type} median nerve, seed "
            f"{study.seed}\nrecording = \"{h5.name}\"\n")
    path.write_text(head + study.description, encoding="utf-8")
    return path

