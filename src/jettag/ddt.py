"""DDT (designed decorrelated tagger) maps: derive, write as correctionlib, apply.

For QCD jets, rho = 2 ln(msoftdrop/pT) (DESIGN.md). The DDT map X(rho, pT) at
a target QCD efficiency ``eps`` is the score value that a fraction ``eps`` of
QCD jets exceeds in that (rho, pT) bin; ``score_ddt = score - X(rho, pT)`` and
``score_ddt > 0`` passes, so the QCD pass rate is ``eps`` in every bin, and a
cut on ``score_ddt`` no longer sculpts the jet mass.

For a variable whose LOW values are signal-like (``n2b1``), pass
``signal_like="low"``: the map is then the eps-quantile from below and the DDT
value is ``X - score``, so ``> 0`` still passes.

This module holds the pure-function core:

* :func:`score_axis` -- a ``hist`` axis binned finely where the working points lie;
* :func:`derive_map` -- a weighted ``hist.Hist`` (rho, pt, score) of QCD jets ->
  :class:`DDTMap` (thresholds, statistical up/down, effective counts, sparse-bin flags);
* :meth:`DDTMap.to_correction` -- the map as a correctionlib schema v2 correction
  (write it with :func:`jettag.corrections.write`);
* :func:`rho` and :func:`apply` -- the DDT value of jets (numpy, jagged awkward,
  dask-awkward).

* :func:`write_histogram` / :func:`read_histograms` -- the histogram as a ROOT
  TH3D (with sum w^2) and a JSON record of how it was filled; several files are
  summed;
* :func:`in_sample_closure` and :func:`plot_map` -- the map's pass rates on its
  own histogram (where pooling moved them) and a picture of the map.

The histogram is filled by the ``"ddt-histogram"`` processor
(``jettag.processors.ddt_map.DDTHistogramProcessor``); ``jettag ddt`` runs the
whole chain, and :mod:`jettag.decorrelation` measures a map's closure on an
independent sample.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import correctionlib
import correctionlib.schemav2 as cs
import hist
import numpy as np

from jettag import corrections
from jettag.errors import JettagError

__all__ = [
    "HISTOGRAM_KEY",
    "DDTMap",
    "apply",
    "derive_map",
    "in_sample_closure",
    "map_edges",
    "plot_map",
    "read_histograms",
    "read_map",
    "rho",
    "score_axis",
    "working_point_key",
    "working_points",
    "write_histogram",
]

SignalLike = Literal["high", "low"]
Smoothing = Literal["knn"] | None
SYSTEMATICS = ("nominal", "up", "down")


# ---------------------------------------------------------------------------- binning


def score_axis(
    kind: Literal["tagger", "substructure"] = "tagger",
    *,
    bins: int | None = None,
    name: str = "score",
    label: str | None = None,
    max_log: float = 5.0,
    low: float = 0.0,
    high: float = 0.5,
) -> hist.axis.Variable | hist.axis.Regular:
    """A score axis binned finely where DDT working points lie.

    ``kind="tagger"``: a 0-1 probability whose 1%-quantile lies close to 1
    (``XbbVsQCD``). Bins are uniform in ``t = -log10(1 - score)`` from 0 to
    ``max_log`` (default 5, i.e. score 0.99999), plus one last bin up to 1:
    edges ``1 - 10**-t``, ``bins`` (default 1000) in all. At 1000 bins, each bin
    is 1.2% of ``1 - score`` wide wherever it lies, so a threshold at 0.998 is
    as finely resolved as one at 0.8 (a uniform axis would put it in one bin).

    ``kind="substructure"``: a variable such as ``n2b1`` whose working points lie
    in its low tail: ``bins`` (default 500) uniform bins on ``[low, high]``
    (default 0 to 0.5).

    Values outside the axis go to its flow bins; :func:`derive_map` counts the
    underflow at the lowest edge and the overflow (e.g. a score of exactly 1) in the
    last bin.
    """
    if kind == "tagger":
        n = 1000 if bins is None else bins
        if n < 2 or max_log <= 0:
            raise ValueError("score_axis: need bins >= 2 and max_log > 0")
        t = np.linspace(0.0, max_log, n)
        edges = np.append(1.0 - 10.0 ** (-t), 1.0)
        return hist.axis.Variable(edges, name=name, label=label or name)
    if kind == "substructure":
        n = 500 if bins is None else bins
        if n < 1 or not high > low:
            raise ValueError("score_axis: need bins >= 1 and high > low")
        return hist.axis.Regular(n, low, high, name=name, label=label or name)
    raise ValueError(f"score_axis: kind must be 'tagger' or 'substructure', got {kind!r}")


def working_point_key(efficiency: float | str) -> str:
    """The ``working_point`` category key of a QCD efficiency: ``0.05 -> "0.05"``."""
    if isinstance(efficiency, str):
        return efficiency
    return format(float(efficiency), "g")


# ---------------------------------------------------------------------------- the map


@dataclass
class DDTMap:
    """A derived DDT map: score thresholds per (target efficiency, rho bin, pT bin).

    ``values``, ``up``, ``down`` and ``filled`` have shape
    ``(len(efficiencies), n_rho, n_pt)``; ``up``/``down`` are the threshold moved
    up/down in score by its statistical uncertainty (so ``down <= values <= up``).
    ``counts`` holds the Kish effective entries ``(sum w)^2 / sum w^2`` of each
    (rho, pT) bin's own jets; ``filled`` marks thresholds taken from a pool of
    neighbouring bins because the bin alone was too sparse; ``notes`` says when
    even the whole histogram was too sparse (the map is then statistics-limited).
    """

    rho_edges: np.ndarray
    pt_edges: np.ndarray
    efficiencies: tuple[float, ...]
    values: np.ndarray
    up: np.ndarray
    down: np.ndarray
    counts: np.ndarray
    filled: np.ndarray
    signal_like: SignalLike = "high"
    score: str = "score"
    settings: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_correction(
        self,
        name: str,
        description: str,
        *,
        sample: str | None = None,
        command: str | None = None,
        version: int = 1,
    ) -> cs.Correction:
        """The map as a correctionlib correction.

        Inputs: ``rho``, ``pt`` (clamped to the edge bins outside the map),
        ``working_point`` (the efficiency as a string, e.g. ``"0.05"``, see
        :func:`working_point_key`) and ``systematic`` (``nominal``/``up``/``down``);
        output: the score threshold X. The description gets the score, the
        sample, the binning and the derivation settings (and ``command``) appended.
        """
        keys = [working_point_key(e) for e in self.efficiencies]
        by_syst = {}
        for syst, arr in zip(SYSTEMATICS, (self.values, self.up, self.down), strict=True):
            by_wp = {}
            for key, values in zip(keys, arr, strict=True):
                h = hist.Hist(
                    hist.axis.Variable(self.rho_edges, name="rho"),
                    hist.axis.Variable(self.pt_edges, name="pt"),
                )
                h.view()[...] = values
                by_wp[key] = corrections.binned(h, flow="clamp")
            by_syst[syst] = corrections.category("working_point", by_wp)
        data = corrections.category("systematic", by_syst)
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        parts = [
            description.rstrip("."),
            f"score: {self.score}",
            f"signal_like={self.signal_like}",
            f"sample: {sample or 'unspecified'}",
            f"binning: rho {len(self.rho_edges) - 1} bins in [{self.rho_edges[0]:g}, "
            f"{self.rho_edges[-1]:g}], pt edges {[float(f'{e:g}') for e in self.pt_edges]}",
            f"derivation: {settings}" if settings else "derivation: defaults",
            *self.notes,
        ]
        if command:
            parts.append(f"command: {command}")
        sign = "score - X" if self.signal_like == "high" else "X - score"
        inputs = [
            corrections.variable("rho", description="2 ln(msoftdrop/pt) of the jet"),
            corrections.variable("pt", description="jet pT [GeV]"),
            corrections.variable(
                "working_point", "string", description=f"QCD efficiency, one of {', '.join(keys)}"
            ),
            corrections.variable(
                "systematic", "string", description="nominal, up or down (statistical)"
            ),
        ]
        output = corrections.variable(
            "threshold", description=f"DDT threshold X of {self.score}; DDT value = {sign}"
        )
        return corrections.correction(name, "; ".join(parts), inputs, output, data, version=version)


def _axis_index(histogram: hist.Hist, name: str) -> int:
    names = [ax.name for ax in histogram.axes]
    if name not in names:
        raise ValueError(f"derive_map: the histogram has no axis {name!r} (axes: {names})")
    return names.index(name)


def _histogram_arrays(
    histogram: hist.Hist, rho_axis: str, pt_axis: str, score_axis: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sumw, sumw2) of shape (n_rho, n_pt, n_score), score flow folded; and the edges."""
    if histogram.ndim != 3:
        raise ValueError(f"derive_map: need a 3D (rho, pt, score) histogram, got {histogram.ndim}D")
    order = [_axis_index(histogram, n) for n in (rho_axis, pt_axis, score_axis)]
    if len(set(order)) != 3:
        raise ValueError("derive_map: rho, pt and score axes must be three different axes")
    values = np.moveaxis(np.asarray(histogram.values(flow=True), dtype=float), order, [0, 1, 2])
    variances = histogram.variances(flow=True)
    if variances is None:
        raise ValueError(
            "derive_map: the histogram storage holds no variances; use hist.storage.Weight()"
        )
    variances = np.moveaxis(np.asarray(variances, dtype=float), order, [0, 1, 2])
    edges = []
    cut = []
    for axis_pos, name in zip(order, ("rho", "pt", "score"), strict=True):
        ax = histogram.axes[axis_pos]
        if not hasattr(ax, "edges") or isinstance(ax, hist.axis.Integer):
            raise ValueError(
                f"derive_map: the {name} axis must be continuous (Regular or Variable)"
            )
        under = 1 if ax.traits.underflow else 0
        over = 1 if ax.traits.overflow else 0
        edges.append(np.asarray(ax.edges, dtype=float))
        cut.append((under, over))
    # rho and pt: jets outside the map are not part of it (evaluation clamps instead)
    sl = tuple(
        slice(u, v.shape[i] - o)
        for i, ((u, o), v) in enumerate(zip(cut[:2], [values] * 2, strict=True))
    )
    values, variances = values[sl], variances[sl]
    # score: underflow counts at the lowest edge (first bin), overflow in the last bin
    (u, o) = cut[2]
    out = []
    for arr in (values, variances):
        inner = arr[..., u : arr.shape[-1] - o].copy()
        if u:
            inner[..., 0] += arr[..., 0]
        if o:
            inner[..., -1] += arr[..., -1]
        out.append(inner)
    return out[0], out[1], edges[0], edges[1], edges[2]


