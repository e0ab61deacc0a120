"""The reference taggers shipped with jettag, loadable by name.

>>> from jettag import taggers
>>> taggers.available()
('bdt-hl', 'deepsets-lite', 'pnet-lite')
>>> tagger = taggers.load("pnet-lite")            # a jettag.tagger.Tagger
>>> scores = tagger(events)                       # Xbb, Xcc, Xqq, QCD per fat jet

Each lives in its own directory here (``model.onnx``, ``preprocess.json``,
``training.json``, ``evaluation.json`` and ``MODEL_CARD.md``). They were
trained on jettag's generated samples with the command in their model card
(``jettag train``), which reproduces them; see :mod:`jettag.training`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jettag.tagger import Tagger

__all__ = ["available", "card", "load", "model_dir"]

_HERE = Path(__file__).parent


def available() -> tuple[str, ...]:
    """Names of the shipped taggers."""
    return tuple(sorted(p.name for p in _HERE.iterdir() if (p / "model.onnx").is_file()))


def model_dir(name: str) -> Path:
    """The directory of the shipped tagger ``name``."""
    path = _HERE / name
    if not (path / "model.onnx").is_file():
        raise ValueError(f"no shipped tagger {name!r}; available: {', '.join(available()) or 'none'}")
    return path


def load(name: str, **kwargs: Any) -> Tagger:
    """The shipped tagger ``name`` as a :class:`~jettag.tagger.Tagger` (kwargs go to it)."""
    return Tagger.load(model_dir(name), **kwargs)


def card(name: str) -> dict[str, Any]:
    """The shipped tagger's training record and held-out evaluation."""
    path = model_dir(name)
    out = {"training": json.loads((path / "training.json").read_text())}
    evaluation = path / "evaluation.json"
    if evaluation.is_file():
        out["evaluation"] = json.loads(evaluation.read_text())
    return out
