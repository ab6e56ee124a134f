"""Tracing an ONNX model: every value one run computes, in the graph's node order.

onnxruntime returns graph outputs only, so the values are exposed as extra outputs
(``runtime.Runner``). What one run returns must fit in memory at once, and onnxruntime
keeps every graph output of a session alive until its run ends, whether or not the run
asks for it: measured on a chain of 40 values of 32 MB each (onnxruntime 1.32), one
session exposing all of them peaked at 1.5 GB even when each run fetched 8, while one
session per chunk of 8 peaked at 0.46 GB (0.78 GB with the CPU arena, which keeps each
run's peak). So values are fetched in chunks of about ``CHUNK_BYTES`` (sizes from shape
inference with the feeds' own shapes, else from what earlier chunks measured), one
session per chunk, arena off, each session released before the next. Each chunk's
session serves a model cut down to the chunk's own nodes (``cutting``), fed the values
earlier chunks computed, so every node runs once over the whole trace. Measured: a CNN
with 2.9 GB of values traced at a 0.7 GB peak in 7.5 s (its plain run: 0.5 GB, 1.7 s;
24 s when every chunk ran the whole model up to its values); an MLP with 384 MB of
weights and 1.5 GB of values in 25 s at 1.2 GB (plain run: 21 s, 0.85 GB). A session
costs about as long as loading the weights it holds (1.5-3 s per 400 MB), so a model
whose values fit one chunk gets one session and one run, and reuses the session
evaluation already built when there is one.

``If`` nodes run one branch: the branch the inputs take is inlined (its condition is
computed first, one nesting level per extra run), so its values are traced where they
run, under the ids the tree gives them. The branch not taken, and ``Loop``/``Scan``
bodies (which run once per step, so one run gives their values no single value), are
skipped; the node holding them is traced as a whole.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from tensor_inspector.backends.base import Cancelled, InspectorError, Node, NotEvaluable, OnNode
from tensor_inspector.backends.onnx.branches import BranchPath, condition
from tensor_inspector.backends.onnx.cutting import Cutter
from tensor_inspector.backends.onnx.listing import Listing, numpy_name, outer_names, type_info
from tensor_inspector.backends.onnx.model import STANDARD_DOMAINS, subgraphs
from tensor_inspector.backends.onnx.runtime import Runner, SessionRefused, as_array

CHUNK_BYTES = 256 << 20
FIRST_GUESS_BYTES = 16 << 20  # a value of unknown size, before anything was measured
_MAX_ROUNDS = 32  # If nesting levels resolved before the rest is traced as whole Ifs

# Where an If sits: the branches leading to it and its index as the listing counts it.
IfPlace = tuple[BranchPath, int]
# A runner of a model with the given values exposed (arena off: it serves one run).
RunnerFor = Callable[[Any, list[str]], Runner]


@dataclass
class TracedValue:
    name: str  # the value's name in the (branch-inlined) model
    node_id: str
    op: str
    inputs: list[str]
    nbytes: int | None
    position: int  # of its node in the (branch-inlined) model


def trace_model(
    model: Any,
    listing: Listing,
    nodes: Mapping[str, Node],
    runner_for_chunk: RunnerFor,
    feeds: dict[str, np.ndarray],
    on_node: OnNode,
    cancel: threading.Event | None,
    reusable: Runner | None = None,
) -> None:
    """Run ``model`` once with ``feeds`` and hand every listed value to ``on_node`` in order.

    ``runner_for_chunk(model, outputs)`` makes a Runner exposing ``outputs``; ``reusable``
    is the evaluation runner of ``model`` itself, used when everything fits one chunk.
    """
    inlined, placed = _inline_taken_branches(model, feeds, runner_for_chunk, cancel)
    shapes = {k: tuple(np.shape(v)) for k, v in feeds.items()}
    values = traced_values(placed, listing, nodes, type_info(inlined, shapes))
    measured: list[int] = []
    fits_one = sum(v.nbytes if v.nbytes is not None else FIRST_GUESS_BYTES for v in values) <= CHUNK_BYTES
    reuse = fits_one and inlined is model and reusable is not None and reusable.has_session
    chunks = iter([values]) if reuse else _chunks(values, measured)
    cutter = Cutter(inlined, [node for node, _ in placed])
    running = _ChunkRunner(inlined, runner_for_chunk, cutter)
    for chunk in chunks:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        for value, raw in running.run(chunk, feeds, reusable if reuse else None):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            try:
                array = as_array(value.name, raw)
            except NotEvaluable:  # a map, an empty optional: nothing to summarise
                continue
            measured.append(int(array.nbytes))
            on_node(value.node_id, value.op, value.inputs, array)
            if not reuse and isinstance(raw, np.ndarray):  # a later chunk may be fed it
                cutter.keep(value.name, raw, chunk[-1].position)
            del array, raw  # released before the next value is summarised, unless kept


def traced_values(
    placed: list[tuple[Any, BranchPath]],
    listing: Listing,
    nodes: Mapping[str, Node],
    types: Mapping[str, Any],
) -> list[TracedValue]:
    """The listed values among ``placed`` nodes' outputs, in order, with the traced values each reads."""
    id_of = {(c.branch, c.value): node_id for node_id, c in listing.computed.items() if c.why_not is None}
    traced_name: dict[str, str] = {}  # value name in the inlined model -> node id
    found: list[TracedValue] = []
    for position, (node, path) in enumerate(placed):
        reads = [name for name in node.input if name]
        for _, sub in subgraphs(node):  # a Loop body reading an outer NaN reads it too
            reads.extend(sorted(outer_names(sub)))
        inputs = list(dict.fromkeys(traced_name[name] for name in reads if name in traced_name))
        for name in node.output:
            node_id = id_of.get((path, name)) if name else None
            if node_id is None:
                continue
            op = str(nodes[node_id].metadata.get("op", node.op_type))
            found.append(TracedValue(name, node_id, op, inputs, _nbytes(types.get(name)), position))
            traced_name[name] = node_id
    return found


