"""Small weaver-layout ONNX models and preprocess.json files, for tests and benchmarks.

Built with ``onnx.helper`` (``pip install onnx``; the ``test`` extra), no torch.
Every builder returns the serialized model bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PNET_MD_PF_FEATURES",
    "PNET_MD_SV_FEATURES",
    "deepsets_model",
    "masked_sum_model",
    "mlp_model",
    "particlenet_like_model",
    "pnet_md_preprocess",
]

PNET_MD_PF_FEATURES = (
    "pfcand_pt_log_nopuppi", "pfcand_e_log_nopuppi", "pfcand_etarel", "pfcand_phirel",
    "pfcand_abseta", "pfcand_charge", "pfcand_isEl", "pfcand_isMu", "pfcand_isGamma",
    "pfcand_isChargedHad", "pfcand_isNeutralHad", "pfcand_VTX_ass", "pfcand_lostInnerHits",
    "pfcand_normchi2", "pfcand_quality", "pfcand_dz", "pfcand_dzsig", "pfcand_dxy",
    "pfcand_dxysig", "pfcand_btagEtaRel", "pfcand_btagPtRatio", "pfcand_btagPParRatio",
    "pfcand_btagSip3dVal", "pfcand_btagSip3dSig", "pfcand_btagJetDistVal",
)  # fmt: skip
PNET_MD_SV_FEATURES = (
    "sv_pt_log", "sv_mass", "sv_phirel", "sv_etarel", "sv_abseta", "sv_ntracks",
    "sv_normchi2", "sv_dxy", "sv_dxysig", "sv_d3d", "sv_d3dsig", "sv_costhetasvpv",
)  # fmt: skip
# (median, norm_factor) of ParticleNet-MD's preprocess.json (rounded)
_PNET_NORMS = {
    "pfcand_pt_log_nopuppi": (1.1, 0.5), "pfcand_e_log_nopuppi": (1.4, 0.5),
    "pfcand_abseta": (0.6, 1.6), "pfcand_VTX_ass": (4.0, 0.3), "pfcand_normchi2": (5.0, 0.2),
    "pfcand_quality": (0.0, 0.2), "pfcand_dz": (0.0, 180.0), "pfcand_dzsig": (0.0, 0.9),
    "pfcand_dxy": (0.0, 300.0), "pfcand_dxysig": (0.0, 1.0), "pfcand_btagEtaRel": (1.5, 0.5),
    "pfcand_btagSip3dVal": (0.0, 100.0), "pfcand_btagSip3dSig": (0.0, 0.5),
    "pfcand_btagJetDistVal": (0.0, 40.0), "sv_pt_log": (3.8, 0.6), "sv_mass": (1.2, 0.3),
    "sv_abseta": (0.5, 1.6), "sv_ntracks": (3.0, 1.0), "sv_normchi2": (0.8, 0.6),
    "sv_dxy": (0.4, 0.25), "sv_dxysig": (7.0, 0.02), "sv_d3d": (0.5, 0.2),
    "sv_d3dsig": (7.0, 0.02), "sv_costhetasvpv": (1.0, 1.0),
}  # fmt: skip


def _block(var_names: Sequence[str], length: int | None, norms: Mapping[str, tuple[float, float]]):
    infos = {}
    for v in var_names:
        median, norm = norms.get(v, (0.0, 1.0))
        is_mask = v.endswith("_mask")
        infos[v] = {
            "median": 0.0 if is_mask else median,
            "norm_factor": 1.0 if is_mask else norm,
            "replace_inf_value": 0,
            "lower_bound": -1e32 if is_mask else -5,
            "upper_bound": 1e32 if is_mask else 5,
            "pad": 0,
        }
    return {"var_names": list(var_names), "var_infos": infos, "var_length": length}


def pnet_md_preprocess(n_pf: int = 100, n_sv: int = 7, points: bool = True) -> dict[str, Any]:
    """A preprocess.json mapping in ParticleNet-MD's layout (PFNano feature names)."""
    blocks = {
        "pf_points": _block(("pfcand_etarel", "pfcand_phirel"), n_pf, {}),
        "pf_features": _block(PNET_MD_PF_FEATURES, n_pf, _PNET_NORMS),
        "pf_mask": _block(("pfcand_mask",), n_pf, {}),
        "sv_points": _block(("sv_etarel", "sv_phirel"), n_sv, {}),
        "sv_features": _block(PNET_MD_SV_FEATURES, n_sv, _PNET_NORMS),
        "sv_mask": _block(("sv_mask",), n_sv, {}),
    }
    if not points:
        del blocks["pf_points"], blocks["sv_points"]
    return {
        "output_names": ["probXbb", "probXcc", "probXqq", "probQCD"],
        "input_names": list(blocks),
        **blocks,
    }


def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    return onnx, TensorProto, helper, numpy_helper


