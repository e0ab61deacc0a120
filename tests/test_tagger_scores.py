"""jettag's tagger against an independent per-jet numpy computation, on the real
PFNano file and on a generated one; eager, virtual and dask modes; chunking."""

from __future__ import annotations

import json
import warnings

import awkward as ak
import numpy as np
import pytest
from _tagger_reference import PFNANO, masked_sum_setup, read_branches, reference_scores

pytest.importorskip("onnx")

from jettag.tagger import Tagger  # noqa: E402
from jettag.tagger.testing import masked_sum_model  # noqa: E402

warnings.filterwarnings("ignore", message="Missing cross-reference index")
warnings.filterwarnings("ignore", message="Branch .* already exists")


def _events(path, mode, **kw):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode=mode, **kw
        ).events()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pp, weights, masks = masked_sum_setup()
    d = tmp_path_factory.mktemp("models") / "msum"
    d.mkdir()
    (d / "model.onnx").write_bytes(masked_sum_model(pp, weights, masks))
    (d / "preprocess.json").write_text(json.dumps(pp))
    return d, pp, weights, masks


@pytest.fixture(scope="module")
def pfnano():
    if not PFNANO.is_file():
        pytest.skip("../shared/data/pfnano.root is not present")
    return PFNANO


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    gen = pytest.importorskip("jettag.generate")
    path = tmp_path_factory.mktemp("gen") / "zbb.root"
    try:
        gen.generate(process="zbb", n_events=25, seed=5, out=path, progress=False)
    except Exception as err:  # the generator is developed alongside; do not fail the tagger on it
        pytest.skip(f"jettag.generate could not produce a sample: {err}")
    return path


def _check_against_reference(tagger, path, pp, weights, masks):
    branches = sorted(set(tagger.branches) | {"nFatJet"})
    extra = [b for b in ("FatJet_pt", "FatJet_eta", "FatJet_phi") if b not in branches]
    arrays = read_branches(path, branches + extra)
    expected = reference_scores(arrays, pp, weights, masks)
    got = tagger(_events(path, "eager"))
    n_checked = 0
    for e, ev in enumerate(expected):
        assert len(got[e]) == len(ev)
        for j, ref in enumerate(ev):
            values = np.array([got[e][j][c] for c in tagger.class_names], dtype=np.float64)
            # float32 precision on a sum of O(1000) normalised terms of magnitude <= 5
            np.testing.assert_allclose(values, ref, rtol=2e-5, atol=2e-3)
            n_checked += 1
    return n_checked


def test_masked_sum_matches_numpy_on_pfnano(model_dir, pfnano):
    d, pp, weights, masks = model_dir
    tagger = Tagger.load(d)
    assert tagger.class_names == ("Xbb", "Xcc", "Xqq", "QCD")
    n = _check_against_reference(tagger, pfnano, pp, weights, masks)
    assert n == 24  # every fat jet of the 10 events


def test_masked_sum_matches_numpy_on_generated(model_dir, generated):
    d, pp, weights, masks = model_dir
    n = _check_against_reference(Tagger.load(d), generated, pp, weights, masks)
    assert n > 0


def test_truncation_and_pad_against_numpy(tmp_path, pfnano):
    """Short blocks (8 PF slots, 2 SV slots): truncation to the first stored constituents."""
    pp, weights, masks = masked_sum_setup(n_pf=8, n_sv=2, pad_sv=-0.5)
    tagger = Tagger(masked_sum_model(pp, weights, masks), pp)
    _check_against_reference(tagger, pfnano, pp, weights, masks)


def test_modes_and_chunks_identical(model_dir, pfnano):
    import dask_awkward as dak

    d, *_ = model_dir
    tagger = Tagger.load(d)
    eager = tagger(_events(pfnano, "eager"))
    virtual = tagger(_events(pfnano, "virtual"))
    dask_scores = tagger(_events(pfnano, "dask"))
    assert isinstance(dask_scores, dak.Array)
    assert ak.to_list(virtual) == ak.to_list(eager)
    assert ak.to_list(dask_scores.compute()) == ak.to_list(eager)
    # dask with several partitions
    dask3 = tagger(_events(pfnano, "dask", steps_per_file=3)).compute()
    assert ak.to_list(dask3) == ak.to_list(eager)
    # eager chunks of various sizes, including an empty one
    for bounds in ([0, 3, 7, 10], [0, 1, 2, 5, 5, 10], [0, 10]):
        parts = [
            tagger(_events(pfnano, "eager", entry_start=a, entry_stop=b)) if b > a else None
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        joined = ak.concatenate([p for p in parts if p is not None])
        assert ak.to_list(joined) == ak.to_list(eager)
    # batch size does not matter
    small = Tagger.load(d, batch_size=5)(_events(pfnano, "eager"))
    assert ak.to_list(small) == ak.to_list(eager)
    # slicing events (including to nothing) keeps alignment
    ev = _events(pfnano, "eager")
    assert ak.to_list(tagger(ev[3:7])) == ak.to_list(eager[3:7])
    empty = tagger(ev[5:5])
    assert len(empty) == 0 and empty.fields == list(tagger.class_names)


def test_dask_reads_only_needed_columns(model_dir, pfnano):
    import dask_awkward as dak

    d, *_ = model_dir
    tagger = Tagger.load(d)
    scores = tagger(_events(pfnano, "dask"))
    (columns,) = dak.necessary_columns(scores).values()
    assert set(tagger.branches) <= set(columns) | {"nFatJet"}
    # nothing beyond the model's branches and the counters of the collections read
    counters = {"nFatJet", "nFatJetPFCands", "nFatJetSVs", "nPFCands", "nSV"}
    assert set(columns) <= set(tagger.branches) | counters
    assert "FatJet_msoftdrop" not in columns and "PFCands_puppiWeight" not in columns
    # attaching as a field keeps working lazily
    fatjets = ak.with_field(_events(pfnano, "dask").FatJet, scores.Xbb, "jettag_Xbb")
    assert ak.to_list(fatjets.jettag_Xbb.compute()) == ak.to_list(tagger(_events(pfnano, "eager")).Xbb)


def test_fatjet_collection_input(model_dir, pfnano):
    d, *_ = model_dir
    tagger = Tagger.load(d)
    ev = _events(pfnano, "eager")
    assert ak.to_list(tagger(ev.FatJet)) == ak.to_list(tagger(ev))
    with pytest.raises(ValueError, match="selection"):
        tagger(ev.FatJet[ev.FatJet.pt > 400])


def test_inputs_layout(model_dir, pfnano):
    d, pp, *_ = model_dir
    tagger = Tagger.load(d)
    x = tagger.inputs(_events(pfnano, "eager"))
    assert x["pf_features"].shape == (24, 25, 100) and x["pf_features"].dtype == np.float32
    assert x["sv_mask"].shape == (24, 1, 7)
    n_pf = read_branches(pfnano, ["FatJetPFCands_jetIdx"])["FatJetPFCands_jetIdx"]
    counts = [int(np.sum(idx == j)) for idx in n_pf for j in range(int(idx.max()) + 1 if len(idx) else 0)]
    assert list(x["pf_mask"][:, 0].sum(axis=1).astype(int)) == [min(c, 100) for c in counts]
