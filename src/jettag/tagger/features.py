"""The registry of tagger input features on (PF)NanoAOD, under weaver's names.

A feature is a pure function of flat numpy columns. It lives at one *level*:

``jet``
    one value per fat jet (``FatJet`` branches); for jet-level models (BDTs, MLPs).
``pfcand``
    one value per row of ``FatJetPFCands`` (the jet -> PF candidate link table);
    ``PFCands`` branches are gathered through ``FatJetPFCands_pFCandsIdx`` and jet
    branches broadcast through ``FatJetPFCands_jetIdx``.
``sv``
    one value per row of ``FatJetSVs``; ``SV`` branches are gathered through
    ``FatJetSVs_sVIdx``.

Inside a feature function, ``c["Collection.field"]`` returns that branch aligned
with the rows of the feature's level. The conventions are those of CMSSW's
``DeepBoostedJetTagInfoProducer`` (ParticleNet, ParT), which weaver trainings on
PFNano reproduce:

* ``etarel = sign(jet eta) * (eta - jet eta)`` with ``sign = +1 if jet eta > 0
  else -1``: the relative eta is mirrored for backward jets.
* ``phirel = phi - jet phi`` wrapped into [-pi, pi).
* ``*_nopuppi`` logs use the raw candidate pt/energy; ``pfcand_pt_log`` /
  ``pfcand_e_log`` multiply by the PUPPI weight first.
* ``pfcand_normchi2 = floor(trkChi2)``, with candidates without a track
  (``trkChi2 == -1`` in PFNano) set to 999.
* impact-parameter significances are ``d / dErr`` and 0 where ``dErr <= 0``.
* masks are 1 for every real constituent; padded slots take the ``pad`` value
  of preprocess.json (0).

Order and truncation: constituents keep the order in which PFNano stores them
in ``FatJetPFCands`` / ``FatJetSVs`` (PF candidates by decreasing pt), and only
the first ``var_length`` of each jet enter the model (weaver's
``pad_none(clip=True)``). Note that CMSSW sorts SVs by decreasing ``dxysig``
before truncation; PFNano stores them unsorted. Link rows whose target index is
invalid (``FatJetSVs_sVIdx == -1``: an SV that the ``SV`` table does not hold)
are dropped before truncation, as PFNano analyses do (``SV[sVIdx != -1]``).

Users add a feature with one line::

    register_feature("pfcand_ptrel", lambda c: c["PFCands.pt"] / c["FatJet.pt"])

The columns a feature reads and its level are discovered by calling it once on
dummy data; pass ``columns=`` / ``level=`` to state them explicitly. Besides
registered names, any ``<Collection>_<field>`` (``FatJet_msoftdrop``,
``PFCands_puppiWeight``, ``FatJetSVs_ntracks``) reads that branch as is.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "FEATURES",
    "JET",
    "LEVELS",
    "Feature",
    "FeatureContext",
    "Level",
    "UnknownFeatureError",
    "get_feature",
    "known_features",
    "register_feature",
]

JET = "FatJet"


@dataclass(frozen=True)
class Level:
    """Where a feature's rows come from: the jet table, or a link table to a target."""

    name: str
    link: str | None = None  # link table, one row per (jet, constituent)
    target: str | None = None  # constituent collection
    target_index: str | None = None  # link field indexing the target
    jet_index: str = "jetIdx"  # link field indexing the jet


LEVELS: dict[str, Level] = {
    "jet": Level("jet"),
    "pfcand": Level("pfcand", "FatJetPFCands", "PFCands", "pFCandsIdx"),
    "sv": Level("sv", "FatJetSVs", "SV", "sVIdx"),
}
_COLLECTION_LEVEL = {JET: "jet"}
for _lvl in LEVELS.values():
    if _lvl.link:
        _COLLECTION_LEVEL[_lvl.link] = _lvl.name
        _COLLECTION_LEVEL[_lvl.target] = _lvl.name

FeatureContext = Mapping[str, np.ndarray]
"""What a feature function receives: ``c["Collection.field"]`` -> flat array."""


@dataclass(frozen=True)
class Feature:
    """A named input feature: level, the branches it reads, and a pure function."""

    name: str
    level: str
    columns: tuple[str, ...]
    func: Callable[[FeatureContext], np.ndarray]
    doc: str = ""

    def __call__(self, context: FeatureContext) -> np.ndarray:
        return np.asarray(self.func(context))


