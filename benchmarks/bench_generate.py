"""Speed of ``jettag generate`` against plain Pythia, and its scaling with workers.

Every measurement is a whole process, timed from the outside: interpreter
start-up, imports, Pythia initialisation and the events, as a user waits for
them. In each repetition, interleaved to share the machine's noise:
  (a) plain Pythia: ``python -c`` importing only ``pythia8mc``, the process's
      settings (computed here, passed on the command line), ``Pythia.init`` and
      ``next()`` until N events;
  (b) ``jettag generate`` for the same process and N, one worker;
  (c) ``jettag generate`` with two workers;
  (d) with ``--startup``: (a) and (b) for 10 events, whose difference is
      jettag's fixed start-up cost.
Prints each time's median over the repetitions, the rate ratio (a)/(b) (target
>= 0.70) and the speed-up (b)/(c) (target >= 1.6 at 2,000 events).

    python benchmarks/bench_generate.py --process zbb --events 2000 --repeat 3 --startup
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PLAIN_PYTHIA = """
import json, sys, pythia8mc
settings, n = json.loads(sys.argv[1]), int(sys.argv[2])
pythia = pythia8mc.Pythia("", False)
for line in (*settings, "Random:setSeed = on", "Random:seed = 7"):
    pythia.readString(line)
pythia.init()
done = 0
while done < n:
    done += bool(pythia.next())
"""


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--process", default="zbb")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--no-two-workers", action="store_true", help="skip (c)")
    parser.add_argument("--startup", action="store_true", help="also time 10-event runs (d)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    from jettag.generator.processes import get_process

    settings = json.dumps(list(get_process(args.process).pythia_settings("mc")))
    keys = ["pythia", "jettag_1"] + ([] if args.no_two_workers else ["jettag_2"])
    keys += ["pythia_10", "jettag_10"] if args.startup else []
    times: dict[str, list[float]] = {k: [] for k in keys}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "bench.root")

        def jettag(n: int, workers: int) -> list[str]:
            return [sys.executable, "-m", "jettag.cli", "generate", "--process", args.process,
                    "--events", str(n), "--seed", "7", "--out", out, "--force", "--no-progress",
                    "--chunk-size", str(args.chunk_size), "--workers", str(workers)]  # fmt: skip

        commands = {
            "pythia": [sys.executable, "-c", PLAIN_PYTHIA, settings, str(args.events)],
            "jettag_1": jettag(args.events, 1),
            "jettag_2": jettag(args.events, 2),
            "pythia_10": [sys.executable, "-c", PLAIN_PYTHIA, settings, "10"],
            "jettag_10": jettag(10, 1),
        }
        for rep in range(args.repeat):
            for key in keys:
                times[key].append(_time(commands[key]))
            print(f"repetition {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "process": args.process,
        "events": args.events,
        "repeat": args.repeat,
        **{f"median_s_{k}": v for k, v in med.items()},
        "rate_ratio_jettag_over_pythia": med["pythia"] / med["jettag_1"],
    }
    if "jettag_2" in med:
        figures["speedup_2_workers"] = med["jettag_1"] / med["jettag_2"]
    if args.startup:
        figures["startup_s_jettag_minus_pythia"] = med["jettag_10"] - med["pythia_10"]
    print()
    for key in keys:
        n = 10 if key.endswith("_10") else args.events
        print(f"{key:<10} median {med[key]:7.2f} s   {n / med[key]:7.1f} events/s   (runs: "
              + ", ".join(f"{t:.2f}" for t in times[key]) + ")")
    print(f"jettag (1 worker) keeps {figures['rate_ratio_jettag_over_pythia']:.1%} of plain Pythia's rate "
          "(whole processes, start-up included; target >= 70%)")
    if "speedup_2_workers" in figures:
        print(f"2 workers are {figures['speedup_2_workers']:.2f}x as fast as 1 (target >= 1.6)")
    if args.startup:
        print(f"fixed start-up cost of jettag over plain Pythia (10-event runs): "
              f"{figures['startup_s_jettag_minus_pythia']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
