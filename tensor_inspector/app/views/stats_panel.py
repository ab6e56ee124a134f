"""Statistics of the whole tensor and of the displayed slice, side by side, with histograms.

The panel only displays :class:`~tensor_inspector.core.stats.Stats`; computing
them is the caller's job (off the GUI thread). A column shows "…" until its
stats arrive.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.core.dtypes import short_name
from tensor_inspector.core.stats import Stats
from tensor_inspector.core.text import format_bytes

ROWS = ("shape", "dtype", "size", "min", "max", "mean", "std", "NaN", "+Inf", "−Inf", "zeros", "note")
WHOLE, SLICE = 0, 1
COLOURS = ("#4c72b0", "#dd8452")  # histogram of the whole tensor, of the slice


def human_bytes(n: int) -> str:
    """Binary units with the exact count: "48.0 KiB (49,152 B)"."""
    return f"{n:,} B" if n < 1024 else f"{format_bytes(n)} ({n:,} B)"


def _number(value: float | complex | np.number | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, complex):
        re, im = _number(value.real), _number(abs(value.imag))
        return f"{re}{'-' if value.imag < 0 else '+'}{im}j"
    if isinstance(value, (int, np.integer)):
        return f"{int(value)}"
    x = float(value)
    if not math.isfinite(x):
        return str(x)
    return f"{x:.7g}"


def _count(n: int, total: int) -> str:
    if n == 0 or total == 0:
        return f"{n:,}"
    return f"{n:,} ({100.0 * n / total:.3g}%)"


def _size_text(stats: Stats) -> str:
    """Values and bytes of the tensor; statistics of a sample say how many values they saw."""
    total = math.prod(stats.shape)
    text = f"{total:,} values, {human_bytes(stats.nbytes)}"
    return text if total == stats.count else f"{text}; statistics of {stats.count:,} sampled"


def stats_texts(stats: Stats) -> dict[str, str]:
    """The cell texts of one column."""
    return {
        "shape": "(" + ", ".join(str(s) for s in stats.shape) + (",)" if len(stats.shape) == 1 else ")"),
        "dtype": f"{stats.dtype} ({short_name(stats.dtype)})"
        if short_name(stats.dtype) != stats.dtype
        else stats.dtype,
        "size": _size_text(stats),
        "min": _number(stats.min),
        "max": _number(stats.max),
        "mean": _number(stats.mean),
        "std": _number(stats.std),
        "NaN": _count(stats.nan, stats.count),
        "+Inf": _count(stats.posinf, stats.count),
        "−Inf": _count(stats.neginf, stats.count),
        "zeros": _count(stats.zeros, stats.count),
        "note": stats.note,
    }


class StatsPanel(QWidget):
    """A two-column table (whole tensor | current slice) and an overlaid histogram."""

    exact_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setHorizontalHeaderLabels(["whole tensor", "current slice"])
        self.table.setVerticalHeaderLabels(list(ROWS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ContiguousSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        vertical = self.table.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(self.table.fontMetrics().height() + 4)
        self.histogram = pg.PlotWidget(background="w")
        self.histogram.setMenuEnabled(False)
        self.histogram.setMouseEnabled(x=False, y=False)
        self.histogram.hideButtons()
        self.histogram.setTitle("histogram (density of finite values)", color="#333", size="9pt")
        for name in ("left", "bottom"):
            self.histogram.getAxis(name).setPen("#444")
            self.histogram.getAxis(name).setTextPen("#444")
        self.histogram.addLegend(offset=(-4, 4), labelTextColor="#333")
        self.curves = [
            self.histogram.plot(
                stepMode="center",
                fillLevel=0,
                pen=pg.mkPen(COLOURS[0], width=1),
                brush=pg.mkBrush(76, 114, 176, 90),
                name="whole",
            ),
            self.histogram.plot(stepMode="center", pen=pg.mkPen(COLOURS[1], width=1.6), name="slice"),
        ]
        # a tensor shown from a sample: its exact statistics are streamed on request
        self.exact_button = QPushButton("Exact statistics")
        self.exact_button.setToolTip("Read the whole tensor from the file for exact statistics (Esc stops)")
        self.exact_button.clicked.connect(self.exact_requested)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(14)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop reading (Esc)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress_label = QLabel()
        strip = QHBoxLayout()
        strip.setContentsMargins(0, 0, 0, 0)
        for widget in (self.exact_button, self.progress_label, self.progress, self.cancel_button):
            strip.addWidget(widget)
        strip.addStretch(1)
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(strip)
        left.addWidget(self.table, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(left, 3)
        layout.addWidget(self.histogram, 2)
        self.offer_exact(False)
        self.show_progress(-1, 0)
        self._stats: list[Stats | None] = [None, None]
        self.clear()

    def offer_exact(self, on: bool) -> None:
        """Show the Exact statistics button (whole-tensor statistics come from a sample)."""
        self.exact_button.setVisible(on)

    def show_progress(self, done: int, total: int, message: str = "") -> None:
        """Streaming progress (``done`` < 0: none running; ``message`` says why it ended)."""
        running = done >= 0
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.exact_button.setEnabled(not running)
        if running:
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
        self.progress_label.setText("Reading the whole tensor…" if running else message)
        self.progress_label.setVisible(running or bool(message))

    def clear(self, pending: bool = False) -> None:
        """Empty both columns ("…" while a computation is pending)."""
        for column in (WHOLE, SLICE):
            self._set_column(column, None, "…" if pending else "")

    def set_stats(self, column: int, stats: Stats | None) -> None:
        """Show ``stats`` in WHOLE or SLICE; None marks the column as pending."""
        self._set_column(column, stats, "…")

    def stats(self, column: int) -> Stats | None:
        return self._stats[column]

    def text(self, row: str, column: int) -> str:
        item = self.table.item(ROWS.index(row), column)
        return item.text() if item is not None else ""

    def _set_column(self, column: int, stats: Stats | None, placeholder: str) -> None:
        self._stats[column] = stats
        texts = stats_texts(stats) if stats is not None else {}
        for r, name in enumerate(ROWS):
            item = QTableWidgetItem(texts.get(name, placeholder if name not in ("note",) else ""))
            item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            if name in ("NaN", "+Inf", "−Inf") and stats is not None and texts[name] != "0":
                item.setForeground(Qt.GlobalColor.darkRed)
            self.table.setItem(r, column, item)
        curve = self.curves[column]
        if stats is not None and stats.hist_counts.size:
            # densities: whole and slice have different counts and bin widths
            widths = np.diff(stats.hist_edges)
            total = max(int(stats.hist_counts.sum()), 1)
            curve.setData(stats.hist_edges, stats.hist_counts / (total * np.where(widths > 0, widths, 1)))
        else:
            curve.setData([], [])
