"""Reading ONNX initializers: inline ones from the protobuf, external ones by offset.

External tensors are read from a memory map of their file, so a slice of a 4 GB weight
touches only its pages; what is returned is a copy, so the maps can be released before
the files are replaced. Types numpy cannot view directly (4-bit types, strings, data in
the typed ``*_data`` fields) go through ``onnx.numpy_helper``.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import CorruptFile, Index, InspectorError, NodeKind
from tensor_inspector.backends.onnx.listing import numpy_name
from tensor_inspector.backends.onnx.model import EXTERNAL, External, external_info

# Types whose raw bytes are numpy's own layout (not packed 4-bit or 2-bit types).
_PACKED = {"int4", "uint4", "float4_e2m1", "int2", "uint2"}


def raw_dtype(tensor: Any) -> np.dtype | None:
    """The numpy dtype of ``tensor``'s raw bytes, None where they need onnx to unpack."""
    name = numpy_name(tensor.data_type)
    if name is None or name == "str" or name in _PACKED:
        return None
    import onnx

    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type))


def tensor_meta(tensor: Any, folder: Path, model_name: str) -> dict[str, Any]:
    """Node fields of a stored tensor (checks its external reference, if any)."""
    import onnx

    shape = tuple(int(d) for d in tensor.dims)
    dtype = raw_dtype(tensor)
    meta: dict[str, Any] = {}
    if tensor.data_location == EXTERNAL:
        ext = external_info(tensor, folder, model_name)
        meta["storage"] = f"external: {ext.location} at offset {ext.offset}"
    else:
        meta["storage"] = "inside the model file"
    if tensor.doc_string:
        meta["doc"] = tensor.doc_string
    return {
        "kind": NodeKind.TENSOR,
        "dtype": numpy_name(tensor.data_type),
        "framework_dtype": onnx.TensorProto.DataType.Name(tensor.data_type).lower(),
        "shape": shape,
        "nbytes": int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if dtype is not None else None,
        "metadata": meta,
    }


class TensorReader:
    """Reads tensors of one model; holds a memory map per external data file until closed."""

    def __init__(self, folder: Path, model_name: str):
        self.folder = folder
        self.model_name = model_name
        self._maps: dict[Path, mmap.mmap] = {}

    def read(self, tensor: Any, index: Index | None) -> np.ndarray:
        shape = tuple(int(d) for d in tensor.dims)
        if tensor.data_location != EXTERNAL:
            value = self._inline(tensor)
            return np.array(value[index]) if index is not None else value
        ext = external_info(tensor, self.folder, self.model_name)
        dtype = raw_dtype(tensor)
        if dtype is None:  # packed or string types: let onnx unpack the bytes
            return self._unpacked(tensor, ext, shape, index)
        count = int(np.prod(shape, dtype=np.int64))
        view = np.frombuffer(self._map(ext, count * dtype.itemsize), dtype, count, ext.offset).reshape(shape)
        return np.array(view[index] if index is not None else view)

    def raw_bytes(self, tensor: Any) -> memoryview:
        """The stored bytes of an external tensor (what the writer copies unchanged)."""
        ext = external_info(tensor, self.folder, self.model_name)
        size = ext.length
        if size is None:
            dtype = raw_dtype(tensor)
            if dtype is None:
                raise InspectorError(
                    f"{tensor.name!r} in {self.model_name} has external data without a length."
                )
            size = int(np.prod(tuple(tensor.dims), dtype=np.int64)) * dtype.itemsize
        return memoryview(self._map(ext, size))[ext.offset : ext.offset + size]

    def _inline(self, tensor: Any) -> np.ndarray:
        from onnx import numpy_helper

        try:
            value: np.ndarray = numpy_helper.to_array(tensor)
        except Exception as exc:
            raise CorruptFile(f"{tensor.name!r} in {self.model_name} is damaged ({exc}).") from None
        return value

    def _unpacked(
        self, tensor: Any, ext: External, shape: tuple[int, ...], index: Index | None
    ) -> np.ndarray:
        import onnx

        size = ext.length if ext.length is not None else len(self._map(ext, 0)) - ext.offset
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.ClearField("external_data")
        copy.data_location = onnx.TensorProto.DEFAULT
        copy.raw_data = bytes(self._map(ext, size)[ext.offset : ext.offset + size])
        value = self._inline(copy).reshape(shape)
        return np.array(value[index]) if index is not None else value

    def _map(self, ext: External, needed: int) -> mmap.mmap:
        mapped = self._maps.get(ext.file)
        if mapped is None:
            try:
                with open(ext.file, "rb") as fh:
                    mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except FileNotFoundError:
                raise CorruptFile(
                    f"{self.model_name} keeps weights in {ext.location}, which is missing beside it."
                ) from None
            except (OSError, ValueError) as exc:  # an empty file cannot be mapped
                raise CorruptFile(
                    f"Cannot read {ext.location} (external data of {self.model_name}): {exc}."
                ) from None
            self._maps[ext.file] = mapped
        if ext.offset + needed > len(mapped):
            raise CorruptFile(
                f"{ext.location} is too short for the tensors {self.model_name} stores in it "
                f"(needs {ext.offset + needed:,} bytes, has {len(mapped):,}); it may be truncated."
            )
        return mapped

    def close(self) -> None:
        for mapped in self._maps.values():
            try:
                mapped.close()
            except BufferError:  # a view still exported: the map goes when its last view does
                pass
        self._maps.clear()
