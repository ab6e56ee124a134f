"""Tracing a torch.export program: one interpreted run, every node's output handed over.

``torch.fx.Interpreter`` runs the graph node by node; the hook in ``run_node`` passes
each tensor output on as it appears. The interpreter frees a value after its last
use, and the numpy view handed over is released when the callback returns, so the
run holds no more activations than a plain forward does.
"""

from __future__ import annotations

import threading
from typing import Any

from tensor_inspector.backends.base import Cancelled, InspectorError, OnNode


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

    class Tracer(torch.fx.Interpreter):
        def run_node(self, fx_node: Any) -> Any:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            result = super().run_node(fx_node)
            if fx_node.op != "output" and isinstance(result, torch.Tensor):
                inputs = [f"{group}/{n.name}" for n in fx_node.all_input_nodes]
                on_node(f"{group}/{fx_node.name}", op_name(fx_node), inputs, torch_convert.to_numpy(result))
            return result

    try:
        with torch.no_grad():
            Tracer(graph_module).run(*args)
    except Cancelled:  # a fresh one: the interpreter appends its traceback to the message
        raise Cancelled() from None
    except Exception as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        text = (lines[0][:200] if lines else type(exc).__name__).rstrip(".")
        raise InspectorError(f"Running the program failed: {text}.") from None
