"""TensorFlow checkpoints (prefix + .index + .data shards): list, read one tensor, write.

Listing goes through ``tf.train.load_checkpoint``, which reads the index only;
values are read one tensor at a time on demand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tensor_inspector.backends.base import CorruptFile, Index, InspectorError, Node, NodeKind, Source
from tensor_inspector.backends.tensorflow.common import import_tf, nbytes_of, tf_dtype_names, to_numpy
from tensor_inspector.backends.tensorflow.index import vet_checkpoint
from tensor_inspector.backends.tensorflow.objgraph import OBJECT_GRAPH_KEY, name_paths, object_graph_paths


def _tf_error_sentence(exc: Exception) -> str:
    """The first line of a TF error, without its C++ source location."""
    text = getattr(exc, "message", None) or str(exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return re.sub(r"\s*\[Op:.*?\]", "", text).rstrip(".")


class CheckpointVariables:
    """The variables of one checkpoint prefix: vetted index, a lazy reader, tree paths.

    Shared by checkpoints and SavedModels (whose ``variables/variables`` is a checkpoint).
    """

    def __init__(self, prefix: Path):
        self.prefix = Path(prefix)
        self.num_shards, entries = vet_checkpoint(self.prefix)
        self._reader = None
        tf = import_tf()
        try:
            self._reader = tf.train.load_checkpoint(str(self.prefix))
            self.shapes = self._reader.get_variable_to_shape_map()
            self.dtypes = self._reader.get_variable_to_dtype_map()
        except Exception as exc:
            raise CorruptFile(
                f"TensorFlow cannot read the checkpoint {self.prefix.name}: {_tf_error_sentence(exc)}."
            ) from None
        # Index order; sliced variables also have internal per-slice entries, which are skipped.
        self.keys = [e.key for e in entries if e.key in self.shapes]
        self.keys += sorted(set(self.shapes) - set(self.keys))
        if OBJECT_GRAPH_KEY in self.shapes:
            try:
                graph_bytes = self._reader.get_tensor(OBJECT_GRAPH_KEY)
                self.paths = object_graph_paths(graph_bytes, set(self.shapes))
                self.object_based = True
            except Exception:
                raise CorruptFile(f"The object graph of checkpoint {self.prefix.name} is damaged.") from None
        else:
            self.paths = name_paths(set(self.shapes))
            self.object_based = False

    def add_nodes(self, add: Callable[[Node], Node], under: str = "") -> dict[str, str]:
        """Add a TENSOR node per variable (ids prefixed by ``under``); returns id -> key."""
        id_to_key = {}
        for item in self.paths:
            dtype, tf_dtype = tf_dtype_names(self.dtypes[item.key])
            shape = tuple(int(d) for d in self.shapes[item.key])
            node_id = f"{under}/{item.path}" if under else item.path
            metadata = {"checkpoint_key": item.key, **item.extra}
            add(
                Node(
                    id=node_id,
                    name=node_id.rsplit("/", 1)[-1],
                    kind=NodeKind.TENSOR,
                    dtype=dtype,
                    framework_dtype=tf_dtype,
                    shape=shape,
                    nbytes=nbytes_of(dtype, shape),
                    metadata=metadata,
                )
            )
            id_to_key[node_id] = item.key
        return id_to_key

    def read(self, key: str, index: Index | None = None) -> np.ndarray:
        """One tensor. TF's reader has no partial read: the whole tensor is read, then sliced."""
        if self._reader is None:
            raise InspectorError("This checkpoint has been closed.")
        try:
            value = self._reader.get_tensor(key)
        except Exception as exc:
            raise CorruptFile(
                f"Cannot read {key!r} from the checkpoint: {_tf_error_sentence(exc)}."
            ) from None
        _, tf_dtype = tf_dtype_names(self.dtypes[key])
        array = to_numpy(value, tf_dtype)
        return array[index] if index is not None else array

    def object_keys(self) -> dict[int, str]:
        """Object-graph node id -> the checkpoint key of its value (variables only).

        A SavedModel's object graph numbers its objects as this checkpoint's object
        graph does, which is how its functions' captured inputs find their variable.
        """
        if not self.object_based or self._reader is None:
            return {}
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        try:
            graph.ParseFromString(self._reader.get_tensor(OBJECT_GRAPH_KEY))
        except Exception:
            return {}
        keys = {}
        for node_id, node in enumerate(graph.nodes):
            for attr in node.attributes:
                if attr.name == "VARIABLE_VALUE" and attr.checkpoint_key in self.shapes:
                    keys[node_id] = attr.checkpoint_key
        return keys

    def raw(self, key: str) -> object:
        """The value exactly as TF's reader returns it (bytes/object arrays kept for writing)."""
        if self._reader is None:
            raise InspectorError("This checkpoint has been closed.")
        return self._reader.get_tensor(key)

    def close(self) -> None:
        self._reader = None


class CheckpointSource(Source):
    partial_reads = False  # TensorFlow reads a whole variable for any part of it
    backend_name = "tensorflow"
    format_name = "TensorFlow checkpoint"
    writable = True

    def __init__(self, path: Path, prefix: Path):
        super().__init__(path)
        self.prefix = prefix
        self.variables = CheckpointVariables(prefix)
        self._id_to_key = self.variables.add_nodes(self._add_with_groups)

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        return self.variables.read(node.metadata["checkpoint_key"], index)

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        from tensor_inspector.backends.tensorflow.write import write_checkpoint

        by_key = {self._id_to_key[node_id]: value for node_id, value in replacements.items()}
        write_checkpoint(self.variables, Path(path), by_key)

    def close(self) -> None:
        self.variables.close()


def resolve_checkpoint_dir(directory: Path) -> Path:
    """The latest checkpoint prefix named by a directory's ``checkpoint`` state file."""
    tf = import_tf()
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except Exception:
        state = None
    if state is None or not state.model_checkpoint_path:
        raise CorruptFile(f"The checkpoint state file in {directory} names no checkpoint.")
    prefix = Path(state.model_checkpoint_path)
    if not prefix.is_absolute():
        prefix = directory / prefix
    if not Path(str(prefix) + ".index").is_file():
        raise CorruptFile(
            f"The checkpoint state file in {directory} names {prefix.name}, whose .index file is missing."
        )
    return prefix
