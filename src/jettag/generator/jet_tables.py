"""PFNano jet-level tables: ``FatJetPFCands`` (constituent track features) and ``FatJetSVs``.

Both are pure functions of flat NumPy columns plus list offsets (no per-jet loop). Conventions
follow CMS's PFNano ``JetConstituentTableProducer`` and ``btagbtvdeep::TrackInfoBuilder``:

- Track features use the jet direction as axis. Neutral candidates (charge 0) have no track and
  get 0 for every ``btag*`` field, exactly as CMS writes them.
- ``btagSip3dVal``: tracks are straight lines through the reference point
  ``(-d0 sin(phi), d0 cos(phi), dz)`` along the candidate momentum (CMS: helix extrapolated to
  the PCA, fitted PV). The 3D impact parameter w.r.t. the PV at the origin is then
  ``sqrt(d0^2 + (dz sin(theta))^2)``, signed by ``(PCA - PV) . jet direction``. Its error is the
  linear propagation of ``d0Err`` and ``dzErr`` (no d0-dz correlation, no PV error).
- ``btagJetDistVal``: distance between the track line and the jet-axis line through the PV,
  always written negative (CMS's ``IPTools::jetTrackDistance`` flips the sign of tracks not used
  in the PV fit, which in the b-tag features is every track).
- ``FatJetSVs``: every SV within dR < 0.8 of the jet axis, jet by jet, SVs in collection order.
  ``chi2`` is the total chi2 (``SV_chi2 * SV_ndof``; NanoAOD's ``SV_chi2`` is the reduced
  one, written as ``normchi2``); ``costhetasvpv`` is computed from the flight direction
  (SV position minus PV) and the SV momentum, because NanoAOD's ``SV_pAngle`` is pi minus the
  pointing angle. ``deltaR`` is DeepFlavour's ``clip(dR(SV, jet) - 0.5, -2, 0)`` (checked on
  pfnano.root), not dR itself; ``phirel`` = dphi(SV, jet), ``ptrel`` = pt_SV / pt_jet,
  ``enration`` = E_SV / E_jet, ``d3d`` = ``dlen``.
- CMS writes 0 for charged candidates without track details (~6% of them in pfnano.root);
  jettag computes the features for every charged candidate.
- ``FatJet_muonIdx3SJ`` (:func:`jet_muon_index`): the highest-pT ``Muon`` whose PF candidate
  is a constituent of the jet, -1 if none (CMS's ``LeptonInJetProducer`` matches leptons to
  jets by common source candidates in the same way).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from jettag.generator import columnar

__all__ = [
    "jet_constituent_table",
    "jet_muon_index",
    "jet_sv_table",
    "written_pfcands_index",
]

_PION_MASS = 0.13957039


def _unit_dir(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit 3-vectors (n, 3) from eta, phi."""
    st = 1.0 / np.cosh(eta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.tanh(eta)], axis=1)


def _delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2.0 * np.pi) - np.pi


def written_pfcands_index(constituents: ak.Array) -> ak.Array:
    """Per event, indices into the input pfcands of the PF candidates to write as ``PFCands``.

    They are the constituents of all fat jets, jet by jet (``constituents`` from
    :func:`jettag.jets.cluster_fatjets`), so ``FatJetPFCands_pFCandsIdx`` is 0..n-1.
    """
    return ak.flatten(constituents, axis=2)


def track_features(
    jet_eta: np.ndarray,
    jet_phi: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    charge: np.ndarray,
    d0: np.ndarray,
    d0_err: np.ndarray,
    dz: np.ndarray,
    dz_err: np.ndarray,
) -> dict[str, np.ndarray]:
    """CMS b-tag track features of candidates (flat arrays) w.r.t. their jet's axis (float32).

    ``jet_eta``/``jet_phi`` are given per candidate (the axis of the jet it belongs to).
    """
    jdir = _unit_dir(jet_eta, jet_phi)
    p = pt[:, None] * np.stack([np.cos(phi), np.sin(phi), np.sinh(eta)], axis=1)
    pmag = pt * np.cosh(eta)
    safe_p = np.where(pmag > 0, pmag, 1.0)
    ppar = np.einsum("ij,ij->i", p, jdir)
    pperp = np.linalg.norm(np.cross(p, jdir), axis=1)
    energy = np.sqrt(pmag * pmag + _PION_MASS**2)
    eta_rel = 0.5 * np.log((energy + ppar) / (energy - ppar))

    # straight track line: reference point at the transverse PCA, direction u
    udir = p / safe_p[:, None]
    sin_t = 1.0 / np.cosh(eta)
    r0 = np.stack([-d0 * np.sin(phi), d0 * np.cos(phi), dz], axis=1)
    # 3D PCA to the origin: r0 - (r0.u) u ; |PCA|^2 = d0^2 + (dz sin(theta))^2
    pca = r0 - np.einsum("ij,ij->i", r0, udir)[:, None] * udir
    ip3d = np.sqrt(d0 * d0 + (dz * sin_t) ** 2)
    sign = np.where(np.einsum("ij,ij->i", pca, jdir) >= 0.0, 1.0, -1.0)
    var = (d0 * d0_err) ** 2 + (dz * sin_t * sin_t * dz_err) ** 2
    ip_err = np.where(
        ip3d > 0, np.sqrt(var) / np.where(ip3d > 0, ip3d, 1.0), np.hypot(d0_err, sin_t * dz_err)
    )
    sip_val = sign * ip3d
    sip_sig = np.divide(sip_val, ip_err, out=np.zeros_like(sip_val), where=ip_err > 0)

    # distance between the track line (r0, u) and the jet axis line (origin, jdir)
    n = np.cross(udir, jdir)
    nmag = np.linalg.norm(n, axis=1)
    skew = np.abs(np.einsum("ij,ij->i", r0, n)) / np.where(nmag > 1e-12, nmag, 1.0)
    parallel = np.linalg.norm(np.cross(r0, jdir), axis=1)
    jet_dist = -np.where(nmag > 1e-12, skew, parallel)

    out = {
        "btagEtaRel": eta_rel,
        "btagPtRatio": pperp / safe_p,
        "btagPParRatio": ppar / safe_p,
        "btagSip3dVal": sip_val,
        "btagSip3dSig": sip_sig,
        "btagJetDistVal": jet_dist,
    }
    has_track = charge != 0
    return {k: np.where(has_track, v, 0.0).astype(np.float32) for k, v in out.items()}


