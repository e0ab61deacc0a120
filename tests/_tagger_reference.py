"""An independent, per-jet plain-numpy implementation of the PFNano features and of
weaver's transform, to check jettag's columnar tagger against. Deliberately
written differently from src/jettag/tagger (python loops, float64, math module)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PFNANO = SHARED_DATA / "pfnano.root"


def _dphi(a: float, b: float) -> float:
    d = a - b
    while d >= math.pi:
        d -= 2 * math.pi
    while d < -math.pi:
        d += 2 * math.pi
    return d


def _sig(a: float, err: float) -> float:
    return a / err if err > 0 else 0.0


def _log(x: float) -> float:
    return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)


def pf_feature(name: str, p: dict, link: dict, jet: dict) -> float:
    """One PF-candidate feature, from dicts of scalars (PFCands row, FatJetPFCands row, FatJet row)."""
    sign = 1.0 if jet["eta"] > 0 else -1.0
    energy = math.sqrt((p["pt"] * math.cosh(p["eta"])) ** 2 + p["mass"] ** 2)
    table = {
        "pfcand_mask": lambda: 1.0,
        "pfcand_pt_log_nopuppi": lambda: _log(p["pt"]),
        "pfcand_e_log_nopuppi": lambda: _log(energy),
        "pfcand_etarel": lambda: sign * (p["eta"] - jet["eta"]),
        "pfcand_phirel": lambda: _dphi(p["phi"], jet["phi"]),
        "pfcand_abseta": lambda: abs(p["eta"]),
        "pfcand_charge": lambda: p["charge"],
        "pfcand_isEl": lambda: float(abs(p["pdgId"]) == 11),
        "pfcand_isMu": lambda: float(abs(p["pdgId"]) == 13),
        "pfcand_isGamma": lambda: float(abs(p["pdgId"]) == 22),
        "pfcand_isChargedHad": lambda: float(abs(p["pdgId"]) == 211),
        "pfcand_isNeutralHad": lambda: float(abs(p["pdgId"]) == 130),
        "pfcand_VTX_ass": lambda: p["pvAssocQuality"],
        "pfcand_lostInnerHits": lambda: p["lostInnerHits"],
        "pfcand_normchi2": lambda: 999.0 if p["trkChi2"] == -1 else math.floor(p["trkChi2"]),
        "pfcand_quality": lambda: p["trkQuality"],
        "pfcand_dz": lambda: p["dz"],
        "pfcand_dzsig": lambda: _sig(p["dz"], p["dzErr"]),
        "pfcand_dxy": lambda: p["d0"],
        "pfcand_dxysig": lambda: _sig(p["d0"], p["d0Err"]),
    }
    if name.startswith("pfcand_btag"):
        return float(link[name[len("pfcand_") :]])
    return float(table[name]())


def sv_feature(name: str, sv: dict, link: dict, jet: dict) -> float:
    """One SV feature, from dicts of scalars (SV row, FatJetSVs row, FatJet row)."""
    sign = 1.0 if jet["eta"] > 0 else -1.0
    table = {
        "sv_mask": lambda: 1.0,
        "sv_pt_log": lambda: _log(link["pt"]),
        "sv_mass": lambda: link["mass"],
        "sv_etarel": lambda: sign * (sv["eta"] - jet["eta"]),
        "sv_phirel": lambda: _dphi(sv["phi"], jet["phi"]),
        "sv_abseta": lambda: abs(sv["eta"]),
    }
    if name in table:
        return float(table[name]())
    return float(link[name[len("sv_") :]])


def transform(x: float, info: dict) -> float:
    """weaver/CMSSW center_norm_pad for one value."""
    if not math.isfinite(x) or abs(x) > 1e32:
        x = float(info.get("replace_inf_value", 0))
    y = (x - info["median"]) * info["norm_factor"]
    return min(max(y, info["lower_bound"]), info["upper_bound"])


def _row(arrays: dict, coll: str, event: int, index: int) -> dict:
    prefix = coll + "_"
    return {
        k[len(prefix) :]: float(v[event][index]) for k, v in arrays.items() if k.startswith(prefix)
    }


def reference_scores(
    arrays: dict, preprocess: dict, weights: dict, masks: dict
) -> list[list[np.ndarray]]:
    """Per event, per jet: the masked-sum model's scores, computed jet by jet in float64.

    ``arrays``: branch name -> per-event python lists (uproot ``library="np"`` or ak.to_list).
    """
    levels = {"pf": ("FatJetPFCands", "PFCands", "pFCandsIdx", pf_feature),
              "sv": ("FatJetSVs", "SV", "sVIdx", sv_feature)}  # fmt: skip
    n_events = len(arrays["nFatJet"])
    out = []
    for e in range(n_events):
        ev_scores = []
        for j in range(int(arrays["nFatJet"][e])):
            jet = _row(arrays, "FatJet", e, j)
            score = np.zeros(len(preprocess["output_names"]))
            for name, w in weights.items():
                block = preprocess[name]
                level = levels[name.split("_")[0]]
                link_coll, target_coll, tidx_name, func = level
                length = block["var_length"]
                jet_idx = arrays[f"{link_coll}_jetIdx"][e]
                tidx = arrays[f"{link_coll}_{tidx_name}"][e]
                n_target = int(arrays[f"n{target_coll}"][e])
                # rows whose target index is invalid (-1: an SV missing from the SV table) are skipped
                rows = [
                    r for r in range(len(jet_idx)) if jet_idx[r] == j and 0 <= tidx[r] < n_target
                ][:length]
                mask_vals = np.zeros(length)
                mask_vals[: len(rows)] = 1.0
                rowdata = [
                    (_row(arrays, target_coll, e, int(tidx[r])), _row(arrays, link_coll, e, r))
                    for r in rows
                ]
                for v, var in enumerate(block["var_names"]):
                    info = block["var_infos"][var]
                    slots = np.full(length, float(info["pad"]))
                    for s, (target, link) in enumerate(rowdata):
                        slots[s] = transform(func(var, target, link, jet), info)
                    if name in masks:
                        slots = slots * mask_vals
                    score += slots.sum() * np.asarray(w[v], dtype=np.float64)
            ev_scores.append(score)
        out.append(ev_scores)
    return out


def read_branches(path: Path | str, branches, entry_stop=None) -> dict:
    """Branches as per-event numpy object arrays (uproot library='np')."""
    import uproot

    with uproot.open(path) as f:
        return f["Events"].arrays(branches, library="np", entry_stop=entry_stop)


def masked_sum_setup(seed: int = 7, pad_sv: float = 0.25, n_pf: int = 100, n_sv: int = 7):
    """(preprocess dict, weights, masks) of a ParticleNet-MD-layout masked-sum model.

    PF blocks are masked; SV blocks are not, and their variables pad with ``pad_sv``,
    so the check also covers pad values and truncation.
    """
    from _models import pnet_md_preprocess

    pp = pnet_md_preprocess(n_pf=n_pf, n_sv=n_sv)
    for name in ("sv_points", "sv_features"):
        for info in pp[name]["var_infos"].values():
            info["pad"] = pad_sv
    rng = np.random.default_rng(seed)
    weights = {
        n: rng.standard_normal((len(pp[n]["var_names"]), 4)).astype(np.float32)
        for n in ("pf_points", "pf_features", "sv_points", "sv_features")
    }
    masks = {"pf_points": "pf_mask", "pf_features": "pf_mask"}
    return pp, weights, masks
