"""Fitting torch networks on :class:`~jettag.training.dataset.JetDataset` inputs, and ONNX export.

Class-imbalance options (defaults in :class:`TrainConfig`):

``class_weights="balanced"``
    every class gets the same total weight in the loss;
``loss="focal"``
    focal loss ``-alpha_c (1 - p_t)^gamma log p_t`` (gamma 2, alpha per class or 1);
``sampling="balanced"``
    batches drawn with replacement so that every class is equally frequent
    (per-jet weights then enter the sampling probability, not the loss).

Per-jet weights (mass decorrelation) multiply the loss of each jet. The
network with the lowest weighted validation loss over the epochs is kept.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jettag.training.weights import class_balance_weights

__all__ = ["TrainConfig", "export_onnx", "fit_network", "predict"]

LOSSES = ("ce", "focal")
CLASS_WEIGHTS = ("none", "balanced")
SAMPLINGS = ("shuffle", "balanced")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, loss and class-imbalance settings of a network fit."""

    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    loss: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: tuple[float, ...] | None = None
    class_weights: str = "none"
    sampling: str = "shuffle"
    validation_fraction: float = 0.1
    seed: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("loss", self.loss, LOSSES),
            ("class_weights", self.class_weights, CLASS_WEIGHTS),
            ("sampling", self.sampling, SAMPLINGS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} {value!r} is not one of {allowed}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)


def _per_jet_loss(logits: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    log_p = torch.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, target[:, None])[:, 0]
    if config.loss == "ce":
        return -log_pt
    pt = log_pt.exp()
    loss = -((1.0 - pt) ** config.focal_gamma) * log_pt
    if config.focal_alpha is not None:
        alpha = torch.as_tensor(config.focal_alpha, dtype=loss.dtype)
        loss = loss * alpha[target]
    return loss


def _to_tensors(inputs: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v[index])) for k, v in inputs.items()}


def fit_network(
    model: nn.Module,
    inputs: Mapping[str, np.ndarray],
    label: np.ndarray,
    weights: np.ndarray | None = None,
    config: TrainConfig | None = None,
    *,
    input_names: Sequence[str] | None = None,
    log: Any = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train ``model`` (in place) and return it at its best validation loss, with the history.

    ``inputs``: name -> (n_jets, ...) float32 arrays, passed to ``model`` by
    keyword (``input_names`` restricts them); ``label``: class index per jet;
    ``weights``: per-jet loss weights (1 if None). ``log``: called with a line
    per epoch.
    """
    config = config or TrainConfig()
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _fit(model, inputs, label, weights, config, input_names, log)
    finally:
        torch.set_num_threads(threads_before)


def _fit(model, inputs, label, weights, config, input_names, log):
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    names = list(input_names) if input_names is not None else list(inputs)
    inputs = {k: inputs[k] for k in names}
    label = np.asarray(label, dtype=np.int64)
    n = len(label)
    weights = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if config.class_weights == "balanced":
        weights = class_balance_weights(label, weights)

    order = rng.permutation(n)
    n_val = round(config.validation_fraction * n)
    val_idx, train_idx = np.sort(order[:n_val]), order[n_val:]
    if len(train_idx) == 0:
        raise ValueError("no jets left to train on")

    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(train_idx) / config.batch_size)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    w_train = weights[train_idx]
    if config.sampling == "balanced":
        probs = class_balance_weights(label[train_idx], w_train)
        probs = probs / probs.sum()

    best_state, best_loss, history = None, np.inf, []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        if config.sampling == "balanced":
            epoch_idx = train_idx[rng.choice(len(train_idx), size=len(train_idx), p=probs)]
            epoch_w = np.ones(len(epoch_idx))
        else:
            perm = rng.permutation(len(train_idx))
            epoch_idx, epoch_w = train_idx[perm], w_train[perm]
        total, wsum = 0.0, 0.0
        for s in range(steps_per_epoch):
            sl = slice(s * config.batch_size, (s + 1) * config.batch_size)
            idx = epoch_idx[sl]
            if len(idx) < 2:  # batch norm needs two jets
                continue
            batch = _to_tensors(inputs, idx)
            w = torch.from_numpy(epoch_w[sl].astype(np.float32))
            target = torch.from_numpy(label[idx])
            loss_vec = _per_jet_loss(model(**batch), target, config)
            loss = (loss_vec * w).sum() / w.sum().clamp(min=1e-12)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float((loss_vec.detach() * w).sum())
            wsum += float(w.sum())
        val_loss = _evaluate_loss(model, inputs, label, weights, val_idx, config)
        record = {
            "epoch": epoch + 1,
            "train_loss": total / max(wsum, 1e-12),
            "val_loss": val_loss,
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        if log is not None:
            log(
                f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.4f}, "
                f"validation loss {val_loss:.4f} ({record['seconds']:.1f} s)"
            )
        if val_loss < best_loss or best_state is None:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def _batched_logits(model: nn.Module, inputs: Mapping[str, np.ndarray], index: np.ndarray, batch_size: int = 4096):
    """(jet indices, logits) of ``model`` in evaluation mode, batch by batch, without gradients."""
    model.eval()
    with torch.no_grad():
        for s in range(0, len(index), batch_size):
            idx = index[s : s + batch_size]
            yield idx, model(**_to_tensors(inputs, idx))


def _evaluate_loss(model, inputs, label, weights, index, config) -> float:
    if len(index) == 0:
        return float("nan")
    total, wsum = 0.0, 0.0
    for idx, logits in _batched_logits(model, inputs, index):
        loss_vec = _per_jet_loss(logits, torch.from_numpy(label[idx]), config)
        w = torch.from_numpy(weights[idx].astype(np.float32))
        total += float((loss_vec * w).sum())
        wsum += float(w.sum())
    return total / max(wsum, 1e-12)


def predict(model: nn.Module, inputs: Mapping[str, np.ndarray], *, batch_size: int = 4096) -> np.ndarray:
    """Softmax scores (n_jets, n_classes) of a torch network."""
    n = len(next(iter(inputs.values())))
    out = [
        torch.softmax(logits, dim=1).numpy()
        for _, logits in _batched_logits(model, inputs, np.arange(n), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class _Softmax(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(*args), dim=1)


def export_onnx(
    model: nn.Module,
    example: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    output_name: str = "softmax",
    opset: int = 17,
) -> Path:
    """Write ``model`` + softmax as ONNX with a dynamic batch axis (inputs in ``example``'s order)."""
    import warnings

    path = Path(path)
    names = list(example)
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[k][:2])) for k in names)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Softmax(model),
            args,
            str(path),
            input_names=names,
            output_names=[output_name],
            dynamic_axes={k: {0: "N"} for k in [*names, output_name]},
            opset_version=opset,
            dynamo=False,
        )
    return path
