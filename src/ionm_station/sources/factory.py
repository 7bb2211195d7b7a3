"""Hardware sources from a profile: the run-side entry point for ``serial`` and ``brainflow``."""

from __future__ import annotations

from dataclasses import replace

from ionm_station.errors import ConfigError
from ionm_station.montage import Montage
from ionm_station.profiles import Profile
from ionm_station.sources.base import Source

HARDWARE_KINDS = ("serial", "brainflow")


def build_hardware_source(profile: Profile, montage: Montage,
                          port_override: str | None = None) -> Source:
    """The (unopened) source of a ``serial`` or ``brainflow`` profile.

    Args:
        profile: a validated profile of kind ``serial`` or ``brainflow``.
        montage: names the channels; must have exactly ``profile.channels`` channels.
        port_override: replaces the profile's serial port (``run --port PATH``); for BrainFlow
            boards it replaces ``brainflow.serial_port``.

    Raises:
        ConfigError: not a hardware profile, or the montage does not match its channel count.
        DeviceError: a BrainFlow board id the library does not know, or with too few rows.
    """
    if profile.kind not in HARDWARE_KINDS:
        raise ConfigError(profile.path, "source.kind",
                          f"expected one of {', '.join(HARDWARE_KINDS)}, got {profile.kind!r}")
    if len(montage.channels) != profile.channels:
        raise ConfigError(profile.path, "source.channels",
                          f"{profile.channels} channels but montage {montage.name!r} has "
                          f"{len(montage.channels)}")
    if profile.kind == "serial":
        from ionm_station.sources.serial_source import SerialSource

        assert profile.serial is not None
        settings = profile.serial if port_override is None else replace(profile.serial,
                                                                         port=port_override)
        return SerialSource(settings, montage.labels, profile.sample_rate_hz, profile.range_uv)
    from ionm_station.sources.brainflow_source import BrainFlowSource

    assert profile.brainflow is not None
    board = profile.brainflow if port_override is None else replace(profile.brainflow,
                                                                     serial_port=port_override)
    return BrainFlowSource(board, montage.labels, profile.sample_rate_hz, profile.range_uv)
