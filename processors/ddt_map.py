"""The QCD processor that fills the DDT histogram: (rho, pT, score) of QCD fat jets.

Registered as ``"ddt-histogram"``. Run it on QCD (MC, weighted by ``genWeight``)
and hand its histogram to :func:`jettag.ddt.derive_map`::

    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema
    from jettag import ddt
    from jettag.processors.ddt_map import DDTHistogramProcessor

    events = NanoEventsFactory.from_root(
        {"qcd.root": "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
    ).events()
    proc = DDTHistogramProcessor("pnet-lite", discriminant="XbbVsQCD")
    out = proc.process(events)     # {dataset: {...}}; dataset: events.metadata["dataset"],
    h = out["events"]["ddt"]       # else "events" (coffea's Runner sets the dataset name)
    ddt_map = ddt.derive_map(h, [0.01, 0.05], signal_like=proc.signal_like)

What the score is (``score`` and ``discriminant``):

* a jettag tagger: ``score`` is a :class:`~jettag.tagger.Tagger`, a shipped name
  (``"pnet-lite"``) or a model directory, and ``discriminant`` is REQUIRED: a
  class name (``"Xbb"``: that class's probability) or ``"AVsB"`` (``"XbbVsQCD"``:
  ``Xbb / (Xbb + QCD)``). The tagger is resolved in the constructor (so a bad name
  or class fails at once); a ``Tagger`` pickles without its onnxruntime session,
  so the processor pickles and ships to workers.
* a column of ``events.FatJet``: ``score`` is its name and ``discriminant`` is
  None (``"particleNet_XbbVsQCD"``, ``"btagDDBvLV2"``, ``"n2b1"``, ...).

The selection, in order (the defaults; every cut is an argument):

1. ``pt_min < pt < pt max edge`` (``pt_min`` defaults to the lowest pT edge, 300 GeV);
2. ``|eta| < abs_eta_max`` (2.4);
3. ``msoftdrop > 0`` (otherwise rho = -inf) and rho inside the rho axis range;
   with ``msd_range=(low, high)`` also ``low <= msoftdrop < high``;
4. a finite score (a missing column value of -1 is finite: it lands in the score
   underflow, which ``derive_map`` counts at the lowest edge);
5. for a jettag tagger, ``tagger.in_phase_space(events)`` (its training phase space,
   e.g. 40 <= msoftdrop < 250 GeV for the shipped taggers) unless ``phase_space=False``.

``jets(events)`` returns the selected jets as flat arrays (``rho``, ``pt``,
``msoftdrop``, ``score``, ``weight``): what the histogram is filled with, and
what ``jettag ddt report`` measures a map on. ``settings()`` records the choices.

Jets outside the rho or pT range are left out rather than put in flow bins
(``derive_map`` ignores rho/pT flow anyway), so ``sumw`` in the output equals
the histogram's total weight.

Weights: ``events[weight]`` (default ``"genWeight"``: jettag's QCD is generated
with a pT-hat bias that genWeight undoes) when the events have it, else 1 (data).
``weight=None`` fills unweighted.

Output, accumulatable (``coffea.processor.accumulate`` adds it across chunks)::

    {dataset: {"ddt": hist.Hist(rho, pt, score; Weight storage),
               "n_events": int, "n_jets": int (selected), "sumw": float (selected)}}

Eager and virtual NanoEvents are supported; dask NanoEvents are refused with a
clear message (filling needs ``dask-histogram``, which is not a jettag
dependency yet: *planned*).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor

from jettag import ddt
from jettag.tagger import Tagger
from jettag.taggers.score import JetScore

__all__ = ["DEFAULT_PT_EDGES", "DEFAULT_RHO_BINS", "DDTHistogramProcessor"]

#: rho axis: 24 bins in [-7, -1] (0.25 wide; rho = -7 is msoftdrop ~ 9 GeV at
#: pT = 300 GeV, rho = -1 is the wide-angle limit of an AK8 jet)
DEFAULT_RHO_BINS: tuple[int, float, float] = (24, -7.0, -1.0)
#: pT edges [GeV]: narrow where QCD is plentiful, wide in the tail
DEFAULT_PT_EDGES: tuple[float, ...] = (300.0, 400.0, 500.0, 650.0, 800.0, 1000.0, 1500.0, 3000.0)


class DDTHistogramProcessor(processor.ProcessorABC):
    """Fill the (rho, pT, score) histogram of QCD fat jets from which DDT maps are derived.

    Parameters
    ----------
    score:
        a jettag tagger (``Tagger``, shipped name or model directory; needs
        ``discriminant``) or the name of a ``FatJet`` column (``discriminant=None``).
    discriminant:
        for a tagger: a class (``"Xbb"``) or ``"AVsB"`` = A / (A + B) (``"XbbVsQCD"``).
    signal_like:
        ``"high"`` (taggers, default) or ``"low"`` (``n2b1``). The histogram just
        stores the variable; pass the same value to ``derive_map`` (``self.signal_like``).
    score_axis:
        a ``hist`` axis for the score; default ``ddt.score_axis("tagger")``
        (1000 bins dense near 1) for ``signal_like="high"``, and
        ``ddt.score_axis("substructure")`` (500 bins on [0, 0.5]) for ``"low"``,
        named ``"score"`` and labelled with the score's description.
    rho_bins:
        ``(n, low, high)`` of a regular rho axis (default 24 bins in [-7, -1]) or
        a sequence of edges.
    pt_edges:
        pT bin edges [GeV] (default 300, 400, 500, 650, 800, 1000, 1500, 3000).
    pt_min:
        the jet pT cut [GeV] (default: the lowest pT edge).
    abs_eta_max:
        the |eta| cut (default 2.4).
    msd_range:
        ``(low, high)``: keep jets with ``low <= msoftdrop < high`` [GeV] (default:
        no cut beyond ``msoftdrop > 0``; a tagger's phase space adds its own).
    phase_space:
        for a tagger: keep only jets in its training phase space (default True).
    weight:
        the event-weight field (default ``"genWeight"``, used when present, 1 when
        absent); None: unweighted.
    tagger_options:
        keyword arguments for ``taggers.resolve`` (``threads``, ``device``, ...).
    """

    def __init__(
        self,
        score: str | Path | Tagger,
        *,
        discriminant: str | None = None,
        signal_like: ddt.SignalLike = "high",
        score_axis: hist.axis.Regular | hist.axis.Variable | None = None,
        rho_bins: tuple[int, float, float] | Sequence[float] = DEFAULT_RHO_BINS,
        pt_edges: Sequence[float] = DEFAULT_PT_EDGES,
        pt_min: float | None = None,
        abs_eta_max: float = 2.4,
        msd_range: tuple[float, float] | None = None,
        phase_space: bool = True,
        weight: str | None = "genWeight",
        tagger_options: dict[str, Any] | None = None,
    ) -> None:
        if signal_like not in ("high", "low"):
            raise ValueError(f"signal_like must be 'high' or 'low', got {signal_like!r}")
        self.signal_like = signal_like
        self.score = JetScore(score, discriminant, tagger_options=tagger_options)
        self.tagger: Tagger | None = self.score.tagger
        self.discriminant = discriminant
        self.column: str | None = self.score.column
        self.description = description = self.score.description
        self.phase_space = phase_space
        self.weight = weight
        self.abs_eta_max = float(abs_eta_max)
        if msd_range is not None and not (0 <= msd_range[0] < msd_range[1]):
            raise ValueError(f"msd_range must be (low, high) with 0 <= low < high, got {msd_range}")
        self.msd_range = None if msd_range is None else (float(msd_range[0]), float(msd_range[1]))

        if len(rho_bins) == 3 and isinstance(rho_bins[0], int | np.integer):
            n, low, high = rho_bins
            rho_axis = hist.axis.Regular(int(n), float(low), float(high), name="rho")
        else:
            rho_axis = hist.axis.Variable([float(e) for e in rho_bins], name="rho")
        rho_axis.label = "rho = 2 ln(msoftdrop/pT)"
        pt_axis = hist.axis.Variable([float(e) for e in pt_edges], name="pt", label="pT [GeV]")
        if score_axis is None:
            kind = "tagger" if signal_like == "high" else "substructure"
            score_axis = ddt.score_axis(kind, name="score", label=description)
        self._axes = (rho_axis, pt_axis, score_axis)
        self.pt_min = float(pt_edges[0]) if pt_min is None else float(pt_min)

    # ------------------------------------------------------------------ helpers
    @property
    def score_axis_name(self) -> str:
        """The name of the histogram's score axis (``derive_map(score_axis=...)``)."""
        return self._axes[2].name

    def settings(self) -> dict[str, Any]:
        """What this processor selects and fills, for the record (``jettag ddt histogram``)."""
        return {
            "score": self.description,
            "tagger": None if self.tagger is None else self.tagger.name,
            "discriminant": self.discriminant,
            "column": self.column,
            "signal_like": self.signal_like,
            "pt_min": self.pt_min,
            "abs_eta_max": self.abs_eta_max,
            "msd_range": None if self.msd_range is None else list(self.msd_range),
            "phase_space": bool(self.phase_space and self.tagger is not None),
            "weight": self.weight,
        }

    def histogram(self) -> hist.Hist:
        """An empty histogram with this processor's axes."""
        return hist.Hist(*self._axes, storage=hist.storage.Weight())

    # ------------------------------------------------------------------ select and compute
    def jets(self, events: Any) -> dict[str, np.ndarray]:
        """The selected jets as flat numpy arrays: ``rho``, ``pt``, ``msoftdrop``, ``score``, ``weight``.

        What the histogram is filled with; ``jettag ddt report`` uses the same
        selection on independent QCD and on signal samples.
        """
        if type(events).__module__.startswith("dask_awkward"):
            raise NotImplementedError(
                "DDTHistogramProcessor: dask NanoEvents are not supported yet (filling needs "
                "dask-histogram); open the events with mode='eager' or mode='virtual'"
            )
        jets = events.FatJet

        # compute: the score (taggers read the unselected events), rho, the event weight
        score = self.score(events)
        jet_rho = ddt.rho(jets.msoftdrop, jets.pt)
        if self.weight is not None and self.weight in events.fields:
            event_weight = ak.values_astype(events[self.weight], np.float64)
        else:
            event_weight = ak.Array(np.ones(len(events)))
        jet_weight = ak.broadcast_arrays(event_weight, jets.pt)[0]

        # select
        rho_axis, pt_axis, _ = self._axes
        selected = (
            (jets.pt > self.pt_min)
            & (jets.pt < pt_axis.edges[-1])
            & (abs(jets.eta) < self.abs_eta_max)
            & (jets.msoftdrop > 0)
            & (jet_rho >= rho_axis.edges[0])
            & (jet_rho < rho_axis.edges[-1])
            & np.isfinite(score)
        )
        if self.msd_range is not None:
            selected = (
                selected
                & (jets.msoftdrop >= self.msd_range[0])
                & (jets.msoftdrop < self.msd_range[1])
            )
        if self.tagger is not None and self.phase_space:
            selected = selected & self.tagger.in_phase_space(events)

        def flat(x: Any) -> np.ndarray:
            return np.asarray(ak.to_numpy(ak.flatten(x[selected], axis=1)), dtype=np.float64)

        return {
            "rho": flat(jet_rho),
            "pt": flat(jets.pt),
            "msoftdrop": flat(jets.msoftdrop),
            "score": flat(score),
            "weight": flat(jet_weight),
        }

    # ------------------------------------------------------------------ the processor
    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        dataset = (
            events.metadata.get("dataset", "events") if hasattr(events, "metadata") else "events"
        )
        jets = self.jets(events)
        h = self.histogram()
        h.fill(
            **{"rho": jets["rho"], "pt": jets["pt"], self.score_axis_name: jets["score"]},
            weight=jets["weight"],
        )
        return {
            dataset: {
                "ddt": h,
                "n_events": len(events),
                "n_jets": int(jets["weight"].size),
                "sumw": float(jets["weight"].sum()),
            }
        }

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
