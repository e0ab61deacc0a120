"""Training the reference taggers (``pip install 'jettag[train]'``: torch, XGBoost, onnxmltools).

Modules, one idea each:

* :mod:`~jettag.training.dataset`: labelled jets with inputs built by the inference code; weaver's
  automatic standardisation;
* :mod:`~jettag.training.weights`: mass-decorrelation and class-balance weights;
* :mod:`~jettag.training.models`: the networks (ParticleNet-lite, Deep Sets) and their inputs;
* :mod:`~jettag.training.fit`: the training loop, class-imbalance options, ONNX export;
* :mod:`~jettag.training.highlevel`: the gradient-boosted baseline on high-level observables;
* :mod:`~jettag.training.recipes`: the reference taggers' recipes, ``jettag train``;
* :mod:`~jettag.training.imbalance`: the class-imbalance study (``jettag imbalance-study``);
* :mod:`~jettag.training.card`: model cards.

Only ``dataset`` and ``weights`` import without torch.
"""
