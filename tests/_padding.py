"""Jagged -> padded tensors by index arithmetic on flat arrays, in plain numpy.

The numpy statement of what :mod:`jettag.tagger.kernels` does fused in numba
(the tagger runs the kernels; tests hold the kernels to these functions).
No per-variable ``ak.pad_none``: the rows of a link table (``FatJetPFCands``) are
grouped by global jet index once (a stable sort, skipped when already grouped,
as PFNano writes them), each row gets its slot ``pos`` inside its jet, rows with
``pos >= length`` are dropped (truncation to the first ``length`` constituents
in stored order), and each variable is scattered with one fancy assignment into
a float32 buffer pre-filled with its pad value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RowLayout", "fill_padded", "layout_rows", "normalize"]


@dataclass(frozen=True)
class RowLayout:
    """Kept rows of a link table, grouped by jet.

    ``rows``: indices into the (valid) link rows, jet-grouped, stored order inside
    a jet; ``jet``: global jet index of each kept row; ``pos``: slot of each kept
    row inside its jet; ``offsets``: ``rows[offsets[j]:offsets[j+1]]`` belong to
    jet ``j`` (length ``n_jets + 1``).
    """

    rows: np.ndarray
    jet: np.ndarray
    pos: np.ndarray
    offsets: np.ndarray

    @property
    def n_jets(self) -> int:
        return len(self.offsets) - 1


def layout_rows(jet_of_row: np.ndarray, n_jets: int, length: int) -> RowLayout:
    """Group rows by their global jet index and keep the first ``length`` of each jet."""
    jet_of_row = np.asarray(jet_of_row, dtype=np.int64)
    n = len(jet_of_row)
    if n and np.any(jet_of_row[1:] < jet_of_row[:-1]):
        order = np.argsort(jet_of_row, kind="stable")
        jets_sorted = jet_of_row[order]
    else:
        order = np.arange(n, dtype=np.int64)
        jets_sorted = jet_of_row
    counts = np.bincount(jets_sorted, minlength=n_jets)[:n_jets]
    starts = np.zeros(n_jets + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    pos = np.arange(n, dtype=np.int64) - starts[jets_sorted]
    keep = pos < length
    kept_counts = np.minimum(counts, length)
    offsets = np.zeros(n_jets + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=offsets[1:])
    if keep.all():
        return RowLayout(order, jets_sorted, pos, offsets)
    return RowLayout(order[keep], jets_sorted[keep], pos[keep], offsets)


def normalize(
    values: np.ndarray,
    median: float,
    norm_factor: float,
    lower: float,
    upper: float,
    replace_inf_value: float,
) -> np.ndarray:
    """Weaver/CMSSW ``center_norm_pad`` transform of raw values, as float32.

    Non-finite values and values beyond +-1e32 become ``replace_inf_value``
    first; then ``clip((x - median) * norm_factor, lower, upper)``.
    """
    x = np.asarray(values, dtype=np.float32)
    bad = ~np.isfinite(x) | (np.abs(x) > np.float32(1e32))
    if bad.any():
        x = np.where(bad, np.float32(replace_inf_value), x)
    y = (x - np.float32(median)) * np.float32(norm_factor)
    return np.clip(y, np.float32(lower), np.float32(upper)).astype(np.float32, copy=False)


def fill_padded(
    values: np.ndarray,
    pads: np.ndarray,
    layout: RowLayout,
    length: int,
    j0: int,
    j1: int,
) -> np.ndarray:
    """The (j1 - j0, n_vars, length) float32 tensor of jets ``j0..j1``.

    ``values``: (n_vars, n_kept_rows) normalised values in ``layout`` order;
    ``pads``: (n_vars,) pad value of each variable.
    """
    n_vars = values.shape[0]
    nb = j1 - j0
    out = np.empty((nb, n_vars, length), dtype=np.float32)
    out[...] = pads.astype(np.float32)[None, :, None]
    r0, r1 = int(layout.offsets[j0]), int(layout.offsets[j1])
    if r1 > r0:
        base = (layout.jet[r0:r1] - j0) * (n_vars * length) + layout.pos[r0:r1]
        flat = out.reshape(-1)
        for v in range(n_vars):
            flat[base + v * length] = values[v, r0:r1]
    return out
