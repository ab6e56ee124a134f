"""Daily use: readouts never stale, remembered colours, rows for files still opening, columns that fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from view_fixtures import WAIT_MS, show

from tensor_inspector.app.views.heatmap_render import ColourSettings
from tensor_inspector.core.nodes import Node, NodeKind


def test_the_cell_readout_follows_slice_changes_and_edits(qtbot, view):
    cube = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    show(qtbot, view, cube.copy())
    view.table.select_cell(1, 2)
    assert view.status.text() == "[0, 1, 2] = 6"
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.sliders[0].setValue(1)
    assert view.status.text() == "[1, 1, 2] = 18"  # not the previous slice's value
    edited = cube.copy()
    edited[1, 1, 2] = -7
    view.replace_array(edited)
    assert view.status.text() == "[1, 1, 2] = -7"


def test_the_hover_readout_of_the_previous_tensor_is_cleared(qtbot, view):
    show(qtbot, view, np.ones((5, 5), np.float32))
    view.heatmap.status.setText("[3, 3] = 1")  # what hovering left there
    show(qtbot, view, np.zeros((2, 2), np.float32))
    assert view.heatmap.status.text().strip() == ""


def test_error_panel_keeps_the_whole_sentence_and_copies_it(qtbot, view):
    from PySide6.QtGui import QGuiApplication

    sentence = "Could not open x.safetensors: " + "the header is cut off; " * 12
    view.show_message(sentence, error=True)
    assert view.message_label.text() == sentence and view.message_label.is_error()
    view.message_label.copy_button.click()
    assert QGuiApplication.clipboard().text() == sentence
    view.show_message("Select a tensor.")
    assert not view.message_label.is_error()


def test_colours_are_remembered_between_windows(qtbot, view):
    from tensor_inspector.app.window.settings import load_colours, remember_colours

    remember_colours(view.heatmap)
    view.heatmap.set_settings(
        ColourSettings(colormap="inferno", scale="symlog", levels="percentile", percentile=2.0)
    )
    assert load_colours() == ColourSettings(
        colormap="inferno", scale="symlog", levels="percentile", percentile=2.0
    )
    from tensor_inspector.app.views.array_view import ArrayView

    other = ArrayView()
    qtbot.addWidget(other)
    remember_colours(other.heatmap)
    assert (
        other.heatmap.settings().colormap == "inferno" and other.heatmap.scale_combo.currentText() == "symlog"
    )


def test_a_file_still_opening_has_a_row_saying_what_loads(qtbot):
    from tensor_inspector.app.views.tree import NodeTree
    from tensor_inspector.app.window.open_controller import opening_text

    assert opening_text(Path("model.ckpt.index")) == "loading TensorFlow…"
    assert opening_text(Path("weights.pt")) == "loading PyTorch…"
    assert opening_text(Path("a.npy")) == "opening…"
    tree = NodeTree()
    qtbot.addWidget(tree)
    tree.model.add_pending(7, Path("/m/model.ckpt.index"), "loading TensorFlow…", order=7)
    index = tree.model.index(0, 0)
    assert index.data() == "model.ckpt.index  loading TensorFlow…"
    assert not tree.model.flags(index)  # nothing to select yet
    tree.model.remove_file(-7)
    assert tree.model.rowCount() == 0


def test_value_columns_fit_rows_shown_later(qtbot):
    from tensor_inspector.app.views.tree import NodeTree

    tree = NodeTree()
    qtbot.addWidget(tree)
    tree.resize(600, 400)
    tree.show()
    nodes = [Node(id="g", name="g", kind=NodeKind.GROUP)] + [
        Node(id=f"g/t{i}", name=f"t{i}", kind=NodeKind.TENSOR, parent="g", dtype="float32",
             shape=(230000000 + i, 4096), nbytes=4 * 4096 * (230000000 + i))
        for i in range(300)
    ]  # fmt: skip
    tree.add_file(1, Path("big.safetensors"), "safetensors", nodes)
    narrow = tree.view.columnWidth(2)
    group = tree.proxy.mapFromSource(tree.model.find(1, "g"))
    tree.view.expand(group)
    shape_text = tree.proxy.index(0, 2, group).data()
    assert tree.view.columnWidth(2) > narrow
    assert tree.view.columnWidth(2) >= tree.view.fontMetrics().horizontalAdvance(shape_text)


def test_the_colours_dialog_applies_scale_levels_and_gamma(qtbot, view):
    show(qtbot, view, np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    dialog = view.heatmap.open_colour_dialog()
    assert not dialog.gamma_spin.isEnabled() and not dialog.k_spin.isEnabled()
    dialog.scale_combo.setCurrentText("gamma")
    dialog.gamma_spin.setValue(2.5)
    dialog.levels_combo.setCurrentText("mean ± k std")
    dialog.k_spin.setValue(1.5)
    assert dialog.gamma_spin.isEnabled() and dialog.k_spin.isEnabled()
    dialog.accept()
    settings = view.heatmap.settings()
    assert (settings.scale, settings.gamma, settings.levels, settings.k) == (
        "gamma",
        2.5,
        "mean ± k std",
        1.5,
    )
    qtbot.waitUntil(view.heatmap.is_ready, timeout=WAIT_MS)
    assert view.heatmap.range_label.text().endswith(", gamma 2.5")
