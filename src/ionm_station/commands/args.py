"""The command line's parser and its argument types (argparse ``type=`` callables).

A usage error is one line, like every other error of ``ionm-station``:
``ionm-station: error: <what is wrong> (see ionm-station run --help)`` and exit code 2; a
number must be finite (``nan`` and ``inf`` are refused by every numeric argument).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one line on stderr (exit 2)
    instead of the usage text followed by the error; its sub-command parsers are the same."""

    def error(self, message: str) -> NoReturn:
        print(f"ionm-station: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _parsed(value: str, convert: Callable[[str], T], accept: Callable[[T], bool],
            expected: str) -> T:
    """``convert(value)`` if it works and is accepted, else a usage error naming the value."""
    try:
        x = convert(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    if not accept(x):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return x


def positive(value: str) -> float:
    """A finite number > 0 (seconds, Hz, µV, speed …)."""
    return _parsed(value, float, lambda x: math.isfinite(x) and x > 0, "a positive number")


def probability(value: str) -> float:
    """A probability 0–1 (nan fails the comparison)."""
    return _parsed(value, float, lambda p: 0.0 <= p <= 1.0, "a probability 0–1")


def mains_hz(value: str) -> float:
    """Mains frequency: 50 or 60 (Hz)."""
    return _parsed(value, float, lambda hz: hz in (50.0, 60.0), "50 or 60 (Hz)")


def count(value: str) -> int:
    """A whole number ≥ 1 (channels, samples per frame)."""
    return _parsed(value, int, lambda n: n >= 1, "a whole number ≥ 1")
