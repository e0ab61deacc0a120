"""Scale-factor closure on pseudo-data (issue 10): fitted SF against the true SF.

Runs the user's commands on Z->bb simulation and Z->bb pseudo-data (``--tune data``):

    jettag sf histogram MC.root... --proxy zbb --score pnet-lite --discriminant XbbVsQCD \
        --working-points OUT/wp.json --pt-edges E --out OUT/mc.root
    jettag sf histogram DATA.root... --proxy zbb ... --data --out OUT/data.root
    jettag sf fit OUT/mc.root OUT/data.root --proxy zbb --allow-failed --out OUT/fit

and computes the true SF of the same selection in every working point and pT bin:
the pass fraction of the selected jets with >= 2 B hadrons in the pseudo-data (labels
from the truth sidecar) over that in the simulation, with binomial errors. Z->bb:
``jettag.demo.bb_jet_counts`` repeats the processor's selection. g->bb (``--proxy
gbb``, MC weighted with ``--population forced``, the pseudo-data's population): the
simulation's efficiency is read from its own bb templates (Kish effective counts for
the error), the pseudo-data's by running the same processor on them as if they were
simulation, unweighted, with the truth sidecar's hadron counts attached to the jets. Prints fitted against true,
the pull, and whether the true SF differs from 1 by three fit errors (the test is
blind otherwise). The samples here are Z+jet only: the proxy's "qcd" are the recoil
and non-Z jets of those events, not a multijet background.

Run:  python benchmarks/study_sf_closure.py --mc zbb_mc_50{1,2,3}.root \
        --data zbb_data_60{1,2,3}.root --out study_sf_closure
      python benchmarks/study_sf_closure.py --proxy gbb --mc gbb_mc_701.root \
        --data gbb_data_801.root --pt-edges 250,350,1000 --out study_sf_closure_gbb
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKING_POINTS = ("L", "M", "T")


def _jettag(*argv: str) -> None:
    print("$ jettag", " ".join(argv), flush=True)
    subprocess.run(["jettag", *argv], check=True, stdout=subprocess.DEVNULL)


def _true_counts(files: list[Path], wp: Path, pt_edges: list[float], data: bool) -> dict:
    """(wp, pT bin) -> (bb jets passing, bb jets) with the processor's selection."""
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema
    from jettag.processors.zbb import ZbbProxyProcessor

    from jettag.demo import bb_jet_counts
    from jettag.samples.files import TRUTH_TREE, truth_sidecar_path

    out: dict = {}
    for path in files:
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()
        if data:
            import uproot

            truth = uproot.open(truth_sidecar_path(path))[TRUTH_TREE]
            n_b = truth["FatJet_nBHadrons"].array()
        else:
            n_b = events.FatJet.nBHadrons
        for i in range(len(pt_edges) - 1):
            proc = ZbbProxyProcessor(
                "pnet-lite", discriminant="XbbVsQCD", working_points=wp,
                pt_edges=(pt_edges[i], pt_edges[i + 1]), is_data=data,
            )  # fmt: skip
            for name, (k, n) in bb_jet_counts(proc, events, n_b).items():
                key = (name, i)
                a, b = out.get(key, (0, 0))
                out[key] = (a + k, b + n)
    return out


def _gbb_bb_efficiency(h, wp: str, i: int) -> tuple[float, float, float, float]:
    """(pass, total) sums of weights of the bb category in template histogram ``h``, and
    (pass, total) Kish effective counts."""
    cut = {"category": "bb", "variation": "nominal", "working_point": wp}
    sub = h[cut][:, i, :]  # region x observable
    w = {r: sub[{"region": r}].sum(flow=True) for r in ("pass", "fail")}
    total_w = w["pass"].value + w["fail"].value
    total_w2 = w["pass"].variance + w["fail"].variance
    n_eff = total_w**2 / total_w2 if total_w2 > 0 else 0.0
    return w["pass"].value, total_w, w["pass"].value / total_w * n_eff, n_eff


