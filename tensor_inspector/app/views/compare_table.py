"""The pairs of a comparison as a sortable table (worst first), and the names left unpaired.

Rows keep the report's order (worst first) until a header is clicked; numbers sort
by value, not by their text, through ``SORT_ROLE``. Pairs beyond the tolerance and
pairs that could not be compared are drawn in red, so a long table is read from the
top.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QListWidget, QTableView, QTabWidget, QWidget

from tensor_inspector.core.compare_names import describe_transform
from tensor_inspector.session.answers import Compared
from tensor_inspector.session.compare import Report

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PAIR_ROLE = Qt.ItemDataRole.UserRole + 2
COLUMNS = (
    "A",
    "B",
    "layout",
    "shape (B)",
    "max |a-b|",
    "max rel",
    "mean |a-b|",
    "RMSE",
    "cosine",
    "beyond",
    "dtypes",
)
_METRIC = {4: "max_abs", 5: "max_rel", 6: "mean_abs", 7: "rmse", 8: "cosine"}
_BAD = QColor("#b71c1c")
_GOOD = QColor("#1b5e20")

ModelIndex = QModelIndex | QPersistentModelIndex


def number_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"


def cosine_text(x: float) -> str:
    """Enough digits that a cosine short of 1 never reads as 1."""
    if x == 1.0 or not math.isfinite(x):
        return number_text(x)
    text = f"{x:.6f}"
    return text if float(text) != 1.0 else f"1 − {number_text(1.0 - x)}"


def _skipped_text(entry: str) -> str:
    """ "B:module.bn1.num_batches_tracked" (the report's form) as the user reads it."""
    side, sep, name = entry.partition(":")
    return f"{name}  (in {side})" if sep and side in ("A", "B") else entry


def _shape_text(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "?"
    return "×".join("?" if d is None else str(d) for d in shape) or "scalar"


class PairsModel(QAbstractTableModel):
    """One row per compared pair."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pairs: list[Compared] = []

    def set_pairs(self, pairs: list[Compared]) -> None:
        self.beginResetModel()
        self.pairs = list(pairs)
        self.endResetModel()

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt override)
        return 0 if parent.isValid() else len(self.pairs)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt override)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(  # noqa: N802 (Qt override)
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        pair = self.pairs[index.row()]
        col = index.column()
        if role == PAIR_ROLE:
            return pair
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(pair, col)
        if role == SORT_ROLE:
            return self._sort_key(pair, index.row(), col)
        if role == Qt.ItemDataRole.ForegroundRole:
            m = pair.metrics
            if m is None or not m.within:
                return QBrush(_BAD)
            if col == 9:
                return QBrush(_GOOD)
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            return pair.note or f"{pair.a}  ↔  {pair.b}"
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 4 and col != 10:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(pair: Compared, col: int) -> str:
        m = pair.metrics
        if col == 0:
            return pair.a
        if col == 1:
            return pair.b
        if col == 2:
            return describe_transform(pair.transform) or "same"
        if col == 3:
            return _shape_text(pair.shape_b)
        if col == 10:
            same = pair.dtype_a == pair.dtype_b
            return str(pair.dtype_a) if same else f"{pair.dtype_a} / {pair.dtype_b}"
        if m is None:
            return pair.note if col == 4 else ""
        if col == 8:
            return cosine_text(m.cosine)
        if col in _METRIC:
            return number_text(float(getattr(m, _METRIC[col])))
        if m.equal:
            return "equal"
        return f"{m.beyond} of {m.count}" if m.beyond else "0"

    def _sort_key(self, pair: Compared, row: int, col: int) -> Any:
        m = pair.metrics
        if col in (0, 1, 2, 3, 10):
            return self._text(pair, col)
        if m is None:  # not comparable: above every number when sorted worst first
            return math.inf
        if col in _METRIC:
            value = float(getattr(m, _METRIC[col]))
            return -math.inf if math.isnan(value) else value
        return m.beyond / m.count if m.count else 0.0  # the share beyond the tolerance


class PairsProxy(QSortFilterProxyModel):
    """Sorts by ``SORT_ROLE``: numbers as numbers, the report's order when unsorted."""

    def lessThan(self, left: ModelIndex, right: ModelIndex) -> bool:  # noqa: N802 (Qt override)
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if type(a) is not type(b):
            return str(a) < str(b)
        return bool(a < b)


class CompareTables(QTabWidget):
    """Tabs: the pairs, names only in A, only in B, and what was skipped (bookkeeping)."""

    pair_selected = Signal(object)  # Compared

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = PairsModel(self)
        self.proxy = PairsProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the report's order: worst first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # the ends of long names differ
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.only_a, self.only_b, self.skipped = QListWidget(), QListWidget(), QListWidget()
        self.addTab(self.table, "Pairs")
        self.addTab(self.only_a, "Only in A")
        self.addTab(self.only_b, "Only in B")
        self.addTab(self.skipped, "Skipped")

    def set_report(self, report: Report) -> None:
        self.model.set_pairs(report.pairs)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        for widget, names in ((self.only_a, report.only_a), (self.only_b, report.only_b)):
            widget.clear()
            widget.addItems(names)
        self.skipped.clear()
        self.skipped.addItems([_skipped_text(s) for s in report.skipped])
        beyond = sum(1 for p in report.pairs if p.metrics is None or not p.metrics.within)
        self.setTabText(
            0, f"Pairs ({len(report.pairs)}, {beyond} differ)" if beyond else f"Pairs ({len(report.pairs)})"
        )
        self.setTabText(1, f"Only in A ({len(report.only_a)})")
        self.setTabText(2, f"Only in B ({len(report.only_b)})")
        self.setTabText(3, f"Skipped ({len(report.skipped)})")
        self.fit_columns()

    def clear(self) -> None:
        self.set_report(Report([], [], [], []))

    def fit_columns(self) -> None:
        """Names get what their rows need (bounded), numbers their own width."""
        self.table.resizeColumnsToContents()
        for col in (0, 1):
            self.table.setColumnWidth(col, min(self.table.columnWidth(col), 320))

    def rows(self) -> list[Compared]:
        """The pairs in the order shown."""
        return [self.proxy.index(r, 0).data(PAIR_ROLE) for r in range(self.proxy.rowCount())]

    def select_row(self, row: int) -> None:
        self.table.setCurrentIndex(self.proxy.index(row, 0))

    def current_pair(self) -> Compared | None:
        index = self.table.currentIndex()
        return index.data(PAIR_ROLE) if index.isValid() else None

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.pair_selected.emit(current.data(PAIR_ROLE))
