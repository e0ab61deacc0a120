"""``jettag sf`` (histogram, fit, combine) and the template files of scalefactors.io.

The proxy runs use the generated ``zbb`` (MC) and ``zbb_data`` (pseudo-data) samples with
the ``FatJet_n2b1`` column as the score (no tagger inference: seconds), in one wide pT bin.
Fits whose outcome must be known (all bins fit; a bin fails) run on the MC given as data or on
synthetic templates written with :func:`write_templates`.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import correctionlib
import numpy as np
import pytest
import uproot

from jettag.cli import main
from jettag.errors import JettagError
from jettag.scalefactors import selection as sel
from jettag.scalefactors.io import read_templates, write_templates
from jettag.scalefactors.templates import make_template_hist

pytestmark = pytest.mark.filterwarnings("ignore")

WPS = {
    "working_points": {
        "L": {"kind": "score", "cut": 0.35, "score": "n2b1", "signal_like": "low"},
        "T": {"kind": "score", "cut": 0.25, "score": "n2b1", "signal_like": "low"},
    }
}
PT = "300,1000"


def _jettag(*argv: object) -> tuple[int, str, str]:
    """Run the jettag CLI in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _error(argv: list[object]) -> str:
    """The one-line error of a command that must fail."""
    rc, _, err = _jettag(*argv)
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.startswith("jettag sf: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sf_cli")
    (path / "wp.json").write_text(json.dumps(WPS))
    return path


@pytest.fixture(scope="module")
def templates(samples: dict[str, Path], work: Path) -> dict[str, object]:
    """zbb MC, zbb_data (as data, two workers) and the zbb MC given as --data: three files."""
    common = ["--proxy", "zbb", "--score", "n2b1", "--working-points", work / "wp.json",
              "--pt-edges", PT]  # fmt: skip
    runs = {
        "mc": [samples["zbb"], *common],
        "data": [samples["zbb_data"], *common, "--workers", 2],
        "asdata": [samples["zbb"], *common, "--data"],
    }
    out: dict[str, object] = {}
    for name, argv in runs.items():
        rc, stdout, stderr = _jettag("sf", "histogram", *argv, "--out", work / f"{name}.root")
        assert rc == 0, stderr
        out[name] = work / f"{name}.root"
        out[f"{name}_stdout"] = stdout
    return out


def _gbb_hist(pt_edges=(300.0, 1000.0), *, pass_data: bool = True, scale: float = 1.0):
    """Synthetic g->bb templates with data = the MC sum (rounded): a fit that converges.

    ``pass_data=False`` empties the data pass region of T (a fit that must fail).
    """
    h = make_template_hist("gbb", sel.DEFAULT_SVMASS_EDGES, pt_edges, ["L", "T"])
    n_obs = len(sel.DEFAULT_SVMASS_EDGES) - 1
    x = np.linspace(0.0, 1.0, n_obs)
    shapes = {
        "bb": 40 * np.exp(-((x - 0.8) ** 2) / 0.05) + 2,
        "b": 30 * np.exp(-((x - 0.6) ** 2) / 0.08) + 2,
        "cc": 20 * np.exp(-((x - 0.5) ** 2) / 0.08) + 2,
        "c": 30 * np.exp(-((x - 0.35) ** 2) / 0.05) + 2,
        "light": 60 * np.exp(-((x - 0.1) ** 2) / 0.05) + 2,
    }
    eff = {"L": {"bb": 0.7, "b": 0.4, "cc": 0.3, "c": 0.2, "light": 0.1},
           "T": {"bb": 0.4, "b": 0.15, "cc": 0.1, "c": 0.05, "light": 0.02}}  # fmt: skip
    centres = 0.5 * (np.asarray(sel.DEFAULT_SVMASS_EDGES[1:]) + sel.DEFAULT_SVMASS_EDGES[:-1])
    pt_centres = 0.5 * (np.asarray(pt_edges[1:]) + pt_edges[:-1])
    for wp in ("L", "T"):
        for pt in pt_centres:
            total = {"pass": np.zeros(n_obs), "fail": np.zeros(n_obs)}
            for c, shape in shapes.items():
                for region, frac in (("pass", eff[wp][c]), ("fail", 1 - eff[wp][c])):
                    w = scale * shape * frac
                    # weight 0.5 per entry: sumw = w, sumw2 = w / 2
                    h.fill(category=c, variation="nominal", working_point=wp, region=region,
                           pt=pt, svmass=np.repeat(centres, np.round(2 * w).astype(int)),
                           weight=0.5)  # fmt: skip
                    total[region] += np.round(2 * w) / 2
            for region, counts in total.items():
                if region == "pass" and wp == "T" and not pass_data:
                    counts = np.zeros(n_obs)
                h.fill(category="data", variation="nominal", working_point=wp, region=region,
                       pt=pt, svmass=np.repeat(centres, np.round(counts).astype(int)))  # fmt: skip
    return h


