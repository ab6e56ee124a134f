"""Tracing a Keras model: one forward pass, each layer's output handed over as it appears.

Keras has no hooks on layer calls, and a sub-model per chunk of layers would recompute the
model once per chunk. So the pass is run here the way ``Functional.call`` runs it: the
model's nodes deepest first (Keras' own execution order), each layer called on the values
its node reads, with ``training=False``. Unlike Keras' own loop, which keeps every
intermediate tensor until the end, a value is dropped as soon as the last node reading it
has run, so the pass holds no more than the layers still need.

This walks Keras 3's graph structures (``_nodes_by_depth``, ``Node.arguments``), the same
ones ``Functional.call`` uses; Keras 2 ``.h5`` files are rebuilt by Keras 3 and traced the
same way. A layer called more than once (a shared layer) is reported for its first call:
the tree lists one output per layer; later calls are looked through to their inputs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from tensor_inspector.backends.base import Cancelled, InspectorError, NotEvaluable, OnNode
from tensor_inspector.core.errors import first_line


def graph_of(model: Any) -> Any:
    """The Functional graph that runs ``model``: itself, or the one a Sequential wraps."""
    graph = getattr(model, "_functional", None) or model
    try:
        inputs = graph.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or getattr(graph, "_nodes_by_depth", None) is None:
        raise NotEvaluable(
            "The model was saved without an input shape, so its layers have no outputs to trace."
        )
    return graph


def execution_order(graph: Any) -> list[Any]:
    """The graph's layer calls in the order ``Functional.call`` runs them: deepest first."""
    order = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                order.append(node)
    return order


def trace_model(
    model: Any,
    listed: Mapping[tuple[str, int], str],
    arrays: list[np.ndarray],
    on_node: OnNode,
    cancel: threading.Event | None,
) -> None:
    """Run ``model`` on ``arrays`` (its inputs in order), ``on_node`` for each listed output.

    ``listed`` maps (layer name, output index) to the node id the tree shows for it.
    """
    import keras
    from keras.src.models.functional import operation_fn  # the call-context wrapper Keras uses

    graph = graph_of(model)
    nodes = execution_order(graph)
    readers: dict[int, int] = {}  # id(symbolic tensor) -> how many calls still read it
    for node in nodes:
        for tensor in node.input_tensors:
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    values: dict[int, Any] = {}  # id(symbolic tensor) -> its value in this pass
    traced: dict[int, list[str]] = {}  # id(symbolic tensor) -> traced node ids it stands for
    try:
        # in the structure the model was built with (one tensor, list or dict), so Keras
        # converts dtypes and ranks as its own call does, without a mismatch warning
        structured = keras.tree.pack_sequence_as(graph._inputs_struct, list(arrays))
        inputs = graph._standardize_inputs(structured)
    except Exception as exc:
        raise InspectorError(f"The inputs do not fit the model: {_sentence(exc)}") from None
    for symbolic, value in zip(graph.inputs, inputs, strict=False):
        values[id(symbolic)] = value
        traced[id(symbolic)] = []
    reported: set[str] = set()
    for node in nodes:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if any(id(t) not in values for t in node.input_tensors):
            continue  # not computable from the inputs (Keras skips these too)
        layer = node.operation
        args, kwargs = node.arguments.fill_in(values)
        try:
            outputs = operation_fn(layer, training=False)(*args, **kwargs)
        except Exception as exc:
            raise InspectorError(f"Running layer {layer.name!r} failed: {_sentence(exc)}") from None
        del args, kwargs
        inputs_of = _unique(i for t in node.input_tensors for i in traced.get(id(t), []))
        first_call = layer.name not in reported
        reported.add(layer.name)
        for index, (symbolic, value) in enumerate(zip(node.outputs, keras.tree.flatten(outputs))):
            node_id = listed.get((layer.name, index)) if first_call else None
            if node_id is None:  # not in the tree: stands for what it was computed from
                traced[id(symbolic)] = inputs_of
            else:
                traced[id(symbolic)] = [node_id]
                on_node(node_id, type(layer).__name__, inputs_of, _numpy(keras, value))
            if readers.get(id(symbolic), 0) > 0:
                values[id(symbolic)] = value
        del outputs
        for tensor in node.input_tensors:  # drop what no later call reads
            readers[id(tensor)] -= 1
            if readers[id(tensor)] == 0:
                values.pop(id(tensor), None)


def _numpy(keras: Any, value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _unique(ids: Any) -> list[str]:
    return list(dict.fromkeys(ids))


def _sentence(exc: BaseException) -> str:
    text = (first_line(exc) or type(exc).__name__)[:300]
    return text if text.endswith(".") else text + "."
