"""Finding NaN and ±Inf values in arrays of any size, for "go to the next NaN" in the app.

The search walks the flat (C-order) array in chunks, so a memory-mapped tensor is
read piece by piece and the search can be cancelled between chunks.
"""

from __future__ import annotations

import threading

import numpy as np

from tensor_inspector.core.dtypes import display_float, is_float_like

CHUNK_ELEMENTS = 1 << 22


def can_hold_nonfinite(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind == "c" or is_float_like(dtype)


def _first_in(flat: np.ndarray, start: int, stop: int, cancel: threading.Event | None) -> int | None:
    for begin in range(start, stop, CHUNK_ELEMENTS):
        if cancel is not None and cancel.is_set():
            return None
        chunk = flat[begin : min(begin + CHUNK_ELEMENTS, stop)]
        hits = np.flatnonzero(~np.isfinite(display_float(chunk)))
        if hits.size:
            return begin + int(hits[0])
    return None


def find_nonfinite(
    array: np.ndarray, after: tuple[int, ...] | None = None, cancel: threading.Event | None = None
) -> tuple[int, ...] | None:
    """The N-D index of the first NaN/±Inf after ``after`` in C order, wrapping around.

    ``after=None`` starts at the beginning. None when the array has no such value
    (or cannot hold one: integers, bool, strings).
    """
    array = np.asarray(array)
    if array.size == 0 or not can_hold_nonfinite(array.dtype):
        return None
    flat = array.reshape(-1)  # a view for contiguous arrays and maps
    start = 0 if after is None else int(np.ravel_multi_index(after, array.shape)) + 1
    found = _first_in(flat, start, flat.size, cancel)
    if found is None and start > 0:
        found = _first_in(flat, 0, start, cancel)
    if found is None:
        return None
    return tuple(int(i) for i in np.unravel_index(found, array.shape))
