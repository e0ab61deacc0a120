"""Tests of the truth-seeded secondary-vertex finder (jettag.vertexing)."""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest

from jettag.generator.detector import DATA_RESPONSE, MC_RESPONSE, PION_MASS, simulate
from jettag.generator.vertexing import K0S_MASS, SV_FIELDS, find_secondary_vertices

pytest.importorskip("pythia8mc")


@pytest.fixture(scope="module")
def zbb():
    from jettag.generator.processes import get_process
    from jettag.generator.pythia import PythiaSource

    particles = PythiaSource(get_process("zbb"), "mc", 2024).next_batch(150)["particles"]
    pfcands, _ = simulate(particles, MC_RESPONSE, np.random.default_rng(11))
    return particles, pfcands


def _is_b_hadron(pdg):
    a = np.abs(pdg)
    return ((a // 100) % 10 == 5) | ((a // 1000) % 10 == 5)


def test_fields_dtypes_sorting(zbb):
    _, pfcands = zbb
    sv = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(1))
    assert len(sv) == len(pfcands)
    assert sv.fields == list(SV_FIELDS)
    for name, dtype in SV_FIELDS.items():
        assert ak.flatten(sv[name]).to_numpy().dtype == dtype, name
    assert ak.all(sv.dlenSig[:, 1:] <= sv.dlenSig[:, :-1])
    flat = ak.flatten(sv)
    assert len(flat) > 100
    n = flat.ntracks.to_numpy().astype(int)
    assert np.all(n >= 2)
    np.testing.assert_allclose(flat.ndof.to_numpy(), 2 * n - 3)
    # CMS conventions: unsigned distances, cuts, pAngle close to pi
    assert np.all(flat.dlenSig.to_numpy() > 3) and np.all(flat.dxySig.to_numpy() > 2.5)
    assert np.all(flat.dxy.to_numpy() > 0) and np.all(flat.dlen.to_numpy() >= flat.dxy.to_numpy())
    assert np.all(np.cos(np.pi - flat.pAngle.to_numpy()) > 0.98 - 1e-6)
    np.testing.assert_allclose(
        flat.dxy.to_numpy(), np.hypot(flat.x.to_numpy(), flat.y.to_numpy()), rtol=1e-5
    )
    # reduced chi2 of order 1
    assert 0.5 < np.mean(flat.chi2.to_numpy()) < 1.5


def test_same_seed_same_vertices(zbb):
    _, pfcands = zbb
    a = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(5))
    b = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(5))
    assert ak.to_list(a) == ak.to_list(b)


