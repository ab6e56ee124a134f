"""Comparing two files, or two tensors, value by value: plan the pairs, stream each pair.

``plan_files`` pairs the nodes of two opened files (``core.compare_names``);
``compare_nodes`` streams one pair chunk by chunk through two read functions, so two
files larger than memory compare with a few chunks held at a time; ``compare_files``
runs a plan through any session's ``compare_pair`` (in this process, or in a reader
process where the arrays never reach the caller) and gives a ``Report``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from tensor_inspector.core.compare_metrics import Metrics, chunk_metrics
from tensor_inspector.core.compare_names import (
    Plan,
    PlannedPair,
    Rule,
    describe_transform,
    plan_pairs,
    plan_single,
)
from tensor_inspector.core.dtypes import is_numeric, numpy_dtype
from tensor_inspector.core.errors import Cancelled, InspectorError
from tensor_inspector.core.nodes import Index, Node, NodeKind
from tensor_inspector.session.answers import Compared, FileInfo

CHUNK_BYTES = 32 << 20  # read per side per step: large enough that a read's overhead is noise
# Backends whose ``read(node, index)`` reads only the indexed part (memory maps, HDF5
# hyperslabs). Others (TF's checkpoint reader) read the whole tensor for any slice, so
# their tensors are read once and compared chunk by chunk in memory.
SLICED_BACKENDS = frozenset({"safetensors", "numpy", "torch", "pickle", "keras"})

Reader = Callable[[Index | None], np.ndarray]
Progress = Callable[[int, int], None]


class PairComparer(Protocol):
    """What ``compare_files`` needs of a session (``LocalSession``, ``IsolatedSession``)."""

    def compare_pair(
        self,
        handle_a: int,
        node_a: str,
        handle_b: int,
        node_b: str,
        transform: tuple[int, ...] | None = None,
        atol: float = 0.0,
        rtol: float = 0.0,
        cancel: Any = None,
        progress: Progress | None = None,
    ) -> Compared: ...


@dataclass(frozen=True)
class Report:
    """Every pair compared (worst first), and what had no partner."""

    pairs: list[Compared]
    only_a: list[str]
    only_b: list[str]
    skipped: list[str]

    @property
    def ok(self) -> bool:
        """Every pair within tolerance and nothing unpaired (the CLI's exit code 0)."""
        return not self.only_a and not self.only_b and all(within(c) for c in self.pairs)

    def as_json(self) -> dict[str, Any]:
        return {
            "pairs": [pair_json(c) for c in self.pairs],
            "only_a": self.only_a,
            "only_b": self.only_b,
            "skipped": self.skipped,
        }


def within(compared: Compared) -> bool:
    return compared.metrics is not None and compared.metrics.within


def badness(compared: Compared) -> tuple[float, ...]:
    """Sort key, largest first: not comparable, then share beyond tolerance, then max |a-b|."""
    m = compared.metrics
    if m is None:
        return (2.0, 0.0, 0.0, 0.0)
    share = m.beyond / m.count if m.count else 0.0
    return (float(not m.within), share, float(m.nan_mismatch + m.inf_mismatch), m.max_abs)


def pair_json(c: Compared) -> dict[str, Any]:
    m = c.metrics
    row: dict[str, Any] = {
        "a": c.a,
        "b": c.b,
        "transform": describe_transform(c.transform),
        "shape_a": None if c.shape_a is None else list(c.shape_a),
        "shape_b": None if c.shape_b is None else list(c.shape_b),
        "dtype_a": c.dtype_a,
        "dtype_b": c.dtype_b,
    }
    keys = ("max_abs", "max_rel", "mean_abs", "rmse", "cosine")
    row.update({k: None if m is None else _number(getattr(m, k)) for k in keys})
    row["beyond"] = None if m is None else m.beyond
    row["equal"] = False if m is None else m.equal
    row["count"] = None if m is None else m.count
    row["nan_mismatch"] = None if m is None else m.nan_mismatch
    row["inf_mismatch"] = None if m is None else m.inf_mismatch
    row["worst"] = None if m is None or m.worst is None else list(m.worst)
    row["note"] = c.note or None
    return row


def _number(x: float) -> float | str:
    """JSON numbers; Inf/NaN (a max_rel where B is 0) as text, which strict parsers accept."""
    return x if math.isfinite(x) else str(x)


# -- planning ---------------------------------------------------------------------------
def plan_files(
    info_a: FileInfo,
    info_b: FileInfo,
    rules: Sequence[Rule] = (),
    node_a: str | None = None,
    node_b: str | None = None,
) -> Plan:
    """The pairs of two opened files; a named node restricts its side to that node.

    With both nodes named they are one pair whatever their names; with one named, its
    partner is found by name in the other file, whose other tensors are not reported.
    """
    if node_a is not None and node_b is not None:
        return Plan([plan_single(_node(info_a, node_a), _node(info_b, node_b), rules)])
    nodes_a = [_node(info_a, node_a)] if node_a is not None else info_a.nodes
    nodes_b = [_node(info_b, node_b)] if node_b is not None else info_b.nodes
    plan = plan_pairs(nodes_a, nodes_b, rules)
    if node_a is not None:
        return Plan(plan.pairs, plan.only_a, [], [s for s in plan.skipped if s.startswith("A:")])
    if node_b is not None:
        return Plan(plan.pairs, [], plan.only_b, [s for s in plan.skipped if s.startswith("B:")])
    return plan


def _node(info: FileInfo, node_id: str) -> Node:
    for node in info.nodes:
        if node.id == node_id:
            if not node.has_value:
                raise InspectorError(f"{node_id!r} in {info.path.name} is a group; name one of its tensors.")
            return node
    raise InspectorError(f"No node named {node_id!r} in {info.path.name}.")


# -- one pair -----------------------------------------------------------------------------
def compare_nodes(
    node_a: Node,
    node_b: Node,
    read_a: Reader,
    read_b: Reader,
    sliced_a: bool,
    sliced_b: bool,
    transform: tuple[int, ...] | None = None,
    atol: float = 0.0,
    rtol: float = 0.0,
    start: int = 0,
    budget_s: float | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Compared:
    """Compare two nodes chunk by chunk, from chunk ``start``.

    ``read_x(index)`` reads part of a node (None: all of it); ``sliced_x`` says it reads
    only that part. A transposed pair is chunked along A's leading axes and B's matching
    axes, so each chunk of A lines up with one chunk of B. With ``budget_s`` the answer
    may stop after that many seconds with ``resume`` set, so a caller across a process
    boundary can report progress and cancel between parts.
    """
    shape_a, shape_b = _known(node_a.shape), _known(node_b.shape)
    computed = NodeKind.COMPUTED in (node_a.kind, node_b.kind)
    whole_a = whole_b = None
    if shape_a is None or shape_b is None or computed:  # shapes known only once evaluated
        whole_a, whole_b = np.asarray(read_a(None)), np.asarray(read_b(None))
        shape_a, shape_b = whole_a.shape, whole_b.shape
        sliced_a = sliced_b = False
    result = Compared(
        node_a.id, node_b.id, transform, shape_a, shape_b, node_a.dtype, node_b.dtype, None, total=0
    )
    perm = tuple(range(len(shape_a))) if transform is None else tuple(transform)
    if len(perm) != len(shape_a) or tuple(shape_a[i] for i in perm) != tuple(shape_b):
        what = "" if transform is None else f" transposed by {list(perm)}"
        return replace(result, note=f"shapes {list(shape_a)}{what} and {list(shape_b)} differ")
    dtype_a, dtype_b = _dtype(node_a, whole_a), _dtype(node_b, whole_b)
    if dtype_a is None or dtype_b is None or is_numeric(dtype_a) != is_numeric(dtype_b):
        return replace(result, note="numbers and non-numbers cannot be compared")
    size = math.prod(shape_b)
    itemsize = max(dtype_a.itemsize, dtype_b.itemsize, 1)
    plan = list(_chunks(shape_a, perm, max(1, CHUNK_BYTES // itemsize)))
    if whole_a is None and not sliced_a:
        whole_a = np.asarray(read_a(None))
    if whole_b is None and not sliced_b:
        whole_b = np.asarray(read_b(None))
    began = time.monotonic()
    metrics = Metrics(count=0)
    done = 0
    for number in range(start, len(plan)):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        index_a, index_b, origin = plan[number]
        part_a = whole_a[index_a] if whole_a is not None else read_a(index_a if len(plan) > 1 else None)
        part_b = whole_b[index_b] if whole_b is not None else read_b(index_b if len(plan) > 1 else None)
        part = chunk_metrics(np.asarray(part_a).transpose(perm), np.asarray(part_b), atol, rtol, origin)
        del part_a, part_b  # a memory-mapped chunk is released before the next is read
        metrics = metrics.merge(part)
        done += part.count
        if progress is not None:
            progress(done, size)
        more = number + 1 < len(plan)
        if more and budget_s is not None and time.monotonic() - began >= budget_s and sliced_a and sliced_b:
            return replace(result, metrics=metrics, done=done, total=size, resume=number + 1)
    return replace(result, metrics=metrics, done=done, total=size)


def merge_parts(first: Compared, second: Compared) -> Compared:
    """Two parts of one pair's comparison as one answer (``resume`` from the later)."""
    if first.metrics is None or second.metrics is None:
        return second
    return replace(
        second, metrics=first.metrics.merge(second.metrics), done=first.done + second.done, total=second.total
    )


def reads_slices(backend_name: str, node: Node) -> bool:
    """True when reading part of ``node`` costs only that part (see ``SLICED_BACKENDS``)."""
    return backend_name in SLICED_BACKENDS and node.kind is NodeKind.TENSOR


def _chunks(
    shape_a: tuple[int, ...], perm: tuple[int, ...], budget: int
) -> Iterator[tuple[Index, Index, tuple[int, ...]]]:
    """(index into A, matching index into B, where the B chunk starts) for every chunk.

    A is cut along its leading axes: rows of axis ``k`` (the first axis whose inner
    block fits the budget), one at a time along the axes before it. B's axis ``j`` is A's
    axis ``perm[j]``, so B takes the same ranges on those axes.
    """
    ndim = len(shape_a)
    if ndim == 0 or math.prod(shape_a) <= budget:
        yield (), (), (0,) * ndim
        return
    k = 0
    while k < ndim - 1 and math.prod(shape_a[k + 1 :]) > budget:
        k += 1
    rows = max(1, budget // max(1, math.prod(shape_a[k + 1 :])))
    for outer in itertools.product(*(range(n) for n in shape_a[:k])):
        for r0 in range(0, shape_a[k], rows):
            ranges = [(i, i + 1) for i in outer] + [(r0, min(r0 + rows, shape_a[k]))]
            index_a: Index = tuple(slice(lo, hi) for lo, hi in ranges)
            index_b: Index = tuple(
                slice(*ranges[perm[j]]) if perm[j] <= k else slice(None) for j in range(ndim)
            )
            origin = tuple(ranges[perm[j]][0] if perm[j] <= k else 0 for j in range(ndim))
            yield index_a, _trim(index_b), origin


def _trim(index: Index) -> Index:
    """Drop trailing full slices (``x[a:b, :, :]`` is ``x[a:b]``): fewer indexes for backends."""
    items = list(index)
    while items and items[-1] == slice(None):
        items.pop()
    return tuple(items)


def _known(shape: tuple[int | None, ...] | None) -> tuple[int, ...] | None:
    if shape is None or any(d is None for d in shape):
        return None
    return tuple(int(d) for d in shape if d is not None)


def _dtype(node: Node, value: np.ndarray | None) -> np.dtype | None:
    if value is not None:
        return value.dtype
    try:
        return numpy_dtype(node.dtype) if node.dtype else None
    except (TypeError, ValueError):
        return None


# -- whole files --------------------------------------------------------------------------
def compare_files(
    session: PairComparer,
    info_a: FileInfo,
    info_b: FileInfo,
    plan: Plan,
    atol: float = 0.0,
    rtol: float = 0.0,
    progress: Callable[[int, int, PlannedPair], None] | None = None,
    cancel: Any = None,
) -> Report:
    """Run every planned pair through ``session.compare_pair``; ``progress(i, n, pair)`` before each."""
    nodes_a = {n.id: n for n in info_a.nodes}
    nodes_b = {n.id: n for n in info_b.nodes}
    results = []
    for i, pair in enumerate(plan.pairs):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if progress is not None:
            progress(i, len(plan.pairs), pair)
        if pair.note:
            a, b = nodes_a[pair.a], nodes_b[pair.b]
            results.append(
                Compared(pair.a, pair.b, pair.transform, a.shape, b.shape, a.dtype, b.dtype, None, pair.note)
            )
            continue
        results.append(
            session.compare_pair(
                info_a.handle, pair.a, info_b.handle, pair.b, pair.transform, atol, rtol, cancel=cancel
            )
        )
    results.sort(key=badness, reverse=True)
    return Report(results, plan.only_a, plan.only_b, plan.skipped)
