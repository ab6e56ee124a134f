"""Running a SavedModel's graph up to any op output, in a TF1-style Session.

TF1 signatures: the SavedModel is loaded with ``tf.compat.v1.saved_model.loader``
into one Session (variables restored, init op run) and ``sess.run("op:0", feeds)``
reaches every op. TF2 signatures: ``tf.saved_model.load`` then
``convert_variables_to_constants_v2`` inlines each signature into one GraphDef
(variables become constants), imported under a name scope into one graph with one
Session. Both are built on first use and reused; Session.run is safe from any
thread, so evaluation runs in the app's worker thread.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, NotEvaluable
from tensor_inspector.backends.tensorflow.common import import_tf
from tensor_inspector.backends.tensorflow.graph import SignatureGraph


def _sentence(exc: Exception) -> str:
    """The informative line of a TF error (its first lines are often headers like "Graph execution error:")."""
    text = getattr(exc, "message", None) or str(exc)
    for line in (line.strip() for line in text.splitlines()):
        if line and not line.endswith(":") and not line.startswith(("Detected at", "Node:", "[[")):
            return line.rstrip(".")
    return type(exc).__name__


def scope_name(key: str) -> str:
    """A valid TF name scope for a signature key."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key) or "signature"


class GraphRunner:
    def __init__(self, export_dir: Path, tags: list[str]):
        self.export_dir = export_dir
        self.tags = tags
        self._v1: tuple[Any, Any] | None = None  # (graph, session) of the loaded SavedModel
        self._v2: tuple[Any, Any] | None = None  # (graph, session) of frozen signatures
        self._frozen: dict[str, str] = {}  # signature key -> import scope
        self._loaded: Any = None

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
                raise InspectorError(
                    f"TensorFlow could not load this SavedModel: {_sentence(exc)}."
                ) from None
            self._v1 = (graph, sess)
        return self._v1

    def _scope_v2(self, key: str) -> tuple[Any, Any, str]:
        tf = import_tf()
        if self._v2 is None:
            graph = tf.Graph()
            self._v2 = (graph, tf.compat.v1.Session(graph=graph))
        graph, sess = self._v2
        if key not in self._frozen:
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            try:
                if self._loaded is None:
                    self._loaded = tf.saved_model.load(str(self.export_dir), tags=self.tags)
                function = self._loaded.signatures[key]
                frozen = convert_variables_to_constants_v2(function)
                graph_def = frozen.graph.as_graph_def()
            except Exception as exc:
                raise InspectorError(
                    f"TensorFlow could not prepare signature {key!r} for evaluation: {_sentence(exc)}."
                ) from None
            scope = scope_name(key)
            while scope in self._frozen.values():
                scope += "_"
            with graph.as_default():
                tf.graph_util.import_graph_def(graph_def, name=scope)
            self._frozen[key] = scope
        return graph, sess, self._frozen[key]

    # -- running --------------------------------------------------------------
    def run(self, sig: SignatureGraph, tensor_name: str, feeds: dict[str, np.ndarray]) -> Any:
        """The value of ``tensor_name`` (as named in ``sig``'s listing) with ``feeds`` by input key."""
        if sig.mode == "tf2":
            graph, sess, scope = self._scope_v2(sig.key)
            prefix = scope + "/"
        else:
            graph, sess = self._session_v1()
            prefix = ""
        try:
            target = graph.get_tensor_by_name(prefix + tensor_name)
        except (KeyError, ValueError):
            raise NotEvaluable(
                f"{tensor_name} no longer exists once the signature is frozen for evaluation "
                "(TensorFlow's optimizer removed or renamed it); evaluate a neighbouring op."
            ) from None
        feed_dict = {}
        for key, value in feeds.items():
            name = sig.feed_names.get(key)
            if name is None:
                raise InspectorError(f"Signature {sig.key!r} has no input named {key!r}.")
            feed_dict[graph.get_tensor_by_name(prefix + name)] = value
        try:
            return sess.run(target, feed_dict=feed_dict)
        except Exception as exc:
            raise InspectorError(f"Evaluating {tensor_name} failed: {_sentence(exc)}.") from None

    def close(self) -> None:
        for pair in (self._v1, self._v2):
            if pair is not None:
                pair[1].close()
        self._v1 = self._v2 = None
        self._frozen.clear()
        self._loaded = None
