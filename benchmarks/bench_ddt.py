"""Time jettag.ddt.derive_map on a 10-million-entry weighted (rho, pt, score) histogram.

The histogram is filled once (not timed): rho 20 bins, pt 6 bins, the tagger
score axis of ``ddt.score_axis`` with 1000 bins. Then ``derive_map`` is timed
for 4 efficiencies, several repetitions, plain and with kNN smoothing; the
median is printed with the target (< 10 s).

    python benchmarks/bench_ddt.py [--entries 10000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import hist
import numpy as np

from jettag import ddt

TARGET_S = 10.0
EFFICIENCIES = (0.1, 0.05, 0.02, 0.01)


def build(entries: int, seed: int = 1, chunk: int = 2_000_000) -> hist.Hist:
    """A QCD-like weighted histogram: the score rises with rho and pT."""
    h = hist.Hist(
        hist.axis.Regular(20, -7.0, -1.0, name="rho"),
        hist.axis.Variable([200, 250, 300, 400, 500, 700, 1200], name="pt"),
        ddt.score_axis("tagger", bins=1000),
        storage=hist.storage.Weight(),
    )
    rng = np.random.default_rng(seed)
    left = entries
    while left > 0:
        n = min(chunk, left)
        rho = rng.uniform(-7.0, -1.0, n)
        pt = 200.0 * np.exp(rng.uniform(0, np.log(6.0), n))
        score = rng.beta(1.0 + 0.5 * (rho + 7.0) + pt / 600.0, 6.0)
        weight = rng.uniform(0.3, 1.7, n) * (pt / 400.0) ** 0.5
        h.fill(rho=rho, pt=pt, score=score, weight=weight)
        left -= n
    return h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    h = build(args.entries)
    print(
        f"filled {h.sum().value:.4g} (weighted) from {args.entries:,} entries, "
        f"shape {h.axes.size}, in {time.perf_counter() - start:.1f} s (not timed below)"
    )

    for smoothing in (None, "knn"):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            dmap = ddt.derive_map(h, EFFICIENCIES, smoothing=smoothing)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        verdict = "OK" if median < TARGET_S else "TOO SLOW"
        print(
            f"derive_map smoothing={smoothing!s:5}: median {median * 1e3:.1f} ms over "
            f"{args.repeat} runs (min {min(times) * 1e3:.1f} ms), {len(EFFICIENCIES)} efficiencies, "
            f"{int(dmap.filled.sum())} filled bins; target < {TARGET_S:.0f} s: {verdict}"
        )


if __name__ == "__main__":
    main()
