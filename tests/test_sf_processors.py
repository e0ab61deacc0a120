"""The scale-factor proxy processors ("sf-gbb", "sf-zbb") and working points.

The processors run through coffea's ``processor.Runner`` on generated files
(``samples``) and on the real CMS files of ../shared/data (skipped where absent);
what they select is recomputed here independently, jet by jet, with uproot and
plain Python.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import awkward as ak
import hist
import numpy as np
import pytest
import uproot

from jettag import corrections, ddt, processors
from jettag.errors import JettagError, MissingInputsError
from jettag.scalefactors import selection as sel
from jettag.scalefactors.workingpoints import WorkingPoints

pytestmark = pytest.mark.filterwarnings("ignore")

SCORE_WPS = {
    "working_points": {
        "L": {"kind": "score", "cut": 0.5},
        "M": {"kind": "score", "cut": 0.8},
        "T": {"kind": "score", "cut": 0.95},
    }
}
DDT_WPS = {
    "L": {"kind": "ddt", "efficiency": 0.05, "map": "ddt-pnet-lite"},
    "T": {"kind": "ddt", "efficiency": 0.01, "map": "ddt-pnet-lite"},
}


def _run(fileset: dict, proc, schema: str = "PFNanoAODSchema", **kwargs) -> dict:
    """The processor through coffea's Runner (dataset names must be unique per call:
    coffea caches file metadata, the fileset's included, by dataset and file)."""
    from coffea import nanoevents, processor

    runner = processor.Runner(
        processor.IterativeExecutor(status=False), schema=getattr(nanoevents, schema), **kwargs
    )
    return runner(fileset, proc, treename="Events")


def _events(path: Path, schema: str = "PFNanoAODSchema"):
    from coffea import nanoevents

    return nanoevents.NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=getattr(nanoevents, schema), mode="virtual"
    ).events()


