"""Fused numba kernels: link layout, gather, feature, normalisation and padding in one pass.

The fast path of input building works on the flat columns of a chunk:

1. :func:`link_layout`, once per chunk and constituent level (shared by every
   block of that level, e.g. ``pf_points``/``pf_features``/``pf_mask``): a
   two-pass counting sort of the link rows (``FatJetPFCands``) by global jet
   index, dropping rows whose jet or target index is invalid and keeping the
   first ``length`` rows of each jet in stored order. It returns the kept-row
   offsets per jet and, per kept row, its link row and its target row.
2. :func:`gather_columns`, per batch and group of same-dtype columns: their
   values at the kept rows of the batch, as float32, into a small scratch matrix
   (row by row, so that the loads of one constituent are in flight together).
3. :func:`fill_padded_block` / :func:`fill_flat_block`, per batch and input
   block: each variable is computed from the scratch (and the per-jet matrix)
   by its opcode, normalised (weaver's ``center_norm_pad``) and written into its
   slot of the (batch, n_vars, length) tensor; slots beyond a jet's constituents
   get the ``pad`` value (in a reused batch buffer, only the slots that do not
   hold it already). At most one write per output element.

The arithmetic is done in float64 and rounded once to float32. Every kernel
releases the GIL (``nogil=True``), so building batch k+1 overlaps with
onnxruntime's inference of batch k.

Opcodes (``OPS``) cover the built-in features; their arguments are column
indices: ``>= 0`` a row of the scratch matrix, ``< 0`` row ``-a - 1`` of the jet
matrix. Features without an opcode (user functions) are evaluated with numpy
once per chunk and enter the kernel as precomputed ``raw`` columns.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "MAX_ARGS",
    "OPS",
    "fill_flat_block",
    "fill_padded_block",
    "gather_columns",
    "link_layout",
]

MAX_ARGS = 4

# name -> (opcode, number of column arguments)
OPS: dict[str, tuple[int, int]] = {
    "one": (0, 0),  # 1
    "raw": (1, 1),  # a
    "log": (2, 1),  # log(a)
    "log_mul": (3, 2),  # log(a * b)
    "log_mul_div": (4, 3),  # log(a * b / c)
    "log_energy": (5, 3),  # log(E(pt=a, eta=b, m=c))
    "log_mul_energy": (6, 4),  # log(a * E(pt=b, eta=c, m=d))
    "etarel": (7, 2),  # sign(b) * (a - b), sign = +1 if b > 0 else -1
    "dphi": (8, 2),  # a - b wrapped into [-pi, pi)
    "deltar": (9, 4),  # hypot(a - c, dphi(b, d))
    "abs": (10, 1),  # |a|
    "abs_eq": (11, 1),  # |a| == const
    "normchi2": (12, 1),  # floor(a), 999 where a == -1
    "safe_div": (13, 2),  # a / b where b > 0, else 0
    "px": (14, 2),  # a cos(b)
    "py": (15, 2),  # a sin(b)
    "pz": (16, 2),  # a sinh(b)
    "energy": (17, 3),  # sqrt((a cosh b)^2 + c^2)
    "two_log_div": (18, 2),  # 2 log(a / b)
}

_ARITY = np.zeros(max(code for code, _ in OPS.values()) + 1, dtype=np.int64)
for _code, _arity in OPS.values():
    _ARITY[_code] = _arity
_TWO_PI = 2.0 * math.pi
_NB = {"nogil": True, "cache": True}
_INLINE = {"nogil": True, "cache": True, "inline": "always"}  # helpers: no call, no refcounting


@nb.njit(**_INLINE)
def _log(x: float) -> float:
    if x > 0.0:
        return math.log(x)
    if x == 0.0:
        return -math.inf
    return math.nan


@nb.njit(**_INLINE)
def _dphi(a: float, b: float) -> float:
    d = a - b + math.pi
    return d - _TWO_PI * math.floor(d / _TWO_PI) - math.pi


@nb.njit(**_INLINE)
def _energy(pt: float, eta: float, m: float) -> float:
    p = pt * math.cosh(eta)
    return math.sqrt(p * p + m * m)


@nb.njit(**_INLINE)
def _compute(op: int, x: float, y: float, z: float, w: float, const: float) -> float:
    """The raw value of opcode ``op`` on its (up to four) column values."""
    if op == 0:
        return 1.0
    if op == 1:
        return x
    if op == 2:
        return _log(x)
    if op == 3:
        return _log(x * y)
    if op == 4:
        return _log(x * y / z)
    if op == 5:
        return _log(_energy(x, y, z))
    if op == 6:
        return _log(x * _energy(y, z, w))
    if op == 7:
        return (x - y) if y > 0.0 else (y - x)
    if op == 8:
        return _dphi(x, y)
    if op == 9:
        return math.hypot(x - z, _dphi(y, w))
    if op == 10:
        return abs(x)
    if op == 11:
        return 1.0 if abs(x) == const else 0.0
    if op == 12:
        return 999.0 if x == -1.0 else math.floor(x)
    if op == 13:
        return x / y if y > 0.0 else 0.0
    if op == 14:
        return x * math.cos(y)
    if op == 15:
        return x * math.sin(y)
    if op == 16:
        return x * math.sinh(y)
    if op == 17:
        return _energy(x, y, z)
    if op == 18:
        return 2.0 * _log(x / y)
    return math.nan


@nb.njit(**_INLINE)
def _normalize(
    x: float, median: float, factor: float, lower: float, upper: float, replace: float
) -> float:
    """weaver's ``center_norm_pad`` of one value."""
    x = x if abs(x) <= 1e32 else replace  # False for nan and +-inf too
    return min(max((x - median) * factor, lower), upper)


