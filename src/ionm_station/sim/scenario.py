"""Simulator scenarios: what the simulated patient and OR do, and when (TOML files).

A scenario sets the baseline (noise, ECG, mains), the nerve thresholds for triggered EMG, a
script of timed events and optionally a ``[random]`` table that expands — deterministically from
the seed — into many more events for detector benchmarks. Shipped scenarios live in
``ionm_station/scenarios/NAME.toml``; every key is commented there. Times in the file are
seconds; the amplifier converts them to sample indices.

Every malformed file raises :class:`~ionm_station.errors.ConfigError` naming the file, the key
(``events[3].peak_uv``) and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ionm_station.config import (
    check_keys,
    in_range,
    load_toml,
    low_high,
    optional,
    require,
    resolve_named_file,
)
from ionm_station.errors import ConfigError
from ionm_station.montage import Montage, load_montage
from ionm_station.sim.voluntary import VoluntarySpec, parse_voluntary

EMG_KINDS = ("spike", "burst", "a_train", "b_train")
EVENT_KINDS = (*EMG_KINDS, "cautery", "lead_off", "stimulus", "tof")
TARGET_PATTERN = re.compile(r"^(?P<root>[CTLS]\d{1,2})-(?P<side>[LR])$")

#: Longest MUAP the simulator draws (s); a spike occupies this much time.
MUAP_MAX_S = 0.012
#: Time a stimulus occupies (s): artifact, latency up to 20 ms, CMAP up to 20 ms.
STIMULUS_SPAN_S = 0.05
#: Train-of-four: 4 pulses at 2 Hz.
TOF_PULSES = 4
TOF_INTERVAL_S = 0.5
#: The cautery recovery tail is drawn for this many time constants (then < 1 µV).
CAUTERY_TAIL_TAUS = 10.0
#: Randomly placed events keep at least this far (s) from artifacts and stimuli.
ARTIFACT_CLEARANCE_S = 0.3

_TOP_KEYS = {
    "name", "description", "duration_s", "loop", "seed", "montage", "mains_hz", "mains_offset_hz",
    "mains_drift_hz", "mains_drift_period_s", "mains_uv", "heart_rate_bpm",
    "heart_rate_variability", "ecg_scale", "noise_uv", "drift_uv", "cmap_max_uv",
    "cmap_variability", "default_threshold_ma", "stim_artifact_uv_per_ma", "cautery_uv",
    "cautery_recovery_s", "thresholds_ma", "events", "random", "biofeedback",
}
_CHANNEL_KEYS = {"channel", "root", "side"}
_EVENT_KEYS = {
    "spike": {"peak_uv"} | _CHANNEL_KEYS,
    "burst": {"peak_uv", "duration_s", "n_muaps"} | _CHANNEL_KEYS,
    "a_train": {"peak_uv", "duration_s", "rate_hz"} | _CHANNEL_KEYS,
    "b_train": {"peak_uv", "duration_s", "rate_hz"} | _CHANNEL_KEYS,
    "cautery": {"duration_s", "level_uv"},
    "lead_off": {"duration_s"} | _CHANNEL_KEYS,
    "stimulus": {"current_ma", "target"},
    "tof": {"current_ma", "target", "block_level"},
}
#: Hard limits per kind: duration_s and rate_hz ranges.
_DURATION_S = {"burst": (0.02, 0.3), "a_train": (0.005, 60.0), "b_train": (0.1, 60.0),
               "cautery": (0.05, 120.0), "lead_off": (0.01, 3600.0)}
_RATE_HZ = {"a_train": (40.0, 300.0), "b_train": (1.0, 100.0)}
_RANGE_KEYS = {  # [random] two-number ranges: default, hard limits, unit
    "peak_uv": ((30.0, 1000.0), (5.0, 5000.0), "µV"),
    "a_train_rate_hz": ((60.0, 210.0), _RATE_HZ["a_train"], "Hz"),
    "a_train_duration_s": ((0.05, 5.0), _DURATION_S["a_train"], "s"),
    "b_train_rate_hz": ((5.0, 50.0), _RATE_HZ["b_train"], "Hz"),
    "b_train_duration_s": ((0.3, 10.0), _DURATION_S["b_train"], "s"),
    "burst_duration_s": ((0.02, 0.3), _DURATION_S["burst"], "s"),
    "cautery_duration_s": ((0.5, 5.0), _DURATION_S["cautery"], "s"),
    "lead_off_duration_s": ((1.0, 10.0), _DURATION_S["lead_off"], "s"),
    "current_ma": ((0.5, 20.0), (0.0, 100.0), "mA"),
}
#: Order in which [random] kinds are placed (longest and global first packs best).
_RANDOM_KINDS = ("cautery", "stimulus", "lead_off", "b_train", "a_train", "burst", "spike")


@dataclass(frozen=True)
class ScriptEvent:
    """One scripted happening. Which fields matter depends on ``kind``.

    Attributes:
        kind: spike | burst | a_train | b_train | cautery | lead_off | stimulus | tof.
        at_s: start time (s) from the beginning of the script.
        duration_s: length (s) of bursts, trains, cautery and lead-off spans.
        channel: a montage label the event is on, or None when ``root`` is used.
        root: nerve root (all its channels, on ``side`` if given), or None.
        side: "L", "R" or None (both sides).
        peak_uv: peak-to-peak amplitude of free-run EMG (µV).
        rate_hz: firing rate of trains (Hz).
        current_ma: stimulus current (mA).
        target: stimulated nerve as root-side, e.g. "L5-L" (stimulus, tof).
        level_uv: cautery noise level (µV RMS); 0 = the scenario's ``cautery_uv``.
        n_muaps: MUAPs in a burst (3–15); 0 = random.
        block_level: train-of-four twitches present (0–4).
        key: where it came from, e.g. ``events[3]`` or ``random``, for messages.
    """

    kind: str
    at_s: float
    duration_s: float = 0.0
    channel: str | None = None
    root: str | None = None
    side: str | None = None
    peak_uv: float = 0.0
    rate_hz: float = 0.0
    current_ma: float = 0.0
    target: str | None = None
    level_uv: float = 0.0
    n_muaps: int = 0
    block_level: int = TOF_PULSES
    key: str = ""

    @property
    def span_s(self) -> float:
        """Time (s) the event occupies from ``at_s`` (cautery without its recovery tail)."""
        if self.kind == "spike":
            return MUAP_MAX_S
        if self.kind == "stimulus":
            return STIMULUS_SPAN_S
        if self.kind == "tof":
            return (TOF_PULSES - 1) * TOF_INTERVAL_S + STIMULUS_SPAN_S
        if self.kind in EMG_KINDS:
            return self.duration_s + MUAP_MAX_S
        return self.duration_s


@dataclass(frozen=True)
class RandomSpec:
    """The ``[random]`` table: rates per hour per kind and parameter ranges (lo, hi).

    Amplitudes and durations are drawn log-uniformly, rates and currents uniformly.
    """

    per_hour: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    channels: tuple[str, ...] | None = None
    min_gap_s: float = 0.5


@dataclass(frozen=True)
class Scenario:
    """A parsed, validated scenario (units in names: s, Hz, µV, mA, bpm)."""

    name: str
    path: str
    duration_s: float
    description: str = ""
    loop: bool = False
    seed: int = 0
    montage: str = "lumbar"
    mains_hz: float = 50.0
    mains_offset_hz: float = 0.0
    mains_drift_hz: float = 0.0
    mains_drift_period_s: float = 30.0
    mains_uv: float = 5.0
    heart_rate_bpm: float = 72.0
    heart_rate_variability: float = 0.05
    ecg_scale: float = 1.0
    noise_uv: float = 3.0
    drift_uv: float = 5.0
    cmap_max_uv: float = 800.0
    cmap_variability: float = 0.05
    default_threshold_ma: float = 20.0
    stim_artifact_uv_per_ma: float = 50.0
    cautery_uv: float = 20000.0
    cautery_recovery_s: float = 0.1
    thresholds_ma: dict[str, float] = dataclasses.field(default_factory=dict)
    events: tuple[ScriptEvent, ...] = ()
    random: RandomSpec | None = None
    biofeedback: VoluntarySpec | None = None

    def without_baseline(self) -> Scenario:
        """The same script with noise, drift, ECG and mains switched off (to check truth)."""
        return dataclasses.replace(self, noise_uv=0.0, drift_uv=0.0, ecg_scale=0.0, mains_uv=0.0)

    def threshold_ma(self, target: str) -> float:
        """Stimulation threshold (mA) of a root-side, e.g. ``"L5-L"``."""
        return self.thresholds_ma.get(target, self.default_threshold_ma)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (``lumbar_demo``) or any scenario TOML by path."""
    path = resolve_named_file(name_or_path, "scenarios")
    return parse_scenario(load_toml(path), str(path))


