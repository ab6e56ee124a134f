"""Statistics panel (whole tensor and slice) and the latest-request-wins background runner."""

from __future__ import annotations

import threading

import ml_dtypes
import numpy as np
from view_fixtures import WAIT_MS, show

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.views.array_view import stats_job
from tensor_inspector.app.views.stats_panel import SLICE, WHOLE
from tensor_inspector.backends.base import InspectorError
from tensor_inspector.core.stats import compute_stats


def test_whole_and_slice_statistics(qtbot, view):
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    a[1, 0, 0] = np.nan
    a[0, 2, 3] = np.inf
    show(qtbot, view, a)
    panel = view.stats_panel
    whole, part = panel.stats(WHOLE), panel.stats(SLICE)
    assert whole.shape == (2, 3, 4) and whole.nan == 1 and whole.posinf == 1
    assert part.shape == (3, 4) and part.nan == 0 and part.posinf == 1
    assert part.max == 10.0 and part.min == 0.0 and part.zeros == 1
    assert panel.text("shape", WHOLE) == "(2, 3, 4)"
    assert panel.text("NaN", WHOLE) == "1 (4.17%)"
    assert panel.text("NaN", SLICE) == "0"
    assert panel.text("dtype", WHOLE) == "float32 (f32)"
    assert panel.text("size", WHOLE) == "24 values, 96 B"
    assert panel.text("max", SLICE) == "10"

    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.sliders[0].setValue(1)
    qtbot.waitUntil(view.stats_ready, timeout=WAIT_MS)
    part = panel.stats(SLICE)
    assert part.nan == 1 and part.posinf == 0
    assert part.max == 23.0 and part.min == 13.0
    assert panel.stats(WHOLE) is whole  # the whole tensor is not recomputed for a new slice
    assert panel.curves[WHOLE].xData is not None and len(panel.curves[WHOLE].xData) == 65


def test_2d_slice_column_repeats_whole_and_given_stats_are_used(qtbot, view):
    a = np.ones((5, 6), ml_dtypes.bfloat16)
    given = compute_stats(a)
    given.note = "precomputed"
    show(qtbot, view, a, whole_stats=given)
    assert view.stats_panel.stats(WHOLE) is given
    assert view.stats_panel.stats(SLICE) is given
    assert view.stats_panel.text("note", WHOLE) == "precomputed"
    assert view.stats_panel.text("dtype", WHOLE) == "bfloat16 (bf16)"


def test_stale_stats_result_is_ignored(qtbot, view):
    gate, started = threading.Event(), threading.Event()
    original = view.runner.submit
    slow = np.arange(10, dtype=np.float64)

    def gated(channel, fn, *args, **kwargs):
        if args and args[0] is slow:

            def waiting(*a, **k):
                started.set()
                gate.wait(30)
                k.pop("cancel")  # finish as if cancellation came too late
                return fn(*a, **k)

            return original(channel, waiting, *args, **kwargs)
        return original(channel, fn, *args, **kwargs)

    view.runner.submit = gated
    view.set_array(slow)  # its statistics block until the gate opens
    assert started.wait(30)
    show(qtbot, view, np.full((3, 3), 7.0))  # the newer array wins
    assert view.stats_panel.stats(WHOLE).max == 7.0
    dropped = view.runner.dropped
    gate.set()
    qtbot.waitUntil(lambda: view.runner.dropped > dropped, timeout=WAIT_MS)
    assert view.stats_panel.stats(WHOLE).max == 7.0  # the late result for `slow` was dropped
    assert view.stats_panel.stats(WHOLE).shape == (3, 3)


def test_runner_delivers_latest_per_channel_and_errors_as_sentences(qtbot):
    runner = BackgroundRunner()
    gate = threading.Event()
    got, errors = [], []
    runner.submit("a", lambda: (gate.wait(30), "old")[1], on_done=got.append)
    second = runner.submit("a", lambda: "new", on_done=got.append)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as blocker:
        pass
    assert blocker.args == ["a", second, "new"]
    gate.set()
    qtbot.waitUntil(lambda: runner.dropped == 1, timeout=WAIT_MS)
    assert got == ["new"]

    def broken():
        raise InspectorError("The file is truncated.")

    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as blocker:
        runner.submit("b", broken, on_error=errors.append)
    assert blocker.args[2] == "The file is truncated." and errors == ["The file is truncated."]
    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as blocker:
        runner.submit("b", lambda: 1 / 0)
    assert blocker.args[2] == "ZeroDivisionError: division by zero"

    seen = []
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.submit("c", lambda cancel: seen.append(cancel) or "ok", cancellable=True)
    assert isinstance(seen[0], threading.Event) and not seen[0].is_set()
    runner.wait_idle(10_000)


def test_stats_of_a_huge_non_contiguous_view_are_sampled_not_copied():
    a = np.broadcast_to(np.arange(4, dtype=np.float32), (20000, 20000, 4))  # 6.4 GB if copied
    stats = stats_job(a)
    assert stats.shape == a.shape and stats.count == a.size
    assert stats.min == 0.0 and stats.max == 3.0
    assert "estimated" in stats.note


def test_message_replaces_the_views(qtbot, view):
    show(qtbot, view, np.ones((2, 2)))
    view.show_message("The file is truncated.", error=True)
    assert view.array() is None
    assert view.stack.currentWidget() is view.message_label
    assert view.message_label.text() == "The file is truncated."
    assert view.stats_ready()
    show(qtbot, view, np.zeros(3))
    assert view.stack.currentIndex() == 0
