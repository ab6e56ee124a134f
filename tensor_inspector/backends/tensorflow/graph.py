"""Static listing of a SavedModel signature's computation, without running anything.

TF2 signatures call a ``__inference_signature_wrapper_*`` function whose body
calls further functions. Evaluation freezes the signature
(``convert_variables_to_constants_v2``), which inlines every call and names the
inlined op ``<call op>/<inner op>``; this module walks the function library the
same way, so each listed name is the op's name in the frozen graph. Functions are
turned into graphs with ``function_def_to_graph`` (graph construction only, no
execution) for output dtypes and inferred shapes. TF1 signatures list the ops of
the top-level graph their outputs depend on. Each op output also records which
signature inputs it depends on (its feeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tensor_inspector.backends.tensorflow.common import import_tf, shape_of

CALL_OPS = {"StatefulPartitionedCall", "PartitionedCall"}
WRAPPER_PREFIX = "__inference_signature_wrapper"


@dataclass
class OpOutput:
    """One op output of a signature's graph, named as in the graph that evaluates it."""

    name: str  # "StatefulPartitionedCall/mul:0"
    op_type: str
    tf_dtype: Any
    shape: tuple[int | None, ...] | None
    feeds: frozenset[str]  # signature input keys it depends on
    const: Any = None  # TensorProto for Const ops (read with tf.make_ndarray)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignatureGraph:
    key: str
    mode: str  # "tf2" (frozen function) or "tf1" (session graph)
    inputs: dict[str, Any]  # key -> TensorInfo
    outputs: dict[str, Any]  # key -> TensorInfo
    ops: list[OpOutput] = field(default_factory=list)
    output_names: dict[str, str] = field(default_factory=dict)  # output key -> op output name
    feed_names: dict[str, str] = field(default_factory=dict)  # input key -> placeholder tensor name
    error: str | None = None


class _Flattener:
    """Inline the calls of a TF2 signature wrapper, as Grappler's function inlining names them."""

    def __init__(self, graph: Any, library: dict[str, Any], out: list[OpOutput]):
        self.graph = graph
        self.library = library
        self.out = out
        self.func_graphs: dict[str, Any] = {}
        self.feeds_of: dict[str, frozenset[str]] = {}

    def func_graph(self, name: str) -> Any:
        if name not in self.func_graphs:
            from tensorflow.python.framework.function_def_to_graph import function_def_to_graph

            fdef = self.library[name]
            with self.graph.as_default():
                self.func_graphs[name] = function_def_to_graph(fdef)
        return self.func_graphs[name]

    def walk(
        self, fname: str, prefix: str, args: list[tuple[str, frozenset[str]]], depth: int = 0
    ) -> list[tuple[str, frozenset[str]]]:
        """List ops of ``fname`` under ``prefix``; ``args`` are (flat tensor name, feeds) of its inputs.

        Returns the (flat name, feeds) of the function's outputs.
        """
        fg = self.func_graph(fname)
        arg_index = {t.name: i for i, t in enumerate(fg.inputs)}
        resolved: dict[str, tuple[str, frozenset[str]]] = {}

        def resolve(tensor: Any) -> tuple[str, frozenset[str]]:
            if tensor.name in arg_index:
                return args[arg_index[tensor.name]]
            return resolved.get(tensor.name, (prefix + tensor.name, frozenset()))

        for op in fg.get_operations():
            if op.type == "Placeholder" and op.outputs and op.outputs[0].name in arg_index:
                continue
            inputs = [resolve(t) for t in op.inputs]
            feeds = frozenset().union(*(f for _, f in inputs)) if inputs else frozenset()
            if op.type in CALL_OPS and depth < 64:
                inner = op.get_attr("f").name
                outs = self.walk(inner, f"{prefix}{op.name}/", inputs, depth + 1)
                for tensor, result in zip(op.outputs, outs):
                    resolved[tensor.name] = result
                continue
            const = op.get_attr("value") if op.type == "Const" else None
            for tensor in op.outputs:
                name = prefix + tensor.name
                resolved[tensor.name] = (name, feeds)
                self.out.append(OpOutput(name, op.type, tensor.dtype, shape_of(tensor.shape), feeds, const))
        return [resolve(t) for t in fg.outputs]


def _import(graph_def: Any) -> Any:
    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return graph


