"""Speed of ``jettag generate`` against plain Pythia, and its scaling with workers.

In one run, alternating the commands to share the machine's noise:
  (a) plain Pythia: the same process settings, ``Pythia.init`` then ``next()`` N times;
  (b) ``jettag generate`` for the same process and N, one worker;
  (c) ``jettag generate`` with two workers.
Prints each time's median over the repetitions, the rate ratio (b)/(a) (target
>= 0.70) and the speed-up (b)/(c) (target >= 1.6 at 2,000 events).

    python benchmarks/bench_generate.py --process qcd --events 2000 --repeat 3
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
import sys, pythia8mc
from jettag.generator.processes import get_process
n = int(sys.argv[2])
pythia = pythia8mc.Pythia("", False)
for line in (*get_process(sys.argv[1]).pythia_settings("mc"), "Random:setSeed = on", "Random:seed = 7"):
    pythia.readString(line)
pythia.init()
done = 0
while done < n:
    done += bool(pythia.next())
"""


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--process", default="qcd")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    times: dict[str, list[float]] = {"pythia": [], "jettag_1": [], "jettag_2": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "bench.root")
        generate = [sys.executable, "-m", "jettag.cli", "generate", "--process", args.process,
                    "--events", str(args.events), "--seed", "7", "--out", out, "--no-progress",
                    "--chunk-size", str(args.chunk_size)]  # fmt: skip
        for rep in range(args.repeat):
            times["pythia"].append(_time([sys.executable, "-c", PLAIN_PYTHIA, args.process, str(args.events)]))
            times["jettag_1"].append(_time([*generate, "--workers", "1"]))
            times["jettag_2"].append(_time([*generate, "--workers", "2"]))
            print(f"repetition {rep + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "process": args.process,
        "events": args.events,
        "repeat": args.repeat,
        **{f"median_s_{k}": v for k, v in med.items()},
        **{f"rate_{k}": args.events / v for k, v in med.items()},
        "rate_ratio_jettag_over_pythia": med["pythia"] / med["jettag_1"],
        "speedup_2_workers": med["jettag_1"] / med["jettag_2"],
    }
    print()
    for key in ("pythia", "jettag_1", "jettag_2"):
        print(f"{key:<10} median {med[key]:7.2f} s   {args.events / med[key]:7.1f} events/s   (runs: "
              + ", ".join(f"{t:.1f}" for t in times[key]) + ")")
    print(f"jettag (1 worker) keeps {figures['rate_ratio_jettag_over_pythia']:.1%} of plain Pythia's rate (target >= 70%)")
    print(f"2 workers are {figures['speedup_2_workers']:.2f}x as fast as 1 (target >= 1.6)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
