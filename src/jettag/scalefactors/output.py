"""Scale factors out: POG-style correctionlib corrections, a proxy combination, a markdown table.

Fits (:mod:`jettag.scalefactors.fit`) return one result per (proxy, working point,
pT bin): an ``SFResult`` or its ``to_dict()``; the functions here accept either
(fields: ``proxy``, ``working_point``, ``pt_low``, ``pt_high``, ``sf``, ``err_up``,
``err_down``, ``stat``, ``sources``, ``eff_mc``, ``eff_data``, ``status``,
``message``, ``retries``, ``n_data``, ``n_mc_signal``).

The file follows the CMS b-tagging POG's ``btagging.json.gz`` naming:

* ``<tagger>_wp_values``: input ``working_point`` (string, e.g. ``"M"``), output ``wp``,
  the cut that defines the point (:func:`wp_values_correction`);
* ``<tagger>_<proxy>`` (``gbb``, ``zbb``) and ``<tagger>_combined``: inputs
  ``systematic``, ``working_point``, ``flavor``, ``pt``; output ``weight``, the scale
  factor SF = eff_data / eff_MC (:func:`sf_correction`).

**Flavour convention (double-b).** ``flavor = 5`` selects the double-b jets these
proxies measure: jets with at least two B hadrons (the ``bb`` component of g->bb,
``zbb`` of Z->bb). It is *not* the AK4 hadron flavour 5 (one B hadron or more):
single-b jets, cc, c and light jets have no scale factor in these files, and
evaluating another flavour is an error (correctionlib's category without default).
:func:`jettag.scalefactors.weights.double_b_flavor` labels jets this way.

**Failed fits are never numbers.** A (working point, pT bin) whose fit failed
(``status != "ok"`` or ``sf`` None) cannot be left out of a pT binning, so the whole
working point would carry a hole: :func:`sf_correction` refuses such input
(:class:`~jettag.errors.JettagError` listing the failed bins) unless
``allow_failed=True``, which omits the affected working points from that
correction and lists the omitted bins with their reasons in its description.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import correctionlib.schemav2 as cs
import hist
import numpy as np

from jettag import corrections
from jettag.errors import JettagError
from jettag.outputs import check_output
from jettag.scalefactors.workingpoints import WorkingPoints

__all__ = [
    "DOUBLE_B_FLAVOR",
    "PROXY_SPECIFIC_SOURCES",
    "RESULT_FIELDS",
    "combine",
    "markdown_table",
    "sf_correction",
    "systematics",
    "wp_values_correction",
    "write_sf_file",
]

#: The ``flavor`` key of the double-b jets (>= 2 B hadrons) the proxies measure.
DOUBLE_B_FLAVOR = 5

#: The fields every result (``SFResult.to_dict()``) carries.
RESULT_FIELDS = (
    "proxy",
    "working_point",
    "pt_low",
    "pt_high",
    "sf",
    "err_up",
    "err_down",
    "stat",
    "sources",
    "eff_mc",
    "eff_data",
    "status",
    "message",
    "retries",
    "n_data",
    "n_mc_signal",
)

#: Uncertainty sources that belong to one proxy's fit (its template statistics, its
#: flavour fractions, its QCD transfer factor, its data statistics): uncorrelated
#: between proxies even where the names agree. Every other name both proxies report
#: is a physical (shape) variation of the simulation, taken fully correlated.
PROXY_SPECIFIC_SOURCES = frozenset({"stat", "mcstat", "fractions", "transfer_factor", "tf"})

_TOL = 1e-9


# ---------------------------------------------------------------------------- results


def _as_dict(result: Any) -> dict[str, Any]:
    """A result as a plain dict: an ``SFResult`` (anything with ``to_dict()``) or a mapping."""
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        raise JettagError(f"scale-factor result: expected an SFResult or its dict, got {result!r}")
    missing = [f for f in RESULT_FIELDS if f not in result]
    if missing:
        raise JettagError(f"scale-factor result {_label(result)}: missing fields {missing}")
    return dict(result)


def _label(r: Mapping[str, Any]) -> str:
    lo, hi = r.get("pt_low"), r.get("pt_high")
    pt = f"pt [{lo:g}, {hi:g})" if _finite(lo) and _finite(hi) else "pt ?"
    return f"{r.get('proxy', '?')} {r.get('working_point', '?')} {pt}"


def _finite(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _failure(r: Mapping[str, Any]) -> str | None:
    """Why a result cannot be written as a number (None: it can)."""
    if r["status"] != "ok":
        return f"status {r['status']!r}: {r['message'] or 'no message'}"
    for field in ("sf", "err_up", "err_down"):
        if not _finite(r[field]):
            return f"{field} is {r[field]!r}"
    for source, value in (r["sources"] or {}).items():
        if not _finite(value):
            return f"source {source!r} is {value!r}"
    return None


def _by_working_point(
    results: Iterable[Mapping[str, Any]], what: str
) -> dict[str, list[dict[str, Any]]]:
    """Results grouped by working point, sorted in pT, checked to tile the pT range."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(str(r["working_point"]), []).append(r)
    for wp, rows in groups.items():
        for r in rows:
            if not (_finite(r["pt_low"]) and _finite(r["pt_high"]) and r["pt_high"] > r["pt_low"]):
                raise JettagError(f"{what}: result {_label(r)}: pt_high must exceed pt_low")
        rows.sort(key=lambda r: r["pt_low"])
        for a, b in itertools.pairwise(rows):
            if not math.isclose(a["pt_high"], b["pt_low"], rel_tol=_TOL, abs_tol=_TOL):
                kind = "overlap" if b["pt_low"] < a["pt_high"] else "leave a gap"
                raise JettagError(
                    f"{what}: working point {wp!r}: pT bins [{a['pt_low']:g}, "
                    f"{a['pt_high']:g}) and [{b['pt_low']:g}, {b['pt_high']:g}) {kind}; "
                    "the bins of one working point must tile the pT range"
                )
    return groups


