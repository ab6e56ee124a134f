"""Statistics and display levels of arrays of any dtype, any size.

Work is done in chunks so a 10 GB memory-mapped tensor never gets a float64 copy
of itself, and nothing raises on empty, all-NaN, bool, complex, integer, bf16 or
float8 input. Display levels come from a strided sample: a full percentile over
64M elements costs ~1 s, a 1M sample ~20 ms.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensor_inspector.core.dtypes import display_float, is_numeric

CHUNK_ELEMENTS = 1 << 22  # ~4M elements per pass: bounded temporaries, vectorised speed
SAMPLE_ELEMENTS = 1 << 20


class StatsCancelled(Exception):
    pass


@dataclass
class Stats:
    """Summary of one array. Floats are None where undefined (empty, all-NaN, non-numeric)."""

    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    count: int = 0
    min: float | int | None = None
    max: float | int | None = None
    mean: float | complex | None = None
    std: float | None = None
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    zeros: int = 0
    hist_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hist_edges: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    note: str = ""  # e.g. "complex: min/max/histogram of |z|"

    @property
    def inf(self) -> int:
        return self.posinf + self.neginf

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (NaN-free: undefined values are None)."""
        mean = self.mean
        if isinstance(mean, complex):
            mean = [mean.real, mean.imag]
        return {"shape": list(self.shape), "dtype": self.dtype, "nbytes": self.nbytes,
                "count": self.count, "min": self.min, "max": self.max, "mean": mean,
                "std": self.std, "nan": self.nan, "inf": self.inf, "posinf": self.posinf,
                "neginf": self.neginf, "zeros": self.zeros}


def _chunks(flat: np.ndarray, cancel: threading.Event | None):
    for start in range(0, flat.size, CHUNK_ELEMENTS):
        if cancel is not None and cancel.is_set():
            raise StatsCancelled()
        yield flat[start:start + CHUNK_ELEMENTS]


def _flat(array: np.ndarray) -> np.ndarray:
    # reshape(-1) is a view for contiguous (and memory-mapped) arrays; a copy only
    # for non-contiguous slices, which are already in memory.
    return np.asarray(array).reshape(-1)


def compute_stats(array: np.ndarray, bins: int = 64,
                  cancel: threading.Event | None = None) -> Stats:
    """Min/max/mean/std, NaN/Inf/zero counts and a histogram, chunk by chunk.

    Complex arrays: mean is complex, std is of the complex values, min/max and the
    histogram are of |z|. Bool and integers are counted as numbers. Strings and
    other non-numeric arrays get only shape/dtype/size.
    """
    array = np.asarray(array) if not isinstance(array, np.ndarray) else array
    stats = Stats(shape=tuple(array.shape), dtype=array.dtype.name, nbytes=int(array.nbytes),
                  count=int(array.size))
    if array.size == 0 or not is_numeric(array.dtype):
        if not is_numeric(array.dtype):
            stats.note = "not numeric: no statistics"
        return stats
    is_complex = array.dtype.kind == "c"
    if is_complex:
        stats.note = "complex: min, max and histogram of |z|"
    flat = _flat(array)

    # Pass 1: counts, min, max, sum (float64 accumulators per chunk only).
    finite_n = 0
    total = 0j if is_complex else 0.0
    lo, hi = math.inf, -math.inf
    for chunk in _chunks(flat, cancel):
        if chunk.dtype.kind in "iub":
            # integers stay exact (a float32 view would round int64 min/max)
            stats.zeros += int(np.count_nonzero(chunk == 0))
            good = mags = chunk.astype(np.int64) if chunk.dtype.kind == "b" else chunk
        elif is_complex:
            nan_mask = np.isnan(chunk)
            inf_mask = np.isinf(chunk)
            stats.nan += int(nan_mask.sum())
            stats.posinf += int(inf_mask.sum())
            stats.zeros += int((chunk == 0).sum())
            good = chunk[~(nan_mask | inf_mask)]
            mags = np.abs(good)
        else:
            chunk = display_float(chunk)  # bf16/fp8/f16 -> float32 copy of one chunk
            nan_mask = np.isnan(chunk)
            stats.nan += int(nan_mask.sum())
            stats.posinf += int(np.count_nonzero(chunk == np.inf))
            stats.neginf += int(np.count_nonzero(chunk == -np.inf))
            stats.zeros += int(np.count_nonzero(chunk == 0))
            good = chunk[np.isfinite(chunk)]
            mags = good
        if good.size:
            finite_n += good.size
            total += good.sum(dtype=np.complex128 if is_complex else np.float64)
            lo = min(lo, mags.min().item())
            hi = max(hi, mags.max().item())
    if finite_n == 0:
        stats.note = (stats.note + "; " if stats.note else "") + "no finite values"
        return stats
    mean = total / finite_n
    stats.min, stats.max = lo, hi
    stats.mean = complex(mean) if is_complex else float(mean)

    # Pass 2: variance around the mean (two-pass: stable) and the histogram.
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts = np.zeros(bins, np.int64)
    sq = 0.0
    for chunk in _chunks(flat, cancel):
        chunk = chunk.astype(np.float64) if chunk.dtype.kind in "iub" else display_float(chunk)
        finite = chunk[np.isfinite(chunk)]
        if not finite.size:
            continue
        dev = finite - mean
        sq += float(np.sum((dev * np.conj(dev)).real if is_complex else dev * dev, dtype=np.float64))
        values = np.abs(finite) if is_complex else finite
        counts += np.histogram(values, bins=edges)[0]
    stats.std = math.sqrt(sq / finite_n)
    stats.hist_counts, stats.hist_edges = counts, edges
    return stats


def strided_sample(array: np.ndarray, max_elements: int = SAMPLE_ELEMENTS) -> np.ndarray:
    """At most ~``max_elements`` values taken with a regular stride (cheap on mmaps)."""
    flat = _flat(array)
    if flat.size <= max_elements:
        return flat
    step = int(math.ceil(flat.size / max_elements))
    return flat[::step]


def display_levels(array: np.ndarray, mode: str = "auto",
                   percentile: float = 0.0) -> tuple[float, float]:
    """Colour levels for a heatmap from a strided sample of the finite values.

    ``mode`` "auto": (min, max), or the ``percentile``/``100-percentile`` range if
    given; "symmetric": (-m, m) with m the largest magnitude, so a diverging
    colormap centres on 0. Always returns a non-empty finite interval.
    """
    sample = display_float(strided_sample(array))
    if sample.dtype.kind == "c":
        sample = np.abs(sample)
    sample = sample[np.isfinite(sample)] if sample.size else sample
    if sample.size == 0:
        return (0.0, 1.0)
    if percentile > 0:
        lo, hi = (float(v) for v in np.percentile(sample, [percentile, 100 - percentile]))
    else:
        lo, hi = float(sample.min()), float(sample.max())
    if mode == "symmetric":
        m = max(abs(lo), abs(hi)) or 1.0
        return (-m, m)
    if hi <= lo:
        pad = abs(lo) * 0.5 or 0.5
        return (lo - pad, hi + pad)
    return (lo, hi)
