"""Saving through the save controller: Save writes the document, quitting saves every modified file."""

from __future__ import annotations

import numpy as np
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)


def edit_first_cell(qtbot, win, handle: int, text: str) -> None:
    show(qtbot, win, "cube", handle)
    model = win.view.table.array_model
    assert model.setData(model.index(0, 0), text), win.statusBar().currentMessage()


def test_save_writes_the_selected_document_and_marks_it_clean(qtbot, window, tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, cube=CUBE)
    handle = open_file(qtbot, window, path)
    saver = window.save_controller
    assert saver.refusal(None) == "Select a file to save."
    assert saver.save() is False  # nothing to save yet
    edit_first_cell(qtbot, window, handle, "11")
    with qtbot.waitSignal(saver.saved, timeout=60_000) as saved:
        assert saver.save()
        assert window.busy.isVisible() and not window.busy.cancel_button.isVisible()
    assert saved.args == [str(path)] and not window.documents[handle].is_modified()
    assert not window.busy.isVisible() and window.tree.model.mark(handle, "cube") is None
    with np.load(path) as data:
        assert data["cube"][0, 0, 0] == 11


def test_quitting_saves_every_modified_file_then_closes(qtbot, window, tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    for path in paths:
        np.savez(path, cube=CUBE)
    handles = [open_file(qtbot, window, path) for path in paths]
    for handle, text in zip(handles, ("1", "2")):
        edit_first_cell(qtbot, window, handle, text)
    asked: list[list[str]] = []
    window.save_controller.ask_unsaved = lambda names: asked.append(names) or "save"
    assert window.close() is False  # closes once both saves have finished
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert asked == [["a.npz", "b.npz"]]
    for path, value in zip(paths, (1, 2)):
        with np.load(path) as data:
            assert data["cube"][0, 0, 0] == value