class UnknownFeatureError(KeyError):
    """A feature name that is neither registered nor a ``Collection_field`` branch."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


FEATURES: dict[str, Feature] = {}


def _split_column(column: str) -> tuple[str, str]:
    coll, sep, field = column.partition(".")
    if not sep or not coll or not field:
        raise ValueError(f"column {column!r} must read 'Collection.field'")
    if coll not in _COLLECTION_LEVEL:
        raise ValueError(
            f"column {column!r}: unknown collection {coll!r} (known: {sorted(_COLLECTION_LEVEL)})"
        )
    return coll, field


class _Recorder(dict):
    """Dummy context that records which columns a feature reads."""

    def __missing__(self, key: str) -> np.ndarray:
        _split_column(key)
        value = np.full(3, 1.0, dtype=np.float32)
        self[key] = value
        return value


def _infer_level(name: str, columns: Iterable[str]) -> str:
    levels = {_COLLECTION_LEVEL[_split_column(c)[0]] for c in columns} - {"jet"}
    if len(levels) > 1:
        raise ValueError(f"feature {name!r} mixes constituent levels {sorted(levels)}")
    return levels.pop() if levels else "jet"


def register_feature(
    name: str,
    func: Callable[[FeatureContext], np.ndarray],
    *,
    level: str | None = None,
    columns: Iterable[str] | None = None,
    doc: str = "",
    overwrite: bool = False,
) -> Feature:
    """Register ``func`` as feature ``name``; returns the :class:`Feature`.

    ``columns`` ("Collection.field" strings) and ``level`` ("jet", "pfcand",
    "sv") are inferred by calling ``func`` once on dummy data when not given.
    """
    if name in FEATURES and not overwrite:
        raise ValueError(f"feature {name!r} is already registered (pass overwrite=True)")
    if columns is None:
        recorder = _Recorder()
        with np.errstate(all="ignore"):
            try:
                func(recorder)
            except Exception as err:
                raise ValueError(
                    f"could not infer the columns of feature {name!r} ({err}); pass columns=..."
                ) from err
        columns = tuple(recorder)
    columns = tuple(columns)
    for c in columns:
        _split_column(c)
    inferred = _infer_level(name, columns)
    if level is None:
        level = inferred
    if level not in LEVELS:
        raise ValueError(f"feature {name!r}: level must be one of {sorted(LEVELS)}, got {level!r}")
    if inferred != "jet" and inferred != level:
        raise ValueError(f"feature {name!r} is declared at level {level!r} but reads {columns}")
    feature = Feature(name=name, level=level, columns=columns, func=func, doc=doc)
    FEATURES[name] = feature
    return feature


_RAW = re.compile(r"^(?P<coll>[A-Za-z]+)_(?P<field>\w+)$")


def known_features() -> list[str]:
    """Sorted names of the registered features."""
    return sorted(FEATURES)


def get_feature(name: str) -> Feature:
    """The feature called ``name``: registered, or a raw ``Collection_field`` branch."""
    if name in FEATURES:
        return FEATURES[name]
    m = _RAW.match(name)
    if m and m["coll"] in _COLLECTION_LEVEL:
        column = f"{m['coll']}.{m['field']}"
        return Feature(
            name=name,
            level=_COLLECTION_LEVEL[m["coll"]],
            columns=(column,),
            func=lambda c, column=column: c[column],
            doc=f"the branch {name} as stored",
        )
    close = difflib.get_close_matches(name, FEATURES, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownFeatureError(
        f"unknown feature {name!r}.{hint} Known features: {', '.join(known_features())}; "
        f"or a raw branch '<Collection>_<field>' of {sorted(_COLLECTION_LEVEL)}; "
        "add your own with jettag.tagger.register_feature(name, func)."
    )


# --------------------------------------------------------------------------- helpers
def _eta_sign(c: FeatureContext) -> np.ndarray:
    return np.where(c["FatJet.eta"] > 0, 1.0, -1.0).astype(np.float32)


def _delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)
    return (np.mod(d + np.float32(np.pi), np.float32(2 * np.pi)) - np.float32(np.pi)).astype(
        np.float32
    )


def _energy(pt: np.ndarray, eta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    p = pt * np.cosh(eta)
    return np.sqrt(p * p + mass * mass)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0).astype(np.float32)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _reg(
    name: str, func: Callable[[FeatureContext], np.ndarray], doc: str, level: str | None = None
) -> None:
    register_feature(name, func, doc=doc, level=level)


def _pf(field: str) -> Callable[[FeatureContext], np.ndarray]:
    return lambda c: c[f"PFCands.{field}"]


# --------------------------------------------------------------------------- pfcand_*
_reg(
    "pfcand_mask",
    lambda c: np.ones_like(c["FatJetPFCands.jetIdx"], dtype=np.float32),
    "1 for each PF candidate of the jet (pad slots: 0)",
    level="pfcand",
)
_reg("pfcand_pt_log_nopuppi", lambda c: _log(c["PFCands.pt"]), "log(pt)")
_reg(
    "pfcand_e_log_nopuppi",
    lambda c: _log(_energy(c["PFCands.pt"], c["PFCands.eta"], c["PFCands.mass"])),
    "log(E), E = sqrt((pt cosh eta)^2 + m^2)",
)
_reg(
    "pfcand_pt_log",
    lambda c: _log(c["PFCands.pt"] * c["PFCands.puppiWeight"]),
    "log(puppiWeight * pt)",
)
_reg(
    "pfcand_e_log",
    lambda c: _log(
        c["PFCands.puppiWeight"] * _energy(c["PFCands.pt"], c["PFCands.eta"], c["PFCands.mass"])
    ),
    "log(puppiWeight * E)",
)
_reg(
    "pfcand_ptrel_log",
    lambda c: _log(c["PFCands.pt"] * c["PFCands.puppiWeight"] / c["FatJet.pt"]),
    "log(puppiWeight * pt / jet pt)",
)
_reg(
    "pfcand_etarel",
    lambda c: _eta_sign(c) * (c["PFCands.eta"] - c["FatJet.eta"]),
    "sign(jet eta) * (eta - jet eta), sign = +1 if jet eta > 0 else -1",
)
_reg(
    "pfcand_phirel",
    lambda c: _delta_phi(c["PFCands.phi"], c["FatJet.phi"]),
    "phi - jet phi, wrapped into [-pi, pi)",
)
_reg(
    "pfcand_deltaR",
    lambda c: np.hypot(
        c["PFCands.eta"] - c["FatJet.eta"], _delta_phi(c["PFCands.phi"], c["FatJet.phi"])
    ),
    "sqrt(deta^2 + dphi^2) to the jet axis",
)
_reg("pfcand_abseta", lambda c: np.abs(c["PFCands.eta"]), "|eta|")
_reg("pfcand_charge", _pf("charge"), "electric charge")
for _flag, _pdg in (
    ("isEl", 11),
    ("isMu", 13),
    ("isGamma", 22),
    ("isChargedHad", 211),
    ("isNeutralHad", 130),
):
    _reg(
        f"pfcand_{_flag}",
        lambda c, p=_pdg: (np.abs(c["PFCands.pdgId"]) == p).astype(np.float32),
        f"|pdgId| == {_pdg}",
    )
_reg("pfcand_VTX_ass", _pf("pvAssocQuality"), "PV association quality (pvAssocQuality)")
_reg("pfcand_lostInnerHits", _pf("lostInnerHits"), "lost inner hits of the track")
_reg(
    "pfcand_normchi2",
    lambda c: np.floor(np.where(c["PFCands.trkChi2"] == -1, 999, c["PFCands.trkChi2"])).astype(
        np.float32
    ),
    "floor(track chi2/ndof); 999 without a track (trkChi2 == -1)",
)
_reg("pfcand_quality", _pf("trkQuality"), "track quality mask (trkQuality)")
_reg("pfcand_dz", _pf("dz"), "longitudinal impact parameter dz [cm], with sign")
_reg(
    "pfcand_dzsig",
    lambda c: _safe_div(c["PFCands.dz"], c["PFCands.dzErr"]),
    "dz / dzErr (0 if dzErr <= 0)",
)
_reg("pfcand_dxy", _pf("d0"), "transverse impact parameter d0 [cm], with sign")
_reg(
    "pfcand_dxysig",
    lambda c: _safe_div(c["PFCands.d0"], c["PFCands.d0Err"]),
    "d0 / d0Err (0 if d0Err <= 0)",
)
_reg("pfcand_puppiw", _pf("puppiWeight"), "PUPPI weight")
for _btag in ("EtaRel", "PtRatio", "PParRatio", "Sip3dVal", "Sip3dSig", "JetDistVal"):
    _reg(
        f"pfcand_btag{_btag}",
        lambda c, b=_btag: c[f"FatJetPFCands.btag{b}"],
        f"FatJetPFCands_btag{_btag} (track b-tag feature w.r.t. the jet, as PFNano stores it)",
    )
_reg("pfcand_px", lambda c: c["PFCands.pt"] * np.cos(c["PFCands.phi"]), "pt cos(phi)")
_reg("pfcand_py", lambda c: c["PFCands.pt"] * np.sin(c["PFCands.phi"]), "pt sin(phi)")
_reg("pfcand_pz", lambda c: c["PFCands.pt"] * np.sinh(c["PFCands.eta"]), "pt sinh(eta)")
_reg(
    "pfcand_energy",
    lambda c: _energy(c["PFCands.pt"], c["PFCands.eta"], c["PFCands.mass"]),
    "sqrt((pt cosh eta)^2 + m^2)",
)

# --------------------------------------------------------------------------- sv_*
_reg(
    "sv_mask",
    lambda c: np.ones_like(c["FatJetSVs.jetIdx"], dtype=np.float32),
    "1 for each SV of the jet (pad slots: 0)",
    level="sv",
)
_reg("sv_pt_log", lambda c: _log(c["FatJetSVs.pt"]), "log(SV pt)")
_reg("sv_mass", lambda c: c["FatJetSVs.mass"], "SV mass")
_reg(
    "sv_etarel",
    lambda c: _eta_sign(c) * (c["SV.eta"] - c["FatJet.eta"]),
    "sign(jet eta) * (SV eta - jet eta), sign = +1 if jet eta > 0 else -1",
)
_reg(
    "sv_phirel",
    lambda c: _delta_phi(c["SV.phi"], c["FatJet.phi"]),
    "SV phi - jet phi, wrapped into [-pi, pi)",
)
_reg(
    "sv_deltaR",
    lambda c: np.hypot(c["SV.eta"] - c["FatJet.eta"], _delta_phi(c["SV.phi"], c["FatJet.phi"])),
    "sqrt(deta^2 + dphi^2) to the jet axis",
)
_reg("sv_abseta", lambda c: np.abs(c["SV.eta"]), "|SV eta|")
_reg("sv_ntracks", lambda c: c["FatJetSVs.ntracks"], "number of tracks of the SV")
_reg("sv_normchi2", lambda c: c["FatJetSVs.normchi2"], "SV chi2/ndof")
_reg("sv_dxy", lambda c: c["FatJetSVs.dxy"], "2D flight distance [cm]")
_reg("sv_dxysig", lambda c: c["FatJetSVs.dxysig"], "2D flight distance significance")
_reg("sv_d3d", lambda c: c["FatJetSVs.d3d"], "3D flight distance [cm]")
_reg("sv_d3dsig", lambda c: c["FatJetSVs.d3dsig"], "3D flight distance significance")
_reg(
    "sv_costhetasvpv",
    lambda c: c["FatJetSVs.costhetasvpv"],
    "cos of the angle between flight direction and SV momentum",
)
_reg("sv_px", lambda c: c["SV.pt"] * np.cos(c["SV.phi"]), "pt cos(phi)")
_reg("sv_py", lambda c: c["SV.pt"] * np.sin(c["SV.phi"]), "pt sin(phi)")
_reg("sv_pz", lambda c: c["SV.pt"] * np.sinh(c["SV.eta"]), "pt sinh(eta)")
_reg(
    "sv_energy",
    lambda c: _energy(c["SV.pt"], c["SV.eta"], c["SV.mass"]),
    "sqrt((pt cosh eta)^2 + m^2)",
)

# --------------------------------------------------------------------------- jet level
for _f in ("pt", "eta", "phi", "mass", "msoftdrop", "n2b1", "n3b1", "tau1", "tau2", "tau3"):
    _reg(f"fj_{_f}", lambda c, f=_f: c[f"FatJet.{f}"], f"FatJet_{_f}")
_reg("fj_abseta", lambda c: np.abs(c["FatJet.eta"]), "|jet eta|")
_reg("fj_pt_log", lambda c: _log(c["FatJet.pt"]), "log(jet pt)")
_reg("fj_rho", lambda c: 2 * _log(c["FatJet.msoftdrop"] / c["FatJet.pt"]), "2 ln(msoftdrop / pt)")
_reg(
    "fj_tau21",
    lambda c: _safe_div(c["FatJet.tau2"], c["FatJet.tau1"]),
    "tau2 / tau1 (0 if tau1 <= 0)",
)
_reg(
    "fj_tau32",
    lambda c: _safe_div(c["FatJet.tau3"], c["FatJet.tau2"]),
    "tau3 / tau2 (0 if tau2 <= 0)",
)

BUILTIN_FEATURES: dict[str, Feature] = dict(FEATURES)
"""The features jettag defines (re-created by name after unpickling; user ones travel by value)."""