def _nbytes(info: Any) -> int | None:
    if not isinstance(info, tuple):
        return None
    elem, shape = info
    dtype = numpy_name(elem) if elem else None
    if shape is None or any(d is None for d in shape) or dtype is None or dtype == "str":
        return None
    return math.prod(shape) * np.dtype(dtype).itemsize


def _chunks(values: list[TracedValue], measured: list[int]) -> Iterator[list[TracedValue]]:
    """Consecutive values adding up to about CHUNK_BYTES (at least one each); an unknown
    size counts as the largest value measured so far, so a big model starts cautiously."""
    start = 0
    while start < len(values):
        guess = max(measured) if measured else FIRST_GUESS_BYTES
        total, stop = 0, start
        while stop < len(values) and (stop == start or total < CHUNK_BYTES):
            nbytes = values[stop].nbytes
            total += nbytes if nbytes is not None else guess
            stop += 1
        if stop < len(values) and total > CHUNK_BYTES and stop - start > 1:
            stop -= 1  # the last one would pass the budget: it starts the next chunk
        yield values[start:stop]
        start = stop


class _ChunkRunner:
    """Runs chunks of values: from ``shared``, else from a chunk model (``cutting``), else
    from the whole model with the chunk's values exposed."""

    def __init__(self, model: Any, runner_for: RunnerFor, cutter: Cutter):
        self.model = model
        self.runner_for = runner_for
        self.cutter = cutter
        self.model_loads = False  # checked once, at the first refusal

    def run(
        self, chunk: list[TracedValue], feeds: dict[str, np.ndarray], shared: Runner | None = None
    ) -> Iterator[tuple[TracedValue, Any]]:
        """The raw values of ``chunk``; an output onnxruntime cannot expose is left out."""
        names = [v.name for v in chunk]
        raws = None
        if shared is not None:
            raws = _fetch(shared, names, feeds, owned=False)
        else:
            cut = self.cutter.cut(chunk[0].position, chunk[-1].position)
            if cut is not None:
                model, fed = cut
                raws = _fetch(self.runner_for(model, names), names, {**feeds, **fed})
            if raws is None:  # a value it needs was not kept, or the cut was refused
                raws = _fetch(self.runner_for(self.model, names), names, feeds)
        if raws is None:
            self._check_model_loads()
            if len(chunk) > 1:  # bisect to the outputs that cannot be exposed
                half = len(chunk) // 2
                yield from self.run(chunk[:half], feeds)
                yield from self.run(chunk[half:], feeds)
            return
        for i, value in enumerate(chunk):
            raw, raws[i] = raws[i], None  # the list lets go of each value once handed over
            yield value, raw

    def _check_model_loads(self) -> None:
        """A model onnxruntime refuses as it is fails the trace at once, not value by value."""
        if self.model_loads:
            return
        plain = self.runner_for(self.model, [])
        try:
            reason = plain.refusal()
        finally:
            plain.close()
        if reason:
            raise InspectorError(reason)
        self.model_loads = True


