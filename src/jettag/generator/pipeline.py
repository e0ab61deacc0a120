"""``jettag generate``: Pythia 8 -> parametric detector -> FastJet -> PFNano file.

The work is cut into chunks of ``chunk_size`` events. Chunk ``i`` is generated
by a freshly initialised Pythia whose seed, like the detector's random stream,
is derived from ``(seed, process, tune, i)`` with ``numpy.random.SeedSequence``
(:func:`chunk_source`; the tune enters as its ``seed_key``): the file depends on
the seed and the chunk size only, not on the number of workers, and different
seeds give independent samples. Chunks are simulated in worker processes
(forked) and written in order, so memory stays bounded whatever the number of
events. Inside a chunk Pythia generates batches of at most ``BATCH_EVENTS``;
the progress bar moves batch by batch (workers report through a shared
counter). ``n_generated`` counts the events generated up to and including the
last one kept in each chunk, so ``filter_efficiency = n_events / n_generated``
is exactly 1 without a filter.

``reconstruct`` is the pure per-chunk pipeline (particle table -> PFNano
collections); ``simulate_chunk`` generates and reconstructs one chunk;
``generate`` is the edge that resolves the tune once
(:func:`jettag.generator.tunes.get_tune`), checks the outputs
(:func:`jettag.outputs.check_output`: no existing file without ``force``, no
missing folder), runs the chunks and writes. It writes to a hidden temporary
name and renames it to ``out`` only when every chunk is done (metadata
``complete: true``). An interrupted or failed run leaves nothing at ``out``: the
finished chunks are kept in ``X.incomplete.root`` (metadata ``complete: false``,
``n_requested``, ``n_events``) and :class:`GenerationInterrupted` (a
``KeyboardInterrupt``) or :class:`GenerationFailed` (a
:class:`~jettag.errors.JettagError`) says what was kept where.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import numpy as np

from jettag import __version__
from jettag.errors import JettagError, OutputError
from jettag.generator.pfnano import FORCED_DECAY_WEIGHT
from jettag.generator.processes import Process, get_process
from jettag.generator.pythia import MixtureSource, PythiaSource, make_source, pythia_seed
from jettag.generator.tunes import Tune
from jettag.outputs import check_output, partial_path
from jettag.samples.files import truth_sidecar_path

__all__ = [
    "GenerationFailed",
    "GenerationInterrupted",
    "GenerationSummary",
    "chunk_source",
    "generate",
    "incomplete_path",
    "reconstruct",
    "simulate_chunk",
]

#: Events Pythia generates per call inside a chunk: bounds a worker's memory
#: (the particle table is ~0.2 MB per event) whatever the chunk size.
BATCH_EVENTS = 250

#: Muon threshold of the ``fatjet_muon5`` filter (GeV), and its jet-muon dR.
FILTER_MUON_PT = 5.0
FILTER_MUON_DR = 0.8


def reconstruct(
    particles: ak.Array,
    tune: Tune,
    rng: np.random.Generator,
    *,
    event_filter: str | None = None,
) -> tuple[dict[str, ak.Array], np.ndarray]:
    """Detector simulation, vertexing, jet clustering and truth for one chunk.

    ``particles`` is a particle table from ``jettag.generator.pythia``; ``tune``
    gives the detector response and whether generator truth (``GenPart``) is
    kept. Returns the PFNano collections by name for the events that pass
    ``event_filter``, and the indices of those events in ``particles``.
    """
    from jettag.generator import columnar, detector, jet_tables, jets, truth, vertexing

    response = tune.detector
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
    muon_index = jet_tables.jet_muon_index(
        clustered.constituents, muons, columnar.counts(pfcands)
    )
    fatjets = ak.with_field(fatjets, muon_index, "muonIdx3SJ")
    if tune.is_mc:
        gen, muon_gen = truth.gen_particles_matched(particles, muons["genIdx"], flags=heavy)
        muons = ak.with_field(muons, muon_gen, "genPartIdx")
    collections = {
        "FatJet": fatjets,
        "SubJet": subjets,
        "PFCands": pfcands[pf_selection],
        "FatJetPFCands": pf_table,
        "SV": svs,
        "FatJetSVs": sv_table,
        "Muon": muons,
    }
    if tune.is_mc:
        collections["GenPart"] = gen
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
    """What a worker sends back: PFNano collections and event-level arrays.

    ``n_tried`` counts the events Pythia generated for this chunk up to and
    including the last one kept (generated-but-unused events of the last batch
    are not counted), so that ``n_events / n_tried`` is the filter efficiency.
    """

    collections: dict[str, ak.Array]
    event_fields: dict[str, np.ndarray]
    n_tried: int
    cross_sections_pb: dict[str, float]


def _chunk_seeds(seed: int, process: Process, tune: Tune, index: int) -> tuple[int, np.random.Generator]:
    key = [seed, zlib.crc32(process.name.encode()), tune.seed_key, index]
    pythia_ss, detector_ss = np.random.SeedSequence(key).spawn(2)
    return pythia_seed(pythia_ss), np.random.default_rng(detector_ss)


def chunk_source(
    process: str | Process, tune: str | Tune, seed: int, index: int
) -> tuple[PythiaSource | MixtureSource, np.random.Generator]:
    """The event source and the detector's random stream of chunk ``index`` (see module doc)."""
    proc = get_process(process) if isinstance(process, str) else process
    tune = proc.check_tune(tune)
    pseed, rng = _chunk_seeds(seed, proc, tune, index)
    return make_source(proc, tune, pseed), rng


