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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

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
    kernel: tuple[str, tuple[str, ...], float] | None = None
    """Optional fast path: ``(op, columns, const)``, an opcode of
    :data:`jettag.tagger.kernels.OPS` and its argument columns, computing the same
    values as ``func`` inside the fused numba kernels. ``None``: ``func`` is
    evaluated with numpy once per chunk."""

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
            kernel=("raw", (column,), 0.0),
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
    name: str,
    func: Callable[[FeatureContext], np.ndarray],
    doc: str,
    level: str | None = None,
    kernel: tuple[str, Sequence[str]] | tuple[str, Sequence[str], float] | None = None,
) -> None:
    feature = register_feature(name, func, doc=doc, level=level)
    if kernel is not None:
        op, cols, *const = kernel
        FEATURES[name] = replace(
            feature, kernel=(op, tuple(cols), float(const[0]) if const else 0.0)
        )


def _pf(field: str) -> Callable[[FeatureContext], np.ndarray]:
    return lambda c: c[f"PFCands.{field}"]


_PT, _ETA, _PHI, _MASS, _W = (f"PFCands.{f}" for f in ("pt", "eta", "phi", "mass", "puppiWeight"))
_JPT, _JETA, _JPHI = "FatJet.pt", "FatJet.eta", "FatJet.phi"


# --------------------------------------------------------------------------- pfcand_*
_reg(
    "pfcand_mask",
    lambda c: np.ones_like(c["FatJetPFCands.jetIdx"], dtype=np.float32),
    "1 for each PF candidate of the jet (pad slots: 0)",
    level="pfcand",
    kernel=("one", ()),
)
_reg("pfcand_pt_log_nopuppi", lambda c: _log(c[_PT]), "log(pt)", kernel=("log", (_PT,)))
_reg(
    "pfcand_e_log_nopuppi",
    lambda c: _log(_energy(c[_PT], c[_ETA], c[_MASS])),
    "log(E), E = sqrt((pt cosh eta)^2 + m^2)",
    kernel=("log_energy", (_PT, _ETA, _MASS)),
)
_reg(
    "pfcand_pt_log",
    lambda c: _log(c[_PT] * c[_W]),
    "log(puppiWeight * pt)",
    kernel=("log_mul", (_PT, _W)),
)
_reg(
    "pfcand_e_log",
    lambda c: _log(c[_W] * _energy(c[_PT], c[_ETA], c[_MASS])),
    "log(puppiWeight * E)",
    kernel=("log_mul_energy", (_W, _PT, _ETA, _MASS)),
)
_reg(
    "pfcand_ptrel_log",
    lambda c: _log(c[_PT] * c[_W] / c[_JPT]),
    "log(puppiWeight * pt / jet pt)",
    kernel=("log_mul_div", (_PT, _W, _JPT)),
)
_reg(
    "pfcand_etarel",
    lambda c: _eta_sign(c) * (c[_ETA] - c[_JETA]),
    "sign(jet eta) * (eta - jet eta), sign = +1 if jet eta > 0 else -1",
    kernel=("etarel", (_ETA, _JETA)),
)
_reg(
    "pfcand_phirel",
    lambda c: _delta_phi(c[_PHI], c[_JPHI]),
    "phi - jet phi, wrapped into [-pi, pi)",
    kernel=("dphi", (_PHI, _JPHI)),
)
_reg(
    "pfcand_deltaR",
    lambda c: np.hypot(c[_ETA] - c[_JETA], _delta_phi(c[_PHI], c[_JPHI])),
    "sqrt(deta^2 + dphi^2) to the jet axis",
    kernel=("deltar", (_ETA, _PHI, _JETA, _JPHI)),
)
_reg("pfcand_abseta", lambda c: np.abs(c[_ETA]), "|eta|", kernel=("abs", (_ETA,)))
_reg("pfcand_charge", _pf("charge"), "electric charge", kernel=("raw", ("PFCands.charge",)))
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
        kernel=("abs_eq", ("PFCands.pdgId",), float(_pdg)),
    )
