"""The command line's parser and its argument types (argparse ``type=`` callables).

A usage error is one line, like every other error of ``ionm-station``:
``ionm-station: error: <what is wrong> (see ionm-station run --help)`` and exit code 2; a
number must be finite (``nan`` and ``inf`` are refused by every numeric argument).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors are one line on stderr (exit 2)
    instead of the usage text followed by the error; its sub-command parsers are the same."""

    def error(self, message: str) -> NoReturn:
        print(f"ionm-station: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _finite(value: str, expected: str) -> float:
    """``value`` as a finite float, else a usage error saying what was ``expected``."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
    return x


def positive(value: str) -> float:
    """A finite number > 0 (seconds, Hz, µV, speed …); otherwise a usage error naming the value."""
    x = _finite(value, "a positive number")
    if x <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def probability(value: str) -> float:
    """A probability 0–1; otherwise a usage error naming the value."""
    p = _finite(value, "a probability 0–1")
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability 0–1, got {value!r}")
    return p


def mains_hz(value: str) -> float:
    """Mains frequency: 50 or 60 (Hz); otherwise a usage error naming the value."""
    try:
        hz = float(value)
    except ValueError:
        hz = math.nan
    if hz not in (50.0, 60.0):
        raise argparse.ArgumentTypeError(f"expected 50 or 60 (Hz), got {value!r}")
    return hz


def count(value: str) -> int:
    """A whole number ≥ 1 (channels, samples per frame); otherwise a usage error."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value!r}")
    return n
