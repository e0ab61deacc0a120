"""What the scale-factor proxy processors select and compute, as functions on (Nano)events.

The g->bb and Z->bb processors (``processors/gbb.py``, ``processors/zbb.py``) read
like the analysis note; the work is here:

* :class:`~jettag.taggers.score.JetScore` (re-exported) -- the discriminant the working
  points cut on: a jettag tagger's class ratio (``XbbVsQCD``) or a ``FatJet`` column;
* :func:`muons_per_subjet` -- soft muons matched to the two soft-drop subjets;
* :func:`leading_sv_mass` and :func:`svmass_observable` -- the g->bb template
  observable, ln of the leading secondary-vertex mass, with a bin for no SV;
* :func:`gbb_categories` and :func:`z_categories` -- MC truth categories;
* :func:`event_info` and :func:`event_weight` -- dataset, file, data or MC, weight;
* :func:`fill_templates` -- every selected jet into pass or fail of each working
  point of a template histogram (``scalefactors.templates.make_template_hist``).

Per-jet results keep the ``events x FatJet`` structure (awkward); the processors
flatten the jets once and select with coffea's ``PackedSelection``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import awkward as ak
import hist
import numpy as np

from jettag.errors import JettagError, MissingInputsError
from jettag.samples.fatjets import FLAVOUR_CATEGORIES, flavour_category
from jettag.taggers.score import JetScore

__all__ = [
    "DEFAULT_SVMASS_EDGES",
    "GBB_CATEGORIES",
    "Z_CATEGORIES",
    "JetScore",
    "delta_r",
    "event_info",
    "event_weight",
    "fill_templates",
    "gbb_categories",
    "jet_counts",
    "leading_sv_mass",
    "muons_per_subjet",
    "require",
    "svmass_observable",
    "z_categories",
]

#: g->bb MC categories (index = code of :func:`gbb_categories`), from the jet's hadron counts
GBB_CATEGORIES: tuple[str, ...] = FLAVOUR_CATEGORIES  # light, c, cc, b, bb
#: Z->bb MC categories (index = code of :func:`z_categories`)
Z_CATEGORIES: tuple[str, ...] = ("qcd", "zqq", "zcc", "zbb")

#: ln(SV mass / GeV) edges. The first bin [-3, -1.5) holds the jets without SV and
#: nothing else: an SV has at least two tracks, so its mass is at least 2 m_pi = 0.28 GeV
#: (ln = -1.28). Then bins up to ln(7.4 GeV) = 2, beyond the B-hadron mass (ln 5.3 = 1.66).
DEFAULT_SVMASS_EDGES: tuple[float, ...] = (
    -3.0, -1.5, -1.0, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 2.0,
)  # fmt: skip


# ----------------------------------------------------------------------------- events


def event_info(events: Any, is_data: bool | None = None) -> tuple[str, str, bool]:
    """(dataset, file, is_data) of a chunk.

    ``dataset`` and ``file`` come from ``events.metadata`` (coffea's ``Runner`` sets
    ``dataset`` and ``filename``; "events" and the dataset name otherwise). ``is_data``:
    the argument when given, else ``events.metadata["is_data"]`` when the fileset
    says, else True when the events have no ``genWeight`` (real data and jettag
    pseudo-data carry none; simulation does).
    """
    metadata = getattr(events, "metadata", None) or {}
    dataset = str(metadata.get("dataset", "events"))
    source = str(metadata.get("filename", dataset))
    if is_data is None:
        is_data = metadata.get("is_data")
        if is_data is not None and not isinstance(is_data, bool | np.bool_):
            raise JettagError(f"{source}: metadata is_data must be true or false, got {is_data!r}")
    if is_data is None:
        is_data = "genWeight" not in events.fields
    return dataset, source, bool(is_data)


def require(events: Any, branches: Iterable[str], *, source: str, why: str) -> None:
    """Raise a one-line error naming ``source`` and the first missing branch (``FatJet_pt``,
    ``genWeight``), with ``why`` it is needed."""
    fields = set(events.fields)
    for branch in branches:
        collection, _, field = branch.partition("_")
        if not field:
            ok = branch in fields
        else:
            ok = collection in fields and field in events[collection].fields
        if not ok:
            raise MissingInputsError(f"{source}: no branch {branch} ({why})")


def event_weight(events: Any, is_data: bool, field: str | None = "genWeight") -> np.ndarray:
    """The per-event weight: ``events[field]`` for MC (float64), 1 for data or ``field=None``.

    jettag's ``genWeight`` already holds every generator weight: the pT-hat bias
    weight and, for ``gbb_mu``, the forced-decay weight (the product, written by the
    generator), so weighted MC describes the natural population.
    """
    if is_data or field is None:
        return np.ones(len(events))
    return np.asarray(ak.to_numpy(events[field]), dtype=np.float64)


# ----------------------------------------------------------------------------- the score


# ----------------------------------------------------------------------------- geometry


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """Distance in (eta, phi), with phi wrapped into [-pi, pi)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _subjet_axis(subjets: Any, index: Any) -> tuple[Any, Any]:
    """(eta, phi) per fat jet of the subjet ``index`` points to (NaN where index is -1)."""
    axes = ak.zip({"eta": subjets.eta, "phi": subjets.phi}, with_name=None)
    picked = axes[ak.mask(index, index >= 0)]
    return ak.fill_none(picked.eta, np.nan), ak.fill_none(picked.phi, np.nan)


