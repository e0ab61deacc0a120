"""jettag.ddt: DDT maps derived from synthetic QCD, checked for flat pass rates on an independent sample."""

from __future__ import annotations

import shutil
import subprocess

import awkward as ak
import hist
import numpy as np
import pytest

from jettag import corrections, ddt
from jettag.errors import JettagError

RHO_EDGES = np.linspace(-6.0, -1.5, 10)
PT_EDGES = np.array([200.0, 300.0, 450.0, 700.0, 1200.0])
EFFS = (0.05, 0.01)


def _sample(n: int, seed: int, kind: str = "tagger") -> dict[str, np.ndarray]:
    """QCD-like jets: the score depends on rho and pT; random positive weights."""
    rng = np.random.default_rng(seed)
    rho = rng.uniform(RHO_EDGES[0], RHO_EDGES[-1], n)
    pt = 200.0 * np.exp(rng.uniform(0, np.log(6.0), n))
    shift = 0.6 * (rho + 6.0) + pt / 600.0
    if kind == "tagger":
        score = rng.beta(1.0 + shift, 6.0)
    else:  # n2b1-like: low is signal-like, shifts down with rho
        score = 0.5 * rng.beta(8.0 - shift, 6.0)
    weight = rng.uniform(0.3, 1.7, n) * (pt / 400.0) ** 0.5
    return {
        "rho": rho,
        "pt": pt,
        "msoftdrop": pt * np.exp(rho / 2),
        "score": score,
        "weight": weight,
    }


def _hist(sample: dict[str, np.ndarray], kind: str = "tagger", bins: int = 400) -> hist.Hist:
    axis = (
        ddt.score_axis("tagger", bins=bins)
        if kind == "tagger"
        else ddt.score_axis("substructure", bins=bins)
    )
    h = hist.Hist(
        hist.axis.Variable(RHO_EDGES, name="rho"),
        hist.axis.Variable(PT_EDGES, name="pt"),
        axis,
        storage=hist.storage.Weight(),
    )
    h.fill(rho=sample["rho"], pt=sample["pt"], score=sample["score"], weight=sample["weight"])
    return h


def _pass_rates(sample, passed):
    """Weighted pass rate and Kish n_eff per (rho, pt) bin."""
    args = (sample["rho"], sample["pt"])
    bins = (RHO_EDGES, PT_EDGES)
    w = sample["weight"]
    tot, _, _ = np.histogram2d(*args, bins=bins, weights=w)
    w2, _, _ = np.histogram2d(*args, bins=bins, weights=w**2)
    pas, _, _ = np.histogram2d(*args, bins=bins, weights=w * passed)
    return pas / tot, tot**2 / w2


def _chi2_ndf(rate, n_test, eps, n_derive):
    var = eps * (1 - eps) * (1 / n_test + 1 / n_derive)  # test-sample + map statistics
    pulls = (rate - eps) / np.sqrt(var)
    return float(np.mean(pulls**2))


@pytest.fixture(scope="module")
def derived():
    train = _sample(600_000, seed=1)
    return train, ddt.derive_map(_hist(train), EFFS)


@pytest.fixture(scope="module")
def independent():
    return _sample(400_000, seed=2)


@pytest.mark.parametrize("i_eps", [0, 1])
def test_pass_rate_is_flat_on_an_independent_sample(derived, independent, i_eps):
    _, dmap = derived
    eps = EFFS[i_eps]
    corr = dmap.to_correction("ddt_test", "test map")
    value = ddt.apply(corr, independent, independent["score"], efficiency=eps)
    rate, n_test = _pass_rates(independent, value > 0)
    assert not dmap.filled.any()
    chi2 = _chi2_ndf(rate, n_test, eps, dmap.counts)
    assert chi2 < 2.0, f"chi2/ndf {chi2:.2f}"
    # a fixed cut at the global quantile is far from flat on the same sample
    cut = np.quantile(independent["score"], 1 - eps)
    fixed, _ = _pass_rates(independent, independent["score"] > cut)
    assert _chi2_ndf(fixed, n_test, eps, dmap.counts) > 20.0


