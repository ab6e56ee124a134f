"""What the heatmap draws, computed off the GUI thread: the picture, its scale and its levels.

A plane larger than the picture is reduced by ``core.reduce`` (one representative
value per block, non-finite values kept with "any"), never averaged: a block mean
of noise is one flat colour. Scales: "log" and "symlog" transform the values before
the colormap (the colour bar then reads in log10 units and the range label in the
data's own); "gamma" warps the colormap, so the bar keeps the data's units.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np
import pyqtgraph as pg

from tensor_inspector.app.views.colormaps import colormap, plane_sample, real_part, special_mask
from tensor_inspector.core.reduce import reduce_plane
from tensor_inspector.core.stats import display_levels

SCALES = ("linear", "log", "symlog", "gamma")
LEVEL_MODES = ("auto", "symmetric", "percentile", "mean ± k std", "manual")
LEVEL_TIPS = {
    "auto": "lowest to highest finite value",
    "symmetric": "-m to m around 0, m the largest magnitude",
    "percentile": "the p-th to (100-p)-th percentile",
    "mean ± k std": "mean - k std to mean + k std",
    "manual": "typed in, or dragged on the colour bar",
}
MAX_PICTURE_SIDE = 2048  # above a screen's width; larger planes are reduced first


@dataclass(frozen=True)
class ColourSettings:
    """How values become colours; remembered between sessions (``window.settings``)."""

    colormap: str = "viridis"
    scale: str = "linear"
    gamma: float = 1.0
    levels: str = "auto"
    percentile: float = 0.5
    k: float = 3.0
    manual: tuple[float, float] = (0.0, 1.0)

    def with_(self, **changes: object) -> ColourSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class Prepared:
    """What the background job hands to the GUI thread."""

    image: np.ndarray  # 2-D float32 picture in scale units, or 1-D y values
    mask: np.ndarray | None  # RGBA overlay for non-finite pixels
    levels: tuple[float, float]  # in the data's units
    factor: int  # cells of the plane per picture pixel, per axis
    marks: np.ndarray | None = None  # (row, col, code) of each non-finite cell, when few
    linthresh: float = 1.0  # symlog's linear range
    nonfinite: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def symlog_threshold(sample: np.ndarray) -> float:
    """Linear range of symlog: the 10th percentile of the non-zero magnitudes (robust, data-scaled)."""
    mags = np.abs(sample[np.isfinite(sample)])
    mags = mags[mags > 0]
    return float(np.percentile(mags, 10)) if mags.size else 1.0


def to_scale(values: np.ndarray | float, scale: str, linthresh: float = 1.0) -> np.ndarray:
    """Values in the units the colormap is applied to (log10 for "log", signed log for "symlog")."""
    x = np.asarray(values, dtype=np.float32 if np.ndim(values) else np.float64)
    with np.errstate(all="ignore"):
        if scale == "log":
            return np.asarray(np.log10(x))  # zero and negatives: -inf/NaN here, replaced by the caller
        if scale == "symlog":
            return np.asarray(np.sign(x) * np.log10(1 + np.abs(x) / linthresh))
    return x


def from_scale(values: float, scale: str, linthresh: float = 1.0) -> float:
    """The inverse of :func:`to_scale` for one level."""
    if scale == "log":
        return float(10.0**values)
    if scale == "symlog":
        return float(math.copysign(linthresh * (10.0 ** abs(values) - 1), values))
    return float(values)


def scaled_levels(levels: tuple[float, float], scale: str, linthresh: float) -> tuple[float, float]:
    lo, hi = (float(to_scale(v, scale, linthresh)) for v in levels)
    if not math.isfinite(lo):
        lo = hi - 6 if math.isfinite(hi) else 0.0  # a range starting at 0 on a log scale: six decades
    if not math.isfinite(hi) or hi <= lo:
        hi = lo + 1
    return lo, hi


def warped_colormap(name: str, gamma: float) -> pg.ColorMap:
    """The colormap with its positions raised to ``gamma`` (>1 spreads the low values)."""
    base = colormap(name)
    if abs(gamma - 1.0) < 1e-9:
        return base
    positions = np.linspace(0.0, 1.0, 256)
    colours = base.map(positions ** (1.0 / gamma), mode="float")
    return pg.ColorMap(positions, colours)


def compute_levels(sample: np.ndarray, settings: ColourSettings) -> tuple[float, float]:
    """Levels in data units for ``settings.levels`` from a (real, float) sample."""
    mode = settings.levels
    if mode == "manual":
        return settings.manual
    if mode == "percentile" or mode == "robust":
        p = min(max(settings.percentile, 0.0), 49.9)
        levels = display_levels(sample, "auto", percentile=p) if p > 0 else display_levels(sample)
    elif mode == "mean ± k std":
        finite = sample[np.isfinite(sample)].astype(np.float64)
        if not finite.size:
            return (0.0, 1.0)
        mean, std = float(finite.mean()), float(finite.std())
        if std == 0:
            return display_levels(sample)
        levels = (mean - settings.k * std, mean + settings.k * std)
    else:
        levels = display_levels(sample, "symmetric" if mode == "symmetric" else "auto")
    if settings.scale == "log" and levels[0] <= 0:
        finite = sample[np.isfinite(sample) & (sample > 0)]
        if finite.size:
            levels = (float(finite.min()), max(levels[1], float(finite.min()) * 10))
    return levels


def prepare(
    plane: np.ndarray,
    part: str,
    settings: ColourSettings,
    max_side: int = MAX_PICTURE_SIDE,
    cancel: threading.Event | None = None,
) -> Prepared:
    """Picture, overlay, markers and levels for ``plane`` (runs in a worker thread)."""
    sample = real_part(plane_sample(plane), part)
    levels = compute_levels(sample, settings)
    linthresh = symlog_threshold(sample) if settings.scale == "symlog" else 1.0
    if plane.ndim == 1:
        return Prepared(np.asarray(real_part(plane, part), np.float64), None, levels, 1)
    reduced = reduce_plane(plane, max_side, to_float=lambda band: real_part(band, part), cancel=cancel)
    mask = special_mask(reduced.image)
    image = to_scale(reduced.image, settings.scale, linthresh)
    if settings.scale == "log":
        # zero and negative values: below the lowest level, so drawn in the lowest colour
        floor = scaled_levels(levels, "log", linthresh)[0] - 1
        image = np.where(np.isfinite(reduced.image) & (reduced.image <= 0), np.float32(floor), image)
    return Prepared(
        np.ascontiguousarray(image, np.float32),
        mask,
        levels,
        reduced.factor,
        reduced.marks,
        linthresh,
        reduced.nonfinite,
    )
