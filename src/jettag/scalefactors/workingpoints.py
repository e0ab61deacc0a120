"""Named working points (L/M/T) of one tagger score: plain cuts or DDT working points.

A scale factor is measured for a working point, so the working points travel
with the template histogram and end up in the correctionlib file (``<tagger>_wp_values``).
Each point is either

* ``{"kind": "score", "cut": 0.9}``: a plain cut on the discriminant
  (``score > cut``; ``score < cut`` for ``signal_like="low"`` such as ``n2b1``), or
* ``{"kind": "ddt", "efficiency": 0.01, "map": "ddt-pnet-lite"}``: the DDT working
  point of QCD efficiency ``efficiency`` of a DDT map (a shipped map by name or a
  correctionlib file; ``"name"`` picks the correction when the file holds several):
  ``ddt.apply(map, jets, score, efficiency=...) > 0`` passes. Its recorded ``cut``
  is 0.0, the cut on the DDT value ``score - X(rho, pT)``; the QCD efficiency is
  what the point means.

The JSON record (stored beside the histogram, as :func:`jettag.ddt.write_histogram`
stores its record)::

    {"working_points": {"L": {"kind": "score", "cut": 0.8, "score": "pnet_lite XbbVsQCD",
                              "signal_like": "high"}, ...}}

Points are ordered loose to tight as given. When the names are L, M, T (any
subset), their order must be loose -> tight: increasing cuts (decreasing for
``signal_like="low"``) and decreasing DDT efficiencies among points of one kind.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jettag.errors import JettagError

__all__ = ["RECORD_KEY", "WorkingPoint", "WorkingPoints"]

#: the key of the working points in a histogram's JSON record
RECORD_KEY = "working_points"

Kind = Literal["score", "ddt"]
_KEYS: dict[str, set[str]] = {
    "score": {"kind", "cut", "score", "signal_like"},
    "ddt": {"kind", "cut", "efficiency", "map", "name", "score", "signal_like"},
}
_TIGHTNESS = ("L", "M", "T")


@dataclass(frozen=True)
class WorkingPoint:
    """One named working point; build it with :meth:`from_dict` (validated)."""

    name: str
    kind: Kind
    cut: float  # the score cut (kind "score") or 0.0, the cut on the DDT value (kind "ddt")
    efficiency: float | None = None  # kind "ddt": the QCD efficiency
    map: str | None = None  # kind "ddt": shipped map name or correctionlib file
    map_name: str | None = None  # kind "ddt": the correction in a file holding several
    score: str | None = None  # what the cut is on, e.g. "pnet_lite XbbVsQCD"
    signal_like: Literal["high", "low"] = "high"

    @classmethod
    def from_dict(cls, name: str, spec: Mapping[str, Any], *, where: str = "") -> WorkingPoint:
        """Validate one point's definition; ``where`` names the input in error messages."""
        at = f"{where}working point {name!r}"
        if not isinstance(name, str) or not name:
            raise JettagError(f"{where}working point names must be non-empty strings, got {name!r}")
        if not isinstance(spec, Mapping):
            raise JettagError(f"{at}: expected a mapping such as {{'kind': 'score', 'cut': 0.9}}")
        kind = spec.get("kind")
        if kind not in _KEYS:
            raise JettagError(f"{at}: 'kind' must be 'score' or 'ddt', got {kind!r}")
        unknown = sorted(set(spec) - _KEYS[kind])
        if unknown:
            raise JettagError(
                f"{at}: unknown keys {unknown} (a {kind} point has {sorted(_KEYS[kind])})"
            )
        signal_like = spec.get("signal_like", "high")
        if signal_like not in ("high", "low"):
            raise JettagError(f"{at}: signal_like must be 'high' or 'low', got {signal_like!r}")
        score = spec.get("score")
        if score is not None and not isinstance(score, str):
            raise JettagError(f"{at}: 'score' must be a string describing the score, got {score!r}")
        if kind == "score":
            cut = _number(spec.get("cut"), f"{at}: 'cut'")
            return cls(name, "score", cut, score=score, signal_like=signal_like)
        efficiency = _number(spec.get("efficiency"), f"{at}: 'efficiency'")
        if not 0.0 < efficiency < 1.0:
            raise JettagError(f"{at}: 'efficiency' is a QCD efficiency in (0, 1), got {efficiency}")
        ddt_map = spec.get("map")
        if not isinstance(ddt_map, str) or not ddt_map:
            raise JettagError(
                f"{at}: 'map' must name a DDT map: a shipped one (e.g. 'ddt-pnet-lite') "
                "or a correctionlib file"
            )
        if "cut" in spec and _number(spec["cut"], f"{at}: 'cut'") != 0.0:
            raise JettagError(
                f"{at}: a DDT point passes at DDT value > 0; its 'cut' is 0, not {spec['cut']}"
            )
        map_name = spec.get("name")
        if map_name is not None and not isinstance(map_name, str):
            raise JettagError(f"{at}: 'name' (the correction in the map file) must be a string")
        return cls(name, "ddt", 0.0, efficiency, ddt_map, map_name, score, signal_like)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able definition (the record's entry for this point)."""
        out: dict[str, Any] = {"kind": self.kind, "cut": self.cut}
        if self.kind == "ddt":
            out.update(efficiency=self.efficiency, map=self.map)
            if self.map_name is not None:
                out["name"] = self.map_name
        if self.score is not None:
            out["score"] = self.score
        out["signal_like"] = self.signal_like
        return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JettagError(f"{what} must be a finite number, got {value!r}")
    return float(value)


class WorkingPoints:
    """The named working points of one score, loose to tight: validated, JSON, pass/fail.

    ``WorkingPoints({"L": {"kind": "score", "cut": 0.8}, "M": ..., "T": ...}, score=...)``;
    ``score`` (a description such as ``"pnet_lite XbbVsQCD"``) and ``signal_like``
    fill in points that do not say theirs.
    """

    def __init__(
        self,
        points: Mapping[str, Mapping[str, Any] | WorkingPoint],
        *,
        score: str | None = None,
        signal_like: Literal["high", "low"] | None = None,
        where: str = "",
    ) -> None:
        if not isinstance(points, Mapping) or not points:
            raise JettagError(
                f"{where}no working points given (expected e.g. {{'L': {{...}}, ...}})"
            )
        parsed: dict[str, WorkingPoint] = {}
        for name, spec in points.items():
            if isinstance(spec, WorkingPoint):
                spec = spec.to_dict()
            spec = dict(spec)
            if score is not None:
                spec.setdefault("score", score)
            if signal_like is not None:
                spec.setdefault("signal_like", signal_like)
            parsed[name] = WorkingPoint.from_dict(name, spec, where=where)
        self._points = parsed
        self._maps: dict[tuple[str, str | None], Any] = {}
        self._check(where)

    def _check(self, where: str) -> None:
        scores = {p.score for p in self if p.score is not None}
        if len(scores) > 1:
            raise JettagError(
                f"{where}working points on different scores {sorted(scores)}; one score per set"
            )
        if len({p.signal_like for p in self}) > 1:
            raise JettagError(f"{where}working points mix signal_like 'high' and 'low'")
        # L -> M -> T must tighten (among points of one kind)
        ordered = [self._points[n] for n in _TIGHTNESS if n in self._points]
        for kind in ("score", "ddt"):
            pts = [p for p in ordered if p.kind == kind]
            for loose, tight in itertools.pairwise(pts):
                if kind == "score":
                    sign = 1.0 if loose.signal_like == "high" else -1.0
                    ok = sign * (tight.cut - loose.cut) > 0
                    what = f"cut {loose.cut} -> {tight.cut}"
                else:
                    ok = tight.efficiency < loose.efficiency  # type: ignore[operator]
                    what = f"QCD efficiency {loose.efficiency} -> {tight.efficiency}"
                if not ok:
                    raise JettagError(
                        f"{where}working point {tight.name} is not tighter than {loose.name} ({what})"
                    )

    # ------------------------------------------------------------------ container
    def __iter__(self) -> Iterator[WorkingPoint]:
        return iter(self._points.values())

    def __len__(self) -> int:
        return len(self._points)

    def __getitem__(self, name: str) -> WorkingPoint:
        try:
            return self._points[name]
        except KeyError:
            raise KeyError(f"no working point {name!r}; defined: {list(self._points)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._points

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkingPoints) and self._points == other._points

    def __repr__(self) -> str:
        return f"WorkingPoints({self.to_dict()[RECORD_KEY]!r})"

    @property
    def names(self) -> tuple[str, ...]:
        """The working-point names, loose to tight as given."""
        return tuple(self._points)

    @property
    def score(self) -> str | None:
        """What the points cut on (None when no point says)."""
        return next((p.score for p in self if p.score is not None), None)

    @property
    def signal_like(self) -> Literal["high", "low"]:
        return next(iter(self)).signal_like

    def cuts(self) -> dict[str, float]:
        """name -> recorded cut (the score cut; 0.0 on the DDT value for DDT points)."""
        return {p.name: p.cut for p in self}

    def values(self) -> dict[str, float]:
        """name -> the number that defines each point: the score cut, or for a DDT point
        its QCD efficiency (its recorded cut, 0 on the DDT value, says nothing)."""
        return {p.name: p.cut if p.kind == "score" else p.efficiency for p in self}  # type: ignore[misc]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The record: ``{"working_points": {name: definition, ...}}``."""
        return {RECORD_KEY: {p.name: p.to_dict() for p in self}}

    def to_json(self, **kwargs: Any) -> str:
        """The record as JSON text (``json.dumps`` keyword arguments pass through)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, where: str = "") -> WorkingPoints:
        """From a record ``{"working_points": {...}, ...}`` (other keys are ignored)
        or from the bare mapping of points."""
        if not isinstance(record, Mapping):
            raise JettagError(f"{where}a working-point record must be a JSON object")
        points = record.get(RECORD_KEY, record)
        return cls(points, where=where)

    @classmethod
    def require_same(
        cls, record: Mapping[str, Any], path: Path, reference: Mapping[str, Any], reference_path: Path
    ) -> WorkingPoints:
        """The working points of two records (template files, fit results), which must agree;
        otherwise a one-line error naming both files."""
        points = cls.from_dict(record, where=f"{path}: ")
        expected = cls.from_dict(reference, where=f"{reference_path}: ")
        if points != expected:
            raise JettagError(
                f"{path}: working points {points.to_dict()[RECORD_KEY]} differ from those of "
                f"{reference_path} ({expected.to_dict()[RECORD_KEY]})"
            )
        return points

    @classmethod
    def from_json(cls, source: str | Path) -> WorkingPoints:
        """From JSON text or a JSON file holding the record (a histogram's record will do)."""
        text, where = str(source), ""
        if isinstance(source, Path) or not text.lstrip().startswith("{"):
            path = Path(source)
            if not path.is_file():
                raise JettagError(f"{path}: no such working-point file")
            text, where = path.read_text(), f"{path}: "
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise JettagError(f"{where or 'working points: '}not valid JSON ({err})") from None
        return cls.from_dict(record, where=where)

    @classmethod
    def resolve(
        cls, spec: WorkingPoints | Mapping[str, Any] | str | Path, *, score: str | None = None
    ) -> WorkingPoints:
        """Working points from an object, a record (mapping) or JSON text / a JSON file.

        With ``score`` (what a processor cuts on, e.g. ``"pnet_lite XbbVsQCD"``): points
        that name another score are refused, and points that name none get this one.
        """
        if isinstance(spec, WorkingPoints):
            wps = spec
        elif isinstance(spec, Mapping):
            wps = cls.from_dict(spec)
        else:
            wps = cls.from_json(spec)
        if score is None:
            return wps
        if wps.score is not None and wps.score != score:
            raise JettagError(f"the working points cut on {wps.score!r}, not on {score!r}")
        return wps if wps.score is not None else cls({p.name: p for p in wps}, score=score)

    # ------------------------------------------------------------------ pass / fail
    def __getstate__(self) -> dict[str, Any]:
        return {"_points": self._points}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._points = state["_points"]
        self._maps = {}

    def _map(self, point: WorkingPoint) -> Any:
        from jettag import ddt

        key = (point.map, point.map_name)
        if key not in self._maps:
            self._maps[key] = ddt.read_map(point.map, point.map_name)  # type: ignore[arg-type]
        return self._maps[key]

    def passes(self, fatjets: Any, score: Any) -> dict[str, Any]:
        """name -> boolean mask (shaped like ``score``): does each jet pass that point?

        ``fatjets`` needs ``msoftdrop`` and ``pt`` for DDT points (NanoEvents
        ``FatJet``, an awkward record array or a mapping of numpy arrays);
        ``score`` is the discriminant, flat or jagged like the jets. A NaN score
        fails every point.
        """
        from jettag import ddt

        out = {}
        for p in self:
            if p.kind == "score":
                value = score if p.signal_like == "high" else -score
                cut = p.cut if p.signal_like == "high" else -p.cut
            else:
                value = ddt.apply(
                    self._map(p),
                    fatjets,
                    score,
                    efficiency=p.efficiency,  # type: ignore[arg-type]
                    signal_like=p.signal_like,
                )
                cut = 0.0
            with np.errstate(invalid="ignore"):
                out[p.name] = value > cut
        return out
