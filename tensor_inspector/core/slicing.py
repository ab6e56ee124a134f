"""Index expressions and 2-D views of N-D arrays, without Qt.

An index is what the backends accept: a tuple of ints and slices (``(0, slice(None),
slice(3, 7))``). Users type it as ``"0,:,3:7"`` in the CLI; the app builds it from
the axes selector (two displayed axes, one position for every other axis).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Index


class IndexSyntaxError(InspectorError, ValueError):
    """An index expression that cannot be parsed or does not fit the array."""


def _parse_int(text: str, expr: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise IndexSyntaxError(
            f"Cannot read {text.strip()!r} in index {expr!r}: use integers, ':' and 'start:stop:step'."
        ) from None


def _parse_part(part: str, expr: str) -> int | slice:
    part = part.strip()
    if not part:
        raise IndexSyntaxError(f"Index {expr!r} has an empty position; use ':' for a whole axis.")
    if ":" not in part:
        return _parse_int(part, expr)
    pieces = part.split(":")
    if len(pieces) > 3:
        raise IndexSyntaxError(f"Cannot read {part!r} in index {expr!r}: a slice is start:stop:step.")
    values = [_parse_int(p, expr) if p.strip() else None for p in pieces]
    values += [None] * (3 - len(values))
    if values[2] == 0:
        raise IndexSyntaxError(f"Slice {part!r} in index {expr!r} has a step of zero.")
    return slice(*values)


def parse_index(expr: str) -> Index:
    """``"0,:,3:7"`` -> ``(0, slice(None), slice(3, 7))``; ``""`` or ``":"``-only stay explicit.

    Brackets are allowed (``"[0, :]"``); ``"()"`` and ``""`` mean the whole array.
    """
    text = expr.strip()
    if (text.startswith("[") and text.endswith("]")) or (text.startswith("(") and text.endswith(")")):
        text = text[1:-1].strip()
    if not text:
        return ()
    parts = text.split(",")
    if parts[-1].strip() == "" and len(parts) > 1:  # tolerate a trailing comma: "3,"
        parts = parts[:-1]
    return tuple(_parse_part(p, expr) for p in parts)


def _format_part(part: int | slice) -> str:
    if isinstance(part, slice):
        start = "" if part.start is None else str(part.start)
        stop = "" if part.stop is None else str(part.stop)
        text = f"{start}:{stop}"
        if part.step is not None:
            text += f":{part.step}"
        return text
    return str(int(part))


def format_index(index: Index) -> str:
    """The inverse of :func:`parse_index`: ``(0, slice(None), slice(3, 7))`` -> ``"0,:,3:7"``."""
    if not isinstance(index, tuple):
        index = (index,)
    return ",".join(_format_part(p) for p in index)


def check_index(index: Index, shape: Sequence[int]) -> Index:
    """``index`` validated against ``shape``: ints in range (negatives allowed), at most ndim parts.

    Returns the index unchanged; raises :class:`IndexSyntaxError` with one sentence otherwise.
    """
    if len(index) > len(shape):
        raise IndexSyntaxError(
            f"Index {format_index(index)!r} has {len(index)} positions but the array has "
            f"{len(shape)} dimensions {tuple(shape)}."
        )
    for axis, (part, size) in enumerate(zip(index, shape)):
        if isinstance(part, slice):
            continue
        if not isinstance(part, (int, np.integer)):
            raise IndexSyntaxError(f"Position {part!r} on axis {axis} is neither an integer nor a slice.")
        if not -size <= int(part) < size:
            raise IndexSyntaxError(f"Position {int(part)} on axis {axis} is out of range for size {size}.")
    return index


def index_shape(index: Index, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape ``array[index]`` has, computed without touching data."""
    check_index(index, shape)
    out: list[int] = []
    for axis, size in enumerate(shape):
        if axis < len(index):
            part = index[axis]
            if isinstance(part, slice):
                out.append(len(range(*part.indices(size))))
        else:
            out.append(size)
    return tuple(out)


def view_index(ndim: int, row_axis: int, col_axis: int, positions: Sequence[int]) -> Index:
    """The index selecting the 2-D plane (row_axis, col_axis) at ``positions`` (one per axis).

    Returns ``()`` for rank <= 2: the whole array is the plane.
    """
    if ndim <= 2:
        return ()
    return tuple(
        slice(None) if axis in (row_axis, col_axis) else int(positions[axis]) for axis in range(ndim)
    )


def oriented_slice(array: np.ndarray, row_axis: int, col_axis: int, positions: Sequence[int]) -> np.ndarray:
    """The displayed plane as a view: rows along ``row_axis``, columns along ``col_axis``.

    Indexing with ints keeps the two free axes in increasing order, so the plane is
    transposed when the row axis comes after the column axis. Never copies.
    """
    if array.ndim < 2:
        return array
    plane = array[view_index(array.ndim, row_axis, col_axis, positions)] if array.ndim > 2 else array
    return plane.T if row_axis > col_axis else plane


def cell_index(
    ndim: int, row_axis: int, col_axis: int, positions: Sequence[int], row: int, col: int
) -> tuple[int, ...]:
    """The full N-D integer index of the displayed cell (row, col)."""
    if ndim == 0:
        return ()
    if ndim == 1:
        return (int(row),)
    full = [int(p) for p in positions]
    full[row_axis], full[col_axis] = int(row), int(col)
    return tuple(full)
