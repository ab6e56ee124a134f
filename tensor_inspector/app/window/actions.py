"""The window's menus, toolbar and status-bar busy strip: layout only, no logic of their own.

Menus are given as lists of actions (``None`` is a separator), so which actions
exist stays with the controllers that own them and the menu order is read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QToolButton,
    QWidget,
)

from tensor_inspector.app.views.icons import standard

Shortcut = QKeySequence | QKeySequence.StandardKey | Qt.Key | str
MenuEntries = Sequence[QAction | QMenu | None]


def make_action(
    parent: QWidget,
    text: str,
    slot: Callable[[], object],
    shortcut: Shortcut | None = None,
    icon: str | None = None,
    tip: str = "",
) -> QAction:
    action = QAction(text, parent)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    if icon:
        action.setIcon(standard(icon))
    action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
    action.triggered.connect(lambda _checked=False: slot())  # never pass "checked" on to the slot
    return action


def add_menu(window: QMainWindow, title: str, entries: MenuEntries) -> QMenu:
    menu = window.menuBar().addMenu(title)
    for entry in entries:
        if entry is None:
            menu.addSeparator()
        elif isinstance(entry, QMenu):
            menu.addMenu(entry)
        else:
            menu.addAction(entry)
    return menu


def add_toolbar(window: QMainWindow, actions: Sequence[QAction]) -> None:
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main_toolbar")  # saveState needs a name
    toolbar.setMovable(False)
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    toolbar.addActions(list(actions))


def help_actions(parent: QWidget) -> list[QAction | QMenu | None]:
    return [
        make_action(parent, "Supported &Formats", lambda: show_formats(parent)),
        make_action(parent, "&About", lambda: show_about(parent)),
    ]


def show_formats(parent: QWidget) -> None:
    from tensor_inspector.session import supported_formats

    QMessageBox.information(parent, "Supported formats", supported_formats())


def show_about(parent: QWidget) -> None:
    QMessageBox.about(
        parent,
        "About Tensor Inspector",
        "Tensor Inspector: open ML weight files, evaluate any node, view, export and edit tensors.",
    )


class BusyIndicator(QWidget):
    """Status-bar strip shown during long work: what is running, a spinner bar, Cancel."""

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

    def start(self, text: str, cancellable: bool = True) -> None:
        self.label.setText(text)
        self.cancel_button.setVisible(cancellable)
        self.setVisible(True)

    def stop(self) -> None:
        self.setVisible(False)
        self.cancel_button.setVisible(True)
