"""The PFNano file format: branch names and types, and a streaming writer.

Names and dtypes follow CMS PFNano as in ``shared/data/pfnano.root`` so that
coffea's ``PFNanoAODSchema`` reads our files exactly as it reads CMS ones.
``BRANCHES`` is the single source of truth: every collection the generator
writes is cast to it before writing, and the format test compares it with the
real file.

Counters (``nFatJet`` ...) are written by uproot as int32 where CMS writes
uint32; coffea reads both the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jettag.samples.files import METADATA_KEY, TRUTH_TREE, truth_sidecar_path

__all__ = [
    "BRANCHES",
    "EVENT_BRANCHES",
    "MC_ONLY",
    "PFNanoWriter",
    "cast_collection",
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
    },
    "SubJet": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "rawFactor": F4,
        "hadronFlavour": I4, "nBHadrons": U1, "nCHadrons": U1,
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
    },
    "GenPart": {
        "pt": F4, "eta": F4, "phi": F4, "mass": F4, "pdgId": I4, "status": I4,
        "statusFlags": I4, "genPartIdxMother": I4,
    },
}  # fmt: skip

#: Flat (one value per event) branches.
EVENT_BRANCHES: dict[str, str] = {
    "run": U4,
    "luminosityBlock": U4,
    "event": U8,
    "genWeight": F4,
    "PV_npvs": I4,
    "PV_npvsGood": I4,
    "PV_x": F4,
    "PV_y": F4,
    "PV_z": F4,
}

#: What pseudo-data files leave out: generator truth.
MC_ONLY: dict[str, tuple[str, ...]] = {
    "GenPart": tuple(BRANCHES["GenPart"]),
    "FatJet": ("hadronFlavour", "nBHadrons", "nCHadrons"),
    "SubJet": ("hadronFlavour", "nBHadrons", "nCHadrons"),
    "": ("genWeight",),
}

def cast_collection(name: str, records: ak.Array, *, drop: tuple[str, ...] = ()) -> ak.Array:
    """Cast a jagged collection to the PFNano types, in ``BRANCHES`` order."""
    fields = {}
    for field, dtype in BRANCHES[name].items():
        if field in drop:
            continue
        if field not in records.fields:
            raise KeyError(f"collection {name} lacks field {field!r} (has {records.fields})")
        fields[field] = ak.values_astype(records[field], dtype)
    return ak.zip(fields, depth_limit=2)


class PFNanoWriter:
    """Write chunks of events to a PFNano-format ROOT file, one ``extend`` per chunk.

    ``is_mc=False`` writes pseudo-data: the generator truth in ``MC_ONLY`` is left
    out of the ``Events`` tree and written instead, per fat jet and aligned entry
    by entry, to the ``Truth`` tree of a sidecar file (``truth_sidecar_path``).
    """

    def __init__(self, path: str | Path, *, is_mc: bool, metadata: dict[str, Any] | None = None):
        self.path = Path(path)
        self.is_mc = is_mc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # ZSTD level 1: as small as ZLIB(4) here and twice as fast to write; ROOT >= 6.20 and
        # uproot (through cramjam) read it
        self._file = uproot.recreate(self.path, compression=uproot.ZSTD(1))
        self._truth_file = None if is_mc else uproot.recreate(truth_sidecar_path(self.path))
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
        for name in BRANCHES:
            if name not in collections:
                continue
            drop = () if self.is_mc else MC_ONLY.get(name, ())
            if not self.is_mc and name == "GenPart":
                continue
            data[name] = cast_collection(name, collections[name], drop=drop)
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
                    collections["FatJet"][["hadronFlavour", "nBHadrons", "nCHadrons"]],
                    drop=tuple(f for f in BRANCHES["FatJet"] if f not in MC_ONLY["FatJet"]),
                ),
            }
            for name, values in event_fields.items():
                if name.startswith("truth_"):
                    truth[name[len("truth_"):]] = np.asarray(values)
            if self._truth_tree is None:
                self._truth_tree = _make_tree(self._truth_file, TRUTH_TREE, truth)
            self._truth_tree.extend(truth)
        self.n_written += len(data["event"])

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

