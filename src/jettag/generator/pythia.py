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

Event-level fields: ``weight`` (the generator weight: Pythia's, times the
forced-decay weight below) and ``forced_decay_weight`` (the forced-decay weight
alone, 1 for a process without forced decays), so that ``weight /
forced_decay_weight`` is Pythia's weight (the pT-hat bias weight) alone.

Forced semileptonic B decays (``Process.forced_muon_fraction = q > 0``): a
fraction q of each batch comes from a second Pythia in which every weakly
decaying B hadron may only decay through its channels with a muon, the rest
from the natural Pythia. This is a two-component importance sampling, made
exact by the balance-heuristic weight, a function of the event alone:

    w = 1 / (q * A / prod_i BR_mu(B_i) + (1 - q)),

where A = 1 if every weakly decaying B hadron B_i of the event decayed
through a muon channel (a direct muon daughter), else 0, and BR_mu is the
natural branching fraction into those channels (events without B hadrons have
A = 1 and an empty product: w = 1; events in which some B hadron decayed
without a muon can only come from the natural Pythia: w = 1 / (1 - q)).
Weighted distributions equal the natural ones; unweighted, the sample is the
*forced population* (the mixture itself), rich in muons from b decays. The
generator writes w on its own (``jettag_forcedDecayWeight``, see
``jettag.generator.pfnano``) besides the product in ``genWeight``, so that an
analysis may describe either population; pseudo-data, unweighted, are the
forced population.
"""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np

from jettag.generator import columnar
from jettag.generator.processes import Process
from jettag.generator.tunes import Tune

__all__ = [
    "WEAK_B_HADRONS",
    "MixtureSource",
    "PythiaSource",
    "forced_decay_weights",
    "make_source",
    "pythia_seed",
    "to_particle_table",
]

#: Weakly decaying B hadrons (their antiparticles share the decay table).
WEAK_B_HADRONS: tuple[int, ...] = (511, 521, 531, 541, 5122, 5132, 5232, 5332)

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


def _muon_channel_fractions(pythia) -> dict[int, float]:
    """Natural branching fraction of each weak B hadron into channels with a muon."""
    fractions = {}
    for pdg in WEAK_B_HADRONS:
        entry = pythia.particleData.particleDataEntryPtr(pdg)
        total = with_muon = 0.0
        for i in range(entry.sizeChannels()):
            channel = entry.channel(i)
            total += channel.bRatio()
            if any(abs(channel.product(k)) == 13 for k in range(channel.multiplicity())):
                with_muon += channel.bRatio()
        if total > 0 and with_muon > 0:
            fractions[pdg] = with_muon / total
    return fractions


@numba.njit(cache=True)
def _forced_weight_kernel(pdg, status, daughter1, daughter2, offsets, br_ids, br_values, q, out):
    for ev in range(len(offsets) - 1):
        start = offsets[ev]
        stop = offsets[ev + 1]
        all_muonic = True
        product = 1.0
        for i in range(start, stop):
            a = abs(pdg[i])
            k = -1
            for j in range(len(br_ids)):
                if br_ids[j] == a:
                    k = j
            if k < 0 or status[i] > 0:
                continue
            # a weakly decaying B hadron that decayed: was it through a muon channel?
            d1 = daughter1[i]
            d2 = daughter2[i]
            if d1 <= 0:
                continue
            if d2 < d1:
                d2 = d1
            has_b_daughter = False
            muonic = False
            for d in range(d1, d2 + 1):
                ad = abs(pdg[start + d])
                if ad == 13:
                    muonic = True
                for j in range(len(br_ids)):
                    if br_ids[j] == ad:
                        has_b_daughter = True
            if has_b_daughter:
                continue  # B0 <-> B0bar mixing step, not the decay
            product *= br_values[k]
            if not muonic:
                all_muonic = False
        if all_muonic:  # vacuously true without B hadrons: then w = 1
            out[ev] = 1.0 / (q / product + (1.0 - q))
        else:
            out[ev] = 1.0 / (1.0 - q)


def forced_decay_weights(particles: ak.Array, fractions: dict[int, float], q: float) -> np.ndarray:
    """The balance-heuristic weight of each event of a forced-decay mixture (see module doc)."""
    counts = columnar.counts(particles)
    offsets = columnar.offsets(counts)

    def flat(name: str) -> np.ndarray:
        return columnar.flat(particles[name], np.int64)

    ids = np.array(sorted(fractions), np.int64)
    values = np.array([fractions[i] for i in sorted(fractions)], np.float64)
    out = np.ones(len(counts), np.float64)
    _forced_weight_kernel(
        flat("pdgId"),
        flat("status"),
        flat("daughter1"),
        flat("daughter2"),
        offsets,
        ids,
        values,
        q,
        out,
    )
    return out


class PythiaSource:
    """One initialised Pythia generator for a process, tune (a Tune or its name) and seed."""

    def __init__(
        self, process: Process, tune: str | Tune, seed: int, extra_settings: tuple[str, ...] = ()
    ):
        import pythia8mc

        self.process = process
        self.tune = process.check_tune(tune)
        self.seed = seed
        settings = (*process.pythia_settings(self.tune), *extra_settings)
        self._pythia = self._start(pythia8mc, settings, seed)
        self._forced = None
        self.forced_fraction = process.forced_muon_fraction
        if self.forced_fraction > 0:
            self.muon_fractions = _muon_channel_fractions(self._pythia)
            forcing = [
                f"{pdg}:{s}"
                for pdg in self.muon_fractions
                for s in ("onMode = off", "onIfAny = 13")
            ]
            forced_seed = pythia_seed(np.random.SeedSequence([seed, 13]))
            self._forced = self._start(pythia8mc, (*settings, *forcing), forced_seed)

    def _start(self, pythia8mc, settings: tuple[str, ...], seed: int):
        pythia = pythia8mc.Pythia("", False)
        for line in (*settings, "Random:setSeed = on", f"Random:seed = {seed}"):
            if not pythia.readString(line):
                raise RuntimeError(f"Pythia rejected the setting {line!r}")
        if not pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process {self.process.name!r}")
        return pythia

    def next_batch(self, n_events: int) -> ak.Array:
        """Generate ``n_events`` events: ``{particles, weight, forced_decay_weight}`` records."""
        if self._forced is None:
            batch = to_particle_table(self._pythia.nextBatch(n_events))
            return ak.with_field(batch, np.ones(len(batch)), "forced_decay_weight")
        n_forced = round(self.forced_fraction * n_events)
        parts = [to_particle_table(self._forced.nextBatch(n_forced))] if n_forced else []
        if n_events - n_forced:
            parts.append(to_particle_table(self._pythia.nextBatch(n_events - n_forced)))
        batch = ak.concatenate(parts) if len(parts) > 1 else parts[0]
        decay_weight = forced_decay_weights(
            batch["particles"], self.muon_fractions, self.forced_fraction
        )
        batch = ak.with_field(batch, batch["weight"] * decay_weight, "weight")
        return ak.with_field(batch, decay_weight, "forced_decay_weight")

    def cross_sections_pb(self) -> dict[str, float]:
        """Pythia's estimate of the generated cross section, in pb, by process name."""
        return {self.process.name: float(self._pythia.infoPython().sigmaGen()) * 1e9}


