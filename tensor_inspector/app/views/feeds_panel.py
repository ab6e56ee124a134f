"""Inputs for computed graph nodes: one row per input with its name, dtype and shape.

Each input is either left to the file's default (seeded normal values for floats,
zeros for integers, or what the file itself provides: example inputs, defaults in a
schema), typed as a JSON literal (``512``, ``[[1, 2]]``), or filled with zeros, ones,
seeded normal values or a .npy file. Typing into an input's value field is enough to
use the typed value; emptying it returns to the default. Every change emits
``inputs_changed`` (the window re-evaluates after a short pause).

The panel produces a plain ``dict[str, np.ndarray]`` of the inputs the user chose
(defaults are left out, the file supplies them); choices are remembered per file and
input name, so selecting another node of the same graph keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
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
from tensor_inspector.session.feeds import literal_feed, load_npy

DEFAULT = "default"
VALUE = "value"
FILL_CHOICES = (DEFAULT, VALUE, "zeros", "ones", "random normal", ".npy file")
_SHOWN_VALUES = 8  # a default this small is written out in the value field's placeholder


@dataclass
class FeedChoice:
    """How one input is filled: plain data, so it can be saved or sent elsewhere."""

    fill: str = DEFAULT
    shape: tuple[int, ...] = ()
    seed: int = 0
    npy_path: str = ""
    text: str = ""  # the JSON literal of a typed value


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


def _dtype(spec: FeedSpec) -> np.dtype:
    """The input's dtype; float32 when the file does not say (what frameworks make by default)."""
    return numpy_dtype(spec.dtype) if spec.dtype else np.dtype(np.float32)


def build_feed(spec: FeedSpec, choice: FeedChoice) -> np.ndarray:
    """The array for one input; dtype follows the spec exactly (bf16 included)."""
    dtype = _dtype(spec)
    if choice.fill == VALUE:
        if not choice.text.strip():
            raise InspectorError(f"Type a value for input {spec.name!r}.")
        value = literal_feed(spec, choice.text)
        if spec.shape is not None and not _shape_fits(spec.shape, value.shape):
            raise InspectorError(
                f"Input {spec.name!r} needs shape {_spec_shape_text(spec.shape)}, "
                f"the value typed has {_spec_shape_text(value.shape)}."
            )
        return value
    if choice.fill == ".npy file":
        if not choice.npy_path:
            raise InspectorError(f"Choose a .npy file for input {spec.name!r}.")
        try:
            value = load_npy(Path(choice.npy_path))
        except InspectorError as exc:
            raise InspectorError(f"Input {spec.name!r}: {exc}") from None
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
    if not shape:
        return "scalar"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def default_shape(spec: FeedSpec) -> tuple[int, ...]:
    return tuple(1 if d is None else int(d) for d in (spec.shape or ()))


def describe_default(value: np.ndarray) -> str:
    """What the file's default for an input is, short enough for a placeholder."""
    value = np.asarray(value)
    if value.size <= _SHOWN_VALUES and value.dtype.kind in "biuf":
        text = np.array2string(value, separator=", ", formatter={"float_kind": lambda v: f"{v:.4g}"})
        return f"default: {' '.join(text.split())}"
    shape = "×".join(str(d) for d in value.shape) or "scalar"
    return f"default: {shape} {short_name(value.dtype)}"


