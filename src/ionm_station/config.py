"""Reading TOML settings files with errors that name the file, the key and what was expected.

Hardware profiles, montages and scenarios are data. A shipped file can be named without
a path (``lumbar``); anything else is a path to a ``.toml`` file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ionm_station.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

T = TypeVar("T")

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
        if candidate.is_dir():
            raise ConfigError(text, None, "is a directory (expected a .toml file)")
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
    except IsADirectoryError:
        raise ConfigError(str(path), None, "is a directory (expected a .toml file)") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # tomllib reads UTF-8 text: a binary file ends here
        raise ConfigError(str(path), None, f"not a text file (byte 0x{exc.object[exc.start]:02x} "
                                           f"at offset {exc.start} is not UTF-8)") from None
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


def low_high(table: dict, key: str, default: tuple[float, float], limits: tuple[float, float],
             unit: str, path: str, section: str, ordered: bool = True) -> tuple[float, float]:
    """The ``[low, high]`` pair ``section.key`` (``default`` when absent), each number within
    ``limits`` (in ``unit``); ``ordered``: low ≤ high."""
    full = f"{section}.{key}"
    value = optional(table, key, list, path, list(default), section)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if len(value) != 2 or not numbers:
        raise ConfigError(path, full, f"expected [low, high] in {unit}, got {value!r}")
    lo, hi = (float(in_range(v, *limits, path, full, unit)) for v in value)
    if ordered and lo > hi:
        raise ConfigError(path, full, f"expected low <= high, got {value!r}")
    return lo, hi


def check_keys(table: dict, valid: Collection[str], path: str, prefix: str = "") -> None:
    """Reject a key (or sub-table) of ``table`` that is not in ``valid``, naming the nearest
    valid one (``did you mean high_hz?``) or, if none is near, all of them."""
    for key, value in table.items():
        if key in valid:
            continue
        near = difflib.get_close_matches(key, list(valid), n=1)
        hint = f"did you mean {near[0]}?" if near else f"expected one of {', '.join(valid)}"
        what = "table" if isinstance(value, dict) else "key"
        raise ConfigError(path, f"{prefix}.{key}" if prefix else key, f"unknown {what} ({hint})")


#: Range of a number by the unit suffix of its key (units are in key names): suffix, lo, hi, unit.
UNIT_RANGES = (("_s", 0.0, 86400.0, "s"), ("_ms", 0.0, 60000.0, "ms"), ("_hz", 0.0, 50000.0, "Hz"),
               ("_uv", 0.0, 1e6, "µV"), ("_ma", 0.0, 1000.0, "mA"))


def number(value: Any, path: str, key: str) -> float:
    """``value`` as a float: a number within the range its key's unit suffix allows
    (:data:`UNIT_RANGES`), or ≥ 0 for a key without a unit."""
    value = float(_check_type(value, (int, float), path, key))
    lo, hi, unit = next(((lo, hi, u) for suffix, lo, hi, u in UNIT_RANGES if key.endswith(suffix)),
                        (0.0, float("inf"), ""))
    return in_range(value, lo, hi, path, key, unit)


def dataclass_from_table(table: dict, cls: type[T], path: str, prefix: str,
                         parsers: Mapping[str, Callable[[Any, str], Any]] | None = None) -> T:
    """The dataclass ``cls`` with the fields a TOML table sets (the others keep their defaults).

    Unknown keys are rejected (:func:`check_keys`). A value is read by ``parsers[name](value,
    full_key)`` if given, else checked against the type of the field's default: true/false, an
    integer, a number (:func:`number`) or a string.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    check_keys(table, defaults, path, prefix)
    parsers = parsers or {}
    values = {}
    for name, value in table.items():
        key = f"{prefix}.{name}"
        default = defaults[name]
        if name in parsers:
            values[name] = parsers[name](value, key)
        elif isinstance(default, bool | int | str):
            values[name] = _check_type(value, type(default), path, key)
        elif isinstance(default, float):
            values[name] = number(value, path, key)
        else:
            raise ConfigError(path, key, "cannot be set in a file")
    return cls(**values)
