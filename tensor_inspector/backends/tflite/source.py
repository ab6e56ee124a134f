"""An opened TFLite model: constant buffers read from the file, every other tensor evaluated.

Opening parses the flatbuffer only (``flatbuf``); TensorFlow is imported on the first
evaluation. The interpreter keeps every intermediate tensor
(``experimental_preserve_all_tensors``) and runs without the default XNNPACK delegate: a
delegated partition computes its inner tensors outside the interpreter, so they would
read as stale memory. Quantized tensors get a ``<id>/dequantized`` child (see
``backends/quantized.py``).
"""

from __future__ import annotations

import mmap
import shutil
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.base import (
    CorruptFile,
    FeedSpec,
    Index,
    InspectorError,
    MissingFramework,
    Node,
    NodeKind,
    NotEvaluable,
    OnNode,
    Source,
)
from tensor_inspector.backends.tflite import flatbuf
from tensor_inspector.backends.tflite.ops import op_name
from tensor_inspector.core.dtypes import numpy_dtype


class TFLiteSource(Source):
    backend_name = "tflite"
    format_name = "TFLite model"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        with open(path, "rb") as fh:
            try:
                self._map: mmap.mmap | None = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise CorruptFile(f"{path.name} is empty.") from None
        self.model = flatbuf.parse(memoryview(self._map), path.name)
        self._tensors: dict[str, tuple[int, flatbuf.Tensor]] = {}  # node id -> (subgraph, tensor)
        self._ids: dict[tuple[int, int], str] = {}
        self._grids: dict[str, tuple[np.ndarray, tuple[int, ...], np.ndarray]] = {}
        self._interpreter: Any = None
        self._input_shapes: dict[int, tuple[int, ...]] = {}
        self._entries: dict[str, int] = {}  # node id -> subgraph one run of it traces
        self._build()

    # -- the tree -------------------------------------------------------------------
    def _build(self) -> None:
        model = self.model
        self.metadata = {
            "schema version": model.version,
            "description": model.description,
            "subgraphs": len(model.subgraphs),
            "operators": sorted({op_name(*code) for code in model.operator_codes}),
        }
        for key, sig in [(s.key, s) for s in model.signatures]:
            node_id = key if key else "signature"
            self._add(
                Node(id=node_id, name=key, kind=NodeKind.SIGNATURE, metadata={"subgraph": sig.subgraph})
            )
            self._entries.setdefault(node_id, sig.subgraph)
        several = len(model.subgraphs) > 1
        if model.subgraphs and 0 not in self._entries.values() and not several:
            # files converted without signatures (TF1's converter) still run their main subgraph
            name = model.subgraphs[0].name or "main"
            self._add(Node(id=name, name=name, kind=NodeKind.SIGNATURE, metadata={"subgraph": 0}))
            self._entries[name] = 0
        for g, sub in enumerate(model.subgraphs):
            group = None
            if several:
                group = f"subgraph {g}" + (f" ({sub.name})" if sub.name else "")
                self._add(Node(id=group, name=group, kind=NodeKind.GROUP, metadata={"name": sub.name}))
                if g == 0 and 0 not in self._entries.values():
                    self._entries[group] = 0
            producers = {out: op for op, (_, _, outs) in enumerate(sub.operators) for out in outs}
            for tensor in sub.tensors:
                self._add_tensor(g, group, tensor, producers.get(tensor.index))
        # signature metadata names tensors by node id, now that ids are known
        for sig in model.signatures:
            node_id = sig.key if sig.key else "signature"
            meta = {
                "subgraph": sig.subgraph,
                "inputs": {k: self._ids.get((sig.subgraph, i), "?") for k, i in sig.inputs.items()},
                "outputs": {k: self._ids.get((sig.subgraph, i), "?") for k, i in sig.outputs.items()},
            }
            old = self._nodes[node_id]
            self._nodes[node_id] = Node(**{**old.__dict__, "metadata": meta})

    def _add_tensor(self, g: int, group: str | None, t: flatbuf.Tensor, producer: int | None) -> None:
        name = t.name or f"tensor {t.index}"
        node_id = f"{group}/{name}" if group else name
        if node_id in self._nodes:
            node_id = f"{node_id}#{t.index}"
        type_name, dtype = flatbuf.TENSOR_TYPES.get(t.type, (f"type {t.type}", None))
        begin, size = self.model.buffers[t.buffer] if t.buffer < len(self.model.buffers) else (0, 0)
        stored = size > 0 and not t.is_variable
        meta: dict[str, Any] = {"tensor_index": t.index, "subgraph": g, "buffer": t.buffer}
        if stored:
            meta["buffer_bytes"] = size
        if producer is not None:
            sub = self.model.subgraphs[g]
            meta["op"] = op_name(*self.model.operator_codes[sub.operators[producer][0]])
        if t.shape_signature and any(d < 0 for d in t.shape_signature):
            meta["shape_signature"] = list(t.shape_signature)
        if t.is_variable:
            meta["variable"] = True
        quant = t.quantization
        quantizable = quant is not None and quant.scale and dtype is not None and dtype[0] in "iu"
        if quantizable and quant is not None:
            meta[quantized.QUANTIZATION] = self._quantization(node_id, t, quant)
            meta.update(quantized.views(node_id, f"{node_id}/{quantized.DEQUANTIZED}", quantized.RAW))
        itemsize = numpy_dtype(dtype).itemsize if dtype else 0
        node = Node(
            id=node_id,
            name=name,
            kind=NodeKind.TENSOR if stored else NodeKind.COMPUTED,
            parent=group,
            dtype=dtype,
            framework_dtype=type_name,
            shape=tuple(t.shape),
            nbytes=int(np.prod(t.shape, dtype=np.int64)) * itemsize if dtype else size,
            metadata=meta,
        )
        if stored and dtype and size != node.nbytes:
            raise CorruptFile(
                f"{self.path.name}: tensor {name!r} has {size} bytes for shape {list(t.shape)}."
            )
        self._add(node)
        self._tensors[node_id] = (g, t)
        self._ids[(g, t.index)] = node_id
        if quantizable:
            self._add(quantized.dequantized_node(node))

    def _quantization(self, node_id: str, t: flatbuf.Tensor, q: flatbuf.Quantization) -> dict[str, Any]:
        scale = np.asarray(q.scale, np.float32)
        zero = np.asarray(q.zero_point or [0], np.int64)
        per_axis = scale.size > 1
        info: dict[str, Any] = {
            "scheme": "affine per-axis" if per_axis else "affine per-tensor",
            "scale": quantized.listed(scale),
            "zero_point": quantized.listed(zero),
        }
        if per_axis:
            info["axis"] = q.quantized_dimension
            info["channels"] = int(scale.size)
        return info

    def _grid(self, node_id: str, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...], np.ndarray]:
        _, t = self._tensors[node_id]
        q = t.quantization
        assert q is not None
        axis = q.quantized_dimension if len(q.scale) > 1 else None
        scale, block = quantized.grid(np.asarray(q.scale, np.float32), shape, axis)
        zeros = np.asarray(q.zero_point or [0], np.int64)
        zero = zeros.reshape(scale.shape) if zeros.size == scale.size else np.full(scale.shape, zeros[0])
        return scale, block, zero

    # -- values ---------------------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if node.metadata.get(quantized.VIEW) == quantized.DEQUANTIZED:
            raw = self.node(node.metadata[quantized.VIEWS][quantized.RAW])
            shape = tuple(self._tensors[raw.id][1].shape)
            scale, block, zero = self._grid(raw.id, shape)
            return quantized.dequantize(lambda i: self._read(raw, i), shape, index, scale, block, zero)
        if self._map is None:
            raise InspectorError("This file has been closed.")
        if node.dtype is None:
            raise NotEvaluable(
                f"{node.id!r} is a TFLite {node.framework_dtype} tensor, which has no array value."
            )
        _, t = self._tensors[node.id]
        begin, _ = self.model.buffers[t.buffer]
        count = int(np.prod(t.shape, dtype=np.int64))
        array = np.frombuffer(self._map, numpy_dtype(node.dtype), count, begin).reshape(t.shape)
        return array if index is None else array[index]

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        sub = 0
        if node_id is not None:
            node = self.node(node_id)
            sub = node.metadata.get("subgraph", 0)
        names = {}
        for sig in self.model.signatures:
            if sig.subgraph == sub:
                names.update({i: k for k, i in sig.inputs.items()})
        specs = []
        for i in self.model.subgraphs[sub].inputs:
            t = self.model.subgraphs[sub].tensors[i]
            node = self.node(self._ids[(sub, i)])
            shape = tuple(None if d < 0 else d for d in (t.shape_signature or t.shape))
            what = f"input {names[i]!r} " if i in names else "input "
            specs.append(FeedSpec(node.id, node.dtype or "float32", shape, f"{what}({node.framework_dtype})"))
        return specs

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if node.metadata.get(quantized.VIEW) == quantized.DEQUANTIZED:
            raw_id = node.metadata[quantized.VIEWS][quantized.RAW]
            return self._dequantized(raw_id, self._evaluate(self.node(raw_id), feeds))
        if node.dtype is None:
            raise NotEvaluable(
                f"{node.id!r} is a TFLite {node.framework_dtype} tensor, which has no array value."
            )
        g, t = self._tensors[node.id]
        interpreter = self._run(g, feeds)
        return np.array(interpreter.get_tensor(t.index, g))

    def _run(self, g: int, feeds: dict[str, np.ndarray]) -> Any:
        """The interpreter after one run of subgraph ``g`` with ``feeds``."""
        interpreter = self._ready_interpreter()
        if g == 0:
            self._set_inputs(interpreter, feeds)
            interpreter.invoke()
        else:
            self._run_signature_of(interpreter, g, feeds)
        return interpreter

    # -- tracing --------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        """Signatures (the main subgraph's first), or the main subgraph when none names it."""
        return sorted(self._entries, key=lambda node_id: self._entries[node_id] != 0)

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        from tensor_inspector.backends.tflite.trace import trace_operators

        g = self._entries.get(entry)
        if g is None:
            raise NotEvaluable(f"{entry!r} is not a signature of this model.")
        with self.lock:
            try:
                interpreter = self._run(g, dict(feeds))
            except (ValueError, RuntimeError) as exc:
                raise InspectorError(f"TFLite could not run {entry!r}: {_first_line(exc)}") from None
            op_names = [op_name(*code) for code in self.model.operator_codes]

            def get_tensor(index: int) -> np.ndarray | None:
                try:
                    return np.array(interpreter.get_tensor(index, g))
                except ValueError:  # a tensor the run left without data
                    return None

            trace_operators(
                self.model.subgraphs[g],
                lambda index: self._ids.get((g, index)),
                self._nodes,
                op_names,
                get_tensor,
                self._dequantized,
                on_node,
                cancel,
            )

    def _dequantized(self, raw_id: str, codes: np.ndarray) -> np.ndarray:
        scale, block, zero = self._grid(raw_id, codes.shape)
        return quantized.dequantize(lambda i: codes, codes.shape, None, scale, block, zero)

    def _ready_interpreter(self) -> Any:
        if self._interpreter is None:
            import importlib.util

            if importlib.util.find_spec("tensorflow") is None:
                raise MissingFramework("tensorflow", "tensorflow")
            from tensor_inspector.backends.tensorflow.common import import_tf

            tf = import_tf()
            with warnings.catch_warnings():  # the deprecation notice is not for our users
                warnings.simplefilter("ignore")
                try:
                    self._interpreter = tf.lite.Interpreter(
                        model_path=str(self.path),
                        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                        experimental_preserve_all_tensors=True,
                    )
                    self._interpreter.allocate_tensors()
                except (ValueError, RuntimeError) as exc:
                    self._interpreter = None
                    raise InspectorError(
                        f"TFLite could not load {self.path.name}: {_first_line(exc)}"
                    ) from exc
        return self._interpreter

    def _set_inputs(self, interpreter: Any, feeds: dict[str, np.ndarray]) -> None:
        aliases = {k: i for sig in self.model.signatures if sig.subgraph == 0 for k, i in sig.inputs.items()}
        arrays: dict[int, np.ndarray] = {}
        for spec in self.feed_specs(None):
            index = self._tensors[spec.name][1].index
            alias = next((k for k, i in aliases.items() if i == index), None)
            value = feeds.get(spec.name, feeds.get(alias) if alias else None)
            if value is None:
                shape = tuple(1 if d is None else d for d in spec.shape or ())
                value = np.zeros(shape, numpy_dtype(spec.dtype))
            arrays[index] = np.asarray(value, dtype=numpy_dtype(spec.dtype))
        resized = False
        for index, value in arrays.items():
            if (
                self._input_shapes.get(index, tuple(self._tensors[self._ids[(0, index)]][1].shape))
                != value.shape
            ):
                interpreter.resize_tensor_input(index, list(value.shape))
                self._input_shapes[index] = value.shape
                resized = True
        try:
            if resized:
                interpreter.allocate_tensors()
            for index, value in arrays.items():
                interpreter.set_tensor(index, value)
        except (ValueError, RuntimeError) as exc:
            raise InspectorError(f"TFLite refused the inputs: {_first_line(exc)}") from exc

    def _run_signature_of(self, interpreter: Any, g: int, feeds: dict[str, np.ndarray]) -> None:
        sig = next((s for s in self.model.signatures if s.subgraph == g), None)
        if sig is None:
            raise NotEvaluable(
                f"Subgraph {g} is called from inside the model (a loop or branch body); "
                "only the model's entry points can be run on their own."
            )
        runner = interpreter.get_signature_runner(sig.key)
        inputs = {}
        for key, i in sig.inputs.items():
            node = self.node(self._ids[(g, i)])
            value = feeds.get(key, feeds.get(node.id))
            if value is None:
                value = np.zeros(
                    tuple(max(d or 1, 1) for d in node.shape or ()), numpy_dtype(node.dtype or "float32")
                )
            inputs[key] = np.asarray(value, dtype=numpy_dtype(node.dtype or "float32"))
        runner(**inputs)

    # -- writing --------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        """A copy of the file with the replaced constant buffers patched in place."""
        patches = []
        for node_id, value in replacements.items():
            node = self.node(node_id)
            if node.metadata.get(quantized.VIEW) == quantized.DEQUANTIZED:
                quantized.refuse_view_write(node)
            _, t = self._tensors[node_id]
            sharing = [
                other for other, (_, o) in self._tensors.items() if o.buffer == t.buffer and other != node_id
            ]
            if sharing:
                raise InspectorError(
                    f"{node_id!r} shares its buffer with {sharing[0]!r}; changing one would change both."
                )
            begin, size = self.model.buffers[t.buffer]
            data = np.ascontiguousarray(value).tobytes()
            if len(data) != size:
                raise InspectorError(f"{node_id!r} needs {size} bytes, the new value has {len(data)}.")
            patches.append((begin, data))
        shutil.copyfile(self.path, path)
        with open(path, "r+b") as fh:
            for begin, data in patches:
                fh.seek(begin)
                fh.write(data)

    def close(self) -> None:
        self._interpreter = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # arrays read earlier still use it; it goes with them
                pass
            self._map = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