def test_map_rises_with_rho_and_up_down_bracket_it(derived):
    _, dmap = derived
    assert dmap.values.shape == (2, len(RHO_EDGES) - 1, len(PT_EDGES) - 1)
    assert np.all(dmap.values[:, -1] > dmap.values[:, 0] + 0.05)  # score shifts up with rho
    assert np.mean(np.diff(dmap.values, axis=1) > 0) > 0.9
    assert np.all(dmap.values[1] > dmap.values[0])  # tighter efficiency, higher threshold
    assert np.all(dmap.down < dmap.values) and np.all(dmap.values < dmap.up)


def test_signal_like_low(independent):
    train = _sample(600_000, seed=3, kind="n2")
    dmap = ddt.derive_map(_hist(train, "n2", bins=500), EFFS, signal_like="low")
    assert np.all(dmap.values[:, -1] < dmap.values[:, 0] - 0.02)
    assert np.all(dmap.down < dmap.values) and np.all(dmap.values < dmap.up)
    test = _sample(400_000, seed=4, kind="n2")
    corr = dmap.to_correction("ddt_n2", "n2 map")
    for i, eps in enumerate(EFFS):
        value = ddt.apply(corr, test, test["score"], efficiency=eps, signal_like="low")
        x = ddt.apply(corr, test, np.zeros_like(test["score"]), efficiency=eps, signal_like="low")
        np.testing.assert_allclose(value, x - test["score"])  # X - score
        rate, n_test = _pass_rates(test, value > 0)
        assert _chi2_ndf(rate, n_test, eps, dmap.counts) < 2.0, i
    with pytest.raises(ValueError, match="signal_like"):
        ddt.apply(corr, test, test["score"], efficiency=0.05, signal_like="high")


def test_uncertainty_shrinks_like_one_over_sqrt_n():
    small = ddt.derive_map(_hist(_sample(50_000, seed=5)), [0.05])
    big = ddt.derive_map(_hist(_sample(800_000, seed=6)), [0.05])
    ratio = np.median((small.up - small.down) / (big.up - big.down))
    assert 3.0 < ratio < 5.3, ratio  # sqrt(16) = 4
    # the small map's band covers the (nearly exact) big map in about 68% of bins
    half = (small.up - small.down) / 2
    covered = np.mean(np.abs(small.values - big.values) < half)
    assert 0.45 < covered < 0.95, covered


def test_sparse_bins_are_filled_and_flagged():
    sample = _sample(300_000, seed=7)
    # empty out the corner: highest pT bin at the lowest rho
    drop = (sample["pt"] > PT_EDGES[-2]) & (sample["rho"] < RHO_EDGES[2])
    keep_few = drop & (np.random.default_rng(8).uniform(size=drop.size) < 0.03)
    mask = ~drop | keep_few
    h = _hist({k: v[mask] for k, v in sample.items()})
    dmap = ddt.derive_map(h, EFFS, min_passing=20)
    expect = dmap.counts[None] * np.asarray(EFFS)[:, None, None] < 20
    assert expect.any() and np.array_equal(dmap.filled, expect)
    assert dmap.filled[:, :2, -1].all() and not dmap.filled[:, 3:, :].any()
    assert np.all(np.isfinite(dmap.values))
    # filled thresholds stay in the range of the dense neighbours
    for e in range(len(EFFS)):
        dense = dmap.values[e][~dmap.filled[e]]
        assert np.all(dmap.values[e][dmap.filled[e]] > dense.min() - 0.05)
    # kNN smoothing: a smoother map, close to the plain one where jets are plenty
    knn = ddt.derive_map(h, EFFS, smoothing="knn", k=5, bandwidth=0.08)
    assert not (knn.filled & ~expect).any()  # pooling with neighbours only helps
    dense = ~dmap.filled
    assert np.max(np.abs(knn.values - dmap.values)[dense]) < 0.05
    assert knn.settings["smoothing"] == "knn" and knn.settings["k"] == 5


