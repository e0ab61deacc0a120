"""The class-imbalance study: an Xcc-vs-Xbb tagger trained with few Xcc jets.

A charm tagger is trained where charm is rare: the Xcc jets are subsampled to
``ratio`` times the Xbb jets (r = 0.05 by default). Each class-imbalance
technique of :mod:`jettag.training.fit` is compared with plain training by
stratified k-fold cross-validation (the same folds for every technique): for
each fold, a network is trained on the other folds and scored on it. Figures,
with Xcc as the signal: background rejection ``1/eps_bb`` at ``eps_cc`` = 0.2
and 0.8, and the average precision; the table gives their mean and the
standard deviation over the folds, and the per-fold ratios to plain training
(the folds are shared, so the ratios are free of the fold-to-fold scatter).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from jettag import performance
from jettag.samples.dataset import load_jets
from jettag.training import models
from jettag.training.fit import TrainConfig, fit_network, predict
from jettag.training.standardisation import standardised_preprocess

__all__ = ["METHODS", "imbalance_study", "imbalance_table"]

CLASSES = ("Xcc", "Xbb")

#: technique -> settings over the plain training configuration
METHODS: dict[str, dict[str, Any]] = {
    "unweighted": {},
    "class-weighted": {"class_weights": "balanced"},
    "focal loss (gamma 2)": {"loss": "focal", "focal_gamma": 2.0},
    "balanced batches": {"sampling": "balanced"},
}


def _folds(label: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per jet, stratified by class."""
    fold = np.empty(len(label), dtype=np.int64)
    for cls in np.unique(label):
        idx = rng.permutation(np.flatnonzero(label == cls))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def imbalance_study(
    xbb_files: Sequence[str | Path],
    xcc_files: Sequence[str | Path],
    *,
    ratio: float = 0.05,
    folds: int = 5,
    methods: Sequence[str] = tuple(METHODS),
    architecture: str = "deepsets",
    config: TrainConfig | None = None,
    seed: int = 1,
    max_jets_per_file: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the study; returns per-method, per-fold figures and their mean and spread."""
    log = log or (lambda line: None)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; known: {list(METHODS)}")
    config = config or TrainConfig(epochs=10, batch_size=256, learning_rate=3e-3)
    files = [*xcc_files, *xbb_files]
    spec = models.input_blocks(architecture)
    spec["output_names"] = [f"prob{c}" for c in CLASSES]
    spec = standardised_preprocess(files, spec, identity_blocks=models.IDENTITY_BLOCKS, classes=CLASSES)
    data = load_jets(files, preprocess=spec, classes=CLASSES, max_jets_per_file=max_jets_per_file)
    rng = np.random.default_rng(seed)
    cc, bb = np.flatnonzero(data.label == 0), np.flatnonzero(data.label == 1)
    n_cc = round(ratio * len(bb))
    if n_cc < folds or n_cc > len(cc):
        raise ValueError(f"ratio {ratio}: needs {n_cc} Xcc jets, have {len(cc)} (and at least {folds})")
    keep = np.sort(np.concatenate([rng.choice(cc, n_cc, replace=False), bb]))
    data = data.subset(keep)
    fold = _folds(data.label, folds, rng)
    log(f"{len(data)} jets: Xcc {n_cc}, Xbb {len(bb)} (r = {n_cc / len(bb):.3f}); {folds} folds")
    per_method: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for f in range(folds):
        train, test = fold != f, fold == f
        for method in methods:
            cfg = replace(config, seed=seed + f, **METHODS[method])
            net = models.build_model(architecture, len(CLASSES), seed=cfg.seed)
            net, _ = fit_network(
                net, {k: v[train] for k, v in data.inputs.items()}, data.label[train], None, cfg,
                input_names=spec["input_names"],
            )
            score = predict(net, {k: data.inputs[k][test] for k in spec["input_names"]})[:, 0]
            sig, bkg = score[data.label[test] == 0], score[data.label[test] == 1]
            roc = performance.roc_curve(sig, bkg)
            figures = {
                "inv_eff_bb_at_eff_cc_0.2": performance.background_rejection_at(roc, 0.2),
                "inv_eff_bb_at_eff_cc_0.8": performance.background_rejection_at(roc, 0.8),
                "average_precision": performance.average_precision(sig, bkg),
                "auc": roc.auc,
            }
            per_method[method].append(figures)
            log(f"fold {f + 1}/{folds} {method}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
    summary = {
        m: {
            k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows], ddof=1))}
            for k in rows[0]
        }
        for m, rows in per_method.items()
    }
    # the same folds for every method: per-fold ratios to plain training cancel the
    # fold-to-fold scatter that the test folds' few Xcc jets cause
    paired = {}
    if "unweighted" in per_method:
        base = per_method["unweighted"]
        for m, rows in per_method.items():
            ratios = {k: [r[k] / b[k] for r, b in zip(rows, base, strict=True)] for k in rows[0]}
            paired[m] = {
                k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1))} for k, v in ratios.items()
            }
    return {
        "ratio": n_cc / len(bb),
        "n_xcc": int(n_cc),
        "n_xbb": len(bb),
        "folds": folds,
        "architecture": architecture,
        "train_config": config.to_dict(),
        "seed": seed,
        "per_fold": per_method,
        "summary": summary,
        "ratio_to_unweighted": paired,
    }


def imbalance_table(study: dict[str, Any]) -> str:
    """The study as a markdown table (mean +- fold standard deviation)."""

    def cell(entry: dict[str, float], digits: int) -> str:
        return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"

    lines = [
        f"Xcc vs Xbb, imbalance r = {study['ratio']:.3f} ({study['n_xcc']} Xcc, {study['n_xbb']} Xbb jets), "
        f"{study['folds']}-fold cross-validation, {study['architecture']} network",
        "",
        "| method | 1/eps_bb @ eps_cc = 0.2 | 1/eps_bb @ eps_cc = 0.8 | average precision | AUC |",
        "|---|---|---|---|---|",
    ]
    for method, s in study["summary"].items():
        lines.append(
            f"| {method} | {cell(s['inv_eff_bb_at_eff_cc_0.2'], 1)} | {cell(s['inv_eff_bb_at_eff_cc_0.8'], 2)} "
            f"| {cell(s['average_precision'], 3)} | {cell(s['auc'], 3)} |"
        )
    if study.get("ratio_to_unweighted"):
        lines += [
            "",
            "Per-fold ratio to unweighted training (same folds; mean ± standard deviation):",
            "",
            "| method | 1/eps_bb @ eps_cc = 0.2 | 1/eps_bb @ eps_cc = 0.8 | average precision |",
            "|---|---|---|---|",
        ]
        for method, r in study["ratio_to_unweighted"].items():
            lines.append(
                f"| {method} | {cell(r['inv_eff_bb_at_eff_cc_0.2'], 2)} | {cell(r['inv_eff_bb_at_eff_cc_0.8'], 2)} "
                f"| {cell(r['average_precision'], 3)} |"
            )
    return "\n".join(lines) + "\n"
