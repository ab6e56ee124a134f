"""The node tree: one root per open file, a lazy item model, and the filter proxy.

A custom ``QAbstractItemModel`` over plain ``Node`` records (no QStandardItem per
cell) keeps graphs with tens of thousands of ops cheap to show. The filter proxy
applies the filter language of ``core.node_filter`` (``bf16 4096x *kernel*``);
ancestors of matches stay visible (recursive filtering).

A trace of a file marks its nodes in the Trace column (hidden by the tree until a
file has a trace; what each row shows is ``trace_marks``) and colours the names of
nodes that hold NaN or Inf.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QFont

from tensor_inspector.app.views.icons import file_icon, kind_icon
from tensor_inspector.app.views.trace_marks import TraceMark, dot_icon
from tensor_inspector.core.dtypes import short_name
from tensor_inspector.core.node_filter import query_matches
from tensor_inspector.core.nodes import Node
from tensor_inspector.core.text import format_bytes, format_shape
from tensor_inspector.session.answers import TracedNode

COLUMNS = ("Name", "DType", "Shape", "Size", "Trace")
TRACE_COLUMN = 4
NODE_ID_ROLE = Qt.ItemDataRole.UserRole + 1
HANDLE_ROLE = Qt.ItemDataRole.UserRole + 2
NODE_ROLE = Qt.ItemDataRole.UserRole + 3
SORT_ROLE = Qt.ItemDataRole.UserRole + 4
MODIFIED_ROLE = Qt.ItemDataRole.UserRole + 5  # True for a modified node or file, "inside" for their ancestors
PENDING = "\x00pending"  # format_name of a row for a file still opening
NODE_MARK, FILE_MARK = "• ", "* "  # prefixes of modified nodes and files
TRACE_ROLE = Qt.ItemDataRole.UserRole + 6  # the row's TraceMark, or None


@dataclass(eq=False)
class TreeItem:
    """One row: a file root (``node`` None) or a node of that file."""

    handle: int
    node: Node | None
    parent: TreeItem | None
    label: str = ""
    path: Path | None = None
    format_name: str = ""
    children: list[TreeItem] = field(default_factory=list)
    row: int = 0
    order: int = 0
    uid: int = 0

    @property
    def node_id(self) -> str | None:
        return self.node.id if self.node is not None else None


class NodeTreeModel(QAbstractItemModel):
    """All open files as a tree.

    Indexes carry an integer uid (``internalId``), not a Python object pointer: Qt may
    still hold indexes of a closed file for a moment, and a uid that is no longer in
    ``_items`` is harmless where a dangling object pointer would crash the interpreter.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._roots: list[TreeItem] = []
        self._by_id: dict[tuple[int, str], TreeItem] = {}
        self._items: dict[int, TreeItem] = {}
        self._next_uid = 1
        self._marks: dict[int, dict[str | None, object]] = {}  # handle -> node id (None: root) -> mark
        self._traces: dict[int, dict[str | None, TraceMark]] = {}  # handle -> node id (None: root) -> mark

    def _register(self, item: TreeItem) -> TreeItem:
        item.uid = self._next_uid
        self._next_uid += 1
        self._items[item.uid] = item
        return item

    def _index_of(self, item: TreeItem, column: int = 0) -> QModelIndex:
        return self.createIndex(item.row, column, item.uid)

    # -- building -------------------------------------------------------------------
    def add_file(
        self, handle: int, path: Path, format_name: str, nodes: list[Node], order: int | None = None
    ) -> QModelIndex:
        """Add a file root with its nodes (parents are listed before children).

        ``order`` (the open request's sequence number) keeps roots in the order the
        user asked for, although files finish opening in any order.
        """
        root = self._register(
            TreeItem(
                handle,
                None,
                None,
                label=Path(path).name or str(path),
                path=Path(path),
                format_name=format_name,
                order=handle if order is None else order,
            )
        )
        by_id: dict[str, TreeItem] = {}
        for node in nodes:
            parent = by_id.get(node.parent) if node.parent is not None else None
            parent = parent or root
            item = self._register(TreeItem(handle, node, parent, row=len(parent.children)))
            parent.children.append(item)
            by_id[node.id] = item
        row = sum(1 for r in self._roots if r.order <= root.order)
        self.beginInsertRows(QModelIndex(), row, row)
        self._roots.insert(row, root)
        for i, r in enumerate(self._roots):
            r.row = i
        self._by_id.update({(handle, k): v for k, v in by_id.items()})
        self.endInsertRows()
        return self.createIndex(row, 0, root.uid)

    def add_pending(self, key: int, path: Path, text: str, order: int) -> None:
        """A row for a file still opening ("model.ckpt  loading TensorFlow…"), under handle -``key``.

        Opening a file of a framework not yet imported takes seconds: the row says what
        is happening where the file will appear. ``remove_file(-key)`` takes it away.
        """
        pending = self._register(
            TreeItem(-key, None, None, label=f"{Path(path).name}  {text}", path=Path(path), order=order)
        )
        pending.format_name = PENDING
        row = sum(1 for r in self._roots if r.order <= order)
        self.beginInsertRows(QModelIndex(), row, row)
        self._roots.insert(row, pending)
        for i, r in enumerate(self._roots):
            r.row = i
        self.endInsertRows()

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        item = self.item(index)
        if item is not None and item.format_name == PENDING:
            return Qt.ItemFlag.NoItemFlags  # greyed, not selectable: nothing to show yet
        return super().flags(index)

    def remove_file(self, handle: int) -> None:
        for row, root in enumerate(self._roots):
            if root.handle == handle:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._roots[row]
                for later in self._roots[row:]:
                    later.row -= 1
                self._by_id = {k: v for k, v in self._by_id.items() if k[0] != handle}
                self._items = {k: v for k, v in self._items.items() if v.handle != handle}
                self._marks.pop(handle, None)
                self._traces.pop(handle, None)
                self.endRemoveRows()
                return

    def refresh_file(self, handle: int, path: Path, format_name: str, nodes: list[Node]) -> bool:
        """The same file reopened (after Save or Save As): new path and node records, rows kept.

        Returns False (and changes nothing) when the node ids differ from the shown ones.
        """
        root = self.root_for(handle)
        if root is None:
            return False
        items = {k[1]: v for k, v in self._by_id.items() if k[0] == handle}
        if set(items) != {n.id for n in nodes}:
            return False
        root.path, root.label, root.format_name = Path(path), Path(path).name or str(path), format_name
        for node in nodes:
            items[node.id].node = node
        self._changed_items([root, *items.values()])
        return True

    # -- modified marks -----------------------------------------------------------------
    def set_modified(self, handle: int, file_modified: bool, node_ids: set[str]) -> None:
        """Mark ``handle``'s root and ``node_ids`` (their ancestors get a lighter mark)."""
        marks: dict[str | None, object] = {}
        for node_id in node_ids:
            item = self._by_id.get((handle, node_id))
            if item is None:
                continue
            marks[node_id] = True
            parent = item.parent
            while parent is not None and parent.node is not None and parent.node.id not in marks:
                marks[parent.node.id] = "inside"
                parent = parent.parent
        if file_modified:
            marks[None] = True
        old = self._marks.get(handle, {})
        if marks == old:
            return
        self._marks[handle] = marks
        touched: list[TreeItem] = []
        for key in set(old) | set(marks):
            item = self.root_for(handle) if key is None else self._by_id.get((handle, key))
            if item is not None:
                touched.append(item)
        self._changed_items(touched)

    # -- trace marks ---------------------------------------------------------------------
    def set_trace(self, handle: int, nodes: Iterable[TracedNode], first: str | None) -> None:
        """Mark ``handle``'s traced nodes; groups holding a node with NaN/Inf are marked too."""
        marks: dict[str | None, TraceMark] = {}
        for node in nodes:
            item = self._by_id.get((handle, node.id))
            if item is None:
                continue
            marks[node.id] = TraceMark(node, first=node.id == first)
            parent = item.parent if not node.finite else None
            while parent is not None:
                key = parent.node_id
                if key in marks:
                    break
                marks[key] = TraceMark(None)
                parent = parent.parent
        self._set_traces(handle, marks)

    def clear_trace(self, handle: int) -> None:
        self._set_traces(handle, {})

    def has_traces(self) -> bool:
        return any(self._traces.values())

    def trace_mark(self, handle: int, node_id: str | None) -> TraceMark | None:
        return self._traces.get(handle, {}).get(node_id)

    def _set_traces(self, handle: int, marks: dict[str | None, TraceMark]) -> None:
        old = self._traces.get(handle, {})
        if not old and not marks:
            return
        self._traces[handle] = marks
        touched = [
            self.root_for(handle) if k is None else self._by_id.get((handle, k)) for k in {*old, *marks}
        ]
        self._changed_items([item for item in touched if item is not None])

    def mark(self, handle: int, node_id: str | None) -> object:
        return self._marks.get(handle, {}).get(node_id)

    def _changed_items(self, items: list[TreeItem]) -> None:
        for item in items:
            self.dataChanged.emit(self._index_of(item, 0), self._index_of(item, len(COLUMNS) - 1))

    def roots(self) -> list[TreeItem]:
        return list(self._roots)

    def root_for(self, handle: int) -> TreeItem | None:
        return next((r for r in self._roots if r.handle == handle), None)

    def find(self, handle: int, node_id: str) -> QModelIndex:
        item = self._by_id.get((handle, node_id))
        return self._index_of(item) if item is not None else QModelIndex()

    def handles_with(self, node_id: str) -> list[int]:
        return [r.handle for r in self._roots if (r.handle, node_id) in self._by_id]

    def item(self, index: QModelIndex | QPersistentModelIndex) -> TreeItem | None:
        return self._items.get(index.internalId()) if index.isValid() else None

    def item_for(self, handle: int, node_id: str) -> TreeItem | None:
        return self._by_id.get((handle, node_id))

    # -- Qt model API -------------------------------------------------------------------
    def index(
        self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = QModelIndex()
    ) -> QModelIndex:
        if parent.isValid():
            owner = self.item(parent)
            siblings = owner.children if owner is not None else []
        else:
            siblings = self._roots
        if 0 <= row < len(siblings) and 0 <= column < len(COLUMNS):
            return self._index_of(siblings[row], column)
        return QModelIndex()

    def parent(self, index: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        item = self.item(index)
        if item is None or item.parent is None:
            return QModelIndex()
        return self._index_of(item.parent)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        if not parent.isValid():
            return len(self._roots)
        if parent.column() != 0:
            return 0
        item = self.item(parent)
        return len(item.children) if item is not None else 0

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.TextAlignmentRole
            and section == 3
        ):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        item = self.item(index)
        if item is None:
            return None
        col = index.column()
        node = item.node
        if col == TRACE_COLUMN or role == TRACE_ROLE:
            return self._trace_data(item, role)
        if role == Qt.ItemDataRole.DisplayRole:
            mark = self.mark(item.handle, item.node_id) if col == 0 else None
            if node is None:
                # the format is in the tooltip: as a column it would widen DType for every row
                return ((FILE_MARK if mark else "") + item.label, "", "", "")[col]
            if col == 0:
                return (NODE_MARK if mark is True else "") + node.name
            if col == 1:
                return short_name(node.dtype) if node.dtype else ""
            if col == 2:
                return format_shape(node.shape)
            return format_bytes(node.nbytes)
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            if node is None:
                return file_icon(bool(item.path and item.path.is_dir()))
            return kind_icon(node.kind.value)
        if role == Qt.ItemDataRole.FontRole and col == 0:
            mark = self.mark(item.handle, item.node_id)
            if mark:
                font = QFont()
                font.setItalic(True)
                font.setBold(mark is True)
                return font
            return None
        if role == Qt.ItemDataRole.ForegroundRole and col == 0:
            traced = self.trace_mark(item.handle, item.node_id)
            colour = traced.colour if traced is not None and traced.node is not None else None
            return QBrush(QColor(colour)) if colour else None
        if role == MODIFIED_ROLE:
            return self.mark(item.handle, item.node_id)
        if role == Qt.ItemDataRole.ToolTipRole:
            text = self._tooltip(item)
            traced = self.trace_mark(item.handle, item.node_id)
            if traced is not None:
                text += "\n" + traced.tooltip()
            return text + "\n(modified, not saved)" if self.mark(item.handle, item.node_id) is True else text
        if role == Qt.ItemDataRole.TextAlignmentRole and col == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == NODE_ID_ROLE:
            return item.node_id
        if role == HANDLE_ROLE:
            return item.handle
        if role == NODE_ROLE:
            return node
        if role == SORT_ROLE:
            return self._sort_key(item, col)
        return None

    def _trace_data(self, item: TreeItem, role: int) -> Any:
        """The Trace column (and ``TRACE_ROLE`` in any column)."""
        traced = self.trace_mark(item.handle, item.node_id)
        if role == TRACE_ROLE:
            return traced
        if role == SORT_ROLE:  # most NaN/Inf first when sorted descending; untraced last
            return -1 if traced is None or traced.node is None else traced.node.nan + traced.node.inf
        if role in (NODE_ID_ROLE, HANDLE_ROLE, NODE_ROLE):
            return {NODE_ID_ROLE: item.node_id, HANDLE_ROLE: item.handle, NODE_ROLE: item.node}[role]
        if traced is None:
            return self._tooltip(item) if role == Qt.ItemDataRole.ToolTipRole else None
        if role == Qt.ItemDataRole.DisplayRole:
            return traced.text()
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item) + "\n" + traced.tooltip()
        colour = traced.colour
        if role == Qt.ItemDataRole.ForegroundRole:
            return QBrush(QColor(colour or "#555555"))
        if role == Qt.ItemDataRole.DecorationRole and colour and traced.node is not None:
            return dot_icon(colour)
        if role == Qt.ItemDataRole.FontRole and (traced.first or traced.node is None):
            font = QFont()
            font.setBold(traced.first)
            font.setItalic(traced.node is None)
            return font
        return None

    def _sort_key(self, item: TreeItem, col: int) -> Any:
        node = item.node
        if node is None:
            return item.row if col else item.label.lower()
        if col == 0:
            return node.name.lower()
        if col == 1:
            return node.dtype or ""
        if col == 2:
            return "" if node.shape is None else "x".join(f"{d or 0:012d}" for d in node.shape)
        return node.nbytes if node.nbytes is not None else -1

    @staticmethod
    def _tooltip(item: TreeItem) -> str:
        node = item.node
        if node is None:
            return f"{item.path}\n{item.label if item.format_name == PENDING else item.format_name}"
        lines = [node.id, f"kind: {node.kind.value}"]
        if node.dtype or node.framework_dtype:
            lines.append(f"dtype: {node.dtype} ({node.framework_dtype})")
        if node.shape is not None:
            lines.append(f"shape: {tuple(node.shape)}")
        for key, value in list(node.metadata.items())[:12]:
            text = str(value)
            lines.append(f"{key}: {text[:200]}{'…' if len(text) > 200 else ''}")
        return "\n".join(lines)


class NodeFilterProxy(QSortFilterProxyModel):
    """Sorts by each column's natural key and filters with ``query_matches``."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._query = ""
        self.setRecursiveFilteringEnabled(True)  # parents of matches stay visible
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def set_query(self, query: str) -> None:
        query = query.strip()
        if query != self._query:
            self.beginFilterChange()
            self._query = query
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def query(self) -> str:
        return self._query

    def filterAcceptsRow(  # noqa: N802
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        if not self._query:
            return True
        model = self.sourceModel()
        assert isinstance(model, NodeTreeModel)
        item = model.item(model.index(source_row, 0, source_parent))
        if item is None or item.node is None:
            return True  # file roots stay, so open files never vanish from view
        return query_matches(self._query, item.node)
