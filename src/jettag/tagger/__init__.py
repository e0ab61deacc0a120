"""Tagger inference inside coffea: weaver-format ONNX models on (PF)NanoAOD jets.

Modules, one idea each:

* :mod:`~jettag.tagger.preprocess`: weaver's ``preprocess.json`` data model, validated at load;
* :mod:`~jettag.tagger.features`: the registry of PFNano feature definitions;
* :mod:`~jettag.tagger.plan`: what a preprocess.json asks for (blocks, features, branches,
  the kernels' column tables), built once per model;
* :mod:`~jettag.tagger.chunks`: one chunk of events as flat numpy columns, the kept
  constituent rows per jet, and the input tensors of a batch of jets in reusable buffers;
* :mod:`~jettag.tagger.kernels`: the fused numba kernels (layout, gather, feature,
  normalisation, padding in one pass per input block) that the tagger runs;
* :mod:`~jettag.tagger.sources`: where the columns come from (NanoEvents in any mode,
  records of collections), and the check that every collection and field a model
  needs is there (:class:`~jettag.errors.MissingInputsError`);
* :mod:`~jettag.tagger.session`: onnxruntime sessions (one per process) and model validation;
* :mod:`~jettag.tagger.phase_space`: the jets a tagger was trained on (:class:`PhaseSpace`);
* :mod:`~jettag.tagger.tagger`: the user API, :class:`Tagger` (and :class:`InputBuilder`);
* :mod:`~jettag.tagger.friend`: scoring ROOT files into a friend tree (``jettag tag``).

The numpy reference of the kernels' padding and the small test models live with
the tests (``tests/_padding.py``, ``tests/_models.py``), not in the package.
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
from jettag.tagger.phase_space import PhaseSpace, PhaseSpaceError
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
    "PhaseSpace",
    "PhaseSpaceError",
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
