"""Tagger inference inside coffea: weaver-format ONNX models on (PF)NanoAOD jets.

Modules, one idea each:

* :mod:`~jettag.tagger.preprocess`: weaver's ``preprocess.json`` data model, validated at load;
* :mod:`~jettag.tagger.features`: the registry of PFNano feature definitions;
* :mod:`~jettag.tagger.padding`: jagged -> padded tensors by index arithmetic (numpy reference);
* :mod:`~jettag.tagger.kernels`: the fused numba kernels (layout, gather, feature,
  normalisation, padding in one pass per input block) that the tagger runs;
* :mod:`~jettag.tagger.session`: onnxruntime sessions (one per process) and model validation;
* :mod:`~jettag.tagger.tagger`: the user API, :class:`Tagger`;
* :mod:`~jettag.tagger.friend`: scoring ROOT files into a friend tree (``jettag tag``).
"""

from __future__ import annotations

from jettag.tagger.features import (
    FEATURES,
    Feature,
    UnknownFeatureError,
    get_feature,
    known_features,
    register_feature,
)
from jettag.tagger.preprocess import (
    InputBlock,
    PreprocessConfig,
    PreprocessError,
    VarInfo,
    load_preprocess,
)
from jettag.tagger.session import ModelValidationError, session_stats
from jettag.tagger.tagger import InputBuilder, Tagger

__all__ = [
    "FEATURES",
    "Feature",
    "InputBlock",
    "InputBuilder",
    "ModelValidationError",
    "PreprocessConfig",
    "PreprocessError",
    "Tagger",
    "UnknownFeatureError",
    "VarInfo",
    "get_feature",
    "known_features",
    "load_preprocess",
    "register_feature",
    "session_stats",
]
