"""The view area's message: a centred sentence, or an error panel with the whole sentence and Copy.

An error (a file that does not open, a value that cannot be read) stays in the view
area until the next selection, wrapped to the width of the view and selectable,
with a Copy button for bug reports: a status-bar message is gone after seconds and
cut off at the window's edge.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class MessagePanel(QWidget):
    """A message in the middle of the view; ``error=True`` frames it and offers Copy."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the whole message to the clipboard")
        self.copy_button.clicked.connect(self.copy)
        self.frame = QFrame()
        inner = QVBoxLayout(self.frame)
        inner.addWidget(self.label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        inner.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.frame, 8)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        self.show_text("")

    def show_text(self, text: str, error: bool = False) -> None:
        self.label.setText(text)
        self.copy_button.setVisible(error)
        if error:
            self.frame.setStyleSheet(
                "QFrame { background: #fdecee; border: 1px solid #e6a5ad; border-radius: 6px; }"
                "QLabel { color: #8a0015; font-size: 14px; padding: 12px; border: none; }"
            )
        else:
            self.frame.setStyleSheet("QFrame { border: none; } QLabel { color: #555; font-size: 14px; }")

    def text(self) -> str:
        return self.label.text()

    def is_error(self) -> bool:
        return not self.copy_button.isHidden()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.label.text())
