"""Trace in the window: marks in the tree, the chart, Go to first NaN/Inf, cancel, export .npz.

Everything runs through the real reader process, as in the product: the trace is the
session's, the values shown after it are the usual evaluation (answered from what the
trace kept), the export fetches them one at a time.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tf_fixtures
from PySide6.QtCore import Qt
from trace_fixtures import TF2_FEEDS, TF2_PRODUCER, TORCH_PRODUCER, tf2_saved_model, torch_program
from window_helpers import open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.views.tree_model import TRACE_COLUMN, TRACE_ROLE
from tensor_inspector.core.activation_archive import INDEX_MEMBER
from tensor_inspector.session.local import LocalSession

TRACE_TIMEOUT = 120_000  # ms: the reader imports torch or TensorFlow first


def _slow_program(directory):
    """200 determinants of a 400x400 weight: a trace long enough to be cancelled midway."""
    import torch

    class Slow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.w = torch.nn.Parameter(torch.randn(400, 400) / 20)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = x
            for _ in range(200):
                s = s + torch.linalg.det(self.w)
            return s

    path = directory / "slow.pt2"
    torch.export.save(torch.export.export(Slow(), (torch.zeros(1),)), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trace_window")
    np.savez(directory / "plain.npz", w=np.ones((2, 2), np.float32))
    return {
        "nan": torch_program(directory, nan=True),
        "finite": torch_program(directory, nan=False),
        "slow": _slow_program(directory),
        "plain": directory / "plain.npz",
    }


def trace(qtbot, win, node_id, handle):
    """Select ``node_id``, press Trace (Ctrl+Shift+T) and wait for the report; also returns the progress seen."""
    controller = win.trace_controller
    seen: list[tuple[int, int]] = []
    controller.worker.progress.connect(lambda _rid, done, total: seen.append((done, total)))
    assert win.select_node(node_id, handle)
    qtbot.waitUntil(win.is_idle, timeout=60_000)  # the selected value is shown first
    assert controller.trace_action.isEnabled()
    with qtbot.waitSignal(controller.traced, timeout=TRACE_TIMEOUT):
        controller.trace_action.trigger()
    report = win.documents[handle].trace
    assert report is not None
    return report, seen


def mark(win, handle, node_id):
    return win.tree.model.find(handle, node_id).data(TRACE_ROLE)


def trace_text(win, handle, node_id):
    index = win.tree.model.find(handle, node_id)
    return index.siblingAtColumn(TRACE_COLUMN).data()


def test_a_nan_is_traced_to_its_producer_marked_in_the_tree_and_selected_by_go_to_first(qtbot, window, files):
    handle = open_file(qtbot, window, files["nan"])
    assert window.trace_controller.trace_action.text() == "&Trace graph"  # the only file's default
    report, seen = trace(qtbot, window, "graph/x", handle)

    assert report.first_nonfinite == TORCH_PRODUCER == "graph/log"
    assert seen and seen[-1] == (len(report.nodes), len(report.nodes))  # nodes done / total
    assert not window.tree.view.isColumnHidden(TRACE_COLUMN)
    producer = mark(window, handle, "graph/log")
    assert producer.first and producer.node.nan == 8
    assert trace_text(window, handle, "graph/log") == "first: NaN 8"
    assert trace_text(window, handle, "graph/mul") == "NaN 8"  # passed on, not produced
    assert not mark(window, handle, "graph/mul").first
    linear = report.node("graph/linear")
    assert trace_text(window, handle, "graph/linear") == f"{linear.min:.4g} … {linear.max:.4g}"
    assert mark(window, handle, "graph").node is None  # the group says NaN/Inf is inside
    assert mark(window, handle, "lin.weight") is None  # stored tensors are not part of the run

    view = window.trace_controller.view
    summary = view.summary.text()
    assert "9 nodes" in summary and "first NaN/Inf produced by <b>graph/log</b>" in summary
    assert "aten.log" in summary
    assert "first NaN/Inf produced by graph/log" in window.statusBar().currentMessage()
    assert view.go_button.isEnabled()

    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        view.go_button.click()
    assert window.shown() == (handle, "graph/log")
    assert window.tree.current()[1].id == "graph/log"
    assert np.isnan(window.view.array()).all()
    assert view.selected() == "graph/log"  # the chart marks the selected node


def test_the_chart_draws_the_report_and_a_click_on_a_node_selects_and_shows_it(qtbot, window, files):
    handle = open_file(qtbot, window, files["nan"])
    report, _ = trace(qtbot, window, "graph", handle)
    view = window.trace_controller.view

    data = view.chart_data()
    assert data.ids == [n.id for n in report.nodes]
    for name, values in (("min", data.low), ("max", data.high), ("std", data.std), ("mean", data.mean)):
        expected = [math.nan if getattr(n, name) is None else getattr(n, name) for n in report.nodes]
        np.testing.assert_array_equal(values, expected)
    assert list(data.nan) == [n.nan for n in report.nodes]
    assert list(data.inf) == [n.inf for n in report.nodes]
    # the NaN markers sit at the positions of the nodes holding NaN, the star at the producer
    marked = sorted(int(x) for x in view.nan_marks.getData()[0])
    assert marked == [i for i, n in enumerate(report.nodes) if n.nan]
    assert list(view.first_mark.getData()[0]) == [data.ids.index("graph/log")]

    box = view.range_plot.getViewBox()
    qtbot.waitUntil(lambda: box.viewRange()[0][0] <= 0 and box.viewRange()[0][1] >= len(data.ids) - 1)
    with qtbot.waitSignal(window.value_shown, timeout=60_000):
        qtbot.mouseClick(
            view.graphics.viewport(), Qt.MouseButton.LeftButton, pos=view.click_point("graph/sub")
        )
    assert window.shown() == (handle, "graph/sub")
    assert view.selected() == "graph/sub"
    assert view.selection_lines[0].value() == data.ids.index("graph/sub")
    shown = window.view.array()
    sub = report.node("graph/sub")
    assert float(shown.min()) == pytest.approx(sub.min, rel=1e-7)
    assert float(shown.max()) == pytest.approx(sub.max, rel=1e-7)
    assert "graph/sub" in view.readout.text()


def test_a_finite_run_says_so_and_offers_no_nan_to_go_to(qtbot, window, files):
    handle = open_file(qtbot, window, files["finite"])
    controller = window.trace_controller
    window.tree.select_file(handle)  # the file's root traces its default entry
    assert controller.trace_action.isEnabled() and controller.trace_action.text() == "&Trace graph"
    assert window.tree.trace_entry(handle, None) == "graph"  # the tree's menu offers "Trace graph"
    with qtbot.waitSignal(controller.traced, timeout=TRACE_TIMEOUT):
        window.tree.trace_requested.emit(handle, None)  # what that menu entry does
    report = window.documents[handle].trace
    assert report.first_nonfinite is None
    view = window.trace_controller.view
    assert "no NaN or Inf" in view.summary.text()
    assert not view.go_button.isEnabled()
    assert not window.trace_controller.go_to_first()
    assert mark(window, handle, "graph") is None
    assert all(mark(window, handle, n.id).node.finite for n in report.nodes)
    assert view.nan_marks.getData()[0].size == 0


def test_cancel_right_after_starting_leaves_the_window_idle_and_usable(qtbot, window, files):
    handle = open_file(qtbot, window, files["slow"])
    controller = window.trace_controller
    assert window.select_node("graph/x", handle)
    qtbot.waitUntil(window.is_idle, timeout=60_000)
    with qtbot.waitSignal(controller.stopped) as stopped:
        controller.trace_action.trigger()
        assert not window.is_idle()
        window.cancel_action.trigger()  # Esc
    assert stopped.args == ["Trace cancelled."]
    assert window.is_idle() and not controller.is_running()
    assert window.documents[handle].trace is None
    assert not window.tree.model.has_traces() and window.tree.view.isColumnHidden(TRACE_COLUMN)
    assert controller.view.summary.text() == "Trace cancelled."
    assert window.statusBar().currentMessage() == "Trace cancelled."
    assert controller.view.cancel_button.isHidden()
    # usable: a value is shown, and the next trace runs to its end
    np.testing.assert_array_equal(show(qtbot, window, "w", handle).shape, (400, 400))
    report, _ = trace(qtbot, window, "graph/x", handle)
    assert len(report.nodes) == 402


def test_cancel_during_the_run_stops_it_between_nodes(qtbot, window, files):
    handle = open_file(qtbot, window, files["slow"])
    controller = window.trace_controller
    progress: list[int] = []

    def on_progress(_rid, done, total):
        progress.append(done)
        if done < total and controller.is_running():
            window.cancel()

    controller.worker.progress.connect(on_progress)
    assert window.select_node("graph", handle)
    with qtbot.waitSignal(controller.stopped, timeout=TRACE_TIMEOUT) as stopped:
        controller.trace_action.trigger()
    assert stopped.args == ["Trace cancelled."]
    assert progress and progress[0] < 402
    assert window.is_idle() and window.documents[handle].trace is None
    assert show(qtbot, window, "w", handle).shape == (400, 400)


def test_the_tree_stays_browsable_while_a_trace_runs(qtbot, window, files):
    handle = open_file(qtbot, window, files["slow"])
    controller = window.trace_controller
    assert window.select_node("graph", handle)
    with qtbot.waitSignals([controller.traced, window.value_shown], timeout=TRACE_TIMEOUT):
        controller.trace_action.trigger()
        assert window.select_node("w", handle)  # read once the reader is free
    assert window.shown() == (handle, "w") and window.view.array().shape == (400, 400)
    assert len(window.documents[handle].trace.nodes) == 402
    assert controller.view.selected() is None  # a stored tensor is not in the chart


def test_export_writes_every_kept_activation_to_one_npz_with_sanitised_names(qtbot, window, files, tmp_path):
    handle = open_file(qtbot, window, files["nan"])
    report, _ = trace(qtbot, window, "graph", handle)
    controller = window.trace_controller
    suggested = []

    def choose(path):
        suggested.append(path)
        return tmp_path / "activations"  # no suffix: .npz is added

    controller.choose_export_path = choose
    with qtbot.waitSignal(controller.exported, timeout=60_000) as done:
        controller.view.export_button.click()
    assert suggested[0].name == "nan_graph_activations.npz"
    path = tmp_path / "activations.npz"
    assert done.args == [str(path)]
    assert controller.view.export_button.isEnabled() and window.is_idle()

    expected = LocalSession()  # the same program run in this process
    info = expected.open(files["nan"])
    arrays = expected.trace(info.handle).arrays
    kept = [n.id for n in report.nodes if n.kept]
    assert kept == list(arrays) and len(kept) == 6  # the 9 nodes less 3 placeholders (x and weights)
    with np.load(path) as archive:
        index = json.loads(archive[INDEX_MEMBER])
        assert sorted(index.values()) == sorted(kept)
        assert set(archive.files) == {*index, INDEX_MEMBER}
        assert len(set(index)) == len(index)
        for name, node_id in index.items():
            assert "/" not in name and ":" not in name
            np.testing.assert_array_equal(archive[name], arrays[node_id])
    assert index["graph_log"] == "graph/log"


def test_a_cancelled_export_writes_nothing(qtbot, window, files, tmp_path):
    handle = open_file(qtbot, window, files["nan"])
    trace(qtbot, window, "graph", handle)
    controller = window.trace_controller
    target = tmp_path / "acts.npz"
    controller.choose_export_path = lambda _path: target
    with qtbot.waitSignal(controller.export_stopped) as stopped:
        controller.export()
        window.cancel()
    assert "nothing was written" in stopped.args[0]
    assert window.is_idle()
    controller.worker.shutdown(10_000)  # the cancelled export has returned: its temp file is gone
    assert list(tmp_path.iterdir()) == []


def test_a_signature_is_traced_with_the_files_inputs(qtbot, window, tmp_path):
    handle = open_file(qtbot, window, tf2_saved_model(tmp_path))
    window.documents.set_feeds(handle, {"x": TF2_FEEDS[True]})
    controller = window.trace_controller
    assert window.select_node("double/Identity:0", handle)
    assert controller.trace_action.text() == "&Trace double"
    report, _ = trace(qtbot, window, "serving_default", handle)
    assert report.entry == "serving_default"
    assert report.first_nonfinite == TF2_PRODUCER
    np.testing.assert_array_equal(report.feeds["x"], TF2_FEEDS[True])
    node_id = "serving_default/StatefulPartitionedCall/mm:0"
    shown = show(qtbot, window, node_id, handle)
    np.testing.assert_allclose(shown, TF2_FEEDS[True] @ np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))
    assert float(shown.min()) == pytest.approx(report.node(node_id).min, rel=1e-7)
    assert controller.view.selected() == node_id
    # other inputs: the marks describe the trace, and the panel says it no longer matches
    window.documents.set_feeds(handle, {"x": TF2_FEEDS[False]})
    assert not controller.view.note.isHidden() and "inputs changed" in controller.view.note.text()
    assert mark(window, handle, TF2_PRODUCER).first
    window.documents.set_feeds(handle, {"x": TF2_FEEDS[True].copy()})
    assert controller.view.note.isHidden()


def test_a_graph_that_would_write_files_is_traced_only_once_trusted(qtbot, window, tmp_path):
    target = tmp_path / "printed.txt"
    handle = open_file(qtbot, window, tf_fixtures.tf2_print_writer(tmp_path, target))
    controller = window.trace_controller
    asked = []
    window.trust_prompt = lambda path, error: asked.append(error) or False
    assert window.select_node("serving_default", handle)
    with qtbot.waitSignal(controller.stopped, timeout=TRACE_TIMEOUT) as stopped:
        controller.trace_action.trigger()
    assert "PrintV2" in str(asked[0]) and "not trusted" in stopped.args[0]
    assert not target.exists() and window.documents[handle].trace is None
    assert "not trusted" in controller.view.summary.text() and window.is_idle()

    window.trust_prompt = lambda path, error: True
    with qtbot.waitSignal(controller.traced, timeout=TRACE_TIMEOUT):
        controller.trace_action.trigger()
    assert window.documents[handle].trusted
    report = window.documents[handle].trace
    assert report.first_nonfinite is None and report.nodes


def test_files_that_cannot_trace_have_trace_disabled(qtbot, window, files):
    handle = open_file(qtbot, window, files["plain"])
    controller = window.trace_controller
    show(qtbot, window, "w", handle)
    assert not controller.trace_action.isEnabled()
    window.tree.select_file(handle)
    assert not controller.trace_action.isEnabled()
    assert window.tree.trace_entry(handle, None) is None
    torch_handle = open_file(qtbot, window, files["nan"])
    show(qtbot, window, "lin.weight", torch_handle)  # a stored tensor, outside the program
    assert not controller.trace_action.isEnabled()
    assert window.select_node("graph/relu", torch_handle)
    assert controller.trace_action.isEnabled()


def test_closing_or_saving_the_file_drops_its_trace(qtbot, window, files):
    handle = open_file(qtbot, window, files["nan"])
    trace(qtbot, window, "graph", handle)
    controller = window.trace_controller
    # saving reopens the document from the written file: what was traced may have changed
    document = window.documents[handle]
    window.documents.update_info(document.info)
    assert document.trace is None and not window.tree.model.has_traces()
    assert "trace it again" in controller.view.message.text()
    assert not controller.view.go_button.isEnabled()

    trace(qtbot, window, "graph", handle)
    window.close_file(handle)
    assert not window.tree.model.has_traces() and window.tree.view.isColumnHidden(TRACE_COLUMN)
    assert controller.view.message.text() == "The traced file was closed."
    assert controller.view.chart_data() is None


def test_the_log_scale_is_labelled_in_values_and_chosen_when_a_few_nodes_dwarf_the_rest():
    from tensor_inspector.app.views.trace_axes import ChartData, log_ticks, symexp, symlog, wide_spread

    ticks = log_ticks(float(symlog(np.array(-2000.0))), float(symlog(np.array(2000.0))))
    assert [round(symexp(t), 6) for t in ticks] == [-1000, -100, -10, 0, 10, 100, 1000]
    assert symexp(float(symlog(np.array(-0.25)))) == pytest.approx(-0.25)

    def chart(lows, highs):
        n = len(lows)
        zeros = np.zeros(n, np.int64)
        return ChartData(
            [str(i) for i in range(n)], np.array(lows), np.array(highs), *(np.zeros(n),) * 2, zeros, zeros
        )

    assert not wide_spread(chart([-1.0, -2.0, 0.0], [1.0, 3.0, 0.5]))
    assert wide_spread(chart([-1.0, -2.0, -1989.0], [1.0, 3.0, 1989.0]))
    assert not wide_spread(chart([np.nan, -1.0], [np.nan, 1.0]))


def test_the_trace_shortcut_is_the_windows_only_one_and_starts_a_trace(qtbot, window, files):
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QAbstractButton

    handle = open_file(qtbot, window, files["nan"])
    show(qtbot, window, "graph/x", handle)  # the array view (and its own shortcuts) exist now
    key = window.trace_controller.trace_action.shortcut()
    assert key == QKeySequence("Ctrl+Shift+T")
    others = [
        a.shortcut() for a in window.findChildren(QAction) if a is not window.trace_controller.trace_action
    ]
    others += [b.shortcut() for b in window.findChildren(QAbstractButton)]
    assert key not in others  # an ambiguous shortcut would do nothing
    with qtbot.waitSignal(window.trace_controller.traced, timeout=TRACE_TIMEOUT):
        qtbot.keyClick(
            window.tree.view,
            Qt.Key.Key_T,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
    assert window.documents[handle].trace.first_nonfinite == TORCH_PRODUCER


def test_a_value_of_a_format_that_lists_values_at_the_top_traces_its_graph(qtbot, window):
    """ONNX lists its values beside the graph's entry, not under it: they trace the graph."""
    from tensor_inspector.demo.make_demo import DEMO_DIR

    handle = open_file(qtbot, window, DEMO_DIR / "tiny_classifier.onnx")
    controller = window.trace_controller
    show(qtbot, window, "conv.weight", handle)  # a stored weight is not part of a run
    assert not controller.trace_action.isEnabled()
    report, _seen = trace(qtbot, window, "probs", handle)
    assert report.entry == "tiny_classifier" and report.first_nonfinite is None
    assert "probs" in {n.id for n in report.nodes}
    assert trace_text(window, handle, "probs").endswith(f" … {report.node('probs').max:.4g}")
