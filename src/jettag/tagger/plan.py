"""What a preprocess.json asks for: input blocks, their features, kernel tables and branches.

A :class:`_Plan` is built once per model (and again on a dask worker after
unpickling): it turns ``preprocess.json`` into the ``(collection, field)`` keys
to read and the integer tables the fused kernels of :mod:`jettag.tagger.kernels`
take. Nothing here touches event data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jettag.tagger import kernels
from jettag.tagger.features import JET, LEVELS, Feature, Level, get_feature
from jettag.tagger.preprocess import InputBlock, PreprocessConfig, PreprocessError, load_preprocess

Key = tuple[str, str]  # (collection, field); field "#counts" holds per-event counts
_COUNTS = "#counts"
_FEATURE = "#feature"  # pseudo collection: (_FEATURE, name) = a feature evaluated with numpy


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
