"""Statistics and display levels of arrays of any dtype, any size.

Work is done in chunks so a 10 GB memory-mapped tensor never gets a float64 copy
of itself, and nothing raises on empty, all-NaN, bool, complex, integer, bf16 or
float8 input. Display levels come from a strided sample: a full percentile over
64M elements costs ~1 s, a 1M sample ~20 ms.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensor_inspector.core.dtypes import display_float, is_numeric
from tensor_inspector.core.errors import Cancelled

CHUNK_ELEMENTS = 1 << 22  # ~4M elements per pass: bounded temporaries, vectorised speed
SAMPLE_ELEMENTS = 1 << 20
HIST_EXACT_ELEMENTS = 1 << 22  # beyond this the histogram comes from a strided sample
SUM_BLOCK = 1024  # values summed in their own precision before the float64 total
SQUARES_OVERFLOW = 1e17  # float32 beyond this: a row's sum of squares could overflow
SQUARES_UNDERFLOW = 1e-15  # float32 below this: squares would lose digits to underflow
_CANCELLATION = 1e6  # the one-pass variance is trusted while it keeps ~6 digits


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
        mean: float | list[float] | None = (
            [self.mean.real, self.mean.imag] if isinstance(self.mean, complex) else self.mean
        )
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "nbytes": self.nbytes,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "mean": mean,
            "std": self.std,
            "nan": self.nan,
            "inf": self.inf,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "zeros": self.zeros,
        }


def _chunks(flat: np.ndarray, cancel: threading.Event | None) -> Iterator[np.ndarray]:
    for start in range(0, flat.size, CHUNK_ELEMENTS):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        yield flat[start : start + CHUNK_ELEMENTS]


def _flat(array: np.ndarray) -> np.ndarray:
    # reshape(-1) is a view for contiguous (and memory-mapped) arrays; a copy only
    # for non-contiguous slices, which are already in memory.
    return np.asarray(array).reshape(-1)


def _nonfinite_part(chunk: np.ndarray, stats: Stats, is_complex: bool) -> np.ndarray:
    """Count NaN/Inf of a chunk known to hold some into ``stats``; return its finite values."""
    stats.nan += int(np.count_nonzero(np.isnan(chunk)))
    if is_complex:
        stats.posinf += int(np.count_nonzero(np.isinf(chunk)))
    else:
        stats.posinf += int(np.count_nonzero(chunk == np.inf))
        stats.neginf += int(np.count_nonzero(chunk == -np.inf))
    finite: np.ndarray = chunk[np.isfinite(chunk)]  # a boolean mask always selects an array
    return finite


def _row_sums(values: np.ndarray) -> tuple[float, float]:
    """Σx and Σx² in float64, at float32 speed: BLAS sums of rows of SUM_BLOCK values in
    their own precision (a few ulps of a row), row totals added in float64.

    One float32 dot over millions of values drifts by ~1e-5; per row it stays near 1e-9
    of the all-float64 result, without casting every value.
    """
    head = values.size - values.size % SUM_BLOCK
    total = squares = 0.0
    if head < values.size:
        tail = values[head:].astype(np.float64)
        total, squares = float(tail.sum()), float(np.dot(tail, tail))
    if head:
        rows = values[:head].reshape(-1, SUM_BLOCK)
        total += float(_row_dots(rows, _ones(rows.dtype)).sum(dtype=np.float64))
        squares += float(_row_dots(rows, rows).sum(dtype=np.float64))
    return total, squares


@functools.lru_cache(maxsize=8)
def _ones(dtype: np.dtype) -> np.ndarray:
    return np.ones(SUM_BLOCK, dtype)


@functools.lru_cache(maxsize=64)
def _trusted_m2(dtype: np.dtype) -> float:
    """Below this share of Σx², Σx² - (Σx)²/k has lost more than ~6 digits in ``dtype``."""
    return float(_CANCELLATION * np.finfo(dtype).eps)


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, remembered: numpy builds the string anew at every access (~2 µs)."""
    return np.dtype(dtype).name


