"""Export one array to .npy, .npz or .csv, atomically, with the dtype exact unless cast.

The file gets the umask's mode, like ``np.save``'s (``core.atomic``); a full disk or a
folder we may not write to is one sentence, and no partial file is left.

Qt-free so the CLI and the app share it. "As stored" keeps every bit (bf16 and
float8 keep their ml_dtypes type through ``npy_format.write_npy``); a cast is an
explicit user choice and goes through ``astype``. CSV is text for spreadsheets: 2-D
at most, one row per line, values printed by Python's shortest round-trip repr.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.core.atomic import atomic_write
from tensor_inspector.core.dtypes import ML_DTYPES, numpy_dtype
from tensor_inspector.core.errors import Cancelled, InspectorError
from tensor_inspector.core.npy_format import header_bytes, write_npy

FORMATS = ("npy", "npz", "csv")
AS_STORED = "as stored"
# Casts offered by the export dialog; any numpy/ml_dtypes name works in the API.
CAST_CHOICES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format: explicit, else from the suffix, else .npy."""
    if fmt:
        fmt = fmt.lower().lstrip(".")
    else:
        fmt = Path(path).suffix.lower().lstrip(".") or "npy"
    if fmt not in FORMATS:
        raise InspectorError(f"Cannot export to .{fmt}: choose .npy, .npz or .csv.")
    return fmt


def cast_array(array: np.ndarray, dtype: str | None) -> np.ndarray:
    """``array`` converted to ``dtype`` (None or "as stored": unchanged, no copy)."""
    if dtype is None or dtype == AS_STORED:
        return array
    target = numpy_dtype(dtype)
    if array.dtype == target:
        return array
    if array.dtype.kind in "USO" and target.kind not in "USO":
        raise InspectorError(f"Cannot cast {array.dtype} text values to {target.name}.")
    try:
        with np.errstate(all="ignore"):
            if array.dtype.kind == "c" and target.kind != "c":
                raise InspectorError(
                    f"Casting complex values to {target.name} would drop the imaginary part; "
                    "export as stored or as a complex dtype."
                )
            return array.astype(target)
    except (TypeError, ValueError) as exc:
        raise InspectorError(f"Cannot cast {array.dtype} to {target.name}: {exc}") from None


def estimated_size(shape: tuple[int, ...], dtype: np.dtype, fmt: str) -> int:
    """Bytes the exported file will take (exact for npy/npz stored, an estimate for csv)."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    header = len(header_bytes(np.empty((0,), dtype))) if fmt != "csv" else 0
    data = count * dtype.itemsize
    if fmt == "npy":
        return header + data
    if fmt == "npz":
        return header + data + 200  # zip local header + central directory, uncompressed
    if dtype.kind in "iu":
        width = 2 + len(str(np.iinfo(dtype).max))  # digits, sign, comma
    elif dtype.kind == "b":
        width = 6  # "False,"
    else:
        width = 32 if dtype.kind == "c" else 16  # shortest repr of a float is <= ~24 chars
    return count * width


def _csv_text_rows(array: np.ndarray) -> Iterator[str]:
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(1, -1)
    # floats keep their own dtype's shortest digits: tolist() would widen float32 to a
    # Python float and write 0.1f as 0.10000000149011612
    # (bf16 and float8 have at most 8 significant bits: their exact float64 digits are short already)
    as_scalars = array.dtype.kind in "fc" and array.dtype.name not in ML_DTYPES
    for row in array:
        values = (_float_text(v) for v in row) if as_scalars else (_csv_value(v) for v in row.tolist())
        yield ",".join(values) + "\n"


def _float_text(value: Any) -> str:
    """The shortest text that reads back as the same value of its own dtype (str of the numpy scalar)."""
    if np.iscomplexobj(value):
        imag = str(abs(value.imag))
        return f"{value.real}{'-' if np.signbit(value.imag) else '+'}{imag}j"
    return str(value)


def _csv_value(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, complex):
        return f"{value.real!r}{value.imag:+}j"
    return repr(value) if isinstance(value, float) else str(value)


def export_array(
    array: np.ndarray,
    path: str | Path,
    fmt: str | None = None,
    dtype: str | None = None,
    key: str = "array",
    cancel: threading.Event | None = None,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Write ``array`` (optionally cast) to ``path`` atomically; returns the path written.

    ``progress(fraction)`` reports how far the write is; setting ``cancel`` stops it,
    raises ``Cancelled`` and leaves no file behind (the atomic write removes its temp).
    """

    def step(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if progress is not None and total:
            progress(done / total)

    path = Path(path)
    fmt = format_for(path, fmt)
    out = cast_array(np.asarray(array), dtype)
    if out.dtype.hasobject:
        raise InspectorError("Object arrays cannot be exported without pickle; refused.")
    if fmt == "csv" and out.ndim > 2:
        raise InspectorError(
            f"CSV holds at most 2-D data and this array is {out.ndim}-D {tuple(out.shape)}: "
            "export the current slice, or use .npy."
        )
    try:
        with atomic_write(path) as tmp:
            if fmt == "npy":
                with open(tmp, "wb") as fh:
                    write_npy(fh, out, step)
            elif fmt == "npz":
                member = (key or "array").replace("/", "_") + ".npy"
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                    with zf.open(member, "w", force_zip64=True) as entry:
                        write_npy(entry, out, step)
            else:
                with open(tmp, "w", encoding="utf-8", newline="") as text:
                    rows = max(len(out), 1) if out.ndim == 2 else 1
                    for done, line in enumerate(_csv_text_rows(out), 1):
                        text.write(line)
                        if done % 256 == 0 or done == rows:
                            step(done, rows)
    except InspectorError:
        raise
    except OSError as exc:  # atomic_write words its own failures; this is a last resort
        raise InspectorError(f"Could not write {path}: {exc.strerror or exc}.") from None
    return path
