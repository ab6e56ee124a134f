"""Kind icons for the tree, drawn with QPainter so no image files need shipping.

Each kind gets a small rounded badge with a letter in a distinct colour, readable at
16 px and in dark and light themes alike. Icons are cached: the tree asks for them
once per visible row.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPainterPath, QPen, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from tensor_inspector.core.nodes import NodeKind

# kind -> (letter, fill colour). Letters say what the node is without a legend.
_BADGES: dict[str, tuple[str, str]] = {
    NodeKind.TENSOR.value: ("T", "#2f6fb3"),  # stored tensor: read from the file
    NodeKind.COMPUTED.value: ("ƒ", "#d07a12"),  # graph output: evaluated by the framework
    NodeKind.VALUE.value: ("v", "#6b7480"),  # plain value (int, str, list)
    NodeKind.SIGNATURE.value: ("S", "#7a4fb0"),  # entry point with inputs
    "error": ("!", "#c0392b"),
}


def _badge(letter: str, colour: str, size: int = 32) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    rect = QRectF(2, 2, size - 4, size - 4)
    path = QPainterPath()
    path.addRoundedRect(rect, size * 0.22, size * 0.22)
    painter.fillPath(path, QColor(colour))
    painter.setPen(QPen(QColor(colour).darker(130), 1.5))
    painter.drawPath(path)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(int(size * 0.62))
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, letter)
    painter.end()
    return pixmap


@cache
def kind_icon(kind: str) -> QIcon:
    """The icon for a ``NodeKind`` value; groups use the platform's folder icon."""
    if kind == NodeKind.GROUP.value:
        return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon)
    letter, colour = _BADGES.get(kind, ("?", "#888888"))
    icon = QIcon()
    for size in (16, 32):
        icon.addPixmap(_badge(letter, colour, size))
    return icon


@cache
def file_icon(is_dir: bool = False) -> QIcon:
    """A file root: a folder for SavedModels and checkpoint directories, a page otherwise."""
    style = QApplication.style()
    return style.standardIcon(
        QStyle.StandardPixmap.SP_DirOpenIcon if is_dir else QStyle.StandardPixmap.SP_FileIcon
    )


@cache
def app_icon() -> QIcon:
    """The window icon: a small heatmap grid, so the app is recognisable in a task bar."""
    icon = QIcon()
    for size in (16, 32, 64):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        cells = 4
        step = size / cells
        palette = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
        for r in range(cells):
            for c in range(cells):
                painter.fillRect(
                    QRectF(c * step, r * step, step - 0.5, step - 0.5),
                    QColor(palette[(r + c) % len(palette)]),
                )
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def standard(name: str) -> QIcon:
    """A platform standard icon by ``QStyle.StandardPixmap`` member name (for toolbar actions)."""
    return QApplication.style().standardIcon(getattr(QStyle.StandardPixmap, name))
