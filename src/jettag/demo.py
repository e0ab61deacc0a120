"""``jettag demo``: the main job on the embedded default.

It generates the default sample set (simulation of QCD, Z->bb, the wide X->bb
resonance and muon-enriched QCD, plus Z->bb pseudo-data), prints the physics
checks of the generator, then scores the Z->bb and QCD jets with the shipped
reference taggers and prints their Xbb-vs-QCD performance (``jettag evaluate``'s
table and ROC plot, written to ``outdir/tagging``). Later stages (DDT, scale
factors) extend it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from jettag import taggers
from jettag.evaluate import evaluate_scores, markdown_table, score_files, write_results
from jettag.generator import generate, validation

__all__ = ["DEMO_SAMPLES", "run_demo"]

#: (file stem, process, tune, fraction of --events) of the demo sample set.
DEMO_SAMPLES: tuple[tuple[str, str, str, float], ...] = (
    ("qcd", "qcd", "mc", 1.0),
    ("zbb", "zbb", "mc", 1.0),
    ("xbb", "xbb", "mc", 1.0),
    ("gbb_mu", "gbb_mu", "mc", 0.25),
    ("zbb_data", "zbb", "data", 1.0),
)


def run_demo(*, events: int, seed: int, workers: int, outdir: Path, json_out: Path | None = None) -> int:
    """Generate the demo samples into ``outdir`` and print the checks; 0 if all pass."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for offset, (stem, process, tune, fraction) in enumerate(DEMO_SAMPLES):
        n = max(20, math.ceil(events * fraction))
        path = outdir / f"{stem}.root"
        chunk = max(50, math.ceil(n / workers))
        summary = generate(process, n, seed + offset, path, tune=tune, workers=workers, chunk_size=chunk)
        print(summary.describe())
        paths[stem] = path

    figures: dict[str, float] = {}
    figures.update(validation.zbb_mass_peak(paths["zbb"]))
    figures.update(validation.heavy_flavour_visibility(paths["zbb"], paths["qcd"]))
    figures.update(validation.qcd_bb_fraction(paths["qcd"]))
    figures.update(validation.gbb_muon_purity(paths["gbb_mu"]))
    figures.update(validation.flat_mass_coverage(paths["xbb"]))
    figures.update(validation.pseudodata_shift(paths["zbb"], paths["zbb_data"]))

    print()
    print(f"{'check':<26} {'value':>9}   {'accepted':<15} {'':4}  what")
    all_pass = True
    for name, check in validation.CHECKS.items():
        value = figures[name]
        ok = check.passes(value)
        all_pass &= ok
        span = f"[{check.low:g}, {check.high:g}]"
        print(f"{name:<26} {value:>9.4g}   {span:<15} {'ok' if ok else 'FAIL':4}  {check.what}")
    print()
    print("Reference taggers on the demo's Z->bb (signal) and QCD jets, pT > 300 GeV, 40-250 GeV msoftdrop:")
    results = {}
    for name in taggers.available():
        data = score_files([paths["zbb"], paths["qcd"]], taggers.load(name))
        results[name] = evaluate_scores(data, signals=["Xbb"])
        xbb = results[name]["signals"]["Xbb"]
        figures[f"tagger_{name}_Xbb_auc"] = xbb["auc"]
        figures[f"tagger_{name}_Xbb_eff_at_1pct_qcd"] = xbb["eff_sig_at_mistag_0.01"]
    print(markdown_table(results), end="")
    write_results(results, outdir / "tagging")
    print()
    print(f"samples in {outdir}; {'all checks pass' if all_pass else 'SOME CHECKS FAIL'} "
          f"(small demo samples: expect statistical scatter)")
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=2, sort_keys=True))
    return 0 if all_pass else 1
