"""Heatmap of the displayed plane (line plot for 1-D) with colour bar, levels and readout.

The image and its levels are prepared off the GUI thread (block means for big
planes, the complex part, a strided sample for levels); the GUI thread only hands
the result to a row-major ``ImageItem(autoDownsample=True)``. Coordinates in the
plot are indices of the full plane (x = column, y = row, row 0 on top), whatever
block size was used to draw it. NaN, +Inf and -Inf are painted by an RGBA overlay
in the colours of :mod:`colormaps` and named in the legend under the plot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.views.colormaps import (
    COLORMAPS,
    COMPLEX_PARTS,
    DEFAULT_COLORMAP,
    block_mean,
    colormap,
    image_levels,
    is_diverging,
    legend_html,
    real_part,
    special_mask,
)
from tensor_inspector.core.dtypes import is_numeric
from tensor_inspector.core.number_format import exact_text, value_kind

pg.setConfigOptions(imageAxisOrder="row-major")

LEVEL_MODES = ("auto", "symmetric", "robust", "manual")  # robust: 0.5-99.5 percentiles


@dataclass
class Prepared:
    """What the background job hands to the GUI thread."""

    image: np.ndarray  # 2-D float image (possibly block-averaged) or 1-D y values
    mask: np.ndarray | None  # RGBA overlay for non-finite pixels
    levels: tuple[float, float]
    factor: int


def prepare(plane: np.ndarray, part: str, mode: str, cancel: threading.Event | None = None) -> Prepared:
    """Image, overlay and levels for ``plane`` (runs in a worker thread)."""
    levels = image_levels(plane, "auto" if mode == "manual" else mode, part)
    if plane.ndim == 1:
        return Prepared(np.asarray(real_part(plane, part), np.float64), None, levels, 1)
    image, factor = block_mean(plane, part=part, cancel=cancel)
    return Prepared(image, special_mask(image), levels, factor)


class HeatmapView(QWidget):
    """Plot + colour bar + controls; knows nothing of N-D: it shows one plane."""

    cell_clicked = Signal(int, int)  # row, column of the plane
    image_ready = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plane: np.ndarray | None = None
        self._kind = "float"
        self._ready = True
        self._factor = 1
        self.index_mapper: Callable[[int, int], tuple[int, ...]] = lambda r, c: (r, c)
        self.runner = BackgroundRunner(self)
        self._build_controls()
        self._build_plot()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.stack, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.legend)
        layout.addLayout(bottom)

    # -- construction --------------------------------------------------------------------
    def _build_controls(self) -> None:
        """Controls live in :attr:`controls`; the ArrayView puts them in its toolbar."""
        self.cmap_combo = QComboBox()
        self.cmap_combo.addItems(list(COLORMAPS))
        self.cmap_combo.setCurrentText(DEFAULT_COLORMAP)
        self.cmap_combo.setToolTip("Colormap (diverging maps switch levels to symmetric)")
        self.levels_combo = QComboBox()
        self.levels_combo.addItems(list(LEVEL_MODES))
        self.levels_combo.setToolTip(
            "Colour levels: min-max, symmetric around 0, 0.5-99.5 percentiles, or typed in"
        )
        self.lo_spin = pg.SpinBox(value=0.0, dec=True, minStep=0, format="{value:.6g}", compactHeight=False)
        self.hi_spin = pg.SpinBox(value=1.0, dec=True, minStep=0, format="{value:.6g}", compactHeight=False)
        for spin, tip in ((self.lo_spin, "Lowest level"), (self.hi_spin, "Highest level")):
            spin.setToolTip(tip)
            spin.setFixedWidth(110)  # room for a sign and 6 significant digits
        self.complex_combo = QComboBox()
        self.complex_combo.addItems(list(COMPLEX_PARTS))
        self.complex_combo.setToolTip("Part of complex values to draw")
        self.aspect_button = QToolButton()
        self.aspect_button.setText("1:1")
        self.aspect_button.setCheckable(True)
        self.aspect_button.setToolTip("Square pixels")
        self.controls = QWidget()
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 0)
        self.complex_label = QLabel("complex:")
        for widget in (
            QLabel("colormap:"),
            self.cmap_combo,
            QLabel("levels:"),
            self.levels_combo,
            self.lo_spin,
            self.hi_spin,
            self.complex_label,
            self.complex_combo,
            self.aspect_button,
        ):
            row.addWidget(widget)
        self.cmap_combo.currentTextChanged.connect(self._on_cmap)
        self.levels_combo.currentTextChanged.connect(self._on_levels_mode)
        self.lo_spin.sigValueChanged.connect(self._on_manual_levels)
        self.hi_spin.sigValueChanged.connect(self._on_manual_levels)
        self.complex_combo.currentTextChanged.connect(lambda _text: self._schedule())
        self.aspect_button.toggled.connect(lambda on: self.plot.setAspectLocked(on))
        self._update_controls()

    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plot: pg.PlotItem = self.graphics.addPlot()
        self.plot.invertY(True)
        self.plot.showGrid(False, False)
        self.plot.setMenuEnabled(False)
        for name in ("left", "bottom"):
            self.plot.getAxis(name).setPen("k")
            self.plot.getAxis(name).setTextPen("k")
        self.plot.setLabel("left", "row")
        self.plot.setLabel("bottom", "column")
        self.image_item = pg.ImageItem(autoDownsample=True)
        self.mask_item = pg.ImageItem(autoDownsample=True)
        self.mask_item.setZValue(10)
        self.plot.addItem(self.image_item)
        self.plot.addItem(self.mask_item)
        # the table's current cell, outlined so the two views are read together
        self.marker = QGraphicsRectItem(0, 0, 1, 1)
        marker_pen = pg.mkPen("#ff1744", width=2)
        marker_pen.setCosmetic(True)
        self.marker.setPen(marker_pen)
        self.marker.setZValue(20)
        self.marker.hide()
        self.plot.addItem(self.marker)
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#1f5fa8", width=1.2), connect="finite")
        self.curve.setDownsampling(auto=True, method="peak")
        self.curve.setClipToView(True)
        self.plot.addItem(self.curve)
        self.colorbar = pg.ColorBarItem(
            colorMap=colormap(DEFAULT_COLORMAP), interactive=True, width=14, rounding=1e-12
        )
        self.colorbar.setImageItem(self.image_item, insert_in=self.plot)
        self.colorbar.sigLevelsChangeFinished.connect(self._on_bar_dragged)
        self.message_label = QLabel()
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #555; font-size: 13px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message_label)
        self.status = QLabel(" ")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.legend = QLabel(legend_html())
        self.legend.setToolTip("Colours of non-finite values in the heatmap")
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    # -- content -------------------------------------------------------------------------
    def set_plane(self, plane: np.ndarray, reset_view: bool = True) -> None:
        """Draw ``plane`` (0-, 1- or 2-D, oriented as displayed); a new shape resets the zoom."""
        old = self._plane
        reset_view = reset_view or old is None or old.shape != plane.shape
        if reset_view:
            self.marker.hide()
        self._plane = plane
        self._kind = value_kind(plane.dtype)
        self._reset_view = reset_view
        self._update_controls()
        if not is_numeric(plane.dtype):
            self._show_message(f"No heatmap for {plane.dtype.name} values.")
            return
        if plane.ndim == 0:
            self._show_message(f"Scalar value: {exact_text(plane[()], self._kind)}")
            return
        if plane.size == 0:
            self._show_message("Empty array: nothing to draw.")
            return
        self.stack.setCurrentWidget(self.graphics)
        self._schedule()

    def plane(self) -> np.ndarray | None:
        return self._plane

    def mark_cell(self, row: int, col: int) -> None:
        """Outline cell (row, col) of a 2-D plane; hidden for other ranks or negative indices."""
        plane = self._plane
        visible = plane is not None and plane.ndim == 2 and row >= 0 and col >= 0
        if visible:
            self.marker.setRect(QRectF(col, row, 1, 1))
        self.marker.setVisible(visible)

    def is_ready(self) -> bool:
        """True once the image for the current plane (and settings) is drawn."""
        return self._ready

    def levels(self) -> tuple[float, float]:
        lo, hi = self.colorbar.levels()
        return float(lo), float(hi)

    def block_factor(self) -> int:
        return self._factor

    def _show_message(self, text: str) -> None:
        self.runner.cancel()
        self.message_label.setText(text)
        self.stack.setCurrentWidget(self.message_label)
        self._set_ready()

    def _set_ready(self) -> None:
        self._ready = True
        self.image_ready.emit()

    def set_axis_names(self, rows: str, columns: str) -> None:
        """Axis titles of the image (e.g. "row (axis 1)")."""
        self._axis_names = (rows, columns)
        if self._plane is not None and self._plane.ndim == 2:
            self.plot.setLabel("left", rows)
            self.plot.setLabel("bottom", columns)

    def _update_controls(self) -> None:
        image = self._plane is None or self._plane.ndim == 2
        for widget in (self.cmap_combo, self.levels_combo, self.aspect_button):
            widget.setEnabled(image)
        is_complex = self._kind == "complex"
        self.complex_combo.setVisible(is_complex)
        self.complex_label.setVisible(is_complex)
        manual = self.levels_combo.currentText() == "manual"
        self.lo_spin.setEnabled(manual and image)
        self.hi_spin.setEnabled(manual and image)

    def _schedule(self) -> None:
        plane = self._plane
        if plane is None or plane.ndim == 0 or plane.size == 0 or not is_numeric(plane.dtype):
            return
        self._ready = False
        self.runner.submit(
            "image",
            prepare,
            plane,
            self.complex_combo.currentText(),
            self.levels_combo.currentText(),
            cancellable=True,
            on_done=self._on_prepared,
            on_error=self._on_failed,
        )

    def _on_failed(self, message: str) -> None:
        self._show_message(f"Cannot draw this array: {message}")

    def _on_prepared(self, prepared: Prepared) -> None:
        plane = self._plane
        if plane is None:
            return
        self._factor = prepared.factor
        manual = self.levels_combo.currentText() == "manual"
        levels = (self.lo_spin.value(), self.hi_spin.value()) if manual else prepared.levels
        if plane.ndim == 1:
            self.image_item.clear()
            self.mask_item.clear()
            self.image_item.setVisible(False)
            self.colorbar.setVisible(False)
            y = prepared.image
            self.curve.setData(np.arange(y.size), y)
            self.curve.setVisible(True)
            self.plot.invertY(False)
            self.plot.setLabel("left", "value")
            self.plot.setLabel("bottom", "index")
            self.plot.enableAutoRange()
        else:
            self.curve.setVisible(False)
            self.curve.clear()
            self.plot.invertY(True)
            row_name, col_name = getattr(self, "_axis_names", ("row", "column"))
            self.plot.setLabel("left", row_name)
            self.plot.setLabel("bottom", col_name)
            rows, cols = plane.shape
            self.image_item.setVisible(True)
            self.colorbar.setVisible(True)
            self.image_item.setImage(prepared.image, levels=levels)
            self.image_item.setRect(QRectF(0, 0, cols, rows))
            if prepared.mask is not None:
                self.mask_item.setImage(prepared.mask, levels=(0, 255))  # block means make it float
                self.mask_item.setRect(QRectF(0, 0, cols, rows))
                self.mask_item.setVisible(True)
            else:
                self.mask_item.clear()
                self.mask_item.setVisible(False)
            self.colorbar.setLevels(levels)
            if getattr(self, "_reset_view", True):
                self.plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0)
        if not manual:
            self._set_spins(levels)
        self._reset_view = False
        self._set_ready()

    # -- controls ------------------------------------------------------------------------
    def set_colormap(self, name: str) -> None:
        self.cmap_combo.setCurrentText(name)

    def set_levels_mode(self, mode: str, levels: tuple[float, float] | None = None) -> None:
        """``mode`` in LEVEL_MODES; ``levels`` sets the manual range."""
        if levels is not None:
            self._set_spins(levels)
        if self.levels_combo.currentText() == mode:
            self._on_levels_mode(mode)
        else:
            self.levels_combo.setCurrentText(mode)

    def _set_spins(self, levels: tuple[float, float]) -> None:
        for spin, value in zip((self.lo_spin, self.hi_spin), levels):
            spin.blockSignals(True)
            spin.setValue(float(value))
            spin.blockSignals(False)

    def _on_cmap(self, name: str) -> None:
        self.colorbar.setColorMap(colormap(name))
        if is_diverging(name) and self.levels_combo.currentText() in ("auto", "robust"):
            self.levels_combo.setCurrentText("symmetric")

    def _on_levels_mode(self, mode: str) -> None:
        self._update_controls()
        if mode == "manual":
            self._apply_levels((self.lo_spin.value(), self.hi_spin.value()))
        else:
            self._schedule()

    def _on_manual_levels(self, *_args: object) -> None:
        if self.levels_combo.currentText() == "manual":
            self._apply_levels((self.lo_spin.value(), self.hi_spin.value()))

    def _apply_levels(self, levels: tuple[float, float]) -> None:
        lo, hi = levels
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            return
        self.colorbar.setLevels((lo, hi))

    def _on_bar_dragged(self, _bar: object) -> None:
        """Dragging the colour bar means the user picks levels: switch to manual."""
        levels = self.levels()
        self._set_spins(levels)
        self.levels_combo.blockSignals(True)
        self.levels_combo.setCurrentText("manual")
        self.levels_combo.blockSignals(False)
        self._update_controls()

    # -- mouse ---------------------------------------------------------------------------
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, col) of the plane under a scene position, or None outside it."""
        plane = self._plane
        if plane is None or plane.ndim == 0 or self.stack.currentWidget() is not self.graphics:
            return None
        if not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.plot.vb.mapSceneToView(scene_pos)
        if plane.ndim == 1:
            col = int(round(point.x()))
            return (col, 0) if 0 <= col < plane.shape[0] else None
        row, col = int(math.floor(point.y())), int(math.floor(point.x()))
        if 0 <= row < plane.shape[0] and 0 <= col < plane.shape[1]:
            return row, col
        return None

    def readout(self, row: int, col: int) -> str:
        plane = self._plane
        if plane is None:
            return ""
        value = plane[row] if plane.ndim == 1 else plane[row, col]
        where = list(self.index_mapper(row, col))
        return f"{where} = {exact_text(value, self._kind)}"

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        self.status.setText(self.readout(*cell) if cell is not None else " ")

    def _on_mouse_clicked(self, event: Any) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.cell_clicked.emit(*cell)
