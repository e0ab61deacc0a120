"""Flat-mass weights: reweight a signal sample so that it carries no mass information.

The flat-mass training-sample idea: a tagger trained on a signal whose
msoftdrop sits in a narrow peak learns the mass, and a cut on its score then
sculpts the QCD mass spectrum into a fake peak. Weighting every signal jet by
``1/f(m)``, with ``f`` the signal's own msoftdrop density, makes the weighted
signal flat in msoftdrop, so the mass alone no longer tells signal from
background. Alternatively the signal is weighted to QCD's shape (``h_QCD(m) /
h_sig(m)``): then signal and background have the same mass distribution, which
is what the training (``jettag train --mass-weighting msd|msd-pt``) uses. In 2D
the same is done in bins of (msoftdrop, pT).

One implementation serves the ``jettag flatten`` command, the training weights
(:func:`jettag.training.weights.mass_weights`) and the flattening of the wide
``x*`` resonance samples (:func:`jettag.samples.flat_mass_weights`):

* :func:`histogram` -- fill the weighted ``hist.Hist`` (``msoftdrop`` [, ``pt``]) of jets;
* :func:`derive_weights` -- signal (and target) histogram -> :class:`MassWeights`
  (weight per bin, statistical uncertainty, effective counts, empty bins);
* :meth:`MassWeights.to_correction` -- the weights as a correctionlib schema v2
  correction (write it with :func:`jettag.corrections.write`);
* :func:`evaluate` -- the weight of each jet, always through correctionlib's
  evaluator, so a written file and the training give the same weights.

Jets with msoftdrop outside the weight window get weight 0; pT outside the pT
binning takes the edge bin's weight (clamped), both when filling and when evaluating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import correctionlib
import correctionlib.schemav2 as cs
import hist
import numpy as np

from jettag import corrections
from jettag.errors import JettagError

__all__ = [
    "MSD_EDGES",
    "PT_EDGES",
    "STAT_LIMIT",
    "SYSTEMATICS",
    "MassWeights",
    "derive_weights",
    "evaluate",
    "histogram",
]

#: Default msoftdrop binning [GeV]: 10-GeV bins from 40 to 250 (the tagging window).
MSD_EDGES: np.ndarray = np.arange(40.0, 251.0, 10.0)
#: Default pT binning [GeV] of 2D weights, as in the training; the last bin
#: stands for everything above 1500 GeV (pT is clamped into the binning).
PT_EDGES: np.ndarray = np.array([300.0, 350, 400, 450, 500, 600, 700, 850, 1000, 1500, 10000])
#: Bins with fewer effective signal jets than this are flagged as statistically limited.
STAT_LIMIT: float = 20.0
#: The ``systematic`` keys of the correction: the weight and its statistical up/down.
SYSTEMATICS: tuple[str, ...] = ("nominal", "up", "down")

#: The outer edges of the zero-weight bins added around the msoftdrop window
#: (evaluation clamps beyond them, into the same zero bins).
_FAR = 1.0e6

MSD = "msoftdrop"
PT = "pt"


def _edges(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    edges = np.asarray(values, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"{what} edges: need at least two edges, got {values!r}")
    if not np.all(np.isfinite(edges)):
        raise ValueError(f"{what} edges must be finite, got {values!r}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError(f"{what} edges must increase, got {values!r}")
    return edges


def _fmt(edges: np.ndarray) -> str:
    return "[" + ", ".join(f"{e:g}" for e in edges) + "]"


# ---------------------------------------------------------------------------- filling


def histogram(
    msoftdrop: Sequence[float] | np.ndarray,
    pt: Sequence[float] | np.ndarray | None = None,
    weight: Sequence[float] | np.ndarray | None = None,
    *,
    msd_edges: Sequence[float] | np.ndarray | None = None,
    pt_edges: Sequence[float] | np.ndarray | None = None,
) -> hist.Hist:
    """The weighted histogram of jets that :func:`derive_weights` takes.

    Axes ``msoftdrop`` (``msd_edges``, default :data:`MSD_EDGES`) and, when ``pt``
    is given, ``pt`` (``pt_edges``, default :data:`PT_EDGES`); ``Weight`` storage
    (sum of w and w^2; ``weight`` None counts jets). Jets outside the msoftdrop
    window go to its flow bins, which the weights do not use; pT outside the pT
    binning is counted in the edge bins, as evaluation clamps it.
    """
    msd = np.asarray(msoftdrop, dtype=np.float64).ravel()
    w = np.ones(len(msd)) if weight is None else np.asarray(weight, dtype=np.float64).ravel()
    if len(w) != len(msd):
        raise ValueError(f"histogram: {len(msd)} msoftdrop values but {len(w)} weights")
    edges = _edges(MSD_EDGES if msd_edges is None else msd_edges, MSD)
    axes = [hist.axis.Variable(edges, name=MSD, label="msoftdrop [GeV]")]
    values = [msd]
    if pt is None:
        if pt_edges is not None:
            raise ValueError("histogram: pt_edges given without pt values")
    else:
        edges = _edges(PT_EDGES if pt_edges is None else pt_edges, PT)
        p = np.asarray(pt, dtype=np.float64).ravel()
        if len(p) != len(msd):
            raise ValueError(f"histogram: {len(msd)} msoftdrop values but {len(p)} pt values")
        axes.append(hist.axis.Variable(edges, name=PT, label="pT [GeV]"))
        values.append(np.clip(p, edges[0], np.nextafter(edges[-1], -np.inf)))
    h = hist.Hist(*axes, storage=hist.storage.Weight())
    h.fill(*values, weight=w)
    return h


# ---------------------------------------------------------------------------- the weights


@dataclass
class MassWeights:
    """Flat-mass weights per msoftdrop bin (1D) or per (msoftdrop, pT) bin (2D).

    ``values``, ``errors``, ``counts``, ``signal`` and ``target_fraction`` have
    shape ``(n_msd,)`` or ``(n_msd, n_pt)``. ``errors`` is the statistical
    uncertainty of each weight (the signal's sum of w^2 and, for a histogram
    target, the target's); ``counts`` the signal's Kish effective entries
    ``(sum w)^2 / sum w^2``; ``signal`` its sum of weights;
    ``target_fraction`` the share of the target in each bin, over the whole window.
    Bins where the signal has no (net positive) weight are ``empty`` and get weight 0.
    """

    msd_edges: np.ndarray
    pt_edges: np.ndarray | None
    values: np.ndarray
    errors: np.ndarray
    counts: np.ndarray
    signal: np.ndarray
    target_fraction: np.ndarray
    target: str = "flat"
    target_counts: np.ndarray | None = None
    stat_limit: float = STAT_LIMIT
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> np.ndarray:
        """Bins where the signal has no net positive weight (weight 0)."""
        return ~(self.signal > 0)

    @property
    def stat_limited(self) -> np.ndarray:
        """Non-empty bins with fewer than ``stat_limit`` effective signal jets."""
        return (self.counts < self.stat_limit) & ~self.empty

    @property
    def up(self) -> np.ndarray:
        """The weights moved up by their statistical uncertainty."""
        return self.values + self.errors

    @property
    def down(self) -> np.ndarray:
        """The weights moved down by their statistical uncertainty (not below 0)."""
        return np.maximum(self.values - self.errors, 0.0)

    @property
    def total(self) -> float:
        """The signal's sum of weights inside the window (kept by the weighting)."""
        return float(self.signal[~self.empty].sum())

    @property
    def weighted_fraction(self) -> np.ndarray:
        """The share of the weighted signal in each bin."""
        content = self.values * np.where(self.empty, 0.0, self.signal)
        total = content.sum()
        return content / total if total > 0 else content

    def to_correction(
        self,
        name: str,
        description: str,
        *,
        command: str | None = None,
        version: int = 1,
    ) -> cs.Correction:
        """The weights as a correctionlib correction.

        Inputs: ``msoftdrop`` (weight 0 outside the window: explicit zero bins
        reach out to +-1e6 GeV and evaluation clamps beyond), ``pt`` for 2D
        weights (clamped to the edge bins) and ``systematic`` (``nominal``,
        ``up``, ``down``: the weight -+ its statistical uncertainty); output:
        the weight. The description gets the target, the binning, the signal's
        effective counts and ``command`` appended.
        """
        lo, hi = self.msd_edges[0], self.msd_edges[-1]
        padded = np.concatenate([[min(-_FAR, lo - 1.0)], self.msd_edges, [max(_FAR, hi + 1.0)]])
        by_syst = {}
        for syst, arr in zip(SYSTEMATICS, (self.values, self.up, self.down), strict=True):
            axes = [hist.axis.Variable(padded, name=MSD)]
            if self.pt_edges is not None:
                axes.append(hist.axis.Variable(self.pt_edges, name=PT))
            h = hist.Hist(*axes)
            pad = [(1, 1)] + [(0, 0)] * (arr.ndim - 1)
            h.view()[...] = np.pad(arr, pad)
            by_syst[syst] = corrections.binned(h, flow="clamp")
        data = corrections.category("systematic", by_syst)

        per_msd = self.counts if self.counts.ndim == 1 else self.counts.sum(axis=1)
        binning = (
            f"binning: msoftdrop {len(self.msd_edges) - 1} bins, edges {_fmt(self.msd_edges)} GeV, "
            "weight 0 outside"
        )
        if self.pt_edges is not None:
            binning += f"; pt edges {_fmt(self.pt_edges)} GeV, clamped"
        parts = [
            description.rstrip("."),
            f"target: {self.target_description()}",
            binning,
            f"signal: sum of weights {self.total:.6g} in the window, "
            f"{float(self.counts.sum()):.1f} effective jets; per msoftdrop bin "
            f"{[round(float(c), 1) for c in per_msd]}; empty bins {int(self.empty.sum())}, "
            f"bins below {self.stat_limit:g} effective jets {int(self.stat_limited.sum())}",
        ]
        if self.target_counts is not None:
            parts.append(f"target: {float(self.target_counts.sum()):.1f} effective jets")
        if self.settings:
            parts.append("settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items()))
        parts.append("up/down: the weight -+ its statistical uncertainty")
        if command:
            parts.append(f"command: {command}")
        inputs = [corrections.variable(MSD, description="jet msoftdrop [GeV]")]
        if self.pt_edges is not None:
            inputs.append(corrections.variable(PT, description="jet pT [GeV]"))
        inputs.append(
            corrections.variable("systematic", "string", description="nominal, up or down (statistical)")
        )
        output = corrections.variable("weight", description="per-jet flat-mass weight")
        return corrections.correction(name, "; ".join(parts), inputs, output, data, version=version)

    def target_description(self) -> str:
        """What the weighted signal is made to follow, in words."""
        if self.target != "flat":
            return f"the normalised shape of {self.target}"
        if self.pt_edges is None:
            return "flat in msoftdrop (per GeV)"
        return "flat in msoftdrop (per GeV) within each pT bin, each pT bin keeping its signal weight"


def _arrays(h: hist.Hist, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(sumw, sumw2) with msoftdrop first, flow excluded; the msoftdrop and pT edges."""
    names = [ax.name for ax in h.axes]
    if MSD not in names or h.ndim > 2 or (h.ndim == 2 and PT not in names):
        raise ValueError(
            f"derive_weights: the {what} histogram needs axes 'msoftdrop' [and 'pt'], got {names}"
        )
    order = [names.index(MSD)] + ([names.index(PT)] if h.ndim == 2 else [])
    values = np.moveaxis(np.asarray(h.values(), dtype=np.float64), order, list(range(h.ndim)))
    variances = h.variances()  # None for unweighted storage: Poisson counts
    if variances is None:
        variances = values.copy()
    else:
        variances = np.moveaxis(np.asarray(variances, dtype=np.float64), order, list(range(h.ndim)))
    msd_edges = np.asarray(h.axes[MSD].edges, dtype=np.float64)
    pt_edges = np.asarray(h.axes[PT].edges, dtype=np.float64) if h.ndim == 2 else None
    return values, variances, msd_edges, pt_edges


def derive_weights(
    signal: hist.Hist,
    target: hist.Hist | None = None,
    *,
    target_name: str | None = None,
    stat_limit: float = STAT_LIMIT,
) -> MassWeights:
    """Per-bin weights that give the signal a flat (or the target's) msoftdrop shape.

    ``signal`` (and ``target``): weighted histograms from :func:`histogram`,
    axes ``msoftdrop`` [and ``pt``], ``Weight`` storage; a target must have the
    signal's binning.

    * ``target=None``: flat in msoftdrop per GeV (bins may differ in width). In
      2D: flat in msoftdrop within each pT bin, each pT bin keeping its total
      signal weight (the signal's pT spectrum is left as it is).
    * a target histogram (QCD): the weighted signal follows the target's
      normalised shape; in 2D the full (msoftdrop, pT) shape.

    Normalisation: the weighted signal keeps its total weight inside the window.
    It is spread only over the bins where the signal has jets; bins where it has
    none get weight 0 and are reported as ``empty`` (their share of the target
    goes to the other bins). Negative weights (NLO samples): a bin's weight uses
    its net sum of weights, so its negative-weight jets get the same weight as
    the others and the bin's net content comes out right; a bin whose net signal
    weight is zero or negative cannot be reweighted and counts as empty. Negative
    net target bins are taken as 0.

    Uncertainty: ``errors = w * sqrt(var_s/s^2 + var_t/t^2)`` per bin, with the
    target term only for a histogram target; the overall normalisation (known
    to the precision of the whole sample) is neglected.
    """
    s, s2, msd_edges, pt_edges = _arrays(signal, "signal")
    filled = s > 0
    if not filled.any():
        raise JettagError(
            "flat-mass weights: the signal has no jets with positive weight in the msoftdrop window"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        counts = np.where(s2 > 0, s**2 / s2, 0.0)
        rel_var = np.where(filled, s2 / s**2, 0.0)
    s_in = np.where(filled, s, 0.0)
    widths = np.diff(msd_edges)
    target_counts = None
    if target is None:
        name = "flat"
        density = np.broadcast_to(widths[:, None] if pt_edges is not None else widths, s.shape)
        if pt_edges is None:
            content = s_in.sum() * np.where(filled, density, 0.0) / density[filled].sum()
            fraction = density / density.sum()
        else:
            # per pT bin: flat in msoftdrop, the bin's signal weight kept
            dens_f = np.where(filled, density, 0.0)
            row_w = dens_f.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                content = np.where(row_w > 0, s_in.sum(axis=0) * dens_f / row_w, 0.0)
            fraction = (widths / widths.sum())[:, None] * (s_in.sum(axis=0) / s_in.sum())[None, :]
    else:
        t, t2, t_msd, t_pt = _arrays(target, "target")
        same_pt = (pt_edges is None and t_pt is None) or (
            pt_edges is not None and t_pt is not None and np.array_equal(pt_edges, t_pt)
        )
        if not (np.array_equal(msd_edges, t_msd) and same_pt):
            raise ValueError("derive_weights: the target histogram's binning differs from the signal's")
        name = target_name or "the target histogram"
        t_pos = np.maximum(t, 0.0)
        t_f = np.where(filled, t_pos, 0.0)
        if not t_f.sum() > 0:
            raise JettagError(
                f"flat-mass weights: {name} has no weight in the bins where the signal has jets"
            )
        content = s_in.sum() * t_f / t_f.sum()
        fraction = t_pos / t_pos.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_var = rel_var + np.where(t_f > 0, t2 / t_pos**2, 0.0)
            target_counts = np.where(t2 > 0, t**2 / t2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(filled, content / s, 0.0)
    errors = values * np.sqrt(rel_var)
    return MassWeights(
        msd_edges=msd_edges,
        pt_edges=pt_edges,
        values=values,
        errors=errors,
        counts=counts,
        signal=s,
        target_fraction=fraction,
        target=name,
        target_counts=target_counts,
        stat_limit=stat_limit,
    )


# ---------------------------------------------------------------------------- evaluation


def evaluate(
    weights: MassWeights | cs.Correction | correctionlib.highlevel.Correction,
    msoftdrop: Sequence[float] | np.ndarray,
    pt: Sequence[float] | np.ndarray | None = None,
    systematic: str = "nominal",
) -> np.ndarray:
    """The weight of each jet, through correctionlib's evaluator.

    ``weights``: derived weights, their correction, or a correction loaded from
    a file (``correctionlib.CorrectionSet.from_file(path)[name]``). ``pt`` is
    needed for 2D weights. A NaN msoftdrop gets weight 0.
    """
    if isinstance(weights, MassWeights):
        weights = weights.to_correction("mass_weights", "flat-mass weights")
    if isinstance(weights, cs.Correction):
        weights = weights.to_evaluator()
    msd = np.asarray(msoftdrop, dtype=np.float64)
    args: list[Any] = []
    for var in weights.inputs:
        if var.name == MSD:
            args.append(np.where(np.isnan(msd), -np.inf, msd))
        elif var.name == PT:
            if pt is None:
                raise ValueError("evaluate: these are (msoftdrop, pt) weights; give pt")
            p = np.asarray(pt, dtype=np.float64)
            if p.shape != msd.shape:
                raise ValueError(f"evaluate: {msd.shape} msoftdrop values but {p.shape} pt values")
            args.append(p)
        elif var.name == "systematic":
            if systematic not in SYSTEMATICS:
                raise ValueError(f"evaluate: systematic must be one of {SYSTEMATICS}, got {systematic!r}")
            args.append(systematic)
        else:
            raise ValueError(f"evaluate: not a flat-mass weight correction (input {var.name!r})")
    if msd.size == 0:
        return np.zeros(msd.shape)
    return np.asarray(weights.evaluate(*args), dtype=np.float64)
