"""`jettag ddt histogram | derive | report` end to end, and the closure figures."""

from __future__ import annotations

import json
import shutil
import subprocess

import correctionlib
import numpy as np
import pytest
import uproot

from jettag import ddt, decorrelation
from jettag.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")


# ---------------------------------------------------------------------------- closure figures


def _jets(n: int, seed: int, rate) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rho = rng.uniform(-6, -2, n)
    pt = rng.uniform(300, 500, n)
    weight = rng.uniform(0.5, 1.5, n)
    passed = rng.random(n) < rate(rho, pt)
    return {"rho": rho, "pt": pt, "weight": weight, "passed": passed}


def test_closure_accepts_a_flat_rate_and_catches_a_bin_off():
    edges = {"rho_edges": np.linspace(-6, -2, 5), "pt_edges": np.array([300.0, 400.0, 500.0])}
    flat = _jets(400_000, 1, lambda r, p: np.full_like(r, 0.05))
    c = decorrelation.closure(
        flat["passed"], flat["rho"], flat["pt"], flat["weight"], efficiency=0.05, **edges
    )
    assert c["n_bins_tested"] == 8
    assert 0.3 < c["chi2_per_bin"] < 2.5
    assert c["max_relative_deviation"] < 0.1
    # one bin (rho in [-6, -5], pT < 400) passes 30% too often: caught
    off = _jets(400_000, 2, lambda r, p: np.where((r < -5) & (p < 400), 0.065, 0.05))
    c = decorrelation.closure(
        off["passed"], off["rho"], off["pt"], off["weight"], efficiency=0.05, **edges
    )
    assert c["chi2_per_bin"] > 5
    assert c["max_relative_deviation"] > 0.2
    assert c["bins"]["rate"][0, 0] == pytest.approx(0.065, abs=0.006)
    # bins expecting fewer than 50 passing jets are not tested
    few = _jets(3000, 3, lambda r, p: np.full_like(r, 0.05))
    c = decorrelation.closure(
        few["passed"], few["rho"], few["pt"], few["weight"], efficiency=0.05, **edges
    )
    assert c["n_bins_tested"] == 0 and c["chi2_per_bin"] is None and "note" in c


def test_map_error_lowers_the_chi2():
    edges = {"rho_edges": np.linspace(-6, -2, 5), "pt_edges": np.array([300.0, 400.0, 500.0])}
    j = _jets(200_000, 4, lambda r, p: np.full_like(r, 0.055))
    c = decorrelation.closure(
        j["passed"], j["rho"], j["pt"], j["weight"], efficiency=0.05,
        map_counts=np.full((4, 2), 20_000.0), **edges,
    )
    assert c["chi2_per_bin_with_map_error"] < c["chi2_per_bin"]
    assert c["map_to_test_variance"] == pytest.approx(1.2, rel=0.3)


def test_fixed_cut_passes_the_requested_fraction():
    rng = np.random.default_rng(5)
    s, w = rng.random(50_000), rng.uniform(0.1, 2, 50_000)
    t = decorrelation.fixed_cut(s, w, 0.05, "high")
    assert np.sum(w * (s > t)) / w.sum() == pytest.approx(0.05, abs=1e-3)
    t = decorrelation.fixed_cut(s, w, 0.05, "low")
    assert np.sum(w * (s < t)) / w.sum() == pytest.approx(0.05, abs=1e-3)


# ---------------------------------------------------------------------------- the command


