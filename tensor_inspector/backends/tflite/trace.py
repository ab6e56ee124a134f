"""Tracing a TFLite subgraph: one invoke, then each operator's outputs in execution order.

The interpreter runs with ``experimental_preserve_all_tensors`` (``source``), so after one
invoke every intermediate tensor still holds its value; TFLite executes a subgraph's
operators in the order the file lists them, so that order is the trace's. Each value is
copied out, handed over and released before the next. The interpreter itself holds all of
them for as long as it lives: the memory of one run with nothing freed early, which is
what reading inner tensors of TFLite costs.

Quantized outputs are handed over as the stored integers, followed by their
``<id>/dequantized`` view (float32 in real units), as the tree lists both. Subgraphs that
control-flow operators call (``WHILE`` bodies, ``IF`` branches) are not traced; the calling
operator's outputs are. A body runs once per step, and even an ``IF`` branch that ran once
does not keep its values reliably: after two invokes of a model with ``tf.cond`` (TF 2.21),
the branch not taken held the other run's values and the taken branch's output buffer
held what the other branch wrote, so reading them could report a NaN that never happened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.base import Cancelled, Node, OnNode
from tensor_inspector.backends.tflite import flatbuf


def trace_operators(
    sub: flatbuf.SubGraph,
    ids: Callable[[int], str | None],
    nodes: Mapping[str, Node],
    op_names: list[str],
    get_tensor: Callable[[int], np.ndarray | None],
    dequantized: Callable[[str, np.ndarray], np.ndarray],
    on_node: OnNode,
    cancel: threading.Event | None,
) -> None:
    """Hand over every output of ``sub``'s operators, in order, after the subgraph has run.

    ``ids(tensor index)`` is the tensor's node id, ``get_tensor`` its value (None when the
    interpreter has none), ``dequantized(id, codes)`` the real values of a quantized one.
    """
    traced: dict[int, str] = {}  # tensor index -> node id, of the outputs handed over so far
    for opcode, op_inputs, op_outputs in sub.operators:
        inputs = list(dict.fromkeys(traced[i] for i in op_inputs if i in traced))
        for index in op_outputs:
            node_id = ids(index) if index >= 0 else None
            if node_id is None or nodes[node_id].dtype is None:
                continue  # an omitted optional output, a string or resource tensor
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            value = get_tensor(index)
            if value is None:
                continue
            on_node(node_id, op_names[opcode], inputs, value)
            traced[index] = node_id
            view = nodes[node_id].metadata.get(quantized.VIEWS, {}).get(quantized.DEQUANTIZED)
            if view is not None and view in nodes:
                if cancel is not None and cancel.is_set():
                    raise Cancelled()
                on_node(view, op_names[opcode], [node_id], dequantized(node_id, value))
            del value
