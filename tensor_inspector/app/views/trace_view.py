"""The trace panel: every traced node's range and spread along execution order, NaN/Inf marked.

Three plots share the x axis (the node's place in execution order): each node's
min..max as a bar with its mean as a line, its standard deviation, and a track of
NaN and Inf markers with the first producer as a star. A click anywhere over a node
selects it (``node_clicked``); the selected node is a vertical line in every plot.
A symmetric log scale keeps a few huge activations from flattening the rest.

The panel holds no file access and no trace logic: it is given a ``TraceReport`` and
progress, and asks for Go to first NaN/Inf, Export and Cancel by signals.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.views.compare_table import number_text
from tensor_inspector.app.views.trace_axes import ChartData, OrderAxis, ValueAxis, symlog, wide_spread
from tensor_inspector.session.answers import TraceReport

RANGE_COLOUR, BAD_RANGE_COLOUR = "#6f9bd1", "#e0533d"
MEAN_COLOUR, STD_COLOUR = "#1b3a66", "#2e8b57"
NAN_COLOUR, INF_COLOUR, FIRST_COLOUR = "#d62728", "#f0a020", "#8b0000"
SELECTED_COLOUR = "#ff8c00"
NAN_ROW, INF_ROW = 0.68, 0.32  # heights of the NaN and Inf markers in their track
AXIS_WIDTH = 64  # one left-axis width for the three plots, so their x positions line up
SYMBOLS_UP_TO = 300  # nodes: beyond this the std line has no per-node dots


class TraceView(QWidget):
    """Summary, progress and Cancel, the buttons, and the three linked plots."""

    node_clicked = Signal(str)  # node id under a click in the plots
    go_first_requested = Signal()
    export_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._data: ChartData | None = None
        self._report: TraceReport | None = None
        self._selected: int | None = None
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)  # node ids are escaped (summary_html)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress_label = QLabel()
        self.progress_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # room for the longest count: the wrapping summary beside it would otherwise squeeze it
        widest = "Exporting 888888 / 888888 values"
        self.progress_label.setMinimumWidth(self.progress_label.fontMetrics().horizontalAdvance(widest) + 8)
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(160)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop (Esc)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.note = QLabel()  # why the marks may not match what is shown now
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a5a00;")
        self.note.setVisible(False)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.progress_label)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)

        self.go_button = QPushButton("Go to first NaN/Inf")
        self.go_button.setToolTip("Select the node that first produced NaN or Inf from finite inputs")
        self.go_button.clicked.connect(self.go_first_requested)
        self.export_button = QPushButton("Export .npz…")
        self.export_button.setToolTip("Write every kept activation into one .npz archive")
        self.export_button.clicked.connect(self.export_requested)
        self.log_box = QCheckBox("Symmetric log scale")
        self.log_box.setToolTip("sign(x)·log10(1+|x|): a few huge values no longer flatten the rest")
        self.log_box.toggled.connect(lambda _on: self._draw())
        self.readout = QLabel(" ")
        self.readout.setTextFormat(Qt.TextFormat.PlainText)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setStyleSheet("color: #333;")
        controls = QHBoxLayout()
        for widget in (self.go_button, self.export_button, self.log_box):
            controls.addWidget(widget)
        controls.addSpacing(12)
        controls.addWidget(self.readout, 1)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self._build_plots()
        self.message = QLabel()
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #555; font-size: 13px;")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(self.graphics)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addLayout(controls)
        layout.addWidget(self.stack, 1)
        self.clear("Select a graph or signature and choose Tools › Trace (Ctrl+Shift+T).")

    def _build_plots(self) -> None:
        self.range_axis, self.std_axis = ValueAxis(), ValueAxis()
        self.range_plot = self.graphics.addPlot(row=0, col=0, axisItems={"left": self.range_axis})
        self.std_plot = self.graphics.addPlot(row=1, col=0, axisItems={"left": self.std_axis})
        self.marks_plot = self.graphics.addPlot(row=2, col=0, axisItems={"bottom": OrderAxis()})
        self.range_plot.setLabel("left", "min…max")
        self.std_plot.setLabel("left", "std")
        self.marks_plot.setLabel("bottom", "execution order (node #)")
        for plot in (self.range_plot, self.std_plot, self.marks_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.15)
            for name in ("left", "bottom"):
                plot.getAxis(name).setPen("k")
                plot.getAxis(name).setTextPen("k")
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.getAxis("left").enableAutoSIPrefix(False)  # "(x0.001)" would crowd the short label
        for plot in (self.std_plot, self.marks_plot):
            plot.setXLink(self.range_plot)
        self.range_plot.getAxis("bottom").setStyle(showValues=False)
        self.std_plot.getAxis("bottom").setStyle(showValues=False)
        self.marks_plot.setMouseEnabled(x=True, y=False)
        self.marks_plot.setYRange(0, 1, padding=0)
        self.marks_plot.getAxis("left").setTicks([[(NAN_ROW, "NaN"), (INF_ROW, "Inf")]])
        self.marks_plot.hideButtons()
        layout = self.graphics.ci.layout
        for row, stretch in ((0, 5), (1, 3), (2, 1)):
            layout.setRowStretchFactor(row, stretch)
        self.marks_plot.setMaximumHeight(70)

        self.bars = pg.BarGraphItem(x=[], y0=[], y1=[], width=0.8)
        self.bad_bars = pg.BarGraphItem(x=[], y0=[], y1=[], width=0.8)
        self.mean_curve = pg.PlotDataItem(pen=pg.mkPen(MEAN_COLOUR, width=1), connect="finite")
        self.std_curve = pg.PlotDataItem(pen=pg.mkPen(STD_COLOUR, width=1.5), connect="finite")
        self.nan_marks = pg.ScatterPlotItem(symbol="s", size=7, pen=None, brush=pg.mkBrush(NAN_COLOUR))
        self.inf_marks = pg.ScatterPlotItem(symbol="d", size=8, pen=None, brush=pg.mkBrush(INF_COLOUR))
        self.first_mark = pg.ScatterPlotItem(
            symbol="star", size=16, pen=pg.mkPen("k", width=0.5), brush=pg.mkBrush(FIRST_COLOUR)
        )
        for item in (self.bars, self.bad_bars, self.mean_curve):
            self.range_plot.addItem(item)
        self.std_plot.addItem(self.std_curve)
        for item in (self.nan_marks, self.inf_marks, self.first_mark):
            self.marks_plot.addItem(item)
        self.first_line = pg.InfiniteLine(
            angle=90,
            pen=pg.mkPen(FIRST_COLOUR, width=1, style=Qt.PenStyle.DashLine),
            label="first NaN/Inf",
            labelOpts={"position": 0.92, "color": FIRST_COLOUR, "anchors": [(0, 0), (0, 0)]},
        )
        self.range_plot.addItem(self.first_line, ignoreBounds=True)
        self.selection_lines = []
        for plot in (self.range_plot, self.std_plot, self.marks_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(SELECTED_COLOUR, width=2))
            line.setZValue(-5)  # behind the data: the selected bar stays visible
            plot.addItem(line, ignoreBounds=True)
            self.selection_lines.append(line)
        scene = self.graphics.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)

    # -- states ----------------------------------------------------------------------------------
    def clear(self, message: str) -> None:
        """No trace: a sentence in place of the plots, nothing to go to or export."""
        self._data, self._report, self._selected = None, None, None
        self.summary.setText("")
        self.set_note("")
        self.message.setText(message)
        self.stack.setCurrentWidget(self.message)
        self.readout.setText(" ")
        self.go_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self._set_running(False)

    def start(self, what: str) -> None:
        """A trace begins: the old one is gone, progress shows until the first count arrives."""
        self.clear(f"Tracing {what}…")
        self.summary.setText(f"Tracing <b>{_escape(what)}</b>…")
        self.progress.setRange(0, 0)
        self.progress_label.setText("starting…")
        self._set_running(True)

    def show_progress(self, done: int, total: int, text: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress_label.setText(text)

    def start_export(self, count: int) -> None:
        """Exporting the kept values: the plots stay, progress and Cancel show."""
        self.progress.setRange(0, max(count, 1))
        self.progress.setValue(0)
        self.progress_label.setText(f"Exporting 0 / {count} values")
        self._set_running(True)
        self.export_button.setEnabled(False)

    def end_export(self) -> None:
        self._set_running(False)
        self.export_button.setEnabled(self._kept_count() > 0)

    def show_stopped(self, text: str, error: bool = False) -> None:
        """A trace that did not finish: cancelled, or failed (``error``)."""
        self.clear(text)
        style = "color: #b00020;" if error else "color: #555;"
        self.message.setStyleSheet(style + " font-size: 13px;")
        self.summary.setText(_escape(text))

    def show_report(self, report: TraceReport, what: str) -> None:
        """A finished trace: summary, plots, and the buttons that apply to it."""
        self._set_running(False)
        self.message.setStyleSheet("color: #555; font-size: 13px;")
        self._report, self._data, self._selected = report, ChartData.of(report.nodes), None
        self.summary.setText(summary_html(report, what))
        self.go_button.setEnabled(report.first_nonfinite is not None)
        kept = self._kept_count()
        self.export_button.setEnabled(kept > 0)
        self.export_button.setToolTip(
            f"Write the {kept} kept activations into one .npz archive"
            if kept
            else "No activation was kept (over the memory budget): nothing to export"
        )
        if not report.nodes:
            self.message.setText("The trace ran no node.")
            self.stack.setCurrentWidget(self.message)
            return
        self.stack.setCurrentWidget(self.graphics)
        self.log_box.blockSignals(True)  # drawn once, below
        self.log_box.setChecked(wide_spread(self._data))
        self.log_box.blockSignals(False)
        self._draw()
        self.range_plot.enableAutoRange()
        self.std_plot.enableAutoRange()
        self.marks_plot.setYRange(0, 1, padding=0)

    def set_note(self, text: str) -> None:
        """A sentence under the summary (empty: none), e.g. that the inputs changed since the trace."""
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def _set_running(self, running: bool) -> None:
        for widget in (self.progress_label, self.progress, self.cancel_button):
            widget.setVisible(running)

    def is_running(self) -> bool:
        return not self.cancel_button.isHidden()

    def _kept_count(self) -> int:
        return sum(1 for n in self._report.nodes if n.kept) if self._report is not None else 0

    # -- drawing ----------------------------------------------------------------------------------
    def chart_data(self) -> ChartData | None:
        """What is drawn, in values (not the log-scaled coordinates)."""
        return self._data

    def _draw(self) -> None:
        data = self._data
        if data is None:
            return
        log = self.log_box.isChecked()
        self.range_axis.log_scale = self.std_axis.log_scale = log
        scale = symlog if log else (lambda v: v)
        x = np.arange(len(data.ids), dtype=np.float64)
        low, high, mean, std = scale(data.low), scale(data.high), scale(data.mean), scale(data.std)
        drawn = np.isfinite(low) & np.isfinite(high)
        bad = (data.nan > 0) | (data.inf > 0)
        for item, which, colour in (
            (self.bars, drawn & ~bad, RANGE_COLOUR),
            (self.bad_bars, drawn & bad, BAD_RANGE_COLOUR),
        ):
            # a cosmetic pen: a constant node (min == max) is still a visible tick
            item.setOpts(
                x=x[which], y0=low[which], y1=high[which], width=0.8,
                brush=pg.mkBrush(colour), pen=pg.mkPen(colour, width=1, cosmetic=True),
            )  # fmt: skip
        self.mean_curve.setData(x, mean)
        few = len(x) <= SYMBOLS_UP_TO
        self.std_curve.setData(
            x, std, symbol="o" if few else None, symbolSize=4, symbolPen=None, symbolBrush=STD_COLOUR
        )
        self.nan_marks.setData(x[data.nan > 0], np.full(int((data.nan > 0).sum()), NAN_ROW))
        self.inf_marks.setData(x[data.inf > 0], np.full(int((data.inf > 0).sum()), INF_ROW))
        first = self._index_of(self._report.first_nonfinite) if self._report is not None else None
        if first is not None:
            row = NAN_ROW if data.nan[first] > 0 else INF_ROW
            self.first_mark.setData([float(first)], [row])
            self.first_line.setPos(first)
            # the label on the side with more room, so it is not cut at the plot's edge
            side = 1 if first > len(data.ids) / 2 else 0
            self.first_line.label.anchors = [(side, 0), (side, 0)]
            self.first_line.label.updatePosition()
        else:
            self.first_mark.setData([], [])
        self.first_line.setVisible(first is not None)
        self._draw_selection()

    def _draw_selection(self) -> None:
        for line in self.selection_lines:
            if self._selected is not None:
                line.setPos(self._selected)
            line.setVisible(self._selected is not None)

    # -- the selected node ------------------------------------------------------------------------
    def set_selected(self, node_id: str | None) -> None:
        """Mark ``node_id`` in the plots (None, or a node not traced: no mark)."""
        self._selected = self._index_of(node_id)
        self._draw_selection()
        if self._selected is not None:
            self.readout.setText(self.describe(self._selected))

    def selected(self) -> str | None:
        return self._data.ids[self._selected] if self._data and self._selected is not None else None

    def _index_of(self, node_id: str | None) -> int | None:
        if node_id is None or self._data is None:
            return None
        try:
            return self._data.ids.index(node_id)
        except ValueError:
            return None

    def describe(self, i: int) -> str:
        """One line about the ``i``-th traced node, for the readout."""
        if self._report is None:
            return ""
        node = self._report.nodes[i]
        shape = "×".join(str(d) for d in node.shape) or "scalar"
        parts = [f"#{i}  {node.id}", node.op, f"{shape} {node.dtype}"]
        if node.min is not None and node.max is not None:
            parts.append(f"min {number_text(node.min)}  max {number_text(node.max)}")
        if node.std is not None:
            parts.append(f"std {number_text(node.std)}")
        if node.nan or node.inf:
            parts.append(f"NaN {node.nan}  Inf {node.inf}")
        return "  ·  ".join(parts)

    def node_at(self, scene_pos: QPointF) -> int | None:
        """The node under a point of the scene (the nearest in execution order), or None."""
        if self._data is None:
            return None
        for plot in (self.range_plot, self.std_plot, self.marks_plot):
            box = plot.getViewBox()
            if box.sceneBoundingRect().contains(scene_pos):
                i = int(round(box.mapSceneToView(scene_pos).x()))
                return i if 0 <= i < len(self._data.ids) else None
        return None

    def click_point(self, node_id: str) -> QPoint:
        """Where ``node_id`` is in the plots' viewport (what a click on it hits)."""
        i = self._index_of(node_id)
        if i is None:
            raise KeyError(node_id)
        box = self.range_plot.getViewBox()
        (_, _), (y0, y1) = box.viewRange()
        scene = box.mapViewToScene(QPointF(float(i), (y0 + y1) / 2))
        point: QPoint = self.graphics.mapFromScene(scene)
        return point

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        i = self.node_at(scene_pos)
        if i is not None:
            self.readout.setText(self.describe(i))

    def _on_mouse_clicked(self, event: object) -> None:  # pyqtgraph's MouseClickEvent
        if getattr(event, "button", lambda: None)() != Qt.MouseButton.LeftButton:
            return
        i = self.node_at(event.scenePos())  # type: ignore[attr-defined]
        if i is not None and self._data is not None:
            self.node_clicked.emit(self._data.ids[i])


def summary_html(report: TraceReport, what: str) -> str:
    """ "850 nodes traced in serving_default; first NaN/Inf produced by X (op Log)" as rich text."""
    count = len(report.nodes)
    head = f"<b>{count} node{'s' if count != 1 else ''}</b> traced in <b>{_escape(what)}</b>"
    bad = sum(1 for n in report.nodes if not n.finite)
    kept = sum(1 for n in report.nodes if n.kept)
    tail = f"{kept} of {count} values kept"
    if report.first_nonfinite is None:
        if bad:  # NaN from an input outside the trace (a NaN weight or feed)
            return f"{head}; {bad} hold NaN or Inf, none produced it from finite inputs. {tail}."
        return f"{head}; <span style='color:#2e7d32'>no NaN or Inf</span>. {tail}."
    first = report.node(report.first_nonfinite)
    return (
        f"{head}; <span style='color:{NAN_COLOUR}'>first NaN/Inf produced by "
        f"<b>{_escape(first.id)}</b> (op {_escape(first.op)})</span>, {bad} nodes hold NaN or Inf. {tail}."
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