def _fetch(runner: Runner, names: list[str], feeds: dict[str, np.ndarray], owned: bool = True) -> Any:
    """``names`` from one run of ``runner``, None if onnxruntime refuses to expose them."""
    try:
        return runner.run_outputs(names, feeds)
    except SessionRefused:
        return None
    finally:
        if owned:
            runner.close()  # the session goes before its values are handed over


# -- If branches ------------------------------------------------------------------------
def _inline_taken_branches(
    model: Any, feeds: dict[str, np.ndarray], runner_for: RunnerFor, cancel: threading.Event | None
) -> tuple[Any, list[tuple[Any, BranchPath]]]:
    """``model`` with every If replaced by the branch its condition takes, and its nodes in
    order with the branches they came from. Conditions are read one nesting level per run;
    an If whose condition cannot be read stays whole."""
    decided: dict[IfPlace, str | None] = {}
    current = model
    for _ in range(_MAX_ROUNDS):
        placed, branch_inits, pending = _inline(model.graph, decided)
        if any(attr is not None for attr in decided.values()):
            current = _with_nodes(model, placed, branch_inits)
        if not pending:
            break
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        names = sorted(set(pending.values()) - set(feeds) - {t.name for t in current.graph.initializer})
        computed: dict[str, Any] = {}
        if names:
            runner = runner_for(current, names)
            try:
                computed = dict(zip(names, runner.run_outputs(names, feeds)))
            finally:
                runner.close()
        for place, cond in pending.items():
            try:
                truth = condition(current, cond, feeds, partial(_converted, computed))
                decided[place] = "then_branch" if truth else "else_branch"
            except (NotEvaluable, KeyError):
                decided[place] = None
    return current, placed


def _converted(values: Mapping[str, Any], name: str) -> np.ndarray:
    return as_array(name, values[name])


def _inline(
    graph: Any, decided: Mapping[IfPlace, str | None]
) -> tuple[list[tuple[Any, BranchPath]], list[Any], dict[IfPlace, str]]:
    """The nodes of ``graph`` with decided Ifs replaced by their branch (indexed as
    ``listing`` indexes them), the initializers those branches bring, and the Ifs not yet
    decided: place -> condition name."""
    from onnx import helper

    placed: list[tuple[Any, BranchPath]] = []
    inits: list[Any] = []
    pending: dict[IfPlace, str] = {}

    def walk(nodes: Any, path: BranchPath, offset: int) -> None:
        for index, node in enumerate(nodes):
            where = offset + index
            is_if = node.op_type == "If" and node.domain in STANDARD_DOMAINS
            attr = decided.get((path, where)) if is_if else None
            if attr is None:
                if is_if and (path, where) not in decided:
                    pending[(path, where)] = node.input[0]
                placed.append((node, path))
                continue
            branch = next(a.g for a in node.attribute if a.name == attr)
            inits.extend(branch.initializer)
            walk(branch.node, (*path, (where, attr)), where)
            for inner, outer in zip(branch.output, node.output):
                if outer:  # the If's own output, under its own name (as branches.inline_branch does)
                    name = f"{node.name or outer}/{attr}/{inner.name}"
                    placed.append((helper.make_node("Identity", [inner.name], [outer], name=name), path))

    walk(graph.node, (), 0)
    return placed, inits, pending


def _with_nodes(model: Any, placed: list[tuple[Any, BranchPath]], inits: list[Any]) -> Any:
    import onnx

    new = onnx.ModelProto()
    new.CopyFrom(model)
    del new.graph.node[:]
    new.graph.node.extend(node for node, _ in placed)
    new.graph.initializer.extend(inits)
    return new