@nb.njit(**_NB)
def link_layout(
    jet_offsets: np.ndarray,
    link_offsets: np.ndarray,
    target_offsets: np.ndarray,
    jet_index: np.ndarray,
    target_index: np.ndarray,
    length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group valid link rows by global jet, first ``length`` per jet in stored order.

    Offsets are per-event offsets into the flat jet, link and target tables.
    Returns ``(kept_offsets, link_rows, target_rows)``: kept rows of global jet
    ``g`` are ``kept_offsets[g]:kept_offsets[g+1]``; for each kept row, its row in
    the link table and its global row in the target table.
    """
    n_events = len(jet_offsets) - 1
    n_jets = jet_offsets[n_events]
    counts = np.zeros(n_jets, dtype=np.int64)
    for e in range(n_events):
        nj = jet_offsets[e + 1] - jet_offsets[e]
        nt = target_offsets[e + 1] - target_offsets[e]
        for r in range(link_offsets[e], link_offsets[e + 1]):
            j = jet_index[r]
            t = target_index[r]
            if 0 <= j < nj and 0 <= t < nt:
                counts[jet_offsets[e] + j] += 1
    kept = np.zeros(n_jets + 1, dtype=np.int64)
    for g in range(n_jets):
        kept[g + 1] = kept[g] + min(counts[g], length)
    link_rows = np.empty(kept[n_jets], dtype=np.int64)
    target_rows = np.empty(kept[n_jets], dtype=np.int64)
    cursor = np.zeros(n_jets, dtype=np.int64)
    for e in range(n_events):
        nj = jet_offsets[e + 1] - jet_offsets[e]
        nt = target_offsets[e + 1] - target_offsets[e]
        for r in range(link_offsets[e], link_offsets[e + 1]):
            j = jet_index[r]
            t = target_index[r]
            if 0 <= j < nj and 0 <= t < nt:
                g = jet_offsets[e] + j
                c = cursor[g]
                if c < length:
                    link_rows[kept[g] + c] = r
                    target_rows[kept[g] + c] = target_offsets[e] + t
                    cursor[g] = c + 1
    return kept, link_rows, target_rows


@nb.njit(**_NB)
def gather_columns(
    out: np.ndarray, columns: tuple, dest: np.ndarray, rows: np.ndarray, r0: int, r1: int
) -> None:
    """``out[dest[k], i] = columns[k][rows[r0 + i]]`` for every column of a same-dtype tuple.

    Row by row, so the loads of one target row from all columns are in flight together.
    """
    m = len(columns)
    for i in range(r1 - r0):
        t = rows[r0 + i]
        for k in range(m):
            out[dest[k], i] = columns[k][t]


@nb.njit(**_NB)
def fill_padded_block(
    out: np.ndarray,
    scratch: np.ndarray,
    jets: np.ndarray,
    kept_offsets: np.ndarray,
    j0: int,
    ops: np.ndarray,
    args: np.ndarray,
    consts: np.ndarray,
    norms: np.ndarray,
    filled: np.ndarray,
) -> None:
    """Fill ``out`` (n_batch, n_vars, length) for jets ``j0 .. j0 + n_batch``.

    ``filled[jj]``: slots ``filled[jj]:length`` of jet row ``jj`` already hold the
    pad values (a reused buffer); only slots below it are padded, then it is set
    to the jet's number of constituents. ``length`` for a fresh buffer.

    ``scratch[:, i]``: gathered columns of kept row ``kept_offsets[j0] + i``;
    ``jets[:, g]``: jet columns of global jet ``g``; ``args[v, k]``: the column of
    argument ``k`` of variable ``v`` (``>= 0`` scratch row, ``< 0`` jet row ``-a-1``),
    only the first ``arity`` of them are read (the opcode's arity in :data:`OPS`).
    """
    n_batch, n_vars, length = out.shape
    r0 = kept_offsets[j0]
    for jj in range(n_batch):  # jet-major: each jet's (n_vars, length) slab is written once
        j = j0 + jj
        start = kept_offsets[j] - r0
        n = kept_offsets[j + 1] - kept_offsets[j]
        for v in range(n_vars):
            op = ops[v]
            arity = _ARITY[op]
            a0, a1, a2, a3 = args[v, 0], args[v, 1], args[v, 2], args[v, 3]
            # argument k: scratch row a_k per constituent (a_k >= 0), else jet-matrix row -a_k-1
            x = jets[-a0 - 1, j] if arity > 0 and a0 < 0 else 0.0
            y = jets[-a1 - 1, j] if arity > 1 and a1 < 0 else 0.0
            z = jets[-a2 - 1, j] if arity > 2 and a2 < 0 else 0.0
            w = jets[-a3 - 1, j] if arity > 3 and a3 < 0 else 0.0
            s0, s1 = arity > 0 and a0 >= 0, arity > 1 and a1 >= 0
            s2, s3 = arity > 2 and a2 >= 0, arity > 3 and a3 >= 0
            const = consts[v]
            median, factor = norms[v, 0], norms[v, 1]
            lower, upper, replace = norms[v, 2], norms[v, 3], norms[v, 4]
            row = out[jj, v]
            # the common cases get their own loop (no per-element dispatch, vectorisable)
            if op == 0:
                one = np.float32(_normalize(1.0, median, factor, lower, upper, replace))
                for p in range(n):
                    row[p] = one
            elif op == 1 and s0:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    row[p] = _normalize(float(col[p]), median, factor, lower, upper, replace)
            elif op == 11 and s0:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    flag = 1.0 if abs(float(col[p])) == const else 0.0
                    row[p] = _normalize(flag, median, factor, lower, upper, replace)
            elif op == 10 and s0:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    row[p] = _normalize(abs(float(col[p])), median, factor, lower, upper, replace)
            elif op == 13 and s0 and s1:
                col, den = scratch[a0, start : start + n], scratch[a1, start : start + n]
                for p in range(n):
                    d = float(den[p])
                    q = float(col[p]) / d if d > 0.0 else 0.0
                    row[p] = _normalize(q, median, factor, lower, upper, replace)
            elif op == 2 and s0:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    lx = _log(float(col[p]))
                    row[p] = _normalize(lx, median, factor, lower, upper, replace)
            elif op == 5 and s0 and s1 and s2:
                pt, eta = scratch[a0, start : start + n], scratch[a1, start : start + n]
                mass = scratch[a2, start : start + n]
                for p in range(n):
                    le = _log(_energy(float(pt[p]), float(eta[p]), float(mass[p])))
                    row[p] = _normalize(le, median, factor, lower, upper, replace)
            elif op == 12 and s0:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    c = float(col[p])
                    c = 999.0 if c == -1.0 else math.floor(c)
                    row[p] = _normalize(c, median, factor, lower, upper, replace)
            elif op == 8 and s0 and not s1:
                col = scratch[a0, start : start + n]
                for p in range(n):
                    d = _dphi(float(col[p]), y)
                    row[p] = _normalize(d, median, factor, lower, upper, replace)
            elif op == 7 and s0 and not s1:
                col = scratch[a0, start : start + n]
                sign = 1.0 if y > 0.0 else -1.0
                for p in range(n):
                    e = sign * (float(col[p]) - y)
                    row[p] = _normalize(e, median, factor, lower, upper, replace)
            else:
                for p in range(n):
                    i = start + p
                    if s0:
                        x = scratch[a0, i]
                    if s1:
                        y = scratch[a1, i]
                    if s2:
                        z = scratch[a2, i]
                    if s3:
                        w = scratch[a3, i]
                    value = _compute(op, float(x), float(y), float(z), float(w), const)
                    row[p] = _normalize(value, median, factor, lower, upper, replace)
            pad = np.float32(norms[v, 5])
            for p in range(n, min(filled[jj], length)):
                row[p] = pad
        filled[jj] = n


@nb.njit(**_NB)
def fill_flat_block(
    out: np.ndarray,
    jets: np.ndarray,
    j0: int,
    ops: np.ndarray,
    args: np.ndarray,
    consts: np.ndarray,
    norms: np.ndarray,
) -> None:
    """Fill ``out`` (n_batch, n_vars) of a jet-level block for jets ``j0 .. j0 + n_batch``.

    Every argument is a jet-matrix row (``args[v, k] < 0``).
    """
    n_batch, n_vars = out.shape
    vals = np.zeros(MAX_ARGS)
    for jj in range(n_batch):
        j = j0 + jj
        for v in range(n_vars):
            op = ops[v]
            for k in range(_ARITY[op]):
                vals[k] = jets[-args[v, k] - 1, j]
            x = _compute(op, vals[0], vals[1], vals[2], vals[3], consts[v])
            out[jj, v] = _normalize(
                x, norms[v, 0], norms[v, 1], norms[v, 2], norms[v, 3], norms[v, 4]
            )
