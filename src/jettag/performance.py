"""Tagger performance figures, as the tagging papers quote them.

Pure functions on score arrays (numpy), with optional per-jet weights:
ROC curves (signal efficiency against background efficiency), the area under
them, average precision, the signal efficiency at a fixed background
mis-identification rate, the background rejection 1/eps_bkg at a fixed signal
efficiency, and the mass-sculpting figure 1/JSD between the mass distributions
of background jets that pass and that fail a cut at fixed background efficiency.

Convention: a jet passes a working point when ``score > threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

__all__ = [
    "Roc",
    "average_precision",
    "background_rejection_at",
    "mass_sculpting",
    "roc_curve",
    "signal_efficiency_at",
]


@dataclass(frozen=True)
class Roc:
    """A ROC curve: efficiencies of ``score > threshold``, thresholds decreasing."""

    threshold: np.ndarray
    eff_signal: np.ndarray
    eff_background: np.ndarray

    @property
    def auc(self) -> float:
        """Area under eff_signal(eff_background); 0.5 for a random tagger, 1 for a perfect one."""
        x = np.concatenate([[0.0], self.eff_background, [1.0]])
        y = np.concatenate([[0.0], self.eff_signal, [1.0]])
        return float(np.trapezoid(y, x))


def _weights(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(values))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != values.shape:
        raise ValueError(f"weights have shape {weights.shape}, scores {values.shape}")
    return weights


def roc_curve(
    signal: np.ndarray,
    background: np.ndarray,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
) -> Roc:
    """The (weighted) ROC curve of scores ``signal`` against ``background``.

    One point per distinct score value; ties between signal and background move
    together, as a cut can only take them together.
    """
    signal = np.asarray(signal, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    if len(signal) == 0 or len(background) == 0:
        raise ValueError("a ROC curve needs signal and background jets")
    scores = np.concatenate([signal, background])
    w_sig = np.concatenate([_weights(signal, signal_weights), np.zeros(len(background))])
    w_bkg = np.concatenate([np.zeros(len(signal)), _weights(background, background_weights)])
    order = np.argsort(-scores, kind="stable")
    scores, w_sig, w_bkg = scores[order], w_sig[order], w_bkg[order]
    last_of_value = np.flatnonzero(np.diff(scores, append=-np.inf) != 0)
    cum_sig = np.cumsum(w_sig)[last_of_value]
    cum_bkg = np.cumsum(w_bkg)[last_of_value]
    # a cut just below each distinct value keeps everything at or above it
    return Roc(
        threshold=np.nextafter(scores[last_of_value], -np.inf),
        eff_signal=cum_sig / w_sig.sum(),
        eff_background=cum_bkg / w_bkg.sum(),
    )


def signal_efficiency_at(roc: Roc, eff_background: float) -> float:
    """Signal efficiency where the background efficiency is ``eff_background`` (interpolated)."""
    return float(np.interp(eff_background, roc.eff_background, roc.eff_signal, left=0.0))


def background_rejection_at(roc: Roc, eff_signal: float) -> float:
    """1 / eps_bkg at signal efficiency ``eff_signal`` (interpolated); inf where eps_bkg is 0."""
    eff_bkg = float(np.interp(eff_signal, roc.eff_signal, roc.eff_background, left=0.0))
    return 1.0 / eff_bkg if eff_bkg > 0 else float("inf")


def average_precision(
    signal: np.ndarray,
    background: np.ndarray,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
) -> float:
    """Average precision: sum over thresholds of precision x increase in recall.

    Precision is the signal fraction of the selected jets, recall the signal
    efficiency; the same step-wise definition as scikit-learn's.
    """
    roc = roc_curve(signal, background, signal_weights, background_weights)
    n_sig = _weights(np.asarray(signal, np.float64), signal_weights).sum()
    n_bkg = _weights(np.asarray(background, np.float64), background_weights).sum()
    selected_sig = roc.eff_signal * n_sig
    selected = selected_sig + roc.eff_background * n_bkg
    precision = np.divide(selected_sig, selected, out=np.ones_like(selected), where=selected > 0)
    recall_steps = np.diff(roc.eff_signal, prepend=0.0)
    return float(np.sum(precision * recall_steps))


def mass_sculpting(
    background_score: np.ndarray,
    background_mass: np.ndarray,
    eff_background: float,
    *,
    bins: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """1/JSD between the mass distributions of passing and failing background jets.

    The cut is placed so that a fraction ``eff_background`` of the (weighted)
    background passes. JSD uses base-2 logarithms (0 = identical shapes, 1 =
    disjoint); a larger 1/JSD means less sculpting. Mass bins default to 10 GeV
    between 40 and 250 GeV. Also returned: the two unit-area shapes compared
    (``pass_shape``, ``fail_shape``) and their bin ``edges``, as lists.
    """
    score = np.asarray(background_score, dtype=np.float64)
    mass = np.asarray(background_mass, dtype=np.float64)
    w = _weights(score, weights)
    bins = np.arange(40.0, 251.0, 10.0) if bins is None else np.asarray(bins)
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    n_pass = int(np.searchsorted(cum, eff_background, side="left")) + 1
    passed = np.zeros(len(score), bool)
    passed[order[:n_pass]] = True
    h_pass, _ = np.histogram(mass[passed], bins=bins, weights=w[passed])
    h_fail, _ = np.histogram(mass[~passed], bins=bins, weights=w[~passed])
    if h_pass.sum() <= 0 or h_fail.sum() <= 0:
        raise ValueError("no passing or no failing background jets inside the mass bins")
    pass_shape, fail_shape = h_pass / h_pass.sum(), h_fail / h_fail.sum()
    jsd = float(jensenshannon(pass_shape, fail_shape, base=2) ** 2)
    return {
        "jsd": jsd,
        "inverse_jsd": 1.0 / jsd if jsd > 0 else float("inf"),
        "eff_background": float(w[passed].sum() / w.sum()),
        "threshold": float(score[order[n_pass - 1]]),
        "edges": bins.tolist(),
        "pass_shape": pass_shape.tolist(),
        "fail_shape": fail_shape.tolist(),
    }
