"""Tracing a torch.export program: one run, every node's output handed over as it appears.

The program's graph is copied with a call to ``_report`` after every node (after the
last placeholder for the placeholders), and the copy's generated Python code is run: it
costs about what the program's own forward costs, where ``torch.fx.Interpreter`` spends
~30 µs of Python per node. The generated code drops each value after its last use, as
the forward does, and the numpy view handed over is released when the callback returns,
so the run holds no more activations than a plain forward. The copy is made once per
loaded program and kept beside it.

Subgraphs of higher-order ops (``export_subgraphs``) are copied the same way and put in
the copy in place of the originals, so torch's own ``cond``/``while_loop``/... run them
and only what runs reports: a branch not taken reports nothing. A subgraph run
repeatedly (a loop body, a map or scan body) reports one of its runs
(``export_repeated``): the first whose outputs hold NaN/Inf, else the last one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensor_inspector.backends.base import Cancelled, InspectorError, OnNode
from tensor_inspector.backends.pytorch import export_subgraphs

_Listed = list[tuple[str, str, list[str]]]


@dataclass
class _Instrumented:
    """The reporting copy of a program and what each report index stands for."""

    module: Any = None
    listed: _Listed = field(default_factory=list)  # (node id, op, input ids) by report index
    # report index -> (subgraph id, input id): a result of a higher-order op whose input is
    # the output of whichever of its subgraphs ran
    choices: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    repeated: list[Any] = field(default_factory=list)  # the loop-body wrappers of the copy


_instrumented: weakref.WeakKeyDictionary[Any, dict[str, _Instrumented]] = weakref.WeakKeyDictionary()
_instrumenting = threading.Lock()
_running = threading.local()  # the report callbacks of the run on this thread


class _Found(Exception):
    """Stops a run once the wanted node has reported."""

    def __init__(self, value: np.ndarray):
        self.value = value


def op_name(fx_node: Any) -> str:
    """``aten.log.default`` for calls, the node kind (``placeholder``) otherwise."""
    if fx_node.op in ("call_function", "call_method", "call_module"):
        return str(fx_node.target)
    return str(fx_node.op)


def trace_program(
    graph_module: Any, args: list[Any], group: str, on_node: OnNode, cancel: threading.Event | None
) -> None:
    """Run ``graph_module`` on ``args``; ``on_node("<group>/<name>", op, inputs, array)`` per tensor."""
    import torch

    from tensor_inspector.backends.pytorch import convert as torch_convert

    copy = _instrumented_copy(graph_module, group)
    listed, choices = copy.listed, copy.choices
    entered: set[str] = set()  # the subgraphs that ran in this run

    def report(index: int, value: Any) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if isinstance(value, torch.Tensor):
            node_id, op, inputs = listed[index]
            if choices and index in choices:
                inputs = [i for sub, i in choices[index] if sub in entered] or inputs
            on_node(node_id, op, inputs, torch_convert.to_numpy(value))

    saved = (
        getattr(_running, "report", None),
        getattr(_running, "entered", None),
        getattr(_running, "cancel", None),
    )
    _running.report, _running.entered, _running.cancel = report, entered.add, cancel
    for repeated in copy.repeated:
        repeated.reset()  # a run stopped inside a loop leaves its state behind
    try:
        with torch.no_grad():
            copy.module(*args)
    except Cancelled:  # a fresh one: torch may have added its own notes to the message
        raise Cancelled() from None
    except _Found:
        raise
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        text = (lines[0][:200] if lines else type(exc).__name__).rstrip(".")
        raise InspectorError(f"Running the program failed: {text}.") from None
    finally:
        _running.report, _running.entered, _running.cancel = saved
        for repeated in copy.repeated:
            repeated.reset()


def value_in_run(graph_module: Any, args: list[Any], group: str, node_id: str) -> np.ndarray | None:
    """The value ``node_id`` reports when the program runs on ``args`` (None: it did not run),
    for nodes only a run reaches: those inside the subgraphs of higher-order ops."""

    def on_node(reported: str, op: str, inputs: list[str], array: np.ndarray) -> None:
        if reported == node_id:
            raise _Found(np.array(array, copy=True))

    try:
        trace_program(graph_module, args, group, on_node, None)
    except _Found as found:
        return found.value
    return None


def _report(index: int, value: Any) -> None:
    """Called by the instrumented copy after each node (a plain function, so FX can name it)."""
    report: Callable[[int, Any], None] = _running.report
    report(index, value)


def _enter(subgraph_id: str) -> None:
    """Called by an instrumented subgraph when it runs: a result of its op then comes from it."""
    _running.entered(subgraph_id)


def cancel_requested() -> bool:
    """Whether the run on this thread is cancelled: loop iterations run without reports check it."""
    cancel = getattr(_running, "cancel", None)
    return cancel is not None and cancel.is_set()


def _instrumented_copy(graph_module: Any, group: str) -> _Instrumented:
    """``graph_module`` with a ``_report(i, value)`` after every node, and what each ``i`` is."""
    with _instrumenting:
        copies = _instrumented.setdefault(graph_module, {})
        if group not in copies:
            copy = _Instrumented()
            copy.module, _ = _instrument(graph_module, group, None, False, copy)
            copies[group] = copy
        return copies[group]


def _instrument(
    graph_module: Any, group: str, operand_ids: list[list[str]] | None, aliased: bool, copy: _Instrumented
) -> tuple[Any, list[str | None]]:
    """A reporting copy of ``graph_module`` whose node ids start with ``group``, and the ids of
    what it returns.

    ``operand_ids`` (None for the program itself): per placeholder of a subgraph, the ids of
    the values it receives (a loop's carried value: the operand, then what the body returns). ``aliased``: the subgraph runs once per call of its op, so its
    placeholders are those values and are not reported; otherwise they are reported, with
    the operand as their input.
    """
    import torch

    from tensor_inspector.backends.pytorch.export_repeated import RepeatedSubgraph, finish_repeated

    graph = torch.fx.Graph()
    graph.set_codegen(graph_module.graph._codegen)  # the same calling convention
    copied: dict[Any, Any] = {}
    ids: dict[Any, str | None] = {}
    # op node -> (subgraph id, ids of what it returns) for each subgraph giving the op's result
    results: dict[Any, list[tuple[str, list[str | None]]]] = {}
    waiting: list[tuple[Any, list[str]]] = []  # placeholders stay first: reported after the last one
    replacements: dict[str, Any] = {}
    listed = copy.listed
    returned: list[str | None] = []

    def report(fx_node: Any, inputs: list[str]) -> None:
        listed.append((str(ids[fx_node]), op_name(fx_node), inputs))
        graph.call_function(_report, (len(listed) - 1, copied[fx_node]))

    placeholders = 0
    for fx_node in graph_module.graph.nodes:
        if fx_node.op != "placeholder":
            for placeholder, inputs in waiting:
                report(placeholder, inputs)
            waiting = []
        if fx_node.op == "output":
            if operand_ids is not None:
                graph.call_function(_enter, (group,))
            returned = [ids.get(n) for n in export_subgraphs.output_nodes(graph_module)]
        copied[fx_node] = graph.node_copy(fx_node, lambda n: copied[n])
        if fx_node.op == "output":
            continue
        if fx_node.op == "placeholder":
            received = operand_ids[placeholders] if operand_ids and placeholders < len(operand_ids) else []
            placeholders += 1
            if aliased:
                ids[fx_node] = received[0] if received else None
            else:
                ids[fx_node] = f"{group}/{fx_node.name}"
                waiting.append((fx_node, received))
            continue
        ids[fx_node] = f"{group}/{fx_node.name}"
        inputs = [i for i in (ids.get(n) for n in fx_node.all_input_nodes) if i is not None]
        repeated_holders = []
        calls = export_subgraphs.subgraph_calls(graph_module, fx_node)
        for call in calls:
            sub_group = f"{group}/{call.holder.name}"
            operands: list[list[str]] = [
                [str(ids[o])] if isinstance(o, torch.fx.Node) and ids.get(o) else [] for o in call.operands
            ]
            for position, carried in enumerate(_carried_back(calls, group)[: call.carried]):
                if carried is not None and position < len(operands):
                    operands[position].append(carried)  # a later iteration gets what the body returned
            sub_module, sub_returned = _instrument(call.module, sub_group, operands, not call.repeated, copy)
            if call.repeated:
                wrapper = RepeatedSubgraph(call.module, sub_module)
                copy.repeated.append(wrapper)
                replacements[call.holder.target] = wrapper
                repeated_holders.append(call.holder)
            else:
                replacements[call.holder.target] = sub_module
            if call.gives_result:
                results.setdefault(fx_node, []).append((sub_group, sub_returned))
        for holder in repeated_holders:  # a body that reported none of its runs reports its last
            graph.call_function(finish_repeated, (copied[holder],))
        found = export_subgraphs.result_index(fx_node)
        if found is not None and found[0] in results:
            op_node, position = found
            options = [
                (sub_group, str(sub_returned[position]))
                for sub_group, sub_returned in results[op_node]
                if position < len(sub_returned) and sub_returned[position] is not None
            ]
            if options:
                copy.choices[len(listed)] = options  # the index report() is about to take
        report(fx_node, inputs)
    module = torch.fx.GraphModule(graph_module, graph)
    for target, replacement in replacements.items():
        module.add_submodule(target, replacement)
    return module, returned


def _carried_back(calls: list[Any], group: str) -> list[str | None]:
    """The ids of what a loop or scan body returns: its placeholders are not aliased, so they
    are ``<subgraph>/<name>`` like its other nodes, known before the body is copied."""
    import torch

    body = next((call for call in calls if call.repeated and call.gives_result), None)
    if body is None:
        return []
    prefix = f"{group}/{body.holder.name}"
    return [
        f"{prefix}/{n.name}" if isinstance(n, torch.fx.Node) else None
        for n in export_subgraphs.output_nodes(body.module)
    ]
