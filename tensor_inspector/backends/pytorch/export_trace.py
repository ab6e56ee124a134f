"""Tracing a torch.export program: one run, every node's output handed over as it appears.

The program's graph is copied with a call to ``_report`` after every node (after the
last placeholder for the placeholders), and the copy's generated Python code is run: it
costs about what the program's own forward costs, where ``torch.fx.Interpreter`` spends
~30 µs of Python per node. The generated code drops each value after its last use, as
the forward does, and the numpy view handed over is released when the callback returns,
so the run holds no more activations than a plain forward. The copy is made once per
loaded program and kept beside it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from tensor_inspector.backends.base import Cancelled, InspectorError, OnNode

# (node id, op, input node ids) of each reported node, by the index the copy passes
_Listed = list[tuple[str, str, list[str]]]

_instrumented: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, _Listed]]] = weakref.WeakKeyDictionary()
_instrumenting = threading.Lock()
_running = threading.local()  # the report callback of the run on this thread


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

    module, listed = _instrumented_copy(graph_module, group)

    def report(index: int, value: Any) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if isinstance(value, torch.Tensor):
            node_id, op, inputs = listed[index]
            on_node(node_id, op, inputs, torch_convert.to_numpy(value))

    previous = getattr(_running, "report", None)
    _running.report = report
    try:
        with torch.no_grad():
            module(*args)
    except Cancelled:  # a fresh one: torch may have added its own notes to the message
        raise Cancelled() from None
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        text = (lines[0][:200] if lines else type(exc).__name__).rstrip(".")
        raise InspectorError(f"Running the program failed: {text}.") from None
    finally:
        _running.report = previous


def _report(index: int, value: Any) -> None:
    """Called by the instrumented copy after each node (a plain function, so FX can name it)."""
    report: Callable[[int, Any], None] = _running.report
    report(index, value)


def _instrumented_copy(graph_module: Any, group: str) -> tuple[Any, _Listed]:
    """``graph_module`` with a ``_report(i, value)`` after every node, and what each ``i`` is."""
    with _instrumenting:
        copies = _instrumented.setdefault(graph_module, {})
        if group not in copies:
            copies[group] = _instrument(graph_module, group)
        return copies[group]


def _instrument(graph_module: Any, group: str) -> tuple[Any, _Listed]:
    import torch

    graph = torch.fx.Graph()
    graph.set_codegen(graph_module.graph._codegen)  # the same calling convention
    copied: dict[Any, Any] = {}
    listed: _Listed = []
    waiting: list[Any] = []  # placeholders stay first: theirs are reported after the last one

    def report(fx_node: Any) -> None:
        inputs = [f"{group}/{n.name}" for n in fx_node.all_input_nodes]
        listed.append((f"{group}/{fx_node.name}", op_name(fx_node), inputs))
        graph.call_function(_report, (len(listed) - 1, copied[fx_node]))

    for fx_node in graph_module.graph.nodes:
        if fx_node.op != "placeholder":
            for placeholder in waiting:
                report(placeholder)
            waiting = []
        copied[fx_node] = graph.node_copy(fx_node, lambda n: copied[n])
        if fx_node.op == "placeholder":
            waiting.append(fx_node)
        elif fx_node.op != "output":
            report(fx_node)
    return torch.fx.GraphModule(graph_module, graph), listed
