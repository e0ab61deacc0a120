"""Reading generated samples back: fat jets with their truth and simple tag observables.

``read_fatjets`` returns, per event, the fat jets of a jettag (or CMS) PFNano
file with the columns the physics checks, the demo and the training need:
kinematics, truth labels (from the file for simulation, from the truth sidecar
for pseudo-data), the number of associated secondary vertices, the ranked 3D
impact-parameter significances of the jet's tracks, and whether a muon above
5 GeV lies inside the jet. ``flat_mass_weights`` documents and computes the
flattening weights of the wide-resonance ``x*`` samples.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from jettag.samples.files import TRUTH_TREE, truth_sidecar_path

__all__ = [
    "FLAVOUR_CATEGORIES",
    "flat_mass_weights",
    "flavour_category",
    "jets_with_muon",
    "read_fatjets",
    "resonance_mass",
]

#: Jet truth categories in the order of ``flavour_category`` codes.
FLAVOUR_CATEGORIES: tuple[str, ...] = ("light", "c", "cc", "b", "bb")

_JET_FIELDS = ("pt", "eta", "phi", "mass", "msoftdrop", "n2b1", "tau1", "tau2")
_LABELS = ("hadronFlavour", "nBHadrons", "nCHadrons")


def _open_events(path: Path):
    try:
        return uproot.open(f"{path}:Events")
    except FileNotFoundError:
        raise
    except Exception as err:  # uproot raises several kinds for non-ROOT input
        raise OSError(f"{path}: cannot read an Events tree ({err})") from err


def _ranked(values: ak.Array, k: int) -> ak.Array:
    """The k-th largest value per innermost list (0 when the list is shorter)."""
    ordered = ak.sort(values, axis=-1, ascending=False)
    padded = ak.pad_none(ordered, k + 1, axis=-1)
    return ak.fill_none(padded[..., k], 0.0)


def read_fatjets(path: str | Path, *, muon_pt: float = 5.0, muon_dr: float = 0.8) -> ak.Array:
    """Per-event fat jets of ``path`` with truth and tag observables.

    Fields per jet: the kinematics, ``label`` (index into
    ``FLAVOUR_CATEGORIES``), ``nBHadrons``, ``nCHadrons``,
    ``n_sv`` (associated SVs), ``sip3dsig_1`` / ``sip3dsig_2`` (largest and
    second-largest track 3D IP significance), ``has_muon`` (a muon above
    ``muon_pt`` within ``muon_dr``), and ``weight`` (the event's genWeight,
    1 for pseudo-data).
    """
    path = Path(path)
    tree = _open_events(path)
    keys = set(tree.keys())
    needed = [f"FatJet_{f}" for f in _JET_FIELDS] + [
        "FatJetPFCands_jetIdx",
        "FatJetPFCands_btagSip3dSig",
        "FatJetSVs_jetIdx",
        "Muon_pt",
        "Muon_eta",
        "Muon_phi",
    ]
    missing = [k for k in needed if k not in keys]
    if missing:
        raise OSError(f"{path}: not a PFNano file, missing branches {missing[:4]}")
    labels_here = all(f"FatJet_{f}" in keys for f in _LABELS)
    arrays = tree.arrays(
        needed
        + ([f"FatJet_{f}" for f in _LABELS] if labels_here else [])
        + (["genWeight"] if "genWeight" in keys else [])
    )
    if labels_here:
        truth = {f: arrays[f"FatJet_{f}"] for f in _LABELS}
    else:
        sidecar = truth_sidecar_path(path)
        if not sidecar.exists():
            raise OSError(f"{path}: no jet truth in the file and no truth sidecar {sidecar}")
        t = uproot.open(f"{sidecar}:{TRUTH_TREE}").arrays([f"FatJet_{f}" for f in _LABELS])
        truth = {f: t[f"FatJet_{f}"] for f in _LABELS}
    jets = ak.zip({f: arrays[f"FatJet_{f}"] for f in _JET_FIELDS})
    local = ak.local_index(jets["pt"], axis=1)

    # per jet: IP significances of its candidates, number of SVs
    sig = arrays["FatJetPFCands_btagSip3dSig"]
    cand_jet = arrays["FatJetPFCands_jetIdx"]
    match = local[:, :, None] == cand_jet[:, None, :]
    sig_per_jet = ak.broadcast_arrays(sig[:, None, :], match)[0][match]
    n_sv = ak.sum(local[:, :, None] == arrays["FatJetSVs_jetIdx"][:, None, :], axis=-1)

    muons = ak.zip({k: arrays[f"Muon_{k}"] for k in ("pt", "eta", "phi")})
    has_muon = jets_with_muon(jets, muons, pt_min=muon_pt, dr_max=muon_dr)

    weight = arrays["genWeight"] if "genWeight" in arrays.fields else np.ones(len(jets), np.float32)
    out = {f: jets[f] for f in _JET_FIELDS}
    out.update(
        nBHadrons=truth["nBHadrons"],
        nCHadrons=truth["nCHadrons"],
        hadronFlavour=truth["hadronFlavour"],
        label=flavour_category(truth["nBHadrons"], truth["nCHadrons"]),
        n_sv=n_sv,
        sip3dsig_1=_ranked(sig_per_jet, 0),
        sip3dsig_2=_ranked(sig_per_jet, 1),
        has_muon=has_muon,
        weight=ak.broadcast_arrays(weight, jets["pt"])[0],
    )
    return ak.zip(out)


def resonance_mass(path: str | Path, pdg_id: int = 25) -> np.ndarray:
    """Generated mass of the resonance per event (last copy), NaN where absent."""
    gen = uproot.open(f"{path}:Events").arrays(["GenPart_pdgId", "GenPart_mass", "GenPart_status"])
    sel = (gen["GenPart_pdgId"] == pdg_id) & (gen["GenPart_status"] == 62)
    return ak.to_numpy(ak.fill_none(ak.firsts(gen["GenPart_mass"][sel]), np.nan)).astype(np.float64)


def flat_mass_weights(
    mass: np.ndarray, *, lo: float = 30.0, hi: float = 270.0, bin_width: float = 10.0
) -> np.ndarray:
    """Weights that make the generated resonance-mass spectrum flat in [lo, hi).

    The ``x*`` samples come from one very wide resonance; weighting each event
    by ``mean_count / count(bin of its mass)``, with counts taken from the
    sample itself in ``bin_width`` bins (the mean over the filled bins), makes
    the mass distribution exactly flat (the flat-mass training sample idea,
    computed by :mod:`jettag.flatmass`, the code of ``jettag flatten``). Events
    outside [lo, hi) or without a resonance (NaN) get weight 0. The weights
    average to 1 over the events inside the window.
    """
    from jettag import flatmass

    mass = np.asarray(mass, dtype=np.float64)
    edges = np.arange(lo, hi + 0.5 * bin_width, bin_width)
    found = mass[np.isfinite(mass)]
    if not np.any((found >= edges[0]) & (found < edges[-1])):
        return np.zeros(len(mass))
    weights = flatmass.derive_weights(flatmass.histogram(found, msd_edges=edges))
    return flatmass.evaluate(weights, mass)


def flavour_category(n_b: np.ndarray | ak.Array, n_c: np.ndarray | ak.Array) -> np.ndarray | ak.Array:
    """Category code per jet, indexing ``FLAVOUR_CATEGORIES``: 0 light, 1 c, 2 cc, 3 b, 4 bb."""
    n_b = n_b * 1  # promote uint8 and keep jaggedness
    n_c = n_c * 1
    return ak.where(
        n_b >= 2, 4, ak.where(n_b == 1, 3, ak.where(n_c >= 2, 2, ak.where(n_c == 1, 1, 0)))
    )


def jets_with_muon(jets: ak.Array, muons: ak.Array, *, pt_min: float, dr_max: float) -> ak.Array:
    """Per jet: does a muon above ``pt_min`` lie within ``dr_max`` of its axis?

    Used by the ``gbb_mu`` generator filter and by the sample reader, so that the
    two agree on what a muon-tagged jet is.
    """
    muons = muons[muons["pt"] > pt_min]
    dphi = (jets["phi"][:, :, None] - muons["phi"][:, None, :] + np.pi) % (2 * np.pi) - np.pi
    deta = jets["eta"][:, :, None] - muons["eta"][:, None, :]
    return ak.any(np.hypot(deta, dphi) < dr_max, axis=-1)
