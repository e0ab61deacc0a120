"""Flat-mass weights on generated samples (issue 9): derived on one sample, checked on another.

Runs ``jettag flatten`` on a signal sample (1D and 2D, flat and matched to QCD),
applies the written correctionlib weights to an independent signal sample, and
checks that the weighted msoftdrop distribution is flat (or equal to that of an
independent QCD sample) in every bin: the pull of each bin's fraction, with the
statistical errors of the test sample (sum w^2), of the weights themselves (their
up/down) and, when matched, of the QCD comparison sample, is printed; a bin
passes at |pull| <= 3 and the set at chi2/ndf <= 2, over the bins holding at
least 20 effective weighted test jets (and QCD jets, when matched; the others
are counted and printed).

Samples of the closing note of issue 9 (``jettag generate --workers 2``):
weights from ``train_xbb.root`` (xbb, seed 101, 16,000 events) and QCD
``train_qcd.root`` (seed 104, 32,000); tested on ``xbb_402.root`` (xbb, seed
402, 10,000) against QCD ``qcd_closure_301.root`` (seed 301, 60,000).

Run: python benchmarks/study_flatmass.py --derive train_xbb.root --reference train_qcd.root \
        --test xbb_402.root --test-reference qcd_closure_301.root --out study_flatmass
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import awkward as ak
import correctionlib
import numpy as np
import uproot

from jettag import flatmass

MSD = np.arange(40.0, 251.0, 10.0)
#: a bin is tested when the weighted test sample holds this many effective jets in it
#: (fewer: the Gaussian error of a weighted sum does not hold; flatmass.STAT_LIMIT)
MIN_EFFECTIVE = flatmass.STAT_LIMIT


def _jets(path: Path) -> dict[str, np.ndarray]:
    t = uproot.open(f"{path}:Events")
    a = t.arrays(["FatJet_pt", "FatJet_eta", "FatJet_msoftdrop", "genWeight"])
    w = ak.broadcast_arrays(a["genWeight"], a["FatJet_pt"])[0]
    flat = {k: ak.to_numpy(ak.flatten(v)).astype(float) for k, v in
            {"pt": a["FatJet_pt"], "eta": a["FatJet_eta"], "msoftdrop": a["FatJet_msoftdrop"], "weight": w}.items()}
    sel = (flat["pt"] > 300) & (np.abs(flat["eta"]) < 2.4) & (flat["msoftdrop"] >= MSD[0]) & (flat["msoftdrop"] < MSD[-1])
    return {k: v[sel] for k, v in flat.items()}


def _fractions(msd, pt, w, pt_edges):
    """Per (msd[, pt]) bin: weighted sum and sum w^2."""
    if pt_edges is None:
        s, _ = np.histogram(msd, MSD, weights=w)
        s2, _ = np.histogram(msd, MSD, weights=w**2)
    else:
        p = np.clip(pt, pt_edges[0], pt_edges[-1] - 1e-6)
        s, _, _ = np.histogram2d(msd, p, [MSD, pt_edges], weights=w)
        s2, _, _ = np.histogram2d(msd, p, [MSD, pt_edges], weights=w**2)
    return s, s2


def _check(label: str, weights_file: Path, test: dict, ref: dict | None, two_d: bool) -> bool:
    corr = next(iter(correctionlib.CorrectionSet.from_file(str(weights_file)).values()))
    pt_edges = flatmass.PT_EDGES if two_d else None
    args = (test["msoftdrop"], test["pt"] if two_d else None)
    w = flatmass.evaluate(corr, *args) * test["weight"]
    w_up = flatmass.evaluate(corr, *args, systematic="up") * test["weight"]
    s, s2 = _fractions(test["msoftdrop"], test["pt"], w, pt_edges)
    s_up, _ = _fractions(test["msoftdrop"], test["pt"], w_up, pt_edges)
    # fractions per pT row (2D flat: flatness is within each pT bin) or overall.
    # The test sample's error is Pearson's, from the expectation: a bin expecting a
    # fraction f of a weighted total T with weights of mean square/mean k has
    # variance f k / T (the observed sum w^2 underestimates it where heavy jets
    # happen to be missing); the weights' own error and the QCD sample's add.
    per_row = two_d and ref is None
    tot = s.sum(axis=0, keepdims=True) if per_row else s.sum()
    k = (s2.sum(axis=0, keepdims=True) if per_row else s2.sum()) / tot
    frac = s / tot
    ref_eff = None
    if ref is None:
        expect = np.ones_like(frac) / frac.shape[0]
        extra = 0.0
    else:
        r, r2 = _fractions(ref["msoftdrop"], ref["pt"], ref["weight"], pt_edges)
        expect = r / r.sum()
        extra = r2 / r.sum() ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_eff = np.where(r2 > 0, r**2 / r2, 0.0)
    err2 = expect * k / tot + ((s_up - s) / tot) ** 2 + extra
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff_bin = np.where(s2 > 0, s**2 / s2, 0.0)
    ok_bins = (n_eff_bin >= MIN_EFFECTIVE) & (expect > 0)
    if ref_eff is not None:
        ok_bins &= ref_eff >= MIN_EFFECTIVE
    n_small = int(((s2 > 0) & ~ok_bins).sum())
    pull = np.where(ok_bins, (frac - expect) / np.sqrt(np.where(ok_bins, err2, 1)), 0.0)
    n = int(ok_bins.sum())
    chi2 = float(np.sum(pull[ok_bins] ** 2) / max(n, 1))
    worst = float(np.abs(pull[ok_bins]).max())
    if worst > 3:
        i = np.unravel_index(np.argmax(np.where(ok_bins, np.abs(pull), 0)), pull.shape)
        print(f"  worst bin {i}: fraction {frac[i]:.4g} expected {expect[i]:.4g} pull {pull[i]:.2f} test n_eff {n_eff_bin[i]:.0f}" + ("" if ref_eff is None else f" QCD n_eff {ref_eff[i]:.0f}"))
    n_eff = s.sum() ** 2 / s2.sum()
    good = worst <= 3 and chi2 <= 2
    print(
        f"[{'PASS' if good else 'FAIL'}] {label}: {n} bins ({n_small} with fewer than "
        f"{MIN_EFFECTIVE:g} effective test (or QCD) jets not tested), chi2/ndf {chi2:.2f}, largest |pull| {worst:.2f}; "
        f"test jets {len(w)} ({n_eff:.0f} effective after weighting)"
        + ("" if ref is None else f", QCD comparison {len(ref['weight'])} jets")
    )
    return good


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--derive", nargs="+", type=Path, required=True)
    p.add_argument("--reference", nargs="+", type=Path, required=True)
    p.add_argument("--test", nargs="+", type=Path, required=True)
    p.add_argument("--test-reference", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    test = {k: np.concatenate([_jets(f)[k] for f in args.test]) for k in ("msoftdrop", "pt", "weight", "eta")}
    ref = {k: np.concatenate([_jets(f)[k] for f in args.test_reference]) for k in ("msoftdrop", "pt", "weight")}
    ok = True
    for label, extra, matched, two_d in (
        ("1D flat", [], False, False),
        ("2D flat (flat in msoftdrop per pT bin)", ["--pt"], False, True),
        ("1D matched to QCD", ["--reference", *map(str, args.reference)], True, False),
        ("2D matched to QCD", ["--pt", "--reference", *map(str, args.reference)], True, True),
    ):
        out = args.out / (label.split(" (")[0].replace(" ", "_") + ".json")
        cmd = ["jettag", "flatten", *map(str, args.derive), *extra, "--out", str(out), "--force"]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        ok &= _check(label, out, test, ref if matched else None, two_d)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
