"""gbb_mu's forced semileptonic B decays: the weights written, and the two populations.

Simulation carries ``genWeight`` (pT-hat bias weight x forced-decay weight: the
natural population) and ``jettag_forcedDecayWeight`` (the forced-decay weight
alone), so that ``genWeight / jettag_forcedDecayWeight`` (the pT-hat weight alone)
describes the forced population, as the unweighted pseudo-data do. Tiny samples
(tens of events): these tests check what is written, not physics.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from jettag.generator.pfnano import FORCED_DECAY_WEIGHT
from jettag.generator.pipeline import chunk_source, generate
from jettag.generator.processes import get_process
from jettag.samples.files import read_metadata, truth_sidecar_path

pytest.importorskip("pythia8mc")

SEED = 5
#: gbb_mu's pT-hat bias: events sampled with weight (pTHat / 200 GeV)^4 (processes._PTHAT_BIAS)
PTHAT_REF, PTHAT_POWER = 200.0, 4.0


@pytest.fixture(scope="module")
def gbb_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gbb_mu simulation (20 events) and pseudo-data (10 events), one chunk each."""
    outdir = tmp_path_factory.mktemp("forced")
    paths = {"mc": outdir / "gbb_mc.root", "data": outdir / "gbb_data.root"}
    for tune, n in (("mc", 20), ("data", 10)):
        generate("gbb_mu", n, SEED, paths[tune], tune=tune, workers=1, chunk_size=n, progress=False)
    return paths


def test_mc_writes_the_forced_decay_weight_and_the_pthat_weight_is_what_remains(gbb_files):
    tree = uproot.open(gbb_files["mc"])["Events"]
    assert tree[FORCED_DECAY_WEIGHT].typename == "float"
    a = tree.arrays(["genWeight", FORCED_DECAY_WEIGHT, "GenPart_pt", "GenPart_status"])
    forced = a[FORCED_DECAY_WEIGHT].to_numpy().astype(np.float64)
    gen = a["genWeight"].to_numpy().astype(np.float64)
    assert np.all(np.isfinite(forced)) and np.all(forced > 0)
    # genWeight / forced-decay weight is Pythia's pT-hat bias weight (200 GeV / pTHat)^4;
    # pTHat from the hard process's outgoing partons (status 23; b and c quarks are put
    # on shell after pTHat is chosen, a 1e-3 effect here)
    pthat = ak.to_numpy(ak.firsts(a["GenPart_pt"][a["GenPart_status"] == 23])).astype(np.float64)
    np.testing.assert_allclose(gen / forced, (PTHAT_REF / pthat) ** PTHAT_POWER, rtol=5e-3)
    # the forcing is visible: most events are b-rich forced ones, weighted far below 1
    assert np.mean(forced < 0.5) > 0.3
    assert read_metadata(gbb_files["mc"])["forced_muon_fraction"] == 0.8


def test_forced_decay_weight_follows_the_documented_formula(gbb_files):
    """w = 1 without B hadrons; else 1 / (q / prod_i BR_mu(B_i) + 1 - q) or 1 / (1 - q)."""
    q = get_process("gbb_mu").forced_muon_fraction
    source, _ = chunk_source("gbb_mu", "mc", SEED, 0)
    fractions = source.muon_fractions  # natural BR into muon channels, by B hadron
    tree = uproot.open(gbb_files["mc"])["Events"]
    a = tree.arrays([FORCED_DECAY_WEIGHT, "GenPart_pdgId"])
    forced = a[FORCED_DECAY_WEIGHT].to_numpy().astype(np.float64)
    n_no_b = 0
    for w, pdg in zip(forced, ak.to_list(abs(a["GenPart_pdgId"])), strict=True):
        # GenPart keeps every weakly decaying B hadron (truth.gen_particles)
        b_hadrons = [p for p in pdg if p in fractions]
        if not b_hadrons:
            n_no_b += 1
            assert w == 1.0
            continue
        all_muonic = 1.0 / (q / np.prod([fractions[p] for p in b_hadrons]) + 1.0 - q)
        some_not = 1.0 / (1.0 - q)  # only the natural Pythia makes such events
        assert w == pytest.approx(all_muonic, rel=1e-5) or w == pytest.approx(some_not, rel=1e-6)
    assert n_no_b < len(forced)  # B hadrons were seen, the formula was exercised


def test_pseudodata_hold_no_weight_and_the_sidecar_keeps_it(gbb_files):
    data = uproot.open(gbb_files["data"])["Events"]
    keys = set(data.keys())
    assert "genWeight" not in keys and FORCED_DECAY_WEIGHT not in keys
    assert not [k for k in keys if "weight" in k.lower() and not k.startswith("PFCands_puppi")]
    truth = uproot.open(truth_sidecar_path(gbb_files["data"]))["Truth"]
    w = truth["forcedDecayWeight"].array(library="np")
    assert len(w) == data.num_entries and np.all(w > 0)
    assert np.array_equal(truth["event"].array(library="np"), data["event"].array(library="np"))
    meta = read_metadata(gbb_files["data"])
    assert meta["forced_muon_fraction"] == 0.8 and meta["weighted"] is False


def test_processes_without_forced_decays_write_weight_one(tmp_path):
    out = tmp_path / "zbb.root"
    generate("zbb", 5, SEED, out, tune="mc", workers=1, chunk_size=5, progress=False)
    forced = uproot.open(out)["Events"][FORCED_DECAY_WEIGHT].array(library="np")
    assert len(forced) == 5 and np.all(forced == 1.0)
    assert read_metadata(out)["forced_muon_fraction"] == 0.0
