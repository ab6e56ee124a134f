"""Row and column profiles through the cursor, under and beside a 2-D heatmap.

The profiles share the heatmap's axes (columns under it, rows beside it), so a
feature seen in the picture is read off as values on the same index. They are
drawn from the values the picture was drawn from (a sample of a big tensor says
so by its x step), with the user's scale ignored: profiles show the values.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from tensor_inspector.core.dtypes import display_float


class Profiles:
    """Two small plots attached to a heatmap's PlotItem inside a GraphicsLayout."""

    def __init__(self, layout: pg.GraphicsLayout, plot: pg.PlotItem) -> None:
        self.layout, self.plot = layout, plot
        self.row_plot = pg.PlotItem()  # the cursor's row: values along the columns
        self.col_plot = pg.PlotItem()  # the cursor's column: values along the rows
        for item, (x, y) in ((self.row_plot, ("column", "value")), (self.col_plot, ("value", "row"))):
            item.setMenuEnabled(False)
            item.hideButtons()
            for name in ("left", "bottom"):
                item.getAxis(name).setPen("k")
                item.getAxis(name).setTextPen("k")
            item.setLabel("bottom", x)
            item.setLabel("left", y)
        self.row_plot.setXLink(plot)
        self.col_plot.setYLink(plot)
        self.col_plot.invertY(True)
        self.row_curve = self.row_plot.plot(pen=pg.mkPen("#1f5fa8", width=1.2), connect="finite")
        self.col_curve = self.col_plot.plot(pen=pg.mkPen("#c0392b", width=1.2), connect="finite")
        self.row_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#1f5fa8", width=1, style=Qt.PenStyle.DashLine))
        self.col_line = pg.InfiniteLine(
            angle=90, pen=pg.mkPen("#c0392b", width=1, style=Qt.PenStyle.DashLine)
        )
        self.enabled = False

    def set_enabled(self, on: bool) -> None:
        """Show the two plots (and the cursor's lines on the heatmap) or take them away."""
        if on == self.enabled:
            return
        self.enabled = on
        if on:
            self.layout.addItem(self.col_plot, row=0, col=1)
            self.layout.addItem(self.row_plot, row=1, col=0)
            self.layout.layout.setColumnStretchFactor(0, 4)
            self.layout.layout.setColumnStretchFactor(1, 1)
            self.layout.layout.setRowStretchFactor(0, 4)
            self.layout.layout.setRowStretchFactor(1, 1)
            self.plot.addItem(self.row_line, ignoreBounds=True)
            self.plot.addItem(self.col_line, ignoreBounds=True)
        else:
            for item in (self.col_plot, self.row_plot):
                self.layout.removeItem(item)
            self.plot.removeItem(self.row_line)
            self.plot.removeItem(self.col_line)

    def show_at(self, values: np.ndarray, steps: tuple[int, int], row: int, col: int) -> None:
        """Profiles of the drawn 2-D ``values`` (cells ``steps`` apart) through full cell (row, col)."""
        if not self.enabled or values.ndim != 2 or values.size == 0:
            return
        step_r, step_c = steps
        r = min(row // step_r, values.shape[0] - 1)
        c = min(col // step_c, values.shape[1] - 1)
        line = _floats(values[r])
        column = _floats(values[:, c])
        # centre of each sampled cell, in the plane's full cells (the heatmap's axes)
        self.row_curve.setData(np.arange(line.size) * step_c + step_c / 2, line)
        self.col_curve.setData(column, np.arange(column.size) * step_r + step_r / 2)
        self.row_line.setPos(row + 0.5)
        self.col_line.setPos(col + 0.5)
        self.row_plot.setTitle(f"row {row}", size="8pt")
        self.col_plot.setTitle(f"column {col}", size="8pt")

    def profile_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(row profile values, column profile values) as drawn."""
        return self.row_curve.getData()[1], self.col_curve.getData()[0]


def _floats(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "c":
        return np.asarray(np.abs(values), np.float64)
    return np.asarray(display_float(values), np.float64)
