"""The comparison window: progress, the table of pairs, and the selected pair's plane drawn four ways.

It holds no file access: it asks for planes with ``slice_wanted`` and is given them
(``show_slice``); the controller reads them through the session. Indices are B's:
the metrics' ``worst`` is an index into B, and A's plane arrives already in B's layout.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.compare_worker import Index, Outcome, PairSlice, plane_index
from tensor_inspector.app.views.axes_selector import AxesSelector
from tensor_inspector.app.views.compare_plots import ComparePlots
from tensor_inspector.app.views.compare_table import CompareTables, cosine_text, number_text
from tensor_inspector.core.compare_names import describe_transform
from tensor_inspector.session.answers import Compared

STEPS = 1000  # progress bar steps per pair


class CompareView(QWidget):
    """A window of its own (the main window keeps its tree and view)."""

    cancel_requested = Signal()
    slice_wanted = Signal(object, object, object, object)  # Compared, index into B, rows axis, cols axis
    ready = Signal()  # the marked plane (and cell) is drawn

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Compare — Tensor Inspector")
        self.resize(1400, 900)
        self._pair: Compared | None = None
        self._pending_cell: tuple[int, ...] | None = None
        self.header = QLabel()
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.header.setStyleSheet("font-size: 13px;")
        self.progress_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop comparing (Esc); the pairs compared so far are kept")
        self.cancel_button.clicked.connect(self.cancel_requested)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.progress_label)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        self.tables = CompareTables()
        self.tables.pair_selected.connect(self.select_pair)
        self.axes = AxesSelector()
        self.axes.changed.connect(self._request_slice)
        self.go_button = QPushButton("Go to largest difference")
        self.go_button.setToolTip("Show the slice and cell where |A − B| is largest")
        self.go_button.clicked.connect(self.go_to_worst)
        self.pair_label = QLabel()
        self.pair_label.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.pair_label, 1)
        controls.addWidget(self.go_button)
        self.plots = ComparePlots()
        self.plots.index_mapper = self.full_index
        self.plots.cell_clicked.connect(lambda *_cell: self.ready.emit())
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #555; font-size: 13px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.plots)
        bottom = QWidget()
        box = QVBoxLayout(bottom)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(controls)
        box.addWidget(self.axes)
        box.addWidget(self.stack, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.tables)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([300, 600])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.splitter, 1)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.cancel_requested.emit)
        self._set_running(False)
        self._show_message("Select a pair to see A, B and their difference.")

    # -- the comparison ------------------------------------------------------------------------
    def start(self, name_a: str, name_b: str) -> None:
        """A new comparison: empty tables, progress shown."""
        self.header.setText(f"<b>A</b>: {name_a} &nbsp;&nbsp; <b>B</b>: {name_b}")
        self.tables.clear()
        self._pair = None
        self.plots.clear()
        self.pair_label.setText("")
        self.go_button.setEnabled(False)
        self.axes.set_shape(())
        self._show_message("Comparing…")
        self.progress.setRange(0, 0)
        self.progress_label.setText("Planning the pairs…")
        self._set_running(True)

    def show_progress(self, pair: int, pairs: int, done: int, total: int, label: str) -> None:
        share = done / total if total else 0.0
        self.progress.setRange(0, max(pairs, 1) * STEPS)
        self.progress.setValue(int((pair + share) * STEPS))
        percent = f" ({share:.0%})" if total else ""
        self.progress_label.setText(f"Pair {pair + 1} of {pairs}: {label}{percent}")

    def show_outcome(self, outcome: Outcome) -> None:
        report = outcome.report
        self._set_running(False)
        self.tables.set_report(report)
        differ = sum(1 for p in report.pairs if p.metrics is None or not p.metrics.within)
        unpaired = len(report.only_a) + len(report.only_b)
        if outcome.cancelled:
            text = f"Cancelled after {len(report.pairs)} of {outcome.planned} pairs."
        elif differ:
            text = f"{differ} of {len(report.pairs)} pairs differ."
        else:
            text = f"All {len(report.pairs)} pairs are equal."
        if unpaired:
            text += f" {unpaired} unpaired."
        self.progress_label.setText(text)
        if report.pairs:
            self.tables.select_row(0)  # the worst pair, drawn at once
        else:
            self._show_message("No pair was compared." if outcome.cancelled else "No pairs to show.")

    def show_failure(self, message: str) -> None:
        self._set_running(False)
        self.progress_label.setText("")
        self._show_message(message)

    def is_running(self) -> bool:
        return self.cancel_button.isVisible()

    def _set_running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        self.cancel_requested.emit()  # a closed window wants no more answers
        super().closeEvent(event)

    # -- one pair ------------------------------------------------------------------------------
    def select_pair(self, pair: Compared) -> None:
        self._pair = pair
        self._pending_cell = None
        self.plots.clear()
        m = pair.metrics
        transform = describe_transform(pair.transform)
        layout = f", A {transform}" if transform else ""
        figures = (
            f"max |A − B| {number_text(m.max_abs)}, cosine {cosine_text(m.cosine)}"
            if m is not None
            else pair.note
        )
        self.pair_label.setText(f"<b>{pair.a}</b> ↔ <b>{pair.b}</b>{layout} — {figures}")
        self.go_button.setEnabled(m is not None and m.worst is not None and m.max_abs > 0)
        shape = pair.shape_b
        if m is None or shape is None or any(d is None for d in shape):
            self.axes.set_shape(())
            self.axes.setVisible(False)
            self._show_message(pair.note or "These values cannot be drawn side by side.")
            return
        self.axes.set_shape(tuple(int(d) for d in shape if d is not None))
        self._request_slice()

    def pair(self) -> Compared | None:
        return self._pair

    def _request_slice(self) -> None:
        pair = self._pair
        if pair is None:
            return
        ndim = len(self.axes.shape())
        rows, cols = self._axes()
        if ndim <= 2:
            index: Index = (slice(None),) * ndim
        else:
            index = plane_index(ndim, self.axes.row_axis, self.axes.col_axis, self.axes.positions)
        self.slice_wanted.emit(pair, index, rows, cols)

    def _axes(self) -> tuple[int | None, int | None]:
        ndim = len(self.axes.shape())
        if ndim >= 2:
            return self.axes.row_axis, self.axes.col_axis
        return (None, 0) if ndim == 1 else (None, None)

    def show_slice(self, pair_slice: PairSlice) -> None:
        """Draw a plane asked for with ``slice_wanted`` (stale ones are dropped)."""
        if self._pair is None or pair_slice.index != self._current_index():
            return
        self.stack.setCurrentWidget(self.plots)
        rows, cols = self._axes()
        self.plots.axis_names = (
            "row" if rows is None else f"axis {rows}",
            "column" if cols is None else f"axis {cols}",
        )
        self.plots.set_slice(pair_slice)
        cell = self._pending_cell
        self._pending_cell = None
        if cell is not None:
            self.plots.mark_cell(*self._plane_cell(cell))
        self.ready.emit()

    def show_slice_failure(self, message: str) -> None:
        self._show_message(f"Cannot show this pair: {message}")
        self.ready.emit()

    def _current_index(self) -> Index:
        ndim = len(self.axes.shape())
        if ndim <= 2:
            return (slice(None),) * ndim
        return plane_index(ndim, self.axes.row_axis, self.axes.col_axis, self.axes.positions)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    # -- cells ---------------------------------------------------------------------------------
    def full_index(self, row: int, col: int) -> tuple[int, ...]:
        """The index into B of a cell of the shown plane."""
        ndim = len(self.axes.shape())
        if ndim == 0:
            return ()
        if ndim == 1:
            return (col,)
        index = list(self.axes.positions)
        index[self.axes.row_axis], index[self.axes.col_axis] = row, col
        return tuple(index)

    def _plane_cell(self, index: tuple[int, ...]) -> tuple[int, int]:
        if len(index) == 0:
            return 0, 0
        if len(index) == 1:
            return 0, index[0]
        return index[self.axes.row_axis], index[self.axes.col_axis]

    def selected_cell(self) -> tuple[int, ...] | None:
        """The index into B of the marked cell, or None."""
        cell = self.plots.marked_cell()
        return None if cell is None or self.plots.pair_slice() is None else self.full_index(*cell)

    def go_to_worst(self) -> None:
        """Show the plane holding the largest difference and mark its cell."""
        pair = self._pair
        worst = None if pair is None or pair.metrics is None else pair.metrics.worst
        if worst is None:
            return
        ndim = len(self.axes.shape())
        if ndim <= 2:
            shown = self.plots.pair_slice()
            if shown is not None and shown.index == self._current_index():
                self.plots.mark_cell(*self._plane_cell(worst))
                self.ready.emit()
            else:
                self._pending_cell = tuple(worst)
            return
        self._pending_cell = tuple(worst)
        before = self._current_index()
        for axis in range(ndim):
            if axis not in (self.axes.row_axis, self.axes.col_axis):
                self.axes.set_position(axis, worst[axis])
        self.axes.flush()
        if self._current_index() == before and self.plots.pair_slice() is not None:
            self._pending_cell = None
            self.plots.mark_cell(*self._plane_cell(worst))
            self.ready.emit()
