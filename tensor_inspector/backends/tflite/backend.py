"""The TFLite backend: ``.tflite`` flatbuffers, recognised by their ``TFL3`` identifier.

Listing and reading constants need no framework; evaluating other tensors imports
TensorFlow (its TFLite interpreter) on first use, so ``framework`` stays None here and
the source names the missing extra when an evaluation needs it.
"""

from __future__ import annotations

from pathlib import Path

from tensor_inspector.backends.base import Backend, Source, read_head


class TFLiteBackend(Backend):
    name = "tflite"
    description = "TFLite models (.tflite)"
    extensions = (".tflite",)

    def detect(self, path: Path) -> float:
        path = Path(path)
        if path.is_dir():
            return 0.0
        head = read_head(path, 8)
        if len(head) == 8 and head[4:8] == b"TFL3":
            return 1.0
        return 0.5 if path.suffix == ".tflite" else 0.0  # claimed, so the error names this format

    def open(self, path: Path, trust: bool = False) -> Source:
        from tensor_inspector.backends.tflite.source import TFLiteSource

        return TFLiteSource(Path(path))