def _finish(nodes, inputs, outputs, inits, name: str) -> bytes:
    onnx, _, helper, _ = _onnx()
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="jettag"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def masked_sum_model(
    preprocess: Mapping[str, Any],
    weights: Mapping[str, np.ndarray],
    masks: Mapping[str, str] | None = None,
    softmax: bool = False,
) -> bytes:
    """``score = sum_b W_b . sum_l (x_b * mask_b)`` (padded blocks) ``+ sum_b W_b . x_b`` (flat).

    ``weights[b]``: (n_vars_b, n_classes) float32 for every non-mask block ``b``;
    ``masks[b]``: name of the mask input multiplying padded block ``b``.
    """
    _, TensorProto, helper, numpy_helper = _onnx()
    masks = dict(masks or {})
    n_cls = len(preprocess["output_names"])
    inputs, nodes, inits, terms = [], [], [], []
    for name in preprocess["input_names"]:
        block = preprocess[name]
        n_vars, length = len(block["var_names"]), block.get("var_length")
        shape = ["N", n_vars] if not length else ["N", n_vars, length]
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    axes = numpy_helper.from_array(np.array([2], dtype=np.int64), "axes2")
    inits.append(axes)
    for name, w in weights.items():
        block = preprocess[name]
        inits.append(numpy_helper.from_array(np.asarray(w, dtype=np.float32), f"W_{name}"))
        src = name
        if block.get("var_length"):
            if name in masks:
                nodes.append(helper.make_node("Mul", [name, masks[name]], [f"{name}_m"]))
                src = f"{name}_m"
            nodes.append(helper.make_node("ReduceSum", [src, "axes2"], [f"{name}_s"], keepdims=0))
            src = f"{name}_s"
        nodes.append(helper.make_node("MatMul", [src, f"W_{name}"], [f"{name}_t"]))
        terms.append(f"{name}_t")
    acc = terms[0]
    for i, t in enumerate(terms[1:]):
        nodes.append(helper.make_node("Add", [acc, t], [f"acc{i}"]))
        acc = f"acc{i}"
    out = "softmax" if softmax else "scores"
    if softmax:
        nodes.append(helper.make_node("Softmax", [acc], [out], axis=1))
    else:
        nodes.append(helper.make_node("Identity", [acc], [out]))
    outputs = [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", n_cls])]
    return _finish(nodes, inputs, outputs, inits, "masked_sum")


def _dense(
    helper, numpy_helper, rng, src, n_in, n_out, tag, inits, nodes, relu=True, axis_last=True
):
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = (0.01 * rng.standard_normal(n_out)).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{tag}_w"), numpy_helper.from_array(b, f"{tag}_b")]
    nodes.append(helper.make_node("MatMul", [src, f"{tag}_w"], [f"{tag}_mm"]))
    nodes.append(helper.make_node("Add", [f"{tag}_mm", f"{tag}_b"], [f"{tag}_lin"]))
    if relu:
        nodes.append(helper.make_node("Relu", [f"{tag}_lin"], [f"{tag}_out"]))
        return f"{tag}_out"
    return f"{tag}_lin"


def mlp_model(
    n_in: int,
    n_classes: int,
    hidden: Sequence[int] = (32, 32),
    seed: int = 1,
    input_name: str = "jet_features",
) -> bytes:
    """A jet-level MLP: (N, n_in) -> softmax (N, n_classes)."""
    _, TensorProto, helper, numpy_helper = _onnx()
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    src, width = input_name, n_in
    for i, h in enumerate(hidden):
        src = _dense(helper, numpy_helper, rng, src, width, h, f"l{i}", inits, nodes)
        width = h
    src = _dense(helper, numpy_helper, rng, src, width, n_classes, "out", inits, nodes, relu=False)
    nodes.append(helper.make_node("Softmax", [src], ["probs"], axis=1))
    inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", n_in])]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_classes])]
    return _finish(nodes, inputs, outputs, inits, "mlp")


def deepsets_model(
    n_pf: int,
    n_sv: int,
    length_pf: int = 100,
    length_sv: int = 7,
    n_classes: int = 4,
    hidden: int = 64,
    seed: int = 1,
) -> bytes:
    """A Deep-Sets tagger on (pf_features, pf_mask, sv_features, sv_mask):
    per-constituent MLP (3 layers), masked sum, jet MLP, softmax."""
    _, TensorProto, helper, numpy_helper = _onnx()
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"))
    pooled = []
    for tag, n_in in (("pf", n_pf), ("sv", n_sv)):
        nodes.append(
            helper.make_node("Transpose", [f"{tag}_features"], [f"{tag}_t"], perm=[0, 2, 1])
        )
        nodes.append(helper.make_node("Transpose", [f"{tag}_mask"], [f"{tag}_mt"], perm=[0, 2, 1]))
        src, width = f"{tag}_t", n_in
        for i in range(3):
            src = _dense(helper, numpy_helper, rng, src, width, hidden, f"{tag}{i}", inits, nodes)
            width = hidden
        nodes.append(helper.make_node("Mul", [src, f"{tag}_mt"], [f"{tag}_masked"]))
        nodes.append(
            helper.make_node("ReduceSum", [f"{tag}_masked", "axes1"], [f"{tag}_pool"], keepdims=0)
        )
        pooled.append(f"{tag}_pool")
    nodes.append(helper.make_node("Concat", pooled, ["pooled"], axis=1))
    src = _dense(helper, numpy_helper, rng, "pooled", 2 * hidden, hidden, "j0", inits, nodes)
    src = _dense(helper, numpy_helper, rng, src, hidden, n_classes, "j1", inits, nodes, relu=False)
    nodes.append(helper.make_node("Softmax", [src], ["softmax"], axis=1))
    inputs = [
        helper.make_tensor_value_info("pf_features", TensorProto.FLOAT, ["N", n_pf, length_pf]),
        helper.make_tensor_value_info("pf_mask", TensorProto.FLOAT, ["N", 1, length_pf]),
        helper.make_tensor_value_info("sv_features", TensorProto.FLOAT, ["N", n_sv, length_sv]),
        helper.make_tensor_value_info("sv_mask", TensorProto.FLOAT, ["N", 1, length_sv]),
    ]
    outputs = [helper.make_tensor_value_info("softmax", TensorProto.FLOAT, ["N", n_classes])]
    return _finish(nodes, inputs, outputs, inits, "deepsets")


def particlenet_like_model(
    n_pf: int = 25,
    length: int = 100,
    k: int = 16,
    channels: Sequence[int] = (64, 128, 256),
    n_classes: int = 4,
    seed: int = 1,
    n_sv: int = 12,
    length_sv: int = 7,
) -> bytes:
    """A ParticleNet-sized network (EdgeConv blocks with kNN by TopK over ``length``
    points) on weaver's six inputs (pf/sv points, features, mask).

    Each EdgeConv: kNN in the current coordinates (first block: pf_points, with
    padded points shifted far away as weaver does), edge features
    ``[x_i, x_j - x_i]`` -> MLP -> mean over the k neighbours, plus a shortcut.
    The SV branch is a per-SV MLP pooled with its mask; then masked mean over
    candidates, concatenation, dense layers and softmax.
    """
    _, TensorProto, helper, numpy_helper = _onnx()
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, value, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    const("axes1", [1], np.int64)
    const("axes2", [2], np.int64)
    const("axes3", [3], np.int64)
    const("shift", 1e9)
    const("one", 1.0)
    const("eps", 1e-6)
    const("kk", [k], np.int64)
    # (N, C, P) -> (N, P, C)
    x = node("Transpose", ["pf_features"], "x0", perm=[0, 2, 1])
    mask_t = node("Transpose", ["pf_mask"], "mask_t", perm=[0, 2, 1])  # (N, P, 1)
    # coordinates with padded points far away: pts + (1 - mask) * 1e9
    inv = node("Sub", ["one", "pf_mask"], "inv_mask")
    far = node("Mul", [inv, "shift"], "far")
    pts = node("Add", ["pf_points", far], "pts_shift")
    coords = node("Transpose", [pts], "coords0", perm=[0, 2, 1])  # (N, P, 2)
    width = n_pf
    for b, c_out in enumerate(channels):
        t = f"b{b}"
        # pairwise squared distances: |a|^2 - 2 a.b + |b|^2
        sq = node(
            "ReduceSum", [node("Mul", [coords, coords], f"{t}_sq0"), "axes2"], f"{t}_sq", keepdims=1
        )
        sq_t = node("Transpose", [sq], f"{t}_sqT", perm=[0, 2, 1])
        inner = node(
            "MatMul", [coords, node("Transpose", [coords], f"{t}_cT", perm=[0, 2, 1])], f"{t}_inner"
        )
        two = const(f"{t}_two", 2.0)
        d = node(
            "Sub",
            [node("Add", [sq, sq_t], f"{t}_ss"), node("Mul", [inner, two], f"{t}_2in")],
            f"{t}_d",
        )
        negd = node("Neg", [d], f"{t}_negd")
        nodes.append(helper.make_node("TopK", [negd, "kk"], [f"{t}_topv", f"{t}_idx"], axis=-1))
        # gather neighbour features: x (N, P, C), idx (N, P, k) -> (N, P, k, C)
        n_dim = node("Shape", [x], f"{t}_shape")
        idx = f"{t}_idx"
        # flatten batch: offsets = arange(N) * P
        const(f"{t}_zero", 0, np.int64)
        const(f"{t}_onei", 1, np.int64)
        nb = node("Gather", [n_dim, f"{t}_zero"], f"{t}_nb", axis=0)
        npnt = node("Gather", [n_dim, f"{t}_onei"], f"{t}_np", axis=0)
        ar = node("Range", [f"{t}_zero", nb, f"{t}_onei"], f"{t}_ar")
        offs = node("Mul", [ar, npnt], f"{t}_offs")
        const(f"{t}_oshape", [-1, 1, 1], np.int64)
        offs3 = node("Reshape", [offs, f"{t}_oshape"], f"{t}_offs3")
        gidx = node("Add", [idx, offs3], f"{t}_gidx")
        const(f"{t}_flat", [-1, width], np.int64)
        xflat = node("Reshape", [x, f"{t}_flat"], f"{t}_xflat")
        nbr = node("Gather", [xflat, gidx], f"{t}_nbr", axis=0)  # (N, P, k, C)
        xi = node("Unsqueeze", [x, "axes2"], f"{t}_xi")  # (N, P, 1, C)
        diff = node("Sub", [nbr, xi], f"{t}_diff")
        xi_b = node("Expand", [xi, node("Shape", [nbr], f"{t}_nshape")], f"{t}_xib")
        edge = node("Concat", [xi_b, diff], f"{t}_edge", axis=3)  # (N, P, k, 2C)
        h, w_in = edge, 2 * width
        for layer in range(3):
            h = _dense(helper, numpy_helper, rng, h, w_in, c_out, f"{t}_e{layer}", inits, nodes)
            w_in = c_out
        agg = node("ReduceMean", [h], f"{t}_agg", axes=[2], keepdims=0)  # (N, P, c_out)
        sc = _dense(helper, numpy_helper, rng, x, width, c_out, f"{t}_sc", inits, nodes, relu=False)
        out = node("Relu", [node("Add", [agg, sc], f"{t}_res")], f"{t}_out")
        x = node("Mul", [out, mask_t], f"{t}_x")
        coords = x
        width = c_out
    pooled = node("ReduceSum", [x, "axes1"], "pf_sum", keepdims=0)
    count = node(
        "Add", [node("ReduceSum", [mask_t, "axes1"], "pf_cnt", keepdims=0), "eps"], "pf_cnt_e"
    )
    pf_pool = node("Div", [pooled, count], "pf_pool")
    sv = node("Transpose", ["sv_features"], "sv_t", perm=[0, 2, 1])
    sv_mt = node("Transpose", ["sv_mask"], "sv_mt", perm=[0, 2, 1])
    h, w_in = sv, n_sv
    for layer in range(2):
        h = _dense(helper, numpy_helper, rng, h, w_in, 64, f"sv{layer}", inits, nodes)
        w_in = 64
    sv_pool = node(
        "ReduceSum", [node("Mul", [h, sv_mt], "sv_masked"), "axes1"], "sv_pool", keepdims=0
    )
    cat = node("Concat", [pf_pool, sv_pool], "cat", axis=1)
    h = _dense(helper, numpy_helper, rng, cat, width + 64, 128, "fc0", inits, nodes)
    h = _dense(helper, numpy_helper, rng, h, 128, n_classes, "fc1", inits, nodes, relu=False)
    node("Softmax", [h], "softmax", axis=1)
    inputs = [
        helper.make_tensor_value_info("pf_points", TensorProto.FLOAT, ["N", 2, length]),
        helper.make_tensor_value_info("pf_features", TensorProto.FLOAT, ["N", n_pf, length]),
        helper.make_tensor_value_info("pf_mask", TensorProto.FLOAT, ["N", 1, length]),
        helper.make_tensor_value_info("sv_points", TensorProto.FLOAT, ["N", 2, length_sv]),
        helper.make_tensor_value_info("sv_features", TensorProto.FLOAT, ["N", n_sv, length_sv]),
        helper.make_tensor_value_info("sv_mask", TensorProto.FLOAT, ["N", 1, length_sv]),
    ]
    # sv_points is part of weaver's layout; fold it in with a zero weight so the graph uses it
    zero = node(
        "ReduceSum",
        [node("Mul", ["sv_points", const("sv_pts_zero", 0.0)], "svp0"), "axes2"],
        "svp_sum",
        keepdims=0,
    )
    zsum = node("ReduceSum", [zero, "axes1"], "svp_tot", keepdims=1)
    node("Add", ["softmax", zsum], "scores")
    outputs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", n_classes])]
    return _finish(nodes, inputs, outputs, inits, "particlenet_like")


def count_parameters(model_bytes: bytes) -> int:
    """Number of float parameters (initializers with more than one element)."""
    onnx, _, _, numpy_helper = _onnx()
    model = onnx.load_from_string(model_bytes)
    return int(
        sum(
            numpy_helper.to_array(t).size
            for t in model.graph.initializer
            if numpy_helper.to_array(t).size > 1
        )
    )
