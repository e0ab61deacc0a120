"""jettag.scalefactors.output: POG-style SF files, failed fits never written, proxy combination."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from jettag import corrections
from jettag.errors import JettagError, OutputError
from jettag.scalefactors import output

WP_RECORD = {
    "working_points": {
        "L": {"kind": "score", "cut": 0.8, "score": "pnet_lite XbbVsQCD"},
        "M": {"kind": "score", "cut": 0.9, "score": "pnet_lite XbbVsQCD"},
        "T": {
            "kind": "ddt",
            "efficiency": 0.01,
            "map": "ddt-pnet-lite",
            "score": "pnet_lite XbbVsQCD",
        },
    }
}
PT = [(250.0, 300.0), (300.0, 450.0), (450.0, 1000.0)]


def _result(proxy, wp, lo, hi, sf=0.9, up=0.08, down=0.06, sources=None, status="ok", **kw):
    out = {
        "proxy": proxy,
        "working_point": wp,
        "pt_low": lo,
        "pt_high": hi,
        "sf": sf,
        "err_up": up,
        "err_down": down,
        "stat": 0.04,
        "sources": {"mcstat": 0.02, "bfrag": 0.03} if sources is None else sources,
        "eff_mc": 0.4,
        "eff_data": None if sf is None else 0.4 * sf,
        "status": status,
        "message": "" if status == "ok" else "MIGRAD did not converge after 3 retries",
        "retries": [],
        "n_data": {"pass": 120.0, "fail": 480.0},
        "n_mc_signal": {"pass": 80.5, "fail": 150.2},
    }
    return out | kw


def _proxy_results(proxy, offset=0.0):
    """3 working points x 3 pT bins with distinct numbers (T: its own, wider pT bins)."""
    out = []
    for i, wp in enumerate(("L", "M")):
        for j, (lo, hi) in enumerate(PT):
            out.append(
                _result(
                    proxy,
                    wp,
                    lo,
                    hi,
                    sf=0.95 - 0.05 * i - 0.02 * j + offset,
                    up=0.05 + 0.01 * j,
                    down=0.04 + 0.01 * j,
                    sources={"mcstat": 0.01 + 0.005 * j, "bfrag": -0.02 + 0.01 * i},
                )
            )
    out.append(_result(proxy, "T", 250.0, 450.0, sf=0.8 + offset))
    out.append(_result(proxy, "T", 450.0, 1000.0, sf=0.75 + offset))
    return out


class _SFResultLike:
    """Stands in for helper A's SFResult: anything with to_dict() is accepted."""

    def __init__(self, d):
        self._d = d

    def to_dict(self):
        return dict(self._d)


def _expected(r, key):
    if key == "central":
        return r["sf"]
    if key == "up":
        return r["sf"] + r["err_up"]
    if key == "down":
        return r["sf"] - r["err_down"]
    direction, source = key.split("_", 1)
    u = r["sources"][source]
    return r["sf"] + u if direction == "up" else r["sf"] - u


