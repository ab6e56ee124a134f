"""Comparisons for the window, off the GUI thread: whole files or two tensors, and the slices to draw.

The comparison itself runs in the session's reader (``compare_pair``: only metrics
come back); the planes the compare view draws are read through the session's
``value`` with an index, so a slice of a 10 GB tensor costs that slice. Both kinds of
request run on a ``BackgroundRunner`` next to the ``Worker``'s: comparing a file
never waits behind an evaluation's channel and the reverse.

A comparison is cancelled through its own event rather than by making the request
stale, so a cancelled comparison still answers with the pairs compared so far.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.worker import _in_core_terms, user_message
from tensor_inspector.core.dtypes import is_numeric
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.session.answers import CANCELLED, Compared, FileInfo, SessionFailure, Value
from tensor_inspector.session.compare import PairComparer, Report, badness, compare_files, plan_files

Index = tuple[int | slice, ...]


class CompareSession(PairComparer, Protocol):
    """What comparing needs of a session (``IsolatedSession``, ``LocalSession``): pairs
    compared in the reader (``PairComparer``), and slices of values to draw."""

    def value(
        self,
        handle: int,
        node_id: str,
        index: Index | None = None,
        feeds: Any = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
    ) -> Value: ...


@dataclass(frozen=True)
class Outcome:
    """A finished (or cancelled) comparison: the report of the pairs compared so far."""

    report: Report
    planned: int  # pairs in the plan; more than ``len(report.pairs)`` when cancelled
    cancelled: bool = False


@dataclass(frozen=True)
class PairSlice:
    """One plane of a pair in B's layout, full resolution, as the compare view draws it.

    ``index`` selects the plane in B (ints on the other axes, ``slice(None)`` on the
    two shown); ``rows``/``cols`` are those two axes of B (``None`` for a 1-D tensor's
    missing row axis). ``a`` is already transposed by the pair's transform.
    """

    index: Index
    rows: int | None
    cols: int | None
    a: np.ndarray
    b: np.ndarray
    diff: np.ndarray  # a - b in float64 (complex128 for complex values)
    rel: np.ndarray  # |a - b| / |b|; Inf where only b is 0, 0 where both are 0
    drawn: Drawn | None = None  # what the heatmaps draw, prepared in the worker thread


@dataclass(frozen=True)
class Drawn:
    """Images (at most ``MAX_SIDE`` a side), their colour levels and the histogram of A - B."""

    images: dict[str, np.ndarray]  # "A", "B", "A-B", "rel": float images
    levels: dict[str, tuple[float, float]]
    factor: int  # image pixel = factor x factor cells of the plane
    counts: np.ndarray
    edges: np.ndarray


class _Reporting:
    """A session whose ``compare_pair`` reports progress within a pair and keeps each answer."""

    def __init__(self, session: CompareSession, progress: Callable[[int, int], None]) -> None:
        self.session, self.progress = session, progress
        self.results: list[Compared] = []

    def compare_pair(self, *args: Any, **kwargs: Any) -> Compared:
        kwargs["progress"] = self.progress
        result = self.session.compare_pair(*args, **kwargs)
        self.results.append(result)
        return result


def run_comparison(
    session: CompareSession,
    info_a: FileInfo,
    info_b: FileInfo,
    node_a: str | None,
    node_b: str | None,
    atol: float,
    rtol: float,
    report: Callable[[int, int, int, int, str], None],
    cancel: threading.Event,
) -> Outcome:
    """Plan and compare; ``report(pair, pairs, done, total, label)`` as it goes (worker thread)."""
    plan = plan_files(info_a, info_b, node_a=node_a, node_b=node_b)
    current: dict[str, Any] = {"pair": 0, "label": ""}

    def within_pair(done: int, total: int) -> None:
        report(current["pair"], len(plan.pairs), done, total, current["label"])

    def next_pair(i: int, n: int, pair: Any) -> None:
        current.update(pair=i, label=f"{pair.a} ↔ {pair.b}")
        report(i, n, 0, 0, current["label"])

    reporting = _Reporting(session, within_pair)
    try:
        result = compare_files(reporting, info_a, info_b, plan, atol, rtol, progress=next_pair, cancel=cancel)
    except (Cancelled, SessionFailure) as exc:
        if isinstance(exc, SessionFailure) and exc.failure.kind != CANCELLED:
            raise
        pairs = sorted(reporting.results, key=badness, reverse=True)
        partial = Report(pairs, plan.only_a, plan.only_b, plan.skipped)
        return Outcome(partial, len(plan.pairs), cancelled=True)
    return Outcome(result, len(plan.pairs))


# -- slices -----------------------------------------------------------------------------------
def plane_index(ndim: int, rows: int, cols: int, positions: list[int]) -> Index:
    """The index of B selecting the plane (rows, cols) at ``positions`` on the other axes."""
    return tuple(slice(None) if axis in (rows, cols) else int(positions[axis]) for axis in range(ndim))


def read_pair_slice(
    session: CompareSession,
    handle_a: int,
    handle_b: int,
    pair: Compared,
    index_b: Index,
    rows: int | None,
    cols: int | None,
    cancel: threading.Event | None = None,
) -> PairSlice:
    """Read the plane ``index_b`` of B and the matching part of A; A turned into B's layout.

    B's axis ``j`` is A's axis ``transform[j]``, so A is read at the same positions on
    those axes; whatever the backend returns keeps its axes in A's order, and is turned
    to (rows, cols) here.
    """
    ndim = len(index_b)
    perm = tuple(range(ndim)) if pair.transform is None else tuple(pair.transform)
    index_a: list[int | slice] = [slice(None)] * ndim
    for j, item in enumerate(index_b):
        index_a[perm[j]] = item
    whole = ndim <= 2  # small rank: read everything, no index (every backend serves that)
    a = np.asarray(session.value(handle_a, pair.a, None if whole else tuple(index_a), cancel=cancel).array)
    b = np.asarray(session.value(handle_b, pair.b, None if whole else index_b, cancel=cancel).array)
    if whole:
        a = a.transpose(perm) if a.ndim == ndim and ndim == 2 else a
    else:  # the two kept axes come back in A's order, then B's order
        kept = [j for j, item in enumerate(index_b) if isinstance(item, slice)]
        order_a = sorted(perm[j] for j in kept)
        a = a.transpose([order_a.index(perm[j]) for j in kept])
    if rows is not None and cols is not None and rows > cols:  # shown transposed
        a, b = a.T, b.T
    a, b = _as_plane(a), _as_plane(b)
    if a.shape != b.shape:
        raise ValueError(f"the slices of A and B differ in shape: {a.shape} and {b.shape}")
    diff, rel = differences(a, b)
    return PairSlice(index_b, rows, cols, a, b, diff, rel, drawn(a, b, diff, rel))


def _as_plane(x: np.ndarray) -> np.ndarray:
    """Scalars and vectors drawn as one row, so every pair has the same three heatmaps."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x


