"""``jettag flatten``: flat-mass weights of a signal sample, written as correctionlib."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jettag.cli._args import add_force
from jettag.errors import InputFileError, JettagError

if TYPE_CHECKING:
    from jettag.flatmass import MassWeights

_BRANCHES = ("FatJet_msoftdrop", "FatJet_pt", "FatJet_eta")


def _edges(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated increasing bin edges."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    increasing = all(b > a for a, b in itertools.pairwise(values))
    if len(values) < 2 or not all(np.isfinite(values)) or not increasing:
        raise argparse.ArgumentTypeError(f"expected at least two finite increasing edges, got {text!r}")
    return values


def _bins(text: str) -> tuple[float, ...]:
    """argparse type: ``N,LO,HI`` -> N uniform bins from LO to HI, as edges."""
    parts = text.split(",")
    try:
        n, lo, hi = int(parts[0]), float(parts[1]), float(parts[2])
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"expected N,LO,HI, got {text!r}") from None
    if len(parts) != 3 or n < 1 or not hi > lo:
        raise argparse.ArgumentTypeError(f"expected N,LO,HI with N >= 1 and HI > LO, got {text!r}")
    return tuple(float(e) for e in np.linspace(lo, hi, n + 1))


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "flatten",
        help="flat-mass weights (msoftdrop or msoftdrop x pT) of a signal sample, as correctionlib",
        description=(
            "Derive per-jet weights that make the signal's msoftdrop distribution flat (per GeV; with "
            "--pt flat within each pT bin) or, with --reference, equal to the reference (QCD) shape, "
            "and write them as a correctionlib JSON file (inputs msoftdrop [, pt], systematic = "
            "nominal/up/down statistical). Jets outside the msoftdrop window get weight 0; pT is clamped. "
            "The weighted signal keeps its total weight in the window. `jettag train --mass-weighting` "
            "uses the same code."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="SIGNAL.root", help="signal NanoAOD files")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.json", help="correctionlib file to write")
    p.add_argument(
        "--reference", nargs="+", type=Path, default=None, metavar="QCD.root",
        help="match these files' (QCD) shape instead of a flat one",
    )
    p.add_argument("--pt", action="store_true", help="2D weights in (msoftdrop, pT)")
    edges = p.add_mutually_exclusive_group()
    edges.add_argument(
        "--msd-edges", type=_edges, default=None, metavar="E,E,...",
        help="msoftdrop bin edges in GeV (default: 10-GeV bins 40-250)",
    )
    edges.add_argument("--msd-bins", type=_bins, default=None, metavar="N,LO,HI", help="N uniform msoftdrop bins")
    p.add_argument(
        "--pt-edges", type=_edges, default=None, metavar="E,E,...",
        help="pT bin edges in GeV with --pt (default: 300,350,400,450,500,600,700,850,1000,1500,10000)",
    )
    p.add_argument("--pt-min", type=float, default=300.0, help="jet selection: pT > PT_MIN GeV (default 300)")
    p.add_argument("--abs-eta-max", type=float, default=2.4, help="jet selection: |eta| < MAX (default 2.4)")
    weighted = p.add_mutually_exclusive_group()
    weighted.add_argument(
        "--weighted", dest="weighted", action="store_true", default=True,
        help="weight jets by genWeight where the file has it (default)",
    )
    weighted.add_argument("--unweighted", dest="weighted", action="store_false", help="count jets, ignore genWeight")
    p.add_argument("--name", default="mass_weights", help="name of the correction (default mass_weights)")
    add_force(p)


def _read(
    paths: Sequence[Path], *, weighted: bool, pt_min: float, abs_eta_max: float
) -> dict[str, np.ndarray]:
    """msoftdrop, pt and weight of the selected jets of ``paths``."""
    import awkward as ak

    from jettag.samples.files import open_events

    parts: dict[str, list[np.ndarray]] = {"msoftdrop": [], "pt": [], "weight": []}
    for path in paths:
        tree = open_events(path)
        keys = set(tree.keys())
        missing = [b for b in _BRANCHES if b not in keys]
        if missing:
            raise InputFileError(f"{path}: no branch {', '.join(missing)} in its Events tree")
        use_weight = weighted and "genWeight" in keys
        arrays = tree.arrays([*_BRANCHES, *(["genWeight"] if use_weight else [])])
        jets = {b: arrays[b] for b in _BRANCHES}
        if use_weight:
            weight = ak.broadcast_arrays(arrays["genWeight"], jets["FatJet_pt"])[0]
        else:
            weight = ak.ones_like(jets["FatJet_pt"])
        flat = {
            k: ak.to_numpy(ak.flatten(v)).astype(np.float64) for k, v in [*jets.items(), ("w", weight)]
        }
        sel = (flat["FatJet_pt"] > pt_min) & (np.abs(flat["FatJet_eta"]) < abs_eta_max)
        parts["msoftdrop"].append(flat["FatJet_msoftdrop"][sel])
        parts["pt"].append(flat["FatJet_pt"][sel])
        parts["weight"].append(flat["w"][sel])
    return {k: np.concatenate(v) for k, v in parts.items()}


def _names(paths: Sequence[Path]) -> str:
    return ", ".join(str(p) for p in paths)


def _table(weights: MassWeights, signal: dict[str, np.ndarray], target: dict[str, np.ndarray] | None) -> str:
    """A short text table of the weights: per msoftdrop bin, and totals."""
    from jettag import flatmass

    two_d = weights.pt_edges is not None
    limit = weights.stat_limit
    lines = []
    if two_d:
        lines.append(
            f"2D weights: {len(weights.msd_edges) - 1} msoftdrop x {len(weights.pt_edges) - 1} pT bins; "
            "per msoftdrop bin, summed over pT (weight: range over the pT bins)"
        )
    head = f"{'msoftdrop [GeV]':>16} {'n_eff':>9} {'weight':>21} {'weighted frac':>13} {'target frac':>11}"
    lines.append(head)
    counts = weights.counts.sum(axis=1) if two_d else weights.counts
    wfrac = weights.weighted_fraction.sum(axis=1) if two_d else weights.weighted_fraction
    tfrac = weights.target_fraction.sum(axis=1) if two_d else weights.target_fraction
    for i, (lo, hi) in enumerate(zip(weights.msd_edges[:-1], weights.msd_edges[1:], strict=True)):
        if two_d:
            row = weights.values[i][~weights.empty[i]]
            weight = f"{row.min():.4g} - {row.max():.4g}" if row.size else "-"
            flags = []
            if weights.empty[i].any():
                flags.append(f"{int(weights.empty[i].sum())} empty")
            if weights.stat_limited[i].any():
                flags.append(f"{int(weights.stat_limited[i].sum())} pT bins < {limit:g} jets")
            flag = ", ".join(flags)
        else:
            weight = "-" if weights.empty[i] else f"{weights.values[i]:.4g} +- {weights.errors[i]:.2g}"
            flag = "empty" if weights.empty[i] else ("stat-limited" if weights.stat_limited[i] else "")
        cells = f"{f'{lo:g}-{hi:g}':>16} {counts[i]:9.1f} {weight:>21} {wfrac[i]:13.4f} {tfrac[i]:11.4f}"
        lines.append(f"{cells}  {flag}".rstrip())
    inside = (signal["msoftdrop"] >= weights.msd_edges[0]) & (signal["msoftdrop"] < weights.msd_edges[-1])
    jet_w = flatmass.evaluate(weights, signal["msoftdrop"], signal["pt"] if two_d else None)
    lines.append(
        f"signal: {len(signal['msoftdrop'])} selected jets, {int(inside.sum())} in the window, "
        f"{float(counts.sum()):.1f} effective; sum of weights {weights.total:.6g} -> weighted "
        f"{float((jet_w * signal['weight']).sum()):.6g}"
    )
    if target is not None:
        t_in = (target["msoftdrop"] >= weights.msd_edges[0]) & (target["msoftdrop"] < weights.msd_edges[-1])
        lines.append(
            f"target ({weights.target}): {len(target['msoftdrop'])} selected jets, "
            f"{int(t_in.sum())} in the window"
        )
    else:
        lines.append(f"target: {weights.target_description()}")
    lines.append(
        f"{int(weights.empty.sum())} empty bins (weight 0), {int(weights.stat_limited.sum())} bins with fewer "
        f"than {limit:g} effective signal jets (stat-limited)"
    )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from jettag import corrections, flatmass
    from jettag.outputs import check_output

    if args.pt_edges is not None and not args.pt:
        raise JettagError("--pt-edges needs --pt (2D weights)")
    if args.pt_min < 0 or args.abs_eta_max <= 0:
        raise JettagError("--pt-min must be >= 0 and --abs-eta-max > 0")
    inputs = [*args.files, *(args.reference or [])]
    check_output(args.out, inputs=inputs, force=args.force)
    msd_edges = args.msd_edges or args.msd_bins or flatmass.MSD_EDGES
    pt_edges = (args.pt_edges or flatmass.PT_EDGES) if args.pt else None
    select = {"weighted": args.weighted, "pt_min": args.pt_min, "abs_eta_max": args.abs_eta_max}

    def fill(jets: dict[str, np.ndarray]):
        pt = jets["pt"] if args.pt else None
        return flatmass.histogram(
            jets["msoftdrop"], pt, jets["weight"], msd_edges=msd_edges, pt_edges=pt_edges
        )

    signal = _read(args.files, **select)
    window = (
        f"pT > {args.pt_min:g} GeV, |eta| < {args.abs_eta_max:g}, "
        f"msoftdrop in [{msd_edges[0]:g}, {msd_edges[-1]:g}) GeV"
    )
    h_signal = fill(signal)
    if not h_signal.sum().value > 0:
        raise JettagError(f"{_names(args.files)}: no signal jets with {window}")
    target = None
    h_target = None
    if args.reference:
        target = _read(args.reference, **select)
        h_target = fill(target)
        if not h_target.sum().value > 0:
            raise JettagError(f"{_names(args.reference)}: no reference jets with {window}")
    weights = flatmass.derive_weights(
        h_signal, h_target, target_name=_names(args.reference) if args.reference else None
    )
    weights.settings.update(
        signal=_names(args.files),
        selection=f"pT > {args.pt_min:g} GeV and |eta| < {args.abs_eta_max:g}",
        weighted="genWeight" if args.weighted else "no",
    )
    command = getattr(args, "command_line", None)
    description = "Flat-mass weights of a signal sample (jettag flatten)"
    correction = weights.to_correction(args.name, description, command=command)
    cset = corrections.correction_set([correction], f"{description}: {args.name}")
    out = corrections.write(cset, args.out, inputs=inputs, force=args.force)
    print(_table(weights, signal, target), end="")
    print(f"wrote {out}")
    return 0