def parse_scenario(doc: dict[str, Any], path: str) -> Scenario:
    """Validate a scenario document; every problem raises :class:`ConfigError` naming ``path``."""
    check_keys(doc, sorted(_TOP_KEYS), path)
    duration = float(in_range(require(doc, "duration_s", (int, float), path), 1.0, 86400.0,
                              path, "duration_s", "s"))
    montage_name = optional(doc, "montage", str, path, "lumbar")
    try:
        montage = load_montage(montage_name)
    except ConfigError as exc:
        raise ConfigError(path, "montage", f"cannot load montage {montage_name!r}: {exc}") from None
    mains_hz = _number(doc, "mains_hz", 50.0, 50.0, 60.0, path, "Hz")
    if mains_hz not in (50.0, 60.0):
        raise ConfigError(path, "mains_hz", f"expected 50 or 60, got {mains_hz!r}")
    return Scenario(
        name=require(doc, "name", str, path),
        path=path,
        duration_s=duration,
        description=optional(doc, "description", str, path, ""),
        loop=optional(doc, "loop", bool, path, False),
        seed=int(in_range(optional(doc, "seed", int, path, 0), 0, 2**63 - 1, path, "seed")),
        montage=montage_name,
        mains_hz=mains_hz,
        mains_offset_hz=_number(doc, "mains_offset_hz", 0.0, -2.0, 2.0, path, "Hz"),
        mains_drift_hz=_number(doc, "mains_drift_hz", 0.0, 0.0, 2.0, path, "Hz"),
        mains_drift_period_s=_number(doc, "mains_drift_period_s", 30.0, 1.0, 3600.0, path, "s"),
        mains_uv=_number(doc, "mains_uv", 5.0, 0.0, 1000.0, path, "µV"),
        heart_rate_bpm=_number(doc, "heart_rate_bpm", 72.0, 30.0, 200.0, path, "bpm"),
        heart_rate_variability=_number(doc, "heart_rate_variability", 0.05, 0.0, 0.3, path),
        ecg_scale=_number(doc, "ecg_scale", 1.0, 0.0, 10.0, path),
        noise_uv=_number(doc, "noise_uv", 3.0, 0.0, 100.0, path, "µV"),
        drift_uv=_number(doc, "drift_uv", 5.0, 0.0, 500.0, path, "µV"),
        cmap_max_uv=_number(doc, "cmap_max_uv", 800.0, 10.0, 5000.0, path, "µV"),
        cmap_variability=_number(doc, "cmap_variability", 0.05, 0.0, 0.5, path),
        default_threshold_ma=_number(doc, "default_threshold_ma", 20.0, 0.1, 100.0, path, "mA"),
        stim_artifact_uv_per_ma=_number(doc, "stim_artifact_uv_per_ma", 50.0, 0.0, 1000.0, path,
                                        "µV/mA"),
        cautery_uv=_number(doc, "cautery_uv", 20000.0, 100.0, 1e6, path, "µV"),
        cautery_recovery_s=_number(doc, "cautery_recovery_s", 0.1, 0.01, 2.0, path, "s"),
        thresholds_ma=_parse_thresholds(doc, montage, path),
        events=_parse_events(doc, montage, duration, path),
        random=_parse_random(doc, montage, path),
        biofeedback=parse_voluntary(doc, montage.labels, duration, path),
    )