def _dr(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    dphi = (phi1 - phi2 + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(eta1 - eta2, dphi)


def _direct_gbb_jets(
    path: Path, *, pt_max: float = 1000.0, msd_min: float = 50.0, muons: str = "double"
) -> list[dict]:
    """The g->bb selection recomputed jet by jet with uproot and plain Python (default cuts)."""
    tree = uproot.open(path)["Events"]
    keys = set(tree.keys())
    names = ["FatJet_pt", "FatJet_eta", "FatJet_msoftdrop", "FatJet_subJetIdx1", "FatJet_subJetIdx2",
             "SubJet_eta", "SubJet_phi", "Muon_pt", "Muon_eta", "Muon_phi"]  # fmt: skip
    names += [k for k in ("FatJet_nBHadrons", "FatJet_nCHadrons", "genWeight") if k in keys]
    has_fjsv = "FatJetSVs_jetIdx" in keys
    names += ["FatJetSVs_jetIdx", "FatJetSVs_mass", "FatJetSVs_dxysig"] if has_fjsv else []
    a = tree.arrays(names).tolist()
    out = []
    for ev in a:
        for j, (pt, eta, msd) in enumerate(
            zip(ev["FatJet_pt"], ev["FatJet_eta"], ev["FatJet_msoftdrop"], strict=True)
        ):
            if not (250 < pt < pt_max and abs(eta) < 2.4 and msd > msd_min):
                continue
            axes = []
            for key in ("FatJet_subJetIdx1", "FatJet_subJetIdx2"):
                i = ev[key][j]
                axes.append((ev["SubJet_eta"][i], ev["SubJet_phi"][i]) if i >= 0 else None)
            n = [0, 0]
            for mpt, meta, mphi in zip(ev["Muon_pt"], ev["Muon_eta"], ev["Muon_phi"], strict=True):
                if mpt <= 7 or abs(meta) >= 2.4:
                    continue
                d = [_dr(*ax, meta, mphi) if ax else math.inf for ax in axes]
                if d[0] < 0.4 and d[0] <= d[1]:
                    n[0] += 1
                elif d[1] < 0.4:
                    n[1] += 1
            if (muons == "double" and min(n) < 1) or (muons == "single" and sum(n) < 1):
                continue
            svs = [(s, m) for s, m, k in zip(ev.get("FatJetSVs_dxysig", []), ev.get("FatJetSVs_mass", []),
                                             ev.get("FatJetSVs_jetIdx", []), strict=True) if k == j]  # fmt: skip
            nb, nc = (
                ev.get("FatJet_nBHadrons", [0] * 99)[j],
                ev.get("FatJet_nCHadrons", [0] * 99)[j],
            )
            category = (
                "bb"
                if nb >= 2
                else "b"
                if nb == 1
                else "cc"
                if nc >= 2
                else "c"
                if nc == 1
                else "light"
            )
            out.append({
                "pt": pt, "msoftdrop": msd, "n_mu": n, "category": category,
                "sv_mass": max(svs)[1] if svs else 0.0, "weight": ev.get("genWeight", 1.0),
            })  # fmt: skip
    return out


# ----------------------------------------------------------------------------- working points


def test_working_points_json_round_trip(tmp_path):
    wps = WorkingPoints.from_json(json.dumps(SCORE_WPS))
    assert wps.names == ("L", "M", "T")
    assert wps.cuts() == {"L": 0.5, "M": 0.8, "T": 0.95}
    again = WorkingPoints.from_json(wps.to_json())
    assert again == wps
    path = tmp_path / "wps.json"
    path.write_text(json.dumps({"proxy": "gbb", **WorkingPoints(DDT_WPS, score="s").to_dict()}))
    ddt_wps = WorkingPoints.from_json(path)
    record = ddt_wps.to_dict()["working_points"]
    assert record["T"] == {"kind": "ddt", "cut": 0.0, "efficiency": 0.01, "map": "ddt-pnet-lite",
                           "score": "s", "signal_like": "high"}  # fmt: skip
    assert pickle.loads(pickle.dumps(ddt_wps)) == ddt_wps


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ({}, "no working points"),
        ({"L": {"kind": "cut", "cut": 0.5}}, "'kind' must be 'score' or 'ddt'"),
        ({"L": {"kind": "score"}}, "'cut' must be a finite number"),
        ({"L": {"kind": "score", "cut": float("nan")}}, "'cut' must be a finite number"),
        ({"L": {"kind": "score", "cut": 0.5, "cutt": 1}}, "unknown keys \\['cutt'\\]"),
        ({"L": {"kind": "ddt", "efficiency": 5, "map": "ddt-pnet-lite"}}, "QCD efficiency in"),
        ({"L": {"kind": "ddt", "efficiency": 0.05}}, "'map' must name a DDT map"),
        ({"L": {"kind": "score", "cut": 0.9}, "T": {"kind": "score", "cut": 0.8}}, "T is not tighter than L"),
        ({"L": {"kind": "ddt", "efficiency": 0.01, "map": "m"},
          "M": {"kind": "ddt", "efficiency": 0.05, "map": "m"}}, "M is not tighter than L"),
        ({"L": {"kind": "score", "cut": 0.5, "score": "a"},
          "M": {"kind": "score", "cut": 0.6, "score": "b"}}, "different scores"),
    ],
)  # fmt: skip
def test_working_points_refused(points, message):
    with pytest.raises(JettagError, match=message):
        WorkingPoints(points)


def test_working_points_bad_files(tmp_path):
    with pytest.raises(JettagError, match="no such working-point file"):
        WorkingPoints.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(JettagError, match=r"bad\.json: not valid JSON"):
        WorkingPoints.from_json(bad)
    with pytest.raises(JettagError, match="cut on 'a', not on 'b'"):
        WorkingPoints.resolve({"L": {"kind": "score", "cut": 0.5, "score": "a"}}, score="b")


