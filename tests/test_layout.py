"""The house rules of the code layout (ARCHITECTURE.md), checked on the imports.

Every ``import`` in the library is read (module level and inside functions):
no circle of imports, no library module importing the CLI, evaluation and
training independent of each other, the tagger and the jets-from-files floor
free of the generator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"jettag": ROOT / "src" / "jettag", "jettag.processors": ROOT / "processors"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The jettag modules that ``name`` imports (``from pkg import mod`` counts as pkg.mod)."""
    out = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _reaches(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_no_import_circle():
    circles = sorted(name for name in GRAPH if name in _reaches(name) and name != "jettag")
    assert not circles, f"modules that import themselves through others: {circles}"


def test_no_library_module_imports_the_cli():
    offenders = sorted(n for n, deps in GRAPH.items() if not _in(n, "jettag.cli") and any(_in(d, "jettag.cli") for d in deps))
    assert not offenders


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("jettag.evaluate", "jettag.training"),
        ("jettag.training", "jettag.evaluate"),
        ("jettag.tagger", "jettag.generator"),
        ("jettag.samples", "jettag.generator"),
        ("jettag.samples", "jettag.training"),
        ("jettag.samples", "jettag.evaluate"),
        ("jettag.tagger", "jettag.samples"),
        ("jettag.corrections", "jettag.generator"),
    ],
)
def test_floor_does_not_reach_up(lower, upper):
    for name in GRAPH:
        if _in(name, lower):
            bad = sorted(d for d in _reaches(name) if _in(d, upper))
            assert not bad, f"{name} reaches {bad}"


def test_importing_the_tagger_loads_no_generator():
    """At run time too: jettag.tagger and jettag.taggers pull in neither the generator nor Pythia/FastJet."""
    import subprocess
    import sys

    code = (
        "import sys, jettag.tagger, jettag.taggers, jettag.samples.dataset, jettag.evaluate\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('jettag.generator', 'jettag.cli', "
        "'pythia8', 'fastjet', 'torch')))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
