"""Finer pictures of the visible region, loaded in the background as the user zooms.

The first picture of a plane is coarse when the plane is bigger than the picture
(reduced in memory) or only a strided sample of it was read (a big tensor). When
the view shows fewer cells than it has pixels for, the region in view is read again
at the step the screen can show, at most ``TILE_ELEMENTS`` values, and drawn over
the coarse picture. The latest zoom wins; a tile of an older plane is dropped.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from tensor_inspector.app.background import BackgroundRunner

TILE_ELEMENTS = 1 << 22  # ~16 MB of float32 per tile
TILE_DELAY_MS = 120  # a zoom gesture settles before anything is read

# (row start, row stop, column start, column stop, step, cancel) -> the values of that region
RegionReader = Callable[[int, int, int, int, int, threading.Event | None], np.ndarray]


@dataclass(frozen=True)
class PlaneSource:
    """Where the values of the displayed plane come from, in the plane's full cells.

    ``extent`` is the plane's full (rows, columns); ``steps`` the sampling step of the
    array drawn first along each (1, 1 when it is the whole plane); ``read`` reads a
    region at a given step (off the GUI thread).
    """

    extent: tuple[int, int]
    steps: tuple[int, int]
    read: RegionReader
    remote: bool = False  # read from the file (a reader process), not from memory


def memory_source(plane: np.ndarray) -> PlaneSource:
    """A plane that is entirely in memory: regions are strided views of it."""

    def read(r0: int, r1: int, c0: int, c1: int, step: int, cancel: threading.Event | None) -> np.ndarray:
        return np.asarray(plane[r0:r1:step, c0:c1:step])

    rows, cols = plane.shape[:2]
    return PlaneSource((rows, cols), (1, 1), read)


@dataclass(frozen=True)
class TileRequest:
    rows: tuple[int, int]
    cols: tuple[int, int]
    step: int


def wanted_tile(
    source: PlaneSource,
    visible: tuple[float, float, float, float],
    pixels: tuple[int, int],
    drawn_step: int,
) -> TileRequest | None:
    """The region and step to read for the ``visible`` (x0, x1, y0, y1) area, or None.

    None when the picture already drawn is as fine as the screen can show there.
    """
    rows, cols = source.extent
    x0, x1, y0, y1 = visible
    c0, c1 = max(0, math.floor(x0)), min(cols, math.ceil(x1))
    r0, r1 = max(0, math.floor(y0)), min(rows, math.ceil(y1))
    if c1 <= c0 or r1 <= r0:
        return None
    width, height = max(pixels[0], 1), max(pixels[1], 1)
    step = max(1, math.floor(min((c1 - c0) / width, (r1 - r0) / height)))
    while math.ceil((r1 - r0) / step) * math.ceil((c1 - c0) / step) > TILE_ELEMENTS:
        step += 1
    if step >= drawn_step:
        return None
    # align to the step so neighbouring tiles and zoom steps read the same cells
    r0, c0 = r0 - r0 % step, c0 - c0 % step
    return TileRequest((r0, r1), (c0, c1), step)


class TileLoader(QObject):
    """Debounces view changes and reads the tile they ask for; ``tile_ready(request, array)``."""

    tile_ready = Signal(object, object)  # TileRequest, what ``post`` made of the values
    tile_failed = Signal(str)
    loading = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = BackgroundRunner(self, max_threads=1)
        self.source: PlaneSource | None = None
        # turns the values read into what is drawn (in the same background job)
        self.post: Callable[[np.ndarray], object] = lambda array: array
        self._wanted: TileRequest | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(TILE_DELAY_MS)
        self._timer.timeout.connect(self._load)

    def set_source(self, source: PlaneSource | None) -> None:
        """A new plane: tiles of the old one are dropped."""
        self.source = source
        self._wanted = None
        self._timer.stop()
        self.runner.cancel("tile")
        self.loading.emit(False)

    def want(self, request: TileRequest | None) -> None:
        if request == self._wanted:
            return
        self._wanted = request
        if request is None:
            self._timer.stop()
            self.runner.cancel("tile")
            self.loading.emit(False)
        else:
            self._timer.start()

    def pending(self) -> bool:
        return self._timer.isActive() or self.runner.pending("tile")

    def _load(self) -> None:
        source, request = self.source, self._wanted
        if source is None or request is None:
            return
        self.loading.emit(True)

        def done(drawn: object) -> None:
            self.loading.emit(False)
            if self.source is source:
                self.tile_ready.emit(request, drawn)

        def failed(message: str) -> None:
            self.loading.emit(False)
            self.tile_failed.emit(message)

        self.runner.submit(
            "tile",
            _read,
            source,
            request,
            self.post,
            cancellable=True,
            on_done=done,
            on_error=failed,
        )


def _read(
    source: PlaneSource,
    request: TileRequest,
    post: Callable[[np.ndarray], object],
    cancel: threading.Event | None = None,
) -> object:
    (r0, r1), (c0, c1) = request.rows, request.cols
    return post(np.asarray(source.read(r0, r1, c0, c1, request.step, cancel)))
