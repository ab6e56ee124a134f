"""What the heatmap draws: colormaps, colours of non-finite values, the image and its levels.

Diverging maps are meant for signed data: choosing one switches the levels to
"symmetric" so 0 sits at the neutral centre. Non-finite values are drawn on top
of the colormap in colours that none of the offered maps uses at its ends.
"""

from __future__ import annotations

import threading

import numpy as np
import pyqtgraph as pg

from tensor_inspector.core.dtypes import display_float
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.core.stats import display_levels

# name shown -> pyqtgraph colormap name (all bundled with pyqtgraph, no matplotlib needed)
COLORMAPS: dict[str, str] = {
    "viridis": "viridis",
    "gray": "CET-L1",
    "diverging (CET-D1)": "CET-D1",
    "inferno": "inferno",
    "cividis": "cividis",
    "turbo": "turbo",
}
DIVERGING = {"diverging (CET-D1)"}
DEFAULT_COLORMAP = "viridis"

# RGBA drawn over the image for non-finite values, and shown in the legend.
NAN_RGBA = (255, 0, 255, 255)  # magenta
POSINF_RGBA = (255, 140, 0, 255)  # orange
NEGINF_RGBA = (0, 229, 255, 255)  # cyan


def colormap(name: str) -> pg.ColorMap:
    """The pyqtgraph ColorMap for a displayed name (viridis if unknown)."""
    return pg.colormap.get(COLORMAPS.get(name, "viridis"))


def is_diverging(name: str) -> bool:
    return name in DIVERGING


def special_mask(image: np.ndarray) -> np.ndarray | None:
    """An RGBA uint8 overlay colouring NaN, +Inf and -Inf pixels, or None if all finite.

    ``image`` is the real-valued float image being drawn (after the complex choice).
    """
    if image.dtype.kind != "f":
        return None
    finite = np.isfinite(image)
    if finite.all():
        return None
    rgba = np.zeros(image.shape + (4,), np.uint8)
    rgba[np.isnan(image)] = NAN_RGBA
    rgba[image == np.inf] = POSINF_RGBA
    rgba[image == -np.inf] = NEGINF_RGBA
    return rgba


def legend_html() -> str:
    """Rich text naming the non-finite colours (shown under the heatmap)."""

    def swatch(rgba: tuple[int, int, int, int], label: str) -> str:
        r, g, b, _ = rgba
        return f'<span style="color: rgb({r},{g},{b}); font-size: 14px;">&#9632;</span>&nbsp;{label}'

    return "&nbsp;&nbsp;".join(
        [swatch(NAN_RGBA, "NaN"), swatch(POSINF_RGBA, "+Inf"), swatch(NEGINF_RGBA, "&minus;Inf")]
    )


# -- the image actually drawn (computed off the GUI thread) ----------------------------------

MAX_IMAGE_SIDE = 4096  # larger planes are block-averaged first (bounded memory)
LEVEL_SAMPLE = 1 << 20  # elements sampled for levels
COMPLEX_PARTS = ("|z|", "real", "imag", "phase")


def real_part(values: np.ndarray, part: str = "|z|") -> np.ndarray:
    """A float array to draw: complex -> the chosen part; bf16/fp8/int/bool -> float32."""
    if values.dtype.kind == "c":
        if part == "real":
            return np.ascontiguousarray(values.real)
        if part == "imag":
            return np.ascontiguousarray(values.imag)
        if part == "phase":
            return np.asarray(np.angle(values))
        return np.asarray(np.abs(values))
    return display_float(values)


def plane_sample(plane: np.ndarray, max_elements: int = LEVEL_SAMPLE) -> np.ndarray:
    """A regular 2-D (or 1-D) sub-grid of ~max_elements values, a view: no copy of the plane.

    ``core.stats.strided_sample`` flattens first, which copies non-contiguous planes
    (and would materialise a broadcast array); striding each axis never does.
    """
    if plane.size <= max_elements:
        return plane
    if plane.ndim == 1:
        return plane[:: int(np.ceil(plane.size / max_elements))]
    step = int(np.ceil(np.sqrt(plane.size / max_elements)))
    return plane[::step, ::step]


def block_mean(
    plane: np.ndarray,
    max_side: int = MAX_IMAGE_SIDE,
    part: str = "|z|",
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, int]:
    """A contiguous float image of at most ``max_side`` per axis, and the block size used.

    Block means (like pyqtgraph's own downsampling) keep isolated NaN/Inf visible
    as a whole block. Rows are processed in bands so temporaries stay bounded even
    for a 20000x20000 broadcast view.
    """
    rows, cols = plane.shape
    factor = max(1, int(np.ceil(max(rows, cols) / max_side)))
    if factor == 1:
        return np.ascontiguousarray(real_part(plane, part)), 1
    out_rows, out_cols = rows // factor, cols // factor
    out = np.empty((out_rows, out_cols), np.float32)
    band = max(1, (1 << 22) // max(cols, 1) // factor) * factor  # ~4M elements per band
    for start in range(0, out_rows * factor, band):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        stop = min(start + band, out_rows * factor)
        chunk = real_part(plane[start:stop, : out_cols * factor], part)
        target = out[start // factor : stop // factor]
        # a sum of factor**2 strided views: one pass over the data, no reshape copies
        target[...] = 0
        for i in range(factor):
            for j in range(factor):
                target += chunk[i::factor, j::factor]
        target *= np.float32(1.0 / (factor * factor))
    return out, factor


def image_levels(plane: np.ndarray, mode: str, part: str = "|z|") -> tuple[float, float]:
    """Levels for ``mode`` in {"auto", "symmetric", "robust"} from a strided sample."""
    sample = real_part(plane_sample(plane), part)
    if mode == "robust":
        return display_levels(sample, "auto", percentile=0.5)
    return display_levels(sample, "symmetric" if mode == "symmetric" else "auto")
