"""Score ROOT files into a friend tree (the work behind ``jettag tag``).

The friend file holds one tree ``Events`` with, per event, ``nFatJet`` and per
fat jet ``FatJet_<tagger>_<class>`` (float32). Its entries follow the input files
in the order given (a TChain of them), event by event and jet by jet, so
``tree.AddFriend`` in ROOT/RDataFrame or a side-by-side ``uproot`` read lines up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from jettag.tagger.features import JET
from jettag.tagger.tagger import Tagger

__all__ = ["FriendSummary", "tag_files"]


@dataclass(frozen=True)
class FriendSummary:
    """What ``tag_files`` wrote."""

    out: Path
    n_files: int
    n_events: int
    n_jets: int
    branches: tuple[str, ...]

    def describe(self) -> str:
        """One line for the terminal."""
        return (
            f"wrote {self.out}: tree Events, {self.n_events} events, {self.n_jets} fat jets "
            f"from {self.n_files} file(s); branches {', '.join(self.branches)}"
        )


def _user_error(message: str) -> Exception:
    from jettag.cli import UserError

    return UserError(message)


def _open_tree(path: Path, tree: str, branches: Sequence[str]):
    try:
        f = uproot.open(path)
    except FileNotFoundError:
        raise _user_error(f"{path}: no such file") from None
    except Exception as err:
        detail = " ".join(str(err).split())  # uproot's messages span lines; keep one
        raise _user_error(
            f"{path}: not a readable ROOT file ({type(err).__name__}: {detail})"
        ) from None
    if tree not in f:
        f.close()
        raise _user_error(f"{path}: has no tree {tree!r}")
    t = f[tree]
    missing = [b for b in branches if b not in t]
    if missing:
        f.close()
        raise _user_error(f"{path}: missing branches the model needs: {', '.join(missing)}")
    return f, t


def _make_tree(fout, name: str, jet_name: str, jets: ak.Array):
    """A NanoAOD-style tree: counter ``nFatJet`` and branches ``FatJet_<field>``."""
    return fout.mktree(
        name,
        {jet_name: jets.type.content},
        counter_name=lambda counted: "n" + counted,
        field_name=lambda outer, inner: f"{outer}_{inner}",
    )


def tag_files(
    taggers: Tagger | Sequence[Tagger],
    files: Sequence[str | Path],
    out: str | Path,
    *,
    tree: str = "Events",
    step_size: int = 20_000,
    progress: bool = True,
) -> FriendSummary:
    """Score every fat jet of ``files`` with ``taggers`` and write the friend tree to ``out``.

    All files are opened and checked (tree, branches) before anything is written;
    the output appears atomically (written beside, then renamed).
    """
    taggers = [taggers] if isinstance(taggers, Tagger) else list(taggers)
    if not taggers:
        raise ValueError("no tagger given")
    names = [t.name for t in taggers]
    if len(set(names)) != len(names):
        raise _user_error(f"taggers need distinct names, got {names}")
    jet_names = {t.collections.get(JET, JET) for t in taggers}
    if len(jet_names) != 1:
        raise _user_error(
            f"all taggers must score the same jet collection, got {sorted(jet_names)}"
        )
    jet_name = jet_names.pop()
    counter = f"n{jet_name}"
    needed = list(dict.fromkeys(b for t in taggers for b in (counter, *t.branches)))
    paths = [Path(p) for p in files]
    if not paths:
        raise _user_error("no input files")
    opened = [_open_tree(p, tree, needed) for p in paths]
    total = sum(t.num_entries for _, t in opened)
    fields = [f"{t.name}_{c}" for t in taggers for c in t.class_names]
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    n_jets = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="ev", desc="jettag tag", leave=False)
    try:
        with uproot.recreate(tmp) as fout:
            out_tree = None
            for (fin, t), path in zip(opened, paths, strict=True):
                with fin:
                    for arrays in t.iterate(needed, step_size=step_size, library="ak"):
                        try:
                            record = {}
                            for tg in taggers:
                                scores = tg.score_branches(arrays)
                                for c in tg.class_names:
                                    record[f"{tg.name}_{c}"] = scores[c]
                        except (ValueError, KeyError, IndexError) as err:
                            raise _user_error(f"{path}: cannot score ({err})") from None
                        counts = ak.to_numpy(arrays[counter]).astype(np.int64)
                        jets = ak.zip(record) if record else None
                        if not np.array_equal(ak.to_numpy(ak.num(jets, axis=1)), counts):
                            raise _user_error(f"{path}: scores are misaligned with {counter}")
                        n_jets += int(counts.sum())
                        if out_tree is None:
                            out_tree = _make_tree(fout, tree, jet_name, jets)
                        out_tree.extend({jet_name: jets})
                        if bar is not None:
                            bar.update(len(counts))
            if out_tree is None:  # only empty inputs: an empty tree with the right branches
                empty = ak.unflatten(
                    ak.zip({f: np.zeros(0, np.float32) for f in fields}), np.zeros(0, np.int64)
                )
                _make_tree(fout, tree, jet_name, empty)
        os.replace(tmp, out)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    finally:
        if bar is not None:
            bar.close()
    return FriendSummary(
        out=out,
        n_files=len(paths),
        n_events=total,
        n_jets=n_jets,
        branches=(counter, *(f"{jet_name}_{f}" for f in fields)),
    )
