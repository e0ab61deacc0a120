"""Tests of the parametric detector (jettag.detector)."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest

from jettag.generator.detector import (
    DATA_RESPONSE,
    MC_RESPONSE,
    MUON_FIELDS,
    PFCAND_FIELDS,
    PFCAND_INTERNAL_FIELDS,
    DetectorResponse,
    simulate,
    true_impact_parameters,
)
from jettag.generator.tunes import TUNES

pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def zbb_particles() -> ak.Array:
    from jettag.generator.processes import get_process
    from jettag.generator.pythia import PythiaSource

    return PythiaSource(get_process("zbb"), "mc", 12345).next_batch(150)["particles"]


@pytest.fixture(scope="module")
def zbb_reco(zbb_particles):
    return simulate(zbb_particles, MC_RESPONSE, np.random.default_rng(1))


def _truth(particles: ak.Array, cands: ak.Array) -> ak.Array:
    """The source particle of every candidate (same jagged structure)."""
    return particles[cands.genIdx]


def _is_b_hadron(pdg: np.ndarray) -> np.ndarray:
    a = np.abs(pdg)
    return ((a // 100) % 10 == 5) | ((a // 1000) % 10 == 5)


def test_fields_and_dtypes(zbb_reco):
    pfcands, muons = zbb_reco
    expected = {**PFCAND_FIELDS, **PFCAND_INTERNAL_FIELDS}
    assert pfcands.fields == list(expected)
    for name, dtype in expected.items():
        assert ak.flatten(pfcands[name]).to_numpy().dtype == dtype, name
    assert muons.fields == list(MUON_FIELDS)
    for name, dtype in MUON_FIELDS.items():
        assert ak.flatten(muons[name]).to_numpy().dtype == dtype, name


def test_sorted_and_cms_conventions(zbb_reco):
    pfcands, muons = zbb_reco
    assert ak.all(pfcands.pt[:, 1:] <= pfcands.pt[:, :-1])
    assert ak.all(muons.pt[:, 1:] <= muons.pt[:, :-1])
    flat = ak.flatten(pfcands)
    pdg = flat.pdgId.to_numpy()
    assert set(np.unique(pdg)) <= {-211, -13, -11, 1, 2, 11, 13, 22, 130, 211}
    charged = flat.charge.to_numpy() != 0
    assert np.array_equal(charged, flat.isTrack.to_numpy())
    # signs: +211 has charge +1, +11 and +13 have charge -1
    assert np.all(flat.charge.to_numpy()[pdg == 211] == 1)
    assert np.all(flat.charge.to_numpy()[np.isin(pdg, (11, 13))] == -1)
    neutral = ~charged
    for name in ("d0", "d0Err", "dz", "dzErr", "trkChi2", "vtxChi2"):
        assert np.all(flat[name].to_numpy()[neutral] == -1), name
    assert np.all(flat.lostInnerHits.to_numpy()[neutral] == -1)
    assert np.all(flat.pvAssocQuality.to_numpy()[neutral] == 7)
    assert np.all(flat.trkQuality.to_numpy()[neutral] == 0)
    details = flat.d0Err.to_numpy() > 0
    assert np.all(flat.pt.to_numpy()[details] > MC_RESPONSE.track_details_min_pt)
    assert np.all(np.isin(flat.trkQuality.to_numpy()[details], (1, 5)))
    assert set(np.unique(flat.lostInnerHits.to_numpy()[charged])) <= {-1, 0, 1, 2}
    assert set(np.unique(flat.pvAssocQuality.to_numpy())) <= {0, 4, 5, 6, 7}
    np.testing.assert_allclose(flat.mass.to_numpy()[np.abs(pdg) == 211], 0.13957, atol=1e-4)
    assert np.all(flat.mass.to_numpy()[neutral] == 0)
    assert np.all(flat.puppiWeight.to_numpy() == 1)
    # HF candidates only at 3 < |eta| < 5, ECAL/HCAL ones below
    eta = np.abs(flat.eta.to_numpy())
    hf = np.isin(pdg, (1, 2))
    assert np.all(eta[hf] > 2.8) and np.all(eta[hf] < 5.2)
    assert np.all(eta[np.isin(pdg, (22, 130))] < 3.2)
    assert np.all(eta[charged] < 2.5)


def test_only_final_state_no_neutrinos(zbb_particles, zbb_reco):
    pfcands, _ = zbb_reco
    src = ak.flatten(_truth(zbb_particles, pfcands))
    assert np.all(src.status.to_numpy() > 0)
    assert not np.any(np.isin(np.abs(src.pdgId.to_numpy()), (12, 14, 16)))
    # each particle makes at most one candidate
    gen = pfcands.genIdx
    assert ak.all(ak.num(gen) == ak.num(ak.run_lengths(ak.sort(gen))))


def test_same_seed_same_output(zbb_particles):
    a = simulate(zbb_particles[:30], MC_RESPONSE, np.random.default_rng(7))
    b = simulate(zbb_particles[:30], MC_RESPONSE, np.random.default_rng(7))
    c = simulate(zbb_particles[:30], MC_RESPONSE, np.random.default_rng(8))
    for x, y in zip(a, b, strict=True):
        assert ak.to_list(x) == ak.to_list(y)
    assert ak.to_list(a[0].pt) != ak.to_list(c[0].pt)


def _tracks_with_truth(particles, pfcands):
    """Flat arrays of tracks with details and the true IPs/pT of their particles."""
    trk = pfcands[pfcands.d0Err > 0]
    src = ak.flatten(_truth(particles, trk))
    trk = ak.flatten(trk)
    vx, vy, vz = (src[v].to_numpy() * 0.1 for v in ("vx", "vy", "vz"))
    d0, dz = true_impact_parameters(
        vx, vy, vz, src.px.to_numpy(), src.py.to_numpy(), src.pz.to_numpy()
    )
    return trk, src, d0, dz


def _robust_width(x: np.ndarray) -> float:
    q16, q84 = np.percentile(x, [16, 84])
    return 0.5 * (q84 - q16)


def test_resolution_pulls(zbb_particles, zbb_reco):
    pfcands, _ = zbb_reco
    trk, src, d0_true, dz_true = _tracks_with_truth(zbb_particles, pfcands)
    assert len(trk) > 3000
    for meas, true, err in ((trk.d0, d0_true, trk.d0Err), (trk.dz, dz_true, trk.dzErr)):
        pull = (meas.to_numpy() - true) / err.to_numpy()
        assert abs(_robust_width(pull) - 1.0) < 0.06
        assert abs(np.median(pull)) < 0.06
    # pT: smeared vs true with the documented resolution
    pt_true = np.hypot(src.px.to_numpy(), src.py.to_numpy())
    r = MC_RESPONSE
    endcap = np.abs(trk.eta.to_numpy()) > r.barrel_eta_max
    sigma = np.hypot(r.track_pt_res_a, r.track_pt_res_b * pt_true) * np.where(
        endcap, r.track_pt_res_endcap_scale, 1.0
    )
    pull = (trk.pt.to_numpy() / pt_true - 1.0) / sigma
    assert abs(_robust_width(pull) - 1.0) < 0.06


def test_ip_resolution_values():
    """CMS-like: sigma_dxy = 15 um (+) 90 um/pT, larger by 20-35% in pseudo-data."""
    r = MC_RESPONSE
    assert r.d0_res_a == pytest.approx(0.0015) and r.d0_res_b == pytest.approx(0.0090)
    assert r.dz_res_a == pytest.approx(0.0030) and r.dz_res_b == pytest.approx(0.0110)
    for name in ("d0_res_a", "d0_res_b", "dz_res_a", "dz_res_b"):
        assert 1.2 <= getattr(DATA_RESPONSE, name) / getattr(r, name) <= 1.35


def test_prompt_ip_significance_is_unit_gaussian(zbb_reco):
    pfcands, _ = zbb_reco
    flat = ak.flatten(pfcands[(pfcands.d0Err > 0) & (pfcands.vertexId < 0)])
    sig = flat.d0.to_numpy() / flat.d0Err.to_numpy()
    assert len(sig) > 2000
    assert abs(_robust_width(sig) - 1.0) < 0.06
    # Gaussian tails: about 0.27% beyond 3 sigma (+ the documented IP tails)
    assert np.mean(np.abs(sig) > 3) < 0.0027 + MC_RESPONSE.ip_tail_fraction + 0.004
    assert np.mean(np.abs(sig) > 6) < 2 * MC_RESPONSE.ip_tail_fraction + 0.002


def test_b_decay_tracks_are_displaced(zbb_particles, zbb_reco):
    pfcands, _ = zbb_reco
    flat = ak.flatten(pfcands[pfcands.d0Err > 0])
    vid = flat.vertexId.to_numpy()
    # the particle that made the vertex: is it a B hadron?
    evt = np.repeat(np.arange(len(pfcands)), ak.num(pfcands[pfcands.d0Err > 0]))
    pdg_all = zbb_particles.pdgId
    displaced = vid >= 0
    parent_pdg = np.zeros(len(vid), np.int64)
    parent_pdg[displaced] = ak.to_numpy(pdg_all[evt[displaced], vid[displaced]])
    from_b = displaced & _is_b_hadron(parent_pdg)
    prompt = vid < 0
    assert from_b.sum() > 200
    sig = np.abs(flat.d0.to_numpy() / flat.d0Err.to_numpy())
    assert np.median(sig[from_b]) > 5 * np.median(sig[prompt])
    assert np.mean(sig[from_b] > 3) > 0.5
    assert np.mean(sig[prompt] > 3) < 0.01


def test_vertex_ids_are_shared_per_true_vertex(zbb_particles, zbb_reco):
    pfcands, _ = zbb_reco
    cand = pfcands[pfcands.vertexId >= 0]
    src = _truth(zbb_particles, cand)
    mother = zbb_particles[cand.vertexId]
    # the vertex-making particle decayed at (within ~1 um of) the candidate's production point
    flat_c, flat_m = ak.flatten(src), ak.flatten(mother)
    assert len(flat_c) > 1000
    dist = np.sqrt(
        sum((flat_c[v].to_numpy() - flat_m[v].to_numpy()) ** 2 for v in ("vx", "vy", "vz"))
    )
    assert np.all(dist > 0)  # the mother itself was made elsewhere
    prompt = ak.flatten(_truth(zbb_particles, pfcands[pfcands.vertexId < 0]))
    r3 = np.sqrt(sum(prompt[v].to_numpy() ** 2 for v in ("vx", "vy", "vz")))
    assert np.all(r3 < MC_RESPONSE.prompt_distance * 10)


def test_muons(zbb_particles, zbb_reco):
    pfcands, muons = zbb_reco
    assert ak.sum(ak.num(muons)) > 10
    flat = ak.flatten(muons)
    assert np.all(flat.pt.to_numpy() > MC_RESPONSE.muon_min_pt)
    assert np.all(np.abs(flat.eta.to_numpy()) < MC_RESPONSE.muon_eta_max)
    # pfIdx points at the PF muon with the same momentum
    linked = pfcands[muons.pfIdx]
    assert ak.all(np.abs(linked.pdgId) == 13)
    assert ak.all(linked.pt == muons.pt)
    assert ak.all(linked.genIdx == muons.genIdx)
    assert ak.all(linked.d0 == muons.dxy)
    src = ak.flatten(_truth(zbb_particles, muons))
    assert np.mean(np.abs(src.pdgId.to_numpy()) == 13) > 0.8
    soft = flat.softId.to_numpy()
    assert np.all(np.abs(flat.dxy.to_numpy()[soft]) < 0.3)
    assert np.all(flat.pfRelIso04_all.to_numpy() >= 0)


def test_muon_isolation_synthetic():
    """A muon with one 10 GeV photon inside dR < 0.4 and one outside: iso = 10/pT."""
    particles = ak.Array(
        [
            [
                {
                    "pdgId": 90,
                    "status": -11,
                    "mother1": 0,
                    "px": 0.0,
                    "py": 0.0,
                    "pz": 0.0,
                    "e": 0.0,
                },
                {
                    "pdgId": 13,
                    "status": 1,
                    "mother1": 0,
                    "px": 50.0,
                    "py": 0.0,
                    "pz": 0.0,
                    "e": 50.0,
                },
                {
                    "pdgId": 22,
                    "status": 1,
                    "mother1": 0,
                    "px": 10.0,
                    "py": 1.0,
                    "pz": 0.0,
                    "e": 10.05,
                },
                {
                    "pdgId": 22,
                    "status": 1,
                    "mother1": 0,
                    "px": -10.0,
                    "py": 0.0,
                    "pz": 0.0,
                    "e": 10.0,
                },
            ]
        ]
    )
    particles = ak.with_field(particles, ak.zeros_like(particles.px), "vx")
    particles = ak.with_field(particles, ak.zeros_like(particles.px), "vy")
    particles = ak.with_field(particles, ak.zeros_like(particles.px), "vz")
    response = DetectorResponse(muon_id_eff=1.0, track_eff_barrel=1.0, track_eff_lowpt_drop=0.0)
    pfcands, muons = simulate(particles, response, np.random.default_rng(0))
    assert ak.num(muons).tolist() == [1]
    photon_pt = pfcands.pt[pfcands.pdgId == 22][0]
    inside = photon_pt[np.abs(pfcands.phi[pfcands.pdgId == 22][0]) < 1]
    assert muons.pfRelIso04_all[0, 0] == pytest.approx(float(inside[0] / muons.pt[0, 0]), rel=1e-5)
    assert muons.pdgId[0, 0] == 13 and muons.charge[0, 0] == -1


def _event(tracks: list[tuple[int, float, float, float]]) -> ak.Array:
    """One event of prompt particles from the origin: (pdgId, pT, eta, phi) each."""
    rows = [{"pdgId": 90, "status": -11, "mother1": 0, "px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0}]
    for pdg, pt, eta, phi in tracks:
        px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
        e = float(np.sqrt(px * px + py * py + pz * pz + 0.13957**2))
        rows.append({"pdgId": pdg, "status": 1, "mother1": 0, "px": px, "py": py, "pz": pz, "e": e})
    particles = ak.Array([rows])
    for v in ("vx", "vy", "vz"):
        particles = ak.with_field(particles, ak.zeros_like(particles.px), v)
    return particles


def test_layer_hits_geometry():
    """Straight in eta, bent in phi by the sagitta q 0.3 B L^2 / (2 pT); NaN beyond the layer."""
    from jettag.generator.detector import layer_hits

    zero = np.zeros(3)
    px, py, pz = np.array([10.0, 10.0, 1.0]), np.zeros(3), np.array([0.0, 11.75, 0.0])
    phi, z = layer_hits(zero, zero, zero, px, py, pz, np.array([0, 1, -1]), 2.9, 3.8)
    assert phi[0] == pytest.approx(0.0) and z[0] == pytest.approx(0.0)
    assert z[1] == pytest.approx(2.9 * 1.175)
    sagitta = 0.3 * 3.8 * 2.9**2 / 200.0  # cm at 1 GeV
    assert phi[1] == pytest.approx(-sagitta / 10.0 / 2.9)  # positive tracks turn clockwise
    assert phi[2] == pytest.approx(+sagitta / 1.0 / 2.9)
    far = np.full(3, 5.0)
    phi, _ = layer_hits(far, zero, zero, px, py, pz, np.zeros(3), 2.9, 3.8)
    assert np.all(np.isnan(phi))


def test_dense_core_merging_loses_the_softer_track():
    """Two pions whose layer-1 hits lie 58 um apart: with track_merge_loss = 1 the softer is
    lost (it reaches the HCAL as a neutral); the harder one and a far pion stay tracks."""
    particles = _event([(211, 20.0, 0.3, 1.0), (211, 8.0, 0.3, 1.002), (-211, 8.0, 0.3, 2.0)])
    base = DetectorResponse(track_eff_barrel=1.0, track_eff_lowpt_drop=0.0)
    kept = simulate(particles, base, np.random.default_rng(0))[0]
    assert ak.sum(kept.isTrack) == 3
    lossy = dataclasses.replace(base, track_merge_loss=1.0)
    pf = simulate(particles, lossy, np.random.default_rng(0))[0]
    tracks = pf[pf.isTrack]
    assert sorted(ak.to_list(tracks.genIdx[0])) == [1, 3]
    assert 2 in ak.to_list(pf.genIdx[0])  # the lost pion's energy is still seen, as a neutral
    # 3 mm apart along z (another eta): no merging
    apart = _event([(211, 20.0, 0.3, 1.0), (211, 8.0, 0.4, 1.002)])
    assert ak.sum(simulate(apart, lossy, np.random.default_rng(0))[0].isTrack) == 2


def test_dense_core_merging_is_a_data_effect(zbb_particles):
    """The simulation's own dense-core losses are inside its plateau: MC has no extra merging
    loss (and draws no random numbers for it); pseudo-data lose the softer track of merged
    pairs, which are mostly B-decay tracks in the jet core."""
    assert MC_RESPONSE.track_merge_loss == 0.0
    assert 0.0 < DATA_RESPONSE.track_merge_loss <= 1.0
    no_merge = dataclasses.replace(DATA_RESPONSE, track_merge_loss=0.0)
    ref = simulate(zbb_particles, no_merge, np.random.default_rng(5))[0]
    full = dataclasses.replace(DATA_RESPONSE, track_merge_loss=1.0)
    pf = simulate(zbb_particles, full, np.random.default_rng(5))[0]
    assert ak.sum(pf.isTrack) < ak.sum(ref.isTrack)

    def lost_fraction(sel_ref, sel):
        return 1.0 - ak.sum(sel) / ak.sum(sel_ref)

    def b_tracks(c):
        return c.isTrack & (c.vertexId >= 0) & (c.pt > 1)

    displaced = lost_fraction(b_tracks(ref), b_tracks(pf))
    everything = lost_fraction(ref.isTrack, pf.isTrack)
    assert 0.002 < everything < 0.05
    assert displaced > 3 * everything


def test_data_response_differs(zbb_particles):
    mc_pf, _ = simulate(zbb_particles, MC_RESPONSE, np.random.default_rng(3))
    data_pf, _ = simulate(zbb_particles, DATA_RESPONSE, np.random.default_rng(3))
    assert {name: tune.detector for name, tune in TUNES.items()} == {"mc": MC_RESPONSE, "data": DATA_RESPONSE}
    # fewer tracks in pseudo-data
    n_mc = ak.sum(mc_pf.isTrack)
    n_data = ak.sum(data_pf.isTrack)
    assert 0.93 < n_data / n_mc < 0.99
    # wider IP errors for the same particles
    err_mc = np.median(ak.flatten(mc_pf.d0Err[mc_pf.d0Err > 0]).to_numpy())
    err_data = np.median(ak.flatten(data_pf.d0Err[data_pf.d0Err > 0]).to_numpy())
    assert 1.15 < err_data / err_mc < 1.35

    # photons 2% higher for the same photons
    def photon_energy(pf):
        ph = pf[(pf.pdgId == 22) & (pf.pt > 5)]
        return ak.sum(ph.pt * np.cosh(ph.eta))

    ratio = photon_energy(data_pf) / photon_energy(mc_pf)
    assert 1.01 < ratio < 1.03


def test_detector_table_documents_every_field():
    import dataclasses

    from jettag.generator.tunes import detector_table

    table = detector_table()
    for f in dataclasses.fields(DetectorResponse):
        assert f.metadata.get("doc"), f.name
        if f.name != "name":
            assert f"`{f.name}`" in table
    assert "| mc | data |" in table.splitlines()[0]