def test_sf_file_validates_and_evaluates_back(tmp_path):
    gbb = _proxy_results("gbb")
    zbb = [_SFResultLike(r) for r in _proxy_results("zbb", offset=0.03)]
    path = output.write_sf_file(
        tmp_path / "sf.json", "pnet_lite", WP_RECORD, {"gbb": gbb, "zbb": zbb}, description="test"
    )
    if shutil.which("correction"):
        done = subprocess.run(["correction", "validate", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    cset = corrections.load(path)
    assert set(cset) == {
        "pnet_lite_wp_values",
        "pnet_lite_gbb",
        "pnet_lite_zbb",
        "pnet_lite_combined",
    }
    assert cset["pnet_lite_wp_values"].evaluate("M") == 0.9
    assert cset["pnet_lite_wp_values"].evaluate("T") == 0.0  # the cut on the DDT value
    corr = cset["pnet_lite_gbb"]
    assert [v.name for v in corr.inputs] == ["systematic", "working_point", "flavor", "pt"]
    keys = ["central", "up", "down", "up_bfrag", "down_bfrag", "up_mcstat", "down_mcstat"]
    for r in gbb:
        mid = 0.5 * (r["pt_low"] + r["pt_high"])
        for key in keys:
            got = corr.evaluate(key, r["working_point"], 5, mid)
            assert got == pytest.approx(_expected(r, key), abs=1e-12), (key, r)
    # clamped outside the measured pT range
    first, last = gbb[0], gbb[2]
    assert corr.evaluate("central", "L", 5, 100.0) == pytest.approx(first["sf"])
    assert corr.evaluate("central", "L", 5, 5000.0) == pytest.approx(last["sf"])
    # only the double-b flavour is measured: others are an evaluation error
    with pytest.raises(Exception):  # noqa: B017 - correctionlib raises its own error types
        corr.evaluate("central", "L", 0, 300.0)
    described = json.loads(path.read_text())["corrections"]
    gbb_desc = next(c for c in described if c["name"] == "pnet_lite_gbb")["description"]
    assert "double-b" in gbb_desc and "bfrag" in gbb_desc


def test_failed_bins_are_refused_or_omitted_and_listed():
    results = _proxy_results("gbb")
    results[4] = _result(
        "gbb", "M", 300.0, 450.0, sf=None, up=None, down=None, stat=None, status="failed"
    )
    with pytest.raises(JettagError, match=r"M pt \[300, 450\).*MIGRAD"):
        output.sf_correction("pnet_lite", "gbb", results, description="x")
    corr = output.sf_correction("pnet_lite", "gbb", results, description="x", allow_failed=True)
    assert "omitted" in corr.description and "gbb M pt [300, 450)" in corr.description
    ev = corr.to_evaluator()
    assert ev.evaluate("central", "L", 5, 300.0) == pytest.approx(results[1]["sf"])
    with pytest.raises(Exception):  # noqa: B017 - M is absent, not written as a number
        ev.evaluate("central", "M", 5, 260.0)
    # status "ok" but no number is a failure too; all working points failed: nothing to write
    bad = [_result("gbb", "L", 250.0, 300.0, sf=math.nan)]
    with pytest.raises(JettagError, match="sf is nan"):
        output.sf_correction("pnet_lite", "gbb", bad, description="x")
    with pytest.raises(JettagError, match="every working point"):
        output.sf_correction("pnet_lite", "gbb", bad, description="x", allow_failed=True)


def test_pt_bins_must_tile_and_belong_to_the_proxy():
    gap = [_result("gbb", "L", 250.0, 300.0), _result("gbb", "L", 350.0, 450.0)]
    with pytest.raises(JettagError, match="leave a gap"):
        output.sf_correction("t", "gbb", gap, description="x")
    overlap = [_result("gbb", "L", 250.0, 320.0), _result("gbb", "L", 300.0, 450.0)]
    with pytest.raises(JettagError, match="overlap"):
        output.sf_correction("t", "gbb", overlap, description="x")
    with pytest.raises(JettagError, match="another proxy"):
        output.sf_correction("t", "gbb", [_result("zbb", "L", 250.0, 300.0)], description="x")
    with pytest.raises(JettagError, match="missing fields"):
        output.sf_correction("t", "gbb", [{"proxy": "gbb"}], description="x")


def test_combination_of_equal_errors_is_the_mean_with_error_over_sqrt2():
    g = _result("gbb", "M", 300.0, 450.0, sf=0.90, up=0.10, down=0.10, sources={"mcstat": 0.05})
    z = _result("zbb", "M", 300.0, 450.0, sf=1.00, up=0.12, down=0.08, sources={"fractions": 0.04})
    (c,) = output.combine([g], [z])
    assert c["proxy"] == "combined" and c["status"] == "ok"
    assert c["sf"] == pytest.approx(0.95)
    assert c["err_up"] == pytest.approx(0.10 / math.sqrt(2)) == c["err_down"]
    # uncorrelated sources: weight 1/2 each, in quadrature
    assert c["sources"] == pytest.approx({"mcstat": 0.025, "fractions": 0.02})
    assert c["n_data"] == {"pass": 240.0, "fail": 960.0}


def test_combination_weights_and_correlated_sources():
    g = _result(
        "gbb", "L", 250.0, 300.0, sf=0.9, up=0.1, down=0.1, sources={"bfrag": 0.06, "mcstat": 0.03}
    )
    z = _result(
        "zbb", "L", 250.0, 300.0, sf=1.0, up=0.2, down=0.2, sources={"bfrag": 0.08, "mcstat": 0.1}
    )
    (c,) = output.combine([g], [z])
    a = np.array([1 / 0.01, 1 / 0.04]) / (1 / 0.01 + 1 / 0.04)
    assert c["sf"] == pytest.approx(a[0] * 0.9 + a[1] * 1.0)
    # bfrag (shared shape source) linear, mcstat (fit-specific) in quadrature
    assert c["sources"]["bfrag"] == pytest.approx(a[0] * 0.06 + a[1] * 0.08)
    assert c["sources"]["mcstat"] == pytest.approx(math.hypot(a[0] * 0.03, a[1] * 0.1))
    var = 1 / (1 / 0.01 + 1 / 0.04) + 2 * a[0] * a[1] * 0.06 * 0.08
    assert c["err_up"] == pytest.approx(math.sqrt(var))
    (u,) = output.combine([g], [z], correlated=())  # nothing correlated: 1/sqrt(sum w)
    assert u["err_up"] == pytest.approx(math.sqrt(1 / (1 / 0.01 + 1 / 0.04)))


def test_combination_only_where_both_measured_and_failed_stay_failed():
    g = [
        _result("gbb", "L", 250.0, 300.0),
        _result("gbb", "L", 300.0, 450.0, sf=None, status="failed"),
    ]
    z = [_result("zbb", "L", 300.0, 450.0), _result("zbb", "L", 450.0, 1000.0)]
    (c,) = output.combine(g, z)
    assert (c["pt_low"], c["status"], c["sf"]) == (300.0, "failed", None)
    assert "gbb status 'failed'" in c["message"]


def test_markdown_table_lists_numbers_counts_and_status():
    rows = [
        _result("gbb", "L", 250.0, 300.0, sf=0.912, up=0.051, down=0.043),
        _result("gbb", "M", 250.0, 300.0, sf=None, up=None, down=None, stat=None, status="failed"),
    ]
    table = output.markdown_table(rows)
    lines = table.strip().splitlines()
    assert len(lines) == 4
    head = lines[0]
    for col in (
        "SF",
        "+up",
        "-down",
        "stat",
        "bfrag",
        "mcstat",
        "eff MC",
        "eff data",
        "data pass",
        "data fail",
        "status",
        "message",
    ):
        assert f" {col} |" in head
    assert "| 0.912 | 0.051 | 0.043 |" in lines[2]
    assert "| 120 | 480 |" in lines[2]
    assert "failed" in lines[3] and "n/a" in lines[3] and "MIGRAD" in lines[3]


def test_write_follows_the_output_rules(tmp_path):
    results = {"gbb": _proxy_results("gbb")}
    out = tmp_path / "sf.json.gz"
    output.write_sf_file(out, "t", WP_RECORD, results)
    assert set(corrections.load(out)) == {"t_wp_values", "t_gbb"}  # no combination with one proxy
    with pytest.raises(OutputError, match="exists"):
        output.write_sf_file(out, "t", WP_RECORD, results)
    output.write_sf_file(out, "t", WP_RECORD, results, force=True)
    hist_json = tmp_path / "templates.json"
    hist_json.write_text("{}")
    with pytest.raises(OutputError, match="input"):
        output.write_sf_file(hist_json, "t", WP_RECORD, results, inputs=[hist_json], force=True)
    with pytest.raises(JettagError, match="kind"):
        output.wp_values_correction("t", {"L": {"kind": "bogus", "cut": 1.0}})
