"""Compare with…: a file against another file, or a tensor against another tensor, value by value.

Entry points: the Tools menu (Ctrl+D) and the tree's context menu ask for the other
side (``pick_other``, replaceable in tests); dragging one node of the tree onto another
compares those two. The comparison runs in the session's reader through a
``CompareWorker``; its window shows progress, the pairs worst first, and the selected
pair's plane, read through the session like every other value. A file picked on disk
is opened like any other (it appears in the tree) and compared once it is open.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, Qt
from PySide6.QtGui import QDrag, QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QStatusBar, QWidget

from tensor_inspector.app.compare_worker import CompareSession, CompareWorker, Index, Outcome, PairSlice
from tensor_inspector.app.dialogs.compare_dialog import Choice, OpenFile, ask_other
from tensor_inspector.app.documents import Documents
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.views.tree_model import HANDLE_ROLE, NODE_ROLE
from tensor_inspector.app.window.actions import make_action
from tensor_inspector.app.window.open_controller import OpenController
from tensor_inspector.app.window.settings import last_directory
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.nodes import Node
from tensor_inspector.session.answers import Compared

NODE_MIME = "application/x-tensor-inspector-node"  # "handle\nnode id" of a dragged tree row

Picker = Callable[[int, "str | None"], "Choice | None"]


class CompareController(QObject):
    """Starts comparisons, feeds the comparison window, cancels, and shuts down with the window."""

    def __init__(
        self,
        parent: QWidget,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        opener: OpenController,
        status: QStatusBar,
    ) -> None:
        super().__init__(parent)
        self.parent_widget, self.documents, self.tree, self.opener, self.status = (
            parent, documents, tree, opener, status,
        )  # fmt: skip
        self.worker = CompareWorker(cast(CompareSession, worker.session), self)
        self.worker.progress.connect(self._on_progress)
        self.worker.compared.connect(self._on_compared)
        self.worker.compare_failed.connect(self._on_failed)
        self.worker.slice_ready.connect(lambda _rid, result: self._on_slice(result))
        self.worker.slice_failed.connect(lambda _rid, message: self._on_slice_failed(message))
        self.compare_action = make_action(
            parent, "&Compare with…", self.compare_with, "Ctrl+D", None,
            "Compare the selected file or tensor with another, value by value",
        )  # fmt: skip
        # asks for the other side of (handle, node or None); tests give the answer directly
        self.pick_other: Picker = self._ask
        self._view: Any = None  # CompareView, built on first use (pyqtgraph loads then)
        self._sides: tuple[int, int] | None = None  # handles of A and B of the shown comparison
        self._waiting: tuple[int, str | None, Path, str | None] | None = None  # A, file being opened, B node
        self._rid: int | None = None
        opener.file_opened.connect(self._on_file_opened)
        opener.open_error.connect(self._on_open_error)
        documents.document_removed.connect(self._on_removed)
        tree.compare_requested.connect(lambda handle, node: self.compare_with(handle, node))
        self.drops = NodeDrops(tree, self.compare)

    @property
    def view(self) -> Any:
        if self._view is None:
            from tensor_inspector.app.views.compare_view import CompareView

            self._view = CompareView(self.parent_widget)
            self._view.cancel_requested.connect(self.cancel)
            self._view.slice_wanted.connect(self._read_slice)
        return self._view

    # -- starting ------------------------------------------------------------------------------
    def compare_with(self, handle: int | None = None, node: Node | str | None = None) -> None:
        """Compare the given (or selected) file or tensor with one the user picks."""
        if handle is None:
            handle, current = self.tree.current()
            node = current
            if handle is None:
                only = self.documents.only()
                handle = only.handle if only is not None else None
        if handle is None or handle not in self.documents:
            self.status.showMessage("Open a file first, then compare it with another (Ctrl+D).", 8000)
            return
        node_id = (
            node.id if isinstance(node, Node) and node.has_value else node if isinstance(node, str) else None
        )
        choice = self.pick_other(handle, node_id)
        if choice is None:
            return
        if choice.handle is not None:
            self.compare(handle, choice.handle, node_id, choice.node)
        elif choice.path is not None:
            self.compare_path(handle, node_id, choice.path, choice.node)

    def compare(
        self, handle_a: int, handle_b: int, node_a: str | None = None, node_b: str | None = None
    ) -> int:
        """Compare two open files, or tensors of them (one named: its partner is found by name)."""
        doc_a, doc_b = self.documents[handle_a], self.documents[handle_b]
        self._sides = (handle_a, handle_b)
        view = self.view
        view.start(_side(doc_a.name, node_a), _side(doc_b.name, node_b))
        view.show()
        view.raise_()
        self._rid = self.worker.compare(doc_a.info, doc_b.info, node_a, node_b)
        self.status.showMessage(f"Comparing {doc_a.name} with {doc_b.name}…")
        return self._rid

    def compare_path(self, handle_a: int, node_a: str | None, path: Path, node_b: str | None = None) -> None:
        """Compare with a file on disk: opened first (into the tree) unless it is open already."""
        already = self.documents.find_path(path)
        if already is not None:
            self.compare(handle_a, already.handle, node_a, node_b)
            return
        self._waiting = (handle_a, node_a, Path(path).absolute(), node_b)
        self.opener.open_paths([path])

    def _on_file_opened(self, handle: int) -> None:
        waiting, document = self._waiting, self.documents.get(handle)
        if waiting is None or document is None or document.path.absolute() != waiting[2]:
            return
        self._waiting = None
        if waiting[0] in self.documents:
            self.compare(waiting[0], handle, waiting[1], waiting[3])

    def _on_open_error(self, path: str, _message: str) -> None:
        if self._waiting is not None and Path(path).absolute() == self._waiting[2]:
            self._waiting = None

    def _ask(self, handle: int, node_id: str | None) -> Choice | None:
        document = self.documents[handle]
        files = [OpenFile(d.handle, d.name, d.nodes) for d in self.documents if d.handle != handle or node_id]
        what = f"{node_id} of {document.name}" if node_id else document.name
        return ask_other(self.parent_widget, files, what, node_id is not None, last_directory())

    # -- answers ---------------------------------------------------------------------------------
    def _on_progress(self, rid: int, pair: int, pairs: int, done: int, total: int, label: str) -> None:
        if rid == self._rid:
            self.view.show_progress(pair, pairs, done, total, label)

    def _on_compared(self, rid: int, outcome: Outcome) -> None:
        if rid != self._rid:
            return
        self._rid = None
        self.view.show_outcome(outcome)
        self.status.showMessage(self.view.progress_label.text(), 10000)

    def _on_failed(self, rid: int, message: str) -> None:
        if rid != self._rid:
            return
        self._rid = None
        self.view.show_failure(message)
        self.status.showMessage(message, 15000)

    def _read_slice(self, pair: Compared, index: Index, rows: int | None, cols: int | None) -> None:
        if self._sides is not None:
            self.worker.read_slice(self._sides[0], self._sides[1], pair, index, rows, cols)

    def _on_slice(self, result: PairSlice) -> None:
        if self._view is not None:
            self._view.show_slice(result)

    def _on_slice_failed(self, message: str) -> None:
        if self._view is not None and message != "Cancelled.":
            self._view.show_slice_failure(message)

    # -- stopping --------------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._rid is not None

    def cancel(self) -> None:
        """Esc or Cancel in the comparison window: the pairs compared so far are shown."""
        self.worker.cancel()

    def _on_removed(self, handle: int) -> None:
        if self._sides is not None and handle in self._sides:
            self.cancel()

    def shutdown(self) -> None:
        """The window closes: stop comparing (the session's shutdown then frees the threads)."""
        self._rid = None
        self.worker.shutdown()
        if self._view is not None:
            self._view.cancel_requested.disconnect(self.cancel)
            self._view.close()


def _side(file_name: str, node: str | None) -> str:
    return f"{node} in {file_name}" if node else file_name


class NodeDrops(QObject):
    """Drag a tensor of the tree onto another: compare the two (an event filter on the tree)."""

    def __init__(self, tree: NodeTree, compare: Callable[[int, int, str, str], object]) -> None:
        super().__init__(tree)
        self.tree, self.compare = tree, compare
        self._press: tuple[QPoint, int, Node] | None = None
        viewport = tree.view.viewport()
        viewport.setAcceptDrops(True)
        viewport.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress:
            mouse = cast(QMouseEvent, event)
            found = self._node_at(mouse.position().toPoint())
            left = mouse.button() == Qt.MouseButton.LeftButton
            self._press = (mouse.position().toPoint(), *found) if left and found is not None else None
        elif kind == QEvent.Type.MouseMove and self._press is not None:
            mouse = cast(QMouseEvent, event)
            moved = (mouse.position().toPoint() - self._press[0]).manhattanLength()
            if mouse.buttons() & Qt.MouseButton.LeftButton and moved >= QApplication.startDragDistance():
                _, handle, node = self._press
                self._press = None
                drag = QDrag(self.tree.view)
                drag.setMimeData(node_mime(handle, node.id))
                drag.exec(Qt.DropAction.CopyAction)
                return True
        elif kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            drop = cast(QDropEvent, event)
            if drop.mimeData().hasFormat(NODE_MIME):
                target = self._node_at(drop.position().toPoint())
                if target is not None and (target[0], target[1].id) != _dragged(drop.mimeData()):
                    drop.acceptProposedAction()
                else:
                    drop.ignore()
                return True
        elif kind == QEvent.Type.Drop:
            drop = cast(QDropEvent, event)
            dragged = _dragged(drop.mimeData())
            target = self._node_at(drop.position().toPoint())
            if dragged is not None and target is not None:
                drop.acceptProposedAction()
                self.compare(dragged[0], target[0], dragged[1], target[1].id)
                return True
        return False

    def _node_at(self, pos: QPoint) -> tuple[int, Node] | None:
        index = self.tree.view.indexAt(pos)
        if not index.isValid():
            return None
        handle, node = index.data(HANDLE_ROLE), index.data(NODE_ROLE)
        return (handle, node) if node is not None and node.has_value else None


def node_mime(handle: int, node_id: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(NODE_MIME, f"{handle}\n{node_id}".encode())
    return mime


def _dragged(mime: QMimeData) -> Any:
    if not mime.hasFormat(NODE_MIME):
        return None
    handle, _, node_id = bytes(mime.data(NODE_MIME).data()).decode().partition("\n")
    return int(handle), node_id
