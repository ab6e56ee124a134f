"""The tree of an ONNX model: initializers as stored tensors, node outputs as computed values.

Ids are the model's own value names (unique in a graph by ONNX's single-assignment rule), so
``model.onnx::/conv1/Conv_output_0`` names what onnxruntime and Netron call it. Nodes with
subgraphs (``If`` branches, ``Loop``/``Scan`` bodies) become groups holding their outputs and
one group per subgraph, whose values are ``<node group>/<attribute>/<value name>``.

The walk is deterministic, so the writer walks its copy of the model the same way to find
each initializer by id (``tensor_ids``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tensor_inspector.backends.base import Node, NodeKind
from tensor_inspector.backends.onnx.branches import BranchPath
from tensor_inspector.backends.onnx.model import EXTERNAL, STANDARD_DOMAINS, subgraphs

INITIALIZERS = "initializers"


@dataclass
class Computed:
    """How to evaluate a listed node output."""

    value: str  # the output's name in its graph
    feeds: frozenset[str]  # graph inputs it depends on
    why_not: str | None = None  # a sentence when one run gives it no value (inside a loop body)
    branch: BranchPath = ()  # the If branches it lives in (``branches.evaluate_in_branch``)


@dataclass
class Listing:
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, Any] = field(default_factory=dict)  # id -> TensorProto
    computed: dict[str, Computed] = field(default_factory=dict)
    main_outputs: list[str] = field(default_factory=list)  # node outputs of the top-level graph
    _ids: set[str] = field(default_factory=set)

    def unique(self, wanted: str) -> str:
        node_id, k = wanted, 1
        while node_id in self._ids:
            node_id, k = f"{wanted}~{k}", k + 1
        self._ids.add(node_id)
        return node_id


def type_info(
    model: Any, input_shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, tuple[int, tuple[int | None, ...] | None] | str]:
    """name -> (elem_type, shape) for tensors, or a type description, from shape inference.

    Large initializers are marked external in the copy given to inference, so inference
    never copies weights; its failures (unknown custom ops) only leave types unknown.
    ``input_shapes`` fixes graph inputs to the shapes of actual feeds, so symbolic
    dimensions (a batch) become numbers wherever inference can carry them.
    """
    import onnx

    # Built field by field: CopyFrom would copy every inline weight, and reading raw_data
    # copies it too, so tensors are judged by ByteSize.
    light = onnx.ModelProto(ir_version=model.ir_version)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, source = light.graph, model.graph
    for name in ("node", "input", "output", "value_info"):
        getattr(graph, name).extend(getattr(source, name))
    for vi in graph.input:
        fixed = (input_shapes or {}).get(vi.name)
        if fixed is not None and vi.type.HasField("tensor_type"):
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for size in fixed:
                dims.add(dim_value=int(size))
    for tensor in source.initializer:
        if tensor.ByteSize() <= 1024:
            graph.initializer.add().CopyFrom(tensor)
            continue
        stub = graph.initializer.add(name=tensor.name, data_type=tensor.data_type, data_location=EXTERNAL)
        stub.dims.extend(tensor.dims)
        stub.external_data.add(key="location", value="unread")
    try:
        light = onnx.shape_inference.infer_shapes(light, strict_mode=False)
    except Exception:  # types stay those the file declares
        pass
    found: dict[str, tuple[int, tuple[int | None, ...] | None] | str] = {}

    def collect(graph: Any) -> None:
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            found[vi.name] = _type_of(vi.type)
        for node in graph.node:
            for _, sub in subgraphs(node):
                collect(sub)

    collect(light.graph)
    return found


def _type_of(tp: Any) -> tuple[int, tuple[int | None, ...] | None] | str:
    if tp.HasField("tensor_type"):
        tt = tp.tensor_type
        shape = (
            tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
            if tt.HasField("shape")
            else None
        )
        return (tt.elem_type, shape)
    return tp.WhichOneof("value") or "unknown type"


def tensor_ids(model: Any) -> dict[str, Any]:
    """id -> TensorProto of every listed initializer of ``model`` (as ``list_model`` names them)."""
    return list_model(model, lambda t: {"kind": NodeKind.TENSOR}, {}).tensors


def list_model(
    model: Any,
    tensor_meta: Callable[[Any], dict[str, Any]],
    types: dict[str, Any],
) -> Listing:
    """Walk ``model``; ``tensor_meta(tensor)`` gives a stored tensor's node fields."""
    out = Listing()
    graph = model.graph
    inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    deps: dict[str, frozenset[str]] = {name: frozenset([name]) for name in inputs}
    for tensor in graph.initializer:
        out._ids.add(tensor.name)
    for node in graph.node:
        out._ids.update(o for o in node.output if o)
    if graph.initializer:
        group = out.unique(INITIALIZERS)
        out.nodes.append(Node(id=group, name=INITIALIZERS, kind=NodeKind.GROUP))
        for tensor in graph.initializer:
            out.nodes.append(Node(id=tensor.name, name=tensor.name, parent=group, **tensor_meta(tensor)))
            out.tensors[tensor.name] = tensor
    _list_nodes(out, graph.node, None, "", deps, None, tensor_meta, types, (), 0)
    return out


