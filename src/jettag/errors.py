"""jettag's exceptions: errors a user can act on, each said in one line.

Library code raises these (or ``ValueError`` for a bad argument); the CLI
(:mod:`jettag.cli`) prints any of them as one line naming the file or input,
never as a traceback.
"""

from __future__ import annotations

__all__ = ["InputFileError", "JettagError", "MissingInputsError", "OutputError"]


class JettagError(Exception):
    """Base class of the errors jettag reports to its user as one line."""


class OutputError(JettagError):
    """An output path that must not be written: an input, an existing file, a missing folder."""


class InputFileError(JettagError):
    """An input file that cannot be read as asked (missing, not ROOT, no such tree or branch)."""


class MissingInputsError(JettagError, KeyError):
    """Events lack a collection or field that a tagger needs.

    Subclasses ``KeyError`` so that code catching awkward's missing-field errors
    still catches it; ``str()`` is the message itself, not its repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