def jet_constituent_table(
    fatjets: ak.Array, pfcands: ak.Array, constituents: ak.Array
) -> tuple[ak.Array, ak.Array]:
    """PFNano ``FatJetPFCands`` rows per event, and the ``PFCands`` selection they index.

    ``constituents``: per event, per jet, indices into ``pfcands`` (pt descending). Returns
    ``(table, selection)``: ``selection = written_pfcands_index(constituents)`` are the per-event
    indices of the candidates to write as ``PFCands`` (jet by jet), and the table rows follow the
    same order, so ``pFCandsIdx`` is 0..n-1 in each event and ``jetIdx`` the fat-jet index.
    """
    selection = written_pfcands_index(constituents)
    n_per_event = columnar.counts(selection)
    ncons = columnar.counts(constituents, axis=2)  # per jet
    njets = columnar.counts(constituents)
    cand = pfcands[selection]
    jet_eta = np.repeat(columnar.flat(fatjets["eta"]), ncons)
    jet_phi = np.repeat(columnar.flat(fatjets["phi"]), ncons)
    feats = track_features(
        jet_eta,
        jet_phi,
        *(columnar.flat(cand[k]) for k in ("pt", "eta", "phi")),
        columnar.flat(cand["charge"], np.int64),
        *(columnar.flat(cand[k]) for k in ("d0", "d0Err", "dz", "dzErr")),
    )
    jet_local = np.arange(len(ncons)) - np.repeat(columnar.offsets(njets)[:-1], njets)
    total = int(n_per_event.sum())
    cand_local = np.arange(total) - np.repeat(columnar.offsets(n_per_event)[:-1], n_per_event)
    fields = {"pt": columnar.flat(cand["pt"]).astype(np.float32), **feats}
    fields["pFCandsIdx"] = cand_local.astype(np.int32)
    fields["jetIdx"] = np.repeat(jet_local, ncons).astype(np.int32)
    return columnar.jagged(columnar.offsets(n_per_event), fields), selection