def test_working_points_pass_fail():
    rng = np.random.default_rng(1)
    n = 5000
    jets = {"pt": rng.uniform(250, 1200, n), "msoftdrop": rng.uniform(40, 250, n)}
    score = rng.uniform(0, 1, n)
    score[:10] = np.nan
    # plain cuts: score > cut; NaN fails; tighter points pass subsets
    passes = WorkingPoints.from_dict(SCORE_WPS).passes(jets, score)
    for name, cut in {"L": 0.5, "M": 0.8, "T": 0.95}.items():
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(passes[name], score > cut)
    assert not passes["L"][:10].any()
    assert np.all(passes["L"] >= passes["M"]) and np.all(passes["M"] >= passes["T"])
    # signal_like="low" (n2b1): score < cut, tighter = lower
    low = WorkingPoints(
        {"L": {"kind": "score", "cut": 0.3}, "T": {"kind": "score", "cut": 0.2}}, signal_like="low"
    ).passes(jets, score)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(low["T"], score < 0.2)
    # DDT: pass exactly when the score exceeds the map's threshold X(rho, pT)
    passes = WorkingPoints(DDT_WPS).passes(jets, score)
    evaluator = corrections.load("ddt-pnet-lite")["ddt_pnet_lite_XbbVsQCD"]
    rho = np.asarray(ddt.rho(jets["msoftdrop"], jets["pt"]))
    for name, eff in (("L", "0.05"), ("T", "0.01")):
        threshold = evaluator.evaluate(rho, jets["pt"], eff, "nominal")
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(passes[name], score > threshold)
    assert np.all(passes["L"] >= passes["T"])
    assert 0.1 < passes["L"].mean() < 0.9  # the map's thresholds lie inside the score's range
    # jagged input keeps the structure
    jagged = WorkingPoints(DDT_WPS).passes(
        ak.unflatten(ak.zip(jets), [n // 2, n - n // 2]), ak.unflatten(score, [n // 2, n - n // 2])
    )
    assert ak.num(jagged["L"]).tolist() == [n // 2, n - n // 2]
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(jagged["L"])), passes["L"])


# ----------------------------------------------------------------------------- layout, registry


def test_registry_pickle_and_layout():
    from jettag.processors.gbb import GbbProxyProcessor
    from jettag.processors.zbb import ZbbProxyProcessor

    assert processors.get("sf-gbb") is GbbProxyProcessor
    assert processors.get("sf-zbb") is ZbbProxyProcessor
    for proc, observable in (
        (
            GbbProxyProcessor("pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS),
            "svmass",
        ),
        (ZbbProxyProcessor("particleNetMD_Xbb", working_points=SCORE_WPS), "msoftdrop"),
    ):
        h = pickle.loads(pickle.dumps(proc)).histogram()
        assert h.axes.name == ("category", "variation", "working_point", "region", "pt", observable)
        assert isinstance(h.storage_type(), hist.storage.Weight)
        for name in ("category", "variation"):
            assert isinstance(h.axes[name], hist.axis.StrCategory) and h.axes[name].traits.growth
        assert list(h.axes["working_point"]) == ["L", "M", "T"]
        assert list(h.axes["region"]) == ["pass", "fail"]
        assert isinstance(h.axes["pt"], hist.axis.Variable)
        assert isinstance(h.axes[observable], hist.axis.Variable)
        record = json.loads(json.dumps(proc.record()))
        assert WorkingPoints.from_dict(record).cuts() == {"L": 0.5, "M": 0.8, "T": 0.95}
        assert record["working_points"]["L"]["score"] == proc.score.description
    with pytest.raises(ValueError, match="muons must be"):
        GbbProxyProcessor("n2b1", working_points=SCORE_WPS, muons="triple")
    with pytest.raises(JettagError, match="neither a shipped tagger"):
        ZbbProxyProcessor("no-such-tagger", discriminant="XbbVsQCD", working_points=SCORE_WPS)


def test_svmass_observable_first_bin_is_no_sv():
    edges = np.asarray(sel.DEFAULT_SVMASS_EDGES)
    mass = np.array([0.0, -1.0, np.nan, 2 * 0.1396, 1.0, 5.28, 1e4])
    x = sel.svmass_observable(mass, edges)
    bins = np.searchsorted(edges, x, side="right") - 1
    assert bins.tolist()[:3] == [0, 0, 0]  # no SV
    assert np.all(bins[3:] >= 1) and np.all(bins < len(edges) - 1)  # SVs never in the first bin
    assert x[4] == pytest.approx(0.0) and bins[-1] == len(edges) - 2  # clipped into the last bin


def test_event_info_data_or_mc():
    from types import SimpleNamespace

    events = SimpleNamespace(
        fields=("FatJet", "genWeight"), metadata={"dataset": "d", "filename": "f.root"}
    )
    assert sel.event_info(events) == ("d", "f.root", False)  # genWeight: MC
    assert sel.event_info(events, is_data=True)[2] is True
    events.metadata = {"is_data": True}
    assert sel.event_info(events) == ("events", "events", True)
    events.metadata = {"filename": "f.root", "is_data": "no"}
    with pytest.raises(JettagError, match=r"f\.root: metadata is_data must be true or false"):
        sel.event_info(events)
    events.fields, events.metadata = ("FatJet",), {}
    assert sel.event_info(events)[2] is True  # no genWeight: data


# ----------------------------------------------------------------------------- g->bb


def test_muons_per_subjet_matches_direct(samples):
    events = _events(samples["gbb_mu"])
    n1, n2 = sel.muons_per_subjet(events)
    tree = uproot.open(samples["gbb_mu"])["Events"]
    a = tree.arrays(["FatJet_subJetIdx1", "FatJet_subJetIdx2", "SubJet_eta", "SubJet_phi",
                     "Muon_pt", "Muon_eta", "Muon_phi"]).tolist()  # fmt: skip
    direct = []
    for ev in a:
        for i1, i2 in zip(ev["FatJet_subJetIdx1"], ev["FatJet_subJetIdx2"], strict=True):
            n = [0, 0]
            for pt, eta, phi in zip(ev["Muon_pt"], ev["Muon_eta"], ev["Muon_phi"], strict=True):
                if pt <= 7 or abs(eta) >= 2.4:
                    continue
                d = [_dr(ev["SubJet_eta"][i], ev["SubJet_phi"][i], eta, phi) if i >= 0 else math.inf
                     for i in (i1, i2)]  # fmt: skip
                n[0] += d[0] < 0.4 and d[0] <= d[1]
                n[1] += d[1] < 0.4 and d[1] < d[0]
            direct.append(n)
    got = np.stack([ak.to_numpy(ak.flatten(n1)), ak.to_numpy(ak.flatten(n2))], axis=1)
    np.testing.assert_array_equal(got, np.array(direct).reshape(-1, 2))
    assert ((got[:, 0] >= 1) & (got[:, 1] >= 1)).sum() >= 1  # some double-muon jets


def test_gbb_on_generated_mc(samples):
    proc = processors.get("sf-gbb")(
        "pnet-lite", discriminant="XbbVsQCD", working_points={**SCORE_WPS["working_points"], **{
            "D": {"kind": "ddt", "efficiency": 0.05, "map": "ddt-pnet-lite"}}},
    )  # fmt: skip
    single = processors.get("sf-gbb")(
        "pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS, muons="single",
        variation="bfrag_up",
    )  # fmt: skip
    out = _run({"gbb_double": [str(samples["gbb_mu"])]}, proc)["gbb_double"]
    out1 = _run({"gbb_single": [str(samples["gbb_mu"])]}, single, chunksize=40)["gbb_single"]
    for result, muons in ((out, "double"), (out1, "single")):
        jets = _direct_gbb_jets(samples["gbb_mu"], muons=muons)
        h = result["templates"]
        assert result["n_events"] == 80
        assert result["n_jets"] == len(jets) == result["cutflow"]["score"]
        assert result["sumw"] == pytest.approx(sum(j["weight"] for j in jets), rel=1e-6)
        assert list(h.axes["variation"]) == (["nominal"] if muons == "double" else ["bfrag_up"])
        # the MC categories come from truth and add up to the selected jets, per working point
        for wp in h.axes["working_point"]:
            per_sample = h[{"working_point": wp, "variation": 0}].project("category")
            assert per_sample.sum().value == pytest.approx(result["sumw"], rel=1e-6)
            for name in per_sample.axes[0]:
                expected = sum(j["weight"] for j in jets if j["category"] == name)
                assert per_sample[name].value == pytest.approx(expected, rel=1e-6)
        # the observable: ln of the SV mass of largest dxy significance, first bin without SV
        edges = h.axes["svmass"].edges
        expected = np.histogram(
            sel.svmass_observable([j["sv_mass"] for j in jets], edges), edges,
            weights=[j["weight"] for j in jets],
        )[0]  # fmt: skip
        got = h[{"working_point": "L", "variation": 0}].project("svmass").values()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
        assert h[{"working_point": "L"}].project("svmass").values(flow=True)[[0, -1]].sum() == 0
    assert out1["n_jets"] > out["n_jets"] >= 1
    assert out1["cutflow"]["kinematics"] == out["cutflow"]["kinematics"]
    # pass/fail: the jets whose score exceeds the cut (scores from the tagger directly)
    from jettag import taggers

    events = _events(samples["gbb_mu"])
    scores = taggers.load("pnet-lite")(events)
    n1, n2 = sel.muons_per_subjet(events)
    fj = events.FatJet
    keep = ak.flatten((fj.pt > 250) & (fj.pt < 1000) & (abs(fj.eta) < 2.4) & (fj.msoftdrop > 50)
                      & ((n1 + n2) >= 1)).to_numpy()  # fmt: skip
    xbb = ak.flatten(scores.Xbb / (scores.Xbb + scores.QCD)).to_numpy()[keep]
    w = np.repeat(ak.to_numpy(events.genWeight), ak.num(fj)).astype(np.float64)[keep]
    h = out1["templates"]
    for wp, cut in (("L", 0.5), ("M", 0.8), ("T", 0.95)):
        region = h[{"working_point": wp}].project("region")
        assert region["pass"].value == pytest.approx(w[xbb > cut].sum(), rel=1e-6, abs=1e-15)
        assert region["fail"].value == pytest.approx(w[xbb <= cut].sum(), rel=1e-6, abs=1e-15)


def test_gbb_pseudo_data_and_accumulation(samples):
    proc = processors.get("sf-gbb")("n2b1", working_points={
        "L": {"kind": "score", "cut": 0.4, "signal_like": "low"},
        "T": {"kind": "score", "cut": 0.2, "signal_like": "low"}}, muons="single")  # fmt: skip
    from coffea.processor import accumulate

    # MC forced to data (fileset metadata): "data", weight 1, nominal, no truth needed
    fileset = {"gbb_as_data": {"files": [str(samples["gbb_mu"])], "metadata": {"is_data": True}}}
    data = _run(fileset, proc)["gbb_as_data"]
    h = data["templates"]
    assert list(h.axes["category"]) == ["data"] and list(h.axes["variation"]) == ["nominal"]
    assert (
        data["sumw"] == data["n_jets"] == len(_direct_gbb_jets(samples["gbb_mu"], muons="single"))
    )
    assert h[{"working_point": "L"}].sum().value == data["n_jets"]
    # two chunks add up to one
    mc = proc.process(_events(samples["gbb_mu"]))
    both = accumulate([mc, mc])["events"]
    assert both["n_jets"] == 2 * mc["events"]["n_jets"]
    assert both["cutflow"]["all"] == 2 * mc["events"]["cutflow"]["all"]
    assert both["templates"].sum().value == pytest.approx(2 * mc["events"]["templates"].sum().value)


def test_gbb_on_real_pfnano(shared_data):
    # the real jets are above 1 TeV and the muons in them in light jets (msoftdrop < 50 GeV):
    # widen the pT range and drop the mass cut to select some
    pfnano = shared_data / "pfnano.root"
    proc = processors.get("sf-gbb")(
        "pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS, muons="single",
        pt_edges=(250, 500, 1000, 2000), msd_min=0.0,
    )  # fmt: skip
    out = _run({"pfnano_gbb": [str(pfnano)]}, proc)["pfnano_gbb"]
    jets = _direct_gbb_jets(pfnano, pt_max=2000, msd_min=0.0, muons="single")
    assert out["n_jets"] == len(jets) >= 1
    h = out["templates"]
    per_sample = h[{"working_point": "M", "variation": 0}].project("category")
    assert per_sample.sum().value == pytest.approx(out["sumw"], rel=1e-6)
    for name in per_sample.axes[0]:
        expected = sum(j["weight"] for j in jets if j["category"] == name)
        assert per_sample[name].value == pytest.approx(expected, rel=1e-6)
    edges = h.axes["svmass"].edges
    expected = np.histogram(
        sel.svmass_observable([j["sv_mass"] for j in jets], edges), edges,
        weights=[j["weight"] for j in jets],
    )[0]  # fmt: skip
    got = h[{"working_point": "M", "variation": 0}].project("svmass").values()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # the default selection keeps none of these jets, cleanly
    default = processors.get("sf-gbb")(
        "pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS
    )
    (out,) = default.process(_events(pfnano)).values()
    assert out["n_jets"] == len(_direct_gbb_jets(pfnano)) == 0
    assert out["cutflow"]["all"] == 24 and out["templates"].sum().value == 0


def test_real_plain_nanoaod(shared_data):
    dimuon, dy = shared_data / "nano_dimuon.root", shared_data / "nano_dy.root"
    wps = {"L": {"kind": "score", "cut": 0.5}, "T": {"kind": "score", "cut": 0.9}}
    gbb = processors.get("sf-gbb")(
        "btagDDBvL", working_points=wps, muons="single", pt_edges=(250, 2000)
    )
    # nano_dimuon.root is data (no genWeight): "data", weight 1, SVs from SV within 0.8;
    # nano_dy.root is MC (genWeight) without hadron counts, run as data as the fileset says
    fileset = {
        "dimuon_gbb": [str(dimuon)],
        "dy_data": {"files": [str(dy)], "metadata": {"is_data": True}},
    }
    out = _run(fileset, gbb, schema="NanoAODSchema")
    direct = _direct_gbb_jets(dimuon, pt_max=2000, muons="single")
    assert out["dimuon_gbb"]["n_events"] == 40 and out["dimuon_gbb"]["cutflow"]["all"] == 7
    assert out["dimuon_gbb"]["n_jets"] == len(direct) >= 1
    assert out["dimuon_gbb"]["sumw"] == len(direct)
    assert list(out["dimuon_gbb"]["templates"].axes["category"]) == ["data"]
    assert out["dy_data"]["n_events"] == 40 and out["dy_data"]["n_jets"] == 0  # no fat jet here
    events = _with_source(dimuon)
    zbb = processors.get("sf-zbb")("btagDDBvL", working_points=wps, pt_edges=(300, 2000))
    (result,) = zbb.process(events).values()
    assert result["n_jets"] >= 1 and list(result["templates"].axes["category"]) == ["data"]
    # what cannot be done is said in one line naming the file and the branch: MC without
    # hadron counts, a column the file lacks, a PF-candidate tagger on plain NanoAOD
    with pytest.raises(MissingInputsError, match=r"nano_dy\.root: no branch FatJet_nBHadrons"):
        gbb.process(_with_source(dy))
    with pytest.raises(
        MissingInputsError, match=r"nano_dimuon\.root: no branch FatJet_particleNet_XbbVsQCD"
    ):
        processors.get("sf-zbb")("particleNet_XbbVsQCD", working_points=wps).process(events)
    tagger = processors.get("sf-gbb")("pnet-lite", discriminant="XbbVsQCD", working_points=wps)
    with pytest.raises(MissingInputsError, match=r"nano_dimuon\.root: .*PFCands") as err:
        tagger.process(events)
    assert "\n" not in str(err.value)


def _with_source(path: Path):
    """NanoAOD events whose metadata names their file, as coffea's Runner sets it."""
    from coffea import nanoevents

    return nanoevents.NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=nanoevents.NanoAODSchema, mode="virtual",
        metadata={"dataset": "d", "filename": str(path)},
    ).events()  # fmt: skip


# ----------------------------------------------------------------------------- Z->bb


def _direct_z_jets(path: Path) -> list[dict]:
    """The leading jet of each event with the default Z->bb cuts; its category from GenPart."""
    tree = uproot.open(path)["Events"]
    keys = set(tree.keys())
    names = ["FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_msoftdrop"]
    truth = "GenPart_pdgId" in keys
    names += ["GenPart_pdgId", "GenPart_status", "GenPart_eta", "GenPart_phi",
              "GenPart_genPartIdxMother"] if truth else []  # fmt: skip
    names += ["genWeight"] if "genWeight" in keys else []
    out = []
    for ev in tree.arrays(names).tolist():
        if not ev["FatJet_pt"]:
            continue
        j = int(np.argmax(ev["FatJet_pt"]))
        pt, eta, msd = ev["FatJet_pt"][j], ev["FatJet_eta"][j], ev["FatJet_msoftdrop"][j]
        if not (300 < pt < 1000 and abs(eta) < 2.4 and 40 <= msd < 200):
            continue
        category = "data"
        if truth:
            category = "qcd"
            gen = list(zip(ev["GenPart_pdgId"], ev["GenPart_status"], ev["GenPart_eta"],
                           ev["GenPart_phi"], ev["GenPart_genPartIdxMother"], strict=True))  # fmt: skip
            for k, (pdg, status, geta, gphi, _) in enumerate(gen):
                if pdg == 23 and status == 62 and _dr(eta, ev["FatJet_phi"][j], geta, gphi) < 0.8:
                    quarks = [abs(p) for p, *_, mother in gen if mother == k and 1 <= abs(p) <= 5]
                    flavour = max(quarks, default=0)
                    category = {5: "zbb", 4: "zcc"}.get(flavour, "zqq" if flavour else "qcd")
        out.append({"category": category, "weight": ev.get("genWeight", 1.0)})
    return out


def test_zbb_on_generated(samples):
    proc = processors.get("sf-zbb")("pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS)
    fileset = {name: [str(samples[name])] for name in ("zbb", "qcd", "zbb_data")}
    out = _run(fileset, proc)
    for name in fileset:
        result, jets = out[name], _direct_z_jets(samples[name])
        h = result["templates"]
        assert result["n_jets"] == len(jets) <= result["n_events"]
        assert result["sumw"] == pytest.approx(sum(j["weight"] for j in jets), rel=1e-6)
        per_sample = h[{"working_point": "T", "variation": 0}].project("category")
        assert per_sample.sum().value == pytest.approx(result["sumw"], rel=1e-6)
        assert {c: per_sample[c].value for c in per_sample.axes[0]} == pytest.approx(
            {c: sum(j["weight"] for j in jets if j["category"] == c) for c in per_sample.axes[0]},
            rel=1e-6,
        )
        assert h.axes["msoftdrop"].edges[[0, -1]].tolist() == [40, 200]
        assert h.project("msoftdrop").values(flow=True)[[0, -1]].sum() == 0
    assert set(out["zbb"]["templates"].axes["category"]) >= {"zbb"}
    assert set(out["qcd"]["templates"].axes["category"]) == {"qcd"}
    assert set(out["zbb_data"]["templates"].axes["category"]) == {"data"}
    zbb = out["zbb"]["templates"][{"category": "zbb", "variation": 0}]
    # Z->bb jets peak near the Z mass; the tighter the point, the fewer pass
    msd = zbb[{"working_point": "L"}].project("msoftdrop")
    centers = msd.axes[0].centers
    assert 75 < np.average(centers, weights=msd.values()) < 110
    passed = [zbb[{"working_point": wp, "region": "pass"}].sum().value for wp in ("L", "M", "T")]
    assert passed[0] >= passed[1] >= passed[2] and passed[0] > 0
    # every leading jet: more jets than leading-only
    every = processors.get("sf-zbb")("pnet-lite", discriminant="XbbVsQCD", working_points=SCORE_WPS,
                                      jets="all")  # fmt: skip
    assert (
        _run({"zbb_all": [str(samples["zbb"])]}, every)["zbb_all"]["n_jets"] > out["zbb"]["n_jets"]
    )