def differences(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A - B and |A - B| / |B| in float64 (bf16/fp8 widen exactly); NaN for non-numbers."""
    if not (is_numeric(a.dtype) and is_numeric(b.dtype)):
        nan = np.full(a.shape, np.nan)
        return nan, nan
    kind = np.complex128 if a.dtype.kind == "c" or b.dtype.kind == "c" else np.float64
    wa, wb = np.asarray(a, dtype=kind), np.asarray(b, dtype=kind)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = wa - wb
        size = np.abs(diff)
        rel = np.where(size == 0, 0.0, size / np.abs(wb))
    return diff, rel


MAX_SIDE = 2048  # larger planes are drawn reduced by blocks
HISTOGRAM_BINS = 64


def drawn(a: np.ndarray, b: np.ndarray, diff: np.ndarray, rel: np.ndarray) -> Drawn:
    """What the heatmaps draw. A and B share their levels, so equal colours mean equal values;
    A - B is centred on 0 (a diverging map); reduced planes keep a difference's largest
    value per block, since a mean would hide the one element that moved."""
    factor = max(1, -(-max(diff.shape) // MAX_SIDE))
    images = {
        "A": _reduce(_real(a), factor, "mean"),
        "B": _reduce(_real(b), factor, "mean"),
        "A-B": _reduce(_real(diff), factor, "extreme"),
        "rel": _reduce(rel, factor, "max"),
    }
    lo_ab, hi_ab = _span(images["A"], images["B"])
    if hi_ab <= lo_ab:
        pad = abs(lo_ab) * 0.5 or 0.5
        lo_ab, hi_ab = lo_ab - pad, hi_ab + pad
    lo_d, hi_d = _span(images["A-B"])
    m = max(abs(lo_d), abs(hi_d)) or 1.0
    _, hi_r = _span(images["rel"])
    levels = {"A": (lo_ab, hi_ab), "B": (lo_ab, hi_ab), "A-B": (-m, m), "rel": (0.0, hi_r or 1.0)}
    values = _real(diff).reshape(-1)
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS) if values.size else (np.zeros(0), np.zeros(1))
    return Drawn(images, levels, factor, counts, edges)


def _real(x: np.ndarray) -> np.ndarray:
    """Drawable floats: complex as |z|, bf16/fp8/ints widened; non-numbers as NaN."""
    if not is_numeric(x.dtype):
        return np.full(x.shape, np.nan, np.float32)
    if x.dtype.kind == "c":
        return np.asarray(np.abs(x))
    return np.asarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)


def _reduce(x: np.ndarray, factor: int, how: str) -> np.ndarray:
    if factor == 1:
        return np.ascontiguousarray(x)
    rows, cols = (x.shape[0] // factor) or 1, (x.shape[1] // factor) or 1
    f0, f1 = min(factor, x.shape[0]), min(factor, x.shape[1])
    blocks = x[: rows * f0, : cols * f1].reshape(rows, f0, cols, f1)
    with np.errstate(invalid="ignore"):
        if how == "mean":
            return np.asarray(blocks.mean(axis=(1, 3)))
        hi = np.asarray(blocks.max(axis=(1, 3)))  # NaN in a block shows as NaN: "any"
        if how == "max":
            return hi
        lo = np.asarray(blocks.min(axis=(1, 3)))
        return np.asarray(np.where(-lo > hi, lo, hi))


def _span(*images: np.ndarray) -> tuple[float, float]:
    """Finite min and max over the images; (0, 0) when there is none."""
    finite = [x[np.isfinite(x)] for x in images]
    finite = [x for x in finite if x.size]
    if not finite:
        return 0.0, 0.0
    return float(min(x.min() for x in finite)), float(max(x.max() for x in finite))


# -- the Qt side ------------------------------------------------------------------------------
class CompareWorker(QObject):
    """Compare requests and slice reads through the window's session, answered by signals."""

    progress = Signal(int, int, int, int, int, str)  # request id, pair, pairs, done, total, label
    compared = Signal(int, object)  # request id, Outcome
    compare_failed = Signal(int, str)  # request id, sentence
    slice_ready = Signal(int, object)  # request id, PairSlice
    slice_failed = Signal(int, str)  # request id, sentence

    def __init__(self, session: CompareSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._runner = BackgroundRunner(self, max_threads=2)
        self._ids = itertools.count(1)
        self._cancel: threading.Event | None = None
        self.latest: int | None = None  # the comparison the view is waiting for

    def compare(
        self,
        info_a: FileInfo,
        info_b: FileInfo,
        node_a: str | None = None,
        node_b: str | None = None,
        atol: float = 0.0,
        rtol: float = 0.0,
    ) -> int:
        """Compare two files (or the named tensors); a running comparison is cancelled."""
        self.cancel()
        rid = next(self._ids)
        self.latest = rid
        cancel = self._cancel = threading.Event()

        def report(i: int, n: int, done: int, total: int, label: str) -> None:  # worker thread
            if not cancel.is_set():
                self.progress.emit(rid, i, n, done, total, label)

        def finished(outcome: Outcome) -> None:
            if self.latest == rid:
                self.latest = None
                self.compared.emit(rid, outcome)

        def failed(error: BaseException) -> None:
            if self.latest == rid:
                self.latest = None
                self.compare_failed.emit(rid, user_message(error))

        self._runner.submit(
            f"compare:{rid}",
            _in_core_terms,
            run_comparison,
            self.session,
            info_a,
            info_b,
            node_a,
            node_b,
            atol,
            rtol,
            report,
            cancel,
            on_done=finished,
            on_exception=failed,
        )
        return rid

    def cancel(self) -> None:
        """Stop the running comparison; it answers with the pairs compared so far."""
        if self._cancel is not None:
            self._cancel.set()

    def is_busy(self) -> bool:
        return self.latest is not None

    def read_slice(
        self, handle_a: int, handle_b: int, pair: Compared, index_b: Index, rows: int | None, cols: int | None
    ) -> int:
        """Read one plane of a pair; an earlier read not answered yet is dropped."""
        rid = next(self._ids)
        self._runner.submit(
            "slice",
            _in_core_terms,
            read_pair_slice,
            self.session,
            handle_a,
            handle_b,
            pair,
            index_b,
            rows,
            cols,
            on_done=lambda result: self.slice_ready.emit(rid, result),
            on_exception=lambda error: self.slice_failed.emit(rid, user_message(error)),
            cancellable=True,
        )
        return rid

    def shutdown(self, wait_ms: int = 0) -> bool:
        """Cancel everything; the session's shutdown then ends calls waiting on a reader."""
        self.cancel()
        self.latest = None
        return self._runner.stop(wait_ms)