for _name, _field, _doc in (
    ("VTX_ass", "pvAssocQuality", "PV association quality (pvAssocQuality)"),
    ("lostInnerHits", "lostInnerHits", "lost inner hits of the track"),
    ("quality", "trkQuality", "track quality mask (trkQuality)"),
    ("dz", "dz", "longitudinal impact parameter dz [cm], with sign"),
    ("dxy", "d0", "transverse impact parameter d0 [cm], with sign"),
    ("puppiw", "puppiWeight", "PUPPI weight"),
):
    _reg(f"pfcand_{_name}", _pf(_field), _doc, kernel=("raw", (f"PFCands.{_field}",)))
_reg(
    "pfcand_normchi2",
    lambda c: np.floor(np.where(c["PFCands.trkChi2"] == -1, 999, c["PFCands.trkChi2"])).astype(
        np.float32
    ),
    "floor(track chi2/ndof); 999 without a track (trkChi2 == -1)",
    kernel=("normchi2", ("PFCands.trkChi2",)),
)
_reg(
    "pfcand_dzsig",
    lambda c: _safe_div(c["PFCands.dz"], c["PFCands.dzErr"]),
    "dz / dzErr (0 if dzErr <= 0)",
    kernel=("safe_div", ("PFCands.dz", "PFCands.dzErr")),
)
_reg(
    "pfcand_dxysig",
    lambda c: _safe_div(c["PFCands.d0"], c["PFCands.d0Err"]),
    "d0 / d0Err (0 if d0Err <= 0)",
    kernel=("safe_div", ("PFCands.d0", "PFCands.d0Err")),
)
for _btag in ("EtaRel", "PtRatio", "PParRatio", "Sip3dVal", "Sip3dSig", "JetDistVal"):
    _reg(
        f"pfcand_btag{_btag}",
        lambda c, b=_btag: c[f"FatJetPFCands.btag{b}"],
        f"FatJetPFCands_btag{_btag} (track b-tag feature w.r.t. the jet, as PFNano stores it)",
        kernel=("raw", (f"FatJetPFCands.btag{_btag}",)),
    )
_reg("pfcand_px", lambda c: c[_PT] * np.cos(c[_PHI]), "pt cos(phi)", kernel=("px", (_PT, _PHI)))
_reg("pfcand_py", lambda c: c[_PT] * np.sin(c[_PHI]), "pt sin(phi)", kernel=("py", (_PT, _PHI)))
_reg("pfcand_pz", lambda c: c[_PT] * np.sinh(c[_ETA]), "pt sinh(eta)", kernel=("pz", (_PT, _ETA)))
_reg(
    "pfcand_energy",
    lambda c: _energy(c[_PT], c[_ETA], c[_MASS]),
    "sqrt((pt cosh eta)^2 + m^2)",
    kernel=("energy", (_PT, _ETA, _MASS)),
)