def jet_sv_table(
    fatjets: ak.Array, svs: ak.Array, *, radius: float = 0.8, pv: ak.Array | None = None
) -> ak.Array:
    """PFNano ``FatJetSVs`` rows per event: each SV within ``radius`` of each fat jet's axis.

    Rows are jet by jet, SVs in collection order; ``sVIdx`` indexes the event's SV list and
    ``jetIdx`` the fat jets. ``pv`` (optional, per event records x, y, z in cm) is the primary
    vertex; by default it is the origin, as in jettag's generated events.
    """
    njets = columnar.counts(fatjets)
    nsv = columnar.counts(svs)
    nevents = len(njets)
    pairs_per_event = njets * nsv
    total = int(pairs_per_event.sum())
    # all (jet, sv) pairs of each event, jet-major, built with flat index arithmetic
    jet_off, sv_off, pair_off = (
        columnar.offsets(njets),
        columnar.offsets(nsv),
        columnar.offsets(pairs_per_event),
    )
    evt = np.repeat(np.arange(nevents), pairs_per_event)
    k = np.arange(total) - pair_off[:-1][evt]
    nsv_e = nsv[evt]
    jet_local = k // np.where(nsv_e > 0, nsv_e, 1)
    sv_local = k - jet_local * nsv_e
    jg = jet_off[:-1][evt] + jet_local
    sg = sv_off[:-1][evt] + sv_local

    j_pt, j_eta, j_phi, j_mass = (
        columnar.flat(fatjets[f])[jg] for f in ("pt", "eta", "phi", "mass")
    )
    s = {f: columnar.flat(svs[f])[sg] for f in ("pt", "eta", "phi", "mass", "x", "y", "z")}
    dphi = _delta_phi(s["phi"], j_phi)
    dr = np.hypot(s["eta"] - j_eta, dphi)
    keep = dr < radius
    evt, jet_local, sv_local, sg, dr, dphi = (
        a[keep] for a in (evt, jet_local, sv_local, sg, dr, dphi)
    )
    j_pt, j_eta, j_mass = j_pt[keep], j_eta[keep], j_mass[keep]
    s = {f: v[keep] for f, v in s.items()}

    if pv is None:
        pvx = pvy = pvz = np.zeros(len(evt))
    else:
        pvx, pvy, pvz = (np.asarray(ak.to_numpy(pv[c]), np.float64)[evt] for c in ("x", "y", "z"))
    flight = np.stack([s["x"] - pvx, s["y"] - pvy, s["z"] - pvz], axis=1)
    sdir = _unit_dir(s["eta"], s["phi"])
    fmag = np.linalg.norm(flight, axis=1)
    cos_pv = np.einsum("ij,ij->i", flight, sdir) / np.where(fmag > 0, fmag, 1.0)

    def energy(pt, eta, mass):
        p = pt * np.cosh(eta)
        return np.sqrt(p * p + mass * mass)

    j_e = energy(j_pt, j_eta, j_mass)
    sv_e = energy(s["pt"], s["eta"], s["mass"])
    ndof = columnar.flat(svs["ndof"])[sg]
    chi2 = columnar.flat(svs["chi2"])[sg]
    f32 = np.float32
    fields = {
        "mass": s["mass"].astype(f32),
        "pt": s["pt"].astype(f32),
        "ntracks": columnar.flat(svs["ntracks"])[sg].astype(f32),
        "chi2": (chi2 * ndof).astype(f32),
        "normchi2": chi2.astype(f32),
        "dxy": columnar.flat(svs["dxy"])[sg].astype(f32),
        "dxysig": columnar.flat(svs["dxySig"])[sg].astype(f32),
        "d3d": columnar.flat(svs["dlen"])[sg].astype(f32),
        "d3dsig": columnar.flat(svs["dlenSig"])[sg].astype(f32),
        "costhetasvpv": cos_pv.astype(f32),
        "phirel": dphi.astype(f32),
        "ptrel": (s["pt"] / np.where(j_pt > 0, j_pt, 1.0)).astype(f32),
        "deltaR": np.clip(dr - 0.5, -2.0, 0.0).astype(f32),
        "enration": (sv_e / np.where(j_e > 0, j_e, 1.0)).astype(f32),
        "jetIdx": jet_local.astype(np.int32),
        "sVIdx": sv_local.astype(np.int32),
    }
    return columnar.jagged(columnar.offsets(np.bincount(evt, minlength=nevents)), fields)



def jet_muon_index(constituents: ak.Array, muons: ak.Array, n_pfcands: np.ndarray) -> ak.Array:
    """Per fat jet, the index of the highest-pT muon among its constituents, else -1.

    ``constituents``: per event, per jet, indices into the event's PF candidates
    (from :func:`jettag.generator.jets.cluster_fatjets`); ``muons``: per event, the
    ``Muon`` records, pT-descending, with ``pfIdx`` (their PF candidate, -1 if
    none); ``n_pfcands``: the number of PF candidates of each event. Returns int32
    per event and jet (``FatJet_muonIdx3SJ``).
    """
    pf_off = columnar.offsets(np.asarray(n_pfcands, np.int64))
    mu_counts = columnar.counts(muons)
    mu_evt = np.repeat(np.arange(len(mu_counts)), mu_counts)
    mu_local = np.arange(len(mu_evt)) - columnar.offsets(mu_counts)[:-1][mu_evt]
    mu_pf = columnar.flat(muons["pfIdx"], np.int64)
    muon_of_pf = np.full(int(pf_off[-1]), -1, np.int64)
    linked = mu_pf >= 0
    muon_of_pf[pf_off[mu_evt[linked]] + mu_pf[linked]] = mu_local[linked]

    jets_per_event = columnar.counts(constituents)
    ncons = columnar.counts(constituents, axis=2)
    jet_evt = np.repeat(np.arange(len(jets_per_event)), jets_per_event)
    jet_of_cons = np.repeat(np.arange(len(ncons)), ncons)
    cons = columnar.flat(constituents, np.int64)
    muon = muon_of_pf[pf_off[jet_evt[jet_of_cons]] + cons] if len(cons) else np.zeros(0, np.int64)
    # muons are pT-descending: the highest-pT muon of a jet has the smallest index
    best = np.full(len(ncons), np.iinfo(np.int64).max, np.int64)
    has = muon >= 0
    np.minimum.at(best, jet_of_cons[has], muon[has])
    best = np.where(best == np.iinfo(np.int64).max, -1, best).astype(np.int32)
    return ak.unflatten(best, jets_per_event)
