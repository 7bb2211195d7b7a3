"""Errors that reach the user as one clear line (never a traceback)."""

from __future__ import annotations

import os
from pathlib import Path


class IonmError(Exception):
    """Base for every error the command line prints as ``ionm-station: error: <message>``."""


class ConfigError(IonmError):
    """A profile, montage or scenario file is missing or malformed.

    The message names the file, the key and what was expected.
    """

    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class DeviceError(IonmError):
    """A device is missing, busy or failed; the message names the port or board."""


def input_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file (``file not found``, ``is a directory``,
    ``cannot read (permission denied)``), or None when it can."""
    path = Path(path)
    if path.is_dir():
        return "is a directory"
    if not path.is_file():
        return "file not found"
    if not os.access(path, os.R_OK):
        return "cannot read (permission denied)"
    return None


def shown(text: str) -> str:
    """``text`` fit for a one-line message: unprintable characters (a newline or NUL read from
    a damaged file) as ``\\xNN``."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
