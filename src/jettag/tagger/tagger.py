"""The user API: a weaver-format ONNX model applied to NanoEvents fat jets.

>>> tagger = Tagger.load("models/pnet_md")           # model.onnx + preprocess.json
>>> scores = tagger(events)                          # jagged like events.FatJet
>>> fatjets = ak.with_field(events.FatJet, scores.Xbb, "jettag_Xbb")

The same call works on eager, virtual and dask NanoEvents. Under dask it is one
``dask_awkward.map_partitions`` over exactly the branches the model's features
read, so ``dask_awkward.necessary_columns`` lists only those.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag.tagger.features import BUILTIN_FEATURES, JET, LEVELS, Feature, Level, get_feature
from jettag.tagger.padding import RowLayout, fill_padded, layout_rows, normalize
from jettag.tagger.preprocess import InputBlock, PreprocessConfig, PreprocessError, load_preprocess
from jettag.tagger.session import (
    ModelValidationError,
    SessionOptions,
    get_session,
    model_digest,
    resolve_providers,
    validate_model,
)

__all__ = ["Tagger"]

Key = tuple[str, str]  # (collection, field); field "#counts" holds per-event counts
_COUNTS = "#counts"


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _BlockPlan:
    block: InputBlock
    level: Level
    features: tuple[Feature, ...]
    medians: np.ndarray
    pads: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """What the preprocess.json needs: blocks with their features, and branches."""

    blocks: tuple[_BlockPlan, ...]
    keys: tuple[Key, ...]
    lengths: dict[str, int] = field(default_factory=dict)  # level -> max slots
    targets: frozenset[str] = frozenset()  # levels whose target collection is read

    @classmethod
    def build(cls, config: PreprocessConfig, custom: Mapping[str, Feature] | None = None) -> _Plan:
        custom = custom or {}
        blocks = []
        keys: dict[Key, None] = {(JET, _COUNTS): None}
        lengths: dict[str, int] = {}
        targets: set[str] = set()
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
                for column in f.columns:
                    coll, _, fld = column.partition(".")
                    keys[(coll, fld)] = None
                    if coll == level.target:
                        targets.add(level.name)
            blocks.append(
                _BlockPlan(
                    block=block,
                    level=level,
                    features=feats,
                    medians=np.array([i.median for i in block.var_infos]),
                    pads=np.array([i.pad for i in block.var_infos], dtype=np.float32),
                )
            )
        # rows are always checked against the target table, whether or not a feature reads it:
        # a link row whose target index is invalid (FatJetSVs_sVIdx == -1: an SV missing from
        # the SV table) is dropped, the same whichever features a model uses.
        targets.update(lengths)
        for name in targets:
            lvl = LEVELS[name]
            keys[(lvl.link, lvl.target_index)] = None
            keys[(lvl.target, _COUNTS)] = None
        # constituent levels: their link counts come from the jetIdx jagged array
        return cls(tuple(blocks), tuple(keys), lengths, frozenset(targets))


# --------------------------------------------------------------------------- chunk data
def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


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
                arr = ak.Array(arr) if not isinstance(arr, ak.Array) else arr
                n = len(arr)
                flat[(coll, fld)] = ak.to_numpy(ak.flatten(arr, axis=1))
                if coll not in counts:
                    counts[coll] = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), dtype=np.int64)
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
class _Prepared:
    """Normalised values of every input block for one chunk, ready to be batched."""

    n_jets: int
    jet_counts: np.ndarray
    values: dict[str, np.ndarray]  # block name -> (n_vars, n_rows) or (n_jets, n_vars)
    layouts: dict[str, RowLayout]  # level -> layout (constituent levels)

    def batch(self, plan: _Plan, j0: int, j1: int) -> dict[str, np.ndarray]:
        feed = {}
        for bp in plan.blocks:
            vals = self.values[bp.block.name]
            if bp.block.length is None:
                feed[bp.block.name] = vals[j0:j1]
            else:
                feed[bp.block.name] = fill_padded(
                    vals, bp.pads, self.layouts[bp.level.name], bp.block.length, j0, j1
                )
        return feed


def _normalized(bp: _BlockPlan, context: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray:
    out = np.empty((len(bp.features), n_rows), dtype=np.float32)
    with np.errstate(all="ignore"):
        for i, (feat, info) in enumerate(zip(bp.features, bp.block.var_infos, strict=True)):
            raw = np.broadcast_to(feat(context), (n_rows,))
            out[i] = normalize(
                raw,
                info.median,
                info.norm_factor,
                info.lower_bound,
                info.upper_bound,
                info.replace_inf_value,
            )
    return out


def _prepare(plan: _Plan, chunk: _Chunk) -> _Prepared:
    jet_counts = chunk.counts[JET]
    jet_off = _offsets(jet_counts)
    n_jets = int(jet_off[-1])
    values: dict[str, np.ndarray] = {}
    layouts: dict[str, RowLayout] = {}
    contexts: dict[str, Mapping[str, np.ndarray]] = {"jet": _Context(chunk, {JET: None})}
    n_rows = {"jet": n_jets}
    for name, length in plan.lengths.items():
        lvl = LEVELS[name]
        link_counts = chunk.counts[lvl.link]
        ev = np.repeat(np.arange(chunk.n_events, dtype=np.int64), link_counts)
        jidx = chunk.flat[(lvl.link, lvl.jet_index)].astype(np.int64, copy=False)
        valid = (jidx >= 0) & (jidx < jet_counts[ev])
        gjet = jet_off[ev] + jidx
        gtarget = None
        if name in plan.targets:
            tidx = chunk.flat[(lvl.link, lvl.target_index)].astype(np.int64, copy=False)
            tcounts = chunk.counts[lvl.target]
            valid &= (tidx >= 0) & (tidx < tcounts[ev])
            gtarget = _offsets(tcounts)[ev] + tidx
        kept = np.flatnonzero(valid)
        layout = layout_rows(gjet[kept], n_jets, length)
        rows = kept[layout.rows]
        gathers: dict[str, np.ndarray | None] = {lvl.link: rows, JET: layout.jet}
        if gtarget is not None:
            gathers[lvl.target] = gtarget[rows]
        layouts[name] = layout
        contexts[name] = _Context(chunk, gathers)
        n_rows[name] = len(rows)
    for bp in plan.blocks:
        vals = _normalized(bp, contexts[bp.level.name], n_rows[bp.level.name])
        values[bp.block.name] = np.ascontiguousarray(vals.T) if bp.block.length is None else vals
    return _Prepared(n_jets, jet_counts, values, layouts)


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

    def column(self, key: Key, num: Any) -> Any:
        coll, fld = key
        arr = (
            self.jets
            if coll == JET and self.jets is not None
            else self.events[self.names.get(coll, coll)]
        )
        return num(arr, axis=1) if fld == _COUNTS else arr[fld]


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
        if isinstance(preprocess, PreprocessConfig):
            self.config = preprocess
        elif isinstance(preprocess, Mapping):
            self.config = PreprocessConfig.from_dict(preprocess)
        else:
            self.config = load_preprocess(preprocess)
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
        out = []
        for c, f in self._plan.keys:
            c = self.collections.get(c, c)
            out.append(f"n{c}" if f == _COUNTS else f"{c}_{f}")
        return tuple(dict.fromkeys(out))

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
        scores = np.empty((prepared.n_jets, n_cls), dtype=np.float32)
        if prepared.n_jets == 0:
            return scores
        session = self._session()
        for j0 in range(0, prepared.n_jets, self.batch_size):
            j1 = min(j0 + self.batch_size, prepared.n_jets)
            out = session.run([self._output_name], prepared.batch(self._plan, j0, j1))[0]
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
        chunk = _Chunk.from_arrays(arrays)
        prepared = _prepare(self._plan, chunk)
        return self._wrap(self._run(prepared), prepared.jet_counts)

    def score_branches(self, arrays: Mapping[str, Any]) -> ak.Array:
        """Scores from ROOT branches as uproot reads them (``{"FatJet_pt": ..., "nFatJet": ...}``)."""
        cols: dict[Key, Any] = {}
        for c, f in self._plan.keys:
            actual = self.collections.get(c, c)
            cols[(c, f)] = arrays[f"n{actual}" if f == _COUNTS else f"{actual}_{f}"]
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
        return self.score_columns({k: source.column(k, ak.num) for k in self._plan.keys})

    def inputs(self, events_or_jets: Any) -> dict[str, np.ndarray]:
        """The model's input tensors for every jet (eager/virtual input): for inspection and checks."""
        source = self._source(events_or_jets)
        self._check_unselected(source)
        chunk = _Chunk.from_arrays({k: source.column(k, ak.num) for k in self._plan.keys})
        prepared = _prepare(self._plan, chunk)
        return prepared.batch(self._plan, 0, prepared.n_jets)

    def _meta(self) -> ak.Array:
        empty = self._wrap(np.zeros((0, len(self.class_names)), np.float32), np.zeros(0, np.int64))
        return ak.Array(empty.layout.to_typetracer(forget_length=True))


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
