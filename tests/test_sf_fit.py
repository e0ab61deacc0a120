"""The scale-factor template fit (jettag.scalefactors templates, model, fit) on synthetic templates.

Templates are built with numpy (12-16 observable bins, a few thousand events per region, MC
with 4x the data statistics); toys and Asimov data come from :mod:`jettag.scalefactors.fit`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from jettag.errors import JettagError
from jettag.scalefactors.fit import fit_all, fit_region, mc_as_data, postfit_yields, toy_inputs
from jettag.scalefactors.model import (
    bb_lite,
    build_model,
    expected,
    normalised_observable,
    transfer_factor,
)
from jettag.scalefactors.templates import RegionInputs, make_template_hist, region_inputs

REGIONS = ("pass", "fail")


def _peak(centres: np.ndarray, mean: float, width: float, floor: float = 0.02) -> np.ndarray:
    shape = np.exp(-0.5 * ((centres - mean) / width) ** 2) + floor
    return shape / shape.sum()


def gbb_inputs(n_events: float = 8000.0, n_obs: int = 12, mc_factor: float = 4.0) -> RegionInputs:
    """g->bb-like templates in ln(SV mass): bb high, b+cc middle, c+light low; one shape source.

    ``bfrag`` moves the b-hadron components' SV mass by +-0.1 and migrates 5% of their pass
    yield to fail (or back). Data are the MC sum (Asimov).
    """
    edges = np.linspace(-1.0, 2.5, n_obs + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    mc = {r: {} for r in REGIONS}
    variations = {f"bfrag_{side}": {r: {} for r in REGIONS} for side in ("up", "down")}
    for name, fraction, eff, mean in (
        ("bb", 0.3, 0.6, 1.6),
        ("b+cc", 0.3, 0.3, 0.9),
        ("c+light", 0.4, 0.08, 0.2),
    ):
        for region, share, offset in (("pass", eff, 0.1), ("fail", 1 - eff, 0.0)):
            mc[region][name] = n_events * fraction * share * _peak(centres, mean + offset, 0.45)
            if name != "c+light":
                for side, sign in (("up", 1), ("down", -1)):
                    migrate = 0.05 * sign * (1.0 if region == "pass" else -eff / (1 - eff))
                    variations[f"bfrag_{side}"][region][name] = (
                        n_events
                        * fraction
                        * share
                        * (1 + migrate)
                        * _peak(centres, mean + offset + 0.1 * sign, 0.45)
                    )
    w2 = {r: {c: y / mc_factor for c, y in mc[r].items()} for r in REGIONS}
    empty = {r: np.zeros(n_obs) for r in REGIONS}
    return mc_as_data(
        RegionInputs("gbb", "M", (300.0, 400.0), edges, empty, mc, w2, variations, "bb")
    )


def zbb_inputs(
    qcd_fail: float = 20000.0, n_obs: int = 16, tf: tuple[float, float] = (0.05, 0.3)
) -> RegionInputs:
    """Z->bb-like msoftdrop templates: Z peaks on falling QCD; QCD pass = tf0 fail (1 + tf1 x)."""
    edges = np.linspace(40.0, 200.0, n_obs + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    mc = {r: {} for r in REGIONS}
    for name, total, eff, mean in (
        ("zbb", 800, 0.5, 88.0),
        ("zcc", 600, 0.1, 90.0),
        ("zqq", 1800, 0.02, 91.0),
    ):
        mc["pass"][name] = total * eff * _peak(centres, mean, 9.0, 0.01)
        mc["fail"][name] = total * (1 - eff) * _peak(centres, mean, 9.0, 0.01)
    shape = np.exp(-centres / 50.0)
    mc["fail"]["qcd"] = qcd_fail * shape / shape.sum()
    mc["pass"]["qcd"] = mc["fail"]["qcd"] * tf[0] * (1 + tf[1] * normalised_observable(edges))
    w2 = {r: {c: y / 4.0 for c, y in mc[r].items()} for r in REGIONS}
    empty = {r: np.zeros(n_obs) for r in REGIONS}
    return mc_as_data(RegionInputs("zbb", "M", (300.0, 400.0), edges, empty, mc, w2, {}, "zbb"))


def _pull(result, truth: float) -> float:
    delta = result.sf - truth
    return delta / (result.err_down if delta > 0 else result.err_up)


def test_mc_as_data_gives_sf_one():
    result = fit_region(gbb_inputs())
    assert result.status == "ok", result.message
    assert result.sf == pytest.approx(1.0, abs=1e-3)
    assert 0.005 < result.err_down < 0.1 and 0.005 < result.err_up < 0.1
    assert 0 < result.stat < min(result.err_up, result.err_down)
    assert set(result.sources) == {"mcstat", "fractions", "bfrag"}
    assert result.eff_mc == pytest.approx(0.6)
    assert result.eff_data == pytest.approx(result.sf * 0.6)
    assert result.n_mc_signal == pytest.approx({"pass": 1440.0, "fail": 960.0})
    assert json.loads(json.dumps(result.to_dict()))["sf"] == pytest.approx(result.sf)
    # post-fit yields at the best fit reproduce the (Asimov) data
    post = postfit_yields(gbb_inputs(), result)
    assert sum(post["pass"].values()) == pytest.approx(gbb_inputs().data["pass"], rel=1e-3)


def test_toy_recovers_truth():
    result = fit_region(toy_inputs(gbb_inputs(), np.random.default_rng(11), truth_sf=0.8))
    assert result.status == "ok", result.message
    assert abs(_pull(result, 0.8)) < 3


def test_pulls_over_100_toys():
    """The issue asks mean within 0.1 and width within 10% of 1; 100 toys add 3 stat. sigma."""
    inputs, rng, truth, n = gbb_inputs(), np.random.default_rng(2024), 0.9, 100
    pulls = []
    for _ in range(n):
        result = fit_region(toy_inputs(inputs, rng, truth_sf=truth), breakdown=False)
        assert result.status == "ok", result.message
        pulls.append(_pull(result, truth))
    mean, width = float(np.mean(pulls)), float(np.std(pulls, ddof=1))
    print(
        f"SF pull over {n} toys: mean {mean:+.3f} +- {width / np.sqrt(n):.3f}, "
        f"width {width:.3f} +- {width / np.sqrt(2 * (n - 1)):.3f}"
    )
    assert abs(mean) < 0.1 + 3 / np.sqrt(n)
    assert abs(width - 1) < 0.1 + 3 / np.sqrt(2 * (n - 1))


def test_signal_yield_conserved_whatever_sf():
    """At the nominal shape (alpha = 0, as in Combine where p and f are constants) pass + fail
    signal does not depend on SF; the normalisation nuisances scale both regions alike."""
    model = build_model(gbb_inputs())
    values = model.start.copy()
    values[model.index("norm_")] = np.random.default_rng(1).normal(0, 1, len(model.index("norm_")))
    norm = 1.2 ** values[model.names.index("norm_bb")]
    totals = []
    for sf in (0.0, 0.5, 1.0, 1.5, model.limits[0][1]):
        values[0] = sf
        nu = expected(model, values)
        totals.append(nu[:, 0].sum())
        assert nu[0, 0].sum() == pytest.approx(sf * norm * model.p)
    assert np.allclose(totals, norm * (model.p + model.f), rtol=1e-12)
    assert nu[1, 0].sum() == pytest.approx(0.0, abs=1e-9)  # at the upper bound 1 + f/p


def test_morphing_reaches_the_normalised_templates_and_extrapolates_linearly():
    inputs = gbb_inputs()
    model = build_model(inputs)
    shape = model.names.index("shape_bfrag")
    up = inputs.variations["bfrag_up"]
    scale = (inputs.mc["pass"]["bb"].sum() + inputs.mc["fail"]["bb"].sum()) / (
        up["pass"]["bb"].sum() + up["fail"]["bb"].sum()
    )
    at = {}
    for alpha in (1.0, 2.0, 3.0):
        values = model.start.copy()
        values[shape] = alpha
        at[alpha] = expected(model, values)
    assert np.allclose(at[1.0][0, 0], up["pass"]["bb"] * scale)
    assert np.allclose(at[3.0] - at[2.0], at[2.0] - at[1.0])
    assert at[1.0][0, 0].sum() != pytest.approx(
        model.nominal[0, 0].sum()
    )  # the pass/fail migration moves


@pytest.mark.parametrize(
    ("nu", "n", "e2"),
    [
        (100.0, 120.0, 25.0),
        (100.0, 80.0, 400.0),
        (3.0, 0.0, 9.0),
        (2.0, 7.0, 16.0),
        (50.0, 50.0, 1e-6),
        (0.5, 3.0, 0.2),
    ],
)
def test_bb_lite_is_the_per_bin_minimum(nu, n, e2):
    e = np.sqrt(e2)

    def per_bin(x: float) -> float:
        mu = nu + x * e
        return (
            np.inf if mu <= 0 else mu - n * np.log(mu) + 0.5 * x * x if n > 0 else mu + 0.5 * x * x
        )

    low = -nu / e + 1e-12
    brute = minimize_scalar(per_bin, bounds=(low, 50.0), method="bounded", options={"xatol": 1e-10})
    assert float(bb_lite(np.array(nu), np.array(n), np.array(e2))) == pytest.approx(
        nu + brute.x * e, rel=1e-5, abs=1e-6
    )


def test_degenerate_input_fails_without_fitting():
    inputs = gbb_inputs()
    empty_pass = dataclasses.replace(
        inputs, data={"pass": np.zeros(12), "fail": inputs.data["fail"]}
    )
    result = fit_region(empty_pass)
    assert (result.status, result.sf, result.retries) == ("failed", None, [])
    assert "empty pass region" in result.message
    no_signal = dataclasses.replace(
        inputs, mc={r: {**inputs.mc[r], "bb": np.zeros(12)} for r in REGIONS}
    )
    assert "zero MC signal" in fit_region(no_signal).message
    assert json.dumps(result.to_dict())


def test_fit_at_a_bound_is_retried_then_failed():
    inputs = gbb_inputs()
    data = {
        "pass": inputs.data["pass"] + 1.5 * inputs.mc["pass"]["bb"],
        "fail": inputs.data["fail"] - inputs.mc["fail"]["bb"],
    }
    result = fit_region(dataclasses.replace(inputs, data=data))
    assert result.status == "failed" and result.sf is None and result.eff_data is None
    assert "bound" in result.message
    assert result.retries[0].startswith("first fit bad")
    assert any(r.startswith("strategy 2") for r in result.retries)
    assert any("shape nuisances at 0" in r for r in result.retries)


def test_zbb_transfer_factor_and_sf():
    inputs = zbb_inputs()
    truth_tf = 0.05 * (1 + 0.3 * normalised_observable(inputs.observable_edges))
    result = fit_region(
        toy_inputs(inputs, np.random.default_rng(5), truth_sf=0.8), n_tf=2, breakdown=False
    )
    assert result.status == "ok", result.message
    assert abs(_pull(result, 0.8)) < 3
    names = list(result.parameters)
    tf_index = [names.index(f"tf_{k}") for k in range(3)]
    coefficients = np.array([result.parameters[names[i]] for i in tf_index])
    covariance = np.array(result.covariance)[np.ix_(tf_index, tf_index)]
    x = normalised_observable(inputs.observable_edges)
    fitted = transfer_factor(coefficients, x)
    gradient = fitted[:, None] * x[:, None] ** np.arange(3)
    error = np.sqrt(np.einsum("ik,kl,il->i", gradient, covariance, gradient))
    assert np.all(np.abs(fitted - truth_tf) < 3 * error), (fitted, truth_tf, error)
    assert np.all(error < 0.2 * truth_tf)


def _filled_hist(rng: np.random.Generator):
    h = make_template_hist("gbb", np.linspace(-1.0, 2.5, 8), [250.0, 400.0, 800.0], ["L", "T"])
    for sample, n, mean in (
        ("bb", 3000, 1.5),
        ("b", 1500, 0.9),
        ("cc", 1000, 0.8),
        ("c", 1500, 0.3),
        ("light", 3000, 0.0),
    ):
        for variation, shift in (("nominal", 0.0), ("bfrag_up", 0.1), ("bfrag_down", -0.1)):
            if variation != "nominal" and sample not in ("bb", "b"):
                continue
            local = np.random.default_rng(len(sample))  # the same events in every variation
            svmass = local.normal(mean, 0.5, n) + shift
            pt = 250.0 + local.exponential(150.0, n)
            score = local.beta(4.0 if sample == "bb" else 1.2, 3.0, n)
            for wp, cut in (("L", 0.3), ("T", 0.7)):
                region = np.where(score > cut, "pass", "fail")
                h.fill(
                    category=sample, variation=variation, working_point=wp, region=region,
                    pt=pt, svmass=svmass, weight=0.25,
                )
    for wp, cut in (("L", 0.3), ("T", 0.7)):
        score = rng.beta(2.0, 3.0, 4000)
        region = np.where(score > cut, "pass", "fail")
        h.fill(
            "data",
            "nominal",
            wp,
            region,
            250.0 + rng.exponential(150.0, 4000),
            rng.normal(0.8, 0.7, 4000),
        )
    return h


def test_region_inputs_reads_and_merges_the_layout():
    h = _filled_hist(np.random.default_rng(3))
    inputs = region_inputs(h, proxy="gbb", working_point="T", pt_bin=1)
    assert inputs.pt_edges == (400.0, 800.0) and inputs.signal == "bb"
    assert set(inputs.mc["pass"]) == {"bb", "b+cc", "c+light"}
    view = {"working_point": "T", "pt": 1, "variation": "nominal"}
    for region in REGIONS:
        cut = {**view, "region": region}
        b, cc = (h[{**cut, "category": s}] for s in ("b", "cc"))
        assert np.allclose(inputs.mc[region]["b+cc"], b.values() + cc.values())
        assert np.allclose(inputs.mc_w2[region]["b+cc"], b.variances() + cc.variances())
        assert np.allclose(inputs.data[region], h[{**cut, "category": "data"}].values())
        # cc was never filled with bfrag: its nominal template stands in
        assert np.allclose(
            inputs.variations["bfrag_up"][region]["b+cc"],
            h[{**cut, "variation": "bfrag_up", "category": "b"}].values() + cc.values(),
        )
        assert np.allclose(
            inputs.variations["bfrag_up"][region]["c+light"], inputs.mc[region]["c+light"]
        )
    custom = region_inputs(
        h,
        proxy="gbb",
        working_point="L",
        pt_bin=0,
        merge={"bb": ["bb"], "rest": ["b", "cc", "c", "light", "gluon"]},
    )
    assert set(custom.mc["fail"]) == {"bb", "rest"}  # "gluon" absent: zeros
    results = fit_all(h, "gbb", minos=False, breakdown=False)
    assert [(r.working_point, r.pt_low) for r in results] == [
        ("L", 250.0),
        ("L", 400.0),
        ("T", 250.0),
        ("T", 400.0),
    ]
    assert all(r.n_data["pass"] > 0 for r in results)


def test_region_inputs_names_what_is_missing():
    h = make_template_hist("gbb", [0.0, 1.0, 2.0], [250.0, 800.0], ["M"])
    h.fill("bb", "nominal", "M", "pass", 300.0, 0.5)
    with pytest.raises(JettagError, match="no 'data' category"):
        region_inputs(h, proxy="gbb", working_point="M", pt_bin=0)
    h.fill("data", "nominal", "M", "pass", 300.0, 0.5)
    with pytest.raises(JettagError, match="no signal category"):
        region_inputs(h, proxy="gbb", working_point="M", pt_bin=0, signal="b+cc")
    with pytest.raises(JettagError, match="working point 'T'"):
        region_inputs(h, proxy="gbb", working_point="T", pt_bin=0)
    h.fill("bb", "ipres_up", "M", "pass", 300.0, 0.5)
    with pytest.raises(JettagError, match="'ipres_down'"):
        region_inputs(h, proxy="gbb", working_point="M", pt_bin=0)
