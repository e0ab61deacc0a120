"""``jettag demo``: the main job on the embedded default samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from jettag.cli._args import add_force, nonnegative_int, positive_int


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the main job on the embedded default samples and print its physics checks",
        description=(
            "Generate a small set of samples (QCD, Z->bb, X->bb, muon-enriched QCD, and "
            "pseudo-data), print the generator's physics checks with the jet counts behind "
            "them, and the shipped taggers' Z->bb-vs-QCD performance with its plots. Exits 1 "
            "if a check fails; a check out of range on fewer than 10 jets is reported "
            "inconclusive instead (marked with a dagger)."
        ),
    )
    p.add_argument("--events", type=positive_int, default=600, help="events per sample (default 600)")
    p.add_argument("--seed", type=nonnegative_int, default=2026, help="random seed (default 2026)")
    p.add_argument("--workers", type=positive_int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--outdir",
        type=Path,
        default=Path("jettag-demo"),
        help="folder for samples, tables and plots (default jettag-demo; created if absent)",
    )
    add_force(p, "the files of a previous demo in --outdir")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")


def run(args: argparse.Namespace) -> int:
    from jettag.demo import run_demo

    return run_demo(
        events=args.events,
        seed=args.seed,
        workers=args.workers,
        outdir=args.outdir,
        json_out=args.json,
        force=args.force,
    )
