"""Pythia 8 as a columnar event source.

``PythiaSource`` wraps one initialised ``pythia8mc.Pythia`` and hands out
batches of events as a flat awkward *particle table* (one record per Pythia
event-record entry), the input of the detector simulation. Batches come from
``Pythia.nextBatch``, which fills awkward arrays in C++, so there is no
per-particle Python loop.

Particle-table fields (per event, one entry per Pythia record line, index 0 is
Pythia's "system" line so that Pythia's mother/daughter indices stay valid):

``pdgId, status`` (Pythia status, negative = not final), ``mother1, mother2,
daughter1, daughter2`` (Pythia indices), ``px, py, pz, e, mass`` (GeV),
``vx, vy, vz, vt`` (production vertex, mm, Pythia units), ``tau`` (proper
lifetime, mm/c).

Event-level fields: ``weight`` (the generator weight).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from jettag.processes import Process

__all__ = ["PythiaSource", "pythia_seed", "to_particle_table"]

#: Pythia accepts seeds in [1, 900_000_000].
_MAX_PYTHIA_SEED = 900_000_000


def pythia_seed(seed_sequence: np.random.SeedSequence) -> int:
    """A Pythia seed drawn from a numpy SeedSequence (so chunks are independent)."""
    return int(seed_sequence.generate_state(1, dtype=np.uint32)[0]) % _MAX_PYTHIA_SEED + 1


def to_particle_table(batch: ak.Array) -> ak.Array:
    """Flatten ``Pythia.nextBatch`` output into the particle table described above."""
    prt = batch["prt"]
    p4 = prt["p"]
    vtx = ak.fill_none(prt["vProd"], {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0})
    table = ak.zip(
        {
            "pdgId": prt["id"],
            "status": prt["status"],
            "mother1": prt["mother1"],
            "mother2": prt["mother2"],
            "daughter1": prt["daughter1"],
            "daughter2": prt["daughter2"],
            "px": p4["px"],
            "py": p4["py"],
            "pz": p4["pz"],
            "e": p4["e"],
            "mass": prt["m"],
            "vx": vtx["px"],
            "vy": vtx["py"],
            "vz": vtx["pz"],
            "vt": vtx["e"],
            "tau": prt["tau"],
        },
        with_name=None,
    )
    weights = batch["info"]["weights"]
    weight = ak.to_numpy(ak.fill_none(ak.firsts(weights), 1.0)).astype(np.float64)
    return ak.Array({"particles": table, "weight": weight})


class PythiaSource:
    """One initialised Pythia generator for a process, tune and seed."""

    def __init__(self, process: Process, tune: str, seed: int, extra_settings: tuple[str, ...] = ()):
        import pythia8mc

        self.process = process
        self.tune = tune
        self.seed = seed
        self._pythia = pythia8mc.Pythia("", False)
        settings = (
            *process.pythia_settings(tune),
            *extra_settings,
            "Random:setSeed = on",
            f"Random:seed = {seed}",
        )
        for line in settings:
            if not self._pythia.readString(line):
                raise RuntimeError(f"Pythia rejected the setting {line!r}")
        if not self._pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process {process.name!r}")

    def next_batch(self, n_events: int) -> ak.Array:
        """Generate ``n_events`` events; returns ``{particles, weight}`` records."""
        return to_particle_table(self._pythia.nextBatch(n_events))

    def raw_batch(self, n_events: int) -> ak.Array:
        """Pythia's own ``nextBatch`` output, untouched (for benchmarks)."""
        return self._pythia.nextBatch(n_events)

    def cross_section_pb(self) -> float:
        """Pythia's estimate of the generated cross section, in pb."""
        return float(self._pythia.infoPython().sigmaGen()) * 1e9
