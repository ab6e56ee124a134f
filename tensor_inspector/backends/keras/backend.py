"""Keras files: ``.keras`` archives and legacy ``.h5`` models, read without Keras.

``keras.models.load_model`` deserializes layers and can run code (Lambda layers
carry Python bytecode, custom objects import modules), so this backend reads the
archive with zipfile/json and the weights with h5py only. Layers from the model
config are listed under ``config/``; Lambda layers and custom objects are flagged
in their metadata and never executed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    Index,
    InspectorError,
    Node,
    NodeKind,
    Source,
    UnsupportedFormat,
    read_head,
)
from tensor_inspector.backends.keras.config import config_layers
from tensor_inspector.core.isolation import IsolatedFailure, run_isolated

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
WEIGHTS_MEMBER = "model.weights.h5"
PROBE = "tensor_inspector.backends.keras.backend:probe"  # run in a child process before opening
CONFIG_MEMBER = "config.json"


def _is_keras_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return CONFIG_MEMBER in names and WEIGHTS_MEMBER in names


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


def _dataset_dtype(dataset: Any) -> tuple[np.dtype, str]:
    """The numpy dtype of a weight; bf16/fp8 stored as raw bytes carry their name in an attribute."""
    from tensor_inspector.core.dtypes import ML_DTYPES

    declared = dataset.attrs.get("dtype")
    if isinstance(declared, bytes):
        declared = declared.decode()
    if (
        isinstance(declared, str)
        and declared in ML_DTYPES
        and dataset.dtype.itemsize == ML_DTYPES[declared].itemsize
    ):
        return ML_DTYPES[declared], declared
    return dataset.dtype, dataset.dtype.name


class KerasSource(Source):
    backend_name = "keras"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        import h5py

        self._archive: zipfile.ZipFile | None = None
        self._member: Any = None
        self.is_archive = _is_keras_zip(self.path)
        try:
            if self.is_archive:
                self.format_name = "Keras archive (.keras)"
                self._archive = zipfile.ZipFile(self.path)
                config = json.loads(self._archive.read(CONFIG_MEMBER))
                self._member = self._archive.open(WEIGHTS_MEMBER)  # seekable; h5py reads on demand
                self._h5 = h5py.File(self._member, "r")
            else:
                self.format_name = "Keras HDF5 model (.h5)"
                self._h5 = h5py.File(self.path, "r")
                raw = self._h5.attrs.get("model_config")
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8")
                config = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.close()
            raise CorruptFile(f"The model configuration in {self.path.name} is not valid JSON.") from None
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            self.close()
            raise CorruptFile(f"{self.path.name} is a damaged Keras file ({exc}).") from None
        self.flagged: list[dict[str, Any]] = []
        self._add_config(config)
        self._add_weights()

    def _add_config(self, config: Any) -> None:
        if not isinstance(config, dict):
            return
        self._add(
            Node(
                id="config",
                name="config",
                kind=NodeKind.GROUP,
                metadata={"class_name": config.get("class_name"), "keras_version": self._keras_version()},
            )
        )
        for layer in config_layers(config):
            if layer["flagged"]:
                self.flagged.append(layer)
            node_id = "config/" + "/".join(p.replace("/", "_") for p in layer["path"])
            if node_id in self._nodes:
                continue
            self._add_with_groups(
                Node(
                    id=node_id,
                    name=layer["path"][-1],
                    kind=NodeKind.GROUP,
                    metadata={k: v for k, v in layer.items() if k != "path"},
                )
            )

    def _keras_version(self) -> str | None:
        value = self._h5.attrs.get("keras_version") if self._h5 is not None else None
        if value is None and "model_weights" in self._h5:
            value = self._h5["model_weights"].attrs.get("keras_version")
        return value.decode() if isinstance(value, bytes) else value

    def _add_weights(self) -> None:
        import h5py

        datasets: list[tuple[str, Any]] = []
        self._h5.visititems(
            lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
        )
        for name, dataset in datasets:
            dtype, dtype_name = _dataset_dtype(dataset)
            owner = dataset.parent.attrs.get("name")
            metadata = {"h5_path": name}
            if owner is not None:
                metadata["layer"] = owner.decode() if isinstance(owner, bytes) else str(owner)
            if dtype.kind in "OSUV" and dtype_name == dtype.name and dtype.kind != "S":
                metadata["note"] = "not a numeric weight"
            self._add_with_groups(
                Node(
                    id=name,
                    name=name.rsplit("/", 1)[-1],
                    kind=NodeKind.TENSOR,
                    dtype=np.dtype(dtype).name,
                    framework_dtype=dtype_name,
                    shape=tuple(dataset.shape or ()),
                    nbytes=int(dataset.size) * np.dtype(dtype).itemsize,
                    metadata=metadata,
                )
            )

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        dataset = self._h5[node.id]
        dtype, _ = _dataset_dtype(dataset)
        if index is not None and dtype == dataset.dtype:
            try:  # h5py reads only the selected hyperslab for int/slice indexes
                return np.asarray(dataset[index])
            except (ValueError, TypeError):  # e.g. negative steps: read all, slice in numpy
                pass
        array = np.asarray(dataset[()])
        if array.dtype != dtype:
            array = array.view(dtype)
        return array[index] if index is not None else array

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        """A copy with datasets overwritten in place (same shape and dtype, so the layout is kept)."""
        import h5py

        path = Path(path)
        workdir = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            weights = workdir / WEIGHTS_MEMBER
            archive = self._archive
            if self.is_archive:
                assert archive is not None  # an archive source keeps its zip open until close()
                with open(weights, "wb") as out, archive.open(WEIGHTS_MEMBER) as src:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfile(self.path, weights)
            with h5py.File(weights, "r+") as fh:
                for node_id, value in replacements.items():
                    dataset = fh[node_id]
                    dataset[...] = np.asarray(value).view(dataset.dtype)
            if archive is not None and self.is_archive:
                with zipfile.ZipFile(path, "w") as out:
                    for info in archive.infolist():
                        if info.filename == WEIGHTS_MEMBER:
                            out.write(weights, WEIGHTS_MEMBER, compress_type=info.compress_type)
                        else:
                            out.writestr(info, archive.read(info.filename))
            else:
                shutil.copyfile(weights, path)
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise InspectorError(f"Writing {path.name} failed: {exc}.") from None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def close(self) -> None:
        for handle in (getattr(self, "_h5", None), self._member, self._archive):
            try:
                if handle is not None:
                    handle.close()
            except Exception:
                pass
        self._h5 = self._member = self._archive = None


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
            return 0.95 if _is_keras_zip(path) else 0.0
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
            found = run_isolated(PROBE, str(path))
        except IsolatedFailure as exc:
            if exc.crashed:
                raise CorruptFile(
                    f"{path.name} is damaged: {exc}. It was read in a separate "
                    "process, so nothing else was affected."
                ) from None
            raise CorruptFile(f"{path.name} is a damaged HDF5/Keras file ({exc}).") from None
        if not found.get("keras"):
            raise UnsupportedFormat(f"{path.name} is an HDF5 file but not a Keras model.")
        return KerasSource(path)
