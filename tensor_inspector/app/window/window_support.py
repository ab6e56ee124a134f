"""Parts of the main window with no logic of their own: settings, recent files, busy indicator.

Settings live under QSettings("TensorInspector", "tensor-inspector"); tests point
them at a temporary directory (XDG_CONFIG_HOME or ``QSettings.setPath``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QToolButton,
    QWidget,
)

from tensor_inspector.app.views.icons import standard
from tensor_inspector.core.nodes import Node, NodeKind

ORGANISATION, APPLICATION = "TensorInspector", "tensor-inspector"
MAX_RECENT = 12


def settings() -> QSettings:
    return QSettings(ORGANISATION, APPLICATION)


def recent_files() -> list[str]:
    value = settings().value("recent_files", [])
    if isinstance(value, str):  # QSettings gives a bare string for a one-item list
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent(path: str | Path) -> None:
    text = str(Path(path).absolute())
    recent = [text] + [p for p in recent_files() if p != text]
    settings().setValue("recent_files", recent[:MAX_RECENT])


def fill_recent_menu(menu: QMenu, open_path: Callable[[str], None]) -> None:
    """Rebuild File > Open Recent; missing files are listed but disabled."""
    menu.clear()
    recent = recent_files()
    for path in recent:
        action = menu.addAction(path)
        action.triggered.connect(lambda _=False, p=path: open_path(p))
        action.setEnabled(Path(path).exists() or Path(path + ".index").exists())  # TF prefixes
    if recent:
        menu.addSeparator()
        menu.addAction("Clear Menu", lambda: settings().setValue("recent_files", []))
    else:
        menu.addAction("(no recent files)").setEnabled(False)


def last_directory() -> str:
    recent = recent_files()
    return str(Path(recent[0]).parent) if recent else str(Path.home())


def restore_window(window: QMainWindow, splitter: QSplitter) -> None:
    store = settings()
    for key, restore in (
        ("window/geometry", window.restoreGeometry),
        ("window/state", window.restoreState),
        ("window/splitter", splitter.restoreState),
    ):
        value = store.value(key)
        if value is not None:
            restore(value)


def save_window(window: QMainWindow, splitter: QSplitter) -> None:
    store = settings()
    store.setValue("window/geometry", window.saveGeometry())
    store.setValue("window/state", window.saveState())
    store.setValue("window/splitter", splitter.saveState())
    store.sync()


class BusyIndicator(QWidget):
    """Status-bar strip shown during long reads: what is running, a spinner bar, Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # indeterminate: backends report no progress
        self.progress.setMaximumWidth(120)
        self.progress.setMaximumHeight(14)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop waiting for this value (Esc)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        for widget in (self.label, self.progress, self.cancel_button):
            layout.addWidget(widget)
        self.setVisible(False)

    def start(self, text: str) -> None:
        self.label.setText(text)
        self.setVisible(True)

    def stop(self) -> None:
        self.setVisible(False)


def make_action(
    parent: QWidget, text: str, slot, shortcut=None, icon: str | None = None, tip: str = ""
) -> QAction:
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if icon:
        action.setIcon(standard(icon))
    action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
    action.triggered.connect(slot)
    return action


def build_menus(window, quit_action: QAction, filter_action: QAction) -> None:
    """File, Edit, View and Help menus and the toolbar of the main window."""
    file_menu = window.menuBar().addMenu("&File")
    file_menu.addActions([window.open_action, window.open_folder_action])
    window.recent_menu = file_menu.addMenu("Open &Recent")
    window.recent_menu.aboutToShow.connect(window._fill_recent_menu)
    file_menu.addSeparator()
    file_menu.addActions([window.save_flow.save_action, window.save_flow.save_as_action])
    file_menu.addSeparator()
    file_menu.addActions([window.export_action, window.close_action])
    file_menu.addSeparator()
    file_menu.addAction(quit_action)
    edit_menu = window.menuBar().addMenu("&Edit")
    undo, redo, replace = window.edit_flow.actions()
    edit_menu.addActions([undo, redo])
    edit_menu.addSeparator()
    edit_menu.addAction(replace)
    view_menu = window.menuBar().addMenu("&View")
    view_menu.addActions([filter_action, window.reload_action, window.cancel_action])
    help_menu = window.menuBar().addMenu("&Help")
    help_menu.addAction(make_action(window, "Supported &Formats", window._show_formats))
    help_menu.addAction(make_action(window, "&About", window._show_about))
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main_toolbar")
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addActions(
        [
            window.open_action,
            window.open_folder_action,
            window.save_flow.save_action,
            window.export_action,
            window.reload_action,
        ]
    )


def show_formats(parent: QWidget) -> None:
    from tensor_inspector.session import supported_formats

    QMessageBox.information(parent, "Supported formats", supported_formats())


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Tensor Inspector",
        "Tensor Inspector: open ML weight files, evaluate any node, view, export and edit tensors.",
    )


def node_details(node: Node) -> str:
    """A compact line of what the format says about ``node`` (shown under the view's title)."""
    parts = [f"{node.kind.value}"]
    if node.framework_dtype and node.framework_dtype != node.dtype:
        parts.append(f"stored as {node.framework_dtype}")
    for key, value in node.metadata.items():
        text = value if isinstance(value, str) else repr(value)
        if key == "type" and text == node.framework_dtype:
            continue  # already said by "stored as"
        parts.append(f"{key}: {text if len(text) <= 80 else text[:77] + '…'}")
    return "  ·  ".join(parts[:12])


def describe_selection(opened, node: Node | None, children: int) -> str:
    """The view's text for a selection without a value: a file's root or a group."""
    if node is None:
        if opened is None:
            return "Select a tensor."
        count = sum(1 for n in opened.nodes if n.has_value)
        about = "".join(f"\n{key}: {value[:200]}" for key, value in list(opened.metadata.items())[:20])
        return (
            f"{opened.path.name}\n{opened.format_name} · {count} values\n{about}"
            "\n\nSelect a tensor in the tree."
        )
    what = "a signature" if node.kind is NodeKind.SIGNATURE else "a group"
    return f"{node.id}\n{what} of {children} entries\n\nSelect one of its tensors."
