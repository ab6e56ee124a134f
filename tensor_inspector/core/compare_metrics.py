"""Value-by-value comparison of two arrays, computed chunk by chunk in float64.

``chunk_metrics`` measures one aligned pair of chunks; ``Metrics.merge`` adds chunks up,
so a comparison of two files larger than memory holds only a few chunks at a time.
Every figure is a sum, a count or a maximum, which is why merging is exact whatever the
chunking. bfloat16 and float8 widen to float64 exactly (ml_dtypes casts), so a bf16 copy
of float32 weights compares equal where the values are equal.

Work happens in sub-blocks of ``BLOCK`` elements widened into reused float64 buffers:
a dozen passes over a block that stays in the CPU cache cost far less than a dozen
passes over a chunk of tens of megabytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from tensor_inspector.core.dtypes import is_numeric

BLOCK = 1 << 16


@dataclass(frozen=True)
class Metrics:
    """What comparing A with B found; sums are kept so parts can be merged.

    ``compared`` counts positions where both values are finite (the only ones the
    difference figures are about); NaN and Inf disagreements are counted apart and also
    count as ``beyond`` the tolerance. ``worst`` is the index (in B's layout) of the
    largest absolute difference (or of a NaN/Inf disagreement when no value differs).
    """

    count: int = 0
    compared: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    sum_abs: float = 0.0
    sum_sq: float = 0.0
    norm_a2: float = 0.0
    norm_b2: float = 0.0
    beyond: int = 0
    nan_mismatch: int = 0
    inf_mismatch: int = 0
    equal: bool = True
    worst: tuple[int, ...] | None = None

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.compared if self.compared else 0.0

    @property
    def rmse(self) -> float:
        return math.sqrt(self.sum_sq / self.compared) if self.compared else 0.0

    @property
    def cosine(self) -> float:
        """Cosine similarity; 1 for two all-zero tensors, 0 when only one is all zeros.

        Computed from |a|², |b|² and |a-b|² (a·b = (|a|² + |b|² - |a-b|²) / 2): as exact
        as a direct dot product where it matters (1 - cosine near 0), one pass cheaper.
        """
        if self.norm_a2 == 0.0 and self.norm_b2 == 0.0:
            return 1.0
        if self.norm_a2 == 0.0 or self.norm_b2 == 0.0:
            return 0.0
        dot = (self.norm_a2 + self.norm_b2 - self.sum_sq) / 2.0
        value = dot / math.sqrt(self.norm_a2 * self.norm_b2)
        return max(-1.0, min(1.0, value))

    @property
    def within(self) -> bool:
        """True when no position is beyond the tolerance."""
        return self.beyond == 0

    def merge(self, other: Metrics) -> Metrics:
        """The metrics of both parts together."""
        if other.max_abs > self.max_abs or self.worst is None:
            worst = other.worst if other.worst is not None else self.worst
        else:
            worst = self.worst
        return Metrics(
            count=self.count + other.count,
            compared=self.compared + other.compared,
            max_abs=max(self.max_abs, other.max_abs),
            max_rel=max(self.max_rel, other.max_rel),
            sum_abs=self.sum_abs + other.sum_abs,
            sum_sq=self.sum_sq + other.sum_sq,
            norm_a2=self.norm_a2 + other.norm_a2,
            norm_b2=self.norm_b2 + other.norm_b2,
            beyond=self.beyond + other.beyond,
            nan_mismatch=self.nan_mismatch + other.nan_mismatch,
            inf_mismatch=self.inf_mismatch + other.inf_mismatch,
            equal=self.equal and other.equal,
            worst=worst,
        )


def comparable(dtype_a: np.dtype, dtype_b: np.dtype) -> bool:
    """True when the values can be compared as numbers (both numeric)."""
    return is_numeric(dtype_a) and is_numeric(dtype_b)


def chunk_metrics(
    a: np.ndarray,
    b: np.ndarray,
    atol: float = 0.0,
    rtol: float = 0.0,
    origin: tuple[int, ...] | None = None,
) -> Metrics:
    """Compare two chunks of the same shape (A already in B's layout).

    ``origin`` is where the chunk starts in B, so ``worst`` is an index into all of B.
    Positions count as beyond the tolerance where ``|a - b| > atol + rtol * |b|``.
    """
    if a.shape != b.shape:
        raise ValueError(f"chunks of different shapes: {a.shape} and {b.shape}")
    if not comparable(a.dtype, b.dtype):
        return _text_metrics(a, b, origin)
    same_dtype = a.dtype == b.dtype
    flat_a = np.ascontiguousarray(a).reshape(-1)
    flat_b = np.ascontiguousarray(b).reshape(-1)
    kind = np.complex128 if a.dtype.kind == "c" or b.dtype.kind == "c" else np.float64
    total = Metrics(count=0)
    size = min(BLOCK, flat_a.size)
    buf_a, buf_b = np.empty(size, kind), np.empty(size, kind)
    diff, work = np.empty(size), np.empty(size)
    for start in range(0, flat_a.size, BLOCK):
        stop = min(start + BLOCK, flat_a.size)
        n = stop - start
        # equal bytes are checked per block, while the block is in the cache for what follows
        equal = same_dtype and _bitwise_equal(flat_a[start:stop], flat_b[start:stop])
        wa, wb = buf_a[:n], buf_b[:n]
        np.copyto(wa, flat_a[start:stop], casting="unsafe")
        if equal:
            part = _equal_block(wa)
        else:
            np.copyto(wb, flat_b[start:stop], casting="unsafe")
            part = _block(wa, wb, diff[:n], work[:n], atol, rtol)
        if part.worst is not None:
            part = replace(part, worst=(part.worst[0] + start,))
        total = total.merge(part)
    equal = same_dtype and total.equal
    return replace(total, equal=equal, worst=_unflatten(total.worst, b.shape, origin))


def _block(
    a: np.ndarray, b: np.ndarray, d: np.ndarray, work: np.ndarray, atol: float, rtol: float
) -> Metrics:
    """One block of widened values; the fast path assumes all are finite and checks it."""
    with np.errstate(invalid="ignore", over="ignore"):  # Inf - Inf: the check below sees it
        if a.dtype.kind == "c":
            np.abs(a - b, out=d)
        else:
            np.abs(np.subtract(a, b, out=d), out=d)
    worst = int(np.argmax(d))  # a NaN is the maximum here, so one reduction also checks
    largest = float(d[worst])
    if not math.isfinite(largest):  # a NaN or Inf somewhere (or an overflowing difference)
        return _nonfinite_block(a, b, atol, rtol)
    return _finite_figures(a, b, d, work, worst, largest, a.size, atol, rtol)


def _finite_figures(
    a: np.ndarray,
    b: np.ndarray,
    d: np.ndarray,
    work: np.ndarray,
    worst: int,
    largest: float,
    n: int,
    atol: float,
    rtol: float,
) -> Metrics:
    norm_a2 = _norm2(a)
    norm_b2 = _norm2(b)
    sum_sq = _dot(d)
    sum_abs = float(d.sum())
    real = b.dtype.kind != "c"
    absb = np.abs(b, out=work) if real else np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):  # b is not needed any more: reuse it
        rel = np.divide(d, absb, out=b if real else None)
    max_rel = float(np.fmax.reduce(rel)) if n else 0.0  # 0/0 (both zero) is NaN: skipped
    if math.isnan(max_rel):
        max_rel = 0.0
    if rtol:
        np.multiply(absb, rtol, out=absb)
        absb += atol
        beyond = int(np.count_nonzero(d > absb))
    else:
        beyond = int(np.count_nonzero(d > atol))
    return Metrics(
        count=n,
        compared=n,
        max_abs=largest,
        max_rel=max_rel,
        sum_abs=sum_abs,
        sum_sq=sum_sq,
        norm_a2=norm_a2,
        norm_b2=norm_b2,
        beyond=beyond,
        equal=False,
        worst=(worst,) if largest > 0 else None,
    )


def _nonfinite_block(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> Metrics:
    """A block holding NaN or Inf: disagreements are counted, the rest compared as usual."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    nan_mismatch = int(np.count_nonzero(nan_a != nan_b))
    finite = np.isfinite(a) & np.isfinite(b)
    other = ~finite & ~nan_a & ~nan_b  # an Inf on at least one side, no NaN
    inf_mismatch = int(np.count_nonzero(other & (a != b)))
    positions = np.flatnonzero(finite)
    fa, fb = a[positions], b[positions]
    part = Metrics(count=0)
    if positions.size:
        with np.errstate(over="ignore"):
            d = np.abs(fa - fb)
        worst = int(np.argmax(d))
        part = _finite_figures(fa, fb, d, np.empty_like(d), worst, float(d[worst]), d.size, atol, rtol)
        if part.worst is not None:
            part = replace(part, worst=(int(positions[worst]),))
    if part.worst is None or not part.max_abs:
        # no finite difference: point at the first disagreement, where the user should look
        bad = np.flatnonzero((nan_a != nan_b) | (other & (a != b)))
        if bad.size:
            part = replace(part, worst=(int(bad[0]),))
    return replace(
        part,
        count=a.size,
        beyond=part.beyond + nan_mismatch + inf_mismatch,
        nan_mismatch=nan_mismatch,
        inf_mismatch=inf_mismatch,
        equal=False,
    )


def _equal_block(a: np.ndarray) -> Metrics:
    """Bitwise-equal values: no difference to measure, only the norms for the cosine."""
    count = a.size
    norm = _norm2(a)
    if not math.isfinite(norm):  # NaN/Inf (same on both sides) are left out, as elsewhere
        a = a[np.isfinite(a)]
        norm = _norm2(a)
    return Metrics(count=count, compared=a.size, norm_a2=norm, norm_b2=norm)


def _norm2(x: np.ndarray) -> float:
    if x.dtype.kind == "c":
        return _dot(x.real) + _dot(x.imag)
    return _dot(x)


def _dot(x: np.ndarray) -> float:
    """Sum of squares. einsum's own loop, not BLAS: OpenBLAS's threads make ``np.dot`` of a
    cache-sized block up to 100x slower when the machine's cores are busy."""
    return float(np.einsum("i,i->", x, x))


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same bytes (so -0.0 differs from 0.0 and NaN payloads count), in any memory layout."""
    size = a.dtype.itemsize
    if size in (1, 2, 4, 8):
        view = np.dtype(f"u{size}")
        return bool(np.array_equal(a.view(view), b.view(view)))
    return bool(np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def _text_metrics(a: np.ndarray, b: np.ndarray, origin: tuple[int, ...] | None) -> Metrics:
    """Non-numeric values (strings): only equality per position means anything."""
    differ = np.asarray(a != b) if a.dtype.kind == b.dtype.kind else np.ones(a.shape, bool)
    bad = np.flatnonzero(differ)
    worst = _unflatten((int(bad[0]),), a.shape, origin) if bad.size else None
    return Metrics(count=a.size, beyond=int(bad.size), equal=not bad.size, worst=worst)


def _unflatten(
    worst: tuple[int, ...] | None, shape: tuple[int, ...], origin: tuple[int, ...] | None
) -> tuple[int, ...] | None:
    if worst is None or not shape:
        return None if worst is None else ()
    index = tuple(int(i) for i in np.unravel_index(worst[0], shape))
    if origin is not None:
        index = tuple(i + o for i, o in zip(index, origin))
    return index