# --------------------------------------------------------------------------- sv_*
_reg(
    "sv_mask",
    lambda c: np.ones_like(c["FatJetSVs.jetIdx"], dtype=np.float32),
    "1 for each SV of the jet (pad slots: 0)",
    level="sv",
    kernel=("one", ()),
)
_reg(
    "sv_pt_log",
    lambda c: _log(c["FatJetSVs.pt"]),
    "log(SV pt)",
    kernel=("log", ("FatJetSVs.pt",)),
)
_reg(
    "sv_etarel",
    lambda c: _eta_sign(c) * (c["SV.eta"] - c[_JETA]),
    "sign(jet eta) * (SV eta - jet eta), sign = +1 if jet eta > 0 else -1",
    kernel=("etarel", ("SV.eta", _JETA)),
)
_reg(
    "sv_phirel",
    lambda c: _delta_phi(c["SV.phi"], c[_JPHI]),
    "SV phi - jet phi, wrapped into [-pi, pi)",
    kernel=("dphi", ("SV.phi", _JPHI)),
)
_reg(
    "sv_deltaR",
    lambda c: np.hypot(c["SV.eta"] - c[_JETA], _delta_phi(c["SV.phi"], c[_JPHI])),
    "sqrt(deta^2 + dphi^2) to the jet axis",
    kernel=("deltar", ("SV.eta", "SV.phi", _JETA, _JPHI)),
)
_reg("sv_abseta", lambda c: np.abs(c["SV.eta"]), "|SV eta|", kernel=("abs", ("SV.eta",)))
for _name, _doc in (
    ("mass", "SV mass"),
    ("ntracks", "number of tracks of the SV"),
    ("normchi2", "SV chi2/ndof"),
    ("dxy", "2D flight distance [cm]"),
    ("dxysig", "2D flight distance significance"),
    ("d3d", "3D flight distance [cm]"),
    ("d3dsig", "3D flight distance significance"),
    ("costhetasvpv", "cos of the angle between flight direction and SV momentum"),
):
    _reg(
        f"sv_{_name}",
        lambda c, f=_name: c[f"FatJetSVs.{f}"],
        _doc,
        kernel=("raw", (f"FatJetSVs.{_name}",)),
    )
_reg(
    "sv_px",
    lambda c: c["SV.pt"] * np.cos(c["SV.phi"]),
    "pt cos(phi)",
    kernel=("px", ("SV.pt", "SV.phi")),
)
_reg(
    "sv_py",
    lambda c: c["SV.pt"] * np.sin(c["SV.phi"]),
    "pt sin(phi)",
    kernel=("py", ("SV.pt", "SV.phi")),
)
_reg(
    "sv_pz",
    lambda c: c["SV.pt"] * np.sinh(c["SV.eta"]),
    "pt sinh(eta)",
    kernel=("pz", ("SV.pt", "SV.eta")),
)
_reg(
    "sv_energy",
    lambda c: _energy(c["SV.pt"], c["SV.eta"], c["SV.mass"]),
    "sqrt((pt cosh eta)^2 + m^2)",
    kernel=("energy", ("SV.pt", "SV.eta", "SV.mass")),
)

# --------------------------------------------------------------------------- jet level
for _f in ("pt", "eta", "phi", "mass", "msoftdrop", "n2b1", "n3b1", "tau1", "tau2", "tau3"):
    _reg(
        f"fj_{_f}",
        lambda c, f=_f: c[f"FatJet.{f}"],
        f"FatJet_{_f}",
        kernel=("raw", (f"FatJet.{_f}",)),
    )
_reg("fj_abseta", lambda c: np.abs(c[_JETA]), "|jet eta|", kernel=("abs", (_JETA,)))
_reg("fj_pt_log", lambda c: _log(c[_JPT]), "log(jet pt)", kernel=("log", (_JPT,)))
_reg(
    "fj_rho",
    lambda c: 2 * _log(c["FatJet.msoftdrop"] / c[_JPT]),
    "2 ln(msoftdrop / pt)",
    kernel=("two_log_div", ("FatJet.msoftdrop", _JPT)),
)
_reg(
    "fj_tau21",
    lambda c: _safe_div(c["FatJet.tau2"], c["FatJet.tau1"]),
    "tau2 / tau1 (0 if tau1 <= 0)",
    kernel=("safe_div", ("FatJet.tau2", "FatJet.tau1")),
)
_reg(
    "fj_tau32",
    lambda c: _safe_div(c["FatJet.tau3"], c["FatJet.tau2"]),
    "tau3 / tau2 (0 if tau2 <= 0)",
    kernel=("safe_div", ("FatJet.tau3", "FatJet.tau2")),
)

BUILTIN_FEATURES: dict[str, Feature] = dict(FEATURES)
"""The features jettag defines (re-created by name after unpickling; user ones travel by value)."""
