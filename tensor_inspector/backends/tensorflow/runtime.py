"""Running a SavedModel's graph up to any op output, in a TF1-style Session.

TF1 signatures: the SavedModel is loaded with ``tf.compat.v1.saved_model.loader``
into one Session (variables restored, init op run) and ``sess.run("op:0", feeds)``
reaches every op. TF2 signatures are frozen into one GraphDef each (see freezing for
the strategies), imported under a name scope into one graph with one Session.
Freezing lowers If/While to Switch/Merge and names a branch's ops
``<op>/then/_<n>/...``; listed names leave out the ``_<n>``, so they are resolved
against the imported graph. The outputs of a lowered If or While are no ops of their
own: one a plain op reads is fetched at that op's input; the others are found where
TensorFlow's lowering (``lower_while_op.cc``, ``lower_if_op.cc``) puts them, see
``_LoweredControlFlow``. Both are built on first use and reused; Session.run is
safe from any thread, so evaluation runs in the app's worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, NotEvaluable
from tensor_inspector.backends.tensorflow.common import import_tf, tf_error_sentence
from tensor_inspector.backends.tensorflow.freezing import Freezer, Frozen
from tensor_inspector.backends.tensorflow.graph import LOOP_OPS, OpOutput, SignatureGraph

# "/then/_6/" -> "/then/": the unique segment function inlining adds to a lowered branch.
_INLINED_SEGMENT = re.compile(r"/(then|else|cond|body|branch\d+)/_\d+(?=/)")
# TensorFlow's words for a fetch of a branch the inputs did not take.
_DEAD_BRANCH = ("does not have value", "Retval[0] does not have value")
_NUMBERED = re.compile(r"/_(\d+)$")  # ".../merge/_10": the graph-wide counter lowering names ops by
_IF_OUTPUT = re.compile(r"^(.*)/output/_\d+$")  # the Merge lowering makes for each If output
_DROPPED = (
    "is not in the graph TensorFlow evaluates: freezing drops ops that nothing the signature "
    "returns depends on; evaluate a neighbouring op"
)


def _sentence(exc: Exception) -> str:
    return tf_error_sentence(exc)


def scope_name(key: str) -> str:
    """A valid TF name scope for a signature key."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key) or "signature"


def _listed(name: str) -> str:
    """A lowered name as listed: without the "_<n>" segments of inlined branches."""
    return _INLINED_SEGMENT.sub(r"/\1", name)


def _number(op: Any) -> int:
    match = _NUMBERED.search(op.name)
    return int(match.group(1)) if match else -1


def _root(tensor: Any) -> str:
    """The name of the tensor an Identity chain passes on (inlining wraps function inputs in
    Identity ops)."""
    for _ in range(256):
        if tensor.op.type != "Identity" or not tensor.op.inputs:
            break
        tensor = tensor.op.inputs[0]
    return str(tensor.name)


