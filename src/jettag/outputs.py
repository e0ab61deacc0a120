"""Writing outputs safely: never over an input, never over a result unasked, never half-done.

Every jettag command that writes goes through here:

* :func:`check_output` refuses an output that is one of the inputs, an existing
  file (unless ``force``), or a path whose folder does not exist (no silent
  ``mkdir -p``: a typo in ``--out`` should not create a tree of folders);
* :func:`atomic_output` hands out a temporary name beside the output and renames
  it into place only when the block succeeds, so an interrupted or failed run
  leaves nothing at the requested path that looks complete; :func:`atomic_directory`
  does the same for an output folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from jettag.errors import OutputError

__all__ = ["atomic_directory", "atomic_output", "check_output", "check_output_dir", "partial_path"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_folder(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist (create it first)")


def check_output(
    out: str | Path, *, inputs: Iterable[str | Path] = (), force: bool = False
) -> Path:
    """``out`` as a Path, once it is safe to write there (else :class:`OutputError`)."""
    out = Path(out)
    _check_folder(out)
    if out.is_dir():
        raise OutputError(f"{out}: is a folder; give a file name")
    for path in inputs:
        path = Path(path)
        if _same_file(out, path) or out.resolve() == path.resolve():
            raise OutputError(f"{out}: is also an input; write the output elsewhere")
    if out.exists() and not force:
        raise OutputError(f"{out}: exists; give --force to replace it")
    return out


def check_output_dir(
    out: str | Path, *, inputs: Iterable[str | Path] = (), force: bool = False
) -> Path:
    """``out`` as a folder to write into: refused if it holds files and ``force`` is not set.

    With ``force`` the folder's files of the same names are replaced; inputs may
    not lie inside it.
    """
    out = Path(out)
    _check_folder(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give a folder")
    root = out.resolve()
    for path in inputs:
        if root in Path(path).resolve().parents:
            raise OutputError(f"{out}: holds the input {path}; write the output elsewhere")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(f"{out}: exists and is not empty; give --force to write into it")
    return out


def partial_path(out: str | Path) -> Path:
    """The temporary name :func:`atomic_output` writes ``out`` under (hidden, beside it)."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


@contextmanager
def atomic_output(out: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out``; rename it to ``out`` when the block succeeds.

    On any exception (``KeyboardInterrupt`` included) the temporary file or
    folder is removed and the exception goes on; ``out`` is untouched.
    """
    out = Path(out)
    tmp = partial_path(out)
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_directory(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; move what it holds into ``out`` on success.

    ``out`` is created if absent (its parent must exist: :func:`check_output_dir`
    first); files of the same name in an existing ``out`` are replaced, others are
    left alone. On any exception the temporary folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    tmp = partial_path(out)
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if not out.exists():
            os.replace(tmp, out)
            return
        for item in tmp.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
        tmp.rmdir()
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
