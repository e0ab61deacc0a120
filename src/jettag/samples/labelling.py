"""Tagger classes of generated fat jets: Xbb, Xcc, Xqq and QCD.

The reference taggers separate a boosted resonance decaying to two quarks
from QCD jets. A jet's class comes from the sample it was generated in and the
generator record, as in the ParticleNet trainings on flat-mass samples:

* in an ``xbb`` / ``xcc`` / ``xqq`` (or ``zbb`` / ``zcc`` / ``zqq``) file, a jet is
  of class ``Xbb`` / ``Xcc`` / ``Xqq`` when **both** decay quarks of the
  resonance (its last copy's status-23 daughters) lie within ``match_dr`` of
  the jet axis; the other jets of those events (the recoil) are not used;
* in a ``qcd`` file every jet is ``QCD``, whatever its flavour (gluon
  splittings to bb and cc included, as in nature).

Only jets in the tagging phase space are used: ``pt > 300 GeV``,
``|eta| < 2.4`` and ``40 <= msoftdrop < 250 GeV`` by default
(:class:`JetSelection`). Everything here returns flat per-jet numpy arrays in
the file's jet order (event by event, ``FatJet`` index within the event), the
order in which :class:`jettag.tagger.InputBuilder` builds a model's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag.samples.files import read_metadata

__all__ = [
    "LABEL_BRANCHES",
    "PROCESS_CLASSES",
    "PROCESS_RESONANCES",
    "TAGGER_CLASSES",
    "JetSelection",
    "LabelledJets",
    "file_class",
    "file_process",
    "label_jets_of",
    "resonance_of",
]

#: The classes of the reference taggers, in their output order.
TAGGER_CLASSES: tuple[str, ...] = ("Xbb", "Xcc", "Xqq", "QCD")

#: The class a generated process provides.
PROCESS_CLASSES: dict[str, str] = {
    "xbb": "Xbb",
    "xcc": "Xcc",
    "xqq": "Xqq",
    "zbb": "Xbb",
    "zcc": "Xcc",
    "zqq": "Xqq",
    "qcd": "QCD",
}

#: PDG id of the resonance whose decay labels the signal jets of each signal
#: process (the generator's ``Process.resonance``; a test holds the two equal).
PROCESS_RESONANCES: dict[str, int] = {"xbb": 25, "xcc": 25, "xqq": 25, "zbb": 23, "zcc": 23, "zqq": 23}

#: Branches read to label and select jets.
LABEL_BRANCHES: tuple[str, ...] = (
    "FatJet_pt",
    "FatJet_eta",
    "FatJet_phi",
    "FatJet_msoftdrop",
    "GenPart_pdgId",
    "GenPart_status",
    "GenPart_genPartIdxMother",
    "GenPart_eta",
    "GenPart_phi",
)


@dataclass(frozen=True)
class JetSelection:
    """The tagging phase space and the decay-containment radius."""

    pt_min: float = 300.0
    abs_eta_max: float = 2.4
    msd_min: float = 40.0
    msd_max: float = 250.0
    match_dr: float = 0.8

    def mask(self, pt: np.ndarray, eta: np.ndarray, msd: np.ndarray) -> np.ndarray:
        """Jets inside the phase space."""
        return (
            (pt > self.pt_min)
            & (np.abs(eta) < self.abs_eta_max)
            & (msd >= self.msd_min)
            & (msd < self.msd_max)
        )


@dataclass(frozen=True)
class LabelledJets:
    """Per jet of one file (all jets, file order): class, kinematics, weight, selection."""

    label: np.ndarray  # index into classes; -1 for jets not of the file's class
    selected: np.ndarray  # bool: in the phase space and labelled
    pt: np.ndarray
    eta: np.ndarray
    msoftdrop: np.ndarray
    gen_weight: np.ndarray  # the event's genWeight (1 for unweighted samples)
    classes: tuple[str, ...] = TAGGER_CLASSES


def file_process(path: str | Path, process: str | None = None) -> str:
    """The generated process of a file that provides a tagger class (``process`` if given)."""
    if process is None:
        try:
            process = read_metadata(path)["process"]
        except ValueError:
            raise ValueError(
                f"{path}: not a jettag-generated file; give its process (one of {sorted(PROCESS_CLASSES)})"
            ) from None
    if process not in PROCESS_CLASSES:
        raise ValueError(
            f"{path}: process {process!r} provides no tagger class; use one of {sorted(PROCESS_CLASSES)}"
        )
    return process


def file_class(path: str | Path, process: str | None = None) -> str:
    """The tagger class a file's jets provide, from its generation metadata (or ``process``)."""
    return PROCESS_CLASSES[file_process(path, process)]


def resonance_of(process: str) -> int:
    """PDG id of the decaying resonance of a process that provides a class (25 for ``qcd``)."""
    return PROCESS_RESONANCES.get(process, 25)


def _decay_contained(arrays: Mapping[str, Any], pdg_id: int, match_dr: float) -> ak.Array:
    """Per jet: both daughters of the resonance's last copy within ``match_dr``."""
    pdg, status = arrays["GenPart_pdgId"], arrays["GenPart_status"]
    mother = arrays["GenPart_genPartIdxMother"]
    index = ak.local_index(pdg, axis=1)
    last = ak.firsts(index[(pdg == pdg_id) & (status == 62)])
    is_daughter = (mother == ak.fill_none(last, -2)) & (status == 23)
    d_eta = arrays["GenPart_eta"][is_daughter]
    d_phi = arrays["GenPart_phi"][is_daughter]
    j_eta, j_phi = arrays["FatJet_eta"], arrays["FatJet_phi"]
    deta = j_eta[:, :, None] - d_eta[:, None, :]
    dphi = (j_phi[:, :, None] - d_phi[:, None, :] + np.pi) % (2 * np.pi) - np.pi
    inside = (deta**2 + dphi**2) < match_dr**2
    return (ak.sum(inside, axis=-1) >= 2) & (ak.num(d_eta, axis=1) >= 2)


def label_jets_of(
    arrays: Mapping[str, Any],
    cls: str,
    *,
    selection: JetSelection | None = None,
    classes: tuple[str, ...] = TAGGER_CLASSES,
    resonance: int = 25,
) -> LabelledJets:
    """Label the jets of events read from a file of class ``cls`` (``LABEL_BRANCHES`` + genWeight).

    ``resonance``: PDG id of the decaying resonance in signal files (25 for
    ``x*``, 23 for ``z*``).
    """
    selection = selection or JetSelection()
    if cls not in classes:
        raise ValueError(f"class {cls!r} is not one of {classes}")
    counts = ak.to_numpy(ak.num(arrays["FatJet_pt"], axis=1))

    def flat(name: str) -> np.ndarray:
        return ak.to_numpy(ak.flatten(arrays[name])).astype(np.float64)

    pt, eta, msd = flat("FatJet_pt"), flat("FatJet_eta"), flat("FatJet_msoftdrop")
    if cls == "QCD":
        ok = np.ones(len(pt), dtype=bool)
    else:
        ok = ak.to_numpy(ak.flatten(_decay_contained(arrays, resonance, selection.match_dr)))
    fields = getattr(arrays, "fields", None) or list(arrays)
    if "genWeight" in fields:
        weight = np.repeat(ak.to_numpy(arrays["genWeight"]).astype(np.float64), counts)
    else:
        weight = np.ones(len(pt))
    label = np.where(ok, classes.index(cls), -1).astype(np.int64)
    selected = ok & selection.mask(pt, eta, msd)
    return LabelledJets(label, selected, pt, eta, msd, weight, classes)
