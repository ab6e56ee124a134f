"""An opened ONNX model: initializers read on demand, node outputs evaluated by onnxruntime."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    FeedSpec,
    Index,
    InspectorError,
    Node,
    NodeKind,
    NotEvaluable,
    OnNode,
    Source,
    TrustRequired,
)
from tensor_inspector.backends.onnx.branches import BranchPath, evaluate_in_branch, node_outputs
from tensor_inspector.backends.onnx.listing import list_model, numpy_name, type_info
from tensor_inspector.backends.onnx.model import (
    EXTERNAL,
    all_tensors,
    disallowed_ops,
    external_info,
    load_model,
    trust_sentence,
)
from tensor_inspector.backends.onnx.qdq import qdq_views
from tensor_inspector.backends.onnx.runtime import Runner
from tensor_inspector.backends.onnx.tensors import TensorReader, tensor_meta
from tensor_inspector.backends.onnx.write import write_model


class OnnxSource(Source):
    backend_name = "onnx"
    format_name = "ONNX"
    writable = True

    def __init__(self, path: Path, trust: bool = False):
        super().__init__(path)
        self.trusted = trust
        self.model = load_model(self.path)
        folder = self.path.absolute().parent
        name = self.path.name
        for tensor in all_tensors(self.model):  # refuse escaping paths before anything is read
            if tensor.data_location == EXTERNAL:
                external_info(tensor, folder, name)
        self.reader = TensorReader(folder, name)
        self.listing = list_model(self.model, lambda t: tensor_meta(t, folder, name), type_info(self.model))
        paired = qdq_views(self.model, self.listing.tensors, lambda t: self.reader.read(t, None))
        self.graph_id = self._add(_graph_node(self.model.graph, {n.id for n in self.listing.nodes})).id
        for node in self.listing.nodes:
            extra = paired.get(node.id)
            self._add(replace(node, metadata={**node.metadata, **extra}) if extra else node)
        graph = self.model.graph
        initialized = {t.name for t in graph.initializer}
        self._inputs = [i for i in graph.input if i.name not in initialized]
        self._untrusted_ops = disallowed_ops(self.model)
        self._runner: Runner | None = None
        self._branch_runners: dict[BranchPath, Runner] = {}
        self.metadata = _model_metadata(self.model)

    # -- values -------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        tensor = self.listing.tensors.get(node.id)
        if tensor is None:
            raise NotEvaluable(f"{node.id!r} has no stored value.")
        return self.reader.read(tensor, index)

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        needed: frozenset[str] | None = None
        if node_id is not None and node_id in self.listing.computed:
            needed = self.listing.computed[node_id].feeds
        specs = []
        for vi in self._inputs:
            if needed is not None and vi.name not in needed:
                continue
            dtype, shape = "float32", None
            if vi.type.HasField("tensor_type"):
                tt = vi.type.tensor_type
                dtype = numpy_name(tt.elem_type) or dtype
                if tt.HasField("shape"):
                    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            specs.append(FeedSpec(vi.name, dtype, shape, description=_dims_text(vi)))
        return specs

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        computed = self.listing.computed.get(node.id)
        if computed is None:
            raise NotEvaluable(f"{node.id!r} is not a value of the graph.")
        if computed.why_not:
            raise NotEvaluable(f"{node.id!r} cannot be evaluated: {computed.why_not}.")
        typed = self._run_feeds(feeds)
        if computed.branch:
            return evaluate_in_branch(self.model, computed.branch, computed.value, typed, self._runner_for)
        return self._runner_for((), self.model).run(computed.value, typed)

    def _run_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every graph input, typed: one run answers all nodes, so the missing take defaults."""
        if self._untrusted_ops and not self.trusted:
            raise TrustRequired(trust_sentence(self.path.name, self._untrusted_ops), self._untrusted_ops)
        used = {**self.default_feeds(None), **feeds}
        return {spec.name: _typed_feed(spec, used[spec.name]) for spec in self.feed_specs(None)}

    # -- tracing --------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        return [self.graph_id]

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        """One run of the main graph (``onnx.trace``): top-level values and those of the If
        branches taken; Loop and Scan bodies, which run once per step, are not traced."""
        from tensor_inspector.backends.onnx.trace import trace_model

        if entry != self.graph_id:
            raise NotEvaluable(f"{entry!r} is not the graph of this model; trace {self.graph_id!r}.")
        with self.lock:
            typed = self._run_feeds(feeds)
            folder = self.reader.folder
            trace_model(
                self.model,
                self.listing,
                self._nodes,
                lambda model, outputs: Runner(model, folder, outputs, arena=False),
                typed,
                on_node,
                cancel,
                reusable=self._runner,
            )

    def _runner_for(self, branch: BranchPath, model: Any) -> Runner:
        """The runner of the top-level model (``()``) or of a copy with If branches inlined."""
        if not branch:
            if self._runner is None:
                self._runner = Runner(self.model, self.reader.folder, self.listing.main_outputs)
            return self._runner
        if branch not in self._branch_runners:
            if len(self._branch_runners) >= 8:  # each holds a copy of the model
                self._branch_runners.pop(next(iter(self._branch_runners))).close()
            self._branch_runners[branch] = Runner(model, self.reader.folder, node_outputs(model))
        return self._branch_runners[branch]

    # -- writing ------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        write_model(self.model, self.reader, Path(path), replacements, self.path.name)

    def close(self) -> None:
        self.reader.close()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        for runner in self._branch_runners.values():
            runner.close()
        self._branch_runners.clear()


def _graph_node(graph: Any, taken: set[str]) -> Node:
    """The main graph as a signature node: what a trace runs, with its inputs and outputs."""
    node_id, k = graph.name or "graph", 1
    while node_id in taken:
        node_id, k = f"{graph.name or 'graph'}~{k}", k + 1
    initialized = {t.name for t in graph.initializer}
    meta = {
        "inputs": ", ".join(i.name for i in graph.input if i.name not in initialized),
        "outputs": ", ".join(o.name for o in graph.output),
    }
    return Node(id=node_id, name=graph.name or "graph", kind=NodeKind.SIGNATURE, metadata=meta)


def _typed_feed(spec: FeedSpec, value: np.ndarray) -> np.ndarray:
    """``value`` as the input's element type: a float64 array for a float32 input is cast,
    a float for an integer input is refused (it would be truncated)."""
    value = np.asarray(value)
    if spec.dtype == "str":
        return value.astype(object)
    want = np.dtype(spec.dtype)
    if value.dtype == want:
        return value
    if not np.can_cast(value.dtype, want, casting="same_kind"):
        raise InspectorError(f"Input {spec.name!r} takes {want}; the value given is {value.dtype}.")
    return value.astype(want)


def _dims_text(vi: Any) -> str:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return ""
    dims = [
        d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
        for d in vi.type.tensor_type.shape.dim
    ]
    return "[" + ", ".join(dims) + "]"


def _model_metadata(model: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"ir_version": int(model.ir_version)}
    if model.producer_name:
        meta["producer"] = f"{model.producer_name} {model.producer_version}".strip()
    meta["opsets"] = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    if model.doc_string:
        meta["doc"] = model.doc_string
    for prop in model.metadata_props:
        meta[prop.key] = prop.value
    return meta
