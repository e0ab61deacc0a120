"""The event generator: Pythia 8 -> parametric CMS-like detector -> FastJet -> PFNano.

``generate`` (in :mod:`~jettag.generator.pipeline`) is what ``jettag generate``
runs. The modules, in the order events flow through them: ``processes`` and
``tunes`` (what to generate, as data), ``pythia`` (the columnar source),
``detector``, ``vertexing``, ``jets``, ``jet_tables``, ``truth``, ``pfnano``
(the writer), with ``columnar`` (jagged <-> flat helpers) under them all;
``validation`` holds the physics checks of generated samples. An interrupted
``generate`` raises ``GenerationInterrupted`` (a ``KeyboardInterrupt``), a
failed one ``GenerationFailed``; both say where the finished events were kept.
Importing :mod:`jettag.tagger` never imports this package, and importing this
package does not import Pythia or FastJet until ``generate`` is used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GenerationFailed", "GenerationInterrupted", "GenerationSummary", "generate"]


def __getattr__(name: str) -> Any:
    # the pipeline pulls in Pythia, FastJet and numba kernels: load it on first use only
    if name in __all__:
        from jettag.generator import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
