"""Helpers shared by the TensorFlow modules: lazy import, dtype names, numpy conversion."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from tensor_inspector.backends.base import InspectorError, NotEvaluable

# TF dtypes with no numpy value: shown in the tree, never evaluated.
HANDLE_DTYPES = {"resource", "variant"}


def import_tf() -> Any:
    """Import TensorFlow on first use, quietly (its C++ log spam is not for users).

    TF 2.21 prints oneDNN/CUDA notices through absl before it reads
    TF_CPP_MIN_LOG_LEVEL, so the C-level stderr is silenced during the import only;
    Python exceptions are unaffected.
    """
    import sys

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_native_stderr():
        import tensorflow as tf
    return tf


class _quiet_native_stderr:
    """Point file descriptor 2 at /dev/null for the duration of a block."""

    def __enter__(self) -> None:
        import sys

        try:
            sys.stderr.flush()
            self._saved: int | None = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:  # no real fd 2 (embedded interpreters): leave stderr alone
            self._saved = None

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)


_NOISE_PREFIXES = ("Detected at", "File ", "Node:", "[[", "Traceback", "Stack trace", "The above exception")
_HEADER = re.compile(r"^[\w .-]*(error|Error|exception|failed)( \(.*\))?:$")


def tf_error_sentence(exc: BaseException) -> str:
    """The most specific line of a TensorFlow error, for the one sentence users read.

    TF messages open with headers ("Graph execution error:"), then the Python stack of
    the node, then the actual reason, then ``[[{{node ...}}]]`` markers; the reason is
    the first line that is none of those. ``{{function_node ...}}`` prefixes and
    ``[Op:...]`` suffixes are trimmed. The whole message stays on the exception chain
    (the CLI's ``--debug`` prints it).
    """
    text = getattr(exc, "message", None) or str(exc)
    for raw in text.splitlines():
        if not raw.strip() or raw[:1].isspace() and not raw.lstrip().startswith("{{"):
            continue  # blank, or an indented stack/code line
        line = raw.strip()
        if line.startswith(_NOISE_PREFIXES) or _HEADER.match(line):
            continue
        line = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", line)
        line = re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", line)
        line = line.strip().rstrip(".:")
        if line:
            return line
    return type(exc).__name__


def tf_dtype_names(dtype: Any) -> tuple[str | None, str]:
    """(numpy dtype name or None, TensorFlow dtype name) for a tf.DType or DataType enum."""
    tf = import_tf()
    dtype = tf.dtypes.as_dtype(dtype)
    dtype = dtype.base_dtype  # TF1 reference types read as their value type
    name = dtype.name
    if name == "string":
        return "str", name
    if name in HANDLE_DTYPES:
        return None, name
    try:
        return np.dtype(dtype.as_numpy_dtype).name, name
    except (KeyError, TypeError):
        return None, name


def nbytes_of(dtype_name: str | None, shape: tuple[int | None, ...] | None) -> int | None:
    if dtype_name is None or dtype_name == "str" or shape is None or None in shape:
        return None
    from tensor_inspector.core.dtypes import numpy_dtype

    dims = [d for d in shape if d is not None]  # all known, checked above
    return int(np.prod(dims, dtype=np.int64)) * numpy_dtype(dtype_name).itemsize


def shape_of(tensor_shape: Any) -> tuple[int | None, ...] | None:
    """A plain tuple from a tf.TensorShape / TensorShapeProto (None: unknown rank or dim)."""
    if hasattr(tensor_shape, "unknown_rank"):  # TensorShapeProto
        if tensor_shape.unknown_rank:
            return None
        return tuple(None if d.size < 0 else int(d.size) for d in tensor_shape.dim)
    if tensor_shape.rank is None:
        return None
    return tuple(None if d is None else int(d) for d in tensor_shape.as_list())


def to_numpy(value: Any, framework_dtype: str | None = None) -> np.ndarray:
    """A numpy array from what TF returns; string tensors become 'U' (or 'S' if not UTF-8)."""
    if framework_dtype in HANDLE_DTYPES:
        raise NotEvaluable(f"This is a TensorFlow {framework_dtype} handle, which has no value to show.")
    array = np.asarray(value)
    if array.dtype.kind == "O" or array.dtype.kind == "S" or isinstance(value, bytes):
        return strings_to_numpy(array)
    return array


def strings_to_numpy(array: np.ndarray) -> np.ndarray:
    """Object arrays of bytes (TF's string tensors) as numpy str arrays; bytes if not UTF-8."""
    flat = [v if isinstance(v, bytes) else str(v).encode() for v in np.asarray(array, dtype=object).ravel()]
    try:
        decoded = [v.decode("utf-8") for v in flat]
        return np.array(decoded, dtype=str).reshape(array.shape) if flat else np.zeros(array.shape, "U1")
    except UnicodeDecodeError:
        return np.array(flat, dtype=bytes).reshape(array.shape)


def numpy_to_tf_value(value: np.ndarray, tf_dtype_name: str) -> Any:
    """A tf.Tensor with exactly ``tf_dtype_name``: bits kept (bf16/fp8 via their ml_dtypes arrays)."""
    tf = import_tf()
    target = tf.dtypes.as_dtype(tf_dtype_name)
    if target == tf.string:
        flat = [
            v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in np.asarray(value).ravel().tolist()
        ]
        return tf.reshape(tf.constant(flat, dtype=tf.string), np.asarray(value).shape)
    tensor = tf.constant(value)
    if tensor.dtype != target:
        raise InspectorError(
            f"The new value has dtype {value.dtype}, but TensorFlow stores this tensor as {tf_dtype_name}."
        )
    return tensor
