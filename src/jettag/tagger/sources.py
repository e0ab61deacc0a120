"""Where a tagger's columns come from: NanoEvents (eager, virtual, dask) or a record of collections.

Before anything is read, :func:`missing_inputs` lists the collections and
fields a model needs that the events (or a ROOT tree's branches) lack, and
:func:`missing_inputs_error` says so in one message naming the tagger, what is
missing and what provides it: a :class:`~jettag.errors.MissingInputsError`,
not awkward's bare ``FieldNotFoundError`` from deep inside the computation.
Under dask this happens while the graph is built (the fields are known from
the events' form).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from jettag.errors import MissingInputsError
from jettag.tagger.chunks import _Chunk
from jettag.tagger.features import JET, LEVELS
from jettag.tagger.plan import _COUNTS, Key

#: collections of the constituent levels (FatJetPFCands, PFCands, FatJetSVs, SV)
_CONSTITUENT_COLLECTIONS = tuple(
    name for lvl in LEVELS.values() if lvl.link for name in (lvl.link, lvl.target)
)


class _EventSource:
    """Columns of NanoEvents (any mode) or of a record with the collections as fields."""

    def __init__(self, events: Any, jets: Any, names: Mapping[str, str]) -> None:
        self.events, self.jets, self.names = events, jets, names
        self._collections: dict[str, Any] = {}

    def collection(self, coll: str) -> Any:
        """The collection ``coll`` (renamed as configured), looked up once."""
        arr = self._collections.get(coll)
        if arr is None:
            if coll == JET and self.jets is not None:
                arr = self.jets
            else:
                arr = self.events[self.names.get(coll, coll)]
            self._collections[coll] = arr
        return arr

    def column(self, key: Key, num: Any) -> Any:
        coll, fld = key
        arr = self.collection(coll)
        return num(arr, axis=1) if fld == _COUNTS else arr[fld]

    def chunk(self, keys: Sequence[Key]) -> _Chunk:
        """The flat columns of ``keys`` (eager/virtual input).

        Fast path: a collection laid out as a list of records of 1-d numbers (what
        NanoEvents and uproot give) is read at the layout level, its offsets once.
        """
        by_coll: dict[str, list[str]] = {}
        for coll, fld in keys:
            by_coll.setdefault(coll, []).append(fld)
        counts: dict[str, np.ndarray] = {}
        flat: dict[Key, np.ndarray] = {}
        slow: dict[Key, Any] = {}
        for coll, fields in by_coll.items():
            got = _record_columns(self.collection(coll), [f for f in fields if f != _COUNTS])
            if got is None:
                slow.update({(coll, f): self.column((coll, f), ak.num) for f in fields})
                continue
            counts[coll], values = got
            flat.update({(coll, f): v for f, v in values.items()})
        if not slow:
            n_events = {len(c) for c in counts.values()}
            if len(n_events) > 1:
                raise ValueError(f"collections have different numbers of events: {n_events}")
            return _Chunk(n_events.pop() if n_events else 0, counts, flat)
        chunk = _Chunk.from_arrays(slow)
        chunk.counts.update(counts)
        chunk.flat.update(flat)
        if any(len(c) != chunk.n_events for c in counts.values()):
            raise ValueError("collections have different numbers of events")
        return chunk


def _record_columns(
    collection: Any, fields: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(counts, {field: flat values}) of a list-of-records layout of 1-d numbers, or None."""
    try:
        layout = collection.layout
        if not isinstance(layout, ak.contents.ListOffsetArray):
            return None
        record = layout.content
        if not isinstance(record, ak.contents.RecordArray):
            return None
        offsets = np.asarray(layout.offsets.data)
        start, stop = int(offsets[0]), int(offsets[-1])
        values = {}
        for f in fields:
            content = record.content(f)
            if not isinstance(content, ak.contents.NumpyArray) or content.data.ndim != 1:
                return None
            data = np.asarray(content.data)
            if len(data) < stop:
                return None
            values[f] = np.ascontiguousarray(data[start:stop])
        return np.diff(offsets).astype(np.int64, copy=False), values
    except Exception:  # anything unusual (virtual buffers, typetracers): the generic path
        return None


