"""Editing in the window: typed and pasted cells, Replace from .npy, undo/redo, marks, close questions."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QLineEdit
from safetensors.numpy import save_file
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.editing import parse_cell
from tensor_inspector.app.views.tree_model import MODIFIED_ROLE
from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.backends import open_path


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    path = tmp_path / "cube.npz"
    np.savez(path, cube=CUBE, small=np.array([[1, 2], [3, 4]], np.int8), other=np.arange(5.0))
    return path


def type_into_cell(qtbot, win: MainWindow, row: int, col: int, text: str) -> None:
    """Double-click path: open the cell's editor, replace its text, press Enter."""
    table = win.view.table
    index = table.array_model.index(row, col)
    table.setCurrentIndex(index)
    table.edit(index)
    editor = open_editor(table, index)
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    commit(qtbot, table, editor)


def open_editor(table, index) -> QLineEdit:
    """The live editor of ``index`` (an earlier, closed editor may still await deletion)."""
    editor = table.indexWidget(index)
    assert isinstance(editor, QLineEdit), "the cell did not open an editor"
    return editor


def commit(qtbot, table, editor: QLineEdit) -> None:
    """Enter commits through a queued call: wait until the editor has closed."""
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: table.state() != QAbstractItemView.State.EditingState)


def tree_mark(win: MainWindow, handle: int, node_id: str | None):
    model = win.tree.model
    item = model.root_for(handle) if node_id is None else model.item_for(handle, node_id)
    index = model.createIndex(item.row, 0, item.uid)
    return index.data(MODIFIED_ROLE), index.data(Qt.ItemDataRole.DisplayRole)


def test_editing_a_slice_cell_of_a_3d_tensor_then_undo_redo(qtbot, window, npz):
    handle = open_file(qtbot, window, npz)
    original = show(qtbot, window, "cube")
    assert not original.flags.writeable  # a memory map of the file: must never be written
    with qtbot.waitSignal(window.view.slice_changed):
        window.view.axes.set_position(0, 1)
    assert window.view.current_index() == (1, slice(None), slice(None))
    type_into_cell(qtbot, window, 2, 3, "42.5")
    edited = window.view.array()
    assert edited is not original and edited[1, 2, 3] == np.float32(42.5)
    assert original[1, 2, 3] == CUBE[1, 2, 3]  # the map is untouched
    expected = CUBE.copy()
    expected[1, 2, 3] = 42.5
    np.testing.assert_array_equal(edited, expected)
    assert window.view.table.array_model.cell_text(2, 3) == "42.5"
    assert window.view.axes.positions[0] == 1  # still on the edited slice
    assert window.edit_controller.undo_action.text() == "Undo edit cube[1,2,3]"
    assert window.isWindowModified() and "[*]" in window.windowTitle()
    assert tree_mark(window, handle, "cube") == (True, "• cube")
    assert tree_mark(window, handle, None)[1].startswith("* cube.npz")
    assert tree_mark(window, handle, "other")[0] is None

    keys = {
        a: [k.toString() for k in getattr(window.edit_controller, a).shortcuts()]
        for a in ("undo_action", "redo_action")
    }
    assert "Ctrl+Z" in keys["undo_action"] and keys["redo_action"] == ["Ctrl+Shift+Z", "Ctrl+Y"]
    window.edit_controller.undo_action.trigger()
    np.testing.assert_array_equal(window.view.array(), CUBE)
    assert not window.isWindowModified()
    assert tree_mark(window, handle, "cube") == (None, "cube")
    assert window.edit_controller.redo_action.text() == "Redo edit cube[1,2,3]"
    window.edit_controller.redo_action.trigger()
    np.testing.assert_array_equal(window.view.array(), expected)
    assert window.isWindowModified()


def test_typing_on_a_cell_starts_editing_and_invalid_text_is_rejected(qtbot, window, npz):
    open_file(qtbot, window, npz)
    show(qtbot, window, "small")
    table = window.view.table
    table.setFocus()
    table.setCurrentIndex(table.array_model.index(0, 1))
    qtbot.keyClick(table, Qt.Key.Key_7)  # any key opens the editor with that key
    editor = open_editor(table, table.currentIndex())
    assert editor.text() == "7"
    commit(qtbot, table, editor)
    assert window.view.array()[0, 1] == 7

    type_into_cell(qtbot, window, 1, 1, "300")
    assert window.view.array()[1, 1] == 4
    assert "300 is out of range for int8 (-128 to 127)" in window.statusBar().currentMessage()
    type_into_cell(qtbot, window, 1, 0, "abc")
    assert window.view.array()[1, 0] == 3
    assert "'abc' is not a valid int8 value" in window.statusBar().currentMessage()
    assert window.documents[window.shown()[0]].stack.count() == 1


