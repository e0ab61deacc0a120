"""Template histograms on disk: a ROOT file of one TH1D per template, plus a JSON record.

:func:`write_templates` stores a template histogram (the layout of
:mod:`jettag.scalefactors.templates`) as a ROOT file that ROOT, uproot or Combine read
without jettag: one TH1D of the observable (bin contents and sum of weights squared,
under/overflow included) per working point, pT bin, region, category and variation, named
like a Combine shapes file::

    <working point>/pt<low>to<high>/<region>/<category>             nominal
    <working point>/pt<low>to<high>/<region>/<category>__<variation> e.g. bb__bfrag_up

(``L/pt300to400/pass/zbb``; pT edges in GeV, a fractional edge written with ``p`` for the
point: ``pt250p5to300``). Data are the category ``data``. A (category, variation) pair that
is empty everywhere (data never has a varied template) is not written; jets in the pT
under/overflow, which the processors never fill, are kept under ``ptunderflow`` /
``ptoverflow`` when there are any. Beside the histograms, the key ``jettag_sf_templates``
holds the JSON record (a TObjString, as :func:`jettag.ddt.write_histogram` stores its own):
what the caller passes (proxy, score, working points, selection, inputs, counts, command)
and the ``layout`` that :func:`read_templates` rebuilds the histogram from (categories,
variations, working points, regions, pT edges, observable name and edges, the pairs written).

:func:`read_templates` reads one or several such files and sums them: an MC file, a data
file and MC files of physical variations add up (their categories and variations are
united). Files that cannot be summed are refused in one line naming the file: another
proxy, other working-point definitions, another selection, other pT or observable binning.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hist
import numpy as np

from jettag.errors import JettagError
from jettag.outputs import atomic_output, check_output
from jettag.scalefactors.templates import OBSERVABLES, REGIONS, make_template_hist
from jettag.scalefactors.workingpoints import WorkingPoints

__all__ = ["FORMAT", "RECORD_KEY", "read_templates", "template_name", "write_templates"]

#: the key of the JSON record in a template file
RECORD_KEY = "jettag_sf_templates"
#: the record's format tag
FORMAT = "jettag-sf-templates-1"

_AXES = ("category", "variation", "working_point", "region", "pt")
_FLOW = {"underflow": 0, "overflow": -1}


def _edge(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value).replace(".", "p")


def template_name(
    working_point: str, pt_bin: str, region: str, category: str, variation: str = "nominal"
) -> str:
    """The key of one template: ``L/pt300to400/pass/zbb`` (``__<variation>`` if not nominal).

    ``pt_bin`` is ``"pt<low>to<high>"`` (see :func:`_pt_bins`), or ``ptunderflow`` /
    ``ptoverflow``.
    """
    suffix = "" if variation == "nominal" else f"__{variation}"
    return f"{working_point}/{pt_bin}/{region}/{category}{suffix}"


def _pt_bins(edges: Sequence[float]) -> list[str]:
    return [f"pt{_edge(lo)}to{_edge(hi)}" for lo, hi in itertools.pairwise(edges)]


def _check_layout(h: hist.Hist, record: Mapping[str, Any], where: str) -> tuple[str, str]:
    """(proxy, observable) of a template histogram and its record, checked against each other."""
    names = tuple(ax.name for ax in h.axes)
    if names[:5] != _AXES or len(names) != 6:
        raise JettagError(f"{where}: histogram axes {names}: expected {(*_AXES, '<observable>')}")
    proxy = record.get("proxy")
    if proxy not in OBSERVABLES:
        raise JettagError(
            f"{where}: the record's proxy is {proxy!r}: expected one of {sorted(OBSERVABLES)}"
        )
    if names[5] != OBSERVABLES[proxy]:
        raise JettagError(
            f"{where}: observable axis {names[5]!r} is not the {proxy} proxy's "
            f"{OBSERVABLES[proxy]!r}"
        )
    wps = WorkingPoints.from_dict(record, where=f"{where}: ")
    if tuple(h.axes["working_point"]) != wps.names:
        raise JettagError(
            f"{where}: the histogram's working points {list(h.axes['working_point'])} are not "
            f"the record's {list(wps.names)}"
        )
    if tuple(h.axes["region"]) != REGIONS:
        raise JettagError(f"{where}: regions {list(h.axes['region'])}: expected {list(REGIONS)}")
    return proxy, names[5]


def write_templates(
    h: hist.Hist,
    out: str | Path,
    record: Mapping[str, Any],
    *,
    inputs: Sequence[str | Path] = (),
    force: bool = False,
) -> Path:
    """Write a template histogram as a ROOT file of TH1Ds plus its JSON record (module doc).

    ``record`` must name the ``proxy`` and hold the ``working_points`` record (the
    processors' ``record()``); the layout is added to it. Written atomically, never over
    one of ``inputs``, never over an existing file unless ``force``.
    """
    import uproot

    out = check_output(out, inputs=inputs, force=force)
    proxy, observable = _check_layout(h, record, str(out))
    categories = list(h.axes["category"])
    variations = list(h.axes["variation"])
    pt_edges = [float(e) for e in h.axes["pt"].edges]
    obs_axis = h.axes[observable]
    # (category, variation, working point, region, pt with flow, observable with flow)
    values = np.asarray(h.values(flow=True))[:, :, : len(h.axes[2]), : len(REGIONS)]
    variances = np.asarray(h.variances(flow=True))[:, :, : len(h.axes[2]), : len(REGIONS)]
    filled = (values != 0) | (variances != 0)
    pairs = [
        (c, v)
        for i, c in enumerate(categories)
        for j, v in enumerate(variations)
        if filled[i, j].any()
    ]
    pt_bins = [(name, i + 1) for i, name in enumerate(_pt_bins(pt_edges))]
    pt_flow = [f for f, i in _FLOW.items() if filled[:, :, :, :, i].any()]
    pt_bins += [(f"pt{f}", _FLOW[f]) for f in pt_flow]
    layout = {
        "proxy": proxy,
        "categories": categories,
        "variations": variations,
        "working_points": list(h.axes["working_point"]),
        "regions": list(REGIONS),
        "pt_edges": pt_edges,
        "pt_flow": pt_flow,
        "observable": {"name": observable, "edges": [float(e) for e in obs_axis.edges]},
        "templates": [list(p) for p in pairs],
        "naming": "<working point>/pt<low>to<high>/<region>/<category>[__<variation>]",
    }
    full = {"format": FORMAT, **record, "layout": layout}
    one = hist.Hist(
        hist.axis.Variable(obs_axis.edges, name=observable, label=obs_axis.label),
        storage=hist.storage.Weight(),
    )
    index = {"category": {c: i for i, c in enumerate(categories)},
             "variation": {v: j for j, v in enumerate(variations)}}  # fmt: skip
    with atomic_output(out) as tmp:
        with uproot.recreate(tmp) as f:
            for w, wp in enumerate(layout["working_points"]):
                for r, region in enumerate(REGIONS):
                    for pt_name, p in pt_bins:
                        for c, v in pairs:
                            i, j = index["category"][c], index["variation"][v]
                            view = one.view(flow=True)
                            view.value = values[i, j, w, r, p]
                            view.variance = variances[i, j, w, r, p]
                            f[template_name(wp, pt_name, region, c, v)] = one
            f[RECORD_KEY] = json.dumps(full)
    return out


def _read_one(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str, str, str], Any]]:
    """(record, {(working point, pt bin name, region, category, variation): (values, variances)})
    of one template file, values with the observable's flow bins."""
    import uproot

    if not path.is_file():
        raise JettagError(f"{path}: no such file")
    hint = "not a jettag template file (make one with 'jettag sf histogram')"
    try:
        f = uproot.open(path)
    except Exception as err:  # uproot raises many kinds for foreign files
        raise JettagError(f"{path}: {hint}: {err}") from None
    with f:
        if RECORD_KEY not in f:
            raise JettagError(f"{path}: {hint}: no {RECORD_KEY!r} record")
        try:
            record = json.loads(str(f[RECORD_KEY]))
        except (ValueError, TypeError) as err:
            raise JettagError(f"{path}: {hint}: its record is not JSON ({err})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            got = record.get("format") if isinstance(record, dict) else None
            raise JettagError(f"{path}: {hint}: record format {got!r}, expected {FORMAT!r}")
        layout = record.get("layout") or {}
        try:
            pt_names = _pt_bins(layout["pt_edges"]) + [f"pt{x}" for x in layout["pt_flow"]]
            templates = {}
            for wp in layout["working_points"]:
                for region in layout["regions"]:
                    for pt_name in pt_names:
                        for c, v in layout["templates"]:
                            th1 = f[template_name(wp, pt_name, region, c, v)]
                            templates[(wp, pt_name, region, c, v)] = (
                                np.asarray(th1.values(flow=True), dtype=float),
                                np.asarray(th1.variances(flow=True), dtype=float),
                            )
        except Exception as err:  # a missing key or a damaged layout
            raise JettagError(f"{path}: {hint}: damaged layout or template ({err})") from None
    return record, templates


def _same(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and np.array_equal(np.asarray(a, float), np.asarray(b, float))


def _compatible(record: dict[str, Any], first: dict[str, Any], path: Path, first_path: Path) -> None:
    """Refuse a file whose templates do not add up with the first file's."""
    a, b = record["layout"], first["layout"]
    if a["proxy"] != b["proxy"]:
        raise JettagError(
            f"{path}: templates of the {a['proxy']} proxy, {first_path} holds {b['proxy']}; "
            "only templates of one proxy add up"
        )
    WorkingPoints.require_same(record, path, first, first_path)
    if record.get("selection") != first.get("selection"):
        raise JettagError(
            f"{path}: selection {record.get('selection')} differs from that of {first_path} "
            f"({first.get('selection')})"
        )
    if not _same(a["pt_edges"], b["pt_edges"]):
        raise JettagError(
            f"{path}: pT edges {a['pt_edges']} differ from those of {first_path} ({b['pt_edges']})"
        )
    oa, ob = a["observable"], b["observable"]
    if oa["name"] != ob["name"] or not _same(oa["edges"], ob["edges"]):
        raise JettagError(
            f"{path}: observable {oa['name']} edges {oa['edges']} differ from those of "
            f"{first_path} ({ob['name']} {ob['edges']})"
        )


def read_templates(paths: Sequence[str | Path]) -> tuple[hist.Hist, list[dict[str, Any]]]:
    """Read and sum template files (written by :func:`write_templates`).

    Returns the summed histogram (the layout of ``templates.make_template_hist``; categories
    and variations are the union over the files, in order of first appearance) and each
    file's record with its ``"file"``. Files of another proxy, working points, selection or
    binning than the first, a file given twice, and files that are not template files are
    refused in one line naming the file.
    """
    if not paths:
        raise JettagError("no template file given")
    paths = [Path(p) for p in paths]
    seen: dict[Path, Path] = {}
    loaded = []
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise JettagError(f"{path}: given twice (also as {seen[key]}); it would count twice")
        seen[key] = path
        record, templates = _read_one(path)
        if loaded:
            _compatible(record, loaded[0][0], path, paths[0])
        loaded.append((record, templates))

    first = loaded[0][0]
    layout = first["layout"]
    categories: list[str] = []
    variations: list[str] = []
    for record, _ in loaded:
        categories += [c for c in record["layout"]["categories"] if c not in categories]
        variations += [v for v in record["layout"]["variations"] if v not in variations]
    empty = make_template_hist(
        layout["proxy"], layout["observable"]["edges"], layout["pt_edges"],
        layout["working_points"],
    )  # fmt: skip
    axes = [
        hist.axis.StrCategory(labels, growth=True, name=ax.name, label=ax.label)
        for ax, labels in zip(empty.axes[:2], (categories, variations), strict=True)
    ]
    h = hist.Hist(*axes, *empty.axes[2:], storage=hist.storage.Weight())
    view = h.view(flow=True)
    n_pt = len(layout["pt_edges"]) - 1
    pt_index = {name: i + 1 for i, name in enumerate(_pt_bins(layout["pt_edges"]))}
    pt_index |= {f"pt{f}": (0 if f == "underflow" else n_pt + 1) for f in _FLOW}
    c_index = {c: i for i, c in enumerate(categories)}
    v_index = {v: i for i, v in enumerate(variations)}
    w_index = {w: i for i, w in enumerate(layout["working_points"])}
    r_index = {r: i for i, r in enumerate(REGIONS)}
    for _, templates in loaded:
        for (wp, pt_name, region, c, v), (values, variances) in templates.items():
            cell = view[c_index[c], v_index[v], w_index[wp], r_index[region], pt_index[pt_name]]
            cell.value += values
            cell.variance += variances
    records = [{"file": str(p), **record} for p, (record, _) in zip(paths, loaded, strict=True)]
    return h, records
