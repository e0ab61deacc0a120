"""The ``jettag`` command line: one entry point, one subcommand per job.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its
arguments and ``_run_<name>(args)`` does the work. Errors that are the user's
(bad arguments, unreadable files) are raised as ``UserError`` or OSError and
printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
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
def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


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


def _add_train(subparsers: argparse._SubParsersAction) -> None:
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
    p.add_argument("--max-jets-per-file", type=_positive_int, default=None, help="cap on selected jets per file")
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (networks)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="jets per batch (networks)")
    p.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (networks)")
    p.add_argument("--loss", choices=["ce", "focal"], default=None, help="cross entropy (default) or focal loss")
    p.add_argument("--focal-gamma", type=float, default=None, help="focal loss gamma (default 2)")
    p.add_argument(
        "--focal-alpha",
        type=_float_list,
        default=None,
        metavar="A,A,A,A",
        help="focal loss alpha per class, in the order Xbb,Xcc,Xqq,QCD (default: 1 each)",
    )
    p.add_argument(
        "--class-weights", choices=["none", "balanced"], default=None, help="equal total weight per class"
    )
    p.add_argument(
        "--sampling", choices=["shuffle", "balanced"], default=None, help="class-balanced batches"
    )
    p.add_argument("--seed", type=_nonnegative_int, default=None, help="training seed (default 1)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch threads (default: all cores)")


def _run_train(args: argparse.Namespace) -> int:
    try:
        from jettag.training.recipes import RECIPES, train_tagger, with_overrides
    except ImportError as err:
        raise UserError(f"training needs the train extra (pip install 'jettag[train]'): {err}") from None
    if args.recipe not in RECIPES:
        raise UserError(f"unknown recipe {args.recipe!r}; known: {', '.join(sorted(RECIPES))}")
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
    if args.process is not None and len(args.process) != len(args.files):
        raise UserError(f"{len(args.files)} files but {len(args.process)} --process values; give one per file")
    command = "jettag " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("jettag") else None
    try:
        info = train_tagger(
            args.recipe,
            args.files,
            args.out,
            mass_weighting=args.mass_weighting,
            config=config,
            max_jets_per_file=args.max_jets_per_file,
            processes=args.process,
            command=command,
            log=print,
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    if args.test:
        _evaluate_model_dir(args.out, args.test, info)
    return 0


def _evaluate_model_dir(model_dir: Path, files: Sequence[Path], info: dict) -> None:
    from jettag.evaluate import plot_evaluation
    from jettag.tagger import Tagger
    from jettag.training.card import write_model_card
    from jettag.training.recipes import file_info

    tagger = Tagger.load(model_dir, threads=1)
    result = _figures(_labelled(files, tagger=tagger))
    result["files"] = [file_info(f) for f in files]
    (model_dir / "evaluation.json").write_text(json.dumps(result, indent=1))
    plot_evaluation({info["name"]: result}, model_dir / "evaluation")
    write_model_card(model_dir, info, result)
    print(f"held-out evaluation: {model_dir / 'evaluation'}; model card {model_dir / 'MODEL_CARD.md'}")


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="ROC curves, AUC, working points and mass sculpting of taggers on labelled files",
        description=(
            "Evaluate taggers (a shipped name such as pnet-lite, or a model directory) or a per-jet "
            "score branch on labelled jettag files (xbb/xcc/xqq signal, qcd background): for each "
            "signal class against QCD, AUC, average precision, signal efficiency at 1%% and 0.1%% QCD "
            "mis-identification, 1/eff_QCD at signal efficiency 0.2 and 0.8, and 1/JSD of the QCD "
            "msoftdrop distributions of passing and failing jets. Writes OUT/evaluation.json, "
            "OUT/evaluation.md and OUT/roc_*.png."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.root", help="labelled files")
    p.add_argument(
        "--tagger", action="append", default=[], metavar="NAME|DIR", help="tagger to evaluate (repeat)"
    )
    p.add_argument(
        "--score-branch", action="append", default=[], metavar="BRANCH",
        help="a per-jet discriminant branch, e.g. FatJet_particleNet_XbbVsQCD (repeat)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument(
        "--process",
        action="append",
        default=None,
        metavar="PROCESS",
        help="the process of each file, in order (for files without jettag metadata: xbb, zbb, qcd, ...)",
    )
    p.add_argument("--weighted", action="store_true", help="weight jets by genWeight")
    p.add_argument(
        "--sculpting-efficiency", type=float, default=0.05, help="QCD efficiency of the 1/JSD cut (default 0.05)"
    )
    p.add_argument("--max-jets-per-file", type=_positive_int, default=None, help="cap on selected jets per file")
    p.add_argument("--threads", type=_positive_int, default=None, help="onnxruntime threads")


def _run_evaluate(args: argparse.Namespace) -> int:
    from jettag import taggers
    from jettag.evaluate import markdown_table, write_results
    from jettag.tagger import ModelValidationError, PreprocessError, Tagger

    if not args.tagger and not args.score_branch:
        raise UserError("give at least one --tagger or --score-branch")
    if args.process is not None and len(args.process) != len(args.files):
        raise UserError(f"{len(args.files)} files but {len(args.process)} --process values; give one per file")
    results = {}
    for spec in args.tagger:
        try:
            path = Path(spec)
            tagger = (
                Tagger.load(path, threads=args.threads)
                if path.is_dir()
                else taggers.load(spec, threads=args.threads)
            )
        except (ValueError, ModelValidationError, PreprocessError) as err:
            raise UserError(f"tagger {spec}: {err}") from None
        data = _labelled(
            args.files, tagger=tagger, processes=args.process, max_jets_per_file=args.max_jets_per_file
        )
        results[tagger.name] = _figures(
            data, weighted=args.weighted, sculpting_efficiency=args.sculpting_efficiency
        )
    for branch in args.score_branch:
        data = _labelled(
            args.files, score_branch=branch, processes=args.process, max_jets_per_file=args.max_jets_per_file
        )
        results[branch] = _figures(
            data, weighted=args.weighted, sculpting_efficiency=args.sculpting_efficiency
        )
    write_results(results, args.out)
    print(markdown_table(results), end="")
    print(f"wrote {args.out}/evaluation.json, evaluation.md and ROC plots")
    return 0


def _labelled(files, **kwargs):
    from jettag.evaluate import score_files

    try:
        return score_files(files, **kwargs)
    except ValueError as err:
        raise UserError(str(err)) from None


def _figures(data, *, weighted: bool = False, sculpting_efficiency: float = 0.05) -> dict:
    from jettag.evaluate import evaluate_scores

    try:
        return evaluate_scores(data, weighted=weighted, sculpting_efficiency=sculpting_efficiency)
    except ValueError as err:
        raise UserError(str(err)) from None


def _add_imbalance(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "imbalance-study",
        help="class-imbalance study: Xcc-vs-Xbb taggers with rare Xcc, k-fold cross-validation",
        description=(
            "Subsample the Xcc jets to RATIO times the Xbb jets, train an Xcc-vs-Xbb network with each "
            "class-imbalance technique (unweighted, class weights, focal loss, balanced batches) on "
            "the same stratified folds, and report 1/eff_bb at eff_cc 0.2 and 0.8 and the average "
            "precision with their fold spread. Writes OUT.json and OUT.md."
        ),
    )
    p.add_argument("--xbb", nargs="+", required=True, type=Path, metavar="FILE.root", help="xbb files")
    p.add_argument("--xcc", nargs="+", required=True, type=Path, metavar="FILE.root", help="xcc files")
    p.add_argument("--ratio", type=float, default=0.05, help="Xcc / Xbb jets (default 0.05)")
    p.add_argument("--folds", type=_positive_int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--epochs", type=_positive_int, default=10, help="epochs per training (default 10)")
    p.add_argument("--seed", type=_nonnegative_int, default=1, help="seed (default 1)")
    p.add_argument("--out", required=True, type=Path, metavar="OUT", help="output path without suffix")


def _run_imbalance(args: argparse.Namespace) -> int:
    try:
        from jettag.training.fit import TrainConfig
        from jettag.training.imbalance import imbalance_study, imbalance_table
    except ImportError as err:
        raise UserError(f"the study needs the train extra (pip install 'jettag[train]'): {err}") from None
    if not 0 < args.ratio <= 1:
        raise UserError(f"--ratio must be in (0, 1], got {args.ratio}")
    config = TrainConfig(epochs=args.epochs, batch_size=256, learning_rate=3e-3)
    try:
        study = imbalance_study(
            args.xbb, args.xcc, ratio=args.ratio, folds=args.folds, config=config, seed=args.seed, log=print
        )
    except ValueError as err:
        raise UserError(str(err)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(study, indent=1))
    table = imbalance_table(study)
    args.out.with_suffix(".md").write_text(table)
    print(table, end="")
    return 0


# --------------------------------------------------------------------------- main
_COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "generate": (_add_generate, _run_generate),
    "demo": (_add_demo, _run_demo),
    "tag": (_add_tag, _run_tag),
    "train": (_add_train, _run_train),
    "evaluate": (_add_evaluate, _run_evaluate),
    "imbalance-study": (_add_imbalance, _run_imbalance),
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
