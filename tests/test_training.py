"""Training: inputs from the inference code, standardisation, weights, losses, export, smoke trainings."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

torch = pytest.importorskip("torch")
pytest.importorskip("xgboost")
pytest.importorskip("onnxmltools")

from jettag.samples.dataset import load_jets  # noqa: E402
from jettag.samples.labelling import TAGGER_CLASSES  # noqa: E402
from jettag.tagger import InputBuilder, Tagger  # noqa: E402
from jettag.training import highlevel, models  # noqa: E402
from jettag.training.fit import TrainConfig, _per_jet_loss, predict  # noqa: E402
from jettag.training.imbalance import imbalance_study, imbalance_table  # noqa: E402
from jettag.training.recipes import train_tagger  # noqa: E402
from jettag.training.standardisation import (  # noqa: E402
    fit_preprocess,
    raw_preprocess,
    standardised_preprocess,
)
from jettag.training.weights import class_balance_weights, mass_weights  # noqa: E402


def _spec(arch: str = "deepsets") -> dict:
    spec = models.input_blocks(arch)
    spec["output_names"] = [f"prob{c}" for c in TAGGER_CLASSES]
    return spec


def test_load_jets_inputs_are_the_taggers_inputs(training_files, tmp_path):
    """The training tensors of each selected jet are exactly what Tagger feeds the model."""
    spec = _spec()
    raw = load_jets(training_files, preprocess=raw_preprocess(spec), max_jets_per_file=200)
    spec = fit_preprocess(spec, raw.inputs, identity_blocks=models.IDENTITY_BLOCKS)
    xbb = training_files[0]
    data = load_jets([xbb], preprocess=spec)
    assert set(data.counts()) == set(TAGGER_CLASSES) and data.counts()["Xbb"] == len(data) > 50
    # every labelled jet holds both b quarks: nearly all have two B hadrons
    arrays = uproot.open(f"{xbb}:Events").arrays()
    builder = InputBuilder(spec)
    all_inputs = builder.from_branches(arrays)
    n_b = ak.to_numpy(ak.flatten(arrays["FatJet_nBHadrons"]))
    net = models.build_model("deepsets", 4)
    (tmp_path / "preprocess.json").write_text(json.dumps(spec))
    from jettag.training.fit import export_onnx

    export_onnx(net, data.inputs, tmp_path / "model.onnx")
    tagger = Tagger.load(tmp_path)
    direct = tagger.inputs(_events(xbb))
    for name in spec["input_names"]:
        np.testing.assert_array_equal(direct[name], all_inputs[name])
    # the selected jets are a subset of the file's jets, in file order
    pt = ak.to_numpy(ak.flatten(arrays["FatJet_pt"]))
    index = np.flatnonzero(np.isin(pt, data.pt))
    assert len(index) == len(data)
    for name in spec["input_names"]:
        np.testing.assert_array_equal(data.inputs[name], all_inputs[name][index])
    assert np.mean(n_b[index] >= 2) > 0.9


def _events(path):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    return NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager").events()


def test_fit_preprocess_follows_weavers_auto_standardisation():
    spec = {
        "input_names": ["x", "m"],
        "x": {"var_names": ["a", "b"], "var_length": 4},
        "m": {"var_names": ["pfcand_mask"], "var_length": 4},
    }
    rng = np.random.default_rng(3)
    a = rng.normal(5.0, 2.0, size=(1000, 4))
    b = rng.exponential(1.0, size=(1000, 4))
    a[:, 3] = np.nan  # pads are excluded
    raw = {"x": np.stack([a, b], axis=1), "m": np.ones((1000, 1, 4))}
    out = fit_preprocess(spec, raw, identity_blocks=("m",))
    info = out["x"]["var_infos"]["a"]
    real = a[:, :3].ravel()
    q16, q50, q84 = np.percentile(real, [16, 50, 84])
    assert info["median"] == pytest.approx(q50)
    assert info["norm_factor"] == pytest.approx(1 / max(q84 - q50, q50 - q16))
    assert (info["lower_bound"], info["upper_bound"], info["pad"]) == (-5.0, 5.0, 0.0)
    assert out["m"]["var_infos"]["pfcand_mask"]["median"] == 0.0
    assert out["m"]["var_infos"]["pfcand_mask"]["norm_factor"] == 1.0


def test_mass_weights_give_the_signal_the_qcd_mass_shape():
    rng = np.random.default_rng(1)
    label = np.repeat([0, 1, 3], [3000, 2000, 5000])
    msd = np.concatenate([rng.uniform(40, 250, 3000), rng.normal(125, 20, 2000), rng.exponential(60, 5000) + 40])
    pt = rng.uniform(300, 1000, len(label))
    bins = np.arange(40.0, 251.0, 10.0)
    w = mass_weights(label, msd, pt, reference=3, mode="msd")
    ref, _ = np.histogram(msd[label == 3], bins=bins)
    for cls in (0, 1):
        sel = label == cls
        h, _ = np.histogram(msd[sel], bins=bins, weights=w[sel])
        filled = np.histogram(msd[sel], bins=bins)[0] > 0
        np.testing.assert_allclose(h[filled] / h.sum(), (ref / ref[filled].sum())[filled], rtol=1e-9)
    assert np.all(w[label == 3] == 1)
    assert np.array_equal(mass_weights(label, msd, pt, reference=3, mode="none"), np.ones(len(label)))
    w2 = mass_weights(label, msd, pt, reference=3, mode="msd-pt")
    assert w2.shape == w.shape and np.all(w2 >= 0)
    balanced = class_balance_weights(label, w)
    totals = [balanced[label == c].sum() for c in (0, 1, 3)]
    np.testing.assert_allclose(totals, len(label) / 3)
    with pytest.raises(ValueError, match="mass weighting"):
        mass_weights(label, msd, pt, reference=3, mode="flat")


def test_focal_loss_reduces_to_cross_entropy_at_gamma_zero():
    logits = torch.randn(50, 4)
    target = torch.randint(0, 4, (50,))
    ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    np.testing.assert_allclose(
        _per_jet_loss(logits, target, TrainConfig(loss="focal", focal_gamma=0.0)).numpy(), ce.numpy(), rtol=1e-6
    )
    focal = _per_jet_loss(logits, target, TrainConfig(loss="focal", focal_gamma=2.0))
    assert torch.all(focal <= ce + 1e-7)
    with pytest.raises(ValueError, match="loss"):
        TrainConfig(loss="hinge")


@pytest.mark.parametrize("recipe", ["deepsets-lite", "pnet-lite", "bdt-hl"])
def test_train_smoke(recipe, training_files, tmp_path):
    """A tiny training of each recipe: exported model loads, and Tagger reproduces the trained model."""
    out = tmp_path / recipe
    info = train_tagger(recipe, training_files, out, config=TrainConfig(epochs=1), max_jets_per_file=150)
    assert info["training_jets"] == {c: info["training_jets"][c] for c in TAGGER_CLASSES}
    assert all(n > 20 for n in info["training_jets"].values())
    tagger = Tagger.load(out)
    assert tagger.class_names == TAGGER_CLASSES
    spec = json.loads((out / "preprocess.json").read_text())
    data = load_jets(training_files[:1], preprocess=spec, max_jets_per_file=100)
    events = _events(training_files[0])
    scores = ak.flatten(tagger(events))
    got = np.stack([ak.to_numpy(scores[c]) for c in TAGGER_CLASSES], axis=1)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    pt = ak.to_numpy(ak.flatten(events.FatJet.pt))
    index = np.flatnonzero(np.isin(pt, data.pt.astype(np.float32)))
    assert len(index) == len(data)
    if recipe == "bdt-hl":
        features = highlevel.extract(data.inputs)
        assert features.shape == (len(data), len(highlevel.HL_FEATURES))
        assert np.all(features[:, highlevel.HL_FEATURES.index("n_sv")] >= 0)
    else:
        # the exported ONNX model, run by Tagger, equals the torch network it came from
        net, net_dir = _retrained(recipe, training_files, tmp_path)
        net_spec = json.loads((net_dir / "preprocess.json").read_text())
        net_data = load_jets(training_files[:1], preprocess=net_spec, max_jets_per_file=100)
        want = predict(net, {k: net_data.inputs[k] for k in net_spec["input_names"]})
        tagger2 = Tagger.load(net_dir)
        got2 = ak.flatten(tagger2(events))
        got2 = np.stack([ak.to_numpy(got2[c]) for c in TAGGER_CLASSES], axis=1)[index]
        np.testing.assert_allclose(got2, want, atol=2e-5)


def _retrained(recipe, files, tmp_path):
    """Train again in-process to hold the torch network next to its export."""
    from jettag.training.fit import export_onnx, fit_network
    from jettag.training.recipes import RECIPES

    arch = RECIPES[recipe].architecture
    spec = _spec(arch)
    spec = standardised_preprocess(files, spec, identity_blocks=models.IDENTITY_BLOCKS, jets_per_file=100)
    data = load_jets(files, preprocess=spec, max_jets_per_file=100)
    net, history = fit_network(
        models.build_model(arch, 4), data.inputs, data.label, None, TrainConfig(epochs=1),
        input_names=spec["input_names"],
    )
    assert len(history) == 1 and np.isfinite(history[0]["val_loss"])
    out = tmp_path / f"{recipe}-export"
    out.mkdir()
    export_onnx(net, {k: data.inputs[k] for k in spec["input_names"]}, out / "model.onnx")
    (out / "preprocess.json").write_text(json.dumps(spec))
    return net, out


def test_train_rejects_missing_classes(training_files, tmp_path):
    with pytest.raises(ValueError, match="no training jets of class"):
        train_tagger("deepsets-lite", training_files[:2], tmp_path / "m", config=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="unknown recipe"):
        train_tagger("pnet-huge", training_files, tmp_path / "m")


def test_imbalance_study_smoke(training_files):
    study = imbalance_study(
        [training_files[0]], [training_files[1]], ratio=0.2, folds=2, config=TrainConfig(epochs=1),
        methods=("unweighted", "class-weighted"),
    )
    assert study["n_xcc"] == round(0.2 * study["n_xbb"])
    assert set(study["summary"]) == {"unweighted", "class-weighted"}
    for rows in study["per_fold"].values():
        assert len(rows) == 2
        for r in rows:
            assert 0 <= r["average_precision"] <= 1 and r["inv_eff_bb_at_eff_cc_0.2"] >= 1
    assert study["ratio_to_unweighted"]["unweighted"]["average_precision"] == {"mean": 1.0, "std": 0.0}
    table = imbalance_table(study)
    assert "class-weighted" in table and "±" in table and "ratio to unweighted" in table
    with pytest.raises(ValueError, match="needs"):
        imbalance_study([training_files[0]], [training_files[1]], ratio=1.0, folds=2)


def test_cli_train_errors(training_files, tmp_path, capsys):
    from jettag.cli import main

    files = [str(f) for f in training_files]
    out = str(tmp_path / "m")
    assert main(["train", *files, "--recipe", "nope", "--out", out]) == 2
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    assert main(["train", *files, "--recipe", "deepsets-lite", "--focal-alpha", "1,2", "--out", out]) == 2
    assert "focal alpha needs 4 values" in capsys.readouterr().err
    assert main(["train", *files[:2], "--recipe", "bdt-hl", "--out", out]) == 2
    assert "no training jets of class" in capsys.readouterr().err
    assert main(["train", *files, "--process", "xbb", "--recipe", "bdt-hl", "--out", out]) == 2
    assert "one per file" in capsys.readouterr().err


def test_training_is_reproducible(training_files, tmp_path):
    """The same command gives the same model: seeded initial weights, batches and splits."""
    scores = []
    for k in range(2):
        out = tmp_path / f"run{k}"
        train_tagger("deepsets-lite", training_files, out, config=TrainConfig(epochs=1, threads=1), max_jets_per_file=100)
        s = ak.flatten(Tagger.load(out, threads=1)(_events(training_files[1])))
        scores.append(np.stack([ak.to_numpy(s[c]) for c in TAGGER_CLASSES], axis=1))
    np.testing.assert_array_equal(scores[0], scores[1])


def test_cli_train_writes_the_directory_only_when_done(training_files, tmp_path, capsys, monkeypatch):
    """jettag train: the model directory appears complete or not at all; an existing one needs --force."""
    from jettag.cli import main
    from jettag.training import recipes

    files = [str(f) for f in training_files]
    out = tmp_path / "bdt"
    command = ["train", *files, "--recipe", "bdt-hl", "--max-jets-per-file", "100", "--out", str(out)]
    assert main(command) == 0
    assert {"model.onnx", "preprocess.json", "phase_space.json", "training.json"} <= {p.name for p in out.iterdir()}
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(command) == 2
    assert "not empty; give --force" in capsys.readouterr().err
    model = (out / "model.onnx").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipes, "fit_network", interrupted)
    fresh = tmp_path / "interrupted"
    assert main(["train", *files, "--recipe", "deepsets-lite", "--max-jets-per-file", "100", "--out", str(fresh)]) == 130
    assert not fresh.exists() and not list(tmp_path.glob(".*partial"))
    assert main([*command, "--force", "--recipe", "deepsets-lite", "--epochs", "1"]) == 130
    assert (out / "model.onnx").read_bytes() == model  # the earlier model is untouched
