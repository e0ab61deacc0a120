"""jettag generate: file format, reproducibility, physics checks, CLI behaviour."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from jettag.generator import generate, validation
from jettag.generator.pfnano import BRANCHES, EMPTY_COLLECTIONS, EVENT_BRANCHES, MC_ONLY
from jettag.samples.files import read_metadata, truth_sidecar_path


def _open_pfnano(path: Path):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    return NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
    ).events()


def _exercise_schema(path: Path) -> dict[str, int]:
    """Use the PFNano cross-references the way an analysis does; return counts."""
    events = _open_pfnano(path)
    fatjets = events.FatJet
    cands = events.FatJetPFCands
    pf = events.PFCands[cands.pFCandsIdx]
    assert ak.all(ak.num(pf) == ak.num(cands))
    # every candidate points to an existing jet of its event
    assert ak.all(cands.jetIdx < ak.num(fatjets)[:, None] if len(cands) else True)
    sv = events.SV[events.FatJetSVs.sVIdx]
    assert ak.all(ak.num(sv) == ak.num(events.FatJetSVs))
    subjets = fatjets.subjets
    assert ak.all(ak.num(subjets, axis=2) <= 2)
    p4 = fatjets.pt * np.cosh(fatjets.eta)
    assert ak.all(p4 >= 0)
    return {"events": len(events), "jets": int(ak.sum(ak.num(fatjets))), "cands": int(ak.sum(ak.num(cands)))}


def test_reads_like_cms_pfnano(samples, shared_data):
    """Our MC and pseudo-data files read with PFNanoAODSchema exactly as pfnano.root does."""
    reference = _exercise_schema(shared_data / "pfnano.root")
    assert reference["jets"] > 0
    for name in ("zbb", "zbb_data"):
        counts = _exercise_schema(samples[name])
        assert counts["jets"] > 0 and counts["cands"] > 10 * counts["jets"]
    events = _open_pfnano(samples["zbb"])
    assert ak.all(events.GenPart.genPartIdxMother < ak.num(events.GenPart))
    parents = events.GenPart.parent  # the mother cross-reference resolves
    assert len(parents) == len(events)


def test_plain_coffea_read_is_silent(samples):
    """A user's plain PFNanoAODSchema read of MC and pseudo-data emits no warning at all.

    coffea warns about every cross-reference index its schema knows and a file lacks;
    every one is written (real indices, -1, or empty collections), and every
    collection then builds, the empty ones included.
    """
    for name in ("zbb", "zbb_data"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            events = _open_pfnano(samples[name])
            for collection in events.fields:
                events[collection]
        for collection in EMPTY_COLLECTIONS:
            if collection in events.fields:
                assert ak.all(ak.num(events[collection]) == 0), collection
        muons, fatjets = events.Muon, events.FatJet
        assert ak.all(muons.jetIdx == -1) and ak.all(fatjets.electronIdx3SJ == -1)
        if name == "zbb":
            assert ak.all(fatjets.genJetAK8Idx == -1)
        # FatJet_muonIdx3SJ: a muon of the event, inside the jet
        tagged = fatjets[fatjets.muonIdx3SJ >= 0]
        assert ak.sum(ak.num(tagged)) > 10
        assert ak.all(tagged.muonIdx3SJ < ak.num(muons)[:, None])
        assert ak.all(tagged.delta_r(muons[tagged.muonIdx3SJ]) < 0.8)
    # Muon_genPartIdx (MC): the generator muon the reconstructed one comes from
    events = _open_pfnano(samples["zbb"])
    matched = events.Muon[events.Muon.genPartIdx >= 0]
    assert ak.sum(ak.num(matched)) > 10
    gen = matched.matched_gen
    assert ak.all(abs(gen.pdgId) == 13)
    assert ak.all(abs(gen.pt / matched.pt - 1) < 0.2)
    assert "genPartIdx" not in _open_pfnano(samples["zbb_data"]).Muon.fields


def test_branch_names_and_types_match_cms(samples, shared_data):
    """Every branch we write that CMS PFNano also has carries the same C++ type."""
    ours = uproot.open(samples["zbb"])["Events"]
    cms = uproot.open(shared_data / "pfnano.root")["Events"]
    cms_types = {k: v.typename for k, v in cms.items()}
    compared = 0
    for key, branch in ours.items():
        if key.startswith("n") and key[1:] in BRANCHES:
            continue  # counters: int32 here, uint32 in CMS (documented)
        if key in cms_types:
            assert branch.typename == cms_types[key], key
            compared += 1
    assert compared > 80
    expected = {f"{c}_{f}" for c, fs in BRANCHES.items() for f in fs} | set(EVENT_BRANCHES)
    assert expected <= set(ours.keys())


def test_pseudodata_has_no_truth_and_a_sidecar(samples):
    data = uproot.open(samples["zbb_data"])["Events"]
    keys = set(data.keys())
    for collection, fields in MC_ONLY.items():
        for field in fields:
            assert (f"{collection}_{field}" if collection else field) not in keys
    sidecar = uproot.open(truth_sidecar_path(samples["zbb_data"]))["Truth"]
    assert sidecar.num_entries == data.num_entries
    n_jets = data["nFatJet"].array()
    assert ak.all(ak.num(sidecar["FatJet_nBHadrons"].array()) == n_jets)
    assert np.array_equal(sidecar["event"].array(), data["event"].array())
    meta = read_metadata(samples["zbb_data"])
    assert meta["tune"] == "data" and meta["n_events"] == data.num_entries


def _all_arrays(path: Path) -> dict[str, ak.Array]:
    tree = uproot.open(path)["Events"]
    return {k: tree[k].array() for k in tree.keys()}


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    a, b, c, d = (tmp_path / f"{x}.root" for x in "abcd")
    generate("zbb", 40, 5, a, workers=1, chunk_size=20, progress=False)
    generate("zbb", 40, 5, b, workers=2, chunk_size=20, progress=False)
    generate("zbb", 40, 6, c, workers=1, chunk_size=20, progress=False)
    arrays_a, arrays_b, arrays_c = _all_arrays(a), _all_arrays(b), _all_arrays(c)
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert ak.array_equal(arrays_a[key], arrays_b[key]), key
    assert not ak.array_equal(arrays_a["FatJet_pt"], arrays_c["FatJet_pt"])
    # independent: the two seeds share no event
    pts_a = set(np.round(ak.to_numpy(ak.flatten(arrays_a["PFCands_pt"])), 4))
    pts_c = set(np.round(ak.to_numpy(ak.flatten(arrays_c["PFCands_pt"])), 4))
    assert len(pts_a & pts_c) < 0.05 * len(pts_a)
    # data tune with the same seed is another sample, too
    generate("zbb", 40, 5, d, tune="data", workers=1, chunk_size=20, progress=False)
    assert not ak.array_equal(_all_arrays(d)["FatJet_pt"], arrays_a["FatJet_pt"])


def _check(figures: dict[str, float], name: str) -> None:
    check = validation.CHECKS[name]
    assert check.passes(figures[name]), f"{name} = {figures[name]:.4g}, accepted [{check.low}, {check.high}]"


def test_zbb_mass_peak(samples):
    figures = validation.zbb_mass_peak(samples["zbb"])
    assert figures["zbb_n_jets"] > 100
    _check(figures, "zbb_median_msoftdrop")


def test_heavy_flavour_is_visible(samples):
    figures = validation.heavy_flavour_visibility(samples["zbb"], samples["qcd"])
    assert figures["bb_n_jets"] > 100 and figures["light_n_jets"] > 200
    for name in ("bb_sv_fraction", "light_sv_fraction", "ipsig2_ratio_bb_light"):
        _check(figures, name)


def test_qcd_bb_fraction(samples):
    figures = validation.qcd_bb_fraction(samples["qcd"])
    assert figures["qcd_n_jets"] > 500
    _check(figures, "qcd_bb_fraction")


def test_gbb_mu_is_b_enriched(samples):
    figures = validation.gbb_muon_purity(samples["gbb_mu"])
    assert figures["gbb_mu_n_jets"] >= 80  # every event has a muon-tagged fat jet
    _check(figures, "gbb_mu_b_fraction")
    meta = read_metadata(samples["gbb_mu"])
    assert 0 < meta["filter_efficiency"] < 0.5


def test_xbb_flat_mass(samples):
    figures = validation.flat_mass_coverage(samples["xbb"])
    assert figures["xbb_n_jets"] > 250
    _check(figures, "xbb_min_bin_over_mean")


def test_pseudodata_differs_from_mc(samples):
    figures = validation.pseudodata_shift(samples["zbb"], samples["zbb_data"])
    assert figures["bb_n_jets_mc"] > 100 and figures["bb_n_jets_data"] > 100
    _check(figures, "pseudodata_eff_shift")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jettag.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_help_and_errors(tmp_path):
    assert "--process" in _cli("generate", "--help").stdout
    bad = _cli("generate", "--process", "nope", "--events", "5", "--out", str(tmp_path / "x.root"))
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    negative = _cli("generate", "--process", "zbb", "--events", "-3", "--out", str(tmp_path / "x.root"))
    assert negative.returncode == 2 and "positive" in negative.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    unwritable = _cli("generate", "--process", "zbb", "--events", "5", "--out", str(blocked / "x.root"), "--no-progress")
    assert unwritable.returncode == 2
    assert "Traceback" not in unwritable.stderr and len(unwritable.stderr.strip().splitlines()) == 1


def test_readme_detector_table_is_current():
    """The README's detector table is the one the code renders (docs stay true)."""
    from jettag.generator.tunes import detector_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start, end = "<!-- detector-table:start -->", "<!-- detector-table:end -->"
    table = readme[readme.index(start) + len(start) : readme.index(end)].strip()
    assert table == detector_table().strip(), (
        "README detector table is stale: replace it with the output of "
        "python -c 'from jettag.generator.tunes import detector_table; print(detector_table())'"
    )


def test_zmix_pseudodata_mixture(tmp_path):
    """QCD + Z pseudo-data: stated proportions, truth of the origin, enhancement in metadata."""
    out = tmp_path / "zmix.root"
    generate("zmix", 40, 3, out, tune="data", workers=1, chunk_size=40, progress=False)
    truth = uproot.open(truth_sidecar_path(out))["Truth"]
    origin = truth["process"].array(library="np")
    assert np.bincount(origin, minlength=2).tolist() == [38, 2]  # 95% / 5% of 40
    meta = read_metadata(out)
    qcd, z = meta["components"]
    assert (qcd["process"], z["process"]) == ("qcd", "zqq_all")
    assert z["fraction"] == 0.05 and 20 < z["enhancement"] < 5000
    assert "genWeight" not in uproot.open(out)["Events"].keys()
    bad = _cli("generate", "--process", "zmix", "--events", "5", "--out", str(tmp_path / "y.root"))
    assert bad.returncode == 2 and "tune data" in bad.stderr and "Traceback" not in bad.stderr