def systematics(sources: Iterable[str]) -> list[str]:
    """The ``systematic`` keys of a scale-factor correction with these uncertainty sources."""
    keys = ["central", "up", "down"]
    for s in sources:
        keys += [f"up_{s}", f"down_{s}"]
    return keys


def _shifted(r: Mapping[str, Any], key: str) -> float:
    """The SF of one result under one systematic key (see :func:`sf_correction`)."""
    sf = float(r["sf"])
    if key == "central":
        return sf
    if key == "up":
        return sf + abs(float(r["err_up"]))
    if key == "down":
        return sf - abs(float(r["err_down"]))
    direction, source = key.split("_", 1)
    shift = float((r["sources"] or {}).get(source, 0.0))
    return sf + shift if direction == "up" else sf - shift


# ---------------------------------------------------------------------------- corrections


def wp_values_correction(
    tagger: str, working_points: Mapping[str, Any] | WorkingPoints, *, version: int = 1
) -> cs.Correction:
    """``<tagger>_wp_values``: the cut of each working point (input ``working_point``, output ``wp``).

    ``working_points``: a :class:`~jettag.scalefactors.workingpoints.WorkingPoints`, the
    template histogram's JSON record ``{"working_points": {...}}`` or its content
    (validated by :meth:`WorkingPoints.from_dict`). The output is the recorded cut: the
    score cut of a ``kind="score"`` point (``score > cut``, or ``<`` for
    ``signal_like="low"``); 0 for a ``kind="ddt"`` point, the cut on the DDT value
    ``score - X(rho, pT)``. The description records each point's kind, score, and for
    DDT points the QCD efficiency and the map.
    """
    if not isinstance(working_points, WorkingPoints):
        working_points = WorkingPoints.from_dict(working_points, where=f"{tagger}_wp_values: ")
    notes = []
    for p in working_points:
        score = p.score or "score"
        if p.kind == "score":
            notes.append(f"{p.name}: {score} {'>' if p.signal_like == 'high' else '<'} {p.cut:g}")
        else:
            sign = f"{score} - X" if p.signal_like == "high" else f"X - {score}"
            notes.append(
                f"{p.name}: DDT at QCD efficiency {p.efficiency:g} (map {p.map}"
                + (f", {p.map_name}" if p.map_name else "")
                + f"), pass: {sign}(rho, pT) > {p.cut:g}"
            )
    data = corrections.category("working_point", working_points.cuts())
    description = (
        f"Working points of {tagger}; wp is the cut (kind score: on the score; kind ddt: "
        "on the DDT value). " + "; ".join(notes)
    )
    inputs = [
        corrections.variable("working_point", "string", description="/".join(working_points.names)),
    ]
    output = corrections.variable("wp", description="cut value of the working point")
    return corrections.correction(
        f"{tagger}_wp_values", description, inputs, output, data, version=version
    )


