"""The binned pass/fail likelihood of a tagging scale-factor fit, in pure numpy.

The model is the one the CMS tagging groups write for Combine, for one working point and pT
bin (:class:`~jettag.scalefactors.templates.RegionInputs`); regions are ``(pass, fail)``:

* **Signal** (``bb`` / ``zbb``): its pass template is scaled by SF, its fail template by
  ``(p + f - p SF) / f`` with ``p``, ``f`` the nominal MC signal yields in pass and fail, so the
  total signal yield does not depend on SF; SF is bounded to ``[0, 1 + f/p]`` (fail yield >= 0).
  Its overall normalisation floats with a log-normal nuisance (the same factor in pass and
  fail, so it does not change the efficiency).
* **Other MC components** ``c``: yield x ``kappa_c ** theta_c``, ``theta_c`` with a unit
  Gaussian constraint (log-normal flavour-fraction nuisance, default ``kappa`` 1.2).
* **Shape systematics**: one nuisance ``alpha_s`` (unit Gaussian constraint) per source with
  ``<source>_up`` / ``<source>_down`` templates, applied by vertical morphing per bin with
  HistFactory's interpolation code 2 (pyhf ``code2``): quadratic inside ``|alpha| <= 1``,
  linear outside, continuous with its first derivative. Written compactly, the shift is
  ``a q(alpha) + b alpha`` with ``a = (up + down)/2 - nominal``, ``b = (up - down)/2``,
  ``q = alpha**2`` inside and ``2|alpha| - 1`` outside. Each varied template is scaled so that
  its total over pass AND fail equals the component's nominal total: the log-normal nuisance
  owns the overall normalisation, the shape source moves the shape and the pass/fail migration
  (no renormalisation per region). Every component that has a varied template is morphed by
  the same ``alpha_s``.
* **Template statistics**: Barlow-Beeston lite as Combine's ``autoMCStats`` does it: one
  nuisance per bin and region for the total MC, ``mu = nu + x e`` with ``x`` unit Gaussian and
  ``e**2`` the summed ``sumw2`` of the MC templates (scaled with each component's
  normalisation), profiled analytically (:func:`bb_lite`); the effective gamma is ``mu/nu``.
* **Z->bb QCD** (component ``qcd``): data-driven. In the fail region it has one free yield per
  observable bin (``qcd_fail_<i>``, started at data minus the other MC, floored at 0.1); in
  the pass region it is that times a transfer factor ``TF(x) = exp(sum_k tf_k x**k)``, a
  polynomial of order ``n_tf`` in the observable mapped to ``x`` in ``[-1, 1]`` (bin centres),
  whose coefficients float. The QCD simulation only starts the fit (the TF coefficients are
  started from a fit of its pass/fail ratio) and enters neither the likelihood nor the
  template-statistics term.

The likelihood is Poisson in the data counts (non-integer Asimov counts allowed), written as
``sum(mu - n + n ln(n/mu))`` (the saturated model subtracted) plus the Gaussian constraints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import polynomial
from scipy.special import xlogy

from jettag.errors import JettagError
from jettag.scalefactors.templates import REGIONS, RegionInputs

__all__ = [
    "DEFAULT_KAPPA",
    "Model",
    "bb_lite",
    "bb_shift",
    "build_model",
    "expected",
    "expected_yields",
    "nll",
    "normalised_observable",
    "poisson_nll",
    "transfer_factor",
]

DEFAULT_KAPPA = 1.2
QCD_FLOOR = 0.1
_TINY = 1e-12


@dataclass(frozen=True, eq=False)
class Model:
    """One fit's likelihood, precomputed from its inputs; arrays are (region, component, bin).

    Parameters, in the order of ``names``: ``sf``; ``norm_<component>`` (log-normal thetas,
    signal first); ``shape_<source>`` (alphas); for Z->bb ``qcd_fail_<i>`` and ``tf_<k>``.
    """

    names: tuple[str, ...]
    start: np.ndarray
    limits: tuple[tuple[float | None, float | None], ...]
    steps: np.ndarray
    components: tuple[str, ...]  # the signal first
    sources: tuple[str, ...]  # shape systematics
    nominal: np.ndarray  # (2, C, n) MC sumw
    w2: np.ndarray  # (2, C, n) MC sumw2 (zero for the data-driven QCD)
    quad: np.ndarray  # (S, 2, C, n) morphing a
    lin: np.ndarray  # (S, 2, C, n) morphing b
    data: np.ndarray  # (2, n)
    p: float  # nominal MC signal yield, pass
    f: float  # nominal MC signal yield, fail
    lognormal: np.ndarray  # component indices with a log-normal normalisation
    log_kappa: np.ndarray  # ln(kappa) of those
    qcd: int | None  # index of the data-driven QCD component (Z->bb), else None
    x: np.ndarray  # (n,) observable bin centres mapped to [-1, 1]
    n_tf: int

    def index(self, prefix: str) -> list[int]:
        """Indices of the parameters whose names start with ``prefix``."""
        return [i for i, name in enumerate(self.names) if name.startswith(prefix)]


def normalised_observable(edges: np.ndarray) -> np.ndarray:
    """Bin centres of ``edges`` mapped linearly onto [-1, 1] (the TF's variable)."""
    edges = np.asarray(edges, dtype=float)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return 2.0 * (centres - edges[0]) / (edges[-1] - edges[0]) - 1.0


def transfer_factor(coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The QCD pass/fail transfer factor ``exp(sum_k c_k x**k)``."""
    return np.exp(polynomial.polyval(x, coefficients))


def build_model(
    inputs: RegionInputs,
    *,
    kappa: float | Mapping[str, float] = DEFAULT_KAPPA,
    n_tf: int = 1,
    qcd_from_tf: bool = True,
) -> Model:
    """The likelihood of ``inputs``; ``kappa`` per component (a float: all), ``n_tf`` the TF order.

    ``qcd_from_tf=False`` treats Z->bb QCD as an ordinary template (used to draw toys).
    """
    components = (inputs.signal, *(c for c in inputs.mc["pass"] if c != inputs.signal))
    n = len(inputs.observable_edges) - 1
    zeros = np.zeros(n)

    def stack(per_region: Mapping[str, Mapping[str, np.ndarray]], base: np.ndarray | None = None):
        return np.array(
            [
                [
                    per_region[r].get(c, zeros if base is None else base[i, j])
                    for j, c in enumerate(components)
                ]
                for i, r in enumerate(REGIONS)
            ],
            dtype=float,
        )

    nominal, w2 = np.maximum(stack(inputs.mc), 0.0), stack(inputs.mc_w2)  # no negative-weight bins
    p, f = float(nominal[0, 0].sum()), float(nominal[1, 0].sum())
    if not (p > 0 and f > 0):
        raise JettagError(
            f"MC signal {inputs.signal!r} yields pass={p:g}, fail={f:g}: both must be positive"
        )
    qcd = (
        components.index("qcd")
        if qcd_from_tf and inputs.proxy == "zbb" and "qcd" in components
        else None
    )

    sources = tuple(sorted({label.rpartition("_")[0] for label in inputs.variations}))
    totals = nominal.sum(axis=(0, 2))  # per component, pass + fail
    quad, lin = [], []
    for source in sources:
        up, down = (
            stack(inputs.variations[f"{source}_{side}"], nominal) for side in ("up", "down")
        )
        for varied in (up, down):
            varied_totals = varied.sum(axis=(0, 2))
            varied *= np.divide(
                totals, varied_totals, out=np.ones_like(totals), where=varied_totals > 0
            )[:, None]
        quad.append(0.5 * (up + down) - nominal)
        lin.append(0.5 * (up - down))
    quad = np.array(quad).reshape(len(sources), *nominal.shape)
    lin = np.array(lin).reshape(len(sources), *nominal.shape)

    lognormal = np.array([i for i in range(len(components)) if i != qcd], dtype=int)

    def kappa_of(c: str) -> float:
        return (
            float(kappa) if not isinstance(kappa, Mapping) else float(kappa.get(c, DEFAULT_KAPPA))
        )

    names = ["sf", *(f"norm_{components[i]}" for i in lognormal), *(f"shape_{s}" for s in sources)]
    start = [1.0] + [0.0] * (len(names) - 1)
    limits: list[tuple[float | None, float | None]] = [(0.0, 1.0 + f / p)] + [(None, None)] * (
        len(names) - 1
    )
    steps = [0.05] + [0.3] * (len(names) - 1)
    data = np.array([inputs.data[r] for r in REGIONS], dtype=float)
    x = normalised_observable(inputs.observable_edges)
    if qcd is not None:
        quad[:, :, qcd] = 0.0
        lin[:, :, qcd] = 0.0
        w2[:, qcd] = 0.0
        others = np.delete(nominal, qcd, axis=1).sum(axis=1)
        qcd_fail = np.maximum(data[1] - others[1], QCD_FLOOR)
        names += [f"qcd_fail_{i}" for i in range(n)] + [f"tf_{k}" for k in range(n_tf + 1)]
        start += [*qcd_fail, *_start_tf(nominal[0, qcd], nominal[1, qcd], data, x, n_tf)]
        limits += [(0.0, None)] * n + [(None, None)] * (n_tf + 1)
        steps += [*(np.sqrt(qcd_fail) + 1.0), *([0.05] * (n_tf + 1))]
    return Model(
        names=tuple(names),
        start=np.array(start, dtype=float),
        limits=tuple(limits),
        steps=np.array(steps, dtype=float),
        components=components,
        sources=sources,
        nominal=nominal,
        w2=w2,
        quad=quad,
        lin=lin,
        data=data,
        p=p,
        f=f,
        lognormal=lognormal,
        log_kappa=np.log([kappa_of(components[i]) for i in lognormal]),
        qcd=qcd,
        x=x,
        n_tf=n_tf,
    )


def _start_tf(
    qcd_pass: np.ndarray, qcd_fail: np.ndarray, data: np.ndarray, x: np.ndarray, n_tf: int
) -> np.ndarray:
    """TF start: weighted fit of ln(QCD MC pass / fail); the overall ratio if too few bins."""
    coefficients = np.zeros(n_tf + 1)
    ok = (qcd_pass > 0) & (qcd_fail > 0)
    if ok.sum() > n_tf + 1:
        return polynomial.polyfit(
            x[ok], np.log(qcd_pass[ok] / qcd_fail[ok]), n_tf, w=np.sqrt(qcd_pass[ok])
        )
    pass_, fail = (qcd_pass.sum(), qcd_fail.sum()) if ok.any() else (data[0].sum(), data[1].sum())
    coefficients[0] = np.log(max(pass_, 1.0) / max(fail, 1.0))
    return coefficients


def _split(model: Model, values: np.ndarray):
    nn, ns, n = len(model.lognormal), len(model.sources), model.nominal.shape[2]
    theta = values[1 : 1 + nn]
    alpha = values[1 + nn : 1 + nn + ns]
    rest = values[1 + nn + ns :]
    return values[0], theta, alpha, rest[:n], rest[n:]


def _scale(model: Model, sf: float, theta: np.ndarray) -> np.ndarray:
    """(2, C) overall factor of each component: log-normal normalisation, and SF for the signal."""
    scale = np.ones(model.nominal.shape[:2])
    scale[:, model.lognormal] = np.exp(theta * model.log_kappa)
    scale[0, 0] *= sf
    scale[1, 0] *= (model.p + model.f - model.p * sf) / model.f
    return scale


def _expected(model: Model, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2, C, n) expected yields and the (2, C) overall factors of the template components."""
    sf, theta, alpha, qcd_fail, tf = _split(model, values)
    nu = model.nominal
    if alpha.size:
        q = np.where(np.abs(alpha) <= 1.0, alpha**2, 2.0 * np.abs(alpha) - 1.0)
        flat = q @ model.quad.reshape(alpha.size, -1) + alpha @ model.lin.reshape(alpha.size, -1)
        nu = np.maximum(nu + flat.reshape(nu.shape), 0.0)  # morphing may go below 0
    scale = _scale(model, sf, theta)
    nu = nu * scale[:, :, None]
    if model.qcd is not None:
        nu[1, model.qcd] = qcd_fail
        nu[0, model.qcd] = qcd_fail * transfer_factor(tf, model.x)
    return nu, scale


def expected(model: Model, values: np.ndarray) -> np.ndarray:
    """(2, C, n) expected yields per region, component and bin (before template statistics)."""
    return _expected(model, np.asarray(values, dtype=float))[0]


def expected_yields(model: Model, values: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Region -> component -> expected yield per bin at ``values`` (pre-fit: ``model.start``)."""
    nu = expected(model, values)
    return {r: {c: nu[i, j] for j, c in enumerate(model.components)} for i, r in enumerate(REGIONS)}


def bb_lite(nu: np.ndarray, n: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """Expected counts with the Barlow-Beeston-lite nuisance profiled: ``mu = nu + x_hat e``.

    Per bin, ``-ln L(x) = (nu + x e) - n ln(nu + x e) + x**2/2`` is minimised in closed form:
    setting the derivative to zero gives ``mu**2 - (nu - e**2) mu - e**2 n = 0``, whose
    non-negative root is ``mu = (b + sqrt(b**2 + 4 e**2 n)) / 2`` with ``b = nu - e**2``
    (computed as ``2 e**2 n / (sqrt(...) - b)`` when ``b < 0``, without cancellation). This is
    the per-bin quadratic of J. S. Conway, arXiv:1103.0354 (sec. 3), in the additive form that
    Combine minimises analytically for its Gaussian ``autoMCStats`` parameters
    (``--X-rtd MINIMIZER_analytic``). ``e2 = 0`` gives ``mu = nu``; the gamma is ``mu / nu``.
    """
    b = nu - e2
    root = np.sqrt(b * b + 4.0 * e2 * n)
    return np.where(b >= 0.0, 0.5 * (b + root), 2.0 * e2 * n / np.maximum(root - b, _TINY))


def poisson_nll(mu: np.ndarray, n: np.ndarray) -> float:
    """``sum(mu - n + n ln(n/mu))``: the Poisson NLL minus that of the saturated model."""
    mu = np.maximum(mu, _TINY)
    return float(np.sum(mu - n + xlogy(n, n / mu)))


def _profiled(model: Model, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total expected ``nu`` (2, n), profiled ``mu`` and the template variance ``e2``."""
    nu_c, scale = _expected(model, values)
    nu = nu_c.sum(axis=1)
    e2 = np.einsum("rcn,rc->rn", model.w2, scale * scale)
    return nu, bb_lite(nu, model.data, e2), e2


def bb_shift(model: Model, values: np.ndarray) -> np.ndarray:
    """(2, n) the profiled template-statistics shift ``mu - nu`` at ``values`` (to freeze it)."""
    nu, mu, _ = _profiled(model, np.asarray(values, dtype=float))
    return mu - nu


def nll(model: Model, values: np.ndarray, shift: np.ndarray | None = None) -> float:
    """Negative log-likelihood (Minuit errordef 0.5) at ``values``.

    ``shift=None`` profiles the template statistics (:func:`bb_lite`); an array (from
    :func:`bb_shift`) freezes them at that shift instead.
    """
    values = np.asarray(values, dtype=float)
    _, theta, alpha, *_ = _split(model, values)
    penalty = 0.5 * float(theta @ theta + alpha @ alpha)
    if shift is None:
        nu, mu, e2 = _profiled(model, values)
        penalty += 0.5 * float(
            np.sum(np.divide((mu - nu) ** 2, e2, out=np.zeros_like(e2), where=e2 > 0))
        )
    else:
        mu = _expected(model, values)[0].sum(axis=1) + shift
    return poisson_nll(mu, model.data) + penalty
