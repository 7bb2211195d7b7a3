"""Hardware profiles: which source to open, its channels, rate, gains and limits.

A profile is a TOML file in ``hardware_profiles/``. Every key is validated here; a malformed
profile raises :class:`~ionm_station.errors.ConfigError` naming the file, the key and what was
expected. See ``hardware_profiles/simulated.toml`` for a complete, commented example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ionm_station.config import in_range, load_toml, optional, require, resolve_named_file
from ionm_station.errors import ConfigError

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


def _simulated(doc: dict, path: str) -> SimulatedSettings:
    sec = optional(doc, "simulated", dict, path, {})
    seed = optional(sec, "seed", int, path, None, "simulated")
    return SimulatedSettings(
        scenario=optional(sec, "scenario", str, path, "lumbar_demo", "simulated"),
        seed=seed,
        realtime=optional(sec, "realtime", bool, path, True, "simulated"),
    )


def _brainflow(doc: dict, path: str) -> BrainFlowSettings:
    sec = require(doc, "brainflow", dict, path)
    p = "brainflow"
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


def parse_profile(doc: dict, path: str) -> Profile:
    """Validate a profile document (already parsed TOML)."""
    name = require(doc, "name", str, path)
    src = require(doc, "source", dict, path)
    kind = require(src, "kind", str, path, "source")
    if kind not in SOURCE_KINDS:
        raise ConfigError(path, "source.kind", f"expected one of {', '.join(SOURCE_KINDS)}, got {kind!r}")
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
    )


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> Profile:
    """Load a profile from ``hardware_profiles/`` by name, or from any path."""
    path = resolve_named_file(name_or_path, "profiles")
    return parse_profile(load_toml(path), str(path))
