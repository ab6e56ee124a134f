"""What the trace chart draws, and its axes: values per node, a symmetric log scale, node numbers.

The symmetric log scale (sign(x)·log10(1+|x|)) keeps zero and the sign, so a few
activations in the thousands no longer flatten the ones near 1; its axis is labelled
in values at powers of ten. The x axis counts nodes in execution order: whole numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

from tensor_inspector.session.answers import TracedNode

LOG_SPREAD = 100.0  # a report whose largest |value| is this many times the typical one opens in log scale


@dataclass(frozen=True)
class ChartData:
    """What the plots draw, one entry per traced node in execution order (NaN: undefined)."""

    ids: list[str]
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    nan: np.ndarray  # NaN count per node
    inf: np.ndarray  # Inf count per node

    @classmethod
    def of(cls, nodes: list[TracedNode]) -> ChartData:
        def column(name: str) -> np.ndarray:
            values = [getattr(n, name) for n in nodes]
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return cls(
            [n.id for n in nodes],
            column("min"),
            column("max"),
            column("mean"),
            column("std"),
            np.array([n.nan for n in nodes], dtype=np.int64),
            np.array([n.inf for n in nodes], dtype=np.int64),
        )


def symlog(values: np.ndarray) -> np.ndarray:
    """sign(x) log10(1 + |x|): zero stays zero, sign kept, decades equally spaced."""
    with np.errstate(invalid="ignore"):
        return np.asarray(np.sign(values) * np.log10(1.0 + np.abs(values)))


def symexp(y: float) -> float:
    """The inverse of ``symlog`` for one value (tick labels)."""
    return math.copysign(10.0 ** min(abs(y), 300.0) - 1.0, y)


class ValueAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph has no type hints
    """A left axis whose labels show values, also when the plot is drawn in symmetric log."""

    def __init__(self) -> None:
        super().__init__("left")
        self.log_scale = False

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:  # noqa: N802, N803
        if not self.log_scale:
            return list(super().tickValues(minVal, maxVal, size))
        ticks = log_ticks(minVal, maxVal, size)
        if len(ticks) >= 2:
            return [(1.0, ticks)]
        # a narrow range near 0 (where the scale is almost linear): round values, placed in log
        levels = super().tickValues(symexp(minVal), symexp(maxVal), size)
        return [(spacing, [float(symlog(np.array(v))) for v in values]) for spacing, values in levels]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        shown = [symexp(v) if self.log_scale else v for v in values]
        return [f"{v:.3g}" if abs(v) > 1e-300 else "0" for v in shown]


def log_ticks(low: float, high: float, pixels: float = 300.0, spacing_px: float = 15.0) -> list[float]:
    """Ticks of a symmetric-log axis between ``low`` and ``high`` (drawn coordinates): 0 and
    ±powers of ten, none closer than ``spacing_px`` on an axis ``pixels`` long, so labels
    never overlap and none sits where the edge would cut its label; 0 and the largest
    decades win."""
    top = symexp(max(abs(low), abs(high)))
    if top <= 0 or high <= low:
        return []
    gap = spacing_px * (high - low) / max(pixels, 1.0)
    candidates = [0.0] + [
        sign * float(symlog(np.array(10.0**k)))
        for k in range(int(math.floor(math.log10(top))), -7, -1)
        for sign in (1.0, -1.0)
    ]
    kept: list[float] = []
    for tick in candidates:  # in priority order: 0, then decades from the largest down
        inside = low + gap / 2 <= tick <= high - gap / 2  # a label cut by the edge is not drawn
        if inside and all(abs(tick - other) >= gap for other in kept):
            kept.append(tick)
    return sorted(kept)


class OrderAxis(pg.AxisItem):  # type: ignore[misc]  # pyqtgraph has no type hints
    """The bottom axis: node numbers, so whole numbers only."""

    def __init__(self) -> None:
        super().__init__("bottom")

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:  # noqa: N802, N803
        levels = super().tickSpacing(minVal, maxVal, size)
        return [(float(max(1, round(spacing))), offset) for spacing, offset in levels if spacing >= 1] or [
            (1.0, 0.0)
        ]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        return [str(int(round(v))) for v in values]


def wide_spread(data: ChartData) -> bool:
    """Whether a few nodes' values dwarf the others' (then the symmetric log scale reads better)."""
    sizes = np.fmax(np.abs(data.low), np.abs(data.high))
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    if sizes.size < 2:
        return False
    return bool(sizes.max() > LOG_SPREAD * float(np.median(sizes)))
