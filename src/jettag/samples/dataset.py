"""Labelled training and evaluation jets, with model inputs built by the inference code.

:func:`load_jets` reads PFNano files chunk by chunk, labels and selects their
jets (:mod:`jettag.samples.labelling`) and, given a preprocess description, builds the
model's input tensors with :class:`jettag.tagger.InputBuilder`, the code the
:class:`~jettag.tagger.Tagger` runs at inference: a model is trained on exactly
what it will be fed. Training (:mod:`jettag.training`) and evaluation
(:mod:`jettag.evaluate`) both read jets through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from jettag.samples.labelling import (
    LABEL_BRANCHES,
    PROCESS_CLASSES,
    TAGGER_CLASSES,
    JetSelection,
    file_process,
    label_jets_of,
    resonance_of,
)
from jettag.tagger import InputBuilder, PreprocessConfig

__all__ = ["JetDataset", "load_jets"]

@dataclass
class JetDataset:
    """Selected, labelled jets: model inputs and per-jet truth, kinematics and weights."""

    inputs: dict[str, np.ndarray]
    label: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    msoftdrop: np.ndarray
    gen_weight: np.ndarray
    source: np.ndarray  # index of the file each jet comes from
    classes: tuple[str, ...] = TAGGER_CLASSES
    files: tuple[str, ...] = ()
    scores: np.ndarray | None = None  # (n, n_classes) when read with a tagger

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> JetDataset:
        """The jets at ``index`` (an integer or boolean array)."""
        return replace(
            self,
            inputs={k: v[index] for k, v in self.inputs.items()},
            label=self.label[index],
            pt=self.pt[index],
            eta=self.eta[index],
            msoftdrop=self.msoftdrop[index],
            gen_weight=self.gen_weight[index],
            source=self.source[index],
            scores=None if self.scores is None else self.scores[index],
        )

    def counts(self) -> dict[str, int]:
        """Jets per class."""
        return {c: int((self.label == i).sum()) for i, c in enumerate(self.classes)}


def _concat(parts: Sequence[JetDataset], classes: tuple[str, ...], files: tuple[str, ...]) -> JetDataset:
    keys = parts[0].inputs.keys() if parts else ()
    cat = np.concatenate
    return JetDataset(
        inputs={k: cat([p.inputs[k] for p in parts]) for k in keys},
        label=cat([p.label for p in parts]) if parts else np.zeros(0, np.int64),
        pt=cat([p.pt for p in parts]) if parts else np.zeros(0),
        eta=cat([p.eta for p in parts]) if parts else np.zeros(0),
        msoftdrop=cat([p.msoftdrop for p in parts]) if parts else np.zeros(0),
        gen_weight=cat([p.gen_weight for p in parts]) if parts else np.zeros(0),
        source=cat([p.source for p in parts]) if parts else np.zeros(0, np.int64),
        classes=classes,
        files=files,
        scores=cat([p.scores for p in parts]) if parts and parts[0].scores is not None else None,
    )


def load_jets(
    files: Sequence[str | Path],
    *,
    preprocess: PreprocessConfig | Mapping[str, Any] | None = None,
    scorer: Callable[[Mapping[str, Any]], np.ndarray] | None = None,
    scorer_branches: Sequence[str] = (),
    selection: JetSelection | None = None,
    classes: tuple[str, ...] = TAGGER_CLASSES,
    processes: Sequence[str | None] | None = None,
    max_jets_per_file: int | None = None,
    step_size: int = 20000,
) -> JetDataset:
    """Selected labelled jets of ``files``, with model inputs and/or scores.

    ``preprocess``: build these model inputs (:class:`~jettag.tagger.InputBuilder`).
    ``scorer``: called on each chunk's branches (``scorer_branches`` + the labels'),
    returns per-jet scores (n_jets_in_chunk, n_scores) in file jet order.
    ``processes``: the process of each file, for files without jettag metadata.
    ``max_jets_per_file``: keep at most this many selected jets of each file.
    """
    selection = selection or JetSelection()
    builder = InputBuilder(preprocess) if preprocess is not None else None
    processes = list(processes) if processes is not None else [None] * len(files)
    if len(processes) != len(files):
        raise ValueError(f"{len(files)} files but {len(processes)} processes")
    parts: list[JetDataset] = []
    for index, (path, process) in enumerate(zip(files, processes, strict=True)):
        process = file_process(path, process)
        cls = PROCESS_CLASSES[process]
        if cls not in classes:
            raise ValueError(f"{path}: its jets are {cls!r}, not one of the classes {classes}")
        resonance = resonance_of(process)
        try:
            tree = uproot.open(f"{path}:Events")
        except FileNotFoundError:
            raise
        except Exception as err:
            raise OSError(f"{path}: cannot read an Events tree ({err})") from None
        keys = set(tree.keys())
        wanted = set(LABEL_BRANCHES) | set(scorer_branches)
        if builder is not None:
            wanted |= set(builder.branches)
        if "genWeight" in keys:
            wanted.add("genWeight")
        if cls == "QCD":
            wanted -= {b for b in LABEL_BRANCHES if b.startswith("GenPart_")}
        missing = sorted(wanted - keys)
        if missing:
            raise OSError(f"{path}: missing branches {missing[:5]}")
        kept = 0
        for arrays in tree.iterate(sorted(wanted), step_size=step_size):
            labels = label_jets_of(arrays, cls, selection=selection, classes=classes, resonance=resonance)
            sel = np.flatnonzero(labels.selected)
            if max_jets_per_file is not None:
                sel = sel[: max(0, max_jets_per_file - kept)]
            inputs = {}
            if builder is not None:
                inputs = {k: v[sel] for k, v in builder.from_branches(arrays).items()}
            scores = None
            if scorer is not None:
                scores = np.asarray(scorer(arrays))[sel]
            parts.append(
                JetDataset(
                    inputs=inputs,
                    label=labels.label[sel],
                    pt=labels.pt[sel],
                    eta=labels.eta[sel],
                    msoftdrop=labels.msoftdrop[sel],
                    gen_weight=labels.gen_weight[sel],
                    source=np.full(len(sel), index, dtype=np.int64),
                    classes=classes,
                    scores=scores,
                )
            )
            kept += len(sel)
            if max_jets_per_file is not None and kept >= max_jets_per_file:
                break
    return _concat(parts, classes, tuple(str(f) for f in files))

