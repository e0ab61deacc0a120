"""Friend trees (``jettag tag``, :func:`jettag.tagger.friend.tag_files`): branch names, event
ids, alignment, safe outputs (never over an input, never over a result unasked, nothing
half-written) and one-line errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings

import awkward as ak
import numpy as np
import pytest
import uproot

pytest.importorskip("onnx")

from _models import mlp_model
from jettag import taggers
from jettag.cli import main
from jettag.errors import InputFileError, MissingInputsError, OutputError
from jettag.outputs import partial_path
from jettag.tagger import Tagger
from jettag.tagger.friend import EVENT_ID_BRANCHES, friend_branches, tag_files

CLASSES = ("Xbb", "Xcc", "Xqq", "QCD")


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nanoevents(path, schema="NanoAODSchema", mode="eager"):
    from coffea import nanoevents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nanoevents.NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=getattr(nanoevents, schema), mode=mode
        ).events()


# --------------------------------------------------------------------------- small inputs
def _jets_file(path, n_events=6, seed=1, event0=100):
    """A NanoAOD-like file with event ids and FatJet kinematics only (jet-level models)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, n_events)
    n = int(counts.sum())

    def jag(values):
        return ak.unflatten(values.astype(np.float32), counts)

    data = {
        "run": np.full(n_events, 1, np.uint32),
        "luminosityBlock": np.full(n_events, 7, np.uint32),
        "event": np.arange(event0, event0 + n_events, dtype=np.uint64),
        "FatJet": ak.zip(
            {
                "pt": jag(rng.uniform(200, 900, n)),
                "eta": jag(rng.uniform(-2.5, 2.5, n)),
                "phi": jag(rng.uniform(-3, 3, n)),
                "mass": jag(rng.uniform(10, 200, n)),
                "msoftdrop": jag(rng.uniform(5, 200, n)),
            }
        ),
    }
    with uproot.recreate(path) as f:
        tree = f.mktree(
            "Events",
            {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in data.items()},
            counter_name=lambda c: "n" + c,
            field_name=lambda outer, inner: f"{outer}_{inner}",
        )
        tree.extend(data)
    return path


@pytest.fixture
def jet_model(tmp_path):
    """A user's jet-level model directory (no phase_space.json)."""
    names = ["fj_pt_log", "fj_eta", "fj_rho"]
    infos = {v: {"median": 0.0, "norm_factor": 1.0} for v in names}
    pp = {
        "input_names": ["jet_features"],
        "jet_features": {"var_names": names, "var_infos": infos, "var_length": None},
        "output_names": [f"prob{c}" for c in CLASSES],
    }
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "model.onnx").write_bytes(mlp_model(len(names), len(CLASSES)))
    (d / "preprocess.json").write_text(json.dumps(pp))
    return d


@pytest.fixture
def jets_file(tmp_path):
    return _jets_file(tmp_path / "jets.root")


@pytest.fixture(scope="module")
def pfnano_copy(tmp_path_factory, shared_data):
    path = tmp_path_factory.mktemp("pfnano") / "pfnano.root"
    shutil.copyfile(shared_data / "pfnano.root", path)
    path.chmod(0o644)
    return path


def _tag(*args):
    return main(["tag", "--no-progress", *map(str, args)])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("jettag tag: error: ") and err.count("\n") == 1, err
    return err


# --------------------------------------------------------------------------- branches and ids
def test_branch_names_as_written(jet_model, jets_file, tmp_path, capsys):
    """A tagger named my-model writes FatJet_my_model_<class>; pnet-lite FatJet_pnet_lite_<class>."""
    out = tmp_path / "friend.root"
    assert _tag("--model", jet_model, "--out", out, jets_file) == 0
    expected = [
        "run",
        "luminosityBlock",
        "event",
        "nFatJet",
        *(f"FatJet_my_model_{c}" for c in CLASSES),
    ]
    assert uproot.open(out)["Events"].keys() == expected
    assert ", ".join(expected) in capsys.readouterr().out
    assert friend_branches(taggers.load("pnet-lite")) == (
        "nFatJet",
        "FatJet_pnet_lite_Xbb",
        "FatJet_pnet_lite_Xcc",
        "FatJet_pnet_lite_Xqq",
        "FatJet_pnet_lite_QCD",
    )
    assert EVENT_ID_BRANCHES == ("run", "luminosityBlock", "event")


