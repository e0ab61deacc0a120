"""``jettag generate``: Pythia 8 -> parametric detector -> FastJet -> PFNano file.

The work is cut into chunks of ``chunk_size`` events. Chunk ``i`` is generated
by a freshly initialised Pythia whose seed, like the detector's random stream,
is derived from ``(seed, process, tune, i)`` with ``numpy.random.SeedSequence``:
the file depends on the seed and the chunk size only, not on the number of
workers, and different seeds give independent samples. Chunks are simulated in
worker processes and written in order, so memory stays bounded whatever the
number of events.

``reconstruct`` is the pure per-chunk pipeline (particle table -> PFNano
collections); ``generate`` is the edge that runs it in parallel and writes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import time
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from jettag import __version__
from jettag.generator.detector import RESPONSES, DetectorResponse
from jettag.generator.processes import TUNES, Process, get_process
from jettag.generator.pythia import make_source, pythia_seed

__all__ = ["GenerationSummary", "generate", "reconstruct", "simulate_chunk"]

#: ``run`` number written for simulation and for pseudo-data.
RUN_NUMBER = {"mc": 1, "data": 100001}

#: Events Pythia generates per call inside a chunk: bounds a worker's memory
#: (the particle table is ~0.2 MB per event) whatever the chunk size.
BATCH_EVENTS = 250

#: Muon threshold of the ``fatjet_muon5`` filter (GeV), and its jet-muon dR.
FILTER_MUON_PT = 5.0
FILTER_MUON_DR = 0.8


def reconstruct(
    particles: ak.Array,
    response: DetectorResponse,
    rng: np.random.Generator,
    *,
    is_mc: bool,
    event_filter: str | None = None,
) -> tuple[dict[str, ak.Array], np.ndarray]:
    """Detector simulation, vertexing, jet clustering and truth for one chunk.

    ``particles`` is a particle table from ``jettag.pythia``. Returns the PFNano
    collections by name for the events that pass ``event_filter``, and the
    indices of those events in ``particles``.
    """
    from jettag.generator import detector, jet_tables, jets, truth, vertexing

    selected = np.arange(len(particles))
    pfcands, muons = detector.simulate(particles, response, rng)
    if event_filter == "fatjet_muon5":
        # events with no muon above threshold cannot pass: skip their clustering
        has_muon = ak.to_numpy(ak.any(muons["pt"] > FILTER_MUON_PT, axis=1))
        selected = selected[has_muon]
        particles, pfcands, muons = particles[has_muon], pfcands[has_muon], muons[has_muon]
    svs = vertexing.find_secondary_vertices(pfcands, response, rng)
    clustered = jets.cluster_fatjets(pfcands)
    fatjets = clustered.fatjets
    subjets = clustered.subjets
    pf_table, pf_selection = jet_tables.jet_constituent_table(
        fatjets, pfcands, clustered.constituents
    )
    sv_table = jet_tables.jet_sv_table(fatjets, svs)
    heavy = truth.heavy_hadron_flags(particles)
    labels = truth.label_jets(fatjets, particles, flags=heavy)
    sub_labels = truth.label_jets(subjets, particles, radius=0.4, flags=heavy)
    for name in ("hadronFlavour", "nBHadrons", "nCHadrons"):
        fatjets = ak.with_field(fatjets, labels[name], name)
        subjets = ak.with_field(subjets, sub_labels[name], name)
    subjets = ak.with_field(subjets, ak.zeros_like(subjets["pt"]), "rawFactor")
    collections = {
        "FatJet": fatjets,
        "SubJet": subjets,
        "PFCands": pfcands[pf_selection],
        "FatJetPFCands": pf_table,
        "SV": svs,
        "FatJetSVs": sv_table,
        "Muon": muons,
    }
    if is_mc:
        collections["GenPart"] = truth.gen_particles(particles, flags=heavy)
    passed = _passes_filter(event_filter, collections)
    return {k: v[passed] for k, v in collections.items()}, selected[passed]


def _passes_filter(name: str | None, collections: dict[str, ak.Array]) -> np.ndarray:
    """Per-event decision of a process's event filter (all True without one)."""
    n = len(collections["FatJet"])
    if name is None:
        return np.ones(n, bool)
    if name == "fatjet_muon5":
        from jettag.samples.fatjets import jets_with_muon

        tagged = jets_with_muon(
            collections["FatJet"], collections["Muon"], pt_min=FILTER_MUON_PT, dr_max=FILTER_MUON_DR
        )
        return ak.to_numpy(ak.any(tagged, axis=1))
    raise ValueError(f"unknown event filter {name!r}")


