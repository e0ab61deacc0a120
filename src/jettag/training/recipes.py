"""The reference taggers' recipes, and training one into a weaver-format model directory.

:func:`train_tagger` is what ``jettag train`` runs: read the labelled jets of
the training files, fit the input standardisation, build the inputs with the
inference code, weight the jets (mass decorrelation, class balance), train,
export ``model.onnx`` (dynamic batch axis) + ``preprocess.json``, declare the
training phase space in ``phase_space.json`` (the jet selection's pT, |eta| and
msoftdrop cuts, read by :meth:`jettag.tagger.Tagger.load`), and write
``training.json`` (samples, settings, jet counts, history) for the model card.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from jettag.samples.dataset import JetDataset, load_jets
from jettag.samples.files import file_info
from jettag.samples.labelling import TAGGER_CLASSES, JetSelection
from jettag.tagger.phase_space import PhaseSpace
from jettag.training import highlevel, models
from jettag.training.fit import TrainConfig, export_onnx, fit_network
from jettag.training.standardisation import standardised_preprocess
from jettag.training.weights import class_balance_weights, mass_weights

__all__ = ["RECIPES", "Recipe", "jet_weights", "train_tagger", "with_overrides"]


@dataclass(frozen=True)
class Recipe:
    """How a reference tagger is built: model kind, architecture, training settings."""

    name: str
    description: str
    kind: str  # "network" or "bdt"
    architecture: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    bdt: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "pnet-lite": Recipe(
        "pnet-lite",
        "particle-cloud tagger of the ParticleNet family: EdgeConv (k=8) on PF candidates + SVs",
        "network",
        "particlenet-lite",
        TrainConfig(epochs=12, batch_size=256, learning_rate=3e-3),
    ),
    "deepsets-lite": Recipe(
        "deepsets-lite",
        "Deep Sets / Energy-Flow-Network style tagger on PF candidates + SVs (fast)",
        "network",
        "deepsets",
        TrainConfig(epochs=12, batch_size=256, learning_rate=3e-3),
    ),
    "bdt-hl": Recipe(
        "bdt-hl",
        "gradient-boosted trees (XGBoost) on high-level jet, track-IP and SV observables "
        "(DeepCSV-like baseline)",
        "bdt",
        bdt={"n_estimators": 400, "max_depth": 4, "learning_rate": 0.1},
    ),
}

OUTPUT_NAMES = tuple(f"prob{c}" for c in TAGGER_CLASSES)


def _spec(recipe: Recipe) -> dict[str, Any]:
    spec = highlevel.highlevel_inputs() if recipe.kind == "bdt" else models.input_blocks(recipe.architecture)
    spec["output_names"] = list(OUTPUT_NAMES)
    return spec


def jet_weights(data: JetDataset, mass_weighting: str) -> np.ndarray:
    """Per-jet training weights: each signal class reweighted to QCD's mass shape (or not)."""
    return mass_weights(
        data.label, data.msoftdrop, data.pt, reference=data.classes.index("QCD"), mode=mass_weighting
    )


def train_tagger(
    recipe: Recipe | str,
    files: Sequence[str | Path],
    out_dir: str | Path,
    *,
    mass_weighting: str = "msd",
    config: TrainConfig | None = None,
    max_jets_per_file: int | None = None,
    selection: JetSelection | None = None,
    processes: Sequence[str | None] | None = None,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` on ``files`` and write the model directory ``out_dir``; returns training.json.

    ``processes``: the process of each file (``xbb``, ``qcd``...), for files
    without jettag metadata such as CMS PFNano; by default read from the files.
    """
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; known: {sorted(RECIPES)}")
        recipe = RECIPES[recipe]
    log = log or (lambda line: None)
    train_config = config or recipe.train
    alpha = train_config.focal_alpha
    if alpha is not None and len(alpha) != len(TAGGER_CLASSES):
        raise ValueError(f"focal alpha needs {len(TAGGER_CLASSES)} values ({', '.join(TAGGER_CLASSES)}), got {len(alpha)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    spec = _spec(recipe)
    selection = selection or JetSelection()

    if recipe.kind == "network":
        # weaver's automatic standardisation, from the raw values of a subset of the jets
        spec = standardised_preprocess(
            files, spec, identity_blocks=models.IDENTITY_BLOCKS, selection=selection, processes=processes
        )
    data = load_jets(
        files, preprocess=spec, selection=selection, processes=processes, max_jets_per_file=max_jets_per_file
    )
    counts = data.counts()
    missing = [c for c, n in counts.items() if n == 0]
    if missing:
        raise ValueError(f"no training jets of class {missing}; give files of every class {TAGGER_CLASSES}")
    log(f"{len(data)} training jets: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    weights = jet_weights(data, mass_weighting)

    model_path = out_dir / "model.onnx"
    if recipe.kind == "bdt":
        extractor = highlevel.extractor_onnx()
        features = highlevel.extract(data.inputs, extractor)
        settings = dict(recipe.bdt)
        seed = train_config.seed
        bdt, history = highlevel.fit_bdt(
            features, data.label, class_balance_weights(data.label, weights),
            n_classes=len(TAGGER_CLASSES), seed=seed, threads=train_config.threads, **settings,
        )
        log(f"XGBoost: {bdt.best_iteration + 1} rounds kept (validation mlogloss {history[bdt.best_iteration]['val_loss']:.4f})")
        check = {k: v[:500] for k, v in data.inputs.items()}
        model_path.write_bytes(highlevel.merge_bdt(bdt, check, extractor=extractor))
        details: dict[str, Any] = {"bdt": settings, "rounds_kept": int(bdt.best_iteration + 1), "seed": seed,
                                   "class_weights": "balanced", "hl_features": list(highlevel.HL_FEATURES)}
    else:
        net = models.build_model(recipe.architecture, len(TAGGER_CLASSES), seed=train_config.seed)
        net, history = fit_network(
            net, data.inputs, data.label, weights, train_config, input_names=spec["input_names"], log=log
        )
        export_onnx(net, {k: data.inputs[k] for k in spec["input_names"]}, model_path)
        n_params = sum(p.numel() for p in net.parameters())
        details = {"architecture": recipe.architecture, "parameters": int(n_params),
                   "train_config": train_config.to_dict()}
    (out_dir / "preprocess.json").write_text(json.dumps(spec, indent=1))
    PhaseSpace.from_selection(selection).write(out_dir)
    info = {
        "name": recipe.name,
        "description": recipe.description,
        "kind": recipe.kind,
        "classes": list(TAGGER_CLASSES),
        "output_names": list(OUTPUT_NAMES),
        "selection": selection.__dict__,
        "mass_weighting": mass_weighting,
        "training_files": [file_info(f) for f in files],
        "training_jets": counts,
        "max_jets_per_file": max_jets_per_file,
        "history": history,
        "command": command,
        "seconds": round(time.perf_counter() - t_start, 1),
        "model_bytes": model_path.stat().st_size,
        "platform": {"python": platform.python_version(), "machine": platform.machine()},
        **details,
    }
    (out_dir / "training.json").write_text(json.dumps(info, indent=1))
    log(f"trained in {info['seconds']} s: model.onnx ({info['model_bytes'] / 1024:.0f} kB), preprocess.json")
    return info


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """``config`` with the non-None ``overrides`` applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