def list_signatures(meta_graph: Any) -> list[SignatureGraph]:
    """Every signature (except the init op) with the op outputs of its computation."""
    result = []
    graph = None
    graph_error = None
    library = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    try:
        graph = _import(meta_graph.graph_def)
    except Exception as exc:
        graph_error = f"TensorFlow cannot build this graph: {str(exc).splitlines()[0]}"
    for key, sig in meta_graph.signature_def.items():
        if key.startswith("__saved_model_init_op"):
            continue
        entry = SignatureGraph(key, "tf1", dict(sig.inputs), dict(sig.outputs))
        result.append(entry)
        if graph is None:
            entry.error = graph_error
            continue
        try:
            _fill(graph, library, entry)
        except Exception as exc:
            entry.ops = []
            entry.error = f"The graph of signature {key!r} could not be listed: {str(exc).splitlines()[0]}"
    return result


def _fill(graph: Any, library: dict[str, Any], entry: SignatureGraph) -> None:
    out_ops = {graph.get_tensor_by_name(info.name).op for info in entry.outputs.values() if info.name}
    feed_by_tensor = {info.name: key for key, info in entry.inputs.items() if info.name}
    if len(out_ops) == 1:
        call = next(iter(out_ops))
        if call.type in CALL_OPS and call.get_attr("f").name.startswith(WRAPPER_PREFIX):
            _fill_tf2(graph, library, entry, call, feed_by_tensor)
            return
    _fill_tf1(graph, entry, feed_by_tensor)


def _fill_tf2(
    graph: Any, library: dict[str, Any], entry: SignatureGraph, call: Any, feed_by_tensor: dict[str, str]
) -> None:
    entry.mode = "tf2"
    flattener = _Flattener(graph, library, entry.ops)
    wrapper = flattener.func_graph(call.get_attr("f").name)
    args = []
    for tensor, arg in zip(call.inputs, wrapper.inputs):
        arg_name = arg.name  # the frozen graph keeps the wrapper's argument names
        if tensor.name in feed_by_tensor:
            key = feed_by_tensor[tensor.name]
            entry.feed_names[key] = arg_name
            args.append((arg_name, frozenset([key])))
        else:
            # A captured variable or constant: a Const holding its value once frozen.
            args.append((arg_name, frozenset()))
            source = tensor.op
            dtype = source.get_attr("dtype") if source.type == "VarHandleOp" else tensor.dtype
            shape = (
                shape_of(source.get_attr("shape")) if source.type == "VarHandleOp" else shape_of(tensor.shape)
            )
            const = source.get_attr("value") if source.type == "Const" else None
            entry.ops.append(
                OpOutput(arg_name, "Const", dtype, shape, frozenset(), const, {"captured": source.name})
            )
    outs = flattener.walk(call.get_attr("f").name, "", args)
    by_index = {int(info.name.rsplit(":", 1)[1]): key for key, info in entry.outputs.items()}
    for index, (name, _feeds) in enumerate(outs):
        if index in by_index:
            entry.output_names[by_index[index]] = name


def _fill_tf1(graph: Any, entry: SignatureGraph, feed_by_tensor: dict[str, str]) -> None:
    entry.mode = "tf1"
    entry.feed_names = {key: name for name, key in feed_by_tensor.items()}
    entry.output_names = {key: info.name for key, info in entry.outputs.items() if info.name}
    targets = [graph.get_tensor_by_name(name).op for name in entry.output_names.values()]
    seen: dict[str, Any] = {}
    stack = list(targets)
    while stack:  # the ops the outputs depend on
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
    feeds: dict[str, frozenset[str]] = {}
    for op in graph.get_operations():  # graph order is a topological order
        if op.name not in seen:
            continue
        own = (
            frozenset().union(*(feeds.get(t.name, frozenset()) for t in op.inputs))
            if op.inputs
            else frozenset()
        )
        for tensor in op.outputs:
            if tensor.name in feed_by_tensor:
                feeds[tensor.name] = frozenset([feed_by_tensor[tensor.name]])
                continue
            feeds[tensor.name] = own
            const = op.get_attr("value") if op.type == "Const" else None
            entry.ops.append(OpOutput(tensor.name, op.type, tensor.dtype, shape_of(tensor.shape), own, const))
