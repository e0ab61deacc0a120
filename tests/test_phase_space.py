"""Training phase spaces: declared by every shipped tagger (card, phase_space.json, summary),
``Tagger.in_phase_space`` in every coffea mode, models without one, and ``jettag train``."""

from __future__ import annotations

import json
import pickle
import warnings

import awkward as ak
import numpy as np
import pytest

pytest.importorskip("onnx")

from _models import mlp_model
from jettag import taggers
from jettag.errors import JettagError, MissingInputsError
from jettag.tagger import PhaseSpace, PhaseSpaceError, Tagger
from jettag.tagger.phase_space import PHASE_SPACE_FILE, load_phase_space

TRAINED_ON = "pT > 300 GeV, |eta| < 2.4, 40 <= msoftdrop < 250 GeV"


def _events(path, mode, schema="PFNanoAODSchema"):
    from coffea import nanoevents

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nanoevents.NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=getattr(nanoevents, schema), mode=mode
        ).events()


def _expected_mask(jets):
    pt, eta, msd = (ak.to_numpy(ak.flatten(jets[f])) for f in ("pt", "eta", "msoftdrop"))
    flat = (pt > 300) & (np.abs(eta) < 2.4) & (msd >= 40) & (msd < 250)
    return ak.unflatten(flat, ak.to_numpy(ak.num(jets)))


@pytest.fixture(scope="module")
def pfnano_eager(shared_data):
    return _events(shared_data / "pfnano.root", "eager")


@pytest.fixture
def user_model(tmp_path):
    """A user's weaver-style model directory without phase_space.json."""
    names = ["fj_pt_log", "fj_eta"]
    pp = {
        "input_names": ["jet_features"],
        "jet_features": {
            "var_names": names,
            "var_infos": {v: {"median": 0.0, "norm_factor": 1.0} for v in names},
            "var_length": None,
        },
        "output_names": ["probSig", "probBkg"],
    }
    d = tmp_path / "mine"
    d.mkdir()
    (d / "model.onnx").write_bytes(mlp_model(len(names), 2))
    (d / "preprocess.json").write_text(json.dumps(pp))
    return d


# --------------------------------------------------------------------------- shipped taggers
@pytest.mark.parametrize("name", ["pnet-lite", "deepsets-lite", "bdt-hl"])
def test_shipped_taggers_declare_their_training_phase_space(name):
    directory = taggers.model_dir(name)
    tagger = taggers.load(name)
    assert tagger.phase_space == PhaseSpace(pt_min=300, abs_eta_max=2.4, msd_min=40, msd_max=250)
    assert tagger.phase_space.describe() == TRAINED_ON
    # the machine-readable file agrees with the selection the training recorded
    training = json.loads((directory / "training.json").read_text())
    assert load_phase_space(directory) == PhaseSpace.from_selection(training["selection"])
    # ... and with the default jet selection of the training code
    from jettag.samples.labelling import JetSelection

    assert PhaseSpace.from_selection(JetSelection()) == tagger.phase_space
    card = (directory / "MODEL_CARD.md").read_text()
    assert "## Phase space" in card and TRAINED_ON in card and "in_phase_space" in card
    assert taggers.summary(name)["phase_space"] == TRAINED_ON


def test_jettag_taggers_prints_the_phase_space(capsys):
    from jettag.cli import main

    assert main(["taggers"]) == 0
    assert capsys.readouterr().out.count(f"trained on: {TRAINED_ON}") == len(taggers.available())


def test_model_card_states_the_phase_space():
    from jettag.model_card import model_card

    training = json.loads((taggers.model_dir("bdt-hl") / "training.json").read_text())
    training["selection"] = {**training["selection"], "pt_min": 450.0, "msd_max": 200.0}
    card = model_card(training)
    assert "pT > 450 GeV, |eta| < 2.4, 40 <= msoftdrop < 200 GeV" in card
    assert PHASE_SPACE_FILE in card


# --------------------------------------------------------------------------- in_phase_space
def test_in_phase_space_in_every_mode(shared_data, pfnano_eager):
    path = shared_data / "pfnano.root"
    tagger = taggers.load("pnet-lite")
    eager = pfnano_eager
    expected = ak.to_list(_expected_mask(eager.FatJet))
    assert ak.to_list(tagger.in_phase_space(eager)) == expected
    assert ak.to_list(tagger.in_phase_space(eager.FatJet)) == expected
    assert ak.to_list(tagger.in_phase_space(_events(path, "virtual"))) == expected
    import dask_awkward as dak

    for schema in ("PFNanoAODSchema", "NanoAODSchema"):
        lazy = tagger.in_phase_space(_events(path, "dask", schema))
        assert isinstance(lazy, dak.Array)
        assert ak.to_list(lazy.compute()) == expected
    # a selection of the jets: the mask of the selection
    sel = eager.FatJet[eager.FatJet.pt > 400]
    assert ak.to_list(tagger.in_phase_space(sel)) == ak.to_list(_expected_mask(sel))
    # plain awkward records (uproot-like) work too
    plain = ak.zip({f: eager.FatJet[f] for f in ("pt", "eta", "msoftdrop")})
    assert ak.to_list(tagger.in_phase_space(plain)) == expected