def _quantiles(sumw: np.ndarray, edges: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Weighted quantiles of many binned distributions at once.

    ``sumw``: (B, S) bin weights; ``q``: (B, Q) cumulative fractions. The
    cumulative distribution is known at the bin edges and taken linear inside a
    bin (the weight spread uniformly over it): the quantile is interpolated
    linearly inside the bin where the cumulative crosses ``q``. Negative weights
    can make the cumulative fall; its running maximum is used (first crossing).
    """
    total = sumw.sum(axis=-1, keepdims=True)
    cum = np.concatenate([np.zeros_like(total), np.cumsum(sumw, axis=-1)], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = cum / total
    cum = np.maximum.accumulate(np.clip(cum, 0.0, 1.0), axis=-1)
    n_score = sumw.shape[-1]
    j = (cum[:, None, :] < q[:, :, None]).sum(axis=-1)  # first edge with cum >= q
    j = np.clip(j, 1, n_score)
    c0 = np.take_along_axis(cum, j - 1, axis=-1)
    c1 = np.take_along_axis(cum, j, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(c1 > c0, (q - c0) / (c1 - c0), 0.0)
    frac = np.clip(frac, 0.0, 1.0)
    e0, e1 = edges[j - 1], edges[j]
    out = e0 + frac * (e1 - e0)
    return np.where(total > 0, out, np.nan)


def _thresholds(
    sumw: np.ndarray, sumw2: np.ndarray, edges: np.ndarray, eps: np.ndarray, signal_like: SignalLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nominal, up, down) thresholds, each (B, E), from (B, S) histograms and (B, E) efficiencies.

    up/down: the thresholds at eps -+ sigma_eps, sigma_eps = sqrt(eps(1-eps)/n_eff)
    (binomial, with the Kish effective count of the histogram), ordered so up >= down.
    """
    total = sumw.sum(axis=-1)
    var = sumw2.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = np.where(var > 0, total**2 / var, 0.0)[:, None]
        sigma = np.sqrt(eps * (1 - eps) / n_eff)
    tiny = 1e-12
    lo = np.clip(eps - sigma, tiny, 1 - tiny)
    hi = np.clip(eps + sigma, tiny, 1 - tiny)
    if signal_like == "high":  # X falls as eps grows
        q = np.concatenate([1 - eps, 1 - lo, 1 - hi], axis=1)
    else:
        q = np.concatenate([eps, hi, lo], axis=1)
    x = _quantiles(sumw, edges, q)
    n = eps.shape[1]
    return x[:, :n], x[:, n : 2 * n], x[:, 2 * n :]


def _n_eff(sumw: np.ndarray, sumw2: np.ndarray) -> np.ndarray:
    total, var = sumw.sum(axis=-1), sumw2.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, total**2 / var, 0.0)


