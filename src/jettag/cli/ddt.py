"""``jettag ddt``: DDT maps from QCD, in three steps (histogram, derive, report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jettag.cli._args import add_force, positive_int
from jettag.cli._events import nanoaod_schema
from jettag.errors import JettagError

DEFAULT_EFFICIENCIES = "0.005,0.01,0.02,0.05"


def _efficiencies(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated efficiencies, got {text!r}") from None
    if not values or any(not 0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"efficiencies must lie in (0, 1), got {text!r}")
    return values


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    if not 0 <= low < high:
        raise argparse.ArgumentTypeError(f"need 0 <= LOW < HIGH, got {text!r}")
    return low, high


def _add_score_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--score",
        required=True,
        metavar="TAGGER|COLUMN",
        help="a jettag tagger (shipped name such as pnet-lite, or a model directory; needs "
        "--discriminant) or a FatJet column (particleNet_XbbVsQCD, btagDDBvLV2, n2b1, ...)",
    )
    p.add_argument(
        "--discriminant",
        default=None,
        metavar="CLASS|AVsB",
        help="for a tagger: a class (Xbb) or A/(A+B) written AVsB (XbbVsQCD)",
    )
    p.add_argument(
        "--signal-like",
        choices=("high", "low"),
        default=None,
        help="high (taggers) or low (n2b1) values are signal-like (default: low for n2*, else high)",
    )
    p.add_argument(
        "--msd-range",
        type=_range,
        default=None,
        metavar="LOW,HIGH",
        help="keep jets with LOW <= msoftdrop < HIGH GeV (default: msoftdrop > 0; a tagger adds "
        "its training phase space)",
    )
    p.add_argument(
        "--no-phase-space",
        action="store_true",
        help="for a tagger: do not restrict jets to its training phase space",
    )
    p.add_argument("--unweighted", action="store_true", help="ignore genWeight (fill with weight 1)")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--chunk-size", type=positive_int, default=50_000, help="events per chunk (default 50000)"
    )
    p.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads per worker")


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ddt",
        help="DDT maps: fill the QCD (rho, pT, score) histogram, derive the map, report its closure",
        description=(
            "Designed-decorrelated-tagger maps in three steps. 'histogram' fills the weighted "
            "(rho, pT, score) histogram of QCD fat jets (a ROOT TH3D); 'derive' turns one or "
            "several such histograms (summed) into a correctionlib map of the QCD score quantile "
            "per (rho, pT) bin at each working point, with statistical up/down, a PNG and an "
            "in-sample closure table; 'report' measures the map on independent QCD (pass rate "
            "against rho, pT and msoftdrop, 1/JSD mass sculpting) and the signal efficiency kept, "
            "beside a fixed cut of the same QCD efficiency."
        ),
    )
    sub = p.add_subparsers(dest="ddt_command", required=True, metavar="STEP")

    h = sub.add_parser(
        "histogram",
        help="fill the (rho, pT, score) histogram of QCD fat jets",
        description=(
            "Run the ddt-histogram processor (coffea Runner) on QCD files (PFNano or plain "
            "NanoAOD) and write the weighted (rho, pT, score) histogram as a ROOT TH3D with a "
            "JSON record of the score, the selection and the inputs. Jets: pT inside the pT "
            "edges (default 300-3000 GeV), |eta| < 2.4, msoftdrop > 0, rho inside the rho "
            "binning (default [-7, -1])."
        ),
    )
    h.add_argument("files", nargs="+", type=Path, metavar="QCD.root", help="QCD event files")
    _add_score_options(h)
    h.add_argument(
        "--rho-bins",
        default="24,-7,-1",
        metavar="N,LOW,HIGH",
        help="regular rho binning of the map (default 24,-7,-1: 0.25 wide)",
    )
    h.add_argument(
        "--pt-edges",
        default="300,400,500,650,800,1000,1500,3000",
        metavar="E,E,...",
        help="pT bin edges [GeV] of the map; the lowest is the pT cut (default 300,...,3000)",
    )
    h.add_argument("--out", required=True, type=Path, metavar="HIST.root", help="histogram file")
    add_force(h, "--out")

    d = sub.add_parser(
        "derive",
        help="derive the DDT map (correctionlib JSON, PNG, closure table) from histogram files",
        description=(
            "Sum the histogram files and derive, per (rho, pT) bin and target QCD efficiency, the "
            "weighted score quantile with its statistical up/down (binomial error of the "
            "efficiency, Kish effective count). Bins with fewer than --min-passing effective "
            "passing jets take the quantile of a pool of their nearest bins (the default: bins "
            "with enough jets keep their own quantile, unbiased where the map varies steeply); "
            "--smoothing knn takes every bin's quantile from its k nearest bins instead. Writes "
            "OUT/ddt_map.json (correctionlib schema v2: inputs rho, pt, working_point, "
            "systematic), OUT/ddt_map.png and OUT/closure.md."
        ),
    )
    d.add_argument("histograms", nargs="+", type=Path, metavar="HIST.root", help="histogram files")
    d.add_argument(
        "--efficiencies",
        type=_efficiencies,
        default=_efficiencies(DEFAULT_EFFICIENCIES),
        metavar="E,E,...",
        help=f"target QCD efficiencies (default {DEFAULT_EFFICIENCIES})",
    )
    d.add_argument("--name", default=None, help="correction name (default: from the score)")
    d.add_argument("--smoothing", choices=("none", "knn"), default="none", help="default none")
    d.add_argument(
        "--min-passing",
        type=float,
        default=20.0,
        help="effective passing jets a bin needs to keep its own quantile (default 20)",
    )
    d.add_argument("--knn", type=positive_int, default=9, help="k of --smoothing knn (default 9)")
    d.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_force(d, "the files of an existing --out folder")

    r = sub.add_parser(
        "report",
        help="closure and mass sculpting of a DDT map on independent QCD (and signal) files",
        description=(
            "Apply a DDT map to independent QCD files and report, at each working point, beside "
            "a fixed cut on the raw score with the same QCD efficiency: the QCD pass rate per "
            "(rho, pT) bin (chi2 per bin, largest deviation, spread, over bins expecting at "
            "least 50 effective passing jets), the pass rate against msoftdrop, rho and pT, "
            "1/JSD between passing and failing QCD msoftdrop with the ceiling of random cuts, and "
            "the efficiency kept on --signal files. Writes OUT/report.json, OUT/report.md and "
            "OUT/pass_rate_*.png."
        ),
    )
    r.add_argument("files", nargs="+", type=Path, metavar="QCD.root", help="independent QCD files")
    r.add_argument("--map", required=True, metavar="FILE|NAME", help="the DDT map (JSON or shipped name)")
    r.add_argument("--map-name", default=None, help="the correction in --map, if it holds several")
    _add_score_options(r)
    r.add_argument(
        "--signal", action="append", default=[], type=Path, metavar="SIG.root", help="signal file (repeat)"
    )
    r.add_argument(
        "--efficiencies",
        type=_efficiencies,
        default=None,
        metavar="E,E,...",
        help="working points to report (default: all of the map's)",
    )
    r.add_argument(
        "--derivation",
        nargs="+",
        type=Path,
        default=None,
        metavar="HIST.root",
        help="the histogram files the map was derived from: adds the map's own statistical "
        "error to a second chi2 per bin",
    )
    r.add_argument(
        "--closure-rho-merge",
        type=positive_int,
        default=1,
        metavar="N",
        help="test the closure in bins of N adjacent rho bins of the map (default 1: the map's "
        "bins); a DDT cut that closes in every map bin closes in their union, and wider bins "
        "let small samples reach 50 expected passing jets at tight working points",
    )
    r.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_force(r, "the files of an existing --out folder")


# ---------------------------------------------------------------------------- running


def _signal_like(args: argparse.Namespace) -> str:
    if args.signal_like is not None:
        return args.signal_like
    return "low" if args.discriminant is None and args.score.startswith("n2") else "high"


def _binning(args: argparse.Namespace) -> dict[str, Any]:
    """rho and pT binning of ``jettag ddt histogram`` (--rho-bins, --pt-edges)."""
    try:
        n, low, high = args.rho_bins.split(",")
        rho_bins = (int(n), float(low), float(high))
        pt_edges = tuple(float(e) for e in args.pt_edges.split(","))
    except ValueError:
        raise JettagError(
            f"--rho-bins {args.rho_bins!r} / --pt-edges {args.pt_edges!r}: expected N,LOW,HIGH "
            "and comma-separated edges"
        ) from None
    if rho_bins[0] < 1 or not rho_bins[1] < rho_bins[2]:
        raise JettagError(f"--rho-bins {args.rho_bins!r}: need N >= 1 and LOW < HIGH")
    if len(pt_edges) < 2 or np.any(np.diff(pt_edges) <= 0):
        raise JettagError(f"--pt-edges {args.pt_edges!r}: need at least two increasing edges")
    return {"rho_bins": rho_bins, "pt_edges": pt_edges}


def _processor(args: argparse.Namespace, binning: dict[str, Any]) -> Any:
    """The ddt-histogram processor of the score options, with ``binning`` (rho_bins, pt_edges)."""
    from jettag.processors.ddt_map import DDTHistogramProcessor

    try:
        return DDTHistogramProcessor(
            args.score,
            discriminant=args.discriminant,
            signal_like=_signal_like(args),
            msd_range=args.msd_range,
            phase_space=not args.no_phase_space,
            weight=None if args.unweighted else "genWeight",
            tagger_options={"threads": args.threads},
            **binning,
        )
    except ValueError as err:
        raise JettagError(str(err)) from None


def _run(files: list[Path], proc: Any, args: argparse.Namespace, column: str | None) -> Any:
    """coffea's Runner over ``files`` (one dataset), local processes when --workers > 1.

    ``column``: the FatJet score column the files must hold (None for a tagger).
    """
    from coffea import processor

    schema = nanoaod_schema(files, column)
    executor = (
        processor.FuturesExecutor(workers=args.workers, status=False)
        if args.workers > 1
        else processor.IterativeExecutor(status=False)
    )
    runner = processor.Runner(executor=executor, schema=schema, chunksize=args.chunk_size)
    fileset = {"qcd": {"files": {str(p): "Events" for p in files}}}
    try:
        return runner(fileset, processor_instance=proc, treename="Events")
    except Exception as err:  # coffea wraps a chunk's error: report the file and the cause
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        where = getattr(getattr(err, "args", [None])[0], "__str__", lambda: "")()
        name = next((str(p) for p in files if str(p) in where), "a file")
        detail = str(cause).strip("\"'") if isinstance(cause, KeyError) else str(cause)
        raise JettagError(f"{name}: {detail}") from err


class _JetCollector:
    """A picklable callable: the processor's selected jets as column accumulators."""

    def __init__(self, proc: Any) -> None:
        self.proc = proc

    def __call__(self, events: Any) -> dict[str, Any]:
        from coffea.processor import column_accumulator

        return {k: column_accumulator(v) for k, v in self.proc.jets(events).items()}