def missing_inputs(
    keys: Iterable[Key],
    names: Mapping[str, str],
    has_collection: Callable[[str], bool],
    has_field: Callable[[str, str], bool],
    *,
    column_name: Callable[[str, str], str] = lambda coll, fld: f"{coll}.{fld}",
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(missing collections, missing columns) of ``keys``, with the renames of ``names`` applied.

    ``has_collection(actual)`` and ``has_field(actual, field)`` describe what is there
    (``field`` is ``"#counts"`` for a collection's counts); ``column_name`` names a
    missing column in the message (``PFCands.d0``, or a branch ``PFCands_d0``).
    """
    collections: dict[str, None] = {}
    columns: dict[str, None] = {}
    for coll, fld in keys:
        actual = names.get(coll, coll)
        if actual in collections:
            continue
        if not has_collection(actual):
            collections[actual] = None
        elif not has_field(actual, fld):
            columns[column_name(actual, fld)] = None
    return tuple(collections), tuple(columns)


def source_missing_inputs(
    source: _EventSource, keys: Iterable[Key]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`missing_inputs` of NanoEvents (any mode) or of a jet collection."""
    jet_name = source.names.get(JET, JET)
    events_fields = set(source.events.fields) if source.events is not None else set()
    fields: dict[str, set[str]] = {}

    def has_collection(actual: str) -> bool:
        return (actual == jet_name and source.jets is not None) or actual in events_fields

    def has_field(actual: str, fld: str) -> bool:
        if fld == _COUNTS:
            return True
        if actual not in fields:
            if actual == jet_name and source.jets is not None:
                fields[actual] = set(source.jets.fields)
            else:
                fields[actual] = set(source.events[actual].fields)
        return fld in fields[actual]

    return missing_inputs(keys, source.names, has_collection, has_field)


def branch_missing_inputs(
    branches: Collection[str], keys: Iterable[Key], names: Mapping[str, str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`missing_inputs` of a ROOT tree's branches (NanoAOD naming: ``nX``, ``X_field``)."""
    present = set(branches)

    def has_collection(actual: str) -> bool:
        return f"n{actual}" in present or any(b.startswith(f"{actual}_") for b in present)

    def branch(actual: str, fld: str) -> str:
        return f"n{actual}" if fld == _COUNTS else f"{actual}_{fld}"

    return missing_inputs(
        keys,
        names,
        has_collection,
        lambda actual, fld: branch(actual, fld) in present,
        column_name=branch,
    )


def missing_inputs_error(
    tagger: str,
    collections: Sequence[str],
    columns: Sequence[str],
    *,
    names: Mapping[str, str] | None = None,
    where: str | None = None,
    column_kind: str = "field(s)",
    subject: str = "the events",
) -> MissingInputsError:
    """One message: which tagger, what is missing, and what provides it.

    ``where``: the file (a prefix); ``column_kind``: how missing columns are called
    (``field(s)`` of NanoEvents collections, ``branch(es)`` of a tree); ``subject``:
    what lacks them (plural verb follows: ``the events``, ``the file's events``).
    """
    names = dict(names or {})
    what = []
    if collections:
        what.append(f"collection(s) {', '.join(collections)}")
    if columns:
        what.append(f"{column_kind} {', '.join(columns)}")
    lead = f"{where}: " if where else ""
    message = (
        f"{lead}tagger {tagger} cannot run: {subject} lack the {' and '.join(what)} it reads. "
    )
    canonical = {names.get(c, c): c for c in (JET, *_CONSTITUENT_COLLECTIONS)}
    missing = [
        canonical.get(re.split(r"[._]", x.removeprefix("n"), maxsplit=1)[0], x)
        for x in (*collections, *columns)
    ]
    if any(c in _CONSTITUENT_COLLECTIONS for c in missing):
        message += (
            "Fat-jet constituents (FatJetPFCands -> PFCands with track fields d0, dz, trkChi2..., "
            "FatJetSVs -> SV) are written by CMS PFNano (read it with coffea's PFNanoAODSchema); "
            "standard NanoAOD has none (v15's PFCand lacks the track fields). "
        )
    else:
        message += "These are FatJet fields of (PF)NanoAOD. "
    message += (
        "If your files hold them under other names, map them with the collections= argument, "
        "e.g. taggers.load(name, collections={'PFCands': 'MyPFCands'}) or "
        "Tagger.load(dir, collections={...})"
    )
    if names:
        message += f" (mapping in use: {names})"
    return MissingInputsError(message + ".")
