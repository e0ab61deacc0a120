"""What a jettag-written file carries besides its events: metadata and the truth sidecar.

The generator writes these and every reader (labelling, the sample reader,
training and evaluation) reads them, so their names live here, on the floor
that both stand on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import uproot

from jettag.errors import InputFileError

__all__ = [
    "FORCED_DECAY_WEIGHT",
    "METADATA_KEY",
    "TRUTH_TREE",
    "file_info",
    "open_events",
    "read_metadata",
    "truth_sidecar_path",
]

#: Name of the JSON string (a ``TObjString``) holding the generation metadata.
METADATA_KEY = "jettag_metadata"

#: Name of the truth tree in a pseudo-data sidecar file.
TRUTH_TREE = "Truth"

#: jettag's event branch holding the forced-decay weight alone (simulation only; 1 for
#: processes without forced decays): ``genWeight / FORCED_DECAY_WEIGHT`` is the pT-hat
#: weight alone, which describes the forced-decay population the pseudo-data are in.
FORCED_DECAY_WEIGHT = "jettag_forcedDecayWeight"


def truth_sidecar_path(path: str | Path) -> Path:
    """``sample.root`` -> ``sample.truth.root``: where pseudo-data truth lives."""
    path = Path(path)
    return path.with_name(path.stem + ".truth.root")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The generation metadata stored in a jettag-written file."""
    with uproot.open(path) as f:
        if METADATA_KEY not in f:
            raise ValueError(f"{path}: not a jettag-generated file (no {METADATA_KEY})")
        return json.loads(str(f[METADATA_KEY]))


def file_info(path: str | Path) -> dict[str, Any]:
    """A file's name and, for a jettag file, the metadata that says how it was made."""
    info: dict[str, Any] = {"file": Path(path).name}
    try:
        meta = read_metadata(path)
        info.update({k: meta.get(k) for k in ("process", "seed", "tune", "n_events", "jettag_version")})
    except ValueError:
        pass
    return info


def open_events(path: str | Path) -> Any:
    """The ``Events`` tree of ``path`` (an uproot TTree).

    A missing file, or one uproot cannot read as ROOT with an ``Events`` tree,
    gives an :class:`~jettag.errors.InputFileError` naming it in one line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        return uproot.open(f"{path}:Events")
    except Exception as err:  # uproot raises several kinds for non-ROOT input
        detail = " ".join(str(err).split())[:200]
        raise InputFileError(f"{path}: cannot read an Events tree ({detail})") from None

