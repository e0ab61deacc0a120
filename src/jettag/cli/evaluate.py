"""``jettag evaluate``: figures of merit of taggers on labelled files."""

from __future__ import annotations

import argparse
from pathlib import Path

from jettag.cli._args import add_force, positive_int
from jettag.errors import JettagError


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="ROC curves, AUC, working points and mass sculpting of taggers on labelled files",
        description=(
            "Evaluate taggers (a shipped name such as pnet-lite, or a model directory) or a per-jet "
            "score branch on labelled jettag files (xbb/xcc/xqq signal, qcd background): for each "
            "signal class against QCD, AUC, average precision, signal efficiency at 1%% and 0.1%% QCD "
            "mis-identification, 1/eff_QCD at signal efficiency 0.2 and 0.8, and 1/JSD of the QCD "
            "msoftdrop distributions of passing and failing jets, each with the jet counts behind "
            "it. Writes OUT/evaluation.json, OUT/evaluation.md and OUT/*.png."
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
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_force(p, "the files of an existing --out folder")
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
    p.add_argument("--max-jets-per-file", type=positive_int, default=None, help="cap on selected jets per file")
    p.add_argument("--threads", type=positive_int, default=None, help="onnxruntime threads")


def run(args: argparse.Namespace) -> int:
    from jettag import taggers
    from jettag.evaluate import evaluate_scores, markdown_table, score_files, write_results
    from jettag.outputs import atomic_directory, check_output_dir

    if not args.tagger and not args.score_branch:
        raise JettagError("give at least one --tagger or --score-branch")
    if args.process is not None and len(args.process) != len(args.files):
        raise JettagError(f"{len(args.files)} files but {len(args.process)} --process values; give one per file")
    if not 0 < args.sculpting_efficiency < 1:
        raise JettagError(f"--sculpting-efficiency must lie in (0, 1), got {args.sculpting_efficiency}")
    check_output_dir(args.out, inputs=args.files, force=args.force)
    options = {"processes": args.process, "max_jets_per_file": args.max_jets_per_file}
    figures = {"weighted": args.weighted, "sculpting_efficiency": args.sculpting_efficiency}
    results = {}
    for spec in args.tagger:
        tagger = taggers.resolve(spec, threads=args.threads)
        # a shipped tagger keeps the name the user typed (pnet-lite), as in the demo and cards
        name = spec if spec in taggers.available() else tagger.name
        results[name] = evaluate_scores(score_files(args.files, tagger=tagger, **options), **figures)
    for branch in args.score_branch:
        results[branch] = evaluate_scores(score_files(args.files, score_branch=branch, **options), **figures)
    with atomic_directory(args.out) as tmp:
        written = [args.out / p.relative_to(tmp) for p in write_results(results, tmp)]
    print(markdown_table(results), end="")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
