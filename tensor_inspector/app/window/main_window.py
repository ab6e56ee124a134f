"""The main window: node tree on the left, the array view on the right, status below.

The window holds no file handles itself: the ``Worker`` opens, evaluates and saves in
the background and answers with plain data. Every failure becomes a sentence in the
view and the status bar; other open files stay open. Editing lives in ``EditFlow``
(edited copies, undo, marks) and saving in ``SaveFlow``; a node with an edited copy
is shown from the copy, never read again from the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from tensor_inspector.app.dialogs.export_dialog import ExportDialog
from tensor_inspector.app.dialogs.trust_dialog import ask_trust
from tensor_inspector.app.views.feeds_panel import FeedsPanel
from tensor_inspector.app.views.icons import app_icon
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.views.tree_model import format_shape
from tensor_inspector.app.window.edit_flow import EditFlow
from tensor_inspector.app.window.save_flow import SaveFlow
from tensor_inspector.app.window.window_support import (
    BusyIndicator,
    add_recent,
    build_menus,
    describe_selection,
    fill_recent_menu,
    last_directory,
    make_action,
    node_details,
    recent_files,
    restore_window,
    save_window,
    show_about,
    show_formats,
)
from tensor_inspector.app.worker import EvalResult, OpenedFile, Worker, user_message
from tensor_inspector.core.errors import InspectorError, TrustRequired
from tensor_inspector.core.nodes import Node, NodeKind

BUSY_DELAY_MS = 200  # fast reads never flash a "Loading" message
WELCOME = "Open a file (Ctrl+O) or drop files and folders here."


class MainWindow(QMainWindow):
    """Tensor Inspector's window. Public methods are what the CLI, the demo and tests drive."""

    file_opened = Signal(int)  # handle
    open_error = Signal(str, str)  # path, message
    value_shown = Signal(str)  # node id whose value is now in the view
    value_failed = Signal(str)  # message

    def __init__(self, parent: QWidget | None = None, persist: bool = True):
        super().__init__(parent)
        self.persist = persist  # False: neither read nor write geometry (headless screenshots)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.auto_select = True  # select the first tensor of a file opened into an empty view
        # replaceable so tests never block on a modal dialog
        self.trust_prompt: Callable[[Path, TrustRequired], bool] = lambda p, e: ask_trust(self, p, e)
        self.files: dict[int, OpenedFile] = {}
        self._open_requests: dict[int, Path] = {}
        self._eval_rid: int | None = None
        self._shown: tuple[int, str] | None = None  # (handle, node id) in the view
        self._pending: tuple[int, Node] | None = None  # what is being read
        self._user_feeds: dict[int, dict[str, np.ndarray]] = {}
        self._export_dir = ""

        self.worker = Worker(self)
        self.worker.opened.connect(self._on_opened)
        self.worker.open_failed.connect(self._on_open_failed)
        self.worker.result.connect(self._on_result)
        self.worker.failed.connect(self._on_failed)
        self.worker.trust_needed.connect(self._on_trust_needed)
        self.worker.busy_changed.connect(self._on_busy_changed)

        self.tree = NodeTree()
        self.tree.node_selected.connect(self._on_node_selected)
        self.tree.close_requested.connect(self.close_file)
        # The array view (pyqtgraph: ~0.15 s to import) is built right after the first
        # paint, so the window appears at once; ``self.view`` builds it on first use.
        self._view = None
        self._placeholder = QLabel(WELCOME)
        self._placeholder.setAlignment(Qt.AlignCenter)
        self._placeholder.setStyleSheet("color: #555; font-size: 14px;")
        self.feeds_panel = FeedsPanel()
        self.feeds_panel.setVisible(False)
        self.feeds_panel.evaluate_requested.connect(self.evaluate_with_panel_feeds)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addWidget(self._placeholder, 1)
        self._right_layout = right_layout
        right_layout.addWidget(self.feeds_panel)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.tree.setMinimumWidth(220)
        self.setCentralWidget(self.splitter)

        self._build_status_bar()
        self.edit_flow = EditFlow(self)
        self.save_flow = SaveFlow(self, self.edit_flow.model)
        self._build_actions()
        self._busy_timer = QTimer(self)
        self._busy_timer.setSingleShot(True)
        self._busy_timer.setInterval(BUSY_DELAY_MS)
        self._busy_timer.timeout.connect(self._show_busy)
        self.resize(1400, 880)
        self.splitter.setSizes([500, 900])
        if persist:
            restore_window(self, self.splitter)
        self._update_title()

    # -- building -------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        self.busy = BusyIndicator()
        self.busy.cancel_requested.connect(self.cancel)
        self.cancel_button = self.busy.cancel_button
        self.statusBar().addPermanentWidget(self.busy)

    def _action(self, text: str, slot, shortcut=None, icon: str | None = None, tip: str = "") -> QAction:
        return make_action(self, text, slot, shortcut, icon, tip)

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "&Open…", self.open_dialog, QKeySequence.Open, "SP_DialogOpenButton", "Open tensor files"
        )
        self.open_folder_action = self._action(
            "Open &Folder…",
            self.open_folder_dialog,
            "Ctrl+Shift+O",
            "SP_DirOpenIcon",
            "Open a SavedModel or checkpoint folder",
        )
        self.export_action = self._action(
            "&Export…",
            self.show_export_dialog,
            "Ctrl+E",
            "SP_DialogSaveButton",
            "Export the shown tensor to .npy, .npz or .csv",
        )
        self.close_action = self._action(
            "&Close File",
            self.close_current_file,
            "Ctrl+W",
            "SP_DialogCloseButton",
            "Close the selected file",
        )
        self.reload_action = self._action(
            "&Re-evaluate",
            self.reevaluate,
            QKeySequence.Refresh,
            "SP_BrowserReload",
            "Read or evaluate the selected node again",
        )
        self.cancel_action = self._action("Cancel", self.cancel, Qt.Key_Escape)
        quit_action = self._action("&Quit", self.close, QKeySequence.Quit)
        filter_action = self._action("&Filter Nodes", self.focus_filter, QKeySequence.Find)
        build_menus(self, quit_action, filter_action)
        self.export_action.setEnabled(False)
        self.reload_action.setEnabled(False)

    @property
    def view(self):
        """The ``ArrayView``; imported and built on first use (see ``__init__``)."""
        if self._view is None:
            from tensor_inspector.app.views.array_view import ArrayView

            self._view = ArrayView()
            self._view.show_message(self._placeholder.text())
            self._right_layout.replaceWidget(self._placeholder, self._view)
            self._placeholder.deleteLater()
        return self._view

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._view is None:
            QTimer.singleShot(0, lambda: self.view)  # after the first paint, before files arrive

    # -- opening --------------------------------------------------------------------------
    def open_paths(self, paths, trust: bool = False) -> list[int]:
        """Open each path in the background; returns the request ids."""
        rids = []
        for path in paths:
            path = Path(path).expanduser()
            already = next((h for h, f in self.files.items() if f.path.absolute() == path.absolute()), None)
            if already is not None and not trust:  # a second copy would only confuse edits
                self.tree.select_file(already)
                self.statusBar().showMessage(f"{path.name} is already open.", 5000)
                continue
            rid = self.worker.open(path, trust=trust)
            self._open_requests[rid] = path
            rids.append(rid)
            self.statusBar().showMessage(f"Opening {path.name}…")
        return rids

    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open tensor files", last_directory())
        self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Open a SavedModel or checkpoint folder", last_directory()
        )
        if path:
            self.open_paths([path])

    def _on_opened(self, rid: int, opened: OpenedFile) -> None:
        self._open_requests.pop(rid, None)
        self.files[opened.handle] = opened
        self.tree.add_file(opened.handle, opened.path, opened.format_name, opened.nodes, order=rid)
        self.add_recent(opened.path)
        values = sum(1 for n in opened.nodes if n.has_value)
        self.statusBar().showMessage(
            f"Opened {opened.path.name}: {opened.format_name}, {values} values.", 8000
        )
        self.file_opened.emit(opened.handle)
        if self.auto_select and self._shown is None and self._pending is None:
            first = next((n for n in opened.nodes if n.has_value), None)
            if first is not None:
                self.tree.select(opened.handle, first.id)

    def _on_open_failed(self, rid: int, path: str, exc: object) -> None:
        requested = self._open_requests.pop(rid, Path(path))
        if isinstance(exc, TrustRequired):
            if self.trust_prompt(requested, exc):
                self.open_paths([requested], trust=True)
                return
            message = f"{requested.name} was not opened: it is not trusted. {exc}"
        else:
            message = f"Could not open {requested.name}: {user_message(exc)}"  # type: ignore[arg-type]
        self.statusBar().showMessage(message, 15000)
        if self._pending is None and self._shown is None:  # never hide a value being looked at
            self.view.show_message(message, error=True)
        self.open_error.emit(str(requested), message)

    # -- files ------------------------------------------------------------------------------
    def close_file(self, handle: int) -> None:
        """Close ``handle``; unsaved edits are asked about first (Save / Discard / Cancel)."""
        if handle not in self.files or not self.save_flow.may_close_file(handle):
            return
        opened = self.files.pop(handle)
        self.edit_flow.model.remove_file(handle)
        if self._pending is not None and self._pending[0] == handle:
            self.cancel()
        self.tree.remove_file(handle)
        self.worker.close(handle)
        self._user_feeds.pop(handle, None)
        if self._shown is not None and self._shown[0] == handle:
            self._shown = None
            self.view.show_message("Select a tensor.")
            self.feeds_panel.setVisible(False)
            self.export_action.setEnabled(False)
        self.statusBar().showMessage(f"Closed {opened.path.name}.", 5000)
        self.update_edit_state()

    def close_current_file(self) -> None:
        handle = self.tree.current_handle()
        if handle is None and len(self.files) == 1:
            handle = next(iter(self.files))
        if handle is not None:
            self.close_file(handle)

    # -- selection and evaluation ------------------------------------------------------------
    def select_node(self, node_id: str, handle: int | None = None) -> bool:
        """Select ``node_id`` (in ``handle``, else the first open file that has it)."""
        handles = [handle] if handle is not None else self.tree.model.handles_with(node_id)
        return any(self.tree.select(h, node_id) for h in handles)

    def shown(self) -> tuple[int, str] | None:
        """(handle, node id) of the value in the view, or None."""
        return self._shown

    def _on_node_selected(self, handle: int, node: Node | None) -> None:
        self.edit_flow.on_selection(handle, node)
        self.update_edit_state(handle)
        if node is None or not node.has_value:
            self._pending = None
            self._eval_rid = None
            self.worker.cancel()
            self._shown = None
            self.export_action.setEnabled(False)
            self.reload_action.setEnabled(False)
            self.feeds_panel.setVisible(False)
            self.view.show_message(self._describe(handle, node))
            return
        self._request(handle, node, self._user_feeds.get(handle))

    def _request(self, handle: int, node: Node, feeds: dict[str, np.ndarray] | None) -> None:
        copy = self.edit_flow.model.copy(handle, node.id)
        if copy is not None:  # edited: the copy is the value, the file is not read again
            self._pending = None
            self._eval_rid = None
            self.worker.cancel()
            self._show_value(handle, node, EvalResult(handle, node.id, None, copy))
            return
        self._pending = (handle, node)
        self._eval_rid = self.worker.evaluate(handle, node.id, None, feeds)
        self.reload_action.setEnabled(True)
        self._busy_timer.start()

    def _describe(self, handle: int, node: Node | None) -> str:
        item = self.tree.model.item_for(handle, node.id) if node is not None else None
        return describe_selection(self.files.get(handle), node, len(item.children) if item is not None else 0)

    def reevaluate(self) -> None:
        handle, node = self.tree.current()
        if handle is not None and node is not None and node.has_value:
            self._request(handle, node, self._user_feeds.get(handle))

    def evaluate_with_panel_feeds(self) -> None:
        """The feeds panel's Evaluate: build the arrays, remember them for this file, run."""
        handle, node = self.tree.current()
        if handle is None or node is None:
            return
        try:
            feeds = self.feeds_panel.feeds()
        except InspectorError as exc:
            self.feeds_panel.show_error(str(exc))
            return
        self.feeds_panel.show_error("")
        self._user_feeds[handle] = feeds
        self._request(handle, node, feeds)

    def cancel(self) -> None:
        """Drop the pending read; the view returns to idle at once."""
        if self._pending is None:
            return
        name = self._pending[1].id
        self._pending = None
        self._eval_rid = None
        self.worker.cancel()
        self._shown = None
        self.view.show_message(f"Cancelled reading {name}.\nSelect it again (or press F5) to retry.")
        self.statusBar().showMessage("Cancelled.", 5000)

    def _on_result(self, rid: int, result: EvalResult) -> None:
        if rid != self._eval_rid or self._pending is None:
            return
        handle, node = self._pending
        self._pending = None
        self._eval_rid = None
        self._show_value(handle, node, result)

    def _show_value(self, handle: int, node: Node, result: EvalResult) -> None:
        self._shown = (handle, node.id)
        opened = self.files.get(handle)
        title = f"{opened.path.name} › {node.id}" if opened else node.id
        self.view.set_array(result.array, title=title)
        self.view.set_details(node_details(node))
        self.edit_flow.configure_table(handle, node, result.array)
        self.export_action.setEnabled(True)
        if result.feed_specs:
            self.feeds_panel.set_specs(result.feed_specs, result.feeds)
        self.feeds_panel.setVisible(bool(result.feed_specs))
        self.statusBar().showMessage(
            f"{node.id}: {format_shape(result.array.shape)} {result.array.dtype.name}", 8000
        )
        self.value_shown.emit(node.id)

    def _on_failed(self, rid: int, message: str) -> None:
        if rid != self._eval_rid or self._pending is None:
            return
        node = self._pending[1]
        self._pending = None
        self._eval_rid = None
        self._shown = None
        text = f"{node.id}: {message}"
        self.view.show_message(text, error=True)
        self.statusBar().showMessage(text, 15000)
        self.export_action.setEnabled(False)
        self.value_failed.emit(message)

    def _on_trust_needed(self, rid: int, exc: TrustRequired) -> None:
        """Evaluating needs code from the file to run: ask, then reopen trusted and evaluate."""
        if rid != self._eval_rid or self._pending is None:
            return
        handle, node = self._pending
        opened = self.files.get(handle)
        if opened is not None and self.trust_prompt(opened.path, exc):
            self._eval_rid = self.worker.evaluate(
                handle, node.id, None, self._user_feeds.get(handle), trust=True
            )
            return
        self._on_failed(rid, f"not evaluated: the file is not trusted. {exc}")

    def _on_busy_changed(self, busy: bool) -> None:
        if not busy:
            self._busy_timer.stop()
            self.busy.stop()

    def _show_busy(self) -> None:
        if self._pending is None or not self.worker.is_busy():
            return
        name = self._pending[1].id
        kind = "Evaluating" if self._pending[1].kind is NodeKind.COMPUTED else "Reading"
        self.busy.start(f"{kind} {name}…")
        self.view.show_message(f"{kind} {name}…")

    def is_idle(self) -> bool:
        return self._pending is None and self.worker.pending_opens() == 0

    # -- export ----------------------------------------------------------------------------------
    def show_export_dialog(self) -> ExportDialog | None:
        """Open the export dialog window-modally (non-blocking) for the shown value."""
        array = self.view.array()
        if array is None or self._shown is None:
            self.statusBar().showMessage("Select a tensor to export first.", 5000)
            return None
        handle, node_id = self._shown
        opened = self.files.get(handle)
        directory = self._export_dir or (str(opened.path.parent) if opened else "")
        dialog = ExportDialog(
            array, self.view.current_index(), name=node_id, directory=directory, parent=self
        )
        dialog.exported.connect(self._on_exported)
        dialog.open()
        return dialog

    def _on_exported(self, path: str) -> None:
        self._export_dir = str(Path(path).parent)
        self.statusBar().showMessage(f"Exported to {path}.", 8000)

    # -- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()

    # -- settings, recent files, title --------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return recent_files()

    def add_recent(self, path: Path) -> None:
        if self.persist:
            add_recent(path)

    def _fill_recent_menu(self) -> None:
        fill_recent_menu(self.recent_menu, lambda path: self.open_paths([path]))

    def save_settings(self) -> None:
        save_window(self, self.splitter)

    def update_edit_state(self, handle: int | None = None) -> None:
        """Title ("*" when the selected file has unsaved changes) and Save actions."""
        if handle is None:
            handle = self.tree.current_handle()
        self._update_title(handle)
        self.save_flow.update_actions(handle)

    def _update_title(self, handle: int | None = None) -> None:
        opened = self.files.get(handle) if handle is not None else None
        if opened is None and len(self.files) == 1:
            opened = next(iter(self.files.values()))
        name = f"{opened.path.name}[*] — " if opened else ""
        self.setWindowTitle(f"{name}Tensor Inspector")
        self.setWindowModified(opened is not None and self.edit_flow.model.is_modified(opened.handle))

    def focus_filter(self) -> None:
        self.tree.filter_edit.setFocus()
        self.tree.filter_edit.selectAll()

    def _show_formats(self) -> None:
        show_formats(self)

    def _show_about(self) -> None:
        show_about(self)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.save_flow.may_close_window():
            event.ignore()
            return
        if self.persist:
            self.save_settings()
        self.worker.shutdown()
        super().closeEvent(event)
