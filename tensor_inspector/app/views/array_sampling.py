"""The array view's link to a tensor shown from a strided sample: indices, regions, the whole value.

A tensor above ``core.sampling.PREVIEW_BYTES`` arrives as every k-th value along
its long axes. The view draws and tabulates that sample, but speaks the tensor's
own indices: table headers and readouts are multiplied by the steps, the heatmap's
plot covers the full extent, and zooming reads the visible region from the file
through ``fetch`` (the session, in the reader process). A tensor up to
``FULL_LOAD_BYTES`` is then read whole in the background and takes the sample's
place; a bigger one stays a sample (its exact statistics are streamed on request).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import numpy as np

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.views.array_stats import Fetch, streamed_stats
from tensor_inspector.app.views.heatmap_tiles import PlaneSource
from tensor_inspector.app.views.stats_panel import WHOLE, StatsPanel
from tensor_inspector.core.nodes import Index
from tensor_inspector.core.sampling import FULL_LOAD_BYTES, Sampling
from tensor_inspector.core.stats import Stats
from tensor_inspector.core.text import format_bytes

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtWidgets import QLabel

    from tensor_inspector.app.views.axes_selector import AxesSelector
    from tensor_inspector.app.views.heatmap import HeatmapView
    from tensor_inspector.app.views.table_view import ArrayTableView


class SampledState:
    """What the view knows of a sampled tensor: its ``Sampling`` and how to read more of it."""

    def __init__(self, sampling: Sampling, fetch: Fetch | None, itemsize: int) -> None:
        self.sampling, self.fetch, self.itemsize = sampling, fetch, itemsize

    @property
    def nbytes(self) -> int:
        return math.prod(self.sampling.shape) * self.itemsize

    def loads_whole(self) -> bool:
        """True when the whole value follows the sample in the background."""
        return self.fetch is not None and self.nbytes <= FULL_LOAD_BYTES

    def whole_index(self) -> Index:
        return tuple(slice(None) for _ in self.sampling.shape)

    def summary(self) -> str:
        """One line for the view's title area."""
        shape = "×".join(str(n) for n in self.sampling.shape)
        what = f"Sample of a {shape} tensor ({format_bytes(self.nbytes)}): {self.sampling.describe()}."
        if self.loads_whole():
            return f"{what} Reading all values in the background…"
        return f"{what} Zoom in to read the region in view at full resolution."

    def locked_reason(self) -> str:
        return (
            f"Only a sample of this {format_bytes(self.nbytes)} tensor is loaded: "
            "its values cannot be edited here."
        )

    def full_cell(
        self, row_axis: int, col_axis: int, positions: list[int], row: int, col: int
    ) -> tuple[int, ...]:
        """The tensor's index of full-plane cell (row, col) with the sliders at sample ``positions``."""
        steps = self.sampling.steps
        ndim = len(steps)
        if ndim == 1:
            return (row,)
        full = [int(p) * s for p, s in zip(positions, steps)]
        full[row_axis], full[col_axis] = row, col
        return tuple(full)

    def plane_source(self, row_axis: int, col_axis: int, positions: list[int]) -> PlaneSource | None:
        """Where the heatmap reads regions of the displayed plane (None: 1-D or no reader)."""
        steps, shape = self.sampling.steps, self.sampling.shape
        if len(shape) < 2:
            return None
        fetch = self.fetch
        extent = (shape[row_axis], shape[col_axis])
        fixed = [int(p) * s for p, s in zip(positions, steps)]

        def read(r0: int, r1: int, c0: int, c1: int, step: int, cancel: threading.Event | None) -> np.ndarray:
            if fetch is None:
                raise RuntimeError("this value cannot be read again")
            index: list[int | slice] = list(fixed)
            index[row_axis], index[col_axis] = slice(r0, r1, step), slice(c0, c1, step)
            region = np.asarray(fetch(tuple(index), cancel))
            return region.T if row_axis > col_axis else region

        return PlaneSource(extent, (steps[row_axis], steps[col_axis]), read, remote=True)


class SampledViewMixin:
    """The array view's handling of a sampled tensor: whole value, exact statistics, Esc, indices."""

    # what the view provides (annotations only)
    _sampled: SampledState | None
    _array: np.ndarray | None
    _title: str
    runner: BackgroundRunner
    axes: AxesSelector
    heatmap: HeatmapView
    stats_panel: StatsPanel
    table: ArrayTableView
    sample_note: QLabel
    _progress: SignalInstance
    whole_loaded: SignalInstance

    def set_array(self, array: np.ndarray, title: str = "") -> None:
        raise NotImplementedError

    def sampling(self) -> Sampling | None:
        """What the shown array is a sample of (None: it is the whole value)."""
        return self._sampled.sampling if self._sampled is not None else None

    def cancel_work(self) -> bool:
        """Esc: stop reading the whole value, streaming statistics and region tiles; True if any ran."""
        running = any(self.runner.pending(c) for c in ("full", "exact")) or self.heatmap.tiles.pending()
        self.runner.cancel("full")
        self.runner.cancel("exact")
        self.heatmap.tiles.set_source(self.heatmap.tiles.source)  # drops the pending tile
        self.stats_panel.show_progress(-1, 0)
        if running and self._sampled is not None:
            self.sample_note.setText(f"{self._sampled.summary().split('.')[0]}. Stopped (Esc).")
        return running

    def compute_exact_stats(self) -> None:
        """Stream the whole tensor through the reader for exact statistics (progress, Esc cancels)."""
        sampled, sample = self._sampled, self._array
        if sampled is None or sampled.fetch is None or sample is None:
            return
        self.stats_panel.show_progress(0, 1)
        self.runner.submit(
            "exact",
            streamed_stats,
            sampled.fetch,
            sampled.sampling,
            sample,
            progress=self._progress.emit,
            cancellable=True,
            on_done=self._on_exact_stats,
            on_error=lambda text: self.stats_panel.show_progress(-1, 0, f"Exact statistics failed: {text}"),
        )

    def _on_exact_stats(self, stats: Stats) -> None:
        self.stats_panel.show_progress(-1, 0)
        self.stats_panel.set_stats(WHOLE, stats)

    def _on_whole(self, array: np.ndarray) -> None:
        """The whole value arrived after its sample: it takes over, at the same slice and zoom."""
        sampled = self._sampled
        if sampled is None or tuple(array.shape) != sampled.sampling.shape:
            return
        positions = list(sampled.sampling.full_index(self.axes.positions))
        axes = (self.axes.row_axis, self.axes.col_axis)
        view_range = self.heatmap.plot.vb.viewRange()
        self.set_array(array, title=self._title)
        if array.ndim > 2:
            self.axes.set_axes(*axes)
            for axis in self.axes.sliders:
                self.axes.set_position(axis, positions[axis])
            self.axes.flush()
        self.heatmap.plot.setRange(xRange=view_range[0], yRange=view_range[1], padding=0)
        self.whole_loaded.emit()

    def _full_cell(self, row: int, col: int) -> tuple[int, ...]:
        """The tensor's index of the heatmap's full-plane cell (row, col)."""
        if self._sampled is not None:
            return self._sampled.full_cell(
                self.axes.row_axis, self.axes.col_axis, self.axes.positions, row, col
            )
        return self.table.array_model.full_index(row, col)
