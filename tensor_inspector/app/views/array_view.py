"""One numpy array on screen: axes selector, table | heatmap, statistics, format toolbar.

``set_array`` is cheap on the GUI thread: the table formats only visible cells of
a view, the heatmap image, levels and statistics are computed in background
threads, latest request wins. Keyboard: Ctrl+C copies the table selection as
TSV, Ctrl+T transposes, Alt+Right / Alt+Left step the first slider axis, Ctrl+Shift+D
switches a quantized tensor between its raw and dequantized views.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.views.array_navigation import NavigationMixin
from tensor_inspector.app.views.array_sampling import SampledState, SampledViewMixin
from tensor_inspector.app.views.array_stats import Fetch, sample_stats_job, stats_job
from tensor_inspector.app.views.axes_selector import AxesSelector
from tensor_inspector.app.views.heatmap import HeatmapView
from tensor_inspector.app.views.message_panel import MessagePanel
from tensor_inspector.app.views.quantized_toggle import QuantizedToggle
from tensor_inspector.app.views.stats_panel import SLICE, WHOLE, StatsPanel
from tensor_inspector.app.views.table_view import ArrayTableView
from tensor_inspector.core.dtypes import short_name
from tensor_inspector.core.nodes import Index
from tensor_inspector.core.number_format import MODES, NumberFormat, exact_text
from tensor_inspector.core.sampling import Sampling
from tensor_inspector.core.slicing import oriented_slice
from tensor_inspector.core.stats import Stats

__all__ = ["ArrayView", "stats_job"]


class ArrayView(NavigationMixin, SampledViewMixin, QWidget):
    """Table + heatmap (or line plot for 1-D) + N-D axes selector + statistics for ONE array."""

    slice_changed = Signal()  # the displayed 2-D slice changed (axes choice, slider, transpose)
    cell_selected = Signal(tuple)  # full N-D index of the table's current cell or a heatmap click
    ready = Signal()  # image, whole and slice statistics of the current array shown
    whole_loaded = Signal()  # the whole value took the place of the sample it was shown from
    _progress = Signal(int, int)  # streamed statistics: slabs done, slabs in all (from a worker thread)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._array: np.ndarray | None = None
        self._title = ""
        self._whole_given = False
        self._sampled: SampledState | None = None
        self.runner = BackgroundRunner(self)
        self.table = ArrayTableView()
        self.heatmap = HeatmapView()
        self.axes = AxesSelector()
        self.stats_panel = StatsPanel()
        self.heatmap.index_mapper = self._full_cell

        self.title = QLabel()
        self.title.setStyleSheet("font-weight: 600; font-size: 13px;")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # what the format says about the node (framework dtype, device, checkpoint key, ...)
        self.details = QLabel()
        self.details.setStyleSheet("color: #555;")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.hide()
        # a big tensor shown from a sample says so, above everything drawn from it
        self.sample_note = QLabel()
        self.sample_note.setWordWrap(True)
        self.sample_note.setStyleSheet("background: #fff6d6; color: #5a4500; padding: 3px 6px;")
        self.sample_note.hide()
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(MODES))
        self.format_combo.setToolTip("Number format of table cells")
        self.precision_spin = QSpinBox()
        self.precision_spin.setRange(0, 17)
        self.precision_spin.setSpecialValueText("exact")
        self.precision_spin.setToolTip(
            "Significant digits (general) or decimals (fixed, scientific); 'exact' shows the stored value"
        )
        self.find_button = QToolButton()
        self.find_button.setText("Next NaN/Inf")
        self.find_button.setToolTip("Go to the next NaN or ±Inf after the current cell, in any slice (F3)")
        self.find_button.clicked.connect(self.find_next_nonfinite)
        # a quantized tensor's other view (stored codes / dequantized values) is another node
        self.quantized_toggle = QuantizedToggle()
        self.status = QLabel(" ")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        toolbar = QHBoxLayout()
        toolbar.setContentsMargins(4, 0, 4, 0)
        toolbar.addWidget(QLabel("format:"))
        toolbar.addWidget(self.format_combo)
        toolbar.addWidget(self.precision_spin)
        toolbar.addSpacing(16)
        toolbar.addWidget(self.heatmap.controls)
        toolbar.addWidget(self.find_button)
        toolbar.addStretch(1)

        self.views_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.views_splitter.addWidget(self.table)
        self.views_splitter.addWidget(self.heatmap)
        self.views_splitter.setStretchFactor(0, 1)
        self.views_splitter.setStretchFactor(1, 1)
        self.main_splitter = QSplitter(Qt.Orientation.Vertical)
        self.main_splitter.addWidget(self.views_splitter)
        self.main_splitter.addWidget(self.stats_panel)
        self.main_splitter.setStretchFactor(0, 3)
        self.main_splitter.setStretchFactor(1, 1)
        self.views_splitter.setSizes([1000, 1000])
        self.main_splitter.setSizes([2350, 1250])  # room for every statistics row at 880 px

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        content_layout.setSpacing(3)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 4, 0)
        header.addWidget(self.title, 1)
        header.addWidget(self.quantized_toggle)
        content_layout.addLayout(header)
        content_layout.addWidget(self.details)
        content_layout.addWidget(self.sample_note)
        content_layout.addLayout(toolbar)
        content_layout.addWidget(self.axes)
        content_layout.addWidget(self.main_splitter, 1)
        content_layout.addWidget(self.status)
        self.message_label = MessagePanel()
        self.stack = QStackedWidget()
        self.stack.addWidget(content)
        self.stack.addWidget(self.message_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.format_combo.currentTextChanged.connect(self._on_format_controls)
        self.precision_spin.valueChanged.connect(self._on_format_controls)
        self.axes.changed.connect(self._on_axes_changed)
        self.heatmap.cell_clicked.connect(self._on_heatmap_clicked)
        self.heatmap.image_ready.connect(self._check_ready)
        self.table.cell_selected.connect(self._on_cell_selected)
        self.table.selectionModel().currentChanged.connect(
            lambda current, _previous: self.heatmap.mark_cell(current.row(), current.column())
        )
        self.table.message.connect(self.status.setText)
        self.runner.finished.connect(lambda *_: self._check_ready())
        self.runner.failed.connect(self._on_stats_failed)
        self._progress.connect(self.stats_panel.show_progress)
        self.stats_panel.exact_requested.connect(self.compute_exact_stats)
        self.stats_panel.cancel_requested.connect(self.cancel_work)
        for keys, slot in (
            ("Alt+Right", lambda: self.step_slice(1)),
            ("Alt+Left", lambda: self.step_slice(-1)),
            ("F3", self.find_next_nonfinite),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self.show_message("Select a tensor.")

    # -- the interface -------------------------------------------------------------------
    def set_array(
        self,
        array: np.ndarray,
        title: str = "",
        whole_stats: Stats | None = None,
        sampling: Sampling | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        """Show ``array`` (any rank and dtype); heavy work goes to background threads.

        ``sampling``: ``array`` is a strided sample of a bigger tensor, whose regions
        (and whole value) ``fetch(index, cancel)`` reads.
        """
        array = np.asarray(array) if not isinstance(array, np.ndarray) else array
        self._array = array
        self._title = title
        sampled = self._sampled = SampledState(sampling, fetch, array.dtype.itemsize) if sampling else None
        self.runner.cancel("full")
        self.runner.cancel("exact")
        self.set_title(title)
        self.sample_note.setText(sampled.summary() if sampled is not None else "")
        self.sample_note.setVisible(sampled is not None)
        model = self.table.array_model
        model.locked = sampled.locked_reason() if sampled is not None else None
        model.index_map = sampled.sampling.full_index if sampled is not None else (lambda index: index)
        self.mark_stale(None)
        self.status.setText(" ")
        self.stack.setCurrentIndex(0)
        self.axes.set_shape(array.shape)
        self.stats_panel.clear(pending=True)
        self.stats_panel.offer_exact(
            sampled is not None and sampled.fetch is not None and not sampled.loads_whole()
        )
        self._whole_given = whole_stats is not None
        if whole_stats is not None:
            self.runner.cancel("whole")
            self.stats_panel.set_stats(WHOLE, whole_stats)
        elif sampled is not None:
            self.runner.submit(
                "whole",
                sample_stats_job,
                array,
                sampled.sampling,
                cancellable=True,
                on_done=lambda s: self.stats_panel.set_stats(WHOLE, s),
            )
        else:
            self.runner.submit(
                "whole",
                stats_job,
                array,
                cancellable=True,
                on_done=lambda s: self.stats_panel.set_stats(WHOLE, s),
            )
        if sampled is not None and sampled.loads_whole() and sampled.fetch is not None:
            self.runner.submit(
                "full",
                sampled.fetch,
                sampled.whole_index(),
                cancellable=True,
                on_done=self._on_whole,
                on_error=lambda text: self.sample_note.setText(
                    f"{sampled.summary()} Reading all values failed: {text}"
                ),
            )
        self._show_plane(reset_view=True)

    def set_title(self, title: str) -> None:
        """The line above the views: ``title`` (file › node), then the full shape and dtype."""
        self._title = title
        array = self._array
        if array is None:
            return
        sampling = self.sampling()
        shape = (
            "×".join(str(n) for n in (sampling.shape if sampling is not None else array.shape)) or "scalar"
        )
        self.title.setText(
            f"{title}   <span style='font-weight:400; color:#555'>{shape}  {short_name(array.dtype)}</span>"
            if title
            else f"{shape}  {short_name(array.dtype)}"
        )

    def set_details(self, text: str) -> None:
        """One line (or a few) about the shown node under the title; empty hides it."""
        self.details.setText(text)
        self.details.setVisible(bool(text))

    def replace_array(self, array: np.ndarray) -> None:
        """Show ``array`` in place of the current one of the same shape, keeping axes and selection.

        Used when an edited copy takes over from a read-only original, and after undo/redo.
        """
        current = self._array
        if current is None or array.shape != current.shape or array.dtype != current.dtype:
            self.set_array(array, title=self._title)
            return
        self._array = array
        self.refresh_values()

    def refresh_values(self) -> None:
        """The values of the shown array changed in place: repaint cells, image and statistics."""
        array = self._array
        if array is None:
            return
        plane = self.current_slice()
        self.table.array_model.swap_plane(plane)
        self.heatmap.set_plane(plane, reset_view=False)
        self._refresh_cell_status()  # an edit, paste or undo changed the value under the cursor
        self.stats_panel.clear(pending=True)
        self._whole_given = False
        self.runner.submit(
            "whole",
            stats_job,
            array,
            cancellable=True,
            on_done=lambda s: self.stats_panel.set_stats(WHOLE, s),
        )
        if array.ndim > 2:
            self._submit_slice_stats(plane)
        self._check_ready()

    def show_message(self, text: str, error: bool = False) -> None:
        """Replace the views by a centred message; the previous array is forgotten."""
        self._array = None
        self._sampled = None
        self.runner.cancel()
        self.heatmap.runner.cancel()
        self.heatmap.tiles.set_source(None)
        self.mark_stale(None)
        self.message_label.show_text(text, error)
        self.stack.setCurrentIndex(1)

    def mark_stale(self, text: str | None) -> None:
        """While another value is read: veil the picture with ``text`` and grey out the table."""
        self.heatmap.set_stale(text)
        self.table.setEnabled(not text)
        self.stats_panel.setEnabled(not text)
        if text:
            self.status.setText(" ")

    def array(self) -> np.ndarray | None:
        """The whole array shown (None while only a sample of a big tensor is loaded)."""
        return self._array if self._sampled is None else None

    def current_index(self) -> Index:
        """Ints for the slider axes, slice(None) for the displayed axes; () for rank <= 2."""
        return self.axes.current_index() if self._array is not None else ()

    def current_slice(self) -> np.ndarray:
        """The displayed plane as oriented on screen (a view of the array)."""
        if self._array is None:
            return np.zeros((0, 0))
        return oriented_slice(self._array, self.axes.row_axis, self.axes.col_axis, self.axes.positions)

    def selected_tsv(self) -> str:
        return self.table.selected_tsv()

    def set_number_format(self, mode: str, precision: int) -> None:
        fmt = NumberFormat(mode, precision)  # validates
        for widget in (self.format_combo, self.precision_spin):
            widget.blockSignals(True)
        self.format_combo.setCurrentText(mode)
        self.precision_spin.setValue(precision)
        self.precision_spin.setSpecialValueText("exact" if mode == "general" else "")
        for widget in (self.format_combo, self.precision_spin):
            widget.blockSignals(False)
        self.table.array_model.set_number_format(fmt)
        self.table.fit_columns()

    def stats_ready(self) -> bool:
        """True once whole and slice statistics (and the heatmap image) of the array are shown."""
        # reading the whole value or streaming exact statistics may take minutes: not waited for
        pending = any(self.runner.pending(channel) for channel in ("whole", "slice", "find"))
        return not pending and self.heatmap.is_ready()

    # -- internals -----------------------------------------------------------------------
    def _show_plane(self, reset_view: bool) -> None:
        array = self._array
        if array is None:
            return
        plane = self.current_slice()
        if array.ndim > 2:
            self.heatmap.set_axis_names(
                f"row (axis {self.axes.row_axis})", f"column (axis {self.axes.col_axis})"
            )
        elif array.ndim == 2:
            transposed = self.axes.row_axis > self.axes.col_axis
            self.heatmap.set_axis_names(
                "row (axis 1)" if transposed else "row", "column (axis 0)" if transposed else "column"
            )
        model, sampled = self.table.array_model, self._sampled
        rows_axis, cols_axis = self.axes.row_axis, self.axes.col_axis
        steps = sampled.sampling.steps if sampled is not None else (1,) * array.ndim
        first = steps[0] if steps else 1
        model.header_steps = (steps[rows_axis], steps[cols_axis]) if array.ndim >= 2 else (first, first)
        current = self.table.currentIndex()
        model.set_plane(plane, array.ndim, rows_axis, cols_axis, self.axes.positions)
        if current.isValid() and current.row() < model.rowCount() and current.column() < model.columnCount():
            # the same cell of the new slice stays current: its readout shows the new value
            self.table.selectionModel().setCurrentIndex(
                model.index(current.row(), current.column()), QItemSelectionModel.SelectionFlag.ClearAndSelect
            )
        source = (
            sampled.plane_source(rows_axis, cols_axis, self.axes.positions) if sampled is not None else None
        )
        self.heatmap.set_plane(plane, reset_view=reset_view, source=source)
        self._refresh_cell_status()
        if array.ndim <= 2:
            self.runner.cancel("slice")
            whole = self.stats_panel.stats(WHOLE)
            if whole is not None:
                self.stats_panel.set_stats(SLICE, whole)
            else:
                self.stats_panel.set_stats(SLICE, None)
        else:
            self.stats_panel.set_stats(SLICE, None)
            self._submit_slice_stats(plane)
        self._check_ready()

    def _submit_slice_stats(self, plane: np.ndarray) -> None:
        """Statistics of the shown slice, in the background (a newer slice replaces the request)."""
        self.runner.submit(
            "slice",
            stats_job,
            plane,
            cancellable=True,
            on_done=lambda s: self.stats_panel.set_stats(SLICE, s),
        )

    def _on_axes_changed(self) -> None:
        if self._array is None:
            return
        self._show_plane(reset_view=False)
        self.slice_changed.emit()

    def _check_ready(self) -> None:
        array = self._array
        if array is not None and array.ndim <= 2 and self.stats_panel.stats(SLICE) is None:
            whole = self.stats_panel.stats(WHOLE)
            if whole is not None:
                self.stats_panel.set_stats(SLICE, whole)  # the slice is the whole array
        if array is not None and self.stats_ready():
            self.ready.emit()

    def _on_stats_failed(self, channel: str, _rid: int, message: str) -> None:
        self.status.setText(f"Statistics failed: {message}")
        self._check_ready()

    def _on_heatmap_clicked(self, row: int, col: int) -> None:
        step_r, step_c = self.heatmap.steps()
        self.table.select_cell(row // step_r, col // step_c)

    def _on_cell_selected(self, index: tuple[int, ...]) -> None:
        if self._refresh_cell_status():
            self.cell_selected.emit(index)

    def _refresh_cell_status(self) -> bool:
        """ "[index] = value" of the table's current cell, as the values are now (or blank)."""
        current, model = self.table.currentIndex(), self.table.array_model
        if self._array is None or not current.isValid():
            self.status.setText(" ")
            return False
        try:
            value = exact_text(model.value(current.row(), current.column()), model.kind())
        except (IndexError, TypeError):
            self.status.setText(" ")
            return False
        self.status.setText(f"{list(model.full_index(current.row(), current.column()))} = {value}")
        return True

    def _on_format_controls(self, *_args: object) -> None:
        mode = self.format_combo.currentText()
        precision = self.precision_spin.value()
        if mode != "general" and precision == 0 and self.sender() is self.format_combo:
            precision = 6  # "exact" means nothing for fixed/scientific: start from 6 digits
        self.set_number_format(mode, precision)
