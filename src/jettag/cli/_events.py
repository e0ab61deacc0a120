"""Reading events on the command line: which coffea schema a set of files needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jettag.errors import JettagError

__all__ = ["nanoaod_schema"]


def nanoaod_schema(files: list[Path], column: str | None) -> Any:
    """PFNanoAODSchema when the files hold PF candidates, else NanoAODSchema."""
    from coffea.nanoevents import NanoAODSchema, PFNanoAODSchema

    from jettag.samples.files import open_events

    kinds = set()
    for path in files:
        keys = set(open_events(path).keys())
        if "FatJet_msoftdrop" not in keys or "FatJet_pt" not in keys:
            raise JettagError(f"{path}: no FatJet_pt/FatJet_msoftdrop branches (not NanoAOD?)")
        kinds.add("PFCands_pt" in keys)
        if column is not None and f"FatJet_{column}" not in keys:
            raise JettagError(f"{path}: no branch FatJet_{column} (the --score column)")
    if len(kinds) > 1:
        raise JettagError("mixing PFNano and plain NanoAOD files in one run; run them separately")
    return PFNanoAODSchema if kinds.pop() else NanoAODSchema
