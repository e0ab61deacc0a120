"""Tagger classes of generated jets."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from jettag.samples.labelling import LABEL_BRANCHES, JetSelection, file_class, label_jets_of


def _arrays(path):
    tree = uproot.open(f"{path}:Events")
    return tree.arrays([*LABEL_BRANCHES, "genWeight", "FatJet_nBHadrons"])


def test_signal_jets_contain_both_decay_quarks(samples):
    arrays = _arrays(samples["xbb"])
    jets = label_jets_of(arrays, "Xbb")
    n_b = ak.to_numpy(ak.flatten(arrays["FatJet_nBHadrons"]))
    labelled = jets.label == 0
    # at most one X-matched jet per event, and it holds the two b hadrons
    counts = ak.num(arrays["FatJet_pt"], axis=1)
    per_event = ak.sum(ak.unflatten(labelled, ak.to_numpy(counts)), axis=1)
    assert ak.max(per_event) == 1
    assert np.mean(n_b[labelled] >= 2) > 0.9
    assert labelled.sum() > 0.5 * len(arrays)
    # the recoil jets are not used; selected jets are labelled and in the phase space
    assert np.all(jets.label[jets.selected] == 0)
    sel = JetSelection()
    assert np.all(jets.pt[jets.selected] > sel.pt_min)
    assert np.all((jets.msoftdrop[jets.selected] >= 40) & (jets.msoftdrop[jets.selected] < 250))
    np.testing.assert_array_equal(
        jets.gen_weight, np.repeat(ak.to_numpy(arrays["genWeight"]), ak.to_numpy(counts))
    )


def test_qcd_jets_are_all_qcd(samples):
    jets = label_jets_of(_arrays(samples["qcd"]), "QCD")
    assert np.all(jets.label == 3)
    assert jets.selected.sum() == JetSelection().mask(jets.pt, jets.eta, jets.msoftdrop).sum()


def test_file_class(samples, shared_data):
    assert file_class(samples["xbb"]) == "Xbb"
    assert file_class(samples["zbb"]) == "Xbb"
    assert file_class(samples["qcd"]) == "QCD"
    with pytest.raises(ValueError, match="provides no tagger class"):
        file_class(samples["gbb_mu"])
    with pytest.raises(ValueError, match="not a jettag-generated file"):
        file_class(shared_data / "pfnano.root")
    assert file_class(shared_data / "pfnano.root", "qcd") == "QCD"


def test_process_resonances_agree_with_the_generator():
    """labelling keeps its own table (it must not import the generator); hold it to the generator's."""
    from jettag.generator.processes import PROCESSES
    from jettag.samples.labelling import PROCESS_CLASSES, PROCESS_RESONANCES, resonance_of

    for name, cls in PROCESS_CLASSES.items():
        assert name in PROCESSES, name
        if cls == "QCD":
            assert PROCESSES[name].resonance is None and name not in PROCESS_RESONANCES
        else:
            assert PROCESS_RESONANCES[name] == PROCESSES[name].resonance, name
            assert resonance_of(name) == PROCESSES[name].resonance
    assert set(PROCESS_RESONANCES) <= set(PROCESS_CLASSES)


def test_samples_never_import_the_generator():
    code = (
        "import sys, jettag.samples, jettag.samples.labelling, jettag.samples.dataset; "
        "loaded = sorted(m for m in sys.modules if m.startswith('jettag.generator')); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
