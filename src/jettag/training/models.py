"""Network architectures of the reference taggers (torch) and their input blocks.

* :class:`ParticleNetLite`: a particle-cloud network of the ParticleNet family.
  PF candidates and SVs are embedded separately, joined into one cloud and
  passed through two EdgeConv blocks on the k nearest neighbours (first in
  (deta, dphi), then in the learned feature space: a dynamic graph), fused,
  pooled over the particles (masked mean) and classified.
* :class:`DeepSets`: a Deep Sets / Energy-Flow-Network style model: one
  per-particle MLP for PF candidates and one for SVs, masked sums, and an MLP
  on the sums. Light and fast, for trigger-like budgets.

The EdgeConv first layer acting on ``[x_i, x_j - x_i]`` is computed as
``(W_a - W_b) x_i + W_b x_j``: the same linear map, evaluated per particle
rather than per edge, which makes the network several times cheaper at
inference. Padded particles are moved far away in the coordinate space so they
are never neighbours of real ones, and masked out of every sum.

:func:`input_blocks` gives each architecture's ``preprocess.json`` inputs
(weaver names, the ones ParticleNet's AK8 trainings use on PFNano).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "IDENTITY_BLOCKS",
    "DeepSets",
    "ParticleNetLite",
    "build_model",
    "input_blocks",
]

PF_FEATURES = (
    "pfcand_pt_log_nopuppi",
    "pfcand_e_log_nopuppi",
    "pfcand_etarel",
    "pfcand_phirel",
    "pfcand_abseta",
    "pfcand_charge",
    "pfcand_isEl",
    "pfcand_isMu",
    "pfcand_isGamma",
    "pfcand_isChargedHad",
    "pfcand_isNeutralHad",
    "pfcand_VTX_ass",
    "pfcand_lostInnerHits",
    "pfcand_normchi2",
    "pfcand_quality",
    "pfcand_dz",
    "pfcand_dzsig",
    "pfcand_dxy",
    "pfcand_dxysig",
    "pfcand_btagEtaRel",
    "pfcand_btagPtRatio",
    "pfcand_btagPParRatio",
    "pfcand_btagSip3dVal",
    "pfcand_btagSip3dSig",
    "pfcand_btagJetDistVal",
)
SV_FEATURES = (
    "sv_pt_log",
    "sv_mass",
    "sv_etarel",
    "sv_phirel",
    "sv_abseta",
    "sv_ntracks",
    "sv_normchi2",
    "sv_dxy",
    "sv_dxysig",
    "sv_d3d",
    "sv_d3dsig",
    "sv_costhetasvpv",
)

#: Input blocks fed as they are (identity normalisation): coordinates and masks.
IDENTITY_BLOCKS: tuple[str, ...] = ("pf_points", "pf_mask", "sv_points", "sv_mask")


def _block(var_names: tuple[str, ...], length: int) -> dict[str, Any]:
    return {"var_names": list(var_names), "var_infos": {}, "var_length": length}


def particle_inputs(n_pf: int, n_sv: int, *, points: bool) -> dict[str, Any]:
    """Weaver preprocess inputs of a particle model (without var_infos)."""
    blocks: dict[str, Any] = {}
    if points:
        # the points are the un-normalised (deta, dphi) of CMSSW/weaver: stored as
        # separate variables so that their normalisation can stay the identity
        blocks["pf_points"] = _block(("pfcand_etarel", "pfcand_phirel"), n_pf)
    blocks["pf_features"] = _block(PF_FEATURES, n_pf)
    blocks["pf_mask"] = _block(("pfcand_mask",), n_pf)
    if points:
        blocks["sv_points"] = _block(("sv_etarel", "sv_phirel"), n_sv)
    blocks["sv_features"] = _block(SV_FEATURES, n_sv)
    blocks["sv_mask"] = _block(("sv_mask",), n_sv)
    return {"input_names": list(blocks), **blocks}


class _Dense(nn.Module):
    """Linear (no bias) + batch norm + ReLU on the last axis of a channel-last tensor.

    Channel-last ``Linear`` layers are matrix products, several times faster on
    CPU than the equivalent 1x1 convolutions; batch norm runs on the flattened
    (rows, channels) view.
    """

    def __init__(self, c_in: int, c_out: int, *, relu: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, c_out, bias=False)
        self.norm = nn.BatchNorm1d(c_out)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _norm(self.norm, self.linear(x))
        return torch.relu(y) if self.relu else y


def _norm(norm: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Batch norm over the last axis of a channel-last tensor of any rank."""
    shape = x.shape
    return norm(x.reshape(-1, shape[-1])).reshape(shape)


