"""Inputs for computed graph nodes: one row per feed, filled with zeros, ones, seeded
random normal values or a .npy file, with unknown dimensions asked for (default 1).

The panel produces a plain ``dict[str, np.ndarray]`` that the window hands to the
worker; choices are remembered per input name so re-selecting another node of the
same graph keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.core.dtypes import numpy_dtype, short_name
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import FeedSpec

FILL_CHOICES = ("zeros", "ones", "random normal", ".npy file")


@dataclass
class FeedChoice:
    """How one input is filled: plain data, so it can be saved or sent elsewhere."""

    fill: str = "zeros"
    shape: tuple[int, ...] = ()
    seed: int = 0
    npy_path: str = ""


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1, 28, 28"`` or ``"1x28x28"`` -> (1, 28, 28); an empty text is a scalar."""
    cleaned = text.replace("×", ",").replace("x", ",").replace("(", "").replace(")", "")
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InspectorError(f"{text!r} is not a shape: write sizes like 1, 28, 28.") from None
    if any(d < 0 for d in shape):
        raise InspectorError(f"{text!r} has a negative size.")
    return shape


def build_feed(spec: FeedSpec, choice: FeedChoice) -> np.ndarray:
    """The array for one input; dtype follows the spec exactly (bf16 included)."""
    dtype = numpy_dtype(spec.dtype)
    if choice.fill == ".npy file":
        if not choice.npy_path:
            raise InspectorError(f"Choose a .npy file for input {spec.name!r}.")
        try:
            value = np.load(choice.npy_path, allow_pickle=False)
        except Exception as exc:
            raise InspectorError(f"Could not read {choice.npy_path} for input {spec.name!r}: {exc}") from None
        if not isinstance(value, np.ndarray):
            raise InspectorError(f"{choice.npy_path} is not a single .npy array.")
        if spec.shape is not None and not _shape_fits(spec.shape, value.shape):
            raise InspectorError(
                f"{Path(choice.npy_path).name} has shape {value.shape} but input {spec.name!r} "
                f"needs {_spec_shape_text(spec.shape)}."
            )
        return value.astype(dtype, copy=False)
    shape = choice.shape
    if choice.fill == "ones":
        return np.ones(shape, dtype)
    if choice.fill == "random normal":
        values = np.random.default_rng(choice.seed).standard_normal(shape)
        if dtype.kind == "b":
            return values > 0
        return values.astype(dtype)
    return np.zeros(shape, dtype)


def _shape_fits(spec: tuple[int | None, ...], shape: tuple[int, ...]) -> bool:
    return len(spec) == len(shape) and all(s is None or s == d for s, d in zip(spec, shape))


def _spec_shape_text(shape: tuple[int | None, ...] | None) -> str:
    if shape is None:
        return "any shape"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def default_shape(spec: FeedSpec) -> tuple[int, ...]:
    return tuple(1 if d is None else int(d) for d in (spec.shape or ()))


