"""``jettag generate``: Pythia 8 -> detector -> FastJet -> a PFNano-format ROOT file."""

from __future__ import annotations

import argparse
from pathlib import Path

from jettag.cli._args import add_force, nonnegative_int, positive_int


def add(subparsers: argparse._SubParsersAction) -> None:
    from jettag.generator.processes import PROCESSES
    from jettag.generator.tunes import TUNES

    p = subparsers.add_parser(
        "generate",
        help="generate events (Pythia 8 -> detector -> FastJet) into a PFNano-format ROOT file",
        description=(
            "Generate events with Pythia 8, simulate a parametric CMS-like detector, cluster "
            "AK8 jets with FastJet, and write them in the PFNano format. Events are streamed "
            "to a temporary file chunk by chunk and renamed to --out only when complete. "
            "Pseudo-data (--tune data) hold no generator truth; a truth sidecar "
            "FILE.truth.root is written beside them."
        ),
    )
    p.add_argument("--process", required=True, choices=sorted(PROCESSES), help="physics process")
    p.add_argument("--events", required=True, type=positive_int, help="number of events to write")
    p.add_argument("--seed", type=nonnegative_int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--tune",
        choices=sorted(TUNES),
        default="mc",
        help="mc (simulation) or data (pseudo-data: other generator tune and detector response)",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--chunk-size",
        type=positive_int,
        default=1000,
        help="events per chunk; output is identical for the same seed and chunk size (default 1000)",
    )
    p.add_argument("--out", required=True, type=Path, help="output ROOT file (its folder must exist)")
    add_force(p, "--out (and its truth sidecar)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    from jettag.generator import generate

    summary = generate(
        process=args.process,
        n_events=args.events,
        seed=args.seed,
        tune=args.tune,
        workers=args.workers,
        chunk_size=args.chunk_size,
        out=args.out,
        force=args.force,
        progress=not args.no_progress,
    )
    print(summary.describe())
    return 0
