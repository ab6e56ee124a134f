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

Functional control flow (``If``/``While``/``Case`` and their stateless forms) is
listed too: the ops of each branch or loop function appear under
``<op>/then/``, ``<op>/else/``, ``<op>/cond/``, ``<op>/body/``, ``<op>/branch<k>/``,
the names freezing gives them once it lowers the op to Switch/Merge (up to a
``_<n>`` segment the runner resolves). Ops of a loop's body or condition run once
per iteration, so a Session cannot fetch them: they carry a ``loop`` sentence saying
so, and TF1 graphs' ``while_loop`` frames are found the same way (Enter/Exit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tensor_inspector.backends.tensorflow.common import import_tf, shape_of
from tensor_inspector.backends.tensorflow.objgraph import captured_objects

CALL_OPS = {"StatefulPartitionedCall", "PartitionedCall"}
WRAPPER_PREFIX = "__inference_signature_wrapper"
# Control-flow op type -> (function attributes and the labels lowering names them by).
BRANCHES = {
    "If": (("then_branch", "then"), ("else_branch", "else")),
    "StatelessIf": (("then_branch", "then"), ("else_branch", "else")),
    "While": (("cond", "cond"), ("body", "body")),
    "StatelessWhile": (("cond", "cond"), ("body", "body")),
}
CASE_OPS = {"Case", "StatelessCase"}
LOOP_OPS = {"While", "StatelessWhile"}
CONTROL_FLOW_OPS = set(BRANCHES) | CASE_OPS
# Lowered into ops the runner can find for each output (Exit per loop variable, Merge per If output).
LOWERED_BY_NAME = set(BRANCHES)


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
    region: str | None = None  # "<op>/then": the branch or loop function it lives in
    owner: str | None = None  # first output of the control-flow op whose function holds it
    unfetchable: str | None = None  # why a Session cannot fetch it (inside a loop, ...), else None
    via: tuple[str, int] | None = None  # a control-flow output: (op reading it, input index)
    # A While/If output no plain op reads: (the op's input names, its number of outputs),
    # from which the runner finds the Exit or Merge op lowering made for it (see runtime).
    lowered_from: tuple[tuple[str, ...], int] | None = None


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
    call_name: str | None = None  # TF2: the top-level call op of the saved graph
    captured: dict[str, str] = field(default_factory=dict)  # listed capture name -> top-level tensor


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
        self,
        fname: str,
        prefix: str,
        args: list[tuple[str, frozenset[str]]],
        depth: int = 0,
        place: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> list[tuple[str, frozenset[str]]]:
        """List ops of ``fname`` under ``prefix``; ``args`` are (flat tensor name, feeds) of its inputs.

        ``place`` is (region, owner, loop) of a branch or loop function (see OpOutput).
        Returns the (flat name, feeds) of the function's outputs.
        """
        fg = self.func_graph(fname)
        arg_index = {t.name: i for i, t in enumerate(fg.inputs)}
        resolved: dict[str, tuple[str, frozenset[str]]] = {}
        region, owner, loop = place

        def resolve(tensor: Any) -> tuple[str, frozenset[str]]:
            if tensor.name in arg_index and arg_index[tensor.name] < len(args):
                return args[arg_index[tensor.name]]
            return resolved.get(tensor.name, (prefix + tensor.name, frozenset()))

        for op in fg.get_operations():
            if op.type == "Placeholder" and op.outputs and op.outputs[0].name in arg_index:
                continue
            inputs = [resolve(t) for t in op.inputs]
            feeds = frozenset().union(*(f for _, f in inputs)) if inputs else frozenset()
            if op.type in CALL_OPS and depth < 64:
                inner = op.get_attr("f").name
                outs = self.walk(inner, f"{prefix}{op.name}/", inputs, depth + 1, place)
                for tensor, result in zip(op.outputs, outs):
                    resolved[tensor.name] = result
                continue
            const = op.get_attr("value") if op.type == "Const" else None
            for tensor in op.outputs:
                name = prefix + tensor.name
                resolved[tensor.name] = (name, feeds)
                output = OpOutput(
                    name, op.type, tensor.dtype, shape_of(tensor.shape), feeds, const, {}, region, owner, loop
                )
                if op.type in CONTROL_FLOW_OPS:
                    output.via, why = _reader_of(tensor, prefix)
                    if output.via is None and op.type in LOWERED_BY_NAME:
                        output.lowered_from = (tuple(name for name, _ in inputs), len(op.outputs))
                    else:
                        output.unfetchable = output.unfetchable or why
                self.out.append(output)
            if depth < 64 and op.outputs:
                self.walk_branches(op, prefix, inputs, feeds, depth, loop)
        return [resolve(t) for t in fg.outputs]

    def walk_branches(
        self,
        op: Any,
        prefix: str,
        inputs: list[tuple[str, frozenset[str]]],
        feeds: frozenset[str],
        depth: int,
        outer_loop: str | None,
    ) -> None:
        """List the ops of the functions a control-flow op runs, under ``<op>/<label>/``."""
        if op.type in CASE_OPS:
            functions = [(f.name, f"branch{i}") for i, f in enumerate(op.get_attr("branches"))]
        elif op.type in BRANCHES:
            functions = [(op.get_attr(attr).name, label) for attr, label in BRANCHES[op.type]]
        else:
            return
        # If/Case pass their inputs after the predicate or index; While passes the loop variables.
        loop_vars = op.type in LOOP_OPS
        args = [(name, feeds) for name, _ in (inputs if loop_vars else inputs[1:])]
        owner = prefix + op.outputs[0].name
        for fname, label in functions:
            if fname not in self.library:
                continue
            region = f"{prefix}{op.name}/{label}"
            loop = outer_loop
            if loop_vars and loop is None:
                part = "condition" if label == "cond" else "body"
                loop = (
                    f"it lives inside the {part} of {op.type} '{prefix}{op.name}', which runs once per "
                    "iteration; TensorFlow cannot fetch it from outside the loop (evaluate the loop's "
                    "outputs instead)"
                )
            self.walk(fname, region + "/", args, depth + 1, (region, owner, loop))


