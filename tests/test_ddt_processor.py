"""The DDT histogram processor (processors/ddt_map.py, registered as "ddt-histogram")."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from jettag import ddt, processors
from jettag.errors import JettagError, MissingInputsError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def qcd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from jettag.generator import generate

    out = tmp_path_factory.mktemp("ddt_processor") / "qcd.root"
    generate("qcd", 200, seed=11, out=out, workers=1, chunk_size=100, progress=False)
    return out


def _events(path: Path, schema: str = "PFNanoAODSchema", mode: str = "eager"):
    from coffea import nanoevents

    return nanoevents.NanoEventsFactory.from_root(
        {str(path): "Events"}, schemaclass=getattr(nanoevents, schema), mode=mode
    ).events()


def _expected(path: Path, score: str | None, *, msd_range=None) -> tuple[int, float]:
    """Selected jets and their summed genWeight, computed independently with uproot + numpy."""
    import awkward as ak
    import uproot

    names = ["FatJet_pt", "FatJet_eta", "FatJet_msoftdrop", "genWeight"]
    if score:
        names.append(f"FatJet_{score}")
    arrays = uproot.open(path)["Events"].arrays(names)
    w = ak.flatten(ak.broadcast_arrays(arrays.genWeight, arrays.FatJet_pt)[0])
    pt = ak.flatten(arrays.FatJet_pt).to_numpy()
    eta = ak.flatten(arrays.FatJet_eta).to_numpy()
    msd = ak.flatten(arrays.FatJet_msoftdrop).to_numpy().astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 2 * np.log(msd / pt)
    sel = (pt > 300) & (pt < 3000) & (np.abs(eta) < 2.4) & (msd > 0) & (rho >= -7) & (rho < -1)
    if score:
        sel &= np.isfinite(ak.flatten(arrays[f"FatJet_{score}"]).to_numpy())
    if msd_range:
        sel &= (msd >= msd_range[0]) & (msd < msd_range[1])
    w = w.to_numpy().astype(np.float64)[sel]
    return int(sel.sum()), float(w.sum())


def test_registry_and_pickle():
    cls = processors.get("ddt-histogram")
    from jettag.processors.ddt_map import DDTHistogramProcessor

    assert cls is DDTHistogramProcessor
    assert "ddt-histogram" in processors.available()
    for proc in (cls("n2b1", signal_like="low"), cls("pnet-lite", discriminant="XbbVsQCD")):
        clone = pickle.loads(pickle.dumps(proc))
        assert clone.description == proc.description
        assert clone.histogram().axes == proc.histogram().axes


def test_bad_arguments():
    from jettag import taggers

    cls = processors.get("ddt-histogram")
    with pytest.raises(ValueError, match="discriminant"):
        cls(taggers.load("pnet-lite"))
    with pytest.raises(ValueError, match="unknown class 'Hbb'"):
        cls("pnet-lite", discriminant="HbbVsQCD")
    with pytest.raises(JettagError, match="neither a shipped tagger"):
        cls("no-such-tagger", discriminant="XbbVsQCD")
    with pytest.raises(ValueError, match="signal_like"):
        cls("n2b1", signal_like="up")


def test_axes_documented():
    cls = processors.get("ddt-histogram")
    h = cls("n2b1", signal_like="low").histogram()
    assert h.axes.name == ("rho", "pt", "score")
    assert h.axes["rho"].size == 24
    assert tuple(h.axes["rho"].edges[[0, -1]]) == (-7.0, -1.0)
    assert list(h.axes["pt"].edges) == [300, 400, 500, 650, 800, 1000, 1500, 3000]
    assert h.axes["score"] == ddt.score_axis("substructure", label="n2b1")
    h = cls("pnet-lite", discriminant="XbbVsQCD").histogram()
    assert h.axes["score"] == ddt.score_axis("tagger", label="pnet_lite XbbVsQCD")
    assert h.axes["score"].label == "pnet_lite XbbVsQCD"
    custom = ddt.score_axis("substructure", bins=50, high=1.0)
    assert cls("n2b1", signal_like="low", score_axis=custom).histogram().axes["score"] == custom


def test_n2b1_on_generated_qcd(qcd_file):
    proc = processors.get("ddt-histogram")("n2b1", signal_like="low")
    proc = pickle.loads(pickle.dumps(proc))
    out = proc.process(_events(qcd_file))
    (result,) = out.values()
    h = result["ddt"]
    n_jets, sumw = _expected(qcd_file, "n2b1")
    assert n_jets > 50
    assert result["n_jets"] == n_jets
    assert result["n_events"] == 200
    assert result["sumw"] == pytest.approx(sumw, rel=1e-9)
    assert h.sum(flow=True).value == pytest.approx(sumw, rel=1e-9)
    # the selection keeps jets inside the rho and pT ranges: no rho/pT flow
    assert h.project("rho", "pt").sum(flow=False).value == pytest.approx(sumw, rel=1e-9)
    # 200 events: far too sparse for the default min_passing -- a map that says so
    sparse = ddt.derive_map(h, [0.05], signal_like=proc.signal_like)
    assert sparse.filled.all() and "statistics-limited" in sparse.notes[0]
    ddt_map = ddt.derive_map(h, [0.05], signal_like=proc.signal_like, min_passing=1)
    assert ddt_map.values.shape == (1, 24, 7)
    assert np.all((ddt_map.values >= 0) & (ddt_map.values <= 0.5))
    assert ddt_map.score == "n2b1"
    # accumulatable: two chunks add
    from coffea.processor import accumulate

    both = accumulate([out, proc.process(_events(qcd_file, mode="virtual"))])
    assert both["events"]["n_jets"] == 2 * n_jets
    assert both["events"]["ddt"].sum(flow=True).value == pytest.approx(2 * sumw, rel=1e-9)


def test_tagger_on_generated_qcd(qcd_file):
    proc = processors.get("ddt-histogram")("pnet-lite", discriminant="XbbVsQCD")
    proc = pickle.loads(pickle.dumps(proc))
    events = _events(qcd_file)
    (result,) = proc.process(events).values()
    h = result["ddt"]
    n_jets, sumw = _expected(qcd_file, None, msd_range=(40.0, 250.0))
    assert n_jets > 20
    assert result["n_jets"] == n_jets
    assert h.sum(flow=True).value == pytest.approx(sumw, rel=1e-9)
    # the score stored is Xbb / (Xbb + QCD), inside [0, 1]
    assert h.project("score")[::sum].value == pytest.approx(sumw, rel=1e-9)
    ddt_map = ddt.derive_map(h, [0.05], min_passing=1)
    assert np.all((ddt_map.values >= 0) & (ddt_map.values <= 1))
    assert ddt_map.score == "pnet_lite XbbVsQCD"
    # without the training phase space more jets are kept
    loose = processors.get("ddt-histogram")("pnet-lite", discriminant="XbbVsQCD", phase_space=False)
    (all_jets,) = loose.process(events).values()
    assert all_jets["n_jets"] == _expected(qcd_file, None)[0] >= n_jets


def test_dask_refused_clearly(qcd_file):
    proc = processors.get("ddt-histogram")("n2b1", signal_like="low")
    with pytest.raises(NotImplementedError, match="mode='eager'"):
        proc.process(_events(qcd_file, mode="dask"))


@pytest.fixture(scope="module")
def nano_dy() -> Path:
    path = SHARED_DATA / "nano_dy.root"
    if not path.is_file():
        pytest.skip(
            "../shared/data/nano_dy.root is not present (real CMS files are not part of the repository)"
        )
    return path


@pytest.mark.filterwarnings("ignore")
def test_nanoaod_column_on_real_nanoaod(nano_dy):
    # this file (an old NanoAOD) has no particleNet columns; btagDDBvL is its 0-1 Hbb score
    proc = processors.get("ddt-histogram")("btagDDBvL")
    (result,) = proc.process(_events(nano_dy, "NanoAODSchema")).values()
    n_jets, sumw = _expected(nano_dy, "btagDDBvL")
    assert result["n_events"] == 40
    assert result["n_jets"] == n_jets
    assert result["ddt"].sum(flow=True).value == pytest.approx(sumw, abs=1e-9)
    with pytest.raises(KeyError, match="no branch FatJet_particleNet_XbbVsQCD"):
        processors.get("ddt-histogram")("particleNet_XbbVsQCD").process(
            _events(nano_dy, "NanoAODSchema")
        )


@pytest.mark.filterwarnings("ignore")
def test_tagger_on_plain_nanoaod_is_missing_inputs(nano_dy):
    proc = processors.get("ddt-histogram")("pnet-lite", discriminant="XbbVsQCD")
    with pytest.raises(MissingInputsError, match="FatJetPFCands"):
        proc.process(_events(nano_dy, "NanoAODSchema"))