@dataclass
class ChunkResult:
    """What a worker sends back: PFNano collections and event-level arrays."""

    collections: dict[str, ak.Array]
    event_fields: dict[str, np.ndarray]
    n_tried: int
    cross_sections_pb: dict[str, float]


def _chunk_seeds(
    seed: int, process: Process, tune: str, index: int
) -> tuple[int, np.random.Generator]:
    key = [seed, zlib.crc32(process.name.encode()), list(TUNES).index(tune), index]
    pythia_ss, detector_ss = np.random.SeedSequence(key).spawn(2)
    return pythia_seed(pythia_ss), np.random.default_rng(detector_ss)


def simulate_chunk(
    process: str | Process, tune: str, seed: int, index: int, n_events: int, chunk_size: int
) -> ChunkResult:
    """Generate, simulate and reconstruct chunk ``index`` holding ``n_events`` events."""
    proc = get_process(process) if isinstance(process, str) else process
    is_mc = tune == "mc"
    response = RESPONSES[tune]
    pseed, rng = _chunk_seeds(seed, proc, tune, index)
    source = make_source(proc, tune, pseed)
    kept: list[dict[str, ak.Array]] = []
    weights: list[np.ndarray] = []
    components: list[np.ndarray] = []
    n_kept = 0
    n_tried = 0
    batch = min(n_events, BATCH_EVENTS)
    while n_kept < n_events:
        generated = source.next_batch(batch)
        n_tried += len(generated)
        collections, selected = reconstruct(
            generated["particles"], response, rng, is_mc=is_mc, event_filter=proc.event_filter
        )
        take = np.arange(min(len(selected), n_events - n_kept))
        kept.append({k: v[take] for k, v in collections.items()})
        weights.append(ak.to_numpy(generated["weight"])[selected[take]])
        if "component" in generated.fields:
            components.append(ak.to_numpy(generated["component"])[selected[take]])
        n_kept += len(take)
        if n_kept < n_events:
            # ask for enough events to finish (a filter rejects some), within the memory bound
            efficiency = max(n_kept, 1) / n_tried
            batch = int(min(BATCH_EVENTS, max(50, 1.2 * (n_events - n_kept) / efficiency)))
    merged = {name: ak.concatenate([k[name] for k in kept]) for name in kept[0]}
    first_event = index * chunk_size + 1
    event_fields = {
        "run": np.full(n_events, RUN_NUMBER[tune], np.uint32),
        "luminosityBlock": np.full(n_events, index + 1, np.uint32),
        "event": np.arange(first_event, first_event + n_events, dtype=np.uint64),
        "genWeight": np.concatenate(weights).astype(np.float32),
        "PV_npvs": np.ones(n_events, np.int32),
        "PV_npvsGood": np.ones(n_events, np.int32),
        # the simulated primary vertex sits at the origin (Pythia's default)
        "PV_x": np.zeros(n_events, np.float32),
        "PV_y": np.zeros(n_events, np.float32),
        "PV_z": np.zeros(n_events, np.float32),
    }
    if components:
        # which component of a mixture made each event: truth, for the sidecar
        event_fields["truth_process"] = np.concatenate(components).astype(np.int32)
    return ChunkResult(
        collections=merged,
        event_fields=event_fields,
        n_tried=n_tried,
        cross_sections_pb=source.cross_sections_pb(),
    )


@dataclass
class GenerationSummary:
    """What ``generate`` did, for the CLI and the file metadata."""

    process: str
    tune: str
    seed: int
    n_events: int
    n_tried: int
    out: Path
    seconds: float
    cross_sections_pb: dict[str, float]
    truth_sidecar: Path | None = None

    @property
    def filter_efficiency(self) -> float:
        return self.n_events / self.n_tried if self.n_tried else 0.0

    def describe(self) -> str:
        """A one-paragraph human summary."""
        lines = [
            f"wrote {self.n_events} {self.process} events (tune {self.tune}, seed {self.seed}) to {self.out}",
            f"  {self.n_tried} generated, filter efficiency {self.filter_efficiency:.4f}, sigma(gen) = "
            + ", ".join(f"{v:.4g} pb ({k})" for k, v in self.cross_sections_pb.items()),
            f"  {self.seconds:.1f} s wall, {self.n_events / max(self.seconds, 1e-9):.1f} events/s",
        ]
        if self.truth_sidecar is not None:
            lines.append(f"  truth sidecar: {self.truth_sidecar}")
        return "\n".join(lines)


