"""Argument types and options that several subcommands share."""

from __future__ import annotations

import argparse

__all__ = ["add_force", "float_list", "nonnegative_int", "positive_int"]


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def float_list(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated non-negative numbers."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def add_force(parser: argparse.ArgumentParser, what: str = "the output") -> None:
    """``--force``: replace an existing output (never an input)."""
    parser.add_argument(
        "--force", action="store_true", help=f"replace {what} if it exists (an input is never replaced)"
    )
