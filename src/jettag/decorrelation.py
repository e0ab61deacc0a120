"""How decorrelated a tagger cut is: QCD pass rates, mass sculpting, signal kept.

The figures of a DDT map's closure on an independent QCD sample, each beside
the same figure for a fixed cut on the raw score that has the same overall QCD
efficiency:

* :func:`closure` -- the QCD pass rate in every (rho, pT) bin of the map against
  the target efficiency: chi2 per bin with binomial errors, the largest relative
  deviation, the spread (standard deviation over mean), over the bins that
  expect at least ``min_expected`` effective passing jets;
* :func:`pass_rate_profile` -- the QCD pass rate against one variable
  (msoftdrop, rho, pT);
* :func:`report` -- all of it at several working points, with 1/JSD between the
  passing and failing QCD msoftdrop (and its random-cut ceiling) and the signal
  efficiency kept; :func:`markdown` and :func:`plot` draw it.

Everything works on flat numpy arrays of selected jets (the ``jets`` method of
the ``"ddt-histogram"`` processor gives them) and on weighted jets: errors use
the weights (``sum w^2``), counts are Kish effective counts
``(sum w)^2 / sum w^2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jettag import ddt, performance

__all__ = [
    "MIN_EXPECTED_PASSING",
    "closure",
    "fixed_cut",
    "markdown",
    "pass_rate_profile",
    "plot",
    "report",
    "to_json",
]

#: bins expecting fewer effective passing QCD jets than this are not tested
MIN_EXPECTED_PASSING = 50.0
#: the largest relative deviation of a tested bin's pass rate from its target
MAX_RELATIVE_DEVIATION = 0.30
#: the largest chi2 per tested bin
MAX_CHI2_PER_BIN = 1.5

Jets = Mapping[str, np.ndarray]


def fixed_cut(score: np.ndarray, weight: np.ndarray, efficiency: float, signal_like: str) -> float:
    """The raw-score threshold that passes a weighted fraction ``efficiency`` of the jets.

    ``signal_like="high"``: jets with ``score > threshold`` pass; ``"low"``:
    ``score < threshold``.
    """
    s = np.asarray(score, dtype=float) * (1.0 if signal_like == "high" else -1.0)
    w = np.asarray(weight, dtype=float)
    order = np.argsort(-s, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    i = min(int(np.searchsorted(cum, efficiency, side="left")), len(cum) - 1)
    # the cut lies between the last passing and the first failing jet
    below = s[order[i + 1]] if i + 1 < len(s) else s[order[i]] - 1.0
    threshold = 0.5 * (s[order[i]] + below)
    return float(threshold if signal_like == "high" else -threshold)


def _passes_fixed(score: np.ndarray, threshold: float, signal_like: str) -> np.ndarray:
    return score > threshold if signal_like == "high" else score < threshold


def _binned_rates(
    passed: np.ndarray, weight: np.ndarray, index: np.ndarray, n_bins: int, target: float | None
) -> dict[str, np.ndarray]:
    """Per bin: jets, effective jets, weighted pass rate and its binomial error.

    The error is that of a ratio of weighted sums (delta method),
    ``sqrt(sum w^2 (1_pass - p)^2) / sum w``, with ``p`` the ``target`` when given
    (the error under the hypothesis tested) or the observed rate. It reduces to
    the binomial ``sqrt(p (1 - p) / n_eff)`` (Kish count) when the weights do not
    depend on passing; with generator weights they do (a jet's pT-hat weight
    correlates with its substructure inside a (rho, pT) bin), and then only this
    form is right.
    """
    ok = (index >= 0) & (index < n_bins)
    idx, w, p = index[ok], weight[ok], passed[ok].astype(float)
    sumw = np.bincount(idx, w, n_bins)
    sumw2 = np.bincount(idx, w**2, n_bins)
    n = np.bincount(idx, minlength=n_bins)
    sumw_pass = np.bincount(idx, w * p, n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(sumw > 0, sumw_pass / sumw, np.nan)
        # the variance of a ratio of weighted sums (delta method):
        # sum w^2 (1_pass - ref)^2 = sum_pass w^2 (1 - ref)^2 + sum_fail w^2 ref^2
        ref = np.full(n_bins, target) if target is not None else rate
        sumw2_pass = np.bincount(idx, w**2 * p, n_bins)
        var = sumw2_pass * (1 - ref) ** 2 + (sumw2 - sumw2_pass) * ref**2
        error = np.where(sumw > 0, np.sqrt(var) / sumw, np.nan)
        n_eff = np.where(sumw2 > 0, sumw**2 / sumw2, 0.0)
    return {"n_jets": n, "n_effective": n_eff, "rate": rate, "error": error}


def closure(
    passed: np.ndarray,
    rho: np.ndarray,
    pt: np.ndarray,
    weight: np.ndarray,
    *,
    efficiency: float,
    rho_edges: np.ndarray,
    pt_edges: np.ndarray,
    min_expected: float = MIN_EXPECTED_PASSING,
    map_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """The QCD pass rate per (rho, pT) bin against the target ``efficiency``.

    A bin is tested when it expects at least ``min_expected`` effective passing
    jets (``efficiency * n_eff``). Over the tested bins: ``chi2_per_bin`` (pull
    = (rate - target) / binomial error under the target), ``max_relative_deviation``
    (``|rate / target - 1|``), and ``spread`` (standard deviation over mean of the
    rates). Per-bin arrays have shape ``(n_rho, n_pt)``.

    ``map_counts``: the effective QCD jets per bin of the sample the map was
    derived from (same bins). The map's own statistical error moves a bin's
    pass rate by ``sqrt(eps (1 - eps) / n_map)``; with it, ``chi2_per_bin_with_map_error``
    adds that in quadrature, and ``map_to_test_variance`` is the median ratio of
    the two variances over the tested bins (small: the test sees only its own
    statistics).
    """
    rho_edges, pt_edges = np.asarray(rho_edges), np.asarray(pt_edges)
    n_rho, n_pt = len(rho_edges) - 1, len(pt_edges) - 1
    ir = np.searchsorted(rho_edges, rho, side="right") - 1
    ip = np.searchsorted(pt_edges, pt, side="right") - 1
    inside = (ir >= 0) & (ir < n_rho) & (ip >= 0) & (ip < n_pt)
    index = np.where(inside, ir * n_pt + ip, -1)
    b = _binned_rates(passed, weight, index, n_rho * n_pt, efficiency)
    expected = efficiency * b["n_effective"]
    tested = expected >= min_expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pull = (b["rate"] - efficiency) / b["error"]
    rel = np.abs(b["rate"] / efficiency - 1.0)
    rates = b["rate"][tested]
    map_var = None
    if map_counts is not None:
        map_counts = np.asarray(map_counts, dtype=float).reshape(-1)
        if map_counts.size != n_rho * n_pt:
            raise ValueError("closure: map_counts must have one entry per (rho, pT) bin")
        with np.errstate(invalid="ignore", divide="ignore"):
            map_var = np.where(
                map_counts > 0, efficiency * (1 - efficiency) / map_counts, np.inf
            )
    summary: dict[str, Any] = {
        "efficiency": efficiency,
        "n_jets": int(inside.sum()),
        "n_effective": round(performance.effective_count(weight[inside]), 1),
        "pass_rate": float(np.sum(weight[inside] * passed[inside]) / np.sum(weight[inside])),
        "n_bins": int(n_rho * n_pt),
        "n_bins_tested": int(tested.sum()),
        "min_expected_passing": min_expected,
        "n_jets_tested": int(b["n_jets"][tested].sum()),
    }
    if tested.any():
        summary.update(
            chi2_per_bin=float(np.mean(pull[tested] ** 2)),
            max_relative_deviation=float(rel[tested].max()),
            spread=float(np.std(rates) / np.mean(rates)) if np.mean(rates) > 0 else None,
        )
        if map_var is not None:
            total = b["error"] ** 2 + map_var
            summary["chi2_per_bin_with_map_error"] = float(
                np.mean(((b["rate"] - efficiency) ** 2 / total)[tested])
            )
            summary["map_to_test_variance"] = float(
                np.median(map_var[tested] / b["error"][tested] ** 2)
            )
    else:
        summary.update(
            chi2_per_bin=None,
            max_relative_deviation=None,
            spread=None,
            note=f"no (rho, pT) bin expects {min_expected:g} effective passing jets",
        )
    shape = (n_rho, n_pt)
    summary["bins"] = {
        "rate": b["rate"].reshape(shape),
        "error": b["error"].reshape(shape),
        "n_jets": b["n_jets"].reshape(shape),
        "n_effective": b["n_effective"].reshape(shape),
        "tested": tested.reshape(shape),
    }
    return summary


def pass_rate_profile(
    passed: np.ndarray, x: np.ndarray, weight: np.ndarray, edges: Sequence[float]
) -> dict[str, Any]:
    """The weighted pass rate in bins of ``x``, with its binomial error and the counts."""
    edges = np.asarray(edges, dtype=float)
    index = np.searchsorted(edges, x, side="right") - 1
    b = _binned_rates(passed, weight, index, len(edges) - 1, None)
    return {"edges": edges, **b}


def _sculpting(
    ranking: np.ndarray, msd: np.ndarray, w: np.ndarray, efficiency: float, msd_edges: np.ndarray
) -> dict[str, Any]:
    out = performance.mass_sculpting(
        ranking, msd, efficiency, weights=w, bins=msd_edges, background_name="QCD"
    )
    keep = (
        "inverse_jsd",
        "jsd",
        "eff_background",
        "n_background",
        "n_background_pass",
        "n_background_pass_effective",
        "stat_limited",
        "note",
    )
    return {k: out[k] for k in keep if k in out}


def report(
    qcd: Jets,
    correction: Any,
    efficiencies: Sequence[float],
    *,
    signal_like: str = "high",
    signals: Mapping[str, Jets] | None = None,
    rho_edges: np.ndarray,
    pt_edges: np.ndarray,
    msd_edges: Sequence[float] = tuple(range(40, 251, 10)),
    rho_profile_edges: Sequence[float] | None = None,
    min_expected: float = MIN_EXPECTED_PASSING,
    random_draws: int = 200,
    map_counts: np.ndarray | None = None,
) -> dict[str, Any]:
    """The decorrelation report of a DDT map on independent QCD (and signal) jets.

    ``qcd`` and each of ``signals``: flat arrays ``rho``, ``pt``, ``msoftdrop``,
    ``score``, ``weight`` of selected jets. ``correction``: the DDT map (a
    schemav2 correction, a file or a shipped name, as :func:`jettag.ddt.apply`
    takes). For each efficiency: the fixed raw-score cut of the same weighted QCD
    efficiency on these jets; for both cuts the (rho, pT) closure, the pass rate
    against msoftdrop, rho and pT, 1/JSD of passing vs failing QCD msoftdrop at
    that efficiency against ``random_draws`` random cuts of the same efficiency
    on the same jets (their median, the ceiling; their 16-84% band; the cut's
    percentile among them), and each signal's efficiency.
    ``map_counts``: see :func:`closure` (applies to the DDT cut only).
    """
    msd_edges = np.asarray(msd_edges, dtype=float)
    if rho_profile_edges is None:
        rho_profile_edges = rho_edges
    w = np.asarray(qcd["weight"], dtype=float)
    result: dict[str, Any] = {
        "n_qcd_jets": len(w),
        "n_qcd_effective": round(performance.effective_count(w), 1),
        "signals": {
            name: {"n_jets": len(j["weight"]), "n_effective": round(performance.effective_count(j["weight"]), 1)}
            for name, j in (signals or {}).items()
        },
        "working_points": [],
    }
    for eps in efficiencies:
        eps = float(eps)
        threshold = fixed_cut(qcd["score"], w, eps, signal_like)
        ddt_value = ddt.apply(
            correction, qcd, qcd["score"], efficiency=eps, signal_like=signal_like
        )
        ddt_value = np.where(np.isfinite(ddt_value), ddt_value, -np.inf)
        cuts = {
            "fixed": (_passes_fixed(qcd["score"], threshold, signal_like), qcd["score"]),
            "ddt": (ddt_value > 0, ddt_value),
        }
        wp: dict[str, Any] = {"efficiency": eps, "fixed_threshold": threshold, "cuts": {}}
        draws = performance.random_cut_inverse_jsd_draws(
            qcd["msoftdrop"], eps, weights=w, bins=msd_edges, draws=random_draws
        )
        ceiling = float(np.median(draws)) if draws.size else None
        wp["inverse_jsd_random_cut"] = ceiling
        wp["inverse_jsd_random_cut_band"] = (
            [float(v) for v in np.percentile(draws, [16, 84])] if draws.size else None
        )
        wp["random_draws"] = int(draws.size)
        for name, (passed, value) in cuts.items():
            ranking = value if (name == "ddt" or signal_like == "high") else -value
            entry = {
                "closure": closure(
                    passed,
                    qcd["rho"],
                    qcd["pt"],
                    w,
                    efficiency=eps,
                    rho_edges=rho_edges,
                    pt_edges=pt_edges,
                    min_expected=min_expected,
                    map_counts=map_counts if name == "ddt" else None,
                ),
                "profiles": {
                    "msoftdrop": pass_rate_profile(passed, qcd["msoftdrop"], w, msd_edges),
                    "rho": pass_rate_profile(passed, qcd["rho"], w, rho_profile_edges),
                    "pt": pass_rate_profile(passed, qcd["pt"], w, pt_edges),
                },
                "sculpting": _sculpting(ranking, qcd["msoftdrop"], w, eps, msd_edges),
                "signal_efficiency": {},
            }
            inv = entry["sculpting"].get("inverse_jsd")
            entry["sculpting"]["fraction_of_random_ceiling"] = (
                inv / ceiling if inv is not None and ceiling else None
            )
            # the cut's place among random cuts: ~uniform in [0, 1] if it does not sculpt
            entry["sculpting"]["random_cut_percentile"] = (
                float(np.mean(draws < inv)) if inv is not None and draws.size else None
            )
            for sname, jets in (signals or {}).items():
                if name == "fixed":
                    s_pass = _passes_fixed(jets["score"], threshold, signal_like)
                else:
                    v = ddt.apply(
                        correction, jets, jets["score"], efficiency=eps, signal_like=signal_like
                    )
                    s_pass = np.nan_to_num(v, nan=-1.0) > 0
                sw = np.asarray(jets["weight"], dtype=float)
                total = sw.sum()
                entry["signal_efficiency"][sname] = (
                    float(np.sum(sw * s_pass) / total) if total > 0 else None
                )
            wp["cuts"][name] = entry
        fixed_inv = wp["cuts"]["fixed"]["sculpting"].get("inverse_jsd")
        ddt_inv = wp["cuts"]["ddt"]["sculpting"].get("inverse_jsd")
        wp["ddt_over_fixed_inverse_jsd"] = (
            ddt_inv / fixed_inv if ddt_inv is not None and fixed_inv else None
        )
        result["working_points"].append(wp)
    return result


# ---------------------------------------------------------------------------- output


def _fmt(x: Any, spec: str = ".3g") -> str:
    return "n/a" if x is None else format(x, spec)


def _band(band: Sequence[float] | None) -> str:
    return "" if band is None else f" ({band[0]:.0f}-{band[1]:.0f})"


def markdown(result: dict[str, Any], title: str = "DDT decorrelation report") -> str:
    """The report as markdown tables (figures with the counts behind them)."""
    lines = [
        f"# {title}",
        "",
        f"QCD: {result['n_qcd_jets']} jets ({result['n_qcd_effective']} effective, weighted). "
        + (
            "Signals: "
            + ", ".join(
                f"{k} {v['n_jets']} jets ({v['n_effective']} effective)"
                for k, v in result["signals"].items()
            )
            + "."
            if result["signals"]
            else "No signal sample."
        ),
        "",
        "Closure: the QCD pass rate in each (rho, pT) bin"
        + (
            f" (the map's rho bins merged by {result['closure_rho_merge']})"
            if result.get("closure_rho_merge", 1) > 1
            else ""
        )
        + " expecting at least "
        f"{MIN_EXPECTED_PASSING:g} effective passing jets, against the target "
        f"(acceptance: chi2/bin <= {MAX_CHI2_PER_BIN}, no bin off by more than "
        f"{MAX_RELATIVE_DEVIATION:.0%}). Sculpting: 1/JSD of passing vs failing QCD "
        "msoftdrop; the ceiling is the median over random cuts of the same efficiency "
        "(16-84% of them in the band beside it), and the percentile is the fraction of "
        "random cuts with a lower 1/JSD (about uniform for a cut that does not sculpt; "
        "near 0 for one that does).",
        "",
        "| "
        + " | ".join(
            [
                "QCD eff.",
                "cut",
                "pass rate",
                "bins tested (jets)",
                "chi2/bin (with map error)",
                "max rel. dev.",
                "spread",
                "1/JSD",
                "ceiling (16-84%)",
                "of ceiling",
                "percentile",
                *(f"eff. {k}" for k in result["signals"]),
            ]
        )
        + " |",
        "|" + "---|" * (11 + len(result["signals"])),
    ]
    for wp in result["working_points"]:
        for name, entry in wp["cuts"].items():
            c, s = entry["closure"], entry["sculpting"]
            flag = " (stat. limited)" if s.get("stat_limited") else ""
            row = [
                f"{wp['efficiency']:g}",
                name if name == "ddt" else f"fixed ({wp['fixed_threshold']:.4g})",
                _fmt(c["pass_rate"], ".4f"),
                f"{c['n_bins_tested']}/{c['n_bins']} ({c['n_jets_tested']})",
                _fmt(c["chi2_per_bin"], ".2f")
                + (
                    f" ({_fmt(c['chi2_per_bin_with_map_error'], '.2f')})"
                    if "chi2_per_bin_with_map_error" in c
                    else ""
                ),
                _fmt(c["max_relative_deviation"], ".1%"),
                _fmt(c["spread"], ".3f"),
                _fmt(s.get("inverse_jsd"), ".1f") + flag,
                _fmt(wp["inverse_jsd_random_cut"], ".1f") + _band(wp.get("inverse_jsd_random_cut_band")),
                _fmt(s.get("fraction_of_random_ceiling"), ".0%"),
                _fmt(s.get("random_cut_percentile"), ".0%"),
            ]
            row += [_fmt(v, ".3f") for v in entry["signal_efficiency"].values()]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], out_dir: str | Path, label: str = "") -> list[Path]:
    """One PNG per working point: QCD pass rate against msoftdrop, rho and pT, fixed vs DDT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    out_dir = Path(out_dir)
    written = []
    for wp in result["working_points"]:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for ax, var, xlabel in zip(
            axes,
            ("msoftdrop", "rho", "pt"),
            ("msoftdrop [GeV]", "rho = 2 ln(msoftdrop/pT)", "pT [GeV]"),
            strict=True,
        ):
            for name, style in (("fixed", "C0"), ("ddt", "C1")):
                prof = wp["cuts"][name]["profiles"][var]
                rate = np.asarray(prof["rate"], dtype=float)
                mplhep.histplot(
                    np.nan_to_num(rate),
                    prof["edges"],
                    yerr=np.nan_to_num(np.asarray(prof["error"], dtype=float)),
                    ax=ax,
                    color=style,
                    label=name if name == "ddt" else f"fixed cut {wp['fixed_threshold']:.4g}",
                )
            ax.axhline(wp["efficiency"], color="grey", ls="--", lw=1, label="target")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("QCD pass rate")
            if var == "pt":
                ax.set_xscale("log")
            ax.legend(fontsize=8)
        fig.suptitle(f"{label} QCD efficiency {wp['efficiency']:g}".strip())
        fig.tight_layout()
        path = out_dir / f"pass_rate_{ddt.working_point_key(wp['efficiency'])}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def to_json(result: dict[str, Any]) -> Any:
    """The report with numpy arrays as lists (NaN as None), for ``json.dump``."""
    if isinstance(result, dict):
        return {k: to_json(v) for k, v in result.items()}
    if isinstance(result, list | tuple):
        return [to_json(v) for v in result]
    if isinstance(result, np.ndarray):
        return to_json(result.tolist())
    if isinstance(result, float | np.floating):
        return None if not np.isfinite(result) else float(result)
    if isinstance(result, np.integer | np.bool_):
        return result.item()
    return result
