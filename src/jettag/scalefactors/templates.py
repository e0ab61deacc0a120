"""The template layout of the scale-factor fits, and the fit inputs read from it.

One ``hist.Hist`` per proxy (``storage=Weight``) with the axes, in this order:
``category`` (MC flavour categories and ``"data"``), ``variation`` (``"nominal"`` or
``"<source>_up"`` / ``"<source>_down"``), ``working_point``, ``region`` (``"pass"``,
``"fail"``), ``pt`` (jet pT edges, GeV; the flow bins are not used) and the observable
(``"svmass"``, ln of the leading SV mass, for g->bb; ``"msoftdrop"`` for Z->bb).
:func:`make_template_hist` builds it empty; fill it with
``h.fill(category=..., variation=..., working_point=..., region=..., pt=..., svmass=..., weight=w)``.

:func:`region_inputs` reads one working point and pT bin as :class:`RegionInputs`, with the
MC categories merged into fit components (:data:`MERGE`): g->bb ``bb`` / ``b+cc`` / ``c+light``
(the b and cc jets look alike in SV mass, as do c and light), Z->bb ``zbb``, ``zcc``, ``zqq``,
``qcd``. A category absent from the histogram counts as zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import hist
import numpy as np

from jettag.errors import JettagError

__all__ = [
    "MERGE",
    "OBSERVABLES",
    "REGIONS",
    "SIGNAL",
    "RegionInputs",
    "make_template_hist",
    "region_inputs",
]

REGIONS = ("pass", "fail")
OBSERVABLES = {"gbb": "svmass", "zbb": "msoftdrop"}
MERGE = {
    "gbb": {"bb": ["bb"], "b+cc": ["b", "cc"], "c+light": ["c", "light"]},
    "zbb": {"zbb": ["zbb"], "zcc": ["zcc"], "zqq": ["zqq"], "qcd": ["qcd"]},
}
SIGNAL = {"gbb": "bb", "zbb": "zbb"}
_AXES = ("category", "variation", "working_point", "region", "pt")


@dataclass
class RegionInputs:
    """What one fit (one working point x one pT bin) reads: counts per region and component."""

    proxy: str  # "gbb" or "zbb"
    working_point: str
    pt_edges: tuple[float, float]
    observable_edges: np.ndarray  # (n_obs + 1,)
    data: dict[str, np.ndarray]  # region -> (n_obs,) counts (unweighted)
    mc: dict[str, dict[str, np.ndarray]]  # region -> component -> (n_obs,) sumw
    mc_w2: dict[str, dict[str, np.ndarray]]  # region -> component -> (n_obs,) sumw2
    variations: dict[
        str, dict[str, dict[str, np.ndarray]]
    ]  # "bfrag_up" -> region -> component -> sumw
    signal: str  # the component whose SF is measured ("bb" / "zbb")


def _proxy(proxy: str) -> str:
    if proxy not in OBSERVABLES:
        raise JettagError(f"unknown proxy {proxy!r}: expected one of {sorted(OBSERVABLES)}")
    return proxy


def make_template_hist(
    proxy: str,
    observable_edges: Sequence[float],
    pt_edges: Sequence[float],
    working_points: Iterable[str],
) -> hist.Hist:
    """An empty template histogram of the layout above (``working_points``: names or a record).

    """
    name = OBSERVABLES[_proxy(proxy)]
    label = {"svmass": "ln(leading SV mass / GeV)", "msoftdrop": "soft-drop mass [GeV]"}[name]
    return _layout(name, label, observable_edges, pt_edges, working_points)


def _layout(name, label, observable_edges, pt_edges, working_points) -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory([], growth=True, name="category", label="jet category"),
        hist.axis.StrCategory([], growth=True, name="variation", label="variation"),
        hist.axis.StrCategory(list(working_points), name="working_point", label="working point"),
        hist.axis.StrCategory(list(REGIONS), name="region", label="region"),
        hist.axis.Variable([float(e) for e in pt_edges], name="pt", label="jet pT [GeV]"),
        hist.axis.Variable([float(e) for e in observable_edges], name=name, label=label),
        storage=hist.storage.Weight(),
    )


def region_inputs(
    h: hist.Hist,
    *,
    proxy: str,
    working_point: str,
    pt_bin: int,
    merge: Mapping[str, Sequence[str]] | None = None,
    signal: str | None = None,
) -> RegionInputs:
    """The fit inputs of one working point and pT bin (index ``pt_bin``) of a template histogram.

    ``merge`` maps each fit component to the histogram's categories it sums (default
    :data:`MERGE` of the proxy); ``signal`` is the component whose SF is measured (default
    ``"bb"`` / ``"zbb"``). Varied templates are read for every ``<source>_up``/``_down`` pair;
    a category that was never filled with a variation contributes its nominal template to it.
    """
    _proxy(proxy)
    merge = dict(MERGE[proxy] if merge is None else merge)
    signal = SIGNAL[proxy] if signal is None else signal
    names = tuple(ax.name for ax in h.axes)
    if names[:5] != _AXES or len(names) != 6:
        raise JettagError(
            f"template histogram has axes {names}: expected {(*_AXES, '<observable>')}"
        )
    if signal not in merge:
        raise JettagError(
            f"signal component {signal!r} is not among the components {sorted(merge)}"
        )
    index = {name: {label: i for i, label in enumerate(h.axes[name])} for name in _AXES[:4]}
    samples, variations = index["category"], index["variation"]
    if "data" not in samples:
        raise JettagError(f"template histogram has no 'data' category (categories: {sorted(samples)})")
    if not any(s in samples for s in merge[signal]):
        raise JettagError(
            f"template histogram has no signal category {merge[signal]} (categories: {sorted(samples)})"
        )
    if "nominal" not in variations:
        raise JettagError(
            f"template histogram has no 'nominal' variation (variations: {sorted(variations)})"
        )
    if working_point not in index["working_point"]:
        raise JettagError(
            f"working point {working_point!r} not in the template histogram "
            f"({list(index['working_point'])})"
        )
    pt_axis = h.axes["pt"]
    if not 0 <= pt_bin < pt_axis.size:
        raise JettagError(
            f"pT bin {pt_bin} out of range: the template histogram has {pt_axis.size} pT bins"
        )

    # values[sample, variation, region, obs] at this working point and pT bin
    view = (slice(None), slice(None), index["working_point"][working_point], slice(None), pt_bin)
    everything = h.values()
    values, variances = everything[view], h.variances()[view]
    filled = (everything != 0).reshape(len(samples), len(variations), -1).any(axis=2)
    regions = [index["region"][r] for r in REGIONS]
    zeros = np.zeros(values.shape[-1])
    nominal = variations["nominal"]

    def summed(array: np.ndarray, component: str, variation: int) -> dict[str, np.ndarray]:
        out = {}
        for name, r in zip(REGIONS, regions, strict=True):
            total = zeros.copy()
            for sample in merge[component]:
                if sample in samples:
                    s = samples[sample]
                    total += array[s, variation if filled[s, variation] else nominal, r]
            out[name] = total
        return out

    def by_region(array: np.ndarray, variation: int) -> dict[str, dict[str, np.ndarray]]:
        per_component = {c: summed(array, c, variation) for c in merge}
        return {r: {c: per_component[c][r] for c in merge} for r in REGIONS}

    varied = {}
    for label in variations:
        source, _, side = label.rpartition("_")
        if label == "nominal" or side not in ("up", "down"):
            continue
        other = f"{source}_{'down' if side == 'up' else 'up'}"
        if other not in variations:
            raise JettagError(f"template histogram has variation {label!r} but not {other!r}")
        varied[label] = by_region(values, variations[label])
    d = samples["data"]
    return RegionInputs(
        proxy=proxy,
        working_point=working_point,
        pt_edges=(float(pt_axis.edges[pt_bin]), float(pt_axis.edges[pt_bin + 1])),
        observable_edges=np.asarray(h.axes[5].edges, dtype=float),
        data={name: values[d, nominal, r].copy() for name, r in zip(REGIONS, regions, strict=True)},
        mc=by_region(values, nominal),
        mc_w2=by_region(variances, nominal),
        variations=varied,
        signal=signal,
    )
