"""Tagger performance the way the tagging papers report it: tables and plots.

:func:`evaluate_scores` turns per-jet class scores of labelled jets into the
figures of merit, for each signal class against QCD, on the discriminant
``s = p_signal / (p_signal + p_QCD)`` (ParticleNet's ``XbbVsQCD``):

* ROC curve (signal efficiency against QCD mis-identification), AUC and
  average precision;
* signal efficiency at 1% and 0.1% QCD mis-identification;
* background rejection 1/eps_QCD at signal efficiencies 0.2 and 0.8;
* mass sculpting: 1/JSD between the msoftdrop distributions of passing and
  failing QCD jets at a fixed QCD efficiency (5% by default), with the same
  figure for random selections of that efficiency (median of 20): the largest
  1/JSD these many jets can show, since finite samples never give JSD = 0.

Jets count one each (the samples' pT-hat-biased spectra, ``genWeight`` not
applied) unless ``weighted``; :mod:`jettag.performance` computes the figures.
:func:`score_files` runs a :class:`~jettag.tagger.Tagger` (or reads a score
branch such as NanoAOD's ``FatJet_particleNet_XbbVsQCD``) on labelled files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag import performance
from jettag.samples.dataset import JetDataset, load_jets
from jettag.samples.labelling import TAGGER_CLASSES, JetSelection

__all__ = [
    "MISTAG_POINTS",
    "SIGNAL_EFFICIENCIES",
    "evaluate_scores",
    "markdown_table",
    "plot_evaluation",
    "score_files",
]

MISTAG_POINTS: tuple[float, ...] = (0.01, 0.001)
SIGNAL_EFFICIENCIES: tuple[float, ...] = (0.2, 0.8)


def score_files(
    files: Sequence[str | Path],
    tagger: Any = None,
    *,
    score_branch: str | None = None,
    processes: Sequence[str | None] | None = None,
    selection: JetSelection | None = None,
    max_jets_per_file: int | None = None,
) -> JetDataset:
    """Labelled jets of ``files`` with scores from ``tagger`` or a branch.

    With ``score_branch`` (a per-jet ``FatJet_*`` discriminant), the scores
    array has one column, used for every signal class.
    """
    if (tagger is None) == (score_branch is None):
        raise ValueError("give a tagger or a score branch (one of them)")
    if tagger is not None:
        branches = tuple(tagger.branches)

        def scorer(arrays):
            return _tagger_scores(tagger, arrays)
    else:
        branches = (score_branch,)

        def scorer(arrays):
            return ak.to_numpy(ak.flatten(arrays[score_branch])).astype(np.float64)[:, None]

    return load_jets(
        files,
        scorer=scorer,
        scorer_branches=branches,
        processes=processes,
        selection=selection,
        max_jets_per_file=max_jets_per_file,
    )


def _tagger_scores(tagger: Any, arrays: Any) -> np.ndarray:
    scores = ak.flatten(tagger.score_branches(arrays))
    return np.stack([ak.to_numpy(scores[c]) for c in tagger.class_names], axis=1)


def discriminant(scores: np.ndarray, class_names: Sequence[str], signal: str) -> np.ndarray:
    """``p_signal / (p_signal + p_QCD)`` (or the single score column as it is)."""
    if scores.shape[1] == 1:
        return scores[:, 0]
    s = scores[:, list(class_names).index(signal)].astype(np.float64)
    b = scores[:, list(class_names).index("QCD")].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s + b > 0, s / (s + b), 0.0)


def evaluate_scores(
    data: JetDataset,
    *,
    class_names: Sequence[str] = TAGGER_CLASSES,
    signals: Sequence[str] | None = None,
    weighted: bool = False,
    sculpting_efficiency: float = 0.05,
) -> dict[str, Any]:
    """Figures of merit of each signal class against QCD (JSON-ready), plus ROC points."""
    if data.scores is None:
        raise ValueError("the jets have no scores")
    classes = data.classes
    qcd = data.label == classes.index("QCD")
    if not qcd.any():
        raise ValueError("no QCD jets among the evaluation files")
    present = [c for i, c in enumerate(classes) if c != "QCD" and (data.label == i).any()]
    signals = [s for s in (signals or present) if s in present]
    if not signals:
        raise ValueError(f"no signal jets ({', '.join(c for c in classes if c != 'QCD')}) among the evaluation files")
    weights = data.gen_weight if weighted else np.ones(len(data))
    out: dict[str, Any] = {"n_jets": data.counts(), "weighted": weighted, "signals": {}}
    for signal in signals:
        sig = data.label == classes.index(signal)
        disc = discriminant(data.scores, class_names, signal)
        roc = performance.roc_curve(disc[sig], disc[qcd], weights[sig], weights[qcd])
        entry: dict[str, Any] = {
            "auc": roc.auc,
            "average_precision": performance.average_precision(disc[sig], disc[qcd], weights[sig], weights[qcd]),
        }
        for m in MISTAG_POINTS:
            entry[f"eff_sig_at_mistag_{m:g}"] = performance.signal_efficiency_at(roc, m)
        for e in SIGNAL_EFFICIENCIES:
            entry[f"inv_eff_bkg_at_eff_sig_{e:g}"] = performance.background_rejection_at(roc, e)
        if signal == "Xbb" or len(signals) == 1:
            sculpt = performance.mass_sculpting(
                disc[qcd], data.msoftdrop[qcd], sculpting_efficiency, weights=weights[qcd]
            )
            # the same figure for random selections of the same efficiency: the floor of
            # JSD (ceiling of 1/JSD) that these many QCD jets allow without any sculpting
            rng = np.random.default_rng(12345)
            floor = [
                performance.mass_sculpting(
                    rng.random(int(qcd.sum())), data.msoftdrop[qcd], sculpting_efficiency, weights=weights[qcd]
                )["inverse_jsd"]
                for _ in range(20)
            ]
            entry["mass_sculpting"] = {
                "qcd_efficiency": sculpting_efficiency,
                **sculpt,
                "inverse_jsd_random_selection": float(np.median(floor)),
            }
        keep = np.unique(np.geomspace(1, len(roc.eff_background), 300).astype(int) - 1)
        entry["roc"] = {
            "eff_signal": roc.eff_signal[keep].tolist(),
            "eff_background": roc.eff_background[keep].tolist(),
        }
        out["signals"][signal] = entry
    return out


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per (tagger, signal): the figures of merit, as a markdown table."""
    head = (
        "| tagger | signal vs QCD | AUC | AP | eff_sig @ 1% QCD | eff_sig @ 0.1% QCD "
        "| 1/eff_QCD @ eff_sig 0.2 | 1/eff_QCD @ eff_sig 0.8 | 1/JSD | 1/JSD, random cut |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, res in results.items():
        for signal, e in res["signals"].items():
            jsd = e.get("mass_sculpting", {}).get("inverse_jsd")
            floor = e.get("mass_sculpting", {}).get("inverse_jsd_random_selection")
            rows.append(
                f"| {name} | {signal} | {e['auc']:.4f} | {e['average_precision']:.4f} "
                f"| {e['eff_sig_at_mistag_0.01']:.3f} | {e['eff_sig_at_mistag_0.001']:.3f} "
                f"| {e['inv_eff_bkg_at_eff_sig_0.2']:.1f} | {e['inv_eff_bkg_at_eff_sig_0.8']:.1f} "
                f"| {'' if jsd is None else f'{jsd:.1f}'} | {'' if floor is None else f'{floor:.1f}'} |"
            )
    return head + "\n".join(rows) + "\n"


def plot_evaluation(results: dict[str, dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """ROC curves (one PNG per signal class, every tagger on it) and, per tagger, the
    QCD msoftdrop shapes of passing and failing jets (Xbb vs QCD), mplhep style."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    signals = sorted({s for r in results.values() for s in r["signals"]})
    written = []
    plt.style.use(mplhep.style.CMS)
    for signal in signals:
        fig, ax = plt.subplots(figsize=(8, 7))
        for name, res in results.items():
            e = res["signals"].get(signal)
            if e is None:
                continue
            eff_s = np.asarray(e["roc"]["eff_signal"])
            eff_b = np.asarray(e["roc"]["eff_background"])
            ok = eff_b > 0
            ax.plot(eff_s[ok], eff_b[ok], label=f"{name} (AUC {e['auc']:.3f})")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_ylim(1e-4, 1)
        ax.set_xlabel(f"{signal} efficiency")
        ax.set_ylabel("QCD mis-identification rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=14)
        ax.set_title("jettag simulation", loc="left", fontsize=16)
        path = out_dir / f"roc_{signal}_vs_QCD.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    for name, res in results.items():
        sculpt = res["signals"].get("Xbb", {}).get("mass_sculpting")
        if sculpt is None or "edges" not in sculpt:
            continue
        fig, ax = plt.subplots(figsize=(8, 7))
        bins = np.asarray(sculpt["edges"])
        mplhep.histplot(sculpt["fail_shape"], bins, ax=ax, label="QCD failing", density=True)
        mplhep.histplot(sculpt["pass_shape"], bins, ax=ax, label="QCD passing", density=True)
        ax.set_xlabel("msoftdrop [GeV]")
        ax.set_ylabel("normalised")
        ax.legend(
            title=f"{name}: Xbb vs QCD at {sculpt['qcd_efficiency']:.0%} QCD eff., 1/JSD {sculpt['inverse_jsd']:.1f}",
            fontsize=13, title_fontsize=13,
        )
        ax.set_title("jettag simulation", loc="left", fontsize=16)
        path = out_dir / f"msd_sculpting_{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def write_results(results: dict[str, dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``evaluation.md`` and the ROC PNGs in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(results, indent=1))
    (out_dir / "evaluation.md").write_text(markdown_table(results))
    return [out_dir / "evaluation.json", out_dir / "evaluation.md", *plot_evaluation(results, out_dir)]
