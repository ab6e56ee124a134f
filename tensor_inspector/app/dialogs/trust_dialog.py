"""Ask before opening a file that would run code: name what it needs, explain the risk.

The file is never trusted silently: only an explicit click on "Trust this file"
reopens it with ``trust=True``, for this file only and until it is closed.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.core.errors import TrustRequired

RISK_TEXT = (
    "Opening it fully would let the file import these Python objects and run their code on "
    "this computer, with your permissions. A file from a stranger can delete or steal data "
    "this way. Trust it only if you made it yourself or got it from a source you trust."
)


class TrustDialog(QDialog):
    """Modal confirm dialog; ``accept()`` means "Trust this file"."""

    def __init__(self, path: str | Path, error: TrustRequired, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = Path(path)
        self.setWindowTitle("Trust this file?")
        self.setMinimumWidth(520)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(48, 48))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        top.addWidget(icon)
        self.message = QLabel(
            f"<p><b>{html.escape(self.path.name)}</b> cannot be opened safely.</p>"
            f"<p>{html.escape(str(error))}</p><p>{html.escape(RISK_TEXT)}</p>"
        )
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        top.addWidget(self.message, 1)
        layout.addLayout(top)
        self.globals_list = QListWidget()
        globals_needed = list(getattr(error, "globals_needed", []) or [])
        if globals_needed:
            layout.addWidget(QLabel("It asks for:"))
            self.globals_list.addItems(globals_needed)
            self.globals_list.setMaximumHeight(min(160, 22 * len(globals_needed) + 8))
            layout.addWidget(self.globals_list)
        else:
            self.globals_list.setVisible(False)
        buttons = QDialogButtonBox()
        self.trust_button = QPushButton("Trust this file")
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton(self.trust_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button.setDefault(True)  # Enter must not trust by accident
        self.cancel_button.setFocus()
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def globals_needed(self) -> list[str]:
        return [self.globals_list.item(i).text() for i in range(self.globals_list.count())]


def ask_trust(parent: QWidget | None, path: str | Path, error: TrustRequired) -> bool:
    """Show the dialog modally; True only when the user chose "Trust this file"."""
    dialog = TrustDialog(path, error, parent)
    return dialog.exec() == QDialog.DialogCode.Accepted
