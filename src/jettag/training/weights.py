"""Training weights: mass decorrelation and class balance.

Mass decorrelation (the flat-mass training idea, :mod:`jettag.flatmass`): each
signal class is reweighted so that its (msoftdrop) or (msoftdrop, pT) histogram
equals the QCD one, bin by bin. A classifier that sees signal and background
with the same mass distribution gains nothing from learning the mass, so its
score sculpts the QCD mass spectrum much less. Class balance: weights or sampling
probabilities that give every class the same total weight.
"""

from __future__ import annotations

import numpy as np

from jettag import flatmass
from jettag.errors import JettagError

__all__ = ["MASS_WEIGHTINGS", "class_balance_weights", "mass_weights"]

#: ``none``: no reweighting; ``msd``: signal to QCD's msoftdrop shape (default);
#: ``msd-pt``: signal to QCD's (msoftdrop, pT) shape.
MASS_WEIGHTINGS: tuple[str, ...] = ("none", "msd", "msd-pt")

#: The training's pT bins: the last one holds everything above 1500 GeV.
_PT_BINS = np.array([300, 350, 400, 450, 500, 600, 700, 850, 1000, 1500, np.inf])


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

    Each class is weighted by :mod:`jettag.flatmass` with the reference class as
    target (the same code as ``jettag flatten --reference``): its normalised
    (msoftdrop) or (msoftdrop, pT) histogram becomes the reference's, and its
    total weight stays its jet count. Jets in bins where the reference has no
    jets get weight 0, as do jets outside the msoftdrop binning (the training
    selection keeps none); pT outside the pT binning takes the edge bin's weight.
    Jets of ``reference`` keep weight 1. Defaults: 10-GeV msoftdrop bins
    40-250 GeV, pT bins 300-1500 GeV with an overflow bin.
    """
    if mode not in MASS_WEIGHTINGS:
        raise ValueError(f"mass weighting {mode!r} is not one of {MASS_WEIGHTINGS}")
    label = np.asarray(label)
    weights = np.ones(len(label))
    if mode == "none":
        return weights
    msd = np.asarray(msoftdrop, dtype=np.float64)
    msd_edges = flatmass.MSD_EDGES if msd_bins is None else np.asarray(msd_bins, dtype=np.float64)
    two_d = mode == "msd-pt"
    pt_values = np.asarray(pt, dtype=np.float64) if two_d else None
    pt_edges = _finite_pt_edges(_PT_BINS if pt_bins is None else pt_bins) if two_d else None

    def fill(mask: np.ndarray):
        return flatmass.histogram(
            msd[mask],
            None if pt_values is None else pt_values[mask],
            msd_edges=msd_edges,
            pt_edges=pt_edges,
        )

    ref = label == reference
    h_ref = fill(ref)
    if h_ref.sum().value == 0:
        raise ValueError("mass weights: the reference class has no jets in the binning")
    for cls in np.unique(label):
        if cls == reference:
            continue
        mine = label == cls
        h_cls = fill(mine)
        if h_cls.sum().value == 0:
            continue
        try:
            derived = flatmass.derive_weights(h_cls, h_ref, target_name=f"class {reference}")
        except JettagError:  # the class lies only where the reference has no jets
            weights[mine] = 0.0
            continue
        weights[mine] = flatmass.evaluate(
            derived, msd[mine], None if pt_values is None else pt_values[mine]
        )
    return weights


def _finite_pt_edges(edges: np.ndarray) -> np.ndarray:
    """``edges`` with an infinite last edge made finite (pT is clamped into the last bin)."""
    edges = np.asarray(edges, dtype=np.float64).copy()
    if edges.size >= 2 and np.isposinf(edges[-1]):
        edges[-1] = max(flatmass.PT_EDGES[-1], 10.0 * edges[-2])
    return edges


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