def derive_map(
    histogram: hist.Hist,
    efficiencies: Sequence[float],
    *,
    rho_axis: str = "rho",
    pt_axis: str = "pt",
    score_axis: str = "score",
    signal_like: SignalLike = "high",
    smoothing: Smoothing = None,
    min_passing: float = 20.0,
    k: int = 9,
    bandwidth: float = 0.1,
) -> DDTMap:
    """Derive the DDT map from a weighted (rho, pt, score) histogram of QCD jets.

    ``histogram``: a ``hist.Hist`` with axes named ``rho_axis``, ``pt_axis`` and
    ``score_axis`` (any order; defaults ``rho``, ``pt``, ``score``), filled with
    event weights into ``hist.storage.Weight()`` (the sum of w^2 gives each
    bin's Kish effective count). Jets in the rho/pt flow bins are not used; the
    score flow is counted at the score axis ends.

    Per (rho, pt) bin and efficiency ``eps``: the weighted quantile (``1 - eps``
    for ``signal_like="high"``, ``eps`` for ``"low"``), interpolated linearly in the
    score bin where the cumulative crosses; ``up``/``down`` are the quantiles at
    ``eps -+ sqrt(eps(1-eps)/n_eff)`` (see :class:`DDTMap`).

    Sparse bins -- ``n_eff * eps < min_passing`` effective passing jets -- are
    filled from their neighbours and flagged in ``filled`` (when even all jets
    together are too few, they take the whole histogram's quantile and
    ``notes`` says the map is statistics-limited): by default (``smoothing=None``)
    the bin's jets are pooled with those of the nearest bins (in normalised
    (rho, pT), below) until the pool holds ``min_passing`` effective passing jets,
    and the pool's quantile is used. Bins with enough jets keep their own
    quantile: this is the default because the map varies steeply with rho, and
    any averaging over neighbours biases the pass rate where it is not needed.

    ``smoothing="knn"``: every bin's quantile is taken from the combined score
    histograms of its ``k`` nearest bins (itself included), weighted by
    ``exp(-d^2 / (2 bandwidth^2))`` of their distance ``d``; still-sparse bins
    are then pooled as above. It trades bias for less bin-to-bin noise on
    small samples.

    Distances are between bin centres in normalised coordinates: each axis runs
    over [0, 1] by bin index ((i + 0.5) / n), so that a variable pT binning
    (wide bins at high pT) does not make high-pT bins look far apart.
    """
    if signal_like not in ("high", "low"):
        raise ValueError(f"derive_map: signal_like must be 'high' or 'low', got {signal_like!r}")
    if smoothing not in (None, "knn"):
        raise ValueError(f"derive_map: smoothing must be None or 'knn', got {smoothing!r}")
    eps = np.asarray(list(efficiencies), dtype=float)
    if eps.ndim != 1 or eps.size == 0 or np.any((eps <= 0) | (eps >= 1)):
        raise ValueError(f"derive_map: efficiencies must lie in (0, 1), got {list(efficiencies)}")
    if len({working_point_key(e) for e in eps}) != eps.size:
        raise ValueError(f"derive_map: efficiencies must be distinct, got {list(efficiencies)}")
    if min_passing < 0 or k < 1 or bandwidth <= 0:
        raise ValueError("derive_map: need min_passing >= 0, k >= 1 and bandwidth > 0")

    sumw, sumw2, rho_edges, pt_edges, score_edges = _histogram_arrays(
        histogram, rho_axis, pt_axis, score_axis
    )
    n_rho, n_pt, n_score = sumw.shape
    nb = n_rho * n_pt
    w = sumw.reshape(nb, n_score)
    w2 = sumw2.reshape(nb, n_score)
    counts = _n_eff(w, w2)
    if not np.any(counts > 0):
        raise JettagError("derive_map: the histogram holds no jets with positive weight")

    # normalised bin-centre coordinates and pairwise distances
    ir, ip = np.meshgrid(
        (np.arange(n_rho) + 0.5) / n_rho, (np.arange(n_pt) + 0.5) / n_pt, indexing="ij"
    )
    xy = np.stack([ir.ravel(), ip.ravel()], axis=1)
    dist = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1))
    nearest = np.argsort(dist, axis=1, kind="stable")  # self first

    if smoothing == "knn":
        kk = min(k, nb)
        weights = np.zeros((nb, nb))
        rows = np.arange(nb)[:, None]
        sel = nearest[:, :kk]
        weights[rows, sel] = np.exp(-(dist[rows, sel] ** 2) / (2 * bandwidth**2))
        use_w, use_w2 = weights @ w, (weights**2) @ w2
    else:
        use_w, use_w2 = w, w2

    eps_b = np.broadcast_to(eps, (nb, eps.size))
    nom, up, down = _thresholds(use_w, use_w2, score_edges, eps_b, signal_like)
    n_use = _n_eff(use_w, use_w2)
    sparse = n_use[:, None] * eps[None, :] < min_passing  # (B, E)
    filled = sparse.copy()
    notes: list[str] = []

    # pool the raw jets of the nearest bins for the sparse ones
    for b, e in zip(*np.nonzero(sparse), strict=True):
        order = nearest[b]
        cum_w = np.cumsum(w[order].sum(axis=-1))
        cum_w2 = np.cumsum(w2[order].sum(axis=-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled_n = np.where(cum_w2 > 0, cum_w**2 / cum_w2, 0.0)
        enough = np.nonzero(pooled_n * eps[e] >= min_passing)[0]
        if enough.size == 0:
            # even all jets together are too few: every sparse bin takes the whole
            # histogram's quantile, and the map says it is statistics-limited
            members = order
            note = (
                f"statistics-limited: the whole histogram holds {pooled_n[-1]:.0f} effective jets, "
                f"fewer than min_passing/eps = {min_passing / eps[e]:.0f} at efficiency {eps[e]:g}; "
                "sparse bins use the quantile of all jets"
            )
            if note not in notes:
                notes.append(note)
        else:
            members = order[: enough[0] + 1]
        pw = w[members].sum(axis=0)[None, :]
        pw2 = w2[members].sum(axis=0)[None, :]
        x, xu, xd = _thresholds(pw, pw2, score_edges, eps[e : e + 1][None, :], signal_like)
        nom[b, e], up[b, e], down[b, e] = x[0, 0], xu[0, 0], xd[0, 0]

    def shaped(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.T.reshape(eps.size, n_rho, n_pt))

    settings: dict[str, Any] = {"smoothing": smoothing or "none", "min_passing": min_passing}
    if smoothing == "knn":
        settings.update(k=k, bandwidth=bandwidth)
    settings["score_bins"] = n_score
    score_label = histogram.axes[_axis_index(histogram, score_axis)].label or score_axis
    return DDTMap(
        rho_edges=rho_edges,
        pt_edges=pt_edges,
        efficiencies=tuple(float(e) for e in eps),
        values=shaped(nom),
        up=shaped(up),
        down=shaped(down),
        counts=counts.reshape(n_rho, n_pt),
        filled=shaped(filled),
        signal_like=signal_like,
        score=score_label,
        settings=settings,
        notes=notes,
    )


# ---------------------------------------------------------------------------- applying


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask_awkward")


def _flatten(x: Any) -> tuple[np.ndarray, list[Any] | None]:
    """A flat float array and the counts that rebuild the jagged structure (None: numpy input)."""
    if isinstance(x, ak.Array):
        levels = []
        while x.ndim > 1:
            levels.append(ak.num(x, axis=1))
            x = ak.flatten(x, axis=1)
        return np.asarray(ak.to_numpy(x), dtype=float), levels
    return np.asarray(x, dtype=float), None


def _unflatten(flat: np.ndarray, levels: list[Any] | None) -> Any:
    if levels is None:
        return flat
    out = ak.Array(flat)
    for counts in reversed(levels):
        out = ak.unflatten(out, counts)
    return out


def _rho_flat(msoftdrop: np.ndarray, pt: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(msoftdrop, pt).shape, np.nan)
    good_pt = pt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(
            good_pt & (msoftdrop > 0), 2.0 * np.log(msoftdrop / np.where(good_pt, pt, 1.0)), out
        )
    return np.where(good_pt & (msoftdrop <= 0), -np.inf, out)


def rho(msoftdrop: Any, pt: Any) -> Any:
    """rho = 2 ln(msoftdrop / pt), for numpy, (jagged) awkward or dask-awkward arrays.

    ``msoftdrop <= 0`` (soft drop removed everything; NanoAOD also stores -1) gives
    ``-inf``, the limit of the formula: such a jet lies below every rho bin, and
    :func:`apply` gives it a NaN DDT value, so it fails every working point rather
    than borrowing the threshold of the lowest rho bin. ``pt <= 0`` or NaN input gives NaN.
    """
    if _is_dask(msoftdrop) or _is_dask(pt):
        import dask_awkward as dak

        return dak.map_partitions(rho, msoftdrop, pt, label="jettag-rho")
    if isinstance(msoftdrop, ak.Array) and ak.backend(msoftdrop) == "typetracer":
        return ak.values_astype(msoftdrop, np.float64)  # dask's type tracing: the layout only
    m, levels = _flatten(msoftdrop)
    p, _ = _flatten(pt)
    if m.shape != p.shape:
        raise ValueError(f"rho: msoftdrop and pt differ in shape ({m.shape} vs {p.shape})")
    return _unflatten(_rho_flat(m, p), levels)


def read_map(source: str | Path, name: str | None = None) -> cs.Correction:
    """The DDT map ``name`` of a correctionlib file (or shipped map); ``name`` may be
    omitted when the file holds one correction."""
    path = Path(source)
    found = {c.name: c for c in corrections.read(source).corrections}
    if name is None:
        if len(found) != 1:
            raise JettagError(f"{path}: holds corrections {sorted(found)}; say which with name=")
        return next(iter(found.values()))
    if name not in found:
        raise JettagError(f"{path}: no correction {name!r} (has {sorted(found)})")
    return found[name]


@functools.lru_cache(maxsize=16)
def _evaluator(text: str) -> correctionlib.highlevel.Correction:
    corr = cs.Correction.model_validate_json(text)
    cset = cs.CorrectionSet(schema_version=2, corrections=[corr])
    return correctionlib.CorrectionSet.from_string(cset.model_dump_json(exclude_none=True))[
        corr.name
    ]


def _apply_flat(text: str, m: Any, p: Any, s: Any, key: str, systematic: str, sign: float) -> Any:
    """One partition (or the whole eager input): the DDT value with the jet structure kept."""
    if isinstance(s, ak.Array) and ak.backend(s) == "typetracer":
        return ak.values_astype(s, np.float64)
    mf, levels = _flatten(m)
    pf, _ = _flatten(p)
    sf, slevels = _flatten(s)
    if not (mf.shape == pf.shape == sf.shape):
        raise ValueError(
            f"apply: msoftdrop, pt and score differ in shape ({mf.shape}, {pf.shape}, {sf.shape})"
        )
    r = _rho_flat(mf, pf)
    ok = np.isfinite(r) & np.isfinite(pf)
    evaluator = _evaluator(text)
    args = {
        "rho": np.where(ok, r, 0.0),
        "pt": np.where(ok, pf, 0.0),
        "working_point": key,
        "systematic": systematic,
    }
    x = np.asarray(evaluator.evaluate(*(args[v.name] for v in evaluator.inputs)))
    out = np.where(ok, sign * (sf - x), np.nan)
    return _unflatten(out, slevels if slevels is not None else levels)


def apply(
    correction_or_path: cs.Correction | str | Path,
    fatjets: Any,
    score: Any,
    *,
    efficiency: float | str,
    systematic: str = "nominal",
    signal_like: SignalLike = "high",
    name: str | None = None,
) -> Any:
    """The DDT value of jets: ``score - X(rho, pt)`` (``X - score`` for ``signal_like="low"``).

    ``> 0`` passes the working point of QCD efficiency ``efficiency``.
    ``correction_or_path``: a schemav2 correction (:meth:`DDTMap.to_correction`),
    a correctionlib JSON file (``name`` picks the correction when it holds
    several) or a shipped map by name. ``fatjets`` has fields ``msoftdrop`` and
    ``pt`` (a NanoEvents ``FatJet`` collection, an awkward record array, or a
    mapping of numpy arrays); ``score`` has the same structure. Works on numpy,
    jagged awkward (flattened, evaluated, unflattened: the structure is kept;
    missing values must be filled first) and dask-awkward arrays (lazily, one
    partition at a time). Jets with ``msoftdrop <= 0`` or a non-finite rho/pt get NaN
    (they fail). ``signal_like`` must match the map's, which its description records.
    """
    if signal_like not in ("high", "low"):
        raise ValueError(f"apply: signal_like must be 'high' or 'low', got {signal_like!r}")
    if systematic not in SYSTEMATICS:
        raise ValueError(f"apply: systematic must be one of {SYSTEMATICS}, got {systematic!r}")
    corr = (
        correction_or_path
        if isinstance(correction_or_path, cs.Correction)
        else read_map(correction_or_path, name)
    )
    recorded = (
        "low"
        if "signal_like=low" in corr.description
        else "high"
        if "signal_like=high" in corr.description
        else None
    )
    if recorded is not None and recorded != signal_like:
        raise ValueError(
            f"apply: the map {corr.name!r} was derived with signal_like={recorded!r}, not {signal_like!r}"
        )
    key = working_point_key(efficiency)
    names = {v.name for v in corr.inputs}
    if names != {"rho", "pt", "working_point", "systematic"}:
        raise JettagError(f"correction {corr.name!r} is not a DDT map (inputs {sorted(names)})")
    wp = next(v for v in corr.inputs if v.name == "working_point")
    known = working_points(corr)
    if known and key not in known:
        raise JettagError(
            f"correction {corr.name!r} has no working point {key!r} ({wp.description})"
        )
    text = corr.model_dump_json(exclude_none=True)
    sign = 1.0 if signal_like == "high" else -1.0
    m, p = fatjets["msoftdrop"], fatjets["pt"]
    if _is_dask(score) or _is_dask(m):
        import dask_awkward as dak

        return dak.map_partitions(
            _apply_flat,
            text,
            m,
            p,
            score,
            key,
            systematic,
            sign,
            label="jettag-ddt-apply",
        )
    return _apply_flat(text, m, p, score, key, systematic, sign)


def working_points(corr: cs.Correction) -> set[str]:
    """The working-point keys (``"0.05"``, ...) of a map laid out as :meth:`DDTMap.to_correction` does."""
    node = corr.data
    if isinstance(node, cs.Category) and node.input == "systematic" and node.content:
        inner = node.content[0].value
        if isinstance(inner, cs.Category) and inner.input == "working_point":
            return {str(item.key) for item in inner.content}
    return set()


def map_edges(corr: cs.Correction) -> dict[str, np.ndarray]:
    """The ``rho`` and ``pt`` bin edges of a map laid out as :meth:`DDTMap.to_correction` does."""
    try:
        node = corr.data.content[0].value.content[0].value
        names = list(node.inputs)
        out = {}
        for n in ("rho", "pt"):
            e = node.edges[names.index(n)]
            if isinstance(e, cs.UniformBinning):
                e = np.linspace(e.low, e.high, e.n + 1)
            out[n] = np.asarray(e, dtype=float)
        return out
    except (AttributeError, IndexError, ValueError, TypeError):
        raise JettagError(f"correction {corr.name!r} is not laid out as a jettag DDT map") from None


# ---------------------------------------------------------------------------- histogram files

#: the TH3D's key in a histogram file; the JSON record of its filling is ``HISTOGRAM_KEY + "_record"``
HISTOGRAM_KEY = "ddt"
_AXES = ("rho", "pt", "score")


def write_histogram(
    histogram: hist.Hist, out: str | Path, record: dict[str, Any], *, inputs: Sequence[str | Path] = (), force: bool = False
) -> Path:
    """Write the (rho, pt, score) histogram as a ROOT TH3D (values and sum w^2) plus a record.

    ``record`` (JSON-able: the score, ``signal_like``, the selection, the input
    files and counts) is stored as a string beside the histogram; the file is
    readable by ROOT and uproot without jettag. Written atomically; never over
    an input or an existing file without ``force``.
    """
    import uproot

    from jettag.outputs import atomic_output, check_output

    out = check_output(out, inputs=inputs, force=force)
    h = histogram.project(*(histogram.axes[_axis_index(histogram, n)].name for n in _AXES))
    with atomic_output(out) as tmp:
        with uproot.recreate(tmp) as f:
            f[HISTOGRAM_KEY] = h
            f[HISTOGRAM_KEY + "_record"] = json.dumps({"format": "jettag-ddt-histogram-1", **record})
    return out


def _renamed(axis: Any, name: str) -> Any:
    if isinstance(axis, hist.axis.Regular) and not axis.traits.circular:
        return hist.axis.Regular(
            len(axis), axis.edges[0], axis.edges[-1], name=name, label=axis.label
        )
    return hist.axis.Variable(np.asarray(axis.edges), name=name, label=axis.label)


def read_histograms(paths: Sequence[str | Path]) -> tuple[hist.Hist, list[dict[str, Any]]]:
    """Read and sum the histograms of ``paths`` (written by :func:`write_histogram`).

    All files must share the binning, the score and ``signal_like``; a file that
    is not such a histogram file gives a one-line error naming it.
    """
    import uproot

    if not paths:
        raise JettagError("no histogram file given")
    total = None
    records = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise JettagError(f"{path}: no such file")
        try:
            with uproot.open(path) as f:
                raw = f[HISTOGRAM_KEY].to_hist()
                record = json.loads(str(f[HISTOGRAM_KEY + "_record"]))
        except Exception as err:  # uproot raises many kinds for foreign files
            raise JettagError(
                f"{path}: not a jettag DDT histogram file (needs {HISTOGRAM_KEY!r} and "
                f"{HISTOGRAM_KEY + '_record'!r}; make one with 'jettag ddt histogram'): {err}"
            ) from None
        h = hist.Hist(
            *(_renamed(ax, n) for ax, n in zip(raw.axes, _AXES, strict=True)),
            storage=hist.storage.Weight(),
        )
        h.view(flow=True)[...] = raw.view(flow=True)
        if total is None:
            total, first = h, record
        else:
            for key in ("score", "signal_like"):
                if record.get(key) != first.get(key):
                    raise JettagError(
                        f"{path}: {key} {record.get(key)!r} differs from {first.get(key)!r} "
                        f"of {paths[0]}; only histograms of the same score add up"
                    )
            if any(
                not np.array_equal(a.edges, b.edges)
                for a, b in zip(h.axes, total.axes, strict=True)
            ):
                raise JettagError(f"{path}: binning differs from that of {paths[0]}")
            total = total + h
        records.append({"file": str(path), **record})
    return total, records


# ---------------------------------------------------------------------------- closure and picture


def in_sample_closure(histogram: hist.Hist, ddt_map: DDTMap) -> np.ndarray:
    """The map's QCD pass rate in each bin of the histogram it was derived from.

    Shape ``(len(efficiencies), n_rho, n_pt)``. Where a bin kept its own
    quantile this reproduces the target up to the score binning; where the
    threshold came from a pool (``ddt_map.filled``) it shows how far the pooled
    threshold is from the bin's own jets. The score is taken as spread
    uniformly inside each score bin, as in :func:`derive_map`.
    """
    sumw, _, _, _, edges = _histogram_arrays(histogram, "rho", "pt", "score")
    total = sumw.sum(axis=-1)
    cum = np.concatenate([np.zeros_like(total)[..., None], np.cumsum(sumw, axis=-1)], axis=-1)
    out = np.full(ddt_map.values.shape, np.nan)
    for e in range(len(ddt_map.efficiencies)):
        x = ddt_map.values[e]
        j = np.clip(np.searchsorted(edges, x, side="right"), 1, len(edges) - 1)
        lo, hi = edges[j - 1], edges[j]
        frac = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
        below = np.take_along_axis(cum, (j - 1)[..., None], -1)[..., 0] + frac * (
            np.take_along_axis(sumw, (j - 1)[..., None], -1)[..., 0]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf = np.where(total > 0, below / total, np.nan)
        out[e] = 1.0 - cdf if ddt_map.signal_like == "high" else cdf
    return out


def plot_map(ddt_map: DDTMap, out: str | Path, *, title: str = "") -> Path:
    """A PNG of the map: the threshold per (rho, pT) bin, one panel per efficiency.

    pT bins are drawn with equal widths (labelled by their edges); pooled bins
    are hatched.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(ddt_map.efficiencies)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n + 1, 4.2), squeeze=False)
    n_pt = len(ddt_map.pt_edges) - 1
    for ax, eps, values, filled in zip(
        axes[0], ddt_map.efficiencies, ddt_map.values, ddt_map.filled, strict=True
    ):
        mesh = ax.pcolormesh(ddt_map.rho_edges, np.arange(n_pt + 1), values.T, cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=f"{ddt_map.score} threshold")
        for i, j in zip(*np.nonzero(filled), strict=True):
            x0, x1 = ddt_map.rho_edges[i], ddt_map.rho_edges[i + 1]
            ax.add_patch(
                Rectangle((x0, j), x1 - x0, 1, fill=False, hatch="//", lw=0, color="white")
            )
        ax.set_yticks(np.arange(n_pt + 1), [f"{e:g}" for e in ddt_map.pt_edges], fontsize=7)
        ax.set_xlabel("rho = 2 ln(msoftdrop/pT)")
        ax.set_ylabel("pT [GeV]")
        ax.set_title(f"QCD efficiency {eps:g} (hatched: pooled)", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out

