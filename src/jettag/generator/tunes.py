"""Tunes: what makes simulation (``mc``) and pseudo-data (``data``) differ, in one object.

A :class:`Tune` holds everything a tune changes: the Pythia settings appended
to every process, the detector response, the ``run`` number written, whether
generator truth is kept in the file (and weights allowed), and the key of its
random streams. ``generate`` resolves it once (:func:`get_tune`) and passes
the object down; nothing else branches on the tune's name.
:func:`detector_table` renders the detector parameters of every tune (the
README's table).
"""

from __future__ import annotations

from dataclasses import dataclass

from jettag.generator import detector
from jettag.generator.detector import DATA_RESPONSE, MC_RESPONSE, DetectorResponse

__all__ = ["TUNES", "Tune", "detector_table", "get_tune"]


@dataclass(frozen=True)
class Tune:
    """Generator settings and detector response of simulation or pseudo-data."""

    name: str
    description: str
    #: Pythia settings appended after a process's own
    pythia_settings: tuple[str, ...]
    detector: DetectorResponse
    #: ``run`` number written to every event
    run_number: int
    #: simulation keeps generator truth in the file (and may be weighted);
    #: pseudo-data move it to a sidecar and are never weighted
    is_mc: bool
    #: enters the seed of every chunk's random streams (with the seed, the process
    #: and the chunk index), so that the tunes draw independent events from one
    #: seed; fixed per tune, never reused: changing it changes every sample
    seed_key: int


TUNES: dict[str, Tune] = {
    "mc": Tune(
        name="mc",
        description="simulation: Pythia's Monash tune, nominal detector",
        pythia_settings=(),
        detector=MC_RESPONSE,
        run_number=1,
        is_mc=True,
        seed_key=0,
    ),
    # ``data`` moves the b-fragmentation (Bowler rFactB), the Lund a/b parameters,
    # the final-state shower alpha_s and the string pT width away from Monash by
    # a few standard deviations of their tuning uncertainties.
    "data": Tune(
        name="data",
        description="pseudo-data: other fragmentation and shower tune, degraded detector",
        pythia_settings=(
            "StringZ:rFactB = 1.10",
            "StringZ:rFactC = 1.60",
            "StringZ:aLund = 0.76",
            "StringZ:bLund = 1.02",
            "TimeShower:alphaSvalue = 0.128",
            "StringPT:sigma = 0.37",
        ),
        detector=DATA_RESPONSE,
        run_number=100001,
        is_mc=False,
        seed_key=1,
    ),
}


def get_tune(name: str | Tune) -> Tune:
    """The tune called ``name`` (a :class:`Tune` passes through)."""
    if isinstance(name, Tune):
        return name
    try:
        return TUNES[name]
    except KeyError:
        raise ValueError(f"unknown tune {name!r}; known tunes: {', '.join(TUNES)}") from None


def detector_table() -> str:
    """Every detector parameter of every tune as a markdown table (the README's table)."""
    return detector.detector_table({name: tune.detector for name, tune in TUNES.items()})
