"""``jettag demo``: the main job on the embedded default.

It generates the default sample set (simulation of QCD, Z->bb, the wide X->bb
resonance and muon-enriched QCD, plus Z->bb pseudo-data) into ``outdir``,
prints the physics checks of the generator with the jets behind each figure,
then scores the Z->bb and QCD jets with the shipped reference taggers and
prints their Xbb-vs-QCD performance (``jettag evaluate``'s table, ROC and
sculpting plots, written to ``outdir/tagging``). Figures resting on fewer than
about ten jets are marked ``†`` (statistics-limited): at the demo's default
size the tagging table's 0.1% mistag column and 1/eps_QCD rest on a handful of
QCD jets. Then it applies the shipped DDT map of pnet-lite (``ddt-pnet-lite``)
to the QCD jets and prints, beside a fixed cut of the same QCD efficiency, how
flat the QCD pass rate is and how much the cut sculpts the QCD mass (``jettag
ddt report``'s table, written to ``outdir/ddt``). It ends with where its outputs
are and what to run next. Scale factors are a later stage (planned).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jettag import taggers
from jettag.evaluate import evaluate_scores, markdown_table, score_files, write_results
from jettag.generator import generate, validation
from jettag.outputs import atomic_output, check_output, check_output_dir
from jettag.samples.files import truth_sidecar_path

__all__ = ["DEMO_SAMPLES", "run_demo"]

#: (file stem, process, tune, fraction of --events) of the demo sample set.
DEMO_SAMPLES: tuple[tuple[str, str, str, float], ...] = (
    ("qcd", "qcd", "mc", 1.0),
    ("zbb", "zbb", "mc", 1.0),
    ("xbb", "xbb", "mc", 1.0),
    ("gbb_mu", "gbb_mu", "mc", 0.25),
    ("zbb_data", "zbb", "data", 1.0),
)

#: The tagger the closing "what next" commands use.
NEXT_TAGGER = "pnet-lite"


def _check_json_out(json_out: Path, outdir: Path, force: bool) -> None:
    """Refuse an unwritable ``--json`` path before any sample is generated."""
    if json_out.parent.resolve() == outdir.resolve():
        # inside the demo folder, which check_output_dir already vetted (it may not exist yet)
        if json_out.is_dir():
            check_output(json_out)  # raises: a folder
        return
    check_output(json_out, force=force)


def _print_checks(figures: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """The generator's checks with the jets behind each; (no check fails, inconclusive names)."""
    print(f"{'check':<24} {'value':>10}   {'accepted':<14} {'result':<12} {'what':<49} jets behind it")
    all_pass, inconclusive = True, []
    for name, check in validation.CHECKS.items():
        value = figures[name]
        limited = check.stat_limited(figures)
        ok = check.passes(value)
        if ok:
            result = "ok"
        elif limited:
            result = "inconclusive"
            inconclusive.append(name)
        else:
            result = "FAIL"
            all_pass = False
        shown = f"{value:.4g}{'†' if limited else ' '}"
        span = f"[{check.low:g}, {check.high:g}]"
        print(f"{name:<24} {shown:>10}   {span:<14} {result:<12} {check.what:<49} {check.jets_behind(figures)}")
    if any(check.stat_limited(figures) for check in validation.CHECKS.values()):
        print(
            f"† statistics-limited: fewer than {validation.MIN_JETS} jets in a count behind the figure "
            "(a value outside its range is then inconclusive, not a failure; run with more --events)"
        )
    return all_pass, inconclusive


