"""Colormaps offered by the heatmap and the colours of non-finite values.

Diverging maps are meant for signed data: choosing one switches the levels to
"symmetric" so 0 sits at the neutral centre. Non-finite values are drawn on top
of the colormap in colours that none of the offered maps uses at its ends.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

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
NAN_RGBA = (255, 0, 255, 255)      # magenta
POSINF_RGBA = (255, 140, 0, 255)   # orange
NEGINF_RGBA = (0, 229, 255, 255)   # cyan


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
        return (f'<span style="color: rgb({r},{g},{b}); font-size: 14px;">&#9632;</span>'
                f'&nbsp;{label}')
    return "&nbsp;&nbsp;".join([swatch(NAN_RGBA, "NaN"), swatch(POSINF_RGBA, "+Inf"),
                                swatch(NEGINF_RGBA, "&minus;Inf")])
