"""The user API: a weaver-format ONNX model applied to NanoEvents fat jets.

>>> tagger = Tagger.load("models/pnet_md")           # model.onnx + preprocess.json
>>> scores = tagger(events)                          # jagged like events.FatJet
>>> fatjets = ak.with_field(events.FatJet, scores.Xbb, "jettag_Xbb")

The same call works on eager, virtual and dask NanoEvents. Under dask it is one
``dask_awkward.map_partitions`` over exactly the branches the model's features
read, so ``dask_awkward.necessary_columns`` lists only those.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag.tagger import kernels
from jettag.tagger.features import BUILTIN_FEATURES, JET, LEVELS, Feature, Level, get_feature
from jettag.tagger.preprocess import InputBlock, PreprocessConfig, PreprocessError, load_preprocess
from jettag.tagger.session import (
    ModelValidationError,
    SessionOptions,
    get_session,
    model_digest,
    resolve_providers,
    validate_model,
)

__all__ = ["InputBuilder", "Tagger"]

Key = tuple[str, str]  # (collection, field); field "#counts" holds per-event counts
_COUNTS = "#counts"
_FEATURE = "#feature"  # pseudo collection: (_FEATURE, name) = a feature evaluated with numpy


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _BlockPlan:
    """One input block: its features and the arrays the fused kernels take."""

    block: InputBlock
    level: Level
    features: tuple[Feature, ...]
    pads: np.ndarray
    ops: np.ndarray  # (n_vars,) opcode
    args: np.ndarray  # (n_vars, MAX_ARGS): >= 0 scratch row, < 0 jet-matrix row -a-1
    consts: np.ndarray  # (n_vars,) opcode constant
    norms: np.ndarray  # (n_vars, 6): median, norm_factor, lower, upper, replace_inf, pad


def _kernel_of(feature: Feature) -> tuple[str, tuple[Key, ...], float]:
    """(opcode name, argument keys, const); features without an opcode read their own values."""
    if feature.kernel is None:
        return "raw", ((_FEATURE, feature.name),), 0.0
    op, cols, const = feature.kernel
    keys = tuple(tuple(c.split(".", 1)) for c in cols)
    return op, keys, const  # type: ignore[return-value]


@dataclass(frozen=True)
class _Plan:
    """What the preprocess.json needs: blocks with their features, and branches.

    ``jet_columns``: rows of the per-chunk jet matrix (``FatJet`` fields, jet-level
    numpy features); ``level_columns[level]``: rows of that level's per-batch
    scratch matrix (link, target fields and numpy features of the level).
    """

    blocks: tuple[_BlockPlan, ...]
    keys: tuple[Key, ...]
    lengths: dict[str, int] = field(default_factory=dict)  # level -> max slots
    targets: frozenset[str] = frozenset()  # levels whose target collection is read
    jet_columns: tuple[Key, ...] = ()
    level_columns: dict[str, tuple[Key, ...]] = field(default_factory=dict)
    numpy_features: dict[str, tuple[Feature, ...]] = field(default_factory=dict)  # level -> ...

    @classmethod
    def build(cls, config: PreprocessConfig, custom: Mapping[str, Feature] | None = None) -> _Plan:
        custom = custom or {}
        keys: dict[Key, None] = {(JET, _COUNTS): None}
        lengths: dict[str, int] = {}
        targets: set[str] = set()
        staged = []
        for block in config.inputs:
            feats = tuple(custom[v] if v in custom else get_feature(v) for v in block.var_names)
            levels = {f.level for f in feats}
            if block.length is None:
                if levels != {"jet"}:
                    bad = [f.name for f in feats if f.level != "jet"]
                    raise PreprocessError(
                        f"input {block.name!r} is flat (var_length null) but {bad} are constituent features"
                    )
                level = LEVELS["jet"]
            else:
                if len(levels) != 1 or "jet" in levels:
                    raise PreprocessError(
                        f"input {block.name!r} is padded to {block.length} slots, so all its variables "
                        f"must be of one constituent level (pfcand or sv); got "
                        + ", ".join(f"{f.name}:{f.level}" for f in feats)
                    )
                level = LEVELS[levels.pop()]
                lengths[level.name] = max(lengths.get(level.name, 0), block.length)
                keys[(level.link, level.jet_index)] = None
            for f in feats:
                columns = f.columns + (f.kernel[1] if f.kernel is not None else ())
                for column in columns:
                    coll, _, fld = column.partition(".")
                    keys[(coll, fld)] = None
                    if coll == level.target:
                        targets.add(level.name)
            staged.append((block, level, feats))
        # rows are always checked against the target table, whether or not a feature reads it:
        # a link row whose target index is invalid (FatJetSVs_sVIdx == -1: an SV missing from
        # the SV table) is dropped, the same whichever features a model uses.
        targets.update(lengths)
        for name in targets:
            lvl = LEVELS[name]
            keys[(lvl.link, lvl.target_index)] = None
            keys[(lvl.target, _COUNTS)] = None

        # column tables of the kernels: jet matrix rows, and per level the scratch rows
        jet_cols: dict[Key, int] = {}
        level_cols: dict[str, dict[Key, int]] = {}
        numpy_feats: dict[str, dict[str, Feature]] = {}
        blocks = []
        for block, level, feats in staged:
            n = len(feats)
            ops = np.zeros(n, dtype=np.int64)
            args = np.zeros((n, kernels.MAX_ARGS), dtype=np.int64)
            consts = np.zeros(n, dtype=np.float64)
            norms = np.array(
                [
                    (
                        i.median,
                        i.norm_factor,
                        i.lower_bound,
                        i.upper_bound,
                        i.replace_inf_value,
                        i.pad,
                    )
                    for i in block.var_infos
                ],
                dtype=np.float64,
            ).reshape(n, 6)
            scratch = level_cols.setdefault(level.name, {})
            for v, f in enumerate(feats):
                op, arg_keys, const = _kernel_of(f)
                if op not in kernels.OPS:
                    raise ValueError(f"feature {f.name!r}: unknown kernel opcode {op!r}")
                ops[v], arity = kernels.OPS[op]
                if arity != len(arg_keys):
                    raise ValueError(f"feature {f.name!r}: opcode {op!r} takes {arity} columns")
                consts[v] = const
                if arg_keys and arg_keys[0][0] == _FEATURE:
                    numpy_feats.setdefault(f.level, {})[f.name] = f
                for a, key in enumerate(arg_keys):
                    on_jet = key[0] == JET or (key[0] == _FEATURE and f.level == "jet")
                    if on_jet or level.name == "jet":
                        args[v, a] = -1 - jet_cols.setdefault(key, len(jet_cols))
                    else:
                        args[v, a] = scratch.setdefault(key, len(scratch))
            blocks.append(
                _BlockPlan(
                    block=block,
                    level=level,
                    features=feats,
                    pads=np.array([i.pad for i in block.var_infos], dtype=np.float32),
                    ops=ops,
                    args=args,
                    consts=consts,
                    norms=norms,
                )
            )
        return cls(
            tuple(blocks),
            tuple(keys),
            lengths,
            frozenset(targets),
            tuple(jet_cols),
            {lvl: tuple(cols) for lvl, cols in level_cols.items() if lvl != "jet"},
            {lvl: tuple(fs.values()) for lvl, fs in numpy_feats.items()},
        )


def _as_config(preprocess: str | Path | Mapping[str, Any] | PreprocessConfig) -> PreprocessConfig:
    """A preprocess.json path, its parsed mapping, or a config, as a validated config."""
    if isinstance(preprocess, PreprocessConfig):
        return preprocess
    if isinstance(preprocess, Mapping):
        return PreprocessConfig.from_dict(preprocess)
    return load_preprocess(preprocess)


def _branch_names(plan: _Plan, collections: Mapping[str, str]) -> tuple[str, ...]:
    """ROOT branch names (NanoAOD naming) of the plan's columns."""
    out = []
    for c, f in plan.keys:
        c = collections.get(c, c)
        out.append(f"n{c}" if f == _COUNTS else f"{c}_{f}")
    return tuple(dict.fromkeys(out))


