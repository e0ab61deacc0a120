"""Training weights: mass decorrelation and class balance.

Mass decorrelation (the flat-mass training idea): each signal class is
reweighted so that its (msoftdrop) or (msoftdrop, pT) histogram equals the QCD
one, bin by bin. A classifier that sees signal and background with the same
mass distribution gains nothing from learning the mass, so its score sculpts
the QCD mass spectrum much less. Class balance: weights or sampling
probabilities that give every class the same total weight.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASS_WEIGHTINGS", "class_balance_weights", "mass_weights"]

#: ``none``: no reweighting; ``msd``: signal to QCD's msoftdrop shape (default);
#: ``msd-pt``: signal to QCD's (msoftdrop, pT) shape.
MASS_WEIGHTINGS: tuple[str, ...] = ("none", "msd", "msd-pt")


def mass_weights(
    label: np.ndarray,
    msoftdrop: np.ndarray,
    pt: np.ndarray,
    *,
    reference: int,
    mode: str = "msd",
    msd_bins: np.ndarray | None = None,
    pt_bins: np.ndarray | None = None,
) -> np.ndarray:
    """Per-jet weights that give every class ``reference``'s mass (and pT) shape.

    Each class's weights are ``h_ref(bin) / h_class(bin)`` with both histograms
    normalised to unit area, so a class's total weight stays its jet count.
    Bins where a class has no jets leave it with weight 0 elsewhere unchanged;
    jets of ``reference`` keep weight 1. Defaults: 10-GeV msoftdrop bins
    40-250 GeV, pT bins 300-1500 GeV with an overflow bin.
    """
    if mode not in MASS_WEIGHTINGS:
        raise ValueError(f"mass weighting {mode!r} is not one of {MASS_WEIGHTINGS}")
    label = np.asarray(label)
    weights = np.ones(len(label))
    if mode == "none":
        return weights
    msd_bins = np.arange(40.0, 251.0, 10.0) if msd_bins is None else np.asarray(msd_bins)
    if pt_bins is None:
        pt_bins = np.array([300, 350, 400, 450, 500, 600, 700, 850, 1000, 1500, np.inf])
    coords = [np.asarray(msoftdrop, dtype=np.float64)]
    edges = [msd_bins]
    if mode == "msd-pt":
        coords.append(np.asarray(pt, dtype=np.float64))
        edges.append(np.asarray(pt_bins))
    sample = np.stack(coords, axis=1)
    ref = label == reference
    h_ref, _ = np.histogramdd(sample[ref], bins=edges)
    if h_ref.sum() == 0:
        raise ValueError("mass weights: the reference class has no jets in the binning")
    h_ref = h_ref / h_ref.sum()
    index = tuple(
        np.clip(np.digitize(c, e) - 1, 0, len(e) - 2) for c, e in zip(coords, edges, strict=True)
    )
    for cls in np.unique(label):
        if cls == reference:
            continue
        mine = label == cls
        h_cls, _ = np.histogramdd(sample[mine], bins=edges)
        if h_cls.sum() == 0:
            continue
        h_cls = h_cls / h_cls.sum()
        ratio = np.divide(h_ref, h_cls, out=np.zeros_like(h_ref), where=h_cls > 0)
        weights[mine] = ratio[tuple(i[mine] for i in index)]
    return weights


def class_balance_weights(label: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Multiply ``weights`` so that every class present has the same total weight.

    The result averages to 1 per jet: each class gets ``n_jets / n_classes``.
    """
    label = np.asarray(label)
    weights = np.ones(len(label)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = weights.copy()
    present = np.unique(label)
    target = len(label) / max(len(present), 1)
    for cls in present:
        mine = label == cls
        total = weights[mine].sum()
        if total > 0:
            out[mine] = weights[mine] * (target / total)
    return out