def _gbb_record(**extra) -> dict:
    return {"proxy": "gbb", "score": "n2b1", **WPS, "selection": {"muons": "double"}, **extra}


# ---------------------------------------------------------------------------- io


def test_templates_round_trip_exact(tmp_path: Path) -> None:
    """write_templates / read_templates give back every value and variance, flow included;
    each template is a TH1D that uproot reads by its Combine-like name."""
    rng = np.random.default_rng(7)
    h = make_template_hist("zbb", np.arange(40.0, 201.0, 8.0), [300.0, 400.5, 1000.0], ["L", "T"])
    n = 4000
    h.fill(
        category=rng.choice(["zbb", "qcd", "data"], n),
        variation=rng.choice(["nominal", "bfrag_up", "bfrag_down"], n),
        working_point=rng.choice(["L", "T"], n),
        region=rng.choice(["pass", "fail"], n),
        pt=rng.uniform(250.0, 1100.0, n),  # some jets in the pT under/overflow
        msoftdrop=rng.uniform(30.0, 210.0, n),  # and in the observable's
        weight=rng.uniform(0.2, 3.0, n),
    )
    out = write_templates(h, tmp_path / "t.root", {"proxy": "zbb", **WPS, "n_jets": n})
    back, records = read_templates([out])
    assert [list(back.axes[i]) for i in range(2)] == [list(h.axes[i]) for i in range(2)]
    inner = (slice(None), slice(None), slice(0, 2), slice(0, 2))
    np.testing.assert_array_equal(back.values(flow=True)[inner], h.values(flow=True)[inner])
    np.testing.assert_array_equal(back.variances(flow=True)[inner], h.variances(flow=True)[inner])
    assert records[0]["n_jets"] == n and records[0]["file"] == str(out)
    assert records[0]["layout"]["pt_flow"] == ["underflow", "overflow"]

    with uproot.open(out) as f:
        th1 = f["L/pt400p5to1000/pass/zbb__bfrag_up"]
        assert th1.classname == "TH1D"
        cell = h[{"category": "zbb", "variation": "bfrag_up", "working_point": "L",
                  "region": "pass", "pt": 1}]  # fmt: skip
        np.testing.assert_array_equal(th1.values(flow=True), cell.values(flow=True))
        np.testing.assert_array_equal(th1.variances(flow=True), cell.variances(flow=True))
        np.testing.assert_array_equal(th1.axis().edges(), np.arange(40.0, 201.0, 8.0))
        assert "T/pt300to400p5/fail/data" in f
        assert "T/pt300to400p5/fail/data__bfrag_up" in f  # filled above: written
        record = json.loads(str(f["jettag_sf_templates"]))
        assert record["layout"]["observable"]["name"] == "msoftdrop"


def test_read_templates_refuses_what_does_not_add_up(tmp_path: Path, samples) -> None:
    base = write_templates(_gbb_hist(), tmp_path / "base.root", _gbb_record())
    other_wps = {"working_points": {**WPS["working_points"]}}
    other_wps["working_points"]["T"] = {**other_wps["working_points"]["T"], "cut": 0.2}
    cases = {
        "wps.root": (_gbb_hist(), {**_gbb_record(), **other_wps}, "working points"),
        "pt.root": (_gbb_hist((300.0, 500.0, 1000.0)), _gbb_record(), "pT edges"),
        "sel.root": (_gbb_hist(), _gbb_record(selection={"muons": "single"}), "selection"),
    }
    for name, (h, record, what) in cases.items():
        path = write_templates(h, tmp_path / name, record)
        with pytest.raises(JettagError, match=what) as err:
            read_templates([base, path])
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(JettagError, match="given twice"):
        read_templates([base, base])
    with pytest.raises(JettagError, match="not a jettag template file"):
        read_templates([base, samples["zbb"]])
    with pytest.raises(JettagError, match="no such file"):
        read_templates([tmp_path / "missing.root"])
    with pytest.raises(JettagError, match="observable"):  # a gbb histogram called zbb
        write_templates(_gbb_hist(), tmp_path / "x.root", {**_gbb_record(), "proxy": "zbb"})


# ---------------------------------------------------------------------------- histogram


