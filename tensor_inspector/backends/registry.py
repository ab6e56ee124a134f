"""Format detection and lazy loading of backends.

Built-in backends are named by ``module:Class`` strings, so importing this module
imports no backend module, and backend modules import their framework only when a
file is opened. Third parties add backends through the entry-point group
``tensor_inspector.backends`` (each entry point loads a ``Backend`` subclass).
"""

from __future__ import annotations

import importlib
import logging
import os
from functools import lru_cache
from pathlib import Path

from tensor_inspector.backends.base import Backend, InspectorError, Source, UnsupportedFormat
from tensor_inspector.backends.identify import identify

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tensor_inspector.backends"
EXTRA_BACKENDS_VARIABLE = "TENSOR_INSPECTOR_BACKENDS"

# name -> "module:Class". Order matters only for ties in detection confidence.
BUILTIN_BACKENDS: dict[str, str] = {
    "numpy": "tensor_inspector.backends.numpy:NumpyBackend",
    "safetensors": "tensor_inspector.backends.safetensors:SafetensorsBackend",
    "torch": "tensor_inspector.backends.pytorch.backend:TorchBackend",
    "pickle": "tensor_inspector.backends.pickles.backend:PickleBackend",
    "tensorflow": "tensor_inspector.backends.tensorflow.backend:TensorFlowBackend",
    "keras": "tensor_inspector.backends.keras.backend:KerasBackend",
    "tflite": "tensor_inspector.backends.tflite.backend:TFLiteBackend",
    "gguf": "tensor_inspector.backends.gguf.backend:GGUFBackend",
    "onnx": "tensor_inspector.backends.onnx.backend:OnnxBackend",
}


def _load(spec: str) -> Backend:
    module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    backend_cls: type[Backend] = getattr(module, class_name)
    return backend_cls()


@lru_cache(maxsize=1)
def available_backends() -> dict[str, Backend]:
    """All backends whose module imports (built-ins, then entry points), by name."""
    backends: dict[str, Backend] = {}
    # TENSOR_INSPECTOR_BACKENDS="name=module:Class,...": backends under development, loaded
    # first so they win ties; they reach the reader process through its environment.
    extra = dict(
        item.split("=", 1) for item in os.environ.get(EXTRA_BACKENDS_VARIABLE, "").split(",") if "=" in item
    )
    for name, spec in {**extra, **BUILTIN_BACKENDS}.items():
        try:
            backends[name] = _load(spec)
        except ImportError as exc:  # a built-in not shipped in this build
            log.debug("backend %s unavailable: %s", name, exc)
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                backend_cls = ep.load()
                backends[ep.name] = backend_cls() if isinstance(backend_cls, type) else backend_cls
            except Exception as exc:  # a broken plugin must not break the app
                log.warning("backend plugin %s failed to load: %s", ep.name, exc)
    except Exception as exc:
        log.debug("entry points unavailable: %s", exc)
    return backends


def get_backend(name: str) -> Backend:
    try:
        return available_backends()[name]
    except KeyError:
        raise InspectorError(f"No backend named {name!r}.") from None


def supported_formats() -> str:
    """One line listing the formats this installation knows."""
    return "; ".join(b.description for b in available_backends().values())


def detect(path: str | Path) -> list[tuple[float, Backend]]:
    """Backends that recognise ``path``, most confident first."""
    path = Path(path)
    found: list[tuple[float, Backend]] = []
    for backend in available_backends().values():
        try:
            confidence = backend.detect(path)
        except Exception as exc:  # detection reads bytes only; a failure means "not mine"
            log.debug("detect %s by %s failed: %s", path, backend.name, exc)
            continue
        if confidence > 0:
            found.append((confidence, backend))
    found.sort(key=lambda pair: -pair[0])
    return found


def open_path(path: str | Path, trust: bool = False, backend: str | None = None) -> Source:
    """Open ``path`` with the best backend; one clear error if nothing fits."""
    path = Path(path)
    if not path.exists() and not _is_checkpoint_prefix(path):
        raise InspectorError(f"{path} does not exist.")
    if backend is not None:
        chosen = get_backend(backend)
    else:
        candidates = detect(path)
        known = identify(path, definite_only=bool(candidates))  # files we know but do not read
        if known is not None and (known.definite or not candidates):
            raise UnsupportedFormat(known.sentence)
        if not candidates:
            if path.is_file() and path.stat().st_size == 0:
                raise UnsupportedFormat(f"{path} is empty (0 bytes).")
            what = "directory" if path.is_dir() else "file"
            raise UnsupportedFormat(
                f"{path} is not a {what} any backend recognises. Supported: {supported_formats()}."
            )
        chosen = candidates[0][1]
    chosen.require_framework()
    source = chosen.open(path, trust=trust)
    source.trusted = trust
    return source


def _is_checkpoint_prefix(path: Path) -> bool:
    """TF checkpoints are named by a prefix that is not itself a file."""
    return Path(str(path) + ".index").exists()
