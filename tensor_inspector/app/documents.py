"""The open files: one ``Document`` per file, in one ``Documents`` registry the whole window reads.

A document is everything the window knows about an open file: what the session said
about it (``FileInfo``: path, format, nodes, metadata), whether the user trusted it,
the inputs they chose for its graph, its undo stack and the edited copies of its
tensors, whether a save is writing it, and its last trace. The tree, the views and the window's
controllers read documents and listen to the registry's signals; nothing else keeps
state per file, so closing one file, saving another or a reader restart in the
session never leaves two places disagreeing.

Which nodes differ from the file on disk is counted per node (+1 on redo, -1 on
undo, reset by Save); when the clean state can no longer be reached every copied
node counts as modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoGroup, QUndoStack

from tensor_inspector.app import editing
from tensor_inspector.core.nodes import Node
from tensor_inspector.session.answers import FileInfo, TraceReport


class Document:
    """One open file. Created and removed only by ``Documents``; edited through its methods."""

    def __init__(self, registry: Documents, info: FileInfo, order: int, trusted: bool) -> None:
        self._registry = registry
        self.handle = info.handle
        self.info = info
        self.order = order  # the open request's sequence: the tree lists files in the order asked for
        self.trusted = trusted
        self.feeds: dict[str, np.ndarray] = {}  # inputs the user chose for the file's graph
        self.stack = QUndoStack(registry.group)
        self.copies: dict[str, np.ndarray] = {}
        self.changes: dict[str, int] = {}
        self.saving = False  # the copies are being written: they must not change meanwhile
        self.trace: TraceReport | None = None  # the last trace; a reopened file (saved) drops it
        self._nodes: dict[str, Node] | None = None

    # -- what the file is ------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """Where the file is now: Save As moves the document to its new path."""
        return Path(self.info.path)

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)

    @property
    def format_name(self) -> str:
        return self.info.format_name

    @property
    def writable(self) -> bool:
        return bool(self.info.writable)

    @property
    def nodes(self) -> list[Node]:
        return list(self.info.nodes)

    def node(self, node_id: str) -> Node | None:
        if self._nodes is None:
            self._nodes = {node.id: node for node in self.info.nodes}
        return self._nodes.get(node_id)

    def value_count(self) -> int:
        return sum(1 for node in self.info.nodes if node.has_value)

    # -- edits -------------------------------------------------------------------------------
    def is_modified(self) -> bool:
        return not self.stack.isClean()

    def modified_nodes(self) -> set[str]:
        if self.stack.isClean():
            return set()
        if self.stack.cleanIndex() < 0:  # the saved state was discarded: compare nothing, trust nothing
            return set(self.copies)
        return {node_id for node_id, count in self.changes.items() if count}

    def copy(self, node_id: str) -> np.ndarray | None:
        """The edited copy of ``node_id`` (None: the file's own value is current)."""
        return self.copies.get(node_id)

    def replacements(self) -> dict[str, np.ndarray]:
        """What Save writes: the edited copy of every node that differs from the file."""
        return {node_id: self.copies[node_id] for node_id in self.modified_nodes() if node_id in self.copies}

    def edit_cells(self, node_id: str, shown: np.ndarray, cells: editing.Cells) -> str | None:
        """Typed or pasted cells as one undo step; the sentence saying why not, or None."""
        return editing.edit_cells(self, node_id, shown, cells)

    def replace(self, node_id: str, value: np.ndarray) -> str | None:
        """Replace a whole value (shape and dtype already checked) as one undo step."""
        return editing.replace_value(self, node_id, value)

    # -- called by the undo commands -------------------------------------------------------
    def write_cells(
        self, node_id: str, indices: list[tuple[int, ...]], values: np.ndarray, delta: int
    ) -> None:
        array = self.copies[node_id]
        if array.ndim == 0:
            array[()] = values[-1]
        else:
            array[tuple(np.array(axis) for axis in zip(*indices))] = values
        self._count(node_id, delta)
        self.announce(node_id)

    def set_copy(self, node_id: str, array: np.ndarray | None, delta: int, announce: bool = True) -> None:
        if array is None:
            self.copies.pop(node_id, None)
        else:
            self.copies[node_id] = array
        self._count(node_id, delta)
        if announce:
            self.announce(node_id)

    def announce(self, node_id: str) -> None:
        """Tell the registry's listeners that ``node_id``'s value changed."""
        self._registry.edited.emit(self.handle, node_id)

    def _count(self, node_id: str, delta: int) -> None:
        if delta:
            self.changes[node_id] = self.changes.get(node_id, 0) + delta


class Documents(QObject):
    """Every open file by handle. Undo/Redo follow the active document through one undo group."""

    document_added = Signal(int)  # handle
    document_removed = Signal(int)  # handle (no longer in the registry)
    document_changed = Signal(int)  # handle: its FileInfo was replaced (saved, saved as, reopened)
    edited = Signal(int, str)  # handle, node id: a value changed (edit, paste, replace, undo, redo)
    modified_changed = Signal(int)  # handle: unsaved state, undo position or saving changed
    feeds_changed = Signal(int)  # handle: the inputs chosen for its graph changed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group = QUndoGroup(self)
        self._documents: dict[int, Document] = {}
        self._active: int | None = None

    # -- the registry -----------------------------------------------------------------------
    def add(self, info: FileInfo, order: int | None = None, trusted: bool = False) -> Document:
        """Register a freshly opened file (``trusted``: the user vouched for it)."""
        trusted = bool(getattr(info, "trusted", False)) or trusted
        document = Document(self, info, info.handle if order is None else order, trusted)
        # bound slots (not lambdas): Qt drops them when this registry goes away
        document.stack.cleanChanged.connect(self._on_stack_changed)
        document.stack.indexChanged.connect(self._on_stack_changed)
        self._documents[document.handle] = document
        if document.handle == self._active:
            self.set_active(document.handle)
        self.document_added.emit(document.handle)
        return document

    def remove(self, handle: int) -> Document | None:
        document = self._documents.pop(handle, None)
        if document is None:
            return None
        self.group.removeStack(document.stack)
        document.stack.deleteLater()
        self.document_removed.emit(handle)
        return document

    def get(self, handle: int | None) -> Document | None:
        return self._documents.get(handle) if handle is not None else None

    def __getitem__(self, handle: int) -> Document:
        return self._documents[handle]

    def __contains__(self, handle: object) -> bool:
        return handle in self._documents

    def __iter__(self) -> Iterator[Document]:
        return iter(list(self._documents.values()))

    def __len__(self) -> int:
        return len(self._documents)

    def handles(self) -> list[int]:
        return list(self._documents)

    def infos(self) -> dict[int, FileInfo]:
        return {handle: document.info for handle, document in self._documents.items()}

    def only(self) -> Document | None:
        """The document when exactly one file is open (menus act on it without a selection)."""
        return next(iter(self._documents.values())) if len(self._documents) == 1 else None

    def find_path(self, path: str | Path) -> Document | None:
        wanted = Path(path).absolute()
        return next((d for d in self._documents.values() if d.path.absolute() == wanted), None)

    # -- changes of a file --------------------------------------------------------------------
    def update_info(self, info: FileInfo) -> None:
        """The file was reopened under the same handle (after Save, Save As or a reader restart)."""
        document = self._documents.get(info.handle)
        if document is None:
            return
        document.info = info
        document._nodes = None
        document.trace = None  # the file may have changed: its trace no longer holds
        document.trusted = document.trusted or bool(getattr(info, "trusted", False))
        self.document_changed.emit(info.handle)

    def set_writable(self, handle: int, writable: bool) -> None:
        """Override whether ``handle`` may be written (a format without a writer, a read-only file)."""
        document = self._documents.get(handle)
        if document is not None:
            self.update_info(replace(document.info, writable=writable))

    def set_trusted(self, handle: int) -> None:
        document = self._documents.get(handle)
        if document is not None:
            document.trusted = True

    def set_feeds(self, handle: int, feeds: dict[str, np.ndarray]) -> None:
        document = self._documents.get(handle)
        if document is not None:
            document.feeds = dict(feeds)
            self.feeds_changed.emit(handle)

    def set_saving(self, handle: int, saving: bool) -> None:
        """While a save writes ``handle``'s copies, its edits and its Undo/Redo are refused."""
        document = self._documents.get(handle)
        if document is None:
            return
        document.saving = saving
        self.set_active(self._active)
        self.modified_changed.emit(handle)

    def mark_saved(self, handle: int) -> None:
        """The file on disk now holds every copy: nothing is modified, undo stays possible."""
        document = self._documents.get(handle)
        if document is not None:
            document.changes.clear()
            document.stack.setClean()
            self.modified_changed.emit(handle)

    # -- undo ------------------------------------------------------------------------------------
    def set_active(self, handle: int | None) -> None:
        """Edit > Undo/Redo act on ``handle``'s stack (None, or while it is saved: nothing)."""
        self._active = handle
        document = self._documents.get(handle) if handle is not None else None
        if document is None or document.saving:
            self.group.setActiveStack(None)  # type: ignore[arg-type]  # Qt accepts no stack
        else:
            self.group.setActiveStack(document.stack)

    def modified_handles(self) -> list[int]:
        return [handle for handle, document in self._documents.items() if document.is_modified()]

    def _on_stack_changed(self, *_args: object) -> None:
        stack = self.sender()
        for document in list(self._documents.values()):
            if document.stack is stack:
                self.modified_changed.emit(document.handle)