def _columns_from_branches(
    plan: _Plan, collections: Mapping[str, str], arrays: Mapping[str, Any]
) -> dict[Key, Any]:
    """The plan's ``(collection, field)`` columns looked up in branches as uproot reads them."""
    cols: dict[Key, Any] = {}
    for c, f in plan.keys:
        actual = collections.get(c, c)
        cols[(c, f)] = arrays[f"n{actual}" if f == _COUNTS else f"{actual}_{f}"]
    return cols


# --------------------------------------------------------------------------- chunk data
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


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _builder_pool() -> ThreadPoolExecutor:
    """This process's input-building thread (re-created after a fork)."""
    pid = os.getpid()
    with _POOL_LOCK:
        pool = _POOLS.get(pid)
        if pool is None:
            _POOLS.clear()
            pool = _POOLS[pid] = ThreadPoolExecutor(1, thread_name_prefix="jettag-inputs")
        return pool


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _is_raw(feature: Feature) -> bool:
    return feature.name not in BUILTIN_FEATURES and feature.doc.startswith("the branch ")


def _identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_")
    return name if name and not name[0].isdigit() else f"m_{name}"


# --------------------------------------------------------------------------- sources
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


# --------------------------------------------------------------------------- Tagger
class Tagger:
    """A weaver-exported ONNX tagger: ``Tagger(model, preprocess)`` or ``Tagger.load(dir)``.

    Parameters
    ----------
    model:
        path to ``model.onnx`` or its bytes.
    preprocess:
        path to ``preprocess.json``, its parsed mapping, or a :class:`PreprocessConfig`.
    name:
        the tagger's name (friend-tree branches ``FatJet_<name>_<class>``).
    class_names:
        names of the score columns; default: ``output_names`` cleaned (``probXbb`` -> ``Xbb``).
    output:
        which ONNX output holds the scores (index or name); default the first.
    softmax:
        apply a softmax over the classes (for models exported without one).
    batch_size:
        jets per onnxruntime call.
    overlap:
        build the inputs of batch k+1 in a helper thread while onnxruntime runs
        batch k (default True; the scores do not depend on it).
    threads:
        onnxruntime intra-op threads (None: onnxruntime's default, all cores).
    device:
        "cpu" (default), "cuda" (used when present, else CPU with a warning),
        "auto", or a list of onnxruntime execution providers.
    collections:
        rename collections, e.g. ``{"FatJet": "Jet", "FatJetPFCands": "JetPFCands",
        "FatJetSVs": "JetSVs"}`` for AK4 jets.

    The model's inputs are validated against preprocess.json here, before any
    event is read (:class:`~jettag.tagger.session.ModelValidationError`).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        preprocess: str | Path | Mapping[str, Any] | PreprocessConfig,
        *,
        name: str | None = None,
        class_names: Sequence[str] | None = None,
        output: str | int = 0,
        softmax: bool = False,
        batch_size: int = 1024,
        overlap: bool = True,
        threads: int | None = None,
        device: str | Sequence[str] = "cpu",
        collections: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(model, bytes):
            self._model_bytes = model
            default_name = "tagger"
        else:
            path = Path(model)
            try:
                self._model_bytes = path.read_bytes()
            except OSError as err:
                raise OSError(f"cannot read model {path}: {err.strerror or err}") from None
            default_name = path.parent.name or path.stem
        self.config = _as_config(preprocess)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.name = _identifier(name or default_name)
        self.class_names = (
            tuple(class_names) if class_names is not None else self.config.class_names
        )
        if len(self.class_names) != len(self.config.output_names):
            raise ValueError(
                f"class_names has {len(self.class_names)} names, the model {len(self.config.output_names)} outputs"
            )
        self.softmax = softmax
        self.batch_size = int(batch_size)
        self.overlap = bool(overlap)
        self.collections = dict(collections or {})
        self._digest = model_digest(self._model_bytes)
        self._options = SessionOptions(
            providers=resolve_providers(device), intra_op_threads=threads
        )
        self._plan = _Plan.build(self.config)
        try:
            session = self._session()
        except Exception as err:  # onnxruntime's own errors (invalid graph, bad bytes)
            raise ModelValidationError(f"onnxruntime cannot load the model: {err}") from None
        self._output_name, _ = validate_model(session, self.config, output)

    @classmethod
    def load(cls, model_dir: str | Path, **kwargs: Any) -> Tagger:
        """Load ``model_dir/model.onnx`` + ``model_dir/preprocess.json``."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise OSError(f"model directory {model_dir} does not exist")
        for f in ("model.onnx", "preprocess.json"):
            if not (model_dir / f).is_file():
                raise OSError(f"model directory {model_dir} has no {f}")
        kwargs.setdefault("name", model_dir.name)
        return cls(model_dir / "model.onnx", model_dir / "preprocess.json", **kwargs)

    # ------------------------------------------------------------------ description
    @property
    def features(self) -> tuple[str, ...]:
        """Every feature name the model reads."""
        return self.config.variables

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``Collection.field`` columns read, with collection renames applied."""
        return tuple(
            f"{self.collections.get(c, c)}.{f}" for c, f in self._plan.keys if f != _COUNTS
        )

    @property
    def branches(self) -> tuple[str, ...]:
        """The ROOT branches read (NanoAOD naming: ``FatJet_pt``, ``nPFCands``...)."""
        return _branch_names(self._plan, self.collections)

    @property
    def needs_constituents(self) -> bool:
        """True when any input is a padded constituent block."""
        return bool(self._plan.lengths)

    def __repr__(self) -> str:
        ins = ", ".join(f"{b.name}{(None, *b.shape)}" for b in self.config.inputs)
        return f"Tagger({self.name!r}, inputs=[{ins}], classes={list(self.class_names)})"

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # sessions live in the per-process cache, never here; built-in features are
        # re-created by name on the worker, user-registered ones travel by value
        # (cloudpickle, as dask uses, pickles their functions)
        state = {k: v for k, v in self.__dict__.items() if k != "_plan"}
        state["_custom_features"] = {
            f.name: f
            for bp in self._plan.blocks
            for f in bp.features
            if BUILTIN_FEATURES.get(f.name) is not f and not _is_raw(f)
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        custom = state.pop("_custom_features", {})
        self.__dict__.update(state)
        self._plan = _Plan.build(self.config, custom)

    def _session(self):
        return get_session(self._model_bytes, self._digest, self._options)

    # ------------------------------------------------------------------ core (pure on numpy)
    def _run(self, prepared: _Prepared) -> np.ndarray:
        n_cls = len(self.class_names)
        n = prepared.n_jets
        scores = np.empty((n, n_cls), dtype=np.float32)
        if n == 0:
            return scores
        session = self._session()
        outputs = [self._output_name]
        bounds = [(j0, min(j0 + self.batch_size, n)) for j0 in range(0, n, self.batch_size)]
        buffers: tuple[dict[str, np.ndarray], ...] = ({}, {})  # double buffering
        if len(bounds) == 1 or not self.overlap:
            for j0, j1 in bounds:
                out = session.run(outputs, prepared.batch(self._plan, j0, j1, buffers[0]))[0]
                scores[j0:j1] = np.asarray(out, dtype=np.float32).reshape(j1 - j0, n_cls)
        else:
            # build batch k+1 in a helper thread while onnxruntime runs batch k: the kernels
            # and session.run both release the GIL; batch k+2 reuses batch k's buffers,
            # submitted only once session.run(batch k) has returned
            pool = _builder_pool()
            pending = pool.submit(prepared.batch, self._plan, *bounds[0], buffers[0])
            for k, (j0, j1) in enumerate(bounds):
                feed = pending.result()
                if k + 1 < len(bounds):
                    pending = pool.submit(
                        prepared.batch, self._plan, *bounds[k + 1], buffers[(k + 1) % 2]
                    )
                out = session.run(outputs, feed)[0]
                scores[j0:j1] = np.asarray(out, dtype=np.float32).reshape(j1 - j0, n_cls)
        if self.softmax:
            scores = _softmax(scores).astype(np.float32)
        return scores

    def _wrap(self, scores: np.ndarray, jet_counts: np.ndarray) -> ak.Array:
        record = ak.zip(
            {n: np.ascontiguousarray(scores[:, i]) for i, n in enumerate(self.class_names)},
            depth_limit=1,
        )
        return ak.unflatten(record, jet_counts)

    def score_columns(self, arrays: Mapping[Key, Any]) -> ak.Array:
        """Scores from jagged per-event columns keyed ``(collection, field)`` (canonical names)."""
        return self._score_chunk(_Chunk.from_arrays(arrays))

    def _score_chunk(self, chunk: _Chunk) -> ak.Array:
        prepared = _prepare(self._plan, chunk)
        return self._wrap(self._run(prepared), prepared.jet_counts)

    def score_branches(self, arrays: Mapping[str, Any]) -> ak.Array:
        """Scores from ROOT branches as uproot reads them (``{"FatJet_pt": ..., "nFatJet": ...}``)."""
        cols = _columns_from_branches(self._plan, self.collections, arrays)
        return self.score_columns(cols)

    # ------------------------------------------------------------------ user entry points
    def _source(self, obj: Any) -> _EventSource:
        fields = getattr(obj, "fields", None)
        if fields is None:
            raise TypeError(f"expected NanoEvents or a FatJet collection, got {type(obj).__name__}")
        jet_name = self.collections.get(JET, JET)
        if jet_name in fields:
            return _EventSource(obj, None, self.collections)
        if not self.needs_constituents:
            return _EventSource(None, obj, self.collections)
        try:
            events = obj._events()
        except Exception:
            raise TypeError(
                f"{self.name}: a constituent-based model needs the events (or events.{jet_name} "
                "from NanoEvents); pass the events"
            ) from None
        return _EventSource(events, obj, self.collections)

    def _check_unselected(self, source: _EventSource) -> None:
        if source.events is None or source.jets is None:
            return
        jets = source.events[self.collections.get(JET, JET)]
        same = len(jets) == len(source.jets) and bool(
            np.array_equal(
                ak.to_numpy(ak.num(jets, axis=1)), ak.to_numpy(ak.num(source.jets, axis=1))
            )
        )
        if not same:
            raise ValueError(
                f"{self.name}: the jets passed are a selection of the events' jets; constituents are "
                "linked by index into the full collection, so score tagger(events) (or the unselected "
                "events.FatJet) and select afterwards"
            )

    def __call__(self, events_or_jets: Any) -> Any:
        """Per-class scores of every fat jet, with the jet structure (events x jets).

        Accepts NanoEvents (eager, virtual or dask) or their unselected ``FatJet``
        collection; jet-level models accept any jet collection (selected or not).
        Returns a record array with one float32 field per class; a
        ``dask_awkward.Array`` for dask input.
        """
        source = self._source(events_or_jets)
        import dask_awkward as dak

        if isinstance(events_or_jets, dak.Array):
            keys = self._plan.keys
            arrays = [source.column(k, dak.num) for k in keys]
            return dak.map_partitions(
                _PartitionScorer(self, keys),
                *arrays,
                label=f"jettag-{self.name}",
                meta=self._meta(),
            )
        self._check_unselected(source)
        return self._score_chunk(source.chunk(self._plan.keys))

    def inputs(self, events_or_jets: Any) -> dict[str, np.ndarray]:
        """The model's input tensors for every jet (eager/virtual input): for inspection and checks."""
        source = self._source(events_or_jets)
        self._check_unselected(source)
        chunk = source.chunk(self._plan.keys)
        prepared = _prepare(self._plan, chunk)
        return prepared.batch(self._plan, 0, prepared.n_jets)

    def _meta(self) -> ak.Array:
        empty = self._wrap(np.zeros((0, len(self.class_names)), np.float32), np.zeros(0, np.int64))
        return ak.Array(empty.layout.to_typetracer(forget_length=True))


