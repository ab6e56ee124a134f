"""Heatmap of the displayed plane (line plot for 1-D) with colour bar, range, readout and profiles.

The picture, its levels and the positions of non-finite values are prepared off
the GUI thread (``heatmap_render``); the GUI thread only hands them to a row-major
``ImageItem``. Coordinates in the plot are cells of the plane's full extent
(x = column, y = row, row 0 on top), whatever reduction or sampling the picture
came from, so hovering, clicking and zooming speak the tensor's own indices. A
non-finite value is painted over the picture in the colours of :mod:`colormaps`
and, when there are few, marked by a dot of fixed screen size that no zoom level
can hide. Zooming in reads the visible region again at the resolution the screen
can show (``heatmap_tiles``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.views.colormaps import legend_html
from tensor_inspector.app.views.heatmap_controls import HeatmapControls
from tensor_inspector.app.views.heatmap_draw import PictureMixin
from tensor_inspector.app.views.heatmap_profile import Profiles
from tensor_inspector.app.views.heatmap_render import (
    ColourSettings,
    Prepared,
    from_scale,
    prepare,
    warped_colormap,
)
from tensor_inspector.app.views.heatmap_tiled import TilesMixin
from tensor_inspector.app.views.heatmap_tiles import (
    PlaneSource,
    TileLoader,
    TileRequest,
    memory_source,
)
from tensor_inspector.core.dtypes import is_numeric
from tensor_inspector.core.number_format import exact_text, value_kind

pg.setConfigOptions(imageAxisOrder="row-major")


STALE_DELAY_MS = 150  # a quick redraw never flashes the "Drawing…" veil


class HeatmapView(PictureMixin, TilesMixin, QWidget):
    """Plot + colour bar + controls; knows nothing of N-D: it shows one plane."""

    cell_clicked = Signal(int, int)  # row, column of the plane's full extent
    image_ready = Signal()
    settings_changed = Signal(object)  # ColourSettings chosen by the user

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._plane: np.ndarray | None = None
        self._source: PlaneSource | None = None
        self._prepared: Prepared | None = None
        self._tile: tuple[TileRequest, np.ndarray, Prepared] | None = None
        self._kind = "float"
        self._ready = True
        self._reset_view = True
        self._axis_names = ("row", "column")
        self.index_mapper: Callable[[int, int], tuple[int, ...]] = lambda r, c: (r, c)
        self.runner = BackgroundRunner(self)
        self.controls = HeatmapControls()
        controls = self.controls
        self.cmap_combo, self.scale_combo, self.levels_combo = (
            controls.cmap_combo,
            controls.scale_combo,
            controls.levels_combo,
        )
        self.lo_spin, self.hi_spin, self.complex_combo = (
            controls.lo_spin,
            controls.hi_spin,
            controls.complex_combo,
        )
        self.aspect_button = self.controls.aspect_button
        self._build_plot()
        self.tiles = TileLoader(self)
        self.tiles.post = self._prepare_tile
        self.tiles.tile_ready.connect(self._on_tile)
        self.tiles.tile_failed.connect(lambda text: self.status.setText(f"Could not read the region: {text}"))
        self._stale_timer = QTimer(self)
        self._stale_timer.setSingleShot(True)
        self._stale_timer.setInterval(STALE_DELAY_MS)
        self._stale_timer.timeout.connect(lambda: self.set_stale("Drawing…"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.stack, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.range_label)
        bottom.addWidget(self.legend)
        layout.addLayout(bottom)
        self.controls.changed.connect(self._on_settings)
        self.controls.complex_changed.connect(lambda _part: self._schedule())
        self.controls.aspect_button.toggled.connect(lambda on: self.plot.setAspectLocked(on))
        self.controls.profile_button.toggled.connect(self.set_profiles)
        self.controls.dialog_requested.connect(self.open_colour_dialog)
        self._update_controls()

    # -- construction --------------------------------------------------------------------
    def _build_plot(self) -> None:
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0)
        self.plot.invertY(True)
        self.plot.setMenuEnabled(False)
        for name in ("left", "bottom"):
            self.plot.getAxis(name).setPen("k")
            self.plot.getAxis(name).setTextPen("k")
        self.plot.setLabel("left", "row")
        self.plot.setLabel("bottom", "column")
        # no autoDownsample: pyqtgraph's is a block mean, which flattens noise; the picture
        # is already reduced to about a screen's size by heatmap_render
        self.image_item = pg.ImageItem()
        # a finer tile covers the coarse picture and its non-finite overlay alike
        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(1)
        self.tile_item = pg.ImageItem()
        self.tile_item.setZValue(5)
        self.tile_mask_item = pg.ImageItem()
        self.tile_mask_item.setZValue(6)
        self.marks_item = pg.ScatterPlotItem(pxMode=True, size=7, symbol="s", pen=None)
        self.marks_item.setZValue(15)
        for item in (self.image_item, self.tile_item, self.mask_item, self.tile_mask_item, self.marks_item):
            self.plot.addItem(item)
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
        self.colorbar = pg.ColorBarItem(colorMap=warped_colormap("viridis", 1.0), interactive=True, width=14)
        self.colorbar.setImageItem([self.image_item, self.tile_item], insert_in=self.plot)
        self.colorbar.sigLevelsChangeFinished.connect(self._on_bar_dragged)
        self.profiles = Profiles(self.graphics.ci, self.plot)
        self.message_label = QLabel()
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #555; font-size: 13px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.graphics)
        self.stack.addWidget(self.message_label)
        # over the picture while it does not show the current values
        self.stale_label = QLabel(self.graphics)
        self.stale_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stale_label.setStyleSheet("background: rgba(255,255,255,175); color: #333; font-size: 15px;")
        self.stale_label.hide()
        self.status = QLabel(" ")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.range_label = QLabel("")
        self.range_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.range_label.setToolTip("The exact values at the two ends of the colour bar")
        self.legend = QLabel(legend_html())
        self.legend.setToolTip("Colours of non-finite values in the heatmap")
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        self.plot.vb.sigRangeChanged.connect(lambda *_: self._want_tile())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.stale_label.setGeometry(self.graphics.rect())

    # -- content -------------------------------------------------------------------------
    def set_plane(
        self, plane: np.ndarray, reset_view: bool = True, source: PlaneSource | None = None
    ) -> None:
        """Draw ``plane`` (0-, 1- or 2-D, oriented as displayed); a new extent resets the zoom.

        ``source`` says where finer values come from when ``plane`` is a strided sample.
        """
        source = source if source is not None or plane.ndim != 2 else memory_source(plane)
        old = self._source
        reset_view = reset_view or old is None or source is None or old.extent != source.extent
        if reset_view:
            self.marker.hide()
        self._plane, self._source = plane, source
        self._kind = value_kind(plane.dtype)
        self._reset_view = reset_view
        self._clear_tile()
        self.tiles.set_source(source)
        self.status.setText(" ")  # the hover readout was of the previous plane
        self._update_controls()
        if not is_numeric(plane.dtype):
            return self._show_message(f"No heatmap for {plane.dtype.name} values.")
        if plane.ndim == 0:
            return self._show_message(f"Scalar value: {exact_text(plane[()], self._kind)}")
        if plane.size == 0:
            return self._show_message("Empty array: nothing to draw.")
        self.stack.setCurrentWidget(self.graphics)
        self._schedule()

    def plane(self) -> np.ndarray | None:
        return self._plane

    def steps(self) -> tuple[int, int]:
        """Cells of the full plane between two values of the drawn plane (1, 1: not sampled)."""
        return self._source.steps if self._source is not None else (1, 1)

    def mark_cell(self, row: int, col: int) -> None:
        """Outline cell (row, col) of the drawn 2-D plane; hidden for other ranks or negative indices."""
        plane = self._plane
        visible = plane is not None and plane.ndim == 2 and row >= 0 and col >= 0
        if visible:
            sr, sc = self.steps()
            self.marker.setRect(QRectF(col * sc, row * sr, sc, sr))
        self.marker.setVisible(visible)

    def is_ready(self) -> bool:
        """True once the picture of the current plane (and settings) is drawn."""
        return self._ready

    def levels(self) -> tuple[float, float]:
        """The colour bar's range in the data's units."""
        settings = self.controls.settings
        linthresh = self._prepared.linthresh if self._prepared is not None else 1.0
        lo, hi = self.colorbar.levels()
        return from_scale(float(lo), settings.scale, linthresh), from_scale(
            float(hi), settings.scale, linthresh
        )

    def block_factor(self) -> int:
        """Cells of the full plane per picture pixel along the coarser axis."""
        factor = self._prepared.factor if self._prepared is not None else 1
        return factor * max(self.steps())

    def settings(self) -> ColourSettings:
        return self.controls.settings

    def set_settings(self, settings: ColourSettings) -> None:
        self.controls.set_settings(settings)

    def set_stale(self, text: str | None) -> None:
        """Veil the picture with ``text`` ("Reading x…") while it is not of the current values."""
        self._stale_timer.stop()
        if text:
            self.stale_label.setText(text)
            self.stale_label.setGeometry(self.graphics.rect())
            self.stale_label.raise_()
        self.stale_label.setVisible(bool(text))
        for item in (self.image_item, self.tile_item, self.curve):
            item.setOpacity(0.35 if text else 1.0)

    def is_stale(self) -> bool:
        return self.stale_label.isVisible()

    def _show_message(self, text: str) -> None:
        self.runner.cancel()
        self.set_stale(None)
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
        self.controls.enable(self._plane is None or self._plane.ndim == 2)
        self.controls.show_complex(self._kind == "complex")

    def _schedule(self) -> None:
        plane = self._plane
        if plane is None or plane.ndim == 0 or plane.size == 0 or not is_numeric(plane.dtype):
            return
        self._ready = False
        self._stale_timer.start()
        self.runner.submit(
            "image",
            prepare,
            plane,
            self.complex_combo.currentText(),
            self.controls.settings,
            cancellable=True,
            on_done=self._on_prepared,
            on_error=lambda message: self._show_message(f"Cannot draw this array: {message}"),
        )

    def _on_prepared(self, prepared: Prepared) -> None:
        plane = self._plane
        if plane is None:
            return
        self._prepared = prepared
        self.set_stale(None)
        if plane.ndim == 1:
            self._draw_line(prepared)
        else:
            self._draw_picture(prepared)
        self._reset_view = False
        self._set_ready()

    # -- settings ------------------------------------------------------------------------
    def set_colormap(self, name: str) -> None:
        self.cmap_combo.setCurrentText(name)

    def set_levels_mode(self, mode: str, levels: tuple[float, float] | None = None) -> None:
        """``mode`` in LEVEL_MODES; ``levels`` sets the manual range."""
        changes: dict[str, object] = {"levels": mode}
        if levels is not None:
            changes["manual"] = (float(levels[0]), float(levels[1]))
        elif mode == "manual":
            changes["manual"] = self.levels()
        self.controls.update(**changes)

    def _on_settings(self, settings: ColourSettings, old: ColourSettings) -> None:
        self.settings_changed.emit(settings)
        self._update_controls()
        picture_only = settings.with_(colormap=old.colormap, gamma=old.gamma) == old
        # typed (or dragged) levels need no new picture: the image is in scale units already
        manual_only = settings.levels == "manual" and settings.scale == old.scale
        if self._prepared is not None and self._plane is not None and self._plane.ndim == 2:
            if picture_only or manual_only:
                lo, hi = settings.manual if settings.levels == "manual" else self._prepared.levels
                if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
                    self._apply_settings_to_picture(self._prepared)
                return
        self._schedule()

    def open_colour_dialog(self) -> Any:
        from tensor_inspector.app.dialogs.colormap_dialog import ColormapDialog

        dialog = ColormapDialog(self.controls.settings, self.levels(), parent=self)
        dialog.applied.connect(self.set_settings)
        dialog.open()
        return dialog

    def _on_bar_dragged(self, _bar: object) -> None:
        """Dragging the colour bar means the user picks levels: switch to manual."""
        self.controls.update(levels="manual", manual=self.levels())

    def set_profiles(self, on: bool) -> None:
        """Row/column profiles through the cursor (2-D planes)."""
        self.profiles.set_enabled(on)
        if self.controls.profile_button.isChecked() != on:
            self.controls.profile_button.setChecked(on)

    # -- mouse ---------------------------------------------------------------------------
    def cell_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, col) of the full plane under a scene position, or None outside it."""
        plane = self._plane
        if plane is None or plane.ndim == 0 or self.stack.currentWidget() is not self.graphics:
            return None
        if not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.plot.vb.mapSceneToView(scene_pos)
        if plane.ndim == 1:
            col = int(round(point.x()))
            return (col, 0) if 0 <= col < plane.shape[0] else None
        rows, cols = self._source.extent if self._source is not None else plane.shape
        row, col = int(math.floor(point.y())), int(math.floor(point.x()))
        return (row, col) if 0 <= row < rows and 0 <= col < cols else None

    def readout(self, row: int, col: int) -> str:
        """ "[index] = value" of full cell (row, col); "≈ value at [sampled index]" from a sample."""
        plane = self._plane
        if plane is None:
            return ""
        where = list(self.index_mapper(row, col))
        if plane.ndim == 1:
            return f"{where} = {exact_text(plane[row], self._kind)}"
        tile = self._tile
        if tile is not None and tile[0].step == 1:
            request, values, _ = tile
            r, c = row - request.rows[0], col - request.cols[0]
            if 0 <= r < values.shape[0] and 0 <= c < values.shape[1]:
                return f"{where} = {exact_text(values[r, c], self._kind)}"
        sr, sc = self.steps()
        value = exact_text(plane[row // sr, col // sc], self._kind)
        if (sr, sc) == (1, 1):
            return f"{where} = {value}"
        return f"{where} ≈ {value}  (sampled at {list(self.index_mapper(row - row % sr, col - col % sc))})"

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        cell = self.cell_at(scene_pos)
        self.status.setText(self.readout(*cell) if cell is not None else " ")
        plane = self._plane
        if cell is not None and plane is not None and plane.ndim == 2:
            self.profiles.show_at(plane, self.steps(), *cell)

    def _on_mouse_clicked(self, event: Any) -> None:  # pyqtgraph's MouseClickEvent
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.cell_clicked.emit(*cell)
