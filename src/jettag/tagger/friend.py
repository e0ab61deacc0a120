"""Score ROOT files into a friend tree (the work behind ``jettag tag``).

The friend file holds one tree, named as the input tree (``Events`` unless asked
otherwise), with per event ``run``, ``luminosityBlock`` and ``event`` copied from
the input (those of the three that every input file has; dtypes as in the input,
uint32/uint32/uint64 in NanoAOD), the counter ``nFatJet`` (int32) and, per fat
jet and class, ``FatJet_<tagger>_<class>`` (float32), taggers in the order given.
``<tagger>`` is :attr:`Tagger.name`: the model's name with each run of characters
other than letters, digits and ``_`` replaced by one ``_`` (``m_`` put in front of a
leading digit). The shipped ``pnet-lite`` gives ``FatJet_pnet_lite_Xbb``,
``FatJet_pnet_lite_Xcc``, ``FatJet_pnet_lite_Xqq`` and ``FatJet_pnet_lite_QCD``.
(With ``collections={"FatJet": "Jet"}``: ``nJet`` and ``Jet_<tagger>_<class>``.)

Its entries follow the input files in the order given (a TChain of them), event
by event and jet by jet, so ``tree.AddFriend`` in ROOT/RDataFrame or a
side-by-side ``uproot`` read lines up; ``run``/``event`` let a reader check it.
coffea's ``NanoAODSchema`` reads the friend file (``friend.run``, ``friend.event``),
but its ``FatJet`` wants kinematics (pt, eta, phi, mass) that the friend does not
hold; read the scores as flat branches (coffea's ``BaseSchema`` or uproot) and
attach them to the input's jets::

    friend = NanoEventsFactory.from_root({"friend.root": "Events"}, schemaclass=BaseSchema).events()
    assert ak.all(friend.event == events.event)
    fatjets = ak.with_field(events.FatJet, friend.FatJet_pnet_lite_Xbb, "pnet_lite_Xbb")

The output is checked (:func:`jettag.outputs.check_output`: not an input, not an
existing file unless ``force``, its folder exists) and every input opened and
checked for the branches each tagger reads before anything is scored; it is
written under a temporary name and renamed into place only when complete
(:func:`jettag.outputs.atomic_output`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from jettag.errors import InputFileError
from jettag.outputs import atomic_output, check_output
from jettag.tagger.features import JET
from jettag.tagger.sources import branch_missing_inputs, missing_inputs_error
from jettag.tagger.tagger import Tagger

__all__ = ["EVENT_ID_BRANCHES", "FriendSummary", "friend_branches", "tag_files"]

#: Per-event identifiers copied from the input into the friend tree (where present).
EVENT_ID_BRANCHES: tuple[str, ...] = ("run", "luminosityBlock", "event")


@dataclass(frozen=True)
class FriendSummary:
    """What ``tag_files`` wrote."""

    out: Path
    n_files: int
    n_events: int
    n_jets: int
    branches: tuple[str, ...]
    tree: str = "Events"

    def describe(self) -> str:
        """One line for the terminal."""
        return (
            f"wrote {self.out}: tree {self.tree}, {self.n_events} events, {self.n_jets} fat jets "
            f"from {self.n_files} file(s); branches {', '.join(self.branches)}"
        )


def friend_branches(taggers: Tagger | Sequence[Tagger]) -> tuple[str, ...]:
    """The per-jet branches a friend tree of ``taggers`` holds, counter first
    (``nFatJet``, ``FatJet_pnet_lite_Xbb``, ...); the event ids come before them."""
    taggers = [taggers] if isinstance(taggers, Tagger) else list(taggers)
    jet_name = _jet_name(taggers)
    return (f"n{jet_name}", *(f"{jet_name}_{f}" for f in _fields(taggers)))


def _jet_name(taggers: Sequence[Tagger]) -> str:
    jet_names = {t.collections.get(JET, JET) for t in taggers}
    if len(jet_names) != 1:
        raise ValueError(f"all taggers must score the same jet collection, got {sorted(jet_names)}")
    return jet_names.pop()


def _fields(taggers: Sequence[Tagger]) -> list[str]:
    return [f"{t.name}_{c}" for t in taggers for c in t.class_names]


def _open_tree(stack: ExitStack, path: Path, tree: str) -> Any:
    """The tree ``tree`` of ``path``, its file closed with ``stack``."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, not a ROOT file")
    try:
        f = stack.enter_context(uproot.open(path))
    except Exception as err:
        detail = " ".join(str(err).split())  # uproot's messages span lines; keep one
        raise InputFileError(
            f"{path}: not a readable ROOT file ({type(err).__name__}: {detail})"
        ) from None
    if tree not in f:
        raise InputFileError(f"{path}: has no tree {tree!r}")
    return f[tree]


