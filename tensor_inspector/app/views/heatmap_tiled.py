"""The heatmap's side of region tiles: which tile the view wants, and drawing it when it comes.

``heatmap_tiles`` reads; this decides from the visible range and the picture
already drawn, prepares the tile's picture in the same background job (with the
levels of the whole picture), and lays it over the coarse one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QComboBox

    from tensor_inspector.app.views.heatmap_controls import HeatmapControls
    from tensor_inspector.app.views.heatmap_tiles import PlaneSource, TileLoader

import numpy as np
from PySide6.QtCore import QRectF

from tensor_inspector.app.views.heatmap_render import Prepared, prepare
from tensor_inspector.app.views.heatmap_tiles import TileRequest, wanted_tile


class TilesMixin:
    """The tile half of ``HeatmapView``."""

    # what the widget provides (annotations only)
    plot: pg.PlotItem
    tile_item: pg.ImageItem
    tile_mask_item: pg.ImageItem
    colorbar: pg.ColorBarItem
    complex_combo: QComboBox
    controls: HeatmapControls
    tiles: TileLoader
    _source: PlaneSource | None
    _plane: np.ndarray | None
    _prepared: Prepared | None
    _tile: tuple[TileRequest, np.ndarray, Prepared] | None

    def _want_tile(self) -> None:
        source, prepared = self._source, self._prepared
        if source is None or prepared is None or self._plane is None or self._plane.ndim != 2:
            return
        (x0, x1), (y0, y1) = self.plot.vb.viewRange()
        pixels = self.plot.vb.screenGeometry().size() if self.plot.vb.screenGeometry() else None
        size = (int(pixels.width()), int(pixels.height())) if pixels is not None else (800, 800)
        drawn = prepared.factor * min(source.steps)
        if self._tile is not None and self._tile[0].step < drawn:
            drawn = self._tile[0].step if self._covers(self._tile[0], (x0, x1, y0, y1)) else drawn
        self.tiles.want(wanted_tile(source, (x0, x1, y0, y1), size, drawn))

    @staticmethod
    def _covers(request: TileRequest, visible: tuple[float, float, float, float]) -> bool:
        x0, x1, y0, y1 = visible
        return (
            request.cols[0] <= max(x0, 0)
            and request.rows[0] <= max(y0, 0)
            and request.cols[1] >= x1 - 1
            and request.rows[1] >= y1 - 1
        )

    def _prepare_tile(self, values: np.ndarray) -> tuple[np.ndarray, Prepared]:
        """Worker thread: the tile's picture, with the levels of the whole picture."""
        settings = self.controls.settings
        return values, prepare(values, self.complex_combo.currentText(), settings, max_side=1 << 16)

    def _on_tile(self, request: TileRequest, drawn: tuple[np.ndarray, Prepared]) -> None:
        values, prepared = drawn
        if self._prepared is None or values.ndim != 2 or values.size == 0:
            return
        step = request.step
        rect = QRectF(request.cols[0], request.rows[0], values.shape[1] * step, values.shape[0] * step)
        self.tile_item.setImage(prepared.image, autoLevels=False)
        self.tile_item.setRect(rect)
        self.tile_item.setLevels(self.colorbar.levels())
        self.tile_item.setVisible(True)
        self.tile_mask_item.setVisible(prepared.mask is not None)
        if prepared.mask is not None:
            self.tile_mask_item.setImage(prepared.mask, levels=(0, 255))
            self.tile_mask_item.setRect(rect)
        self._tile = (request, values, prepared)

    def _clear_tile(self) -> None:
        self._tile = None
        for item in (self.tile_item, self.tile_mask_item):
            item.clear()
            item.setVisible(False)
