"""Weaver's ``preprocess.json``: the data model of a model's inputs, validated at load.

Weaver (``DataConfig.export_json``) writes, beside ``model.onnx``::

    {
      "output_names": ["probXbb", "probXcc", ...],      # one per score column
      "input_names": ["pf_points", "pf_features", "pf_mask", ...],
      "pf_features": {
        "var_names": ["pfcand_pt_log_nopuppi", ...],
        "var_infos": {"pfcand_pt_log_nopuppi": {"median": 1.0, "norm_factor": 0.5,
                      "replace_inf_value": 0, "lower_bound": -5, "upper_bound": 5,
                      "pad": 0}, ...},
        "var_length": 100,                             # null: a flat (per-jet) input
        "min_length": 100, "max_length": 100           # optional (dynamic length)
      }, ...
    }

The transform applied to every raw value ``x`` of variable ``v`` is the one of
weaver/CMSSW (``center_norm_pad``)::

    x = replace_inf_value            if x is nan, +-inf or |x| > 1e32
    y = clip((x - median) * norm_factor, lower_bound, upper_bound)

and slots beyond a jet's constituents hold ``pad`` (not normalised).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "InputBlock",
    "PreprocessConfig",
    "PreprocessError",
    "VarInfo",
    "clean_class_name",
    "load_preprocess",
]


class PreprocessError(ValueError):
    """A ``preprocess.json`` that is not a valid weaver model description."""


@dataclass(frozen=True)
class VarInfo:
    """Normalisation of one input variable (weaver's ``var_infos`` entry)."""

    median: float = 0.0
    norm_factor: float = 1.0
    replace_inf_value: float = 0.0
    lower_bound: float = -5.0
    upper_bound: float = 5.0
    pad: float = 0.0

    @classmethod
    def from_json(cls, name: str, raw: Mapping[str, Any]) -> VarInfo:
        """Build from the json mapping; missing keys take weaver/CMSSW defaults."""
        if not isinstance(raw, Mapping):
            raise PreprocessError(
                f"var_infos[{name!r}] must be a mapping, got {type(raw).__name__}"
            )
        known = {"median", "norm_factor", "replace_inf_value", "lower_bound", "upper_bound", "pad"}
        values: dict[str, float] = {}
        for key in known:
            if key in raw and raw[key] is not None:
                try:
                    values[key] = float(raw[key])
                except (TypeError, ValueError):
                    raise PreprocessError(
                        f"var_infos[{name!r}][{key!r}] must be a number, got {raw[key]!r}"
                    ) from None
                if math.isnan(values[key]):
                    raise PreprocessError(f"var_infos[{name!r}][{key!r}] is NaN")
        info = cls(**values)
        if info.lower_bound > info.upper_bound:
            raise PreprocessError(
                f"var_infos[{name!r}]: lower_bound {info.lower_bound} > upper_bound {info.upper_bound}"
            )
        return info


@dataclass(frozen=True)
class InputBlock:
    """One ONNX input: an ordered list of variables, padded to ``length`` or flat.

    ``length is None`` means a flat per-jet input of shape (batch, n_vars);
    otherwise the tensor is (batch, n_vars, length), float32.
    """

    name: str
    var_names: tuple[str, ...]
    var_infos: tuple[VarInfo, ...]
    length: int | None
    min_length: int | None = None
    max_length: int | None = None

    @property
    def rank(self) -> int:
        """Rank of the ONNX tensor this block feeds (2 flat, 3 padded)."""
        return 2 if self.length is None else 3

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-jet shape (without the batch axis)."""
        n = len(self.var_names)
        return (n,) if self.length is None else (n, self.length)


@dataclass(frozen=True)
class PreprocessConfig:
    """A validated ``preprocess.json``: input blocks in ONNX order and output names."""

    inputs: tuple[InputBlock, ...]
    output_names: tuple[str, ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the ONNX inputs, in order."""
        return tuple(b.name for b in self.inputs)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Output names cleaned into class names (``probXbb`` -> ``Xbb``)."""
        return tuple(clean_class_name(n) for n in self.output_names)

    @property
    def variables(self) -> tuple[str, ...]:
        """Every feature name used by any input, without repetition."""
        return tuple(dict.fromkeys(v for b in self.inputs for v in b.var_names))

    def block(self, name: str) -> InputBlock:
        """The input block called ``name``."""
        for b in self.inputs:
            if b.name == name:
                return b
        raise KeyError(name)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PreprocessConfig:
        """Validate a parsed ``preprocess.json``; raise :class:`PreprocessError`."""
        if not isinstance(raw, Mapping):
            raise PreprocessError("preprocess.json must hold a JSON object")
        names = raw.get("input_names")
        if not isinstance(names, Sequence) or isinstance(names, str) or not names:
            raise PreprocessError("'input_names' must be a non-empty list of input names")
        if len(set(names)) != len(names):
            raise PreprocessError(f"'input_names' has duplicates: {list(names)}")
        blocks = [_parse_block(str(n), raw.get(n)) for n in names]
        outputs = raw.get("output_names")
        if outputs is None:
            raise PreprocessError("'output_names' (the class names of the scores) is missing")
        if isinstance(outputs, str) or not isinstance(outputs, Sequence) or not outputs:
            raise PreprocessError("'output_names' must be a non-empty list of names")
        outputs = tuple(str(o) for o in outputs)
        cleaned = [clean_class_name(o) for o in outputs]
        if len(set(cleaned)) != len(cleaned):
            raise PreprocessError(f"'output_names' give duplicate class names: {cleaned}")
        return cls(inputs=tuple(blocks), output_names=outputs)

    def to_dict(self) -> dict[str, Any]:
        """The weaver json mapping (inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "output_names": list(self.output_names),
            "input_names": list(self.input_names),
        }
        for b in self.inputs:
            entry: dict[str, Any] = {
                "var_names": list(b.var_names),
                "var_infos": {
                    v: {
                        "median": i.median,
                        "norm_factor": i.norm_factor,
                        "replace_inf_value": i.replace_inf_value,
                        "lower_bound": i.lower_bound,
                        "upper_bound": i.upper_bound,
                        "pad": i.pad,
                    }
                    for v, i in zip(b.var_names, b.var_infos, strict=True)
                },
                "var_length": b.length,
            }
            if b.min_length is not None:
                entry["min_length"] = b.min_length
            if b.max_length is not None:
                entry["max_length"] = b.max_length
            out[b.name] = entry
        return out


def _opt_int(block: str, key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise PreprocessError(f"{block}.{key} must be an integer, got {value!r}")
    if value < 0:
        raise PreprocessError(f"{block}.{key} must be >= 0, got {value}")
    return int(value)


def _parse_block(name: str, raw: Any) -> InputBlock:
    if not isinstance(raw, Mapping):
        raise PreprocessError(f"input {name!r} is listed in 'input_names' but has no block")
    var_names = raw.get("var_names")
    if isinstance(var_names, str) or not isinstance(var_names, Sequence) or not var_names:
        raise PreprocessError(f"{name}.var_names must be a non-empty list")
    var_names = tuple(str(v) for v in var_names)
    infos_raw = raw.get("var_infos", {})
    if not isinstance(infos_raw, Mapping):
        raise PreprocessError(f"{name}.var_infos must be a mapping")
    missing = [v for v in var_names if v not in infos_raw]
    if missing:
        raise PreprocessError(f"{name}.var_infos lacks {missing}")
    infos = tuple(VarInfo.from_json(v, infos_raw[v]) for v in var_names)
    var_length = _opt_int(name, "var_length", raw.get("var_length"))
    min_length = _opt_int(name, "min_length", raw.get("min_length"))
    max_length = _opt_int(name, "max_length", raw.get("max_length"))
    if min_length is not None and max_length is not None and min_length > max_length:
        raise PreprocessError(f"{name}: min_length {min_length} > max_length {max_length}")
    # weaver writes var_length; CMSSW-style files may hold only min/max_length.
    length = var_length if var_length else max_length
    if length == 0:
        length = None
    return InputBlock(
        name=name,
        var_names=var_names,
        var_infos=infos,
        length=length,
        min_length=min_length,
        max_length=max_length,
    )


def clean_class_name(name: str) -> str:
    """``probXbb`` -> ``Xbb``, ``label_QCD`` -> ``QCD``; other names unchanged."""
    for prefix in ("prob_", "prob", "label_"):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix) :]
    return name


def load_preprocess(path: str | Path) -> PreprocessConfig:
    """Read and validate a weaver ``preprocess.json``."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PreprocessError(f"{path}: not valid JSON ({err})") from None
    try:
        return PreprocessConfig.from_dict(raw)
    except PreprocessError as err:
        raise PreprocessError(f"{path}: {err}") from None
