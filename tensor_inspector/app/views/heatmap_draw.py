"""Drawing a prepared picture (or line) into the heatmap's plot: image, overlay, marks, colours.

Kept apart from the widget so each stays readable: the widget decides when to
draw, this decides how. Every position is in cells of the plane's full extent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QLabel

    from tensor_inspector.app.views.heatmap_controls import HeatmapControls
    from tensor_inspector.app.views.heatmap_tiles import PlaneSource

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from tensor_inspector.app.views.colormaps import NAN_RGBA, NEGINF_RGBA, POSINF_RGBA
from tensor_inspector.app.views.heatmap_render import Prepared, scaled_levels, warped_colormap
from tensor_inspector.core.number_format import exact_text

MARK_COLOURS = (NAN_RGBA, POSINF_RGBA, NEGINF_RGBA)  # by core.reduce code


def display_scalar(value: float, dtype: np.dtype) -> np.floating:
    """A level in the plane's digits: float64 planes as float64, every other dtype as float32."""
    return np.float64(value) if dtype == np.float64 else np.float32(value)


class PictureMixin:
    """The drawing half of ``HeatmapView``."""

    # what the widget provides (annotations only)
    plot: pg.PlotItem
    image_item: pg.ImageItem
    mask_item: pg.ImageItem
    tile_item: pg.ImageItem
    tile_mask_item: pg.ImageItem
    marks_item: pg.ScatterPlotItem
    curve: pg.PlotDataItem
    colorbar: pg.ColorBarItem
    range_label: QLabel
    controls: HeatmapControls
    _source: PlaneSource | None
    _plane: np.ndarray | None
    _axis_names: tuple[str, str]
    _reset_view: bool

    def steps(self) -> tuple[int, int]:
        raise NotImplementedError

    _want_tile: Callable[[], None]

    def _draw_line(self, prepared: Prepared) -> None:
        for item in (self.image_item, self.mask_item, self.tile_item, self.tile_mask_item):
            item.clear()
            item.setVisible(False)
        self.marks_item.clear()
        self.colorbar.setVisible(False)
        self.range_label.setText("")
        y = prepared.image
        self.curve.setData(np.arange(y.size), y)
        self.curve.setVisible(True)
        self.plot.invertY(False)
        self.plot.setLabel("left", "value")
        self.plot.setLabel("bottom", "index")
        self.plot.vb.setLimits(xMin=None, xMax=None, yMin=None, yMax=None, minXRange=None, minYRange=None)
        self.plot.enableAutoRange()

    def _draw_picture(self, prepared: Prepared) -> None:
        self.curve.setVisible(False)
        self.curve.clear()
        self.plot.invertY(True)
        self.plot.setLabel("left", self._axis_names[0])
        self.plot.setLabel("bottom", self._axis_names[1])
        assert self._source is not None
        rows, cols = self._source.extent
        sr, sc = self._source.steps
        f = prepared.factor
        height, width = prepared.image.shape
        rect = QRectF(0, 0, width * f * sc, height * f * sr)
        self.image_item.setVisible(True)
        self.colorbar.setVisible(True)
        self.image_item.setImage(prepared.image, autoLevels=False)
        self.image_item.setRect(rect)
        self.mask_item.setVisible(prepared.mask is not None)
        if prepared.mask is not None:
            self.mask_item.setImage(prepared.mask, levels=(0, 255))
            self.mask_item.setRect(rect)
        else:
            self.mask_item.clear()
        self._draw_marks(prepared.marks)
        self._apply_settings_to_picture(prepared)
        # zoom: from a few cells to the whole plane with a margin, never off into empty space
        self.plot.vb.setLimits(
            xMin=-0.25 * cols, xMax=1.25 * cols, yMin=-0.25 * rows, yMax=1.25 * rows,
            minXRange=min(2, cols), minYRange=min(2, rows), maxXRange=1.5 * cols, maxYRange=1.5 * rows,
        )  # fmt: skip
        if self._reset_view:
            self.plot.setRange(xRange=(0, cols), yRange=(0, rows), padding=0)
        self._want_tile()

    def _draw_marks(self, marks: np.ndarray | None) -> None:
        """A dot of fixed screen size on each non-finite cell, when there are few."""
        if marks is None or not len(marks):
            self.marks_item.clear()
            return
        sr, sc = self.steps()
        brushes = [pg.mkBrush(*MARK_COLOURS[int(code)]) for code in marks[:, 2]]
        self.marks_item.setData(x=marks[:, 1] * sc + sc / 2, y=marks[:, 0] * sr + sr / 2, brush=brushes)

    def _apply_settings_to_picture(self, prepared: Prepared) -> None:
        settings = self.controls.settings
        levels = settings.manual if settings.levels == "manual" else prepared.levels
        self.colorbar.setColorMap(warped_colormap(settings.colormap, settings.gamma))
        self.colorbar.setLevels(scaled_levels(levels, settings.scale, prepared.linthresh))
        if settings.levels != "manual":
            self.controls.show_levels(levels)
        self._show_range(levels)

    def _show_range(self, levels: tuple[float, float]) -> None:
        settings = self.controls.settings
        # in the plane's own precision: a float32 level is not shown with float64 digits
        plane = self._plane
        kind = plane.dtype if plane is not None and plane.dtype.kind == "f" else np.dtype(np.float64)
        lo, hi = (exact_text(display_scalar(v, kind), "float") for v in levels)
        scale = {"linear": "", "gamma": f", gamma {settings.gamma:g}"}.get(
            settings.scale, f", {settings.scale}"
        )
        self.range_label.setText(f"colours: {lo} … {hi}{scale}")
        axis_label = {"log": "log10(value)", "symlog": "symlog(value)"}.get(settings.scale, "")
        self.colorbar.axis.setLabel(axis_label)