def sf_correction(
    tagger: str,
    proxy: str,
    results: Iterable[Any],
    *,
    description: str,
    allow_failed: bool = False,
    name: str | None = None,
    version: int = 1,
) -> cs.Correction:
    """``<tagger>_<proxy>``: scale factors by systematic, working point, flavour and pT.

    Inputs (POG order): ``systematic`` (string), ``working_point`` (string),
    ``flavor`` (int; only ``5``, the double-b jets with >= 2 B hadrons, see the module
    docstring), ``pt`` (binned on the results' pT edges per working point, clamped to
    the edge bins outside them). Output ``weight``: the SF.

    Systematics: ``central``; ``up``/``down`` = central +/- the total asymmetric error
    (``err_up``/``err_down``, taken as magnitudes); ``up_<source>``/``down_<source>`` =
    central +/- that source's uncertainty for every source in the results' ``sources``
    (a signed value keeps its sign; a source a bin does not report counts as 0 there and
    the description says where).

    The results (``SFResult`` or dicts) must all belong to ``proxy`` and tile the pT
    range contiguously per working point. Failed bins raise :class:`JettagError`
    unless ``allow_failed``: then their working points are omitted and listed with the
    reasons in the description (if none is left, :class:`JettagError`).
    """
    rows = [_as_dict(r) for r in results]
    if not rows:
        raise JettagError(f"{tagger}_{proxy}: no scale-factor results given")
    wrong = sorted({str(r["proxy"]) for r in rows if r["proxy"] != proxy})
    if wrong:
        raise JettagError(f"{tagger}_{proxy}: results of another proxy given ({', '.join(wrong)})")
    groups = _by_working_point(rows, name or f"{tagger}_{proxy}")

    failed = {
        wp: [(r, why) for r in group if (why := _failure(r)) is not None]
        for wp, group in groups.items()
    }
    failed = {wp: bad for wp, bad in failed.items() if bad}
    listing = "; ".join(f"{_label(r)}: {why}" for bad in failed.values() for r, why in bad)
    if failed and not allow_failed:
        raise JettagError(
            f"{tagger}_{proxy}: failed fits cannot be written as numbers ({listing}); "
            "fix them, or pass allow_failed to omit their working points"
        )
    kept = {wp: group for wp, group in groups.items() if wp not in failed}
    if not kept:
        raise JettagError(f"{tagger}_{proxy}: every working point has a failed bin ({listing})")

    sources = sorted({s for group in kept.values() for r in group for s in (r["sources"] or {})})
    partial = {
        s: [_label(r) for group in kept.values() for r in group if s not in (r["sources"] or {})]
        for s in sources
    }
    keys = systematics(sources)
    by_syst = {}
    for key in keys:
        by_wp = {}
        for wp, group in kept.items():
            edges = [group[0]["pt_low"], *(r["pt_high"] for r in group)]
            h = hist.Hist(hist.axis.Variable(edges, name="pt"))
            h.view()[...] = [_shifted(r, key) for r in group]
            by_wp[wp] = corrections.category(
                "flavor", {DOUBLE_B_FLAVOR: corrections.binned(h, flow="clamp")}
            )
        by_syst[key] = corrections.category("working_point", by_wp)
    data = corrections.category("systematic", by_syst)

    binning = "; ".join(
        f"{wp}: pt edges {[float(f'{e:g}') for e in [g[0]['pt_low'], *(r['pt_high'] for r in g)]]}"
        for wp, g in kept.items()
    )
    parts = [
        description.rstrip("."),
        f"SF = eff_data / eff_MC of {tagger} working points for double-b jets from the "
        f"{proxy} proxy",
        f"flavor {DOUBLE_B_FLAVOR} = double-b jets (>= 2 B hadrons inside the jet; not the AK4 "
        "hadron flavour): the only flavour measured, others are not in this correction",
        "systematic: central; up/down = central +/- total (stat + syst, asymmetric); "
        "up_<source>/down_<source> = central +/- that source alone"
        + (f"; sources: {', '.join(sources)}" if sources else "; no per-source uncertainties"),
        f"pt [GeV] clamped to the edge bins outside the measured range; {binning}",
    ]
    for s, where in partial.items():
        if where:
            parts.append(f"source {s} not reported (0) in: {', '.join(where)}")
    if failed:
        parts.append(
            "working points omitted because fits failed (no number is written for a failed "
            f"fit): {', '.join(failed)} ({listing})"
        )
    inputs = [
        corrections.variable("systematic", "string", description=", ".join(keys)),
        corrections.variable("working_point", "string", description="/".join(kept)),
        corrections.variable(
            "flavor", "int", description=f"{DOUBLE_B_FLAVOR}: double-b jets (>= 2 B hadrons)"
        ),
        corrections.variable("pt", description="jet pT [GeV]"),
    ]
    output = corrections.variable("weight", description="data/MC scale factor")
    return corrections.correction(
        name or f"{tagger}_{proxy}", "; ".join(parts), inputs, output, data, version=version
    )


