"""What the heatmap draws: colormaps, colours of non-finite values, the image and its levels.

Diverging maps are meant for signed data: choosing one switches the levels to
"symmetric" so 0 sits at the neutral centre. Non-finite values are drawn on top
of the colormap in colours that none of the offered maps uses at its ends.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from tensor_inspector.core.dtypes import display_float

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
