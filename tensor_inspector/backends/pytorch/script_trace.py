"""Tracing a TorchScript forward: one run of an instrumented copy of the graph, every value handed over.

Why a reporting op and not the other ways of seeing inside a TorchScript run:

* forward hooks do not fire inside a loaded TorchScript module (its submodules' Python
  ``forward`` is gone), and the tree lists op values, not module outputs;
* fetching values as graph outputs (what ``script_probe`` does for one value) would hold
  every value until the run ends, or need one run per chunk of values.

So a copy of the inlined graph gets a call of our own operator ``tensor_inspector::report``
right after every listed value. The operator is registered once per process through
``torch.library`` with a Python kernel, so the TorchScript interpreter calls back into Python
with the live tensor, in execution order, and nothing is kept after the callback returns:
the run holds no more than a plain forward does. Its alias analysis is ``CONSERVATIVE``,
which tells the graph executor it has side effects: dead-code elimination and the other
passes leave it where it is.

Control flow: a value in a ``prim::If`` branch that is not taken is never computed, so it is
skipped. A value inside a ``prim::Loop`` body is computed once per iteration; like evaluating
one node (``script_probe``), the trace shows the last iteration that ran: a clone of each loop
value is buffered and handed over when the run leaves the outermost loop around it (memory:
one iteration's values of that loop). Work a model forks (``torch.jit.fork``) runs in a
subgraph the tree does not list; its result (``aten::wait``) is traced like any value.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tensor_inspector.backends.base import Cancelled, InspectorError, OnNode
from tensor_inspector.backends.pytorch.script_graph import GraphValue, locate

NAMESPACE = "tensor_inspector"
REPORT_OP = f"{NAMESPACE}::report"
_NOT_TRACED = {"prim::GetAttr", "prim::Constant"}  # where looking for a value's inputs stops
_ANCESTOR_LIMIT = 256  # how far to look through unlisted values (lists, sizes) for traced inputs

_registration_lock = threading.Lock()
_library: Any = None  # the torch.library.Library: the operator lives as long as it does
_active = threading.local()  # the Reporter of the run on this thread


@dataclass(frozen=True)
class Slot:
    """One listed value the instrumented graph reports: its node id, op and traced inputs."""

    node_id: str
    op: str
    inputs: list[str]
    loop: tuple[int, ...] | None  # path of the outermost prim::Loop around it (None: in none)


def _report(value: Any, slot: int) -> None:
    """The operator's kernel: hand ``value`` to the run in progress on this thread."""
    reporter: Reporter | None = getattr(_active, "reporter", None)
    if reporter is not None:
        reporter.report(slot, value)


def ensure_operator() -> str:
    """Register ``tensor_inspector::report(Tensor value, int slot) -> ()`` once per process."""
    global _library
    with _registration_lock:
        if _library is None:
            import torch

            # torch.library is not annotated in torch
            library = torch.library.Library(NAMESPACE, "DEF")  # type: ignore[no-untyped-call]
            library.define(  # type: ignore[no-untyped-call]
                "report(Tensor value, int slot) -> ()", alias_analysis="CONSERVATIVE"
            )
            library.impl("report", _report, "CompositeExplicitAutograd")  # type: ignore[no-untyped-call]
            _library = library
    return REPORT_OP


class Reporter:
    """Receives each reported tensor during one run and passes it on as a numpy array.

    An exception raised here (``Cancelled``, or the caller's own) cannot cross the
    TorchScript interpreter with its type intact, so it is kept and re-raised by ``run``.
    """

    def __init__(self, slots: list[Slot], on_node: OnNode, cancel: threading.Event | None):
        self.slots = slots
        self.on_node = on_node
        self.cancel = cancel
        self.error: BaseException | None = None
        self._loop: tuple[int, ...] | None = None  # the outermost loop whose values are buffered
        self._buffered: dict[int, Any] = {}  # slot -> clone of its latest value in that loop

    def report(self, slot: int, value: Any) -> None:
        try:
            found = self.slots[slot]
            if self._loop is not None and found.loop != self._loop:
                self.flush()  # the run left the loop: its last iteration's values go first
            if found.loop is not None:
                self._loop = found.loop
                # re-inserted, so the buffer keeps the order of each value's latest run
                self._buffered.pop(slot, None)
                self._buffered[slot] = value.detach().clone()
                return
            self._hand_over(slot, value)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        buffered, self._buffered, self._loop = self._buffered, {}, None
        while buffered:  # in the order the last iteration computed them
            slot = next(iter(buffered))
            self._hand_over(slot, buffered.pop(slot))

    def _hand_over(self, slot: int, value: Any) -> None:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()
        found = self.slots[slot]
        self.on_node(found.node_id, found.op, found.inputs, torch_convert.to_numpy(value))