class _LoweredControlFlow:
    """The ops lowering made for each If and While of one frozen signature, by listed name.

    What ``lower_while_op.cc`` guarantees: loop variable k becomes Enter -> Merge ->
    Switch -> Exit, the Enter reading the While's input k and named by the While's name
    in its ``frame_name``; the Merges are named by a graph-wide counter in the order of k,
    and consumers of output k read Exit k. So the Merge of output k is the one whose
    Enter reads input k. Freezing prunes the variables nothing depends on (and the Exits
    nothing reads), so when inputs repeat (two variables starting from the same tensor)
    the counter order tells them apart only if all of them were kept. ``lower_if_op.cc``
    makes one Merge ``<If>/output/_<n>`` per output, in output order: an If's outputs are
    told apart when none was pruned.
    """

    def __init__(self, graph: Any, scope: str, prefix: str):
        self.loops: dict[str, list[tuple[Any, Any]]] = {}  # While -> (Merge, Enter) per variable
        self.ifs: dict[str, list[Any]] = {}  # If -> its output Merges
        for op in graph.get_operations():
            if not op.name.startswith(scope + "/"):
                continue
            if op.type == "Enter":
                frame = op.get_attr("frame_name")
                frame = _listed(frame.decode() if isinstance(frame, bytes) else frame)
                for merge in op.outputs[0].consumers():
                    if merge.type == "Merge" and merge.inputs[0] is op.outputs[0]:
                        self.loops.setdefault(frame, []).append((merge, op))
            elif op.type == "Merge":
                match = _IF_OUTPUT.match(_listed(op.name[len(scope) + 1 :]))
                if match:
                    self.ifs.setdefault(match.group(1), []).append(op)
        for pairs in self.loops.values():
            pairs.sort(key=lambda pair: _number(pair[0]))
        for merges in self.ifs.values():
            merges.sort(key=_number)
        self.prefix = prefix

    def output(self, op: OpOutput, resolve: Any) -> Any:
        """The graph tensor of a listed If/While output; NotEvaluable when it has none.

        ``resolve`` turns a listed tensor name into the graph's tensor (KeyError, ...).
        """
        assert op.lowered_from is not None
        try:  # TensorFlow lowers only ops marked for it (tf.cond, tf.while_loop): others stay
            return resolve(op.name)
        except (KeyError, ValueError, IndexError):
            pass
        inputs, count = op.lowered_from
        op_name, _, index = op.name.rpartition(":")
        k = int(index)
        key = self.prefix + op_name
        if op.op_type in LOOP_OPS:
            merge = self._loop_merge(op, self.loops.get(key, []), inputs, resolve)
            switch = next(
                (
                    c
                    for c in merge.outputs[0].consumers()
                    if c.type == "Switch" and c.inputs[1].op.type == "LoopCond"
                ),
                None,
            )
            exits = [c for c in switch.outputs[0].consumers() if c.type == "Exit"] if switch else []
            if not exits:
                raise NotEvaluable(f"{op.name} {_DROPPED}.")
            return exits[0].outputs[0]
        merges = self.ifs.get(key, [])
        if len(merges) == count:
            return merges[k].outputs[0]
        if not merges:
            raise NotEvaluable(f"{op.name} {_DROPPED}.")
        raise NotEvaluable(
            f"{op.name} cannot be told apart from the other outputs of {op.op_type} '{op_name}' once "
            "TensorFlow has lowered it (freezing dropped some of them); evaluate the op that uses it instead"
        )

    @staticmethod
    def _loop_merge(op: OpOutput, pairs: list[tuple[Any, Any]], inputs: tuple[str, ...], resolve: Any) -> Any:
        k = int(op.name.rpartition(":")[2])
        if len(pairs) == len(inputs):  # every variable kept: the counter order is k's order
            return pairs[k][0]
        # Match by what each Enter reads; inputs not in the graph (a pruned constant, another
        # lowered output) match the Enters that read none of the named inputs.
        starts: list[str | None] = []
        for name in inputs:
            try:
                starts.append(_root(resolve(name)))
            except (KeyError, ValueError, IndexError, NotEvaluable):
                starts.append(None)
        named = {start for start in starts if start is not None}
        sources = [_root(enter.inputs[0]) for _merge, enter in pairs]
        kept = [
            merge
            for (merge, _enter), source in zip(pairs, sources)
            if source == starts[k] or (starts[k] is None and source not in named)
        ]
        if not kept:
            raise NotEvaluable(f"{op.name} {_DROPPED}.")
        alike = [j for j, start in enumerate(starts) if start == starts[k]]
        if len(kept) == len(alike):  # variables starting alike keep their order
            return kept[alike.index(k)]
        raise NotEvaluable(
            f"{op.name} cannot be told apart from the other outputs of its loop once TensorFlow has "
            "lowered it (freezing dropped some of them); evaluate the op that uses it instead"
        )


class _Imported:
    """One frozen signature inside the runner's graph: its scope and name resolution."""

    def __init__(self, frozen: Frozen, scope: str, graph: Any):
        self.frozen = frozen
        self.scope = scope
        # Lowered branch ops by their listed name (without the "_<n>" segments).
        self.lowered: dict[str, str] = {}
        for op in graph.get_operations():
            if op.name.startswith(scope + "/") and _INLINED_SEGMENT.search(op.name):
                self.lowered.setdefault(_listed(op.name), op.name)
        self.control_flow = _LoweredControlFlow(graph, scope, frozen.prefix)
        # Const values by graph op name, read from the frozen GraphDef the runner keeps: a
        # graph op's attribute is serialised and parsed again at each read (~0.2 ms/MB).
        self.constants: dict[str, Any] = {
            f"{scope}/{node.name}": node for node in frozen.graph_def.node if node.op == "Const"
        }

    def constant(self, op_name: str) -> Any | None:
        """The TensorProto of the Const op ``op_name`` of this graph, if it is one."""
        node = self.constants.get(op_name)
        return node.attr["value"].tensor if node is not None else None

    def tensor(self, graph: Any, op: OpOutput) -> Any:
        if op.via is not None:  # a lowered control-flow output: read where an op consumes it
            return self.operation(graph, op.via[0]).inputs[op.via[1]]
        if op.lowered_from is not None:  # no op reads it: found in the lowered If/While
            return self.control_flow.output(op, lambda name: self.named(graph, name))
        return self.named(graph, op.name)

    def named(self, graph: Any, listed: str) -> Any:
        """The graph tensor of a listed tensor name (KeyError/ValueError when absent)."""
        name = f"{self.scope}/{self.frozen.tensor_name(listed)}"
        op_name, _, index = name.rpartition(":")
        op_name = self.lowered.get(op_name, op_name)
        return graph.get_tensor_by_name(f"{op_name}:{index}")

    def operation(self, graph: Any, listed_op: str) -> Any:
        name = f"{self.scope}/{self.frozen.prefix}{listed_op}"
        return graph.get_operation_by_name(self.lowered.get(name, name))


def _no_proto(op_name: str) -> None:
    return None


@dataclass
class Prepared:
    """What tracing a signature needs from the runner."""

    graph: Any
    session: Any
    # listed op -> graph tensor; KeyError, ValueError, IndexError or NotEvaluable when absent
    tensor_of: Callable[[OpOutput], Any]
    feeds: dict[str, str]  # input key -> placeholder tensor name
    constant: Callable[[str], Any | None]  # graph op name -> its TensorProto if a kept Const
    cache: dict[str, Any]  # kept by the runner between traces of this signature


