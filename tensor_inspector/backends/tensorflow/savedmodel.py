"""TensorFlow SavedModels (TF2 ``tf.saved_model.save`` and TF1 ``SavedModelBuilder``).

Opening parses ``saved_model.pb`` and the variables index only: signatures, their
inputs/outputs, variables and every op output of each signature's computation are
listed without executing anything. Evaluating runs TensorFlow (see runtime); a
graph that would run any op outside the allow-list (see vetting) needs the user's
trust first.
"""

from __future__ import annotations

import threading
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
from tensor_inspector.backends.tensorflow.checkpoint import CheckpointVariables
from tensor_inspector.backends.tensorflow.common import (
    HANDLE_DTYPES,
    import_tf,
    nbytes_of,
    shape_of,
    tf_dtype_names,
    to_numpy,
)
from tensor_inspector.backends.tensorflow.graph import OpOutput, SignatureGraph, list_signatures
from tensor_inspector.backends.tensorflow.runtime import GraphRunner
from tensor_inspector.backends.tensorflow.vetting import vet_meta_graph
from tensor_inspector.core.dtypes import numpy_dtype

VARIABLES = "variables"
REGION_NAMES = {"then": "then branch", "else": "else branch", "cond": "loop condition", "body": "loop body"}


def parse_saved_model(directory: Path) -> Any:
    """The SavedModel proto of ``directory``, or CorruptFile."""
    from google.protobuf import text_format

    import_tf()
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb, pbtxt = directory / "saved_model.pb", directory / "saved_model.pbtxt"
    try:
        if pb.is_file():
            proto.ParseFromString(pb.read_bytes())
        else:
            text_format.Parse(pbtxt.read_text(encoding="utf-8"), proto)
    except Exception:
        name = pb.name if pb.is_file() else pbtxt.name
        raise CorruptFile(
            f"{directory / name} is not a valid SavedModel: the file cannot be parsed."
        ) from None
    if not proto.meta_graphs:
        raise CorruptFile(f"The SavedModel in {directory} contains no graph.")
    return proto


def _tensor_info(info: Any) -> dict[str, Any]:
    dtype, tf_dtype = tf_dtype_names(info.dtype) if info.dtype else (None, "invalid")
    shape = shape_of(info.tensor_shape)
    return {
        "tensor": info.name,
        "dtype": dtype,
        "framework_dtype": tf_dtype,
        "shape": None if shape is None else list(shape),
    }


