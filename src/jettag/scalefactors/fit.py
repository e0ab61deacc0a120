"""Scale-factor fits with iminuit: one working point and pT bin, or a whole template histogram.

:func:`fit_region` minimises the likelihood of :mod:`jettag.scalefactors.model` with
``iminuit.Minuit`` (errordef 0.5, strategy 1, then HESSE) and reports an :class:`SFResult`:

* the total error on SF from MINOS (asymmetric; a side MINOS cannot find falls back to HESSE);
* the statistical error: HESSE of a refit with every nuisance (log-normal normalisations,
  shapes, and the template-statistics shifts) frozen at its best-fit value, only SF (and for
  Z->bb the QCD fail yields and TF coefficients) profiled;
* per-source errors by the usual freeze-and-subtract impact: refit with one group frozen at
  its best-fit value, ``source = sqrt(max(total**2 - frozen**2, 0))`` with both widths from
  HESSE. Groups: ``"mcstat"`` (Barlow-Beeston lite off: its shifts frozen), ``"fractions"``
  (all log-normal normalisations), and each shape source by name. The sources of a
  non-linear fit need not add up in quadrature to the total.

A fit is bad when MIGRAD's minimum is not valid, the covariance is not accurate or not
positive definite, or SF lies within 1e-3 of a bound. A bad fit is retried as analysts do by
hand, each step keeping the previous one: (a) strategy 2 from a new starting point (SF from
the data's pass-region excess over the other MC); (b) freeze the log-normal nuisance of every
non-signal component with less than 5% of the MC in the pass region; (c) fix the shape
nuisances at 0. Each try is recorded in ``retries``; a fit still bad is ``"failed"`` with
``sf=None``. Degenerate inputs (no data, no MC signal, an empty pass region in data or MC
signal, no MC signal in fail) fail without fitting.

:func:`toy_inputs` and :func:`mc_as_data` make pseudo-data from the templates for closure
and pull studies.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hist
import numpy as np
from iminuit import Minuit

from jettag.scalefactors.model import (
    DEFAULT_KAPPA,
    Model,
    bb_shift,
    build_model,
    expected,
    expected_yields,
    nll,
)
from jettag.scalefactors.templates import REGIONS, RegionInputs, region_inputs

__all__ = ["SFResult", "fit_all", "fit_region", "mc_as_data", "postfit_yields", "toy_inputs"]

BOUND_TOLERANCE = 1e-3
SMALL_FRACTION = 0.05


@dataclass
class SFResult:
    """The scale factor of one working point and pT bin; ``sf`` is None when the fit failed."""

    proxy: str
    working_point: str
    pt_low: float
    pt_high: float
    sf: float | None
    err_up: float | None  # total, MINOS
    err_down: float | None
    stat: float | None  # data statistics only (all nuisances frozen)
    sources: dict[str, float]  # "mcstat", "fractions", "<shape source>": freeze-and-subtract
    eff_mc: float  # signal pass efficiency in MC, p / (p + f)
    eff_data: float | None  # SF * eff_mc
    status: str  # "ok" | "failed"
    message: str
    retries: list[str]
    n_data: dict[str, float]  # region -> data events
    n_mc_signal: dict[str, float]  # region -> MC signal yield
    parameters: dict[str, float] = field(default_factory=dict)  # best fit (for post-fit plots)
    covariance: list[list[float]] = field(default_factory=list)  # HESSE, in the order of parameters

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (NaN written as None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            return value

        return clean(dataclasses.asdict(self))


def _degenerate(n_data: dict[str, float], signal: dict[str, float]) -> str | None:
    if n_data["pass"] + n_data["fail"] <= 0:
        return "no data"
    if signal["pass"] + signal["fail"] <= 0:
        return "zero MC signal yield"
    if n_data["pass"] <= 0:
        return "empty pass region in data"
    if signal["pass"] <= 0:
        return "no MC signal in the pass region"
    if signal["fail"] <= 0:
        return "no MC signal in the fail region (the yield-conserving SF needs it)"
    return None


def _minimise(
    model: Model, start: np.ndarray, fixed: set[int], strategy: int, shift: np.ndarray | None = None
) -> Minuit:
    m = Minuit(
        lambda values: nll(model, values, shift), np.asarray(start, dtype=float), name=model.names
    )
    m.errordef = Minuit.LIKELIHOOD
    m.errors = model.steps
    m.limits = model.limits
    m.strategy = strategy
    for i in fixed:
        m.fixed[i] = True
    m.migrad()
    if m.valid:
        m.hesse()
    return m


def _problem(m: Minuit, model: Model) -> str | None:
    """Why a fit is bad, or None."""
    if not m.valid:
        return f"MIGRAD minimum not valid (EDM {m.fmin.edm:.2g})"
    if not m.fmin.has_accurate_covar:
        return "covariance not accurate"
    if not m.fmin.has_posdef_covar:
        return "covariance not positive definite"
    sf, (low, high) = m.values["sf"], model.limits[0]
    if sf - low < BOUND_TOLERANCE or high - sf < BOUND_TOLERANCE:
        return f"SF = {sf:.4g} at a bound of [{low:g}, {high:.4g}]"
    return None


def _new_start(model: Model) -> np.ndarray:
    """Start with SF from the data's pass excess over the other MC (or 0.8 if that is ~1)."""
    nu = expected(model, model.start)
    estimate = (model.data[0].sum() - nu[0, 1:].sum()) / model.p
    high = model.limits[0][1]
    sf = float(np.clip(estimate, 0.05 * high, 0.95 * high))
    start = model.start.copy()
    start[0] = 0.8 if abs(sf - 1.0) < 0.05 else sf
    return start