def test_histogram_derive_report(samples, tmp_path):
    qcd = samples["qcd"]
    h = tmp_path / "h.root"
    args = ["--score", "n2b1", "--msd-range", "40,250", "--rho-bins", "12,-7,-1"]
    assert main(["ddt", "histogram", str(qcd), *args, "--out", str(h)]) == 0
    with uproot.open(h) as f:  # a plain ROOT file: TH3D and its record
        assert f.classnames()["ddt;1"] == "TH3D"
        record = json.loads(str(f["ddt_record"]))
    assert record["score"] == "n2b1" and record["signal_like"] == "low"
    assert record["msd_range"] == [40.0, 250.0] and record["inputs"] == [str(qcd)]
    # the histogram holds the selected jets' weight
    hist, _ = ddt.read_histograms([h])
    assert hist.sum(flow=True).value == pytest.approx(record["sumw"], rel=1e-9)
    # an existing output is refused; an input is never overwritten
    assert main(["ddt", "histogram", str(qcd), *args, "--out", str(h)]) == 2
    assert main(["ddt", "histogram", str(qcd), *args, "--out", str(qcd), "--force"]) == 2

    # two histogram files sum; 800 events are too few for the default pooling: a
    # statistics-limited map that says so
    h2 = tmp_path / "h2.root"
    shutil.copy(h, h2)
    out = tmp_path / "map"
    assert main(["ddt", "derive", str(h), str(h2), "--efficiencies", "0.05,0.2", "--out", str(out)]) == 0
    cset = correctionlib.CorrectionSet.from_file(str(out / "ddt_map.json"))
    corr = cset["ddt_n2b1"]
    assert "signal_like=low" in corr.description and "jettag ddt derive" in corr.description
    assert (out / "ddt_map.png").stat().st_size > 0
    assert "in-sample closure" in (out / "closure.md").read_text()
    if shutil.which("correction"):
        subprocess.run(["correction", "validate", str(out / "ddt_map.json")], check=True)

    rep = tmp_path / "report"
    code = main(
        ["ddt", "report", str(qcd), "--map", str(out / "ddt_map.json"), "--score", "n2b1",
         "--msd-range", "40,250", "--signal", str(samples["zbb"]), "--derivation", str(h), str(h2),
         "--out", str(rep)]
    )
    assert code == 0
    result = json.loads((rep / "report.json").read_text())
    assert [wp["efficiency"] for wp in result["working_points"]] == [0.05, 0.2]
    wp = result["working_points"][1]
    # the map was derived on these very jets (twice): the DDT cut passes about 20% of them
    assert wp["cuts"]["ddt"]["closure"]["pass_rate"] == pytest.approx(0.2, abs=0.05)
    assert wp["cuts"]["fixed"]["closure"]["pass_rate"] == pytest.approx(0.2, abs=0.02)
    assert 0 < wp["cuts"]["ddt"]["signal_efficiency"]["zbb"] < 1
    assert (rep / "pass_rate_0.2.png").is_file() and "DDT report" in (rep / "report.md").read_text()

    # the closure tested in bins of 3 merged rho bins: 4 rho bins instead of 12
    merged = tmp_path / "merged"
    assert main(
        ["ddt", "report", str(qcd), "--map", str(out / "ddt_map.json"), "--score", "n2b1",
         "--msd-range", "40,250", "--derivation", str(h), "--closure-rho-merge", "3",
         "--out", str(merged)]
    ) == 0
    m = json.loads((merged / "report.json").read_text())
    closure = m["working_points"][1]["cuts"]["ddt"]["closure"]
    assert closure["n_bins"] == 4 * 7 and m["closure_rho_merge"] == 3
    assert closure["n_jets"] == result["working_points"][1]["cuts"]["ddt"]["closure"]["n_jets"]

    # bad input: a histogram file that is not one, a map without the working point
    assert main(["ddt", "derive", str(qcd), "--out", str(tmp_path / "bad")]) == 2
    assert main(
        ["ddt", "report", str(qcd), "--map", str(out / "ddt_map.json"), "--score", "n2b1",
         "--efficiencies", "0.01", "--out", str(tmp_path / "bad2")]
    ) == 2
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_nanoaod_column_on_real_nanoaod(shared_data, tmp_path, capsys):
    # nano_dy.root (plain NanoAOD, 40 events) holds no fat jet at all: the histogram
    # is written (empty, valid) and derive says there is nothing to derive from
    nano_dy = shared_data / "nano_dy.root"
    h = tmp_path / "dy.root"
    assert main(["ddt", "histogram", str(nano_dy), "--score", "btagDDBvL", "--out", str(h)]) == 0
    assert "0 jets selected from 40 events" in capsys.readouterr().out
    assert main(["ddt", "derive", str(h), "--out", str(tmp_path / "m")]) == 2
    assert "no jets" in capsys.readouterr().err
    # a column the file lacks: one line naming it
    assert main(["ddt", "histogram", str(nano_dy), "--score", "particleNet_XbbVsQCD",
                 "--out", str(tmp_path / "x.root")]) == 2
    assert "particleNet_XbbVsQCD" in capsys.readouterr().err

    # real PFNano (24 fat jets, 10 events): a statistics-limited map from the
    # NanoAOD column, valid, and applied back to the file's jets
    pfnano = shared_data / "pfnano.root"
    h = tmp_path / "pf.root"
    assert main(["ddt", "histogram", str(pfnano), "--score", "btagDDBvLV2",
                 "--pt-edges", "170,300,3000", "--out", str(h)]) == 0
    assert main(["ddt", "derive", str(h), "--out", str(tmp_path / "pfmap")]) == 0
    assert "statistics-limited" in capsys.readouterr().err
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    for path in (pfnano, nano_dy):
        events = NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=NanoAODSchema, mode="eager"
        ).events()
        value = ddt.apply(tmp_path / "pfmap" / "ddt_map.json", events.FatJet,
                          events.FatJet.btagDDBvLV2 if "btagDDBvLV2" in events.FatJet.fields
                          else events.FatJet.btagDDBvL, efficiency=0.05)
        assert len(value) == len(events)
        assert str(value.type).endswith("var * float64")
