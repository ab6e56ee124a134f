"""The table half of ArrayView: cell texts, N-D slicing, copy, click, editing hook."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication
from view_fixtures import WAIT_MS, show

from tensor_inspector.app.views.table_model import SPECIAL_BACKGROUNDS


def texts(view):
    model = view.table.model()
    return [
        [model.data(model.index(r, c)) for c in range(model.columnCount())] for r in range(model.rowCount())
    ]


def test_3d_table_follows_axes_and_slider(qtbot, view):
    a = np.arange(4 * 3 * 5, dtype=np.int32).reshape(4, 3, 5)
    show(qtbot, view, a, title="cube")
    assert texts(view) == [[str(v) for v in row] for row in a[0]]  # rows axis 1, columns axis 2
    assert view.current_index() == (0, slice(None), slice(None))

    # rows = axis 0, columns = axis 2: the slider is now on axis 1
    view.axes.row_combo.setCurrentIndex(0)
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.row_combo.activated.emit(0)
    assert list(view.axes.sliders) == [1]
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.sliders[1].setValue(2)
    assert view.axes.spins[1].value() == 2
    assert view.current_index() == (slice(None), 2, slice(None))
    assert texts(view) == [[str(v) for v in row] for row in a[:, 2, :]]
    np.testing.assert_array_equal(view.current_slice(), a[:, 2, :])

    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        qtbot.mouseClick(view.axes.transpose_button, Qt.MouseButton.LeftButton)
    assert texts(view) == [[str(v) for v in row] for row in a[:, 2, :].T]
    np.testing.assert_array_equal(view.heatmap.plane(), a[:, 2, :].T)  # same slice in both views


def test_spin_box_moves_the_slider(qtbot, view):
    a = np.arange(5 * 2 * 2, dtype=np.int64).reshape(5, 2, 2)
    show(qtbot, view, a)
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.spins[0].setValue(4)
    assert view.axes.sliders[0].value() == 4
    assert texts(view) == [[str(v) for v in row] for row in a[4]]


def test_cell_texts_of_special_dtypes(qtbot, view):
    show(qtbot, view, np.array(2.5, np.float32))
    assert texts(view) == [["2.5"]]
    assert view.current_index() == ()

    show(qtbot, view, np.array([1, -2, 3], np.int8))
    assert texts(view) == [["1"], ["-2"], ["3"]]
    model = view.table.model()
    assert model.headerData(2, Qt.Orientation.Vertical) == "2"

    show(qtbot, view, np.array([[1 + 2j, 0.5 - 1e-8j]], np.complex64))
    assert texts(view) == [["1+2j", "0.5-1e-08j"]]

    show(qtbot, view, np.array([True, False]))
    assert texts(view) == [["true"], ["false"]]

    show(qtbot, view, np.array([0.1, 1 / 3, -3.0], ml_dtypes.bfloat16))
    # the value bf16 really stores, digit for digit
    assert texts(view) == [["0.10009765625"], ["0.333984375"], ["-3"]]

    show(qtbot, view, np.array([0.1, -448.0], ml_dtypes.float8_e4m3fn))
    assert texts(view) == [["0.1015625"], ["-448"]]

    info = np.iinfo(np.uint64)
    show(qtbot, view, np.array([info.max, 0], np.uint64))
    assert texts(view) == [["18446744073709551615"], ["0"]]
    show(qtbot, view, np.array([np.iinfo(np.int64).min], np.int64))
    assert texts(view) == [["-9223372036854775808"]]

    show(qtbot, view, np.array([["ab", "c"]]))
    assert texts(view) == [["ab", "c"]]
    assert "No heatmap" in view.heatmap.message_label.text()


def test_number_formats(qtbot, view):
    show(qtbot, view, np.array([[1234.5678, -0.000123]], np.float64))
    assert texts(view) == [["1234.5678", "-0.000123"]]
    view.set_number_format("fixed", 2)
    assert texts(view) == [["1234.57", "-0.00"]]
    view.set_number_format("scientific", 3)
    assert texts(view) == [["1.235e+03", "-1.230e-04"]]
    view.set_number_format("general", 3)
    assert texts(view) == [["1.23e+03", "-0.000123"]]
    assert view.format_combo.currentText() == "general"
    # the toolbar drives the same setting
    view.format_combo.setCurrentText("fixed")
    view.precision_spin.setValue(1)
    assert texts(view) == [["1234.6", "-0.0"]]
    with pytest.raises(ValueError):
        view.set_number_format("engineering", 3)


def test_nan_and_inf_cells_are_coloured(qtbot, view):
    show(qtbot, view, np.array([[np.nan, np.inf, -np.inf, 1.0]], np.float32))
    model = view.table.model()
    colours = [model.data(model.index(0, c), Qt.ItemDataRole.BackgroundRole) for c in range(4)]
    assert colours[:3] == [
        SPECIAL_BACKGROUNDS["nan"],
        SPECIAL_BACKGROUNDS["posinf"],
        SPECIAL_BACKGROUNDS["neginf"],
    ]
    assert colours[3] is None
    assert len(set(c.name() for c in colours[:3])) == 3
    assert texts(view) == [["nan", "inf", "-inf", "1"]]


def test_copy_selection_as_tsv(qtbot, view):
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
    show(qtbot, view, a)
    table = view.table
    model = table.model()
    table.selectionModel().select(
        QItemSelection(model.index(1, 1), model.index(2, 3)), QItemSelectionModel.SelectionFlag.ClearAndSelect
    )
    expected = "1.25\t1.5\t1.75\n2.25\t2.5\t2.75"
    assert view.selected_tsv() == expected
    QGuiApplication.clipboard().clear()
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == expected


def test_click_emits_full_nd_index(qtbot, view):
    a = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    show(qtbot, view, a)
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.sliders[0].setValue(1)
    table = view.table
    index = table.model().index(2, 3)
    rect = table.visualRect(index)
    with qtbot.waitSignal(view.cell_selected, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [(1, 2, 3)]
    assert view.status.text() == f"[1, 2, 3] = {a[1, 2, 3]}"


def test_huge_broadcast_array_is_never_materialised(qtbot, view):
    a = np.broadcast_to(np.float32(0.5), (20000, 20000))  # 1.6 GB if copied
    view.set_array(a, title="broadcast")
    model = view.table.model()
    assert (model.rowCount(), model.columnCount()) == (20000, 20000)
    assert model.plane() is a  # the model holds the view itself, no per-cell lists
    assert model.data(model.index(19999, 19999)) == "0.5"
    qtbot.waitUntil(view.stats_ready, timeout=WAIT_MS)
    assert view.stats_panel.stats(0).max == 0.5
    assert view.heatmap.block_factor() > 1  # drawn from block means, not the full plane


def test_editing_is_off_by_default_and_writes_when_enabled(qtbot, view):
    a = np.zeros((2, 2), ml_dtypes.bfloat16)
    show(qtbot, view, a)
    model = view.table.model()
    index = model.index(1, 0)
    assert not model.flags(index) & Qt.ItemFlag.ItemIsEditable
    assert not model.setData(index, "1.5")
    model.set_editable(True)
    assert model.flags(index) & Qt.ItemFlag.ItemIsEditable
    with qtbot.waitSignal(model.value_edited, timeout=WAIT_MS) as blocker:
        assert model.setData(index, "0.1")
    assert blocker.args[0] == (1, 0)
    assert a[1, 0] == ml_dtypes.bfloat16(0.1)
    assert model.data(index) == "0.10009765625"
    assert not model.setData(index, "not a number")
