"""How a trace marks the node tree: the Trace column's text, colour, dot and tooltip per row.

A traced node shows its range when finite, its NaN/Inf counts otherwise (red for NaN,
amber for Inf only), the first producer flagged; a group holding a node with NaN/Inf
is marked too, so a collapsed graph still shows where to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from tensor_inspector.session.answers import TracedNode

NAN_COLOUR, INF_COLOUR, INSIDE_COLOUR = "#c62828", "#b36b00", "#c97a7a"


@dataclass(frozen=True)
class TraceMark:
    """What a trace says about one row: a traced node, or a group holding non-finite nodes."""

    node: TracedNode | None  # None: a group (or file) with NaN/Inf somewhere inside
    first: bool = False  # the first node that produced NaN/Inf from finite inputs

    @property
    def colour(self) -> str | None:
        if self.node is None:
            return INSIDE_COLOUR
        if self.node.nan:
            return NAN_COLOUR
        return INF_COLOUR if self.node.inf else None

    def text(self) -> str:
        node = self.node
        if node is None:
            return "NaN/Inf inside"
        if node.nan or node.inf:
            counts = " ".join(f"{name} {n}" for name, n in (("NaN", node.nan), ("Inf", node.inf)) if n)
            return f"first: {counts}" if self.first else counts
        if node.min is None or node.max is None:
            return "traced"
        return f"{_short(node.min)} … {_short(node.max)}"

    def tooltip(self) -> str:
        node = self.node
        if node is None:
            return "trace: NaN or Inf in nodes inside"
        stats = [
            f"{name} {_short(value)}"
            for name, value in (("min", node.min), ("max", node.max), ("mean", node.mean), ("std", node.std))
            if value is not None
        ]
        lines = [f"trace ({node.op}): " + (", ".join(stats) or "no finite value")]
        if node.nan or node.inf:
            lines.append(f"NaN {node.nan}, Inf {node.inf} of {_count(node.shape)} values")
        if self.first:
            lines.append("the first node that produced NaN/Inf from finite inputs")
        return "\n".join(lines)


def _short(x: float) -> str:
    return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.2e}"


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


@cache
def dot_icon(colour: str) -> QIcon:
    """A filled circle: the Trace column's marker of a row with NaN/Inf."""
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pixmap)