def _channel_last(x: torch.Tensor) -> torch.Tensor:
    """weaver's (batch, variables, slots) -> (batch, slots, variables)."""
    return x.transpose(1, 2)


class _EdgeConv(nn.Module):
    """EdgeConv on the k nearest neighbours, two edge layers, mean over neighbours, shortcut.

    The per-edge layers carry biases instead of batch norm (normalising every
    edge costs as much as the layer itself); batch norm stays on the
    per-particle shortcut and on the embeddings.
    """

    def __init__(self, k: int, c_in: int, channels: tuple[int, int]) -> None:
        super().__init__()
        self.k = k
        c1, c2 = channels
        self.center = nn.Linear(c_in, c1)  # (W_a - W_b) x_i + b
        self.neighbour = nn.Linear(c_in, c1, bias=False)  # W_b x_j
        self.edge2 = nn.Linear(c1, c2)
        self.shortcut = _Dense(c_in, c2, relu=False)

    def forward(self, points: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # channel-last: points (B, P, D); x (B, P, C); mask (B, P, 1)
        batch, n, _ = points.shape
        shifted = points + (1.0 - mask) * 1e5  # padded particles far from everything
        inner = torch.bmm(shifted, shifted.transpose(1, 2))  # (B, P, P)
        sq = (shifted * shifted).sum(dim=2, keepdim=True)  # (B, P, 1)
        dist = sq - 2 * inner + sq.transpose(1, 2)
        idx = dist.topk(self.k + 1, dim=-1, largest=False)[1][:, :, 1:]  # (B, P, k), no self
        v = self.neighbour(x)  # (B, P, C1)
        c1 = v.shape[-1]
        base = torch.arange(batch, device=x.device).view(-1, 1, 1) * n
        v_j = v.reshape(batch * n, c1)[(idx + base).reshape(-1)].view(batch, n, self.k, c1)
        edge = torch.relu(self.center(x).unsqueeze(2) + v_j)  # (B, P, k, C1)
        # the second edge layer on the (edges, C1) matrix: one Gemm with its bias in ONNX
        edge = torch.relu(self.edge2(edge.reshape(-1, c1)))
        out = edge.view(batch, n, self.k, -1).mean(dim=2)
        return torch.relu(out + self.shortcut(x)) * mask


class ParticleNetLite(nn.Module):
    """A light ParticleNet: embedding, two EdgeConv blocks, fusion, masked mean pooling."""

    def __init__(
        self,
        n_pf_features: int,
        n_sv_features: int,
        n_classes: int,
        *,
        embed: int = 32,
        k: int = 8,
        blocks: tuple[tuple[int, int], ...] = ((32, 32), (48, 48)),
        fusion: int = 128,
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pf_input_norm = nn.BatchNorm1d(n_pf_features)
        self.sv_input_norm = nn.BatchNorm1d(n_sv_features)
        self.pf_embed = _Dense(n_pf_features, embed)
        self.sv_embed = _Dense(n_sv_features, embed)
        convs = []
        c_in = embed
        for channels in blocks:
            convs.append(_EdgeConv(k, c_in, channels))
            c_in = channels[-1]
        self.edge_convs = nn.ModuleList(convs)
        self.fusion = _Dense(sum(c[-1] for c in blocks), fusion)
        self.head = nn.Sequential(
            nn.Linear(fusion, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes)
        )

    def forward(self, pf_points, pf_features, pf_mask, sv_points, sv_features, sv_mask):
        pf_mask, sv_mask = _channel_last(pf_mask), _channel_last(sv_mask)
        pf = self.pf_embed(_norm(self.pf_input_norm, _channel_last(pf_features))) * pf_mask
        sv = self.sv_embed(_norm(self.sv_input_norm, _channel_last(sv_features))) * sv_mask
        mask = torch.cat([pf_mask, sv_mask], dim=1)
        points = torch.cat([_channel_last(pf_points), _channel_last(sv_points)], dim=1)
        x = torch.cat([pf, sv], dim=1)
        outputs = []
        for i, conv in enumerate(self.edge_convs):
            x = conv(points if i == 0 else x, x, mask)
            outputs.append(x)
        fused = self.fusion(torch.cat(outputs, dim=2)) * mask
        pooled = fused.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


class DeepSets(nn.Module):
    """Per-particle MLPs for PF candidates and SVs, masked sums, MLP on the sums."""

    def __init__(
        self,
        n_pf_features: int,
        n_sv_features: int,
        n_classes: int,
        *,
        pf_channels: tuple[int, ...] = (64, 64, 64),
        sv_channels: tuple[int, ...] = (32, 32),
        hidden: tuple[int, ...] = (64, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.pf_input_norm = nn.BatchNorm1d(n_pf_features)
        self.sv_input_norm = nn.BatchNorm1d(n_sv_features)

        def phi(c_in: int, channels: tuple[int, ...]) -> nn.Sequential:
            layers = []
            for c in channels:
                layers.append(_Dense(c_in, c))
                c_in = c
            return nn.Sequential(*layers)

        self.pf_phi = phi(n_pf_features, pf_channels)
        self.sv_phi = phi(n_sv_features, sv_channels)
        layers: list[nn.Module] = []
        c_in = pf_channels[-1] + sv_channels[-1]
        for c in hidden:
            layers += [nn.Linear(c_in, c), nn.ReLU(), nn.Dropout(dropout)]
            c_in = c
        layers.append(nn.Linear(c_in, n_classes))
        self.rho = nn.Sequential(*layers)

    def forward(self, pf_features, pf_mask, sv_features, sv_mask):
        pf = self.pf_phi(_norm(self.pf_input_norm, _channel_last(pf_features)))
        sv = self.sv_phi(_norm(self.sv_input_norm, _channel_last(sv_features)))
        # sums scaled by a constant so that their size does not grow with the padding length
        pf = (pf * _channel_last(pf_mask)).sum(dim=1) / 16.0
        sv = (sv * _channel_last(sv_mask)).sum(dim=1) / 2.0
        return self.rho(torch.cat([pf, sv], dim=1))


#: name -> (model class, n_pf, n_sv, uses points)
ARCHITECTURES: dict[str, tuple[type[nn.Module], int, int, bool]] = {
    "particlenet-lite": (ParticleNetLite, 48, 5, True),
    "deepsets": (DeepSets, 48, 5, False),
}


def input_blocks(architecture: str) -> dict[str, Any]:
    """The weaver ``input_names`` + blocks of ``architecture``."""
    _, n_pf, n_sv, points = ARCHITECTURES[architecture]
    return particle_inputs(n_pf, n_sv, points=points)


def build_model(architecture: str, n_classes: int, *, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """A freshly initialised network of ``architecture`` (initial weights from ``seed`` if given)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    cls, _, _, _ = ARCHITECTURES[architecture]
    if seed is not None:
        torch.manual_seed(seed)
    return cls(len(PF_FEATURES), len(SV_FEATURES), n_classes, **kwargs)
