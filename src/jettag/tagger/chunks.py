"""One chunk of events as flat numpy columns, and the per-chunk state the batches share.

:class:`_Chunk` holds the flat columns a :class:`~jettag.tagger.plan._Plan` reads;
:func:`_prepare` lays out the kept constituent rows per jet and the jet matrix
(:class:`_Prepared`), whose :meth:`_Prepared.batch` fills the input tensors of a
range of jets with the fused kernels, in reusable buffers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from jettag.tagger import kernels
from jettag.tagger.features import JET, LEVELS, Feature
from jettag.tagger.plan import _COUNTS, _FEATURE, Key, _Plan


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _flatten(arr: Any) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, per-event counts) of a jagged column, without copies where possible."""
    layout = arr.layout if isinstance(arr, ak.Array) else ak.to_layout(arr)
    if (
        isinstance(layout, ak.contents.ListOffsetArray)
        and isinstance(layout.content, ak.contents.NumpyArray)
        and layout.content.data.ndim == 1
    ):
        try:
            offsets = np.asarray(layout.offsets.data)
            data = np.asarray(layout.content.data)
        except Exception:  # a backend whose buffers are not numpy: take the generic path
            pass
        else:
            return data[offsets[0] : offsets[-1]], np.diff(offsets).astype(np.int64, copy=False)
    arr = ak.Array(layout)
    return ak.to_numpy(ak.flatten(arr, axis=1)), np.asarray(
        ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64
    )


@dataclass
class _Chunk:
    """Flat numpy columns of one chunk of events."""

    n_events: int
    counts: dict[str, np.ndarray]
    flat: dict[Key, np.ndarray]

    @classmethod
    def from_arrays(cls, arrays: Mapping[Key, Any]) -> _Chunk:
        counts: dict[str, np.ndarray] = {}
        flat: dict[Key, np.ndarray] = {}
        n_events = None
        for (coll, fld), arr in arrays.items():
            if fld == _COUNTS:
                counts[coll] = np.asarray(ak.to_numpy(arr), dtype=np.int64)
                n = len(counts[coll])
            else:
                values, col_counts = _flatten(arr)
                flat[(coll, fld)] = np.ascontiguousarray(values)
                n = len(col_counts)
                if coll not in counts:
                    counts[coll] = col_counts
            if n_events is None:
                n_events = n
            elif n != n_events:
                raise ValueError(f"column {coll}.{fld} has {n} events, others {n_events}")
        return cls(n_events or 0, counts, flat)


class _Context(dict):
    """``c["Coll.field"]`` aligned with the rows of one level (gathered lazily)."""

    def __init__(self, chunk: _Chunk, gathers: Mapping[str, np.ndarray | None]) -> None:
        super().__init__()
        self._chunk = chunk
        self._gathers = gathers  # collection -> row index into its flat arrays (None: identity)

    def __missing__(self, column: str) -> np.ndarray:
        coll, _, fld = column.partition(".")
        try:
            flat = self._chunk.flat[(coll, fld)]
        except KeyError:
            raise KeyError(
                f"column {column!r} was not loaded; declare it in the feature's columns"
            ) from None
        if coll not in self._gathers:
            raise KeyError(f"column {column!r} is not reachable from this feature's level")
        idx = self._gathers[coll]
        value = flat if idx is None else flat[idx]
        self[column] = value
        return value


@dataclass
class _LevelData:
    """One constituent level of a chunk: kept rows per jet, and the scratch columns."""

    kept_offsets: np.ndarray  # (n_jets + 1,) kept rows of jet g: kept_offsets[g]:[g+1]
    n_columns: int  # rows of the scratch matrix
    # (same-dtype flat columns, their scratch rows, row index into them per kept row)
    groups: tuple[tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray], ...]


