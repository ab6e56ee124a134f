"""Cell text for one array element, exact by default, for every dtype the app shows.

Qt-free so the CLI and tests can use it. Modes:

- ``"general"`` with precision 0 (the default, shown as "exact"): the shortest text
  that identifies the stored value. float32/float64 use numpy's shortest round-trip
  repr; float16, bfloat16 and float8 show the value they really store
  (``bf16(0.1)`` -> ``0.10009765625``), because seeing the rounding is the point
  when porting weights. General with precision p > 0 is ``%.{p}g``.
- ``"fixed"``: ``%.{p}f``; ``"scientific"``: ``%.{p}e``.

Integers (incl. uint64 max), bools (``true``/``false``) and strings are always exact.
Complex values format both parts with the same rule: ``1+2j``, ``0.5-1e-08j``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, SupportsComplex, SupportsFloat

import numpy as np

from tensor_inspector.core.dtypes import is_float_like, is_ml_dtype

MODES = ("general", "fixed", "scientific")
MAX_TEXT = 200  # strings and objects are cut for the cell; the tooltip shows more


@dataclass(frozen=True)
class NumberFormat:
    mode: str = "general"
    precision: int = 0  # 0 in general mode means exact

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Number format must be one of {', '.join(MODES)}, not {self.mode!r}.")
        if not 0 <= self.precision <= 40:
            raise ValueError(f"Precision must be between 0 and 40, not {self.precision}.")


def value_kind(dtype: np.dtype) -> str:
    """One of "bool", "int", "float", "lowfloat" (exact-value floats), "complex", "text", "object"."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "bool"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind == "f":
        return "float" if dtype.itemsize >= 4 else "lowfloat"
    if dtype.kind == "c":
        return "complex"
    if is_ml_dtype(dtype):
        return "lowfloat" if is_float_like(dtype) else "int"  # int4/uint4
    if dtype.kind in "US":
        return "text"
    return "object"


def _special(x: float) -> str | None:
    if x != x:
        return "nan"
    if x == math.inf:
        return "inf"
    if x == -math.inf:
        return "-inf"
    return None


def format_float(value: SupportsFloat, fmt: NumberFormat, exact_value: bool = False) -> str:
    """One real number. ``exact_value``: show the stored binary value (bf16/fp8/f16)."""
    x = float(value)
    special = _special(x)
    if special is not None:
        return special
    if fmt.mode == "fixed":
        return f"{x:.{fmt.precision}f}"
    if fmt.mode == "scientific":
        return f"{x:.{fmt.precision}e}"
    if fmt.precision > 0:
        return f"{x:.{fmt.precision}g}"
    if exact_value or not isinstance(value, np.floating):
        text = repr(x)  # float64 repr of a narrower float is its exact stored value
    else:
        text = str(value)  # numpy: shortest text that round-trips in the value's own dtype
    return text[:-2] if text.endswith(".0") else text


def format_complex(value: SupportsComplex, fmt: NumberFormat) -> str:
    z = complex(value)
    real_part = value.real if isinstance(value, np.complexfloating) else z.real
    imag_part = value.imag if isinstance(value, np.complexfloating) else z.imag
    re = format_float(real_part, fmt)
    im = format_float(imag_part, fmt)
    if im.startswith("-"):
        return f"{re}-{im[1:]}j"
    return f"{re}+{im}j"


def format_value(value: Any, kind: str, fmt: NumberFormat) -> str:
    """The cell text of one element; ``kind`` from :func:`value_kind` (computed once per array).

    ``value`` is an element of an array of any dtype (numpy scalar, bytes, str, object).
    """
    if kind == "float":
        return format_float(value, fmt)
    if kind == "lowfloat":
        return format_float(value, fmt, exact_value=True)
    if kind == "int":
        return str(int(value))
    if kind == "bool":
        return "true" if bool(value) else "false"
    if kind == "complex":
        return format_complex(value, fmt)
    if kind == "text":
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
    text = repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def exact_text(value: Any, kind: str) -> str:
    """The exact value whatever the chosen format (tooltips, statistics)."""
    return format_value(value, kind, NumberFormat())


def special_class(value: Any, kind: str) -> str | None:
    """ "nan", "posinf" or "neginf" for cells to colour, else None."""
    if kind in ("float", "lowfloat"):
        x = float(value)
    elif kind == "complex":
        z = complex(value)
        if z.real != z.real or z.imag != z.imag:
            return "nan"
        if math.isinf(z.real) or math.isinf(z.imag):
            return "posinf" if (z.real > 0 or z.imag > 0) else "neginf"
        return None
    else:
        return None
    if x != x:
        return "nan"
    if x == math.inf:
        return "posinf"
    if x == -math.inf:
        return "neginf"
    return None


def parse_value(text: str, dtype: np.dtype) -> Any:
    """A user's text as a scalar of ``dtype`` (for editing); ValueError with a sentence if it does not fit.

    The scalar is a numpy scalar, or the Python object itself for object arrays.
    """
    kind = value_kind(dtype)
    raw = text.strip()
    try:
        if kind == "bool":
            lowered = raw.lower()
            if lowered in ("true", "1", "yes"):
                return np.bool_(True)
            if lowered in ("false", "0", "no"):
                return np.bool_(False)
            raise ValueError(raw)
        if kind == "int":
            number = int(raw)
            info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
            if info is not None and not info.min <= number <= info.max:
                raise OverflowError(raw)
            return np.array(number).astype(dtype)[()]
        if kind in ("float", "lowfloat"):
            return np.array(float(raw), np.float64).astype(dtype)[()]
        if kind == "complex":
            return np.array(complex(raw.replace(" ", "")), np.complex128).astype(dtype)[()]
        return np.array(raw).astype(dtype)[()]
    except (ValueError, OverflowError, TypeError):
        raise ValueError(f"{text!r} is not a valid {np.dtype(dtype).name} value.") from None
