"""Tagger performance figures against cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jettag.performance import (
    MIN_BACKGROUND_JETS,
    average_precision,
    background_rejection_at,
    background_rejection_point,
    effective_count,
    mass_sculpting,
    random_cut_inverse_jsd,
    random_cut_inverse_jsd_draws,
    roc_curve,
    signal_efficiency_at,
    signal_efficiency_point,
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


def test_effective_count_is_kish():
    assert effective_count(np.ones(37)) == pytest.approx(37)
    # (sum w)^2 / sum w^2: one heavy jet among light ones counts as little more than one
    assert effective_count(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)
    assert effective_count(np.array([100.0] + [0.01] * 99)) < 1.1
    roc = roc_curve(np.array([1.0]), np.array([0.1, 0.2, 0.3]), background_weights=np.array([1.0, 1.0, 2.0]))
    assert roc.n_background == 3 and roc.n_background_effective == pytest.approx(16 / 6)


def test_working_points_carry_the_background_jets_that_pass():
    rng = np.random.default_rng(5)
    sig = rng.normal(2, 1, 5000)
    # 0.1% mistag on 5000 background jets rests on 5 of them: statistics-limited
    few = signal_efficiency_point(roc_curve(sig, rng.normal(0, 1, 5000)), 0.001)
    assert few.n_background_pass == pytest.approx(5, abs=1e-6)
    assert few.stat_limited and few.value is not None
    # on 50000 it rests on 50: not limited
    many = signal_efficiency_point(roc_curve(sig, rng.normal(0, 1, 50_000)), 0.001)
    assert many.n_background_pass == pytest.approx(50, abs=1e-6) and not many.stat_limited
    assert many.counts() == {"n_background_pass": pytest.approx(50), "stat_limited": False}
    # weighted: the flag follows the effective number of passing jets
    bkg = rng.normal(0, 1, 5000)
    w = np.where(bkg > 2.0, 50.0, 1.0)  # the jets that pass carry heavy weights
    point = signal_efficiency_point(roc_curve(sig, bkg, background_weights=w), 0.2)
    assert point.n_background_pass_effective <= point.n_background_pass
    assert set(point.counts(weighted=True)) == {"n_background_pass", "n_background_pass_effective", "stat_limited"}


def test_unmeasured_rejection_is_a_lower_limit_not_infinite():
    rng = np.random.default_rng(6)
    sig, bkg = rng.uniform(1, 2, 300), rng.uniform(0, 1, 40)
    roc = roc_curve(sig, bkg)
    point = background_rejection_point(roc, 0.5)  # no background jet passes
    assert point.value is None and point.lower_limit == 40 and point.stat_limited
    assert point.counts()["lower_limit"] == 40
    # the same on weighted jets: the limit is the effective number of background jets
    w = rng.uniform(0.5, 2.0, len(bkg))
    weighted = background_rejection_point(roc_curve(sig, bkg, background_weights=w), 0.5)
    assert weighted.value is None and weighted.lower_limit == pytest.approx(effective_count(w), abs=0.01)
    # where background jets pass, the value is measured and finite
    overlap = roc_curve(rng.normal(1, 1, 3000), rng.normal(0, 1, 3000))
    measured = background_rejection_point(overlap, 0.5)
    assert measured.lower_limit is None and math.isfinite(measured.value)
    assert measured.value == pytest.approx(background_rejection_at(overlap, 0.5))
    assert measured.n_background_pass >= MIN_BACKGROUND_JETS and not measured.stat_limited


def test_mass_sculpting_keeps_the_requested_efficiency_or_says_why_not():
    rng = np.random.default_rng(7)

    def sculpt(n, eff, **kw):
        return mass_sculpting(rng.uniform(0, 1, n), rng.uniform(40, 250, n), eff, background_name="QCD", **kw)

    # 5 jets: the nearest cut passes 1 of them, 20%, not 5%: unavailable, never taken at 20%
    few = sculpt(5, 0.05)
    assert few["inverse_jsd"] is None and few["jsd"] is None
    assert "1 of 5 QCD jets (20%), not 5%" in few["note"]
    # 100 jets: 5 pass, exactly 5%: taken, but statistics-limited
    small = sculpt(100, 0.05)
    assert small["eff_background"] == pytest.approx(0.05) and small["inverse_jsd"] is not None
    assert small["n_background_pass"] == 5 and small["n_background"] == 100 and small["stat_limited"]
    # 4000 jets: 200 pass, not limited
    large = sculpt(4000, 0.05)
    assert large["eff_background"] == pytest.approx(0.05) and large["n_background_pass"] == 200
    assert not large["stat_limited"] and "note" not in large
    # equal scores pass or fail together: a block of 20% ties at the top cannot give 5%
    tied = np.where(rng.uniform(size=1000) < 0.2, 1.0, rng.uniform(0, 0.5, 1000))
    blocked = mass_sculpting(tied, rng.uniform(40, 250, 1000), 0.05)
    assert blocked["inverse_jsd"] is None and "not 5%" in blocked["note"]
    # one jet carrying 30% of the weight at the top of the scores
    scores, w = rng.uniform(0, 1, 500), np.ones(500)
    w[np.argmax(scores)] = 0.3 / 0.7 * 499
    heavy = mass_sculpting(scores, rng.uniform(40, 250, 500), 0.05, weights=w)
    assert heavy["inverse_jsd"] is None and heavy["n_background_pass_effective"] == pytest.approx(1)


def test_random_cut_draws_spread_and_where_a_cut_falls_among_them():
    """A cut that does not sculpt lies inside the random cuts' spread; one that does, below all."""
    rng = np.random.default_rng(7)
    mass = rng.uniform(40, 250, 20_000)
    draws = random_cut_inverse_jsd_draws(mass, 0.05, draws=100)
    assert draws.size == 100
    median = random_cut_inverse_jsd(mass, 0.05, draws=100)
    assert median == pytest.approx(np.median(draws))
    # the statistic is chi-square-like: random cuts scatter widely around their median
    assert np.percentile(draws, 16) < 0.9 * median < median < np.percentile(draws, 84) / 0.9
    fair = mass_sculpting(rng.uniform(0, 1, mass.size), mass, 0.05)["inverse_jsd"]
    assert 0.0 < np.mean(draws < fair) < 1.0
    sculpt = mass_sculpting(mass / 250 + rng.normal(0, 0.2, mass.size), mass, 0.05)["inverse_jsd"]
    assert np.mean(draws < sculpt) == 0.0
