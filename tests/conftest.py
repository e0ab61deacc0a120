"""Shared fixtures: small generated samples, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: name -> (process, tune, events, seed). Sizes are the smallest that keep the
#: physics checks' statistical scatter well inside their accepted ranges.
SAMPLES = {
    "zbb": ("zbb", "mc", 800, 11),
    "qcd": ("qcd", "mc", 800, 12),
    "xbb": ("xbb", "mc", 1000, 13),
    "gbb_mu": ("gbb_mu", "mc", 80, 14),
    "zbb_data": ("zbb", "data", 800, 15),
}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real CMS files of ../shared/data; skips where they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (real CMS files are not part of the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generate the test samples once (two workers), return name -> path."""
    from jettag.generator import generate

    outdir = tmp_path_factory.mktemp("samples")
    paths = {}
    for name, (process, tune, events, seed) in SAMPLES.items():
        path = outdir / f"{name}.root"
        generate(process, events, seed, path, tune=tune, workers=2, chunk_size=(events + 1) // 2, progress=False)
        paths[name] = path
    return paths


#: the training smoke samples: one small file per tagger class
TRAINING_SAMPLES = {
    "xcc": ("xcc", "mc", 300, 16),
    "xqq": ("xqq", "mc", 300, 17),
}


@pytest.fixture(scope="session")
def training_files(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One file per class Xbb, Xcc, Xqq, QCD (xbb and qcd from ``samples``)."""
    from jettag.generator import generate

    outdir = tmp_path_factory.mktemp("training")
    paths = {"xbb": samples["xbb"], "qcd": samples["qcd"]}
    for name, (process, tune, events, seed) in TRAINING_SAMPLES.items():
        path = outdir / f"{name}.root"
        generate(process, events, seed, path, tune=tune, workers=2, chunk_size=(events + 1) // 2, progress=False)
        paths[name] = path
    return [paths[k] for k in ("xbb", "xcc", "xqq", "qcd")]