def _collect(files: list[Path], proc: Any, args: argparse.Namespace) -> dict[str, np.ndarray]:
    out = _run(files, _JetCollector(proc), args, proc.column)
    return {k: np.asarray(v.value, dtype=float) for k, v in out.items()}


def _histogram(args: argparse.Namespace) -> int:
    from jettag import ddt
    from jettag.outputs import check_output

    check_output(args.out, inputs=args.files, force=args.force)
    proc = _processor(args, _binning(args))
    out = _run(args.files, proc, args, proc.column)["qcd"]
    record = {
        **proc.settings(),
        "inputs": [str(p) for p in args.files],
        "n_events": int(out["n_events"]),
        "n_jets": int(out["n_jets"]),
        "sumw": float(out["sumw"]),
        "command": args.command_line,
    }
    ddt.write_histogram(out["ddt"], args.out, record, inputs=args.files, force=args.force)
    h = out["ddt"]
    n_eff = h.sum().value ** 2 / h.sum().variance if h.sum().variance > 0 else 0.0
    print(
        f"{proc.description}: {out['n_jets']} jets selected from {out['n_events']} events "
        f"({n_eff:.0f} effective); wrote {args.out}"
    )
    return 0


def _correction_name(score: str) -> str:
    return "ddt_" + "".join(c if c.isalnum() else "_" for c in score).strip("_")


