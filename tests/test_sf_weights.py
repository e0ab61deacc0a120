"""jettag.scalefactors.weights: efficiency maps and fixed-working-point weights in coffea Weights."""

from __future__ import annotations

import itertools

import awkward as ak
import hist
import numpy as np
import pytest
from coffea.analysis_tools import Weights

from jettag import corrections
from jettag.errors import JettagError
from jettag.scalefactors import output, weights

PT_EDGES = [250.0, 400.0, 1000.0]
EFF = {"M": np.array([0.3, 0.5])}  # true MC efficiency of flavour-5 jets per pT bin
SF = {"M": np.array([0.8, 0.9])}
ERR = {"M": np.array([0.05, 0.04])}
BFRAG = {"M": np.array([0.02, -0.03])}


def _sf_correction():
    rows = []
    for j, (lo, hi) in enumerate(itertools.pairwise(PT_EDGES)):
        rows.append(
            {
                "proxy": "gbb",
                "working_point": "M",
                "pt_low": lo,
                "pt_high": hi,
                "sf": float(SF["M"][j]),
                "err_up": float(ERR["M"][j]),
                "err_down": float(ERR["M"][j]),
                "stat": 0.03,
                "sources": {"bfrag": float(BFRAG["M"][j])},
                "eff_mc": float(EFF["M"][j]),
                "eff_data": float(EFF["M"][j] * SF["M"][j]),
                "status": "ok",
                "message": "",
                "retries": [],
                "n_data": {},
                "n_mc_signal": {},
            }
        )
    return output.sf_correction("toy", "gbb", rows, description="toy")


