"""Jets from files: reading generated (or CMS) PFNano samples back.

The floor that training, evaluation and the generator's own checks stand on;
it never imports the generator, so it works on any PFNano / NanoAOD file.

* :mod:`~jettag.samples.files`: what a jettag file carries besides events
  (generation metadata, the pseudo-data truth sidecar);
* :mod:`~jettag.samples.fatjets`: fat jets with truth labels and simple tag
  observables, flat-mass weights;
* :mod:`~jettag.samples.labelling`: tagger classes (Xbb/Xcc/Xqq/QCD) and the
  tagging phase space;
* :mod:`~jettag.samples.dataset`: labelled jets with model inputs built by the
  inference code (imports :mod:`jettag.tagger`).
"""

from __future__ import annotations

from jettag.samples.fatjets import (
    FLAVOUR_CATEGORIES,
    flat_mass_weights,
    flavour_category,
    jets_with_muon,
    read_fatjets,
    resonance_mass,
)
from jettag.samples.files import METADATA_KEY, TRUTH_TREE, read_metadata, truth_sidecar_path

__all__ = [
    "FLAVOUR_CATEGORIES",
    "METADATA_KEY",
    "TRUTH_TREE",
    "flat_mass_weights",
    "flavour_category",
    "jets_with_muon",
    "read_fatjets",
    "read_metadata",
    "resonance_mass",
    "truth_sidecar_path",
]
