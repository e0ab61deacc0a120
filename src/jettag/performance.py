"""Tagger performance figures, as the tagging papers quote them.

Pure functions on score arrays (numpy), with optional per-jet weights:
ROC curves (signal efficiency against background efficiency), the area under
them, average precision, the signal efficiency at a fixed background
mis-identification rate, the background rejection 1/eps_bkg at a fixed signal
efficiency, and the mass-sculpting figure 1/JSD between the mass distributions
of background jets that pass and that fail a cut at fixed background efficiency.

Every figure comes with the background jets behind it: a working point's
figure rests on the background jets that pass it (an efficiency of 0.1% on
5000 background jets is measured with 5 of them), and is *statistics-limited*
when fewer than :data:`MIN_BACKGROUND_JETS` (Kish's effective number when
weighted) stand behind it. A background rejection 1/eps_bkg that no background
jet measures (fewer than one passes) is only a lower limit, the number of
background jets; a figure that cannot be taken as asked (mass sculpting at an
efficiency these jets cannot realise) is unavailable, with the reason, never
taken at another setting.

Convention: a jet passes a working point when ``score > threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

__all__ = [
    "MIN_BACKGROUND_JETS",
    "SCULPTING_EFFICIENCY_TOLERANCE",
    "Roc",
    "WorkingPoint",
    "average_precision",
    "background_rejection_at",
    "background_rejection_point",
    "effective_count",
    "mass_sculpting",
    "random_cut_inverse_jsd",
    "random_cut_inverse_jsd_draws",
    "roc_curve",
    "signal_efficiency_at",
    "signal_efficiency_point",
]

#: A figure resting on fewer background jets than this (effective number when
#: weighted) is statistics-limited: its relative uncertainty is about 1/sqrt(n) > 30%.
MIN_BACKGROUND_JETS = 10

#: Mass sculpting is taken only where a cut passes the requested background
#: efficiency to within this relative tolerance (5% -> 4.5-5.5%); else it is unavailable.
SCULPTING_EFFICIENCY_TOLERANCE = 0.1


def effective_count(weights: np.ndarray) -> float:
    """Kish's effective number of entries, (sum w)^2 / sum w^2 (the count for unit weights)."""
    w = np.asarray(weights, dtype=np.float64)
    sum_w2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0


@dataclass(frozen=True)
class Roc:
    """A ROC curve: efficiencies of ``score > threshold``, thresholds decreasing.

    With the jets behind it: ``n_signal`` / ``n_background`` jets in all (and
    their effective numbers), and per point the background jets that pass
    (``n_background_pass``, ``n_background_pass_effective``).
    """

    threshold: np.ndarray
    eff_signal: np.ndarray
    eff_background: np.ndarray
    n_signal: int = 0
    n_background: int = 0
    n_signal_effective: float = 0.0
    n_background_effective: float = 0.0
    n_background_pass: np.ndarray | None = None
    n_background_pass_effective: np.ndarray | None = None

    @property
    def auc(self) -> float:
        """Area under eff_signal(eff_background); 0.5 for a random tagger, 1 for a perfect one."""
        x = np.concatenate([[0.0], self.eff_background, [1.0]])
        y = np.concatenate([[0.0], self.eff_signal, [1.0]])
        return float(np.trapezoid(y, x))


