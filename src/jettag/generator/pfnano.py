"""The PFNano file format: branch names and types, and a streaming writer.

Names and dtypes follow CMS PFNano as in ``shared/data/pfnano.root`` so that
coffea's ``PFNanoAODSchema`` reads our files exactly as it reads CMS ones.
``BRANCHES`` is the single source of truth: every collection the generator
writes is cast to it before writing, and the format test compares it with the
real file.

Counters (``nFatJet`` ...) are written by uproot as int32 where CMS writes
uint32; coffea reads both the same way.

One event branch is jettag's own, not CMS's: ``jettag_forcedDecayWeight``
(:data:`FORCED_DECAY_WEIGHT`, float32, simulation only, in every simulated file):
the importance weight of the forced semileptonic B decays
(:func:`jettag.generator.pythia.forced_decay_weights`; 1 in every event of a
process without forced decays). ``genWeight`` already includes it (``genWeight``
= pT-hat bias weight x forced-decay weight: the natural population), so
``genWeight / jettag_forcedDecayWeight`` is the pT-hat bias weight alone: MC
weighted so describes the forced population, as the unweighted pseudo-data do.
It is named as NanoAOD names generator weights (``Collection_field``, as
``LHEWeight_originalXWGTUP``) under a ``jettag`` prefix that no CMS branch has;
coffea reads it as ``events.jettag.forcedDecayWeight``. Pseudo-data keep it out of
``Events`` (data carry no weights) and in their truth sidecar
(``Truth/forcedDecayWeight``).

Cross-references: coffea's schema resolves a fixed list of index branches
(``NanoAODSchema.all_cross_references`` and PFNano's additions, such as
``Muon_jetIdx -> Jet``) and warns about each one a file lacks. Every one is
written, so that a plain ``NanoEventsFactory.from_root(..., schemaclass=
PFNanoAODSchema)`` read is silent:

* indices between collections jettag simulates hold real values
  (``FatJet_subJetIdx1/2``, ``FatJetPFCands_*``, ``FatJetSVs_*``,
  ``FatJet_muonIdx3SJ``, ``Muon_genPartIdx``, ``GenPart_genPartIdxMother``);
* indices into collections jettag does not simulate (``UNMATCHED``:
  ``Muon_jetIdx``, ``FatJet_genJetAK8Idx``, ...) are -1, "no match";
* those collections themselves (``EMPTY_COLLECTIONS``: AK4 ``Jet``,
  ``Electron``, ``Photon``, ``Tau``, gen jets ...) are written with zero
  entries in every event, with their index branches and the kinematic branches
  that coffea's mixins need to build them. jettag does not simulate them: zero
  entries means "not simulated", not "none produced" (an electron veto on these
  files vetoes nothing; electrons exist only as ``PFCands`` with pdgId +-11).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jettag.generator import columnar
from jettag.samples import files
from jettag.samples.files import METADATA_KEY, TRUTH_TREE, truth_sidecar_path

__all__ = [
    "BRANCHES",
    "EMPTY_COLLECTIONS",
    "EVENT_BRANCHES",
    "FORCED_DECAY_WEIGHT",
    "MC_ONLY",
    "TRUTH_FATJET_FIELDS",
    "UNMATCHED",
    "PFNanoWriter",
    "cast_collection",
    "empty_collection",
]

F4, I4, U1, U4, U8, B1 = "float32", "int32", "uint8", "uint32", "uint64", "bool"

#: Per-collection field types, in the order they are written.
BRANCHES: dict[str, dict[str, str]] = {
    "FatJet": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "msoftdrop": F4,
        "n2b1": F4, "n3b1": F4, "tau1": F4, "tau2": F4, "tau3": F4, "tau4": F4,
        "rawFactor": F4, "jetId": I4, "nConstituents": U1,
        "subJetIdx1": I4, "subJetIdx2": I4,
        "hadronFlavour": I4, "nBHadrons": U1, "nCHadrons": U1,
        "muonIdx3SJ": I4, "electronIdx3SJ": I4, "genJetAK8Idx": I4,
    },
    "SubJet": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "rawFactor": F4,
        "hadronFlavour": I4, "nBHadrons": U1, "nCHadrons": U1,
        "subGenJetAK8Idx": I4,
    },
    "PFCands": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "d0": F4, "d0Err": F4, "dz": F4, "dzErr": F4,
        "puppiWeight": F4, "puppiWeightNoLep": F4, "trkChi2": F4, "vtxChi2": F4,
        "charge": I4, "lostInnerHits": I4, "pdgId": I4, "pvAssocQuality": I4, "trkQuality": I4,
    },
    "FatJetPFCands": {
        "pt": F4, "btagEtaRel": F4, "btagPtRatio": F4, "btagPParRatio": F4,
        "btagSip3dVal": F4, "btagSip3dSig": F4, "btagJetDistVal": F4,
        "pFCandsIdx": I4, "jetIdx": I4,
    },
    "SV": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "x": F4, "y": F4, "z": F4,
        "dlen": F4, "dlenSig": F4, "dxy": F4, "dxySig": F4, "pAngle": F4,
        "chi2": F4, "ndof": F4, "ntracks": U1,
    },
    "FatJetSVs": {
        "mass": F4, "pt": F4, "ntracks": F4, "chi2": F4, "normchi2": F4, "dxy": F4, "dxysig": F4,
        "d3d": F4, "d3dsig": F4, "costhetasvpv": F4, "phirel": F4, "ptrel": F4, "deltaR": F4,
        "enration": F4, "jetIdx": I4, "sVIdx": I4,
    },
    "Muon": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4, "dxy": F4, "dz": F4,
        "pfRelIso04_all": F4, "looseId": B1, "softId": B1,
        "genPartIdx": I4, "jetIdx": I4, "fsrPhotonIdx": I4,
    },
    "GenPart": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "pdgId": I4, "status": I4,
        "statusFlags": I4, "genPartIdxMother": I4,
    },
    # --- not simulated: written empty (EMPTY_COLLECTIONS): the kinematics coffea's
    # mixins need and the index branches its schema resolves
    "Jet": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4,
        "electronIdx1": I4, "electronIdx2": I4, "genJetIdx": I4, "muonIdx1": I4, "muonIdx2": I4,
    },
    "JetPFCands": {"jetIdx": I4, "pFCandsIdx": I4},
    "JetSVs": {"jetIdx": I4, "sVIdx": I4},
    "Electron": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4,
        "genPartIdx": I4, "jetIdx": I4, "photonIdx": I4,
    },
    "LowPtElectron": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4,
        "electronIdx": I4, "genPartIdx": I4, "photonIdx": I4,
    },
    # Photon_mass/charge and FsrPhoton_mass/charge: coffea fills them itself
    "Photon": {"pt": F4, "eta": F4, "phi": F4, "electronIdx": I4, "genPartIdx": I4, "jetIdx": I4},
    "FsrPhoton": {"pt": F4, "eta": F4, "phi": F4, "muonIdx": I4},
    "Tau": {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4, "genPartIdx": I4, "jetIdx": I4},
    "GenVisTau": {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4, "genPartIdxMother": I4},
    "GenJet": {"pt": F4, "eta": F4, "phi": F4, "mass": F4},
    "GenJetAK8": {"pt": F4, "eta": F4, "phi": F4, "mass": F4},
    "SubGenJetAK8": {"pt": F4, "eta": F4, "phi": F4, "mass": F4},
    "GenCands": {"pt": F4, "eta": F4, "phi": F4, "mass": F4, "charge": I4},
    "GenJetCands": {"jetIdx": I4, "pFCandsIdx": I4},
    "GenFatJetCands": {"jetIdx": I4, "pFCandsIdx": I4},
    "GenJetSVs": {"jetIdx": I4, "sVIdx": I4},
    "GenFatJetSVs": {"jetIdx": I4, "sVIdx": I4},
}  # fmt: skip

#: jettag's own event branch: the forced-decay weight alone (see the module doc);
#: defined in ``jettag.samples.files`` with the other names readers need.
FORCED_DECAY_WEIGHT = files.FORCED_DECAY_WEIGHT

#: Flat (one value per event) branches.
EVENT_BRANCHES: dict[str, str] = {
    "run": U4,
    "luminosityBlock": U4,
    "event": U8,
    "genWeight": F4,
    FORCED_DECAY_WEIGHT: F4,
    "PV_npvs": I4,
    "PV_npvsGood": I4,
    "PV_x": F4,
    "PV_y": F4,
    "PV_z": F4,
}

#: Collections jettag does not simulate, written with zero entries in every event (their
#: ``BRANCHES`` are the index branches coffea's schema resolves, see the module doc).
EMPTY_COLLECTIONS: tuple[str, ...] = (
    "Jet", "JetPFCands", "JetSVs", "Electron", "LowPtElectron", "Photon", "FsrPhoton", "Tau",
    "GenVisTau", "GenJet", "GenJetAK8", "SubGenJetAK8", "GenCands", "GenJetCands",
    "GenFatJetCands", "GenJetSVs", "GenFatJetSVs",
)  # fmt: skip

#: Index fields of simulated collections that point into an empty collection: always -1.
UNMATCHED: dict[str, tuple[str, ...]] = {
    "FatJet": ("electronIdx3SJ", "genJetAK8Idx"),
    "SubJet": ("subGenJetAK8Idx",),
    "Muon": ("jetIdx", "fsrPhotonIdx"),
}

#: What pseudo-data files leave out: generator truth (and indices into it).
MC_ONLY: dict[str, tuple[str, ...]] = {
    "GenPart": tuple(BRANCHES["GenPart"]),
    "FatJet": ("hadronFlavour", "nBHadrons", "nCHadrons", "genJetAK8Idx"),
    "SubJet": ("hadronFlavour", "nBHadrons", "nCHadrons"),
    "Muon": ("genPartIdx",),
    "Jet": ("genJetIdx",),
    "Electron": ("genPartIdx",),
    "LowPtElectron": ("genPartIdx",),
    "Photon": ("genPartIdx",),
    "Tau": ("genPartIdx",),
    **{
        name: tuple(BRANCHES[name])
        for name in ("GenVisTau", "GenJet", "GenJetAK8", "GenCands", "GenJetCands", "GenFatJetCands")
    },
    # coffea skips cross-references into Gen* collections in data, but not these (their
    # targets, SV and SubGenJetAK8, do not start with "Gen"): pseudo-data keep them, empty
    "GenJetSVs": ("jetIdx",),
    "GenFatJetSVs": ("jetIdx",),
    "": ("genWeight", FORCED_DECAY_WEIGHT),
}

#: Fat-jet truth written to the pseudo-data sidecar (the ``Truth`` tree).
TRUTH_FATJET_FIELDS: tuple[str, ...] = ("hadronFlavour", "nBHadrons", "nCHadrons")


def cast_collection(name: str, records: ak.Array, *, drop: tuple[str, ...] = ()) -> ak.Array:
    """Cast a jagged collection to the PFNano types, in ``BRANCHES`` order.

    ``UNMATCHED`` fields that ``records`` lacks are filled with -1.
    """
    fields = {}
    for field, dtype in BRANCHES[name].items():
        if field in drop:
            continue
        if field in records.fields:
            fields[field] = ak.values_astype(records[field], dtype)
        elif field in UNMATCHED.get(name, ()):
            fields[field] = ak.values_astype(ak.full_like(records[records.fields[0]], -1), dtype)
        else:
            raise KeyError(f"collection {name} lacks field {field!r} (has {records.fields})")
    return ak.zip(fields, depth_limit=2)


def empty_collection(name: str, n_events: int, *, drop: tuple[str, ...] = ()) -> ak.Array:
    """Collection ``name`` with zero entries in each of ``n_events`` events, PFNano-typed."""
    offsets = np.zeros(n_events + 1, np.int64)
    return columnar.jagged(
        offsets,
        {f: np.zeros(0, dtype) for f, dtype in BRANCHES[name].items() if f not in drop},
    )


class PFNanoWriter:
    """Write chunks of events to a PFNano-format ROOT file, one ``extend`` per chunk.

    ``is_mc=False`` writes pseudo-data: the generator truth in ``MC_ONLY`` is left
    out of the ``Events`` tree and written instead, per fat jet and aligned entry
    by entry, to the ``Truth`` tree of a sidecar file (``truth_path``, by default
    ``truth_sidecar_path(path)``). The writer writes where it is told; safe names
    and renames are the caller's business (``jettag.generator.pipeline.generate``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        is_mc: bool,
        metadata: dict[str, Any] | None = None,
        truth_path: str | Path | None = None,
    ):
        self.path = Path(path)
        self.is_mc = is_mc
        #: where pseudo-data truth goes (default ``truth_sidecar_path(path)``); None for MC
        self.truth_path = None if is_mc else Path(truth_path or truth_sidecar_path(self.path))
        # ZSTD level 1: as small as ZLIB(4) here and twice as fast to write; ROOT >= 6.20 and
        # uproot (through cramjam) read it. The folder must exist: no silent mkdir -p.
        self._file = uproot.recreate(self.path, compression=uproot.ZSTD(1))
        self._truth_file = None if is_mc else uproot.recreate(self.truth_path)
        self._tree = None
        self._truth_tree = None
        self.n_written = 0
        self.metadata = dict(metadata or {})

    def write(self, collections: dict[str, ak.Array], event_fields: dict[str, np.ndarray]) -> None:
        """Append one chunk. ``collections`` maps collection name -> jagged records."""
        data: dict[str, Any] = {}
        for name, dtype in EVENT_BRANCHES.items():
            if not self.is_mc and name in MC_ONLY[""]:
                continue
            data[name] = np.asarray(event_fields[name], dtype=dtype)
        n_events = len(data["event"])
        for name in BRANCHES:
            drop = () if self.is_mc else MC_ONLY.get(name, ())
            if len(drop) == len(BRANCHES[name]):
                continue  # all truth: not in pseudo-data
            if name in collections:
                data[name] = cast_collection(name, collections[name], drop=drop)
            elif name in EMPTY_COLLECTIONS:
                data[name] = empty_collection(name, n_events, drop=drop)
        if self._tree is None:
            self._tree = _make_tree(self._file, "Events", data)
        self._tree.extend(data)
        if self._truth_file is not None:
            truth = {
                "run": data["run"],
                "luminosityBlock": data["luminosityBlock"],
                "event": data["event"],
                "FatJet": cast_collection(
                    "FatJet",
                    collections["FatJet"][list(TRUTH_FATJET_FIELDS)],
                    drop=tuple(f for f in BRANCHES["FatJet"] if f not in TRUTH_FATJET_FIELDS),
                ),
            }
            for name, values in event_fields.items():
                if name.startswith("truth_"):
                    truth[name[len("truth_"):]] = np.asarray(values)
            if self._truth_tree is None:
                self._truth_tree = _make_tree(self._truth_file, TRUTH_TREE, truth)
            self._truth_tree.extend(truth)
        self.n_written += n_events

    def close(self) -> None:
        """Write the metadata (a JSON TObjString ``jettag_metadata``) and close."""
        self.metadata["n_events"] = self.n_written
        self._file[METADATA_KEY] = json.dumps(self.metadata, sort_keys=True)
        self._file.close()
        if self._truth_file is not None:
            self._truth_file[METADATA_KEY] = json.dumps(self.metadata, sort_keys=True)
            self._truth_file.close()

    def __enter__(self) -> PFNanoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_tree(file: Any, name: str, data: dict[str, Any]) -> Any:
    """A NanoAOD-style TTree (``nX`` counters, ``X_field`` branches) typed after ``data``."""
    types = {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()}
    return file.mktree(name, types, counter_name=lambda counted: "n" + counted)

