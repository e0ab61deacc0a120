"""DDT closure and sculpting study (issue 9): derive maps on one QCD sample, test on another.

For each score (n2b1, a tagger trained with ``--mass-weighting none``, pnet-lite)
this runs the user's commands:

    jettag ddt histogram DERIVE.root --score ... --out NAME/hist_DERIVE.root   (one per file)
    jettag ddt derive NAME/hist_*.root --out NAME/map
    jettag ddt report TEST.root ... --map NAME/map/ddt_map.json --signal ... --derivation ...

and checks the acceptance figures of issue 9 on the independent test sample:

* flat QCD efficiency at 5% and 1%: over the (rho, pT) bins expecting at least 50
  effective passing jets, chi2 per bin <= 1.5 and no bin more than 30% off;
  the spread and the same figures for a fixed cut are printed beside them;
* sculpting at 5%: DDT 1/JSD >= 80% of the random-cut ceiling (at least 50,000
  test jets), and for n2b1 >= 5x the fixed cut's.

Both figures are noisy on one test sample: a chi2 over 4-6 bins, and a 1/JSD
that scatters like a chi-square over the 21 mass bins (about a quarter of purely random
cuts fall below 80% of the ceiling). ``--folds`` therefore also cross-validates:
each derivation file in turn is the test sample of a map derived from the other
files; the closure chi2 is pooled over the tested bins of all folds and the
1/JSD fractions are averaged (with their standard error).

Samples used for the closing note of issue 9 (seeds recorded; generated once,
outside CI, with ``jettag generate --process qcd --workers 2``):
derivation seeds 201-205 (100,000 events each), test seeds 301-302 (60,000 each),
signals zbb seed 401 and xbb seed 402 (10,000 each); the ``--mass-weighting none``
tagger: ``jettag train train_x{bb,cc,qq}.root train_qcd.root --recipe bdt-hl
--mass-weighting none --max-jets-per-file 20000 --threads 1`` on seeds 101-104
(the shipped taggers' training files).

Run:  python benchmarks/study_ddt_closure.py --derive qcd_ddt_20{1,2,3,4,5}.root \
        --test qcd_closure_30{1,2}.root --signal zbb_401.root xbb_402.root \
        --nomw-tagger bdt-hl-nomw --closure-rho-merge 3 --folds --out study_ddt
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EFFICIENCIES = "0.005,0.01,0.02,0.05"
RHO_BINS = "12,-7,-1"
MIN_TEST_JETS = 50_000


def _scores(args: argparse.Namespace) -> dict[str, list[str]]:
    out = {"n2b1": ["--score", "n2b1", "--msd-range", "40,250"]}
    if args.nomw_tagger:
        out["nomw"] = ["--score", str(args.nomw_tagger), "--discriminant", "XbbVsQCD"]
    out["pnet-lite"] = ["--score", "pnet-lite", "--discriminant", "XbbVsQCD"]
    return {k: v for k, v in out.items() if not args.only or k in args.only}


def _jettag(*argv: str) -> None:
    cmd = ["jettag", *argv]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL if "histogram" in argv else None)
    print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def _run(name: str, score: list[str], args: argparse.Namespace) -> dict:
    out = args.out / (name + ("-unweighted" if args.unweighted else ""))
    out.mkdir(parents=True, exist_ok=True)
    maps = out / ("map" if args.smoothing == "none" else f"map-{args.smoothing}")
    report_dir = out / ("report" if args.smoothing == "none" else f"report-{args.smoothing}")
    common = [*score, "--workers", str(args.workers), *(["--unweighted"] if args.unweighted else [])]
    hists = []
    for path in args.derive:
        h = out / f"hist_{path.stem}.root"
        if not h.exists():
            _jettag("ddt", "histogram", str(path), *common, "--rho-bins", RHO_BINS, "--out", str(h))
        hists.append(str(h))
    smoothing = ["--smoothing", args.smoothing] if args.smoothing != "none" else []
    _jettag(
        "ddt", "derive", *hists, "--efficiencies", EFFICIENCIES, *smoothing, "--out", str(maps), "--force",
    )
    signals = [a for s in args.signal for a in ("--signal", str(s))]
    _jettag(
        "ddt", "report", *map(str, args.test), "--map", str(maps / "ddt_map.json"),
        *common, *signals, "--derivation", *hists, "--out", str(report_dir), "--force",
    )
    report = json.loads((report_dir / "report.json").read_text())
    if args.closure_rho_merge > 1:  # the closure in wider rho bins, for the 1% working point
        merged = report_dir.with_name(report_dir.name + f"-rho-merge{args.closure_rho_merge}")
        _jettag(
            "ddt", "report", *map(str, args.test), "--map", str(maps / "ddt_map.json"), *common,
            "--derivation", *hists, "--closure-rho-merge", str(args.closure_rho_merge),
            "--efficiencies", "0.01,0.05", "--out", str(merged), "--force",
        )
        report["merged"] = json.loads((merged / "report.json").read_text())
    return report


def _folds(name: str, score: list[str], args: argparse.Namespace) -> list[dict]:
    """k-fold cross-validation over the derivation files: each file in turn is the test
    sample of a map derived from all the others (its seeds never used to derive it)."""
    out = args.out / (name + ("-unweighted" if args.unweighted else ""))
    common = [*score, "--workers", str(args.workers), *(["--unweighted"] if args.unweighted else [])]
    hists = [str(out / f"hist_{p.stem}.root") for p in args.derive]
    reports = []
    for i, test in enumerate(args.derive):
        fold = out / f"fold-{test.stem}"
        fold.mkdir(exist_ok=True)
        others = [h for j, h in enumerate(hists) if j != i]
        if not (fold / "map" / "ddt_map.json").exists():
            _jettag("ddt", "derive", *others, "--efficiencies", EFFICIENCIES, "--out", str(fold / "map"), "--force")
        report = {}
        for merge in sorted({1, args.closure_rho_merge}):
            rdir = fold / ("report" if merge == 1 else f"report-rho-merge{merge}")
            if not (rdir / "report.json").exists():
                _jettag(
                    "ddt", "report", str(test), "--map", str(fold / "map" / "ddt_map.json"), *common,
                    "--derivation", *others, "--closure-rho-merge", str(merge),
                    "--efficiencies", "0.01,0.05", "--out", str(rdir), "--force",
                )
            report[merge] = json.loads((rdir / "report.json").read_text())
        reports.append(report)
    return reports


def _pooled(name: str, reports: list[dict]) -> list[tuple[str, bool | None, str]]:
    """The folds' closure and sculpting figures pooled: chi2 summed over every tested bin
    of every fold; the DDT 1/JSD over its random ceiling averaged over the folds."""
    rows = []
    merges = sorted(reports[0])
    for merge in merges:
        for eps in (0.05, 0.01):
            pulls2, pulls2_map, devs, jets = [], [], [], 0
            for rep in reports:
                wp = next(w for w in rep[merge]["working_points"] if w["efficiency"] == eps)
                c = wp["cuts"]["ddt"]["closure"]
                if not c["n_bins_tested"]:
                    continue
                b = c["bins"]
                tested = np.asarray(b["tested"], dtype=bool)
                rate, err = np.asarray(b["rate"], float)[tested], np.asarray(b["error"], float)[tested]
                pulls2 += list(((rate - eps) / err) ** 2)
                pulls2_map.append(c.get("chi2_per_bin_with_map_error", np.nan) * c["n_bins_tested"])
                devs += list(np.abs(rate / eps - 1))
                jets += c["n_jets_tested"]
            where = f" (rho bins merged by {merge})" if merge > 1 else ""
            figure = f"{name} flat at {eps:g}{where}, {len(reports)} folds pooled"
            if not pulls2:
                rows.append((figure, None, "no bin expects 50 passing jets in any fold"))
                continue
            chi2 = float(np.mean(pulls2))
            ok = bool(chi2 <= 1.5 and max(devs) <= 0.30)
            rows.append(
                (
                    figure,
                    ok,
                    f"DDT: {len(pulls2)} bins ({jets} jets), chi2/bin {chi2:.2f} (with map error "
                    f"{np.nansum(pulls2_map) / len(pulls2):.2f}), max dev {max(devs):.1%}",
                )
            )
    fracs, pct = [], []
    for rep in reports:
        wp = next(w for w in rep[merges[0]]["working_points"] if w["efficiency"] == 0.05)
        s = wp["cuts"]["ddt"]["sculpting"]
        if s.get("fraction_of_random_ceiling") is not None:
            fracs.append(s["fraction_of_random_ceiling"])
            pct.append(s.get("random_cut_percentile"))
    if fracs:
        mean, err = float(np.mean(fracs)), float(np.std(fracs, ddof=1) / np.sqrt(len(fracs)))
        n_jets = sum(r[merges[0]]["n_qcd_jets"] for r in reports)
        rows.append(
            (
                f"{name} 1/JSD at 5% vs ceiling, {len(fracs)} folds",
                bool(mean >= 0.8),
                f"DDT at {mean:.0%} +- {err:.0%} of the random ceiling on average (folds: "
                f"{', '.join(f'{f:.0%}' for f in fracs)}; above {', '.join(f'{p:.0%}' for p in pct)} "
                f"of random cuts); {n_jets} QCD jets in all",
            )
        )
    return rows


def _check(name: str, report: dict) -> list[tuple[str, bool | None, str]]:
    rows = []
    by_eps = {wp["efficiency"]: wp for wp in report["working_points"]}
    checks = [(eps, by_eps[eps], "") for eps in (0.05, 0.01)]
    if "merged" in report:
        k = report["merged"]["closure_rho_merge"]
        checks += [
            (wp["efficiency"], wp, f" (rho bins merged by {k})")
            for wp in report["merged"]["working_points"]
        ]
    for eps, wp, where in checks:
        d, f = wp["cuts"]["ddt"]["closure"], wp["cuts"]["fixed"]["closure"]
        if not d["n_bins_tested"]:
            rows.append(
                (f"{name} flat at {eps:g}{where}", None, f"no bin expects 50 passing jets ({d['n_jets']} jets)")
            )
            continue
        ok = d["chi2_per_bin"] <= 1.5 and d["max_relative_deviation"] <= 0.30
        rows.append(
            (
                f"{name} flat at {eps:g}{where}",
                ok,
                f"DDT: {d['n_bins_tested']} bins ({d['n_jets_tested']} jets), chi2/bin "
                f"{d['chi2_per_bin']:.2f} (with map error {d.get('chi2_per_bin_with_map_error', float('nan')):.2f}, "
                f"map/test variance {d.get('map_to_test_variance', float('nan')):.2f}), max dev "
                f"{d['max_relative_deviation']:.1%}, spread {d['spread']:.3f} | fixed cut: chi2/bin "
                f"{f['chi2_per_bin']:.1f}, max dev {f['max_relative_deviation']:.1%}, spread {f['spread']:.3f}",
            )
        )
    wp = by_eps[0.05]
    s_d, s_f = wp["cuts"]["ddt"]["sculpting"], wp["cuts"]["fixed"]["sculpting"]
    n = s_d["n_background"]
    frac = s_d.get("fraction_of_random_ceiling")
    enough = n >= MIN_TEST_JETS
    rows.append(
        (
            f"{name} 1/JSD at 5% vs ceiling",
            (frac is not None and frac >= 0.8) if enough else None,
            f"DDT {s_d.get('inverse_jsd') or float('nan'):.1f}, fixed {s_f.get('inverse_jsd') or float('nan'):.1f}, "
            f"random ceiling {wp['inverse_jsd_random_cut'] or float('nan'):.1f} "
            f"(16-84% of {wp.get('random_draws')} random cuts: "
            f"{'-'.join(f'{b:.0f}' for b in wp.get('inverse_jsd_random_cut_band') or [])}) -> DDT at "
            f"{(frac or float('nan')):.0%} of ceiling, above {s_d.get('random_cut_percentile') or 0:.0%} "
            f"of random cuts; {n} QCD jets ({report['n_qcd_effective']} effective)"
            + ("" if enough else f" < {MIN_TEST_JETS}: too few"),
        )
    )
    if name.startswith("n2b1"):
        ratio = wp.get("ddt_over_fixed_inverse_jsd")
        rows.append(
            (f"{name} DDT 1/JSD >= 5x fixed", ratio is not None and ratio >= 5, f"ratio {ratio or float('nan'):.1f}")
        )
    for sig, eff in wp["cuts"]["ddt"]["signal_efficiency"].items():
        fixed = wp["cuts"]["fixed"]["signal_efficiency"][sig]
        rows.append((f"{name} {sig} efficiency at 5%", None, f"DDT {eff:.3f}, fixed {fixed:.3f}"))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--derive", nargs="+", type=Path, required=True)
    p.add_argument("--test", nargs="+", type=Path, required=True)
    p.add_argument("--signal", nargs="*", type=Path, default=[])
    p.add_argument("--nomw-tagger", type=Path, default=None)
    p.add_argument("--only", nargs="*", default=None, help="n2b1, nomw, pnet-lite")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--closure-rho-merge",
        type=int,
        default=1,
        help="also test the closure at 1%% and 5%% in bins of N merged rho bins",
    )
    p.add_argument("--smoothing", choices=("none", "knn"), default="none", help="jettag ddt derive --smoothing")
    p.add_argument(
        "--unweighted",
        action="store_true",
        help="derive and test on unweighted jets (the method's closure with the sample's full "
        "statistics; the pT-hat-biased sample then stands for a QCD sample of another spectrum)",
    )
    p.add_argument(
        "--folds",
        action="store_true",
        help="also cross-validate: each --derive file in turn tests a map derived from the "
        "others; closure chi2 pooled over all folds' bins, 1/JSD fractions averaged",
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    failed = False
    for name, score in _scores(args).items():
        report = _run(name, score, args)
        rows = _check(name, report)
        if args.folds:
            rows += _pooled(name, _folds(name, score, args))
        name = name + ("-unweighted" if args.unweighted else "")
        summary[name] = [{"figure": r[0], "pass": r[1], "detail": r[2]} for r in rows]
        for figure, ok, detail in rows:
            mark = "PASS" if ok else ("----" if ok is None else "FAIL")
            failed |= ok is False
            print(f"[{mark}] {figure}: {detail}", flush=True)
    (args.out / ("summary-unweighted.json" if args.unweighted else "summary.json")).write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
