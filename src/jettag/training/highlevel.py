"""The gradient-boosted baseline on high-level jet observables (DeepCSV-like).

The model's ONNX graph has two parts, merged into one ``model.onnx``:

1. a feature extractor (exported from :class:`HighLevelFeatures`) that turns
   weaver-style inputs (jet observables; the jet's tracks' 3D IP significances;
   its SVs) into the high-level observables :data:`HL_FEATURES`: the four
   largest track IP significances, the number of tracks above 3 sigma, the
   number of SVs and the two most displaced SVs' properties;
2. the XGBoost trees (converted by onnxmltools) on those observables.

Training runs the *same* extractor graph with onnxruntime on the inputs built
by :class:`~jettag.tagger.InputBuilder`, so the trees see at training exactly
what they see at inference. Inputs are raw values (trees need no
standardisation); padded slots hold -99 for the ranking variables so they never
rank first.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

__all__ = [
    "HL_FEATURES",
    "HighLevelFeatures",
    "extract",
    "extractor_onnx",
    "fit_bdt",
    "highlevel_inputs",
    "merge_bdt",
]

JET_VARS = ("fj_msoftdrop", "fj_pt_log", "fj_n2b1", "fj_tau21", "fj_tau32")
TRACK_VARS = ("pfcand_btagSip3dSig",)
SV_VARS = ("sv_dxysig", "sv_mass", "sv_ntracks", "sv_pt_log", "sv_d3dsig")
N_TRACKS, N_SVS, N_TOP_TRACKS = 48, 5, 4
PAD = -99.0

HL_FEATURES: tuple[str, ...] = (
    *JET_VARS,
    *(f"track_sip3dsig_{i + 1}" for i in range(N_TOP_TRACKS)),
    "n_tracks_sip3dsig_gt3",
    "n_sv",
    *(f"sv{k}_{v}" for k in (1, 2) for v in ("dxysig", "mass", "ntracks", "ptrel_log", "d3dsig")),
)


def _raw_infos(names: Sequence[str], pad: float) -> dict[str, dict[str, float]]:
    return {
        v: {"median": 0.0, "norm_factor": 1.0, "replace_inf_value": 0.0,
            "lower_bound": -1e32, "upper_bound": 1e32, "pad": pad}
        for v in names
    }


def highlevel_inputs() -> dict[str, Any]:
    """Weaver preprocess inputs of the high-level tagger (raw values; ranking pads -99)."""
    sv_infos = _raw_infos(SV_VARS, 0.0)
    sv_infos["sv_dxysig"]["pad"] = PAD
    return {
        "input_names": ["jet_features", "track_features", "sv_features"],
        "jet_features": {"var_names": list(JET_VARS), "var_infos": _raw_infos(JET_VARS, 0.0), "var_length": None},
        "track_features": {
            "var_names": list(TRACK_VARS),
            "var_infos": _raw_infos(TRACK_VARS, PAD),
            "var_length": N_TRACKS,
        },
        "sv_features": {"var_names": list(SV_VARS), "var_infos": sv_infos, "var_length": N_SVS},
    }


class HighLevelFeatures(nn.Module):
    """Weaver inputs -> :data:`HL_FEATURES` (exported to ONNX; no trainable parameters)."""

    def forward(self, jet_features, track_features, sv_features):  # (B,5), (B,1,T), (B,5,S)
        sip = track_features[:, 0, :]
        top = sip.topk(N_TOP_TRACKS, dim=1)[0]
        n_sig3 = (sip > 3.0).float().sum(dim=1, keepdim=True)
        dxysig = sv_features[:, 0, :]
        n_sv = (dxysig > PAD).float().sum(dim=1, keepdim=True)
        order = dxysig.topk(2, dim=1)[1]  # (B, 2): the two most displaced SVs
        index = order[:, None, :].expand(-1, sv_features.shape[1], -1)
        best = sv_features.gather(2, index)  # (B, V, 2)
        jet_pt_log = jet_features[:, 1:2]
        ptrel = torch.where(best[:, 0, :] > PAD, best[:, 3, :] - jet_pt_log, torch.zeros_like(best[:, 3, :]))
        best = torch.cat([best[:, :3, :], ptrel[:, None, :], best[:, 4:, :]], dim=1)
        per_sv = best.permute(0, 2, 1).reshape(best.shape[0], -1)  # sv1 vars, then sv2 vars
        return torch.cat([jet_features, top, n_sig3, n_sv, per_sv], dim=1)


def extractor_onnx(opset: int = 15) -> bytes:
    """The ONNX graph of :class:`HighLevelFeatures` (dynamic batch axis)."""
    spec = highlevel_inputs()
    args = (
        torch.zeros(2, len(JET_VARS)),
        torch.full((2, 1, N_TRACKS), PAD),
        torch.zeros(2, len(SV_VARS), N_SVS),
    )
    names = spec["input_names"]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HighLevelFeatures(),
            args,
            buffer,
            input_names=names,
            output_names=["hl_features"],
            dynamic_axes={k: {0: "N"} for k in [*names, "hl_features"]},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def extract(inputs: Mapping[str, np.ndarray], extractor: bytes | None = None) -> np.ndarray:
    """High-level features (n_jets, len(HL_FEATURES)) by running the extractor graph."""
    session = ort.InferenceSession(extractor or extractor_onnx(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["hl_features"], {k: np.ascontiguousarray(inputs[k]) for k in names})[0]


def fit_bdt(
    features: np.ndarray,
    label: np.ndarray,
    weights: np.ndarray,
    *,
    n_classes: int,
    n_estimators: int = 300,
    max_depth: int = 4,
    learning_rate: float = 0.1,
    validation_fraction: float = 0.1,
    seed: int = 1,
    threads: int | None = None,
) -> tuple[Any, list[dict[str, float]]]:
    """XGBoost multi-class fit with early stopping on a validation split; returns (model, history)."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(label))
    n_val = round(validation_fraction * len(label))
    val, train = order[:n_val], order[n_val:]
    model = xgb.XGBClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        learning_rate=learning_rate,
        objective="multi:softprob",
        num_class=n_classes,
        tree_method="hist",
        subsample=0.8,
        colsample_bytree=0.8,
        early_stopping_rounds=30,
        eval_metric="mlogloss",
        random_state=seed,
        n_jobs=threads or 0,
    )
    model.fit(
        features[train],
        label[train],
        sample_weight=weights[train],
        eval_set=[(features[val], label[val])],
        sample_weight_eval_set=[weights[val]],
        verbose=False,
    )
    losses = model.evals_result()["validation_0"]["mlogloss"]
    history = [{"round": i + 1, "val_loss": float(v)} for i, v in enumerate(losses)]
    return model, history


