"""``jettag sf``: tagging scale factors from the g->bb and Z->bb proxies (histogram, fit, combine)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from jettag.cli._args import add_force, nonnegative_int, positive_int
from jettag.errors import JettagError, OutputError

PROXIES = ("gbb", "zbb")
RESULTS_FORMAT = "jettag-sf-results-1"


def _edges(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated edges, got {text!r}") from None
    if len(values) < 2 or np.any(np.diff(values) <= 0) or values[0] < 0:
        raise argparse.ArgumentTypeError(f"need at least two increasing edges >= 0, got {text!r}")
    return values


def _kappa(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 1.0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"a log-normal kappa is >= 1 (1.2 = 20%), got {text!r}")
    return value


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sf",
        help="tagging scale factors: fill proxy templates, fit pass/fail, write correctionlib",
        description=(
            "Data/MC scale factors of tagger working points from the g->bb (muon-tagged) and "
            "Z->bb proxies, in three steps. 'histogram' runs a proxy processor (sf-gbb, sf-zbb) "
            "over MC or data files and writes the pass/fail templates as a ROOT file; 'fit' sums "
            "template files (MC, data, varied MC) and fits SF in every working point and pT bin "
            "(binned pass/fail likelihood, iminuit), writing results, a correctionlib file, a "
            "markdown table and pre/post-fit plots; 'combine' joins a g->bb and a Z->bb result "
            "into one correctionlib file with their inverse-variance combination."
        ),
    )
    sub = p.add_subparsers(dest="sf_command", required=True, metavar="STEP")

    h = sub.add_parser(
        "histogram",
        help="fill the pass/fail templates of a proxy (ROOT file of TH1Ds + JSON record)",
        description=(
            "Run the proxy processor (coffea Runner) over the files and write its templates: one "
            "TH1D of the observable (g->bb: ln of the leading SV mass; Z->bb: soft-drop mass) per "
            "working point, pT bin, region (pass/fail), category (MC truth flavour, or 'data') "
            "and variation, named like L/pt300to400/pass/bb (__<variation> when not nominal), "
            "with a JSON record (key jettag_sf_templates) of the working points, the selection, "
            "the inputs and the counts. Files are taken for data when they have no genWeight "
            "(or with --data), for MC otherwise."
        ),
    )
    h.add_argument("files", nargs="+", type=Path, metavar="FILE.root", help="(PF)NanoAOD files")
    h.add_argument("--proxy", required=True, choices=PROXIES, help="g->bb or Z->bb")
    h.add_argument(
        "--score",
        required=True,
        metavar="TAGGER|COLUMN",
        help="a jettag tagger (shipped name such as pnet-lite, or a model directory; needs "
        "--discriminant) or a FatJet column (particleNet_XbbVsQCD, n2b1, ...)",
    )
    h.add_argument(
        "--discriminant",
        default=None,
        metavar="CLASS|AVsB",
        help="for a tagger: a class (Xbb) or A/(A+B) written AVsB (XbbVsQCD)",
    )
    h.add_argument(
        "--working-points",
        required=True,
        type=Path,
        metavar="WP.json",
        help='the working points, e.g. {"working_points": {"L": {"kind": "score", "cut": 0.8}, '
        '"M": ..., "T": {"kind": "ddt", "efficiency": 0.01, "map": "ddt-pnet-lite"}}}; '
        '"signal_like": "low" for scores such as n2b1',
    )
    h.add_argument(
        "--variation",
        default="nominal",
        metavar="NAME",
        help="the variation MC files were generated with, <source>_up or <source>_down (e.g. "
        "bfrag_up; default nominal); data are always nominal",
    )
    h.add_argument(
        "--data",
        action="store_true",
        help="take the files for data (category 'data', weight 1) even if they have genWeight",
    )
    h.add_argument(
        "--muons",
        choices=("double", "single"),
        default=None,
        help="g->bb: a muon in each soft-drop subjet (double, default) or in either (single)",
    )
    h.add_argument(
        "--population",
        choices=("natural", "forced"),
        default=None,
        help="g->bb MC: weight by genWeight (natural, default) or by genWeight / "
        "jettag_forcedDecayWeight (forced: the forced-decay population of jettag's gbb_mu "
        "pseudo-data, for closure tests on them)",
    )
    h.add_argument(
        "--pt-edges",
        type=_edges,
        default=None,
        metavar="E,E,...",
        help="jet pT bin edges [GeV]; the lowest is the pT cut (default g->bb 250,300,400,500,"
        "1000; Z->bb 300,350,400,500,1000)",
    )
    h.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    h.add_argument(
        "--chunk-size", type=positive_int, default=50_000, help="events per chunk (default 50000)"
    )
    h.add_argument("--threads", type=positive_int, default=1, help="onnxruntime threads per worker")
    h.add_argument("--out", required=True, type=Path, metavar="T.root", help="template file")
    add_force(h, "--out")

    f = sub.add_parser(
        "fit",
        help="fit SF in every working point and pT bin of summed template files",
        description=(
            "Sum the template files (MC, data and varied MC; one proxy, one set of working "
            "points and binning) and fit every working point and pT bin: pass region signal x "
            "SF, fail region x (p + f - p SF)/f, log-normal flavour-fraction nuisances, "
            "template statistics (Barlow-Beeston lite), shape nuisances from the <source>_up/"
            "_down templates, and for Z->bb the QCD pass region from the fail region through a "
            "transfer factor. Bad fits are retried; those still bad are reported failed. Writes "
            "OUT/results.json (every fit, the working points, the command), OUT/sf.json "
            "(correctionlib: <tagger>_wp_values and <tagger>_<proxy>), OUT/sf.md (table and "
            "counts) and OUT/plots/<WP>_pt<lo>to<hi>_{prefit,postfit}.png. A failed bin stops "
            "sf.json (the rest is still written, and the command exits with an error) unless "
            "--allow-failed, which leaves its working point out of sf.json."
        ),
    )
    f.add_argument("templates", nargs="+", type=Path, metavar="T.root", help="template files")
    f.add_argument("--proxy", required=True, choices=PROXIES, help="the templates' proxy")
    f.add_argument(
        "--tagger",
        default=None,
        metavar="NAME",
        help="tagger name in the correction names (default: the score of the templates, e.g. "
        "pnet_lite_XbbVsQCD)",
    )
    f.add_argument(
        "--kappa",
        type=_kappa,
        default=1.2,
        metavar="K",
        help="log-normal kappa of the background components' normalisations (default 1.2)",
    )
    f.add_argument(
        "--kappa-signal",
        type=_kappa,
        default=None,
        metavar="K",
        help="log-normal kappa of the signal normalisation (default: --kappa)",
    )
    f.add_argument(
        "--n-tf",
        type=nonnegative_int,
        default=1,
        metavar="N",
        help="Z->bb: polynomial order of the QCD transfer factor in msoftdrop (default 1)",
    )
    f.add_argument(
        "--allow-failed",
        action="store_true",
        help="write sf.json without the working points that have a failed bin (listed in "
        "its description)",
    )
    f.add_argument("--no-plots", action="store_true", help="do not draw the pre/post-fit plots")
    f.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_force(f, "the files of an existing --out folder")

    c = sub.add_parser(
        "combine",
        help="one correctionlib file from a g->bb and a Z->bb results.json, with their combination",
        description=(
            "Write the scale factors of both proxies (<tagger>_gbb, <tagger>_zbb), the working "
            "points (<tagger>_wp_values) and, where both measured the same working point and pT "
            "bin, their inverse-variance combination (<tagger>_combined; shared shape sources "
            "correlated) into one correctionlib file. Both results must be of the same tagger "
            "and working points."
        ),
    )
    c.add_argument("results", nargs=2, type=Path, metavar="RESULTS.json", help="from 'jettag sf fit'")
    c.add_argument(
        "--allow-failed",
        action="store_true",
        help="leave out working points with a failed bin instead of refusing",
    )
    c.add_argument("--out", required=True, type=Path, metavar="SF.json", help="correctionlib file")
    add_force(c, "--out")


# ---------------------------------------------------------------------------- histogram


def _processor(args: argparse.Namespace) -> Any:
    from jettag import processors
    from jettag.scalefactors.workingpoints import WorkingPoints

    options: dict[str, Any] = {
        "discriminant": args.discriminant,
        "variation": args.variation,
        "is_data": True if args.data else None,
        "tagger_options": {"threads": args.threads},
    }
    if args.pt_edges is not None:
        options["pt_edges"] = args.pt_edges
    if args.proxy == "gbb":
        options["muons"] = args.muons or "double"
        options["population"] = args.population or "natural"
    else:
        for flag in ("muons", "population"):
            if getattr(args, flag) is not None:
                raise JettagError(f"--{flag} applies to --proxy gbb only")
    if args.data and args.variation != "nominal":
        raise JettagError(f"--variation {args.variation}: data are always nominal; drop --data or it")
    options["working_points"] = WorkingPoints.from_json(args.working_points)  # errors name it
    try:
        return processors.get(f"sf-{args.proxy}")(args.score, **options)
    except ValueError as err:
        raise JettagError(f"--score {args.score}: {err}") from None
    except JettagError as err:
        if str(err).startswith("the working points cut on"):  # WorkingPoints.resolve's check
            raise JettagError(f"{args.working_points}: {err} (--score)") from None
        raise


def _run(files: list[Path], proc: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The processor through coffea's Runner over ``files`` (local processes if --workers > 1)."""
    from coffea import processor

    from jettag.cli._events import nanoaod_schema

    schema = nanoaod_schema(files, proc.score.column)
    executor = (
        processor.FuturesExecutor(workers=args.workers, status=False)
        if args.workers > 1
        else processor.IterativeExecutor(status=False)
    )
    runner = processor.Runner(executor=executor, schema=schema, chunksize=args.chunk_size)
    fileset = {args.proxy: {"files": {str(p): "Events" for p in files}}}
    try:
        return runner(fileset, processor_instance=proc, treename="Events")[args.proxy]
    except Exception as err:  # coffea wraps a chunk's error: report the file and the cause
        cause: BaseException = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, JettagError) and any(str(p) in str(cause) for p in files):
            raise JettagError(str(cause)) from err
        where = str(getattr(err, "args", [""])[0])
        name = next((str(p) for p in files if str(p) in where), "a file")
        detail = str(cause).strip("\"'") if isinstance(cause, KeyError) else str(cause)
        raise JettagError(f"{name}: {detail}") from err