def _reader_of(tensor: Any, prefix: str) -> tuple[tuple[str, int] | None, str | None]:
    """Where a control-flow op's output can be fetched once freezing has lowered the op.

    Lowering replaces If/While/Case by Switch/Merge/Exit ops with generated names, so
    the output is reached through a plain op that reads it: (its name, input index).
    Without one, the sentence says why the output has no value to fetch.
    """
    for consumer in tensor.consumers():
        if consumer.type in CALL_OPS or consumer.type in CONTROL_FLOW_OPS:
            continue  # inlined or lowered too: their names change as well
        # By name: ``==`` on graph tensors builds an Equal op (and fails across function graphs).
        index = [t.name for t in consumer.inputs].index(tensor.name)
        return (prefix + consumer.name, index), None
    return None, (
        f"it is an output of {tensor.op.type} '{prefix}{tensor.op.name}', which TensorFlow rewrites into "
        "Switch/Merge ops when it freezes the graph, and no op reads it (evaluate the op that uses it instead)"
    )


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
            _fill(graph, library, entry, meta_graph.object_graph_def)
        except Exception as exc:
            entry.ops = []
            entry.error = f"The graph of signature {key!r} could not be listed: {str(exc).splitlines()[0]}"
    return result


def _fill(graph: Any, library: dict[str, Any], entry: SignatureGraph, objects: Any) -> None:
    out_ops = {graph.get_tensor_by_name(info.name).op for info in entry.outputs.values() if info.name}
    feed_by_tensor = {info.name: key for key, info in entry.inputs.items() if info.name}
    if len(out_ops) == 1:
        call = next(iter(out_ops))
        if call.type in CALL_OPS and call.get_attr("f").name.startswith(WRAPPER_PREFIX):
            _fill_tf2(graph, library, entry, call, feed_by_tensor, objects)
            return
    _fill_tf1(graph, entry, feed_by_tensor)


def _fill_tf2(
    graph: Any,
    library: dict[str, Any],
    entry: SignatureGraph,
    call: Any,
    feed_by_tensor: dict[str, str],
    objects: Any,
) -> None:
    entry.mode = "tf2"
    entry.call_name = call.name
    flattener = _Flattener(graph, library, entry.ops)
    wrapper = flattener.func_graph(call.get_attr("f").name)
    captured = iter(captured_objects(objects, call.get_attr("f").name))
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
            entry.captured[arg_name] = tensor.name
            extra: dict[str, Any] = {"captured": tensor.op.name, **next(captured, {})}
            source = tensor.op
            dtype = source.get_attr("dtype") if source.type == "VarHandleOp" else tensor.dtype
            shape = (
                shape_of(source.get_attr("shape")) if source.type == "VarHandleOp" else shape_of(tensor.shape)
            )
            const = source.get_attr("value") if source.type == "Const" else None
            entry.ops.append(OpOutput(arg_name, "Const", dtype, shape, frozenset(), const, extra))
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
    frames = _loop_frames(graph)
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
            loop = None
            if frames.get(op.name):
                loop_name = frames[op.name][-1].removesuffix("/while_context")
                loop = (
                    f"it lives inside the while loop '{loop_name}', whose ops run once per "
                    "iteration; TensorFlow cannot fetch it from outside the loop (evaluate the loop's "
                    "Exit outputs instead)"
                )
            entry.ops.append(
                OpOutput(
                    tensor.name, op.type, tensor.dtype, shape_of(tensor.shape), own, const, unfetchable=loop
                )
            )


def _loop_frames(graph: Any) -> dict[str, tuple[str, ...]]:
    """The while-loop frames (outermost first) each op of a TF1 graph runs in.

    ``tf.while_loop`` in TF1 wraps its body between Enter ops (which open the frame
    named by their ``frame_name``) and Exit ops (which leave it); every other op runs
    in the frame of its inputs. NextIteration back edges are not followed.
    """
    ops = {op.name: op for op in graph.get_operations()}
    frames: dict[str, tuple[str, ...]] = {}

    def sources(op: Any) -> list[Any]:
        data = [t.op for t in op.inputs if t.op.type != "NextIteration"]
        return data or list(op.control_inputs)

    def assign(op: Any) -> None:
        inputs = sources(op)
        # Inside a frame every input comes from that frame (outer values pass through Enter).
        outer = max((frames.get(i.name, ()) for i in inputs), key=len, default=())
        if op.type in ("Enter", "RefEnter"):
            name = op.get_attr("frame_name")
            outer = (*outer, name.decode() if isinstance(name, bytes) else name)
        elif op.type in ("Exit", "RefExit"):
            outer = outer[:-1]
        frames[op.name] = outer

    def frame_of(name: str) -> None:
        # Iterative post-order walk: loop bodies nest deeper than Python's recursion limit allows.
        stack: list[tuple[Any, bool]] = [(ops[name], False)]
        while stack:
            op, expanded = stack.pop()
            if op.name in frames:
                continue
            if expanded:
                assign(op)
                continue
            stack.append((op, True))
            stack.extend((p, False) for p in sources(op) if p.name not in frames)

    for name in ops:
        frame_of(name)
    return frames
