"""Edit > Undo/Redo follow the selected file's document; refusals say why."""

from __future__ import annotations

import numpy as np
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)


def test_undo_follows_the_selected_file(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE)
    np.savez(tmp_path / "b.npz", cube=CUBE)
    first = open_file(qtbot, window, tmp_path / "a.npz")
    second = open_file(qtbot, window, tmp_path / "b.npz")
    edit = window.edit_controller
    show(qtbot, window, "cube", first)
    model = window.view.table.array_model
    assert model.setData(model.index(0, 3), "7")
    assert edit.undo_action.isEnabled() and edit.undo_action.text() == "Undo edit cube[0,0,3]"
    show(qtbot, window, "cube", second)
    assert not edit.undo_action.isEnabled()  # the second file has nothing to undo
    assert window.documents.group.activeStack() is window.documents[second].stack
    show(qtbot, window, "cube", first)
    edit.undo_action.trigger()
    assert not window.documents[first].is_modified() and window.view.array()[0, 0, 3] == CUBE[0, 0, 3]


def test_refusals_name_the_reason(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE)
    handle = open_file(qtbot, window, tmp_path / "a.npz")
    edit = window.edit_controller
    node = window.documents[handle].node("cube")
    assert edit.edit_refusal(handle, node) is None
    assert "closed" in edit.edit_refusal(handle + 100, node)
    assert "Only stored tensors" in edit.edit_refusal(handle, None)
    window.documents.set_writable(handle, False)
    assert "cannot be written back" in edit.edit_refusal(handle, node)
    with qtbot.waitSignal(edit.message) as refused:
        assert edit.replace_from_npy(handle, "cube", tmp_path / "any.npy") is False
    assert refused.args[0].startswith("cube cannot be replaced:")
