"""Edits of a tensor: parsing typed cells, and the undo commands that change a document's copies.

Stored tensors are often read-only memory maps; the first edit of a node copies its
value (copy-on-first-edit) and from then on the copy is what the app shows and what
Save writes. Every change is a ``QUndoCommand`` on the document's ``QUndoStack``, so
Edit > Undo names the change it undoes ("Undo edit w[0,1]"). Commands hold the
``Document``, not a handle, so they stay valid when Save reopens the file under the
same document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ml_dtypes
import numpy as np
from PySide6.QtGui import QUndoCommand

from tensor_inspector.core.number_format import parse_value, value_kind

if TYPE_CHECKING:
    from tensor_inspector.app.documents import Document

Cells = list[tuple[tuple[int, ...], str]]

EDITABLE_KINDS = ("bool", "int", "float", "lowfloat", "complex")
MAX_UNDO_CELLS = 1_000_000  # one command never keeps more than this many old values per paste
MAX_EDIT_COPY_BYTES = 4 << 30  # the first edit copies the tensor into memory: bounded


def parse_cell(text: str, dtype: np.dtype | type) -> Any:
    """A user's text as a scalar of ``dtype``; ValueError with one sentence when it does not fit.

    Floats are rounded the way numpy/ml_dtypes round a float64 (bf16, fp8 included); a
    finite entry that would become inf or NaN in ``dtype`` is refused, not stored.
    """
    dtype = np.dtype(dtype)
    kind = value_kind(dtype)
    name = dtype.name
    raw = text.strip()
    if kind not in EDITABLE_KINDS:
        raise ValueError(f"{name} values cannot be edited.")
    if not raw:
        raise ValueError(f"An empty entry is not a {name} value.")
    if kind == "int":
        try:
            number = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid {name} value (a whole number).") from None
        info = ml_dtypes.iinfo(dtype) if dtype.kind not in "iu" else np.iinfo(dtype)  # type: ignore[no-untyped-call]
        if not int(info.min) <= number <= int(info.max):
            raise ValueError(f"{number} is out of range for {name} ({int(info.min)} to {int(info.max)}).")
        return np.array(number).astype(dtype)[()]
    if kind == "bool" and raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{raw!r} is not a valid bool value (use true or false).")
    try:
        with np.errstate(all="ignore"):
            scalar = parse_value(raw, dtype)
    except ValueError:
        example = "1+2j" if kind == "complex" else "1.5, -2e-3, nan or inf"
        raise ValueError(f"{raw!r} is not a valid {name} value (e.g. {example}).") from None
    if kind in ("float", "lowfloat"):
        _check_range(float(raw), float(scalar), raw, name)
    elif kind == "complex":
        z = complex(raw.replace(" ", ""))
        _check_range(z.real, float(scalar.real), raw, name)
        _check_range(z.imag, float(scalar.imag), raw, name)
    return scalar


def _check_range(given: float, stored: float, raw: str, name: str) -> None:
    if math.isnan(stored) and not math.isnan(given):
        raise ValueError(f"{raw} cannot be stored in {name} (it would become nan).")
    if math.isinf(stored) and not math.isinf(given):
        raise ValueError(f"{raw} is out of range for {name} (it would become inf).")


def format_cell_index(node_id: str, index: Sequence[int]) -> str:
    return f"{node_id}[{','.join(str(i) for i in index)}]"


class CellsCommand(QUndoCommand):
    """Set some cells of one node's edited copy (one cell typed, or a pasted block)."""

    def __init__(
        self,
        document: Document,
        node_id: str,
        indices: list[tuple[int, ...]],
        old: np.ndarray,
        new: np.ndarray,
        text: str,
    ) -> None:
        super().__init__(text)
        self.document, self.node_id = document, node_id
        self.indices, self.old, self.new = indices, old, new

    def redo(self) -> None:
        self.document.write_cells(self.node_id, self.indices, self.new, +1)

    def undo(self) -> None:
        self.document.write_cells(self.node_id, self.indices, self.old, -1)


class ReplaceCommand(QUndoCommand):
    """Replace a node's whole value (Replace from .npy); undo restores the previous copy or the file's."""

    def __init__(self, document: Document, node_id: str, new: np.ndarray, text: str) -> None:
        super().__init__(text)
        self.document, self.node_id = document, node_id
        self.old: np.ndarray | None = document.copy(node_id)
        self.new = new

    def redo(self) -> None:
        self.document.set_copy(self.node_id, self.new, +1)

    def undo(self) -> None:
        self.document.set_copy(self.node_id, self.old, -1)  # None: back to the value in the file


def edit_cells(document: Document, node_id: str, shown: np.ndarray, cells: Cells) -> str | None:
    """Parse and apply typed or pasted cells of ``node_id`` (shown as ``shown``) as one command.

    Returns None when applied (or nothing changed), else the sentence saying why not.
    """
    if document.saving:
        return "A save is running; edit again when it has finished."
    if len(cells) > MAX_UNDO_CELLS:
        return f"Too many cells at once ({len(cells):,}; limit {MAX_UNDO_CELLS:,})."
    values = []
    for index, text in cells:
        try:
            values.append(parse_cell(text, shown.dtype))
        except ValueError as exc:
            prefix = "Paste rejected" if len(cells) > 1 else "Edit rejected"
            return f"{prefix}: {format_cell_index(node_id, index)}: {exc}"
    array = document.copy(node_id)
    if array is None:
        if shown.nbytes > MAX_EDIT_COPY_BYTES:
            return (
                f"Edit rejected: {node_id} holds {shown.nbytes / 2**30:.1f} GiB; editing copies "
                f"the whole tensor into memory, which is limited to "
                f"{MAX_EDIT_COPY_BYTES / 2**30:.0f} GiB."
            )
        try:
            array = np.array(shown, copy=True)  # copy-on-first-edit: never write into a file's map
        except MemoryError:
            return f"Edit rejected: not enough memory to copy {node_id} for editing."
        document.set_copy(node_id, array, 0, announce=False)
    indices = [tuple(int(i) for i in index) for index, _ in cells]
    old = np.array([array[i] for i in indices], dtype=array.dtype)
    new = np.array(values, dtype=array.dtype)
    if old.tobytes() == new.tobytes():
        document.announce(node_id)  # the copy may be new: show it
        return None
    if len(cells) == 1:
        text = f"edit {format_cell_index(node_id, indices[0])}"
    else:
        text = f"paste {len(cells)} values into {node_id}"
    document.stack.push(CellsCommand(document, node_id, indices, old, new, text))
    return None


def replace_value(document: Document, node_id: str, value: np.ndarray) -> str | None:
    """Replace ``node_id``'s whole value (already checked for shape and dtype) as one command."""
    if document.saving:
        return "A save is running; replace the value when it has finished."
    new = np.array(value, copy=True)
    document.stack.push(ReplaceCommand(document, node_id, new, f"replace {node_id}"))
    return None