class GraphRunner:
    def __init__(self, export_dir: Path, tags: list[str], objects: Any = None):
        self._trace_caches: dict[str, dict[str, Any]] = {}  # signature key -> Prepared.cache
        self.export_dir = export_dir
        self.tags = tags
        self._v1: tuple[Any, Any] | None = None  # (graph, session) of the loaded SavedModel
        self._v2: tuple[Any, Any] | None = None  # (graph, session) of frozen signatures
        self._imported: dict[str, _Imported] = {}  # signature key -> its frozen graph's scope
        self.freezer = Freezer(export_dir, tags, objects)

    @property
    def strategy(self) -> str | None:
        """How this file's TF2 signatures were prepared (None before the first evaluation)."""
        return self.freezer.worked

    # -- building -------------------------------------------------------------
    def _session_v1(self) -> tuple[Any, Any]:
        if self._v1 is None:
            tf = import_tf()
            graph = tf.Graph()
            sess = tf.compat.v1.Session(graph=graph)
            try:
                from tensorflow.python.util import deprecation

                # The TF1 loader is deprecated but is the only way to reach every op of a TF1 graph.
                with graph.as_default(), deprecation.silence():
                    tf.compat.v1.saved_model.loader.load(sess, self.tags, str(self.export_dir))
            except Exception as exc:
                sess.close()
                raise InspectorError(f"TensorFlow could not load this SavedModel: {_sentence(exc)}.") from exc
            self._v1 = (graph, sess)
        return self._v1

    def _scope_v2(self, sig: SignatureGraph) -> tuple[Any, Any, _Imported]:
        tf = import_tf()
        if self._v2 is None:
            graph = tf.Graph()
            self._v2 = (graph, tf.compat.v1.Session(graph=graph))
        graph, sess = self._v2
        if sig.key not in self._imported:
            frozen = self.freezer.freeze(sig)
            scope = scope_name(sig.key)
            while any(scope == i.scope for i in self._imported.values()):
                scope += "_"
            with graph.as_default():
                tf.graph_util.import_graph_def(frozen.graph_def, name=scope)
            self._imported[sig.key] = _Imported(frozen, scope, graph)
        return graph, sess, self._imported[sig.key]

    def prepared(self, sig: SignatureGraph) -> Prepared:
        """The graph and session of ``sig``, and how listed ops are found in them (tracing)."""
        cache = self._trace_caches.setdefault(sig.key, {})
        if sig.mode == "tf2":
            graph, sess, imported = self._scope_v2(sig)
            scope = imported.scope + "/"
            feeds = {key: scope + name for key, name in imported.frozen.feeds.items()}
            return Prepared(
                graph, sess, lambda op: imported.tensor(graph, op), feeds, imported.constant, cache
            )
        graph, sess = self._session_v1()
        return Prepared(
            graph, sess, lambda op: graph.get_tensor_by_name(op.name), dict(sig.feed_names), _no_proto, cache
        )

    # -- running --------------------------------------------------------------
    def run(self, sig: SignatureGraph, op: OpOutput, feeds: dict[str, np.ndarray]) -> Any:
        """The value of ``op`` (as listed in ``sig``) with ``feeds`` by input key."""
        if op.unfetchable:
            raise NotEvaluable(f"{op.name} cannot be evaluated: {op.unfetchable}.")
        feed_dict = {}
        if sig.mode == "tf2":
            graph, sess, imported = self._scope_v2(sig)
            feed_names = imported.frozen.feeds
            scope = imported.scope + "/"
        else:
            graph, sess = self._session_v1()
            feed_names, scope = sig.feed_names, ""
        try:
            target = imported.tensor(graph, op) if sig.mode == "tf2" else graph.get_tensor_by_name(op.name)
        except (KeyError, ValueError, IndexError):
            raise NotEvaluable(
                f"{op.name} is not in the graph TensorFlow evaluates: freezing drops ops that nothing "
                "the signature returns depends on; evaluate a neighbouring op."
            ) from None
        for key, value in feeds.items():
            name = feed_names.get(key)
            if name is None:
                raise InspectorError(f"Signature {sig.key!r} has no input named {key!r}.")
            feed_dict[graph.get_tensor_by_name(scope + name)] = value
        try:
            return sess.run(target, feed_dict=feed_dict)
        except Exception as exc:
            reason = _sentence(exc)
            if any(marker in reason for marker in _DEAD_BRANCH):
                where = f"the branch '{op.region}'" if op.region else "a tf.cond branch"
                raise NotEvaluable(
                    f"{op.name} was not computed for these inputs: it lies in {where}, "
                    "which these inputs do not take."
                ) from exc
            raise InspectorError(f"Evaluating {op.name} failed: {reason}.") from exc

    def close(self) -> None:
        for pair in (self._v1, self._v2):
            if pair is not None:
                pair[1].close()
        self._v1 = self._v2 = None
        self._imported.clear()
        self._trace_caches.clear()
        self.freezer.release()
