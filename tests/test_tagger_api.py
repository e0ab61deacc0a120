"""Tagger API: edge cases, jet-level models, pickling and sessions, validation at load,
preprocess.json and the feature registry, and `jettag tag`."""

from __future__ import annotations

import json
import pickle
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

from _tagger_reference import PFNANO, masked_sum_setup, read_branches, reference_scores

pytest.importorskip("onnx")

from _models import masked_sum_model, mlp_model
from _padding import layout_rows
from jettag.errors import MissingInputsError
from jettag.tagger import (
    FEATURES,
    ModelValidationError,
    PreprocessConfig,
    PreprocessError,
    Tagger,
    UnknownFeatureError,
    get_feature,
    kernels,
    register_feature,
    session_stats,
)


# --------------------------------------------------------------------------- a tiny PFNano file
def _tiny_events() -> dict:
    """5 events: normal; no fat jets; a jet without constituents; link rows out of jet order
    (and an invalid SV index); 6 constituents for a 4-slot model (truncation)."""
    rng = np.random.default_rng(3)
    n_jets = [2, 0, 2, 2, 1]
    # (jetIdx, pFCandsIdx) rows per event
    pf_links = [
        [(0, 0), (0, 1), (1, 2)],
        [],
        [(1, 0), (1, 1)],  # jet 0 has no constituents
        [(1, 2), (0, 0), (1, 1), (0, 3)],  # interleaved
        [(0, i) for i in range(6)],
    ]
    sv_links = [[(0, 0)], [], [(1, 0)], [(0, 1), (1, -1)], [(0, 0), (0, 1)]]
    n_pf = [3, 1, 2, 4, 6]
    n_sv = [1, 0, 1, 2, 2]

    def jag(counts, make):
        return ak.unflatten(make(int(sum(counts))), counts)

    def f32(n, lo=-1.0, hi=1.0):
        return rng.uniform(lo, hi, n).astype(np.float32)

    fatjet = ak.zip(
        {
            "pt": jag(n_jets, lambda n: f32(n, 200, 800)),
            "eta": jag(n_jets, lambda n: f32(n, -2.4, 2.4)),
            "phi": jag(n_jets, lambda n: f32(n, -3.1, 3.1)),
            "mass": jag(n_jets, lambda n: f32(n, 20, 200)),
            "msoftdrop": jag(n_jets, lambda n: f32(n, 10, 150)),
        }
    )
    pf = ak.zip(
        {
            "pt": jag(n_pf, lambda n: f32(n, 1, 100)),
            "eta": jag(n_pf, lambda n: f32(n, -2.5, 2.5)),
            "phi": jag(n_pf, lambda n: f32(n, -3.1, 3.1)),
            "mass": jag(n_pf, lambda n: f32(n, 0, 0.2)),
            "d0": jag(n_pf, lambda n: f32(n, -0.1, 0.1)),
            "d0Err": jag(n_pf, lambda n: f32(n, 0, 0.01)),
            "dz": jag(n_pf, lambda n: f32(n, -0.1, 0.1)),
            "dzErr": jag(n_pf, lambda n: f32(n, 0, 0.01)),
            "trkChi2": jag(
                n_pf, lambda n: np.where(rng.random(n) < 0.3, -1, f32(n, 0, 5)).astype(np.float32)
            ),
            "puppiWeight": jag(n_pf, lambda n: f32(n, 0, 1)),
            "charge": jag(n_pf, lambda n: rng.integers(-1, 2, n).astype(np.int32)),
            "pdgId": jag(
                n_pf, lambda n: rng.choice([11, -13, 22, 211, -211, 130], n).astype(np.int32)
            ),
            "lostInnerHits": jag(n_pf, lambda n: rng.integers(-1, 2, n).astype(np.int32)),
            "pvAssocQuality": jag(n_pf, lambda n: rng.integers(0, 8, n).astype(np.int32)),
            "trkQuality": jag(n_pf, lambda n: rng.integers(0, 5, n).astype(np.int32)),
        }
    )
    npfl = [len(x) for x in pf_links]
    fjpf = ak.zip(
        {
            "jetIdx": ak.Array([[a for a, _ in x] for x in pf_links], with_name=None),
            "pFCandsIdx": ak.Array([[b for _, b in x] for x in pf_links]),
            **{
                f"btag{k}": jag(npfl, lambda n: f32(n))
                for k in ("EtaRel", "PtRatio", "PParRatio", "Sip3dVal", "Sip3dSig", "JetDistVal")
            },
        }
    )
    nsvl = [len(x) for x in sv_links]
    sv = ak.zip(
        {
            k: jag(n_sv, lambda n: f32(n, 0.5, 3))
            for k in ("pt", "eta", "phi", "mass", "x", "y", "z")
        }
    )
    fjsv = ak.zip(
        {
            "jetIdx": ak.Array([[a for a, _ in x] for x in sv_links]),
            "sVIdx": ak.Array([[b for _, b in x] for x in sv_links]),
            **{
                k: jag(nsvl, lambda n: f32(n, 0.1, 5))
                for k in (
                    "pt",
                    "mass",
                    "ntracks",
                    "normchi2",
                    "dxy",
                    "dxysig",
                    "d3d",
                    "d3dsig",
                    "costhetasvpv",
                )
            },
        }
    )
    for arr in (fjpf, fjsv):
        for k in ("jetIdx", "pFCandsIdx", "sVIdx"):
            if k in arr.fields:
                arr[k] = ak.values_astype(arr[k], np.int32)
    ids = {
        "run": ak.Array(np.ones(5, np.uint32)),
        "luminosityBlock": ak.Array(np.ones(5, np.uint32)),
        "event": ak.Array(np.arange(1, 6, dtype=np.uint64)),
    }
    return {
        **ids,
        "FatJet": fatjet,
        "PFCands": pf,
        "FatJetPFCands": fjpf,
        "SV": sv,
        "FatJetSVs": fjsv,
    }


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.root"
    _write(path, _tiny_events())
    return path


