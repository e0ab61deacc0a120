"""Time a full set of scale-factor fits (3 working points x 4 pT bins, one proxy); study SF pulls.

Synthetic templates are filled once (not timed) in the layout of
``jettag.scalefactors.templates``: MC flavour categories weighted to the data (4x the data
statistics, weights spread +-20%), pseudo-data with a known SF (the signal's tagger score is
softened in data: ``score**1.25``, so the true SF is ``P(s > c**0.8) / P(s > c)``, exact from
the Beta distribution), and one shape systematic filled from the same MC events: ``bfrag``
for g->bb (b-hadron jets' ln SV mass +-0.08 and score ``**0.95`` / ``**1.05``, which also
migrates jets between pass and fail) or ``jms`` for Z->bb (Z jets' msoftdrop x 1.02 / 0.98).

Then ``fit_all`` (MINOS, stat and per-source errors, retries) is timed on one core: the
median of ``--repeat`` runs is printed with the issue's target (< 60 s), and the fitted SFs
are compared with the true ones. Last, the SF pull ``(fit - truth) / error`` (the MINOS
error on the side of the truth) is studied over ``--toys`` toys drawn from one region's
templates (``fit.toy_inputs``: nuisances drawn from their priors, MC fluctuated within sumw2).

    python benchmarks/bench_sf_fit.py [--proxy gbb|zbb] [--repeat 3] [--toys 300]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from jettag.scalefactors.fit import fit_all, fit_region, toy_inputs  # noqa: E402
from jettag.scalefactors.templates import make_template_hist, region_inputs  # noqa: E402

TARGET_S = 60.0
DATA_SOFTENING = 1.25  # data score = MC-like score ** 1.25 for the signal flavour
WORKING_POINTS = {"L": 0.5, "M": 0.7, "T": 0.85}
PT_EDGES = [250.0, 300.0, 400.0, 550.0, 1000.0]

# per proxy: category -> (fraction, observable generator, score Beta(a, b)); None b: mass-dependent
PROXIES = {
    "gbb": {
        "edges": np.linspace(
            -1.2, 2.4, 15
        ),  # ln(SV mass / GeV); the first bin holds jets without SV
        "signal": "bb",
        "shape": ("bfrag", ("bb", "b")),
        "categories": {
            "bb": (0.25, (1.3, 0.45, 0.05), (4.0, 1.8)),
            "b": (0.15, (1.0, 0.45, 0.05), (2.0, 3.0)),
            "cc": (0.15, (0.7, 0.40, 0.10), (2.2, 3.0)),
            "c": (0.15, (0.3, 0.40, 0.20), (1.3, 4.0)),
            "light": (0.30, (-0.2, 0.50, 0.30), (1.0, 7.0)),
        },
        "n_data": 60_000,
    },
    "zbb": {
        "edges": np.linspace(40.0, 200.0, 17),  # msoftdrop / GeV
        "signal": "zbb",
        "shape": ("jms", ("zbb", "zcc", "zqq")),
        "categories": {
            "zbb": (0.03, (90.0, 8.0, None), (5.0, 1.8)),
            "zcc": (0.02, (90.0, 8.0, None), (2.0, 3.0)),
            "zqq": (0.06, (90.0, 8.0, None), (1.2, 5.0)),
            "qcd": (0.89, None, (1.0, None)),
        },
        "n_data": 200_000,
    },
}


def _observable(rng, spec, generator, n):
    edges = spec["edges"]
    if generator is None:  # QCD msoftdrop: falling
        return 40.0 + rng.exponential(45.0, n)
    mean, width, no_sv = generator
    x = rng.normal(mean, width, n)
    if no_sv is not None:
        x = np.where(rng.random(n) < no_sv, edges[0] + 1e-6, np.clip(x, edges[0] + 0.05, None))
    return x


def _score(rng, beta, observable):
    a, b = beta
    if b is None:  # QCD: the pass rate falls smoothly with msoftdrop (a smooth transfer factor)
        b = 3.0 + (observable - 40.0) / 160.0
    return rng.beta(a, b, len(observable))


def build(proxy: str, seed: int = 1):
    """(MC + pseudo-data template histogram, true SF per working point)."""
    spec = PROXIES[proxy]
    rng = np.random.default_rng(seed)
    h = make_template_hist(proxy, spec["edges"], PT_EDGES, WORKING_POINTS)
    n_data = spec["n_data"]
    source, varied = spec["shape"]
    for name, (fraction, generator, beta) in spec["categories"].items():
        for is_data in (False, True):
            n = rng.poisson(fraction * n_data * (1 if is_data else 4))
            pt = PT_EDGES[0] + rng.exponential(180.0, n)
            obs = _observable(rng, spec, generator, n)
            score = _score(rng, beta, obs)
            if is_data:
                if name == spec["signal"]:
                    score = score**DATA_SOFTENING
                _fill(h, "data", "nominal", score, pt, obs, np.ones(n))
                continue
            weight = 0.25 * rng.uniform(0.8, 1.2, n)
            _fill(h, name, "nominal", score, pt, obs, weight)
            if name in varied:
                for side, sign in (("up", 1), ("down", -1)):
                    if proxy == "gbb":
                        shifted, vscore = obs + 0.08 * sign, score ** (1 - 0.05 * sign)
                    else:
                        shifted, vscore = obs * (1 + 0.02 * sign), score
                    _fill(h, name, f"{source}_{side}", vscore, pt, shifted, weight)
    a, b = spec["categories"][spec["signal"]][2]
    truth = {
        wp: float(stats.beta.sf(c ** (1 / DATA_SOFTENING), a, b) / stats.beta.sf(c, a, b))
        for wp, c in WORKING_POINTS.items()
    }
    return h, truth


def _fill(h, sample, variation, score, pt, obs, weight):
    for wp, cut in WORKING_POINTS.items():
        h.fill(
            sample, variation, wp, np.where(score > cut, "pass", "fail"), pt, obs, weight=weight
        )  # by position


def _table(results, truth) -> None:
    """Fitted against true SF, as a markdown table."""
    print(
        "\n| WP | pT [GeV] | data pass / fail | SF fit | true SF | pull | stat | sources | status |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        true, where = truth[r.working_point], f"{r.working_point} | {r.pt_low:.0f}-{r.pt_high:.0f}"
        if r.sf is None:
            print(f"| {where} | | - | {true:.3f} | | | | {r.status}: {r.message} |")
            continue
        pull = (r.sf - true) / (r.err_down if r.sf > true else r.err_up)
        sources = ", ".join(f"{k} {v:.3f}" for k, v in r.sources.items())
        print(
            f"| {where} | {r.n_data['pass']:.0f} / {r.n_data['fail']:.0f} "
            f"| {r.sf:.3f} +{r.err_up:.3f} -{r.err_down:.3f} | {true:.3f} | {pull:+.2f} "
            f"| {r.stat:.3f} | {sources} | {r.status}{' (retried)' if r.retries else ''} |"
        )


def _pulls(inputs, truth: float, toys: int, seed: int) -> None:
    """SF pulls over toys drawn from one region's templates."""
    rng = np.random.default_rng(seed)
    pulls, failed, start = [], 0, time.perf_counter()
    for _ in range(toys):
        r = fit_region(toy_inputs(inputs, rng, truth_sf=truth), breakdown=False)
        if r.sf is None:
            failed += 1
            continue
        pulls.append((r.sf - truth) / (r.err_down if r.sf > truth else r.err_up))
    n = len(pulls)
    mean, width = float(np.mean(pulls)), float(np.std(pulls, ddof=1))
    print(
        f"\npulls, working point {inputs.working_point}, pT {inputs.pt_edges[0]:.0f}-"
        f"{inputs.pt_edges[1]:.0f} GeV, truth SF {truth:.3f}: {n} toys fitted ({failed} failed) "
        f"in {time.perf_counter() - start:.1f} s\n"
        f"  mean  {mean:+.3f} +- {width / np.sqrt(n):.3f}  (issue: |mean| < 0.1)\n"
        f"  width {width:.3f} +- {width / np.sqrt(2 * (n - 1)):.3f}  (issue: within 10% of 1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", choices=sorted(PROXIES), default="gbb")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--toys", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    h, truth = build(args.proxy, args.seed)
    print(
        f"{args.proxy}: templates filled in {time.perf_counter() - start:.1f} s (not timed); "
        f"{len(WORKING_POINTS)} working points x {len(PT_EDGES) - 1} pT bins, "
        f"{len(h.axes[5])} observable bins, samples {list(h.axes['sample'])}, "
        f"variations {list(h.axes['variation'])}"
    )
    times, cpu = [], []
    for _ in range(args.repeat):
        wall, proc = time.perf_counter(), time.process_time()
        results = fit_all(h, args.proxy)
        times.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - proc)
    median = statistics.median(times)
    print(
        f"full set ({len(results)} fits, MINOS + stat + per-source errors, "
        f"{sum(r.status == 'ok' for r in results)} ok): median {median:.2f} s wall "
        f"({statistics.median(cpu):.2f} s CPU) over {args.repeat} runs "
        f"{[round(t, 2) for t in times]}; target < {TARGET_S:.0f} s: "
        f"{'PASS' if median < TARGET_S else 'FAIL'}"
    )
    _table(results, truth)
    inputs = region_inputs(h, proxy=args.proxy, working_point="M", pt_bin=1)
    _pulls(inputs, truth["M"], args.toys, args.seed + 1000)


if __name__ == "__main__":
    main()