def _check_branches(path: Path, t: Any, taggers: Sequence[Tagger], counter: str) -> None:
    present = set(t.keys())
    for tg in taggers:
        collections, branches = branch_missing_inputs(present, tg._plan.keys, tg.collections)
        if collections or branches:
            raise missing_inputs_error(
                tg.name,
                collections,
                branches,
                names=tg.collections,
                where=str(path),
                column_kind="branch(es)",
                subject="the file's events",
            )
    if counter not in present:
        raise InputFileError(f"{path}: has no branch {counter}")


def tag_files(
    taggers: Tagger | Sequence[Tagger],
    files: Sequence[str | Path],
    out: str | Path,
    *,
    tree: str = "Events",
    step_size: int = 20_000,
    force: bool = False,
    progress: bool = True,
) -> FriendSummary:
    """Score every fat jet of ``files`` with ``taggers`` and write the friend tree to ``out``.

    Before anything is scored: ``out`` is checked (not one of ``files``, not an existing
    file unless ``force``, its folder exists; :class:`~jettag.errors.OutputError`), and
    every file is opened and checked for the tree and the branches each tagger reads
    (:class:`~jettag.errors.InputFileError`, :class:`~jettag.errors.MissingInputsError`).
    The output appears atomically (written beside, then renamed); a failure leaves
    nothing at ``out`` (and an existing ``out`` untouched).
    """
    taggers = [taggers] if isinstance(taggers, Tagger) else list(taggers)
    if not taggers:
        raise ValueError("no tagger given")
    names = [t.name for t in taggers]
    if len(set(names)) != len(names):
        raise ValueError(f"taggers need distinct names, got {names}")
    jet_name = _jet_name(taggers)
    counter = f"n{jet_name}"
    paths = [Path(p) for p in files]
    if not paths:
        raise ValueError("no input files")
    out = check_output(out, inputs=paths, force=force)
    needed = list(dict.fromkeys(b for t in taggers for b in (counter, *t.branches)))
    fields = _fields(taggers)
    n_jets = 0
    with ExitStack() as stack:
        trees = [_open_tree(stack, p, tree) for p in paths]
        for path, t in zip(paths, trees, strict=True):
            _check_branches(path, t, taggers, counter)
        ids = [b for b in EVENT_ID_BRANCHES if all(b in t for t in trees)]
        id_types = {b: trees[0][b].interpretation.to_dtype for b in ids}
        total = sum(t.num_entries for t in trees)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = stack.enter_context(tqdm(total=total, unit="ev", desc="jettag tag", leave=False))
        with atomic_output(out) as tmp, uproot.recreate(tmp) as fout:
            out_tree = None
            for path, t in zip(paths, trees, strict=True):
                for arrays in t.iterate([*ids, *needed], step_size=step_size, library="ak"):
                    try:
                        record = {}
                        for tg in taggers:
                            scores = tg.score_branches(arrays)
                            for c in tg.class_names:
                                record[f"{tg.name}_{c}"] = scores[c]
                    except (ValueError, KeyError, IndexError) as err:
                        raise InputFileError(f"{path}: cannot score ({err})") from None
                    counts = ak.to_numpy(arrays[counter]).astype(np.int64)
                    jets = ak.zip(record)
                    if not np.array_equal(ak.to_numpy(ak.num(jets, axis=1)), counts):
                        raise InputFileError(f"{path}: scores are misaligned with {counter}")
                    n_jets += int(counts.sum())
                    if out_tree is None:
                        out_tree = _make_tree(fout, tree, id_types, jet_name, jets.type.content)
                    chunk = {b: ak.to_numpy(arrays[b]).astype(id_types[b]) for b in ids}
                    out_tree.extend({**chunk, jet_name: jets})
                    if bar is not None:
                        bar.update(len(counts))
            if out_tree is None:  # only empty inputs: an empty tree with the right branches
                empty = ak.unflatten(
                    ak.zip({f: np.zeros(0, np.float32) for f in fields}), np.zeros(0, np.int64)
                )
                _make_tree(fout, tree, id_types, jet_name, empty.type.content)
    return FriendSummary(
        out=out,
        n_files=len(paths),
        n_events=total,
        n_jets=n_jets,
        branches=(*ids, counter, *(f"{jet_name}_{f}" for f in fields)),
        tree=tree,
    )


def _make_tree(fout: Any, name: str, ids: dict[str, np.dtype], jet_name: str, jet_type: Any):
    """A NanoAOD-style tree: the event ids, counter ``nFatJet`` and branches ``FatJet_<field>``."""
    return fout.mktree(
        name,
        {**ids, jet_name: jet_type},
        counter_name=lambda counted: "n" + counted,
        field_name=lambda outer, inner: f"{outer}_{inner}",
    )
