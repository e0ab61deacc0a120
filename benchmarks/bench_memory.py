"""Peak memory of ``jettag generate`` for a large sample (target: under 2 GB).

Runs ``jettag generate`` as a subprocess and samples, every 0.2 s, the summed
resident memory of its whole process tree (main process and workers); prints the
peak.

    python benchmarks/bench_memory.py --events 100000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--process", default="qcd")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "big.root"
        cmd = [sys.executable, "-m", "jettag.cli", "generate", "--process", args.process, "--events",
               str(args.events), "--workers", str(args.workers), "--out", str(out), "--no-progress"]  # fmt: skip
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        watched = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.Error:
                pass
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            print(f"jettag generate failed with exit code {child.returncode}", file=sys.stderr)
            return 1
        size = out.stat().st_size
    figures = {"events": args.events, "workers": args.workers, "peak_rss_gb": peak / 1e9,
               "seconds": seconds, "file_size_mb": size / 1e6}  # fmt: skip
    print(f"{args.events} {args.process} events, {args.workers} workers: peak memory {peak / 1e9:.2f} GB "
          f"(target < 2 GB), {seconds:.0f} s, file {size / 1e6:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
