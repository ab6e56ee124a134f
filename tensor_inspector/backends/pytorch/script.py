"""TorchScript archives (torch.jit.save): parameters, buffers and the forward graph.

A TorchScript archive contains code that runs when it is loaded, so opening one
needs the user's trust. Graph nodes are evaluated by copying the inlined forward
graph, making the chosen value its only output and running that graph on the module.
"""

from __future__ import annotations

import warnings
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
    Source,
    TrustRequired,
)

GRAPH_GROUP = "forward"
# forward() argument types a feed can supply -> the numpy dtype of that feed
_FEEDABLE = {"Tensor": "float32", "int": "int64", "float": "float64", "bool": "bool"}
_SKIPPED_OPS = {"prim::GetAttr", "prim::Constant"}


class ScriptSource(Source):
    backend_name = "torch"
    format_name = "TorchScript"
    writable = True

    def __init__(self, path: Path, module: Any):
        super().__init__(path)
        self._module = module
        self._tensors: dict[str, Any] = {}
        self._positions: dict[str, tuple[int, int]] = {}  # node id -> (node index, output index)
        self._inputs: list[FeedSpec] = []
        self._unfeedable: list[str] = []
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
        import torch

        schema_args = module.forward.schema.arguments[1:]  # skip self
        for arg in schema_args:
            kind = "Tensor" if isinstance(arg.type, torch._C.TensorType) else str(arg.type)
            if kind not in _FEEDABLE:
                self._unfeedable.append(f"{arg.name} ({kind})")
                continue
            self._inputs.append(FeedSpec(name=arg.name, dtype=_FEEDABLE[kind], shape=None, description=kind))
        graph = module.inlined_graph
        self._add(
            Node(
                id=GRAPH_GROUP,
                name="forward graph",
                kind=NodeKind.GROUP,
                metadata={"inputs": [spec.name for spec in self._inputs]},
            )
        )
        for index, graph_node in enumerate(graph.nodes()):
            kind = graph_node.kind()
            if kind in _SKIPPED_OPS:
                continue
            for out_index, value in enumerate(graph_node.outputs()):
                if not isinstance(value.type(), torch._C.TensorType):
                    continue
                node_id = f"{GRAPH_GROUP}/{value.debugName()}"
                self._positions[node_id] = (index, out_index)
                scalar = value.type().scalarType()
                self._add(
                    Node(
                        id=node_id,
                        name=value.debugName(),
                        kind=NodeKind.COMPUTED,
                        parent=GRAPH_GROUP,
                        dtype=None,
                        framework_dtype=scalar,
                        shape=None,
                        metadata={"op": kind, "source": _source_line(graph_node)},
                    )
                )

    # -- values -------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        from tensor_inspector.backends.pytorch import convert as torch_convert

        if node.id not in self._tensors:
            raise NotEvaluable(f"{node.id!r} has no stored value.")
        return torch_convert.to_numpy(self._tensors[node.id], index)

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        return list(self._inputs)

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        from tensor_inspector.backends.pytorch import convert as torch_convert

        if self._module is None:
            raise InspectorError("This file has been closed.")
        node_index, out_index = self._positions[node.id]
        graph = self._module.inlined_graph.copy()
        target = list(list(graph.nodes())[node_index].outputs())[out_index]
        while len(list(graph.outputs())):
            graph.eraseOutput(0)
        graph.registerOutput(target)
        torch._C._jit_pass_dce(graph)
        probe = torch._C._create_function_from_graph("tensor_inspector_probe", graph)
        if self._unfeedable:
            raise NotEvaluable(
                f"The forward method takes inputs that cannot be fed: {', '.join(self._unfeedable)}."
            )
        defaults = self.default_feeds(node.id)
        args: list[Any] = []
        for spec in self._inputs:
            value = np.asarray(feeds[spec.name] if spec.name in feeds else defaults[spec.name])
            if spec.description == "Tensor":
                args.append(torch_convert.tensor_from_array(value))
            else:
                args.append(value.astype(spec.dtype).item())
        try:
            with torch.no_grad():
                result = probe(self._module._c, *args)
        except Exception as exc:
            raise InspectorError(
                f"Running the TorchScript graph up to {node.name!r} failed: "
                f"{_first_line(exc)} (check the input shapes: {', '.join(s.name for s in self._inputs)})."
            ) from None
        if not isinstance(result, torch.Tensor):
            raise NotEvaluable(f"{node.id!r} is not a tensor value.")
        return torch_convert.to_numpy(result)

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
        self._tensors = {}
        import gc

        gc.collect()


def _source_line(graph_node: Any) -> str:
    try:
        text = graph_node.sourceRange().strip().splitlines()
        return text[0][:160] if text else ""
    except Exception:
        return ""


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
