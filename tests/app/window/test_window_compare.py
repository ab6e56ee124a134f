"""Compare with… in the window: the table of pairs worst first, the pair drawn as A, B and A - B, cancel.

Everything goes through the real reader process, as in the product: the pairs'
metrics come from ``compare_pair`` in the reader, the drawn planes from ``value``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from misbehaving_backends import enable, make
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from safetensors.numpy import save_file
from window_helpers import open_file, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.dialogs.compare_dialog import Choice
from tensor_inspector.app.window.compare_controller import node_mime

CUBE = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
BIAS = np.arange(4, dtype=np.float32)


def compare(qtbot, win, handle_a, handle_b, node_a=None, node_b=None):
    """Run a comparison to its end; the worst pair is then selected and drawn."""
    controller = win.compare_controller
    with qtbot.waitSignal(controller.worker.compared, timeout=120_000) as done:
        with qtbot.waitSignal(controller.view.ready, timeout=120_000):
            controller.compare(handle_a, handle_b, node_a, node_b)
    return done.args[1]


def rows(win):
    return win.compare_controller.view.tables.rows()


def select(qtbot, win, row):
    view = win.compare_controller.view
    with qtbot.waitSignal(view.ready, timeout=60_000):
        view.tables.select_row(row)
    return view.plots.pair_slice()


def go_to_worst(qtbot, win):
    view = win.compare_controller.view
    with qtbot.waitSignal(view.ready, timeout=60_000):
        view.go_button.click()
    return view.plots.pair_slice()


@pytest.fixture
def files(tmp_path):
    """A: an .npz with one tensor more; B: the same tensors in safetensors, B': one element moved."""
    np.savez(tmp_path / "a.npz", cube=CUBE, bias=BIAS, extra=np.ones(2, np.float32))
    save_file({"cube": CUBE, "bias": BIAS}, str(tmp_path / "same.safetensors"))
    moved = CUBE.copy()
    moved[1, 2, 3] += 0.5
    save_file({"cube": moved, "bias": BIAS}, str(tmp_path / "moved.safetensors"))
    return tmp_path


def test_equal_files_list_every_pair_with_no_difference_and_the_unpaired_name(qtbot, window, files):
    a = open_file(qtbot, window, files / "a.npz")
    b = open_file(qtbot, window, files / "same.safetensors")
    outcome = compare(qtbot, window, a, b)
    assert not outcome.cancelled
    pairs = rows(window)
    assert sorted((p.a, p.b) for p in pairs) == [("bias", "bias"), ("cube", "cube")]
    assert all(p.metrics.max_abs == 0 and p.metrics.equal for p in pairs)
    tables = window.compare_controller.view.tables
    assert [tables.only_a.item(i).text() for i in range(tables.only_a.count())] == ["extra"]
    assert tables.tabText(1) == "Only in A (1)" and tables.only_b.count() == 0
    shown = window.compare_controller.view.plots.pair_slice()  # the first pair, drawn at once
    assert shown is not None and not shown.diff.any()
    assert not window.compare_controller.view.go_button.isEnabled()  # nothing to go to


def test_a_moved_element_comes_first_and_is_the_only_difference_drawn(qtbot, window, files):
    a = open_file(qtbot, window, files / "a.npz")
    b = open_file(qtbot, window, files / "moved.safetensors")
    compare(qtbot, window, a, b)
    first = rows(window)[0]
    assert (first.a, first.b) == ("cube", "cube") and first.metrics.beyond == 1
    assert first.metrics.worst == (1, 2, 3)
    view = window.compare_controller.view
    assert view.tables.current_pair() == first
    shown = view.plots.pair_slice()  # plane at axis 0 = 0: no difference there
    assert shown.index == (0, slice(None), slice(None)) and not shown.diff.any()
    np.testing.assert_array_equal(shown.a, CUBE[0])

    shown = go_to_worst(qtbot, window)
    assert shown.index == (1, slice(None), slice(None))
    assert view.selected_cell() == (1, 2, 3)
    expected = np.zeros((4, 5))
    expected[2, 3] = float(CUBE[1, 2, 3]) - float(np.float32(CUBE[1, 2, 3] + np.float32(0.5)))
    np.testing.assert_array_equal(shown.diff, expected)  # nonzero exactly at that element
    np.testing.assert_array_equal(shown.a, CUBE[1])
    assert np.count_nonzero(shown.rel) == 1 and shown.rel[2, 3] > 0
    drawn = view.plots.images["A-B"].image  # what the heatmap holds
    assert np.flatnonzero(drawn).tolist() == [2 * 5 + 3]
    lo, hi = view.plots.bars["A-B"].levels()
    assert lo == -hi  # centred on 0
    assert view.plots.bars_item.yData is not None  # the histogram is drawn