class _FeedRow:
    """The widgets of one input row."""

    def __init__(self, panel: FeedsPanel, grid: QGridLayout, row: int, spec: FeedSpec, choice: FeedChoice):
        self.spec = spec
        name = QLabel(f"<b>{spec.name}</b>")
        name.setToolTip(spec.description or spec.name)
        dtype = QLabel(f"{short_name(spec.dtype)}  {_spec_shape_text(spec.shape)}")
        dtype.setStyleSheet("color: palette(mid);")
        self.shape = QLineEdit(", ".join(str(d) for d in choice.shape))
        self.shape.setPlaceholderText("scalar")
        unknown = spec.shape is None or any(d is None for d in spec.shape)
        self.shape.setEnabled(unknown)  # known shapes are fixed by the graph
        self.shape.setToolTip("Sizes for unknown (?) dimensions; default 1.")
        self.fill = QComboBox()
        self.fill.addItems(FILL_CHOICES)
        self.fill.setCurrentText(choice.fill)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(choice.seed)
        self.seed.setPrefix("seed ")
        self.path = QLineEdit(choice.npy_path)
        self.path.setPlaceholderText("input.npy")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(lambda: self._browse(panel))
        self.file_box = QWidget()
        fl = QHBoxLayout(self.file_box)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.path)
        fl.addWidget(browse)
        for col, widget in enumerate((name, dtype, self.shape, self.fill, self.seed, self.file_box)):
            grid.addWidget(widget, row, col)
        self.fill.currentTextChanged.connect(self._update)
        self._update()

    def _browse(self, panel: QWidget) -> None:
        path, _ = QFileDialog.getOpenFileName(panel, f"Input {self.spec.name}", "", "NumPy (*.npy)")
        if path:
            self.path.setText(path)

    def _update(self) -> None:
        fill = self.fill.currentText()
        self.seed.setVisible(fill == "random normal")
        self.file_box.setVisible(fill == ".npy file")
        self.shape.setVisible(fill != ".npy file")

    def choice(self) -> FeedChoice:
        shape = parse_shape(self.shape.text()) if self.shape.isEnabled() else default_shape(self.spec)
        if self.spec.shape is not None and not _shape_fits(self.spec.shape, shape):
            raise InspectorError(
                f"Input {self.spec.name!r} needs shape {_spec_shape_text(self.spec.shape)}, got {shape}."
            )
        return FeedChoice(self.fill.currentText(), shape, self.seed.value(), self.path.text().strip())


class FeedsPanel(QWidget):
    """Shown under the views when the selected node is computed and needs inputs."""

    evaluate_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[_FeedRow] = []
        self._memory: dict[str, FeedChoice] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        header = QHBoxLayout()
        title = QLabel("<b>Inputs</b> of the graph for the selected node")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Run the graph to the selected node with these inputs (Ctrl+Return)")
        self.evaluate_button.setShortcut("Ctrl+Return")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.evaluate_button)
        layout.addLayout(header)
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(5, 1)
        layout.addWidget(self._grid_host)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)

    def set_specs(self, specs: list[FeedSpec], used: dict[str, np.ndarray] | None = None) -> None:
        """Rebuild the rows; remembered choices win, then the shapes actually used."""
        self._remember()
        # a fresh grid each time: cheaper to reason about than removing cells one by one
        old = self._grid_host
        self._grid_host = QWidget()
        self._grid = QGridLayout(self._grid_host)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(5, 1)
        layout = self.layout()
        if layout is not None:
            layout.replaceWidget(old, self._grid_host)
        old.deleteLater()
        self._rows = []
        used = used or {}
        for i, spec in enumerate(specs):
            choice = self._memory.get(spec.name)
            if choice is None:
                shape = tuple(used[spec.name].shape) if spec.name in used else default_shape(spec)
                choice = FeedChoice(shape=shape)
            self._rows.append(_FeedRow(self, self._grid, i, spec, choice))
        self.error_label.setVisible(False)

    def specs(self) -> list[FeedSpec]:
        return [row.spec for row in self._rows]

    def row_widgets(self, name: str) -> _FeedRow:
        return next(row for row in self._rows if row.spec.name == name)

    def set_choice(self, name: str, choice: FeedChoice) -> None:
        row = self.row_widgets(name)
        row.fill.setCurrentText(choice.fill)
        row.shape.setText(", ".join(str(d) for d in choice.shape))
        row.seed.setValue(choice.seed)
        row.path.setText(choice.npy_path)

    def feeds(self) -> dict[str, np.ndarray]:
        """Arrays for every input; raises InspectorError with a sentence on bad input."""
        self._remember()
        return {row.spec.name: build_feed(row.spec, row.choice()) for row in self._rows}

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    def _remember(self) -> None:
        for row in self._rows:
            try:
                self._memory[row.spec.name] = row.choice()
            except InspectorError:
                pass