def test_friend_carries_event_ids_and_reads_with_nanoaodschema(jet_model, tmp_path):
    """Two input files in a row: run/luminosityBlock/event and the jets line up with them."""
    files = [_jets_file(tmp_path / "a.root", 5, 1, 10), _jets_file(tmp_path / "b.root", 4, 2, 50)]
    out = tmp_path / "friend.root"
    tagger = Tagger.load(jet_model)
    summary = tag_files(tagger, files, out, step_size=3, progress=False)
    assert summary.n_events == 9 and summary.branches[:3] == EVENT_ID_BRANCHES
    friend = uproot.open(out)["Events"]
    assert [friend[b].interpretation.to_dtype for b in EVENT_ID_BRANCHES] == [
        np.dtype(np.uint32),
        np.dtype(np.uint32),
        np.dtype(np.uint64),
    ]
    inputs = [uproot.open(f)["Events"].arrays(library="np") for f in files]
    for mode in ("eager", "dask"):
        ev = _nanoevents(out, "NanoAODSchema", mode)
        got = {b: ev[b].compute() if mode == "dask" else ev[b] for b in EVENT_ID_BRANCHES}
        for b in EVENT_ID_BRANCHES:
            assert ak.to_list(got[b]) == list(np.concatenate([i[b] for i in inputs])), (mode, b)
    # the scores, jet by jet, are those of tagger(events) on each input
    scores = ak.concatenate([tagger(_nanoevents(f, "NanoAODSchema")) for f in files])
    friend_arrays = friend.arrays(library="ak")
    for c in CLASSES:
        assert ak.to_list(friend_arrays[f"FatJet_my_model_{c}"]) == ak.to_list(scores[c])


def test_pfnano_friend_aligns_with_the_input(pfnano_copy, tmp_path):
    out = tmp_path / "friend.root"
    tag_files(taggers.load("pnet-lite"), [pfnano_copy], out, progress=False)
    events = _nanoevents(pfnano_copy, "PFNanoAODSchema")
    friend = _nanoevents(out, "NanoAODSchema")
    for b in EVENT_ID_BRANCHES:
        assert ak.to_list(friend[b]) == ak.to_list(events[b])
    # NanoAODSchema's FatJet wants kinematics the friend does not hold: the scores are read
    # as flat branches (uproot, or coffea's BaseSchema)
    flat = _nanoevents(out, "BaseSchema")
    assert ak.to_list(flat.nFatJet) == ak.to_list(ak.num(events.FatJet))
    assert ak.to_list(flat.FatJet_pnet_lite_Xbb) == ak.to_list(
        taggers.load("pnet-lite")(events).Xbb
    )


def test_ids_missing_from_an_input_are_left_out(jet_model, shared_data, tmp_path):
    """missing_luminosityBlock.root has run and event only: the friend copies what is there."""
    out = tmp_path / "friend.root"
    summary = tag_files(
        Tagger.load(jet_model), [shared_data / "missing_luminosityBlock.root"], out, progress=False
    )
    assert summary.branches[:3] == ("run", "event", "nFatJet")
    assert uproot.open(out)["Events"].keys()[:2] == ["run", "event"]


def test_empty_input_gives_an_empty_tree_with_every_branch(jet_model, shared_data, tmp_path):
    out = tmp_path / "friend.root"
    summary = tag_files(
        Tagger.load(jet_model), [shared_data / "nano_dy_empty.root"], out, progress=False
    )
    assert summary.n_events == 0
    tree = uproot.open(out)["Events"]
    assert tree.num_entries == 0
    assert tree.keys() == [
        *EVENT_ID_BRANCHES,
        "nFatJet",
        *(f"FatJet_my_model_{c}" for c in CLASSES),
    ]


# --------------------------------------------------------------------------- safe outputs
def test_own_input_as_output_is_refused_and_left_untouched(jet_model, jets_file, capsys):
    before = (jets_file.stat().st_size, _sha256(jets_file))
    assert _tag("--model", jet_model, "--out", jets_file, jets_file) == 2
    err = _one_line_error(capsys)
    assert str(jets_file) in err and "input" in err
    assert (jets_file.stat().st_size, _sha256(jets_file)) == before
    # --force does not allow it either
    assert _tag("--model", jet_model, "--force", "--out", jets_file, jets_file) == 2
    _one_line_error(capsys)
    assert (jets_file.stat().st_size, _sha256(jets_file)) == before


def test_own_pfnano_input_with_pnet_lite(pfnano_copy, capsys):
    """The brief's case: jettag tag --model pnet-lite --out X.root X.root."""
    before = (pfnano_copy.stat().st_size, _sha256(pfnano_copy))
    assert _tag("--model", "pnet-lite", "--out", pfnano_copy, pfnano_copy) == 2
    assert "pfnano.root" in _one_line_error(capsys)
    assert (pfnano_copy.stat().st_size, _sha256(pfnano_copy)) == before
    assert not partial_path(pfnano_copy).exists()


