"""What the window remembers between runs: recent files, the last folder, geometry, colours.

Settings live under QSettings("TensorInspector", "tensor-inspector"); tests point
them at a temporary directory (XDG_CONFIG_HOME or ``QSettings.setPath``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QMenu, QSplitter

if TYPE_CHECKING:  # the heatmap (pyqtgraph) is imported after the window's first paint
    from tensor_inspector.app.views.heatmap import HeatmapView
    from tensor_inspector.app.views.heatmap_render import ColourSettings

ORGANISATION, APPLICATION = "TensorInspector", "tensor-inspector"
MAX_RECENT = 12


def settings() -> QSettings:
    return QSettings(ORGANISATION, APPLICATION)


def recent_files() -> list[str]:
    value = settings().value("recent_files", [])
    if isinstance(value, str):  # QSettings gives a bare string for a one-item list
        return [value]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def add_recent(path: str | Path) -> None:
    text = str(Path(path).absolute())
    recent = [text] + [p for p in recent_files() if p != text]
    settings().setValue("recent_files", recent[:MAX_RECENT])


def clear_recent() -> None:
    settings().setValue("recent_files", [])


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
        menu.addAction("Clear Menu", clear_recent)
    else:
        menu.addAction("(no recent files)").setEnabled(False)


def last_directory() -> str:
    recent = recent_files()
    return str(Path(recent[0]).parent) if recent else str(Path.home())


def restore_window(window: QMainWindow, splitter: QSplitter) -> None:
    store = settings()
    restorers: tuple[tuple[str, Callable[[QByteArray], object]], ...] = (
        ("window/geometry", window.restoreGeometry),
        ("window/state", window.restoreState),
        ("window/splitter", splitter.restoreState),
    )
    for key, restore in restorers:
        value = store.value(key)
        if isinstance(value, QByteArray):
            restore(value)


def save_window(window: QMainWindow, splitter: QSplitter) -> None:
    store = settings()
    store.setValue("window/geometry", window.saveGeometry())
    store.setValue("window/state", window.saveState())
    store.setValue("window/splitter", splitter.saveState())
    store.sync()


def load_colours() -> ColourSettings:
    """The heatmap colours last chosen (colormap, scale, gamma, levels); defaults where unset or bad."""
    from tensor_inspector.app.views.heatmap_render import ColourSettings

    store, default = settings(), ColourSettings()
    values: dict[str, object] = {}
    for spec in fields(ColourSettings):
        raw = store.value(f"heatmap/{spec.name}")
        if raw is None:
            continue
        current = getattr(default, spec.name)
        try:
            if isinstance(current, tuple):
                items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
                values[spec.name] = tuple(float(v) for v in items)[:2]
            else:
                values[spec.name] = type(current)(raw)
        except (TypeError, ValueError):
            continue
    try:
        return ColourSettings(**values)  # type: ignore[arg-type]
    except TypeError:
        return default


def save_colours(colours: ColourSettings) -> None:
    store = settings()
    for name, value in asdict(colours).items():
        store.setValue(
            f"heatmap/{name}", ",".join(str(v) for v in value) if isinstance(value, tuple) else value
        )


def remember_colours(heatmap: HeatmapView) -> None:
    """Start ``heatmap`` with the remembered colours and remember every change the user makes."""
    heatmap.set_settings(load_colours())
    heatmap.settings_changed.connect(save_colours)
