"""ONNX models (``.onnx``, with or without external data files).

Detection reads the protobuf's top-level field numbers (``identify.protobuf_fields``):
an ONNX ModelProto starts with ``ir_version`` (field 1), holds a ``graph`` (field 7) and
uses no field outside the ModelProto schema, which tells it from Core ML models and
TensorFlow graphs, the other protobuf files people keep around. ``onnx`` is imported only
when a file is opened, ``onnxruntime`` only when a value is evaluated.
"""

from __future__ import annotations

from pathlib import Path

from tensor_inspector.backends.base import Backend, InspectorError, Source, read_head
from tensor_inspector.backends.identify import protobuf_fields

# ModelProto: field number -> wire type (0 varint, 2 length-delimited).
MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
GRAPH_FIELD = 7


def is_onnx_model(path: Path) -> bool:
    if read_head(path, 1) != b"\x08":  # ir_version is always written first
        return False
    fields = protobuf_fields(path)
    if not fields or fields[0] != (1, 0):
        return False
    return all(MODEL_FIELDS.get(n) == wire for n, wire in fields) and (GRAPH_FIELD, 2) in fields


class OnnxBackend(Backend):
    name = "onnx"
    description = "ONNX models (.onnx, with external data)"
    extensions = (".onnx",)
    framework = "onnx"
    extra = "onnx"

    def detect(self, path: Path) -> float:
        path = Path(path)
        if not path.is_file() or not is_onnx_model(path):
            return 0.0
        return 0.95 if path.suffix.lower() == ".onnx" else 0.85

    def open(self, path: Path, trust: bool = False) -> Source:
        self.require_framework()
        from tensor_inspector.backends.onnx.source import OnnxSource

        path = Path(path)
        if not path.is_file():
            raise InspectorError(f"{path} is not an ONNX model file.")
        return OnnxSource(path, trust=trust)
