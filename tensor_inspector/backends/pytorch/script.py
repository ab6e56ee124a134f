"""TorchScript archives (torch.jit.save): parameters, buffers and the forward graph.

A TorchScript archive contains code that runs when it is loaded, so opening one
needs the user's trust. The forward graph is inlined once (submodule calls become their
nodes); every tensor value in it, inside ``prim::If`` / ``prim::Loop`` blocks too, is
listed under the module it comes from (``script_graph``, ``script_tree``) and evaluated by
running an instrumented copy of the graph up to it (``script_probe``).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    CorruptFile,
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
from tensor_inspector.backends.pytorch import script_inputs
from tensor_inspector.backends.pytorch.script_graph import GraphValue

GRAPH_GROUP = "forward"


class ScriptSource(Source):
    backend_name = "torch"
    format_name = "TorchScript"
    writable = True

    def __init__(self, path: Path, module: Any):
        super().__init__(path)
        self._module = module
        self._tensors: dict[str, Any] = {}
        self._values: dict[str, GraphValue] = {}  # computed node id -> where it is in the graph
        self._graph: Any = None  # the inlined forward graph the values were found in
        self._arguments: list[script_inputs.Argument] = []
        self._traced: Any = None  # script_trace.InstrumentedForward, made on the first trace
        self._build()

    def _build(self) -> None:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        module = self._module
        parameters = dict(module.named_parameters())
        for name, tensor in list(parameters.items()) + list(module.named_buffers()):
            if name in self._tensors:
                continue
            self._tensors[name] = tensor
            info = torch_convert.tensor_info(tensor)
            info["metadata"]["parameter"] = name in parameters
            self._add(Node(id=name, name=name, kind=NodeKind.TENSOR, **info))
        if not hasattr(module, "forward"):
            return
        self._build_graph()

    def _build_graph(self) -> None:
        from tensor_inspector.backends.pytorch.script_graph import ModuleNames, tensor_values
        from tensor_inspector.backends.pytorch.script_tree import layout

        # inlined_graph is a fresh inlined copy of forward's graph (torch._C._jit_pass_inline)
        self._graph = self._module.inlined_graph
        self._arguments = script_inputs.arguments(self._module.forward, self._graph)
        self._add(
            Node(
                id=GRAPH_GROUP,
                name="forward graph",
                kind=NodeKind.GROUP,
                metadata={"inputs": [spec.name for spec in self.feed_specs()]},
            )
        )
        for entry in layout(GRAPH_GROUP, tensor_values(self._graph, ModuleNames(self._module))):
            if entry.value is None:
                self._add(
                    Node(
                        id=entry.id,
                        name=entry.name,
                        kind=NodeKind.GROUP,
                        parent=entry.parent,
                        metadata=entry.metadata,
                    )
                )
                continue
            self._values[entry.id] = entry.value
            self._add(
                Node(
                    id=entry.id,
                    name=entry.name,
                    kind=NodeKind.COMPUTED,
                    parent=entry.parent,
                    dtype=None,
                    framework_dtype=entry.value.scalar_type,
                    shape=None,
                    metadata=entry.metadata,
                )
            )

    # -- values -------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        if node.id not in self._tensors:
            raise NotEvaluable(f"{node.id!r} has no stored value.")
        return torch_convert.to_numpy(self._tensors[node.id], index)

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        return [arg.spec for arg in self._arguments if arg.spec is not None]

    def default_feeds(self, node_id: str | None = None) -> dict[str, np.ndarray]:
        """Zeros, except where forward declares a default (``sr: int = 16000``).

        An argument whose default is None (``mask: Optional[Tensor] = None``) gets no feed:
        the method then runs with None, as its callers usually do; a made-up mask of zeros
        would fail the model's own shape checks.
        """
        feeds = super().default_feeds(node_id)
        for arg in self._arguments:
            default = script_inputs.default_feed(arg)
            if default is not None:
                feeds[arg.name] = default
            elif arg.has_default and arg.default is None:
                feeds.pop(arg.name, None)
        return feeds

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from tensor_inspector.backends.pytorch import convert as torch_convert
        from tensor_inspector.backends.pytorch import script_probe

        if self._module is None:
            raise InspectorError("This file has been closed.")
        value = self._values[node.id]
        missing = script_inputs.unfeedable(self._arguments)
        if missing:
            raise NotEvaluable(f"The forward method takes inputs that cannot be fed: {', '.join(missing)}.")
        args = script_inputs.call_values(self._arguments, {**self.default_feeds(node.id), **feeds})
        names = [arg.name for arg in self._arguments if arg.spec is not None]
        result = script_probe.run_to(self._module, self._graph, value, args, names, node.name)
        if not isinstance(result, torch.Tensor):
            raise NotEvaluable(f"{node.id!r} is not a tensor value.")
        return torch_convert.to_numpy(result)

    # -- tracing ------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        # the archive was loaded on open (with the user's trust): nothing more to read here
        return [GRAPH_GROUP] if self._graph is not None else []

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        from tensor_inspector.backends.pytorch import script_trace

        if entry not in self.trace_entries():
            raise NotEvaluable(f"{entry!r} is not the forward graph of this file.")
        if self._module is None:
            raise InspectorError("This file has been closed.")
        with self.lock:
            missing = script_inputs.unfeedable(self._arguments)
            if missing:
                raise NotEvaluable(
                    f"The forward method takes inputs that cannot be fed: {', '.join(missing)}."
                )
            args = script_inputs.call_values(self._arguments, {**self.default_feeds(entry), **feeds})
            names = [arg.name for arg in self._arguments if arg.spec is not None]
            if self._traced is None:
                self._traced = script_trace.InstrumentedForward(self._graph, self._values)
            script_trace.trace_forward(self._module, self._traced, args, names, on_node, cancel)

    # -- writing ------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        import torch

        from tensor_inspector.backends.pytorch import convert as torch_convert

        # opened with trust already; torch.jit.load is not annotated in torch
        fresh = torch.jit.load(str(self.path), map_location="cpu")  # type: ignore[no-untyped-call]
        targets = dict(fresh.named_parameters())
        targets.update(dict(fresh.named_buffers()))
        with torch.no_grad():
            for node_id, array in replacements.items():
                old = targets[node_id]
                old.copy_(torch_convert.from_numpy(array, old.detach()))
        torch.jit.save(fresh, str(path))

    def close(self) -> None:
        self._module = None
        self._graph = None
        self._traced = None
        self._tensors = {}
        import gc

        gc.collect()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0][:200] if lines else type(exc).__name__).rstrip(".")


def open_script(path: Path, trust: bool) -> ScriptSource:
    if not trust:
        raise TrustRequired(
            f"{path.name} is a TorchScript archive: it contains code that runs when it is "
            "loaded, so open it only if you trust where it came from.",
            ["TorchScript code"],
        )
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # torch.jit.load is not annotated in torch
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise CorruptFile(f"{path.name} could not be loaded as TorchScript: {_first_line(exc)}.") from None
    source = ScriptSource(path, module)
    source.trusted = True  # a re-open (verification after saving) uses the same trust
    return source
