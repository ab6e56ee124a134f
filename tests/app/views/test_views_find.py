"""Next NaN/Inf: F3 walks the non-finite values of an N-D tensor across slices."""

import numpy as np
from PySide6.QtCore import Qt
from view_fixtures import WAIT_MS, show


def wait_status(qtbot, view, text):
    qtbot.waitUntil(lambda: text in view.status.text(), timeout=WAIT_MS)


def test_f3_visits_each_nonfinite_value_then_wraps(qtbot, view):
    a = np.zeros((3, 4, 5), np.float32)
    a[0, 1, 2] = np.inf
    a[2, 3, 4] = np.nan
    show(qtbot, view, a)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_F3)
    wait_status(qtbot, view, "[0, 1, 2] = inf")
    assert view.axes.positions[0] == 0
    assert (view.table.currentIndex().row(), view.table.currentIndex().column()) == (1, 2)
    view.find_next_nonfinite()
    wait_status(qtbot, view, "[2, 3, 4] = nan")
    assert view.axes.positions[0] == 2 and view.current_index()[0] == 2
    assert (view.table.currentIndex().row(), view.table.currentIndex().column()) == (3, 4)
    assert np.isnan(view.current_slice()[3, 4])
    view.find_next_nonfinite()
    wait_status(qtbot, view, "[0, 1, 2] = inf")  # wrapped around
    assert view.axes.positions[0] == 0


def test_find_respects_transposed_axes_and_reports_absence(qtbot, view):
    a = np.ones((4, 6))
    a[3, 1] = -np.inf
    show(qtbot, view, a)
    view.axes.transpose()
    view.find_next_nonfinite()
    wait_status(qtbot, view, "[3, 1] = -inf")
    assert (view.table.currentIndex().row(), view.table.currentIndex().column()) == (1, 3)
    show(qtbot, view, np.ones(5))
    view.find_next_nonfinite()
    wait_status(qtbot, view, "No NaN or Inf")
    show(qtbot, view, np.arange(5))
    view.find_next_nonfinite()
    assert "cannot be NaN" in view.status.text()
