"""The Z->bb proxy: boosted Z(->qq)+jet, soft-drop mass templates for tagging scale factors.

Registered as ``"sf-zbb"``. A boosted Z decaying to b quarks makes a two-prong
jet at 91 GeV much like a boosted H->bb; its peak in the soft-drop mass above
the falling QCD continuum tells how many Z->bb jets pass a working point in data,
without truth. The fit (``jettag sf --proxy zbb``) models msoftdrop in the pass
and fail regions of each working point and pT bin: Z->bb, Z->cc, Z->qq from
simulation, QCD in the pass region from the fail region through a smooth
transfer factor. ::

    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from jettag.processors.zbb import ZbbProxyProcessor

    proc = ZbbProxyProcessor("pnet-lite", discriminant="XbbVsQCD", working_points="wps.json")
    run = processor.Runner(processor.IterativeExecutor(), schema=PFNanoAODSchema)
    out = run({"zqq": ["zqq_all.root"], "qcd": ["qcd.root"], "data": ["zmix.root"]}, proc,
              treename="Events")

The selection (every number is an argument):

1. ``kinematics``: the candidate jet, by default the leading (highest-pT) fat jet
   of the event (``jets="all"``: every fat jet), with ``pt_min < pt < the last pT
   edge`` (300 GeV, 1000 GeV), ``|eta| < abs_eta_max`` (2.4) and
   ``msd_range[0] <= msoftdrop < msd_range[1]`` (40, 200 GeV);
2. ``score``: a finite score and, for a jettag tagger, its training phase space
   (``phase_space=True``; the shipped taggers': pT > 300 GeV, 40 <= msoftdrop < 250 GeV).

Samples: MC jets within DeltaR < ``z_dr`` (0.8) of the generated Z are ``zbb`` /
``zcc`` / ``zqq`` by the Z's decay quarks, all others ``qcd``
(:func:`jettag.scalefactors.selection.z_categories`; jettag's zbb, zcc, zqq and
zqq_all files carry the Z's last copy and its decay quarks in ``GenPart``; QCD
files carry no Z). Data fill ``"data"`` with weight 1 and variation "nominal".
Data or MC: ``is_data`` when given, else ``events.metadata["is_data"]``, else data
exactly when the events have no ``genWeight`` (jettag's zmix pseudo-data have none).
MC needs ``GenPart``; without it the processor stops with a one-line message
naming the file and branch. MC is weighted by ``genWeight`` (QCD's undoes its
pT-hat bias; the Z samples are unweighted).

Output, accumulatable across chunks::

    {dataset: {"templates": hist.Hist (sample, variation, working_point, region, pt, msoftdrop),
               "n_events": int, "n_jets": int (selected), "sumw": float (selected),
               "cutflow": {"all": n, "kinematics": n, "score": n}}}

Every selected jet is filled once per working point (pass or fail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.analysis_tools import PackedSelection

from jettag.errors import JettagError
from jettag.scalefactors import selection as sel
from jettag.scalefactors.templates import make_template_hist
from jettag.scalefactors.workingpoints import WorkingPoints
from jettag.taggers.score import JetScore

__all__ = ["DEFAULT_MSD_EDGES", "DEFAULT_PT_EDGES", "ZbbProxyProcessor"]

#: why MC needs truth, and what to do when the files are data
_MC_TRUTH = (
    "MC truth categories: the events are taken for MC (they have genWeight, or is_data is "
    'false); for data pass is_data=True or the fileset metadata {"is_data": true}'
)

#: jet pT edges [GeV]
DEFAULT_PT_EDGES: tuple[float, ...] = (300.0, 350.0, 400.0, 500.0, 1000.0)
#: msoftdrop edges [GeV]: 40 to 200 GeV in 8 GeV bins (about the Z peak's resolution)
DEFAULT_MSD_EDGES: tuple[float, ...] = tuple(float(x) for x in range(40, 201, 8))


class ZbbProxyProcessor(processor.ProcessorABC):
    """Fill Z->bb proxy templates (msoftdrop) in pass and fail of each working point.

    Parameters
    ----------
    score, discriminant:
        a jettag tagger and its discriminant (``"pnet-lite"``, ``"XbbVsQCD"``) or a
        ``FatJet`` column (``"particleNetMD_Xbb"``, no discriminant).
    working_points:
        :class:`~jettag.scalefactors.workingpoints.WorkingPoints`, its record or a JSON file.
    variation:
        the ``variation`` category MC is filled into; data always fill "nominal".
    jets:
        ``"leading"`` (the highest-pT fat jet of each event, default) or ``"all"``.
    pt_edges, msd_edges:
        the template binning [GeV].
    pt_min, abs_eta_max, msd_range:
        the jet cuts (``pt_min`` defaults to the lowest pT edge; ``msd_range`` is
        ``(low, high)``, default the msoftdrop edges' range).
    z_dr:
        DeltaR(jet, generated Z) below which an MC jet is a Z jet.
    phase_space:
        for a tagger: keep only jets in its training phase space (default True).
    is_data, weight, tagger_options:
        as for the g->bb processor.
    """

    proxy = "zbb"

    def __init__(
        self,
        score: str | Path | Any,
        *,
        discriminant: str | None = None,
        working_points: WorkingPoints | Mapping[str, Any] | str | Path,
        variation: str = "nominal",
        jets: Literal["leading", "all"] = "leading",
        pt_edges: Sequence[float] = DEFAULT_PT_EDGES,
        msd_edges: Sequence[float] = DEFAULT_MSD_EDGES,
        pt_min: float | None = None,
        abs_eta_max: float = 2.4,
        msd_range: tuple[float, float] | None = None,
        z_dr: float = 0.8,
        phase_space: bool = True,
        is_data: bool | None = None,
        weight: str | None = "genWeight",
        tagger_options: Mapping[str, Any] | None = None,
    ) -> None:
        if jets not in ("leading", "all"):
            raise ValueError(f"jets must be 'leading' or 'all', got {jets!r}")
        if not isinstance(variation, str) or not variation:
            raise ValueError(f"variation must be a non-empty string, got {variation!r}")
        self.score = JetScore(score, discriminant, tagger_options=tagger_options)
        self.working_points = WorkingPoints.resolve(working_points, score=self.score.description)
        self.variation = variation
        self.jets = jets
        self.pt_edges = tuple(float(e) for e in pt_edges)
        self.msd_edges = tuple(float(e) for e in msd_edges)
        self.pt_min = self.pt_edges[0] if pt_min is None else float(pt_min)
        self.abs_eta_max = float(abs_eta_max)
        low, high = msd_range if msd_range is not None else (self.msd_edges[0], self.msd_edges[-1])
        if not 0 <= low < high:
            raise ValueError(f"msd_range must be (low, high) with 0 <= low < high, got {msd_range}")
        self.msd_range = (float(low), float(high))
        self.z_dr = float(z_dr)
        self.phase_space = phase_space and self.score.tagger is not None
        if self.phase_space and self.score.tagger.phase_space is None:
            raise JettagError(
                f"tagger {self.score.tagger.name} declares no training phase space "
                "(no phase_space.json); write one or pass phase_space=False"
            )
        self.is_data = is_data
        self.weight = weight

    def histogram(self) -> hist.Hist:
        """An empty template histogram (the spec's layout)."""
        return make_template_hist(
            self.proxy, self.msd_edges, self.pt_edges, self.working_points.names
        )

    def record(self) -> dict[str, Any]:
        """The JSON record to store beside the histogram: working points and selection."""
        return {
            "proxy": self.proxy,
            "score": self.score.description,
            **self.working_points.to_dict(),
            "selection": {
                "jets": self.jets,
                "pt_min": self.pt_min,
                "abs_eta_max": self.abs_eta_max,
                "msd_range": list(self.msd_range),
                "z_dr": self.z_dr,
                "phase_space": self.phase_space,
            },
            "variation": self.variation,
            "weight": self.weight,
        }

    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        dataset, source, is_data = sel.event_info(events, self.is_data)
        sel.require(events, ["FatJet_pt", "FatJet_eta", "FatJet_phi", "FatJet_msoftdrop"],
                    source=source, why="the Z->bb proxy selection")  # fmt: skip
        if not is_data:
            sel.require(events, ["GenPart_pdgId", "GenPart_statusFlags", "GenPart_genPartIdxMother"],
                        source=source, why=_MC_TRUTH)  # fmt: skip
            if self.weight is not None:
                sel.require(events, [self.weight], source=source, why="the MC event weight")
        jets = events.FatJet

        # compute, per jet: score, truth category, weight; which jet is the candidate
        score = self.score(events, source=source)
        weight = ak.broadcast_arrays(sel.event_weight(events, is_data, self.weight), jets.pt)[0]
        leading = ak.local_index(jets.pt, axis=1) == ak.argmax(jets.pt, axis=1)
        columns = {"pt": jets.pt, "eta": jets.eta, "msoftdrop": jets.msoftdrop, "score": score,
                   "weight": weight, "leading": ak.fill_none(leading, False)}  # fmt: skip
        if not is_data:
            columns["category"] = sel.z_categories(events, dr_max=self.z_dr)
        if self.phase_space:
            columns["phase_space"] = self.score.in_phase_space(events)
        j = {k: ak.to_numpy(ak.flatten(v, axis=1)) for k, v in columns.items()}

        # select
        cuts = PackedSelection()
        cuts.add("kinematics", (j["leading"] | (self.jets == "all"))
                 & (j["pt"] > self.pt_min) & (j["pt"] < self.pt_edges[-1])
                 & (np.abs(j["eta"]) < self.abs_eta_max)
                 & (j["msoftdrop"] >= self.msd_range[0]) & (j["msoftdrop"] < self.msd_range[1]))  # fmt: skip
        score_ok = np.isfinite(j["score"]) & (j["phase_space"] if self.phase_space else True)
        cuts.add("score", score_ok)
        keep = cuts.all(*cuts.names)
        j = {k: v[keep] for k, v in j.items()}

        # fill: every jet once per working point, in pass or fail
        categories = (
            np.full(keep.sum(), "data") if is_data else np.asarray(sel.Z_CATEGORIES)[j["category"]]
        )
        passes = self.working_points.passes(
            {"msoftdrop": j["msoftdrop"], "pt": j["pt"]}, j["score"]
        )
        h = sel.fill_templates(
            self.histogram(),
            categories=categories,
            variation="nominal" if is_data else self.variation,
            passes=passes,
            pt=j["pt"],
            observable=j["msoftdrop"],
            weight=j["weight"],
        )
        return {
            dataset: {
                "templates": h,
                "n_events": len(events),
                "n_jets": int(keep.sum()),
                "sumw": float(j["weight"].sum()),
                "cutflow": sel.jet_counts(cuts, len(keep)),
            }
        }

    def postprocess(self, accumulator: Any) -> Any:
        return accumulator
