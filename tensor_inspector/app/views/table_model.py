"""A table model over the displayed 2-D plane of an array of any size.

The model keeps a numpy *view* (never a copy, never a Python list of cells) and
formats a cell only when Qt asks for it, so a 10000x10000 memmap or a
20000x20000 ``np.broadcast_to`` costs what the visible cells cost. 0-D arrays
show one cell, 1-D arrays one column with the index as row header.

Editing is a hook kept off by default: ``set_editable(True)`` makes cells
editable; ``setData`` parses the text for the array's dtype, writes it into the
(writeable) array and emits ``value_edited(full_index, value)``. With an edit
handler (``set_edit_handler``) the model writes nothing itself: edits and pasted
blocks go to the handler as ``[(full_index, text), ...]`` (so an undo stack can
own every change, and a read-only memory map can be copied first); a message it
returns is a rejection, emitted as ``edit_rejected``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor

from tensor_inspector.core.dtypes import short_name
from tensor_inspector.core.number_format import (
    NumberFormat,
    exact_text,
    format_value,
    parse_value,
    special_class,
    value_kind,
)
from tensor_inspector.core.slicing import cell_index

# Cell backgrounds for special values: light tints of the heatmap's NaN/+Inf/-Inf colours.
SPECIAL_BACKGROUNDS = {
    "nan": QColor(255, 200, 255),  # magenta tint
    "posinf": QColor(255, 221, 170),  # orange tint
    "neginf": QColor(190, 245, 255),  # cyan tint
}

AnyIndex = QModelIndex | QPersistentModelIndex
Cells = list[tuple[tuple[int, ...], str]]
EditHandler = Callable[[Cells], "str | None"]  # None: accepted; a sentence: rejected


class ArrayTableModel(QAbstractTableModel):
    """Rows x columns of the current plane; the full N-D index of any cell on request."""

    value_edited = Signal(tuple, object)  # full N-D index, new numpy scalar
    edit_rejected = Signal(str)  # why an edit or paste was refused

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # a strided sample of a big tensor: cells map to every k-th index, and it is not edited
        self.locked: str | None = None
        self.header_steps = (1, 1)
        self.index_map: Callable[[tuple[int, ...]], tuple[int, ...]] = lambda index: index
        self._plane: np.ndarray = np.zeros((0, 0))
        self._kind = "float"
        self._fmt = NumberFormat()
        self._ndim = 2
        self._row_axis, self._col_axis = 0, 1
        self._positions: tuple[int, ...] = (0, 0)
        self._editable = False
        self._edit_handler: EditHandler | None = None

    # -- content -------------------------------------------------------------------------
    def set_plane(
        self,
        plane: np.ndarray,
        ndim: int,
        row_axis: int = 0,
        col_axis: int = 1,
        positions: Sequence[int] = (),
    ) -> None:
        """Show ``plane`` (0-, 1- or 2-D, already oriented) cut from an ``ndim`` array."""
        self.beginResetModel()
        self._plane = plane
        self._kind = value_kind(plane.dtype)
        self._ndim = ndim
        self._row_axis, self._col_axis = row_axis, col_axis
        self._positions = tuple(int(p) for p in positions) if positions else (0,) * max(ndim, 0)
        self.endResetModel()

    def plane(self) -> np.ndarray:
        return self._plane

    def kind(self) -> str:
        return self._kind

    def set_number_format(self, fmt: NumberFormat) -> None:
        self._fmt = fmt
        if self.rowCount() and self.columnCount():
            self.dataChanged.emit(
                self.index(0, 0),
                self.index(self.rowCount() - 1, self.columnCount() - 1),
                [Qt.ItemDataRole.DisplayRole],
            )

    def number_format(self) -> NumberFormat:
        return self._fmt

    def set_editable(self, editable: bool) -> None:
        self._editable = editable

    def set_edit_handler(self, handler: EditHandler | None) -> None:
        """Route edits to ``handler`` instead of writing into the plane (None: write directly)."""
        self._edit_handler = handler

    def is_editable(self) -> bool:
        if not self._editable or self.locked is not None or self._kind in ("object", "text"):
            return False
        return self._edit_handler is not None or bool(self._plane.flags.writeable)

    def swap_plane(self, plane: np.ndarray) -> None:
        """Show ``plane`` (same shape and dtype as now) without resetting selection or scroll."""
        if plane.shape != self._plane.shape or plane.dtype != self._plane.dtype:
            raise ValueError("swap_plane needs a plane of the same shape and dtype.")
        self._plane = plane
        self.refresh()

    def refresh(self) -> None:
        """Repaint every cell after the values changed in place."""
        if self.rowCount() and self.columnCount():
            self.dataChanged.emit(
                self.index(0, 0),
                self.index(self.rowCount() - 1, self.columnCount() - 1),
                [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.BackgroundRole],
            )

    def full_index(self, row: int, col: int) -> tuple[int, ...]:
        """The N-D index in the whole array of the displayed cell (row, col)."""
        return self.index_map(
            cell_index(self._ndim, self._row_axis, self._col_axis, self._positions, row, col)
        )

    def value(self, row: int, col: int) -> Any:
        """The numpy scalar at the displayed cell."""
        if self._plane.ndim == 0:
            return self._plane[()]
        if self._plane.ndim == 1:
            return self._plane[row]
        return self._plane[row, col]

    def cell_text(self, row: int, col: int) -> str:
        return format_value(self.value(row, col), self._kind, self._fmt)

    # -- Qt model API --------------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802 - Qt override
        if parent.isValid():
            return 0
        return 1 if self._plane.ndim == 0 else int(self._plane.shape[0])

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802 - Qt override
        if parent.isValid():
            return 0
        return int(self._plane.shape[1]) if self._plane.ndim == 2 else 1

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell_text(index.row(), index.column())
        if role == Qt.ItemDataRole.EditRole:  # the editor starts from the exact value, not a rounded one
            return exact_text(self.value(index.row(), index.column()), self._kind)
        if role == Qt.ItemDataRole.BackgroundRole:
            cls = special_class(self.value(index.row(), index.column()), self._kind)
            return SPECIAL_BACKGROUNDS.get(cls) if cls else None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if self._kind in ("text", "object"):
                return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            value = self.value(index.row(), index.column())
            where = list(self.full_index(index.row(), index.column()))
            return f"{where} = {exact_text(value, self._kind)}  ({short_name(self._plane.dtype)})"
        return None

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,  # noqa: N802 - Qt override
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal and self._plane.ndim < 2:
            return "value"
        if orientation == Qt.Orientation.Vertical and self._plane.ndim == 0:
            return "()"
        return str(section * self.header_steps[0 if orientation == Qt.Orientation.Vertical else 1])

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if self.is_editable():
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def setData(
        self,
        index: AnyIndex,
        value: Any,  # noqa: N802 - Qt override
        role: int = Qt.ItemDataRole.EditRole,
    ) -> bool:
        if not (
            index.isValid()
            and role == Qt.ItemDataRole.EditRole
            and self.flags(index) & Qt.ItemFlag.ItemIsEditable
        ):
            return False
        row, col = index.row(), index.column()
        if self._edit_handler is not None:
            return self._hand_over([(self.full_index(row, col), str(value))])
        try:
            scalar = parse_value(str(value), self._plane.dtype)
        except ValueError as exc:
            self.edit_rejected.emit(str(exc))
            return False
        self._plane[self._plane_index(row, col)] = scalar
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole])
        self.value_edited.emit(self.full_index(row, col), scalar)
        return True

    def paste_block(self, top: int, left: int, rows: list[list[str]]) -> bool:
        """Write a block of texts with its top-left at (top, left); all cells or none."""
        height, width = len(rows), max((len(r) for r in rows), default=0)
        if not (height and width):
            self.edit_rejected.emit("Nothing to paste: the clipboard holds no values.")
            return False
        if not self.is_editable():
            self.edit_rejected.emit(self.locked or "These values cannot be edited.")
            return False
        if any(len(r) != width for r in rows):
            self.edit_rejected.emit("Paste rejected: the rows of the clipboard have different lengths.")
            return False
        if top + height > self.rowCount() or left + width > self.columnCount():
            self.edit_rejected.emit(
                f"Paste rejected: a {height}×{width} block at row {top}, column {left} does not fit "
                f"the {self.rowCount()}×{self.columnCount()} table."
            )
            return False
        cells = [
            (self.full_index(top + r, left + c), text)
            for r, line in enumerate(rows)
            for c, text in enumerate(line)
        ]
        if self._edit_handler is not None:
            return self._hand_over(cells)
        try:
            scalars = [parse_value(text, self._plane.dtype) for _, text in cells]
        except ValueError as exc:
            self.edit_rejected.emit(f"Paste rejected: {exc}")
            return False
        for (r, c), scalar in zip(((top + i // width, left + i % width) for i in range(len(cells))), scalars):
            self._plane[self._plane_index(r, c)] = scalar
        self.refresh()
        return True

    def _hand_over(self, cells: Cells) -> bool:
        message = self._edit_handler(cells) if self._edit_handler is not None else "Not editable."
        if message:
            self.edit_rejected.emit(message)
            return False
        self.refresh()
        return True

    def _plane_index(self, row: int, col: int) -> tuple[int, ...]:
        if self._plane.ndim == 0:
            return ()
        return (row,) if self._plane.ndim == 1 else (row, col)
