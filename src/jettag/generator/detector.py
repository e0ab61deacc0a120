"""A parametric, CMS-like detector: Pythia particles -> PF candidates and muons.

``simulate`` turns the particle table of ``jettag.pythia`` into the two
reconstructed collections that the tagging features need, in CMS PFNano
conventions: particle-flow candidates (``PFCands``) and muons (``Muon``). It is
a *parametric* simulation: every particle gives at most one PF candidate, with
its properties drawn from resolution functions, instead of a transport through
material. It is vectorised over a whole chunk of events (flat numpy arrays +
offsets; numba for the mother-chain walk and the muon isolation).

What it models, and with which numbers (``MC_RESPONSE`` / ``DATA_RESPONSE``, the
detectors of the ``mc`` and ``data`` tunes of :mod:`~jettag.generator.tunes`;
``tunes.detector_table()`` renders every parameter of both as markdown):

======================  =============================================  ==========================
item                    model                                          MC (pseudo-data)
======================  =============================================  ==========================
input                   final-state particles (status > 0),            neutrinos dropped
                        no pileup, PV at the origin
tracker acceptance      charged, abs(eta) < 2.5, pT > 0.1 GeV
tracking efficiency     plateau x low-pT turn-on x radius fall-off     0.97 (0.94) barrel,
                                                                       0.93 (0.90) endcap
                        1 - 0.15 exp(-pT/0.5 GeV); linear in the
                        production radius from 1 at 5 cm to 0 at 60 cm
dense jet cores         the softer of two charged particles whose      window 200 um x 300 um;
                        hits on pixel layer 1 (a straight line from    P(lost) 0 (0.5):
                        the production point, bent by the 3.8 T        pseudo-data's excess
                        sagitta) lie within the window in r-phi and    over simulation
                        z is lost with P (it reaches the calorimeters
                        as a neutral)
track pT resolution     sigma/pT = a (+) b pT (x1.8 in the endcap)     a=0.7%, b=1.5e-4/GeV
IP resolution (dxy)     a (+) b/pT (x1.3 endcap, x1.8 per missing      15 um (+) 90 um/pT
                        inner pixel layer, or without a layer-1 hit)   (x1.30 in pseudo-data)
IP resolution (dz)      a (+) b/pT, same scalings                      30 um (+) 110 um/pT
                                                                       (x1.30 in pseudo-data)
IP tails                a fraction of tracks smeared with 3x sigma      0.5% (1.0%)
                        (the reported error stays the core sigma)
track details           d0/dz/errors/trkChi2 stored for pT > 0.5 GeV
                        only, -1 below (as MiniAOD packed candidates)
lost inner hits         from the production radius vs the Phase-1      layers 2.9, 6.8, 10.9,
                        pixel barrel layer radii; prompt tracks have   16.0 cm; P(L1 hit)
                        a layer-1 hit (-1) with P, else 0              0.97 (0.93) barrel,
                                                                       0.75 (0.70) endcap
ECAL (photons, e)       sigma/E = 3%/sqrt(E) (+) 0.5%, scale           scale 1.00 (1.02)
HCAL (neutral hadrons)  sigma/E = 100%/sqrt(E) (+) 5%, scale           scale 1.00 (1.02)
HF (3 < abs(eta) < 5)   EM 200%/sqrt(E) (+) 9%, had 280%/sqrt(E)       pdgId 2 (EM), 1 (had)
                        (+) 11%
calorimeter acceptance  abs(eta) < 3 (ECAL/HCAL), E > 0.3 (photon),
                        1.0 (neutral hadron), 1.0 GeV (HF)
electron ID             tracked electrons with pT > 2 GeV              85% (83%)
muon ID (loose)         tracked muons, pT > 3 GeV, abs(eta) < 2.4      98% (96%)
fake muons              tracked charged hadrons, pT > 3 GeV: punch-    0.05% (0.06%)
                        through, plus pi/K decays in flight within     50%
                        130 cm, P = eff x BR(mu) x (1 - exp(-L m /
                        (p c tau)))
soft muon ID            abs(dxy) < 0.3 cm, abs(dz) < 20 cm, extra eff. 99% (98.5%)
======================  =============================================  ==========================

What makes the pseudo-data detector differ, and why (``DATA_RESPONSE``; the
generator side is in :mod:`~jettag.generator.tunes`):

* tracking plateau 3 points lower, layer-1 hits lost more often (the pixel
  detector's dynamic inefficiency and radiation damage), impact-parameter and
  SV resolutions 25-30% worse (residual misalignment), twice the fraction of
  non-Gaussian IP tails, calorimeters 2% high, lepton ID slightly less
  efficient: the usual data/simulation differences, at about their real size.
  They move a particle-cloud tagger little: on the same generated events they
  lower pnet-lite's Z->bb efficiency at XbbVsQCD > 0.95 by about 9%.
  IP tails do not lower the double-b efficiency at all: they make prompt tracks
  look displaced and raise the tag rate of every jet (the cause of real light-jet
  mistag SFs above 1); tails of 10% at 5 sigma raise that efficiency by ~10%.
* dense jet cores (``track_merge_*``): in boosted jets the charged decay
  products of a B hadron are collimated to a few mrad, so on the first pixel
  layer (2.9 cm) some lie closer than the size of a pixel cluster (about two
  pitches: 200 um in r-phi, 300 um along z) to a harder track; the clusters
  merge and the track finder, which seeds on pixel hits, loses the softer
  particle more often (ATLAS measured 6-9% of the charged particles making
  merged clusters in 200-1600 GeV jet cores unreconstructed, Eur. Phys. J. C 77
  (2017) 673; CMS developed a dedicated jet-core seeding, DeepCore). The simulation's
  own losses are part of its plateau here, so ``MC_RESPONSE`` has no extra loss
  (and then draws no random number for it: the simulation is unchanged);
  pseudo-data lose half of the softer tracks of merged pairs. With the window
  above, 8% of the displaced (B- and D-decay) tracks above 1 GeV in Z->bb
  events (1.6% of all tracks) are merged, so pseudo-data lose 4% of them. The
  loss is several times what the measurements allow for a data/simulation
  difference: exaggerated on purpose, so that the scale factor it makes is
  measurable with a few thousand jets.
  It lowers the double-b efficiency most at tight working points, where the
  tagger needs every B-decay track (about -5 to -8% at XbbVsQCD > 0.95, -1 to
  -2% at 0.5).

``benchmarks/study_true_sf.py`` measures the resulting true scale factor of
pnet-lite for Z->bb jets.

Approximations, stated once: tracks are straight lines (no magnetic-field
curvature over the few cm that matter for impact parameters; only where a
track crosses pixel layer 1, for the dense-core merging, is it bent); track
angles are not smeared; the IP resolution depends on pT, not on p sin(theta);
every particle makes its own PF candidate (cluster merging only as the
dense-core track loss above; no photon conversions, no nuclear interactions);
charged particles that the tracker misses (or that fly outside it) reach the
calorimeters as neutral candidates (130 for hadrons, 22 for electrons; muons
leave nothing); no pileup, so ``puppiWeight = puppiWeightNoLep = 1`` for every
candidate.

PF candidate conventions follow real PFNano (checked against a CMS file):
``pdgId`` is +-11/+-13/+-211 for tracks (signed as PDG ids: an electron with
charge -1 is +11), 22, 130, 1 (HF hadronic), 2 (HF EM) for neutrals; masses are
the pion mass for +-211, 0.10566 for muons, 0.000511 for electrons and 0 for
neutrals; neutrals have ``d0 = d0Err = dz = dzErr = trkChi2 = vtxChi2 = -1``,
``lostInnerHits = -1``, ``pvAssocQuality = 7``, ``trkQuality = 0``;
``lostInnerHits`` uses the MiniAOD ``LostInnerHits`` enum (-1 valid hit in the
first pixel layer, 0 no lost hit, 1 one lost, 2 more); ``pvAssocQuality`` the
``PVAssociationQuality`` enum (7 UsedInFitTight, 6 UsedInFitLoose,
5 CompatibilityDz, 4 CompatibilityBTag, 0 NotReconstructedPrimary; 1,
OtherDeltaZ, needs pileup vertices and is never produced); ``trkQuality`` is
5 (loose|highPurity) or 1 (loose) for tracks with details, 0 otherwise;
``trkChi2`` is the track chi2/ndof truncated to an integer, as packed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import awkward as ak
import numba
import numpy as np

from jettag.generator import columnar

__all__ = [
    "DATA_RESPONSE",
    "MC_RESPONSE",
    "MUON_FIELDS",
    "PFCAND_FIELDS",
    "PFCAND_INTERNAL_FIELDS",
    "DetectorResponse",
    "detector_table",
    "layer_hits",
    "merged_in_first_layer",
    "simulate",
    "true_impact_parameters",
    "vertex_ids",
]

PION_MASS = 0.13957039
MUON_MASS = 0.1056584
ELECTRON_MASS = 0.00051099895
MM_TO_CM = 0.1


def _p(default, doc: str, unit: str = ""):
    """A documented dataclass field (the doc feeds ``detector_table``)."""
    return field(default=default, metadata={"doc": doc, "unit": unit})


@dataclass(frozen=True)
class DetectorResponse:
    """Every number of the parametric detector, documented per field.

    Resolutions ``a (+) b`` are added in quadrature. ``MC_RESPONSE`` is the
    simulation; ``DATA_RESPONSE`` the pseudo-data detector (worse tracking and
    impact-parameter resolution, shifted calorimeter scale...).
    """

    name: str = _p("mc", "name of this response")
    # --- tracker -----------------------------------------------------------
    tracker_eta_max: float = _p(2.5, "tracker acceptance, abs(eta) <")
    track_min_pt: float = _p(0.1, "minimum track pT", "GeV")
    barrel_eta_max: float = _p(1.3, "barrel/endcap boundary in abs(eta)")
    track_eff_barrel: float = _p(0.97, "tracking efficiency plateau, barrel")
    track_eff_endcap: float = _p(0.93, "tracking efficiency plateau, endcap")
    track_eff_lowpt_drop: float = _p(0.15, "low-pT loss: eff x (1 - drop exp(-pT/scale))")
    track_eff_lowpt_scale: float = _p(0.5, "low-pT loss scale", "GeV")
    track_eff_r_full: float = _p(5.0, "full efficiency for production radius below", "cm")
    track_eff_r_max: float = _p(60.0, "zero efficiency for production radius above (linear)", "cm")
    track_merge_rphi: float = _p(
        0.02, "dense cores: pixel layer-1 hits merge if closer than this in r-phi", "cm"
    )
    track_merge_z: float = _p(0.03, "dense cores: ... and closer than this along z", "cm")
    track_merge_loss: float = _p(0.0, "dense cores: P(the softer track of a merged pair is lost)")
    solenoid_field: float = _p(3.8, "solenoid field (track bending up to pixel layer 1)", "T")
    track_pt_res_a: float = _p(0.007, "track sigma(pT)/pT constant term a")
    track_pt_res_b: float = _p(1.5e-4, "track sigma(pT)/pT term b x pT", "1/GeV")
    track_pt_res_endcap_scale: float = _p(1.8, "pT resolution scale in the endcap")
    d0_res_a: float = _p(0.0015, "dxy resolution constant term", "cm")
    d0_res_b: float = _p(0.0090, "dxy resolution term b/pT", "cm GeV")
    dz_res_a: float = _p(0.0030, "dz resolution constant term", "cm")
    dz_res_b: float = _p(0.0110, "dz resolution term b/pT", "cm GeV")
    ip_res_endcap_scale: float = _p(1.3, "IP resolution scale in the endcap")
    ip_res_per_missing_layer: float = _p(1.8, "IP resolution scale per missing inner pixel layer")
    ip_tail_fraction: float = _p(0.005, "fraction of tracks with non-Gaussian IP smearing")
    ip_tail_scale: float = _p(3.0, "IP smearing width of the tail tracks / core sigma")
    pixel_layer_radii: tuple[float, ...] = _p(
        (2.9, 6.8, 10.9, 16.0), "Phase-1 pixel barrel layer radii", "cm"
    )
    first_layer_hit_prob_barrel: float = _p(0.97, "P(hit in 1st pixel layer), prompt, barrel")
    first_layer_hit_prob_endcap: float = _p(0.75, "P(hit in 1st pixel layer), prompt, endcap")
    track_details_min_pt: float = _p(0.5, "d0/dz/errors/trkChi2 stored above this pT", "GeV")
    high_purity_prob: float = _p(0.995, "P(highPurity) for tracks with details")
    trk_ndof_min: int = _p(8, "track fit ndof drawn uniformly from [min, max]")
    trk_ndof_max: int = _p(30, "track fit ndof, maximum")
    trk_chi2_tail_fraction: float = _p(0.03, "fraction of tracks with a scaled-up chi2")
    trk_chi2_tail_scale: float = _p(4.0, "mean extra chi2 scale of tail tracks (exponential)")
    prompt_distance: float = _p(1e-4, "true displacement below which a particle is prompt", "cm")
    # --- calorimeters ------------------------------------------------------
    calo_eta_max: float = _p(3.0, "ECAL/HCAL acceptance, abs(eta) <")
    hf_eta_max: float = _p(5.0, "HF acceptance, calo_eta_max < abs(eta) <")
    ecal_stochastic: float = _p(0.03, "ECAL sigma/E stochastic term", "sqrt(GeV)")
    ecal_constant: float = _p(0.005, "ECAL sigma/E constant term")
    hcal_stochastic: float = _p(1.0, "HCAL sigma/E stochastic term", "sqrt(GeV)")
    hcal_constant: float = _p(0.05, "HCAL sigma/E constant term")
    hf_em_stochastic: float = _p(2.0, "HF EM sigma/E stochastic term", "sqrt(GeV)")
    hf_em_constant: float = _p(0.09, "HF EM sigma/E constant term")
    hf_had_stochastic: float = _p(2.8, "HF hadronic sigma/E stochastic term", "sqrt(GeV)")
    hf_had_constant: float = _p(0.11, "HF hadronic sigma/E constant term")
    ecal_scale: float = _p(1.0, "ECAL (and HF EM) energy scale")
    hcal_scale: float = _p(1.0, "HCAL (and HF hadronic) energy scale")
    ecal_angle_res: float = _p(0.005, "ECAL eta/phi smearing", "rad")
    hcal_angle_res: float = _p(0.03, "HCAL eta/phi smearing", "rad")
    hf_angle_res: float = _p(0.05, "HF eta/phi smearing", "rad")
    photon_min_e: float = _p(0.3, "ECAL candidate threshold (measured E)", "GeV")
    neutral_hadron_min_e: float = _p(1.0, "HCAL candidate threshold (measured E)", "GeV")
    hf_min_e: float = _p(1.0, "HF candidate threshold (measured E)", "GeV")
    # --- lepton identification --------------------------------------------
    electron_min_pt: float = _p(2.0, "PF electron identification threshold", "GeV")
    electron_id_eff: float = _p(0.85, "PF electron identification efficiency")
    muon_min_pt: float = _p(3.0, "muon threshold", "GeV")
    muon_eta_max: float = _p(2.4, "muon acceptance, abs(eta) <")
    muon_id_eff: float = _p(0.98, "loose muon ID efficiency (tracked true muons)")
    fake_muon_punch_through: float = _p(
        5e-4, "P(charged hadron track above threshold -> muon) by punch-through"
    )
    fake_muon_decay_length: float = _p(
        130.0, "pi/K decays in flight before this distance give a muon", "cm"
    )
    fake_muon_dif_id_eff: float = _p(0.5, "muon ID efficiency of a decay in flight (kink)")
    fake_muon_min_pt: float = _p(3.0, "fake-muon threshold", "GeV")
    soft_id_eff: float = _p(0.99, "extra soft-ID efficiency on top of its dxy/dz cuts")
    soft_id_max_dxy: float = _p(0.3, "soft ID abs(dxy) <", "cm")
    soft_id_max_dz: float = _p(20.0, "soft ID abs(dz) <", "cm")
    muon_iso_cone: float = _p(0.4, "pfRelIso04_all cone size dR")
    # --- primary-vertex association ---------------------------------------
    pv_tight_sig: float = _p(3.0, "pvAssocQuality 7 if abs(d0)/err and abs(dz)/err <")
    pv_loose_sig: float = _p(5.0, "pvAssocQuality 6 if both significances <")
    pv_btag_max_d0: float = _p(0.2, "pvAssocQuality 4 if abs(d0) < (and dz below)", "cm")
    pv_btag_max_dz: float = _p(0.5, "pvAssocQuality 4 dz limit", "cm")
    pv_dz_max: float = _p(1.0, "pvAssocQuality 5 if abs(dz) <, else 0", "cm")
    pv_resolution: float = _p(
        0.001, "primary-vertex position resolution (for SV significances)", "cm"
    )
    # --- secondary vertices (jettag.vertexing) ----------------------------
    sv_track_min_pt: float = _p(0.8, "tracks used in secondary vertices, pT >", "GeV")
    sv_eff_plateau: float = _p(0.95, "vertex-finding efficiency plateau")
    sv_eff_ntrack_scale: float = _p(1.2, "eff x (1 - exp(-(ntracks-1)/scale))")
    sv_eff_radius_scale: float = _p(30.0, "eff x exp(-r/scale), r = true transverse flight", "cm")
    sv_res_perp: float = _p(
        0.0030, "SV resolution across the flight direction (x 1/sqrt(n-1))", "cm"
    )
    sv_res_radius_scale: float = _p(3.0, "SV resolution x (1 + r/scale)", "cm")
    sv_res_min_opening: float = _p(
        0.01, "min track opening angle in sigma_along = sigma_perp/angle", "rad"
    )
    sv_res_max_along: float = _p(2.0, "cap on the along-flight resolution", "cm")
    sv_min_dxy_sig: float = _p(2.5, "SV cut: dxySig >")
    sv_min_dlen_sig: float = _p(3.0, "SV cut: dlenSig >")
    sv_min_cos_pointing: float = _p(0.98, "SV cut: cos(angle(p, flight)) >")
    sv_k0s_window: float = _p(
        0.05, "K0S veto for 2-track opposite-charge SVs: abs(m - mK0S) >", "GeV"
    )
    sv_fake_rate: float = _p(1.0, "P(fake SV) per candidate pair of displaced prompt tracks")
    sv_fake_min_ip_sig: float = _p(2.0, "fake-SV pairs: both tracks abs(d0)/d0Err >")
    sv_fake_max_dr: float = _p(0.4, "fake-SV pairs: dR(track, track) <")
    sv_fake_max_radius: float = _p(2.5, "fake-SV pairs: transverse crossing radius <", "cm")


MC_RESPONSE = DetectorResponse()

#: Pseudo-data: tracking a few % less efficient, impact parameters and vertex
#: positions 25-30% worse, layer-1 hits lost more often, twice the IP tails,
#: calorimeters 2% high, muon and electron ID slightly less efficient, a few more
#: fake muons, and half of the softer tracks of merged pixel clusters in dense
#: jet cores lost (see the module docstring for why, and how large).
DATA_RESPONSE = dataclasses.replace(
    MC_RESPONSE,
    name="data",
    track_eff_barrel=0.94,
    track_eff_endcap=0.90,
    d0_res_a=MC_RESPONSE.d0_res_a * 1.30,
    d0_res_b=MC_RESPONSE.d0_res_b * 1.30,
    dz_res_a=MC_RESPONSE.dz_res_a * 1.30,
    dz_res_b=MC_RESPONSE.dz_res_b * 1.30,
    first_layer_hit_prob_barrel=0.93,
    first_layer_hit_prob_endcap=0.70,
    ip_tail_fraction=0.010,
    ecal_scale=1.02,
    hcal_scale=1.02,
    electron_id_eff=0.83,
    muon_id_eff=0.96,
    fake_muon_punch_through=6e-4,
    soft_id_eff=0.985,
    sv_eff_plateau=0.92,
    sv_res_perp=MC_RESPONSE.sv_res_perp * 1.25,
    track_merge_loss=0.5,
)


#: (mass GeV, c tau cm, branching fraction into a muon) of pi+- and K+-
_DECAY_IN_FLIGHT = {211: (0.13957, 780.45, 0.9999), 321: (0.49368, 371.2, 0.6356 + 0.0335)}


def fake_muon_probability(abs_pdg: np.ndarray, p: np.ndarray, r: DetectorResponse) -> np.ndarray:
    """P(a tracked charged hadron of momentum ``p`` is identified as a muon).

    Punch-through (flat) plus decays in flight of pions and kaons before
    ``fake_muon_decay_length``, times the ID efficiency of such kinked tracks:
    the rate falls like 1/p, as measured fake rates do.
    """
    prob = np.full(len(p), r.fake_muon_punch_through)
    p = np.maximum(p, 1e-3)
    for pdg, (mass, ctau, br) in _DECAY_IN_FLIGHT.items():
        decays = -np.expm1(-r.fake_muon_decay_length * mass / (p * ctau))
        prob = np.where(abs_pdg == pdg, prob + r.fake_muon_dif_id_eff * br * decays, prob)
    return prob


def detector_table(responses: Mapping[str, DetectorResponse]) -> str:
    """Every ``DetectorResponse`` parameter as a markdown table, one column per response.

    :func:`jettag.generator.tunes.detector_table` renders it for every tune (the README's table).
    """
    head = "| parameter | meaning | unit | " + " | ".join(responses) + " |"
    lines = [head, "|" + " --- |" * (3 + len(responses))]
    for f in dataclasses.fields(DetectorResponse):
        if f.name == "name":
            continue
        values = [getattr(r, f.name) for r in responses.values()]
        cells = " | ".join(_fmt(v) for v in values)
        lines.append(f"| `{f.name}` | {f.metadata['doc']} | {f.metadata['unit']} | {cells} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --------------------------------------------------------------------------
# output layout
# --------------------------------------------------------------------------

#: PFNano ``PFCands`` branches produced, with their dtypes.
PFCAND_FIELDS: dict[str, np.dtype] = {
    "pt": np.dtype(np.float32),
    "eta": np.dtype(np.float32),
    "phi": np.dtype(np.float32),
    "mass": np.dtype(np.float32),
    "charge": np.dtype(np.int32),
    "pdgId": np.dtype(np.int32),
    "d0": np.dtype(np.float32),
    "d0Err": np.dtype(np.float32),
    "dz": np.dtype(np.float32),
    "dzErr": np.dtype(np.float32),
    "trkChi2": np.dtype(np.float32),
    "vtxChi2": np.dtype(np.float32),
    "lostInnerHits": np.dtype(np.int32),
    "pvAssocQuality": np.dtype(np.int32),
    "trkQuality": np.dtype(np.int32),
    "puppiWeight": np.dtype(np.float32),
    "puppiWeightNoLep": np.dtype(np.float32),
}

#: Internal (not written) candidate fields: truth links for labelling and the
#: truth-seeded vertex finder. ``genVx/genVy/genVz``: true production vertex, cm.
PFCAND_INTERNAL_FIELDS: dict[str, np.dtype] = {
    "genIdx": np.dtype(np.int64),
    "vertexId": np.dtype(np.int64),
    "isTrack": np.dtype(np.bool_),
    "genVx": np.dtype(np.float32),
    "genVy": np.dtype(np.float32),
    "genVz": np.dtype(np.float32),
}

#: ``Muon`` fields produced (``genIdx``/``pfIdx`` are links, -1 if none).
MUON_FIELDS: dict[str, np.dtype] = {
    "pt": np.dtype(np.float32),
    "eta": np.dtype(np.float32),
    "phi": np.dtype(np.float32),
    "mass": np.dtype(np.float32),
    "charge": np.dtype(np.int32),
    "pdgId": np.dtype(np.int32),
    "dxy": np.dtype(np.float32),
    "dxyErr": np.dtype(np.float32),
    "dz": np.dtype(np.float32),
    "dzErr": np.dtype(np.float32),
    "looseId": np.dtype(np.bool_),
    "softId": np.dtype(np.bool_),
    "pfRelIso04_all": np.dtype(np.float32),
    "genIdx": np.dtype(np.int64),
    "pfIdx": np.dtype(np.int64),
}

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

# |pdgId| -> charge of the particle (positive id); antiparticles flip.
_POSITIVE = np.array([211, 321, 2212, 3222, 411, 431, 521, 4122, 24, 37, 2224])
_NEGATIVE = np.array([11, 13, 15, 3112, 3312, 3334])


def pdg_charge(pdg: np.ndarray) -> np.ndarray:
    """Integer charge of long-lived particles from their PDG id (0 if unknown/neutral)."""
    absid = np.abs(pdg)
    sign = np.sign(pdg).astype(np.int32)
    charge = np.zeros(len(pdg), np.int32)
    charge[np.isin(absid, _POSITIVE)] = 1
    charge[np.isin(absid, _NEGATIVE)] = -1
    return charge * sign


def true_impact_parameters(
    vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Straight-line (dxy, dz) w.r.t. a PV at the origin, CMS convention (units of v).

    ``dxy = (-x py + y px)/pT`` at the point of closest approach to the beam
    line, ``dz = z - (x px + y py)/pT * pz/pT``.
    """
    pt = np.hypot(px, py)
    dxy = (-vx * py + vy * px) / pt
    dz = vz - (vx * px + vy * py) / pt * (pz / pt)
    return dxy, dz


@numba.njit(cache=True)
def _vertex_ids_kernel(evt, sel, offsets, mother1, vx, vy, vz, prompt2, tol2):
    out = np.empty(len(sel), np.int64)
    for k in range(len(sel)):
        i = sel[k]
        x = vx[i]
        y = vy[i]
        z = vz[i]
        if x * x + y * y + z * z < prompt2:
            out[k] = -1
            continue
        start = offsets[evt[k]]
        cur = i
        vid = i - start
        for _ in range(1000):
            m = mother1[cur]
            if m <= 0:
                break
            g = start + m
            dx = vx[g] - x
            dy = vy[g] - y
            dz = vz[g] - z
            if dx * dx + dy * dy + dz * dz < tol2:
                cur = g  # the mother decayed where it was made: keep climbing
                continue
            vid = m  # the mother flew: this vertex is its decay point
            break
        out[k] = vid
    return out


def vertex_ids(
    evt: np.ndarray,
    sel: np.ndarray,
    offsets: np.ndarray,
    mother1: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    prompt_mm: float,
) -> np.ndarray:
    """True production-vertex id of the particles ``sel`` (flat indices; mm inputs).

    -1 for particles made within ``prompt_mm`` of the origin; otherwise the
    in-event index of the long-lived ancestor whose decay made the vertex
    (climbing through ancestors that decayed within ``prompt_mm`` of it, e.g.
    pi0 or D*), so every particle from one true vertex shares the id.
    """
    return _vertex_ids_kernel(
        evt, sel, offsets, mother1, vx, vy, vz, prompt_mm * prompt_mm, prompt_mm * prompt_mm
    )


@numba.njit(cache=True)
def _muon_iso_kernel(mu_global, mu_evt, offsets, eta, phi, pt, cone2):
    out = np.zeros(len(mu_global), np.float64)
    for k in range(len(mu_global)):
        i = mu_global[k]
        s = 0.0
        for j in range(offsets[mu_evt[k]], offsets[mu_evt[k] + 1]):
            if j == i:
                continue
            deta = eta[j] - eta[i]
            dphi = phi[j] - phi[i]
            if dphi > np.pi:
                dphi -= 2 * np.pi
            elif dphi < -np.pi:
                dphi += 2 * np.pi
            if deta * deta + dphi * dphi < cone2:
                s += pt[j]
        out[k] = s / pt[i]
    return out


@numba.njit(cache=True)
def _merged_kernel(offsets, cand, phi, z, pt, dphi_max, dz_max):
    out = np.zeros(len(cand), np.bool_)
    two_pi = 2 * np.pi
    for e in range(len(offsets) - 1):
        lo = offsets[e]
        idx = np.nonzero(cand[lo : offsets[e + 1]])[0] + lo
        m = len(idx)
        if m < 2:
            continue
        order = idx[np.argsort(phi[idx])]
        ph = phi[order]
        for a in range(m):
            i = order[a]
            for step in (1, -1):  # walk around the layer in both directions
                for k in range(1, m):
                    b = (a + step * k) % m
                    d = (ph[b] - ph[a]) * step
                    if d < 0:
                        d += two_pi
                    if d > dphi_max:
                        break
                    j = order[b]
                    if pt[j] > pt[i] and abs(z[j] - z[i]) < dz_max:
                        out[i] = True
                        break
                if out[i]:
                    break
    return out


def layer_hits(
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charge: np.ndarray,
    radius: float,
    field: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(phi, z) where tracks made inside ``radius`` (cm) cross that barrel layer.

    A straight line from the production point, bent by the sagitta of a helix
    in the solenoid ``field`` (T) over the transverse path ``L``:
    ``q 0.3 B L^2 / (2 pT)``, which turns a positive track clockwise. Particles
    made outside the layer get NaN.
    """
    pt = np.maximum(np.hypot(px, py), 1e-9)
    ux, uy = px / pt, py / pt
    b = vx * ux + vy * uy
    disc = b * b - (vx * vx + vy * vy - radius * radius)  # > 0 inside the layer
    with np.errstate(invalid="ignore"):
        path = np.where(disc > b * b, -b + np.sqrt(disc), np.nan)
    x, y = vx + path * ux, vy + path * uy
    # sagitta in cm: 0.3 B[T] (L[m])^2 / (2 pT[GeV]) m = 0.3 B L[cm]^2 / (200 pT) cm
    sagitta = charge * 0.3 * field * path * path / (200.0 * pt)
    phi = np.arctan2(y, x) - sagitta / radius
    z = vz + path * pz / pt
    return _wrap_phi(phi), z


def merged_in_first_layer(
    evt: np.ndarray,
    n_events: int,
    candidate: np.ndarray,
    phi: np.ndarray,
    z: np.ndarray,
    pt: np.ndarray,
    r: DetectorResponse,
) -> np.ndarray:
    """True for the candidates whose layer-1 hit lies within the merging window of a harder one.

    ``evt`` (non-decreasing) groups the flat arrays by event; ``phi``/``z`` are
    the hits of :func:`layer_hits` on ``pixel_layer_radii[0]``. The window is
    ``track_merge_rphi`` along r-phi and ``track_merge_z`` along z.
    """
    offsets = columnar.offsets(np.bincount(evt, minlength=n_events).astype(np.int64))
    radius = r.pixel_layer_radii[0]
    return _merged_kernel(
        offsets,
        candidate & np.isfinite(phi),
        np.where(np.isfinite(phi), phi, 0.0),
        z,
        pt,
        r.track_merge_rphi / radius,
        r.track_merge_z,
    )


def _quad(a, b):
    return np.sqrt(a * a + b * b)


def _wrap_phi(phi: np.ndarray) -> np.ndarray:
    return (phi + np.pi) % (2 * np.pi) - np.pi


# --------------------------------------------------------------------------
# the simulation
# --------------------------------------------------------------------------


def simulate(
    particles: ak.Array, response: DetectorResponse, rng: np.random.Generator
) -> tuple[ak.Array, ak.Array]:
    """Reconstruct PF candidates and muons from a chunk of Pythia particle tables.

    ``particles``: per event, the particle table of ``jettag.pythia`` (fields
    pdgId, status, mother1, px, py, pz, e, vx, vy, vz (mm), ...). Returns
    ``(pfcands, muons)``, jagged per event and sorted by pT (descending), with
    the fields of ``PFCAND_FIELDS`` + ``PFCAND_INTERNAL_FIELDS`` and
    ``MUON_FIELDS``. Identical ``rng`` states give identical output. See the
    module docstring for the model.
    """
    r = response
    counts_all = ak.to_numpy(ak.num(particles, axis=1)).astype(np.int64)
    n_events = len(counts_all)
    offsets_all = columnar.offsets(counts_all)

    pdg_all = columnar.flat(particles["pdgId"], np.int32)
    status_all = columnar.flat(particles["status"], np.int32)
    absid_all = np.abs(pdg_all)
    sel = np.nonzero((status_all > 0) & (absid_all != 12) & (absid_all != 14) & (absid_all != 16))[
        0
    ]
    evt_all = np.repeat(np.arange(n_events, dtype=np.int64), counts_all)
    evt = evt_all[sel]
    gen_idx = sel - offsets_all[evt]

    mother1_all = columnar.flat(particles["mother1"], np.int64)
    vx_all = columnar.flat(particles["vx"], np.float64)
    vy_all = columnar.flat(particles["vy"], np.float64)
    vz_all = columnar.flat(particles["vz"], np.float64)
    vertex_id = vertex_ids(
        evt, sel, offsets_all, mother1_all, vx_all, vy_all, vz_all, r.prompt_distance / MM_TO_CM
    )

    pdg = pdg_all[sel]
    absid = absid_all[sel]
    px = columnar.flat(particles["px"], np.float64)[sel]
    py = columnar.flat(particles["py"], np.float64)[sel]
    pz = columnar.flat(particles["pz"], np.float64)[sel]
    energy = columnar.flat(particles["e"], np.float64)[sel]
    vx = vx_all[sel] * MM_TO_CM
    vy = vy_all[sel] * MM_TO_CM
    vz = vz_all[sel] * MM_TO_CM
    n = len(sel)

    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e3))
    phi = np.arctan2(py, px)
    abseta = np.abs(eta)
    charge = pdg_charge(pdg)
    is_em = (absid == 11) | (absid == 22)
    is_mu = absid == 13
    endcap = abseta > r.barrel_eta_max
    r_prod = np.hypot(vx, vy)

    # random numbers: one fixed-size draw per purpose, in a fixed order
    u_track = rng.random(n)
    g_pt = rng.standard_normal(n)
    g_d0 = rng.standard_normal(n)
    g_dz = rng.standard_normal(n)
    u_tail = rng.random(n)
    u_l1 = rng.random(n)
    u_hp = rng.random(n)
    u_id = rng.random(n)
    u_fake = rng.random(n)
    u_soft = rng.random(n)
    ndof = rng.integers(r.trk_ndof_min, r.trk_ndof_max + 1, n)
    chi2 = rng.chisquare(ndof) / ndof
    u_chi2 = rng.random(n)
    chi2_tail = 1.0 + rng.exponential(r.trk_chi2_tail_scale, n)
    g_e = rng.standard_normal(n)
    g_eta = rng.standard_normal(n)
    g_phi = rng.standard_normal(n)

    # ---- tracking ----------------------------------------------------------
    in_tracker = (charge != 0) & (abseta < r.tracker_eta_max) & (pt > r.track_min_pt)
    eff = np.where(endcap, r.track_eff_endcap, r.track_eff_barrel)
    eff = eff * (1.0 - r.track_eff_lowpt_drop * np.exp(-pt / r.track_eff_lowpt_scale))
    eff = eff * np.clip(
        (r.track_eff_r_max - r_prod) / (r.track_eff_r_max - r.track_eff_r_full), 0.0, 1.0
    )
    is_track = in_tracker & (u_track < eff)
    if r.track_merge_loss > 0:
        # dense jet cores: the softer of two tracks whose layer-1 hits merge is lost
        # with a probability (drawn only when enabled: a response without it
        # reproduces the random streams, hence the samples, made before it existed)
        u_merge = rng.random(n)
        layer1 = r_prod < r.pixel_layer_radii[0]
        hit_phi, hit_z = layer_hits(
            vx, vy, vz, px, py, pz, charge, r.pixel_layer_radii[0], r.solenoid_field
        )
        merged = merged_in_first_layer(evt, n_events, in_tracker & layer1, hit_phi, hit_z, pt, r)
        is_track &= ~(merged & (u_merge < r.track_merge_loss))

    pt_res = _quad(r.track_pt_res_a, r.track_pt_res_b * pt)
    pt_res = pt_res * np.where(endcap, r.track_pt_res_endcap_scale, 1.0)
    pt_track = pt * np.maximum(1.0 + pt_res * g_pt, 0.05)

    radii = np.asarray(r.pixel_layer_radii)
    n_missing = np.searchsorted(radii, r_prod, side="right").astype(np.int32)
    first_hit_prob = np.where(endcap, r.first_layer_hit_prob_endcap, r.first_layer_hit_prob_barrel)
    lost_inner = np.where(
        n_missing > 0, np.minimum(n_missing, 2), np.where(u_l1 < first_hit_prob, -1, 0)
    ).astype(np.int32)

    d0_true, dz_true = true_impact_parameters(vx, vy, vz, px, py, np.asarray(pz))
    pt_safe = np.maximum(pt, 1e-6)
    # no hit in the first pixel layer (displaced production or a missed
    # layer-1 hit) costs lever arm: the IP resolution grows per missing layer
    missing_for_ip = np.where(lost_inner == 0, 1, n_missing)
    ip_scale = (
        np.where(endcap, r.ip_res_endcap_scale, 1.0) * r.ip_res_per_missing_layer**missing_for_ip
    )
    d0_err = _quad(r.d0_res_a, r.d0_res_b / pt_safe) * ip_scale
    dz_err = _quad(r.dz_res_a, r.dz_res_b / pt_safe) * ip_scale
    smear = np.where(u_tail < r.ip_tail_fraction, r.ip_tail_scale, 1.0)
    d0 = d0_true + smear * d0_err * g_d0
    dz = dz_true + smear * dz_err * g_dz

    sig_d0 = np.abs(d0) / d0_err
    sig_dz = np.abs(dz) / dz_err
    pv_assoc = np.select(
        [
            (sig_d0 < r.pv_tight_sig) & (sig_dz < r.pv_tight_sig),
            (sig_d0 < r.pv_loose_sig) & (sig_dz < r.pv_loose_sig),
            (np.abs(d0) < r.pv_btag_max_d0) & (np.abs(dz) < r.pv_btag_max_dz),
            np.abs(dz) < r.pv_dz_max,
        ],
        [7, 6, 4, 5],
        0,
    ).astype(np.int32)

    # ---- lepton identification on tracks -----------------------------------
    muon_acc = is_track & (pt_track > r.muon_min_pt) & (abseta < r.muon_eta_max)
    true_mu = muon_acc & is_mu & (u_id < r.muon_id_eff)
    fake_mu = (
        is_track
        & ~is_mu
        & (absid != 11)
        & (pt_track > r.fake_muon_min_pt)
        & (abseta < r.muon_eta_max)
        & (u_fake < fake_muon_probability(absid, pt_track * np.cosh(eta), r))
    )
    pf_muon = true_mu | fake_mu
    pf_electron = (
        is_track & (absid == 11) & (pt_track > r.electron_min_pt) & (u_id < r.electron_id_eff)
    )

    # ---- calorimeters ---------------------------------------------------------
    in_calo = ~is_track & ~is_mu & (abseta < r.calo_eta_max)
    in_hf = ~is_track & ~is_mu & (abseta >= r.calo_eta_max) & (abseta < r.hf_eta_max)
    stoch = np.where(
        in_hf,
        np.where(is_em, r.hf_em_stochastic, r.hf_had_stochastic),
        np.where(is_em, r.ecal_stochastic, r.hcal_stochastic),
    )
    const = np.where(
        in_hf,
        np.where(is_em, r.hf_em_constant, r.hf_had_constant),
        np.where(is_em, r.ecal_constant, r.hcal_constant),
    )
    scale = np.where(is_em, r.ecal_scale, r.hcal_scale)
    e_true = np.maximum(energy, 1e-9)
    e_meas = e_true * scale * (1.0 + _quad(stoch / np.sqrt(e_true), const) * g_e)
    threshold = np.where(in_hf, r.hf_min_e, np.where(is_em, r.photon_min_e, r.neutral_hadron_min_e))
    calo_keep = (in_calo | in_hf) & (e_meas > threshold)
    angle_res = np.where(in_hf, r.hf_angle_res, np.where(is_em, r.ecal_angle_res, r.hcal_angle_res))
    eta_calo = eta + angle_res * g_eta
    phi_calo = _wrap_phi(phi + angle_res * g_phi)

    keep = is_track | calo_keep

    # ---- assemble per-particle candidate properties ---------------------------
    cand_pdg = np.where(
        is_track,
        np.where(pf_muon, 13 * -charge, np.where(pf_electron, 11 * -charge, 211 * charge)),
        np.where(in_hf, np.where(is_em, 2, 1), np.where(is_em, 22, 130)),
    ).astype(np.int32)
    cand_mass = np.where(
        is_track,
        np.where(pf_muon, MUON_MASS, np.where(pf_electron, ELECTRON_MASS, PION_MASS)),
        0.0,
    )
    cand_pt = np.where(is_track, pt_track, e_meas / np.cosh(eta_calo))
    cand_eta = np.where(is_track, eta, eta_calo)
    cand_phi = np.where(is_track, phi, phi_calo)
    details = is_track & (pt_track > r.track_details_min_pt)
    minus1 = np.float32(-1.0)
    trk_chi2 = np.floor(chi2 * np.where(u_chi2 < r.trk_chi2_tail_fraction, chi2_tail, 1.0))

    k = np.nonzero(keep)[0]
    # sort by event, then pT descending
    order = k[np.lexsort((-cand_pt[k], evt[k]))]
    counts = np.bincount(evt[order], minlength=n_events).astype(np.int64)
    offsets = columnar.offsets(counts)

    o_det = details[order]
    o_trk = is_track[order]
    columns = {
        "pt": cand_pt[order].astype(np.float32),
        "eta": cand_eta[order].astype(np.float32),
        "phi": cand_phi[order].astype(np.float32),
        "mass": cand_mass[order].astype(np.float32),
        "charge": np.where(o_trk, charge[order], 0).astype(np.int32),
        "pdgId": cand_pdg[order],
        "d0": np.where(o_det, d0[order], minus1).astype(np.float32),
        "d0Err": np.where(o_det, d0_err[order], minus1).astype(np.float32),
        "dz": np.where(o_det, dz[order], minus1).astype(np.float32),
        "dzErr": np.where(o_det, dz_err[order], minus1).astype(np.float32),
        "trkChi2": np.where(o_det, trk_chi2[order], minus1).astype(np.float32),
        "vtxChi2": np.where(o_det, 0.0, minus1).astype(np.float32),
        "lostInnerHits": np.where(o_trk, lost_inner[order], -1).astype(np.int32),
        "pvAssocQuality": np.where(o_trk, pv_assoc[order], 7).astype(np.int32),
        "trkQuality": np.where(o_det, np.where(u_hp[order] < r.high_purity_prob, 5, 1), 0).astype(
            np.int32
        ),
        "puppiWeight": np.ones(len(order), np.float32),
        "puppiWeightNoLep": np.ones(len(order), np.float32),
        "genIdx": gen_idx[order].astype(np.int64),
        "vertexId": vertex_id[order].astype(np.int64),
        "isTrack": o_trk.copy(),
        "genVx": vx[order].astype(np.float32),
        "genVy": vy[order].astype(np.float32),
        "genVz": vz[order].astype(np.float32),
    }
    pfcands = columnar.jagged(offsets, columns)

    # ---- muons: the PF muons (true and fake), already in pT order -------------
    mu_pos = np.nonzero(pf_muon[order])[0]  # positions in the flat candidate arrays
    mu_src = order[mu_pos]
    mu_evt = evt[mu_src]
    mu_counts = np.bincount(mu_evt, minlength=n_events).astype(np.int64)
    mu_offsets = columnar.offsets(mu_counts)
    iso = _muon_iso_kernel(
        mu_pos.astype(np.int64),
        mu_evt,
        offsets,
        columns["eta"].astype(np.float64),
        columns["phi"].astype(np.float64),
        columns["pt"].astype(np.float64),
        r.muon_iso_cone**2,
    )
    mu_dxy = d0[mu_src]
    mu_dz = dz[mu_src]
    soft = (
        (np.abs(mu_dxy) < r.soft_id_max_dxy)
        & (np.abs(mu_dz) < r.soft_id_max_dz)
        & (u_soft[mu_src] < r.soft_id_eff)
    )
    muons = columnar.jagged(
        mu_offsets,
        {
            "pt": pt_track[mu_src].astype(np.float32),
            "eta": eta[mu_src].astype(np.float32),
            "phi": phi[mu_src].astype(np.float32),
            "mass": np.full(len(mu_src), MUON_MASS, np.float32),
            "charge": charge[mu_src].astype(np.int32),
            "pdgId": (-13 * charge[mu_src]).astype(np.int32),
            "dxy": mu_dxy.astype(np.float32),
            "dxyErr": d0_err[mu_src].astype(np.float32),
            "dz": mu_dz.astype(np.float32),
            "dzErr": dz_err[mu_src].astype(np.float32),
            "looseId": np.ones(len(mu_src), np.bool_),
            "softId": soft,
            "pfRelIso04_all": iso.astype(np.float32),
            "genIdx": gen_idx[mu_src].astype(np.int64),
            "pfIdx": (mu_pos - offsets[mu_evt]).astype(np.int64),
        },
    )
    return pfcands, muons