def _number(doc: dict[str, Any], key: str, default: float, lo: float, hi: float, path: str,
            unit: str = "", prefix: str = "") -> float:
    """Optional number ``doc[key]`` checked to lie in [lo, hi]."""
    full = f"{prefix}.{key}" if prefix else key
    value = optional(doc, key, (int, float), path, default, prefix)
    return float(in_range(value, lo, hi, path, full, unit))


def _required_number(doc: dict[str, Any], key: str, lo: float, hi: float, path: str, prefix: str,
                     unit: str = "") -> float:
    value = require(doc, key, (int, float), path, prefix)
    return float(in_range(value, lo, hi, path, f"{prefix}.{key}", unit))


def _check_target(target: str, montage: Montage, path: str, key: str) -> str:
    m = TARGET_PATTERN.match(target)
    if not m or not montage.channels_of(m["root"], m["side"]):
        known = ", ".join(montage.root_sides())
        raise ConfigError(path, key, f"expected a root-side of montage {montage.name!r} "
                                     f"({known}), got {target!r}")
    return target


def _parse_thresholds(doc: dict[str, Any], montage: Montage, path: str) -> dict[str, float]:
    table = optional(doc, "thresholds_ma", dict, path, {})
    out = {}
    for target, value in table.items():
        key = f"thresholds_ma.{target}"
        _check_target(target, montage, path, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, f"expected a number (mA), got {value!r}")
        out[target] = float(in_range(value, 0.1, 100.0, path, key, "mA"))
    return out