def test_vertices_from_b_decays(zbb):
    particles, pfcands = zbb
    sv = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(1))
    real = sv[sv.vertexId >= 0]
    assert ak.sum(ak.num(real)) > 0.8 * ak.sum(ak.num(sv))  # fakes are a minority
    from_hf = ak.flatten(particles[real.vertexId].pdgId).to_numpy()
    a = np.abs(from_hf)
    heavy = _is_b_hadron(from_hf) | ((a // 100) % 10 == 4) | ((a // 1000) % 10 == 4)
    assert np.mean(heavy) > 0.6
    # events with a Z->bb: most have >= 1 SV
    assert np.mean(ak.num(sv) > 0) > 0.7


def test_position_resolution_pulls(zbb):
    """Smeared-minus-true flight distance over its error has unit width."""
    _, pfcands = zbb
    loose = dataclasses.replace(
        MC_RESPONSE,
        sv_min_dxy_sig=-1.0,
        sv_min_dlen_sig=-1.0,
        sv_min_cos_pointing=-2.0,
        sv_fake_rate=0.0,
    )
    sv = find_secondary_vertices(pfcands, loose, np.random.default_rng(2))
    trk = pfcands[pfcands.vertexId >= 0]
    # true position of each SV, from any of its tracks
    flat_sv = ak.flatten(sv)
    evt = np.repeat(np.arange(len(sv)), ak.num(sv))
    flat_trk = ak.flatten(trk)
    tevt = np.repeat(np.arange(len(trk)), ak.num(trk))
    key_t = {
        (e, v): (x, y, z)
        for e, v, x, y, z in zip(
            tevt,
            flat_trk.vertexId.to_numpy(),
            flat_trk.genVx.to_numpy(),
            flat_trk.genVy.to_numpy(),
            flat_trk.genVz.to_numpy(),
            strict=True,
        )
    }
    true = np.array([key_t[(e, v)] for e, v in zip(evt, flat_sv.vertexId.to_numpy(), strict=True)])
    dlen_true = np.linalg.norm(true, axis=1)
    err = flat_sv.dlen.to_numpy() / flat_sv.dlenSig.to_numpy()
    pull = (flat_sv.dlen.to_numpy() - dlen_true) / err
    q16, q84 = np.percentile(pull, [16, 84])
    assert len(pull) > 200
    assert 0.8 < 0.5 * (q84 - q16) < 1.2


def _two_track_event(mass_parent: float, charges=(1, -1)) -> ak.Array:
    """One displaced 2-track vertex at (1, 0, 0) cm with a given pi-pi invariant mass."""
    p = 5.0
    e = mass_parent / 2
    pstar = np.sqrt(max(e**2 - PION_MASS**2, 1e-6))
    # parent along x with momentum 2p, decay symmetric in the transverse plane
    gamma_p = np.array([2 * p, 0.0, 0.0])
    e_parent = np.sqrt(4 * p**2 + mass_parent**2)
    beta = gamma_p[0] / e_parent
    gamma = e_parent / mass_parent
    tracks = []
    for s in (1, -1):
        # daughter at 90 deg in the rest frame, boosted along x
        px = gamma * beta * e
        py = s * pstar
        tracks.append((px, py))
    cand = []
    for (px, py), q in zip(tracks, charges, strict=True):
        pt = float(np.hypot(px, py))
        cand.append(
            {
                "pt": pt,
                "eta": 0.0,
                "phi": float(np.arctan2(py, px)),
                "charge": q,
                "isTrack": True,
                "vertexId": 7,
                "genVx": 1.0,
                "genVy": 0.0,
                "genVz": 0.0,
                "d0": 0.0,
                "d0Err": 0.002,
                "dz": 0.0,
            }
        )
    return ak.Array([cand] * 200)


def test_k0s_veto():
    always = dataclasses.replace(MC_RESPONSE, sv_eff_plateau=1.0, sv_eff_ntrack_scale=1e-3)
    k0s = find_secondary_vertices(_two_track_event(K0S_MASS), always, np.random.default_rng(0))
    assert ak.sum(ak.num(k0s)) == 0
    # same topology at another mass survives
    other = find_secondary_vertices(_two_track_event(1.2), always, np.random.default_rng(0))
    assert ak.sum(ak.num(other)) > 150
    np.testing.assert_allclose(ak.flatten(other.mass).to_numpy(), 1.2, rtol=1e-3)
    # same-sign pairs at the K0S mass are not vetoed
    same_sign = find_secondary_vertices(
        _two_track_event(K0S_MASS, (1, 1)), always, np.random.default_rng(0)
    )
    assert ak.sum(ak.num(same_sign)) > 150


def test_k0s_vertices_vetoed_in_events(zbb):
    particles, pfcands = zbb
    sv = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(1))
    sv = sv[sv.vertexId >= 0]
    parent = ak.flatten(particles[sv.vertexId].pdgId).to_numpy()
    two_opp = ak.flatten(sv.ntracks == 2).to_numpy()
    assert not np.any((parent == 310) & two_opp)


def test_prompt_tracks_make_no_vertex():
    event = _two_track_event(1.5)
    event = ak.with_field(event, -1, "vertexId")
    sv = find_secondary_vertices(event, MC_RESPONSE, np.random.default_rng(0))
    assert ak.sum(ak.num(sv)) == 0


def test_efficiency_and_data_response(zbb):
    _, pfcands = zbb
    n_mc = ak.sum(ak.num(find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(3))))
    n_data = ak.sum(
        ak.num(find_secondary_vertices(pfcands, DATA_RESPONSE, np.random.default_rng(3)))
    )
    assert n_data < n_mc
    none = dataclasses.replace(MC_RESPONSE, sv_eff_plateau=0.0, sv_fake_rate=0.0)
    assert ak.sum(ak.num(find_secondary_vertices(pfcands, none, np.random.default_rng(3)))) == 0


def test_fake_vertices_from_prompt_tracks(zbb):
    _, pfcands = zbb
    no_fakes = dataclasses.replace(MC_RESPONSE, sv_fake_rate=0.0)
    sv0 = find_secondary_vertices(pfcands, no_fakes, np.random.default_rng(4))
    sv1 = find_secondary_vertices(pfcands, MC_RESPONSE, np.random.default_rng(4))
    assert ak.sum(sv0.vertexId < 0) == 0
    n_fake = ak.sum(sv1.vertexId < 0)
    assert 0 < n_fake < 0.2 * ak.sum(ak.num(sv1))
    fakes = ak.flatten(sv1[sv1.vertexId < 0])
    assert np.all(fakes.ntracks.to_numpy() == 2)
    assert np.all(fakes.dxy.to_numpy() < MC_RESPONSE.sv_fake_max_radius)