def _weights(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(len(values))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != values.shape:
        raise ValueError(f"weights have shape {weights.shape}, scores {values.shape}")
    return weights


def roc_curve(
    signal: np.ndarray,
    background: np.ndarray,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
) -> Roc:
    """The (weighted) ROC curve of scores ``signal`` against ``background``.

    One point per distinct score value; ties between signal and background move
    together, as a cut can only take them together.
    """
    signal = np.asarray(signal, dtype=np.float64)
    background = np.asarray(background, dtype=np.float64)
    if len(signal) == 0 or len(background) == 0:
        raise ValueError("a ROC curve needs signal and background jets")
    sig_weights = _weights(signal, signal_weights)
    bkg_weights = _weights(background, background_weights)
    scores = np.concatenate([signal, background])
    w_sig = np.concatenate([sig_weights, np.zeros(len(background))])
    w_bkg = np.concatenate([np.zeros(len(signal)), bkg_weights])
    is_bkg = np.concatenate([np.zeros(len(signal)), np.ones(len(background))])
    order = np.argsort(-scores, kind="stable")
    scores, w_sig, w_bkg, is_bkg = scores[order], w_sig[order], w_bkg[order], is_bkg[order]
    last_of_value = np.flatnonzero(np.diff(scores, append=-np.inf) != 0)
    cum_sig = np.cumsum(w_sig)[last_of_value]
    cum_bkg = np.cumsum(w_bkg)[last_of_value]
    cum_bkg2 = np.cumsum(w_bkg * w_bkg)[last_of_value]
    n_eff_pass = np.divide(cum_bkg**2, cum_bkg2, out=np.zeros_like(cum_bkg), where=cum_bkg2 > 0)
    # a cut just below each distinct value keeps everything at or above it
    return Roc(
        threshold=np.nextafter(scores[last_of_value], -np.inf),
        eff_signal=cum_sig / w_sig.sum(),
        eff_background=cum_bkg / w_bkg.sum(),
        n_signal=len(signal),
        n_background=len(background),
        n_signal_effective=effective_count(sig_weights),
        n_background_effective=effective_count(bkg_weights),
        n_background_pass=np.cumsum(is_bkg)[last_of_value],
        n_background_pass_effective=n_eff_pass,
    )


@dataclass(frozen=True)
class WorkingPoint:
    """A figure at a working point and the background jets behind it.

    ``value`` is None where the jets only bound the figure: then
    ``lower_limit`` holds the bound (a background rejection that fewer than one
    background jet measures exceeds the number of background jets).
    ``n_background_pass`` counts the background jets that pass the working point
    (interpolated between the ROC's points, as the figure is), and
    ``n_background_pass_effective`` is their Kish effective number.
    """

    value: float | None
    n_background_pass: float
    n_background_pass_effective: float
    lower_limit: float | None = None

    @property
    def stat_limited(self) -> bool:
        """Fewer than :data:`MIN_BACKGROUND_JETS` (effective) background jets behind it."""
        return self.n_background_pass_effective < MIN_BACKGROUND_JETS

    def counts(self, *, weighted: bool = False) -> dict[str, Any]:
        """JSON-ready: the passing background jets, the flag and any lower limit."""
        out: dict[str, Any] = {"n_background_pass": round(self.n_background_pass, 2)}
        if weighted:
            out["n_background_pass_effective"] = round(self.n_background_pass_effective, 2)
        out["stat_limited"] = self.stat_limited
        if self.lower_limit is not None:
            out["lower_limit"] = self.lower_limit
        return out


def _requires_counts(roc: Roc) -> tuple[np.ndarray, np.ndarray]:
    if roc.n_background_pass is None or roc.n_background_pass_effective is None:
        raise ValueError("this Roc carries no jet counts; build it with roc_curve")
    return roc.n_background_pass, roc.n_background_pass_effective


def signal_efficiency_at(roc: Roc, eff_background: float) -> float:
    """Signal efficiency where the background efficiency is ``eff_background`` (interpolated)."""
    return float(np.interp(eff_background, roc.eff_background, roc.eff_signal, left=0.0))


def background_rejection_at(roc: Roc, eff_signal: float) -> float:
    """1 / eps_bkg at signal efficiency ``eff_signal`` (interpolated); inf where eps_bkg is 0.

    :func:`background_rejection_point` says how many background jets measure it.
    """
    eff_bkg = float(np.interp(eff_signal, roc.eff_signal, roc.eff_background, left=0.0))
    return 1.0 / eff_bkg if eff_bkg > 0 else float("inf")


def signal_efficiency_point(roc: Roc, eff_background: float) -> WorkingPoint:
    """:func:`signal_efficiency_at`, with the background jets passing that working point."""
    n_pass, n_eff_pass = _requires_counts(roc)
    return WorkingPoint(
        value=signal_efficiency_at(roc, eff_background),
        n_background_pass=float(np.interp(eff_background, roc.eff_background, n_pass, left=0.0)),
        n_background_pass_effective=float(np.interp(eff_background, roc.eff_background, n_eff_pass, left=0.0)),
    )


def background_rejection_point(roc: Roc, eff_signal: float) -> WorkingPoint:
    """1 / eps_bkg at signal efficiency ``eff_signal``, with the background jets behind it.

    Where fewer than one background jet passes (none at all, or a fraction of
    one between two ROC points), the jets cannot measure the rejection: the
    value is None and ``lower_limit`` is the number of background jets (their
    effective number when weighted): the rejection exceeds it.
    """
    n_pass, n_eff_pass = _requires_counts(roc)
    n = float(np.interp(eff_signal, roc.eff_signal, n_pass, left=0.0))
    n_eff = float(np.interp(eff_signal, roc.eff_signal, n_eff_pass, left=0.0))
    if n < 1.0:
        return WorkingPoint(None, n, n_eff, lower_limit=round(roc.n_background_effective, 2))
    return WorkingPoint(background_rejection_at(roc, eff_signal), n, n_eff)


def average_precision(
    signal: np.ndarray,
    background: np.ndarray,
    signal_weights: np.ndarray | None = None,
    background_weights: np.ndarray | None = None,
) -> float:
    """Average precision: sum over thresholds of precision x increase in recall.

    Precision is the signal fraction of the selected jets, recall the signal
    efficiency; the same step-wise definition as scikit-learn's.
    """
    roc = roc_curve(signal, background, signal_weights, background_weights)
    n_sig = _weights(np.asarray(signal, np.float64), signal_weights).sum()
    n_bkg = _weights(np.asarray(background, np.float64), background_weights).sum()
    selected_sig = roc.eff_signal * n_sig
    selected = selected_sig + roc.eff_background * n_bkg
    precision = np.divide(selected_sig, selected, out=np.ones_like(selected), where=selected > 0)
    recall_steps = np.diff(roc.eff_signal, prepend=0.0)
    return float(np.sum(precision * recall_steps))


def _percent(x: float) -> str:
    return f"{100 * x:.3g}%"


def mass_sculpting(
    background_score: np.ndarray,
    background_mass: np.ndarray,
    eff_background: float,
    *,
    bins: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    tolerance: float = SCULPTING_EFFICIENCY_TOLERANCE,
    background_name: str = "background",
) -> dict[str, Any]:
    """1/JSD between the mass distributions of passing and failing background jets.

    The cut is placed at the score value whose (weighted) background pass
    fraction lies nearest to ``eff_background``; jets of equal score pass or
    fail together, as they do under any cut. JSD uses base-2 logarithms (0 =
    identical shapes, 1 = disjoint); a larger 1/JSD means less sculpting. Mass
    bins default to 10 GeV between 40 and 250 GeV. Also returned: the two
    unit-area shapes compared (``pass_shape``, ``fail_shape``) and their bin
    ``edges``, as lists, and the jets behind the figure (``n_background``,
    ``n_background_pass`` and, for weighted jets, their Kish effective
    numbers) with ``stat_limited`` (fewer than :data:`MIN_BACKGROUND_JETS`
    effective jets pass).

    Where no cut realises ``eff_background`` to within ``tolerance`` (relative:
    too few jets, a heavy jet or a block of equal scores at the cut), or the
    shapes cannot be compared, ``jsd`` and ``inverse_jsd`` are None and
    ``note`` says why: the figure is never taken at another efficiency.
    ``background_name`` names the jets in that note.
    """
    score = np.asarray(background_score, dtype=np.float64)
    mass = np.asarray(background_mass, dtype=np.float64)
    w = _weights(score, weights)
    if len(score) == 0:
        raise ValueError("mass sculpting needs background jets")
    bins = np.arange(40.0, 251.0, 10.0) if bins is None else np.asarray(bins)
    order = np.argsort(-score, kind="stable")
    last_of_value = np.flatnonzero(np.diff(score[order], append=-np.inf) != 0)
    cum = np.cumsum(w[order])[last_of_value] / w.sum()
    # the cut (end of a block of equal scores) nearest the requested efficiency
    i = min(int(np.searchsorted(cum, eff_background, side="left")), len(cum) - 1)
    if i > 0 and abs(cum[i - 1] - eff_background) < abs(cum[i] - eff_background):
        i -= 1
    n_pass = int(last_of_value[i]) + 1
    passed = np.zeros(len(score), bool)
    passed[order[:n_pass]] = True
    achieved = float(cum[i])
    out: dict[str, Any] = {
        "jsd": None,
        "inverse_jsd": None,
        "eff_background": achieved,
        "threshold": float(score[order[n_pass - 1]]),
        "n_background": len(score),
        "n_background_pass": n_pass,
    }
    n_eff_pass = effective_count(w[passed])
    if weights is not None:
        out["n_background_effective"] = round(effective_count(w), 2)
        out["n_background_pass_effective"] = round(n_eff_pass, 2)
    out["stat_limited"] = n_eff_pass < MIN_BACKGROUND_JETS
    jets = f"{len(score)} {background_name} jets"
    if n_pass == len(score):
        out["note"] = f"all {jets} pass the cut nearest {_percent(eff_background)} efficiency"
        return out
    if abs(achieved - eff_background) > tolerance * eff_background:
        out["note"] = (
            f"the nearest cut passes {n_pass} of {jets} ({_percent(achieved)}), "
            f"not {_percent(eff_background)}"
        )
        return out
    h_pass, _ = np.histogram(mass[passed], bins=bins, weights=w[passed])
    h_fail, _ = np.histogram(mass[~passed], bins=bins, weights=w[~passed])
    if h_pass.sum() <= 0 or h_fail.sum() <= 0:
        out["note"] = f"no {'passing' if h_pass.sum() <= 0 else 'failing'} {background_name} jet inside the mass bins"
        return out
    pass_shape, fail_shape = h_pass / h_pass.sum(), h_fail / h_fail.sum()
    jsd = float(jensenshannon(pass_shape, fail_shape, base=2) ** 2)
    out.update(
        jsd=jsd,
        edges=bins.tolist(),
        pass_shape=pass_shape.tolist(),
        fail_shape=fail_shape.tolist(),
    )
    if jsd > 0:
        out["inverse_jsd"] = 1.0 / jsd
    else:
        out["note"] = "passing and failing shapes identical in these bins: 1/JSD unbounded"
    return out


def random_cut_inverse_jsd_draws(
    background_mass: np.ndarray,
    eff_background: float,
    *,
    weights: np.ndarray | None = None,
    bins: np.ndarray | None = None,
    draws: int = 20,
    seed: int = 12345,
) -> np.ndarray:
    """1/JSD of ``draws`` random cuts of efficiency ``eff_background`` on these jets.

    A random selection does not sculpt at all; its 1/JSD measures only the
    statistical fluctuations of these jets' passing and failing mass histograms.
    The draws' spread is wide (1/JSD is a chi-square-like statistic with as many
    degrees of freedom as mass bins: with 21 bins, about a quarter of random cuts lie
    below 80% of the median), so a single cut's 1/JSD is compared with the
    whole distribution, not only its median. Draws giving no figure are dropped.
    """
    mass = np.asarray(background_mass, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = [
        mass_sculpting(rng.random(len(mass)), mass, eff_background, weights=weights, bins=bins)[
            "inverse_jsd"
        ]
        for _ in range(draws)
    ]
    return np.asarray([v for v in values if v is not None], dtype=np.float64)


def random_cut_inverse_jsd(
    background_mass: np.ndarray,
    eff_background: float,
    *,
    weights: np.ndarray | None = None,
    bins: np.ndarray | None = None,
    draws: int = 20,
    seed: int = 12345,
) -> float | None:
    """The statistical ceiling of 1/JSD: its median over random cuts of the same efficiency.

    A random selection does not sculpt at all, yet its passing and failing mass
    histograms still differ by statistical fluctuations; this median 1/JSD is
    therefore the largest 1/JSD these jets can typically show. A cut reaching it
    sculpts less than statistics can tell. None when no random cut gives a
    figure. See :func:`random_cut_inverse_jsd_draws` for the draws' spread.
    """
    values = random_cut_inverse_jsd_draws(
        background_mass, eff_background, weights=weights, bins=bins, draws=draws, seed=seed
    )
    return float(np.median(values)) if values.size else None