def _category_sums(h: Any) -> dict[str, float]:
    """Category -> sum of weights of the selected jets (each jet counted once: first WP)."""
    values = np.asarray(h.values(flow=True))[:, :, 0]
    return {c: float(values[i].sum()) for i, c in enumerate(h.axes["category"])}


def _histogram(args: argparse.Namespace) -> int:
    from jettag.outputs import check_output
    from jettag.scalefactors.io import write_templates

    for path in args.files:
        if not path.is_file():
            raise JettagError(f"{path}: no such file")
    check_output(args.out, inputs=args.files, force=args.force)
    proc = _processor(args)
    out = _run(args.files, proc, args)
    h = out["templates"]
    sums = _category_sums(h)
    kinds = {"data" if c == "data" else "mc" for c in sums}
    record = {
        **proc.record(),
        "inputs": [str(p) for p in args.files],
        "is_data": {frozenset({"data"}): True, frozenset({"mc"}): False}.get(frozenset(kinds)),
        "n_events": int(out["n_events"]),
        "n_jets": int(out["n_jets"]),
        "sumw": float(out["sumw"]),
        "cutflow": {k: int(v) for k, v in out["cutflow"].items()},
        "category_sumw": sums,
        "command": args.command_line,
    }
    write_templates(h, args.out, record, inputs=args.files, force=args.force)
    per = ", ".join(f"{c} {v:.6g}" for c, v in sums.items()) or "none"
    kind = {True: "data", False: "MC", None: "data and MC" if kinds else "no jets"}[
        record["is_data"]
    ]
    print(
        f"{args.proxy} templates of {proc.score.description} ({kind}): {out['n_jets']} jets "
        f"selected from {out['n_events']} events; per category (sum of weights): {per}; "
        f"wrote {args.out}"
    )
    return 0


