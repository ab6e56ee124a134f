"""An ONNX model read without its weights: the protobuf, external-data checks, op vetting.

The model is parsed with ``load_external_data=False``, so opening a model whose weights
live in external files costs the protobuf alone; those tensors are read later, by offset.
Nothing here runs the model.

Two checks guard files from strangers:
- external data must name a file inside the model's folder (a relative path with no
  ``..`` step out of it). The check is on the path as written, not on where symlinks
  lead: the Hugging Face cache links every file of a model folder to a blob elsewhere.
- the ops onnxruntime would run must come from an allow-list (``disallowed_ops``):
  standard ``ai.onnx`` ops, the classic ML ops, and model-local functions built from
  them. Other domains (onnxruntime's contrib ops, custom-op libraries) need trust.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tensor_inspector.backends.base import CorruptFile, InspectorError

STANDARD_DOMAINS = {"", "ai.onnx"}
ML_DOMAIN = "ai.onnx.ml"
# The ai.onnx.ml operator set: classic ML models (scikit-learn, XGBoost through onnxmltools).
# Each computes from its inputs and attributes only; none reads a file or a device.
ML_OPS = {
    "ArrayFeatureExtractor",
    "Binarizer",
    "CastMap",
    "CategoryMapper",
    "DictVectorizer",
    "FeatureVectorizer",
    "Imputer",
    "LabelEncoder",
    "LinearClassifier",
    "LinearRegressor",
    "Normalizer",
    "OneHotEncoder",
    "SVMClassifier",
    "SVMRegressor",
    "Scaler",
    "TreeEnsemble",
    "TreeEnsembleClassifier",
    "TreeEnsembleRegressor",
    "ZipMap",
}
EXTERNAL = 1  # TensorProto.EXTERNAL


def import_onnx() -> Any:
    import onnx

    return onnx


def load_model(path: Path) -> Any:
    """The ModelProto of ``path``, external tensors left as references."""
    onnx = import_onnx()
    try:
        with open(path, "rb") as fh:
            return onnx.load_model(fh, load_external_data=False)
    except OSError as exc:
        raise InspectorError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CorruptFile(f"{path.name} is not a valid ONNX model ({_first_line(exc)}).") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass(frozen=True)
class External:
    """Where an external tensor's bytes are: file (inside the model's folder), offset, length."""

    file: Path
    location: str
    offset: int
    length: int | None


def external_info(tensor: Any, folder: Path, model_name: str) -> External:
    """The checked external-data reference of ``tensor`` (data_location EXTERNAL)."""
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    normal = os.path.normpath(location) if location else ""
    if (
        not location
        or os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or normal == ".."
        or normal.startswith(".." + os.sep)
        or (len(location) > 1 and location[1] == ":")  # a Windows drive
    ):
        raise CorruptFile(
            f"{model_name} refers to external data outside its folder ({location or 'no file name'} "
            f"for {tensor.name!r}); Tensor Inspector reads external data only from the model's folder."
        )
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries["length"]) if "length" in entries else None
    except ValueError:
        raise CorruptFile(f"{model_name} has a malformed external data entry for {tensor.name!r}.") from None
    if offset < 0 or (length is not None and length < 0):
        raise CorruptFile(f"{model_name} has a negative external data offset for {tensor.name!r}.")
    return External(folder / normal, location, offset, length)


def tensors_in_graph(graph: Any) -> Iterator[Any]:
    """Every TensorProto held by ``graph`` and its subgraphs: initializers and attribute tensors."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from _attribute_tensors(attr)


def _attribute_tensors(attr: Any) -> Iterator[Any]:
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    if attr.HasField("sparse_tensor"):
        yield attr.sparse_tensor.values
        yield attr.sparse_tensor.indices
    for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
        yield from tensors_in_graph(sub)


def all_tensors(model: Any) -> Iterator[Any]:
    yield from tensors_in_graph(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                yield from _attribute_tensors(attr)


def subgraphs(node: Any) -> list[tuple[str, Any]]:
    """(attribute name, GraphProto) of a node's graph attributes: If branches, Loop/Scan bodies."""
    found: list[tuple[str, Any]] = []
    for attr in node.attribute:
        if attr.HasField("g"):
            found.append((attr.name, attr.g))
        for k, sub in enumerate(attr.graphs):
            found.append((f"{attr.name}{k}", sub))
    return found


def disallowed_ops(model: Any) -> list[str]:
    """``domain::op`` of every op onnxruntime would run that is not on the allow-list."""
    functions = {(f.domain, f.name): f for f in model.functions}
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()

    def visit(nodes: Any) -> None:
        for node in nodes:
            key = (node.domain, node.op_type)
            if key in functions:  # a model-local function: judged by what it is made of
                if key not in seen:
                    seen.add(key)
                    visit(functions[key].node)
            elif node.domain in STANDARD_DOMAINS or (node.domain == ML_DOMAIN and node.op_type in ML_OPS):
                pass
            else:
                found.add(f"{node.domain}::{node.op_type}" if node.domain else node.op_type)
            for _, sub in subgraphs(node):
                visit(sub.node)

    visit(model.graph.node)
    return sorted(found)


def trust_sentence(model_name: str, ops: list[str]) -> str:
    shown = ", ".join(ops[:5]) + (", ..." if len(ops) > 5 else "")
    return (
        f"{model_name} uses operators outside the standard ONNX sets ({shown}), which onnxruntime "
        "would run as native code: evaluate it only if you trust where it came from."
    )
