"""File > Export: one array to .npy (default), .npz or .csv, whole tensor or current slice.

The dialog is drivable without ``exec()``: set its fields, call ``accept()``; the
overwrite question goes through ``confirm_overwrite`` (replaceable), and the write
itself is ``core.export.export_array`` (atomic, dtype exact unless a cast is chosen).
Arrays from BACKGROUND_BYTES up are written off the GUI thread with a progress bar;
Cancel then stops the write and leaves no file.

A quantized tensor (two nodes: stored codes and dequantized float32 values) offers both: the
other view's node is read in the background when chosen (``ViewChoice.read``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QRadioButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.core.dtypes import numpy_dtype, short_name
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.export import AS_STORED, CAST_CHOICES, FORMATS, estimated_size, export_array
from tensor_inspector.core.nodes import Index
from tensor_inspector.core.slicing import format_index
from tensor_inspector.core.text import format_bytes, format_shape

BACKGROUND_BYTES = 64 << 20  # smaller exports take well under a second: no progress bar
VIEW_LABELS = {"raw": "as stored (raw codes)", "dequantized": "dequantized (float32)"}
_FILTERS = {"npy": "NumPy array (*.npy)", "npz": "NumPy archive (*.npz)", "csv": "CSV text (*.csv)"}


def _ask_overwrite(parent: QWidget, path: Path) -> bool:
    answer = QMessageBox.question(
        parent,
        "Overwrite?",
        f"{path.name} already exists. Replace it?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


@dataclass
class ViewChoice:
    """The views of a quantized tensor: view name -> node id, the one shown, and how to read
    another one's whole value (called in a background thread)."""

    ids: dict[str, str]
    current: str
    read: Callable[[str], np.ndarray]