def test_pasting_a_block_is_one_undo_step_and_all_or_nothing(qtbot, window, npz):
    open_file(qtbot, window, npz)
    show(qtbot, window, "cube")
    table = window.view.table
    table.setFocus()
    table.setCurrentIndex(table.array_model.index(0, 1))
    QGuiApplication.clipboard().setText("1\t2\t3\n4\t5\t6\n7\t8\t9\n")
    qtbot.keyClick(table, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(window.view.array()[0, :, 1:], np.arange(1, 10).reshape(3, 3))
    np.testing.assert_array_equal(window.view.array()[0, :, 0], CUBE[0, :, 0])
    np.testing.assert_array_equal(window.view.array()[1], CUBE[1])
    assert window.edit_controller.undo_action.text() == "Undo paste 9 values into cube"

    before = window.view.array().copy()
    QGuiApplication.clipboard().setText("10\t11\n12\tbanana\n")
    table.setCurrentIndex(table.array_model.index(0, 0))
    qtbot.keyClick(table, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(window.view.array(), before)
    message = window.statusBar().currentMessage()
    assert "Paste rejected" in message and "banana" in message and "cube[0,1,1]" in message
    assert table.paste_text("1\t2\t3\t4\t5") is False  # 5 columns from column 0 do not fit 4
    assert "does not fit" in window.statusBar().currentMessage()

    window.edit_controller.undo_action.trigger()
    np.testing.assert_array_equal(window.view.array(), CUBE)


def test_a_safetensors_bf16_edit_is_rounded_as_ml_dtypes_rounds(qtbot, window, tmp_path):
    path = tmp_path / "half.safetensors"
    weights = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4).astype(ml_dtypes.bfloat16)
    save_file({"w": weights, "b": np.ones(3, np.float32)}, str(path), metadata={"k": "v"})
    open_file(qtbot, window, path)
    show(qtbot, window, "w")
    type_into_cell(qtbot, window, 1, 2, "0.1")
    value = window.view.array()[1, 2]
    assert value.dtype == ml_dtypes.bfloat16
    assert value.view(np.uint16) == np.array(0.1).astype(ml_dtypes.bfloat16).view(np.uint16)
    assert window.view.table.array_model.cell_text(1, 2) == "0.10009765625"


def test_parse_cell_rules():
    assert parse_cell("1+2j", np.dtype(np.complex64)) == np.complex64(1 + 2j)
    assert parse_cell(" true ", np.dtype(bool)) is np.True_
    assert parse_cell("18446744073709551615", np.dtype(np.uint64)) == np.iinfo(np.uint64).max
    assert parse_cell("0.3", np.dtype(ml_dtypes.float8_e4m3fn)) == np.array(0.3).astype(
        ml_dtypes.float8_e4m3fn
    )
    assert np.isnan(parse_cell("nan", np.dtype(np.float16)))
    with pytest.raises(ValueError, match="out of range for float16"):
        parse_cell("1e6", np.dtype(np.float16))
    with pytest.raises(ValueError, match="would become nan"):
        parse_cell("1000", np.dtype(ml_dtypes.float8_e4m3fn))
    with pytest.raises(ValueError, match="-1 is out of range for uint8"):
        parse_cell("-1", np.dtype(np.uint8))
    with pytest.raises(ValueError, match="not a valid bool"):
        parse_cell("maybe", np.dtype(bool))
    with pytest.raises(ValueError, match="not a valid int32"):
        parse_cell("1.5", np.dtype(np.int32))


def test_replace_from_npy_checks_shape_and_asks_before_a_lossy_cast(qtbot, window, npz, tmp_path):
    handle = open_file(qtbot, window, npz)
    show(qtbot, window, "other")
    np.save(tmp_path / "good.npy", np.full((2, 3, 4), 9, np.float32))
    np.save(tmp_path / "wrong_shape.npy", np.zeros((4, 3, 2), np.float32))
    np.save(tmp_path / "wide.npy", np.full((2, 3, 4), 1 / 3, np.float64))
    np.save(tmp_path / "narrow.npy", np.full((2, 3, 4), 5, np.int8))

    # from the tree's context-menu signal, with the file chooser answered
    window.edit_controller.choose_npy = lambda node: tmp_path / "good.npy"
    with qtbot.waitSignal(window.edit_controller.replaced):
        window.tree.replace_requested.emit(handle, "cube")
    assert window.shown() == (handle, "cube")  # the replaced tensor is shown
    np.testing.assert_array_equal(window.view.array(), np.full((2, 3, 4), 9, np.float32))
    assert window.edit_controller.undo_action.text() == "Undo replace cube"

    with qtbot.waitSignal(window.edit_controller.message) as refused:
        window.edit_controller.replace_from_npy(handle, "cube", tmp_path / "wrong_shape.npy")
    assert "shape [4, 3, 2]" in refused.args[0] and "[2, 3, 4]" in refused.args[0]

    asked = []
    window.edit_controller.ask_lossy_cast = lambda node, src, dst: (
        asked.append((node.id, src.name, dst.name)) or False
    )
    with qtbot.waitSignal(window.edit_controller.message) as declined:
        window.edit_controller.replace_from_npy(handle, "cube", tmp_path / "wide.npy")
    assert asked == [("cube", "float64", "float32")] and "declined" in declined.args[0]
    np.testing.assert_array_equal(window.view.array(), np.full((2, 3, 4), 9, np.float32))

    window.edit_controller.ask_lossy_cast = lambda node, src, dst: asked.append(node.id) or True
    with qtbot.waitSignal(window.edit_controller.replaced):
        window.edit_controller.replace_from_npy(handle, "cube", tmp_path / "wide.npy")
    assert window.view.array().dtype == np.float32 and window.view.array()[0, 0, 0] == np.float32(1 / 3)
    assert "cast from float64 to float32" in window.statusBar().currentMessage()

    window.edit_controller.ask_lossy_cast = lambda node, src, dst: pytest.fail("int8 -> float32 is exact")
    with qtbot.waitSignal(window.edit_controller.replaced):
        window.edit_controller.replace_from_npy(handle, "cube", tmp_path / "narrow.npy")
    np.testing.assert_array_equal(window.view.array(), np.full((2, 3, 4), 5, np.float32))

    for _ in range(3):
        window.edit_controller.undo_action.trigger()
    qtbot.waitUntil(
        lambda: (
            window.shown() == (handle, "cube")
            and window.view.array() is not None
            and window.view.array()[0, 0, 0] == 0
        )
    )
    np.testing.assert_array_equal(window.view.array(), CUBE)  # read from the file again
    assert not window.isWindowModified()


def test_closing_a_modified_file_asks_and_cancel_keeps_it(qtbot, window, npz):
    handle = open_file(qtbot, window, npz)
    show(qtbot, window, "small")
    type_into_cell(qtbot, window, 0, 0, "5")
    asked: list[list[str]] = []
    window.save_controller.ask_unsaved = lambda names: asked.append(names) or "cancel"
    window.close_file(handle)
    assert asked == [["cube.npz"]] and handle in window.files
    assert window.view.array()[0, 0] == 5

    window.save_controller.ask_unsaved = lambda names: asked.append(names) or "discard"
    window.close_file(handle)
    assert len(asked) == 2 and handle not in window.files
    with np.load(npz) as data:
        assert data["small"][0, 0] == 1  # discarded: the file never changed


def test_quitting_with_unsaved_edits_asks_cancel_keeps_the_window_save_then_quits(qtbot, window, npz):
    handle = open_file(qtbot, window, npz)
    show(qtbot, window, "small")
    type_into_cell(qtbot, window, 1, 1, "-8")
    window.save_controller.ask_unsaved = lambda names: "cancel"
    assert window.close() is False
    assert window.isVisible() and handle in window.files

    window.save_controller.ask_unsaved = lambda names: "save"
    assert window.close() is False  # closes once the save has finished
    qtbot.waitUntil(lambda: not window.isVisible())
    with np.load(npz) as data:
        assert data["small"][1, 1] == -8
    assert Path(str(npz) + ".bak").exists()


def test_non_editable_nodes_and_reopened_read_back(qtbot, window, npz):
    handle = open_file(qtbot, window, npz)
    show(qtbot, window, "other")
    model = window.view.table.array_model
    assert model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsEditable
    window.documents.set_writable(handle, False)  # as for a format without a writer
    show(qtbot, window, "small")
    assert not model.flags(model.index(0, 0)) & Qt.ItemFlag.ItemIsEditable
    assert not window.save_controller.save_as_action.isEnabled()
    assert "cannot be written back" in window.save_controller.save_as_action.toolTip()
    assert window.edit_controller.edit_refusal(handle, window.tree.current()[1]) is not None
    with open_path(npz) as source:
        np.testing.assert_array_equal(source.read("cube"), CUBE)


def test_editing_a_tensor_too_big_to_copy_is_refused_with_a_reason(qtbot, window, npz, monkeypatch):
    from tensor_inspector.app import editing

    monkeypatch.setattr(editing, "MAX_EDIT_COPY_BYTES", 64)  # the 96-byte cube is "too big"
    open_file(qtbot, window, npz)
    original = show(qtbot, window, "cube")
    model = window.view.table.array_model
    assert not model.setData(model.index(0, 0), "5")
    assert "editing copies the whole tensor into memory" in window.statusBar().currentMessage()
    assert window.view.array() is original and original[0, 0, 0] == CUBE[0, 0, 0]
