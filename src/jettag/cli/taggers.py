"""``jettag taggers``: the shipped reference taggers, their classes, inputs, sizes and place."""

from __future__ import annotations

import argparse
import json


def add(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "taggers",
        help="list the shipped taggers (names usable in tag --model and evaluate --tagger)",
        description=(
            "List the reference taggers shipped with jettag: name, output classes, input "
            "tensors, size on disk and the directory holding model.onnx, preprocess.json and "
            "MODEL_CARD.md."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from jettag import taggers

    rows = [taggers.summary(name) for name in taggers.available()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        inputs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in row["inputs"].items())
        print(f"{row['name']}")
        print(f"  classes: {', '.join(row['classes'])}")
        print(f"  inputs:  {inputs}")
        print(f"  size:    model.onnx {row['model_bytes'] / 1e3:.0f} kB, directory {row['directory_bytes'] / 1e3:.0f} kB")
        if "phase_space" in row:
            print(f"  trained on: {row['phase_space']}")
        print(f"  path:    {row['path']}")
    return 0
