"""The document registry: one place per open file for its info, edits, undo stack, feeds and trust."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.documents import Documents
from tensor_inspector.core.nodes import Node, NodeKind
from tensor_inspector.session.answers import FileInfo


def info(handle: int, path: str = "w.npz", writable: bool = True) -> FileInfo:
    nodes = [
        Node("w", "w", NodeKind.TENSOR, dtype="float32", shape=(2, 2)),
        Node("b", "b", NodeKind.TENSOR, dtype="int8", shape=(3,)),
    ]
    return FileInfo(handle, Path(path), "NumPy archive", "numpy", writable, False, nodes, {"k": "v"})


def test_edits_undo_and_saved_state_live_in_the_document(qtbot):
    documents = Documents()
    added, edited, modified = [], [], []
    documents.document_added.connect(added.append)
    documents.edited.connect(lambda handle, node_id: edited.append((handle, node_id)))
    documents.modified_changed.connect(modified.append)
    first = documents.add(info(1), order=5)
    second = documents.add(info(2, "other.npz"))
    assert added == [1, 2] and first.order == 5 and second.order == 2
    assert documents.find_path("other.npz") is second and len(documents) == 2

    shown = np.zeros((2, 2), np.float32)
    assert first.edit_cells("w", shown, [((0, 1), "2.5")]) is None
    assert shown[0, 1] == 0  # the shown array is never written: the first edit copies it
    assert first.copy("w")[0, 1] == np.float32(2.5) and edited[-1] == (1, "w")
    assert first.is_modified() and first.modified_nodes() == {"w"} and 1 in modified
    assert not second.is_modified() and second.copy("w") is None
    assert "not a valid float32" in first.edit_cells("w", shown, [((0, 0), "x")])
    assert first.stack.count() == 1

    first.stack.undo()
    assert first.copy("w")[0, 1] == 0 and not first.is_modified() and documents.modified_handles() == []
    first.stack.redo()
    documents.mark_saved(1)
    assert not first.is_modified() and first.replacements() == {}
    first.stack.undo()  # undo past the save: differs from the file again
    assert first.is_modified() and set(first.replacements()) == {"w"}


def test_a_saving_document_refuses_edits_and_hides_its_undo(qtbot):
    documents = Documents()
    document = documents.add(info(1))
    document.edit_cells("w", np.zeros((2, 2), np.float32), [((1, 1), "1")])
    documents.set_active(1)
    assert documents.group.activeStack() is document.stack
    documents.set_saving(1, True)
    assert documents.group.activeStack() is None
    assert "save is running" in document.edit_cells("w", np.zeros((2, 2), np.float32), [((0, 0), "3")])
    assert "save is running" in document.replace("b", np.ones(3, np.int8))
    documents.set_saving(1, False)
    assert documents.group.activeStack() is document.stack


def test_reopened_info_keeps_edits_and_removal_forgets_everything(qtbot):
    documents = Documents()
    document = documents.add(info(1))
    document.replace("b", np.full(3, 7, np.int8))
    documents.set_feeds(1, {"x": np.ones(2)})
    changed, removed = [], []
    documents.document_changed.connect(changed.append)
    documents.document_removed.connect(removed.append)
    documents.update_info(replace(info(1), path=Path("moved.npz"), trusted=True))
    assert changed == [1] and document.path == Path("moved.npz") and document.trusted
    assert document.copy("b").tolist() == [7, 7, 7] and document.stack.count() == 1
    assert list(document.feeds) == ["x"]
    documents.set_writable(1, False)
    assert not document.writable and document.copy("b") is not None
    assert documents.remove(1) is document and removed == [1]
    assert 1 not in documents and documents.get(1) is None and documents.remove(1) is None


def test_two_open_files_edit_one_close_the_other_state_intact(qtbot, window, tmp_path):
    edited_path, other_path = tmp_path / "edited.npz", tmp_path / "other.npz"
    np.savez(edited_path, cube=CUBE)
    np.savez(other_path, cube=CUBE * 2)
    edited = open_file(qtbot, window, edited_path)
    other = open_file(qtbot, window, other_path)
    show(qtbot, window, "cube", edited)
    model = window.view.table.array_model
    assert model.setData(model.index(1, 2), "-1")
    show(qtbot, window, "cube", other)  # look at the other file, then close it
    window.close_file(other)

    assert window.documents.handles() == [edited] and list(window.files) == [edited]
    document = window.documents[edited]
    assert document.is_modified() and document.stack.count() == 1
    assert document.copy("cube")[0, 1, 2] == -1
    assert [root.handle for root in window.tree.model.roots()] == [edited]
    assert window.tree.model.mark(edited, "cube") is True
    np.testing.assert_array_equal(show(qtbot, window, "cube", edited)[0, 1, 2], -1)


def test_save_as_moves_the_document_to_its_new_path(qtbot, window, tmp_path):
    path, target = tmp_path / "w.npz", tmp_path / "renamed.npz"
    np.savez(path, cube=CUBE)
    handle = open_file(qtbot, window, path)
    show(qtbot, window, "cube")
    model = window.view.table.array_model
    assert model.setData(model.index(0, 0), "42")
    changed: list[int] = []
    window.documents.document_changed.connect(changed.append)
    with qtbot.waitSignal(window.save_controller.saved, timeout=60_000):
        window.save_controller.save_as(target=target)
    document = window.documents[handle]
    assert changed == [handle] and document.path == target and window.files[handle].path == target
    assert not document.is_modified() and document.stack.count() == 1  # undo stays possible
    assert window.documents.find_path(target) is document and window.documents.find_path(path) is None
    assert window.windowTitle().startswith("renamed.npz")
    with np.load(target) as data:
        assert data["cube"][0, 0, 0] == 42
