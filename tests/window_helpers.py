"""A main window set up for editing and saving tests, and the steps those tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.settings import settings

CUBE = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)


@pytest.fixture
def window(qtbot):
    """No persisted settings, no auto-selection; questions answered, errors collected."""
    settings().clear()
    win = MainWindow(persist=False)
    win.auto_select = False
    # pytest-qt closes the window before fixtures tear down: unsaved edits are discarded then
    win.save_controller.ask_unsaved = lambda names: "discard"
    win.errors = []
    win.save_controller.report_error = win.errors.append
    win.edit_controller.ask_lossy_cast = lambda node, src, dst: pytest.fail("unexpected cast question")
    qtbot.addWidget(win)
    win.show()
    yield win
    win.worker.shutdown()


def open_file(qtbot, win: MainWindow, path: Path) -> int:
    # generous: a TensorFlow file's first open imports TensorFlow in the reader
    with qtbot.waitSignal(win.file_opened, timeout=60_000) as opened:
        win.open_paths([path])
    return opened.args[0]


def show(qtbot, win: MainWindow, node_id: str, handle: int | None = None) -> np.ndarray:
    with qtbot.waitSignal(win.value_shown, timeout=60_000):
        assert win.select_node(node_id, handle)
    return win.view.array()