def outer_names(graph: Any) -> set[str]:
    """Names a subgraph (and its subgraphs) reads: outer-scope values among them."""
    names: set[str] = set()
    for node in graph.node:
        names.update(i for i in node.input if i)
        for _, sub in subgraphs(node):
            names |= outer_names(sub)
    return names


def _list_nodes(
    out: Listing,
    nodes: Any,
    parent: str | None,
    prefix: str,
    deps: dict[str, frozenset[str]],
    why_not: str | None,
    tensor_meta: Callable[[Any], dict[str, Any]],
    types: dict[str, Any],
    path: BranchPath,
    offset: int,
) -> None:
    """List ``nodes``; inside If branches, ``path`` leads there and ``offset`` is where the
    branch's nodes start once the enclosing Ifs are inlined (``branches.inline_branch``)."""
    for index, node in enumerate(nodes):
        subs = subgraphs(node)
        read = {i for i in node.input if i}
        for _, sub in subs:
            read |= outer_names(sub)
        needs = frozenset().union(*(deps.get(name, frozenset()) for name in read))
        holder = parent
        if subs:
            label = node.name or f"{node.op_type}_{index}"
            holder = out.unique(prefix + label)
            out.nodes.append(
                Node(id=holder, name=label, kind=NodeKind.GROUP, parent=parent, metadata=_node_meta(node))
            )
        for name in node.output:
            if not name:
                continue
            deps[name] = needs
            node_id = name if not prefix else out.unique(prefix + name)
            out.nodes.append(_computed_node(node_id, name, holder, node, types))
            out.computed[node_id] = Computed(name, needs, why_not, path)
            if not prefix:
                out.main_outputs.append(name)
        for attr, sub in subs:
            group = out.unique(f"{holder}/{attr}")
            out.nodes.append(Node(id=group, name=attr, kind=NodeKind.GROUP, parent=holder))
            inner = f"{group}/"
            for tensor in sub.initializer:
                tid = out.unique(inner + tensor.name)
                out.nodes.append(Node(id=tid, name=tensor.name, parent=group, **tensor_meta(tensor)))
                out.tensors[tid] = tensor
            sub_deps = dict(deps)
            for arg in sub.input:  # loop counters and carried state: fed by the node itself
                sub_deps[arg.name] = needs
            if why_not is None and node.op_type == "If" and node.domain in STANDARD_DOMAINS:
                where = offset + index
                _list_nodes(
                    out,
                    sub.node,
                    group,
                    inner,
                    sub_deps,
                    None,
                    tensor_meta,
                    types,
                    (*path, (where, attr)),
                    where,
                )
                continue
            reason = why_not or (
                f"it is computed inside the {attr} of {node.op_type} node {node.name or node.output[0]!r}, "
                "which runs once per step, so one run of the model gives it no single value"
            )
            _list_nodes(out, sub.node, group, inner, sub_deps, reason, tensor_meta, types, path, offset)


def _node_meta(node: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"op": node.op_type if not node.domain else f"{node.domain}::{node.op_type}"}
    if node.name:
        meta["node"] = node.name
    meta["inputs"] = ", ".join(i or "(none)" for i in node.input)
    return meta


def _computed_node(node_id: str, name: str, parent: str | None, node: Any, types: dict[str, Any]) -> Node:
    import onnx

    meta = _node_meta(node)
    dtype = framework_dtype = None
    shape = None
    info = types.get(name)
    if isinstance(info, tuple):
        elem, shape = info
        if elem:
            framework_dtype = onnx.TensorProto.DataType.Name(elem).lower()
            dtype = numpy_name(elem)
    elif isinstance(info, str):
        meta["type"] = info
    return Node(
        id=node_id,
        name=name,
        kind=NodeKind.COMPUTED,
        parent=parent,
        dtype=dtype,
        framework_dtype=framework_dtype,
        shape=shape,
        metadata=meta,
    )


def numpy_name(elem_type: int) -> str | None:
    """numpy's name for an ONNX element type ("str" for strings), None if numpy has none."""
    import onnx

    if elem_type == onnx.TensorProto.STRING:
        return "str"
    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        return None
