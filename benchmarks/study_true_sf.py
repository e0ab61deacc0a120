"""True double-b scale factor of a tagger on pseudo-data (issue 10): eff_data / eff_MC from truth.

``jettag generate --tune data`` differs from the simulation in its generator tune and
its detector response (``jettag.generator.tunes``). This study measures how much that
difference moves a tagger's efficiency for Z->bb jets: it scores the fat jets of a
``zbb`` simulation file and a ``zbb --tune data`` file with the same number of events,
takes the bb jets (pT > 300 GeV, >= 2 B hadrons, inside the tagger's training phase
space; pseudo-data labels from the ``.truth.root`` sidecar), and prints, per working
point, the true efficiency in MC and in pseudo-data with their counts and the ratio,
the true SF, with binomial errors (the two samples are independent, so the relative
errors add in quadrature). Working points: score cuts on ``XbbVsQCD =
Xbb/(Xbb+QCD)`` (0.5, 0.8, 0.9, 0.95 by default) and the shipped DDT map's working
points at QCD efficiencies 5%, 2% and 1% (``jettag.ddt.apply("ddt-pnet-lite", ...)``).

Samples: either given (``--mc FILE... --data FILE...``; several files per side are
pooled) or generated here with the user's commands (``--generate``, into ``--out``):

    jettag generate --process zbb --events N --seed S_MC --workers W --out OUT/zbb_mc_S_MC.root
    jettag generate --process zbb --events N --seed S_DATA --tune data --workers W \
        --out OUT/zbb_data_S_DATA.root

(existing files of those names are reused). ``--seeds-mc`` / ``--seeds-data`` take a
comma-separated list, one file per seed, so a large sample is made of a few
thousand-event files.

Run (the figures quoted in the README and issue 10):

    python benchmarks/study_true_sf.py --generate --events 3000 \
        --seeds-mc 501,502,503 --seeds-data 601,602,603 --workers 2 --out study_true_sf
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

CUTS = (0.5, 0.8, 0.9, 0.95)
DDT_EFFICIENCIES = (0.05, 0.02, 0.01)
DDT_MAP = "ddt-pnet-lite"


def _generate(tune: str, seed: int, args: argparse.Namespace) -> Path:
    out = args.out / f"zbb_{tune}_{seed}.root"
    if out.exists():
        print(f"reusing {out}", flush=True)
        return out
    cmd = [
        "jettag", "generate", "--process", "zbb", "--events", str(args.events),
        "--seed", str(seed), "--workers", str(args.workers), "--out", str(out),
    ]
    if tune == "data":
        cmd[8:8] = ["--tune", "data"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    return out


def _n_bhadrons(path: Path, events) -> ak.Array:
    """Per-jet nBHadrons: from the file (simulation) or the truth sidecar (pseudo-data)."""
    from jettag.samples.files import TRUTH_TREE, truth_sidecar_path

    if "nBHadrons" in events.FatJet.fields:
        return events.FatJet.nBHadrons
    sidecar = truth_sidecar_path(path)
    truth = uproot.open(f"{sidecar}:{TRUTH_TREE}").arrays(["event", "FatJet_nBHadrons"])
    if not np.array_equal(ak.to_numpy(truth["event"]), ak.to_numpy(events.event)):
        raise SystemExit(f"{sidecar}: events not aligned with {path}")
    return truth["FatJet_nBHadrons"]


def bb_jets(paths: list[Path], tagger, *, pt_min: float) -> dict[str, np.ndarray]:
    """Flat arrays (score, pt, msoftdrop, DDT passes) of the bb jets of ``paths``."""
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    from jettag import ddt

    parts: dict[str, list[np.ndarray]] = {}
    n_events = 0
    for path in paths:
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()
        n_events += len(events)
        scores = tagger(events)
        fatjets = events.FatJet
        nb = _n_bhadrons(path, events)
        sel = tagger.in_phase_space(fatjets) & (fatjets.pt > pt_min) & (nb >= 2)
        xbb = scores.Xbb / (scores.Xbb + scores.QCD)
        columns = {
            "score": xbb[sel],
            "pt": fatjets.pt[sel],
            "msoftdrop": fatjets.msoftdrop[sel],
        }
        jets = ak.zip({"pt": fatjets.pt[sel], "msoftdrop": fatjets.msoftdrop[sel]})
        for eff in DDT_EFFICIENCIES:
            columns[f"ddt{eff:g}"] = ddt.apply(DDT_MAP, jets, xbb[sel], efficiency=eff) > 0
        for key, value in columns.items():
            parts.setdefault(key, []).append(ak.to_numpy(ak.flatten(value)))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["n_events"] = np.array(n_events)
    return out


def efficiency(passed: int, total: int) -> tuple[float, float]:
    """Binomial efficiency and its error."""
    eff = passed / total if total else float("nan")
    return eff, math.sqrt(eff * (1 - eff) / total) if total else float("nan")


def scale_factor(pass_d: int, n_d: int, pass_m: int, n_m: int) -> tuple[float, float]:
    """SF = eff_data / eff_MC of independent samples, relative binomial errors in quadrature."""
    eff_d, err_d = efficiency(pass_d, n_d)
    eff_m, err_m = efficiency(pass_m, n_m)
    if not (eff_d > 0 and eff_m > 0):
        return float("nan"), float("nan")
    sf = eff_d / eff_m
    return sf, sf * math.hypot(err_d / eff_d, err_m / eff_m)


def table(mc: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> list[dict]:
    """One row per working point: counts, efficiencies and SF with errors."""
    rows = []
    wps = [(f"XbbVsQCD > {c:g}", mc["score"] > c, data["score"] > c) for c in CUTS]
    wps += [
        (f"DDT {eff:.0%} QCD", mc[f"ddt{eff:g}"], data[f"ddt{eff:g}"]) for eff in DDT_EFFICIENCIES
    ]
    for name, pass_m, pass_d in wps:
        k_m, n_m, k_d, n_d = int(pass_m.sum()), len(pass_m), int(pass_d.sum()), len(pass_d)
        eff_m, err_m = efficiency(k_m, n_m)
        eff_d, err_d = efficiency(k_d, n_d)
        sf, sf_err = scale_factor(k_d, n_d, k_m, n_m)
        rows.append(
            {
                "working_point": name,
                "mc_pass": k_m, "mc_jets": n_m, "eff_mc": eff_m, "eff_mc_err": err_m,
                "data_pass": k_d, "data_jets": n_d, "eff_data": eff_d, "eff_data_err": err_d,
                "sf": sf, "sf_err": sf_err,
                "deviation_sigma": (1 - sf) / sf_err if sf_err > 0 else float("nan"),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| working point | MC pass / jets | eff MC | data pass / jets | eff data | true SF "
        "| (1-SF)/err |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['working_point']} | {r['mc_pass']} / {r['mc_jets']} "
            f"| {r['eff_mc']:.3f} +- {r['eff_mc_err']:.3f} | {r['data_pass']} / {r['data_jets']} "
            f"| {r['eff_data']:.3f} +- {r['eff_data_err']:.3f} "
            f"| {r['sf']:.3f} +- {r['sf_err']:.3f} "
            f"| {r['deviation_sigma']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mc", type=Path, nargs="*", default=[], help="zbb simulation files")
    ap.add_argument("--data", type=Path, nargs="*", default=[], help="zbb --tune data files")
    ap.add_argument("--generate", action="store_true", help="generate the samples (into --out)")
    ap.add_argument("--events", type=int, default=3000, help="events per generated file")
    ap.add_argument("--seeds-mc", default="501", help="comma-separated seeds of the MC files")
    ap.add_argument("--seeds-data", default="601", help="comma-separated seeds of the data files")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tagger", default="pnet-lite", help="shipped tagger name or model directory")
    ap.add_argument("--pt-min", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=Path("study_true_sf"))
    args = ap.parse_args(argv)

    from jettag import taggers

    mc_paths, data_paths = list(args.mc), list(args.data)
    if args.generate:
        args.out.mkdir(parents=True, exist_ok=True)
        mc_paths += [_generate("mc", int(s), args) for s in args.seeds_mc.split(",")]
        data_paths += [_generate("data", int(s), args) for s in args.seeds_data.split(",")]
    if not mc_paths or not data_paths:
        ap.error("give --mc and --data files, or --generate")

    tagger = taggers.load(args.tagger)
    start = time.perf_counter()
    mc = bb_jets(mc_paths, tagger, pt_min=args.pt_min)
    data = bb_jets(data_paths, tagger, pt_min=args.pt_min)
    print(f"scored in {time.perf_counter() - start:.0f} s", flush=True)
    rows = table(mc, data)
    print(
        f"\n{args.tagger} XbbVsQCD, bb jets (pT > {args.pt_min:g} GeV, >= 2 B hadrons, in the "
        f"tagger's phase space): MC {int(mc['n_events'])} events "
        f"({', '.join(p.name for p in mc_paths)}), pseudo-data {int(data['n_events'])} events "
        f"({', '.join(p.name for p in data_paths)})\n"
    )
    print(markdown(rows))
    if args.generate or args.out.exists():
        args.out.mkdir(parents=True, exist_ok=True)
        record = {
            "tagger": args.tagger,
            "pt_min": args.pt_min,
            "mc": [str(p) for p in mc_paths],
            "data": [str(p) for p in data_paths],
            "rows": rows,
        }
        (args.out / "true_sf.json").write_text(json.dumps(record, indent=1))
        (args.out / "true_sf.md").write_text(markdown(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
