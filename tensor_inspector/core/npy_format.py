"""Reading and writing .npy headers safely, with bf16/float8 kept exact.

numpy writes ml_dtypes arrays with the descr ``'<V2'`` (raw bytes), which loses the
type. We write the ml_dtypes name as the descr instead (``'bfloat16'``): ``np.load``
then returns a real bfloat16 array whenever ``ml_dtypes`` is imported, and fails with
a clear "not a valid dtype descriptor" message otherwise, never with wrong values.
"""

from __future__ import annotations

import ast
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, cast

import numpy as np
from numpy.lib import format as npformat

from tensor_inspector.core.dtypes import ML_DTYPES, is_ml_dtype
from tensor_inspector.core.errors import CorruptFile, InspectorError

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # bytes from the start of the .npy stream to the data

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * self.dtype.itemsize


def read_header(fh: IO[bytes], what: str) -> NpyHeader:
    """Parse an .npy header from ``fh`` (positioned at the magic). Never unpickles."""
    start = fh.tell()
    prefix = fh.read(8)
    if len(prefix) < 8 or not prefix.startswith(MAGIC):
        raise CorruptFile(f"{what} is not a .npy array (no NUMPY magic at its start).")
    major = prefix[6]
    if major == 1:
        raw_len = fh.read(2)
        length_size = 2
    elif major in (2, 3):
        raw_len = fh.read(4)
        length_size = 4
    else:
        raise CorruptFile(f"{what} has an unknown .npy format version {major}.")
    if len(raw_len) < length_size:
        raise CorruptFile(f"{what} is truncated inside its .npy header.")
    header_len = struct.unpack("<H" if length_size == 2 else "<I", raw_len)[0]
    if header_len > MAX_HEADER:
        raise CorruptFile(f"{what} declares a {header_len}-byte .npy header; refusing to read it.")
    raw = fh.read(header_len)
    if len(raw) < header_len:
        raise CorruptFile(f"{what} is truncated inside its .npy header.")
    try:
        text = raw.decode("utf8" if major == 3 else "latin1")
        meta = ast.literal_eval(text)  # literals only: never executes code
        descr = meta["descr"]
        shape = tuple(int(d) for d in meta["shape"])
        fortran = bool(meta["fortran_order"])
    except Exception:
        raise CorruptFile(f"{what} has a malformed .npy header.") from None
    dtype = _descr_to_dtype(descr, what)
    if dtype.hasobject:
        raise InspectorError(
            f"{what} holds Python objects (dtype {dtype}), which only pickle can load; "
            "opening it could run code, so it is refused (numpy's allow_pickle=False)."
        )
    if any(d < 0 for d in shape):
        raise CorruptFile(f"{what} declares a negative dimension {shape}.")
    return NpyHeader(shape, dtype, fortran, fh.tell() - start)


def _descr_to_dtype(descr: object, what: str) -> np.dtype:
    if isinstance(descr, str) and descr in ML_DTYPES:
        return ML_DTYPES[descr]
    try:  # any literal a header holds: numpy's stub names only the list form, str works too
        return npformat.descr_to_dtype(cast(Any, descr))
    except Exception:
        raise CorruptFile(f"{what} has an unknown dtype {descr!r}.") from None


def header_bytes(array: np.ndarray) -> bytes:
    """The .npy header for ``array`` (ml_dtypes types named, see module docstring)."""
    if is_ml_dtype(array.dtype):
        descr: object = array.dtype.name
    else:
        descr = npformat.dtype_to_descr(array.dtype)
    meta = {"descr": descr, "fortran_order": False, "shape": tuple(array.shape)}
    buf = io.BytesIO()
    try:
        npformat.write_array_header_1_0(buf, meta)
    except ValueError:  # header longer than 64 KiB (very high rank): version 2.0
        buf = io.BytesIO()
        npformat.write_array_header_2_0(buf, meta)
    return buf.getvalue()


def write_npy(fh: IO[bytes], array: np.ndarray, progress: Callable[[int, int], None] | None = None) -> None:
    """Write ``array`` as .npy to an open binary file, C order, exact dtype.

    ``progress(done_bytes, total_bytes)`` is called after each 16 MiB block; it may
    raise (e.g. on cancel) to stop the write.
    """
    if array.dtype.hasobject:
        raise InspectorError("Object arrays cannot be written without pickle; refused.")
    if not array.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
        array = array.copy(order="C")
    fh.write(header_bytes(array))
    # write in blocks so a memory-mapped source is streamed, not copied whole
    flat = array.reshape(-1).view(np.uint8) if array.size else np.zeros(0, np.uint8)
    block = 1 << 24
    for start in range(0, flat.size, block):
        fh.write(flat[start : start + block].tobytes())
        if progress is not None:
            progress(min(start + block, flat.size), flat.size)