def test_histogram_files_and_summary(templates, samples) -> None:
    mc_line = templates["mc_stdout"].strip().splitlines()[-1]
    assert mc_line.startswith("zbb templates of n2b1 (MC):")
    assert "jets selected from 800 events" in mc_line and "zbb " in mc_line
    assert "(data):" in templates["data_stdout"] and "data " in templates["data_stdout"]
    with uproot.open(templates["mc"]) as f:
        record = json.loads(str(f["jettag_sf_templates"]))
        th1 = f["L/pt300to1000/pass/zbb"]
        assert th1.classname == "TH1D" and th1.values().sum() > 0
        assert "L/pt300to1000/pass/data" not in f
    assert record["proxy"] == "zbb" and record["is_data"] is False
    assert record["working_points"] == WPS["working_points"]
    assert record["inputs"] == [str(samples["zbb"])] and record["n_events"] == 800
    assert record["command"].startswith("jettag sf histogram")
    assert record["layout"]["categories"] == list(record["category_sumw"])
    assert sum(record["category_sumw"].values()) == pytest.approx(record["sumw"])
    _, (data_record,) = read_templates([templates["data"]])
    assert data_record["is_data"] is True and data_record["layout"]["categories"] == ["data"]


def test_histogram_gbb_options(samples, work: Path) -> None:
    """g->bb: --muons and --population reach the processor and its record."""
    common = ["--proxy", "gbb", "--score", "n2b1", "--working-points", work / "wp.json",
              "--pt-edges", "250,1000", "--muons", "single"]  # fmt: skip
    sums = {}
    for population in ("natural", "forced"):
        out = work / f"gbb_{population}.root"
        rc, stdout, err = _jettag("sf", "histogram", samples["gbb_mu"], *common,
                                  "--population", population, "--out", out)  # fmt: skip
        assert rc == 0, err
        assert stdout.strip().splitlines()[-1].startswith("gbb templates of n2b1 (MC)")
        h, (record,) = read_templates([out])
        assert record["selection"]["muons"] == "single" and record["population"] == population
        assert h.axes[5].name == "svmass" and record["n_jets"] > 0
        sums[population] = record["sumw"]
    assert sums["forced"] != pytest.approx(sums["natural"])


def test_read_templates_sums_to_the_processor_output(templates, samples) -> None:
    """MC file + data file read back = the processors' summed histograms, exactly."""
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from jettag.processors.zbb import ZbbProxyProcessor

    runner = processor.Runner(processor.IterativeExecutor(status=False), schema=PFNanoAODSchema)
    expected = None
    for name, is_data in (("zbb", None), ("zbb_data", True)):
        proc = ZbbProxyProcessor("n2b1", working_points=WPS, pt_edges=(300, 1000), is_data=is_data)
        out = runner({f"direct_{name}": [str(samples[name])]}, proc, treename="Events")
        h = out[f"direct_{name}"]["templates"]
        expected = h if expected is None else expected + h
    got, records = read_templates([templates["mc"], templates["data"]])
    assert sorted(got.axes["category"]) == sorted(expected.axes["category"])
    assert [r["file"] for r in records] == [str(templates["mc"]), str(templates["data"])]
    for c in expected.axes["category"]:
        i, j = list(got.axes["category"]).index(c), list(expected.axes["category"]).index(c)
        np.testing.assert_allclose(got.values(flow=True)[i], expected.values(flow=True)[j])
        np.testing.assert_allclose(got.variances(flow=True)[i], expected.variances(flow=True)[j])


# ---------------------------------------------------------------------------- fit


@pytest.fixture(scope="module")
def zbb_fit(templates, work: Path) -> tuple[Path, str]:
    """The zbb MC fitted against itself given as data: every bin fits."""
    out = work / "fit_asdata"
    rc, stdout, stderr = _jettag(
        "sf", "fit", templates["mc"], templates["asdata"], "--proxy", "zbb", "--out", out
    )
    assert rc == 0, stderr
    return out, stdout


