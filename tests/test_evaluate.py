"""jettag evaluate: figures of merit, tables and plots; the shipped reference taggers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jettag import performance, taggers
from jettag.cli import main
from jettag.evaluate import (
    MIN_BACKGROUND_JETS,
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


def _flags(entry):
    return {key: c["stat_limited"] for key, c in entry["counts"].items()}


def test_every_figure_carries_its_counts_and_few_qcd_jets_are_flagged(tmp_path):
    # 263 QCD jets (the demo's size): 1% mistag rests on 2.6 of them, 0.1% on 0.26
    few = evaluate_scores(_synthetic(n_sig=800, n_qcd=263, seed=3))["signals"]["Xbb"]
    assert few["n_signal"] == 800 and few["n_background"] == 263
    assert few["counts"]["auc"] == {"n_signal": 800, "n_background": 263, "stat_limited": False}
    assert few["counts"]["eff_sig_at_mistag_0.01"]["n_background_pass"] == pytest.approx(2.63)
    assert few["counts"]["eff_sig_at_mistag_0.001"]["n_background_pass"] == pytest.approx(0.26)
    assert _flags(few)["eff_sig_at_mistag_0.01"] and _flags(few)["eff_sig_at_mistag_0.001"]
    assert not _flags(few)["inv_eff_bkg_at_eff_sig_0.8"]  # about 30 QCD jets pass at 80% signal
    # 20000 QCD jets: 200 and 20 pass the mistag points: nothing flagged
    many = evaluate_scores(_synthetic())["signals"]["Xbb"]
    assert not any(_flags(many).values()) and not many["mass_sculpting"]["stat_limited"]
    assert many["counts"]["eff_sig_at_mistag_0.001"]["n_background_pass"] == pytest.approx(20)
    assert many["mass_sculpting"]["n_background_pass"] == 1000  # 5% of 20000
    # the table marks what is flagged and says what the mark means, with the counts
    table = markdown_table({"few": {"signals": {"Xbb": few}}, "many": {"signals": {"Xbb": many}}})
    few_row = next(line for line in table.splitlines() if line.startswith("| few |"))
    many_row = next(line for line in table.splitlines() if line.startswith("| many |"))
    assert "800 / 263" in few_row and f"{few['eff_sig_at_mistag_0.01']:.3f}†" in few_row
    assert "†" not in many_row
    assert f"† statistics-limited: fewer than {MIN_BACKGROUND_JETS} QCD jets" in table
    assert "eff_sig @ 1% QCD on 2.63 QCD jets passing" in table


def test_no_qcd_jet_passing_gives_a_lower_limit_not_inf(tmp_path):
    data = _synthetic(n_sig=500, n_qcd=40, seed=4)
    data.scores[data.label == 0, 0], data.scores[data.label == 0, 3] = 0.99, 0.01  # signal above all QCD
    data.scores[data.label == 3, 0], data.scores[data.label == 3, 3] = 0.2, 0.8
    res = evaluate_scores(data)
    e = res["signals"]["Xbb"]
    for key in ("inv_eff_bkg_at_eff_sig_0.2", "inv_eff_bkg_at_eff_sig_0.8"):
        assert e[key] is None
        assert e["counts"][key] == {"n_background_pass": 0.0, "stat_limited": True, "lower_limit": 40}
    table = markdown_table({"perfect": res})
    assert "| > 40 | > 40 |" in table and "inf" not in table
    assert "> N: fewer than one QCD jet passes" in table
    write_results({"perfect": res}, tmp_path)  # strict JSON: no Infinity anywhere
    assert json.loads((tmp_path / "evaluation.json").read_text())["perfect"]["signals"]["Xbb"][
        "inv_eff_bkg_at_eff_sig_0.2"
    ] is None


@pytest.mark.parametrize("efficiency", [0.05, 0.2])
def test_sculpting_is_taken_at_the_requested_efficiency(efficiency):
    sculpt = evaluate_scores(_synthetic(), sculpting_efficiency=efficiency)["signals"]["Xbb"]["mass_sculpting"]
    assert sculpt["qcd_efficiency"] == efficiency
    assert sculpt["eff_background"] == pytest.approx(efficiency, abs=1e-4)
    assert sculpt["n_background_pass"] == round(20000 * efficiency)


def test_sculpting_on_too_few_qcd_jets_is_unavailable_not_substituted(tmp_path):
    # 12 QCD jets: 5% of them is 0.6 jets; the nearest cut passes 1 of 12 (8.3%): not 5%
    res = evaluate_scores(_synthetic(n_sig=300, n_qcd=12, seed=5), sculpting_efficiency=0.05)
    sculpt = res["signals"]["Xbb"]["mass_sculpting"]
    assert sculpt["qcd_efficiency"] == 0.05
    assert sculpt["inverse_jsd"] is None and sculpt["inverse_jsd_random_selection"] is None
    assert sculpt["note"] == "the nearest cut passes 1 of 12 QCD jets (8.33%), not 5%"
    row = markdown_table({"toy": res}).splitlines()[2]
    assert "| n/a (the nearest cut passes 1 of 12 QCD jets (8.33%), not 5%) | n/a |" in row
    written = write_results({"toy": res}, tmp_path)
    assert not (tmp_path / "msd_sculpting_toy.png").exists() and len(written) == 3


def test_weighted_evaluation_reports_effective_numbers():
    data = _synthetic(n_sig=2000, n_qcd=3000, seed=6)
    data.gen_weight = np.random.default_rng(0).exponential(1.0, len(data))
    e = evaluate_scores(data, weighted=True)["signals"]["Xbb"]
    w_qcd = data.gen_weight[data.label == 3]
    assert e["n_background"] == 3000
    assert e["n_background_effective"] == pytest.approx(w_qcd.sum() ** 2 / (w_qcd**2).sum(), abs=0.01)
    assert e["n_background_effective"] < 0.7 * 3000  # exponential weights: about half
    assert "n_background_pass_effective" in e["counts"]["eff_sig_at_mistag_0.01"]
    assert "n_background_pass_effective" in e["mass_sculpting"]
    unweighted = evaluate_scores(data)["signals"]["Xbb"]
    assert "n_background_effective" not in unweighted


def test_markdown_table_reads_evaluations_written_before_counts():
    for name in taggers.available():
        table = markdown_table({name: taggers.card(name)["evaluation"]})
        assert f"| {name} | Xbb |" in table


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
    assert "| deepsets-lite | Xbb |" in text and "| FatJet_n2b1 | Xbb |" in text
    # the table shows the jets behind the figures; the JSON holds them and is strict
    n = json.loads((out / "evaluation.json").read_text())["deepsets-lite"]["signals"]["Xbb"]
    assert f"| deepsets-lite | Xbb | {n['n_signal']} / {n['n_background']} |" in text
    assert (out / "evaluation.md").is_file() and (out / "roc_Xbb_vs_QCD.png").is_file()
    assert main(["evaluate", *files, "--tagger", "deepsets-lite", "--out", str(out)]) == 2
    assert "exists and is not empty; give --force" in capsys.readouterr().err
    fresh = str(tmp_path / "eval2")
    assert main(["evaluate", *files, "--tagger", "nope", "--out", fresh]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "shipped tagger" in err
    assert main(["evaluate", str(samples["gbb_mu"]), "--tagger", "bdt-hl", "--out", fresh]) == 2
    assert "provides no tagger class" in capsys.readouterr().err