class InstrumentedForward:
    """The forward graph with a report after every listed value, compiled once per source."""

    def __init__(self, graph: Any, values: Mapping[str, GraphValue]):
        import torch

        op = ensure_operator()
        copy = graph.copy()
        # find every value first: nodes added to the copy would shift the paths
        targets = []
        for node_id, value in values.items():
            node = locate(copy, value.path)
            targets.append((node_id, value, node, list(node.outputs())[value.output]))
        traced = {target.unique(): node_id for node_id, _, _, target in targets}
        self.slots: list[Slot] = []
        after: dict[Any, Any] = {}  # graph node -> the last report inserted after it
        for node_id, value, node, target in targets:
            loops = [i for i, e in enumerate(value.enclosing) if e.kind == "prim::Loop"]
            # a path is node, (block, node)...: the enclosing node at depth d ends at 2 * d
            loop = value.path[: 2 * loops[0] + 1] if loops else None
            slot = len(self.slots)
            self.slots.append(Slot(node_id, value.op, traced_inputs(target, traced), loop))
            number = copy.create("prim::Constant", [])
            number.i_("value", slot)
            number.output().setType(torch._C.IntType.get())
            copy.prependNode(number)
            report = copy.create(op, [target, number.output()], 0)
            report.insertAfter(after.get(node, node))  # several outputs of a node: in order
            after[node] = report
        self.function = torch._C._create_function_from_graph("tensor_inspector_trace", copy)


def traced_inputs(value: Any, traced: Mapping[int, str]) -> list[str]:
    """Node ids of the nearest traced values ``value``'s node reads, looking through unlisted ones.

    Lists (``aten::cat`` reads a ``prim::ListConstruct``), tuples and loop-carried block
    parameters are looked through, so a NaN passed along them is still an input. The value a
    ``prim::If`` / ``prim::Loop`` returns reads what its blocks return.
    """
    node = value.node()
    queue: list[Any] = [*node.inputs(), *_block_results(node, value)]
    found: list[str] = []
    seen: set[int] = set()
    while queue and len(seen) < _ANCESTOR_LIMIT:
        item = queue.pop(0)
        if item.unique() in seen:
            continue
        seen.add(item.unique())
        if item.unique() in traced:
            # a loop body's value reads its own previous iteration: not an input of its own
            if item.unique() != value.unique() and traced[item.unique()] not in found:
                found.append(traced[item.unique()])
            continue
        producer = item.node()
        if producer.kind() in _NOT_TRACED:
            continue
        if producer.kind() == "prim::Param":
            queue.extend(_loop_carried(item))
            continue
        queue.extend(producer.inputs())
        queue.extend(_block_results(producer, item))
    return found


def _block_results(node: Any, value: Any) -> list[Any]:
    """What the blocks of a prim::If / prim::Loop return for its output ``value``."""
    if node.kind() not in ("prim::If", "prim::Loop"):
        return []
    index = list(node.outputs()).index(value) if value in list(node.outputs()) else -1
    if index < 0:
        return []
    offset = 1 if node.kind() == "prim::Loop" else 0  # a loop body returns its condition first
    results = []
    for block in node.blocks():
        returned = list(block.returnNode().inputs())
        if offset + index < len(returned):
            results.append(returned[offset + index])
    if node.kind() == "prim::Loop":  # zero iterations: the initial value comes out
        initial = list(node.inputs())[2:]
        if index < len(initial):
            results.append(initial[index])
    return results


def _loop_carried(param: Any) -> list[Any]:
    """A loop body's parameter: the loop's initial value and what the body returns for it."""
    block = param.node().owningBlock()
    loop = block.owningNode() if block is not None else None
    index = param.offset()
    if loop is None or loop.kind() != "prim::Loop" or index == 0:
        return []  # the graph's own inputs, or the iteration counter
    found = []
    initial = list(loop.inputs())[2:]
    returned = list(block.returnNode().inputs())[1:]
    for values in (initial, returned):
        if index - 1 < len(values):
            found.append(values[index - 1])
    return found


def trace_forward(
    module: Any,
    forward: InstrumentedForward,
    args: list[Any],
    inputs: list[str],
    on_node: OnNode,
    cancel: threading.Event | None,
) -> None:
    """Run the instrumented forward of ``module`` on ``args``, reporting every value to ``on_node``."""
    import torch

    from tensor_inspector.backends.pytorch.script_probe import failure

    reporter = Reporter(forward.slots, on_node, cancel)
    _active.reporter = reporter
    try:
        with torch.no_grad():
            forward.function(module._c, *args)
        reporter.flush()  # a loop at the very end has no later value to flush it
    except Exception as exc:
        if reporter.error is not None:  # ours, raised inside the run: re-raised as it was
            if isinstance(reporter.error, Cancelled):
                raise Cancelled() from None
            raise reporter.error from None
        if isinstance(exc, (Cancelled, InspectorError)):
            raise
        raise failure(exc, "the forward graph", inputs) from exc
    finally:
        _active.reporter = None