def test_confident_scores_outside_the_phase_space(pfnano_eager):
    """Why the mask matters: on real PFNano, pnet-lite scores a jet of msoftdrop 16 GeV
    (never seen in training) Xbb 0.93."""
    events = pfnano_eager
    tagger = taggers.load("pnet-lite")
    scores = ak.flatten(tagger(events).Xbb)
    msd = ak.flatten(events.FatJet.msoftdrop)
    inside = ak.flatten(tagger.in_phase_space(events))
    confident_outside = (scores > 0.9) & (msd < 40) & ~inside
    assert ak.sum(confident_outside) >= 1
    assert 15 < float(msd[confident_outside][0]) < 17


def test_phase_space_bounds_are_those_of_the_training_selection():
    space = PhaseSpace(pt_min=300, abs_eta_max=2.4, msd_min=40, msd_max=250)
    jets = ak.Array(
        [
            [
                {"pt": 300.0, "eta": 0.0, "msoftdrop": 100.0},  # pT > 300: out
                {"pt": 300.5, "eta": 0.0, "msoftdrop": 40.0},  # msd >= 40: in
                {"pt": 500.0, "eta": -2.4, "msoftdrop": 100.0},  # |eta| < 2.4: out
                {"pt": 500.0, "eta": 2.39, "msoftdrop": 249.9},  # in
            ],
            [],
            [{"pt": 500.0, "eta": 0.0, "msoftdrop": 250.0}],  # msd < 250: out
        ]
    )
    assert ak.to_list(space.mask(jets)) == [[False, True, False, True], [], [False]]
    from jettag.samples.labelling import JetSelection

    flat = ak.flatten(jets)
    want = JetSelection().mask(
        ak.to_numpy(flat.pt), ak.to_numpy(flat.eta), ak.to_numpy(flat.msoftdrop)
    )
    assert list(ak.flatten(space.mask(jets))) == list(want)
    # one-sided bounds
    assert ak.to_list(PhaseSpace(pt_max=400).mask(jets)) == [
        [True, True, False, False],
        [],
        [False],
    ]
    assert PhaseSpace(pt_min=200, pt_max=1000).describe() == "200 < pT < 1000 GeV"
    assert PhaseSpace(msd_min=30).describe() == "msoftdrop >= 30 GeV"
    with pytest.raises(MissingInputsError, match="msoftdrop"):
        space.mask(ak.zip({"pt": [[400.0]], "eta": [[0.0]]}))


def test_invalid_phase_spaces_are_refused(tmp_path, user_model):
    for bad, match in (
        ({}, "at least one"),
        ({"pt_min": 300, "eta_max": 2.4}, "unknown key"),
        ({"msd_min": 250, "msd_max": 40}, "below"),
        ({"pt_min": "300"}, "number"),
        ({"abs_eta_max": float("nan")}, "finite"),
    ):
        with pytest.raises(PhaseSpaceError, match=match):
            PhaseSpace.from_dict(bad)
    (user_model / PHASE_SPACE_FILE).write_text('{"pt_min": 300, "msd_max": 10, "msd_min": 40}')
    with pytest.raises(PhaseSpaceError, match=PHASE_SPACE_FILE):
        Tagger.load(user_model)
    (user_model / PHASE_SPACE_FILE).write_text("{not json")
    with pytest.raises(JettagError, match="not valid JSON"):
        taggers.resolve(user_model)


# --------------------------------------------------------------------------- a user's model
def test_model_without_a_declared_phase_space(user_model, tmp_path):
    tagger = Tagger.load(user_model)
    assert tagger.phase_space is None
    jets = ak.zip({"pt": [[400.0]], "eta": [[0.0]], "msoftdrop": [[80.0]]})
    with pytest.raises(PhaseSpaceError, match="declares no training phase space") as err:
        tagger.in_phase_space(jets)
    assert PHASE_SPACE_FILE in str(err.value) and isinstance(err.value, JettagError)
    # declared by hand: a file in the model directory ...
    PhaseSpace(pt_min=450, abs_eta_max=2.0).write(user_model)
    declared = Tagger.load(user_model)
    assert declared.phase_space.describe() == "pT > 450 GeV, |eta| < 2"
    assert ak.to_list(declared.in_phase_space(jets)) == [[False]]
    # ... or an argument (which wins over the file), and it survives pickling
    given = Tagger.load(user_model, phase_space={"pt_min": 350})
    assert ak.to_list(pickle.loads(pickle.dumps(given)).in_phase_space(jets)) == [[True]]
    assert Tagger.load(user_model, phase_space=None).phase_space is None


def test_training_records_the_phase_space(training_files, tmp_path):
    """``jettag train`` (train_tagger) writes phase_space.json from its jet selection."""
    pytest.importorskip("xgboost")
    from jettag.samples.labelling import JetSelection
    from jettag.training.recipes import train_tagger

    out = tmp_path / "bdt"
    selection = JetSelection(pt_min=250.0, msd_min=30.0)
    train_tagger("bdt-hl", training_files, out, selection=selection, max_jets_per_file=100)
    declared = json.loads((out / PHASE_SPACE_FILE).read_text())
    assert declared == {"pt_min": 250.0, "abs_eta_max": 2.4, "msd_min": 30.0, "msd_max": 250.0}
    assert Tagger.load(out).phase_space.describe() == (
        "pT > 250 GeV, |eta| < 2.4, 30 <= msoftdrop < 250 GeV"
    )
