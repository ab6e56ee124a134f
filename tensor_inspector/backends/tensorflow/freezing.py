"""Ways to turn a TF2 SavedModel signature into one GraphDef a Session can run to any op.

SavedModels are saved by many versions and libraries, and no single TensorFlow loader
serves them all, so evaluation tries, in order:

1. freezing the loaded signature: ``tf.saved_model.load`` then
   ``convert_variables_to_constants_v2`` (inlines every call, lowers If/While to
   Switch/Merge, variables become constants);
2. the same without optimizer state: Keras 2 saves its optimizer and slot variables in
   the object graph, and ``tf.saved_model.load`` revives them through ``add_slot``, which
   only exists when tf_keras is importable ("'_UserObject' object has no attribute
   'add_slot'"); ``load_partial`` of every object except optimizers loads the rest;
3. TensorFlow's TF1 loader: ``tf.compat.v1.saved_model.loader.load`` into a Session needs
   no object graph at all; the variables it restored are read from that Session and
   Grappler inlines the signature's call, as freezing does.

The first that works is remembered for the file and tried first for its other
signatures. Listed names (see graph) are those of strategies 1 and 2; strategy 3 keeps
the top-level call op, so its names gain that op's name as a prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tensor_inspector.backends.base import InspectorError
from tensor_inspector.backends.tensorflow.common import import_tf, tf_error_sentence
from tensor_inspector.backends.tensorflow.graph import SignatureGraph

OPTIMIZER_IDENTIFIERS = {"optimizer"}  # SavedUserObject identifier of Keras 2 (OptimizerV2) optimizers


@dataclass
class Frozen:
    """A signature as one GraphDef, and how listed tensor names map into it."""

    graph_def: Any
    how: str  # the strategy, as users read it
    prefix: str = ""  # prepended to listed op names
    feeds: dict[str, str] = field(default_factory=dict)  # input key -> tensor name
    captured: dict[str, str] = field(default_factory=dict)  # listed capture name -> tensor name

    def tensor_name(self, listed: str) -> str:
        return self.captured.get(listed) or self.prefix + listed


def _optimizer_free_filters(objects: Any) -> list[str]:
    """``load_partial`` paths covering every object not reached only through an optimizer.

    ``load_partial`` loads each listed object with all its descendants, so the list holds
    the highest objects whose descendants include no optimizer.
    """
    nodes = objects.nodes

    def is_optimizer(node_id: int) -> bool:
        node = nodes[node_id]
        is_user = node.WhichOneof("kind") == "user_object"
        return bool(node.slot_variables) or (is_user and node.user_object.identifier in OPTIMIZER_IDENTIFIERS)

    tainted: dict[int, bool] = {}

    def holds_optimizer(node_id: int) -> bool:
        stack, order, seen = [node_id], [], set()
        while stack:  # iterative: object graphs of big models are deep
            current = stack.pop()
            if current in seen or current in tainted:
                continue
            seen.add(current)
            order.append(current)
            stack.extend(c.node_id for c in nodes[current].children if 0 <= c.node_id < len(nodes))
        for current in reversed(order):  # a cycle's back edge counts as clean, as load_partial sees it
            children = [c.node_id for c in nodes[current].children if 0 <= c.node_id < len(nodes)]
            tainted[current] = is_optimizer(current) or any(tainted.get(c, False) for c in children)
        return tainted[node_id]

    filters: list[str] = []
    stack: list[tuple[int, str]] = [(0, "root")]
    visited: set[int] = set()
    while stack:
        node_id, path = stack.pop()
        if node_id in visited:
            continue
        visited.add(node_id)
        for child in nodes[node_id].children:
            if not 0 <= child.node_id < len(nodes) or is_optimizer(child.node_id):
                continue
            child_path = f"{path}.{child.local_name}"
            if holds_optimizer(child.node_id):
                stack.append((child.node_id, child_path))
            else:
                filters.append(child_path)
    return filters


class Freezer:
    """Freezes the signatures of one SavedModel, remembering which strategy works for it."""

    def __init__(self, export_dir: Path, tags: list[str], objects: Any):
        self.export_dir = export_dir
        self.tags = tags
        self.objects = objects  # the SavedObjectGraph proto (for load_partial filters)
        self.worked: str | None = None
        self._loaded: dict[str, Any] = {}  # strategy -> loaded signatures (or the failure)
        self.strategies: list[tuple[str, Callable[[SignatureGraph], Frozen]]] = [
            ("freezing the loaded signature", self.freeze_loaded),
            ("loading it without optimizer state", self.freeze_without_optimizer),
            ("TensorFlow's TF1 loader", self.freeze_with_session),
        ]

    def prefer(self, how: str) -> None:
        """Try strategy ``how`` first from now on (as if it had worked for this file)."""
        if how not in {name for name, _ in self.strategies}:
            raise ValueError(f"no strategy named {how!r}")
        self.worked = how

    def release(self) -> None:
        """Drop the loaded objects (the remembered strategy stays)."""
        self._loaded.clear()

    def freeze(self, sig: SignatureGraph) -> Frozen:
        ordered = sorted(self.strategies, key=lambda s: s[0] != self.worked)
        failures = []
        for how, strategy in ordered:
            try:
                frozen = strategy(sig)
            except Exception as exc:
                failures.append((how, exc))
                continue
            self.worked = how
            return frozen
        reasons = "; ".join(f"{how} failed ({tf_error_sentence(exc)})" for how, exc in failures)
        raise InspectorError(
            f"TensorFlow could not prepare signature {sig.key!r} for evaluation: {reasons}."
        ) from failures[-1][1]

    # -- the strategies -------------------------------------------------------
    def _freeze_function(self, function: Any, how: str, sig: SignatureGraph) -> Frozen:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        graph_def = convert_variables_to_constants_v2(function).graph.as_graph_def()
        return Frozen(graph_def, how, feeds=dict(sig.feed_names))

    def freeze_loaded(self, sig: SignatureGraph) -> Frozen:
        tf = import_tf()
        if "loaded" not in self._loaded:  # the root is kept: its functions only weakly hold variables
            self._loaded["loaded"] = tf.saved_model.load(str(self.export_dir), tags=self.tags)
        function = self._loaded["loaded"].signatures[sig.key]
        return self._freeze_function(function, self.strategies[0][0], sig)

    def freeze_without_optimizer(self, sig: SignatureGraph) -> Frozen:
        if "partial" not in self._loaded:
            import_tf()
            from tensorflow.python.saved_model.load import load_partial

            if self.objects is None or not self.objects.nodes:
                raise InspectorError("the SavedModel has no object graph")
            filters = _optimizer_free_filters(self.objects)
            if not any(path == "root.signatures" for path in filters):
                raise InspectorError("its signatures are reachable only through an optimizer")
            self._loaded["partial"] = load_partial(str(self.export_dir), filters, tags=self.tags)
        function = self._loaded["partial"]["root.signatures"][sig.key]
        return self._freeze_function(function, self.strategies[1][0], sig)

    def freeze_with_session(self, sig: SignatureGraph) -> Frozen:
        if sig.call_name is None:
            raise InspectorError("the signature calls no function")
        tf = import_tf()
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_from_session_graph,
        )
        from tensorflow.python.util import deprecation

        graph = tf.Graph()
        with tf.compat.v1.Session(graph=graph) as sess:
            with graph.as_default(), deprecation.silence():
                tf.compat.v1.saved_model.loader.load(sess, self.tags, str(self.export_dir))
                call = graph.get_operation_by_name(sig.call_name)
                for tensor in call.inputs:  # the converter reads each variable through this op name
                    handle = tensor.op
                    if handle.type != "VarHandleOp":
                        continue
                    read = f"{handle.name}/Read/ReadVariableOp"
                    if read not in {op.name for op in graph.get_operations()}:
                        tf.raw_ops.ReadVariableOp(resource=tensor, dtype=handle.get_attr("dtype"), name=read)
            graph_def = convert_variables_to_constants_from_session_graph(
                sess, graph.as_graph_def(), [sig.call_name]
            )
        feeds = {key: sig.inputs[key].name for key in sig.feed_names if key in sig.inputs}
        keep = [*feeds.values(), *(t.name for t in call.outputs)]
        inlined = _inline_calls(graph_def, keep)
        return Frozen(
            inlined, self.strategies[2][0], f"{sig.call_name}/", feeds=feeds, captured=dict(sig.captured)
        )


def _inline_calls(graph_def: Any, keep: list[str]) -> Any:
    """Grappler's function inlining (and control-flow lowering), as freezing runs it."""
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    for function in meta.graph_def.library.function:
        # A GPU alternative (Keras 2 LSTM/GRU's CuDNN body) named in api_implements blocks inlining.
        if "api_implements" in function.attr:
            del function.attr["api_implements"]
    meta.collection_def["train_op"].node_list.value.extend(keep)  # what Grappler must keep
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.min_graph_nodes = -1  # small graphs too
    rewrite.optimizers.append("function")  # only inlining: nothing else renames or removes ops
    return tf_optimizer.OptimizeGraph(config, meta)
