"""Applying scale factors: MC tagging-efficiency maps and event weights for coffea ``Weights``.

The fixed-working-point method (CMS BTV "method 1a"): a simulated jet of the
measured flavour that passes the working point gets the weight ``SF``, one that
fails gets ``(1 - SF eff) / (1 - eff)``, with ``eff`` its MC tagging efficiency;
an event's weight is the product over its jets. Summed over pass and fail, the
expected weight of a jet is ``eff SF + (1 - SF eff) = 1``: the weights move jets
from fail to pass (or back) without changing the number of jets.

* :func:`efficiency_histogram`, :func:`fill_efficiency` and :func:`efficiency_map`
  derive ``eff`` per (working point, flavour, pT) from simulation and store it as a
  correctionlib correction (inputs ``working_point``, ``flavor``, ``pt``);
* :func:`add_tagging_weights` evaluates the SF and efficiency corrections on jets and
  adds the event weights, with the total and per-source variations, to a
  ``coffea.analysis_tools.Weights``;
* :func:`double_b_flavor` labels jets with the double-b flavour convention of the
  SF files (5: >= 2 B hadrons, 4: no B and >= 2 C hadrons, 0: everything else).

Eager arrays only (numpy, awkward); the functions run inside a processor's
``process`` on each chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import awkward as ak
import correctionlib
import correctionlib.schemav2 as cs
import hist
import numpy as np

from jettag import corrections
from jettag.errors import JettagError

__all__ = [
    "DEFAULT_FLAVORS",
    "add_tagging_weights",
    "double_b_flavor",
    "efficiency_histogram",
    "efficiency_map",
    "fill_efficiency",
    "sf_sources",
]

#: Flavour keys of the efficiency maps: double-b (5), double-c (4), other (0).
DEFAULT_FLAVORS = (0, 4, 5)

Empty = Literal["error", "nearest"]


# ---------------------------------------------------------------------------- arrays


def _flat(x: Any, what: str) -> tuple[np.ndarray, Any]:
    """A flat numpy array of per-jet values and the jet counts per event (None: one per event)."""
    if isinstance(x, np.ndarray):
        if x.ndim != 1:
            raise ValueError(f"{what}: a numpy array must be 1D (one jet per event)")
        return x, None
    arr = ak.Array(x)
    if arr.ndim == 1:
        return np.asarray(ak.to_numpy(arr)), None
    if arr.ndim == 2:
        counts = ak.to_numpy(ak.fill_none(ak.num(arr, axis=1), 0))
        return np.asarray(ak.to_numpy(ak.flatten(arr, axis=1))), counts
    raise ValueError(
        f"{what}: need per-event jets (1D) or jagged events x jets (2D), got {arr.ndim}D"
    )


def _same_layout(values: Any, counts: Any, n: int, what: str) -> np.ndarray:
    """``values`` flattened, checked to hold one entry per jet of the reference layout."""
    flat, c = _flat(values, what)
    if flat.shape[0] != n or (
        counts is not None and c is not None and not np.array_equal(c, counts)
    ):
        raise ValueError(f"{what}: does not have one value per jet")
    return flat


def double_b_flavor(n_b_hadrons: Any, n_c_hadrons: Any) -> Any:
    """The double-b flavour of jets: 5 with >= 2 B hadrons, 4 with none and >= 2 C, else 0.

    The convention of jettag's SF files (``flavor = 5`` = the bb jets the g->bb and
    Z->bb proxies measure), computed from the jets' ``nBHadrons``/``nCHadrons``;
    numpy in, numpy out; awkward in, awkward out.
    """
    nb, nc = n_b_hadrons, n_c_hadrons
    if isinstance(nb, np.ndarray) and isinstance(nc, np.ndarray):
        return np.where(nb >= 2, 5, np.where((nb == 0) & (nc >= 2), 4, 0))
    return ak.where(nb >= 2, 5, ak.where((nb == 0) & (nc >= 2), 4, 0))


# ---------------------------------------------------------------------------- efficiency maps


def efficiency_histogram(
    pt_edges: Sequence[float],
    working_points: Sequence[str],
    *,
    flavors: Sequence[int] = DEFAULT_FLAVORS,
) -> hist.Hist:
    """The empty histogram an efficiency map is derived from.

    Axes ``working_point`` (StrCategory), ``flavor`` (IntCategory), ``pt`` (Variable,
    GeV), ``passed`` (Boolean); ``Weight`` storage (fill with the MC event weight).
    """
    return hist.Hist(
        hist.axis.StrCategory(list(working_points), name="working_point"),
        hist.axis.IntCategory(list(flavors), name="flavor"),
        hist.axis.Variable(np.asarray(pt_edges, dtype=float), name="pt", label="jet pT [GeV]"),
        hist.axis.Boolean(name="passed"),
        storage=hist.storage.Weight(),
    )


def fill_efficiency(
    h: hist.Hist,
    pt: Any,
    flavor: Any,
    passed: Mapping[str, Any] | Any,
    *,
    weight: Any = None,
    working_point: str | None = None,
) -> hist.Hist:
    """Fill ``h`` (from :func:`efficiency_histogram`) with jets; return it.

    ``pt``, ``flavor`` and the pass masks hold one value per jet (numpy, or jagged
    awkward events x jets); ``passed`` maps working point -> mask, or is one mask for
    ``working_point``. ``weight``: per event (broadcast to its jets) or per jet; default 1.
    """
    if not isinstance(passed, Mapping):
        if working_point is None:
            raise ValueError("fill_efficiency: give working_point with a single pass mask")
        passed = {working_point: passed}
    ptf, counts = _flat(pt, "pt")
    n = ptf.shape[0]
    flav = _same_layout(flavor, counts, n, "flavor").astype(np.int64)
    if weight is None:
        w = np.ones(n)
    else:
        wf, wcounts = _flat(weight, "weight")
        if counts is not None and wcounts is None:  # one weight per event: each of its jets
            if wf.shape[0] != counts.shape[0]:
                raise ValueError("fill_efficiency: weight must hold one value per event or per jet")
            wf = np.repeat(wf, counts)
        else:
            wf = _same_layout(weight, counts, n, "weight")
        w = wf.astype(float)
    for wp, mask in passed.items():
        m = _same_layout(mask, counts, n, f"passed[{wp!r}]").astype(bool)
        h.fill(working_point=wp, flavor=flav, pt=ptf, passed=m, weight=w)
    return h


def _axis(h: hist.Hist, name: str) -> int:
    names = [ax.name for ax in h.axes]
    if name not in names:
        raise JettagError(f"efficiency map: the histogram has no axis {name!r} (axes: {names})")
    return names.index(name)


def efficiency_map(
    h: hist.Hist,
    *,
    name: str = "jettag_efficiency",
    description: str = "MC tagging efficiency",
    empty: Empty = "error",
    version: int = 1,
) -> cs.Correction:
    """MC tagging efficiency eff = pass / (pass + fail) per (working point, flavour, pT bin).

    ``h``: axes ``working_point`` (StrCategory), ``flavor`` (IntCategory), ``pt``
    (Variable or Regular; its flow bins are not used) and ``passed`` (Boolean, or
    IntCategory with 0 and 1), ``Weight`` storage, filled with MC event weights.
    The correction has inputs ``working_point``, ``flavor``, ``pt`` (clamped to the edge
    bins) and output ``eff``.

    A bin without jets (sum of weights <= 0) has no efficiency: ``empty="error"``
    (default) raises :class:`JettagError` naming the bin, so that the map is not
    silently wrong; ``empty="nearest"`` takes the efficiency of the nearest filled pT
    bin of the same working point and flavour and lists the filled bins in the
    description. Efficiencies outside [0, 1] (negative weights) are clipped, also noted.
    """
    if empty not in ("error", "nearest"):
        raise ValueError(f"efficiency_map: empty must be 'error' or 'nearest', got {empty!r}")
    order = [_axis(h, n) for n in ("working_point", "flavor", "pt", "passed")]
    wp_ax, fl_ax, pt_ax, ps_ax = (h.axes[i] for i in order)
    if not isinstance(pt_ax, hist.axis.Variable | hist.axis.Regular):
        raise JettagError("efficiency map: the pt axis must be Variable or Regular")
    if isinstance(ps_ax, hist.axis.Boolean):
        i_pass, i_fail = ps_ax.index(True), ps_ax.index(False)
    elif isinstance(ps_ax, hist.axis.IntCategory) and {0, 1} <= set(ps_ax):
        i_pass, i_fail = ps_ax.index(1), ps_ax.index(0)
    else:
        raise JettagError("efficiency map: the passed axis must be Boolean or IntCategory [0, 1]")
    values = np.moveaxis(np.asarray(h.values(), dtype=float), order, [0, 1, 2, 3])
    npass, nfail = values[..., i_pass], values[..., i_fail]
    total = npass + nfail
    wps, flavors, edges = list(wp_ax), [int(f) for f in fl_ax], np.asarray(pt_ax.edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(total > 0, npass / total, np.nan)
    notes = []
    if np.any(eff[np.isfinite(eff)] < 0) or np.any(eff[np.isfinite(eff)] > 1):
        notes.append("efficiencies outside [0, 1] (negative weights) clipped")
        eff = np.where(np.isfinite(eff), np.clip(eff, 0.0, 1.0), eff)
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = []
    for i, wp in enumerate(wps):
        for j, fl in enumerate(flavors):
            row = eff[i, j]
            bad = ~np.isfinite(row)
            if not bad.any():
                continue
            where = [
                f"working_point={wp}, flavor={fl}, pt [{edges[k]:g}, {edges[k + 1]:g})"
                for k in np.flatnonzero(bad)
            ]
            if empty == "error" or bad.all():
                raise JettagError(
                    f"efficiency map {name}: no MC jets in {where[0]}"
                    + (f" and {len(where) - 1} more bins" if len(where) > 1 else "")
                    + ("" if empty == "error" else " (no filled pT bin to take it from)")
                    + "; use wider pT bins or more simulation"
                    + (", or empty='nearest'" if empty == "error" else "")
                )
            good = np.flatnonzero(~bad)
            for k in np.flatnonzero(bad):
                src = good[np.argmin(np.abs(centres[good] - centres[k]))]
                row[k] = row[src]
                filled.append(
                    f"{wp}/{fl}/pt [{edges[k]:g}, {edges[k + 1]:g}) from [{edges[src]:g}, "
                    f"{edges[src + 1]:g})"
                )
    if filled:
        notes.append("empty bins filled from the nearest pT bin: " + "; ".join(filled))

    by_wp = {}
    for i, wp in enumerate(wps):
        by_fl = {}
        for j, fl in enumerate(flavors):
            one = hist.Hist(hist.axis.Variable(edges, name="pt"))
            one.view()[...] = eff[i, j]
            by_fl[fl] = corrections.binned(one, flow="clamp")
        by_wp[wp] = corrections.category("flavor", by_fl)
    data = corrections.category("working_point", by_wp)
    parts = [
        description.rstrip("."),
        "eff = sum w(pass) / sum w(pass + fail) of simulated jets",
        f"flavor keys {flavors} (jettag double-b convention: 5 >= 2 B hadrons, "
        "4 no B and >= 2 C, 0 other)",
        f"pt [GeV] edges {[float(f'{e:g}') for e in edges]}, clamped outside",
        *notes,
    ]
    inputs = [
        corrections.variable("working_point", "string", description="/".join(wps)),
        corrections.variable("flavor", "int", description="jet flavour"),
        corrections.variable("pt", description="jet pT [GeV]"),
    ]
    output = corrections.variable("eff", description="MC tagging efficiency")
    return corrections.correction(name, "; ".join(parts), inputs, output, data, version=version)


# ---------------------------------------------------------------------------- weights


def _evaluator(corr: Any, what: str) -> Any:
    """A correctionlib evaluator: from a schemav2 ``Correction`` or as given."""
    if isinstance(corr, cs.Correction):
        return corr.to_evaluator()
    if isinstance(corr, correctionlib.highlevel.Correction):
        return corr
    raise TypeError(f"{what}: expected a correctionlib Correction, got {type(corr).__name__}")


def sf_sources(sf_correction: cs.Correction) -> tuple[str, ...]:
    """The uncertainty sources of a scale-factor correction (its ``up_<source>`` keys).

    Needs the ``schemav2`` model (:func:`jettag.corrections.read`), since correctionlib's
    evaluator does not expose a correction's content.
    """
    if not isinstance(sf_correction, cs.Correction):
        raise TypeError("sf_sources: needs a correctionlib.schemav2.Correction (corrections.read)")
    data = sf_correction.data
    if not (isinstance(data, cs.Category) and data.input == "systematic"):
        raise JettagError(f"{sf_correction.name}: its first node is not a systematic category")
    return tuple(str(it.key)[3:] for it in data.content if str(it.key).startswith("up_"))


def _evaluate(corr: Any, known: Mapping[str, Any], what: str) -> np.ndarray:
    args = []
    for var in corr.inputs:
        if var.name not in known:
            raise JettagError(
                f"{what} {corr.name}: input {var.name!r} cannot be filled "
                f"(known: {', '.join(known)})"
            )
        args.append(known[var.name])
    return np.asarray(corr.evaluate(*args), dtype=float)


def add_tagging_weights(
    weights: Any,
    jets: Any,
    passed: Mapping[str, Any] | Any,
    *,
    sf_correction: Any,
    eff_correction: Any,
    working_point: str,
    flavor: Any,
    name: str = "jettag_sf",
    sources: Sequence[str] | None = None,
    sf_flavor: int = 5,
) -> dict[str, np.ndarray]:
    """Add fixed-working-point tagging weights to ``weights`` (a coffea ``Weights``).

    ``jets``: the jets with ``pt`` (and ``eta`` if a correction takes ``abseta``), one per
    event (1D) or jagged (events x jets); ``passed``: per-jet mask of ``working_point``,
    or a mapping working point -> mask; ``flavor``: per-jet flavour in the SF files'
    convention (:func:`double_b_flavor`) or the name of a field of ``jets``.
    ``sf_correction``: a ``<tagger>_<proxy>`` correction, ``eff_correction``: an
    :func:`efficiency_map` (schemav2 objects or correctionlib evaluators).

    Per jet of flavour ``sf_flavor``: ``SF`` if it passes, ``(1 - SF eff)/(1 - eff)`` if
    it fails (1 where eff = 1, which leaves the failing jet undefined); other jets 1.
    The event weight is the product over its jets (1 without jets). Weights can be
    negative where ``SF eff > 1``: they are kept so that the jet count is conserved.

    Added with ``weights.add_multivariation(name, ...)``: modifiers ``total`` (SF moved
    by its total up/down error) and one per source (``up_<source>``/``down_<source>``),
    i.e. variations ``<name>_totalUp``, ``<name>_<source>Down``, ... ``sources``: the
    sources to add; None reads them from ``sf_correction`` when it is a schemav2 model
    (:func:`sf_sources`), else only ``total``. Returns the event weights by systematic
    key (``central``, ``up``, ``down``, ``up_<source>``, ...).
    """
    if isinstance(passed, Mapping):
        if working_point not in passed:
            raise JettagError(
                f"add_tagging_weights: no pass mask for working point {working_point!r} "
                f"(have {', '.join(map(str, passed))})"
            )
        passed = passed[working_point]
    if sources is None:
        sources = sf_sources(sf_correction) if isinstance(sf_correction, cs.Correction) else ()
    sf_eval = _evaluator(sf_correction, "sf_correction")
    eff_eval = _evaluator(eff_correction, "eff_correction")
    if isinstance(flavor, str):
        flavor = jets[flavor]

    pt, counts = _flat(jets["pt"], "jets.pt")
    n = pt.shape[0]
    flav = _same_layout(flavor, counts, n, "flavor").astype(np.int64)
    tagged = _same_layout(passed, counts, n, "passed").astype(bool)
    sel = flav == sf_flavor
    known: dict[str, Any] = {
        "working_point": working_point,
        "flavor": flav[sel],
        "pt": pt[sel].astype(float),
    }
    if any(v.name in ("abseta", "eta") for v in [*sf_eval.inputs, *eff_eval.inputs]):
        eta = _same_layout(jets["eta"], counts, n, "jets.eta").astype(float)[sel]
        known |= {"eta": eta, "abseta": np.abs(eta)}
    eff = _evaluate(eff_eval, known, "efficiency map")
    keys = ["central", "up", "down", *(f"{d}_{s}" for s in sources for d in ("up", "down"))]
    is_pass = tagged[sel]
    fail_ok = eff < 1
    safe = np.where(fail_ok, 1 - eff, 1.0)
    event = {}
    for key in keys:
        sf = _evaluate(sf_eval, known | {"systematic": key}, "scale factor")
        w_sel = np.where(is_pass, sf, np.where(fail_ok, (1 - sf * eff) / safe, 1.0))
        w = np.ones(n)
        w[sel] = w_sel
        if counts is None:
            event[key] = w
        else:
            event[key] = np.asarray(
                ak.to_numpy(ak.prod(ak.unflatten(w, counts), axis=1)), dtype=float
            )

    modifiers = ["total", *sources]
    ups = [event["up"].copy(), *(event[f"up_{s}"].copy() for s in sources)]
    downs = [event["down"].copy(), *(event[f"down_{s}"].copy() for s in sources)]
    weights.add_multivariation(name, event["central"].copy(), modifiers, ups, downs)
    return event
