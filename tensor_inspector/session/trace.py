"""Tracing: one run of a graph, every node's statistics, and the op that first made NaN/Inf.

The backend runs the graph once and hands over each node's output as it appears
(``Source.trace``); statistics are taken at once and the array is kept only while
the byte budget lasts, so a model whose activations add up to more than RAM still
traces: past the budget each value is summarised, then released. Qt-free: the CLI
calls it in-process, the window through the reader (``LocalSession.trace``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import weakref
from collections.abc import Callable, Mapping

import numpy as np

from tensor_inspector.backends import Source
from tensor_inspector.core.dtypes import is_numeric
from tensor_inspector.core.errors import Cancelled, InspectorError, NotEvaluable
from tensor_inspector.core.stats import StatsAccumulator, dtype_name
from tensor_inspector.session.answers import DEFAULT_KEEP_BYTES, TracedNode, TraceReport

Progress = Callable[[int, int], None]

# Ops whose output is a weight, a constant or an input: read back at once when selected,
# so the keep budget goes to computed activations (a program's parameters come first in
# its graph and would otherwise fill the budget of a large model before any activation).
SOURCE_OPS = frozenset(
    {"placeholder", "get_attr", "Const", "Placeholder", "PlaceholderWithDefault", "ReadVariableOp"}
)


def entries(source: Source) -> list[str]:
    """What the file can trace, the default first; NotEvaluable when nothing."""
    found = source.trace_entries()
    if not found:
        raise NotEvaluable(f"Tracing is not supported for {source.format_name} files.")
    return found


def trace_source(
    source: Source,
    entry: str | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    keep_bytes: int = DEFAULT_KEEP_BYTES,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> TraceReport:
    """Trace ``entry`` (default: the file's first signature or program) with ``feeds``.

    Inputs not given keep the file's defaults, as when one node is evaluated. The caller
    holds ``source.lock`` or owns the source alone.
    """
    known = entries(source)
    entry = entry or known[0]
    if entry not in known:
        raise InspectorError(f"{entry!r} cannot be traced; this file can trace: {', '.join(known)}.")
    specs = source.feed_specs(entry)
    used = dict(source.default_feeds(entry))
    names = {spec.name for spec in specs}
    used.update({k: np.asarray(v) for k, v in (feeds or {}).items() if not names or k in names})
    total = source.trace_size(entry)
    collector = _Collector(keep_bytes, total, progress, cancel)
    source.trace(entry, used, collector.on_node, cancel)
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    return TraceReport(
        entry, collector.nodes, collector.producer, collector.arrays, used, collector.kept_bytes
    )


class _Collector:
    """Receives each node's output: statistics now, the array only within the budget."""

    def __init__(
        self, keep_bytes: int, total: int, progress: Progress | None, cancel: threading.Event | None
    ):
        self.keep_bytes = max(0, int(keep_bytes))
        self.kept_bytes = 0
        self.total = total
        self.progress = progress
        self.cancel = cancel
        self.nodes: list[TracedNode] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.finite: dict[str, bool] = {}
        self.producer: str | None = None
        self._last: tuple[weakref.ref[np.ndarray], TracedNode] | None = None

    def on_node(self, node_id: str, op: str, inputs: list[str], array: np.ndarray) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        if node_id in self.finite:  # a node reported twice (a backend retry) counts once
            return
        array = np.asarray(array)
        keep = (
            op not in SOURCE_OPS
            and array.dtype.kind != "O"
            and self.kept_bytes + array.nbytes <= self.keep_bytes
        )
        if self._last is not None and self._last[0]() is array:
            # the same array handed over again (a TF weight's Const, then its ReadVariableOp):
            # its statistics are those just taken
            node = dataclasses.replace(self._last[1], id=node_id, op=op, inputs=tuple(inputs), kept=keep)
        else:
            node = summarise(node_id, op, tuple(inputs), array, keep)
        self._last = (weakref.ref(array), node)  # weak: the backend's buffer is released on time
        if keep:  # a copy: the backend may reuse or release its buffer
            self.arrays[node_id] = np.array(array, copy=True)
            self.kept_bytes += array.nbytes
        self.nodes.append(node)
        self.finite[node_id] = node.finite
        # The producer: its inputs all finite (inputs outside the trace count as finite),
        # so a node that only passes a NaN on is never named.
        if self.producer is None and not node.finite:
            if all(self.finite.get(i, True) for i in inputs):
                self.producer = node_id
        if self.progress is not None:
            self.progress(len(self.nodes), max(self.total, len(self.nodes)))


def summarise(node_id: str, op: str, inputs: tuple[str, ...], array: np.ndarray, kept: bool) -> TracedNode:
    """Min/max/mean/std and NaN/Inf/zero counts of ``array``, accumulated in float64.

    No histogram (that is what makes ``compute_stats`` dearer); complex values give
    min/max of |z| and the real part of the mean. A trace calls this for every node, so
    it stays lean: most of a small tensor's cost is Python, not arithmetic.
    """
    dtype = array.dtype
    name, shape = dtype_name(dtype), tuple(map(int, array.shape))
    if array.size == 0 or not is_numeric(dtype):
        return TracedNode(node_id, op, name, shape, None, None, None, None, 0, 0, 0, inputs, kept)
    accumulator = StatsAccumulator(shape, dtype)
    accumulator.add(array)
    stats = accumulator.finish(None)
    mean = stats.mean.real if isinstance(stats.mean, complex) else stats.mean
    return TracedNode(
        node_id,
        op,
        name,
        shape,
        _number(stats.min),
        _number(stats.max),
        _number(mean),
        _number(stats.std),
        stats.nan,
        stats.inf,
        stats.zeros,
        inputs,
        kept,
    )


def _number(value: float | int | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
