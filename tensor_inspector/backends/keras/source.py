"""An opened Keras file: weights read with h5py under layer names, layer outputs evaluated by Keras.

Opening reads the config as JSON and walks the HDF5 weights; it never imports Keras or
runs anything from the file. The tree is one group per layer holding its weights
(``conv/kernel``, storage path in the node's ``h5_path`` metadata) and, for Functional
and Sequential models, its computed outputs (``conv/output``, ``lstm/output_1``), which
``model.ModelRunner`` evaluates on demand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import zipfile
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
)
from tensor_inspector.backends.keras import config as cfg
from tensor_inspector.backends.keras.naming import keras3_weight_id, legacy_weight_id
from tensor_inspector.core.dtypes import ML_DTYPES

ZIP_MAGIC = b"PK\x03\x04"
WEIGHTS_MEMBER = "model.weights.h5"
CONFIG_MEMBER = "config.json"


def is_keras_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return CONFIG_MEMBER in names and WEIGHTS_MEMBER in names


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _dataset_dtype(dataset: Any) -> tuple[np.dtype, str]:
    """The numpy dtype of a weight; bf16/fp8 stored as raw bytes carry their name in an attribute."""
    declared = _text(dataset.attrs.get("dtype"))
    if (
        isinstance(declared, str)
        and declared in ML_DTYPES
        and dataset.dtype.itemsize == ML_DTYPES[declared].itemsize
    ):
        return ML_DTYPES[declared], declared
    return dataset.dtype, dataset.dtype.name


def _clashes(node_id: str, taken: set[str]) -> bool:
    """True when ``node_id`` is taken, or would be a group of, or inside, a taken tensor."""
    parts = node_id.split("/")
    if any("/".join(parts[:depth]) in taken for depth in range(1, len(parts) + 1)):
        return True
    return any(t.startswith(node_id + "/") for t in taken)


class KerasSource(Source):
    backend_name = "keras"
    writable = True

    def __init__(self, path: Path, trust: bool = False):
        super().__init__(path)
        import h5py

        self.trusted = trust
        self._archive: zipfile.ZipFile | None = None
        self._member: Any = None
        self._h5: Any = None
        self.is_archive = is_keras_zip(self.path)
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
                raw = _text(self._h5.attrs.get("model_config"))
                config = json.loads(raw) if raw else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.close()
            raise CorruptFile(f"The model configuration in {self.path.name} is not valid JSON.") from None
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            self.close()
            raise CorruptFile(f"{self.path.name} is a damaged Keras file ({exc}).") from None
        self.config = config if isinstance(config, dict) else None
        self.layers = {e["path"]: e for e in cfg.config_layers(self.config)} if self.config else {}
        self.flagged = [e for e in self.layers.values() if e["flagged"]]
        self.problems = cfg.trust_problems(self.config) if self.config else []
        self._h5_paths: dict[str, str] = {}  # node id -> dataset path in the HDF5 weights
        self._outputs: dict[str, tuple[str, int]] = {}  # node id -> (layer name, output index)
        self._inputs: list[cfg.InputInfo] = []
        self._runner: Any = None
        self._entry: str | None = None  # the node standing for one run of the whole model
        self._describe_model()
        weights = self._weight_ids()
        self._add_entry(weights)
        self._add_layer_groups(weights)
        for node_id, name, dataset in weights:
            self._add_weight(node_id, name, dataset)
        self._add_outputs()

    # -- the tree -------------------------------------------------------------------
    def _describe_model(self) -> None:
        self.metadata["keras_version"] = self._keras_version()
        if self.config is None:
            self.metadata["layer outputs"] = "none: the file holds weights without a model config"
            return
        self.metadata["model class"] = self.config.get("class_name")
        if not cfg.is_graph_model(self.config):
            self.metadata["layer outputs"] = "only Functional and Sequential models list layer outputs"
        elif self.problems:
            self.metadata["layer outputs need trust"] = "; ".join(p.what for p in self.problems)

    def _keras_version(self) -> str | None:
        value = self._h5.attrs.get("keras_version")
        if value is None and "model_weights" in self._h5:
            value = self._h5["model_weights"].attrs.get("keras_version")
        if value is None and self._archive is not None:
            try:
                value = json.loads(self._archive.read("metadata.json")).get("keras_version")
            except (KeyError, ValueError):
                value = None
        text = _text(value)
        return text if isinstance(text, str) else None

    def _weight_ids(self) -> list[tuple[str, str, Any]]:
        """(node id, storage path, dataset) for every dataset, ids under layer names where known."""
        import h5py

        datasets: list[tuple[str, Any]] = []
        self._h5.visititems(
            lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None
        )
        if "model_weights" in self._h5:
            base: str | None = "model_weights/"
        elif "layer_names" in self._h5.attrs:  # Keras 2 save_weights: layers at the root
            base = ""
        else:
            base = None

        def object_name(prefix: str) -> str | None:
            group = self._h5.get(prefix + "/vars")
            return _text(group.attrs.get("name")) if isinstance(group, h5py.Group) else None

        def count_of(prefix: str) -> int:
            group = self._h5.get(prefix + "/vars")
            return len(group) if isinstance(group, h5py.Group) else 0

        result: list[tuple[str, str, Any]] = []
        taken: set[str] = set()
        for name, dataset in datasets:
            if base is not None:
                node_id = legacy_weight_id(name, base)
            else:
                node_id = keras3_weight_id(name, object_name, self.layers, count_of)
            if node_id is None or _clashes(node_id, taken):
                node_id = name  # keep the storage path when no unique layer name fits
            taken.add(node_id)
            result.append((node_id, name, dataset))
        return result

    def _add_layer_groups(self, weights: list[tuple[str, str, Any]]) -> None:
        """A group per layer, in config order, carrying what the config says about the layer."""
        used = {node_id for node_id, _, _ in weights}
        for path, entry in self.layers.items():
            layer_id = "/".join(path)
            top_level = len(path) == 1 and entry.get("class_name") != "InputLayer"
            if not top_level and not any(u.startswith(layer_id + "/") for u in used):
                continue
            if layer_id in used:
                continue
            metadata = {k: v for k, v in entry.items() if k not in ("path", "config")}
            self._add_with_groups(Node(id=layer_id, name=path[-1], kind=NodeKind.GROUP, metadata=metadata))

    def _add_entry(self, weights: list[tuple[str, str, Any]]) -> None:
        """A signature node for tracing the whole model, named like the model, at the top.

        Layer outputs keep their ids (``dense/output``), so the model gets a node of its own;
        its name is the model's unless a layer or weight already uses it.
        """
        if self.config is None or not cfg.is_graph_model(self.config):
            return
        if not cfg.layer_outputs(self.config) or not cfg.model_inputs(self.config):
            return  # nothing to run, or no input shape to run it on
        taken = {node_id.split("/")[0] for node_id, _, _ in weights} | {p[0] for p in self.layers}
        inner = self.config.get("config") or {}
        name = str(inner.get("name") or "model")
        entry = name
        while entry in taken:
            entry += "_model"
        self._entry = entry
        self._add(
            Node(
                id=entry,
                name=name,
                kind=NodeKind.SIGNATURE,
                metadata={
                    "model class": self.config.get("class_name"),
                    "inputs": [i.name for i in cfg.model_inputs(self.config)],
                    "note": "one run of the whole model; its layers' outputs are traced",
                },
            )
        )

    def _add_weight(self, node_id: str, storage: str, dataset: Any) -> None:
        dtype, dtype_name = _dataset_dtype(dataset)
        metadata: dict[str, Any] = {"h5_path": storage}
        owner = dataset.parent.attrs.get("name")
        if owner is not None:
            metadata["layer"] = _text(owner)
        if dtype.kind in "OSUV" and dtype_name == dtype.name and dtype.kind != "S":
            metadata["note"] = "not a numeric weight"
        self._h5_paths[node_id] = storage
        self._add_with_groups(
            Node(
                id=node_id,
                name=node_id.rsplit("/", 1)[-1],
                kind=NodeKind.TENSOR,
                dtype=np.dtype(dtype).name,
                framework_dtype=dtype_name,
                shape=tuple(dataset.shape or ()),
                nbytes=int(dataset.size) * np.dtype(dtype).itemsize,
                metadata=metadata,
            )
        )

    def _add_outputs(self) -> None:
        if self.config is None or not cfg.is_graph_model(self.config):
            return
        self._inputs = cfg.model_inputs(self.config)
        needs = "; ".join(p.what for p in self.problems)
        for layer in cfg.layer_outputs(self.config):
            for index in range(layer.count):
                node_id = f"{layer.name}/output" if layer.count == 1 else f"{layer.name}/output_{index}"
                if node_id in self._nodes:
                    continue
                shape, dtype = layer.known.get(index, (None, None))
                metadata: dict[str, Any] = {
                    "layer": layer.name,
                    "class_name": layer.class_name,
                    "output": index,
                }
                if needs:
                    metadata["needs trust"] = needs
                self._add_with_groups(
                    Node(
                        id=node_id,
                        name=node_id.rsplit("/", 1)[-1],
                        kind=NodeKind.COMPUTED,
                        dtype=dtype if isinstance(dtype, str) else None,
                        shape=shape,
                        metadata=metadata,
                    )
                )
                self._outputs[node_id] = (layer.name, index)

    # -- values ---------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        dataset = self._h5[self._h5_paths[node.id]]
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

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        if node_id is not None and node_id not in self._outputs and node_id != self._entry:
            return []
        return [
            FeedSpec(name=i.name, dtype=i.dtype, shape=i.shape, description="model input")
            for i in self._inputs
        ]

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        layer, index = self._outputs[node.id]
        result: np.ndarray = self._model_runner().run(layer, index, feeds)
        return result

    def _model_runner(self) -> Any:
        from tensor_inspector.backends.keras.model import ModelRunner

        if self._runner is None:
            self._runner = ModelRunner(
                self.path, self.config or {}, self.problems, self._inputs, self.trusted
            )
        return self._runner

    # -- tracing --------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        # from the config read on open: no Keras import, no model load
        return [self._entry] if self._entry is not None else []

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        from tensor_inspector.backends.keras.trace import trace_model

        if entry != self._entry:
            raise NotEvaluable(f"{entry!r} is not the model of this file.")
        with self.lock:
            runner = self._model_runner()
            model = runner.model()  # the same trust rules as evaluating one layer
            listed = {place: node_id for node_id, place in self._outputs.items()}
            trace_model(model, listed, runner.ordered_feeds(feeds), on_node, cancel)

    # -- writing --------------------------------------------------------------------
    def _write(self, path: Path, replacements: Mapping[str, np.ndarray]) -> None:
        """A copy with datasets overwritten in place (same shape and dtype, so the layout is kept)."""
        import h5py

        path = Path(path)
        workdir = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            weights = workdir / WEIGHTS_MEMBER
            archive = self._archive
            if archive is not None:
                with open(weights, "wb") as out, archive.open(WEIGHTS_MEMBER) as src:
                    shutil.copyfileobj(src, out)
            else:
                shutil.copyfile(self.path, weights)
            with h5py.File(weights, "r+") as fh:
                for node_id, value in replacements.items():
                    dataset = fh[self._h5_paths[node_id]]
                    dataset[...] = np.asarray(value).view(dataset.dtype)
            if archive is not None:
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
        for handle in (self._h5, self._member, self._archive):
            try:
                if handle is not None:
                    handle.close()
            except Exception:  # closing must never hide the error being reported
                pass
        self._h5 = self._member = self._archive = None
        self._runner = None  # the Keras model holds no file; drop it with the source