def _parse_events(doc: dict[str, Any], montage: Montage, duration_s: float,
                  path: str) -> tuple[ScriptEvent, ...]:
    raw = optional(doc, "events", list, path, [])
    events = []
    for i, entry in enumerate(raw):
        key = f"events[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, key, "expected a table ([[events]])")
        event = _parse_event(entry, montage, path, key)
        if event.at_s + event.span_s > duration_s:
            end = event.at_s + event.span_s
            raise ConfigError(path, f"{key}.at_s",
                              f"event runs to {end:g} s, past duration_s = {duration_s:g} s")
        events.append(event)
    return tuple(events)


def _parse_event(entry: dict[str, Any], montage: Montage, path: str, key: str) -> ScriptEvent:
    kind = require(entry, "kind", str, path, key)
    if kind not in EVENT_KINDS:
        raise ConfigError(path, f"{key}.kind",
                          f"expected one of {', '.join(EVENT_KINDS)}, got {kind!r}")
    check_keys(entry, sorted({"kind", "at_s"} | _EVENT_KEYS[kind]), path, key)
    fields: dict[str, Any] = {"kind": kind, "key": key,
                              "at_s": _required_number(entry, "at_s", 0.0, 86400.0, path, key, "s")}
    if kind in _DURATION_S:
        lo, hi = _DURATION_S[kind]
        fields["duration_s"] = _required_number(entry, "duration_s", lo, hi, path, key, "s")
    if kind in _RATE_HZ:
        lo, hi = _RATE_HZ[kind]
        fields["rate_hz"] = _required_number(entry, "rate_hz", lo, hi, path, key, "Hz")
    if kind in EMG_KINDS:
        fields["peak_uv"] = _required_number(entry, "peak_uv", 5.0, 5000.0, path, key, "µV")
    if "channel" in _EVENT_KEYS[kind]:
        fields.update(_parse_channels(entry, montage, path, key))
    if kind == "burst":
        n = optional(entry, "n_muaps", int, path, 0, key)
        fields["n_muaps"] = int(in_range(n, 3, 15, path, f"{key}.n_muaps")) if n else 0
    if kind == "cautery":
        fields["level_uv"] = _number(entry, "level_uv", 0.0, 0.0, 1e6, path, "µV", key)
    if kind in ("stimulus", "tof"):
        target = require(entry, "target", str, path, key)
        fields["target"] = _check_target(target, montage, path, f"{key}.target")
    if kind == "stimulus":
        fields["current_ma"] = _required_number(entry, "current_ma", 0.0, 100.0, path, key, "mA")
    if kind == "tof":
        fields["current_ma"] = _number(entry, "current_ma", 40.0, 0.0, 100.0, path, "mA", key)
        level = optional(entry, "block_level", int, path, TOF_PULSES, key)
        fields["block_level"] = int(in_range(level, 0, TOF_PULSES, path, f"{key}.block_level"))
    return ScriptEvent(**fields)


