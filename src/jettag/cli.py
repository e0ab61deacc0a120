"""The ``jettag`` command line: one entry point, one subcommand per job.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its
arguments and ``_run_<name>(args)`` does the work. Errors that are the user's
(bad arguments, unreadable files) are raised as ``UserError`` or OSError and
printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["UserError", "main"]


class UserError(Exception):
    """An error caused by the user's input, printed as one line."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


# --------------------------------------------------------------------------- generate
def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    from jettag.detector import RESPONSES
    from jettag.processes import PROCESSES

    p = subparsers.add_parser(
        "generate",
        help="generate events (Pythia 8 -> detector -> FastJet) into a PFNano-format ROOT file",
        description=(
            "Generate events with Pythia 8, simulate a parametric CMS-like detector, cluster "
            "AK8 jets with FastJet, and write them in the PFNano format. Events are streamed "
            "to disk chunk by chunk. Pseudo-data (--tune data) hold no generator truth; a "
            "truth sidecar FILE.truth.root is written beside them."
        ),
    )
    p.add_argument("--process", required=True, choices=sorted(PROCESSES), help="physics process")
    p.add_argument("--events", required=True, type=_positive_int, help="number of events to write")
    p.add_argument("--seed", type=_nonnegative_int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--tune",
        choices=sorted(RESPONSES),
        default="mc",
        help="mc (simulation) or data (pseudo-data: other generator tune and detector response)",
    )
    p.add_argument("--workers", type=_positive_int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=1000,
        help="events per chunk; output is identical for the same seed and chunk size (default 1000)",
    )
    p.add_argument("--out", required=True, type=Path, help="output ROOT file")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _run_generate(args: argparse.Namespace) -> int:
    from jettag.generate import generate
    from jettag.processes import get_process

    try:
        get_process(args.process).pythia_settings(args.tune)
    except ValueError as err:
        raise UserError(str(err)) from None

    summary = generate(
        process=args.process,
        n_events=args.events,
        seed=args.seed,
        tune=args.tune,
        workers=args.workers,
        chunk_size=args.chunk_size,
        out=args.out,
        progress=not args.no_progress,
    )
    print(summary.describe())
    return 0


# --------------------------------------------------------------------------- demo
def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded default samples and print its physics checks",
        description=(
            "Generate a small set of samples (QCD, Z->bb, X->bb, muon-enriched QCD, and "
            "pseudo-data) and print the physics checks of each stage as a summary."
        ),
    )
    p.add_argument("--events", type=_positive_int, default=600, help="events per sample (default 600)")
    p.add_argument("--seed", type=_nonnegative_int, default=2026, help="random seed")
    p.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default 2)")
    p.add_argument("--outdir", type=Path, default=Path("jettag-demo"), help="where samples are written")
    p.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")


def _run_demo(args: argparse.Namespace) -> int:
    from jettag.demo import run_demo

    return run_demo(
        events=args.events, seed=args.seed, workers=args.workers, outdir=args.outdir, json_out=args.json
    )


# --------------------------------------------------------------------------- tag
def _add_tag(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tag",
        help="score every fat jet of (PF)NanoAOD files with ONNX taggers into a friend tree",
        description=(
            "Run weaver-format taggers (DIR/model.onnx + DIR/preprocess.json) on every fat jet "
            "and write a friend tree Events (nFatJet, FatJet_<tagger>_<class>) aligned event by "
            "event and jet by jet with the input files, in the order given."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.root", help="input ROOT files")
    p.add_argument(
        "--model",
        required=True,
        action="append",
        type=Path,
        metavar="DIR",
        help="model directory (repeat for several taggers); the tagger is named after DIR",
    )
    p.add_argument("--out", required=True, type=Path, help="output friend ROOT file")
    p.add_argument("--tree", default="Events", help="input tree name (default Events)")
    p.add_argument(
        "--step-size", type=_positive_int, default=20_000, help="events per chunk (default 20000)"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1024,
        help="jets per inference call (default 1024)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="onnxruntime threads (default: all cores)",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="execution provider (default cpu)",
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def _run_tag(args: argparse.Namespace) -> int:
    from jettag.tagger import ModelValidationError, PreprocessError, Tagger, UnknownFeatureError
    from jettag.tagger.friend import tag_files

    taggers = []
    for model_dir in args.model:
        try:
            taggers.append(
                Tagger.load(
                    model_dir, batch_size=args.batch_size, threads=args.threads, device=args.device
                )
            )
        except (ModelValidationError, PreprocessError, UnknownFeatureError) as err:
            raise UserError(f"model {model_dir}: {err}") from None
    summary = tag_files(
        taggers,
        args.files,
        args.out,
        tree=args.tree,
        step_size=args.step_size,
        progress=not args.no_progress,
    )
    print(summary.describe())
    return 0


# --------------------------------------------------------------------------- main
_COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "generate": (_add_generate, _run_generate),
    "demo": (_add_demo, _run_demo),
    "tag": (_add_tag, _run_tag),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    from jettag import __version__

    parser = argparse.ArgumentParser(
        prog="jettag",
        description="jettag: columnar jet tagging for coffea (ONNX taggers, DDT, scale factors, PFNano generator)",
    )
    parser.add_argument("--version", action="version", version=f"jettag {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add, _ in _COMMANDS.values():
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jettag`` program."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _, run = _COMMANDS[args.command]
    try:
        return run(args)
    except KeyboardInterrupt:
        print("jettag: interrupted", file=sys.stderr)
        return 130
    except (UserError, OSError) as err:
        print(f"jettag {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
