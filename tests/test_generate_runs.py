"""How ``jettag generate`` runs: safe outputs, interruptions, event counting, quiet output.

The samples here are tiny (tens of events): these tests check behaviour, not physics.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot

from jettag.errors import OutputError
from jettag.generator import pipeline
from jettag.generator.pipeline import GenerationFailed, GenerationInterrupted, generate
from jettag.outputs import partial_path
from jettag.samples.files import read_metadata, truth_sidecar_path

pytest.importorskip("pythia8mc")

ROOT = Path(__file__).resolve().parents[1]


def _tiny(out: Path, *, process: str = "zbb", n_events: int = 10, **kwargs) -> pipeline.GenerationSummary:
    options = {"seed": 3, "workers": 1, "chunk_size": 10, "progress": False} | kwargs
    seed = options.pop("seed")
    return generate(process, n_events, seed, out, **options)


# ----------------------------------------------------------------------------- outputs


def test_existing_output_needs_force(tmp_path):
    out = tmp_path / "zbb.root"
    _tiny(out)
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"zbb\.root"):
        _tiny(out, seed=4)
    assert out.read_bytes() == before  # untouched
    summary = _tiny(out, seed=4, force=True)
    assert summary.out == out and read_metadata(out)["seed"] == 4
    assert out.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zbb.root"]  # no temporary left


def test_pseudodata_sidecar_is_an_output_too(tmp_path):
    out = tmp_path / "data.root"
    truth_sidecar_path(out).write_text("an earlier sidecar")
    with pytest.raises(OutputError, match=r"data\.truth\.root"):
        _tiny(out, tune="data")
    assert not out.exists()
    _tiny(out, tune="data", force=True)
    assert uproot.open(truth_sidecar_path(out))["Truth"].num_entries == 10


def test_output_paths_refused_before_any_work(tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a refused output must be refused before any event is generated")

    monkeypatch.setattr(pipeline, "simulate_chunk", no_work)
    missing = tmp_path / "no" / "such" / "folder" / "x.root"
    with pytest.raises(OutputError, match="does not exist"):
        _tiny(missing)
    assert not (tmp_path / "no").exists()  # no silent mkdir -p
    with pytest.raises(OutputError, match="folder"):
        _tiny(tmp_path)  # a folder is not a file name
    # generate reads no file, so no output can be one of its inputs; an existing
    # sample (generated earlier, or any file) at --out is refused without force
    existing = tmp_path / "sample.root"
    existing.write_text("a sample generated earlier")
    with pytest.raises(OutputError, match=r"sample\.root: exists"):
        _tiny(existing)
    assert existing.read_text() == "a sample generated earlier"


def test_cli_refuses_an_existing_output(tmp_path, capsys):
    from jettag.cli import main

    out = tmp_path / "zbb.root"
    out.write_text("an earlier sample")
    code = main(["generate", "--process", "zbb", "--events", "5", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("jettag generate: error: ")
    assert str(out) in err and "--force" in err
    assert out.read_text() == "an earlier sample"


# ----------------------------------------------------------------------------- interruptions


def _interrupt_on(index_to_fail: int, error: BaseException):
    real = pipeline.simulate_chunk

    def chunk(process, tune, seed, index, *args, **kwargs):
        if index == index_to_fail:
            raise error
        return real(process, tune, seed, index, *args, **kwargs)

    return chunk


@pytest.mark.parametrize("tune", ["mc", "data"])
def test_interrupted_run_keeps_finished_chunks_as_incomplete(tmp_path, monkeypatch, tune):
    monkeypatch.setattr(pipeline, "simulate_chunk", _interrupt_on(1, KeyboardInterrupt()))
    out = tmp_path / "zbb.root"
    with pytest.raises(KeyboardInterrupt) as caught:
        _tiny(out, n_events=30, tune=tune)
    err = caught.value
    assert isinstance(err, GenerationInterrupted)
    kept = tmp_path / "zbb.incomplete.root"
    assert str(err) == (
        f"after 10 of 30 events; kept them in {kept} (marked incomplete); nothing written to {out}"
    )
    assert (err.kept, err.n_events, err.n_requested) == (kept, 10, 30)
    # nothing at the requested path, no temporary left, the finished chunk kept
    assert not out.exists() and not truth_sidecar_path(out).exists()
    assert not partial_path(out).exists() and not partial_path(truth_sidecar_path(out)).exists()
    meta = read_metadata(kept)
    assert meta["complete"] is False
    assert (meta["n_requested"], meta["n_events"], meta["n_generated"]) == (30, 10, 10)
    assert uproot.open(kept)["Events"].num_entries == 10
    expected = {kept.name} | ({truth_sidecar_path(kept).name} if tune == "data" else set())
    assert {p.name for p in tmp_path.iterdir()} == expected
    if tune == "data":
        assert uproot.open(truth_sidecar_path(kept))["Truth"].num_entries == 10
        assert read_metadata(truth_sidecar_path(kept))["complete"] is False

    # a second interrupted run does not overwrite the first one's events
    with pytest.raises(GenerationInterrupted, match=r"zbb\.incomplete\.2\.root"):
        _tiny(out, n_events=30, tune=tune)
    assert read_metadata(kept)["n_events"] == 10


def test_interrupted_before_any_chunk_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "simulate_chunk", _interrupt_on(0, KeyboardInterrupt()))
    out = tmp_path / "zbb.root"
    with pytest.raises(GenerationInterrupted, match="after 0 of 30 events; no finished") as caught:
        _tiny(out, n_events=30)
    assert caught.value.kept is None
    assert list(tmp_path.iterdir()) == []


def _fail_chunk_one(process, tune, seed, index, *args, **kwargs):
    """A worker error on chunk 1 (module level: pool workers must find it by name)."""
    if index == 1:
        raise RuntimeError("worker blew up")
    return _REAL_SIMULATE_CHUNK(process, tune, seed, index, *args, **kwargs)


_REAL_SIMULATE_CHUNK = pipeline.simulate_chunk


def test_worker_error_keeps_finished_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "simulate_chunk", _fail_chunk_one)
    out = tmp_path / "zbb.root"
    with pytest.raises(GenerationFailed) as caught:
        _tiny(out, n_events=40, workers=2)
    err = caught.value
    assert isinstance(err.__cause__, RuntimeError)
    assert "worker blew up" in str(err) and "after 10 of 40 events" in str(err)
    assert f"nothing written to {out}" in str(err)
    assert not out.exists()
    meta = read_metadata(err.kept)
    assert meta["complete"] is False and meta["n_events"] == 10 and meta["n_requested"] == 40


def test_cli_interrupt_is_one_line(tmp_path, monkeypatch, capsys):
    from jettag.cli import main

    monkeypatch.setattr(pipeline, "simulate_chunk", _interrupt_on(1, KeyboardInterrupt()))
    out = tmp_path / "zbb.root"
    args = ["generate", "--process", "zbb", "--events", "20", "--chunk-size", "10"]
    code = main([*args, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    kept = tmp_path / "zbb.incomplete.root"
    assert code == 130
    assert err == (
        f"jettag generate: interrupted: after 10 of 20 events; kept them in {kept} "
        f"(marked incomplete); nothing written to {out}\n"
    )
    assert not out.exists() and kept.exists()


def test_complete_file_says_so(tmp_path):
    out = tmp_path / "zbb.root"
    _tiny(out, n_events=12, chunk_size=5)
    meta = read_metadata(out)
    assert meta["complete"] is True
    assert (meta["n_requested"], meta["n_events"]) == (12, 12)


# ----------------------------------------------------------------------------- counting


def test_unfiltered_process_counts_exactly_its_events(tmp_path, monkeypatch):
    """No filter: every generated event is kept, so the efficiency is exactly 1.

    With batches of 100 a chunk of 150 events is generated as 100 + 60 events;
    the 10 generated after the last one kept must not be counted.
    """
    monkeypatch.setattr(pipeline, "BATCH_EVENTS", 100)
    out = tmp_path / "zbb.root"
    summary = generate("zbb", 300, 5, out, chunk_size=150, progress=False)
    meta = read_metadata(out)
    assert meta["n_generated"] == 300 == summary.n_tried
    assert meta["filter_efficiency"] == 1.0 == summary.filter_efficiency


def _hard_process(pdg: np.ndarray, status: np.ndarray, pt: np.ndarray) -> tuple:
    """A fingerprint of one event: its hard-process particles (id, float32 pT), in order."""
    hard = (np.abs(status) == 22) | (np.abs(status) == 23)
    return tuple(zip(pdg[hard].tolist(), pt[hard].astype(np.float32).tolist(), strict=True))


def test_filtered_process_counts_up_to_the_last_kept_event(tmp_path, monkeypatch):
    """gbb_mu: n_generated, counted independently from the event stream and the file.

    Every event the chunk's Pythia hands out is recorded in order (a fingerprint
    of its hard process); the file's last event of each chunk is found in that
    stream by its GenPart hard-process entries. The chunk generated exactly the
    events up to that position.
    """
    streams: dict[int, list[tuple]] = {}
    real_chunk_source = pipeline.chunk_source

    def recording_source(process, tune, seed, index):
        source, rng = real_chunk_source(process, tune, seed, index)
        stream = streams.setdefault(index, [])
        next_batch = source.next_batch

        def record(n):
            batch = next_batch(n)
            particles = batch["particles"]
            for ev in particles:
                px, py = np.asarray(ev["px"]), np.asarray(ev["py"])
                stream.append(_hard_process(np.asarray(ev["pdgId"]), np.asarray(ev["status"]), np.hypot(px, py)))
            return batch

        source.next_batch = record
        return source, rng

    monkeypatch.setattr(pipeline, "chunk_source", recording_source)
    out = tmp_path / "gbb_mu.root"
    generate("gbb_mu", 24, 9, out, chunk_size=12, progress=False)
    meta = read_metadata(out)
    events = uproot.open(out)["Events"].arrays(
        ["luminosityBlock", "GenPart_pdgId", "GenPart_status", "GenPart_pt", "GenPart_statusFlags"]
    )
    hard_flag = 1 << 7
    expected = 0
    for index, stream in sorted(streams.items()):
        in_chunk = events[events["luminosityBlock"] == index + 1]
        positions = []
        for ev in in_chunk:
            hard = (np.asarray(ev["GenPart_statusFlags"]) & hard_flag) > 0
            pdg = np.asarray(ev["GenPart_pdgId"])[hard]
            pt = np.asarray(ev["GenPart_pt"])[hard]
            fingerprint = tuple(zip(pdg.tolist(), pt.tolist(), strict=True))
            matches = [i for i, fp in enumerate(stream) if fp == fingerprint]
            assert len(matches) == 1, "an event of the file is not (uniquely) in the stream"
            positions.append(matches[0])
        assert positions == sorted(positions) and len(positions) == 12
        expected += positions[-1] + 1
    # events were generated after the last ones kept: counting whole batches would differ
    assert sum(len(stream) for stream in streams.values()) > expected
    assert meta["n_generated"] == expected
    assert meta["filter_efficiency"] == pytest.approx(24 / expected)
    assert 0 < meta["filter_efficiency"] < 0.5


# ----------------------------------------------------------------------------- quiet output


def test_progress_moves_per_batch_with_workers(tmp_path, monkeypatch):
    """One chunk of four batches: the bar hears of each batch, not only of the chunk."""
    monkeypatch.setattr(pipeline, "BATCH_EVENTS", 15)
    monkeypatch.setattr(pipeline, "PROGRESS_POLL_S", 0.02)
    reports: list[int] = []
    written: list[int] = []
    proc = pipeline.get_process("zbb")
    tune = proc.check_tune("mc")
    pipeline._run_chunks(
        proc, tune, 1, [(0, 60), (1, 5)], 60, 2,
        lambda result: written.append(len(result.event_fields["event"])),
        reports.append,
    )  # fmt: skip
    assert written == [60, 5]
    assert sum(reports) == 65
    assert len(reports) >= 3  # chunk 0 alone reports 4 batches; polls may merge two


def test_simulate_chunk_reports_each_batch(monkeypatch):
    monkeypatch.setattr(pipeline, "BATCH_EVENTS", 10)
    reports: list[int] = []
    result = pipeline.simulate_chunk("zbb", "mc", 2, 0, 25, 25, progress=reports.append)
    assert reports == [10, 10, 5]
    assert len(result.event_fields["event"]) == 25


def test_fastjet_banner_at_most_once(tmp_path):
    out = tmp_path / "zbb.root"
    run = subprocess.run(
        [sys.executable, "-m", "jettag.cli", "generate", "--process", "zbb", "--events", "20",
         "--chunk-size", "5", "--workers", "2", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (run.stdout + run.stderr).count("FastJet release") <= 1
    assert uproot.open(out)["Events"].num_entries == 20


def test_compare_files_tells_same_from_different(tmp_path):
    a, b = tmp_path / "a.root", tmp_path / "b.root"
    _tiny(a, n_events=6, chunk_size=3)
    _tiny(b, n_events=6, chunk_size=3, seed=4)
    script = [sys.executable, str(ROOT / "benchmarks" / "compare_files.py")]
    same = subprocess.run([*script, str(a), str(a)], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0 and "0 differ" in same.stdout and "IDENTICAL" in same.stdout
    other = subprocess.run([*script, str(a), str(b)], capture_output=True, text=True, timeout=120)
    assert other.returncode == 1 and "differs: FatJet_pt" in other.stdout


def test_generate_pulls_in_no_heavy_module(tmp_path):
    """Start-up: ``generate`` imports only what it uses (numba's extensions stay unloaded).

    coffea, dask, onnxruntime, matplotlib and torch are not needed to generate; sympy
    comes with vector's numba extension, which the generator's kernels do not need and
    numba loads again (after ``generate`` returns) at its next compilation.
    """
    code = f"""
import sys
from numba.core import entrypoints
from jettag.generator import generate
generate("zbb", 5, 1, {str(tmp_path / "z.root")!r}, chunk_size=5, progress=False)
heavy = sorted({{"coffea", "dask", "onnxruntime", "matplotlib", "torch", "sympy", "vector"}} & set(sys.modules))
assert not heavy, heavy
assert entrypoints._already_initialized is False
import numba
numba.njit(lambda x: x + 1)(1)  # the next compilation loads the extensions as usual
assert "vector" in sys.modules and entrypoints._already_initialized
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_every_generator_kernel_is_cached_on_disk():
    """Start-up: every numba kernel of the generator loads from numba's disk cache."""
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    kernels = []
    for name in ("columnar", "detector", "jets", "jet_tables", "pythia", "truth", "vertexing"):
        module = importlib.import_module(f"jettag.generator.{name}")
        kernels += [(name, k, v) for k, v in vars(module).items() if isinstance(v, CPUDispatcher)]
    assert len(kernels) >= 10
    uncached = [f"{m}.{k}" for m, k, v in kernels if isinstance(v._cache, NullCache)]
    assert not uncached


def test_sigterm_ends_generate_like_ctrl_c(tmp_path):
    """A batch system's kill (SIGTERM to the process group) keeps the finished chunks, marked incomplete."""
    import os
    import signal
    import time

    out = tmp_path / "term.root"
    command = [sys.executable, "-m", "jettag.cli", "generate", "--process", "zbb", "--events", "2000",
               "--chunk-size", "50", "--out", str(out), "--no-progress"]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    partial = partial_path(out)
    deadline = time.monotonic() + 120
    # wait for the first chunks to be written: the partial file grows past its empty-tree size
    empty_size = None
    while time.monotonic() < deadline and child.poll() is None:
        size = partial.stat().st_size if partial.exists() else 0
        if size and empty_size is None:
            time.sleep(0.3)  # the writer lays out the trees in one go
            empty_size = partial.stat().st_size
        elif empty_size is not None and size > empty_size + 50_000:
            time.sleep(1.5)  # a few more chunks of 50 events
            break
        time.sleep(0.1)
    assert child.poll() is None, "finished before it could be terminated"
    os.killpg(child.pid, signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    lines = [line for line in err.splitlines() if line.startswith("jettag generate:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "nothing written to" in lines[0]
    assert not out.exists() and not partial.exists()
    kept = tmp_path / "term.incomplete.root"
    # the same path as Ctrl-C: finished chunks (if any were finished) kept and marked incomplete
    assert ("kept them in" in lines[0]) == kept.exists()
    if kept.exists():
        meta = read_metadata(kept)
        assert meta["complete"] is False and 0 < meta["n_events"] < 2000 and meta["n_requested"] == 2000
