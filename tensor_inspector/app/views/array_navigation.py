"""Moving around an array in the view: slice steps, going to an index, the next NaN/Inf.

The search for a non-finite value runs off the GUI thread over the whole array
(in any slice) and lands on the cell, in the slice that holds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tensor_inspector.core.nonfinite import can_hold_nonfinite, find_nonfinite
from tensor_inspector.core.number_format import exact_text

if TYPE_CHECKING:
    from PySide6.QtWidgets import QLabel

    from tensor_inspector.app.background import BackgroundRunner
    from tensor_inspector.app.views.axes_selector import AxesSelector
    from tensor_inspector.app.views.table_view import ArrayTableView


class NavigationMixin:
    """The navigation half of ``ArrayView``."""

    # what the view provides (annotations only)
    _array: np.ndarray | None
    axes: AxesSelector
    table: ArrayTableView
    status: QLabel
    runner: BackgroundRunner

    def step_slice(self, delta: int) -> None:
        """Move the first slider axis by ``delta`` (Alt+Right / Alt+Left)."""
        if self.axes.sliders:
            axis = min(self.axes.sliders)
            slider = self.axes.sliders[axis]
            slider.setValue(min(max(slider.value() + delta, 0), slider.maximum()))

    def go_to(self, index: tuple[int, ...]) -> None:
        """Show the slice holding the full N-D ``index`` and select its cell in the table."""
        array = self._array
        if array is None or len(index) != array.ndim:
            return
        if array.ndim >= 3:
            for axis in self.axes.sliders:
                self.axes.set_position(axis, index[axis])
            self.axes.flush()  # redraw the slice now, not after the slider debounce
        if array.ndim == 0:
            self.table.select_cell(0, 0)
        elif array.ndim == 1:
            self.table.select_cell(index[0], 0)
        else:
            self.table.select_cell(index[self.axes.row_axis], index[self.axes.col_axis])

    def find_next_nonfinite(self) -> None:
        """Jump to the next NaN/±Inf after the current cell (searched off the GUI thread)."""
        array = self._array
        if array is None:
            return
        if not can_hold_nonfinite(array.dtype):
            self.status.setText(f"{array.dtype.name} values cannot be NaN or Inf.")
            return
        current = self.table.currentIndex()
        after = (
            self.table.array_model.full_index(current.row(), current.column())
            if current.isValid() and array.ndim
            else None
        )
        self.status.setText("Searching for NaN/Inf…")

        def found(index: tuple[int, ...] | None) -> None:
            if self._array is not array:
                return  # another tensor is shown now
            if index is None:
                self.status.setText("No NaN or Inf in this tensor.")
                return
            self.go_to(index)
            self.status.setText(
                f"{list(index)} = {exact_text(array[index], self.table.array_model.kind())}"
                "   (F3: next NaN/Inf)"
            )

        self.runner.submit("find", find_nonfinite, array, after, cancellable=True, on_done=found)
