"""Montages: which muscle, nerve root and side each channel records.

A montage is data (TOML). Example::

    name = "lumbar"
    description = "Lumbosacral free-run EMG, 16 channels"
    [[channels]]
    label = "L4-L VastMed"   # shown on traces and in recordings
    muscle = "vastus medialis"
    root = "L4"              # nerve root, e.g. L4, S1, C5
    side = "L"               # L or R
    threshold_uv = 100       # optional: event amplitude threshold (µV peak-to-peak)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ionm_station.config import (
    check_keys,
    in_range,
    load_toml,
    optional,
    require,
    resolve_named_file,
)
from ionm_station.errors import ConfigError

SIDES = ("L", "R")
ROOT_PATTERN = re.compile(r"^(C[1-8]|T(1[0-2]|[1-9])|L[1-5]|S[1-5])$")
EDF_LABEL_PATTERN = re.compile(r"^\s*(?P<root>[CTLS]\d{1,2})\s*-\s*(?P<side>[LR])\b\s*(?P<muscle>.*)$")
DEFAULT_THRESHOLD_UV = 100.0


@dataclass(frozen=True)
class MontageChannel:
    """One recording channel: label, muscle, nerve root, side and its event threshold (µV)."""

    label: str
    muscle: str
    root: str
    side: str
    threshold_uv: float = DEFAULT_THRESHOLD_UV

    @property
    def root_side(self) -> str:
        """Root and side, e.g. ``"L5-L"`` (a stimulation target)."""
        return f"{self.root}-{self.side}"

    @property
    def tile_key(self) -> str:
        """The alarm tile this channel feeds: its root-side (``"L5-L"``), or its own label for a
        channel with no known root (e.g. a foreign EDF's ``"EMG1"``) — one rule everywhere."""
        return self.root_side if self.root else self.label


@dataclass(frozen=True)
class Montage:
    """An ordered list of channels; channel i of the source is ``channels[i]``."""

    name: str
    channels: tuple[MontageChannel, ...]
    description: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.channels)

    def root_sides(self) -> list[str]:
        """Distinct ``root-side`` keys of the channels that have a root, in montage order
        (stimulation targets)."""
        return list(dict.fromkeys(c.root_side for c in self.channels if c.root))

    def tile_keys(self) -> list[str]:
        """Distinct alarm-tile keys (:attr:`MontageChannel.tile_key`) in montage order."""
        return list(dict.fromkeys(c.tile_key for c in self.channels))

    def channels_of(self, root: str, side: str | None = None) -> list[int]:
        """Indices of the channels recording ``root`` (on ``side`` if given)."""
        return [
            i
            for i, c in enumerate(self.channels)
            if c.root == root and (side is None or c.side == side)
        ]

    def first(self, n: int) -> Montage:
        """The first ``n`` channels (a source with fewer channels than the montage)."""
        return Montage(self.name, self.channels[:n], self.description)


def channel_from_label(label: str) -> MontageChannel:
    """Parse an EDF-style label ``"L4-L TibAnt"`` (root-side muscle); unknown parts stay empty."""
    m = EDF_LABEL_PATTERN.match(label)
    if not m or not ROOT_PATTERN.match(m["root"]):
        return MontageChannel(label=label, muscle="", root="", side="")
    return MontageChannel(label=label, muscle=m["muscle"].strip(), root=m["root"], side=m["side"])


#: Keys of a montage file and of each of its ``[[channels]]``.
MONTAGE_KEYS = ("name", "description", "channels")
CHANNEL_KEYS = ("label", "muscle", "root", "side", "threshold_uv")


def parse_montage(doc: dict, path: str) -> Montage:
    """Validate a montage document; errors name ``path`` and the key, and an unknown key the
    nearest valid one."""
    check_keys(doc, MONTAGE_KEYS, path)
    name = require(doc, "name", str, path)
    description = optional(doc, "description", str, path, "")
    raw = require(doc, "channels", list, path)
    if not raw:
        raise ConfigError(path, "channels", "expected at least one [[channels]] entry")
    channels = []
    labels: set[str] = set()
    for i, entry in enumerate(raw):
        key = f"channels[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, key, "expected a table with label, muscle, root and side")
        check_keys(entry, CHANNEL_KEYS, path, key)
        label = require(entry, "label", str, path, key)
        if label in labels:
            raise ConfigError(path, f"{key}.label", f"duplicate label {label!r}")
        labels.add(label)
        root = require(entry, "root", str, path, key)
        if not ROOT_PATTERN.match(root):
            raise ConfigError(path, f"{key}.root", f"expected a nerve root like L5, S1 or C6, got {root!r}")
        side = require(entry, "side", str, path, key)
        if side not in SIDES:
            raise ConfigError(path, f"{key}.side", f"expected 'L' or 'R', got {side!r}")
        muscle = require(entry, "muscle", str, path, key)
        threshold = optional(entry, "threshold_uv", (int, float), path, DEFAULT_THRESHOLD_UV, key)
        in_range(threshold, 5.0, 5000.0, path, f"{key}.threshold_uv", "µV")
        channels.append(MontageChannel(label, muscle, root, side, float(threshold)))
    return Montage(name=name, channels=tuple(channels), description=description)


def load_montage(name_or_path: str | Path) -> Montage:
    """Load a shipped montage by name (``lumbar``) or any montage TOML by path."""
    path = resolve_named_file(name_or_path, "montages")
    return parse_montage(load_toml(path), str(path))