def muons_per_subjet(
    events: Any,
    *,
    pt_min: float = 7.0,
    abs_eta_max: float = 2.4,
    dr_max: float = 0.4,
    muon_id: str | None = None,
) -> tuple[Any, Any]:
    """Numbers of muons in the first and in the second soft-drop subjet of each fat jet.

    Muons with ``pt > pt_min`` and ``|eta| < abs_eta_max`` (and ``Muon[muon_id]``
    true, e.g. ``"looseId"``, when given) are matched to the subjets that
    ``FatJet_subJetIdx1/2`` point to by angle: a muon belongs to the nearer of the
    two subjets if it lies within ``dr_max`` of it, so no muon counts twice. The
    angular match works on every file at hand; the index branch ``FatJet_muonIdx3SJ``
    holds one muon per jet (and only in PFNano), so it cannot say whether each subjet
    holds one. Returns two jagged int arrays shaped like ``events.FatJet``.
    """
    jets, subjets, muons = events.FatJet, events.SubJet, events.Muon
    good = (muons.pt > pt_min) & (abs(muons.eta) < abs_eta_max)
    if muon_id is not None:
        good = good & ak.values_astype(muons[muon_id], bool)
    muons = muons[good]
    mu_eta, mu_phi = muons.eta[:, None, :], muons.phi[:, None, :]
    distances = []
    for index in (jets.subJetIdx1, jets.subJetIdx2):
        eta, phi = _subjet_axis(subjets, index)
        dr = delta_r(eta[:, :, None], phi[:, :, None], mu_eta, mu_phi)  # events x jets x muons
        distances.append(ak.nan_to_num(dr, nan=np.inf))
    dr1, dr2 = distances
    in1 = (dr1 < dr_max) & (dr1 <= dr2)
    in2 = (dr2 < dr_max) & (dr2 < dr1)
    return ak.sum(in1, axis=-1), ak.sum(in2, axis=-1)


# ----------------------------------------------------------------------------- SV mass

_SV_SOURCES = {  # collection -> its transverse flight-significance field
    "FatJetSVs": "dxysig",
    "SV": "dxySig",
}


def leading_sv_mass(
    events: Any,
    *,
    leading: Literal["dxysig", "pt"] = "dxysig",
    dr_max: float = 0.8,
    source: str = "events",
) -> Any:
    """The mass [GeV] of each fat jet's leading secondary vertex; 0 where it has none.

    The SVs of a jet are its ``FatJetSVs`` (PFNano: linked by ``FatJetSVs_jetIdx``,
    with their own mass) when the file has them, else the ``SV`` within ``dr_max`` of
    the jet axis (plain NanoAOD; an SV may then belong to two overlapping jets).
    ``leading="dxysig"`` (default) takes the SV of largest transverse flight
    significance, the most displaced and so the likeliest B decay (the choice of the
    CMS sfBDT g->bb templates, "ln m_SV1 with max d_xy significance"); ``"pt"``
    the SV of largest pT. Jagged like ``events.FatJet``.
    """
    jets = events.FatJet
    if "FatJetSVs" in events.fields:
        svs = events.FatJetSVs
        rank = svs.pt if leading == "pt" else svs[_SV_SOURCES["FatJetSVs"]]
        local = ak.local_index(jets.pt, axis=1)
        match = local[:, :, None] == svs.jetIdx[:, None, :]
    else:
        require(events, ["SV_mass", "SV_eta", "SV_phi", "SV_dxySig"], source=source,
                why="the SV-mass observable; no FatJetSVs in this file")  # fmt: skip
        svs = events.SV
        rank = svs.pt if leading == "pt" else svs[_SV_SOURCES["SV"]]
        match = delta_r(jets.eta[:, :, None], jets.phi[:, :, None],
                        svs.eta[:, None, :], svs.phi[:, None, :]) < dr_max  # fmt: skip
    rank = ak.values_astype(rank, np.float64)
    mass = ak.values_astype(svs.mass, np.float64)
    rank_in_jet = ak.where(match, rank[:, None, :], -np.inf)
    best = ak.argmax(rank_in_jet, axis=-1, keepdims=True)
    mass_in_jet = ak.broadcast_arrays(mass[:, None, :], match)[0]
    picked = ak.firsts(mass_in_jet[best], axis=-1)
    return ak.where(ak.any(match, axis=-1), ak.fill_none(picked, 0.0), 0.0)


