"""``jettag imbalance-study``: class-imbalance techniques compared by k-fold cross-validation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jettag.cli._args import add_force, nonnegative_int, positive_int
from jettag.errors import JettagError


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "imbalance-study",
        help="class-imbalance study: Xcc-vs-Xbb taggers with rare Xcc, k-fold cross-validation",
        description=(
            "Subsample the Xcc jets to RATIO times the Xbb jets, train an Xcc-vs-Xbb network with each "
            "class-imbalance technique (unweighted, class weights, focal loss, balanced batches) on "
            "the same stratified folds, and report 1/eff_bb at eff_cc 0.2 and 0.8 and the average "
            "precision with their fold spread. Writes OUT.json and OUT.md (needs jettag[train])."
        ),
    )
    p.add_argument("--xbb", nargs="+", required=True, type=Path, metavar="FILE.root", help="xbb files")
    p.add_argument("--xcc", nargs="+", required=True, type=Path, metavar="FILE.root", help="xcc files")
    p.add_argument("--ratio", type=float, default=0.05, help="Xcc / Xbb jets (default 0.05)")
    p.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs per training (default 10)")
    p.add_argument("--seed", type=nonnegative_int, default=1, help="seed (default 1)")
    p.add_argument("--out", required=True, type=Path, metavar="OUT", help="output path without suffix")
    add_force(p, "OUT.json and OUT.md")


def run(args: argparse.Namespace) -> int:
    from jettag.outputs import atomic_output, check_output

    try:
        from jettag.training.fit import TrainConfig
        from jettag.training.imbalance import imbalance_study, imbalance_table
    except ImportError as err:
        raise JettagError(f"the study needs the train extra (pip install 'jettag[train]'): {err}") from None
    if not 0 < args.ratio <= 1:
        raise JettagError(f"--ratio must be in (0, 1], got {args.ratio}")
    inputs = [*args.xbb, *args.xcc]
    outs = [check_output(args.out.with_suffix(s), inputs=inputs, force=args.force) for s in (".json", ".md")]
    config = TrainConfig(epochs=args.epochs, batch_size=256, learning_rate=3e-3)
    study = imbalance_study(
        args.xbb, args.xcc, ratio=args.ratio, folds=args.folds, config=config, seed=args.seed, log=print
    )
    table = imbalance_table(study)
    for out, text in zip(outs, (json.dumps(study, indent=1), table), strict=True):
        with atomic_output(out) as tmp:
            tmp.write_text(text)
    print(table, end="")
    return 0
