"""The window's editing: editable table cells, Replace from .npy, Undo/Redo, modified marks.

``EditModel`` (editing.py) owns the values and the undo stacks; this class connects
it to the window's widgets: it makes the table editable for stored tensors of
writable files, routes typed and pasted cells to the model, shows the edited copy
after every change (and the file's value again when a replace is undone), and keeps
the tree's marks, the title and the actions in step. Dialogs are attributes
(``choose_npy``, ``ask_lossy_cast``) so tests answer them without a modal loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.editing import EDITABLE_KINDS, EditModel
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Node, NodeKind
from tensor_inspector.core.number_format import value_kind
from tensor_inspector.session.feeds import load_npy
from tensor_inspector.session.importing import check_replacement, is_lossless_cast

if TYPE_CHECKING:
    from tensor_inspector.app.window.main_window import MainWindow


class EditFlow(QObject):
    """Editing for one ``MainWindow``; ``message`` carries every sentence shown to the user."""

    message = Signal(str)  # a refusal or a confirmation, also put in the status bar
    replaced = Signal(str)  # node id whose value was replaced from a .npy

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.model = EditModel(self)
        self.runner = BackgroundRunner(self, max_threads=1)
        # replaceable so tests never block on a modal dialog
        self.choose_npy: Callable[[Node], Path | None] = self._choose_npy_dialog
        self.ask_lossy_cast: Callable[[Node, np.dtype, np.dtype], bool] = self._ask_lossy_dialog
        self._view_connected = False

        self.undo_action = self.model.group.createUndoAction(window, "Undo")
        self.undo_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Undo))
        self.redo_action = self.model.group.createRedoAction(window, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.replace_action = QAction("Replace from .&npy…", window)
        self.replace_action.setStatusTip("Replace the selected tensor with the array of a .npy file")
        self.replace_action.triggered.connect(lambda: self.replace_from_npy())
        self.replace_action.setEnabled(False)

        self.model.changed.connect(self._on_changed)
        self.model.state_changed.connect(self.refresh_marks)
        self.message.connect(lambda text: window.statusBar().showMessage(text, 15000))
        window.tree.replace_requested.connect(lambda handle, node_id: self.replace_from_npy(handle, node_id))
        window.tree.replace_refusal = self.edit_refusal

    def actions(self) -> list[QAction]:
        return [self.undo_action, self.redo_action, self.replace_action]

    # -- what may be edited ---------------------------------------------------------------
    def edit_refusal(self, handle: int, node: Node | None) -> str | None:
        """Why ``node`` of ``handle`` cannot be edited or replaced (None: it can)."""
        opened = self.window.files.get(handle)
        if opened is None:
            return "This file has been closed."
        if not opened.writable:
            return f"{opened.format_name} files cannot be written back, so their values cannot be edited."
        if node is None or node.kind is not NodeKind.TENSOR:
            return "Only stored tensors can be edited (not groups or values computed by a graph)."
        if self.model.locked:
            return "A save is running; edit again when it has finished."
        return None

    def on_selection(self, handle: int | None, node: Node | None) -> None:
        """The tree's current row changed: Undo/Redo follow the file, Replace follows the node."""
        self.model.set_active(handle)
        refusal = self.edit_refusal(handle, node) if handle is not None else "Select a tensor."
        self.replace_action.setEnabled(refusal is None)
        self.replace_action.setToolTip(refusal or "Replace the selected tensor with a .npy file's array")

    def configure_table(self, handle: int, node: Node, array: np.ndarray) -> None:
        """Make the table editable when the shown value is a stored tensor of a writable file."""
        table = self.window.view.table.array_model
        if not self._view_connected:
            table.edit_rejected.connect(self.message)
            self._view_connected = True
        editable = (
            self.edit_refusal(handle, node) is None
            and value_kind(array.dtype) in EDITABLE_KINDS
            and _same_dtype(node, array)
        )
        table.set_editable(editable)
        table.set_edit_handler(partial(self._edit_cells, handle, node.id) if editable else None)

    def _edit_cells(self, handle: int, node_id: str, cells: list[tuple[tuple[int, ...], str]]) -> str | None:
        shown = self.window.view.array()
        if shown is None or self.window.shown() != (handle, node_id):
            return "The edited tensor is no longer shown."
        return self.model.edit_cells(handle, node_id, shown, cells)

    # -- Replace from .npy -------------------------------------------------------------------
    def replace_from_npy(
        self, handle: int | None = None, node_id: str | None = None, path: str | Path | None = None
    ) -> bool:
        """Load ``path`` (asked for when None) in the background and replace the node with it."""
        if handle is None or node_id is None:
            handle, node = self.window.tree.current()
        else:
            item = self.window.tree.model.item_for(handle, node_id)
            node = item.node if item is not None else None
        if handle is None or node is None:
            self.message.emit("Select a stored tensor to replace.")
            return False
        refusal = self.edit_refusal(handle, node)
        if refusal is not None:
            self.message.emit(f"{node.id} cannot be replaced: {refusal}")
            return False
        if path is None:
            path = self.choose_npy(node)
            if not path:
                return False
        path = Path(path)
        self.window.statusBar().showMessage(f"Reading {path.name}…")
        self.runner.submit(
            "import",
            load_npy,
            path,
            on_done=lambda value: self._on_npy_loaded(handle, node, path, value),
            on_error=lambda text: self.message.emit(f"{node.id} was not replaced: {text}"),
        )
        return True

    def _on_npy_loaded(self, handle: int, node: Node, path: Path, value: np.ndarray) -> None:
        if handle not in self.window.files:
            return
        if node.shape is not None and tuple(value.shape) != tuple(node.shape):
            self.message.emit(
                f"{node.id} was not replaced: {path.name} holds shape {list(value.shape)} "
                f"but the file stores {list(node.shape)}."
            )
            return
        target = numpy_dtype(node.dtype) if node.dtype else value.dtype
        lossy = value.dtype != target and not is_lossless_cast(value.dtype, target)
        if lossy and not self.ask_lossy_cast(node, value.dtype, target):
            self.message.emit(
                f"{node.id} was not replaced: casting {value.dtype.name} to {target.name} was declined."
            )
            return
        loaded = value.dtype
        try:
            value = check_replacement(value, node, allow_cast=lossy)
        except InspectorError as exc:
            self.message.emit(f"{node.id} was not replaced: {exc}")
            return
        refusal = self.model.replace(handle, node.id, value)
        if refusal:
            self.message.emit(refusal)
            return
        cast = f" (cast from {loaded.name} to {value.dtype.name})" if loaded != value.dtype else ""
        self.message.emit(f"Replaced {node.id} with {path.name}{cast}; save to write it to the file.")
        self.replaced.emit(node.id)

    def _choose_npy_dialog(self, node: Node) -> Path | None:
        from tensor_inspector.app.window.window_support import last_directory

        chosen, _ = QFileDialog.getOpenFileName(
            self.window,
            f"Replace {node.id} from .npy",
            last_directory(),
            "NumPy arrays (*.npy);;All files (*)",
        )
        return Path(chosen) if chosen else None

    def _ask_lossy_dialog(self, node: Node, source: np.dtype, target: np.dtype) -> bool:
        answer = QMessageBox.question(
            self.window,
            "Cast with possible loss?",
            f"The .npy holds {np.dtype(source).name} values but {node.id} stores {np.dtype(target).name}.\n"
            f"Casting {np.dtype(source).name} to {np.dtype(target).name} may lose precision or range. "
            "Replace anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes

    # -- after every change ---------------------------------------------------------------------
    def _on_changed(self, handle: int, node_id: str) -> None:
        """A value changed (edit, paste, replace, undo, redo): show it where the user can see it."""
        window = self.window
        copy = self.model.copy(handle, node_id)
        if window.shown() == (handle, node_id):
            if copy is not None:
                window.view.replace_array(copy)
            else:
                window.reevaluate()  # a replace was undone: the file's own value again
        else:
            window.select_node(node_id, handle)

    def refresh_marks(self, handle: int) -> None:
        """Tree marks, title and actions after the modified state of ``handle`` may have changed."""
        window = self.window
        if handle in window.files:
            window.tree.model.set_modified(
                handle, self.model.is_modified(handle), self.model.modified_nodes(handle)
            )
        window.update_edit_state()


def _same_dtype(node: Node, array: np.ndarray) -> bool:
    """Edits are saved as the node's dtype: a value shown in another dtype is not edited."""
    if node.dtype is None:
        return True
    try:
        return numpy_dtype(node.dtype) == array.dtype
    except Exception:  # a framework dtype numpy has no name for
        return False
