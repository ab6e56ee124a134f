"""The left pane: a filter box over the sortable node tree of every open file.

Typing filters after a short pause (debounced) so a 50 000-node graph stays
responsive; a non-empty filter expands the matches. The context menu offers Close
on a file, Copy id on a node, Replace from .npy on a stored tensor, Compare
with… on both, and Trace on what belongs to a graph or signature. The Trace column
appears once a file has been traced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QMenu,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.app.views.tree_model import (
    HANDLE_ROLE,
    NODE_ID_ROLE,
    NODE_ROLE,
    TRACE_COLUMN,
    NodeFilterProxy,
    NodeTreeModel,
)
from tensor_inspector.core.nodes import Node, NodeKind
from tensor_inspector.session.answers import TracedNode

if TYPE_CHECKING:
    from tensor_inspector.app.documents import Documents

FILTER_HELP = (
    "Filter: name or id substring, glob (*kernel*), dtype (bf16, f32, i64), "
    "shape (4096x, x128, 3x3). Several words must all match."
)


class NodeTree(QWidget):
    """Filter box + tree. Emits ``node_selected(handle, node)`` for the current row."""

    node_selected = Signal(int, object)  # handle, Node (None for a file root)
    close_requested = Signal(int)  # handle
    replace_requested = Signal(int, str)  # handle, node id: Replace from .npy…
    compare_requested = Signal(int, object)  # handle, Node (None for a file root): Compare with…
    trace_requested = Signal(int, object)  # handle, Node (None for a file root): Trace

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = NodeTreeModel(self)
        self.proxy = NodeFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        # why a node cannot be replaced (None: it can); the window knows which files are writable
        self.replace_refusal: Callable[[int, Node | None], str | None] = lambda handle, node: None
        # what Trace would run for a row (None: not offered); the window knows the files' entries
        self.trace_entry: Callable[[int, Node | None], str | None] = lambda handle, node: None

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter  (name, *glob*, bf16, 4096x …)")
        self.filter_edit.setToolTip(FILTER_HELP)
        self.filter_edit.setClearButtonEnabled(True)
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(150)
        self._filter_timer.timeout.connect(self.apply_filter)
        self.filter_edit.textChanged.connect(lambda _: self._filter_timer.start())
        self.filter_edit.returnPressed.connect(self.apply_filter)

        self.view = QTreeView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # file order until a header is clicked
        self.view.setUniformRowHeights(True)
        self.view.setTextElideMode(
            Qt.TextElideMode.ElideMiddle
        )  # keep the distinctive end of long dotted names
        self.view.setIndentation(14)  # deep graphs (TF name scopes) keep room for their names
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        header = self.view.header()
        # Names are what people read: the name column gets the width its rows need
        # (see fit_name_column) and the tree scrolls sideways rather than eliding them.
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        for col, width in ((1, 56), (2, 96), (3, 72), (TRACE_COLUMN, 110)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, width)
        header.moveSection(TRACE_COLUMN, 1)  # right after the name: what one looks at after a trace
        self.view.setColumnHidden(TRACE_COLUMN, True)  # until a file is traced
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)
        # rows that appear later (an expanded group, a filter) must not be cut to "230…000"
        self.view.expanded.connect(lambda _index: self.fit_columns())

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(3)
        layout.addWidget(self.filter_edit)
        layout.addWidget(self.view)

        copy_id = QAction("Copy node id", self)
        copy_id.setShortcut(QKeySequence("Ctrl+Shift+C"))
        copy_id.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        copy_id.triggered.connect(self.copy_current_id)
        self.view.addAction(copy_id)
        self._copy_id_action = copy_id

    # -- filter ---------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        """Set and apply at once (no debounce), for code and tests."""
        self.filter_edit.setText(text)
        self.apply_filter()

    def apply_filter(self) -> None:
        self._filter_timer.stop()
        query = self.filter_edit.text()
        self.proxy.set_query(query)
        if query.strip():
            self.view.expandAll()
        self.fit_columns()

    def visible_node_ids(self) -> list[str]:
        """Ids of every row the filter lets through (in view order), for tests and status."""
        out: list[str] = []

        def walk(parent: QModelIndex) -> None:
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, 0, parent)
                node_id = index.data(NODE_ID_ROLE)
                if node_id is not None:
                    out.append(node_id)
                walk(index)

        walk(QModelIndex())
        return out

    # -- selection ------------------------------------------------------------------------
    def select(self, handle: int, node_id: str) -> bool:
        """Make ``node_id`` of file ``handle`` current (clearing a filter that hides it)."""
        source_index = self.model.find(handle, node_id)
        if not source_index.isValid():
            return False
        index = self.proxy.mapFromSource(source_index)
        if not index.isValid():
            self.set_filter("")
            index = self.proxy.mapFromSource(source_index)
        self.view.scrollTo(index)
        self.view.setCurrentIndex(index)
        return True

    def select_file(self, handle: int) -> None:
        """Make the root row of file ``handle`` current."""
        root = self.model.root_for(handle)
        if root is not None:
            index = self.proxy.mapFromSource(self.model.createIndex(root.row, 0, root.uid))
            self.view.scrollTo(index)
            self.view.setCurrentIndex(index)

    def current(self) -> tuple[int | None, Node | None]:
        index = self.view.currentIndex()
        if not index.isValid():
            return None, None
        return index.data(HANDLE_ROLE), index.data(NODE_ROLE)

    def current_handle(self) -> int | None:
        return self.current()[0]

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.node_selected.emit(current.data(HANDLE_ROLE), current.data(NODE_ROLE))

    def copy_current_id(self) -> None:
        _, node = self.current()
        if node is not None:
            QGuiApplication.clipboard().setText(node.id)

    # -- files ------------------------------------------------------------------------------
    def follow(self, documents: Documents) -> None:
        """Show every open document as a root, kept in step with the registry and its marks."""
        self._documents = documents
        documents.document_added.connect(self._on_document_added)
        documents.document_removed.connect(self.remove_file)
        documents.document_changed.connect(self._on_document_changed)
        documents.modified_changed.connect(self._on_modified_changed)

    def _on_document_added(self, handle: int) -> None:
        document = self._documents[handle]
        self.add_file(handle, document.path, document.format_name, document.nodes, order=document.order)

    def _on_document_changed(self, handle: int) -> None:
        document = self._documents[handle]
        self.refresh_file(handle, document.path, document.format_name, document.nodes)
        self._on_modified_changed(handle)

    def _on_modified_changed(self, handle: int) -> None:
        document = self._documents.get(handle)
        if document is not None:
            self.model.set_modified(handle, document.is_modified(), document.modified_nodes())

    def add_file(
        self, handle: int, path: Path, format_name: str, nodes: list[Node], order: int | None = None
    ) -> None:
        source_index = self.model.add_file(handle, path, format_name, nodes, order)
        index = self.proxy.mapFromSource(source_index)
        # small files open expanded; big graphs stay collapsed so the tree appears at once
        if len(nodes) <= 200:
            self.view.expandRecursively(index)
        else:
            self.view.expand(index)
        self.fit_columns()

    def _value_columns(self) -> list[int]:
        return [col for col in (1, 2, 3, TRACE_COLUMN) if not self.view.isColumnHidden(col)]

    def fit_columns(self) -> None:
        """DType, Shape, Size (and Trace) as wide as their longest shown text; Name takes the rest."""
        for col in self._value_columns():
            self.view.resizeColumnToContents(col)
        self.fit_name_column()

    def fit_name_column(self) -> None:
        """The name column fills the space the value columns leave; in a narrow tree it takes
        at most 60% of it, so names stay readable and the dtype stays in view (the rest scrolls;
        an elided name's tooltip has the whole id)."""
        width = self.view.viewport().width()
        free = max(width - sum(self.view.columnWidth(col) for col in self._value_columns()), 80)
        wanted = self.view.sizeHintForColumn(0) + 8
        self.view.setColumnWidth(0, free if wanted <= free else min(wanted, max(free, int(width * 0.6))))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.fit_name_column()

    def remove_file(self, handle: int) -> None:
        self.model.remove_file(handle)
        self._show_trace_column()

    # -- trace marks ------------------------------------------------------------------------
    def show_trace(self, handle: int, nodes: Iterable[TracedNode], first: str | None) -> None:
        """Mark ``handle``'s traced nodes (the Trace column appears) and open the way to ``first``."""
        self.model.set_trace(handle, nodes, first)
        self._show_trace_column()
        if first is not None:  # the producer's row is in view when the tree is scrolled there
            index = self.proxy.mapFromSource(self.model.find(handle, first))
            if index.isValid():
                self.view.expand(index.parent())

    def clear_trace(self, handle: int) -> None:
        self.model.clear_trace(handle)
        self._show_trace_column()

    def _show_trace_column(self) -> None:
        wanted = self.model.has_traces()
        if wanted == self.view.isColumnHidden(TRACE_COLUMN):
            self.view.setColumnHidden(TRACE_COLUMN, not wanted)
        self.fit_columns()

    def refresh_file(self, handle: int, path: Path, format_name: str, nodes: list[Node]) -> None:
        """Show a reopened file (same handle) in place, keeping the current row and expansion."""
        if self.model.refresh_file(handle, path, format_name, nodes):
            return
        current = self.current()
        root = self.model.root_for(handle)
        order = root.order if root is not None else None
        self.remove_file(handle)
        self.add_file(handle, path, format_name, nodes, order=order)
        if current[0] == handle and current[1] is not None:
            self.select(handle, current[1].id)

    def _context_menu(self, pos: QPoint) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        handle, node = index.data(HANDLE_ROLE), index.data(NODE_ROLE)
        menu = QMenu(self)
        if node is not None:
            menu.addAction("Copy node id", lambda: QGuiApplication.clipboard().setText(node.id))
            if node.kind is NodeKind.TENSOR:
                replace = menu.addAction(
                    "Replace from .npy…", lambda: self.replace_requested.emit(handle, node.id)
                )
                refusal = self.replace_refusal(handle, node)
                replace.setEnabled(refusal is None)
                if refusal:
                    replace.setToolTip(refusal)
                    menu.setToolTipsVisible(True)
            menu.addSeparator()
        compare_node = node if node is not None and node.has_value else None
        menu.addAction("Compare with…", lambda: self.compare_requested.emit(handle, compare_node))
        entry = self.trace_entry(handle, node)
        if entry is not None:
            menu.addAction(f"Trace {entry}", lambda: self.trace_requested.emit(handle, node))
        menu.addSeparator()
        menu.addAction("Expand all", lambda: self.view.expandRecursively(index))
        menu.addAction("Collapse", lambda: self.view.collapse(index))
        menu.addSeparator()
        menu.addAction("Close file", lambda: self.close_requested.emit(handle))
        menu.exec(self.view.viewport().mapToGlobal(pos))