def _derive(args: argparse.Namespace) -> int:
    from jettag import corrections, ddt
    from jettag.outputs import atomic_directory, check_output_dir

    check_output_dir(args.out, inputs=args.histograms, force=args.force)
    histogram, records = ddt.read_histograms(args.histograms)
    first = records[0]
    try:
        ddt_map = ddt.derive_map(
            histogram,
            args.efficiencies,
            signal_like=first.get("signal_like", "high"),
            smoothing=None if args.smoothing == "none" else "knn",
            min_passing=args.min_passing,
            k=args.knn,
        )
    except ValueError as err:
        raise JettagError(str(err)) from None
    ddt_map.score = first.get("score", ddt_map.score)
    name = args.name or _correction_name(ddt_map.score)
    inputs = sorted({i for r in records for i in r.get("inputs", [])})
    n_jets = sum(r.get("n_jets", 0) for r in records)
    sample = f"{n_jets} jets from {', '.join(Path(i).name for i in inputs) or 'unrecorded files'}"
    corr = ddt_map.to_correction(
        name,
        f"DDT map of {ddt_map.score}",
        sample=sample,
        command=args.command_line,
    )
    cset = corrections.correction_set([corr], f"jettag DDT map of {ddt_map.score}")
    for note in ddt_map.notes:
        print(f"jettag ddt derive: warning: {note}", file=sys.stderr)
    table = _closure_table(ddt_map, ddt.in_sample_closure(histogram, ddt_map), sample)
    with atomic_directory(args.out) as tmp:
        corrections.write(cset, tmp / "ddt_map.json")
        ddt.plot_map(ddt_map, tmp / "ddt_map.png", title=f"DDT map: {ddt_map.score}")
        (tmp / "closure.md").write_text(table)
    print(table, end="")
    print(f"wrote {args.out / 'ddt_map.json'} (correction {name!r}), ddt_map.png, closure.md")
    return 0