def _row_dots(rows: np.ndarray, other: np.ndarray) -> np.ndarray:
    """One dot product per row: single-threaded, where ``rows @ v`` would start BLAS
    threads that only lose time on a loaded machine."""
    dots: np.ndarray = (
        np.vecdot(rows, other) if hasattr(np, "vecdot") else np.einsum("ij,...j->i", rows, other)
    )  # np.vecdot: numpy >= 2.0
    return dots


class StatsAccumulator:
    """Statistics merged part by part: a tensor too big to hold is streamed in bands.

    Mean and variance are merged chunk by chunk (Chan et al.); within a chunk of floats
    they come from Σx and Σx² (``_row_sums``), or from deviations from the mean where that
    would lose digits, so they stay as accurate as two passes. Min/max and the
    NaN/Inf/zero counts simply add up.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        count = math.prod(shape)
        self.stats = Stats(
            shape=tuple(shape), dtype=dtype_name(self.dtype), nbytes=count * self.dtype.itemsize, count=count
        )
        self.is_complex = self.dtype.kind == "c"
        self.n = 0
        self.mean: complex | float = 0j if self.is_complex else 0.0
        self.m2 = 0.0
        self.lo, self.hi = math.inf, -math.inf

    def add(self, array: np.ndarray, cancel: threading.Event | None = None) -> None:
        """Count the values of ``array`` (any shape, this accumulator's dtype) in."""
        exact = self.is_complex or self.dtype.kind in "iub"
        flat = _flat(array)
        # most arrays are one chunk: no generator for them (a trace summarises thousands)
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        for chunk in _chunks(flat, cancel) if flat.size > CHUNK_ELEMENTS else (flat,):
            if exact:
                self._add_exact(chunk)
            else:
                self._add_real(display_float(chunk))  # bf16/fp8/f16 -> float32 copy of one chunk

    def _add_real(self, chunk: np.ndarray) -> None:
        """Real floats: min and max first, since NaN makes both NaN and Inf shows in one of
        them; only a chunk that holds NaN/Inf pays for masks and a copy of its finite part."""
        stats = self.stats
        lo, hi = chunk.min().item(), chunk.max().item()
        good = chunk
        if not (math.isfinite(lo) and math.isfinite(hi)):
            good = _nonfinite_part(chunk, stats, False)
            if not good.size:
                return
            lo, hi = good.min().item(), good.max().item()
        if lo <= 0 <= hi:  # no zero can lie outside [lo, hi]: a positive tensor skips the count
            stats.zeros += int(np.count_nonzero(good == 0))
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        k = good.size
        scale = max(-lo, hi)
        if good.dtype.itemsize < 8 and not (scale == 0 or SQUARES_UNDERFLOW < scale < SQUARES_OVERFLOW):
            good = good.astype(np.float64)  # squares in float32 would overflow or underflow
        total, squares = _row_sums(good)
        chunk_mean = total / k
        chunk_m2 = squares - total * chunk_mean
        # One pass (Σx² - (Σx)²/k) loses the digits of |mean|/std; past 1e-6 of M2, take
        # deviations from the mean instead (corrected two-pass: Σd² - (Σd)²/k, d = x - c).
        if chunk_m2 < squares * _trusted_m2(good.dtype):
            center = good.dtype.type(chunk_mean)
            with np.errstate(over="ignore", invalid="ignore"):
                dev_total, dev_squares = _row_sums(good - center)
            chunk_mean = float(center) + dev_total / k
            chunk_m2 = dev_squares - dev_total * dev_total / k
        self._merge(k, chunk_mean, max(chunk_m2, 0.0))

    def _add_exact(self, chunk: np.ndarray) -> None:
        """Integers (exact: no float view of int64) and complex values (|z| for the range)."""
        stats, is_complex = self.stats, self.is_complex
        good = chunk
        if chunk.dtype.kind in "iub":
            stats.zeros += int(np.count_nonzero(chunk == 0))
            if chunk.dtype.kind == "b":
                good = chunk.astype(np.int64)
        else:
            stats.zeros += int(np.count_nonzero(chunk == 0))
            if not np.isfinite(chunk).all():
                good = _nonfinite_part(chunk, stats, is_complex)
        if not good.size:
            return
        mags = np.abs(good) if is_complex else good
        self.lo, self.hi = min(self.lo, mags.min().item()), max(self.hi, mags.max().item())
        k = good.size
        chunk_mean = good.sum(dtype=np.complex128 if is_complex else np.float64) / k
        # deviations in the chunk's own precision, squared in place, pairwise-summed:
        # accurate to ~1e-8 relative where a float32 BLAS dot drifts to ~1e-5
        dev = good - (good.dtype.type(chunk_mean) if good.dtype.kind == "c" else chunk_mean)
        if is_complex:
            dev = dev.real * dev.real + dev.imag * dev.imag
        else:
            np.square(dev, out=dev)
        chunk_m2 = float(dev.sum(dtype=np.float64 if dev.dtype.itemsize >= 8 else None))
        self._merge(k, chunk_mean, chunk_m2)

    def _merge(self, k: int, chunk_mean: complex | float, chunk_m2: float) -> None:
        """Chan et al.'s update of the running mean and sum of squared deviations."""
        delta = chunk_mean - self.mean
        total = self.n + k
        self.mean = self.mean + delta * (k / total)
        self.m2 += chunk_m2 + float(abs(delta) ** 2) * self.n * k / total
        self.n = total

    def finish(self, hist_values: np.ndarray | None, bins: int = 64, notes: list[str] | None = None) -> Stats:
        """The statistics, with a histogram of ``hist_values`` (all values, or a sample of them)."""
        stats, is_complex = self.stats, self.is_complex
        notes = (["complex: min, max and histogram of |z|"] if is_complex else []) + list(notes or [])
        if self.n == 0:
            stats.note = "; ".join(notes + ["no finite values"])
            return stats
        lo, hi = self.lo, self.hi
        stats.min, stats.max = lo, hi
        stats.mean = complex(self.mean) if is_complex else float(self.mean.real)
        stats.std = math.sqrt(max(self.m2, 0.0) / self.n)
        if hist_values is not None and hist_values.size:
            edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
            values = (
                hist_values.astype(np.float64)
                if hist_values.dtype.kind in "iub"
                else display_float(hist_values)
            )
            values = np.abs(values) if is_complex else values
            stats.hist_counts = np.histogram(values[np.isfinite(values)], bins=edges)[0]
            stats.hist_edges = edges
        stats.note = "; ".join(notes)
        return stats


def compute_stats(array: np.ndarray, bins: int = 64, cancel: threading.Event | None = None) -> Stats:
    """Min/max/mean/std, NaN/Inf/zero counts and a histogram, in one chunked pass.

    The histogram is exact up to HIST_EXACT_ELEMENTS values and drawn from a strided
    sample beyond (``note`` says so). Complex arrays: mean is complex, std is of the
    complex values, min/max and the histogram are of |z|. Strings and other
    non-numeric arrays get only shape/dtype/size.
    """
    array = np.asarray(array) if not isinstance(array, np.ndarray) else array
    if array.size == 0 or not is_numeric(array.dtype):
        stats = Stats(
            shape=tuple(array.shape), dtype=array.dtype.name, nbytes=int(array.nbytes), count=int(array.size)
        )
        if not is_numeric(array.dtype):
            stats.note = "not numeric: no statistics"
        return stats
    accumulator = StatsAccumulator(tuple(array.shape), array.dtype)
    flat = _flat(array)
    accumulator.add(flat, cancel)
    notes = []
    source = flat
    if flat.size > HIST_EXACT_ELEMENTS:
        source = strided_sample(flat, HIST_EXACT_ELEMENTS)
        notes.append(f"histogram from {source.size:,} sampled values")
    return accumulator.finish(source, bins, notes)


def strided_sample(array: np.ndarray, max_elements: int = SAMPLE_ELEMENTS) -> np.ndarray:
    """At most ~``max_elements`` values taken with a regular stride (cheap on mmaps)."""
    flat = _flat(array)
    if flat.size <= max_elements:
        return flat
    step = int(math.ceil(flat.size / max_elements))
    return flat[::step]


def display_levels(array: np.ndarray, mode: str = "auto", percentile: float = 0.0) -> tuple[float, float]:
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