def _json_ready(figures: Mapping[str, Any]) -> dict[str, Any]:
    """Strict-JSON figures: NaN / inf become null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()
    }


def run_demo(
    *,
    events: int,
    seed: int,
    workers: int,
    outdir: Path,
    json_out: Path | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> int:
    """Generate the demo samples into ``outdir``, print the checks and tagger performance.

    ``outdir`` is created if absent (its parent folder must exist); one that
    already holds files (a previous demo) is refused unless ``force``, which
    replaces the demo's files in it. Returns 0 unless a check fails that has
    enough jets behind it to say so (statistics-limited checks outside their
    range are inconclusive, and reported as such).
    """
    outdir = check_output_dir(outdir, force=force)
    if json_out is not None:
        json_out = Path(json_out)
        _check_json_out(json_out, outdir, force)
    outdir.mkdir(exist_ok=True)
    outdir = outdir.resolve()
    if progress is None:
        progress = sys.stderr.isatty()
    print(f"jettag demo: {events} events per sample, seed {seed}, {workers} worker(s), into {outdir}")
    paths: dict[str, Path] = {}
    for offset, (stem, process, tune, fraction) in enumerate(DEMO_SAMPLES):
        n = max(20, math.ceil(events * fraction))
        path = outdir / f"{stem}.root"
        chunk = max(50, math.ceil(n / workers))
        summary = generate(
            process, n, seed + offset, path,
            tune=tune, workers=workers, chunk_size=chunk, force=force, progress=progress,
        )
        print(summary.describe())
        paths[stem] = path

    figures: dict[str, Any] = {}
    figures.update(validation.zbb_mass_peak(paths["zbb"]))
    figures.update(validation.heavy_flavour_visibility(paths["zbb"], paths["qcd"]))
    figures.update(validation.qcd_bb_fraction(paths["qcd"]))
    figures.update(validation.gbb_muon_purity(paths["gbb_mu"]))
    figures.update(validation.flat_mass_coverage(paths["xbb"]))
    figures.update(validation.pseudodata_shift(paths["zbb"], paths["zbb_data"]))

    print()
    print("Generator checks (pT > 300 GeV jets):")
    all_pass, inconclusive = _print_checks(figures)

    print()
    results = {}
    for name in taggers.available():
        data = score_files([paths["zbb"], paths["qcd"]], taggers.load(name))
        results[name] = evaluate_scores(data, signals=["Xbb"])
        xbb = results[name]["signals"]["Xbb"]
        figures[f"tagger_{name}_Xbb_auc"] = xbb["auc"]
        figures[f"tagger_{name}_Xbb_eff_at_1pct_qcd"] = xbb["eff_sig_at_mistag_0.01"]
        figures[f"tagger_{name}_Xbb_eff_at_1pct_qcd_stat_limited"] = xbb["counts"]["eff_sig_at_mistag_0.01"][
            "stat_limited"
        ]
        figures[f"tagger_{name}_n_xbb_jets"] = xbb["n_signal"]
        figures[f"tagger_{name}_n_qcd_jets"] = xbb["n_background"]
    print(
        "Reference taggers on the demo's Z->bb (signal) and QCD jets, pT > 300 GeV, 40-250 GeV msoftdrop "
        "(jets count one each):"
    )
    print(markdown_table(results), end="")
    written = write_results(results, outdir / "tagging")
    written += _ddt_stage(paths, outdir / "ddt", figures)
    if json_out is not None:
        with atomic_output(json_out) as tmp:
            tmp.write_text(json.dumps(_json_ready(figures), indent=2, sort_keys=True))

    print()
    verdict = "all checks pass" if all_pass else "SOME CHECKS FAIL"
    if inconclusive:
        verdict += f" ({len(inconclusive)} inconclusive on too few jets: {', '.join(inconclusive)})"
    print(f"jettag demo: {verdict}; small demo samples: expect statistical scatter.")
    _print_where_and_next(outdir, paths, written, json_out)
    return 0 if all_pass else 1


def _ddt_stage(paths: Mapping[str, Path], out_dir: Path, figures: dict[str, Any]) -> list[Path]:
    """The shipped pnet-lite DDT map on the demo's QCD (and Z->bb) jets, at 5% QCD efficiency."""
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from jettag import ddt, decorrelation
    from jettag.processors.ddt_map import DDTHistogramProcessor

    corr = ddt.read_map("ddt-pnet-lite")
    edges = ddt.map_edges(corr)
    proc = DDTHistogramProcessor(
        NEXT_TAGGER, discriminant="XbbVsQCD", rho_bins=list(edges["rho"]), pt_edges=list(edges["pt"])
    )

    def jets(path: Path) -> dict[str, Any]:
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()
        return proc.jets(events)

    result = decorrelation.report(
        jets(paths["qcd"]),
        corr,
        [0.05],
        signals={"zbb": jets(paths["zbb"])},
        rho_edges=edges["rho"],
        pt_edges=edges["pt"],
    )
    print()
    print(
        "Mass decorrelation: the shipped DDT map of pnet-lite (ddt-pnet-lite) on the demo's QCD jets, "
        "weighted by genWeight"
    )
    text = decorrelation.markdown(result, "pnet-lite XbbVsQCD: fixed cut vs DDT at 5% QCD efficiency")
    print("\n".join(text.splitlines()[2:]), end="")
    wp = result["working_points"][0]
    for cut in ("fixed", "ddt"):
        sculpt = wp["cuts"][cut]["sculpting"]
        figures[f"ddt_pnet-lite_{cut}_inverse_jsd_5pct"] = sculpt.get("inverse_jsd")
        figures[f"ddt_pnet-lite_{cut}_zbb_efficiency_5pct"] = wp["cuts"][cut]["signal_efficiency"]["zbb"]
    figures["ddt_pnet-lite_inverse_jsd_random_cut_5pct"] = wp["inverse_jsd_random_cut"]
    figures["ddt_pnet-lite_n_qcd_jets"] = result["n_qcd_jets"]
    out_dir.mkdir(exist_ok=True)
    written = [out_dir / "report.md", out_dir / "report.json"]
    written[0].write_text(text)
    written[1].write_text(json.dumps(decorrelation.to_json(result), indent=1))
    return written + decorrelation.plot(result, out_dir, label="pnet-lite XbbVsQCD")


def _print_where_and_next(outdir: Path, paths: Mapping[str, Path], written: list[Path], json_out: Path | None) -> None:
    samples = [str(p) for p in paths.values()]
    samples += [str(truth_sidecar_path(p)) for p in paths.values() if truth_sidecar_path(p).exists()]
    tables = [str(p) for p in written if p.suffix in (".md", ".json")]
    plots = [str(p) for p in written if p.suffix == ".png"]
    q = shlex.quote
    signal, qcd = q(str(paths["zbb"])), q(str(paths["qcd"]))
    print()
    print("What to run next:")
    print(f"  jettag evaluate {signal} {qcd} --tagger {NEXT_TAGGER} --out {q(str(outdir / 'evaluate'))}")
    print(f"  jettag tag {signal} --model {NEXT_TAGGER} --out {q(str(outdir / 'zbb_scores.root'))}")
    print("  jettag taggers")
    print(
        f"  jettag generate --process qcd --events 20000 --workers 2 --out {q(str(outdir / 'qcd_20k.root'))}"
        "   (more QCD jets for the † figures; about 150 events/s)"
    )
    print(
        f"  jettag ddt report {qcd} --map ddt-pnet-lite --score {NEXT_TAGGER} --discriminant XbbVsQCD "
        f"--signal {signal} --out {q(str(outdir / 'ddt_report'))}"
    )
    print("  (scale factors, jettag sf, are planned, not yet a command.)")
    print()
    print(f"samples: {', '.join(samples)}")
    print(f"tables: {', '.join(tables)}")
    print(f"plots: {', '.join(plots)}")
    if json_out is not None:
        print(f"figures (JSON): {json_out.resolve()}")
