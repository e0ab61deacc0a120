"""jettag evaluate: figures of merit, tables and plots; the shipped reference taggers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jettag import performance, taggers
from jettag.cli import main
from jettag.evaluate import (
    discriminant,
    evaluate_scores,
    markdown_table,
    score_files,
    write_results,
)
from jettag.samples.dataset import JetDataset
from jettag.samples.labelling import TAGGER_CLASSES


def _synthetic(n_sig: int = 4000, n_qcd: int = 20000, seed: int = 2) -> JetDataset:
    rng = np.random.default_rng(seed)
    label = np.repeat([0, 3], [n_sig, n_qcd])
    x = np.concatenate([rng.normal(2.0, 1.0, n_sig), rng.normal(0.0, 1.0, n_qcd)])
    p = 1 / (1 + np.exp(-x))
    scores = np.zeros((len(label), 4))
    scores[:, 0], scores[:, 3] = p, 1 - p
    msd = rng.uniform(40, 250, len(label))
    return JetDataset(
        inputs={}, label=label, pt=np.full(len(label), 400.0), eta=np.zeros(len(label)), msoftdrop=msd,
        gen_weight=np.ones(len(label)), source=np.zeros(len(label), np.int64), scores=scores,
    )


def test_evaluate_scores_figures_match_the_performance_module(tmp_path):
    data = _synthetic()
    res = evaluate_scores(data)
    e = res["signals"]["Xbb"]
    disc = discriminant(data.scores, TAGGER_CLASSES, "Xbb")
    roc = performance.roc_curve(disc[data.label == 0], disc[data.label == 3])
    assert e["auc"] == pytest.approx(roc.auc)
    # two unit Gaussians 2 sigma apart: AUC = Phi(2 / sqrt 2) = 0.921
    assert e["auc"] == pytest.approx(0.921, abs=0.01)
    assert e["eff_sig_at_mistag_0.01"] == pytest.approx(performance.signal_efficiency_at(roc, 0.01))
    assert e["inv_eff_bkg_at_eff_sig_0.2"] > e["inv_eff_bkg_at_eff_sig_0.8"] > 1
    # the mass is independent of the score here: no sculpting beyond statistical noise
    sculpt = e["mass_sculpting"]
    assert sculpt["inverse_jsd"] > 50
    assert 0.5 < sculpt["inverse_jsd"] / sculpt["inverse_jsd_random_selection"] < 2
    assert list(res["signals"]) == ["Xbb"]  # classes without jets are skipped
    table = markdown_table({"toy": res})
    assert "| toy | Xbb |" in table
    written = write_results({"toy": res}, tmp_path)
    assert (tmp_path / "roc_Xbb_vs_QCD.png").stat().st_size > 1000
    assert json.loads((tmp_path / "evaluation.json").read_text())["toy"]["signals"]["Xbb"]["auc"] == e["auc"]
    assert len(written) == 4 and (tmp_path / "msd_sculpting_toy.png").is_file()


def test_evaluate_needs_qcd_and_signal_jets():
    data = _synthetic()
    with pytest.raises(ValueError, match="no QCD jets"):
        evaluate_scores(data.subset(data.label == 0))
    with pytest.raises(ValueError, match="no signal jets"):
        evaluate_scores(data.subset(data.label == 3))


def test_cli_evaluate_real_file_needs_its_process(shared_data, tmp_path, capsys):
    pfnano = str(shared_data / "pfnano.root")
    out = str(tmp_path / "e")
    assert main(["evaluate", pfnano, "--score-branch", "FatJet_particleNetMD_Xbb", "--out", out]) == 2
    assert "give its process" in capsys.readouterr().err
    assert main(["evaluate", pfnano, "--process", "qcd", "--score-branch", "FatJet_particleNetMD_Xbb", "--out", out]) == 2
    assert "no signal jets" in capsys.readouterr().err
    assert main(["evaluate", pfnano, "--process", "qcd", "--process", "xbb", "--tagger", "bdt-hl", "--out", out]) == 2
    assert "one per file" in capsys.readouterr().err


def test_shipped_taggers_load_by_name_and_stay_small():
    names = taggers.available()
    assert set(names) == {"pnet-lite", "deepsets-lite", "bdt-hl"}
    total = sum(p.stat().st_size for n in names for p in taggers.model_dir(n).rglob("*") if p.is_file())
    assert total < 5e6
    for name in names:
        card = taggers.card(name)
        assert card["training"]["command"].startswith("jettag train ")
        assert f"--recipe {name}" in card["training"]["command"]
        assert card["evaluation"]["signals"]["Xbb"]["auc"] > 0.9
        assert (taggers.model_dir(name) / "MODEL_CARD.md").read_text().startswith(f"# {name}")
    with pytest.raises(ValueError, match="available"):
        taggers.load("pnet-huge")


def test_shipped_taggers_separate_zbb_from_qcd(samples):
    """On independent generated Z->bb and QCD files, every shipped tagger separates them."""
    files = [samples["zbb"], samples["qcd"]]
    for name in taggers.available():
        data = score_files(files, taggers.load(name, threads=1))
        np.testing.assert_allclose(data.scores.sum(axis=1), 1.0, atol=1e-5)
        res = evaluate_scores(data)
        assert res["signals"]["Xbb"]["auc"] > 0.85, name


def test_cli_evaluate(samples, tmp_path, capsys):
    files = [str(samples["zbb"]), str(samples["qcd"])]
    out = tmp_path / "eval"
    assert main(["evaluate", *files, "--tagger", "deepsets-lite", "--score-branch", "FatJet_n2b1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| deepsets_lite | Xbb |" in text and "| FatJet_n2b1 | Xbb |" in text
    assert (out / "evaluation.md").is_file() and (out / "roc_Xbb_vs_QCD.png").is_file()
    assert main(["evaluate", *files, "--tagger", "nope", "--out", str(out)]) == 2
    assert "no shipped tagger 'nope'" in capsys.readouterr().err
    assert main(["evaluate", str(samples["gbb_mu"]), "--tagger", "bdt-hl", "--out", str(out)]) == 2
    assert "provides no tagger class" in capsys.readouterr().err