@dataclass
class _Prepared:
    """Everything per chunk that the batches share: jet matrix, kept-row layouts."""

    n_jets: int
    jet_counts: np.ndarray
    jets: np.ndarray  # (n_jet_columns, n_jets) float32
    levels: dict[str, _LevelData]

    def batch(
        self, plan: _Plan, j0: int, j1: int, buffers: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """The input tensors of jets ``j0 .. j1`` (fused kernels; releases the GIL).

        ``buffers``: a dict reused across calls (double buffering in :meth:`Tagger._run`);
        the arrays returned then live in it and are overwritten by the next call with it.
        """
        if buffers is None:
            buffers = {}
        nb = j1 - j0
        scratch = {}
        for name, data in self.levels.items():
            r0, r1 = int(data.kept_offsets[j0]), int(data.kept_offsets[j1])
            buf = _buffer(buffers, f"#scratch/{name}", (data.n_columns, r1 - r0))
            for columns, dest, rows in data.groups:
                kernels.gather_columns(buf, columns, dest, rows, r0, r1)
            scratch[name] = buf
        feed = {}
        for bp in plan.blocks:
            block = bp.block
            if block.length is None:
                out = _buffer(buffers, block.name, (nb, len(bp.features)))
                kernels.fill_flat_block(out, self.jets, j0, bp.ops, bp.args, bp.consts, bp.norms)
            else:
                out, filled = _padded_buffer(
                    buffers, block.name, (nb, len(bp.features), block.length)
                )
                kernels.fill_padded_block(
                    out,
                    scratch[bp.level.name],
                    self.jets,
                    self.levels[bp.level.name].kept_offsets,
                    j0,
                    bp.ops,
                    bp.args,
                    bp.consts,
                    bp.norms,
                    filled,
                )
            feed[block.name] = out
        return feed


def _padded_buffer(
    buffers: dict[str, np.ndarray], key: str, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A (n_batch, n_vars, length) buffer and, per jet row, from which slot on it is
    known to hold the pads already (``length``: nothing known, a fresh buffer)."""
    size = shape[0] * shape[1] * shape[2]
    flat, filled = buffers.get(key), buffers.get(f"#filled/{key}")
    if flat is None or filled is None or flat.size < size or len(filled) < shape[0]:
        flat = buffers[key] = np.empty(max(size, 1), dtype=np.float32)
        filled = buffers[f"#filled/{key}"] = np.full(max(shape[0], 1), shape[2], np.int64)
    return flat[:size].reshape(shape), filled


def _buffer(buffers: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous float32 array of ``shape`` carved from a reusable flat buffer."""
    size = int(np.prod(shape))
    flat = buffers.get(key)
    if flat is None or flat.size < size:
        flat = buffers[key] = np.empty(max(size, 1), dtype=np.float32)
    return flat[:size].reshape(shape)


def _numpy_features(
    features: Sequence[Feature], context: Mapping[str, np.ndarray], n_rows: int
) -> dict[Key, np.ndarray]:
    """Raw values of features without a kernel opcode, evaluated with numpy."""
    out = {}
    with np.errstate(all="ignore"):
        for f in features:
            raw = np.broadcast_to(np.asarray(f(context)), (n_rows,))
            out[(_FEATURE, f.name)] = np.ascontiguousarray(raw)
    return out


def _prepare(plan: _Plan, chunk: _Chunk) -> _Prepared:
    jet_counts = chunk.counts[JET]
    jet_off = _offsets(jet_counts)
    n_jets = int(jet_off[-1])
    levels: dict[str, _LevelData] = {}
    jet_values: dict[Key, np.ndarray] = {k: v for k, v in chunk.flat.items() if k[0] == JET}
    if "jet" in plan.numpy_features:
        jet_values.update(
            _numpy_features(plan.numpy_features["jet"], _Context(chunk, {JET: None}), n_jets)
        )
    for name, length in plan.lengths.items():
        lvl = LEVELS[name]
        link_off = _offsets(chunk.counts[lvl.link])
        kept, link_rows, target_rows = kernels.link_layout(
            jet_off,
            link_off,
            _offsets(chunk.counts[lvl.target]),
            chunk.flat[(lvl.link, lvl.jet_index)],
            chunk.flat[(lvl.link, lvl.target_index)],
            length,
        )
        rows_of = {lvl.link: link_rows, lvl.target: target_rows}
        values = dict(chunk.flat)
        if name in plan.numpy_features:
            jet_of_row = np.repeat(np.arange(n_jets, dtype=np.int64), np.diff(kept))
            context = _Context(
                chunk, {lvl.link: link_rows, lvl.target: target_rows, JET: jet_of_row}
            )
            values.update(_numpy_features(plan.numpy_features[name], context, len(link_rows)))
            rows_of[_FEATURE] = np.arange(len(link_rows), dtype=np.int64)
        # one gather per (row index, dtype): a tuple of same-dtype columns read row by row
        groups: dict[tuple[str, np.dtype], list[tuple[int, np.ndarray]]] = {}
        for k, key in enumerate(plan.level_columns.get(name, ())):
            column = values[key]
            groups.setdefault((key[0], column.dtype), []).append((k, column))
        levels[name] = _LevelData(
            kept,
            len(plan.level_columns.get(name, ())),
            tuple(
                (
                    tuple(c for _, c in members),
                    np.array([k for k, _ in members], dtype=np.int64),
                    rows_of[coll],
                )
                for (coll, _), members in groups.items()
            ),
        )
    jets = np.empty((len(plan.jet_columns), n_jets), dtype=np.float32)
    for k, key in enumerate(plan.jet_columns):
        jets[k] = jet_values[key]
    return _Prepared(n_jets, jet_counts, jets, levels)
