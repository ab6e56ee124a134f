"""Raw / Dequantized: the two views of a quantized tensor, one click (or Ctrl+Shift+D) apart.

A quantized tensor is two nodes of its file (``metadata["views"]``: the stored codes and the
float32 values they stand for), so the toggle only names the other node; selecting it is the
window's business, and the table, heatmap and statistics follow as for any new value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QToolButton, QWidget

RAW, DEQUANTIZED = "raw", "dequantized"
SHORTCUT = "Ctrl+Shift+D"
LABELS = {RAW: "Raw", DEQUANTIZED: "Dequantized"}
TIPS = {
    RAW: "The stored codes (integers, float8 or blocks) exactly as the file holds them",
    DEQUANTIZED: "The float32 values the codes stand for: (code - zero point) × scale",
}


class QuantizedToggle(QWidget):
    """Two exclusive buttons, shown only for nodes that have both views."""

    view_chosen = Signal(str)  # the node id of the view the user asked for

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._views: dict[str, str] = {}
        self._current = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(QLabel("values: "))
        self.buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        group.setExclusive(True)
        for view in (RAW, DEQUANTIZED):
            button = QToolButton()
            button.setText(LABELS[view])
            button.setCheckable(True)
            button.setToolTip(f"{TIPS[view]} ({SHORTCUT} toggles)")
            button.clicked.connect(lambda _checked=False, v=view: self.choose(v))
            group.addButton(button)
            layout.addWidget(button)
            self.buttons[view] = button
        # active wherever the focus is in the window, and only while the toggle is shown
        shortcut = QShortcut(QKeySequence(SHORTCUT), self)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(self.toggle)
        self.hide()

    def set_views(self, views: Mapping[str, Any] | None, current: str | None) -> None:
        """The views of the shown node (its ``metadata["views"]``) and which one it is."""
        usable = isinstance(views, Mapping) and all(isinstance(views.get(v), str) for v in (RAW, DEQUANTIZED))
        self._views = {v: str(views[v]) for v in (RAW, DEQUANTIZED)} if usable and views else {}
        self._current = current if current in self._views else ""
        for view, button in self.buttons.items():
            button.setChecked(view == self._current)
        self.setVisible(bool(self._views))

    def current(self) -> str:
        """``"raw"``, ``"dequantized"``, or ``""`` when the shown node has no views."""
        return self._current

    def choose(self, view: str) -> None:
        """Ask for ``view``'s node (the window selects it; ``set_views`` follows when it is shown)."""
        if view in self._views and view != self._current:
            self.buttons[view].setChecked(True)
            self.view_chosen.emit(self._views[view])

    def toggle(self) -> None:
        if self._views:
            self.choose(DEQUANTIZED if self._current == RAW else RAW)