class _FeedRow:
    """The widgets of one input row: name, dtype and shape, how it is filled, the fill's fields."""

    def __init__(self, panel: FeedsPanel, grid: QGridLayout, row: int, spec: FeedSpec, choice: FeedChoice):
        self.spec = spec
        self._panel = panel
        name = QLabel(f"<b>{spec.name}</b>")
        name.setToolTip(spec.description or spec.name)
        dtype = QLabel(
            f"{short_name(spec.dtype) if spec.dtype else 'any dtype'}  {_spec_shape_text(spec.shape)}"
        )
        dtype.setStyleSheet("color: palette(mid);")
        dtype.setToolTip(spec.description or "")
        self.fill = QComboBox()
        self.fill.addItems(FILL_CHOICES)
        self.fill.setCurrentText(choice.fill)
        self.fill.setToolTip(
            "default: what the file gives when no input is chosen; value: a typed JSON literal"
        )
        self.value = QLineEdit(choice.text)
        self.value.setPlaceholderText("default — type a value, e.g. 7 or [[1, 2]]")
        self.value.setToolTip("A JSON literal: a number, true/false, or nested lists. Empty: the default.")
        self.value.setClearButtonEnabled(True)
        self.shape = QLineEdit(", ".join(str(d) for d in choice.shape))
        self.shape.setPlaceholderText("scalar")
        unknown = spec.shape is None or any(d is None for d in spec.shape)
        self.shape.setEnabled(unknown)  # known shapes are fixed by the graph
        self.shape.setToolTip("Sizes for unknown (?) dimensions; default 1.")
        self.shape.setMaximumWidth(140)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(choice.seed)
        self.seed.setPrefix("seed ")
        self.path = QLineEdit(choice.npy_path)
        self.path.setPlaceholderText("input.npy")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        fields = QWidget()
        box = QHBoxLayout(fields)
        box.setContentsMargins(0, 0, 0, 0)
        for field in (self.value, self.shape, self.seed, self.path, browse):
            box.addWidget(field)
        self._browse_button = browse
        for col, widget in enumerate((name, dtype, self.fill, fields)):
            grid.addWidget(widget, row, col)
        self._update()
        # connected after the initial values: building a row is not a change
        self.fill.currentTextChanged.connect(self._fill_changed)
        self.value.textEdited.connect(self._value_edited)
        self.value.textChanged.connect(lambda _text: self.value.setToolTip(self.value.text() or ""))
        self.shape.textEdited.connect(panel.inputs_changed)
        self.seed.valueChanged.connect(panel.inputs_changed)
        self.path.textChanged.connect(panel.inputs_changed)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._panel, f"Input {self.spec.name}", "", "NumPy (*.npy)")
        if path:
            self.path.setText(path)

    def _fill_changed(self) -> None:
        self._update()
        self._panel.inputs_changed.emit()

    def _value_edited(self, text: str) -> None:
        """Typing a value is choosing it; clearing the field goes back to the default."""
        fill = self.fill.currentText()
        self.fill.blockSignals(True)
        if text.strip() and fill == DEFAULT:
            self.fill.setCurrentText(VALUE)
        elif not text.strip() and fill == VALUE:
            self.fill.setCurrentText(DEFAULT)
        self.fill.blockSignals(False)
        self._update()
        self._panel.inputs_changed.emit()

    def _update(self) -> None:
        fill = self.fill.currentText()
        self.value.setVisible(fill in (DEFAULT, VALUE))
        self.shape.setVisible(fill in ("zeros", "ones", "random normal"))
        self.seed.setVisible(fill == "random normal")
        self.path.setVisible(fill == ".npy file")
        self._browse_button.setVisible(fill == ".npy file")

    def show_default(self, value: np.ndarray) -> None:
        self.value.setPlaceholderText(describe_default(value) + " — type to change")

    def choice(self) -> FeedChoice:
        fill = self.fill.currentText()
        shape = parse_shape(self.shape.text()) if self.shape.isEnabled() else default_shape(self.spec)
        if fill in ("zeros", "ones", "random normal") and self.spec.shape is not None:
            if not _shape_fits(self.spec.shape, shape):
                raise InspectorError(
                    f"Input {self.spec.name!r} needs shape {_spec_shape_text(self.spec.shape)}, got {shape}."
                )
        return FeedChoice(fill, shape, self.seed.value(), self.path.text().strip(), self.value.text().strip())


