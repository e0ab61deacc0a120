"""The event generator: Pythia 8 -> parametric CMS-like detector -> FastJet -> PFNano.

``generate`` (in :mod:`~jettag.generator.pipeline`) is what ``jettag generate``
runs. The modules, in the order events flow through them: ``processes`` and
``tunes`` (what to generate, as data), ``pythia`` (the columnar source),
``detector``, ``vertexing``, ``jets``, ``jet_tables``, ``truth``, ``pfnano``
(the writer); ``validation`` holds the physics checks of generated samples.
Importing :mod:`jettag.tagger` never imports this package.
"""

from __future__ import annotations

from jettag.generator.pipeline import GenerationSummary, generate

__all__ = ["GenerationSummary", "generate"]
