"""Reducing a plane to a picture that keeps the data's character.

A block mean of random noise is flat, and it dilutes one NaN among 64M values into
a pixel that is merely NaN-coloured for as long as the mean is (it is, but the same
mean erases every other outlier). So the picture takes one representative value
per block (a regular subsample: noise stays noise, structure stays structure), and
the non-finite values are aggregated with "any": a block holding one NaN is a NaN
pixel. Where non-finite values are few, their exact positions are returned too, so
the view can mark each one at any zoom level.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from tensor_inspector.core.dtypes import display_float
from tensor_inspector.core.errors import Cancelled

BAND_ELEMENTS = 1 << 22  # ~4M values per pass: bounded temporaries
MAX_MARKERS = 4096  # beyond this, non-finite values form visible regions on their own

# codes of non-finite values in ``Reduced.marks``
NAN, POSINF, NEGINF = 0, 1, 2


@dataclass
class Reduced:
    """A display image of a plane and where its non-finite values are.

    ``image`` holds one value per ``factor`` x ``factor`` block (NaN/±Inf where the
    block holds any, NaN first); ``marks`` rows are (row, col, code) in the plane's
    own cells, or None when there are more than ``MAX_MARKERS``.
    """

    image: np.ndarray
    factor: int
    marks: np.ndarray | None = field(default=None)
    nonfinite: int = 0


def reduction_factor(shape: tuple[int, ...], max_side: int) -> int:
    """The block size that brings the longest axis of ``shape`` to at most ``max_side``."""
    return max(1, math.ceil(max(shape, default=1) / max(max_side, 1)))


def reduce_plane(
    plane: np.ndarray,
    max_side: int,
    to_float: object = None,
    cancel: threading.Event | None = None,
) -> Reduced:
    """A float32 picture of the 2-D ``plane``, at most ``max_side`` per axis.

    ``to_float`` (a callable) turns a band of the plane into real floats (the complex
    part chosen by the user); by default bf16/fp8/int/bool become float32.
    """
    convert = to_float if callable(to_float) else display_float
    rows, cols = plane.shape
    factor = reduction_factor((rows, cols), max_side)
    out_rows, out_cols = -(-rows // factor), -(-cols // factor)
    image = np.empty((out_rows, out_cols), np.float32)
    marks: list[np.ndarray] = []
    counted = 0
    # whole blocks per band, so each block's "any" is decided within one band
    band = max(1, BAND_ELEMENTS // max(cols, 1) // factor) * factor
    col_starts = np.arange(0, cols, factor)
    for start in range(0, rows, band):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        chunk = np.asarray(convert(plane[start : start + band]))
        target = image[start // factor : -(-(start + chunk.shape[0]) // factor)]
        target[...] = chunk[::factor, ::factor]
        if chunk.dtype.kind != "f":
            continue
        with np.errstate(all="ignore"):
            probe = chunk.sum()
        if np.isfinite(probe):
            continue  # fast path: the band has no NaN or Inf
        row_starts = np.arange(0, chunk.shape[0], factor)
        # the order of these writes is the priority of what a mixed block shows: NaN last wins
        for code, mask in ((NEGINF, chunk == -np.inf), (POSINF, chunk == np.inf), (NAN, np.isnan(chunk))):
            count = int(np.count_nonzero(mask))
            if not count:
                continue
            counted += count
            if counted <= MAX_MARKERS:
                r, c = np.nonzero(mask)
                marks.append(np.stack([r + start, c, np.full_like(r, code)], axis=1))
            if factor > 1:
                mask = np.logical_or.reduceat(np.logical_or.reduceat(mask, row_starts, axis=0), col_starts, 1)
            target[mask] = (np.nan, np.inf, -np.inf)[code]
    found = np.concatenate(marks) if marks and counted <= MAX_MARKERS else None
    if found is None and counted <= MAX_MARKERS:
        found = np.zeros((0, 3), np.int64)
    return Reduced(image, factor, found, counted)