def _parse_channels(entry: dict[str, Any], montage: Montage, path: str, key: str) -> dict[str, Any]:
    """``channel = "label"`` or ``root = "L5"`` (+ optional ``side``), checked against the
    montage."""
    if "channel" in entry:
        if "root" in entry or "side" in entry:
            raise ConfigError(path, f"{key}.channel", "give either channel or root/side, not both")
        label = require(entry, "channel", str, path, key)
        if label not in montage.labels:
            known = ", ".join(montage.labels)
            raise ConfigError(path, f"{key}.channel", f"unknown channel label {label!r} "
                                                      f"(montage {montage.name!r} has: {known})")
        return {"channel": label}
    if "root" not in entry:
        raise ConfigError(path, f"{key}.channel", "missing (expected a channel label, or root = "
                                                  "\"L5\" with optional side)")
    root = require(entry, "root", str, path, key)
    side = optional(entry, "side", str, path, None, key)
    if side is not None and side not in ("L", "R"):
        raise ConfigError(path, f"{key}.side", f"expected 'L' or 'R', got {side!r}")
    if not montage.channels_of(root, side):
        raise ConfigError(path, f"{key}.root", f"no channel of montage {montage.name!r} records "
                                               f"{root}{'-' + side if side else ''}")
    return {"root": root, "side": side}


def _parse_random(doc: dict[str, Any], montage: Montage, path: str) -> RandomSpec | None:
    table = optional(doc, "random", dict, path, None)
    if table is None:
        return None
    rate_keys = {f"{k}_per_hour" for k in _RANDOM_KINDS}
    check_keys(table, sorted(rate_keys | set(_RANGE_KEYS) | {"channels", "min_gap_s"}), path,
               "random")
    per_hour = {k: _number(table, f"{k}_per_hour", 0.0, 0.0, 36000.0, path, "/h", "random")
                for k in _RANDOM_KINDS}
    ranges = {k: low_high(table, k, *spec, path, "random") for k, spec in _RANGE_KEYS.items()}
    channels = optional(table, "channels", list, path, None, "random")
    if channels is not None:
        for label in channels:
            if label not in montage.labels:
                raise ConfigError(path, "random.channels", f"unknown channel label {label!r}")
        channels = tuple(channels)
    min_gap = _number(table, "min_gap_s", 0.5, ARTIFACT_CLEARANCE_S, 60.0, path, "s", "random")
    return RandomSpec(per_hour=per_hour, ranges=ranges, channels=channels, min_gap_s=min_gap)



# --- [random] expansion -------------------------------------------------------------------


@dataclass(frozen=True)
class _Busy:
    """A time span (s) occupied on some channels (None = all channels)."""

    start_s: float
    stop_s: float
    labels: frozenset[str] | None

    def clashes(self, other: _Busy, gap_s: float) -> bool:
        overlap = self.start_s < other.stop_s + gap_s and other.start_s < self.stop_s + gap_s
        shared = self.labels is None or other.labels is None or bool(self.labels & other.labels)
        return overlap and shared


def event_labels(event: ScriptEvent, montage: Montage) -> frozenset[str] | None:
    """Montage labels an event is on; None for whole-stream events (cautery, stimuli, tof)."""
    if event.kind in ("cautery", "stimulus", "tof"):
        return None
    if event.channel is not None:
        return frozenset({event.channel})
    if event.root is not None:
        indices = montage.channels_of(event.root, event.side)
        return frozenset(montage.channels[i].label for i in indices)
    return None


