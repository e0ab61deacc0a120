"""``jettag tag``: score every fat jet of ROOT files into a friend tree."""

from __future__ import annotations

import argparse
from pathlib import Path

from jettag.cli._args import add_force, positive_int


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tag",
        help="score every fat jet of (PF)NanoAOD files with ONNX taggers into a friend tree",
        description=(
            "Run taggers (a shipped name such as pnet-lite, see 'jettag taggers', or a weaver "
            "export DIR with model.onnx + preprocess.json) on every fat jet and write a friend "
            "tree named like the input tree (run, luminosityBlock, event where every input has "
            "them, nFatJet, FatJet_<tagger>_<class>) aligned event by event and jet by jet with "
            "the input files, in the order given. In branch names each run of characters other "
            "than letters, digits and '_' in the tagger's name becomes one '_' (FatJet_pnet_lite_Xbb)."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.root", help="input ROOT files")
    p.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="NAME|DIR",
        help="shipped tagger name or model directory (repeat for several taggers)",
    )
    p.add_argument("--out", required=True, type=Path, help="output friend ROOT file (its folder must exist)")
    add_force(p)
    p.add_argument("--tree", default="Events", help="input tree name (default Events)")
    p.add_argument("--step-size", type=positive_int, default=20_000, help="events per chunk (default 20000)")
    p.add_argument("--batch-size", type=positive_int, default=1024, help="jets per inference call (default 1024)")
    p.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument(
        "--device", choices=["cpu", "cuda", "auto"], default="cpu", help="execution provider (default cpu)"
    )
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")


def run(args: argparse.Namespace) -> int:
    from jettag import taggers
    from jettag.tagger.friend import tag_files

    loaded = [
        taggers.resolve(spec, batch_size=args.batch_size, threads=args.threads, device=args.device)
        for spec in args.model
    ]
    summary = tag_files(
        loaded,
        args.files,
        args.out,
        tree=args.tree,
        step_size=args.step_size,
        force=args.force,
        progress=not args.no_progress,
    )
    print(summary.describe())
    return 0
