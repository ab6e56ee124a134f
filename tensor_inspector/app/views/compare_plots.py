"""A, B, A - B and |A - B| / |B| of one plane as linked heatmaps, and the histogram of A - B.

Zooming or panning one heatmap moves the others (linked views), so the same cells
are always side by side. A and B share their colour levels; A - B uses a diverging
map centred on 0, so equal values are the neutral colour and the sign of a
difference is its hue. The marked cell (a click, or "Go to largest difference") is
outlined in every heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QVBoxLayout, QWidget

from tensor_inspector.app.compare_worker import PairSlice
from tensor_inspector.app.views.colormaps import colormap, special_mask
from tensor_inspector.app.views.compare_table import number_text
from tensor_inspector.core.number_format import exact_text, value_kind

pg.setConfigOptions(imageAxisOrder="row-major")

# key, title, colormap shown in colormaps.COLORMAPS
PANELS = (
    ("A", "A", "viridis"),
    ("B", "B (A's colours)", "viridis"),
    ("A-B", "A − B (0 in the middle colour)", "diverging (CET-D1)"),
    ("rel", "|A − B| / |B| (0 is white)", "heat, reversed"),
)
HISTOGRAM_FLOOR = -0.3  # log10 of the bars' foot: a bin of one cell still shows as a bar


class ComparePlots(QWidget):
    """Four linked heatmaps of a ``PairSlice`` and the histogram of its differences."""

    cell_clicked = Signal(int, int)  # row, column of the plane

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index_mapper: Callable[[int, int], tuple[int, ...]] = lambda r, c: (r, c)
        self._slice: PairSlice | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        self.masks: dict[str, pg.ImageItem] = {}
        self.markers: dict[str, QGraphicsRectItem] = {}
        self.bars: dict[str, pg.ColorBarItem] = {}
        for i, (key, title, cmap) in enumerate(PANELS):
            plot = self.graphics.addPlot(row=i // 2, col=i % 2)
            plot.setTitle(title, color="k", size="10pt")
            self._style(plot)
            plot.invertY(True)
            image = pg.ImageItem(autoDownsample=True)
            mask = pg.ImageItem(autoDownsample=True)
            mask.setZValue(10)
            marker = QGraphicsRectItem(0, 0, 1, 1)
            pen = pg.mkPen("#ff1744" if key != "rel" else "#00e5ff", width=2)
            pen.setCosmetic(True)
            marker.setPen(pen)
            marker.setZValue(20)
            marker.hide()
            for item in (image, mask, marker):
                plot.addItem(item)
            bar = pg.ColorBarItem(colorMap=_colormap(cmap), interactive=False, width=12, rounding=1e-12)
            bar.setImageItem(image, insert_in=plot)
            bar.axis.setTextPen("k")
            # short ticks: pyqtgraph's own ("-0.0003") do not fit and are dropped, leaving only 0
            bar.axis.tickStrings = _tick_strings
            bar.axis.setWidth(58)
            if self.plots:
                first = self.plots["A"]
                plot.setXLink(first)
                plot.setYLink(first)
            self.plots[key], self.images[key], self.masks[key] = plot, image, mask
            self.markers[key], self.bars[key] = marker, bar
        self.histogram = self.graphics.addPlot(row=0, col=2, rowspan=2)
        self.histogram.setTitle("A − B in this slice", color="k", size="10pt")
        self._style(self.histogram)
        self.histogram.setLabel("bottom", "difference")
        self.histogram.setLabel("left", "cells (log)")
        self.histogram.setLogMode(x=False, y=True)
        self.bars_item = pg.PlotDataItem(
            stepMode="center", fillLevel=HISTOGRAM_FLOOR, brush=pg.mkBrush("#1f5fa8"), pen=pg.mkPen("#1f5fa8")
        )
        self.histogram.addItem(self.bars_item)
        layout = self.graphics.ci.layout
        for col, stretch in ((0, 3), (1, 3), (2, 2)):
            layout.setColumnStretchFactor(col, stretch)
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(self.graphics, 1)
        box.addWidget(self.readout)
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    @staticmethod
    def _style(plot: pg.PlotItem) -> None:
        plot.setMenuEnabled(False)
        for name in ("left", "bottom"):
            plot.getAxis(name).setPen("k")
            plot.getAxis(name).setTextPen("k")

    # -- content ---------------------------------------------------------------------------
    def set_slice(self, pair_slice: PairSlice, reset_view: bool = True) -> None:
        """Draw a plane of the pair; a new shape (or ``reset_view``) shows all of it."""
        old = self._slice
        reset_view = reset_view or old is None or old.diff.shape != pair_slice.diff.shape
        self._slice = pair_slice
        drawn = pair_slice.drawn
        if drawn is None:
            return
        rows, cols = pair_slice.diff.shape
        for key, _title, _cmap in PANELS:
            image = drawn.images[key]
            self.images[key].setImage(image, levels=drawn.levels[key])
            self.images[key].setRect(QRectF(0, 0, cols, rows))
            self.bars[key].setLevels(drawn.levels[key])
            mask = special_mask(image) if key != "rel" else None  # rel is Inf wherever B is 0
            if mask is not None:
                self.masks[key].setImage(mask, levels=(0, 255))
                self.masks[key].setRect(QRectF(0, 0, cols, rows))
                self.masks[key].setVisible(True)
            else:
                self.masks[key].clear()
                self.masks[key].setVisible(False)
        if drawn.counts.size:
            heights = drawn.counts.astype(np.float64)
            heights[heights == 0] = np.nan  # log scale: empty bins are gaps, not -inf
            self.bars_item.setData(drawn.edges, heights)
        else:
            self.bars_item.clear()
        names = self.axis_names
        for key in ("A", "A-B"):
            self.plots[key].setLabel("left", names[0])
        for key in ("A-B", "rel"):
            self.plots[key].setLabel("bottom", names[1])
        if reset_view:
            self.hide_marker()
            self.plots["A"].setRange(xRange=(0, cols), yRange=(0, rows), padding=0)
            self.histogram.enableAutoRange()

    axis_names: tuple[str, str] = ("row", "column")

    def pair_slice(self) -> PairSlice | None:
        return self._slice

    def clear(self) -> None:
        self._slice = None
        for key, _title, _cmap in PANELS:
            self.images[key].clear()
            self.masks[key].clear()
        self.bars_item.clear()
        self.hide_marker()
        self.readout.setText(" ")

    def mark_cell(self, row: int, col: int) -> None:
        """Outline (row, col) in every heatmap and bring it into view if it is outside."""
        for marker in self.markers.values():
            marker.setRect(QRectF(col, row, 1, 1))
            marker.show()
        box = self.plots["A"].vb.viewRect()
        if not box.contains(QPointF(col + 0.5, row + 0.5)):
            self.plots["A"].vb.setRange(
                xRange=(col - box.width() / 2, col + box.width() / 2),
                yRange=(row - box.height() / 2, row + box.height() / 2),
                padding=0,
            )
        self.readout.setText(self.describe(row, col))

    def marked_cell(self) -> tuple[int, int] | None:
        marker = self.markers["A"]
        if not marker.isVisible():
            return None
        rect = marker.rect()
        return int(rect.y()), int(rect.x())

    def hide_marker(self) -> None:
        for marker in self.markers.values():
            marker.hide()

    def describe(self, row: int, col: int) -> str:
        """The values of A, B and their differences at a cell, for the readout."""
        s = self._slice
        if s is None:
            return " "
        where = list(self.index_mapper(row, col))
        a = exact_text(s.a[row, col], value_kind(s.a.dtype))
        b = exact_text(s.b[row, col], value_kind(s.b.dtype))
        d, r = s.diff[row, col], s.rel[row, col]
        return f"{where}   A = {a}   B = {b}   A − B = {_text(d)}   |A − B| / |B| = {_text(r)}"

    # -- mouse -----------------------------------------------------------------------------
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        s = self._slice
        if s is None:
            return None
        for plot in self.plots.values():
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                point = plot.vb.mapSceneToView(scene_pos)
                row, col = int(math.floor(point.y())), int(math.floor(point.x()))
                if 0 <= row < s.diff.shape[0] and 0 <= col < s.diff.shape[1]:
                    return row, col
        return None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        if cell is not None:
            self.readout.setText(self.describe(*cell))

    def _on_mouse_clicked(self, event: object) -> None:  # pyqtgraph's MouseClickEvent
        if getattr(event, "button", lambda: None)() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.scenePos())  # type: ignore[attr-defined]
        if cell is not None:
            self.mark_cell(*cell)
            self.cell_clicked.emit(*cell)


def _tick_strings(values: list[float], _scale: float, _spacing: float) -> list[str]:
    return [f"{v:.2g}" if abs(v) > 1e-300 else "0" for v in values]


def _colormap(name: str) -> pg.ColorMap:
    if name == "heat, reversed":  # white for equal values, through yellow and red to black
        heat = pg.colormap.get("CET-L3")
        heat.reverse()
        return heat
    return colormap(name)


def _text(x: object) -> str:
    if isinstance(x, complex | np.complexfloating):
        return str(x)
    return number_text(float(x))  # type: ignore[arg-type]
