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

Every figure carries the jets behind it (signal and QCD jets; for a working
point the QCD jets that pass it), and is flagged ``stat_limited`` (marked ``†``
in the table) when fewer than :data:`MIN_BACKGROUND_JETS` QCD jets stand
behind it. A requested setting is never changed: a rejection no QCD jet
measures is a lower limit (``> N``), and 1/JSD at a QCD efficiency these jets
cannot realise is ``n/a`` with the reason.

Jets count one each (the samples' pT-hat-biased spectra, ``genWeight`` not
applied) unless ``weighted``; :mod:`jettag.performance` computes the figures.
:func:`score_files` runs a :class:`~jettag.tagger.Tagger` (or reads a score
branch such as NanoAOD's ``FatJet_particleNet_XbbVsQCD``) on labelled files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag import performance
from jettag.performance import MIN_BACKGROUND_JETS
from jettag.samples.dataset import JetDataset, load_jets
from jettag.samples.labelling import TAGGER_CLASSES, JetSelection

__all__ = [
    "MIN_BACKGROUND_JETS",
    "MISTAG_POINTS",
    "SIGNAL_EFFICIENCIES",
    "evaluate_scores",
    "markdown_table",
    "plot_evaluation",
    "score_files",
    "write_results",
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


def _count(x: float) -> float | int:
    """A jet count for JSON and tables: an int where it is whole."""
    return int(x) if float(x).is_integer() else round(float(x), 2)


def _sculpting(
    score: np.ndarray, mass: np.ndarray, weights: np.ndarray, efficiency: float, weighted: bool
) -> dict[str, Any]:
    """1/JSD at ``efficiency`` and the same figure for random cuts (median of 20)."""
    w = weights if weighted else None
    sculpt = performance.mass_sculpting(score, mass, efficiency, weights=w, background_name="QCD")
    # the same figure for random selections of the same efficiency: the floor of
    # JSD (ceiling of 1/JSD) that these many QCD jets allow without any sculpting
    floor = None
    if sculpt["inverse_jsd"] is not None:
        floor = performance.random_cut_inverse_jsd(mass, efficiency, weights=w)
    return {"qcd_efficiency": efficiency, **sculpt, "inverse_jsd_random_selection": floor}


def evaluate_scores(
    data: JetDataset,
    *,
    class_names: Sequence[str] = TAGGER_CLASSES,
    signals: Sequence[str] | None = None,
    weighted: bool = False,
    sculpting_efficiency: float = 0.05,
) -> dict[str, Any]:
    """Figures of merit of each signal class against QCD (JSON-ready), plus ROC points.

    Per signal class: ``n_signal`` and ``n_background`` jets (and Kish's
    effective numbers ``n_*_effective`` when ``weighted``); the figures
    (``auc``, ``average_precision``, ``eff_sig_at_mistag_<m>``,
    ``inv_eff_bkg_at_eff_sig_<e>``, each a number or None); under ``counts``,
    per figure, the QCD jets behind it (``n_background_pass`` for working
    points), ``stat_limited`` (fewer than :data:`MIN_BACKGROUND_JETS`) and, for a
    rejection no QCD jet measures, ``lower_limit``; ``mass_sculpting`` with its
    own counts, or a None ``inverse_jsd`` and a ``note`` where the requested QCD
    efficiency cannot be realised. No value is infinite.
    """
    if data.scores is None:
        raise ValueError("the jets have no scores")
    if not 0 < sculpting_efficiency < 1:
        raise ValueError(f"the sculpting efficiency must lie in (0, 1), got {sculpting_efficiency}")
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
        entry: dict[str, Any] = {"n_signal": roc.n_signal, "n_background": roc.n_background}
        if weighted:
            entry["n_signal_effective"] = round(roc.n_signal_effective, 2)
            entry["n_background_effective"] = round(roc.n_background_effective, 2)
        whole = {
            "n_signal": roc.n_signal,
            "n_background": roc.n_background,
            "stat_limited": roc.n_background_effective < MIN_BACKGROUND_JETS,
        }
        entry["auc"] = roc.auc
        entry["average_precision"] = performance.average_precision(disc[sig], disc[qcd], weights[sig], weights[qcd])
        counts: dict[str, Any] = {"auc": dict(whole), "average_precision": dict(whole)}
        for m in MISTAG_POINTS:
            point = performance.signal_efficiency_point(roc, m)
            entry[f"eff_sig_at_mistag_{m:g}"] = point.value
            counts[f"eff_sig_at_mistag_{m:g}"] = point.counts(weighted=weighted)
        for e in SIGNAL_EFFICIENCIES:
            point = performance.background_rejection_point(roc, e)
            entry[f"inv_eff_bkg_at_eff_sig_{e:g}"] = point.value
            counts[f"inv_eff_bkg_at_eff_sig_{e:g}"] = point.counts(weighted=weighted)
        entry["counts"] = counts
        if signal == "Xbb" or len(signals) == 1:
            entry["mass_sculpting"] = _sculpting(
                disc[qcd], data.msoftdrop[qcd], weights[qcd], sculpting_efficiency, weighted
            )
        keep = np.unique(np.geomspace(1, len(roc.eff_background), 300).astype(int) - 1)
        entry["roc"] = {
            "eff_signal": roc.eff_signal[keep].tolist(),
            "eff_background": roc.eff_background[keep].tolist(),
        }
        out["signals"][signal] = entry
    return out


def _columns() -> list[tuple[str, str, str]]:
    """The table's figure columns: (key in an evaluation entry, column head, format)."""
    cols = [("auc", "AUC", ".4f"), ("average_precision", "AP", ".4f")]
    cols += [(f"eff_sig_at_mistag_{m:g}", f"eff_sig @ {100 * m:g}% QCD", ".3f") for m in MISTAG_POINTS]
    cols += [(f"inv_eff_bkg_at_eff_sig_{e:g}", f"1/eff_QCD @ eff_sig {e:g}", ".1f") for e in SIGNAL_EFFICIENCIES]
    return cols


def _jets(res: dict[str, Any], signal: str, e: dict[str, Any]) -> str:
    n_sig = e.get("n_signal", res.get("n_jets", {}).get(signal))
    n_bkg = e.get("n_background", res.get("n_jets", {}).get("QCD"))
    text = f"{n_sig} / {n_bkg}"
    if "n_background_effective" in e:
        text += f" (eff. {e['n_signal_effective']:.0f} / {e['n_background_effective']:.0f})"
    return text


def _number(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # an evaluation written before counts were recorded
    return format(value, fmt)


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per (tagger, signal): the jets and the figures of merit, as a markdown table.

    A figure resting on fewer than :data:`MIN_BACKGROUND_JETS` QCD jets is marked
    ``†`` and footnoted with its counts; a rejection no QCD jet measures reads
    ``> N`` (N QCD jets); a figure that could not be taken reads ``n/a (why)``.
    """
    cols = _columns()
    head = (
        "| tagger | signal vs QCD | jets (signal / QCD) | "
        + " | ".join(h for _, h, _ in cols)
        + " | 1/JSD | 1/JSD, random cut |\n"
        + "|---" * (len(cols) + 5)
        + "|\n"
    )
    rows, limited, lower_limits = [], [], False
    weighted = any(res.get("weighted") for res in results.values())
    for name, res in results.items():
        for signal, e in res["signals"].items():
            counts = e.get("counts", {})
            cells, marked = [], []
            for key, label, fmt in cols:
                c = counts.get(key, {})
                if c.get("lower_limit") is not None:
                    cells.append(f"> {_count(c['lower_limit'])}")
                    lower_limits = True
                    continue
                text = _number(e.get(key), fmt)
                if c.get("stat_limited"):
                    text += "†"
                    if "n_background_pass" in c:
                        n = c.get("n_background_pass_effective", c["n_background_pass"])
                        marked.append(f"{label} on {_qcd_jets(n)} passing")
                    else:
                        marked.append(f"{label} on {_qcd_jets(e.get('n_background_effective', e.get('n_background')))}")
                cells.append(text)
            sculpt = e.get("mass_sculpting", {})
            for key in ("inverse_jsd", "inverse_jsd_random_selection"):
                value = sculpt.get(key)
                if not sculpt:
                    cells.append("")
                elif value is None:
                    cells.append(f"n/a ({sculpt['note']})" if key == "inverse_jsd" and "note" in sculpt else "n/a")
                else:
                    cells.append(_number(value, ".1f") + ("†" if sculpt.get("stat_limited") else ""))
            if sculpt.get("stat_limited") and sculpt.get("inverse_jsd") is not None:
                n = sculpt.get("n_background_pass_effective", sculpt.get("n_background_pass"))
                total = sculpt.get("n_background_effective", sculpt.get("n_background"))
                marked.append(f"1/JSD on {_qcd_jets(n)} passing (of {_count(total)})")
            if marked:
                limited.append(f"- {name}, {signal}: " + "; ".join(marked))
            rows.append(f"| {name} | {signal} | {_jets(res, signal, e)} | " + " | ".join(cells) + " |")
    notes = []
    effective = " (Kish effective numbers for weighted jets)" if weighted else ""
    if limited:
        notes.append(
            f"† statistics-limited: fewer than {MIN_BACKGROUND_JETS} QCD jets behind the figure{effective}:"
        )
        notes += limited
    if lower_limits:
        notes.append(
            "> N: fewer than one QCD jet passes that working point, so 1/eff_QCD is only known to exceed "
            f"N, the number of QCD jets{effective}."
        )
    return head + "\n".join(rows) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")


def _qcd_jets(n: Any) -> str:
    if n is None:
        return "? QCD jets"
    text = f"{n:.3g}" if not float(n).is_integer() else f"{int(n)}"
    return f"{text} QCD jet" + ("" if text == "1" else "s")


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
        n_qcd, any_mark = set(), False
        for name, res in results.items():
            e = res["signals"].get(signal)
            if e is None:
                continue
            eff_s = np.asarray(e["roc"]["eff_signal"])
            eff_b = np.asarray(e["roc"]["eff_background"])
            ok = eff_b > 0
            mark = "†" if e.get("counts", {}).get("auc", {}).get("stat_limited") else ""
            any_mark |= bool(mark)
            jets = ""
            if "n_background" in e:
                n_bkg = e.get("n_background_effective", e["n_background"])
                n_qcd.add(n_bkg)
                jets = f"; {_count(e.get('n_signal_effective', e['n_signal']))} {signal}, {_count(n_bkg)} QCD jets"
            ax.plot(eff_s[ok], eff_b[ok], label=f"{name} (AUC {e['auc']:.3f}{mark}{jets})")
        for n in sorted(n_qcd):
            if MIN_BACKGROUND_JETS / n < 1:
                # below this line a working point rests on fewer than MIN_BACKGROUND_JETS QCD jets
                ax.axhline(MIN_BACKGROUND_JETS / n, color="grey", ls=":", lw=1.5)
                ax.text(
                    0.02, MIN_BACKGROUND_JETS / n * 0.75, f"below: fewer than {MIN_BACKGROUND_JETS} of {_count(n)} QCD jets pass",
                    fontsize=11, color="grey", va="top",
                )
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_ylim(1e-4, 1)
        ax.set_xlabel(f"{signal} efficiency")
        ax.set_ylabel("QCD mis-identification rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(
            loc="lower right", fontsize=13,
            title=f"† fewer than {MIN_BACKGROUND_JETS} QCD jets" if any_mark else None, title_fontsize=12,
        )
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
        inverse = sculpt["inverse_jsd"]
        limited = inverse is not None and sculpt.get("stat_limited")
        if inverse is None:
            figure = f"1/JSD n/a ({sculpt.get('note', '')})"
        else:
            figure = f"1/JSD {inverse:.1f}{'†' if limited else ''}"
        if "n_background_pass" in sculpt:
            figure += f": {sculpt['n_background_pass']} of {sculpt['n_background']} QCD jets pass"
        if limited:
            figure += f" († fewer than {MIN_BACKGROUND_JETS})"
        ax.legend(
            title=f"{name}: Xbb vs QCD at {100 * sculpt['qcd_efficiency']:g}% QCD eff.\n{figure}",
            fontsize=13, title_fontsize=13,
        )
        ax.set_title("jettag simulation", loc="left", fontsize=16)
        path = out_dir / f"msd_sculpting_{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def write_results(results: dict[str, dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """``evaluation.json``, ``evaluation.md`` and the ROC PNGs in ``out_dir``; their paths.

    The JSON is strict (no ``Infinity`` / ``NaN``): an unmeasured figure is null.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(results, indent=1, allow_nan=False))
    (out_dir / "evaluation.md").write_text(markdown_table(results))
    return [out_dir / "evaluation.json", out_dir / "evaluation.md", *plot_evaluation(results, out_dir)]