class FeedsPanel(QWidget):
    """Shown under the views when the selected node is computed and needs inputs."""

    evaluate_requested = Signal()
    inputs_changed = Signal()  # the user changed an input (typing, a fill, a seed, a file)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[_FeedRow] = []
        self._scope: object = None  # whose inputs these are (the file); choices are kept per scope
        self._memory: dict[object, dict[str, FeedChoice]] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        header = QHBoxLayout()
        title = QLabel("<b>Inputs</b> of the graph for the selected node")
        title.setToolTip("A changed input is evaluated after a short pause.")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("Run the graph to the selected node with these inputs (Ctrl+Return)")
        self.evaluate_button.setShortcut("Ctrl+Return")
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.evaluate_button)
        layout.addLayout(header)
        self._grid_host = QWidget()
        self._grid = self._new_grid(self._grid_host)
        layout.addWidget(self._grid_host)
        # the framework's reason can be long (a model's own raise text): wrapped, whole, selectable
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #c0392b;")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setVisible(False)
        layout.addWidget(self.error_label)

    @staticmethod
    def _new_grid(host: QWidget) -> QGridLayout:
        grid = QGridLayout(host)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnStretch(3, 1)
        return grid

    def set_specs(
        self, specs: list[FeedSpec], used: dict[str, np.ndarray] | None = None, scope: object = None
    ) -> None:
        """Show rows for ``specs`` of file ``scope``; remembered choices are restored.

        The same inputs of the same file keep their rows (and the field being typed in).
        """
        if scope == self._scope and list(specs) == self.specs():
            if used:
                self.show_defaults(used)
            return
        self._remember()
        self._scope = scope
        # a fresh grid each time: cheaper to reason about than removing cells one by one
        old = self._grid_host
        self._grid_host = QWidget()
        self._grid = self._new_grid(self._grid_host)
        layout = self.layout()
        if layout is not None:
            layout.replaceWidget(old, self._grid_host)
        old.deleteLater()
        self._rows = []
        memory = self._memory.get(scope, {})
        for i, spec in enumerate(specs):
            choice = memory.get(spec.name) or FeedChoice(shape=default_shape(spec))
            self._rows.append(_FeedRow(self, self._grid, i, spec, choice))
        if used:
            self.show_defaults(used)
        self.error_label.setVisible(False)

    def show_defaults(self, used: dict[str, np.ndarray]) -> None:
        """Say in each defaulted row what the file's default turned out to be."""
        for row in self._rows:
            if row.spec.name in used and row.fill.currentText() == DEFAULT:
                row.show_default(used[row.spec.name])

    def specs(self) -> list[FeedSpec]:
        return [row.spec for row in self._rows]

    def scope(self) -> object:
        return self._scope

    def row_widgets(self, name: str) -> _FeedRow:
        return next(row for row in self._rows if row.spec.name == name)

    def set_choice(self, name: str, choice: FeedChoice) -> None:
        row = self.row_widgets(name)
        row.value.setText(choice.text)
        row.shape.setText(", ".join(str(d) for d in choice.shape))
        row.seed.setValue(choice.seed)
        row.path.setText(choice.npy_path)
        row.fill.setCurrentText(choice.fill)

    def feeds(self) -> dict[str, np.ndarray]:
        """Arrays for the inputs the user chose (defaults left out); raises InspectorError on bad input."""
        self._remember()
        return {
            row.spec.name: build_feed(row.spec, choice)
            for row in self._rows
            if (choice := row.choice()).fill != DEFAULT
        }

    def defaulted(self) -> set[str]:
        """Inputs left to the file's default."""
        return {row.spec.name for row in self._rows if row.fill.currentText() == DEFAULT}

    def show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setToolTip(text)
        self.error_label.setVisible(bool(text))

    def error(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def _remember(self) -> None:
        memory = self._memory.setdefault(self._scope, {})
        for row in self._rows:
            try:
                memory[row.spec.name] = row.choice()
            except InspectorError:
                pass
