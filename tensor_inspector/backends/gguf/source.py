"""An opened GGUF model (one file, or the shards of a split model opened as one).

The ``gguf`` package parses the header and memory-maps the data (``GGUFReader``); nothing
is read until a tensor is selected. Plain types (F32, F16, BF16, F64, I8..I64) read as
they are stored. Quantized types follow the convention of ``backends/quantized.py`` with
the roles GGUF users expect: the tensor's own node shows the dequantized float32 values
in the logical shape (what a diff against the original model pairs with), and its child
``<name>/raw`` shows the stored blocks as uint8 rows (``(..., bytes per row)``).

Shapes are numpy order: GGUF lists dimensions innermost first, and reversing them gives the
C-order array llama.cpp itself computes with.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.base import (
    CorruptFile,
    Index,
    InspectorError,
    Node,
    NodeKind,
    NotEvaluable,
    Source,
)
from tensor_inspector.core.dtypes import numpy_dtype

# ``<prefix>-00001-of-00003.gguf``: the llama.cpp split naming (gguf-split, GGUFWriter)
SPLIT_NAME = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
PLAIN = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
PLAIN.update({f"I{n}": f"int{n}" for n in (8, 16, 32, 64)})
MAX_ITEMS = 32  # array values shown on the file page (vocabularies have 100k+ entries)
MAX_TEXT = 4000


def split_files(path: Path) -> list[Path]:
    """All shards of the split model ``path`` belongs to, in order; ``[path]`` when not split."""
    match = SPLIT_NAME.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    shards = [path.with_name(f"{match['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise CorruptFile(f"{path.name} is one part of a split model; {missing[0]} is missing beside it.")
    return shards


def _field_value(field: Any) -> Any:
    """A key/value as plain data; long arrays (a vocabulary) by their first items and count."""
    count = len(field.data)
    if len(field.types) > 1 and count > MAX_ITEMS:  # an array: decode only what is shown
        return [*field.contents(slice(0, MAX_ITEMS)), f"... ({count:,} items)"]
    value = field.contents()
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + f"... ({len(value):,} characters)"
    return value


class GGUFSource(Source):
    backend_name = "gguf"
    format_name = "GGUF model"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        from gguf import GGUFReader

        self.shards = split_files(path)
        self._readers: list[Any] = []
        self._tensors: dict[str, Any] = {}  # node id -> gguf ReaderTensor
        self._shard_of: dict[str, int] = {}
        for number, shard in enumerate(self.shards):
            try:
                reader = GGUFReader(shard, "r")
            except (ValueError, IndexError, OSError, KeyError) as exc:
                raise CorruptFile(f"{shard.name} is not a readable GGUF file ({_first_line(exc)}).") from None
            self._readers.append(reader)
            self._read_fields(reader, number)
            for tensor in reader.tensors:
                self._add_tensor(tensor, number)
        if len(self.shards) > 1:
            self.metadata["split files"] = [p.name for p in self.shards]

    def _read_fields(self, reader: Any, number: int) -> None:
        """Key/values of the file page; the first shard's win (later shards repeat them)."""
        for name, field in reader.fields.items():
            if name in self.metadata or (name.startswith("GGUF.") and number > 0):
                continue
            try:
                self.metadata[name] = _field_value(field)
            except (UnicodeDecodeError, ValueError, IndexError):
                self.metadata[name] = "(not readable)"

    def _add_tensor(self, tensor: Any, shard: int) -> None:
        from gguf import GGML_QUANT_SIZES

        type_name = tensor.tensor_type.name
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        meta: dict[str, Any] = {
            "ggml_type": type_name,
            "data_offset": int(tensor.data_offset),
            "stored_bytes": int(tensor.n_bytes),
            "ggml_shape": [int(d) for d in tensor.shape.tolist()],
        }
        if len(self.shards) > 1:
            meta["shard"] = self.shards[shard].name
        name = tensor.name
        self._tensors[name] = tensor
        self._shard_of[name] = shard
        if type_name in PLAIN:
            dtype = PLAIN[type_name]
            nbytes = int(tensor.n_bytes)
            self._add(Node(name, name, NodeKind.TENSOR, None, dtype, type_name, shape, nbytes, meta))
            return
        block, type_size = GGML_QUANT_SIZES[tensor.tensor_type]
        raw_id = f"{name}/{quantized.RAW}"
        meta[quantized.QUANTIZATION] = {
            "scheme": f"ggml {type_name}",
            "block_size": block,
            "block_bytes": type_size,
        }
        meta.update(quantized.views(raw_id, name, quantized.DEQUANTIZED))
        self._add(
            Node(
                name,
                name,
                NodeKind.TENSOR,
                None,
                "float32",
                type_name,
                shape,
                4 * int(tensor.n_elements),
                meta,
            )
        )
        raw_meta = {**meta, **quantized.views(raw_id, name, quantized.RAW)}
        raw_shape = tuple(int(d) for d in tensor.data.shape)
        self._add(
            Node(
                raw_id,
                quantized.RAW,
                NodeKind.TENSOR,
                name,
                "uint8",
                f"{type_name} blocks",
                raw_shape,
                int(tensor.n_bytes),
                raw_meta,
            )
        )

    # -- values ---------------------------------------------------------------------
    def _tensor(self, node: Node) -> Any:
        if not self._readers:
            raise InspectorError("This file has been closed.")
        key = (
            node.metadata[quantized.VIEWS][quantized.DEQUANTIZED]
            if quantized.VIEWS in node.metadata
            else node.id
        )
        return self._tensors[key]

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        tensor = self._tensor(node)
        data: np.ndarray = tensor.data
        if node.metadata.get(quantized.VIEW) == quantized.RAW:
            return data if index is None else data[index]
        if node.framework_dtype in PLAIN:
            if node.framework_dtype == "BF16":  # the reader hands BF16 over as bytes
                data = data.view(numpy_dtype("bfloat16"))
            return data if index is None else data[index]
        return self._dequantized(tensor, node, index)

    def _dequantized(self, tensor: Any, node: Node, index: Index | None) -> np.ndarray:
        """Rows are whole blocks, so only the selected rows are dequantized."""
        from gguf.quants import dequantize

        ndim = len(node.shape or ())
        full = tuple(index or ())
        rows, last = (full[: ndim - 1], full[ndim - 1]) if len(full) == ndim else (full, slice(None))
        blocks = tensor.data[rows] if rows else tensor.data
        try:
            values = dequantize(np.asarray(blocks), tensor.tensor_type)
        except NotImplementedError:
            raise NotEvaluable(
                f"The gguf package cannot dequantize {tensor.tensor_type.name} tensors; "
                f"the stored blocks are shown under {node.id}/raw."
            ) from None
        return np.asarray(values[..., last], dtype=np.float32)

    # -- writing --------------------------------------------------------------------
    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        """A copy of the file with the replaced tensors' bytes patched where they are stored."""
        if len(self.shards) > 1:
            raise InspectorError(
                "Saving a split GGUF model is not supported yet; merge it with gguf-split first."
            )
        patches = [
            (int(self._tensor(self.node(k)).data_offset), self._encoded(self.node(k), v))
            for k, v in replacements.items()
        ]
        shutil.copyfile(self.path, path)
        with open(path, "r+b") as fh:
            for offset, data in patches:
                fh.seek(offset)
                fh.write(data)

    def stored_form(self, node_id: str, value: np.ndarray) -> np.ndarray:
        """Float values written into a quantized tensor read back as quantized and dequantized."""
        node = self.node(node_id)
        if node.metadata.get(quantized.VIEW) != quantized.DEQUANTIZED:
            return value
        from gguf.quants import dequantize, quantize

        tensor = self._tensor(node)
        try:
            blocks = quantize(np.ascontiguousarray(value, dtype=np.float32), tensor.tensor_type)
        except NotImplementedError:
            return value  # the write itself refuses with a sentence
        return np.asarray(dequantize(blocks, tensor.tensor_type), dtype=np.float32).reshape(value.shape)

    def _encoded(self, node: Node, value: np.ndarray) -> bytes:
        tensor = self._tensor(node)
        if node.metadata.get(quantized.VIEW) == quantized.DEQUANTIZED:
            from gguf.quants import quantize

            try:
                value = quantize(np.ascontiguousarray(value, dtype=np.float32), tensor.tensor_type)
            except NotImplementedError:
                raise InspectorError(
                    f"The gguf package cannot quantize {tensor.tensor_type.name} tensors, so {node.id!r} "
                    f"cannot be written from float values; edit its stored blocks ({node.id}/raw) instead."
                ) from None
        data = np.ascontiguousarray(value).tobytes()
        if len(data) != tensor.n_bytes:
            raise InspectorError(f"{node.id!r} takes {tensor.n_bytes} bytes, the new value {len(data)}.")
        return data

    def close(self) -> None:
        # the readers' memory maps go with the last arrays that use them
        self._readers = []
        self._tensors = {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
