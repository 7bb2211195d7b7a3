"""Argument types shared by the command-line subcommands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def positive(value: str) -> float:
    """A number > 0 (seconds, Hz, µV, speed …); otherwise a usage error naming the value."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def probability(value: str) -> float:
    """A probability 0–1; otherwise a usage error naming the value."""
    try:
        p = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability 0–1, got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability 0–1, got {value!r}")
    return p
