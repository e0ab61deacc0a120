"""Where a tagger's columns come from: NanoEvents (eager, virtual, dask) or a record of collections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from jettag.tagger.chunks import _Chunk
from jettag.tagger.features import JET
from jettag.tagger.plan import _COUNTS, Key


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
