"""Between awkward's jagged arrays and flat numpy columns.

The generator's steps work on flat numpy arrays plus list offsets (numba
kernels, vectorised numpy) and hand jagged awkward arrays to each other; these
four helpers are the only conversions they need.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

__all__ = ["counts", "flat", "jagged", "offsets"]


def flat(array: ak.Array, dtype: type | np.dtype = np.float64) -> np.ndarray:
    """All values of a (jagged) numeric array as one contiguous numpy array."""
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(array, axis=None)), dtype=dtype)


def counts(array: ak.Array, axis: int = 1) -> np.ndarray:
    """List lengths at ``axis``, flattened to one int64 array."""
    return np.asarray(ak.to_numpy(ak.flatten(ak.num(array, axis=axis), axis=None)), np.int64)


def offsets(list_counts: np.ndarray) -> np.ndarray:
    """List offsets (length n + 1, starting at 0) from list lengths."""
    out = np.zeros(len(list_counts) + 1, dtype=np.int64)
    np.cumsum(list_counts, out=out[1:])
    return out


def jagged(list_offsets: np.ndarray, fields: dict[str, np.ndarray]) -> ak.Array:
    """Jagged records from flat numpy columns and list offsets (no copy of the columns)."""
    content = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in fields.values()],
        list(fields),
        length=int(list_offsets[-1]),
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(list_offsets), content))