def _closure_table(ddt_map: Any, closure: np.ndarray, sample: str) -> str:
    """Per efficiency: how many bins kept their own quantile, and the in-sample pass rates."""
    lines = [
        f"# DDT map of {ddt_map.score}: in-sample closure",
        "",
        f"Derived from {sample}; {ddt_map.counts.size} (rho, pT) bins, "
        f"{int((ddt_map.counts > 0).sum())} holding jets; settings: "
        + ", ".join(f"{k}={v}" for k, v in ddt_map.settings.items())
        + ".",
        "",
        "Pass rate of each bin's own jets at the map's threshold (the histogram the map came "
        "from: not a test of the map, which needs an independent sample: `jettag ddt report`). "
        "Pooled bins were too sparse for their own quantile.",
        "",
        *(f"**{note}**\n" for note in ddt_map.notes),
        "| QCD eff. | bins own / pooled | own bins: pass rate min-max | pooled bins: pass rate min-max | median stat. width (up-down) |",
        "|---|---|---|---|---|",
    ]
    has_jets = ddt_map.counts > 0
    for e, eps in enumerate(ddt_map.efficiencies):
        own = has_jets & ~ddt_map.filled[e]
        pooled = has_jets & ddt_map.filled[e]

        def span(mask: np.ndarray, _e: int = e) -> str:
            v = closure[_e][mask]
            v = v[np.isfinite(v)]
            return f"{v.min():.4f}-{v.max():.4f}" if v.size else "n/a"

        width = (ddt_map.up[e] - ddt_map.down[e])[has_jets]
        lines.append(
            f"| {eps:g} | {int(own.sum())} / {int(pooled.sum())} | {span(own)} | {span(pooled)} | "
            f"{np.median(width):.3g} |"
        )
    return "\n".join(lines) + "\n"


def _report(args: argparse.Namespace) -> int:
    from jettag import ddt, decorrelation
    from jettag.outputs import atomic_directory, check_output_dir

    check_output_dir(args.out, inputs=[*args.files, *args.signal], force=args.force)
    corr = ddt.read_map(args.map, args.map_name)
    keys = ddt.working_points(corr)
    efficiencies = args.efficiencies or tuple(sorted(float(k) for k in keys))
    missing = [e for e in efficiencies if ddt.working_point_key(e) not in keys]
    if missing:
        raise JettagError(f"{args.map}: no working point {missing} (has {sorted(keys)})")
    edges = ddt.map_edges(corr)
    merge = args.closure_rho_merge
    closure_rho = edges["rho"][::merge]
    if closure_rho[-1] != edges["rho"][-1]:
        closure_rho = np.append(closure_rho, edges["rho"][-1])
    groups = np.searchsorted(closure_rho, edges["rho"][:-1], side="right") - 1
    map_counts = None
    if args.derivation:
        derivation, _ = ddt.read_histograms(args.derivation)
        if not all(
            np.allclose(derivation.axes[n].edges, edges[n]) for n in ("rho", "pt")
        ):
            raise JettagError(f"{args.derivation[0]}: its rho/pT binning is not the map's")
        totals = derivation.project("rho", "pt")
        sumw = np.zeros((len(closure_rho) - 1, len(edges["pt"]) - 1))
        sumw2 = np.zeros_like(sumw)
        np.add.at(sumw, groups, totals.values())
        np.add.at(sumw2, groups, totals.variances())
        with np.errstate(invalid="ignore", divide="ignore"):
            map_counts = np.nan_to_num(sumw**2 / sumw2)
    proc = _processor(args, {"rho_bins": list(edges["rho"]), "pt_edges": list(edges["pt"])})
    qcd = _collect(args.files, proc, args)
    signals = {p.stem: _collect([p], proc, args) for p in args.signal}
    result = decorrelation.report(
        qcd,
        corr,
        efficiencies,
        signal_like=proc.signal_like,
        signals=signals,
        rho_edges=closure_rho,
        pt_edges=edges["pt"],
        rho_profile_edges=edges["rho"],
        map_counts=map_counts,
    )
    result["closure_rho_merge"] = merge
    result["score"] = proc.description
    result["map"] = str(args.map)
    result["qcd_files"] = [str(p) for p in args.files]
    result["command"] = args.command_line
    text = decorrelation.markdown(result, f"DDT report: {proc.description} ({args.map})")
    with atomic_directory(args.out) as tmp:
        (tmp / "report.json").write_text(json.dumps(decorrelation.to_json(result), indent=1))
        (tmp / "report.md").write_text(text)
        decorrelation.plot(result, tmp, label=proc.description)
    print(text, end="")
    print(f"wrote {args.out / 'report.json'}, report.md and pass_rate_*.png")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"histogram": _histogram, "derive": _derive, "report": _report}[args.ddt_command](args)