def simulate_chunk(
    process: str | Process,
    tune: str | Tune,
    seed: int,
    index: int,
    n_events: int,
    chunk_size: int,
    progress: Callable[[int], object] | None = None,
) -> ChunkResult:
    """Generate, simulate and reconstruct chunk ``index`` holding ``n_events`` events.

    ``progress``, if given, is called with the number of events kept after each
    batch of at most ``BATCH_EVENTS`` generated events.
    """
    proc = get_process(process) if isinstance(process, str) else process
    tune = proc.check_tune(tune)
    source, rng = chunk_source(proc, tune, seed, index)
    kept: list[dict[str, ak.Array]] = []
    weights: list[np.ndarray] = []
    decay_weights: list[np.ndarray] = []
    components: list[np.ndarray] = []
    n_kept = 0
    n_tried = 0
    batch = min(n_events, BATCH_EVENTS)
    while n_kept < n_events:
        generated = source.next_batch(batch)
        collections, selected = reconstruct(
            generated["particles"], tune, rng, event_filter=proc.event_filter
        )
        take = np.arange(min(len(selected), n_events - n_kept))
        kept.append({k: v[take] for k, v in collections.items()})
        weights.append(ak.to_numpy(generated["weight"])[selected[take]])
        decay_weights.append(ak.to_numpy(generated["forced_decay_weight"])[selected[take]])
        if "component" in generated.fields:
            components.append(ak.to_numpy(generated["component"])[selected[take]])
        n_kept += len(take)
        if n_kept < n_events:
            n_tried += len(generated)
            # ask for enough events to finish (a filter rejects some), within the memory bound
            efficiency = max(n_kept, 1) / n_tried
            batch = int(min(BATCH_EVENTS, max(50, 1.2 * (n_events - n_kept) / efficiency)))
        else:
            # the events generated after the last one kept were not used: not counted
            n_tried += int(selected[take[-1]]) + 1
        if progress is not None and len(take):
            progress(len(take))
    merged = {name: ak.concatenate([k[name] for k in kept]) for name in kept[0]}
    first_event = index * chunk_size + 1
    event_fields = {
        "run": np.full(n_events, tune.run_number, np.uint32),
        "luminosityBlock": np.full(n_events, index + 1, np.uint32),
        "event": np.arange(first_event, first_event + n_events, dtype=np.uint64),
        "genWeight": np.concatenate(weights).astype(np.float32),
        # the forced-decay factor of genWeight alone (simulation only, see pfnano's doc)
        FORCED_DECAY_WEIGHT: np.concatenate(decay_weights).astype(np.float32),
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
    if not tune.is_mc:
        # pseudo-data are unweighted (the forced population, for gbb_mu); the sidecar keeps
        # the weight that takes their truth to the natural population
        event_fields["truth_forcedDecayWeight"] = event_fields[FORCED_DECAY_WEIGHT]
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


class GenerationInterrupted(KeyboardInterrupt):
    """``generate`` was interrupted; the message says what was kept where.

    A ``KeyboardInterrupt`` still (so Ctrl-C keeps its meaning for callers),
    raised from the original one. ``kept`` is the explicitly incomplete file
    holding the finished events (None if no event was finished).
    """

    def __init__(self, message: str, *, kept: Path | None, n_events: int, n_requested: int):
        super().__init__(message)
        self.kept = kept
        self.n_events = n_events
        self.n_requested = n_requested


class GenerationFailed(JettagError):
    """``generate`` failed (a worker raised); the message says what was kept where.

    Raised from the original error, which stays attached as ``__cause__``.
    """

    def __init__(self, message: str, *, kept: Path | None, n_events: int, n_requested: int):
        super().__init__(message)
        self.kept = kept
        self.n_events = n_events
        self.n_requested = n_requested


def incomplete_path(out: str | Path) -> Path:
    """``sample.root`` -> ``sample.incomplete.root``, the name of an interrupted run's events.

    A free name is chosen (``sample.incomplete.2.root``, ...) so that an earlier
    interrupted run's events are never overwritten; its truth sidecar is
    ``truth_sidecar_path`` of that name.
    """
    out = Path(out)
    for n in range(1, 10_000):
        tag = "incomplete" if n == 1 else f"incomplete.{n}"
        candidate = out.with_name(f"{out.stem}.{tag}{out.suffix}")
        if not candidate.exists() and not truth_sidecar_path(candidate).exists():
            return candidate
    raise OutputError(f"{out}: too many incomplete files beside it; remove some")


def _metadata(proc: Process, tune: Tune, seed: int, chunk_size: int, n_requested: int) -> dict:
    return {
        "generator": "jettag generate",
        "jettag_version": __version__,
        "process": proc.name,
        "description": proc.description,
        "tune": tune.name,
        "seed": seed,
        "chunk_size": chunk_size,
        "n_requested": n_requested,
        "complete": False,
        "weighted": bool(proc.bias) and tune.is_mc,
        # fraction of events generated with forced semileptonic B decays (jettag.generator.pythia)
        "forced_muon_fraction": proc.forced_muon_fraction,
        "event_filter": proc.event_filter,
        "pythia_settings": list(proc.pythia_settings(tune))
        if not proc.components
        else {name: list(get_process(name).pythia_settings(tune)) for name, _ in proc.components},
        "detector": asdict(tune.detector),
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


# ----------------------------------------------------------------------------- workers

#: events kept so far by every worker of the pool (set in each worker by the initializer)
_worker_counter = None


def _init_worker(counter) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; progress goes to ``counter``."""
    global _worker_counter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_counter = counter


def _report_progress(n: int) -> None:
    """Progress callback of a pool worker: add ``n`` kept events to the shared counter."""
    with _worker_counter.get_lock():
        _worker_counter.value += n


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel queued chunks and end the workers now (their chunks are lost anyway)."""
    processes = list(getattr(pool, "_processes", None) or {})
    pool.shutdown(wait=False, cancel_futures=True)
    for pid in processes:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def _numba_extensions_deferred() -> Iterator[None]:
    """Run the generator's numba kernels without loading numba's third-party extensions.

    Before its first compilation, a load from the cache included, numba imports
    every installed ``numba_extensions`` entry point: here vector's, which imports
    sympy (about 1 s of start-up, and more at exit), and awkward's. The
    generator's kernels take numpy arrays only and need neither. Inside this
    block numba is told they are loaded; afterwards (in this process) they load
    as usual at the next compilation. Forked workers keep the block's state.
    """
    try:
        from numba.core import entrypoints
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return
    if getattr(entrypoints, "_already_initialized", True):
        yield  # loaded already (or numba changed): nothing to defer
        return
    entrypoints._already_initialized = True
    try:
        yield
    finally:
        entrypoints._already_initialized = False


#: seconds between two looks at the workers' progress counter
PROGRESS_POLL_S = 0.5


def _run_chunks(
    proc: Process,
    tune: Tune,
    seed: int,
    tasks: list[tuple[int, int]],
    chunk_size: int,
    workers: int,
    consume: Callable[[ChunkResult], None],
    progress: Callable[[int], object],
) -> None:
    """Simulate ``tasks`` (index, n_events) and hand each result to ``consume``, in order."""
    if workers == 1:
        for index, n in tasks:
            consume(simulate_chunk(proc, tune, seed, index, n, chunk_size, progress=progress))
        return
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", 0)
    reported = 0
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(counter,)
    )
    try:
        pending: deque[cf.Future] = deque()
        todo = deque(tasks)
        while todo or pending:
            while todo and len(pending) < 2 * workers:
                index, n = todo.popleft()
                pending.append(
                    pool.submit(
                        simulate_chunk, proc, tune, seed, index, n, chunk_size, _report_progress
                    )
                )
            while True:
                done, _ = cf.wait([pending[0]], timeout=PROGRESS_POLL_S)
                value = counter.value
                if value > reported:
                    progress(value - reported)
                    reported = value
                if done:
                    break
            consume(pending.popleft().result())
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def generate(
    process: str,
    n_events: int,
    seed: int,
    out: str | Path,
    *,
    tune: str | Tune = "mc",
    workers: int = 1,
    chunk_size: int = 1000,
    force: bool = False,
    progress: bool = True,
) -> GenerationSummary:
    """Generate ``n_events`` events of ``process`` into the PFNano file ``out``.

    ``out`` (and, for pseudo-data, its truth sidecar) must not exist unless
    ``force``; its folder must exist. Events are written to a hidden temporary
    file (:func:`jettag.outputs.partial_path`) renamed to ``out`` at the end. If
    the run is interrupted or a worker fails, nothing is written at ``out``: the
    finished chunks are kept in :func:`incomplete_path` ``(out)``, whose metadata
    say ``complete: false``, and :class:`GenerationInterrupted` (a
    ``KeyboardInterrupt``) or :class:`GenerationFailed` says so.
    """
    from tqdm.auto import tqdm

    from jettag.generator.pfnano import PFNanoWriter

    proc = get_process(process)
    tune = proc.check_tune(tune)  # resolved once; a process may be restricted to some tunes
    if n_events <= 0 or chunk_size <= 0 or workers <= 0:
        raise ValueError("events, chunk size and workers must be positive")
    out = check_output(out, force=force)
    sidecar = None if tune.is_mc else check_output(truth_sidecar_path(out), force=force)
    tasks = [
        (i, min(chunk_size, n_events - i * chunk_size))
        for i in range((n_events + chunk_size - 1) // chunk_size)
    ]
    # FastJet prints its banner once per process: here, before the workers are forked
    from jettag.generator.jets import fastjet_banner

    fastjet_banner()
    start = time.perf_counter()
    n_tried = 0
    xsecs: list[dict[str, float]] = []
    temporary = partial_path(out)
    temporary_sidecar = None if sidecar is None else partial_path(sidecar)
    writer = PFNanoWriter(
        temporary,
        is_mc=tune.is_mc,
        truth_path=temporary_sidecar,
        metadata=_metadata(proc, tune, seed, chunk_size, n_events),
    )
    bar = tqdm(total=n_events, unit="ev", desc=f"{proc.name} ({tune.name})", disable=not progress)

    def consume(result: ChunkResult) -> None:
        nonlocal n_tried
        writer.write(result.collections, result.event_fields)
        n_tried += result.n_tried
        xsecs.append(result.cross_sections_pb)

    def finish(complete: bool) -> dict[str, float]:
        sigma = _mean_cross_sections(xsecs)
        writer.metadata.update(
            complete=complete,
            n_generated=n_tried,
            filter_efficiency=writer.n_written / n_tried if n_tried else None,
            cross_sections_pb=sigma,
            **_mixture_metadata(proc, sigma),
        )
        writer.close()
        return sigma

    try:
        try:
            with _numba_extensions_deferred():
                _run_chunks(proc, tune, seed, tasks, chunk_size, workers, consume, bar.update)
        finally:
            bar.close()
    except BaseException as err:
        kept = _keep_incomplete(writer, finish, out, temporary, sidecar, temporary_sidecar)
        message = _interrupted_message(err, kept, writer.n_written, n_events, out)
        details = {"kept": kept, "n_events": writer.n_written, "n_requested": n_events}
        if isinstance(err, KeyboardInterrupt):
            raise GenerationInterrupted(message, **details) from err
        if isinstance(err, Exception):
            raise GenerationFailed(message, **details) from err
        raise  # SystemExit and the like: the incomplete file is kept all the same
    sidecar_moved = False
    try:
        sigma = finish(complete=True)
        if sidecar is not None:
            os.replace(temporary_sidecar, sidecar)
            sidecar_moved = True
        os.replace(temporary, out)
    except BaseException:
        # closing or renaming failed: leave no half-written file, no orphaned sidecar
        for path in (temporary, temporary_sidecar):
            if path is not None:
                path.unlink(missing_ok=True)
        if sidecar_moved:
            sidecar.unlink(missing_ok=True)
        raise
    return GenerationSummary(
        process=proc.name,
        tune=tune.name,
        seed=seed,
        n_events=writer.n_written,
        n_tried=n_tried,
        out=out,
        seconds=time.perf_counter() - start,
        cross_sections_pb=sigma,
        truth_sidecar=sidecar,
    )


def _keep_incomplete(writer, finish, out, temporary, sidecar, temporary_sidecar) -> Path | None:
    """Close the temporary file as incomplete and move it to an explicitly incomplete name.

    Returns that name, or None (and the temporary files removed) when no event was
    finished or the file could not be closed.
    """
    temporaries = [p for p in (temporary, temporary_sidecar) if p is not None]
    try:
        finish(complete=False)
    except Exception:
        for path in temporaries:
            path.unlink(missing_ok=True)
        return None
    if writer.n_written == 0:
        for path in temporaries:
            path.unlink(missing_ok=True)
        return None
    kept = incomplete_path(out)
    if sidecar is not None:
        os.replace(temporary_sidecar, truth_sidecar_path(kept))
    os.replace(temporary, kept)
    return kept


def _interrupted_message(err: BaseException, kept: Path | None, n_written: int, n_requested: int, out: Path) -> str:
    """What the user reads: the CLI prints ``jettag generate: interrupted: <message>``."""
    what = "" if isinstance(err, KeyboardInterrupt) else f"failed ({type(err).__name__}: {err}) "
    where = "no finished events to keep" if kept is None else f"kept them in {kept} (marked incomplete)"
    return f"{what}after {n_written} of {n_requested} events; {where}; nothing written to {out}"
