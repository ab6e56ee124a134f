"""Keras files: ``.keras`` archives and legacy ``.h5`` models.

Opening never runs model code: the config is read as JSON and the weights with h5py
(``source.KerasSource``), after a probe in a child process, since h5py can crash on a
damaged file. Layer outputs are evaluated by Keras, loaded on the first evaluation and
only under the rules of ``model.check_loadable`` (Lambda layers and custom objects need
the user's trust).
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path
from typing import Any

from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    InspectorError,
    Source,
    UnsupportedFormat,
    read_head,
)
from tensor_inspector.backends.keras.source import WEIGHTS_MEMBER, ZIP_MAGIC, KerasSource, is_keras_zip
from tensor_inspector.core.isolation import IsolatedFailure, run_isolated

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PROBE = "tensor_inspector.backends.keras.backend:probe"  # run in a child process before opening


def _looks_like_keras(fh: Any) -> bool:
    if set(fh.attrs) & {"model_config", "layer_names", "keras_version"}:
        return True
    return "model_weights" in fh or ("layers" in fh and "vars" in fh)


def probe(path: str) -> dict[str, Any]:
    """Open and walk every object of the file's HDF5 weights, as ``KerasSource`` will.

    Run in a separate process by ``KerasBackend.open`` (``core.isolation``): h5py can
    crash or hang on a damaged file, and then only that process goes down.
    """
    import h5py

    file = Path(path)
    with contextlib.ExitStack() as stack:
        if read_head(file, 4) == ZIP_MAGIC:
            archive = stack.enter_context(zipfile.ZipFile(file))
            fh = stack.enter_context(h5py.File(stack.enter_context(archive.open(WEIGHTS_MEMBER)), "r"))
        else:
            fh = stack.enter_context(h5py.File(file, "r"))
        names: list[str] = []

        def visit(name: str, obj: Any) -> None:  # returning None keeps h5py walking
            names.append(name)

        fh.visititems(visit)
        return {"keras": _looks_like_keras(fh), "objects": len(names)}


def _probe_in_child(path: Path) -> dict[str, Any]:
    """``probe`` in a child process, or here when this process may not start one.

    The window's sandboxed reader cannot open /dev/null for the child's stdin (no write
    access anywhere), so the child cannot start there; that reader is itself the separate
    process a crash would take down, so probing in it keeps the window safe all the same.
    """
    try:
        found: dict[str, Any] = run_isolated(PROBE, str(path))
    except OSError:
        found = probe(str(path))
    return found


class KerasBackend(Backend):
    name = "keras"
    description = "Keras models (.keras archives, legacy .h5)"
    extensions = (".keras", ".h5", ".hdf5")
    framework = "h5py"
    extra = "tensorflow"

    def detect(self, path: Path) -> float:
        path = Path(path)
        head = read_head(path, 8)
        if head.startswith(ZIP_MAGIC):
            return 0.95 if is_keras_zip(path) else 0.0
        if head == HDF5_MAGIC:
            # Not opened here: h5py may crash on a damaged file; ``open`` probes it safely.
            return 0.9 if path.suffix.lower() in (".h5", ".hdf5", ".keras") else 0.6
        return 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        self.require_framework()
        path = Path(path)
        if not path.is_file():
            raise InspectorError(f"{path} is not a Keras file.")
        try:
            found = _probe_in_child(path)
        except IsolatedFailure as exc:
            if exc.crashed:
                raise CorruptFile(
                    f"{path.name} is damaged: {exc}. It was read in a separate "
                    "process, so nothing else was affected."
                ) from None
            raise CorruptFile(f"{path.name} is a damaged HDF5/Keras file ({exc}).") from None
        if not found.get("keras"):
            raise UnsupportedFormat(f"{path.name} is an HDF5 file but not a Keras model.")
        return KerasSource(path, trust=trust)
