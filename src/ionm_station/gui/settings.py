"""GUI settings that persist between runs: a small JSON file (never pickle, never eval).

Unknown keys are ignored and a value of the wrong type falls back to its default, so an old or
hand-edited file can never stop the station from starting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from ionm_station.outputs import write_text

DEFAULT_MARKER_PRESETS = (
    "Screw L5 left", "Screw L5 right", "Screw S1 left", "Screw S1 right",
    "Decompression", "Retraction", "Irrigation", "Closure", "Surgeon informed:",
)
#: Keys F1…F9 carry the presets.
N_PRESETS = 9
#: A preset ending with this opens the marker field with its text, for free text after it
#: ("Surgeon informed: L5 train, retractor released"); others are added at once.
FREE_TEXT_SUFFIX = ":"


@dataclass
class GuiSettings:
    """Everything the window restores at start-up.

    Attributes:
        sensitivity_uv: global trace sensitivity (µV/div).
        timebase_s: seconds across the screen.
        scroll_mode: True scroll, False sweep.
        channel_sensitivity_uv: own sensitivity by channel label (µV/div).
        marker_presets: texts of the F1…F9 markers (one ending in ':' asks for free text).
        silence_s: how long the Silence button mutes alarm sound (s).
        alarm_volume: alarm sound volume (0–1]; alarm_muted: alarm sound off.
        listen_label: the channel whose free-run EMG is played ('' = none; a label the
            montage does not have is ignored); emg_volume: its volume 0–1.
        band_low_hz, band_high_hz: free-run band-pass edges (Hz) set by the user; 0 = the
            session's own.
        geometry, window_state: base64 of Qt's saveGeometry()/saveState().
    """

    sensitivity_uv: float = 50.0
    timebase_s: float = 10.0
    scroll_mode: bool = False
    channel_sensitivity_uv: dict[str, float] = field(default_factory=dict)
    marker_presets: list[str] = field(default_factory=lambda: list(DEFAULT_MARKER_PRESETS))
    silence_s: float = 60.0
    alarm_volume: float = 0.5
    alarm_muted: bool = False
    listen_label: str = ""
    emg_volume: float = 0.5
    band_low_hz: float = 0.0
    band_high_hz: float = 0.0
    geometry: str = ""
    window_state: str = ""

    @classmethod
    def load(cls, path: Path) -> GuiSettings:
        """Read ``path``; a missing or unreadable file gives the defaults."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(doc, dict):
            return cls()
        out = cls()
        for f in fields(cls):
            value = doc.get(f.name)
            default = getattr(out, f.name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, float):  # volumes, gains: > 0 (an EMG volume 0–1: 0 too)
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    0 <= value <= 1 if f.name == "emg_volume" else value > 0)
                value = float(value) if ok else value
            elif isinstance(default, dict):
                ok = isinstance(value, dict) and all(
                    isinstance(v, (int, float)) and v > 0 for v in value.values())
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
                if ok:  # a file from before a preset was added gets the new ones
                    value = (value + list(DEFAULT_MARKER_PRESETS[len(value):]))[:N_PRESETS]
            else:
                ok = isinstance(value, type(default))
            if ok and f.name == "alarm_volume":
                value = min(1.0, value)
            if ok:
                setattr(out, f.name, value)
        return out

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(asdict(self), indent=1), replace=True)


def default_settings_path() -> Path:
    """``gui.json`` in the user's configuration directory for IONM Station."""
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericConfigLocation)
    return Path(base or Path.home() / ".config") / "ionm-station" / "gui.json"