def test_too_few_jets_give_a_statistics_limited_map():
    sample = _sample(500, seed=9)
    h = _hist(sample)
    small = ddt.derive_map(h, [0.01], min_passing=20)
    # every bin is too sparse, so all take the quantile of all jets, and the map says so
    assert small.filled.all()
    assert np.allclose(small.values, small.values.flat[0])
    whole = h.project("score").values()
    cum = np.cumsum(whole) / whole.sum()
    edges = h.axes["score"].edges
    assert edges[np.searchsorted(cum, 0.99)] <= small.values.flat[0] + 1e-9
    assert edges[np.searchsorted(cum, 0.99) + 1] >= small.values.flat[0] - 1e-9
    assert small.notes and "statistics-limited" in small.notes[0]
    corr = small.to_correction("tiny", "test map")
    assert "statistics-limited" in corr.description
    empty = _hist(sample)
    empty.reset()
    with pytest.raises(JettagError, match="no jets"):
        ddt.derive_map(empty, [0.05])
    with pytest.raises(ValueError, match="efficiencies"):
        ddt.derive_map(_hist(sample), [0.0])
    with pytest.raises(ValueError, match="no axis"):
        ddt.derive_map(_hist(sample), [0.05], score_axis="xbb")


def test_written_correction_validates_and_evaluates_to_the_map(derived, tmp_path):
    _, dmap = derived
    corr = dmap.to_correction(
        "ddt_xbb", "DDT map of XbbVsQCD", sample="synthetic QCD", command="pytest"
    )
    for word in ("score", "synthetic QCD", "rho 9 bins", "min_passing=20", "command: pytest"):
        assert word in corr.description
    path = corrections.write(corrections.correction_set([corr], "test"), tmp_path / "ddt.json")
    if shutil.which("correction"):
        done = subprocess.run(["correction", "validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    evaluator = corrections.load(path)["ddt_xbb"]
    rc = (RHO_EDGES[1:] + RHO_EDGES[:-1]) / 2
    pc = (PT_EDGES[1:] + PT_EDGES[:-1]) / 2
    rr, pp = np.meshgrid(rc, pc, indexing="ij")
    for syst, arr in (("nominal", dmap.values), ("up", dmap.up), ("down", dmap.down)):
        for i, eps in enumerate(EFFS):
            got = evaluator.evaluate(rr.ravel(), pp.ravel(), ddt.working_point_key(eps), syst)
            np.testing.assert_allclose(got.reshape(rr.shape), arr[i])
    # outside the map: clamped to the edge bins
    far = evaluator.evaluate(np.array([-9.0, 0.0]), np.array([5000.0, 100.0]), "0.05", "nominal")
    np.testing.assert_allclose(far, [dmap.values[0, 0, -1], dmap.values[0, -1, 0]])
    # apply reads the file too; unknown working points are a one-line error
    jets = {"msoftdrop": np.array([50.0]), "pt": np.array([500.0])}
    assert np.isfinite(ddt.apply(path, jets, np.array([0.5]), efficiency=0.01)).all()
    with pytest.raises(JettagError, match=r"no working point '0\.2'"):
        ddt.apply(path, jets, np.array([0.5]), efficiency=0.2)


def test_rho_handles_zero_and_negative_msoftdrop(derived):
    out = ddt.rho(np.array([50.0, 0.0, -1.0, 50.0]), np.array([500.0, 500.0, 500.0, 0.0]))
    np.testing.assert_allclose(out[0], 2 * np.log(0.1))
    assert out[1] == -np.inf and out[2] == -np.inf and np.isnan(out[3])
    _, dmap = derived
    corr = dmap.to_correction("ddt_test", "test map")
    jets = {"msoftdrop": np.array([50.0, 0.0, -1.0]), "pt": np.array([500.0, 500.0, 500.0])}
    value = ddt.apply(corr, jets, np.array([0.99, 0.99, 0.99]), efficiency=0.05)
    assert value[0] > 0 and np.isnan(value[1:]).all()
    assert not (value[1:] > 0).any()  # such jets fail every working point


def test_jagged_awkward_keeps_its_structure(derived, independent):
    _, dmap = derived
    corr = dmap.to_correction("ddt_test", "test map")
    n = 1000
    counts = np.random.default_rng(10).integers(0, 4, 400)
    counts = counts[: np.searchsorted(np.cumsum(counts), n)]
    total = int(counts.sum())
    flat = {k: independent[k][:total] for k in ("msoftdrop", "pt", "score")}
    jets = ak.zip({k: ak.unflatten(flat[k], counts) for k in ("msoftdrop", "pt")})
    score = ak.unflatten(flat["score"], counts)
    out = ddt.apply(corr, jets, score, efficiency=0.01)
    assert ak.all(ak.num(out) == ak.num(score))
    expect = ddt.apply(corr, flat, flat["score"], efficiency=0.01)
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(out)), expect)
    r = ddt.rho(jets.msoftdrop, jets.pt)
    assert ak.all(ak.num(r) == ak.num(score))