def test_fit_mc_as_data_writes_everything(zbb_fit) -> None:
    out, stdout = zbb_fit
    results = json.loads((out / "results.json").read_text())
    assert results["proxy"] == "zbb" and results["tagger"] == "n2b1"
    assert results["working_points"] == WPS["working_points"]
    assert results["sf_json"] == "sf.json" and results["sf_json_error"] is None
    assert results["command"].startswith("jettag sf fit")
    rows = results["results"]
    assert [(r["working_point"], r["pt_low"], r["pt_high"]) for r in rows] == [
        ("L", 300.0, 1000.0),
        ("T", 300.0, 1000.0),
    ]
    for r in rows:  # MC as data: SF = 1 within its uncertainty
        assert r["status"] == "ok"
        assert abs(r["sf"] - 1.0) < 2 * max(r["err_up"], r["err_down"])
    # the printed table is the markdown table of sf.md
    assert "| zbb | L | 300-1000 |" in stdout and "| zbb | T | 300-1000 |" in stdout
    md = (out / "sf.md").read_text()
    assert "| zbb | L | 300-1000 |" in md and "asdata.root" in md and "sf.json written" in md
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == [f"{wp}_pt300to1000_{s}.png" for wp in "LT" for s in ("postfit", "prefit")]
    assert sorted(results["plots"]) == [f"plots/{p}" for p in plots]
    # sf.json: correctionlib accepts it, and it holds the fitted numbers
    check = subprocess.run(
        [str(Path(sys.executable).parent / "correction"), "validate", str(out / "sf.json")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    cset = correctionlib.CorrectionSet.from_file(str(out / "sf.json"))
    assert cset["n2b1_wp_values"].evaluate("T") == pytest.approx(0.25)
    for r in rows:
        sf = cset["n2b1_zbb"].evaluate("central", r["working_point"], 5, 450.0)
        assert sf == pytest.approx(r["sf"])
        up = cset["n2b1_zbb"].evaluate("up", r["working_point"], 5, 450.0)
        assert up == pytest.approx(r["sf"] + r["err_up"])


def test_fit_on_pseudo_data(templates, work: Path) -> None:
    """MC + zbb pseudo-data: sf.json when every bin fits, else the one-line error and the
    rest written."""
    out = work / "fit_data"
    rc, _, stderr = _jettag(
        "sf", "fit", templates["mc"], templates["data"], "--proxy", "zbb", "--no-plots",
        "--out", out,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert (out / "sf.md").is_file() and not (out / "plots").exists()
    # every data jet once per working point, as the data templates hold them
    data_hist, _ = read_templates([templates["data"]])
    n_data = data_hist[{"category": "data", "working_point": "L"}].sum(flow=True).value
    assert n_data > 0
    assert sum(r["n_data"]["pass"] + r["n_data"]["fail"] for r in results["results"]) == 2 * n_data
    if rc == 0:
        assert (out / "sf.json").is_file() and results["n_failed"] == 0
    else:
        assert "sf.json not written" in stderr and not (out / "sf.json").exists()


def test_failed_bin_keeps_results_and_refuses_sf_json(work: Path, tmp_path: Path) -> None:
    good = write_templates(_gbb_hist(), tmp_path / "good.root", _gbb_record())
    bad = write_templates(_gbb_hist(pass_data=False), tmp_path / "bad.root", _gbb_record())
    out = tmp_path / "fit"
    rc, _, err = _jettag("sf", "fit", good, "--proxy", "gbb", "--out", out)
    assert rc == 0, err
    assert (out / "sf.json").is_file() and len(list((out / "plots").iterdir())) == 4
    (out / "plots" / "old.png").write_text("stale")

    # the same folder again (--force) with a bin that fails: no stale sf.json is left
    line = _error(["sf", "fit", bad, "--proxy", "gbb", "--out", out, "--force"])
    assert "sf.json not written" in line and "T pt [300, 1000)" in line
    assert "--allow-failed" in line
    assert not (out / "sf.json").exists()
    results = json.loads((out / "results.json").read_text())
    status = {r["working_point"]: r["status"] for r in results["results"]}
    assert status == {"L": "ok", "T": "failed"}
    assert results["sf_json"] is None and "failed fits" in results["sf_json_error"]
    assert "sf.json not written" in (out / "sf.md").read_text()
    assert len(list((out / "plots").iterdir())) == 4  # replaced as a whole

    # --allow-failed: sf.json without T
    rc, _, err = _jettag("sf", "fit", bad, "--proxy", "gbb", "--out", out, "--force",
                         "--allow-failed", "--tagger", "mytagger", "--no-plots")  # fmt: skip
    assert rc == 0, err
    assert not (out / "plots").exists()  # no stale plots beside the new results
    cset = correctionlib.CorrectionSet.from_file(str(out / "sf.json"))
    assert cset["mytagger_gbb"].evaluate("central", "L", 5, 400.0) > 0
    with pytest.raises(Exception):  # noqa: B017 - correctionlib's own error for a missing key
        cset["mytagger_gbb"].evaluate("central", "T", 5, 400.0)


def test_combine(zbb_fit, work: Path, tmp_path: Path) -> None:
    gbb_templates = write_templates(_gbb_hist(), tmp_path / "gbb.root", _gbb_record())
    rc, _, err = _jettag("sf", "fit", gbb_templates, "--proxy", "gbb", "--no-plots",
                         "--out", tmp_path / "gbb")  # fmt: skip
    assert rc == 0, err
    gbb_results, zbb_results = tmp_path / "gbb" / "results.json", zbb_fit[0] / "results.json"
    out = tmp_path / "sf.json"
    rc, stdout, err = _jettag("sf", "combine", zbb_results, gbb_results, "--out", out)
    assert rc == 0, err
    assert "| combined | L | 300-1000 |" in stdout and "n2b1_combined" in stdout
    cset = correctionlib.CorrectionSet.from_file(str(out))
    assert {"n2b1_wp_values", "n2b1_gbb", "n2b1_zbb", "n2b1_combined"} <= set(cset)
    sfs = [cset[f"n2b1_{p}"].evaluate("central", "T", 5, 500.0) for p in ("gbb", "zbb", "combined")]
    assert min(sfs[:2]) <= sfs[2] <= max(sfs[:2])

    assert "exists" in _error(["sf", "combine", zbb_results, gbb_results, "--out", out])
    line = _error(["sf", "combine", zbb_results, zbb_results, "--out", tmp_path / "x.json"])
    assert "given twice" in line


# ---------------------------------------------------------------------------- errors


def test_errors_are_one_line_naming_the_input(templates, samples, work: Path) -> None:
    wp = work / "wp.json"
    common = ["--proxy", "zbb", "--score", "n2b1", "--working-points", wp, "--pt-edges", PT]
    missing = work / "missing.root"
    assert str(missing) in _error(["sf", "histogram", missing, *common, "--out", work / "m.root"])
    assert str(missing) in _error(["sf", "fit", missing, "--proxy", "zbb", "--out", work / "m"])
    line = _error(["sf", "fit", samples["zbb"], "--proxy", "zbb", "--out", work / "m"])
    assert str(samples["zbb"]) in line and "not a jettag template file" in line
    # output over an input (even with --force), existing output without --force
    line = _error(["sf", "histogram", samples["zbb"], *common, "--out", samples["zbb"], "--force"])
    assert "is also an input" in line
    line = _error(["sf", "histogram", samples["zbb"], *common, "--out", templates["mc"]])
    assert str(templates["mc"]) in line and "--force" in line
    line = _error(["sf", "fit", templates["mc"], "--proxy", "zbb", "--out", work])
    assert "holds the input" in line
    line = _error(["sf", "fit", templates["mc"], templates["asdata"], "--proxy", "zbb",
                   "--out", work / "fit_asdata"])  # fmt: skip
    assert "--force" in line
    # templates of the other proxy
    line = _error(["sf", "fit", templates["mc"], templates["asdata"], "--proxy", "gbb",
                   "--out", work / "other"])  # fmt: skip
    assert str(templates["mc"]) in line and "zbb proxy" in line
    gbb = write_templates(_gbb_hist(), work / "gbb_templates.root", _gbb_record())
    line = _error(["sf", "fit", templates["mc"], gbb, "--proxy", "zbb", "--out", work / "other"])
    assert str(gbb) in line and "gbb proxy" in line
    # no data, options that do not apply
    line = _error(["sf", "fit", templates["mc"], "--proxy", "zbb", "--out", work / "other"])
    assert "no data templates" in line
    line = _error(["sf", "histogram", samples["zbb"], *common, "--muons", "single",
                   "--out", work / "mu.root"])  # fmt: skip
    assert "--muons" in line
    line = _error(["sf", "histogram", samples["zbb"], *common, "--population", "forced",
                   "--out", work / "mu.root"])  # fmt: skip
    assert "--population" in line
    line = _error(["sf", "histogram", samples["zbb"], *common, "--score", "nosuchcolumn",
                   "--out", work / "col.root"])  # fmt: skip
    assert str(wp) in line and "'nosuchcolumn'" in line
    wp_free = work / "wp_free.json"  # working points that name no score: any column goes
    wp_free.write_text(json.dumps({"working_points": {"L": {"kind": "score", "cut": 0.3}}}))
    line = _error(["sf", "histogram", samples["zbb"], *common, "--score", "nosuchcolumn",
                   "--working-points", wp_free, "--out", work / "col.root"])  # fmt: skip
    assert "FatJet_nosuchcolumn" in line and str(samples["zbb"]) in line
    line = _error(["sf", "histogram", samples["zbb"], *common, "--working-points",
                   work / "nowp.json", "--out", work / "col.root"])  # fmt: skip
    assert str(work / "nowp.json") in line
    assert not (work / "other").exists() and not (work / "m").exists()
