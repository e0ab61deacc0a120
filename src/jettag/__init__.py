"""jettag: columnar jet tagging for coffea.

ONNX taggers (weaver exports) on (PF)NanoAOD jets, three shipped reference
taggers with their training and evaluation, and a Pythia 8 + FastJet event
generator writing PFNano-format files. Mass decorrelation (DDT maps) and tagger
scale factors are planned; :mod:`jettag.corrections` is the plumbing they will
write through.
"""

from __future__ import annotations

__version__ = "0.1.0"