def svmass_observable(mass: Any, edges: Sequence[float] = DEFAULT_SVMASS_EDGES) -> np.ndarray:
    """The template observable ln(mass / GeV) of flat per-jet masses, every jet inside the axis.

    Jets without SV (mass <= 0 or not finite) get ``edges[0]``: the first bin. SV
    values are clipped into ``[edges[0], edges[-1])``, so no jet lands in a flow
    bin (the fit uses none); with :data:`DEFAULT_SVMASS_EDGES` no SV reaches the
    first bin, which then holds exactly the jets without SV.
    """
    mass = np.asarray(mass, dtype=np.float64)
    has_sv = np.isfinite(mass) & (mass > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(np.where(has_sv, mass, 1.0))
    top = np.nextafter(float(edges[-1]), -np.inf)
    return np.where(has_sv, np.clip(value, float(edges[0]), top), float(edges[0]))


# ----------------------------------------------------------------------------- truth


def gbb_categories(fatjets: Any) -> Any:
    """Truth category code of each fat jet, indexing :data:`GBB_CATEGORIES`: from its
    hadron counts, bb (>= 2 B), b (1 B), cc (0 B, >= 2 C), c (1 C), light."""
    return flavour_category(fatjets.nBHadrons, fatjets.nCHadrons)


def z_categories(events: Any, *, dr_max: float = 0.8) -> Any:
    """Truth category code of each fat jet, indexing :data:`Z_CATEGORIES`.

    A jet within ``dr_max`` of a generated Z (``GenPart`` pdgId 23, its last copy:
    ``statusFlags`` bit 13, as jettag and CMS NanoAOD write it) is ``zbb`` / ``zcc`` /
    ``zqq`` by the heaviest quark among the Z's decay products (``GenPart`` whose
    mother is a Z: b, c, or u/d/s); every other jet, and jets matched to a Z that
    decayed to no quark, is ``qcd``. One Z per event is assumed (Z+jet samples;
    ``zqq_all`` holds all five flavours at their natural branching ratios).
    """
    jets, gen = events.FatJet, events.GenPart
    pdg = abs(gen.pdgId)
    is_z = (gen.pdgId == 23) & ((gen.statusFlags & (1 << 13)) != 0)
    mother = gen.genPartIdxMother
    mother_pdg = ak.fill_none(gen.pdgId[ak.mask(mother, mother >= 0)], 0)
    from_z = (mother_pdg == 23) & (pdg >= 1) & (pdg <= 5)
    flavour = ak.max(ak.where(from_z, pdg, 0), axis=1, mask_identity=False)  # per event
    code = ak.where(flavour == 5, 3, ak.where(flavour == 4, 2, ak.where(flavour >= 1, 1, 0)))
    z = gen[is_z]
    dr = delta_r(jets.eta[:, :, None], jets.phi[:, :, None], z.eta[:, None, :], z.phi[:, None, :])
    matched = ak.any(dr < dr_max, axis=-1)
    return ak.where(matched, code, 0)


# ----------------------------------------------------------------------------- templates


def fill_templates(
    histogram: hist.Hist,
    *,
    categories: np.ndarray,
    variation: str,
    passes: Mapping[str, np.ndarray],
    pt: np.ndarray,
    observable: np.ndarray,
    weight: np.ndarray,
) -> hist.Hist:
    """Fill every jet once per working point, into "pass" or "fail" (flat arrays; in place)."""
    observable_name = histogram.axes[-1].name
    for working_point, passed in passes.items():
        histogram.fill(
            category=categories,
            variation=variation,
            working_point=working_point,
            region=np.where(passed, "pass", "fail"),
            pt=pt,
            weight=weight,
            **{observable_name: observable},
        )
    return histogram


def jet_counts(cuts: Any, n_jets: int) -> dict[str, int]:
    """The cutflow of a ``PackedSelection`` over jets: ``{"all": n, cut: jets left, ...}``
    (ints, so coffea's ``accumulate`` adds them across chunks)."""
    flow = cuts.cutflow(*cuts.names).result()
    left = (int(n) for n in flow.nevcutflow[1:])
    return {"all": int(n_jets), **dict(zip(flow.labels[1:], left, strict=True))}
