"""Scale-factor closure on pseudo-data (issue 10): fitted SF against the true SF, Z->bb proxy.

Runs the user's commands on Z->bb simulation and Z->bb pseudo-data (``--tune data``):

    jettag sf histogram MC.root... --proxy zbb --score pnet-lite --discriminant XbbVsQCD \
        --working-points OUT/wp.json --pt-edges E --out OUT/mc.root
    jettag sf histogram DATA.root... --proxy zbb ... --data --out OUT/data.root
    jettag sf fit OUT/mc.root OUT/data.root --proxy zbb --allow-failed --out OUT/fit

and computes the true SF of the same selection in every working point and pT bin:
the pass fraction of the selected jets with >= 2 B hadrons in the pseudo-data (labels
from the truth sidecar) over that in the simulation (``jettag.demo.bb_jet_counts``:
the processor's own selection), with binomial errors. Prints fitted against true,
the pull, and whether the true SF differs from 1 by three fit errors (the test is
blind otherwise). The samples here are Z+jet only: the proxy's "qcd" are the recoil
and non-Z jets of those events, not a multijet background.

Run:  python benchmarks/study_sf_closure.py --mc zbb_mc_50{1,2,3}.root \
        --data zbb_data_60{1,2,3}.root --out study_sf_closure
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKING_POINTS = {"L": 0.8, "M": 0.9, "T": 0.95}


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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mc", nargs="+", type=Path, required=True)
    p.add_argument("--data", nargs="+", type=Path, required=True)
    p.add_argument("--pt-edges", default="300,400,1000")
    p.add_argument("--kappa-signal", default=None)
    p.add_argument("--workers", default="2")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wp = args.out / "wp.json"
    wp.write_text(json.dumps(
        {"working_points": {k: {"kind": "score", "cut": v} for k, v in WORKING_POINTS.items()}}
    ))  # fmt: skip
    common = ["--proxy", "zbb", "--score", "pnet-lite", "--discriminant", "XbbVsQCD",
              "--working-points", str(wp), "--pt-edges", args.pt_edges, "--workers", args.workers]  # fmt: skip
    for name, files, extra in (("mc", args.mc, []), ("data", args.data, ["--data"])):
        out = args.out / f"{name}.root"
        if not out.exists():
            _jettag("sf", "histogram", *map(str, files), *common, *extra, "--out", str(out))
    kappa = ["--kappa-signal", args.kappa_signal] if args.kappa_signal else []
    fit_dir = args.out / ("fit" + (f"-kappa{args.kappa_signal}" if args.kappa_signal else ""))
    _jettag("sf", "fit", str(args.out / "mc.root"), str(args.out / "data.root"), "--proxy", "zbb",
            *kappa, "--allow-failed", "--no-plots", "--out", str(fit_dir), "--force")  # fmt: skip
    results = json.loads((fit_dir / "results.json").read_text())["results"]
    edges = [float(e) for e in args.pt_edges.split(",")]
    mc = _true_counts(args.mc, wp, edges, data=False)
    data = _true_counts(args.data, wp, edges, data=True)
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
              f"{true:.3f} +- {true_err:.3f} | {pull} | {ed:.3f} ({kd}/{nd}) | {em:.3f} ({km}/{nm}) | {blind} |")  # fmt: skip
    if pulls:
        pulls = np.asarray(pulls)
        print(f"{len(pulls)} fitted bins: {np.mean(np.abs(pulls) < 2):.0%} within 2 sigma, "
              f"{np.mean(np.abs(pulls) < 3):.0%} within 3 (pull: fit vs true, errors added)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
