"""``jettag train``: train a reference tagger (needs the ``train`` extra)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from jettag.cli._args import add_force, float_list, nonnegative_int, positive_int
from jettag.errors import JettagError


def add(subparsers: argparse._SubParsersAction) -> None:
    from jettag.training.weights import MASS_WEIGHTINGS

    p = subparsers.add_parser(
        "train",
        help="train a reference tagger on labelled PFNano files (needs jettag[train])",
        description=(
            "Train a tagger with classes Xbb, Xcc, Xqq, QCD on jettag-generated xbb/xcc/xqq and qcd "
            "files (the class of a file comes from its process), with inputs built by the inference "
            "code, and write DIR/model.onnx + DIR/preprocess.json (weaver format) + DIR/training.json. "
            "With --test, evaluate on held-out files and write DIR/evaluation.json and DIR/MODEL_CARD.md."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.root", help="training files")
    p.add_argument("--recipe", required=True, help="pnet-lite, deepsets-lite or bdt-hl")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="model directory to write")
    add_force(p, "the files of an existing model directory --out")
    p.add_argument(
        "--mass-weighting",
        choices=MASS_WEIGHTINGS,
        default="msd",
        help="reweight the signal classes to QCD's msoftdrop (msd, default) or (msoftdrop, pT) shape, or not",
    )
    p.add_argument(
        "--process",
        action="append",
        default=None,
        metavar="PROCESS",
        help="the process of each training file, in order (for files without jettag metadata)",
    )
    p.add_argument(
        "--test", nargs="+", type=Path, metavar="FILE.root", help="held-out jettag files to evaluate on"
    )
    p.add_argument("--max-jets-per-file", type=positive_int, default=None, help="cap on selected jets per file")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (networks)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="jets per batch (networks)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (networks)")
    p.add_argument("--loss", choices=["ce", "focal"], default=None, help="cross entropy (default) or focal loss")
    p.add_argument("--focal-gamma", type=float, default=None, help="focal loss gamma (default 2)")
    p.add_argument(
        "--focal-alpha",
        type=float_list,
        default=None,
        metavar="A,A,A,A",
        help="focal loss alpha per class, in the order Xbb,Xcc,Xqq,QCD (default: 1 each)",
    )
    p.add_argument(
        "--class-weights", choices=["none", "balanced"], default=None, help="equal total weight per class"
    )
    p.add_argument("--sampling", choices=["shuffle", "balanced"], default=None, help="class-balanced batches")
    p.add_argument("--seed", type=nonnegative_int, default=None, help="training seed (default 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from jettag.outputs import atomic_directory, check_output_dir

    try:
        from jettag.training.recipes import RECIPES, train_tagger, with_overrides
    except ImportError as err:
        raise JettagError(f"training needs the train extra (pip install 'jettag[train]'): {err}") from None
    if args.recipe not in RECIPES:
        raise JettagError(f"unknown recipe {args.recipe!r}; known: {', '.join(sorted(RECIPES))}")
    if args.process is not None and len(args.process) != len(args.files):
        raise JettagError(f"{len(args.files)} files but {len(args.process)} --process values; give one per file")
    check_output_dir(args.out, inputs=[*args.files, *(args.test or [])], force=args.force)
    config = with_overrides(
        RECIPES[args.recipe].train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        loss=args.loss,
        focal_gamma=args.focal_gamma,
        focal_alpha=args.focal_alpha,
        class_weights=args.class_weights,
        sampling=args.sampling,
        seed=args.seed,
        threads=args.threads,
    )
    command = getattr(args, "command_line", None)
    # the model directory appears only when training (and the held-out evaluation) succeed
    with atomic_directory(args.out) as tmp:
        info = train_tagger(
            args.recipe,
            args.files,
            tmp,
            mass_weighting=args.mass_weighting,
            config=config,
            max_jets_per_file=args.max_jets_per_file,
            processes=args.process,
            command=command,
            log=print,
        )
        if args.test:
            _evaluate_model_dir(tmp, args.test, info)
    written = ", ".join(sorted(p.name for p in args.out.iterdir()))
    print(f"wrote {args.out}: {written}")
    return 0


def _evaluate_model_dir(model_dir: Path, files: Sequence[Path], info: dict) -> None:
    from jettag.evaluate import evaluate_scores, plot_evaluation, score_files
    from jettag.model_card import write_model_card
    from jettag.samples.files import file_info
    from jettag.tagger import Tagger

    tagger = Tagger.load(model_dir, threads=1)
    result = evaluate_scores(score_files(files, tagger=tagger))
    result["files"] = [file_info(f) for f in files]
    (model_dir / "evaluation.json").write_text(json.dumps(result, indent=1))
    plot_evaluation({info["name"]: result}, model_dir / "evaluation")
    write_model_card(model_dir, info, result)
    print(f"held-out evaluation on {len(files)} file(s): evaluation.json, evaluation/, MODEL_CARD.md")
