"""The GGUF backend: llama.cpp's model files, recognised by the ``GGUF`` magic.

Reading needs the ``gguf`` package (the format's own reader and dequantizer), imported
when a file is opened; without it GGUF files are recognised and the message names the
extra that installs it.
"""

from __future__ import annotations

from pathlib import Path

from tensor_inspector.backends.base import Backend, Source, read_head


class GGUFBackend(Backend):
    name = "gguf"
    description = "GGUF models (.gguf, split -00001-of-0000N.gguf)"
    extensions = (".gguf",)
    framework = "gguf"
    extra = "gguf"

    def detect(self, path: Path) -> float:
        path = Path(path)
        if path.is_dir():
            return 0.0
        if read_head(path, 4) == b"GGUF":
            return 1.0
        return 0.5 if path.suffix == ".gguf" else 0.0  # claimed, so the error names this format

    def open(self, path: Path, trust: bool = False) -> Source:
        from tensor_inspector.backends.gguf.source import GGUFSource

        return GGUFSource(Path(path))
