"""onnxruntime sessions: one per worker process, validated against preprocess.json.

Sessions are cached per process, keyed by the model's sha256 and the session
options, so a :class:`~jettag.tagger.Tagger` unpickled on a dask worker creates
its session on first use and every later call in that process reuses it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import onnxruntime as ort

from jettag.tagger.preprocess import PreprocessConfig

__all__ = [
    "ModelValidationError",
    "SessionOptions",
    "clear_session_cache",
    "get_session",
    "model_digest",
    "resolve_providers",
    "session_stats",
    "validate_model",
]


class ModelValidationError(ValueError):
    """model.onnx and preprocess.json disagree (input names, ranks, dtypes, shapes)."""


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model: execution providers and thread counts (None: onnxruntime's default).

    ``spinning``: whether onnxruntime's idle intra-op threads busy-wait for work.
    Off by default: jettag builds the next batch's inputs in a thread while a
    batch runs, and spinning threads would take the CPU that thread needs (the
    inference alone runs as fast either way).
    """

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    spinning: bool = False


def resolve_providers(device: str | Sequence[str] = "cpu") -> tuple[str, ...]:
    """Execution providers for ``device``: "cpu", "cuda", "auto", or an explicit list.

    "cuda" uses CUDAExecutionProvider when this onnxruntime build has it and
    warns and falls back to CPU otherwise; "auto" takes CUDA silently when present.
    """
    available = ort.get_available_providers()
    if not isinstance(device, str):
        missing = [p for p in device if p not in available]
        if missing:
            raise ValueError(f"execution providers {missing} are not available (have {available})")
        return tuple(device)
    device = device.lower()
    cuda = "CUDAExecutionProvider" in available
    if device == "cpu":
        return ("CPUExecutionProvider",)
    if device in ("cuda", "gpu", "auto"):
        if cuda:
            return ("CUDAExecutionProvider", "CPUExecutionProvider")
        if device != "auto":
            warnings.warn(
                "CUDA was asked for but this onnxruntime has no CUDAExecutionProvider; using CPU",
                RuntimeWarning,
                stacklevel=3,
            )
        return ("CPUExecutionProvider",)
    raise ValueError(f"device must be 'cpu', 'cuda', 'auto' or a list of providers, got {device!r}")


def model_digest(model_bytes: bytes) -> str:
    """sha256 of the serialized model (the session cache key)."""
    return hashlib.sha256(model_bytes).hexdigest()


_LOCK = threading.Lock()
_SESSIONS: dict[tuple[int, str, SessionOptions], ort.InferenceSession] = {}
_STATS = {"created": 0, "hits": 0}


def get_session(model_bytes: bytes, digest: str, options: SessionOptions) -> ort.InferenceSession:
    """The process-wide session for this model and options (created on first call)."""
    key = (os.getpid(), digest, options)
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is not None:
            _STATS["hits"] += 1
            return session
        so = ort.SessionOptions()
        if options.intra_op_threads is not None:
            so.intra_op_num_threads = options.intra_op_threads
        if options.inter_op_threads is not None:
            so.inter_op_num_threads = options.inter_op_threads
        so.log_severity_level = 3
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if options.spinning else "0"
        )
        session = ort.InferenceSession(
            model_bytes, sess_options=so, providers=list(options.providers)
        )
        _SESSIONS[key] = session
        _STATS["created"] += 1
        return session


def session_stats() -> dict[str, int]:
    """Sessions created and cache hits in this process (for tests and monitoring)."""
    return {**_STATS, "cached": len(_SESSIONS)}


def clear_session_cache() -> None:
    """Drop every cached session of this process."""
    with _LOCK:
        _SESSIONS.clear()


_FLOAT = "tensor(float)"


def validate_model(
    session: ort.InferenceSession, config: PreprocessConfig, output: str | int = 0
) -> tuple[str, int]:
    """Check the ONNX graph inputs against ``config``; return (output name, n columns).

    Raises :class:`ModelValidationError` naming the offending input or output.
    """
    graph_inputs = {i.name: i for i in session.get_inputs()}
    expected = config.input_names
    for name in expected:
        if name not in graph_inputs:
            raise ModelValidationError(
                f"input {name!r} of preprocess.json is not an input of model.onnx "
                f"(the graph's inputs: {sorted(graph_inputs)})"
            )
    extra = sorted(set(graph_inputs) - set(expected))
    if extra:
        raise ModelValidationError(
            f"model.onnx input(s) {extra} are not described in preprocess.json "
            f"(its input_names: {list(expected)})"
        )
    for block in config.inputs:
        gi = graph_inputs[block.name]
        if gi.type != _FLOAT:
            raise ModelValidationError(
                f"input {block.name!r}: model.onnx expects {gi.type}, jettag feeds tensor(float) (float32)"
            )
        shape = list(gi.shape)
        if len(shape) != block.rank:
            layout = "(batch, n_vars)" if block.rank == 2 else "(batch, n_vars, length)"
            raise ModelValidationError(
                f"input {block.name!r}: model.onnx expects rank {len(shape)} {shape}, "
                f"preprocess.json describes rank {block.rank} {layout} = (batch, {', '.join(map(str, block.shape))})"
            )
        for axis, want in enumerate(block.shape, start=1):
            got = shape[axis]
            if isinstance(got, int) and got > 0 and got != want:
                what = "n_vars" if axis == 1 else "length"
                raise ModelValidationError(
                    f"input {block.name!r}: model.onnx has {got} on axis {axis} ({what}), "
                    f"preprocess.json gives {want}"
                )
    outputs = session.get_outputs()
    if isinstance(output, int):
        if not -len(outputs) <= output < len(outputs):
            raise ModelValidationError(
                f"model.onnx has {len(outputs)} outputs; output index {output} is out of range"
            )
        out = outputs[output]
    else:
        names = [o.name for o in outputs]
        if output not in names:
            raise ModelValidationError(f"model.onnx has no output {output!r} (outputs: {names})")
        out = outputs[names.index(output)]
    if out.type != _FLOAT:
        raise ModelValidationError(
            f"output {out.name!r} of model.onnx is {out.type}; jettag needs a float tensor of scores "
            "(choose another output with output=...)"
        )
    n_classes = len(config.output_names)
    oshape = list(out.shape)
    if len(oshape) not in (1, 2):
        raise ModelValidationError(
            f"output {out.name!r} has rank {len(oshape)}; expected (batch, n_classes)"
        )
    if len(oshape) == 1 and n_classes != 1:
        raise ModelValidationError(
            f"output {out.name!r} is (batch,) but preprocess.json lists {n_classes} output_names"
        )
    if len(oshape) == 2 and isinstance(oshape[1], int) and oshape[1] > 0 and oshape[1] != n_classes:
        raise ModelValidationError(
            f"output {out.name!r} has {oshape[1]} columns but preprocess.json lists "
            f"{n_classes} output_names {list(config.output_names)}"
        )
    return out.name, n_classes
