"""Reading TOML settings files with errors that name the file, the key and what was expected.

Hardware profiles, montages and scenarios are data. A shipped file can be named without
a path (``lumbar``); anything else is a path to a ``.toml`` file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ionm_station.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
#: Where ``hardware_profiles/`` sits in a source checkout (the README installs editable).
SOURCE_TREE_DIR = PACKAGE_DIR.parent.parent


def search_dirs(kind: str) -> list[Path]:
    """Folders searched for a shipped file of ``kind`` (``montages``, ``scenarios``, ``profiles``)."""
    if kind == "profiles":
        dirs = [Path.cwd() / "hardware_profiles", SOURCE_TREE_DIR / "hardware_profiles"]
        extra = os.environ.get("IONM_PROFILES")
        return ([Path(extra)] if extra else []) + dirs
    return [PACKAGE_DIR / kind]


def shipped_names(kind: str) -> list[str]:
    """Names of the shipped files of ``kind`` (file stems), sorted."""
    names = {p.stem for d in search_dirs(kind) if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names)


def resolve_named_file(name_or_path: str | Path, kind: str) -> Path:
    """Turn a shipped name or a path into an existing file, or raise :class:`ConfigError`."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix == ".toml" or os.sep in text or "/" in text:
        if not candidate.is_file():
            raise ConfigError(text, None, "file not found")
        return candidate
    for d in search_dirs(kind):
        p = d / f"{text}.toml"
        if p.is_file():
            return p
    known = ", ".join(shipped_names(kind)) or "none"
    raise ConfigError(text, None, f"no such {kind[:-1]} (shipped: {known}; or give a path to a .toml file)")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; unreadable or malformed files raise :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid TOML ({exc})") from None


def _type_name(types: type | tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in ts))


def _check_type(value: Any, types: type | tuple[type, ...], path: str, key: str) -> Any:
    ts = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in ts:
        ok = False
    else:
        ok = isinstance(value, ts)
    if not ok:
        raise ConfigError(path, key, f"expected {_type_name(types)}, got {value!r}")
    return value


def require(doc: dict, key: str, types: type | tuple[type, ...], path: str, prefix: str = "") -> Any:
    """``doc[key]`` checked against ``types``; missing or mistyped raises :class:`ConfigError`."""
    full = f"{prefix}.{key}" if prefix else key
    if key not in doc:
        raise ConfigError(path, full, f"missing (expected {_type_name(types)})")
    return _check_type(doc[key], types, path, full)


def optional(doc: dict, key: str, types: type | tuple[type, ...], path: str, default: Any,
             prefix: str = "") -> Any:
    """``doc[key]`` if present (type-checked), else ``default``."""
    if key not in doc:
        return default
    return _check_type(doc[key], types, path, f"{prefix}.{key}" if prefix else key)


def in_range(value: float, lo: float, hi: float, path: str, key: str, unit: str = "") -> float:
    """``value`` if ``lo <= value <= hi``, else a :class:`ConfigError` naming the range."""
    if not lo <= value <= hi:
        u = f" {unit}" if unit else ""
        raise ConfigError(path, key, f"expected {lo:g}–{hi:g}{u}, got {value!r}")
    return value
