"""A truth-seeded inclusive secondary-vertex finder (CMS IVF-like output).

``find_secondary_vertices`` does not fit vertices from track helices. It
groups the reconstructed tracks by their *true* production vertex (the
``vertexId`` that ``jettag.detector.simulate`` attaches), then decides from
parametrised functions whether the vertex is found and where it is measured,
and finally applies the selection of the CMS inclusive vertex finder and of
the NanoAOD ``SV`` table. The steps, with the ``DetectorResponse`` fields that
control them (MC values):

1. tracks: ``isTrack`` and ``pt > sv_track_min_pt`` (0.8 GeV), produced at a
   displaced true vertex (``vertexId >= 0``); groups of >= 2 such tracks.
2. efficiency: ``sv_eff_plateau * (1 - exp(-(n - 1)/sv_eff_ntrack_scale))
   * exp(-r/sv_eff_radius_scale)`` with n the number of tracks and r the true
   transverse flight distance (0.95 x 0.57, 0.81, 0.92, ... for n = 2, 3, 4;
   the radius term models V0s found less often far out).
3. position: the true vertex smeared with a Gaussian whose width across the
   flight direction is ``sigma_perp = sv_res_perp (30 um) / sqrt(n - 1)
   * (1 + r/sv_res_radius_scale (3 cm))`` and along it ``sigma_along =
   sigma_perp / max(theta, sv_res_min_opening)`` (capped at
   ``sv_res_max_along``), theta being the rms angle of the tracks to the
   vertex momentum: collimated vertices are poorly measured along their
   flight, as in real fits. The PV position error (``pv_resolution``, 10 um)
   is added in quadrature to the significances.
4. cuts: ``dxySig > 2.5`` (IVF), ``dlenSig > 3`` (NanoAOD), cos(angle between
   the vertex momentum and the PV->SV direction) > 0.98, and for 2-track
   opposite-charge vertices a K0S veto ``abs(m_pipi - 0.4976) > 0.05 GeV``.
5. fake vertices: pairs of *prompt* tracks (pT > 0.8 GeV) in the same event,
   both with abs(d0)/d0Err > ``sv_fake_min_ip_sig`` (2), within dR < 0.4, whose
   straight lines cross in front of both tracks at r < 2.5 cm, become a
   2-track vertex at the crossing point with probability ``sv_fake_rate``
   (1.0), then face the same cuts. They carry ``vertexId = -1``. Measured on
   AK8 jets (pT > 250 GeV) with this and the rest of the model: jets without
   B hadrons have >= 1 SV within dR < 0.8 in 6% (Z+jet recoil) to 9% (QCD)
   of cases (MC; ~2-4 points of that from fakes), jets with two B hadrons in
   ~81%, one B hadron ~56%.

Output fields follow the real NanoAOD ``SV`` table: ``pt, eta, phi, mass``
(four-vector sum of the tracks, pion masses), ``ntracks`` (uint8), ``chi2``
(reduced chi2 = chi2/ndof, drawn from a chi2 distribution), ``ndof`` (float,
2 n - 3), ``dxy, dxySig, dlen, dlenSig`` (cm, unsigned, significances w.r.t.
the SV and PV position errors), ``pAngle``, ``x, y, z`` (cm). ``pAngle`` is
CMS's: the angle between the SV momentum and the SV->PV vector, so that well
pointing vertices have ``pAngle`` close to pi (real files: 2.96 - 3.14); the
pointing cut is ``cos(pi - pAngle) > 0.98``. Vertices are sorted by
``dlenSig``, descending, per event. Extra internal field: ``vertexId`` (the
true vertex id, for truth studies; not a NanoAOD branch).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from jettag.generator import columnar
from jettag.generator.detector import PION_MASS, DetectorResponse

__all__ = ["K0S_MASS", "SV_FIELDS", "find_secondary_vertices"]

K0S_MASS = 0.497611

#: ``SV`` fields produced, with dtypes (``vertexId`` is internal).
SV_FIELDS: dict[str, np.dtype] = {
    "pt": np.dtype(np.float32),
    "eta": np.dtype(np.float32),
    "phi": np.dtype(np.float32),
    "mass": np.dtype(np.float32),
    "ntracks": np.dtype(np.uint8),
    "chi2": np.dtype(np.float32),
    "ndof": np.dtype(np.float32),
    "dxy": np.dtype(np.float32),
    "dxySig": np.dtype(np.float32),
    "dlen": np.dtype(np.float32),
    "dlenSig": np.dtype(np.float32),
    "pAngle": np.dtype(np.float32),
    "x": np.dtype(np.float32),
    "y": np.dtype(np.float32),
    "z": np.dtype(np.float32),
    "vertexId": np.dtype(np.int64),
}



def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _projected_sigma(direction: np.ndarray, axis: np.ndarray, s_along, s_perp) -> np.ndarray:
    """Width of the smearing Gaussian projected on unit vectors ``direction``."""
    c = np.sum(direction * axis, axis=1)
    return np.sqrt(s_along**2 * c**2 + s_perp**2 * (1.0 - c**2))


def _resolution(r: DetectorResponse, ntrk, radius, theta) -> tuple[np.ndarray, np.ndarray]:
    """Smearing widths (across, along the flight direction) of a vertex, cm."""
    s_perp = (
        r.sv_res_perp / np.sqrt(np.maximum(ntrk - 1, 1)) * (1.0 + radius / r.sv_res_radius_scale)
    )
    s_along = np.minimum(s_perp / np.maximum(theta, r.sv_res_min_opening), r.sv_res_max_along)
    return s_perp, s_along


def _fake_vertices(pfcands: ak.Array, r: DetectorResponse, rng: np.random.Generator):
    """Fake 2-track vertices from prompt tracks that look displaced.

    Candidates: pairs of prompt tracks (``vertexId < 0``, pT > sv_track_min_pt,
    with track details) in the same event, both with abs(d0)/d0Err >
    ``sv_fake_min_ip_sig``, within dR < ``sv_fake_max_dr``, whose straight
    lines cross in the transverse plane in front of both tracks at a radius
    below ``sv_fake_max_radius``. Each such pair becomes a vertex at the
    crossing point with probability ``sv_fake_rate``; the usual cuts follow.
    """
    if r.sv_fake_rate <= 0:
        return None
    sel = (
        pfcands.isTrack
        & (pfcands.pt > r.sv_track_min_pt)
        & (pfcands.vertexId < 0)
        & (pfcands.d0Err > 0)
    )
    sel = sel & (np.abs(pfcands.d0) > r.sv_fake_min_ip_sig * pfcands.d0Err)
    trk = pfcands[sel][["pt", "eta", "phi", "charge", "d0", "dz"]]
    pairs = ak.combinations(trk, 2, fields=["a", "b"])
    n_pairs = ak.to_numpy(ak.num(pairs)).astype(np.int64)
    evt = np.repeat(np.arange(len(pairs), dtype=np.int64), n_pairs)
    flat = ak.flatten(pairs)
    u = rng.random(len(flat))
    chi2 = rng.chisquare(1.0, len(flat))
    if len(flat) == 0:
        return None
    a = {k: ak.to_numpy(flat.a[k]).astype(np.float64) for k in trk.fields}
    b = {k: ak.to_numpy(flat.b[k]).astype(np.float64) for k in trk.fields}
    dphi = (a["phi"] - b["phi"] + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(a["eta"] - b["eta"], dphi)
    # lines n_i . x = d0_i with n_i = (-sin phi_i, cos phi_i)
    det = np.sin(b["phi"] - a["phi"])
    safe = np.where(np.abs(det) > 1e-9, det, 1e-9)
    x = (a["d0"] * np.cos(b["phi"]) - b["d0"] * np.cos(a["phi"])) / safe
    y = (a["d0"] * np.sin(b["phi"]) - b["d0"] * np.sin(a["phi"])) / safe
    s_a = x * np.cos(a["phi"]) + y * np.sin(a["phi"])
    s_b = x * np.cos(b["phi"]) + y * np.sin(b["phi"])
    radius = np.hypot(x, y)
    ok = (
        (dr < r.sv_fake_max_dr)
        & (np.abs(det) > 1e-9)
        & (s_a > 0)
        & (s_b > 0)
        & (radius < r.sv_fake_max_radius)
        & (u < r.sv_fake_rate)
    )
    z = 0.5 * (a["dz"] + s_a * np.sinh(a["eta"]) + b["dz"] + s_b * np.sinh(b["eta"]))
    pa = np.stack(
        [a["pt"] * np.cos(a["phi"]), a["pt"] * np.sin(a["phi"]), a["pt"] * np.sinh(a["eta"])], 1
    )
    pb = np.stack(
        [b["pt"] * np.cos(b["phi"]), b["pt"] * np.sin(b["phi"]), b["pt"] * np.sinh(b["eta"])], 1
    )
    p = pa + pb
    e = np.sqrt(np.sum(pa**2, 1) + PION_MASS**2) + np.sqrt(np.sum(pb**2, 1) + PION_MASS**2)
    pu = _unit(p)
    theta = np.sqrt(
        0.5
        * (
            np.arccos(np.clip(np.sum(_unit(pa) * pu, 1), -1, 1)) ** 2
            + np.arccos(np.clip(np.sum(_unit(pb) * pu, 1), -1, 1)) ** 2
        )
    )
    return {
        "evt": evt[ok],
        "pos": np.stack([x, y, z], 1)[ok],
        "p": p[ok],
        "e": e[ok],
        "q": (a["charge"] + b["charge"])[ok].astype(np.int64),
        "theta": theta[ok],
        "chi2": chi2[ok],
    }


def find_secondary_vertices(
    pfcands: ak.Array, response: DetectorResponse, rng: np.random.Generator
) -> ak.Array:
    """Secondary vertices per event from ``simulate``'s PF candidates (see module doc).

    Needs the candidate fields pt, eta, phi, charge, isTrack, vertexId and the
    true production vertex genVx/genVy/genVz (cm). Returns a jagged record
    array with the fields of ``SV_FIELDS``, sorted by dlenSig descending.
    """
    r = response
    n_events = len(pfcands)
    counts = ak.to_numpy(ak.num(pfcands, axis=1)).astype(np.int64)
    evt_all = np.repeat(np.arange(n_events, dtype=np.int64), counts)
    vid_all = columnar.flat(pfcands["vertexId"], np.int64)
    pt_all = columnar.flat(pfcands["pt"], np.float64)
    use = columnar.flat(pfcands["isTrack"], np.bool_) & (pt_all > r.sv_track_min_pt) & (vid_all >= 0)
    idx = np.nonzero(use)[0]
    # group the selected tracks by (event, true vertex)
    idx = idx[np.lexsort((vid_all[idx], evt_all[idx]))]
    evt_t = evt_all[idx]
    vid_t = vid_all[idx]
    new = np.ones(len(idx), np.bool_)
    new[1:] = (evt_t[1:] != evt_t[:-1]) | (vid_t[1:] != vid_t[:-1])
    starts = np.nonzero(new)[0]
    ntrk = np.diff(np.append(starts, len(idx)))

    pt = pt_all[idx]
    eta = columnar.flat(pfcands["eta"], np.float64)[idx]
    phi = columnar.flat(pfcands["phi"], np.float64)[idx]
    charge = columnar.flat(pfcands["charge"], np.int64)[idx]
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + PION_MASS**2)

    def gsum(a):
        return np.add.reduceat(a, starts) if len(starts) else np.zeros(0)

    spx, spy, spz, se = gsum(px), gsum(py), gsum(pz), gsum(e)
    qsum = gsum(charge)
    g_evt = evt_t[starts] if len(starts) else np.zeros(0, np.int64)
    g_vid = vid_t[starts] if len(starts) else np.zeros(0, np.int64)
    true_pos = np.stack(
        [
            columnar.flat(pfcands["genVx"], np.float64)[idx][starts] if len(starts) else np.zeros(0),
            columnar.flat(pfcands["genVy"], np.float64)[idx][starts] if len(starts) else np.zeros(0),
            columnar.flat(pfcands["genVz"], np.float64)[idx][starts] if len(starts) else np.zeros(0),
        ],
        axis=1,
    )
    psv = np.stack([spx, spy, spz], axis=1)
    p_unit = _unit(psv)
    # rms opening angle of the tracks around the vertex momentum
    trk_unit = _unit(np.stack([px, py, pz], axis=1))
    grp = np.repeat(np.arange(len(starts)), ntrk)
    cosang = np.clip(np.sum(trk_unit * p_unit[grp], axis=1), -1.0, 1.0) if len(grp) else np.zeros(0)
    theta = np.sqrt(gsum(np.arccos(cosang) ** 2) / np.maximum(ntrk, 1))

    # random numbers, fixed order and size (one per candidate group)
    n_g = len(starts)
    u_eff = rng.random(n_g)
    gauss = rng.standard_normal((n_g, 3))
    ndof = (2.0 * ntrk - 3.0).astype(np.float64)
    chi2 = rng.chisquare(np.maximum(ndof, 1.0)) / np.maximum(ndof, 1.0)

    r_true = np.hypot(true_pos[:, 0], true_pos[:, 1])
    eff = (
        r.sv_eff_plateau
        * (1.0 - np.exp(-(ntrk - 1) / r.sv_eff_ntrack_scale))
        * np.exp(-r_true / r.sv_eff_radius_scale)
    )
    found = (ntrk >= 2) & (u_eff < eff)
    flight_true = _unit(true_pos)
    s_perp, s_along = _resolution(r, ntrk, r_true, theta)
    # two axes across the flight direction
    helper = np.where(np.abs(flight_true[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = _unit(np.cross(flight_true, helper))
    e2 = np.cross(flight_true, e1)
    pos = (
        true_pos
        + (s_along * gauss[:, 0])[:, None] * flight_true
        + (s_perp * gauss[:, 1])[:, None] * e1
        + (s_perp * gauss[:, 2])[:, None] * e2
    )

    # fake vertices from pairs of prompt tracks (appended as extra groups)
    fake = _fake_vertices(pfcands, r, rng)
    if fake is not None:
        n_f = len(fake["evt"])
        found = np.concatenate([found, np.ones(n_f, np.bool_)])
        pos = np.concatenate([pos, fake["pos"]])
        flight_true = np.concatenate([flight_true, _unit(fake["pos"])])
        f_perp, f_along = _resolution(
            r, np.full(n_f, 2), np.hypot(fake["pos"][:, 0], fake["pos"][:, 1]), fake["theta"]
        )
        s_perp = np.concatenate([s_perp, f_perp])
        s_along = np.concatenate([s_along, f_along])
        psv = np.concatenate([psv, fake["p"]])
        p_unit = _unit(psv)
        spx, spy, spz = psv[:, 0], psv[:, 1], psv[:, 2]
        se = np.concatenate([se, fake["e"]])
        ntrk = np.concatenate([ntrk, np.full(n_f, 2)])
        qsum = np.concatenate([qsum, fake["q"]])
        g_evt = np.concatenate([g_evt, fake["evt"]])
        g_vid = np.concatenate([g_vid, np.full(n_f, -1, np.int64)])
        ndof = np.concatenate([ndof, np.ones(n_f)])
        chi2 = np.concatenate([chi2, fake["chi2"]])

    dlen = np.linalg.norm(pos, axis=1)
    dxy = np.hypot(pos[:, 0], pos[:, 1])
    dir3 = _unit(pos)
    dir2 = np.zeros_like(pos)
    dir2[:, :2] = pos[:, :2] / np.where(dxy > 0, dxy, 1.0)[:, None]
    pv2 = r.pv_resolution**2
    dlen_err = np.sqrt(_projected_sigma(dir3, flight_true, s_along, s_perp) ** 2 + pv2)
    dxy_err = np.sqrt(_projected_sigma(dir2, flight_true, s_along, s_perp) ** 2 + pv2)
    dlen_sig = dlen / dlen_err
    dxy_sig = dxy / dxy_err
    cos_pointing = np.clip(np.sum(p_unit * dir3, axis=1), -1.0, 1.0)
    p_angle = np.arccos(-cos_pointing)  # CMS: angle to the SV->PV vector

    mass = np.sqrt(np.maximum(se**2 - np.sum(psv**2, axis=1), 0.0))
    k0s_like = (ntrk == 2) & (qsum == 0) & (np.abs(mass - K0S_MASS) < r.sv_k0s_window)
    keep = (
        found
        & (dxy_sig > r.sv_min_dxy_sig)
        & (dlen_sig > r.sv_min_dlen_sig)
        & (cos_pointing > r.sv_min_cos_pointing)
        & ~k0s_like
    )

    k = np.nonzero(keep)[0]
    k = k[np.lexsort((-dlen_sig[k], g_evt[k]))]
    sv_counts = np.bincount(g_evt[k], minlength=n_events).astype(np.int64)
    offsets = np.zeros(n_events + 1, np.int64)
    np.cumsum(sv_counts, out=offsets[1:])
    sv_pt = np.hypot(spx, spy)
    with np.errstate(divide="ignore", invalid="ignore"):
        sv_eta = np.arcsinh(spz / sv_pt)
    columns = {
        "pt": sv_pt[k],
        "eta": sv_eta[k],
        "phi": np.arctan2(spy, spx)[k],
        "mass": mass[k],
        "ntracks": np.minimum(ntrk[k], 255),
        "chi2": chi2[k],
        "ndof": ndof[k],
        "dxy": dxy[k],
        "dxySig": dxy_sig[k],
        "dlen": dlen[k],
        "dlenSig": dlen_sig[k],
        "pAngle": p_angle[k],
        "x": pos[k, 0],
        "y": pos[k, 1],
        "z": pos[k, 2],
        "vertexId": g_vid[k],
    }
    contents = [
        ak.contents.NumpyArray(np.ascontiguousarray(v, dtype=SV_FIELDS[name]))
        for name, v in columns.items()
    ]
    record = ak.contents.RecordArray(contents, list(columns), length=len(k))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))