class SavedModelSource(Source):
    partial_reads = False  # TensorFlow reads a whole variable for any part of it
    backend_name = "tensorflow"
    format_name = "TensorFlow SavedModel"
    writable = True

    def __init__(self, path: Path, trust: bool = False):
        super().__init__(path)
        self.trusted = trust
        proto = parse_saved_model(self.path)
        graphs = list(proto.meta_graphs)
        meta = next((m for m in graphs if "serve" in m.meta_info_def.tags), graphs[0])
        self.tags = list(meta.meta_info_def.tags)
        # Judged once, before TensorFlow runs anything: op types outside the allow-list.
        self.vetting = vet_meta_graph(meta)
        self.risky = [f"{f.op_type} ({f.where})" for f in self.vetting.findings]
        self._graph_file = (
            "saved_model.pb" if (self.path / "saved_model.pb").is_file() else "saved_model.pbtxt"
        )
        self.variables: CheckpointVariables | None = None
        self._id_to_key: dict[str, str] = {}
        prefix = self.path / VARIABLES / VARIABLES
        if Path(str(prefix) + ".index").is_file():
            self.variables = CheckpointVariables(prefix)
            self._id_to_key = self.variables.add_nodes(self._add_with_groups, under=VARIABLES)
        # Object-graph node id -> tree id of its variable (to name captured inputs by).
        node_of_key = {key: node_id for node_id, key in self._id_to_key.items()}
        self._variable_nodes: dict[int, str] = {}
        if self.variables is not None:
            for object_id, key in self.variables.object_keys().items():
                if key in node_of_key:
                    self._variable_nodes[object_id] = node_of_key[key]
        self.signatures: dict[str, SignatureGraph] = {}
        self._ops: dict[str, tuple[SignatureGraph, Any]] = {}
        for sig in list_signatures(meta):
            self._add_signature(sig)
        self._runner = GraphRunner(self.path, self.tags, meta.object_graph_def)

    def _add_signature(self, sig: SignatureGraph) -> None:
        base = sig.key.replace("/", "_")
        if base == VARIABLES or base in self._nodes:
            base = f"signature {base}"
        self.signatures[base] = sig
        outputs = {}
        for key, info in sig.outputs.items():
            outputs[key] = {**_tensor_info(info), "node": f"{base}/{sig.output_names.get(key, '')}"}
        metadata = {
            "signature": sig.key,
            "mode": sig.mode,
            "inputs": {k: _tensor_info(v) for k, v in sig.inputs.items()},
            "outputs": outputs,
        }
        if sig.error:
            metadata["error"] = sig.error
        self._add(Node(id=base, name=sig.key, kind=NodeKind.SIGNATURE, metadata=metadata))
        for op in sig.ops:
            dtype, tf_dtype = tf_dtype_names(op.tf_dtype)
            node_id = f"{base}/{op.name}"
            meta = {
                "op": op.op_type,
                "tensor": op.name,
                "signature": sig.key,
                "feeds": sorted(op.feeds),
                **op.extra,
            }
            name, parent = op.name.rsplit("/", 1)[-1], None
            if "label" in op.extra:  # a captured input: named by what it captures
                name, parent = op.extra["label"], base
                meta["captured_variable"] = meta.pop("label")
                variable = self._variable_nodes.get(op.extra.get("object", -1))
                if variable is not None:
                    meta["variable_node"] = variable
            if op.region is not None:
                meta["inside"] = op.region
                parent = self._region_parent(base, op)
            if tf_dtype in HANDLE_DTYPES:
                meta["not_evaluable"] = f"a {tf_dtype} handle has no value to show"
            elif op.unfetchable and op.const is None:  # constants are read from the graph, loops or not
                meta["not_evaluable"] = op.unfetchable
            node = Node(
                id=node_id,
                name=name,
                kind=NodeKind.COMPUTED,
                parent=parent,
                dtype=dtype,
                framework_dtype=tf_dtype,
                shape=op.shape,
                nbytes=nbytes_of(dtype, op.shape),
                metadata=meta,
            )
            if parent is not None:
                self._add(node)
            else:
                self._add_with_groups(node)
            self._ops[node_id] = (sig, op)

    def _region_parent(self, base: str, op: OpOutput) -> str:
        """The group an op of a branch or loop function sits in, under its control-flow op.

        ``<op>/then`` (a GROUP whose parent is the op's first output) holds the function's
        ops, grouped further by their own name scopes.
        """
        assert op.region is not None
        region_id = f"{base}/{op.region}"
        if region_id not in self._nodes:
            label = op.region.rsplit("/", 1)[-1]
            owner = f"{base}/{op.owner}" if op.owner else None
            self._add(
                Node(
                    id=region_id,
                    name=REGION_NAMES.get(label, label.replace("branch", "branch ")),
                    kind=NodeKind.GROUP,
                    parent=owner if owner in self._nodes else None,
                    metadata={"control_flow": op.region},
                )
            )
        parent = region_id
        scopes = op.name[len(op.region) + 1 :].split("/")[:-1]
        for depth in range(1, len(scopes) + 1):
            gid = f"{region_id}/{'/'.join(scopes[:depth])}"
            if gid not in self._nodes:
                self._add(Node(id=gid, name=scopes[depth - 1], kind=NodeKind.GROUP, parent=parent))
            parent = gid
        return parent

    # -- values -----------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if self.variables is None or node.id not in self._id_to_key:
            raise NotEvaluable(f"{node.id!r} has no stored value.")
        return self.variables.read(self._id_to_key[node.id], index)

    def _signature_of(self, node_id: str) -> SignatureGraph | None:
        if node_id in self._ops:
            return self._ops[node_id][0]
        return self.signatures.get(node_id.split("/", 1)[0])

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        if node_id is None:
            sigs = list(self.signatures.values())
            keys = None
        else:
            sig = self._signature_of(node_id)
            sigs = [sig] if sig is not None else []
            keys = set(self._ops[node_id][1].feeds) if node_id in self._ops else None
        specs: dict[str, FeedSpec] = {}
        for sig in sigs:
            for key, info in sorted(sig.inputs.items()):
                if (keys is not None and key not in keys) or key in specs:
                    continue
                dtype, tf_dtype = tf_dtype_names(info.dtype)
                specs[key] = FeedSpec(
                    name=key,
                    dtype=dtype or "float32",
                    shape=shape_of(info.tensor_shape),
                    description=f"input {key!r} of signature {sig.key!r} ({tf_dtype})",
                )
        return list(specs.values())

    def _signature_specs(self, sig: SignatureGraph) -> list[FeedSpec]:
        base = next(k for k, v in self.signatures.items() if v is sig)
        return self.feed_specs(base)

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        sig, op = self._ops[node.id]
        if node.framework_dtype in HANDLE_DTYPES:
            raise NotEvaluable(
                f"{node.id!r} is a TensorFlow {node.framework_dtype} handle, which has no value to show."
            )
        if op.const is not None:  # constants are read from the graph, nothing runs
            return to_numpy(import_tf().make_ndarray(op.const), node.framework_dtype)
        if sig.error:
            raise NotEvaluable(sig.error)
        value = self._runner.run(sig, op, self._run_feeds(sig, feeds))
        return to_numpy(value, node.framework_dtype)

    def _run_feeds(self, sig: SignatureGraph, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every input of ``sig``, checked: control edges of a frozen function can reach
        inputs the value does not depend on. Inputs not given are zeros (unknown dims 1).
        Refuses a graph with unvetted ops before anything runs unless the file is trusted."""
        if self.vetting.findings and not self.trusted:
            raise TrustRequired(self.vetting.sentence(self._graph_file), self.vetting.op_types)
        run_feeds = {}
        for spec in self._signature_specs(sig):
            if spec.name in feeds:
                run_feeds[spec.name] = self._cast_feed(spec, feeds[spec.name])
            else:
                shape = tuple(1 if d is None else d for d in (spec.shape or ()))
                run_feeds[spec.name] = np.zeros(shape, dtype=numpy_dtype(spec.dtype))
        return run_feeds

    # -- tracing ------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        # serving_default first, then by name: the proto's map order differs between runs.
        bases = sorted(base for base, sig in self.signatures.items() if not sig.error)
        return sorted(bases, key=lambda base: self.signatures[base].key != "serving_default")

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        from tensor_inspector.backends.tensorflow.graph_trace import trace_signature

        sig = self.signatures.get(entry)
        if sig is None or sig.error:
            raise NotEvaluable(
                sig.error if sig is not None else f"{entry!r} is not a signature of this file."
            )
        with self.lock:
            run_feeds = self._run_feeds(sig, feeds)
            ops = [(node_id, op) for node_id, (s, op) in self._ops.items() if s is sig]
            listed = [(node_id, op, self._nodes[node_id]) for node_id, op in ops]
            trace_signature(self._runner, sig, listed, run_feeds, on_node, cancel)

    @staticmethod
    def _cast_feed(spec: FeedSpec, value: Any) -> np.ndarray:
        if spec.dtype == "str":
            return np.asarray(value, dtype=object)
        array = np.asarray(value)
        target = numpy_dtype(spec.dtype)
        if array.dtype != target:
            if not np.can_cast(array.dtype, target, casting="same_kind"):
                raise InspectorError(f"Feed {spec.name!r} must be {target.name}, not {array.dtype.name}.")
            array = array.astype(target)
        if spec.shape is not None:
            ok = len(spec.shape) == array.ndim and all(
                d is None or d == s for d, s in zip(spec.shape, array.shape)
            )
            if not ok:
                want = tuple("?" if d is None else d for d in spec.shape)
                raise InspectorError(f"Feed {spec.name!r} must have shape {want}, not {array.shape}.")
        return array

    # -- writing ------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        from tensor_inspector.backends.tensorflow.write import write_saved_model

        by_key = {self._id_to_key[node_id]: value for node_id, value in replacements.items()}
        write_saved_model(self.path, self.variables, Path(path), by_key)

    def close(self) -> None:
        self._runner.close()
        if self.variables is not None:
            self.variables.close()