def _gbb_truth_templates(files: list[Path], wp: Path, pt_edges: list[float], muons: str):
    """The g->bb processor on pseudo-data as if simulation: unweighted, with the truth
    sidecar's hadron counts, so its categories are the pseudo-data's true flavours."""
    import awkward as ak
    import uproot
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema
    from jettag.processors.gbb import GbbProxyProcessor

    from jettag.samples.files import TRUTH_TREE, truth_sidecar_path

    proc = GbbProxyProcessor("pnet-lite", discriminant="XbbVsQCD", working_points=wp,
                             pt_edges=pt_edges, muons=muons, is_data=False, weight=None)  # fmt: skip
    total = None
    for path in files:
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()
        truth = uproot.open(truth_sidecar_path(path))[TRUTH_TREE]
        jets = events.FatJet
        for field in ("nBHadrons", "nCHadrons"):
            jets = ak.with_field(jets, truth[f"FatJet_{field}"].array(), field)
        events = ak.with_field(events, jets, "FatJet")
        h = next(iter(proc.process(events).values()))["templates"]
        total = h if total is None else total + h
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proxy", choices=("zbb", "gbb"), default="zbb")
    p.add_argument("--mc", nargs="+", type=Path, required=True)
    p.add_argument("--data", nargs="+", type=Path, required=True)
    p.add_argument("--pt-edges", default="300,400,1000")
    p.add_argument("--muons", choices=("double", "single"), default="double", help="g->bb only")
    p.add_argument("--cuts", default="0.8,0.9,0.95", help="XbbVsQCD cuts of L, M, T")
    p.add_argument("--kappa-signal", default=None)
    p.add_argument("--workers", default="2")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wp = args.out / "wp.json"
    cuts = dict(zip(WORKING_POINTS, (float(c) for c in args.cuts.split(",")), strict=True))
    wp.write_text(json.dumps(
        {"working_points": {k: {"kind": "score", "cut": v} for k, v in cuts.items()}}
    ))  # fmt: skip
    common = ["--proxy", args.proxy, "--score", "pnet-lite", "--discriminant", "XbbVsQCD",
              "--working-points", str(wp), "--pt-edges", args.pt_edges, "--workers", args.workers]  # fmt: skip
    gbb = ["--muons", args.muons] if args.proxy == "gbb" else []
    common += gbb
    mc_extra = ["--population", "forced"] if args.proxy == "gbb" else []
    for name, files, extra in (("mc", args.mc, mc_extra), ("data", args.data, ["--data"])):
        out = args.out / f"{name}.root"
        if not out.exists():
            _jettag("sf", "histogram", *map(str, files), *common, *extra, "--out", str(out))
    kappa = ["--kappa-signal", args.kappa_signal] if args.kappa_signal else []
    fit_dir = args.out / ("fit" + (f"-kappa{args.kappa_signal}" if args.kappa_signal else ""))
    _jettag("sf", "fit", str(args.out / "mc.root"), str(args.out / "data.root"), "--proxy", args.proxy,
            *kappa, "--allow-failed", "--no-plots", "--out", str(fit_dir), "--force")  # fmt: skip
    results = json.loads((fit_dir / "results.json").read_text())["results"]
    edges = [float(e) for e in args.pt_edges.split(",")]
    if args.proxy == "zbb":
        mc = _true_counts(args.mc, wp, edges, data=False)
        data = _true_counts(args.data, wp, edges, data=True)
    else:
        from jettag.scalefactors.io import read_templates

        mc_h, _ = read_templates([args.out / "mc.root"])
        data_h = _gbb_truth_templates(args.data, wp, edges, args.muons)
        mc, data = {}, {}
        for name in WORKING_POINTS:
            for i in range(len(edges) - 1):
                # effective counts: the binomial error of a weighted efficiency
                _, _, k, n = _gbb_bb_efficiency(mc_h, name, i)
                mc[(name, i)] = (k, n)
                kd, nd, _, _ = _gbb_bb_efficiency(data_h, name, i)
                data[(name, i)] = (round(kd), round(nd))
    print("| WP | pT [GeV] | fitted SF | true SF | pull | true eff. data | true eff. MC | |true - 1| / fit error |")
    print("|---|---|---|---|---|---|---|---|")
    pulls = []
    for r in results:
        i = edges.index(r["pt_low"])
        (kd, nd), (km, nm) = data[(r["working_point"], i)], mc[(r["working_point"], i)]
        ed, em = kd / nd, km / nm
        true = ed / em
        true_err = true * np.sqrt((1 - ed) / kd + (1 - em) / km)
        if r["sf"] is None:
            fit, pull, blind = "failed", "n/a", "n/a"
        else:
            err = r["err_up"] if true > r["sf"] else r["err_down"]
            pull_v = (r["sf"] - true) / np.hypot(err, true_err)
            pulls.append(pull_v)
            fit = f"{r['sf']:.3f} +{r['err_up']:.3f}/-{r['err_down']:.3f}"
            pull = f"{pull_v:+.2f}"
            blind = f"{abs(true - 1) / np.mean([r['err_up'], r['err_down']]):.1f}"
        print(f"| {r['working_point']} | {r['pt_low']:g}-{r['pt_high']:g} | {fit} | "
              f"{true:.3f} +- {true_err:.3f} | {pull} | {ed:.3f} ({kd:.0f}/{nd:.0f}) | {em:.3f} ({km:.0f}/{nm:.0f}) | {blind} |")  # fmt: skip
    if pulls:
        pulls = np.asarray(pulls)
        print(f"{len(pulls)} fitted bins: {np.mean(np.abs(pulls) < 2):.0%} within 2 sigma, "
              f"{np.mean(np.abs(pulls) < 3):.0%} within 3 (pull: fit vs true, errors added)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