def test_dask_awkward_is_lazy_and_equal(derived, independent):
    dak = pytest.importorskip("dask_awkward")
    _, dmap = derived
    corr = dmap.to_correction("ddt_test", "test map")
    counts = np.full(200, 3)
    flat = {k: independent[k][:600] for k in ("msoftdrop", "pt", "score")}
    jets = ak.zip({k: ak.unflatten(flat[k], counts) for k in ("msoftdrop", "pt")})
    score = ak.unflatten(flat["score"], counts)
    lazy = ddt.apply(
        corr,
        dak.from_awkward(jets, npartitions=3),
        dak.from_awkward(score, npartitions=3),
        efficiency=0.05,
    )
    assert isinstance(lazy, dak.Array)
    lazy_rho = ddt.rho(dak.from_awkward(jets.msoftdrop, 3), dak.from_awkward(jets.pt, 3))
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(lazy_rho.compute())), ddt.rho(flat["msoftdrop"], flat["pt"])
    )
    eager = ddt.apply(corr, jets, score, efficiency=0.05)
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(lazy.compute())), ak.to_numpy(ak.flatten(eager))
    )


def test_score_axis_is_dense_near_one():
    ax = ddt.score_axis("tagger", bins=1000)
    edges = ax.edges
    assert edges[0] == 0.0 and edges[-1] == 1.0 and len(edges) == 1001
    assert np.sum(edges > 0.99) > 500  # most bins where the 1% working points lie
    sub = ddt.score_axis("substructure")
    assert sub.edges[0] == 0.0 and sub.edges[-1] == 0.5
    with pytest.raises(ValueError):
        ddt.score_axis("nope")


@pytest.mark.parametrize("tagger", ["pnet-lite", "deepsets-lite", "bdt-hl"])
def test_shipped_maps_load_by_name_and_apply(tagger):
    name = f"ddt-{tagger}"
    assert name in corrections.available()
    corr = ddt.read_map(name)
    assert ddt.working_points(corr) == {"0.005", "0.01", "0.02", "0.05"}
    assert "command: jettag ddt derive" in corr.description
    assert "qcd_ddt_201.root" in corr.description and "qcd_ddt_204.root" in corr.description
    edges = ddt.map_edges(corr)
    assert len(edges["rho"]) == 13 and edges["pt"][0] == 300
    # thresholds fall as the efficiency grows, and stay inside [0, 1]
    jets = {"msoftdrop": np.array([60.0, 125.0, 200.0]), "pt": np.array([350.0, 600.0, 1200.0])}
    score = np.full(3, 0.5)
    x = {wp: score - ddt.apply(name, jets, score, efficiency=wp) for wp in (0.005, 0.05)}
    assert np.all((x[0.05] >= 0) & (x[0.005] <= 1))
    assert np.all(x[0.005] >= x[0.05])
    cset = corrections.load(name)
    assert cset[corr.name].evaluate(-3.0, 500.0, "0.05", "up") >= cset[corr.name].evaluate(
        -3.0, 500.0, "0.05", "down"
    )
