"""Choose the displayed plane of an N-D array: row axis, column axis, a position on every other axis.

Combos and the Transpose button apply at once; sliders are debounced (a
single-shot timer restarted on every move) so dragging through 512 positions of
a memory-mapped tensor reads only where the user stops. Spin boxes and sliders
mirror each other.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from tensor_inspector.core.nodes import Index
from tensor_inspector.core.slicing import view_index

DEBOUNCE_MS = 60


class AxesSelector(QWidget):
    """Hidden for rank < 2; for rank 2 only the Transpose button matters."""

    changed = Signal()  # the plane changed (axes, a position, transpose)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shape: tuple[int, ...] = ()
        self.row_axis, self.col_axis = 0, 1
        self.positions: list[int] = []
        self.sliders: dict[int, QSlider] = {}
        self.spins: dict[int, QSpinBox] = {}
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.changed)

        self.row_combo = QComboBox()
        self.col_combo = QComboBox()
        self.row_combo.setToolTip("Axis shown as table rows / image y")
        self.col_combo.setToolTip("Axis shown as table columns / image x")
        self.transpose_button = QPushButton("Transpose")
        self.transpose_button.setToolTip("Swap row and column axes (Ctrl+T)")
        self.transpose_button.setShortcut("Ctrl+T")
        self.row_combo.activated.connect(self._on_row_combo)
        self.col_combo.activated.connect(self._on_col_combo)
        self.transpose_button.clicked.connect(self.transpose)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("rows:"))
        top.addWidget(self.row_combo)
        top.addWidget(QLabel("columns:"))
        top.addWidget(self.col_combo)
        top.addWidget(self.transpose_button)
        top.addStretch(1)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(6)
        self._grid.setVerticalSpacing(2)
        outer = QGridLayout(self)
        outer.setContentsMargins(4, 2, 4, 2)
        outer.addLayout(top, 0, 0)
        outer.addLayout(self._grid, 1, 0)
        self.setVisible(False)

    # -- state ---------------------------------------------------------------------------
    def set_shape(self, shape: tuple[int, ...]) -> None:
        """A new array: default to the last two axes, position 0 everywhere (rows then columns)."""
        self._shape = tuple(int(s) for s in shape)
        ndim = len(self._shape)
        self.row_axis, self.col_axis = (max(ndim - 2, 0), max(ndim - 1, 0))
        self.positions = [0] * ndim
        self._debounce.stop()
        self._rebuild()

    def shape(self) -> tuple[int, ...]:
        return self._shape

    def current_index(self) -> Index:
        """Ints for the slider axes, slice(None) for the displayed ones; () for rank <= 2."""
        return view_index(len(self._shape), self.row_axis, self.col_axis, self.positions)

    def set_axes(self, row_axis: int, col_axis: int) -> None:
        """Display ``row_axis`` as rows and ``col_axis`` as columns (emits changed if different)."""
        ndim = len(self._shape)
        if ndim < 2 or row_axis == col_axis or not (0 <= row_axis < ndim and 0 <= col_axis < ndim):
            raise ValueError(f"Axes ({row_axis}, {col_axis}) are not two distinct axes of a {ndim}-D array.")
        if (row_axis, col_axis) == (self.row_axis, self.col_axis):
            return
        self.row_axis, self.col_axis = row_axis, col_axis
        self._rebuild()
        self.changed.emit()

    def set_position(self, axis: int, value: int) -> None:
        """Move the slider of ``axis`` (emits changed after the debounce)."""
        if axis in self.sliders:
            self.sliders[axis].setValue(value)

    def transpose(self) -> None:
        if len(self._shape) >= 2:
            self.set_axes(self.col_axis, self.row_axis)

    def flush(self) -> None:
        """Emit a pending debounced change now (tests, and before reading the slice)."""
        if self._debounce.isActive():
            self._debounce.stop()
            self.changed.emit()

    # -- widgets -------------------------------------------------------------------------
    def _axis_label(self, axis: int) -> str:
        return f"axis {axis} ({self._shape[axis]})"

    def _rebuild(self) -> None:
        ndim = len(self._shape)
        self.setVisible(ndim >= 2)
        for combo, current in ((self.row_combo, self.row_axis), (self.col_combo, self.col_axis)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([self._axis_label(a) for a in range(ndim)])
            combo.setCurrentIndex(current)
            combo.blockSignals(False)
        self.row_combo.setVisible(ndim > 2)
        self.col_combo.setVisible(ndim > 2)
        for label in self.findChildren(QLabel):
            if label.text() in ("rows:", "columns:"):
                label.setVisible(ndim > 2)
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()  # deleteLater alone leaves it painted until the loop runs
                widget.setParent(None)
                widget.deleteLater()
        self.sliders.clear()
        self.spins.clear()
        row = 0
        for axis in range(ndim):
            if axis in (self.row_axis, self.col_axis):
                continue
            size = self._shape[axis]
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, max(size - 1, 0))
            slider.setValue(self.positions[axis])
            slider.setPageStep(max(1, size // 10))
            spin = QSpinBox()
            spin.setRange(0, max(size - 1, 0))
            spin.setValue(self.positions[axis])
            spin.setKeyboardTracking(False)
            slider.valueChanged.connect(lambda v, a=axis: self._on_slider(a, v))
            spin.valueChanged.connect(lambda v, a=axis: self._on_spin(a, v))
            self._grid.addWidget(QLabel(self._axis_label(axis)), row, 0)
            self._grid.addWidget(slider, row, 1)
            self._grid.addWidget(spin, row, 2)
            self.sliders[axis], self.spins[axis] = slider, spin
            row += 1
        self._grid.setColumnStretch(1, 1)
        layout = self.layout()
        if layout is not None:
            layout.activate()  # sizes change with the number of sliders: relayout now
        self.updateGeometry()

    def _on_slider(self, axis: int, value: int) -> None:
        spin = self.spins[axis]
        if spin.value() != value:
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        if self.positions[axis] != value:
            self.positions[axis] = value
            self._debounce.start()

    def _on_spin(self, axis: int, value: int) -> None:
        slider = self.sliders[axis]
        if slider.value() != value:
            slider.setValue(value)  # _on_slider records it and debounces

    def _on_row_combo(self, axis: int) -> None:
        if axis == self.col_axis:
            self.set_axes(axis, self.row_axis)  # picking the column axis swaps them
        else:
            self.set_axes(axis, self.col_axis)

    def _on_col_combo(self, axis: int) -> None:
        if axis == self.row_axis:
            self.set_axes(self.col_axis, axis)
        else:
            self.set_axes(self.row_axis, axis)
