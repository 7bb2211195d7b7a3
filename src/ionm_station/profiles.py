"""Hardware profiles: which source to open, its channels, rate, gains and limits, and the
settings that suit it.

A profile is a TOML file in ``hardware_profiles/``: ``name``, a ``[source]`` table, the table
of its source kind (``[simulated]``, ``[brainflow]`` or ``[serial]``) and, optionally,
``[dsp]`` (:class:`~ionm_station.pipeline.chain.ChainSettings`: ``low_hz``, ``high_hz``,
``mains_hz`` 50/60, ``remove_ecg``), ``[alarms]`` (the fields of
:class:`~ionm_station.alarms.AlarmConfig`) and ``[triggered]`` (``region``, ``max_ma`` and the
fields of :class:`~ionm_station.triggered.cmap.CmapCriteria`). Every key is validated here; a
malformed profile raises :class:`~ionm_station.errors.ConfigError` naming the file, the key and
what was expected, and an unknown key or table names the nearest valid one. See
``hardware_profiles/simulated.toml`` for a complete, commented example.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ionm_station.alarms import AlarmConfig
from ionm_station.config import (
    check_keys,
    dataclass_from_table,
    in_range,
    load_toml,
    number,
    optional,
    require,
    resolve_named_file,
)
from ionm_station.errors import ConfigError
from ionm_station.pipeline.chain import ChainSettings
from ionm_station.triggered.cmap import POST_S, CmapCriteria
from ionm_station.triggered.screws import REGIONS
from ionm_station.triggered.settings import TriggeredSettings

SOURCE_KINDS = ("simulated", "brainflow", "serial")
MIN_RATE_HZ, MAX_RATE_HZ = 100.0, 50000.0
DEFAULT_PROFILE = "simulated"


@dataclass(frozen=True)
class SimulatedSettings:
    """The built-in simulated amplifier: scenario to play, seed, real-time pacing."""

    scenario: str = "lumbar_demo"
    seed: int | None = None
    realtime: bool = True


@dataclass(frozen=True)
class BrainFlowSettings:
    """A BrainFlow board: numeric board id and its connection parameters."""

    board_id: int
    serial_port: str = ""
    ip_address: str = ""
    ip_port: int = 0
    other_info: str = ""
    timeout_s: int = 0
    preset: str = "default"
    scale_uv: float = 1.0  # multiply the board's values by this to get µV
    lost_after_ms: int = 500  # no samples for this long: signal lost


@dataclass(frozen=True)
class SerialSettings:
    """Our serial amplifier link: port, baud rate and the µV value of one ADC step."""

    port: str
    baudrate: int = 921600
    uv_per_lsb: float = 0.1
    read_timeout_ms: int = 50
    lost_after_ms: int = 500


@dataclass(frozen=True)
class Profile:
    """A validated hardware profile.

    Attributes:
        name: display name.
        path: file it came from.
        kind: ``simulated``, ``brainflow`` or ``serial``.
        sample_rate_hz: samples per second per channel (Hz).
        channels: number of EMG channels streamed.
        range_uv: amplifier input range, ± µV (samples at the rail are saturated).
        montage: name or path of the default montage.
        simulated, brainflow, serial: the settings of its source kind (the others are None).
        chain_settings: free-run chain settings (``[dsp]``; defaults where absent).
        alarm_config: alarm engine settings (``[alarms]``).
        triggered: triggered-EMG settings (``[triggered]``).
    """

    name: str
    path: str
    kind: str
    sample_rate_hz: float
    channels: int
    range_uv: float
    montage: str
    simulated: SimulatedSettings | None = None
    brainflow: BrainFlowSettings | None = None
    serial: SerialSettings | None = None
    chain_settings: ChainSettings = field(default_factory=ChainSettings)
    alarm_config: AlarmConfig = field(default_factory=AlarmConfig)
    triggered: TriggeredSettings = field(default_factory=TriggeredSettings)


#: Top-level keys and tables of every profile (plus the table of its source kind).
TOP_KEYS = ("name", "source", "dsp", "alarms", "triggered")
SOURCE_KEYS = ("kind", "sample_rate_hz", "channels", "range_uv", "montage")
MAINS_HZ = (50, 60)


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _simulated(doc: dict, path: str) -> SimulatedSettings:
    sec = optional(doc, "simulated", dict, path, {})
    check_keys(sec, _fields(SimulatedSettings), path, "simulated")
    seed = optional(sec, "seed", int, path, None, "simulated")
    return SimulatedSettings(
        scenario=optional(sec, "scenario", str, path, "lumbar_demo", "simulated"),
        seed=seed,
        realtime=optional(sec, "realtime", bool, path, True, "simulated"),
    )


def _brainflow(doc: dict, path: str) -> BrainFlowSettings:
    sec = require(doc, "brainflow", dict, path)
    p = "brainflow"
    check_keys(sec, _fields(BrainFlowSettings), path, p)
    scale = float(optional(sec, "scale_uv", (int, float), path, 1.0, p))
    if scale <= 0:
        raise ConfigError(path, f"{p}.scale_uv", f"expected a positive number, got {scale}")
    return BrainFlowSettings(
        board_id=require(sec, "board_id", int, path, p),
        serial_port=optional(sec, "serial_port", str, path, "", p),
        ip_address=optional(sec, "ip_address", str, path, "", p),
        ip_port=optional(sec, "ip_port", int, path, 0, p),
        other_info=optional(sec, "other_info", str, path, "", p),
        timeout_s=optional(sec, "timeout_s", int, path, 0, p),
        preset=optional(sec, "preset", str, path, "default", p),
        scale_uv=scale,
        lost_after_ms=in_range(optional(sec, "lost_after_ms", int, path, 500, p), 10, 60000,
                               path, f"{p}.lost_after_ms", "ms"),
    )


def _serial(doc: dict, path: str) -> SerialSettings:
    sec = require(doc, "serial", dict, path)
    p = "serial"
    check_keys(sec, _fields(SerialSettings), path, p)
    baud = require(sec, "baudrate", int, path, p) if "baudrate" in sec else 921600
    in_range(baud, 9600, 12_000_000, path, f"{p}.baudrate", "baud")
    lsb = float(require(sec, "uv_per_lsb", (int, float), path, p))
    in_range(lsb, 1e-6, 100.0, path, f"{p}.uv_per_lsb", "µV")
    return SerialSettings(
        port=require(sec, "port", str, path, p),
        baudrate=baud,
        uv_per_lsb=lsb,
        read_timeout_ms=in_range(optional(sec, "read_timeout_ms", int, path, 50, p), 1, 5000,
                                 path, f"{p}.read_timeout_ms", "ms"),
        lost_after_ms=in_range(optional(sec, "lost_after_ms", int, path, 500, p), 10, 60000,
                               path, f"{p}.lost_after_ms", "ms"),
    )


def _dsp(doc: dict, path: str, rate_hz: float) -> ChainSettings:
    """``[dsp]``: band edges within 0 … half the sample rate, mains 50 or 60 Hz."""
    sec = optional(doc, "dsp", dict, path, {})

    def mains(value: Any, key: str) -> float:
        if isinstance(value, bool) or value not in MAINS_HZ:
            raise ConfigError(path, key, f"expected 50 or 60 (Hz), got {value!r}")
        return float(value)

    settings = dataclass_from_table(sec, ChainSettings, path, "dsp", {"mains_hz": mains})
    nyquist = rate_hz / 2
    if "high_hz" in sec and settings.high_hz > nyquist:
        raise ConfigError(path, "dsp.high_hz", f"expected ≤ {nyquist:g} Hz (half the sample "
                                               f"rate), got {settings.high_hz:g}")
    if not 0 < settings.low_hz < min(settings.high_hz, nyquist):
        raise ConfigError(path, "dsp.low_hz", f"expected above 0 and below high_hz "
                                              f"({min(settings.high_hz, nyquist):g} Hz), "
                                              f"got {settings.low_hz:g}")
    return settings


def _alarms(doc: dict, path: str) -> AlarmConfig:
    """``[alarms]``: any field of AlarmConfig; a warning needs more train time than a caution."""
    config = dataclass_from_table(optional(doc, "alarms", dict, path, {}), AlarmConfig, path,
                                  "alarms")
    if config.warning_train_time_s <= config.caution_train_time_s:
        raise ConfigError(path, "alarms.warning_train_time_s",
                          f"expected more than caution_train_time_s "
                          f"({config.caution_train_time_s:g} s), got {config.warning_train_time_s:g}")
    return config


def _triggered(doc: dict, path: str) -> TriggeredSettings:
    """``[triggered]``: region and hunt limit, and the CMAP criteria as keys of the same table."""
    sec = optional(doc, "triggered", dict, path, {})
    criteria_keys = _fields(CmapCriteria)
    check_keys(sec, ["region", "max_ma", *criteria_keys], path, "triggered")
    window_ms = 1000 * POST_S

    def region(value: Any, key: str) -> str:
        if value not in REGIONS:
            raise ConfigError(path, key, f"expected one of {', '.join(REGIONS)}, got {value!r}")
        return value

    def latency(value: Any, key: str) -> tuple[float, float]:
        if not (isinstance(value, list) and len(value) == 2):
            raise ConfigError(path, key, f"expected [start, end] in ms, got {value!r}")
        lo, hi = (number(v, path, key) for v in value)
        if not lo < hi <= window_ms:
            raise ConfigError(path, key, f"expected start < end ≤ {window_ms:g} ms, got {value!r}")
        return lo, hi

    criteria = dataclass_from_table({k: v for k, v in sec.items() if k in criteria_keys},
                                    CmapCriteria, path, "triggered", {"latency_ms": latency})
    if criteria.blank_ms >= criteria.latency_ms[0]:
        raise ConfigError(path, "triggered.blank_ms", f"expected less than the latency window's "
                                                      f"start ({criteria.latency_ms[0]:g} ms), "
                                                      f"got {criteria.blank_ms:g}")
    settings = dataclass_from_table({k: v for k, v in sec.items() if k not in criteria_keys},
                                    TriggeredSettings, path, "triggered", {"region": region})
    in_range(settings.max_ma, 0.5, 100.0, path, "triggered.max_ma", "mA")
    return dataclasses.replace(settings, criteria=criteria)


def _check_tables(doc: dict, path: str, kind: str) -> None:
    """Only known top-level keys, and only the table of this source kind."""
    for other in SOURCE_KINDS:
        if other != kind and other in doc:
            raise ConfigError(path, other, f"table for a {other} source, but source.kind is "
                                           f"{kind!r}")
    check_keys(doc, [*TOP_KEYS, kind], path)
    check_keys(doc["source"], SOURCE_KEYS, path, "source")


def parse_profile(doc: dict, path: str) -> Profile:
    """Validate a profile document (already parsed TOML)."""
    name = require(doc, "name", str, path)
    src = require(doc, "source", dict, path)
    kind = require(src, "kind", str, path, "source")
    if kind not in SOURCE_KINDS:
        raise ConfigError(path, "source.kind", f"expected one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
    _check_tables(doc, path, kind)
    rate = float(require(src, "sample_rate_hz", (int, float), path, "source"))
    in_range(rate, MIN_RATE_HZ, MAX_RATE_HZ, path, "source.sample_rate_hz", "Hz")
    channels = require(src, "channels", int, path, "source")
    in_range(channels, 1, 64, path, "source.channels")
    range_uv = float(optional(src, "range_uv", (int, float), path, 5000.0, "source"))
    in_range(range_uv, 100.0, 1e6, path, "source.range_uv", "µV")
    montage = optional(src, "montage", str, path, "lumbar", "source")
    return Profile(
        name=name,
        path=path,
        kind=kind,
        sample_rate_hz=rate,
        channels=channels,
        range_uv=range_uv,
        montage=montage,
        simulated=_simulated(doc, path) if kind == "simulated" else None,
        brainflow=_brainflow(doc, path) if kind == "brainflow" else None,
        serial=_serial(doc, path) if kind == "serial" else None,
        chain_settings=_dsp(doc, path, rate),
        alarm_config=_alarms(doc, path),
        triggered=_triggered(doc, path),
    )


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> Profile:
    """Load a profile from ``hardware_profiles/`` by name, or from any path."""
    path = resolve_named_file(name_or_path, "profiles")
    return parse_profile(load_toml(path), str(path))
