"""Weaver's automatic standardisation, fitted on training jets.

:func:`raw_preprocess` turns a preprocess description into one that yields the
raw feature values (pads as NaN); :func:`fit_preprocess` sets each variable's
median and 16/84% quantile width from them, as weaver's ``auto`` mode does;
:func:`standardised_preprocess` does both on files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from jettag.samples.dataset import load_jets
from jettag.tagger import PreprocessConfig, VarInfo

__all__ = ["fit_preprocess", "raw_preprocess", "standardised_preprocess"]


def raw_preprocess(spec: Mapping[str, Any]) -> PreprocessConfig:
    """A preprocess with identity normalisation and NaN padding: the raw feature values.

    ``spec``: a weaver preprocess mapping (var_infos may be empty); used by
    :func:`fit_preprocess` to see each variable's values with pads told apart.
    """
    config = PreprocessConfig.from_dict(_with_default_infos(spec))
    raw = VarInfo(0.0, 1.0, 0.0, -math.inf, math.inf, math.nan)
    blocks = tuple(replace(b, var_infos=(raw,) * len(b.var_names)) for b in config.inputs)
    return replace(config, inputs=blocks)


def _with_default_infos(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    for name in spec["input_names"]:
        block = dict(spec[name])
        infos = dict(block.get("var_infos") or {})
        for v in block["var_names"]:
            infos.setdefault(v, {})
        block["var_infos"] = infos
        out[name] = block
    return out


def fit_preprocess(
    spec: Mapping[str, Any],
    raw_inputs: Mapping[str, np.ndarray],
    *,
    identity_blocks: Sequence[str] = (),
    bounds: tuple[float, float] = (-5.0, 5.0),
) -> dict[str, Any]:
    """Weaver's automatic standardisation of every variable outside ``identity_blocks``.

    ``raw_inputs``: tensors built with :func:`raw_preprocess` (pads are NaN).
    ``median`` is the median of the real (unpadded) values and ``norm_factor``
    ``1 / max(q84 - median, median - q16)`` (1 when that width is 0), clipped to
    ``bounds`` after normalisation; pads are 0. Variables of ``identity_blocks``
    (masks, (eta, phi) points) are fed as they are: median 0, factor 1, no clipping.
    """
    out = _with_default_infos(spec)
    for name in spec["input_names"]:
        block = dict(out[name])
        values = raw_inputs[name]
        infos = {}
        for v_index, var in enumerate(block["var_names"]):
            column = values[:, v_index]
            real = column[np.isfinite(column)]
            if name in identity_blocks:
                median, factor = 0.0, 1.0
                lo, hi = -1e32, 1e32
            elif real.size == 0:
                median, factor, (lo, hi) = 0.0, 1.0, bounds
            else:
                q16, median, q84 = np.percentile(real, [16, 50, 84])
                width = max(q84 - median, median - q16)
                factor = 1.0 / width if width > 0 else 1.0
                lo, hi = bounds
            infos[var] = {
                "median": float(median),
                "norm_factor": float(factor),
                "replace_inf_value": 0.0,
                "lower_bound": float(lo),
                "upper_bound": float(hi),
                "pad": 0.0,
            }
        block["var_infos"] = infos
        out[name] = block
    return out


def standardised_preprocess(
    files: Sequence[str | Path],
    spec: Mapping[str, Any],
    *,
    identity_blocks: Sequence[str] = (),
    jets_per_file: int = 5000,
    **load_options: Any,
) -> dict[str, Any]:
    """``spec`` with weaver's standardisation fitted on up to ``jets_per_file`` jets of each file.

    Reads the raw values (:func:`raw_preprocess`) and fits them
    (:func:`fit_preprocess`); ``load_options`` go to :func:`load_jets`
    (``selection``, ``classes``, ``processes``).
    """
    raw = load_jets(files, preprocess=raw_preprocess(spec), max_jets_per_file=jets_per_file, **load_options)
    return fit_preprocess(spec, raw.inputs, identity_blocks=identity_blocks)
