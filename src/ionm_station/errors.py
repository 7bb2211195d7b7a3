"""Errors that reach the user as one clear line (never a traceback)."""

from __future__ import annotations


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
