"""Training the reference taggers (``pip install 'jettag[train]'``: torch, XGBoost, onnxmltools).

Training reads labelled jets through :mod:`jettag.samples.dataset` (inputs built
by the inference code). Modules, one idea each:

* :mod:`~jettag.training.standardisation`: weaver's automatic standardisation fitted on training jets;
* :mod:`~jettag.training.weights`: mass-decorrelation and class-balance weights;
* :mod:`~jettag.training.models`: the networks (ParticleNet-lite, Deep Sets) and their inputs;
* :mod:`~jettag.training.fit`: the training loop, class-imbalance options, ONNX export;
* :mod:`~jettag.training.highlevel`: the gradient-boosted baseline on high-level observables;
* :mod:`~jettag.training.recipes`: the reference taggers' recipes, ``jettag train``;
* :mod:`~jettag.training.imbalance`: the class-imbalance study (``jettag imbalance-study``).

Only ``standardisation`` and ``weights`` import without torch. Model cards,
which join a training record to an evaluation, are :mod:`jettag.model_card`.
"""
