"""Tests of fat-jet clustering and substructure (jettag.jets)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jettag.generator.jets import cluster_fatjets

PFNANO = Path(__file__).parents[2] / "shared" / "data" / "pfnano.root"


def _spray(rng, pt, eta, phi, n=12, width=0.03, pdg=211):
    """n collinear-ish charged pions sharing ``pt``, within ``width`` of (eta, phi)."""
    frac = rng.dirichlet(np.full(n, 2.0))
    return [
        (pt * f, eta + rng.normal(0, width), phi + rng.normal(0, width), 0.1396, pdg) for f in frac
    ]


def _event(particles):
    return [
        {
            "pt": float(pt),
            "eta": float(eta),
            "phi": float(phi),
            "mass": float(m),
            "charge": (0 if pdg in (22, 130) else 1),
            "pdgId": int(pdg),
        }
        for pt, eta, phi, m, pdg in particles
    ]


def _p4(parts):
    a = np.array([(p[0], p[1], p[2], p[3]) for p in parts])
    pt, eta, phi, m = a.T
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    return px.sum(), py.sum(), pz.sum(), e.sum()


def _pt_mass(p4):
    px, py, pz, e = p4
    return np.hypot(px, py), np.sqrt(max(e**2 - px**2 - py**2 - pz**2, 0.0))


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


def test_two_sprays_give_two_jets(rng):
    a = _spray(rng, 500.0, 0.0, 0.0)
    b = _spray(rng, 300.0, 0.5, 3.0)
    res = cluster_fatjets(ak.Array([_event(a + b)]))
    jets = res.fatjets[0]
    assert len(jets) == 2
    for jet, parts in zip(jets, (a, b), strict=True):
        pt, m = _pt_mass(_p4(parts))
        assert jet.pt == pytest.approx(pt, rel=1e-5)
        assert jet.mass == pytest.approx(m, rel=1e-3, abs=1e-3)
        assert jet.nConstituents == len(parts)
        assert jet.jetId == 6  # charged hadrons only: tight + lepton veto
    assert jets.pt[0] > jets.pt[1]
    # constituents: right candidates, pt descending, sum to the jet
    cons = res.constituents[0]
    assert sorted(cons[0].tolist()) == list(range(len(a)))
    assert sorted(cons[1].tolist()) == list(range(len(a), len(a) + len(b)))
    ev = ak.Array([_event(a + b)])[0]
    for k in range(2):
        pts = np.asarray(ev.pt[cons[k]])
        assert np.all(np.diff(pts) <= 0)


def test_two_prong_has_smaller_tau21_and_n2(rng):
    one = _spray(rng, 600.0, 0.0, 0.0, n=20, width=0.05)
    two = _spray(rng, 300.0, 0.0, 2.0, n=10, width=0.02) + _spray(
        rng, 300.0, 0.25, 2.2, n=10, width=0.02
    )
    # separate events so that each is one jet
    res = cluster_fatjets(ak.Array([_event(one), _event(two)]))
    j1, j2 = res.fatjets[0][0], res.fatjets[1][0]
    assert j2.tau2 / j2.tau1 < j1.tau2 / j1.tau1
    assert j2.n2b1 < j1.n2b1
    assert j2.mass > 50.0
    # the two-prong jet keeps its mass after soft drop, and has two subjets near the prongs
    assert j2.msoftdrop == pytest.approx(j2.mass, rel=0.02)
    sj = res.subjets[1]
    assert j2.subJetIdx1 == 0 and j2.subJetIdx2 == 1
    assert len(sj) == 2
    assert sj.pt[0] >= sj.pt[1]
    np.testing.assert_allclose(sorted(np.asarray(sj.eta)), [0.0, 0.25], atol=0.05)


def test_softdrop_removes_soft_wide_angle_particle(rng):
    core = _spray(rng, 500.0, 0.0, 0.0, n=15, width=0.02)
    soft = [(5.0, 0.6, 0.3, 0.0, 22)]
    res = cluster_fatjets(ak.Array([_event(core + soft)]))
    jet = res.fatjets[0][0]
    assert jet.nConstituents == len(core) + 1
    _, m_core = _pt_mass(_p4(core))
    assert jet.mass > 2 * m_core  # the soft wide-angle photon adds a lot of mass
    assert jet.msoftdrop == pytest.approx(m_core, rel=1e-3)
    assert jet.msoftdrop <= jet.mass


def test_empty_and_below_threshold_events(rng):
    low = _spray(rng, 100.0, 0.0, 0.0)
    forward = _spray(rng, 400.0, 3.0, 0.0)
    res = cluster_fatjets(ak.Array([_event(low), [], _event(forward)]))
    assert ak.num(res.fatjets).tolist() == [0, 0, 0]
    assert ak.num(res.subjets).tolist() == [0, 0, 0]
    assert ak.num(res.constituents).tolist() == [0, 0, 0]
    assert set(res.fatjets.fields) >= {"pt", "msoftdrop", "tau1", "n2b1", "jetId"}
    # all-empty batch
    empty = ak.Array([_event(low)])[:0]
    assert len(cluster_fatjets(empty).fatjets) == 0
    res = cluster_fatjets(ak.Array([_event(low)])[[0, 0]][:, :0])  # events without particles
    assert ak.num(res.fatjets).tolist() == [0, 0]


def test_mixed_batch_indices(rng):
    a = _spray(rng, 500.0, 0.0, 0.0)
    b = _spray(rng, 400.0, -1.0, 2.0)
    c = _spray(rng, 300.0, 1.0, -2.0)
    events = [_event(a), [], _event(b + c + _spray(rng, 50.0, 0.0, 1.0))]
    res = cluster_fatjets(ak.Array(events))
    assert ak.num(res.fatjets).tolist() == [1, 0, 2]
    assert res.fatjets.subJetIdx1.tolist()[2][0] == 0
    assert res.fatjets.subJetIdx1.tolist()[2][1] == ak.num(res.subjets)[2] - (
        2 if res.fatjets.subJetIdx2[2][1] >= 0 else 1
    )
    assert res.fatjets.pt.type.content.content.primitive == "float32"
    assert str(res.fatjets.jetId.type.content.content) == "int32"
    # every constituent index of event 2 points inside b or c
    idx = ak.flatten(res.constituents[2]).tolist()
    assert sorted(idx) == list(range(len(b) + len(c)))


def test_few_constituent_jets():
    ev = [
        _event([(400.0, 0.0, 0.0, 0.0, 22)]),
        _event([(300.0, 0.0, 0.0, 0.0, 211), (200.0, 0.1, 0.1, 0.0, 211)]),
    ]
    res = cluster_fatjets(ak.Array(ev))
    j1, j2 = res.fatjets[0][0], res.fatjets[1][0]
    assert j1.nConstituents == 1 and j1.jetId == 0  # one photon: fails tight
    assert (j1.tau1, j1.tau2, j1.n2b1, j1.n3b1) == (0.0, 0.0, -1.0, -1.0)
    assert j1.subJetIdx2 == -1
    assert j2.tau2 == 0.0 and j2.tau1 > 0
    assert j2.n2b1 == -1.0
    for f in res.fatjets.fields:
        assert np.all(np.isfinite(np.asarray(ak.flatten(res.fatjets[f])))), f


def test_cms_file_jets():
    if not PFNANO.exists():
        pytest.skip("../shared/data/pfnano.root not available")
    uproot = pytest.importorskip("uproot")
    t = uproot.open(PFNANO)["Events"]
    pf = t.arrays(filter_name="PFCands_*", how="zip")["PFCands"]
    cms = t.arrays(filter_name=["FatJet_eta", "FatJet_phi", "FatJet_pt"], how="zip")["FatJet"]
    res = cluster_fatjets(pf)
    jets = res.fatjets
    assert ak.all(jets.msoftdrop <= jets.mass * 1.0001 + 1e-3)
    # every CMS fat jet above 400 GeV has one of ours within dR < 0.1 (CMS: PUPPI + JEC)
    pairs = ak.cartesian({"c": cms[cms.pt > 400], "o": jets}, nested=True)
    dphi = (pairs.c.phi - pairs.o.phi + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(pairs.c.eta - pairs.o.eta, dphi)
    assert ak.all(ak.min(dr, axis=2) < 0.1)
    # constituents index the event's pfcands and their momenta sum up to the jet's
    ncons = ak.num(res.constituents, axis=2)
    flat = ak.flatten(res.constituents, axis=2)
    assert ak.all(ak.max(flat, axis=1, mask_identity=False) < ak.num(pf))
    sel = pf[flat]
    px = ak.unflatten(sel.pt * np.cos(sel.phi), ak.flatten(ncons), axis=1)
    py = ak.unflatten(sel.pt * np.sin(sel.phi), ak.flatten(ncons), axis=1)
    pt = np.hypot(ak.sum(px, axis=2), ak.sum(py, axis=2))
    assert ak.all(abs(pt / jets.pt - 1) < 1e-4)


def test_softdrop_matches_fastjet():
    """The numba soft drop gives FastJet SoftDrop's groomed mass on realistic jets."""
    import fastjet

    from jettag.generator.detector import MC_RESPONSE, simulate
    from jettag.generator.processes import get_process
    from jettag.generator.pythia import PythiaSource

    generated = PythiaSource(get_process("zbb"), "mc", 5).next_batch(60)
    pf, _ = simulate(generated["particles"], MC_RESPONSE, np.random.default_rng(1))
    result = cluster_fatjets(pf)
    idx = ak.flatten(result.constituents, axis=2)
    per_jet = ak.flatten(ak.unflatten(pf[idx], ak.flatten(ak.num(result.constituents, axis=2)), axis=1), axis=1)
    pt, eta, phi, mass = (ak.values_astype(per_jet[k], np.float64) for k in ("pt", "eta", "phi", "mass"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    p4 = ak.zip({"px": px, "py": py, "pz": pz, "E": np.sqrt(px**2 + py**2 + pz**2 + mass**2)})
    sequence = fastjet.ClusterSequence(p4, fastjet.JetDefinition(fastjet.cambridge_algorithm, 10.0))
    reference = np.asarray(
        sequence.exclusive_jets_softdrop_grooming(njets=1, beta=0.0, symmetry_cut=0.1, R0=0.8)["msoftdrop"]
    )
    ours = ak.to_numpy(ak.flatten(result.fatjets["msoftdrop"])).astype(np.float64)
    assert len(ours) > 50
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-4)
