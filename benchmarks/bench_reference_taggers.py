"""Throughput of the shipped reference taggers through jettag's inference, on one core.

For each shipped tagger (``jettag.taggers``), on the fat jets of a generated
PFNano file held in memory as uproot arrays (only the branches the model
reads): ``Tagger.score_branches`` with onnxruntime limited to one thread and
the helper input-building thread off (``overlap=False``), so that the whole
path runs on one core: flat columns, input building, inference, scores with
jet structure. Each repetition scores every jet of the file; the figure is the
median over repetitions of jets per second (all fat jets of the file, whatever
their pT).

Target (issue 4): the particle-cloud tagger (pnet-lite) at 2,000 jets/s or more.

Run: python benchmarks/bench_reference_taggers.py FILE.root [--reps 5] [--events 3000]
  (FILE.root: any jettag-generated file, e.g. ``jettag generate --process qcd
  --events 3000 --seed 7 --out qcd.root``)
"""

from __future__ import annotations

import argparse
import json
import time

import awkward as ak
import numpy as np
import uproot

from jettag import taggers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="a PFNano file to score")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (median)")
    parser.add_argument("--events", type=int, default=3000, help="events read from the file")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args()
    results = {}
    for name in taggers.available():
        tagger = taggers.load(name, threads=1, overlap=False, batch_size=512)
        arrays = uproot.open(f"{args.file}:Events").arrays(tagger.branches, entry_stop=args.events)
        n_jets = int(ak.sum(arrays["nFatJet"]))
        tagger.score_branches(arrays)  # warm-up: session, numba
        rates = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            tagger.score_branches(arrays)
            rates.append(n_jets / (time.perf_counter() - t0))
        size = sum(p.stat().st_size for p in taggers.model_dir(name).rglob("*") if p.is_file())
        results[name] = {
            "jets": n_jets,
            "jets_per_s_median": float(np.median(rates)),
            "jets_per_s_all": [round(r) for r in rates],
            "model_dir_bytes": size,
        }
        print(
            f"{name:15s} {np.median(rates):8.0f} jets/s on one core (median of {args.reps}; "
            f"runs {', '.join(f'{r:.0f}' for r in rates)}), {n_jets} jets, model directory {size / 1024:.0f} kB"
        )
    total = sum(r["model_dir_bytes"] for r in results.values())
    print(f"shipped models in total: {total / 1e6:.2f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"taggers": results, "total_bytes": total}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
