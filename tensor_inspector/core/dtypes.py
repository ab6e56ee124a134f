"""Numpy dtypes for every tensor type the formats use, bf16 and float8 via ml_dtypes.

Values are never silently upcast: readers return arrays of these exact dtypes and
only display code converts (``display_float``) for drawing.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

# Extra dtypes numpy does not know by name.
ML_DTYPES: dict[str, np.dtype] = {
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
    "int4": np.dtype(ml_dtypes.int4),
    "uint4": np.dtype(ml_dtypes.uint4),
}

# Short names users type in filters and see in the tree.
SHORT_NAMES: dict[str, str] = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "bfloat16": "bf16",
    "float8_e4m3fn": "f8e4m3",
    "float8_e5m2": "f8e5m2",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "bool": "bool",
    "complex64": "c64",
    "complex128": "c128",
}

ALIASES: dict[str, str] = {
    **{v: k for k, v in SHORT_NAMES.items()},
    "bf16": "bfloat16",
    "half": "float16",
    "float": "float32",
    "double": "float64",
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
    "f8_e4m3fn": "float8_e4m3fn",
    "f8_e5m2": "float8_e5m2",
}


def numpy_dtype(name: str | np.dtype | type) -> np.dtype:
    """A numpy dtype from a numpy name, short name or ml_dtypes name ("bf16" -> bfloat16)."""
    if isinstance(name, np.dtype):
        return name
    if isinstance(name, str):
        key = ALIASES.get(name.lower(), name)
        if key in ML_DTYPES:
            return ML_DTYPES[key]
        return np.dtype(key)
    return np.dtype(name)


def short_name(dtype: np.dtype | str | None) -> str:
    if dtype is None:
        return ""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    base = name.rstrip("0123456789")
    if base in ("str", "bytes"):
        return base  # "str128" says a byte width, which is noise here
    return SHORT_NAMES.get(name, name)


def is_ml_dtype(dtype: np.dtype) -> bool:
    """True for ml_dtypes types (bf16, float8, int4), which numpy math handles poorly."""
    return np.dtype(dtype).name in ML_DTYPES


def is_float_like(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or (is_ml_dtype(dtype) and "float" in dtype.name)


def is_numeric(dtype: np.dtype) -> bool:
    dtype = np.dtype(dtype)
    return dtype.kind in "biufc" or is_ml_dtype(dtype)


def display_float(array: np.ndarray) -> np.ndarray:
    """A float view of ``array`` for drawing only (bf16/fp8 -> float32, bool/int -> float32).

    Complex arrays are returned unchanged (the caller picks |z|, real, imag or phase).
    """
    dtype = array.dtype
    if dtype.kind == "c":
        return array
    if dtype.kind == "f" and dtype.itemsize >= 4:
        return array
    return array.astype(np.float32)


def all_test_dtypes() -> list[np.dtype]:
    """Every dtype the numeric formats should round-trip (used by tests and the demo)."""
    names = [
        "float16",
        "float32",
        "float64",
        "bfloat16",
        "float8_e4m3fn",
        "float8_e5m2",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
        "complex64",
        "complex128",
    ]
    return [numpy_dtype(n) for n in names]
