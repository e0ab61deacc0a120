"""jettag: columnar jet tagging for coffea.

ONNX taggers (weaver exports) on (PF)NanoAOD jets, three shipped reference
taggers with their training and evaluation, and a Pythia 8 + FastJet event
generator writing PFNano-format files; DDT maps (:mod:`jettag.ddt`) written as
correctionlib through :mod:`jettag.corrections`. Tagger scale factors are planned.
"""

from __future__ import annotations

__version__ = "0.1.0"