# ---------------------------------------------------------------------------- combination


def combine(
    results_gbb: Iterable[Any],
    results_zbb: Iterable[Any],
    *,
    correlated: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The inverse-variance weighted combination of the two proxies, bin by bin.

    For each (working point, pT bin) that both proxies measured: if both fits are ok,
    SF = sum_i w_i SF_i / sum_i w_i with w_i = 1 / sigma_i^2, sigma_i = (err_up +
    err_down) / 2 (symmetrised). Uncertainties, with a_i = w_i / sum w:

    * per source: sources named in ``correlated`` (default: every source both proxies
      report except :data:`PROXY_SPECIFIC_SOURCES`, i.e. the shared physical shape
      variations such as b-fragmentation) are fully correlated, ``sum_i a_i u_i``; all
      others (template statistics, fractions, transfer factor, and sources only one
      proxy has) uncorrelated, ``sqrt(sum_i a_i^2 u_i^2)``; ``stat`` likewise uncorrelated;
    * total (symmetric): ``sqrt(1 / sum w + 2 a_g a_z sum_c u_gc u_zc)`` over the
      correlated sources (``1/sqrt(sum w)`` when there are none).

    A bin that both measured but where either fit failed gives a ``"failed"`` entry
    (``sf`` None, the reason in ``message``) so that :func:`sf_correction` refuses or
    omits it like any failed fit. Bins measured by one proxy only are not combined.
    ``eff_mc``/``eff_data`` belong to one proxy's sample and are not combined (NaN/None);
    counts are summed. ``proxy`` is ``"combined"``; ``message`` records both inputs and
    any tension above 2 sigma.
    """
    gbb = {_bin_key(r): r for r in map(_as_dict, results_gbb)}
    zbb = {_bin_key(r): r for r in map(_as_dict, results_zbb)}
    shared = set(correlated) if correlated is not None else None
    out = []
    for key in sorted(set(gbb) & set(zbb)):
        g, z = gbb[key], zbb[key]
        base = {
            "proxy": "combined",
            "working_point": key[0],
            "pt_low": g["pt_low"],
            "pt_high": g["pt_high"],
            "eff_mc": float("nan"),
            "eff_data": None,
            "retries": [],
            "n_data": _summed(g["n_data"], z["n_data"]),
            "n_mc_signal": _summed(g["n_mc_signal"], z["n_mc_signal"]),
        }
        why = [f"{r['proxy']} {reason}" for r in (g, z) if (reason := _failure(r)) is not None]
        if why:
            out.append(
                base
                | {
                    "sf": None,
                    "err_up": None,
                    "err_down": None,
                    "stat": None,
                    "sources": {},
                    "status": "failed",
                    "message": "not combined: " + "; ".join(why),
                }
            )
            continue
        sig = [(abs(r["err_up"]) + abs(r["err_down"])) / 2 for r in (g, z)]
        if min(sig) <= 0:
            out.append(
                base
                | {
                    "sf": None,
                    "err_up": None,
                    "err_down": None,
                    "stat": None,
                    "sources": {},
                    "status": "failed",
                    "message": "not combined: a proxy reports a zero uncertainty",
                }
            )
            continue
        w = np.array([1 / s**2 for s in sig])
        a = w / w.sum()
        sf = float(a[0] * g["sf"] + a[1] * z["sf"])
        src_g, src_z = g["sources"] or {}, z["sources"] or {}
        both = set(src_g) & set(src_z)
        corr = (both - PROXY_SPECIFIC_SOURCES) if shared is None else (both & shared)
        sources = {}
        for s in sorted(set(src_g) | set(src_z)):
            ug, uz = float(src_g.get(s, 0.0)), float(src_z.get(s, 0.0))
            if s in corr:
                sources[s] = float(a[0] * ug + a[1] * uz)
            else:
                sources[s] = float(math.hypot(a[0] * ug, a[1] * uz))
        cov = 2 * a[0] * a[1] * sum(float(src_g[s]) * float(src_z[s]) for s in corr)
        total = math.sqrt(max(1 / w.sum() + cov, 0.0))
        stat = None
        if _finite(g["stat"]) and _finite(z["stat"]):
            stat = float(math.hypot(a[0] * g["stat"], a[1] * z["stat"]))
        pull = (g["sf"] - z["sf"]) / math.hypot(*sig)
        message = (
            f"gbb {g['sf']:.4g} +- {sig[0]:.3g}, zbb {z['sf']:.4g} +- {sig[1]:.3g}"
            f" (weights {a[0]:.2f}/{a[1]:.2f}); correlated: {', '.join(sorted(corr)) or 'none'}"
        )
        if abs(pull) > 2:
            message += f"; tension {pull:+.1f} sigma"
        out.append(
            base
            | {
                "sf": sf,
                "err_up": total,
                "err_down": total,
                "stat": stat,
                "sources": sources,
                "status": "ok",
                "message": message,
            }
        )
    return out


def _bin_key(r: Mapping[str, Any]) -> tuple[str, float, float]:
    return (str(r["working_point"]), float(r["pt_low"]), float(r["pt_high"]))


def _summed(a: Mapping[str, float] | None, b: Mapping[str, float] | None) -> dict[str, float]:
    a, b = a or {}, b or {}
    return {k: float(a.get(k, 0.0)) + float(b.get(k, 0.0)) for k in {**a, **b}}


# ---------------------------------------------------------------------------- table


def _num(x: Any, fmt: str = ".3f") -> str:
    return format(float(x), fmt) if _finite(x) else "n/a"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown_table(results: Iterable[Any]) -> str:
    """A markdown table of scale factors, one row per (proxy, working point, pT bin).

    Columns: SF, total +up/-down, stat, each source, eff_MC, eff_data, the data counts
    and MC signal yields per region, status and message. Failed fits show ``n/a``.
    """
    rows = [_as_dict(r) for r in results]
    rows.sort(key=lambda r: (str(r["proxy"]), str(r["working_point"]), r["pt_low"]))
    sources = sorted({s for r in rows for s in (r["sources"] or {})})
    regions = sorted(
        {k for r in rows for k in {**(r["n_data"] or {}), **(r["n_mc_signal"] or {})}},
        key=lambda k: ({"pass": 0, "fail": 1}.get(k, 2), k),
    )
    head = ["proxy", "WP", "pT [GeV]", "SF", "+up", "-down", "stat", *sources, "eff MC", "eff data"]
    head += [f"data {k}" for k in regions] + [f"MC sig {k}" for k in regions]
    head += ["status", "message"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        src = r["sources"] or {}
        cells = [
            _cell(r["proxy"]),
            _cell(r["working_point"]),
            f"{r['pt_low']:g}-{r['pt_high']:g}",
            _num(r["sf"]),
            _num(abs(r["err_up"]) if _finite(r["err_up"]) else None),
            _num(abs(r["err_down"]) if _finite(r["err_down"]) else None),
            _num(r["stat"]),
            *(_num(src.get(s)) for s in sources),
            _num(r["eff_mc"], ".4f"),
            _num(r["eff_data"], ".4f"),
            *(_num((r["n_data"] or {}).get(k), ".0f") for k in regions),
            *(_num((r["n_mc_signal"] or {}).get(k), ".1f") for k in regions),
            _cell(r["status"]),
            _cell(r["message"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- file


def write_sf_file(
    path: str | Path,
    tagger: str,
    wp_record: Mapping[str, Any] | WorkingPoints,
    results_by_proxy: Mapping[str, Iterable[Any]],
    *,
    force: bool = False,
    inputs: Sequence[str | Path] = (),
    allow_failed: bool = False,
    description: str = "",
    correlated: Iterable[str] | None = None,
) -> Path:
    """Write the scale-factor file of ``tagger``: wp values, each proxy's SFs, their combination.

    ``wp_record``: the working points (a ``WorkingPoints``, ``{"working_points": {...}}``
    or its content);
    ``results_by_proxy``: proxy name -> its results. The combination
    (``<tagger>_combined``, :func:`combine`) is added when both ``gbb`` and ``zbb`` are
    given and share at least one bin. Written through :func:`jettag.corrections.write`
    (validated by correctionlib, atomic, never over one of ``inputs``, never over an
    existing file unless ``force``); the output path is checked before any work.
    """
    check_output(path, inputs=inputs, force=force)
    text = description.rstrip(".") or "jettag scale factors"
    results = {proxy: [_as_dict(r) for r in rs] for proxy, rs in results_by_proxy.items()}
    if not results:
        raise JettagError(f"{path}: no scale-factor results to write")
    made = [wp_values_correction(tagger, wp_record)]
    for proxy, rows in results.items():
        made.append(sf_correction(tagger, proxy, rows, description=text, allow_failed=allow_failed))
    if "gbb" in results and "zbb" in results:
        both = combine(results["gbb"], results["zbb"], correlated=correlated)
        if both:
            made.append(
                sf_correction(
                    tagger,
                    "combined",
                    both,
                    description=f"{text}; inverse-variance combination of gbb and zbb "
                    "(symmetrised errors; shared shape sources fully correlated, "
                    "fit-specific ones uncorrelated)",
                    allow_failed=allow_failed,
                )
            )
    cset = corrections.correction_set(
        made,
        f"{text}: {tagger} working points and data/MC scale factors "
        f"({', '.join(results)}{', combined' if len(made) > len(results) + 1 else ''}) "
        "in the CMS BTV POG layout; flavor 5 = double-b jets",
    )
    return corrections.write(cset, path, inputs=inputs, force=force)