def _retry_steps(model: Model):
    """The hand-made retries, cumulative: (description, start, fixed, strategy) or a skip note."""
    start = _new_start(model)
    yield "strategy 2 from a new starting point", start, set(), 2
    pass_mc = model.nominal[0].sum(axis=1)
    small = {
        model.names.index(f"norm_{model.components[c]}")
        for c in model.lognormal
        if c != 0 and pass_mc[c] < SMALL_FRACTION * pass_mc.sum()
    }
    labels = ", ".join(sorted(model.names[i] for i in small))
    if small:
        yield f"froze {labels} (< {SMALL_FRACTION:.0%} of the pass-region MC)", start, small, 2
    else:
        yield (
            f"no component below {SMALL_FRACTION:.0%} of the pass-region MC to freeze",
            None,
            small,
            2,
        )
    shapes = set(model.index("shape_"))
    if shapes:
        yield "fixed the shape nuisances at 0", start, small | shapes, 2
    else:
        yield "no shape nuisance to fix", None, small, 2


def fit_region(
    inputs: RegionInputs,
    *,
    kappa: float | Mapping[str, float] = DEFAULT_KAPPA,
    n_tf: int = 1,
    minos: bool = True,
    retry: bool = True,
    breakdown: bool = True,
) -> SFResult:
    """Fit SF in one working point and pT bin (``breakdown=False``: no stat, per-source errors)."""
    n_data = {r: float(np.sum(inputs.data[r])) for r in REGIONS}
    signal = {r: float(np.sum(inputs.mc[r].get(inputs.signal, 0.0))) for r in REGIONS}
    total = signal["pass"] + signal["fail"]
    result = SFResult(
        proxy=inputs.proxy,
        working_point=inputs.working_point,
        pt_low=float(inputs.pt_edges[0]),
        pt_high=float(inputs.pt_edges[1]),
        sf=None,
        err_up=None,
        err_down=None,
        stat=None,
        sources={},
        eff_mc=signal["pass"] / total if total > 0 else float("nan"),
        eff_data=None,
        status="failed",
        message="",
        retries=[],
        n_data=n_data,
        n_mc_signal=signal,
    )
    reason = _degenerate(n_data, signal)
    if reason is not None:
        result.message = f"not fitted: {reason}"
        return result

    model = build_model(inputs, kappa=kappa, n_tf=n_tf)
    fixed: set[int] = set()
    strategy = 1
    m = _minimise(model, model.start, fixed, strategy)
    problem = _problem(m, model)
    if problem is not None and retry:
        result.retries.append(f"first fit bad: {problem}")
        for description, start, step_fixed, step_strategy in _retry_steps(model):
            if start is None:
                result.retries.append(f"skipped: {description}")
                continue
            fixed, strategy = step_fixed, step_strategy
            m = _minimise(model, start, fixed, strategy)
            problem = _problem(m, model)
            result.retries.append(f"{description}: {problem or 'good'}")
            if problem is None:
                break
    if problem is not None:
        result.message = f"fit failed: {problem}" + (" after retries" if result.retries else "")
        return result

    notes = [f"converged on retry ({result.retries[-1]})" if result.retries else "converged"]
    sf, hesse = float(m.values["sf"]), float(m.errors["sf"])
    err_up = err_down = hesse
    if minos:
        m.minos("sf")
        error = m.merrors["sf"]
        err_up = float(error.upper) if error.upper_valid else hesse
        err_down = float(-error.lower) if error.lower_valid else hesse
        if not (error.upper_valid and error.lower_valid):
            notes.append("MINOS incomplete on SF: HESSE used for the missing side")
    if breakdown:
        result.stat, result.sources = _breakdown(model, m, fixed, strategy, hesse, notes)
    result.sf, result.err_up, result.err_down = sf, err_up, err_down
    result.eff_data = sf * result.eff_mc
    result.status, result.message = "ok", "; ".join(notes)
    result.parameters = {name: float(m.values[name]) for name in model.names}
    result.covariance = np.asarray(m.covariance, dtype=float).tolist()
    return result


