"""Compare with…: pick the other side, an open file (or one of its tensors) or a file on disk.

For a file, the other file; for a tensor, the other file and in it either a tensor or
"the tensor of the same name" (paired by name as the CLI's diff does, with wrapper
prefixes, ``kernel``/``weight`` and layouts taken care of).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tensor_inspector.core.nodes import Node

SAME_NAME = "(the tensor paired by name)"


@dataclass(frozen=True)
class Choice:
    """The other side: an open file (``handle``) or a file to open (``path``); ``node``: one tensor."""

    handle: int | None = None
    path: Path | None = None
    node: str | None = None


@dataclass(frozen=True)
class OpenFile:
    handle: int
    name: str
    nodes: list[Node]


class CompareDialog(QDialog):
    """Lists the open files; for a tensor also the other file's tensors, filtered by typing."""

    def __init__(
        self,
        files: list[OpenFile],
        what: str,
        tensor: bool,
        directory: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare with")
        self.resize(520, 480 if tensor else 260)
        self.files, self.tensor, self.directory = files, tensor, directory
        self.path: Path | None = None
        self.file_combo = QComboBox()
        for f in files:
            self.file_combo.addItem(f.name, f.handle)
        self.browse = QPushButton("Other file…")
        self.browse.clicked.connect(self._browse)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter tensors")
        self.filter.textChanged.connect(self._fill)
        self.nodes = QListWidget()
        self.nodes.itemDoubleClicked.connect(lambda _item: self.accept())
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        intro = QLabel(f"Compare <b>{what}</b> (A) with (B):")
        intro.setTextFormat(Qt.TextFormat.RichText)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addWidget(self.file_combo)
        layout.addWidget(self.browse)
        if tensor:
            layout.addWidget(self.filter)
            layout.addWidget(self.nodes, 1)
        else:
            layout.addStretch(1)
        layout.addWidget(buttons)
        self.file_combo.currentIndexChanged.connect(lambda _i: self._fill())
        self._fill()

    def _fill(self) -> None:
        self.ok.setEnabled(self.file_combo.count() > 0 or self.path is not None)
        if not self.tensor:
            return
        self.nodes.clear()
        self.nodes.addItem(SAME_NAME)
        handle = self.file_combo.currentData()
        query = self.filter.text().strip().lower()
        for f in self.files:
            if f.handle != handle:
                continue
            for node in f.nodes:
                if node.has_value and query in node.id.lower():
                    item = QListWidgetItem(node.id)
                    item.setData(Qt.ItemDataRole.UserRole, node.id)
                    self.nodes.addItem(item)
        self.nodes.setCurrentRow(0)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Compare with file", self.directory)
        if path:
            self.path = Path(path)
            self.file_combo.addItem(f"{self.path.name} (to open)", None)
            self.file_combo.setCurrentIndex(self.file_combo.count() - 1)
            self.ok.setEnabled(True)

    def choice(self) -> Choice | None:
        handle = self.file_combo.currentData()
        item = self.nodes.currentItem() if self.tensor else None
        node = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if handle is not None:
            return Choice(handle=int(handle), node=node)
        if self.path is not None:
            return Choice(path=self.path, node=node)
        return None


def ask_other(
    parent: QWidget, files: list[OpenFile], what: str, tensor: bool, directory: str = ""
) -> Choice | None:
    """Ask modally; None when cancelled."""
    dialog = CompareDialog(files, what, tensor, directory, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.choice()