def merge_bdt(
    model: Any,
    check_inputs: Mapping[str, np.ndarray],
    *,
    extractor: bytes | None = None,
    output_name: str = "softmax",
) -> bytes:
    """One ONNX model: extractor graph -> XGBoost trees -> class probabilities.

    The merged graph is checked on ``check_inputs`` against XGBoost's own
    ``predict_proba`` (to 1e-4); a converter that reorders classes fails here.
    """
    import onnx
    import onnxmltools
    from onnx import compose
    from onnxmltools.convert.common.data_types import FloatTensorType

    extractor = extractor or extractor_onnx()
    booster = model.get_booster()
    # the converter needs feature names of the form f0, f1, ...
    booster.feature_names = None
    trees = onnxmltools.convert_xgboost(
        model,
        initial_types=[("hl_input", FloatTensorType([None, len(HL_FEATURES)]))],
        target_opset=15,
    )
    front = onnx.load_from_string(extractor)
    trees.ir_version = front.ir_version
    prob = next(o.name for o in trees.graph.output if "prob" in o.name)
    merged = compose.merge_models(
        front,
        trees,
        io_map=[("hl_features", "hl_input")],
        outputs=[prob],
    )
    merged.graph.output[0].name = output_name
    for node in merged.graph.node:
        node.output[:] = [output_name if o == prob else o for o in node.output]
    onnx.checker.check_model(merged)
    data = merged.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run([output_name], {k: np.ascontiguousarray(check_inputs[k]) for k in names})[0]
    want = model.predict_proba(extract(check_inputs, extractor))
    if got.shape != want.shape or not np.allclose(got, want, atol=1e-4):
        raise RuntimeError("the ONNX conversion of the XGBoost model does not reproduce predict_proba")
    return data
