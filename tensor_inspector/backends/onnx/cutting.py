"""Chunk models for a trace: the nodes of one chunk, fed what earlier chunks computed.

Fetching a chunk of values from the whole model recomputes everything before them, so
a trace in k chunks would cost about k/2 forward passes and serialize every weight k
times. A chunk's model instead holds only the nodes from its first value to its last,
with the values they read from earlier nodes declared as graph inputs and fed from what
earlier chunks returned, and only the initializers those nodes read: over the whole
trace each node runs once and each weight is serialized once. The values fed on are kept
until their last reader has run, the same live set a plain run of the model keeps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tensor_inspector.backends.onnx.model import subgraphs


def free_names(graph: Any) -> set[str]:
    """Names ``graph``'s nodes read that it does not define: values of the outer scope."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    read: set[str] = set()
    for node in graph.node:
        read |= node_reads(node)
        defined.update(o for o in node.output if o)
    return read - defined


def node_reads(node: Any) -> set[str]:
    """The values ``node`` reads: its inputs and what its subgraphs take from outside."""
    names = {i for i in node.input if i}
    for _, sub in subgraphs(node):
        names |= free_names(sub)
    return names


class Cutter:
    """Cuts chunk models out of ``model`` (whose nodes are ``nodes``, in order)."""

    def __init__(self, model: Any, nodes: list[Any]):
        self.model = model
        self.nodes = nodes
        graph = model.graph
        self.stored = {t.name: t for t in graph.initializer}
        self.sparse = {s.values.name: s for s in graph.sparse_initializer}
        self.graph_inputs = {i.name: i for i in graph.input}
        self.reads = [node_reads(node) for node in nodes]
        self.last_read: dict[str, int] = {}  # value name -> position of its last reader
        for position, names in enumerate(self.reads):
            for name in names:
                self.last_read[name] = position
        self.kept: dict[str, np.ndarray] = {}

    def keep(self, name: str, value: np.ndarray, stop: int) -> None:
        """Keep ``value`` if a node after position ``stop`` reads it."""
        if self.last_read.get(name, -1) > stop:
            self.kept[name] = value

    def cut(self, start: int, stop: int) -> tuple[Any, dict[str, np.ndarray]] | None:
        """The model of the nodes at positions ``start..stop`` and the kept values it is fed;
        None when it needs a value that was not kept (a sequence, a map)."""
        import onnx
        from onnx import helper

        for name in [n for n in self.kept if self.last_read[n] < start]:
            del self.kept[name]  # no node from here on reads it
        span = self.nodes[start : stop + 1]
        produced = {o for node in span for o in node.output if o}
        outside = set().union(*self.reads[start : stop + 1]) - produced
        fed = sorted(outside - set(self.stored) - set(self.sparse) - set(self.graph_inputs))
        if any(name not in self.kept for name in fed):
            return None
        try:
            declared = [
                helper.make_tensor_value_info(
                    name, helper.np_dtype_to_tensor_dtype(self.kept[name].dtype), self.kept[name].shape
                )
                for name in fed
            ]
        except (KeyError, TypeError, ValueError):  # a dtype ONNX has no element type for
            return None
        model = self.model
        new = onnx.ModelProto(ir_version=model.ir_version)
        new.opset_import.extend(model.opset_import)
        new.functions.extend(model.functions)
        graph = new.graph
        graph.name = model.graph.name
        graph.node.extend(span)
        graph.initializer.extend(t for name, t in self.stored.items() if name in outside)
        graph.sparse_initializer.extend(s for name, s in self.sparse.items() if name in outside)
        graph.input.extend(i for name, i in self.graph_inputs.items() if name in outside)
        graph.input.extend(declared)
        return new, {name: self.kept[name] for name in fed}
