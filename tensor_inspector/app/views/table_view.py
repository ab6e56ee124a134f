"""The table widget: fixed-size sections, TSV copy, cell selection by N-D index.

Row heights are fixed and column widths come from a small sample of formatted
cells: ``ResizeToContents`` would format every cell of a 100M-element tensor.
Copying reads the selection's ranges (never ``selectedIndexes()``, which builds
one Python object per selected cell) and refuses more than ``COPY_LIMIT`` cells.
Pasting (Ctrl+V) hands a tab-separated block to the model, which takes all of it
or none; the block starts at the selection's top-left (or the current cell).
"""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from tensor_inspector.app.views.table_model import ArrayTableModel

COPY_LIMIT = 1_000_000  # cells; formatting is Python per cell (~3 us each)
PASTE_LIMIT = 1_000_000  # cells; parsing is Python per cell too
WIDTH_SAMPLE = 24  # rows/columns sampled to size columns


class ArrayTableView(QTableView):
    """QTableView over an :class:`ArrayTableModel`."""

    cell_selected = Signal(tuple)  # full N-D index of the clicked/current cell
    message = Signal(str)  # a sentence for the status line (e.g. copy refused)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.array_model = ArrayTableModel(self)
        self.setModel(self.array_model)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setWordWrap(False)
        self.setAlternatingRowColors(True)
        height = self.fontMetrics().height() + 6
        vertical = self.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(height)
        vertical.setMinimumSectionSize(height)
        horizontal = self.horizontalHeader()
        horizontal.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        horizontal.setDefaultAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.AnyKeyPressed
        )
        self.clicked.connect(self._on_clicked)
        self.array_model.modelReset.connect(self.fit_columns)

    # -- sizing --------------------------------------------------------------------------
    def fit_columns(self) -> None:
        """One width for all columns, from the widest of a few sampled cells and headers."""
        model = self.array_model
        rows, cols = model.rowCount(), model.columnCount()
        metrics = self.fontMetrics()
        widest = metrics.horizontalAdvance(
            model.headerData(max(cols - 1, 0), Qt.Orientation.Horizontal) or "0"
        )
        if rows and cols:
            row_sample = list(range(min(rows, WIDTH_SAMPLE))) + list(range(max(rows - 4, 0), rows))
            col_sample = list(range(min(cols, WIDTH_SAMPLE // 3)))
            for r in row_sample:
                for c in col_sample:
                    widest = max(widest, metrics.horizontalAdvance(model.cell_text(r, c)))
        width = min(max(widest + 18, 48), 420)
        self.horizontalHeader().setDefaultSectionSize(width)
        if cols == 1:
            self.horizontalHeader().setStretchLastSection(rows == 1)
        else:
            self.horizontalHeader().setStretchLastSection(False)

    # -- selection -----------------------------------------------------------------------
    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.cell_selected.emit(self.array_model.full_index(index.row(), index.column()))

    def select_cell(self, row: int, col: int) -> None:
        """Make (row, col) current and selected, and scroll to it (heatmap clicks land here)."""
        index = self.array_model.index(row, col)
        if not index.isValid():
            return
        self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.cell_selected.emit(self.array_model.full_index(row, col))

    def selection_box(self) -> tuple[int, int, int, int] | None:
        """(top, left, bottom, right) bounding all selected ranges, or None."""
        selection: QItemSelection = self.selectionModel().selection()
        if selection.isEmpty():
            return None
        ranges = [selection.at(i) for i in range(selection.count())]
        return (
            min(r.top() for r in ranges),
            min(r.left() for r in ranges),
            max(r.bottom() for r in ranges),
            max(r.right() for r in ranges),
        )

    def selected_tsv(self) -> str:
        """Selected cells as displayed, tab-separated; unselected cells inside the box stay empty."""
        box = self.selection_box()
        if box is None:
            return ""
        top, left, bottom, right = box
        count = (bottom - top + 1) * (right - left + 1)
        if count > COPY_LIMIT:
            self.message.emit(
                f"Selection of {count:,} cells is too large to copy as text "
                f"(limit {COPY_LIMIT:,}); export it instead."
            )
            return ""
        selection = self.selectionModel().selection()
        ranges = [selection.at(i) for i in range(selection.count())]
        single = len(ranges) == 1
        model = self.array_model
        lines = []
        for r in range(top, bottom + 1):
            cells = []
            for c in range(left, right + 1):
                inside = single or any(
                    g.top() <= r <= g.bottom() and g.left() <= c <= g.right() for g in ranges
                )
                cells.append(model.cell_text(r, c) if inside else "")
            lines.append("\t".join(cells))
        return "\n".join(lines)

    def copy_selection(self) -> None:
        text = self.selected_tsv()
        if text:
            QGuiApplication.clipboard().setText(text)

    def paste_text(self, text: str) -> bool:
        """Paste tab-separated ``text`` at the selection's top-left (or the current cell)."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        while lines and lines[-1] == "":  # spreadsheets end the block with a newline
            lines.pop()
        rows = [line.split("\t") for line in lines]
        count = sum(len(r) for r in rows)
        if count > PASTE_LIMIT:
            self.array_model.edit_rejected.emit(
                f"Paste rejected: {count:,} values are too many (limit {PASTE_LIMIT:,}); "
                "use Replace from .npy instead."
            )
            return False
        box = self.selection_box()
        if box is not None:
            top, left = box[0], box[1]
        else:
            current = self.currentIndex()
            top, left = (current.row(), current.column()) if current.isValid() else (0, 0)
        return self.array_model.paste_block(top, left, rows)

    def paste_clipboard(self) -> bool:
        return self.paste_text(QGuiApplication.clipboard().text())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            event.accept()
            return
        if event.matches(QKeySequence.StandardKey.Paste):
            self.paste_clipboard()
            event.accept()
            return
        super().keyPressEvent(event)
        current = self.currentIndex()
        if current.isValid() and event.key() in (
            Qt.Key.Key_Up,
            Qt.Key.Key_Down,
            Qt.Key.Key_Left,
            Qt.Key.Key_Right,
            Qt.Key.Key_PageUp,
            Qt.Key.Key_PageDown,
            Qt.Key.Key_Home,
            Qt.Key.Key_End,
        ):
            self.cell_selected.emit(self.array_model.full_index(current.row(), current.column()))
