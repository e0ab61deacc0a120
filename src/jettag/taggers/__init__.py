"""The reference taggers shipped with jettag, loadable by name.

>>> from jettag import taggers
>>> taggers.available()
('bdt-hl', 'deepsets-lite', 'pnet-lite')
>>> tagger = taggers.load("pnet-lite")            # a jettag.tagger.Tagger
>>> scores = tagger(events)                       # Xbb, Xcc, Xqq, QCD per fat jet
>>> ok = tagger.in_phase_space(events)            # jets like those it was trained on
>>> tagger.phase_space.describe()
'pT > 300 GeV, |eta| < 2.4, 40 <= msoftdrop < 250 GeV'

Each lives in its own directory here (``model.onnx``, ``preprocess.json``,
``phase_space.json``, ``training.json``, ``evaluation.json`` and
``MODEL_CARD.md``). They were
trained on jettag's generated samples with the command in their model card
(``jettag train``), which reproduces them; see :mod:`jettag.training`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jettag.errors import JettagError
from jettag.tagger import ModelValidationError, PreprocessError, Tagger, UnknownFeatureError

__all__ = ["available", "card", "load", "model_dir", "resolve", "summary"]

_HERE = Path(__file__).parent


def available() -> tuple[str, ...]:
    """Names of the shipped taggers."""
    return tuple(sorted(p.name for p in _HERE.iterdir() if (p / "model.onnx").is_file()))


def model_dir(name: str) -> Path:
    """The directory of the shipped tagger ``name``."""
    path = _HERE / name
    if not (path / "model.onnx").is_file():
        raise ValueError(
            f"no shipped tagger {name!r}; available: {', '.join(available()) or 'none'}"
        )
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


def resolve(spec: str | Path, **kwargs: Any) -> Tagger:
    """A tagger from a shipped name (``pnet-lite``) or a model directory (kwargs go to it).

    A directory that exists wins over a shipped name; anything else is a
    :class:`~jettag.errors.JettagError` naming the shipped taggers.
    """
    path = Path(spec)
    try:
        if path.is_dir():
            return Tagger.load(path, **kwargs)
        if str(spec) in available():
            return load(str(spec), **kwargs)
    except (ModelValidationError, PreprocessError, UnknownFeatureError) as err:
        raise JettagError(f"model {spec}: {err}") from None
    raise JettagError(
        f"model {spec}: neither a shipped tagger ({', '.join(available())}) nor a model directory"
    )


def summary(name: str) -> dict[str, Any]:
    """What ``jettag taggers`` prints: classes, inputs, training phase space, size on disk
    and place of a shipped tagger (``phase_space``: one line, e.g.
    ``pT > 300 GeV, |eta| < 2.4, 40 <= msoftdrop < 250 GeV``; left out if undeclared)."""
    path = model_dir(name)
    tagger = load(name)
    files = [p for p in path.rglob("*") if p.is_file()]
    row = {
        "name": name,
        "classes": list(tagger.class_names),
        "inputs": {b.name: list(b.shape) for b in tagger.config.inputs},
        "model_bytes": (path / "model.onnx").stat().st_size,
        "directory_bytes": sum(p.stat().st_size for p in files),
        "path": str(path),
    }
    if tagger.phase_space is not None:
        row["phase_space"] = tagger.phase_space.describe()
    return row
