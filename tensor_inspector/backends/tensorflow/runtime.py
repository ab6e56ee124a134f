"""Running a SavedModel's graph up to any op output, in a TF1-style Session.

TF1 signatures: the SavedModel is loaded with ``tf.compat.v1.saved_model.loader``
into one Session (variables restored, init op run) and ``sess.run("op:0", feeds)``
reaches every op. TF2 signatures are frozen into one GraphDef each (see freezing for
the strategies), imported under a name scope into one graph with one Session.
Freezing lowers If/While to Switch/Merge and names a branch's ops
``<op>/then/_<n>/...``; listed names leave out the ``_<n>``, so they are resolved
against the imported graph. Both are built on first use and reused; Session.run is
safe from any thread, so evaluation runs in the app's worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, NotEvaluable
from tensor_inspector.backends.tensorflow.common import import_tf, tf_error_sentence
from tensor_inspector.backends.tensorflow.freezing import Freezer, Frozen
from tensor_inspector.backends.tensorflow.graph import OpOutput, SignatureGraph

# "/then/_6/" -> "/then/": the unique segment function inlining adds to a lowered branch.
_INLINED_SEGMENT = re.compile(r"/(then|else|cond|body|branch\d+)/_\d+(?=/)")
# TensorFlow's words for a fetch of a branch the inputs did not take.
_DEAD_BRANCH = ("does not have value", "Retval[0] does not have value")


def _sentence(exc: Exception) -> str:
    return tf_error_sentence(exc)


def scope_name(key: str) -> str:
    """A valid TF name scope for a signature key."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key) or "signature"


class _Imported:
    """One frozen signature inside the runner's graph: its scope and name resolution."""

    def __init__(self, frozen: Frozen, scope: str, graph: Any):
        self.frozen = frozen
        self.scope = scope
        # Lowered branch ops by their listed name (without the "_<n>" segments).
        self.lowered: dict[str, str] = {}
        for op in graph.get_operations():
            if op.name.startswith(scope + "/") and _INLINED_SEGMENT.search(op.name):
                self.lowered.setdefault(_INLINED_SEGMENT.sub(r"/\1", op.name), op.name)

    def tensor(self, graph: Any, op: OpOutput) -> Any:
        if op.via is not None:  # a lowered control-flow output: read where an op consumes it
            return self.operation(graph, op.via[0]).inputs[op.via[1]]
        name = f"{self.scope}/{self.frozen.tensor_name(op.name)}"
        op_name, _, index = name.rpartition(":")
        op_name = self.lowered.get(op_name, op_name)
        return graph.get_tensor_by_name(f"{op_name}:{index}")

    def operation(self, graph: Any, listed_op: str) -> Any:
        name = f"{self.scope}/{self.frozen.prefix}{listed_op}"
        return graph.get_operation_by_name(self.lowered.get(name, name))


class GraphRunner:
    def __init__(self, export_dir: Path, tags: list[str], objects: Any = None):
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

    def prepared(self, sig: SignatureGraph) -> tuple[Any, Any, Callable[[OpOutput], Any], dict[str, str]]:
        """(graph, session, listed op -> graph tensor, input key -> placeholder name) of ``sig``.

        For tracing, which fetches many ops in one run; the tensor lookup raises KeyError,
        ValueError or IndexError for an op the prepared graph does not hold.
        """
        if sig.mode == "tf2":
            graph, sess, imported = self._scope_v2(sig)
            scope = imported.scope + "/"
            feeds = {key: scope + name for key, name in imported.frozen.feeds.items()}
            return graph, sess, lambda op: imported.tensor(graph, op), feeds
        graph, sess = self._session_v1()
        return graph, sess, lambda op: graph.get_tensor_by_name(op.name), dict(sig.feed_names)

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
        self.freezer.release()
