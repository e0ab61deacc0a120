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
ddt report``'s table, written to ``outdir/ddt``). Then it measures data/MC
scale factors with the Z->bb proxy (the ``sf-zbb`` processor and ``jettag sf
fit``'s likelihood fit) on its own files: MC ``zbb.root`` (its non-Z jets are
the proxy's QCD), data the pseudo-data ``zbb_data.root``, working points L/M/T
= pnet-lite XbbVsQCD > 0.5/0.8/0.9 in one pT bin, 300-1000 GeV; beside each
fitted SF it prints the true SF of the pseudo-data from their truth sidecar, and
it writes ``outdir/sf`` (``sf.json`` in correctionlib form when every bin fits).
It ends with where its outputs are and what to run next.
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

#: The scale-factor stage: plain cuts on pnet-lite XbbVsQCD, loose to tight.
SF_WORKING_POINTS: dict[str, float] = {"L": 0.5, "M": 0.8, "T": 0.9}
#: One wide pT bin [GeV]: the demo's ~170 selected Z+jet jets per file allow no finer binning.
SF_PT_EDGES: tuple[float, float] = (300.0, 1000.0)
#: The tagger name in sf.json's corrections (what ``jettag sf fit`` calls the score).
SF_TAGGER = "pnet_lite_XbbVsQCD"


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
    written += _sf_stage(paths, outdir / "sf", figures)
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


def bb_jet_counts(proc: Any, events: Any, n_bhadrons: Any) -> dict[str, tuple[int, int]]:
    """Working point -> (passing, all) of the bb jets the Z->bb proxy selects in ``events``.

    ``proc`` is the ``sf-zbb`` processor (:class:`jettag.processors.zbb.ZbbProxyProcessor`);
    its selection is repeated here on the unflattened jets: the leading fat jet (or every
    one, ``jets="all"``), pT in (pt_min, last pT edge), |eta|, the msoftdrop range, a
    finite score in the tagger's phase space. Of those, the bb jets are the ones with
    ``n_bhadrons >= 2`` (jagged like ``events.FatJet``: the file's ``FatJet_nBHadrons``
    in simulation, the truth sidecar's for pseudo-data, which carry no truth). Counted
    one each: the Z samples are unweighted. These counts give the true efficiencies
    behind the demo's true scale factors.
    """
    import awkward as ak
    import numpy as np

    jets, score = events.FatJet, proc.score(events)
    leading = ak.fill_none(ak.local_index(jets.pt, axis=1) == ak.argmax(jets.pt, axis=1), False)
    low, high = proc.msd_range
    keep = (
        (leading | (proc.jets == "all"))
        & (jets.pt > proc.pt_min) & (jets.pt < proc.pt_edges[-1])
        & (abs(jets.eta) < proc.abs_eta_max)
        & (jets.msoftdrop >= low) & (jets.msoftdrop < high)
        & np.isfinite(score) & (n_bhadrons >= 2)
    )  # fmt: skip
    if proc.phase_space:
        keep = keep & proc.score.in_phase_space(events)

    def flat(values: Any) -> Any:
        return ak.to_numpy(ak.flatten(values[keep]))

    passes = proc.working_points.passes({"msoftdrop": flat(jets.msoftdrop), "pt": flat(jets.pt)},
                                        flat(score))  # fmt: skip
    return {wp: (int(passed.sum()), len(passed)) for wp, passed in passes.items()}


def _efficiency(passed: int, total: int) -> tuple[float, float]:
    """Binomial efficiency and its error (NaN without jets)."""
    if total <= 0:
        return math.nan, math.nan
    eff = passed / total
    return eff, math.sqrt(eff * (1 - eff) / total)


def _sf_stage(paths: Mapping[str, Path], out_dir: Path, figures: dict[str, Any]) -> list[Path]:
    """Z->bb proxy scale factors of pnet-lite on the demo's pseudo-data, beside their truth."""
    import awkward as ak
    import numpy as np
    import uproot
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from jettag import processors
    from jettag.errors import JettagError
    from jettag.samples.files import TRUTH_TREE
    from jettag.scalefactors import output
    from jettag.scalefactors.fit import fit_all
    from jettag.scalefactors.workingpoints import WorkingPoints

    wps = WorkingPoints({wp: {"kind": "score", "cut": c} for wp, c in SF_WORKING_POINTS.items()})
    proc = processors.get("sf-zbb")(
        NEXT_TAGGER, discriminant="XbbVsQCD", working_points=wps, pt_edges=SF_PT_EDGES
    )

    # select: the proxy processor on each whole file (one chunk), data or MC by the metadata
    def events(stem: str, is_data: bool) -> Any:
        path = str(paths[stem])
        metadata = {"dataset": stem, "filename": path, "is_data": is_data}
        return NanoEventsFactory.from_root(
            {path: "Events"}, schemaclass=PFNanoAODSchema, mode="virtual", metadata=metadata
        ).events()

    mc, data = events("zbb", False), events("zbb_data", True)
    templates = proc.process(mc)["zbb"]["templates"] + proc.process(data)["zbb_data"]["templates"]

    # compute: the fits, and the truth of the same jets (pseudo-data: from the sidecar)
    with np.errstate(all="ignore"):  # overflows while MIGRAD explores are expected
        results = fit_all(templates, "zbb")
    sidecar = truth_sidecar_path(paths["zbb_data"])
    truth = uproot.open(f"{sidecar}:{TRUTH_TREE}").arrays(["event", "FatJet_nBHadrons"])
    if not np.array_equal(ak.to_numpy(truth["event"]), ak.to_numpy(data.event)):
        raise JettagError(f"{sidecar}: its events are not those of {paths['zbb_data']}")
    true_mc = bb_jet_counts(proc, mc, mc.FatJet.nBHadrons)
    true_data = bb_jet_counts(proc, data, truth["FatJet_nBHadrons"])

    # print: jettag sf fit's table, then each fitted SF beside the true one
    low, high = SF_PT_EDGES
    limited = [r.working_point for r in results if r.n_data["pass"] < validation.MIN_JETS]
    title = (
        "Scale factors: the Z->bb proxy (sf-zbb) on the demo's pseudo-data (zbb_data.root; MC "
        "zbb.root, its non-Z jets the proxy's qcd), pnet-lite XbbVsQCD > "
        f"{'/'.join(f'{c:g}' for c in SF_WORKING_POINTS.values())} "
        f"({'/'.join(SF_WORKING_POINTS)}), one pT bin "
        f"{low:g}-{high:g} GeV (all the demo's statistics allow)"
        + (f"; statistics-limited†: {', '.join(limited)}" if limited else "")
        + ":"
    )
    table = output.markdown_table(results)
    print()
    print(title)
    print(table, end="")
    rows = [
        "| WP | cut | fitted SF | true SF | (fit - true) / error | true eff. data (bb jets) "
        "| true eff. MC (bb jets) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        wp, cut = r.working_point, SF_WORKING_POINTS[r.working_point]
        (k_d, n_d), (k_m, n_m) = true_data[wp], true_mc[wp]
        (eff_d, err_d), (eff_m, err_m) = _efficiency(k_d, n_d), _efficiency(k_m, n_m)
        true, true_err = math.nan, math.nan
        if eff_d > 0 and eff_m > 0:  # independent samples: relative errors in quadrature
            true = eff_d / eff_m
            true_err = true * math.hypot(err_d / eff_d, err_m / eff_m)
        pull, mark = math.nan, "†" if wp in limited else ""
        if r.sf is not None:
            error = math.hypot(r.err_up if true > r.sf else r.err_down, true_err)  # NaN: no truth
            pull = (r.sf - true) / error if error > 0 else math.nan
            fitted = f"{r.sf:.3f} +{r.err_up:.3f}/-{r.err_down:.3f}{mark}"
        else:
            fitted = f"failed{mark}"
        cells = [
            wp, f"{cut:g}", fitted,
            f"{true:.3f} ± {true_err:.3f}" if math.isfinite(true) else "n/a",
            f"{pull:+.1f}" if math.isfinite(pull) else "n/a",
            f"{eff_d:.3f} ± {err_d:.3f} ({k_d}/{n_d})",
            f"{eff_m:.3f} ± {err_m:.3f} ({k_m}/{n_m})",
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
        figures.update({
            f"sf_zbb_{wp}_cut": cut, f"sf_zbb_{wp}": r.sf, f"sf_zbb_{wp}_err_up": r.err_up,
            f"sf_zbb_{wp}_err_down": r.err_down, f"sf_zbb_{wp}_status": r.status,
            f"sf_zbb_{wp}_n_data_pass": r.n_data["pass"], f"sf_zbb_{wp}_stat_limited": bool(mark),
            f"sf_zbb_{wp}_true": true, f"sf_zbb_{wp}_true_err": true_err, f"sf_zbb_{wp}_pull": pull,
        })  # fmt: skip
    figures["sf_zbb_pt_range"] = list(SF_PT_EDGES)
    print(
        "Fitted SF beside the true SF of the pseudo-data: eff_data / eff_MC of the bb jets "
        "(>= 2 B hadrons; pseudo-data from the truth sidecar) in the same selection, binomial "
        "errors; the pull adds the fit's error towards the truth and the true SF's in "
        "quadrature (both rest on the same jets, so |pull| is if anything understated):"
    )
    print("\n".join(rows))
    if limited:
        print(
            f"† statistics-limited: fewer than {validation.MIN_JETS} pseudo-data events in the "
            f"pass region ({', '.join(limited)})"
        )

    out_dir.mkdir(exist_ok=True)
    written = [out_dir / "working_points.json", out_dir / "sf.md"]
    written[0].write_text(wps.to_json(indent=1) + "\n")
    written[1].write_text(f"{title}\n\n{table}\n" + "\n".join(rows) + "\n")
    failed = [r for r in results if r.status != "ok"]
    sf_json = out_dir / "sf.json"
    sf_json.unlink(missing_ok=True)  # never leave a previous run's numbers beside these
    if failed:
        for r in failed:
            print(
                f"sf.json not written (no number for a failed fit): {r.working_point}, "
                f"{r.pt_low:g}-{r.pt_high:g} GeV: {r.message}"
            )
        figures["sf_zbb_failed"] = [r.working_point for r in failed]
        return written
    output.write_sf_file(
        sf_json, SF_TAGGER, wps, {"zbb": results},
        inputs=[paths["zbb"], paths["zbb_data"]], force=True,
        description="jettag demo: Z->bb proxy scale factors of pnet-lite XbbVsQCD on pseudo-data",
    )  # fmt: skip
    print(f"wrote {sf_json} ({SF_TAGGER}_wp_values, {SF_TAGGER}_zbb)")
    figures["sf_zbb_failed"] = []
    return [*written, sf_json]


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
    sf_dir, data = outdir / "sf", q(str(paths["zbb_data"]))
    options = (
        f"--proxy zbb --score {NEXT_TAGGER} --discriminant XbbVsQCD --pt-edges "
        f"{','.join(f'{e:g}' for e in SF_PT_EDGES)} "
        f"--working-points {q(str(sf_dir / 'working_points.json'))}"
    )
    mc_t, data_t = q(str(sf_dir / "zbb_mc.root")), q(str(sf_dir / "zbb_data.root"))
    print(f"  jettag sf histogram {signal} {options} --out {mc_t}")
    print(f"  jettag sf histogram {data} {options} --out {data_t}")
    print(
        f"  jettag sf fit {mc_t} {data_t} --proxy zbb --out {q(str(sf_dir / 'fit'))}"
        "   (the demo's SF fit, with pre/post-fit plots)"
    )
    print()
    print(f"samples: {', '.join(samples)}")
    print(f"tables: {', '.join(tables)}")
    print(f"plots: {', '.join(plots)}")
    if json_out is not None:
        print(f"figures (JSON): {json_out.resolve()}")
