"""The g->bb proxy: muon-tagged AK8 jets from gluon splitting, templates for tagging scale factors.

Registered as ``"sf-gbb"``. A gluon splitting to a b-quark pair gives a fat jet
whose two prongs both hold a B hadron; requiring a soft muon in each soft-drop
subjet (from the semileptonic B decays) enriches such jets without looking at
the tagger. The fit (``jettag sf --proxy gbb``) then measures how often
double-b jets pass each working point in data and in simulation, from the
shapes of a flavour-sensitive observable the tagger does not fix: ln of the
leading secondary-vertex mass. ::

    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema
    from jettag.processors.gbb import GbbProxyProcessor
    from jettag.scalefactors.workingpoints import WorkingPoints

    wps = WorkingPoints({"L": {"kind": "score", "cut": 0.8}, "M": {"kind": "score", "cut": 0.9},
                         "T": {"kind": "ddt", "efficiency": 0.01, "map": "ddt-pnet-lite"}})
    proc = GbbProxyProcessor("pnet-lite", discriminant="XbbVsQCD", working_points=wps)
    run = processor.Runner(processor.IterativeExecutor(), schema=PFNanoAODSchema)
    out = run({"gbb_mc": ["gbb_mu.root"], "data": ["gbb_mu_data.root"]}, proc, treename="Events")
    h = out["gbb_mc"]["templates"]                       # + out["data"]["templates"]

The selection, per fat jet (every number is an argument):

1. ``kinematics``: ``pt_min < pt < the last pT edge`` (250 GeV, 1000 GeV),
   ``|eta| < abs_eta_max`` (2.4), ``msoftdrop > msd_min`` (50 GeV);
2. ``muons``: muons with pT > ``muon_pt_min`` (7 GeV), ``|eta| < 2.4`` (and
   ``muon_id``, e.g. ``"looseId"``, when given) matched to the soft-drop subjets by
   DeltaR < ``subjet_dr`` (0.4), each muon to the nearer subjet
   (:func:`jettag.scalefactors.selection.muons_per_subjet`);
   ``muons="double"`` (default) needs one in each subjet, ``"single"`` one in either;
3. ``score``: a finite score (and, with ``phase_space=True``, the tagger's training
   phase space; off by default: the shipped taggers were trained above 300 GeV and
   this proxy starts at 250 GeV as CMS's does, so the 250-300 GeV bin is an
   extrapolation of the tagger that the scale factor then measures).

The observable ``svmass`` is ln(m_SV / GeV) of the jet's SV of largest transverse
flight significance (``FatJetSVs`` when the file has them, else ``SV`` within
DeltaR < 0.8); jets without SV fill the axis' first bin (with the default edges
it holds exactly those jets: :data:`~jettag.scalefactors.selection.DEFAULT_SVMASS_EDGES`).

Samples: MC jets fill their truth category from ``FatJet_nBHadrons`` /
``FatJet_nCHadrons``: ``bb`` (>= 2 B), ``b`` (1 B), ``cc`` (0 B, >= 2 C), ``c``
(1 C), ``light``; data fill ``"data"`` with weight 1 and variation "nominal".
Data or MC: ``is_data`` when given, else ``events.metadata["is_data"]`` (a key of
the fileset's metadata), else data exactly when the events have no ``genWeight``
(real data and jettag pseudo-data have none). MC without hadron counts (plain
NanoAOD before v9) is refused in one line naming the file and branch.

Weights: ``genWeight`` for MC. jettag's gbb_mu generates 80% of its events with
every weakly decaying B hadron forced into a muon channel and weights them back
with the exact balance-heuristic weight; ``genWeight`` is the product of that
forced-decay weight and the pT-hat bias weight, so with ``population="natural"``
(the default) weighted MC is the natural population. Pseudo-data (``--tune data``)
are written unweighted: they are the forced-decay population itself, with natural
pT-hat. ``population="forced"`` weights MC by ``genWeight / jettag_forcedDecayWeight``
(the pT-hat weight alone), the population of the pseudo-data: the g->bb closure on
jettag pseudo-data uses it, so that MC and pseudo-data describe the same jets.

Output, accumulatable across chunks::

    {dataset: {"templates": hist.Hist (sample, variation, working_point, region, pt, svmass),
               "n_events": int, "n_jets": int (selected), "sumw": float (selected),
               "cutflow": {"all": n, "kinematics": n, "muons": n, "score": n}}}

Every selected jet is filled once per working point (pass or fail), so the
histogram's total is ``len(working_points) * sumw``. ``record()`` is the JSON
record to store beside it (the working points and the selection).
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

from jettag.samples.files import FORCED_DECAY_WEIGHT
from jettag.scalefactors import selection as sel
from jettag.scalefactors.templates import make_template_hist
from jettag.scalefactors.workingpoints import WorkingPoints
from jettag.taggers.score import JetScore

__all__ = ["DEFAULT_PT_EDGES", "GbbProxyProcessor"]

#: why MC needs truth, and what to do when the files are data
_MC_TRUTH = (
    "MC truth categories: the events are taken for MC (they have genWeight, or is_data is "
    'false); for data pass is_data=True or the fileset metadata {"is_data": true}'
)

#: jet pT edges [GeV]: the proxy starts at 250 GeV; g->bb jets fall steeply with pT
DEFAULT_PT_EDGES: tuple[float, ...] = (250.0, 300.0, 400.0, 500.0, 1000.0)


class GbbProxyProcessor(processor.ProcessorABC):
    """Fill g->bb proxy templates (ln SV mass) in pass and fail of each working point.

    Parameters
    ----------
    score:
        a jettag tagger (shipped name, model directory or ``Tagger``; needs
        ``discriminant``) or a ``FatJet`` column (``"particleNetMD_Xbb"``; no ``discriminant``).
    discriminant:
        for a tagger: a class (``"Xbb"``) or ``"AVsB"`` = A / (A + B) (``"XbbVsQCD"``).
    working_points:
        :class:`~jettag.scalefactors.workingpoints.WorkingPoints`, its record (a
        mapping) or a JSON file of it.
    muons:
        ``"double"`` (a muon in each soft-drop subjet, default) or ``"single"`` (in either).
    variation:
        the ``variation`` category MC is filled into ("nominal", or e.g. "bfrag_up"
        for a sample generated with that variation); data always fill "nominal".
    pt_edges, svmass_edges:
        the template binning (pT in GeV; ln(m_SV/GeV), first bin = no SV).
    pt_min, abs_eta_max, msd_min:
        the jet cuts (``pt_min`` defaults to the lowest pT edge).
    muon_pt_min, muon_abs_eta_max, muon_id, subjet_dr:
        the muon cuts and the muon-subjet DeltaR.
    sv_leading:
        which SV leads: ``"dxysig"`` (largest transverse flight significance) or ``"pt"``.
    phase_space:
        keep only jets in the tagger's training phase space (default False, see above).
    is_data:
        force data (True) or MC (False); None: from the metadata or ``genWeight``.
    weight:
        the MC event-weight branch (``"genWeight"``); None: unweighted.
    population:
        ``"natural"`` (MC weighted by ``weight``) or ``"forced"`` (divided by jettag's
        ``jettag_forcedDecayWeight``: the forced-decay population of jettag's pseudo-data).
    tagger_options:
        keyword arguments for ``taggers.resolve`` (``threads``, ``device``, ...).
    """

    proxy = "gbb"

    def __init__(
        self,
        score: str | Path | Any,
        *,
        discriminant: str | None = None,
        working_points: WorkingPoints | Mapping[str, Any] | str | Path,
        muons: Literal["double", "single"] = "double",
        variation: str = "nominal",
        pt_edges: Sequence[float] = DEFAULT_PT_EDGES,
        svmass_edges: Sequence[float] = sel.DEFAULT_SVMASS_EDGES,
        pt_min: float | None = None,
        abs_eta_max: float = 2.4,
        msd_min: float = 50.0,
        muon_pt_min: float = 7.0,
        muon_abs_eta_max: float = 2.4,
        muon_id: str | None = None,
        subjet_dr: float = 0.4,
        sv_leading: Literal["dxysig", "pt"] = "dxysig",
        phase_space: bool = False,
        is_data: bool | None = None,
        weight: str | None = "genWeight",
        population: Literal["natural", "forced"] = "natural",
        tagger_options: Mapping[str, Any] | None = None,
    ) -> None:
        if population not in ("natural", "forced"):
            raise ValueError(f"population must be 'natural' or 'forced', got {population!r}")
        if muons not in ("double", "single"):
            raise ValueError(f"muons must be 'double' or 'single', got {muons!r}")
        if sv_leading not in ("dxysig", "pt"):
            raise ValueError(f"sv_leading must be 'dxysig' or 'pt', got {sv_leading!r}")
        if not isinstance(variation, str) or not variation:
            raise ValueError(f"variation must be a non-empty string, got {variation!r}")
        self.score = JetScore(score, discriminant, tagger_options=tagger_options)
        self.working_points = WorkingPoints.resolve(working_points, score=self.score.description)
        self.muons = muons
        self.variation = variation
        self.pt_edges = tuple(float(e) for e in pt_edges)
        self.svmass_edges = tuple(float(e) for e in svmass_edges)
        self.pt_min = self.pt_edges[0] if pt_min is None else float(pt_min)
        self.abs_eta_max = float(abs_eta_max)
        self.msd_min = float(msd_min)
        self.muon_cuts = {
            "pt_min": float(muon_pt_min),
            "abs_eta_max": float(muon_abs_eta_max),
            "dr_max": float(subjet_dr),
            "muon_id": muon_id,
        }
        self.sv_leading = sv_leading
        self.phase_space = phase_space
        self.is_data = is_data
        self.weight = weight
        self.population = population

    def histogram(self) -> hist.Hist:
        """An empty template histogram (the spec's layout)."""
        return make_template_hist(
            self.proxy, self.svmass_edges, self.pt_edges, self.working_points.names
        )

    def record(self) -> dict[str, Any]:
        """The JSON record to store beside the histogram: working points and selection."""
        return {
            "proxy": self.proxy,
            "score": self.score.description,
            **self.working_points.to_dict(),
            "selection": {
                "pt_min": self.pt_min,
                "abs_eta_max": self.abs_eta_max,
                "msd_min": self.msd_min,
                "muons": self.muons,
                "muon": self.muon_cuts,
                "sv_leading": self.sv_leading,
                "phase_space": self.phase_space,
            },
            "variation": self.variation,
            "weight": self.weight,
            "population": self.population,
        }

    def process(self, events: Any) -> dict[str, dict[str, Any]]:
        dataset, source, is_data = sel.event_info(events, self.is_data)
        needed = ["FatJet_pt", "FatJet_eta", "FatJet_msoftdrop", "FatJet_subJetIdx1",
                  "FatJet_subJetIdx2", "SubJet_eta", "SubJet_phi", "Muon_pt", "Muon_eta",
                  "Muon_phi"]  # fmt: skip
        sel.require(events, needed, source=source, why="the g->bb proxy selection")
        if not is_data:
            sel.require(events, ["FatJet_nBHadrons", "FatJet_nCHadrons"], source=source,
                        why=_MC_TRUTH)  # fmt: skip
            if self.weight is not None:
                sel.require(events, [self.weight], source=source, why="the MC event weight")
            if self.weight is not None and self.population == "forced":
                sel.require(events, [FORCED_DECAY_WEIGHT], source=source,
                            why='population="forced": the forced-decay weight')  # fmt: skip
        jets = events.FatJet

        # compute, per jet: score, muons in each subjet, leading SV mass, truth category
        score = self.score(events, source=source)
        n_mu1, n_mu2 = sel.muons_per_subjet(events, **self.muon_cuts)
        sv_mass = sel.leading_sv_mass(events, leading=self.sv_leading, source=source)
        event_weight = sel.event_weight(events, is_data, self.weight)
        if not is_data and self.weight is not None and self.population == "forced":
            prefix, _, name = FORCED_DECAY_WEIGHT.partition("_")  # NanoEvents: events.jettag.<name>
            event_weight = event_weight / ak.to_numpy(events[prefix][name]).astype(float)
        weight = ak.broadcast_arrays(event_weight, jets.pt)[0]
        columns = {"pt": jets.pt, "eta": jets.eta, "msoftdrop": jets.msoftdrop, "score": score,
                   "n_mu1": n_mu1, "n_mu2": n_mu2, "sv_mass": sv_mass, "weight": weight}  # fmt: skip
        if not is_data:
            columns["category"] = sel.gbb_categories(jets)
        if self.phase_space:
            columns["phase_space"] = self.score.in_phase_space(events)
        j = {k: ak.to_numpy(ak.flatten(v, axis=1)) for k, v in columns.items()}

        # select
        cuts = PackedSelection()
        cuts.add("kinematics", (j["pt"] > self.pt_min) & (j["pt"] < self.pt_edges[-1])
                 & (np.abs(j["eta"]) < self.abs_eta_max) & (j["msoftdrop"] > self.msd_min))  # fmt: skip
        if self.muons == "double":
            cuts.add("muons", (j["n_mu1"] >= 1) & (j["n_mu2"] >= 1))
        else:
            cuts.add("muons", (j["n_mu1"] + j["n_mu2"]) >= 1)
        score_ok = np.isfinite(j["score"]) & (j["phase_space"] if self.phase_space else True)
        cuts.add("score", score_ok)
        keep = cuts.all(*cuts.names)
        j = {k: v[keep] for k, v in j.items()}

        # fill: every jet once per working point, in pass or fail
        categories = (
            np.full(keep.sum(), "data")
            if is_data
            else np.asarray(sel.GBB_CATEGORIES)[j["category"]]
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
            observable=sel.svmass_observable(j["sv_mass"], self.svmass_edges),
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
