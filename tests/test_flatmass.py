"""Flat-mass weights (jettag.flatmass, jettag flatten): the weighted signal is flat, or QCD-shaped.

The statistical tests derive the weights on one sample and apply them to an
independent sample of the same distribution, so that the weighted histogram
scatters: every bin must agree with the flat (or QCD) expectation within its
error (the application sample's sum of w^2 plus the weights' own uncertainty),
and the chi2 must be neither too large nor too small (errors neither wrong nor
inflated). The same histograms unweighted are checked to fail, so the test has power.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import correctionlib
import correctionlib.schemav2 as cs
import numpy as np
import pytest
import uproot

from jettag import corrections, flatmass
from jettag.cli import main
from jettag.samples import flat_mass_weights
from jettag.training.weights import mass_weights

EDGES = flatmass.MSD_EDGES
WIDTHS = np.diff(EDGES)


# ---------------------------------------------------------------------------- samples


def _signal(rng: np.random.Generator, n: int, pt: np.ndarray | None = None) -> np.ndarray:
    """A Higgs-like msoftdrop: a peak at 125 (moving with pT when given) plus a falling tail."""
    peak = rng.random(n) < 0.6
    mean = 125.0 if pt is None else 105.0 + 0.04 * (pt - 300.0)
    m = np.where(peak, rng.normal(mean, 15.0, n), 30.0 + rng.exponential(70.0, n))
    return m


def _qcd(rng: np.random.Generator, n: int, pt: np.ndarray | None = None) -> np.ndarray:
    """A QCD-like msoftdrop: falling, harder at high pT."""
    scale = 55.0 if pt is None else 40.0 + 0.04 * (pt - 300.0)
    return 20.0 + rng.exponential(scale, n)


def _pt(rng: np.random.Generator, n: int, slope: float = 250.0) -> np.ndarray:
    return 300.0 + rng.exponential(slope, n)


def _weights(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.gamma(4.0, 0.25, n)  # positive, mean 1, spread 0.5


def _weighted_hist(weights, m, w, pt=None, pt_edges=None):
    """(content, variance) of the weighted jets in the weights' bins, variance including the weights' error."""
    jet_w = flatmass.evaluate(weights, m, pt)
    ww = w * jet_w
    h = flatmass.histogram(m, pt, ww, msd_edges=weights.msd_edges, pt_edges=pt_edges)
    raw = flatmass.histogram(m, pt, w, msd_edges=weights.msd_edges, pt_edges=pt_edges)
    content = h.values()
    var = h.variances() + (raw.values() * weights.errors) ** 2
    return content, var


def _chi2(content, var, expected):
    pulls = (content - expected) / np.sqrt(var)
    print(f"chi2 {np.sum(pulls**2):.1f} for {pulls.size} bins, max |pull| {np.max(np.abs(pulls)):.2f}")
    return pulls, float(np.sum(pulls**2))


# ---------------------------------------------------------------------------- 1D


def test_1d_flat_weights_make_the_signal_flat():
    rng = np.random.default_rng(11)
    n = 50_000
    m_a, w_a = _signal(rng, n), _weights(rng, n)
    m_b, w_b = _signal(rng, n), _weights(rng, n)
    h_a = flatmass.histogram(m_a, weight=w_a)
    weights = flatmass.derive_weights(h_a)
    assert weights.target == "flat" and not weights.empty.any() and not weights.stat_limited.any()

    # closure on the deriving sample: exactly flat per GeV, total weight in the window kept
    inside = (m_a >= EDGES[0]) & (m_a < EDGES[-1])
    jet_a = flatmass.evaluate(weights, m_a)
    h, _ = np.histogram(m_a, EDGES, weights=w_a * jet_a)
    np.testing.assert_allclose(h / WIDTHS, h.sum() / (EDGES[-1] - EDGES[0]), rtol=1e-9)
    np.testing.assert_allclose((w_a * jet_a)[inside].sum(), w_a[inside].sum(), rtol=1e-12)
    assert np.all(jet_a[~inside] == 0)

    # an independent sample: flat within the statistical errors in every bin
    content, var = _weighted_hist(weights, m_b, w_b)
    expected = content.sum() * WIDTHS / WIDTHS.sum()
    pulls, chi2 = _chi2(content, var, expected)
    ndf = len(content) - 1
    assert np.all(np.abs(pulls) < 4), pulls
    assert 0.2 < chi2 / ndf < 2, chi2 / ndf
    # ... which the unweighted sample is far from
    raw = flatmass.histogram(m_b, weight=w_b)
    _, chi2_raw = _chi2(raw.values(), raw.variances(), raw.values().sum() * WIDTHS / WIDTHS.sum())
    assert chi2_raw / ndf > 100


def test_1d_flat_is_per_gev_with_variable_bins():
    rng = np.random.default_rng(12)
    edges = np.array([40.0, 60, 70, 100, 110, 130, 160, 250])
    m, w = _signal(rng, 20_000), _weights(rng, 20_000)
    weights = flatmass.derive_weights(flatmass.histogram(m, weight=w, msd_edges=edges))
    h, _ = np.histogram(m, edges, weights=w * flatmass.evaluate(weights, m))
    np.testing.assert_allclose(h / np.diff(edges), h.sum() / 210.0, rtol=1e-9)
    np.testing.assert_allclose(weights.weighted_fraction, np.diff(edges) / 210.0, rtol=1e-9)


def test_1d_weights_match_the_qcd_shape():
    rng = np.random.default_rng(13)
    n = 50_000
    m_a, w_a = _signal(rng, n), _weights(rng, n)
    m_b, w_b = _signal(rng, n), _weights(rng, n)
    m_q, w_q = _qcd(rng, 400_000), _weights(rng, 400_000)
    h_q = flatmass.histogram(m_q, weight=w_q)
    weights = flatmass.derive_weights(flatmass.histogram(m_a, weight=w_a), h_q, target_name="qcd.root")
    assert weights.target == "qcd.root" and "qcd.root" in weights.target_description()
    qcd_shape = h_q.values() / h_q.values().sum()
    np.testing.assert_allclose(weights.target_fraction, qcd_shape)

    # closure: the deriving sample takes QCD's shape exactly and keeps its total
    jet_a = flatmass.evaluate(weights, m_a)
    h, _ = np.histogram(m_a, EDGES, weights=w_a * jet_a)
    np.testing.assert_allclose(h / h.sum(), qcd_shape, rtol=1e-9)
    inside = (m_a >= EDGES[0]) & (m_a < EDGES[-1])
    np.testing.assert_allclose(h.sum(), w_a[inside].sum(), rtol=1e-12)

    content, var = _weighted_hist(weights, m_b, w_b)
    pulls, chi2 = _chi2(content, var, content.sum() * qcd_shape)
    ndf = len(content) - 1
    assert np.all(np.abs(pulls) < 4), pulls
    assert 0.2 < chi2 / ndf < 2, chi2 / ndf
    raw = flatmass.histogram(m_b, weight=w_b)
    _, chi2_raw = _chi2(raw.values(), raw.variances(), raw.values().sum() * qcd_shape)
    assert chi2_raw / ndf > 100


def test_uncertainties_grow_with_the_target_error_and_bound_the_variations():
    rng = np.random.default_rng(14)
    m, w = _signal(rng, 20_000), _weights(rng, 20_000)
    h = flatmass.histogram(m, weight=w)
    flat = flatmass.derive_weights(h)
    # relative error of a flat weight: 1/sqrt(n_eff) of the bin
    np.testing.assert_allclose(flat.errors / flat.values, 1 / np.sqrt(flat.counts), rtol=1e-9)
    small_qcd = flatmass.histogram(_qcd(rng, 5_000), weight=np.ones(5_000))
    matched = flatmass.derive_weights(h, small_qcd)
    rel = matched.errors / np.where(matched.values > 0, matched.values, np.inf)
    assert np.all(rel[matched.values > 0] > (1 / np.sqrt(flat.counts))[matched.values > 0])
    x = np.array([45.0, 125.0, 245.0])
    up, nom, down = (flatmass.evaluate(flat, x, systematic=s) for s in ("up", "nominal", "down"))
    assert np.all(up > nom) and np.all(nom > down) and np.all(down >= 0)
    with pytest.raises(ValueError, match="systematic"):
        flatmass.evaluate(flat, x, systematic="stat")


# ---------------------------------------------------------------------------- 2D

PT_EDGES = np.array([300.0, 400, 550, 800, 1200])


def test_2d_flat_weights_make_every_pt_bin_flat():
    rng = np.random.default_rng(21)
    n = 150_000
    pt_a, pt_b = _pt(rng, n), _pt(rng, n)
    m_a, m_b = _signal(rng, n, pt_a), _signal(rng, n, pt_b)
    w_a, w_b = _weights(rng, n), _weights(rng, n)
    h_a = flatmass.histogram(m_a, pt_a, w_a, pt_edges=PT_EDGES)
    weights = flatmass.derive_weights(h_a)
    assert weights.values.shape == (len(EDGES) - 1, len(PT_EDGES) - 1) and not weights.empty.any()
    assert "within each pT bin" in weights.target_description()

    # closure: each pT bin flat in msoftdrop and keeping its signal weight
    content_a, _ = _weighted_hist(weights, m_a, w_a, pt_a, PT_EDGES)
    np.testing.assert_allclose(content_a.sum(axis=0), h_a.values().sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(content_a / content_a.sum(axis=0), np.broadcast_to((WIDTHS / 210.0)[:, None], content_a.shape), rtol=1e-9)

    content, var = _weighted_hist(weights, m_b, w_b, pt_b, PT_EDGES)
    expected = content.sum(axis=0)[None, :] * (WIDTHS / WIDTHS.sum())[:, None]
    pulls, chi2 = _chi2(content, var, expected)
    ndf = content.shape[1] * (content.shape[0] - 1)
    assert np.all(np.abs(pulls) < 4), pulls
    assert 0.2 < chi2 / ndf < 2, chi2 / ndf
    # 1D weights leave the pT-dependent peak position: not flat per pT bin
    one_d = flatmass.derive_weights(flatmass.histogram(m_a, weight=w_a))
    ww = w_b * flatmass.evaluate(one_d, m_b)
    h1 = flatmass.histogram(m_b, pt_b, ww, pt_edges=PT_EDGES)
    exp1 = h1.values().sum(axis=0)[None, :] * (WIDTHS / WIDTHS.sum())[:, None]
    _, chi2_1d = _chi2(h1.values(), h1.variances(), exp1)
    assert chi2_1d / ndf > 10


def test_2d_weights_match_the_qcd_shape():
    rng = np.random.default_rng(22)
    n = 150_000
    pt_a, pt_b, pt_q = _pt(rng, n), _pt(rng, n), _pt(rng, 600_000, slope=180.0)
    m_a, m_b, m_q = _signal(rng, n, pt_a), _signal(rng, n, pt_b), _qcd(rng, 600_000, pt_q)
    w_a, w_b, w_q = _weights(rng, n), _weights(rng, n), _weights(rng, 600_000)
    h_q = flatmass.histogram(m_q, pt_q, w_q, pt_edges=PT_EDGES)
    weights = flatmass.derive_weights(flatmass.histogram(m_a, pt_a, w_a, pt_edges=PT_EDGES), h_q)
    assert not weights.empty.any()
    shape = h_q.values() / h_q.values().sum()

    content_a, _ = _weighted_hist(weights, m_a, w_a, pt_a, PT_EDGES)
    np.testing.assert_allclose(content_a / content_a.sum(), shape, rtol=1e-9)

    content, var = _weighted_hist(weights, m_b, w_b, pt_b, PT_EDGES)
    pulls, chi2 = _chi2(content, var, content.sum() * shape)
    ndf = content.size - 1
    assert np.all(np.abs(pulls) < 4), pulls
    assert 0.2 < chi2 / ndf < 2, chi2 / ndf
    for j in range(content.shape[1]):  # per pT bin, the msoftdrop shape is QCD's
        np.testing.assert_allclose(
            content_a[:, j] / content_a[:, j].sum(), shape[:, j] / shape[:, j].sum(), rtol=1e-9
        )


def test_msoftdrop_outside_the_window_gets_zero_and_pt_clamps():
    rng = np.random.default_rng(31)
    pt = _pt(rng, 20_000, slope=400.0)
    m = _signal(rng, 20_000, pt)
    one_d = flatmass.derive_weights(flatmass.histogram(m))
    x = np.array([-1.0, 10.0, 39.999, 40.0, 249.9, 250.0, 400.0, np.nan, np.inf, -np.inf, 2e6])
    got = flatmass.evaluate(one_d, x)
    np.testing.assert_array_equal(got[[0, 1, 2, 5, 6, 7, 8, 9, 10]], 0.0)
    np.testing.assert_allclose(got[[3, 4]], one_d.values[[0, -1]])
    for syst in ("up", "down"):
        assert np.all(flatmass.evaluate(one_d, [10.0, 250.0, 400.0], systematic=syst) == 0)

    two_d = flatmass.derive_weights(flatmass.histogram(m, pt))  # default pT edges, last 1500-10000
    msd = np.full(6, 125.0)
    got = flatmass.evaluate(two_d, msd, np.array([100.0, 310.0, 1600.0, 20000.0, 9999.0, 1499.0]))
    assert got[0] == got[1] and got[2] == got[3] == got[4] and got[4] != got[5]
    np.testing.assert_allclose(got[[1, 2]], two_d.values[8, [0, -1]])
    assert np.all(flatmass.evaluate(two_d, [10.0, 300.0], [500.0, 20000.0]) == 0)
    with pytest.raises(ValueError, match="give pt"):
        flatmass.evaluate(two_d, msd)


def test_empty_and_negative_bins_get_zero_and_the_total_is_kept():
    rng = np.random.default_rng(41)
    m = rng.uniform(40, 250, 5000)
    m = m[(m < 100) | (m >= 130)]  # three empty bins
    w = _weights(rng, len(m))
    neg = (m >= 200) & (m < 210)
    w[neg] = -1.0  # a bin with net negative weight: cannot be reweighted
    w[np.flatnonzero((m >= 60) & (m < 70))[:5]] *= -1  # a few negative jets in a positive bin
    weights = flatmass.derive_weights(flatmass.histogram(m, weight=w))
    assert list(np.flatnonzero(weights.empty)) == [6, 7, 8, 16]
    jet_w = flatmass.evaluate(weights, m)
    assert np.all(jet_w[neg] == 0)
    kept = ~neg
    np.testing.assert_allclose((w * jet_w).sum(), w[kept].sum(), rtol=1e-12)
    h, _ = np.histogram(m, EDGES, weights=w * jet_w)
    filled = ~weights.empty
    np.testing.assert_allclose(h[filled] / WIDTHS[filled], h.sum() / WIDTHS[filled].sum(), rtol=1e-9)
    assert np.all(weights.values[weights.empty] == 0) and np.all(weights.errors[weights.empty] == 0)

    # a target with no weight where the signal is: refused
    target = flatmass.histogram(rng.uniform(100, 130, 100))
    with pytest.raises(Exception, match="no weight in the bins"):
        flatmass.derive_weights(flatmass.histogram(rng.uniform(40, 90, 100)), target)
    with pytest.raises(ValueError, match="binning"):
        flatmass.derive_weights(flatmass.histogram(m), flatmass.histogram(m, msd_edges=[40, 250]))


# ---------------------------------------------------------------------------- the file


@pytest.mark.parametrize("two_d", [False, True])
def test_the_written_file_validates_and_gives_the_same_weights(tmp_path, two_d):
    rng = np.random.default_rng(51)
    pt = _pt(rng, 20_000)
    m = _signal(rng, 20_000, pt)
    h = flatmass.histogram(m, pt if two_d else None)
    weights = flatmass.derive_weights(h, flatmass.histogram(_qcd(rng, 50_000), _pt(rng, 50_000) if two_d else None))
    correction = weights.to_correction("flat_msd", "test weights", command="jettag flatten s.root --out w.json")
    assert "command: jettag flatten s.root" in correction.description
    assert "target: the normalised shape of the target histogram" in correction.description
    assert [v.name for v in correction.inputs] == ["msoftdrop", *(["pt"] if two_d else []), "systematic"]
    path = corrections.write(corrections.correction_set([correction], "test"), tmp_path / "w.json")
    cs.CorrectionSet.model_validate_json(path.read_text())
    script = Path(sys.executable).parent / "correction"
    script = str(script) if script.exists() else shutil.which("correction")
    if script:
        done = subprocess.run([script, "validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    loaded = correctionlib.CorrectionSet.from_file(str(path))["flat_msd"]
    x = np.concatenate([rng.uniform(0, 300, 2000), [np.nan, -1.0, 250.0]])
    p = rng.uniform(200, 3000, len(x)) if two_d else None
    for syst in ("nominal", "up", "down"):
        np.testing.assert_array_equal(
            flatmass.evaluate(loaded, x, p, syst), flatmass.evaluate(weights, x, p, syst)
        )


# ---------------------------------------------------------------------------- the users


def test_training_mass_weights_are_flatmass_weights():
    rng = np.random.default_rng(61)
    label = np.repeat([0, 1, 3], [3000, 2000, 8000])
    pt = _pt(rng, len(label))
    msd = np.clip(np.concatenate([_signal(rng, 5000, pt[:5000]), _qcd(rng, 8000)]), 40, 249.9)
    for mode, p in (("msd", None), ("msd-pt", pt)):
        w = mass_weights(label, msd, pt, reference=3, mode=mode)
        ref = flatmass.histogram(msd[label == 3], None if p is None else p[label == 3])
        for cls in (0, 1):
            mine = label == cls
            assert w[mine].sum() == pytest.approx(mine.sum(), rel=1e-9)  # total = jet count
            derived = flatmass.derive_weights(flatmass.histogram(msd[mine], None if p is None else p[mine]), ref)
            np.testing.assert_array_equal(w[mine], flatmass.evaluate(derived, msd[mine], None if p is None else p[mine]))
        assert np.all(w[label == 3] == 1)


def test_resonance_flattening_uses_the_same_weights():
    rng = np.random.default_rng(71)
    mass = np.concatenate([rng.normal(125, 60, 5000), [np.nan, 10.0, 300.0]])
    w = flat_mass_weights(mass)
    inside = (mass >= 30) & (mass < 270)
    assert w[inside].mean() == pytest.approx(1.0) and np.all(w[~inside] == 0)
    h, _ = np.histogram(mass, np.arange(30, 271, 10.0), weights=w)
    np.testing.assert_allclose(h, h.mean(), rtol=1e-9)
    # half the window empty: the mean is over the filled bins
    w2 = flat_mass_weights(rng.uniform(30, 130, 400))
    assert w2.mean() == pytest.approx(1.0)


# ---------------------------------------------------------------------------- jettag flatten


def _jets(path, pt_min=300.0):
    a = uproot.open(f"{path}:Events").arrays(["FatJet_msoftdrop", "FatJet_pt", "FatJet_eta", "genWeight"])
    w = ak.broadcast_arrays(a["genWeight"], a["FatJet_pt"])[0]
    flat = {k: ak.to_numpy(ak.flatten(v)).astype(float) for k, v in [*((k, a[k]) for k in a.fields if k != "genWeight"), ("w", w)]}
    sel = (flat["FatJet_pt"] > pt_min) & (np.abs(flat["FatJet_eta"]) < 2.4)
    return flat["FatJet_msoftdrop"][sel], flat["FatJet_pt"][sel], flat["w"][sel]


def test_cli_flatten(samples, tmp_path, capsys):
    xbb, qcd = samples["xbb"], samples["qcd"]
    out = tmp_path / "flat.json"
    assert main(["flatten", str(xbb), "--out", str(out), "--msd-bins", "6,40,250"]) == 0
    text = capsys.readouterr().out
    assert "weighted frac" in text and f"wrote {out}" in text and "target: flat in msoftdrop" in text
    loaded = corrections.load(out)["mass_weights"]
    assert "msoftdrop 6 bins" in loaded.description and "selection=pT > 300 GeV" in loaded.description
    m, _, w = _jets(xbb)
    edges = np.linspace(40, 250, 7)
    jet_w = flatmass.evaluate(loaded, m)
    h, _ = np.histogram(m, edges, weights=w * jet_w)
    filled = np.histogram(m, edges)[0] > 0
    assert filled.sum() >= 4
    np.testing.assert_allclose(h[filled], h[filled].mean(), rtol=1e-6)  # the file closes on its input
    inside = (m >= 40) & (m < 250)
    np.testing.assert_allclose((w * jet_w).sum(), w[inside].sum(), rtol=1e-6)

    # refusals: over an input, over an existing output; --force replaces
    assert main(["flatten", str(xbb), "--out", str(xbb)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert main(["flatten", str(xbb), "--reference", str(qcd), "--force", "--out", str(qcd)]) == 2
    assert "is also an input" in capsys.readouterr().err
    assert main(["flatten", str(xbb), "--out", str(out)]) == 2
    assert "exists; give --force" in capsys.readouterr().err
    two = ["flatten", str(xbb), "--out", str(out), "--reference", str(qcd), "--pt", "--msd-bins", "4,40,250", "--pt-edges", "300,450,3000"]
    assert main([*two, "--force"]) == 0
    text = capsys.readouterr().out
    assert "2D weights: 4 msoftdrop x 2 pT bins" in text and str(qcd) in text
    cset = corrections.read(out)
    assert [v.name for v in cset.corrections[0].inputs] == ["msoftdrop", "pt", "systematic"]
    assert f"normalised shape of {qcd}" in cset.corrections[0].description

    # a missing file, a file without the branches, a non-ROOT file: one line naming it
    missing = tmp_path / "nosuch.root"
    assert main(["flatten", str(missing), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jettag flatten: error: ") and str(missing) in err and err.count("\n") == 1
    bare = tmp_path / "bare.root"
    with uproot.recreate(bare) as f:
        f["Events"] = {"Jet_pt": np.ones(3)}
    assert main(["flatten", str(xbb), "--reference", str(bare), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert str(bare) in err and "FatJet_msoftdrop" in err and err.count("\n") == 1
    text_file = tmp_path / "notroot.root"
    text_file.write_text("hello")
    assert main(["flatten", str(text_file), "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err
    assert str(text_file) in err and err.count("\n") == 1
    assert main(["flatten", str(xbb), "--out", str(tmp_path / "m.json"), "--pt-edges", "300,400"]) == 2
    assert "--pt-edges needs --pt" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_cli_flatten_real_nanoaod(shared_data, tmp_path, capsys):
    """CMS NanoAOD files read as they are: nano_dy has no fat jet above 300 GeV, pfnano has a few."""
    out = tmp_path / "w.json"
    assert main(["flatten", str(shared_data / "nano_dy.root"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nano_dy.root: no signal jets with pT > 300 GeV" in err and err.count("\n") == 1
    pfnano = shared_data / "pfnano.root"
    assert main(["flatten", str(pfnano), "--out", str(out), "--pt-min", "200", "--msd-bins", "4,0,200"]) == 0
    text = capsys.readouterr().out
    assert "stat-limited" in text and "empty" in text
    m, _, w = _jets(pfnano, pt_min=200.0)
    jet_w = flatmass.evaluate(corrections.load(out)["mass_weights"], m)
    inside = (m >= 0) & (m < 200)
    np.testing.assert_allclose((w * jet_w).sum(), w[inside].sum(), rtol=1e-6)
