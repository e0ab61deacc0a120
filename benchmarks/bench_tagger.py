"""Benchmark of jettag's tagger (issue 3 targets).

For two weaver-layout ONNX models built here with onnx.helper (a light Deep-Sets
tagger, and a ParticleNet-sized EdgeConv network: ~350k parameters, k=16 over
100 candidates), on pfnano.root's fat jets replicated many times:

(a) onnxruntime alone on pre-built input tensors (same session, batch size);
(b) jettag from NanoEvents arrays (in memory) to per-jet scores;
(c) input building in the per-variable ``ak.pad_none`` style
    (pad_none(x, 100, clip=True) -> fill_none -> to_numpy, then np.stack),
    compared with jettag's full input building (features + normalisation + padding).

Targets: (b)/(a) >= 0.8 for both models; jettag input building >= 20x (c).

Run: python benchmarks/bench_tagger.py [--reps 3] [--jets 5000] [--pnet-jets 480]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import awkward as ak
import numpy as np

from jettag.tagger import Tagger
from jettag.tagger.tagger import _Chunk, _prepare
from jettag.tagger.testing import (
    count_parameters,
    deepsets_model,
    particlenet_like_model,
    pnet_md_preprocess,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pfnano.root"
COLLECTIONS = ("FatJet", "FatJetPFCands", "PFCands", "FatJetSVs", "SV")


def load_events(path: Path):
    from coffea.nanoevents import NanoEventsFactory, PFNanoAODSchema

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NanoEventsFactory.from_root(
            {str(path): "Events"}, schemaclass=PFNanoAODSchema, mode="eager"
        ).events()


def replicate(events, tagger: Tagger, n_jets: int):
    """The tagger's columns of ``events``, replicated to about ``n_jets`` fat jets, in memory."""
    per_copy = int(ak.sum(ak.num(events.FatJet)))
    reps = max(1, round(n_jets / per_copy))
    columns = {}
    for coll, field in {tuple(c.split(".")) for c in tagger.columns}:
        columns.setdefault(coll, {})[field] = events[coll][field]
    for coll, field in tagger._plan.keys:  # collections read for their counts only
        if field == "#counts" and coll not in columns:
            columns[coll] = {"pt": events[coll]["pt"]}
    sub = ak.zip({c: ak.zip(f, depth_limit=2) for c, f in columns.items()}, depth_limit=1)
    big = ak.to_packed(ak.concatenate([sub] * reps))
    return big, per_copy * reps


def timeit(fn, reps: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_model(label: str, tagger: Tagger, events, n_jets: int, reps: int) -> dict[str, float]:
    big, n = replicate(events, tagger, n_jets)
    session = tagger._session()
    inputs = tagger.inputs(big)

    def run_ort():
        for j0 in range(0, n, tagger.batch_size):
            j1 = min(j0 + tagger.batch_size, n)
            session.run([tagger._output_name], {k: v[j0:j1] for k, v in inputs.items()})

    def run_jettag():
        tagger(big)

    keys = tagger._plan.keys

    def build_jettag():
        chunk = _Chunk.from_arrays({k: _column(big, k) for k in keys})
        prepared = _prepare(tagger._plan, chunk)
        prepared.batch(tagger._plan, 0, prepared.n_jets)

    # (c) per-variable pad_none on jet-jagged (already normalised) features
    chunk = _Chunk.from_arrays({k: _column(big, k) for k in keys})
    prepared = _prepare(tagger._plan, chunk)
    jagged = {}
    for bp in tagger._plan.blocks:
        if bp.block.length is None:
            continue
        layout = prepared.layouts[bp.level.name]
        counts = np.diff(layout.offsets)
        vals = prepared.values[bp.block.name]
        jagged[bp.block.name] = (
            bp.block.length,
            [ak.unflatten(vals[v], counts) for v in range(len(vals))],
        )

    def build_padnone():
        for length, per_var in jagged.values():
            cols = [
                ak.to_numpy(ak.fill_none(ak.pad_none(x, length, clip=True), 0.0)) for x in per_var
            ]
            np.stack(cols, axis=1).astype(np.float32)

    t_a = np.median(timeit(run_ort, reps))
    t_b = np.median(timeit(run_jettag, reps))
    t_build = np.median(timeit(build_jettag, max(reps, 5)))
    t_c = np.median(timeit(build_padnone, reps))
    res = {
        "jets": n,
        "a_ort_jets_s": n / t_a,
        "b_jettag_jets_s": n / t_b,
        "b_over_a": t_a / t_b,
        "build_jettag_jets_s": n / t_build,
        "c_padnone_jets_s": n / t_c,
        "build_speedup": t_c / t_build,
    }
    print(
        f"{label:<16} jets={n:>6}  (a) ort {res['a_ort_jets_s']:>9.0f} jets/s   "
        f"(b) jettag {res['b_jettag_jets_s']:>9.0f} jets/s   (b)/(a) = {res['b_over_a']:.3f}\n"
        f"{'':<16} input building: jettag {res['build_jettag_jets_s']:>9.0f} jets/s   "
        f"(c) pad_none {res['c_padnone_jets_s']:>7.0f} jets/s   speed-up = {res['build_speedup']:.1f}x",
        flush=True,
    )
    return res


def _column(big, key):
    coll, field = key
    return ak.num(big[coll], axis=1) if field == "#counts" else big[coll][field]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions (median reported)")
    ap.add_argument("--jets", type=int, default=5000, help="fat jets for the Deep-Sets model")
    ap.add_argument(
        "--pnet-jets", type=int, default=480, help="fat jets for the ParticleNet-sized model"
    )
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = ap.parse_args(argv)
    if not DATA.is_file():
        print(f"skipped: {DATA} not present", file=sys.stderr)
        return 0
    events = load_events(DATA)
    import os

    print(
        f"jettag tagger benchmark: {os.cpu_count()} CPU cores, onnxruntime threads={args.threads or 'default'}, "
        f"batch size {args.batch_size}, {args.reps} repetitions (medians)"
    )
    kw = {"batch_size": args.batch_size, "threads": args.threads}
    ds_pp = pnet_md_preprocess(points=False)
    ds_model = deepsets_model(25, 12)
    pn_model = particlenet_like_model()
    print(
        f"models: deep-sets {count_parameters(ds_model)} parameters; "
        f"particlenet-like {count_parameters(pn_model)} parameters (EdgeConv k=16, 100 candidates)"
    )
    results = {
        "deep-sets": bench_model(
            "deep-sets", Tagger(ds_model, ds_pp, name="ds", **kw), events, args.jets, args.reps
        ),
        "particlenet": bench_model(
            "particlenet-like",
            Tagger(pn_model, pnet_md_preprocess(), name="pn", **kw),
            events,
            args.pnet_jets,
            args.reps,
        ),
    }
    ok = all(r["b_over_a"] >= 0.8 for r in results.values()) and all(
        r["build_speedup"] >= 20 for r in results.values()
    )
    print("targets (b)/(a) >= 0.8 and input building >= 20x pad_none:", "MET" if ok else "NOT MET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
