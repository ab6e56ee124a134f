"""Statistics jobs of the array view (run off the GUI thread): in memory, from a sample, streamed.

An array in memory gets exact statistics in one chunked pass. A huge non-contiguous
view, or the strided sample of a tensor too big to read, gets statistics of a
sample, and says so. The exact statistics of such a tensor are streamed from the
file in slabs of at most ``SLAB_BYTES``, with progress and a cancel event, the
histogram still drawn from the sample.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable

import numpy as np

from tensor_inspector.core.errors import Cancelled
from tensor_inspector.core.nodes import Index
from tensor_inspector.core.sampling import Sampling
from tensor_inspector.core.stats import Stats, StatsAccumulator, compute_stats

# Non-contiguous arrays above this get statistics from a strided sample: flattening
# them (what compute_stats does) would copy, and materialise a broadcast view.
MAX_COPY_FOR_STATS = 1 << 26
SLAB_BYTES = 64 << 20  # one read of the streamed statistics

Fetch = Callable[[Index, "threading.Event | None"], np.ndarray]


def stats_job(array: np.ndarray, cancel: threading.Event | None = None) -> Stats:
    """Statistics of ``array`` (worker thread); estimates for huge non-contiguous views."""
    if array.flags.c_contiguous or array.size <= MAX_COPY_FOR_STATS:
        return compute_stats(array, cancel=cancel)
    sample = np.ascontiguousarray(nd_sample(array))
    stats = compute_stats(sample, cancel=cancel)
    stats.shape, stats.nbytes, stats.count = tuple(array.shape), int(array.nbytes), int(array.size)
    stats.nan = stats.posinf = stats.neginf = stats.zeros = 0  # counts of a sample would mislead
    stats.note = (
        f"estimated from {sample.size:,} sampled values (non-contiguous view); "
        "NaN/Inf/zero counts not computed"
    )
    return stats


def sample_stats_job(array: np.ndarray, sampling: Sampling, cancel: threading.Event | None = None) -> Stats:
    """Statistics of the strided sample of a big tensor, labelled as such (counts are of the sample)."""
    stats = compute_stats(array, cancel=cancel)
    stats.shape = sampling.shape
    stats.nbytes = math.prod(sampling.shape) * array.dtype.itemsize
    note = f"from a sample of {array.size:,} values ({sampling.describe()}); counts are of the sample"
    stats.note = "; ".join(part for part in (note, stats.note) if part)
    return stats


def nd_sample(array: np.ndarray, target: int = 1 << 20) -> np.ndarray:
    """A strided N-D sub-grid of at most ~``target`` values (a view); short axes stay whole."""
    steps = [1] * array.ndim
    counts = list(array.shape)
    while int(np.prod(counts, dtype=np.float64)) > target:
        axis = int(np.argmax(counts))  # thin the longest remaining axis
        steps[axis] *= 2
        counts[axis] = -(-array.shape[axis] // steps[axis])
    return array[tuple(slice(None, None, s) for s in steps)]


def slabs(shape: tuple[int, ...], itemsize: int, max_bytes: int = SLAB_BYTES) -> list[Index]:
    """Indexes that cover ``shape`` in row-major order, each at most ``max_bytes`` (or one row)."""
    if not shape:
        return [()]
    axis = 0
    while axis < len(shape) - 1 and math.prod(shape[axis:]) * itemsize > max_bytes:
        axis += 1
    inner = math.prod(shape[axis + 1 :]) * itemsize
    per = max(1, max_bytes // max(inner, 1))
    out: list[Index] = []
    for outer in itertools.product(*(range(n) for n in shape[:axis])):
        for start in range(0, shape[axis], per):
            out.append(tuple(outer) + (slice(start, min(start + per, shape[axis])),))
    return out


def streamed_stats(
    fetch: Fetch,
    sampling: Sampling,
    sample: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Stats:
    """Exact statistics of the whole tensor, read slab by slab; the histogram comes from ``sample``."""
    parts = slabs(sampling.shape, sample.dtype.itemsize)
    accumulator = StatsAccumulator(sampling.shape, sample.dtype)
    for done, index in enumerate(parts):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        accumulator.add(fetch(index, cancel), cancel)
        if progress is not None:
            progress(done + 1, len(parts))
    return accumulator.finish(sample, notes=[f"exact; histogram from {sample.size:,} sampled values"])