class ExportDialog(QDialog):
    """Choose path, format, scope and dtype; shows the resulting shape and size."""

    exported = Signal(str)  # the path written
    _progress = Signal(float)  # emitted from the writing thread, delivered queued

    def __init__(
        self,
        array: np.ndarray,
        slice_index: Index = (),
        name: str = "array",
        directory: str | Path = "",
        parent: QWidget | None = None,
        views: ViewChoice | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle(f"Export {name}")
        self.setMinimumWidth(520)
        self._array = array
        self._slice_index = tuple(slice_index)
        self._views = views
        self._view_arrays: dict[str, np.ndarray] = {views.current: array} if views else {}
        self._name = name
        self.confirm_overwrite: Callable[[QWidget, Path], bool] = _ask_overwrite
        self.error: str = ""

        stem = name.replace("/", "_").replace(":", "_") or "array"
        self.path_edit = QLineEdit(str(Path(directory or Path.cwd()) / f"{stem}.npy"))
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)

        self.format_combo = QComboBox()
        for fmt in FORMATS:
            self.format_combo.addItem(_FILTERS[fmt], fmt)
        self.whole_radio = QRadioButton(f"Whole tensor  {format_shape(array.shape)}")
        sliced_shape = array[self._slice_index].shape if self._slice_index else array.shape
        slice_text = format_index(self._slice_index) if self._slice_index else ""
        self.slice_radio = QRadioButton(f"Current slice  [{slice_text}]  {format_shape(sliced_shape)}")
        self.slice_radio.setEnabled(bool(self._slice_index))
        self.whole_radio.setChecked(True)
        scope = QButtonGroup(self)
        scope.addButton(self.whole_radio)
        scope.addButton(self.slice_radio)
        scope_box = QVBoxLayout()
        scope_box.addWidget(self.whole_radio)
        scope_box.addWidget(self.slice_radio)

        self.dtype_combo = QComboBox()
        self.dtype_combo.addItem(f"As stored ({array.dtype.name}, exact)", AS_STORED)
        for name_ in CAST_CHOICES:
            if name_ != array.dtype.name:
                self.dtype_combo.addItem(f"{name_} ({short_name(name_)})", name_)
        self.view_combo = QComboBox()
        self.view_combo.setToolTip("A quantized tensor: its stored codes, or the values they stand for")
        for view, node_id in views.ids.items() if views else ():
            self.view_combo.addItem(f"{VIEW_LABELS.get(view, view)}  ({node_id})", view)
        if views is not None:
            self.view_combo.setCurrentIndex(max(self.view_combo.findData(views.current), 0))
        self.key_edit = QLineEdit(stem)
        self.key_edit.setToolTip("Member name inside the .npz archive")
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self._progress.connect(lambda f: self.progress.setValue(int(f * 1000)))
        self._runner = BackgroundRunner(self)

        form = QFormLayout()
        form.addRow("File:", path_row)
        form.addRow("Format:", self.format_combo)
        if views is not None:
            form.addRow("Values:", self.view_combo)
        form.addRow("Scope:", scope_box)
        form.addRow("DType:", self.dtype_combo)
        form.addRow("Name in .npz:", self.key_edit)
        form.addRow("Result:", self.info)
        form.addRow("", self.progress)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        layout.addWidget(buttons)

        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.path_edit.textChanged.connect(self._path_changed)
        for signal in (self.whole_radio.toggled, self.dtype_combo.currentIndexChanged):
            signal.connect(self._update_info)
        self.view_combo.currentIndexChanged.connect(self._view_changed)
        self._update_info()

    # -- field helpers (tests drive these) -------------------------------------------------
    def set_path(self, path: str | Path) -> None:
        self.path_edit.setText(str(path))

    def set_format(self, fmt: str) -> None:
        self.format_combo.setCurrentIndex(FORMATS.index(fmt))

    def set_scope(self, whole: bool) -> None:
        (self.whole_radio if whole else self.slice_radio).setChecked(True)

    def set_dtype(self, dtype: str) -> None:
        index = self.dtype_combo.findData(dtype)
        if index < 0:
            raise ValueError(f"no dtype choice {dtype!r}")
        self.dtype_combo.setCurrentIndex(index)

    def set_view(self, view: str) -> None:
        """Export the ``"raw"`` or ``"dequantized"`` view (read in the background if not shown)."""
        index = self.view_combo.findData(view)
        if index < 0:
            raise ValueError(f"no view {view!r}")
        self.view_combo.setCurrentIndex(index)

    def is_loading(self) -> bool:
        """True while the chosen view's value is being read."""
        return bool(self._runner.pending("view"))

    def fmt(self) -> str:
        return str(self.format_combo.currentData())

    def chosen_array(self) -> np.ndarray:
        """The array the current choices export (before the cast)."""
        if self.slice_radio.isChecked() and self._slice_index:
            return np.asarray(self._array[self._slice_index])
        return self._array

    # -- behaviour ------------------------------------------------------------------------
    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export to",
            self.path_edit.text(),
            ";;".join(_FILTERS[f] for f in FORMATS),
            _FILTERS[self.fmt()],
            QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.set_path(path)

    def _format_changed(self) -> None:
        path = Path(self.path_edit.text())
        wanted = "." + self.fmt()
        if path.suffix.lower() != wanted:
            self.path_edit.blockSignals(True)
            self.path_edit.setText(str(path.with_suffix(wanted)))
            self.path_edit.blockSignals(False)
        self._update_info()

    def _path_changed(self, text: str) -> None:
        suffix = Path(text).suffix.lower().lstrip(".")
        if suffix in FORMATS and suffix != self.fmt():
            self.format_combo.blockSignals(True)
            self.format_combo.setCurrentIndex(FORMATS.index(suffix))
            self.format_combo.blockSignals(False)
        self._update_info()

    def _view_changed(self) -> None:
        views, view = self._views, str(self.view_combo.currentData())
        if views is None:
            return
        if view in self._view_arrays:
            self._runner.cancel("view")
            self._use_view_array(self._view_arrays[view])
            return
        self.save_button.setEnabled(False)
        self.info.setText(f"Reading {views.ids[view]}…")
        self._runner.submit(
            "view",
            views.read,
            views.ids[view],
            on_done=lambda array: self._view_read(view, array),
            on_error=self._fail,
        )

    def _view_read(self, view: str, array: np.ndarray) -> None:
        self._view_arrays[view] = array
        if self.view_combo.currentData() == view:
            self._use_view_array(array)

    def _use_view_array(self, array: np.ndarray) -> None:
        """Export ``array`` (the other view) from now on; the slice applies where shapes agree."""
        self._array = array
        self.dtype_combo.setItemText(0, f"As stored ({array.dtype.name}, exact)")
        self.whole_radio.setText(f"Whole tensor  {format_shape(array.shape)}")
        fits = bool(self._slice_index) and array.shape == next(iter(self._view_arrays.values())).shape
        self.slice_radio.setEnabled(fits)
        if not fits:
            self.whole_radio.setChecked(True)
        self._update_info()

    def _update_info(self) -> None:
        if self.is_loading():
            return
        fmt = self.fmt()
        self.key_edit.setEnabled(fmt == "npz")
        array = self.chosen_array()
        dtype_choice = self.dtype_combo.currentData()
        dtype = array.dtype if dtype_choice == AS_STORED else numpy_dtype(dtype_choice)
        problem = ""
        if fmt == "csv" and array.ndim > 2:
            problem = (
                f"CSV holds at most 2-D data; this is {array.ndim}-D. Export the current slice or use .npy."
            )
        size = estimated_size(array.shape, dtype, fmt)
        approx = "≈ " if fmt == "csv" else ""
        text = f"{format_shape(array.shape)} {dtype.name}, {approx}{format_bytes(size)}"
        self.info.setText(f"<span style='color:#c0392b'>{problem}</span>" if problem else text)
        self.save_button.setEnabled(not problem)

    def accept(self) -> None:
        """Write the file; stays open with the reason shown if it cannot."""
        path = Path(self.path_edit.text()).expanduser()
        if self.is_loading():
            return
        if not path.name:
            self._fail("Choose a file name.")
            return
        if path.exists() and not self.confirm_overwrite(self, path):
            return
        array, fmt = self.chosen_array(), self.fmt()
        dtype, key = self.dtype_combo.currentData(), self.key_edit.text().strip() or "array"
        if array.nbytes >= BACKGROUND_BYTES:
            self._write_in_background(array, path, fmt, dtype, key)
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            export_array(array, path, fmt=fmt, dtype=dtype, key=key)
        except InspectorError as exc:
            self._fail(str(exc))
            return
        finally:
            QApplication.restoreOverrideCursor()
        self._done(path)

    def _write_in_background(self, array: np.ndarray, path: Path, fmt: str, dtype: str, key: str) -> None:
        self.save_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        self.info.setText(f"Writing {path.name}…")
        self._runner.submit(
            "export",
            export_array,
            array,
            path,
            fmt=fmt,
            dtype=dtype,
            key=key,
            progress=self._progress.emit,
            cancellable=True,
            on_done=lambda _: self._done(path),
            on_error=self._background_failed,
        )

    def is_writing(self) -> bool:
        return bool(self._runner.pending("export"))

    def _background_failed(self, text: str) -> None:
        self.progress.hide()
        self.save_button.setEnabled(True)
        self._fail(text)

    def _done(self, path: Path) -> None:
        self.error = ""
        self.exported.emit(str(path))
        super().accept()

    def reject(self) -> None:
        """Cancel: stops a running background write (its temp file is removed), then closes."""
        if self.is_writing():
            self._runner.cancel("export")
        super().reject()

    def _fail(self, text: str) -> None:
        self.error = text
        self.info.setText(f"<span style='color:#c0392b'>{text}</span>")
