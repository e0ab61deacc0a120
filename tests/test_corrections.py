"""jettag.corrections: correctionlib maps built from schemav2 objects, written safely, loaded by name."""

from __future__ import annotations

import shutil
import subprocess

import hist
import numpy as np
import pytest

from jettag import corrections
from jettag.errors import JettagError, OutputError


def _map() -> hist.Hist:
    h = hist.Hist.new.Reg(4, -6.0, -2.0, name="rho").Var([200.0, 300.0, 500.0, 1000.0], name="pt").Double()
    h.view()[...] = np.arange(12, dtype=float).reshape(4, 3) / 10
    return h


def _cset():
    ddt = corrections.correction(
        "test_ddt",
        "score threshold per (rho, pt) bin",
        [corrections.variable("rho"), corrections.variable("pt", description="jet pT [GeV]")],
        corrections.variable("threshold"),
        corrections.binned(_map()),
    )
    sf = corrections.correction(
        "test_sf",
        "scale factor by systematic",
        [corrections.variable("systematic", "string"), corrections.variable("pt")],
        corrections.variable("sf"),
        corrections.category("systematic", {"nominal": 0.95, "up": 1.02, "down": 0.88}),
    )
    return corrections.correction_set([ddt, sf], "jettag test maps")


def test_binned_map_evaluates_to_the_histogram(tmp_path):
    path = corrections.write(_cset(), tmp_path / "maps.json")
    cset = corrections.load(path)
    h = _map()
    rho = np.array([-5.9, -4.5, -3.1, -2.2])
    for j, pt in enumerate([250.0, 400.0, 900.0]):
        got = cset["test_ddt"].evaluate(rho, np.full(4, pt))
        np.testing.assert_allclose(got, h.values()[:, j])
    # out of range: clamped to the edge bins by default
    assert cset["test_ddt"].evaluate(-9.0, 5000.0) == h.values()[0, -1]
    assert cset["test_sf"].evaluate("up", 300.0) == 1.02


@pytest.mark.skipif(shutil.which("correction") is None, reason="correctionlib's CLI is not on PATH")
def test_written_file_passes_correction_validate(tmp_path):
    path = corrections.write(_cset(), tmp_path / "maps.json")
    done = subprocess.run(["correction", "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gzip_output(tmp_path):
    path = corrections.write(_cset(), tmp_path / "maps.json.gz")
    assert corrections.load(path)["test_sf"].evaluate("nominal", 300.0) == 0.95


def test_write_refuses_existing_and_inputs(tmp_path):
    out = tmp_path / "maps.json"
    corrections.write(_cset(), out)
    before = out.read_bytes()
    with pytest.raises(OutputError, match="exists"):
        corrections.write(_cset(), out)
    with pytest.raises(OutputError, match="input"):
        corrections.write(_cset(), out, inputs=[out], force=True)
    with pytest.raises(OutputError, match="does not exist"):
        corrections.write(_cset(), tmp_path / "nosuch" / "maps.json")
    assert out.read_bytes() == before
    corrections.write(_cset(), out, force=True)
    assert not list(tmp_path.glob(".*partial*"))


def test_names_must_be_unique():
    one = _cset().corrections[0]
    with pytest.raises(ValueError, match="unique"):
        corrections.correction_set([one, one], "twice")


def test_load_errors(tmp_path):
    with pytest.raises(JettagError, match="no shipped correction file"):
        corrections.load("no-such-map")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 2, "corrections": [{"name": 1}]}')
    with pytest.raises(JettagError, match="not a valid correctionlib file"):
        corrections.load(bad)
    assert isinstance(corrections.available(), tuple)