class MixtureSource:
    """Events of several processes in fixed proportions, shuffled (``Process.components``).

    Each batch holds ``round(fraction * n)`` events of each component (the last
    takes the rest), in a random order drawn from the seed; the field
    ``component`` tells which component (index into ``process.components``)
    made each event. Events are unweighted: a mixture is pseudo-data
    (``forced_decay_weight`` is the components', for the truth sidecar).
    """

    def __init__(self, process: Process, tune: str | Tune, seed: int):
        from jettag.generator.processes import get_process

        self.process = process
        tune = process.check_tune(tune)
        sequences = np.random.SeedSequence([seed, 7]).spawn(len(process.components) + 1)
        self._sources = [
            PythiaSource(get_process(name), tune, pythia_seed(ss))
            for (name, _), ss in zip(process.components, sequences, strict=False)
        ]
        self._fractions = np.array([f for _, f in process.components])
        self._rng = np.random.default_rng(sequences[-1])

    def next_batch(self, n_events: int) -> ak.Array:
        """``n_events`` mixed events: ``{particles, weight, forced_decay_weight, component}``."""
        sizes = np.round(self._fractions * n_events).astype(int)
        sizes[-1] = n_events - sizes[:-1].sum()
        parts = []
        for index, (source, size) in enumerate(zip(self._sources, sizes, strict=True)):
            if size > 0:
                batch = source.next_batch(int(size))
                batch = ak.with_field(batch, np.full(len(batch), index, np.int32), "component")
                parts.append(ak.with_field(batch, np.ones(len(batch)), "weight"))
        mixed = ak.concatenate(parts)
        return mixed[self._rng.permutation(len(mixed))]

    def cross_sections_pb(self) -> dict[str, float]:
        """Each component's generated cross section, in pb."""
        out: dict[str, float] = {}
        for source in self._sources:
            out.update(source.cross_sections_pb())
        return out


def make_source(process: Process, tune: str | Tune, seed: int) -> PythiaSource | MixtureSource:
    """The event source of ``process``: one Pythia, or a mixture of them."""
    tune = process.check_tune(tune)
    if process.components:
        return MixtureSource(process, tune, seed)
    return PythiaSource(process, tune, seed)
