"""The score of every fat jet: a tagger's discriminant or a ``FatJet`` column.

What the DDT and scale-factor processors cut on: ``JetScore("pnet-lite", "XbbVsQCD")``
(a shipped tagger, a model directory or a :class:`~jettag.tagger.Tagger`, with a class
or ``"AVsB"`` = A / (A + B)) or ``JetScore("particleNet_XbbVsQCD")`` (a column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jettag.errors import MissingInputsError
from jettag.tagger import Tagger

__all__ = ["JetScore", "parse_discriminant"]


def parse_discriminant(
    discriminant: str, class_names: Sequence[str]
) -> tuple[str, tuple[str, ...]]:
    """``"XbbVsQCD"`` -> ("Xbb", ("Xbb", "QCD")); ``"Xbb"`` -> ("Xbb", ())."""
    if "Vs" in discriminant:
        num, _, den = discriminant.partition("Vs")
        parts: tuple[str, ...] = (num, den)
        denominator: tuple[str, ...] = (num, den)
    else:
        num, parts, denominator = discriminant, (discriminant,), ()
    unknown = [p for p in parts if p not in class_names]
    if unknown:
        raise ValueError(
            f"discriminant {discriminant!r}: unknown class {unknown[0]!r}; the tagger's classes "
            f"are {list(class_names)} (write a class name or 'AVsB', e.g. 'XbbVsQCD')"
        )
    return num, denominator


class JetScore:
    """The discriminant of every fat jet: a jettag tagger's or a ``FatJet`` column.

    ``JetScore("pnet-lite", "XbbVsQCD")`` (a shipped tagger, a model directory or a
    :class:`~jettag.tagger.Tagger`, and a class or ``"AVsB"`` = A / (A + B)), or
    ``JetScore("particleNetMD_Xbb")`` (a column of the file's ``FatJet``,
    ``discriminant=None``). ``description`` says which ("pnet_lite XbbVsQCD").
    The tagger is resolved here, so a bad name fails at once; it pickles without
    its onnxruntime session.
    """

    def __init__(
        self,
        score: str | Path | Any,
        discriminant: str | None = None,
        *,
        tagger_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.tagger: Tagger | None = None
        self.column: str | None = None
        self.discriminant = discriminant
        if isinstance(score, Tagger) or discriminant is not None:
            if discriminant is None:
                raise ValueError("a tagger score needs discriminant=, e.g. 'XbbVsQCD' or 'Xbb'")
            if isinstance(score, Tagger):
                self.tagger = score
            else:
                from jettag.taggers import resolve

                self.tagger = resolve(score, **dict(tagger_options or {}))
            self._numerator, self._denominator = parse_discriminant(
                discriminant, self.tagger.class_names
            )
            self.description = f"{self.tagger.name} {discriminant}"
        else:
            if not isinstance(score, str) or not score:
                raise ValueError(f"score must be a FatJet column name or a tagger, got {score!r}")
            self.column = score
            self.description = score

    def in_phase_space(self, events: Any) -> Any:
        """The tagger's training phase space (jagged mask); all True for a column score."""
        if self.tagger is None:
            return ak.ones_like(events.FatJet.pt, dtype=bool)
        return self.tagger.in_phase_space(events)

    def __call__(self, events: Any, *, source: str = "events") -> Any:
        """The score of every fat jet (unselected; jagged like ``events.FatJet``);
        NaN where a ratio's denominator is 0."""
        if self.tagger is None:
            fields = events.FatJet.fields
            if self.column not in fields:
                present = sorted(
                    f for f in fields if "btag" in f or "Tag" in f or "Vs" in f or f.startswith("n2")
                )
                raise MissingInputsError(
                    f"{source}: no branch FatJet_{self.column} (the score column; score "
                    f"columns present: {', '.join(present) or 'none'})"
                )
            return ak.values_astype(events.FatJet[self.column], np.float64)
        try:
            scores = self.tagger(events)
        except MissingInputsError as err:
            raise MissingInputsError(f"{source}: {err}") from None
        num = ak.values_astype(scores[self._numerator], np.float64)
        if not self._denominator:
            return num
        den = sum(ak.values_astype(scores[c], np.float64) for c in self._denominator)
        return ak.where(den > 0, num / ak.where(den > 0, den, 1.0), np.nan)
