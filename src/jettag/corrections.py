"""Derived maps as correctionlib corrections: build, write, load.

Every map jettag derives (DDT maps; planned: scale factors) is a correctionlib schema v2
:class:`~correctionlib.schemav2.Correction`, built here from its pydantic
objects, never from hand-made dicts, so that the schema itself validates it.
Inputs are named like the CMS POG files (``pt``, ``rho``, ``systematic``,
``working_point``).

* :func:`binned` turns a ``hist.Hist`` of values into a binned correction
  (through :func:`correctionlib.convert.from_histogram`);
* :func:`category` builds a string- or integer-keyed node (systematics, working points);
* :func:`correction` and :func:`correction_set` wrap content into a correction
  and a file's :class:`~correctionlib.schemav2.CorrectionSet`;
* :func:`write` writes a set as JSON (never over an input or an existing file
  unasked, atomically, after a round trip through correctionlib's evaluator);
* :func:`load` reads a file, or a map shipped with jettag by name
  (:func:`available` lists them), into correctionlib's evaluator; :func:`read`
  into the ``schemav2`` model.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import correctionlib
import correctionlib.schemav2 as cs
from correctionlib.convert import from_histogram

from jettag.errors import JettagError
from jettag.outputs import atomic_output, check_output

__all__ = [
    "available",
    "binned",
    "category",
    "correction",
    "correction_set",
    "load",
    "read",
    "shipped_path",
    "variable",
    "write",
]

#: The package holding the shipped correction files (``corrections/`` in a checkout).
SHIPPED_PACKAGE = "jettag.shipped_corrections"

VariableType = Literal["real", "int", "string"]
Flow = Literal["clamp", "error"]


def variable(name: str, type: VariableType = "real", description: str | None = None) -> cs.Variable:
    """An input or output of a correction."""
    return cs.Variable(name=name, type=type, description=description)


def binned(
    histogram: Any,
    *,
    inputs: Sequence[str] | None = None,
    flow: Flow = "clamp",
) -> cs.Binning | cs.MultiBinning:
    """The content of a binned correction: the values of ``histogram`` (a ``hist.Hist``).

    ``inputs`` names the axes as the correction's inputs (default: the axes'
    names). Out-of-range inputs are clamped to the edge bins by default; ``flow="error"``
    makes them an evaluation error.
    """
    named = histogram.copy()
    # from_histogram names the correction after the histogram; only its content is kept here
    named.name, named.label = "content", "value"
    made = from_histogram(named, axis_names=list(inputs) if inputs else None, flow=flow)
    return made.data


def category(
    input: str,
    content: Mapping[str | int, Any],
    *,
    default: Any = None,
) -> cs.Category:
    """A node that picks its content by the value of the string or integer input ``input``."""
    items = [cs.CategoryItem(key=key, value=value) for key, value in content.items()]
    return cs.Category(nodetype="category", input=input, content=items, default=default)


def correction(
    name: str,
    description: str,
    inputs: Sequence[cs.Variable],
    output: cs.Variable,
    data: Any,
    *,
    version: int = 1,
) -> cs.Correction:
    """A named, versioned correction with its inputs, output and content node."""
    return cs.Correction(
        name=name,
        description=description,
        version=version,
        inputs=list(inputs),
        output=output,
        data=data,
    )


def correction_set(corrections: Iterable[cs.Correction], description: str) -> cs.CorrectionSet:
    """The content of one correctionlib JSON file."""
    corrections = list(corrections)
    names = [c.name for c in corrections]
    if len(set(names)) != len(names):
        raise ValueError(f"correction names must be unique, got {names}")
    return cs.CorrectionSet(schema_version=2, description=description, corrections=corrections)


def write(
    cset: cs.CorrectionSet,
    out: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    force: bool = False,
) -> Path:
    """Write ``cset`` as JSON (gzipped when ``out`` ends in ``.gz``); return the path.

    The set is first loaded by correctionlib's evaluator, so a file that is
    written is one that correctionlib reads. Refuses to overwrite ``inputs`` or an
    existing file unless ``force``; an interrupted write leaves nothing at ``out``.
    """
    out = check_output(out, inputs=inputs, force=force)
    text = cset.model_dump_json(exclude_none=True, indent=1)
    correctionlib.CorrectionSet.from_string(text)
    with atomic_output(out) as tmp:
        if out.suffix == ".gz":
            with gzip.open(tmp, "wt") as f:
                f.write(text)
        else:
            tmp.write_text(text)
    return out


def available() -> tuple[str, ...]:
    """Names of the correction files shipped with jettag (``name`` for ``name.json``)."""
    folder = resources.files(SHIPPED_PACKAGE)
    return tuple(sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json")))


def shipped_path(name: str) -> Path:
    """The path of the shipped correction file ``name``."""
    if name not in available():
        known = ", ".join(available()) or "none yet"
        raise JettagError(f"no shipped correction file {name!r}; shipped: {known}")
    return Path(str(resources.files(SHIPPED_PACKAGE) / f"{name}.json"))


def _resolve(name_or_path: str | Path) -> Path:
    """A correction file's path: ``name_or_path`` itself, or a shipped file when it has no suffix."""
    path = Path(name_or_path)
    if not path.suffix:
        path = shipped_path(str(name_or_path))
    if not path.is_file():
        raise JettagError(f"{path}: no such correction file")
    return path


def _invalid(path: Path, err: Exception) -> JettagError:
    # correctionlib and pydantic raise with multi-line text: keep one line
    detail = " ".join(str(err).split())[:300]
    return JettagError(f"{path}: not a valid correctionlib file ({detail})")


def load(name_or_path: str | Path) -> correctionlib.CorrectionSet:
    """A correctionlib evaluator for a JSON file, or for a shipped file by name."""
    path = _resolve(name_or_path)
    try:
        return correctionlib.CorrectionSet.from_file(str(path))
    except Exception as err:
        raise _invalid(path, err) from None


def read(name_or_path: str | Path) -> cs.CorrectionSet:
    """The ``schemav2`` model of a JSON file (plain or ``.gz``), or of a shipped file by name."""
    path = _resolve(name_or_path)
    text = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text()
    try:
        return cs.CorrectionSet.model_validate_json(text)
    except Exception as err:
        raise _invalid(path, err) from None
