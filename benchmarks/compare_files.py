"""Compare two generated files branch by branch: are their events the same?

Compares every branch present in both ``Events`` trees and, where both files
have a truth sidecar (``X.truth.root``), every branch present in both ``Truth``
trees. Metadata strings are not compared (they record versions and counts that
may change without the events changing). Prints the number of branches
compared, each differing branch with its largest absolute difference, the
branches present in only one file, and exits 1 on any difference (0 when every
compared branch is identical, value for value).

    python benchmarks/compare_files.py /work/ref_old/zbb_mc.root zbb_mc.root
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import uproot


def _sidecar(path: Path) -> Path:
    return path.with_name(path.stem + ".truth.root")


def _difference(a: ak.Array, b: ak.Array) -> float | None:
    """None when equal value for value (NaN equal to NaN), else the largest difference."""
    if len(a) != len(b):
        return float("inf")
    if a.ndim > 1 or b.ndim > 1:
        if not ak.all(ak.num(a, axis=1) == ak.num(b, axis=1)):
            return float("inf")
        a, b = ak.flatten(a, axis=None), ak.flatten(b, axis=None)
    x = np.asarray(ak.to_numpy(a))
    y = np.asarray(ak.to_numpy(b))
    if x.dtype != y.dtype and not (x.dtype.kind in "iub" and y.dtype.kind in "iub"):
        return float("inf")
    if np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
        return None
    diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
    return float(np.nanmax(diff)) if np.any(np.isfinite(diff)) else float("inf")


def compare_trees(a: Path, b: Path, tree: str) -> tuple[int, dict[str, float], set[str], set[str]]:
    """(branches compared, {differing branch: max difference}, only in a, only in b)."""
    ta, tb = uproot.open(a)[tree], uproot.open(b)[tree]
    keys_a, keys_b = set(ta.keys()), set(tb.keys())
    common = sorted(keys_a & keys_b)
    differing: dict[str, float] = {}
    for key in common:
        diff = _difference(ta[key].array(), tb[key].array())
        if diff is not None:
            differing[key] = diff
    return len(common), differing, keys_a - keys_b, keys_b - keys_a


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)

    pairs = [(args.a, args.b, "Events")]
    sidecars = _sidecar(args.a), _sidecar(args.b)
    if sidecars[0].exists() and sidecars[1].exists():
        pairs.append((*sidecars, "Truth"))
    elif sidecars[0].exists() != sidecars[1].exists():
        print(f"only one file has a truth sidecar: {[str(s) for s in sidecars if s.exists()]}")
        return 1

    failed = False
    for a, b, tree in pairs:
        n, differing, only_a, only_b = compare_trees(a, b, tree)
        n_a, n_b = uproot.open(a)[tree].num_entries, uproot.open(b)[tree].num_entries
        print(f"{tree} ({a.name} vs {b.name}): {n_a} vs {n_b} entries, {n} common branches compared, "
              f"{len(differing)} differ")  # fmt: skip
        for key, diff in differing.items():
            print(f"  differs: {key} (max |difference| {diff:.6g})")
        if only_a:
            print(f"  only in {a.name}: {', '.join(sorted(only_a))}")
        if only_b:
            print(f"  only in {b.name}: {', '.join(sorted(only_b))}")
        failed |= bool(differing) or n == 0 or n_a != n_b
    print("IDENTICAL" if not failed else "DIFFERENT")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