def _write(path, data):
    """NanoAOD-style tree: ``nX`` counters and ``X_field`` branches."""
    with uproot.recreate(path) as f:
        tree = f.mktree(
            "Events",
            {k: v.type for k, v in data.items()},
            counter_name=lambda c: "n" + c,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        tree.extend(data)


@pytest.fixture(scope="module")
def short_model():
    pp, weights, masks = masked_sum_setup(n_pf=4, n_sv=2, pad_sv=0.5)
    return Tagger(masked_sum_model(pp, weights, masks), pp, name="msum"), pp, weights, masks


def test_edge_cases_against_numpy(tiny_file, short_model):
    tagger, pp, weights, masks = short_model
    arrays = uproot.open(tiny_file)["Events"].arrays(library="ak")
    got = tagger.score_branches(arrays)
    assert ak.to_list(ak.num(got)) == [2, 0, 2, 2, 1]
    ref = reference_scores(read_branches(tiny_file, list(tagger.branches)), pp, weights, masks)
    for e, ev in enumerate(ref):
        for j, r in enumerate(ev):
            np.testing.assert_allclose(
                [got[e][j][c] for c in tagger.class_names], r, rtol=2e-5, atol=1e-4
            )
    x = tagger.score_branches(arrays[1:2])  # an event without fat jets only
    assert ak.to_list(ak.num(x)) == [0]
    assert len(tagger.score_branches(arrays[0:0])) == 0


def test_edge_cases_in_coffea_modes(tiny_file, short_model):
    import warnings

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    tagger, *_ = short_model
    ref = ak.to_list(tagger.score_branches(uproot.open(tiny_file)["Events"].arrays(library="ak")))
    for mode in ("eager", "virtual", "dask"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = NanoEventsFactory.from_root(
                {str(tiny_file): "Events"}, schemaclass=PFNanoAODSchema, mode=mode
            ).events()
        out = tagger(ev)
        assert ak.to_list(out.compute() if mode == "dask" else out) == ref, mode


def test_layout_rows_groups_and_truncates():
    jets = np.array([1, 0, 1, 1, 0, 1, 3])
    lay = layout_rows(jets, n_jets=4, length=2)
    assert list(lay.rows) == [1, 4, 0, 2, 6]
    assert list(lay.jet) == [0, 0, 1, 1, 3]
    assert list(lay.pos) == [0, 1, 0, 1, 0]
    assert list(lay.offsets) == [0, 2, 4, 4, 5]


def test_kernel_layout_matches_numpy_layout():
    """The fused kernels' link layout (counting sort) against padding.layout_rows."""
    rng = np.random.default_rng(11)
    n_events, length = 40, 3
    jet_counts = rng.integers(0, 4, n_events)
    link_counts = rng.integers(0, 9, n_events)
    target_counts = rng.integers(0, 6, n_events)
    jet_idx = np.concatenate(
        [rng.integers(-1, c + 1, n) for c, n in zip(jet_counts, link_counts, strict=True)]
    )
    tgt_idx = np.concatenate(
        [rng.integers(-1, c + 1, n) for c, n in zip(target_counts, link_counts, strict=True)]
    )
    off = lambda c: np.concatenate([[0], np.cumsum(c)]).astype(np.int64)  # noqa: E731
    jet_off, link_off, tgt_off = off(jet_counts), off(link_counts), off(target_counts)
    kept, link_rows, target_rows = kernels.link_layout(
        jet_off, link_off, tgt_off, jet_idx.astype(np.int32), tgt_idx.astype(np.int32), length
    )
    ev = np.repeat(np.arange(n_events), link_counts)
    valid = (jet_idx >= 0) & (jet_idx < jet_counts[ev]) & (tgt_idx >= 0)
    valid &= tgt_idx < target_counts[ev]
    rows = np.flatnonzero(valid)
    lay = layout_rows((jet_off[ev] + jet_idx)[rows], int(jet_off[-1]), length)
    assert list(kept) == list(lay.offsets)
    assert list(link_rows) == list(rows[lay.rows])
    assert list(target_rows) == list((tgt_off[ev] + tgt_idx)[rows[lay.rows]])


def test_builtin_kernels_match_feature_functions():
    """Every built-in feature's kernel opcode gives what its numpy definition gives; the
    numpy definitions run through jettag's path for user features (no opcode)."""
    events = ak.zip(_tiny_events(), depth_limit=1)
    available = {f"{c}.{f}" for c in events.fields for f in events[c].fields}
    info = {"median": 0.5, "norm_factor": 2.0, "lower_bound": -50, "upper_bound": 50}
    info |= {"replace_inf_value": 7.0, "pad": -3.0}
    blocks = {"pfcand": ("pf", 8), "sv": ("sv", 3), "jet": ("jet", None)}
    names = {lvl: [] for lvl in blocks}
    for name, f in FEATURES.items():
        if f.kernel is not None and set(f.columns) <= available:
            names[f.level].append(name)
    assert len(names["pfcand"]) > 30 and len(names["sv"]) > 15 and len(names["jet"]) >= 8
    copies = []
    try:
        for lvl in names:
            for name in names[lvl]:
                f = FEATURES[name]
                copies.append(f"numpy_{name}")
                g = register_feature(copies[-1], f.func, level=f.level, columns=f.columns)
                assert g.kernel is None
        for lvl, (tag, length) in blocks.items():
            pp = {"input_names": [], "output_names": ["probA"]}
            for kind, vars_ in (("k", names[lvl]), ("n", [f"numpy_{v}" for v in names[lvl]])):
                pp["input_names"].append(f"{tag}_{kind}")
                pp[f"{tag}_{kind}"] = {
                    "var_names": vars_,
                    "var_infos": {v: info for v in vars_},
                    "var_length": length,
                }
            weights = {n: np.ones((len(names[lvl]), 1), np.float32) for n in pp["input_names"]}
            x = Tagger(masked_sum_model(pp, weights), pp).inputs(events)
            np.testing.assert_allclose(
                x[f"{tag}_k"], x[f"{tag}_n"], rtol=2e-6, atol=2e-5, err_msg=lvl
            )
            assert np.isfinite(x[f"{tag}_k"]).all()
    finally:
        for name in copies:
            FEATURES.pop(name, None)


def test_batches_in_reused_buffers_equal_the_full_tensors(short_model):
    """Double-buffered batches (pads written only where a previous batch had more
    constituents) give exactly the tensors built in one go, for any batch size."""
    from jettag.tagger.chunks import _prepare

    tagger, *_ = short_model
    events = ak.zip(_tiny_events(), depth_limit=1)
    events = ak.concatenate([events, events[::-1], events[2:]])
    full = tagger.inputs(events)
    prepared = _prepare(tagger._plan, tagger._source(events).chunk(tagger._plan.keys))
    n = prepared.n_jets
    buffers: dict = {}
    for size in (3, 1, 4, n):
        for j0 in range(0, n, size):
            feed = prepared.batch(tagger._plan, j0, min(j0 + size, n), buffers)
            for name, tensor in feed.items():
                np.testing.assert_array_equal(tensor, full[name][j0 : j0 + size], err_msg=name)


# --------------------------------------------------------------------------- jet-level models
def _jet_level_preprocess(var_names):
    infos = {
        v: {"median": 1.0, "norm_factor": 0.5, "lower_bound": -5, "upper_bound": 5}
        for v in var_names
    }
    return {
        "input_names": ["jet_features"],
        "jet_features": {"var_names": list(var_names), "var_infos": infos, "var_length": None},
        "output_names": ["probSig", "probBkg"],
    }


def test_jet_level_model(tiny_file):
    import onnxruntime as ort

    names = ["fj_pt_log", "fj_eta", "fj_rho", "FatJet_mass"]
    pp = _jet_level_preprocess(names)
    model = mlp_model(len(names), 2)
    tagger = Tagger(model, pp, name="bdt")
    assert not tagger.needs_constituents
    assert set(tagger.branches) == {
        "nFatJet",
        "FatJet_pt",
        "FatJet_eta",
        "FatJet_msoftdrop",
        "FatJet_mass",
    }
    arrays = uproot.open(tiny_file)["Events"].arrays(library="ak")
    got = tagger.score_branches(arrays)
    assert got.fields == ["Sig", "Bkg"]
    pt, eta, msd, mass = (
        ak.to_numpy(ak.flatten(arrays[f"FatJet_{k}"])).astype(np.float64)
        for k in ("pt", "eta", "msoftdrop", "mass")
    )
    raw = np.stack([np.log(pt), eta, 2 * np.log(msd / pt), mass], axis=1).astype(np.float64)
    x = np.clip((raw - 1.0) * 0.5, -5, 5).astype(np.float32)
    expected = ort.InferenceSession(model).run(None, {"jet_features": x})[0]
    np.testing.assert_allclose(
        ak.to_numpy(ak.flatten(got.Sig)), expected[:, 0], rtol=1e-5, atol=1e-6
    )
    # a jet-level model accepts any (selected) jet collection
    sel = arrays[ak.num(arrays["FatJet_pt"]) > 0]
    assert len(tagger.score_branches(sel)) == 4


def test_jet_level_model_on_nanoevents_selected_jets():
    if not PFNANO.is_file():
        pytest.skip("../shared/data/pfnano.root is not present")
    import warnings

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    names = ["fj_pt", "fj_msoftdrop", "fj_tau21"]
    tagger = Tagger(mlp_model(3, 2), _jet_level_preprocess(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = NanoEventsFactory.from_root(
            {str(PFNANO): "Events"}, schemaclass=PFNanoAODSchema, mode="virtual"
        ).events()
    fj = ev.FatJet
    full = tagger(fj)
    sel = fj[fj.pt > 400]
    assert ak.to_list(tagger(sel)) == ak.to_list(full[fj.pt > 400])


# --------------------------------------------------------------------------- pickling, sessions
def test_pickles_and_reuses_session(short_model, tiny_file):
    import cloudpickle

    tagger, *_ = short_model
    arrays = uproot.open(tiny_file)["Events"].arrays(library="ak")
    first = ak.to_list(tagger.score_branches(arrays))
    before = session_stats()
    second = ak.to_list(tagger.score_branches(arrays))
    after = session_stats()
    assert second == first
    assert after["created"] == before["created"]  # the second call reused the session
    assert after["hits"] > before["hits"]
    for dumps in (pickle.dumps, cloudpickle.dumps):
        blob = dumps(tagger)
        assert b"InferenceSession" not in blob
        clone = pickle.loads(blob)
        assert ak.to_list(clone.score_branches(arrays)) == first
    assert session_stats()["created"] == after["created"]  # same process, same model: same session


def test_session_created_once_per_worker_process(short_model, tiny_file):
    import multiprocessing as mp

    tagger, *_ = short_model
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        created = pool.apply(_score_twice_in_worker, (pickle.dumps(tagger), str(tiny_file)))
    assert created == (1, 1)


def _score_twice_in_worker(blob, path):
    import pickle

    import uproot

    from jettag.tagger import session_stats

    tagger = pickle.loads(blob)
    arrays = uproot.open(path)["Events"].arrays(library="ak")
    tagger.score_branches(arrays)
    first = session_stats()["created"]
    tagger.score_branches(arrays)
    return first, session_stats()["created"]


def test_cuda_falls_back_with_warning(short_model):
    import onnxruntime as ort

    _, pp, weights, masks = short_model
    if "CUDAExecutionProvider" in ort.get_available_providers():
        t = Tagger(masked_sum_model(pp, weights, masks), pp, device="cuda")
        assert t._options.providers[0] == "CUDAExecutionProvider"
    else:
        with pytest.warns(RuntimeWarning, match="CUDA"):
            t = Tagger(masked_sum_model(pp, weights, masks), pp, device="cuda")
        assert t._options.providers == ("CPUExecutionProvider",)


def test_softmax_and_output_selection(tiny_file):
    pp, weights, masks = masked_sum_setup(n_pf=4, n_sv=2)
    raw = Tagger(masked_sum_model(pp, weights, masks), pp)
    soft = Tagger(masked_sum_model(pp, weights, masks), pp, softmax=True)
    arrays = uproot.open(tiny_file)["Events"].arrays(library="ak")
    r, s = raw.score_branches(arrays), soft.score_branches(arrays)
    rr = np.stack([ak.to_numpy(ak.flatten(r[c])) for c in raw.class_names], axis=1).astype(
        np.float64
    )
    ss = np.stack([ak.to_numpy(ak.flatten(s[c])) for c in raw.class_names], axis=1)
    e = np.exp(rr - rr.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ss, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)
    with pytest.raises(ModelValidationError, match="no output 'nope'"):
        Tagger(masked_sum_model(pp, weights, masks), pp, output="nope")


# --------------------------------------------------------------------------- validation at load
def _variant(pp, **changes):
    out = json.loads(json.dumps(pp))
    for k, v in changes.items():
        out[k] = v
    return out


def test_mismatching_inputs_are_named_at_load():
    pp, weights, masks = masked_sum_setup(n_pf=4, n_sv=2)
    model = masked_sum_model(pp, weights, masks)
    # name: preprocess.json lists an input the graph lacks
    renamed = _variant(pp, input_names=[*pp["input_names"][:-1], "sv_msk"], sv_msk=pp["sv_mask"])
    with pytest.raises(ModelValidationError, match="'sv_msk'"):
        Tagger(model, renamed)
    # rank: pf_features declared flat
    flat = _variant(pp, pf_features={**pp["pf_features"], "var_length": None})
    with pytest.raises((ModelValidationError, PreprocessError), match="pf_features"):
        Tagger(model, flat)
    # shape: one variable too many
    longer = json.loads(json.dumps(pp))
    longer["sv_features"]["var_names"].append("sv_deltaR")
    longer["sv_features"]["var_infos"]["sv_deltaR"] = {"median": 0, "norm_factor": 1}
    with pytest.raises(ModelValidationError, match=r"'sv_features'.*axis 1"):
        Tagger(model, longer)
    # dtype: a double input
    import onnx
    from onnx import TensorProto

    m = onnx.load_from_string(model)
    for node in m.graph.node:
        node.input[:] = ["pf_mask_f" if x == "pf_mask" else x for x in node.input]
    m.graph.node.insert(
        0, onnx.helper.make_node("Cast", ["pf_mask"], ["pf_mask_f"], to=TensorProto.FLOAT)
    )
    for i in m.graph.input:
        if i.name == "pf_mask":
            i.type.tensor_type.elem_type = TensorProto.DOUBLE
    with pytest.raises(ModelValidationError, match=r"'pf_mask'.*tensor\(double\)"):
        Tagger(m.SerializeToString(), pp)
    # rank in the graph
    flat_pts = _variant(pp, sv_points={**pp["sv_points"], "var_length": None})
    with pytest.raises(ModelValidationError, match=r"'sv_points'.*rank 2"):
        Tagger(masked_sum_model(flat_pts, weights, masks), pp)


def test_preprocess_validation(tmp_path):
    pp, *_ = masked_sum_setup(n_pf=4, n_sv=2)
    cfg = PreprocessConfig.from_dict(pp)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.class_names == ("Xbb", "Xcc", "Xqq", "QCD")
    with pytest.raises(PreprocessError, match="pf_mask"):
        PreprocessConfig.from_dict({k: v for k, v in pp.items() if k != "pf_mask"})
    bad = json.loads(json.dumps(pp))
    bad["pf_features"]["var_infos"]["pfcand_dz"]["lower_bound"] = 9
    with pytest.raises(PreprocessError, match="pfcand_dz"):
        PreprocessConfig.from_dict(bad)
    with pytest.raises(PreprocessError, match="output_names"):
        PreprocessConfig.from_dict({k: v for k, v in pp.items() if k != "output_names"})
    p = tmp_path / "preprocess.json"
    p.write_text("{not json")
    with pytest.raises(PreprocessError, match="not valid JSON"):
        Tagger(b"", p)


def test_unknown_feature_lists_known_ones():
    pp, weights, masks = masked_sum_setup(n_pf=4, n_sv=2)
    bad = json.loads(json.dumps(pp))
    bad["pf_features"]["var_names"][0] = "pfcand_pt_lg_nopuppi"
    bad["pf_features"]["var_infos"]["pfcand_pt_lg_nopuppi"] = {"median": 0, "norm_factor": 1}
    with pytest.raises(UnknownFeatureError) as err:
        Tagger(masked_sum_model(pp, weights, masks), bad)
    text = str(err.value)
    assert "pfcand_pt_lg_nopuppi" in text and "Did you mean pfcand_pt_log_nopuppi" in text
    assert "sv_d3dsig" in text and "register_feature" in text


def test_register_feature_one_liner():
    f = register_feature(
        "pfcand_ptrel_test", lambda c: c["PFCands.pt"] / c["FatJet.pt"], overwrite=True
    )
    try:
        assert f.level == "pfcand" and set(f.columns) == {"PFCands.pt", "FatJet.pt"}
        assert get_feature("pfcand_ptrel_test") is f
        with pytest.raises(ValueError, match="already registered"):
            register_feature("pfcand_ptrel_test", lambda c: c["PFCands.pt"])
        with pytest.raises(ValueError, match="unknown collection"):
            register_feature("bad_test", lambda c: c["Muon.pt"])
    finally:
        FEATURES.pop("pfcand_ptrel_test", None)
    raw = get_feature("FatJetSVs_enration")
    assert raw.level == "sv" and raw.columns == ("FatJetSVs.enration",)
    for name, feature in FEATURES.items():
        assert feature.doc, name


# --------------------------------------------------------------------------- jettag tag
def test_cli_tag_writes_aligned_friend(tmp_path, tiny_file, short_model):
    from jettag.cli import main

    tagger, pp, weights, masks = short_model
    d = tmp_path / "pnetlite"
    d.mkdir()
    (d / "model.onnx").write_bytes(masked_sum_model(pp, weights, masks))
    (d / "preprocess.json").write_text(json.dumps(pp))
    out = tmp_path / "friend.root"
    files = [tiny_file, tiny_file]
    if PFNANO.is_file():
        files.append(PFNANO)
    rc = main(["tag", "--model", str(d), "--out", str(out), "--no-progress", *map(str, files)])
    assert rc == 0
    friend = uproot.open(out)["Events"]
    assert friend.keys() == [
        "run",
        "luminosityBlock",
        "event",
        "nFatJet",
        *(f"FatJet_pnetlite_{c}" for c in tagger.class_names),
    ]
    got = friend.arrays(library="ak")
    expected = [
        tagger.score_branches(uproot.open(f)["Events"].arrays(tagger.branches)) for f in files
    ]
    counts = np.concatenate(
        [uproot.open(f)["Events"]["nFatJet"].array(library="np") for f in files]
    )
    assert np.array_equal(ak.to_numpy(got["nFatJet"]), counts)
    assert ak.to_list(got["FatJet_pnetlite_Xbb"]) == ak.to_list(
        ak.concatenate([e.Xbb for e in expected])
    )


def test_cli_tag_one_line_errors(tmp_path, tiny_file, short_model, capsys):
    from jettag.cli import main

    _, pp, weights, masks = short_model
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.onnx").write_bytes(masked_sum_model(pp, weights, masks))
    (d / "preprocess.json").write_text(json.dumps(pp))
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not a root file")
    out = tmp_path / "f.root"
    assert (
        main(
            [
                "tag",
                "--model",
                str(d),
                "--out",
                str(out),
                "--no-progress",
                str(tiny_file),
                str(junk),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "junk.root" in err and not out.exists()
    assert main(["tag", "--model", str(d), "--out", str(out), str(tmp_path / "missing.root")]) == 2
    assert "missing.root" in capsys.readouterr().err
    assert (
        main(["tag", "--model", str(tmp_path / "nomodel"), "--out", str(out), str(tiny_file)]) == 2
    )
    assert "nomodel" in capsys.readouterr().err
    nosv = tmp_path / "nosv.root"
    _write(nosv, {k: v for k, v in _tiny_events().items() if k not in ("SV", "FatJetSVs")})
    assert main(["tag", "--model", str(d), "--out", str(out), "--no-progress", str(nosv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MissingInputs" not in err
    assert "nosv.root" in err and "FatJetSVs, SV" in err and "PFNano" in err


# --------------------------------------------------------------------------- missing inputs
def _nanoevents(path, schema, mode):
    from coffea import nanoevents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nanoevents.NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=getattr(nanoevents, schema), mode=mode
        ).events()


@pytest.mark.parametrize("schema", ["NanoAODSchema", "PFNanoAODSchema"])
@pytest.mark.parametrize("mode", ["eager", "virtual", "dask"])
def test_plain_nanoaod_raises_missing_inputs(shared_data, schema, mode):
    """Standard NanoAOD has no FatJetPFCands: a clear error naming the tagger, what is
    missing and what provides it; under dask while the graph is built (nothing computed)."""
    from jettag import taggers

    events = _nanoevents(shared_data / "nano_dy.root", schema, mode)
    tagger = taggers.load("pnet-lite")
    with pytest.raises(MissingInputsError) as err:
        tagger(events)
    text = str(err.value)
    assert text.startswith("tagger pnet_lite cannot run")
    assert "collection(s) FatJetPFCands, PFCands, FatJetSVs" in text
    assert "PFNano" in text and "collections=" in text
    assert isinstance(err.value, KeyError) and not isinstance(
        err.value, ak.errors.FieldNotFoundError
    )
    if mode != "dask":
        with pytest.raises(MissingInputsError):
            tagger.inputs(events)


def test_no_shipped_tagger_runs_on_plain_nanoaod(shared_data):
    from jettag import taggers

    events = _nanoevents(shared_data / "nano_dy.root", "NanoAODSchema", "virtual")
    for name in taggers.available():
        with pytest.raises(MissingInputsError, match="FatJetPFCands"):
            taggers.load(name)(events)


def test_missing_track_fields_are_named(tmp_path, short_model):
    """NanoAOD v15-like: a ``PFCand`` table without track fields, mapped with collections=."""
    _, pp, weights, masks = short_model
    track = (
        "d0",
        "d0Err",
        "dz",
        "dzErr",
        "trkChi2",
        "lostInnerHits",
        "pvAssocQuality",
        "trkQuality",
    )
    data = _tiny_events()
    pf = data.pop("PFCands")
    data["PFCand"] = ak.zip({k: pf[k] for k in ("pt", "eta", "phi", "mass", "charge", "pdgId")})
    path = tmp_path / "v15.root"
    _write(path, data)
    tagger = Tagger(
        masked_sum_model(pp, weights, masks), pp, name="msum", collections={"PFCands": "PFCand"}
    )
    for events in (
        ak.zip(data, depth_limit=1),
        _nanoevents(path, "NanoAODSchema", "virtual"),
        _nanoevents(path, "PFNanoAODSchema", "dask"),
    ):
        with pytest.raises(MissingInputsError) as err:
            tagger(events)
        text = str(err.value)
        assert "tagger msum" in text and "FatJetPFCands" not in text.split(".")[0]
        missing = text.split("field(s) ")[1].split(" it reads")[0].split(", ")
        assert {m.split(".")[1] for m in missing} <= set(track) and "PFCand.d0" in missing
        assert "PFNano" in text and "{'PFCands': 'PFCand'}" in text
    # the same file through jettag tag: the branches are named
    from jettag.tagger.friend import tag_files

    with pytest.raises(
        MissingInputsError,
        match=r"v15\.root: tagger msum .* file.s events lack the branch\(es\) .*PFCand_d0,",
    ):
        tag_files(tagger, [path], tmp_path / "f.root", progress=False)


def test_missing_jet_fields_of_a_jet_level_model(tiny_file):
    names = ["fj_pt_log", "FatJet_n2b1"]
    tagger = Tagger(mlp_model(2, 2), _jet_level_preprocess(names), name="hl")
    events = _nanoevents(tiny_file, "NanoAODSchema", "virtual")
    for obj in (events, events.FatJet, events.FatJet[events.FatJet.pt > 300]):
        with pytest.raises(
            MissingInputsError, match=r"tagger hl .*field\(s\) FatJet\.n2b1 .*FatJet fields"
        ):
            tagger(obj)
