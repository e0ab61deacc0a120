"""Tests of the PFNano jet tables, against synthetic inputs and the real CMS pfnano.root."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from jettag.generator.jet_tables import (
    jet_constituent_table,
    jet_sv_table,
    track_features,
    written_pfcands_index,
)

PFNANO = Path(__file__).parents[2] / "shared" / "data" / "pfnano.root"


def _pfcands(rows):
    keys = ("pt", "eta", "phi", "mass", "charge", "pdgId", "d0", "d0Err", "dz", "dzErr")
    return ak.Array(
        [[dict(zip(keys, r, strict=True)) for r in event] for event in rows],
    )


def test_constituent_table_layout_and_neutral_zeros():
    pf = _pfcands(
        [
            [
                (50.0, 0.1, 0.2, 0.0, 0, 22, 0.0, 0.0, 0.0, 0.0),
                (80.0, 0.0, 0.0, 0.14, 1, 211, 0.01, 0.001, 0.02, 0.002),
                (30.0, 1.5, 2.0, 0.14, -1, -211, -0.02, 0.002, 0.01, 0.002),
            ],
            [],
        ]
    )
    fatjets = ak.Array([[{"eta": 0.05, "phi": 0.1}, {"eta": 1.5, "phi": 2.0}], []])
    constituents = ak.Array([[[1, 0], [2]], []])
    table, sel = jet_constituent_table(fatjets, pf, constituents)
    assert sel.tolist() == [[1, 0, 2], []]
    assert table.pFCandsIdx.tolist() == [[0, 1, 2], []]
    assert table.jetIdx.tolist() == [[0, 0, 1], []]
    assert table.pt.tolist() == [[80.0, 50.0, 30.0], []]
    for f in ("btagEtaRel", "btagSip3dVal", "btagJetDistVal", "btagPtRatio"):
        assert table[f][0][1] == 0.0  # the photon
    assert table.btagPParRatio[0][0] > 0.99
    assert table.btagJetDistVal[0][0] <= 0.0
    assert written_pfcands_index(constituents).tolist() == sel.tolist()


def test_sip3d_sign_and_value():
    # track displaced along the jet direction in the transverse plane: positive IP
    jet_eta, jet_phi = np.array([0.0, 0.0]), np.array([0.0, 0.0])
    # phi = 0.1: d0 > 0 puts the PCA at (-d0 sin phi, d0 cos phi), on the +y side
    phi = np.array([0.1, 0.1])
    d0 = np.array([-0.05, 0.05])  # PCA at ~(+0.005, -0.05) and (-0.005, +0.05)
    f = track_features(
        jet_eta,
        jet_phi,
        np.array([10.0, 10.0]),
        np.array([0.0, 0.0]),
        phi,
        np.array([1, 1]),
        d0,
        np.array([0.01, 0.01]),
        np.array([0.0, 0.0]),
        np.array([0.01, 0.01]),
    )
    assert f["btagSip3dVal"][0] > 0 > f["btagSip3dVal"][1]
    np.testing.assert_allclose(np.abs(f["btagSip3dVal"]), 0.05, rtol=1e-6)
    np.testing.assert_allclose(np.abs(f["btagSip3dSig"]), 5.0, rtol=1e-5)


def test_sv_table_selects_by_delta_r():
    fatjets = ak.Array([[{"pt": 400.0, "eta": 0.0, "phi": 0.0, "mass": 80.0}], []])
    sv = {
        "mass": 2.0, "ntracks": 3, "chi2": 1.5, "ndof": 2.0, "dxy": 0.3, "dxySig": 10.0,
        "dlen": 0.4, "dlenSig": 12.0, "pAngle": 0.01,
    }  # fmt: skip
    svs = ak.Array(
        [
            [
                {**sv, "pt": 40.0, "eta": 0.1, "phi": 0.1, "x": 0.3, "y": 0.03, "z": 0.03},
                {**sv, "pt": 40.0, "eta": 2.0, "phi": 2.0, "x": 0.0, "y": 0.3, "z": 0.3},
                {**sv, "pt": 20.0, "eta": -0.5, "phi": 0.0, "x": 0.3, "y": 0.0, "z": -0.15},
            ],
            [{**sv, "pt": 40.0, "eta": 0.0, "phi": 0.0, "x": 0.3, "y": 0.0, "z": 0.0}],
        ]
    )
    t = jet_sv_table(fatjets, svs)
    assert t.sVIdx.tolist() == [[0, 2], []]
    assert t.jetIdx.tolist() == [[0, 0], []]
    np.testing.assert_allclose(t.ptrel[0], [0.1, 0.05], rtol=1e-6)
    np.testing.assert_allclose(t.chi2[0], [3.0, 3.0])
    np.testing.assert_allclose(t.normchi2[0], [1.5, 1.5])
    np.testing.assert_allclose(t.deltaR[0], [np.hypot(0.1, 0.1) - 0.5, 0.0], rtol=1e-6)
    assert np.all(np.asarray(t.costhetasvpv[0]) > 0.99)


def test_sv_table_empty():
    fatjets = ak.Array([[], []])
    svs = ak.Array([[], []])
    fatjets = ak.zip(
        {k: ak.values_astype(fatjets, np.float32) for k in ("pt", "eta", "phi", "mass")}
    )
    svs = ak.zip(
        {
            k: ak.values_astype(svs, np.float32)
            for k in (
                *("pt", "eta", "phi", "mass", "x", "y", "z", "ntracks", "chi2", "ndof"),
                *("dxy", "dxySig", "dlen", "dlenSig"),
            )
        }
    )
    t = jet_sv_table(fatjets, svs)
    assert ak.num(t).tolist() == [0, 0]


# ------------------------------------------------------------------ real CMS file


@pytest.fixture(scope="module")
def cms():
    if not PFNANO.exists():
        pytest.skip("../shared/data/pfnano.root not available")
    uproot = pytest.importorskip("uproot")
    ev = uproot.open(PFNANO)["Events"].arrays(
        filter_name=["PFCands_*", "FatJetPFCands_*", "FatJet_*", "SV_*", "FatJetSVs_*", "PV_*"]
    )

    def col(prefix):
        return ak.zip(
            {k[len(prefix) + 1 :]: ev[k] for k in ev.fields if k.startswith(prefix + "_")}
        )

    return {p: col(p) for p in ("PFCands", "FatJetPFCands", "FatJet", "SV", "FatJetSVs", "PV")}


def _f(a, dtype=np.float64):
    return np.asarray(ak.to_numpy(ak.flatten(a)), dtype=dtype)


def test_track_features_match_cms(cms):
    fpc = cms["FatJetPFCands"]
    c = cms["PFCands"][fpc.pFCandsIdx]
    j = cms["FatJet"][fpc.jetIdx]
    feat = track_features(
        _f(j.eta), _f(j.phi), _f(c.pt), _f(c.eta), _f(c.phi), _f(c.charge, np.int64),
        _f(c.d0), _f(c.d0Err), _f(c.dz), _f(c.dzErr),
    )  # fmt: skip
    charged = _f(c.charge) != 0
    # neutral candidates: CMS writes 0 for all track features, so do we
    for k, v in feat.items():
        assert np.all(v[~charged] == 0.0), k
        assert np.all(_f(fpc[k])[~charged] == 0.0), k
    # charged candidates with CMS track details (CMS writes 0 for the others)
    sel = charged & (_f(fpc.btagEtaRel) != 0)
    assert sel.sum() > 500
    tolerance = {  # median and 90% quantile of |ours - CMS| / |CMS|
        "btagEtaRel": (0.002, 0.01),
        "btagPtRatio": (0.005, 0.02),
        "btagPParRatio": (0.002, 0.01),
        "btagSip3dVal": (0.005, 0.02),
        "btagJetDistVal": (0.01, 0.1),
        "btagSip3dSig": (0.1, 0.5),  # CMS's error includes the PV fit and helix errors
    }
    for k, (med, q90) in tolerance.items():
        ref = _f(fpc[k])[sel]
        rel = np.abs(feat[k][sel] - ref) / np.maximum(np.abs(ref), 1e-6)
        assert np.median(rel) < med, (k, np.median(rel))
        assert np.quantile(rel, 0.9) < q90, (k, np.quantile(rel, 0.9))
        assert np.mean(np.sign(feat[k][sel]) == np.sign(ref)) > 0.99, k


def test_constituent_table_on_cms_pfcands(cms):
    fpc = cms["FatJetPFCands"]
    # CMS's own constituent lists, regrouped per jet, as jettag's `constituents` input
    jets = cms["FatJet"]
    counts = ak.flatten(ak.run_lengths(fpc.jetIdx))
    constituents = ak.unflatten(ak.unflatten(_f(fpc.pFCandsIdx, np.int64), counts), ak.num(jets))
    table, sel = jet_constituent_table(jets, cms["PFCands"], constituents)
    assert ak.all(sel == fpc.pFCandsIdx)
    assert ak.all(table.jetIdx == fpc.jetIdx)
    sel_charged = _f(cms["PFCands"].charge[sel]) != 0
    ok = sel_charged & (_f(fpc.btagEtaRel) != 0)
    np.testing.assert_allclose(_f(table.btagEtaRel)[ok], _f(fpc.btagEtaRel)[ok], rtol=0.01)


def test_sv_table_matches_cms(cms):
    pv = cms["PV"]
    ours = jet_sv_table(cms["FatJet"], cms["SV"], pv=pv)
    ref = cms["FatJetSVs"]
    ref = ref[ref.sVIdx >= 0]  # CMS also lists SVs that NanoAOD's SV table dropped
    key_o = _f(ours.jetIdx * 1000 + ours.sVIdx + 100000 * ak.local_index(ours.jetIdx, axis=0))
    key_r = _f(ref.jetIdx * 1000 + ref.sVIdx + 100000 * ak.local_index(ref.jetIdx, axis=0))
    assert set(key_r) <= set(key_o)
    io = {k: i for i, k in enumerate(key_o)}
    idx = np.array([io[k] for k in key_r])
    for field, rtol, atol in [
        ("mass", 1e-3, 0), ("pt", 1e-3, 0), ("ntracks", 0, 0), ("chi2", 0.01, 1e-4),
        ("normchi2", 0.01, 1e-4), ("dxy", 1e-3, 0), ("dxysig", 1e-3, 0), ("d3d", 1e-3, 0),
        ("d3dsig", 1e-3, 0), ("costhetasvpv", 2e-3, 0), ("phirel", 0, 0.005),
        ("ptrel", 0.01, 0), ("deltaR", 0, 0.01), ("enration", 0.01, 0),
    ]:  # fmt: skip
        np.testing.assert_allclose(
            _f(ours[field])[idx], _f(ref[field]), rtol=rtol, atol=atol, err_msg=field
        )
