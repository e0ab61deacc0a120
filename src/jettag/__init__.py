"""jettag: columnar jet tagging for coffea.

ONNX taggers on (PF)NanoAOD jets, mass decorrelation, tagger scale factors, and
a Pythia 8 + FastJet event generator writing PFNano-format files.
"""

from __future__ import annotations

__version__ = "0.1.0"