def busy_span(event: ScriptEvent, scenario: Scenario, montage: Montage) -> _Busy:
    """Span an event occupies, cautery including its recovery tail."""
    stop = event.at_s + event.span_s
    if event.kind == "cautery":
        stop += CAUTERY_TAIL_TAUS * scenario.cautery_recovery_s
    return _Busy(event.at_s, stop, event_labels(event, montage))


def expand_random(scenario: Scenario, montage: Montage, seed: int) -> tuple[ScriptEvent, ...]:
    """The scripted events plus the ``[random]`` events drawn from ``seed``.

    Random events never overlap each other or scripted events on the same channel (``min_gap_s``
    apart), and keep ``min_gap_s`` (≥ 0.3 s) from cautery (incl. its recovery tail) and stimuli.
    Raises :class:`ConfigError` if the rates cannot be fitted into ``duration_s``.
    """
    spec = scenario.random
    if spec is None:
        return scenario.events
    busy = [busy_span(e, scenario, montage) for e in scenario.events]
    labels = tuple(lab for lab in spec.channels or montage.labels if lab in montage.labels)
    if not labels:
        raise ConfigError(scenario.path, "random.channels", "none of these channels is in the "
                                                            "amplifier's montage")
    targets = sorted({montage.channels[montage.labels.index(lab)].root_side for lab in labels})
    rng = np.random.default_rng([seed, 0x5EED])
    added = []
    for kind in _RANDOM_KINDS:
        count = round(spec.per_hour[kind] * scenario.duration_s / 3600.0)
        for _ in range(count):
            event = _place(kind, rng, scenario, spec, montage, labels, targets, busy)
            busy.append(busy_span(event, scenario, montage))
            added.append(event)
    added.sort(key=lambda e: e.at_s)
    return scenario.events + tuple(added)


def _place(kind: str, rng: np.random.Generator, scenario: Scenario, spec: RandomSpec,
           montage: Montage, labels: tuple[str, ...], targets: list[str],
           busy: list[_Busy]) -> ScriptEvent:
    """Draw one random event of ``kind`` at a free time; ConfigError after 1000 failed tries."""
    for _ in range(1000):
        event = _draw(kind, rng, scenario, spec, labels, targets)
        span = busy_span(event, scenario, montage)
        if event.at_s >= 0.0 and not any(span.clashes(b, spec.min_gap_s) for b in busy):
            return event
    raise ConfigError(scenario.path, "random", f"cannot fit the {kind} events into "
                                               f"duration_s = {scenario.duration_s:g} s without "
                                               "overlaps; lower the rates or durations")


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _draw(kind: str, rng: np.random.Generator, scenario: Scenario, spec: RandomSpec,
          labels: tuple[str, ...], targets: list[str]) -> ScriptEvent:
    r = spec.ranges
    fields: dict[str, Any] = {"kind": kind, "key": "random", "at_s": 0.0}
    if kind in ("burst", "a_train", "b_train", "cautery", "lead_off"):
        fields["duration_s"] = _log_uniform(rng, r[f"{kind}_duration_s"])
    if kind in _RATE_HZ:
        fields["rate_hz"] = float(rng.uniform(*r[f"{kind}_rate_hz"]))
    if kind in EMG_KINDS:
        fields["peak_uv"] = _log_uniform(rng, r["peak_uv"])
    if kind in EMG_KINDS + ("lead_off",):
        fields["channel"] = labels[int(rng.integers(len(labels)))]
    if kind == "stimulus":
        fields["target"] = targets[int(rng.integers(len(targets)))]
        fields["current_ma"] = float(rng.uniform(*r["current_ma"]))
    event = ScriptEvent(**fields)
    latest = scenario.duration_s - event.span_s - 0.5
    at_s = float(rng.uniform(0.5, latest)) if latest > 0.5 else -1.0  # -1: does not fit
    return dataclasses.replace(event, at_s=at_s)