def test_existing_output_needs_force(jet_model, jets_file, tmp_path, capsys):
    out = tmp_path / "friend.root"
    out.write_bytes(b"an earlier result")
    assert _tag("--model", jet_model, "--out", out, jets_file) == 2
    err = _one_line_error(capsys)
    assert str(out) in err and "--force" in err
    assert out.read_bytes() == b"an earlier result"
    assert _tag("--model", jet_model, "--out", out, "--force", jets_file) == 0
    assert uproot.open(out)["Events"].num_entries == 6


def test_missing_output_folder_is_an_error(jet_model, jets_file, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "friend.root"
    assert _tag("--model", jet_model, "--out", out, jets_file) == 2
    assert "does not exist" in _one_line_error(capsys)
    assert not (tmp_path / "no").exists()


def test_output_is_checked_before_scoring(jet_model, jets_file, tmp_path, monkeypatch):
    tagger = Tagger.load(jet_model)
    calls = []
    monkeypatch.setattr(Tagger, "score_branches", lambda self, arrays: calls.append(1))
    out = tmp_path / "friend.root"
    out.write_bytes(b"x")
    with pytest.raises(OutputError, match="exists"):
        tag_files(tagger, [jets_file], out, progress=False)
    with pytest.raises(OutputError, match="also an input"):
        tag_files(tagger, [jets_file], jets_file, force=True, progress=False)
    assert calls == []


def test_failure_while_scoring_leaves_nothing(jet_model, jets_file, tmp_path, monkeypatch):
    tagger = Tagger.load(jet_model)

    def fail(self, arrays):
        raise RuntimeError("boom")

    monkeypatch.setattr(Tagger, "score_branches", fail)
    out = tmp_path / "friend.root"
    with pytest.raises(RuntimeError, match="boom"):
        tag_files(tagger, [jets_file], out, progress=False)
    assert not out.exists() and not partial_path(out).exists()
    # an existing output replaced with force survives a failed run untouched
    out.write_bytes(b"keep")
    with pytest.raises(RuntimeError):
        tag_files(tagger, [jets_file], out, force=True, progress=False)
    assert out.read_bytes() == b"keep" and not partial_path(out).exists()


# --------------------------------------------------------------------------- models and inputs
def test_shipped_name_works_like_its_directory(pfnano_copy, tmp_path, capsys):
    by_name, by_dir = tmp_path / "name.root", tmp_path / "dir.root"
    assert _tag("--model", "pnet-lite", "--out", by_name, pfnano_copy) == 0
    assert _tag("--model", taggers.model_dir("pnet-lite"), "--out", by_dir, pfnano_copy) == 0
    a = uproot.open(by_name)["Events"].arrays(library="np")
    b = uproot.open(by_dir)["Events"].arrays(library="np")
    assert list(a) == list(b) and "FatJet_pnet_lite_Xbb" in a
    for k in a:
        assert all(np.array_equal(x, y) for x, y in zip(a[k], b[k], strict=True)), k


def test_unknown_model_lists_the_shipped_ones(jets_file, tmp_path, capsys):
    assert _tag("--model", "nosuch", "--out", tmp_path / "f.root", jets_file) == 2
    err = _one_line_error(capsys)
    assert "nosuch" in err
    for name in taggers.available():
        assert name in err


def test_plain_nanoaod_is_refused_naming_what_is_missing(shared_data, tmp_path, capsys):
    """No shipped tagger runs on plain NanoAOD: every one reads fat-jet constituents."""
    nano = shared_data / "nano_dy.root"
    out = tmp_path / "f.root"
    for name in taggers.available():
        assert _tag("--model", name, "--out", out, nano) == 2
        err = _one_line_error(capsys)
        ident = name.replace("-", "_")
        assert "nano_dy.root" in err and f"tagger {ident}" in err, err
        assert "FatJetPFCands" in err and "PFNano" in err and "collections=" in err
        assert not out.exists()
    with pytest.raises(MissingInputsError, match="FatJetPFCands, PFCands, FatJetSVs"):
        tag_files(taggers.load("pnet-lite"), [nano], out, progress=False)


def test_unreadable_inputs_are_input_file_errors(jet_model, jets_file, tmp_path):
    tagger = Tagger.load(jet_model)
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not ROOT")
    out = tmp_path / "f.root"
    for bad, match in (
        (junk, "not a readable ROOT file"),
        (tmp_path / "nosuch.root", "no such file"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(InputFileError, match=match):
            tag_files(tagger, [jets_file, bad], out, progress=False)
        assert not out.exists()
    with pytest.raises(InputFileError, match="no tree 'Friends'"):
        tag_files(tagger, [jets_file], out, tree="Friends", progress=False)


def test_friend_module_does_not_import_the_cli():
    import ast
    from pathlib import Path

    import jettag.tagger.friend as friend

    tree = ast.parse(Path(friend.__file__).read_text())
    modules = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not any(str(m).startswith("jettag.cli") for m in modules)