def _breakdown(
    model: Model, m: Minuit, fixed: set[int], strategy: int, total: float, notes: list[str]
) -> tuple[float, dict[str, float]]:
    """Statistical error and freeze-and-subtract errors per source (all from HESSE)."""
    best = np.array(m.values)
    shift = bb_shift(model, best)

    def frozen_error(group: set[int], freeze_mcstat: bool) -> float:
        refit = _minimise(model, best, fixed | group, strategy, shift if freeze_mcstat else None)
        problem = _problem(refit, model)
        if problem is not None:
            notes.append(f"a conditional refit for the error breakdown is not clean ({problem})")
        return float(refit.errors["sf"])

    norms, shapes = set(model.index("norm_")), set(model.index("shape_"))
    stat = frozen_error(norms | shapes, True)
    groups: dict[str, tuple[set[int], bool]] = {
        "mcstat": (set(), True),
        "fractions": (norms, False),
    }
    groups |= {source: ({model.names.index(f"shape_{source}")}, False) for source in model.sources}
    sources = {}
    for name, (group, freeze_mcstat) in groups.items():
        if not freeze_mcstat and group <= fixed:
            sources[name] = 0.0
            if group:
                notes.append(f"{name} frozen in the fit: no uncertainty from it")
            continue
        sources[name] = math.sqrt(max(total**2 - frozen_error(group, freeze_mcstat) ** 2, 0.0))
    return stat, sources


def fit_all(
    h: hist.Hist,
    proxy: str,
    *,
    merge: Mapping[str, Sequence[str]] | None = None,
    signal: str | None = None,
    **options: Any,
) -> list[SFResult]:
    """:func:`fit_region` on every working point and pT bin of a template histogram."""
    return [
        fit_region(
            region_inputs(h, proxy=proxy, working_point=wp, pt_bin=i, merge=merge, signal=signal),
            **options,
        )
        for wp in h.axes["working_point"]
        for i in range(h.axes["pt"].size)
    ]


def postfit_yields(
    inputs: RegionInputs,
    result: SFResult | None = None,
    *,
    kappa: float | Mapping[str, float] = DEFAULT_KAPPA,
    n_tf: int = 1,
) -> dict[str, dict[str, np.ndarray]]:
    """Region -> component -> expected yield: post-fit at ``result``'s parameters, pre-fit without.

    Pass the ``kappa`` and ``n_tf`` the fit used. A failed result gives the pre-fit yields.
    """
    model = build_model(inputs, kappa=kappa, n_tf=n_tf)
    values = model.start
    if result is not None and result.parameters:
        values = np.array([result.parameters[name] for name in model.names])
    return expected_yields(model, values)


def toy_inputs(
    inputs: RegionInputs,
    rng: np.random.Generator,
    *,
    truth_sf: float = 1.0,
    kappa: float | Mapping[str, float] = DEFAULT_KAPPA,
    nuisances: bool = True,
) -> RegionInputs:
    """A pseudo-experiment drawn from the templates, with a known SF.

    Data are Poisson draws of the MC templates (every component, Z->bb QCD from its MC
    template) with the signal scaled by ``truth_sf`` in pass and by the yield-conserving
    factor in fail. With ``nuisances`` (default) the true log-normal and shape nuisances are
    drawn from their unit-Gaussian priors, as Combine's default toys do; without, they are 0.
    The MC templates are then fluctuated within their sumw2 (Gaussian, floored at 0; the
    varied templates by the same amount), so that the template-statistics term is exercised.
    """
    model = build_model(inputs, kappa=kappa, qcd_from_tf=False)
    low, high = model.limits[0]
    if not low <= truth_sf <= high:
        raise ValueError(f"truth_sf {truth_sf} outside the allowed [{low}, {high:.4g}]")
    truth = model.start.copy()
    truth[0] = truth_sf
    if nuisances:
        truth[1:] = rng.standard_normal(len(truth) - 1)
    nu = expected(model, truth).sum(axis=1)
    data = {r: rng.poisson(nu[i]).astype(float) for i, r in enumerate(REGIONS)}
    mc = {r: {} for r in REGIONS}
    variations = {label: {r: {} for r in REGIONS} for label in inputs.variations}
    for r in REGIONS:
        for c, sumw in inputs.mc[r].items():
            noise = rng.normal(0.0, np.sqrt(np.maximum(inputs.mc_w2[r][c], 0.0)))
            mc[r][c] = np.maximum(sumw + noise, 0.0)
            for label, varied in inputs.variations.items():
                if c in varied[r]:
                    variations[label][r][c] = np.maximum(varied[r][c] + noise, 0.0)
    return dataclasses.replace(inputs, data=data, mc=mc, variations=variations)


def mc_as_data(inputs: RegionInputs) -> RegionInputs:
    """The inputs with data replaced by the nominal MC sum, kept non-integer (Asimov data)."""
    data = {
        r: np.sum([np.asarray(v, dtype=float) for v in inputs.mc[r].values()], axis=0)
        for r in REGIONS
    }
    return dataclasses.replace(inputs, data=data)