class InputBuilder:
    """The input tensors a preprocess.json describes, built without a model.

    Training (``jettag.training``) and checks build their inputs through this
    class, so a model is trained on exactly the tensors :class:`Tagger` feeds it
    at inference: the same feature registry, kernels, normalisation and padding.

    >>> builder = InputBuilder("preprocess.json")
    >>> arrays = uproot.open("f.root:Events").arrays(builder.branches)
    >>> inputs = builder.from_branches(arrays)     # {input name: (n_jets, ...) float32}
    """

    def __init__(
        self,
        preprocess: str | Path | Mapping[str, Any] | PreprocessConfig,
        *,
        collections: Mapping[str, str] | None = None,
    ) -> None:
        self.config = _as_config(preprocess)
        self.collections = dict(collections or {})
        self._plan = _Plan.build(self.config)

    @property
    def branches(self) -> tuple[str, ...]:
        """The ROOT branches read (NanoAOD naming)."""
        return _branch_names(self._plan, self.collections)

    def from_branches(self, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Input tensors of every fat jet, in event order, from branches as uproot reads them."""
        cols = _columns_from_branches(self._plan, self.collections, arrays)
        prepared = _prepare(self._plan, _Chunk.from_arrays(cols))
        return prepared.batch(self._plan, 0, prepared.n_jets)


class _PartitionScorer:
    """The function mapped over dask partitions (pickles with its Tagger, no session)."""

    def __init__(self, tagger: Tagger, keys: tuple[Key, ...]) -> None:
        self.tagger, self.keys = tagger, keys

    def __call__(self, *arrays: Any) -> ak.Array:
        if any(ak.backend(a) == "typetracer" for a in arrays):
            for a in arrays:
                ak.typetracer.touch_data(a)
            return self.tagger._meta()
        return self.tagger.score_columns(dict(zip(self.keys, arrays, strict=True)))
