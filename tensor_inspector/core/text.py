"""Shape and size text as the tree, the status bar, the stats panel and the export dialog show it.

Qt-free so every view and the CLI say the same thing for the same tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def format_shape(shape: Sequence[int | None] | None) -> str:
    """``2×3×4``; ``scalar`` for rank 0; ``?`` for a dimension only known at run time."""
    if shape is None:
        return ""
    if len(shape) == 0:
        return "scalar"
    return "×".join("?" if d is None else str(d) for d in shape)


def format_bytes(nbytes: int | None) -> str:
    """Human size with binary units, as file managers show it (``1.5 KiB``, ``10 B``)."""
    if nbytes is None:
        return ""
    size = float(nbytes)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable: the last unit always returns
