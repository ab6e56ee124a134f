"""Writing an ONNX model with some initializers replaced.

The new model is the old protobuf with each replaced initializer's data swapped in place:
same name, same position, same element type, so every node, attribute and metadata entry
is kept. Inline tensors get new ``raw_data``. A model with external data gets a new data
file beside the new model (``<model name>.data``, or ``<model name>.<k>.data`` when that
name is a file the old model still reads from), holding every external tensor: replaced
ones from the new values, the others copied byte for byte. Writing beside the old data
instead of over it means the old model, and its ``.bak``, stay loadable whatever happens.
The data file is written under a temporary name, synced, then renamed; the model file
itself is written at the path it is given (``session.saving`` renames it into place).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError
from tensor_inspector.backends.onnx.listing import tensor_ids
from tensor_inspector.backends.onnx.model import EXTERNAL, all_tensors, external_info
from tensor_inspector.backends.onnx.tensors import TensorReader, raw_dtype
from tensor_inspector.core.atomic import TEMP_SUFFIX, current_umask, temp_prefix

ALIGN = 64  # offsets of tensors in the new data file (onnxruntime maps aligned data without copying)
COPY_CHUNK = 16 << 20
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.\d+-[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


def target_name(path: Path) -> str:
    """The name the model will have once saved: ``path``'s, or the one its temporary stands for."""
    match = _TEMP_NAME.fullmatch(path.name)
    return match["target"] if match else path.name


def data_file_name(path: Path, in_use: set[Path]) -> str:
    base = target_name(path)
    name, k = f"{base}.data", 1
    while (path.parent / name).absolute() in in_use:
        name, k = f"{base}.{k}.data", k + 1
    return name


def write_model(
    model: Any, reader: TensorReader, path: Path, replacements: dict[str, np.ndarray], model_name: str
) -> None:
    import onnx

    new = onnx.ModelProto()
    new.CopyFrom(model)
    targets = tensor_ids(new)
    unknown = set(replacements) - set(targets)
    if unknown:
        raise InspectorError(f"{model_name} has no initializer {sorted(unknown)[0]!r}.")
    for node_id, value in replacements.items():
        tensor = targets[node_id]
        if tensor.data_location != EXTERNAL:
            _set_inline(tensor, np.asarray(value))
    external = [t for t in all_tensors(new) if t.data_location == EXTERNAL]
    if external:
        in_use = {external_info(t, reader.folder, model_name).file.absolute() for t in external}
        replaced = {_key(targets[k]): np.asarray(v) for k, v in replacements.items()}
        _write_external(path, external, replaced, reader, model_name, in_use)
    with open(path, "wb") as fh:
        fh.write(new.SerializeToString())
        fh.flush()
        os.fsync(fh.fileno())


def _key(tensor: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A stored tensor's identity (protobuf wrappers are not stable Python objects)."""
    return tensor.name, tuple((e.key, e.value) for e in tensor.external_data)


def _set_inline(tensor: Any, value: np.ndarray) -> None:
    from onnx import numpy_helper

    fresh = numpy_helper.from_array(value, tensor.name)
    if fresh.data_type != tensor.data_type:
        raise InspectorError(f"{tensor.name!r} keeps its element type; the new value has {value.dtype}.")
    for name in ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data"):
        tensor.ClearField(name)
    if fresh.raw_data or not fresh.string_data:
        tensor.raw_data = fresh.raw_data
    else:
        tensor.ClearField("raw_data")
        tensor.string_data.extend(fresh.string_data)


def _payload(tensor: Any, value: np.ndarray) -> bytes:
    """The raw bytes of ``value`` as ``tensor``'s element type stores them."""
    from onnx import numpy_helper

    dtype = raw_dtype(tensor)
    if dtype is not None:
        return np.ascontiguousarray(value, dtype=dtype.newbyteorder("<")).tobytes()
    fresh = numpy_helper.from_array(value, tensor.name)  # packed 4-bit types
    if not fresh.raw_data:
        raise InspectorError(f"{tensor.name!r} cannot be written as external data ({value.dtype}).")
    return bytes(fresh.raw_data)


def _write_external(
    path: Path,
    tensors: list[Any],
    replaced: dict[tuple[str, tuple[tuple[str, str], ...]], np.ndarray],
    reader: TensorReader,
    model_name: str,
    in_use: set[Path],
) -> None:
    name = data_file_name(path, in_use)
    final = path.parent / name
    fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(final), suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            for tensor in tensors:
                offset = fh.tell()
                if offset % ALIGN:
                    fh.write(b"\0" * (ALIGN - offset % ALIGN))
                    offset = fh.tell()
                key = _key(tensor)
                if key in replaced:
                    data: bytes | memoryview = _payload(tensor, replaced[key])
                    fh.write(data)
                    length = len(data)
                else:
                    source = reader.raw_bytes(tensor)
                    for start in range(0, len(source), COPY_CHUNK):
                        fh.write(source[start : start + COPY_CHUNK])
                    length = len(source)
                    source.release()
                del tensor.external_data[:]
                for entry, text in (("location", name), ("offset", str(offset)), ("length", str(length))):
                    tensor.external_data.add(key=entry, value=text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