# ---------------------------------------------------------------------------- fit


def _tagger_name(score: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", score).strip("_") or "tagger"


def _counts_text(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| template file | data/MC | variation | events | jets | sum of weights per category |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        kind = {True: "data", False: "MC"}.get(r.get("is_data"), "mixed")
        per = ", ".join(f"{c} {v:.6g}" for c, v in (r.get("category_sumw") or {}).items())
        lines.append(
            f"| {r['file']} | {kind} | {r.get('variation', '?')} | {r.get('n_events', '?')} | "
            f"{r.get('n_jets', '?')} | {per or 'none'} |"
        )
    return lines


def _fit(args: argparse.Namespace) -> int:
    from jettag.outputs import atomic_directory, check_output_dir
    from jettag.scalefactors import output
    from jettag.scalefactors.fit import fit_region
    from jettag.scalefactors.io import read_templates
    from jettag.scalefactors.model import DEFAULT_KAPPA
    from jettag.scalefactors.templates import MERGE, SIGNAL, region_inputs
    from jettag.scalefactors.workingpoints import WorkingPoints

    check_output_dir(args.out, inputs=args.templates, force=args.force)
    h, records = read_templates(args.templates)
    first = records[0]
    if first["layout"]["proxy"] != args.proxy:
        raise JettagError(
            f"{first['file']}: templates of the {first['layout']['proxy']} proxy, not "
            f"{args.proxy} (--proxy)"
        )
    names = ", ".join(str(p) for p in args.templates)
    categories = list(h.axes["category"])
    if "data" not in categories:
        raise JettagError(
            f"{names}: no data templates; add a file made by 'jettag sf histogram' on data "
            "(or on MC with --data)"
        )
    if not set(categories) - {"data"}:
        raise JettagError(f"{names}: no MC templates; add a file made by 'jettag sf histogram' on MC")
    if "nominal" not in h.axes["variation"]:
        raise JettagError(f"{names}: no nominal templates, only {list(h.axes['variation'])}")
    wps = WorkingPoints.from_dict(first, where=f"{first['file']}: ")
    score = first.get("score") or wps.score or "tagger"
    tagger = args.tagger or _tagger_name(score)
    kappa: float | dict[str, float] = args.kappa
    if args.kappa_signal is not None:
        kappa = {c: args.kappa for c in MERGE[args.proxy]} | {SIGNAL[args.proxy]: args.kappa_signal}
    options = {"kappa": kappa, "n_tf": args.n_tf}

    fits = []
    for wp in h.axes["working_point"]:
        for i in range(h.axes["pt"].size):
            try:
                inputs = region_inputs(h, proxy=args.proxy, working_point=wp, pt_bin=i)
            except JettagError as err:
                raise JettagError(f"{names}: {err}") from None
            # overflows while MIGRAD explores are expected; a bad fit shows in its status
            with np.errstate(all="ignore"):
                fits.append((inputs, fit_region(inputs, **options)))
    results = [r for _, r in fits]
    table = output.markdown_table(results)

    sf_error = None
    written: list[str] = []
    with atomic_directory(args.out) as tmp:
        try:
            output.write_sf_file(
                tmp / "sf.json",
                tagger,
                wps,
                {args.proxy: results},
                inputs=args.templates,
                allow_failed=args.allow_failed,
                description=f"jettag sf fit of {score} working points ({args.proxy} proxy)",
            )
            written.append("sf.json")
        except JettagError as err:
            sf_error = " ".join(str(err).split())
        plots: list[str] = []
        if not args.no_plots:
            from jettag.scalefactors.plots import plot_fit

            (tmp / "plots").mkdir()
            for inputs, result in fits:
                for path in plot_fit(inputs, result, tmp / "plots", **options):
                    plots.append(f"plots/{path.name}")
            written.append("plots")
        failed = [r for r in results if r.status != "ok"]
        results_json = {
            "format": RESULTS_FORMAT,
            "proxy": args.proxy,
            "tagger": tagger,
            "score": score,
            **wps.to_dict(),
            "fit": {
                "kappa": args.kappa,
                "kappa_signal": args.kappa_signal if args.kappa_signal is not None else args.kappa,
                "n_tf": args.n_tf,
                "default_kappa": DEFAULT_KAPPA,
            },
            "results": [r.to_dict() for r in results],
            "n_failed": len(failed),
            "sf_json": "sf.json" if sf_error is None else None,
            "sf_json_error": sf_error,
            "plots": plots,
            "templates": [
                {k: v for k, v in r.items() if k not in ("format", "layout")} for r in records
            ],
            "command": args.command_line,
        }
        (tmp / "results.json").write_text(json.dumps(results_json, indent=1) + "\n")
        status = (
            f"sf.json written ({tagger}_wp_values, {tagger}_{args.proxy})"
            + (" without the working points of failed bins" if failed and args.allow_failed else "")
            if sf_error is None
            else f"**sf.json not written**: {sf_error}"
        )
        md = [
            f"# {tagger} scale factors from the {args.proxy} proxy",
            "",
            f"{len(results)} fits, {len(failed)} failed. {status}.",
            "",
            table.rstrip("\n"),
            "",
            "## Templates",
            "",
            *_counts_text(records),
            "",
            f"Fit options: kappa {args.kappa}, signal kappa "
            f"{args.kappa_signal if args.kappa_signal is not None else args.kappa}, "
            f"transfer-factor order {args.n_tf}.",
            "",
            f"Command: `{args.command_line}`",
            "",
        ]
        (tmp / "sf.md").write_text("\n".join(md))
        # with --force into an earlier output: remove what this run did not write, so that no
        # stale sf.json or plots sit beside the new results
        for stale in ("sf.json", "plots"):
            target = args.out / stale
            if stale not in written and (target.exists() or target.is_symlink()):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
    print(table, end="")
    what = ", ".join(["results.json", *(["sf.json"] if sf_error is None else []), "sf.md"])
    if plots:
        what += f", plots/ ({len(plots)} PNGs)"
    if sf_error is not None:
        raise JettagError(
            f"{args.out}/sf.json not written ({sf_error}); wrote {what} in {args.out}; "
            "give --allow-failed to write the working points whose bins all fit"
        )
    print(f"wrote {what} in {args.out}")
    return 0


# ---------------------------------------------------------------------------- combine


def _read_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise JettagError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise JettagError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise JettagError(f"{path}: not a results.json of 'jettag sf fit'")
    return data


def _combine(args: argparse.Namespace) -> int:
    from jettag.outputs import check_output
    from jettag.scalefactors import output
    from jettag.scalefactors.workingpoints import WorkingPoints

    check_output(args.out, inputs=args.results, force=args.force)
    loaded = {path: _read_results(path) for path in args.results}
    if len(loaded) < 2:
        raise JettagError(f"{args.results[0]}: given twice; give a g->bb and a Z->bb results.json")
    by_proxy: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, data in loaded.items():
        proxy = data.get("proxy")
        if proxy not in PROXIES:
            raise JettagError(f"{path}: proxy {proxy!r}, expected gbb or zbb")
        if proxy in by_proxy:
            raise JettagError(
                f"{path}: also {proxy} (like {by_proxy[proxy][0]}); give one gbb and one zbb result"
            )
        by_proxy[proxy] = (path, data)
    (gpath, g), (zpath, z) = by_proxy["gbb"], by_proxy["zbb"]
    if g.get("tagger") != z.get("tagger"):
        raise JettagError(
            f"{zpath}: tagger {z.get('tagger')!r} differs from {g.get('tagger')!r} of {gpath}"
        )
    points = WorkingPoints.require_same(z, zpath, g, gpath)
    tagger = g["tagger"]
    try:
        output.write_sf_file(
            args.out,
            tagger,
            points,
            {"gbb": g["results"], "zbb": z["results"]},
            inputs=args.results,
            force=args.force,
            allow_failed=args.allow_failed,
            description=f"jettag sf combine of {gpath.name} and {zpath.name} "
            f"({g.get('score', tagger)})",
        )
    except OutputError:
        raise
    except JettagError as err:
        hint = "" if args.allow_failed else "; give --allow-failed to leave such working points out"
        raise JettagError(f"{gpath} + {zpath}: {err}{hint}") from None
    both = output.combine(g["results"], z["results"])
    if both:
        print(output.markdown_table(both), end="")
    note = f", {tagger}_combined" if both else " (no bin measured by both: no combination)"
    print(f"wrote {args.out}: {tagger}_wp_values, {tagger}_gbb, {tagger}_zbb{note}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"histogram": _histogram, "fit": _fit, "combine": _combine}[args.sf_command](args)
