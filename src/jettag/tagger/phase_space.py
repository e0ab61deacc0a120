"""The jets a tagger was trained on: its phase space in pT, |eta| and soft-drop mass.

A tagger's score is only a statement about jets like those it saw in training.
Outside that phase space it extrapolates, often with confidence: on real CMS
PFNano, pnet-lite gives Xbb = 0.94 to a jet of msoftdrop 16 GeV, far below the
40 GeV it was trained from. Analyses should not cut on scores of such jets;
:meth:`jettag.tagger.Tagger.in_phase_space` gives the mask to apply first.

A model directory declares its phase space in ``phase_space.json`` beside
``model.onnx`` and ``preprocess.json`` (``jettag train`` writes it; for a model
of your own, write it by hand)::

    {"pt_min": 300.0, "abs_eta_max": 2.4, "msd_min": 40.0, "msd_max": 250.0}

meaning ``pt > pt_min``, ``|eta| < abs_eta_max`` and
``msd_min <= msoftdrop < msd_max`` (GeV), the cuts of
:class:`jettag.samples.labelling.JetSelection`; ``pt_max`` (``pt < pt_max``)
may be given too, and any bound left out (or null) is not cut on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jettag.errors import JettagError, MissingInputsError

__all__ = ["PHASE_SPACE_FILE", "PhaseSpace", "PhaseSpaceError", "load_phase_space"]

#: The file of a model directory that declares its phase space.
PHASE_SPACE_FILE = "phase_space.json"

#: jet field each bound cuts on
_FIELDS = {
    "pt_min": "pt",
    "pt_max": "pt",
    "abs_eta_max": "eta",
    "msd_min": "msoftdrop",
    "msd_max": "msoftdrop",
}


class PhaseSpaceError(JettagError, ValueError):
    """A phase space that is invalid, or asked of a tagger that declares none."""


@dataclass(frozen=True)
class PhaseSpace:
    """A training phase space: ``pt_min < pt < pt_max``, ``|eta| < abs_eta_max``,
    ``msd_min <= msoftdrop < msd_max`` (GeV); a bound that is None is not cut on.

    The inequalities are those of :class:`jettag.samples.labelling.JetSelection`,
    which selected the training jets.
    """

    pt_min: float | None = None
    pt_max: float | None = None
    abs_eta_max: float | None = None
    msd_min: float | None = None
    msd_max: float | None = None

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PhaseSpaceError(f"phase space: {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise PhaseSpaceError(f"phase space: {name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))
        if all(getattr(self, name) is None for name in _FIELDS):
            raise PhaseSpaceError(f"phase space: give at least one of {', '.join(_FIELDS)}")
        for lo, hi in (("pt_min", "pt_max"), ("msd_min", "msd_max")):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a >= b:
                raise PhaseSpaceError(f"phase space: {lo} ({a:g}) must be below {hi} ({b:g})")
        if self.abs_eta_max is not None and self.abs_eta_max <= 0:
            raise PhaseSpaceError(
                f"phase space: abs_eta_max must be positive, got {self.abs_eta_max:g}"
            )

    # ------------------------------------------------------------------ data
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseSpace:
        """From a mapping with the keys of this class (``phase_space.json``)."""
        if not isinstance(data, Mapping):
            raise PhaseSpaceError(f"phase space: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise PhaseSpaceError(
                f"phase space: unknown key(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}"
            )
        return cls(**dict(data))

    @classmethod
    def from_selection(cls, selection: Any) -> PhaseSpace:
        """From a :class:`~jettag.samples.labelling.JetSelection` (or its dict, as in training.json)."""
        data = selection if isinstance(selection, Mapping) else asdict(selection)
        return cls(**{k: data[k] for k in _FIELDS if k in data})

    def to_dict(self) -> dict[str, float]:
        """The bounds that are set (what ``phase_space.json`` holds)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def write(self, model_dir: str | Path) -> Path:
        """Write ``model_dir/phase_space.json``."""
        path = Path(model_dir) / PHASE_SPACE_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def describe(self) -> str:
        """One line, e.g. ``pT > 300 GeV, |eta| < 2.4, 40 <= msoftdrop < 250 GeV``."""
        parts = [
            _describe_range("pT", self.pt_min, self.pt_max, inclusive_min=False),
            None if self.abs_eta_max is None else f"|eta| < {self.abs_eta_max:g}",
            _describe_range("msoftdrop", self.msd_min, self.msd_max, inclusive_min=True),
        ]
        return ", ".join(part for part in parts if part)

    def __str__(self) -> str:
        return self.describe()

    # ------------------------------------------------------------------ jets
    @property
    def fields(self) -> tuple[str, ...]:
        """The jet fields the cuts read."""
        return tuple(dict.fromkeys(f for k, f in _FIELDS.items() if getattr(self, k) is not None))

    def mask(self, jets: Any, *, name: str = "phase space") -> Any:
        """True for the jets inside; shaped like ``jets`` (awkward, NanoEvents or dask-awkward).

        ``jets`` needs the fields :attr:`fields` (``pt``, ``eta``, ``msoftdrop``).
        """
        present = getattr(jets, "fields", None)
        if present is None:
            raise TypeError(f"expected a jet collection, got {type(jets).__name__}")
        missing = [f for f in self.fields if f not in present]
        if missing:
            raise MissingInputsError(
                f"{name}: the jets have no field(s) {', '.join(missing)}, which the phase space "
                f"({self.describe()}) cuts on; pass fat jets with pt, eta and msoftdrop "
                "(NanoAOD FatJet)"
            )
        cuts = []
        if self.pt_min is not None:
            cuts.append(jets.pt > self.pt_min)
        if self.pt_max is not None:
            cuts.append(jets.pt < self.pt_max)
        if self.abs_eta_max is not None:
            cuts.append(abs(jets.eta) < self.abs_eta_max)
        if self.msd_min is not None:
            cuts.append(jets.msoftdrop >= self.msd_min)
        if self.msd_max is not None:
            cuts.append(jets.msoftdrop < self.msd_max)
        out = cuts[0]
        for cut in cuts[1:]:
            out = out & cut
        return out


def _describe_range(name: str, lo: float | None, hi: float | None, *, inclusive_min: bool) -> str | None:
    """``lo < name < hi GeV`` (or one side of it); ``<=`` on the lower side when inclusive."""
    below, above = ("<=", ">=") if inclusive_min else ("<", ">")
    if lo is not None and hi is not None:
        return f"{lo:g} {below} {name} < {hi:g} GeV"
    if lo is not None:
        return f"{name} {above} {lo:g} GeV"
    if hi is not None:
        return f"{name} < {hi:g} GeV"
    return None


def load_phase_space(model_dir: str | Path) -> PhaseSpace | None:
    """The phase space ``model_dir/phase_space.json`` declares, or None without one."""
    path = Path(model_dir) / PHASE_SPACE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PhaseSpaceError(f"{path}: not valid JSON ({err})") from None
    try:
        return PhaseSpace.from_dict(data)
    except PhaseSpaceError as err:
        raise PhaseSpaceError(f"{path}: {err}") from None
