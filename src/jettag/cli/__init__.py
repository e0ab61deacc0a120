"""The ``jettag`` command line: one entry point, one module per subcommand.

Each subcommand module defines ``add(subparsers)`` (its arguments) and
``run(args) -> int`` (the work, delegated to a library module). :func:`main`
is the one place where errors become messages: a :class:`~jettag.errors.JettagError`,
an ``OSError`` or a ``ValueError`` raised by the library is printed as one line
``jettag COMMAND: error: ...`` with exit code 2 (set ``JETTAG_DEBUG=1`` for the
traceback). No library module imports this package.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType

from jettag.errors import JettagError

__all__ = ["build_parser", "main"]


def _commands() -> dict[str, ModuleType]:
    from jettag.cli import (
        ddt,
        demo,
        evaluate,
        flatten,
        generate,
        imbalance,
        sf,
        tag,
        taggers,
        train,
    )

    return {
        "demo": demo,
        "generate": generate,
        "tag": tag,
        "taggers": taggers,
        "train": train,
        "evaluate": evaluate,
        "flatten": flatten,
        "ddt": ddt,
        "sf": sf,
        "imbalance-study": imbalance,
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from jettag import __version__

    parser = argparse.ArgumentParser(
        prog="jettag",
        description=(
            "jettag: columnar jet tagging for coffea. Generate PFNano events, run ONNX "
            "taggers (weaver format) on (PF)NanoAOD, train and evaluate the reference "
            "taggers, derive DDT maps (jettag ddt) and flat-mass weights (jettag flatten), fit "
            "data/MC scale factors (jettag sf). Planned: runs on a dask cluster (jettag run)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"jettag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in _commands().values():
        module.add(subparsers)
    return parser


def _terminated(signum: int, frame: object) -> None:
    # a batch system's kill (SIGTERM) ends a command the way Ctrl-C does: outputs are
    # left incomplete-and-marked or not at all, never half-written at the requested path
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jettag`` program."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # the command as typed, recorded in what a command writes
    args.command_line = "jettag " + shlex.join(argv)
    run = _commands()[args.command].run
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return run(args)
    except KeyboardInterrupt as err:
        # an interruption may say what it left behind (jettag generate keeps finished events)
        detail = " ".join(str(err).split())
        print(f"jettag {args.command}: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130
    except (JettagError, OSError, ValueError) as err:
        if os.environ.get("JETTAG_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"jettag {args.command}: error: {message}", file=sys.stderr)
        return 2
