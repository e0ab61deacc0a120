"""The user API: a weaver-format ONNX model applied to NanoEvents fat jets.

>>> tagger = Tagger.load("models/pnet_md")           # model.onnx + preprocess.json
>>> scores = tagger(events)                          # jagged like events.FatJet
>>> fatjets = ak.with_field(events.FatJet, scores.Xbb, "jettag_Xbb")
>>> ok = tagger.in_phase_space(events)               # jets like those it was trained on

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
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag.tagger.chunks import _Chunk, _prepare, _Prepared
from jettag.tagger.features import BUILTIN_FEATURES, JET, Feature
from jettag.tagger.phase_space import PhaseSpace, PhaseSpaceError, load_phase_space
from jettag.tagger.plan import (
    _COUNTS,
    Key,
    _as_config,
    _branch_names,
    _columns_from_branches,
    _Plan,
)
from jettag.tagger.preprocess import PreprocessConfig
from jettag.tagger.session import (
    ModelValidationError,
    SessionOptions,
    get_session,
    model_digest,
    resolve_providers,
    validate_model,
)
from jettag.tagger.sources import _EventSource, missing_inputs_error, source_missing_inputs

__all__ = ["InputBuilder", "Tagger"]


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
        the tagger's name; characters other than letters, digits and ``_`` become ``_``
        (``pnet-lite`` -> ``pnet_lite``, friend-tree branches ``FatJet_pnet_lite_Xbb``).
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
    phase_space:
        the jets the model was trained on (:class:`~jettag.tagger.phase_space.PhaseSpace`
        or its dict); :meth:`load` reads it from ``phase_space.json`` when the directory
        has one. None: undeclared (:meth:`in_phase_space` then raises).

    The model's inputs are validated against preprocess.json here, before any
    event is read (:class:`~jettag.tagger.session.ModelValidationError`). Events
    that lack a collection or field the model reads are refused before anything
    is computed (under dask, while the graph is built) with a
    :class:`~jettag.errors.MissingInputsError` naming them.
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
        phase_space: PhaseSpace | Mapping[str, Any] | None = None,
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
        if phase_space is not None and not isinstance(phase_space, PhaseSpace):
            phase_space = PhaseSpace.from_dict(phase_space)
        self.phase_space: PhaseSpace | None = phase_space
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
        """Load ``model_dir/model.onnx`` + ``model_dir/preprocess.json`` (and the training
        phase space from ``model_dir/phase_space.json`` where present)."""
        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise OSError(f"model directory {model_dir} does not exist")
        for f in ("model.onnx", "preprocess.json"):
            if not (model_dir / f).is_file():
                raise OSError(f"model directory {model_dir} has no {f}")
        kwargs.setdefault("name", model_dir.name)
        if "phase_space" not in kwargs:
            kwargs["phase_space"] = load_phase_space(model_dir)
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
            source = _EventSource(obj, None, self.collections)
        elif not self.needs_constituents:
            source = _EventSource(None, obj, self.collections)
        else:
            try:
                events = obj._events()
            except Exception:
                raise TypeError(
                    f"{self.name}: a constituent-based model needs the events (or events.{jet_name} "
                    "from NanoEvents); pass the events"
                ) from None
            source = _EventSource(events, obj, self.collections)
        collections, columns = source_missing_inputs(source, self._plan.keys)
        if collections or columns:
            raise missing_inputs_error(self.name, collections, columns, names=self.collections)
        return source

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

    def in_phase_space(self, events_or_jets: Any) -> Any:
        """True for the jets inside the phase space the tagger was trained on.

        A boolean mask shaped like the jets (events x jets): eager awkward, NanoEvents
        (any mode) or a ``dask_awkward.Array``. Pass the events (their ``FatJet``, renamed
        as in ``collections``, is used) or a jet collection, selected or not.

        Apply it before cutting on scores: outside its training phase space a tagger
        extrapolates, often confidently (on real PFNano, pnet-lite gives Xbb = 0.94 to a
        jet of msoftdrop 16 GeV; it was trained on 40 <= msoftdrop < 250 GeV)::

            scores = tagger(events)
            ok = tagger.in_phase_space(events)
            tagged = events.FatJet[ok & (scores.Xbb / (scores.Xbb + scores.QCD) > 0.9)]

        Raises :class:`~jettag.tagger.phase_space.PhaseSpaceError` when the tagger
        declares no phase space (a model directory without ``phase_space.json``).
        """
        if self.phase_space is None:
            raise PhaseSpaceError(
                f"tagger {self.name} declares no training phase space, so which jets it may "
                "score is unknown; write phase_space.json in its model directory, e.g. "
                '{"pt_min": 300, "abs_eta_max": 2.4, "msd_min": 40, "msd_max": 250}, '
                "or pass Tagger(..., phase_space={...})"
            )
        fields = getattr(events_or_jets, "fields", None)
        if fields is None:
            raise TypeError(
                f"expected NanoEvents or a jet collection, got {type(events_or_jets).__name__}"
            )
        jet_name = self.collections.get(JET, JET)
        jets = events_or_jets[jet_name] if jet_name in fields else events_or_jets
        return self.phase_space.mask(jets, name=f"tagger {self.name}")

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
