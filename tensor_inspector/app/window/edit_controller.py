"""Editing from the window: editable table cells, paste, Replace from .npy, Undo/Redo.

The values and the undo stacks belong to the documents (documents.py); this
controller makes the table editable for stored tensors of writable files, hands
typed and pasted cells to the shown node's document, loads .npy replacements in the
background, and keeps Edit > Undo/Redo on the selected file's stack. Dialogs are
attributes (``choose_npy``, ``ask_lossy_cast``) so tests answer them without a
modal loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStatusBar, QWidget

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.documents import Documents
from tensor_inspector.app.editing import EDITABLE_KINDS, Cells
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.settings import last_directory
from tensor_inspector.core.dtypes import numpy_dtype
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import Node, NodeKind
from tensor_inspector.core.number_format import value_kind
from tensor_inspector.session.feeds import load_npy
from tensor_inspector.session.importing import check_replacement, is_lossless_cast

if TYPE_CHECKING:
    from tensor_inspector.app.views.array_view import ArrayView


class EditController(QObject):
    """Edits for one window; ``message`` carries every sentence shown to the user."""

    message = Signal(str)  # a refusal or a confirmation, also put in the status bar
    replaced = Signal(str)  # node id whose value was replaced from a .npy

    def __init__(
        self,
        parent: QWidget,
        documents: Documents,
        tree: NodeTree,
        view: Callable[[], ArrayView],
        shown: Callable[[], tuple[int, str] | None],
        status: QStatusBar,
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.documents, self.tree, self.view, self.shown, self.status = documents, tree, view, shown, status
        self.runner = BackgroundRunner(self, max_threads=1)
        # replaceable so tests never block on a modal dialog
        self.choose_npy: Callable[[Node], Path | None] = self._choose_npy_dialog
        self.ask_lossy_cast: Callable[[Node, np.dtype, np.dtype], bool] = self._ask_lossy_dialog
        self._table_connected = False

        self.undo_action = documents.group.createUndoAction(parent, "Undo")
        self.undo_action.setShortcuts(QKeySequence.keyBindings(QKeySequence.StandardKey.Undo))
        self.redo_action = documents.group.createRedoAction(parent, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.replace_action = QAction("Replace from .&npy…", parent)
        self.replace_action.setStatusTip("Replace the selected tensor with the array of a .npy file")
        self.replace_action.triggered.connect(lambda _checked=False: self.replace_from_npy())
        self.replace_action.setEnabled(False)

        self.message.connect(lambda text: status.showMessage(text, 15000))
        tree.node_selected.connect(self.on_selection)
        tree.replace_requested.connect(lambda handle, node_id: self.replace_from_npy(handle, node_id))
        tree.replace_refusal = self.edit_refusal
        documents.modified_changed.connect(self._on_modified_changed)

    def actions(self) -> list[QAction]:
        return [self.undo_action, self.redo_action, self.replace_action]

    # -- what may be edited ---------------------------------------------------------------
    def edit_refusal(self, handle: int, node: Node | None) -> str | None:
        """Why ``node`` of ``handle`` cannot be edited or replaced (None: it can)."""
        document = self.documents.get(handle)
        if document is None:
            return "This file has been closed."
        if not document.writable:
            return f"{document.format_name} files cannot be written back, so their values cannot be edited."
        if node is None or node.kind is not NodeKind.TENSOR:
            return "Only stored tensors can be edited (not groups or values computed by a graph)."
        if document.saving:
            return "A save is running; edit again when it has finished."
        return None

    def on_selection(self, handle: int | None, node: Node | None) -> None:
        """The tree's current row changed: Undo/Redo follow the file, Replace follows the node."""
        self.documents.set_active(handle)
        refusal = self.edit_refusal(handle, node) if handle is not None else "Select a tensor."
        self.replace_action.setEnabled(refusal is None)
        self.replace_action.setToolTip(refusal or "Replace the selected tensor with a .npy file's array")

    def _on_modified_changed(self, handle: int) -> None:
        if handle == self.tree.current_handle():  # a save started or ended: Replace follows
            self.on_selection(*self.tree.current())

    def configure_table(self, handle: int, node: Node, array: np.ndarray) -> None:
        """Make the table editable when the shown value is a stored tensor of a writable file."""
        table = self.view().table.array_model
        if not self._table_connected:
            table.edit_rejected.connect(self.message)
            self._table_connected = True
        editable = (
            self.edit_refusal(handle, node) is None
            and value_kind(array.dtype) in EDITABLE_KINDS
            and _same_dtype(node, array)
        )
        table.set_editable(editable)
        table.set_edit_handler(partial(self._edit_cells, handle, node.id) if editable else None)

    def _edit_cells(self, handle: int, node_id: str, cells: Cells) -> str | None:
        shown = self.view().array()
        document = self.documents.get(handle)
        if shown is None or document is None or self.shown() != (handle, node_id):
            return "The edited tensor is no longer shown."
        return document.edit_cells(node_id, shown, cells)

    # -- Replace from .npy -------------------------------------------------------------------
    def replace_from_npy(
        self, handle: int | None = None, node_id: str | None = None, path: str | Path | None = None
    ) -> bool:
        """Load ``path`` (asked for when None) in the background and replace the node with it."""
        node: Node | None
        if handle is None or node_id is None:
            handle, node = self.tree.current()
        else:
            document = self.documents.get(handle)
            node = document.node(node_id) if document is not None else None
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
        chosen, target = Path(path), node
        self.status.showMessage(f"Reading {chosen.name}…")
        self.runner.submit(
            "import",
            load_npy,
            chosen,
            on_done=lambda value: self._on_npy_loaded(handle, target, chosen, value),
            on_error=lambda text: self.message.emit(f"{target.id} was not replaced: {text}"),
        )
        return True

    def _on_npy_loaded(self, handle: int, node: Node, path: Path, value: np.ndarray) -> None:
        document = self.documents.get(handle)
        if document is None:
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
        refusal = document.replace(node.id, value)
        if refusal:
            self.message.emit(refusal)
            return
        cast = f" (cast from {loaded.name} to {value.dtype.name})" if loaded != value.dtype else ""
        self.message.emit(f"Replaced {node.id} with {path.name}{cast}; save to write it to the file.")
        self.replaced.emit(node.id)

    def _choose_npy_dialog(self, node: Node) -> Path | None:
        chosen, _ = QFileDialog.getOpenFileName(
            self.parent_widget,
            f"Replace {node.id} from .npy",
            last_directory(),
            "NumPy arrays (*.npy);;All files (*)",
        )
        return Path(chosen) if chosen else None

    def _ask_lossy_dialog(self, node: Node, source: np.dtype, target: np.dtype) -> bool:
        source_name, target_name = np.dtype(source).name, np.dtype(target).name
        answer = QMessageBox.question(
            self.parent_widget,
            "Cast with possible loss?",
            f"The .npy holds {source_name} values but {node.id} stores {target_name}.\n"
            f"Casting {source_name} to {target_name} may lose precision or range. Replace anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes


def _same_dtype(node: Node, array: np.ndarray) -> bool:
    """Edits are saved as the node's dtype: a value shown in another dtype is not edited."""
    if node.dtype is None:
        return True
    try:
        return numpy_dtype(node.dtype) == array.dtype
    except Exception:  # a framework dtype numpy has no name for
        return False