def _metadata(proc: Process, tune: str, seed: int, chunk_size: int) -> dict:
    return {
        "generator": "jettag generate",
        "jettag_version": __version__,
        "process": proc.name,
        "description": proc.description,
        "tune": tune,
        "seed": seed,
        "chunk_size": chunk_size,
        "weighted": bool(proc.bias) and tune == "mc",
        "event_filter": proc.event_filter,
        "pythia_settings": list(proc.pythia_settings(tune))
        if not proc.components
        else {name: list(get_process(name).pythia_settings(tune)) for name, _ in proc.components},
        "detector": asdict(RESPONSES[tune]),
    }


def _mean_cross_sections(per_chunk: list[dict[str, float]]) -> dict[str, float]:
    names = {k for chunk in per_chunk for k in chunk}
    return {k: float(np.mean([c[k] for c in per_chunk if k in c])) for k in sorted(names)}


def _mixture_metadata(proc: Process, sigma: dict[str, float]) -> dict:
    """For a mixture: each component's fraction and its enhancement over nature.

    The enhancement of component i is (f_i / f_0) / (sigma_i / sigma_0), relative
    to the first component (QCD for ``zmix``), with Pythia's generated cross
    sections for each component's own phase space.
    """
    if not proc.components or not sigma:
        return {}
    first, f0 = proc.components[0]
    rows = []
    for name, fraction in proc.components:
        ratio = sigma.get(name, float("nan")) / sigma.get(first, float("nan"))
        rows.append({"process": name, "fraction": fraction, "enhancement": (fraction / f0) / ratio})
    return {"components": rows}


def generate(
    process: str,
    n_events: int,
    seed: int,
    out: str | Path,
    *,
    tune: str = "mc",
    workers: int = 1,
    chunk_size: int = 1000,
    progress: bool = True,
) -> GenerationSummary:
    """Generate ``n_events`` events of ``process`` into the PFNano file ``out``."""
    from tqdm.auto import tqdm

    from jettag.generator.pfnano import PFNanoWriter
    from jettag.samples.files import truth_sidecar_path

    proc = get_process(process)
    if tune not in RESPONSES:
        raise ValueError(f"unknown tune {tune!r}; known tunes: {', '.join(RESPONSES)}")
    proc.pythia_settings(tune)  # a process may be restricted to some tunes
    if n_events <= 0 or chunk_size <= 0 or workers <= 0:
        raise ValueError("events, chunk size and workers must be positive")
    out = Path(out)
    tasks = [
        (i, min(chunk_size, n_events - i * chunk_size))
        for i in range((n_events + chunk_size - 1) // chunk_size)
    ]
    start = time.perf_counter()
    n_tried = 0
    xsecs: list[dict[str, float]] = []
    is_mc = tune == "mc"
    writer = PFNanoWriter(out, is_mc=is_mc, metadata=_metadata(proc, tune, seed, chunk_size))
    bar = tqdm(total=n_events, unit="ev", desc=f"{process} ({tune})", disable=not progress)

    def consume(result: ChunkResult) -> None:
        nonlocal n_tried
        writer.write(result.collections, result.event_fields)
        n_tried += result.n_tried
        xsecs.append(result.cross_sections_pb)
        bar.update(len(result.event_fields["event"]))

    try:
        if workers == 1:
            for index, n in tasks:
                consume(simulate_chunk(proc, tune, seed, index, n, chunk_size))
        else:
            context = multiprocessing.get_context("fork")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                pending: deque[cf.Future] = deque()
                todo = deque(tasks)
                while todo or pending:
                    while todo and len(pending) < 2 * workers:
                        index, n = todo.popleft()
                        pending.append(
                            pool.submit(simulate_chunk, proc, tune, seed, index, n, chunk_size)
                        )
                    consume(pending.popleft().result())
    finally:
        bar.close()
        sigma = _mean_cross_sections(xsecs)
        writer.metadata.update(
            n_generated=n_tried,
            filter_efficiency=writer.n_written / n_tried if n_tried else None,
            cross_sections_pb=sigma,
            **_mixture_metadata(proc, sigma),
        )
        writer.close()
    return GenerationSummary(
        process=process,
        tune=tune,
        seed=seed,
        n_events=writer.n_written,
        n_tried=n_tried,
        out=out,
        seconds=time.perf_counter() - start,
        cross_sections_pb=sigma,
        truth_sidecar=None if is_mc else truth_sidecar_path(out),
    )
