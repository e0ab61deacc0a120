"""Tagger performance figures against cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jettag.performance import (
    average_precision,
    background_rejection_at,
    mass_sculpting,
    roc_curve,
    signal_efficiency_at,
)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(1)
    return rng.normal(1.0, 1.0, 200_000), rng.normal(0.0, 1.0, 200_000)


def test_gaussian_roc_matches_analytic(gaussians):
    sig, bkg = gaussians
    roc = roc_curve(sig, bkg)
    assert roc.auc == pytest.approx(_phi(1.0 / math.sqrt(2.0)), abs=3e-3)
    # at 1% background: the cut is z = 2.326, so eps_sig = 1 - Phi(1.326)
    assert signal_efficiency_at(roc, 0.01) == pytest.approx(1.0 - _phi(2.3263 - 1.0), abs=5e-3)
    # at 50% signal the cut is at 1.0, so eps_bkg = 1 - Phi(1)
    assert background_rejection_at(roc, 0.5) == pytest.approx(1.0 / (1.0 - _phi(1.0)), rel=0.02)
    assert np.all(np.diff(roc.eff_signal) >= 0) and np.all(np.diff(roc.eff_background) >= 0)


def test_perfect_and_random_taggers():
    rng = np.random.default_rng(2)
    perfect = roc_curve(rng.uniform(1, 2, 1000), rng.uniform(0, 1, 1000))
    assert perfect.auc == pytest.approx(1.0)
    assert signal_efficiency_at(perfect, 0.001) == pytest.approx(1.0)
    assert background_rejection_at(perfect, 0.5) == math.inf
    scores = rng.uniform(0, 1, 100_000)
    random = roc_curve(scores[:50_000], scores[50_000:])
    assert random.auc == pytest.approx(0.5, abs=0.01)
    assert average_precision(scores[:50_000], scores[50_000:]) == pytest.approx(0.5, abs=0.01)
    assert average_precision(rng.uniform(1, 2, 100), rng.uniform(0, 1, 100)) == pytest.approx(1.0)


def test_weights_equal_duplicated_jets():
    rng = np.random.default_rng(3)
    sig, bkg = rng.normal(1, 1, 500), rng.normal(0, 1, 700)
    w_sig = rng.integers(1, 4, len(sig))
    w_bkg = rng.integers(1, 4, len(bkg))
    weighted = roc_curve(sig, bkg, w_sig.astype(float), w_bkg.astype(float))
    duplicated = roc_curve(np.repeat(sig, w_sig), np.repeat(bkg, w_bkg))
    np.testing.assert_allclose(weighted.eff_signal, duplicated.eff_signal)
    np.testing.assert_allclose(weighted.eff_background, duplicated.eff_background)
    assert average_precision(sig, bkg, w_sig.astype(float), w_bkg.astype(float)) == pytest.approx(
        average_precision(np.repeat(sig, w_sig), np.repeat(bkg, w_bkg))
    )


def test_average_precision_by_hand_with_ties():
    # sorted by score: S(0.9) B(0.8) {S,B}(0.5) S(0.1)
    sig = np.array([0.9, 0.5, 0.1])
    bkg = np.array([0.8, 0.5])
    # thresholds: recall 1/3 at precision 1; 1/3 -> (tie) 2/3 at precision 2/4; 1 at 3/5
    expected = (1 / 3) * 1.0 + (1 / 3) * 0.5 + (1 / 3) * 0.6
    assert average_precision(sig, bkg) == pytest.approx(expected)


def test_mass_sculpting_sees_correlation():
    rng = np.random.default_rng(4)
    mass = rng.uniform(40, 250, 100_000)
    independent = mass_sculpting(rng.uniform(0, 1, len(mass)), mass, 0.1)
    sculpting = mass_sculpting(mass / 250 + rng.normal(0, 0.2, len(mass)), mass, 0.1)
    assert independent["eff_background"] == pytest.approx(0.1, abs=1e-4)
    assert independent["inverse_jsd"] > 100
    assert sculpting["inverse_jsd"] < 0.1 * independent["inverse_jsd"]


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="signal and background"):
        roc_curve(np.array([]), np.array([0.1]))
    with pytest.raises(ValueError, match="weights have shape"):
        roc_curve(np.array([0.2, 0.3]), np.array([0.1]), signal_weights=np.array([1.0]))