def test_a_pair_of_the_tree_dragged_onto_another_tensor_is_compared(qtbot, window, files):
    a = open_file(qtbot, window, files / "a.npz")
    b = open_file(qtbot, window, files / "moved.safetensors")
    tree = window.tree
    assert tree.select(b, "cube")
    target = tree.view.visualRect(tree.view.currentIndex()).center()
    mime = node_mime(a, "cube")  # events do not own their data: it must outlive them
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(target, Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(tree.view.viewport(), enter)  # a drop goes where the drag entered
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(target), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    controller = window.compare_controller
    with qtbot.waitSignal(controller.worker.compared, timeout=120_000) as done:
        QApplication.sendEvent(tree.view.viewport(), drop)
    report = done.args[1].report
    assert [(p.a, p.b) for p in report.pairs] == [("cube", "cube")]
    assert report.only_a == [] and report.only_b == []  # only the two tensors
    assert report.pairs[0].metrics.worst == (1, 2, 3)


def test_compare_with_a_file_on_disk_opens_it_and_pairs_a_tensor_by_name(qtbot, window, files):
    a = open_file(qtbot, window, files / "a.npz")
    controller = window.compare_controller
    asked = []

    def pick(handle, node):
        asked.append((handle, node))
        return Choice(path=files / "moved.safetensors")

    controller.pick_other = pick
    assert window.tree.select(a, "bias")
    with qtbot.waitSignal(controller.worker.compared, timeout=120_000) as done:
        controller.compare_action.trigger()
    assert asked == [(a, "bias")]
    assert [(p.a, p.b) for p in done.args[1].report.pairs] == [("bias", "bias")]
    assert window.documents.find_path(files / "moved.safetensors") is not None  # it is in the tree


def test_cancel_stops_a_hanging_comparison_and_the_next_one_runs(qtbot, monkeypatch, tmp_path):
    enable(monkeypatch)  # before the window starts its readers
    from tensor_inspector.app.window.main_window import MainWindow

    win = MainWindow(persist=False)
    win.auto_select = False
    qtbot.addWidget(win)
    try:
        np.savez(tmp_path / "good.npz", x=np.arange(4, dtype=np.float32), y=BIAS)
        good = open_file(qtbot, win, tmp_path / "good.npz")
        bad = open_file(qtbot, win, make(tmp_path, "hang"))
        controller = win.compare_controller
        with qtbot.waitSignal(controller.worker.progress, timeout=60_000):
            controller.compare(good, bad)
        assert controller.is_running() and controller.view.cancel_button.isVisible()
        with qtbot.waitSignal(controller.worker.compared, timeout=30_000) as done:
            qtbot.keyClick(controller.view, Qt.Key.Key_Escape)
        outcome = done.args[1]
        assert outcome.cancelled and outcome.planned == 1 and outcome.report.pairs == []
        assert outcome.report.only_a == ["y"]
        assert not controller.is_running() and not controller.view.cancel_button.isVisible()
        assert not controller.view.go_button.isEnabled()
        assert controller.view.progress_label.text().startswith("Cancelled after 0 of 1 pairs.")
        other = tmp_path / "other.npz"
        np.savez(other, x=np.arange(4, dtype=np.float32))
        second = open_file(qtbot, win, Path(other))
        outcome = compare(qtbot, win, good, second)  # the reader was restarted
        assert [p.metrics.equal for p in outcome.report.pairs] == [True]
    finally:
        win.worker.shutdown()


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    from compare_fixtures import build_ported_model

    return build_ported_model(tmp_path_factory.mktemp("ported"))


def test_a_keras_model_against_its_torch_port_pairs_every_weight_and_draws_in_torch_layout(
    qtbot, window, ported, tmp_path
):
    keras_side = open_file(qtbot, window, ported.keras_file)
    torch_side = open_file(qtbot, window, ported.torch_file)
    compare(qtbot, window, keras_side, torch_side)
    pairs = {p.b.removeprefix("module."): p for p in rows(window)}
    assert set(pairs) == set(ported.torch_weights)
    assert all(p.metrics.max_abs == 0 and p.metrics.equal for p in pairs.values())
    assert {k: p.transform for k, p in pairs.items() if p.transform} == ported.transposed
    tables = window.compare_controller.view.tables
    assert tables.only_a.count() == 0 and tables.only_b.count() == 0
    assert [tables.skipped.item(i).text() for i in range(tables.skipped.count())] == [
        "module.bn1.num_batches_tracked  (in B)"
    ]
    # a Dense kernel (in, out) is drawn in the Linear weight's layout (out, in)
    shown = select(qtbot, window, rows(window).index(pairs["fc1.weight"]))
    np.testing.assert_array_equal(shown.a, ported.torch_weights["fc1.weight"])
    assert not shown.diff.any()

    weights = {k: v.copy() for k, v in ported.torch_weights.items()}
    weights["conv1.weight"][2, 1, 0, 2] += 0.01  # OIHW; Keras keeps HWIO
    save_file(weights, str(tmp_path / "changed.safetensors"))
    changed = open_file(qtbot, window, tmp_path / "changed.safetensors")
    compare(qtbot, window, keras_side, changed)
    first = rows(window)[0]
    assert first.b == "conv1.weight" and first.transform == (3, 2, 0, 1)
    shown = go_to_worst(qtbot, window)
    assert window.compare_controller.view.selected_cell() == (2, 1, 0, 2)
    assert shown.index == (2, 1, slice(None), slice(None))
    np.testing.assert_array_equal(shown.a, ported.torch_weights["conv1.weight"][2, 1])
    np.testing.assert_array_equal(shown.b, weights["conv1.weight"][2, 1])
    assert [tuple(i) for i in np.argwhere(shown.diff)] == [(0, 2)]
