"""The main window: node tree on the left, the array view on the right, status below.

The window builds the widgets and wires four controllers to them; it holds no file
state. Every open file is a ``Document`` in ``self.documents``; the ``Worker`` opens,
evaluates and saves in the background and answers with plain data. Each concern has
its controller: opening and closing (``open_controller``), what the view shows
(``evaluate_controller``), edits and undo (``edit_controller``), saving
(``save_controller``), comparing (``compare_controller``) and tracing
(``trace_controller``, its panel a dock below). They talk through the registry's
signals and each other's public methods. Every failure becomes a sentence in the view and the status bar;
other open files and their edits stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import QLabel, QMainWindow, QMenu, QSplitter, QVBoxLayout, QWidget

from tensor_inspector.app.dialogs.export_dialog import ExportDialog
from tensor_inspector.app.dialogs.trust_dialog import ask_trust
from tensor_inspector.app.documents import Documents
from tensor_inspector.app.views.feeds_panel import FeedsPanel
from tensor_inspector.app.views.icons import app_icon
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.actions import (
    BusyIndicator,
    add_menu,
    add_toolbar,
    help_actions,
    make_action,
)
from tensor_inspector.app.window.compare_controller import CompareController
from tensor_inspector.app.window.edit_controller import EditController
from tensor_inspector.app.window.evaluate_controller import EvaluateController
from tensor_inspector.app.window.open_controller import OpenController
from tensor_inspector.app.window.save_controller import SaveController
from tensor_inspector.app.window.settings import fill_recent_menu, recent_files, restore_window, save_window
from tensor_inspector.app.window.trace_controller import TraceController
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.session.answers import FileInfo

if TYPE_CHECKING:
    from tensor_inspector.app.views.array_view import ArrayView

WELCOME = "Open a file (Ctrl+O) or drop files and folders here."


class MainWindow(QMainWindow):
    """Tensor Inspector's window. Public methods are what the CLI, the demo and tests drive."""

    file_opened = Signal(int)  # handle
    open_error = Signal(str, str)  # path, message
    value_shown = Signal(str)  # node id whose value is now in the view
    value_failed = Signal(str)  # message

    def __init__(self, parent: QWidget | None = None, persist: bool = True):
        super().__init__(parent)
        self.persist = persist  # False: neither read nor write settings (headless screenshots, tests)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        # replaceable so tests never block on a modal dialog
        self.trust_prompt: Callable[[Path, TrustRequired], bool] = lambda p, e: ask_trust(self, p, e)
        self._export_dir = ""
        self.documents = Documents(self)
        self.worker = Worker(self)
        self._build_widgets()
        self._build_controllers()
        self._build_actions()
        self.resize(1400, 880)
        self.splitter.setSizes([500, 900])
        if persist:
            restore_window(self, self.splitter)
        self.update_edit_state()

    # -- building -------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.tree = NodeTree()
        self.tree.setMinimumWidth(220)
        self.tree.follow(self.documents)  # first: controllers find a new file's rows in the tree
        # The array view (pyqtgraph: ~0.15 s to import) is built right after the first
        # paint, so the window appears at once; ``self.view`` builds it on first use.
        self._view: ArrayView | None = None
        self._placeholder = QLabel(WELCOME)
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("color: #555; font-size: 14px;")
        self.feeds_panel = FeedsPanel()
        self.feeds_panel.setVisible(False)
        right = QWidget()
        self._right_layout = QVBoxLayout(right)
        self._right_layout.setContentsMargins(0, 0, 0, 0)
        self._right_layout.addWidget(self._placeholder, 1)
        self._right_layout.addWidget(self.feeds_panel)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.tree)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)
        self.busy = BusyIndicator()
        self.cancel_button = self.busy.cancel_button
        self.statusBar().addPermanentWidget(self.busy)

    def _build_controllers(self) -> None:
        status, docs = self.statusBar(), self.documents
        prompt = self._ask_trust
        self.open_controller = OpenController(self, docs, self.worker, self.tree, status, prompt)
        self.open_controller.persist = self.persist
        self.evaluate_controller = EvaluateController(
            self, docs, self.worker, self.tree, lambda: self.view, self.feeds_panel, self.busy, status, prompt
        )
        evaluate = self.evaluate_controller
        self.edit_controller = EditController(
            self, docs, self.tree, lambda: self.view, evaluate.shown, status
        )
        self.save_controller = SaveController(self, docs, self.worker, self.tree, self.busy, status)
        self.compare_controller = CompareController(
            self, docs, self.worker, self.tree, self.open_controller, status
        )
        self.trace_controller = TraceController(
            self, docs, self.worker, self.tree, self.select_node, status, prompt
        )

        self.open_controller.may_close = lambda h: self.save_controller.may_close_file(
            h, lambda: self.close_file(h)
        )
        self.open_controller.file_opened.connect(self.file_opened)
        self.open_controller.open_error.connect(self.open_error)
        self.open_controller.open_error.connect(lambda _path, text: evaluate.show_notice(text, error=True))
        self.save_controller.on_saved_path = self.open_controller.record_recent
        evaluate.value_displayed.connect(self.edit_controller.configure_table)
        evaluate.value_shown.connect(self.value_shown)
        evaluate.value_failed.connect(self.value_failed)
        evaluate.state_changed.connect(self._update_value_actions)
        self.busy.cancel_requested.connect(self.cancel)
        self.tree.node_selected.connect(lambda handle, _node: self.update_edit_state(handle))
        for signal in (docs.document_added, docs.document_removed, docs.document_changed):
            signal.connect(lambda _handle: self.update_edit_state())
        docs.modified_changed.connect(lambda _handle: self.update_edit_state())

    def _build_actions(self) -> None:
        opener, evaluate, saver = self.open_controller, self.evaluate_controller, self.save_controller
        self.open_action = make_action(
            self, "&Open…", opener.open_dialog, QKeySequence.StandardKey.Open, "SP_DialogOpenButton",
            "Open tensor files",
        )  # fmt: skip
        self.open_folder_action = make_action(
            self, "Open &Folder…", opener.open_folder_dialog, "Ctrl+Shift+O", "SP_DirOpenIcon",
            "Open a SavedModel or checkpoint folder",
        )  # fmt: skip
        self.export_action = make_action(
            self, "&Export…", self.show_export_dialog, "Ctrl+E", "SP_DialogSaveButton",
            "Export the shown tensor to .npy, .npz or .csv",
        )  # fmt: skip
        self.close_action = make_action(
            self, "&Close File", opener.close_current_file, "Ctrl+W", "SP_DialogCloseButton",
            "Close the selected file",
        )  # fmt: skip
        self.reload_action = make_action(
            self, "&Re-evaluate", evaluate.reevaluate, QKeySequence.StandardKey.Refresh, "SP_BrowserReload",
            "Read or evaluate the selected node again",
        )  # fmt: skip
        self.cancel_action = make_action(self, "Cancel", self.cancel, Qt.Key.Key_Escape)
        self.quit_action = make_action(self, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.filter_action = make_action(
            self, "&Filter Nodes", self.focus_filter, QKeySequence.StandardKey.Find
        )
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        save, save_as = saver.save_action, saver.save_as_action
        add_menu(self, "&File", [
            self.open_action, self.open_folder_action, self.recent_menu, None, save, save_as, None,
            self.export_action, self.close_action, None, self.quit_action,
        ])  # fmt: skip
        undo, redo, replace = self.edit_controller.actions()
        add_menu(self, "&Edit", [undo, redo, None, replace])
        add_menu(self, "&View", [self.filter_action, self.reload_action, self.cancel_action])
        tracer = self.trace_controller
        add_menu(
            self,
            "&Tools",
            [self.compare_controller.compare_action, None, tracer.trace_action, tracer.panel_action],
        )
        add_menu(self, "&Help", help_actions(self))
        add_toolbar(
            self, [self.open_action, self.open_folder_action, save, self.export_action, self.reload_action]
        )
        self._update_value_actions()

    @property
    def view(self) -> ArrayView:
        """The ``ArrayView``; imported and built on first use (see ``_build_widgets``)."""
        if self._view is None:
            from tensor_inspector.app.views.array_view import ArrayView

            self._view = ArrayView()
            self._view.show_message(self._placeholder.text())
            self._right_layout.replaceWidget(self._placeholder, self._view)
            self._placeholder.deleteLater()
        return self._view

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._view is None:
            QTimer.singleShot(0, lambda: self.view)  # after the first paint, before files arrive

    def _ask_trust(self, path: Path, error: TrustRequired) -> bool:
        return self.trust_prompt(path, error)  # looked up per call: tests replace ``trust_prompt``

    # -- what the CLI, the demo and tests drive ------------------------------------------------
    @property
    def files(self) -> dict[int, FileInfo]:
        """What the session said about each open file, by handle (read-only view of ``documents``)."""
        return self.documents.infos()

    @property
    def auto_select(self) -> bool:
        """Select the first value of a file opened into an empty view."""
        return self.evaluate_controller.auto_select

    @auto_select.setter
    def auto_select(self, value: bool) -> None:
        self.evaluate_controller.auto_select = value

    def open_paths(self, paths: Iterable[str | Path], trust: bool = False) -> list[int]:
        """Open each path in the background; returns the request ids."""
        return self.open_controller.open_paths(paths, trust=trust)

    def close_file(self, handle: int) -> None:
        """Close ``handle``; unsaved edits are asked about first (Save / Discard / Cancel)."""
        self.open_controller.close_file(handle)

    def select_node(self, node_id: str, handle: int | None = None) -> bool:
        """Select ``node_id`` (in ``handle``, else the first open file that has it)."""
        return self.evaluate_controller.select_node(node_id, handle)

    def shown(self) -> tuple[int, str] | None:
        """(handle, node id) of the value in the view, or None."""
        return self.evaluate_controller.shown()

    def reevaluate(self) -> None:
        self.evaluate_controller.reevaluate()

    def cancel(self) -> None:
        """Esc: stop a running trace or export, else drop the pending read; idle at once."""
        if self.trace_controller.is_running():
            self.trace_controller.cancel()
            return
        self.evaluate_controller.cancel()

    def is_idle(self) -> bool:
        return (
            self.evaluate_controller.is_idle()
            and self.open_controller.pending() == 0
            and not self.trace_controller.is_running()
        )

    def recent_files(self) -> list[str]:
        return recent_files()

    def focus_filter(self) -> None:
        self.tree.filter_edit.setFocus()
        self.tree.filter_edit.selectAll()

    # -- export ----------------------------------------------------------------------------------
    def show_export_dialog(self) -> ExportDialog | None:
        """Open the export dialog window-modally (non-blocking) for the shown value."""
        shown = self.shown()
        array = self.view.array()
        if array is None or shown is None:
            self.statusBar().showMessage("Select a tensor to export first.", 5000)
            return None
        handle, node_id = shown
        document = self.documents.get(handle)
        directory = self._export_dir or (str(document.path.parent) if document else "")
        dialog = ExportDialog(
            array,
            self.view.current_index(),
            name=node_id,
            directory=directory,
            parent=self,
            views=self.evaluate_controller.export_views(),
        )
        dialog.exported.connect(self._on_exported)
        dialog.open()
        return dialog

    def _on_exported(self, path: str) -> None:
        self._export_dir = str(Path(path).parent)
        self.statusBar().showMessage(f"Exported to {path}.", 8000)

    # -- state shown by the window's frame -------------------------------------------------------
    def _update_value_actions(self) -> None:
        _, node = self.tree.current()
        self.export_action.setEnabled(self.shown() is not None)
        self.reload_action.setEnabled(node is not None and node.has_value)

    def update_edit_state(self, handle: int | None = None) -> None:
        """Title ("*" when the selected file has unsaved changes) and Save actions."""
        if handle is None:
            handle = self.tree.current_handle()
        document = self.documents.get(handle) or self.documents.only()
        name = f"{document.name}[*] — " if document else ""
        self.setWindowTitle(f"{name}Tensor Inspector")
        self.setWindowModified(document is not None and document.is_modified())
        self.save_controller.update_actions(handle)
        self._update_value_actions()

    def _fill_recent_menu(self) -> None:
        def open_one(path: str) -> None:
            self.open_paths([path])

        fill_recent_menu(self.recent_menu, open_one)

    # -- drag and drop, closing -------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        if self.open_controller.open_urls(event.mimeData().urls()):
            event.acceptProposedAction()

    def save_settings(self) -> None:
        save_window(self, self.splitter)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if not self.save_controller.may_close_window(self.close):
            event.ignore()
            return
        if self.persist:
            self.save_settings()
        self.compare_controller.shutdown()  # first: a comparison must not restart a stopped reader
        self.trace_controller.shutdown()  # likewise a trace or an export
        self.worker.shutdown()
        super().closeEvent(event)