def _toy(n, seed, data=False):
    """Flavour-5 jets (one per event) passing with probability eff(pT) (MC) or SF eff (data)."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(PT_EDGES[0], PT_EDGES[-1], n)
    j = np.searchsorted(PT_EDGES, pt, side="right") - 1
    p = (SF["M"][j] if data else 1.0) * EFF["M"][j]
    return pt, rng.random(n) < p, j


def _eff_map(pt, passed, flavor=None, flavors=(5,), **kw):
    h = weights.efficiency_histogram(PT_EDGES, ["M"], flavors=flavors)
    flavor = np.full(len(pt), 5) if flavor is None else flavor
    weights.fill_efficiency(h, pt, flavor, {"M": passed})
    return weights.efficiency_map(h, **kw)


def test_efficiency_map_is_pass_over_total():
    rng = np.random.default_rng(1)
    n = 3000
    pt = ak.unflatten(rng.uniform(200.0, 1200.0, n), np.full(n // 3, 3))
    flav = ak.unflatten(rng.choice([0, 4, 5], n), np.full(n // 3, 3))
    passed = {
        "L": ak.unflatten(rng.random(n) < 0.6, np.full(n // 3, 3)),
        "M": ak.unflatten(rng.random(n) < 0.3, np.full(n // 3, 3)),
    }
    w_event = rng.uniform(0.5, 1.5, n // 3)
    h = weights.efficiency_histogram(PT_EDGES, ["L", "M"])
    weights.fill_efficiency(h, pt, flav, passed, weight=w_event)
    ev = weights.efficiency_map(h, name="eff").to_evaluator()
    fpt, ffl = ak.to_numpy(ak.flatten(pt)), ak.to_numpy(ak.flatten(flav))
    fw = np.repeat(w_event, 3)
    for wp in ("L", "M"):
        fpass = ak.to_numpy(ak.flatten(passed[wp]))
        for f in (0, 4, 5):
            for k in range(2):
                lo, hi = PT_EDGES[k], PT_EDGES[k + 1]
                # the map clamps: jets below/above the edges are not in the histogram
                sel = (ffl == f) & (fpt >= lo) & (fpt < hi)
                expect = fw[sel & fpass].sum() / fw[sel].sum()
                assert ev.evaluate(wp, f, 0.5 * (lo + hi)) == pytest.approx(expect)
    assert ev.evaluate("M", 5, 5000.0) == ev.evaluate("M", 5, 999.0)
    # an IntCategory 0/1 "passed" axis works the same
    h2 = hist.Hist(
        hist.axis.StrCategory(["M"], name="working_point"),
        hist.axis.IntCategory([5], name="flavor"),
        hist.axis.Variable(PT_EDGES, name="pt"),
        hist.axis.IntCategory([0, 1], name="passed"),
        storage=hist.storage.Weight(),
    )
    h2.fill(working_point="M", flavor=5, pt=[300.0, 300.0, 300.0, 500.0], passed=[1, 0, 0, 1])
    ev2 = weights.efficiency_map(h2).to_evaluator()
    assert ev2.evaluate("M", 5, 300.0) == pytest.approx(1 / 3)
    assert ev2.evaluate("M", 5, 500.0) == 1.0


def test_empty_bins_are_an_error_or_filled_from_the_nearest_bin():
    pt = np.array([300.0, 310.0, 320.0])  # nothing in the second pT bin
    passed = np.array([True, False, False])
    with pytest.raises(JettagError, match=r"working_point=M, flavor=0, pt \[250, 400\)"):
        _eff_map(pt, passed, flavors=(0, 5))  # flavour 0 has no jets at all
    with pytest.raises(JettagError, match=r"flavor=5, pt \[400, 1000\)"):
        weights.efficiency_map(_filled(pt, passed, flavors=(5,)))
    corr = weights.efficiency_map(_filled(pt, passed, flavors=(5,)), empty="nearest")
    assert (
        "filled from the nearest pT bin" in corr.description and "[400, 1000)" in corr.description
    )
    assert corr.to_evaluator().evaluate("M", 5, 700.0) == pytest.approx(1 / 3)


def _filled(pt, passed, flavors):
    h = weights.efficiency_histogram(PT_EDGES, ["M"], flavors=flavors)
    return weights.fill_efficiency(h, pt, np.full(len(pt), 5), passed, working_point="M")


def _weighted_yields(w, passed, j):
    return {k: (w[passed & (j == k)].sum(), w[j == k].sum()) for k in range(2)}


def test_weights_reproduce_the_data_pass_yield_and_keep_the_jet_count():
    n = 40_000
    pt, passed, j = _toy(n, seed=2)
    _, data_passed, dj = _toy(n, seed=3, data=True)  # "data": passes with SF * eff
    sf_corr = _sf_correction()
    # the efficiency map from an independent MC sample of the same kind
    eff_pt, eff_passed, _ = _toy(n, seed=4)
    eff_corr = _eff_map(eff_pt, eff_passed)
    w = Weights(n)
    jets = ak.zip({"pt": pt})
    event = weights.add_tagging_weights(
        w,
        jets,
        {"M": passed},
        sf_correction=sf_corr,
        eff_correction=eff_corr,
        working_point="M",
        flavor=np.full(n, 5),
    )
    nominal = w.weight()
    np.testing.assert_allclose(nominal, event["central"])
    got = _weighted_yields(nominal, passed, j)
    for k in range(2):
        eff, sf = EFF["M"][k], SF["M"][k]
        n_k = (j == k).sum()
        wp_, wf_ = sf, (1 - sf * eff) / (1 - eff)
        # weighted pass yield vs SF * eff * N and vs the "data" count
        sigma = sf * np.sqrt(n_k * eff * (1 - eff))
        assert abs(got[k][0] - sf * eff * n_k) < 3 * sigma
        n_data = (data_passed & (dj == k)).sum()
        sigma_data = np.hypot(sigma, np.sqrt(n_k * sf * eff * (1 - sf * eff)))
        assert abs(got[k][0] - n_data) < 3 * sigma_data
        # weighted jet count preserved (to the scatter of the per-jet weights)
        sigma_n = np.sqrt(n_k * eff * (1 - eff)) * abs(wp_ - wf_)
        assert abs(got[k][1] - n_k) < 3 * sigma_n
        # variations: the pass yield moves by exactly the SF's error
        for mod, shift in (
            ("totalUp", ERR["M"][k]),
            ("totalDown", -ERR["M"][k]),
            ("bfragUp", BFRAG["M"][k]),
            ("bfragDown", -BFRAG["M"][k]),
        ):
            varied = _weighted_yields(w.weight(f"jettag_sf_{mod}"), passed, j)[k][0]
            assert varied / got[k][0] == pytest.approx((sf + shift) / sf)
    assert w.variations == {
        "jettag_sf_totalUp",
        "jettag_sf_totalDown",
        "jettag_sf_bfragUp",
        "jettag_sf_bfragDown",
    }


def test_same_sample_efficiency_keeps_the_jet_count_exactly():
    n = 5000
    pt, passed, j = _toy(n, seed=5)
    eff_corr = _eff_map(pt, passed)
    w = Weights(n)
    weights.add_tagging_weights(
        w,
        {"pt": pt},
        passed,
        sf_correction=_sf_correction(),
        eff_correction=eff_corr,
        working_point="M",
        flavor=np.full(n, 5),
        sources=(),
    )
    for k in range(2):
        assert w.weight()[j == k].sum() == pytest.approx((j == k).sum(), rel=1e-9)
    assert w.variations == {"jettag_sf_totalUp", "jettag_sf_totalDown"}


def test_jagged_events_take_the_product_and_other_flavours_weigh_one():
    rng = np.random.default_rng(6)
    n_events = 20_000
    counts = np.full(n_events, 2)
    pt = rng.uniform(260.0, 390.0, 2 * n_events)  # first pT bin: eff 0.3, SF 0.8
    passed = rng.random(2 * n_events) < EFF["M"][0]
    flavor = np.full(2 * n_events, 5)
    flavor[1::2][: n_events // 2] = 0  # half the events: second jet is not a bb jet
    eff_corr = _eff_map(pt, passed, flavor=flavor, flavors=(0, 5), empty="nearest")
    jets = ak.zip({"pt": ak.unflatten(pt, counts), "hadflav": ak.unflatten(flavor, counts)})
    w = Weights(n_events)
    event = weights.add_tagging_weights(
        w,
        jets,
        ak.unflatten(passed, counts),
        sf_correction=_sf_correction(),
        eff_correction=eff_corr,
        working_point="M",
        flavor="hadflav",
    )
    per_jet = np.where(passed, SF["M"][0], (1 - SF["M"][0] * EFF["M"][0]) / (1 - EFF["M"][0]))
    # the map's efficiency is the sample's, not exactly 0.3: compare with a tolerance
    expect = np.where(flavor == 5, per_jet, 1.0).reshape(-1, 2).prod(axis=1)
    np.testing.assert_allclose(event["central"], expect, rtol=0.05)
    # two bb jets: the weighted number of events with no tag is N (1 - SF eff)^2
    both = np.arange(n_events) >= n_events // 2
    no_tag = ~passed.reshape(-1, 2).any(axis=1)
    eff, sf = EFF["M"][0], SF["M"][0]
    n_both = both.sum()
    expect_none = n_both * (1 - sf * eff) ** 2
    sigma = (
        np.sqrt(n_both * (1 - eff) ** 2 * (1 - (1 - eff) ** 2)) * ((1 - sf * eff) / (1 - eff)) ** 2
    )
    assert abs(w.weight()[both & no_tag].sum() - expect_none) < 3 * sigma
    # events with no jets weigh 1
    empty = Weights(2)
    out = weights.add_tagging_weights(
        empty,
        {"pt": ak.Array([[], [300.0]])},
        ak.Array([[], [True]]),
        sf_correction=_sf_correction(),
        eff_correction=eff_corr,
        working_point="M",
        flavor=ak.Array([[], [5]]),
    )
    np.testing.assert_allclose(out["central"], [1.0, SF["M"][0]])


def test_weights_read_corrections_from_a_file_and_name_missing_masks(tmp_path):
    pt, passed, _ = _toy(2000, seed=7)
    cset = corrections.correction_set([_sf_correction(), _eff_map(pt, passed, name="toy_eff")], "t")
    path = corrections.write(cset, tmp_path / "sf.json")
    loaded = corrections.load(path)
    w = Weights(len(pt))
    event = weights.add_tagging_weights(
        w,
        {"pt": pt},
        passed,
        sf_correction=loaded["toy_gbb"],
        eff_correction=loaded["toy_eff"],
        working_point="M",
        flavor=np.full(len(pt), 5),
        sources=weights.sf_sources(_sf_correction()),
    )
    assert "up_bfrag" in event and "jettag_sf_bfragUp" in w.variations
    with pytest.raises(JettagError, match="no pass mask for working point 'T'"):
        weights.add_tagging_weights(
            Weights(len(pt)),
            {"pt": pt},
            {"M": passed},
            sf_correction=loaded["toy_gbb"],
            eff_correction=loaded["toy_eff"],
            working_point="T",
            flavor=np.full(len(pt), 5),
        )


def test_double_b_flavor():
    nb = np.array([0, 1, 2, 3, 0, 0])
    nc = np.array([0, 2, 0, 1, 2, 1])
    np.testing.assert_array_equal(weights.double_b_flavor(nb, nc), [0, 0, 5, 5, 4, 0])
    jag = weights.double_b_flavor(ak.Array([[2, 0], []]), ak.Array([[0, 3], []]))
    assert jag.tolist() == [[5, 4], []]
