"""The heatmap half of ArrayView: levels, non-finite colours, hover/click sync, 1-D, complex."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from view_fixtures import WAIT_MS, show

from tensor_inspector.app.views.colormaps import NAN_RGBA, NEGINF_RGBA, POSINF_RGBA, legend_html


def wait_image(qtbot, view):
    qtbot.waitUntil(view.heatmap.is_ready, timeout=WAIT_MS)


def widget_pos(view, row: float, col: float) -> QPoint:
    """Pixel of the GraphicsView at the centre of plane cell (row, col)."""
    heat = view.heatmap
    scene = heat.plot.vb.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    return heat.graphics.mapFromScene(scene)


def test_levels_auto_symmetric_manual(qtbot, view):
    a = np.linspace(-1.0, 3.0, 40 * 50, dtype=np.float32).reshape(40, 50)
    show(qtbot, view, a)
    heat = view.heatmap
    assert heat.levels() == pytest.approx((-1.0, 3.0))
    heat.set_levels_mode("symmetric")
    wait_image(qtbot, view)
    assert heat.levels() == pytest.approx((-3.0, 3.0))
    heat.set_levels_mode("manual", (0.25, 0.5))
    assert heat.levels() == pytest.approx((0.25, 0.5))
    assert heat.lo_spin.isEnabled()
    heat.hi_spin.setValue(2.0)  # typing a level applies it
    assert heat.levels() == pytest.approx((0.25, 2.0))
    # manual levels survive a new slice of the same array
    show(qtbot, view, a * 2)
    assert heat.levels() == pytest.approx((0.25, 2.0))
    heat.set_levels_mode("auto")
    wait_image(qtbot, view)
    assert heat.levels() == pytest.approx((-2.0, 6.0))
    assert heat.image_item.image is not None
    np.testing.assert_array_equal(heat.image_item.image, a * 2)


def test_diverging_colormap_switches_to_symmetric_levels(qtbot, view):
    show(qtbot, view, np.linspace(-1, 4, 100, dtype=np.float32).reshape(10, 10))
    view.heatmap.set_colormap("diverging (CET-D1)")
    wait_image(qtbot, view)
    assert view.heatmap.levels_combo.currentText() == "symmetric"
    assert view.heatmap.levels() == pytest.approx((-4.0, 4.0))


def test_nan_and_inf_pixels_have_documented_colours(qtbot, view):
    a = np.zeros((4, 4), np.float32)
    a[0, 0], a[1, 2], a[3, 3] = np.nan, np.inf, -np.inf
    show(qtbot, view, a)
    heat = view.heatmap
    heat.plot.setRange(xRange=(0, 4), yRange=(0, 4), padding=0)
    qtbot.wait(50)
    image = heat.graphics.grab().toImage()
    for (row, col), rgba in (((0, 0), NAN_RGBA), ((1, 2), POSINF_RGBA), ((3, 3), NEGINF_RGBA)):
        colour = image.pixelColor(widget_pos(view, row, col))
        assert (colour.red(), colour.green(), colour.blue()) == rgba[:3], (row, col)
    finite = image.pixelColor(widget_pos(view, 2, 1))
    assert (finite.red(), finite.green(), finite.blue()) not in {
        c[:3] for c in (NAN_RGBA, POSINF_RGBA, NEGINF_RGBA)
    }
    assert all(word in legend_html() for word in ("NaN", "+Inf", "Inf"))
    assert heat.levels() == (-0.5, 0.5)  # all finite values are 0: a padded interval


def test_hover_readout_and_click_selects_table_cell(qtbot, view):
    a = np.arange(3 * 20 * 30, dtype=np.float32).reshape(3, 20, 30)
    show(qtbot, view, a)
    with qtbot.waitSignal(view.slice_changed, timeout=WAIT_MS):
        view.axes.sliders[0].setValue(2)
    wait_image(qtbot, view)
    heat = view.heatmap
    pos = widget_pos(view, 7, 11)
    qtbot.mouseMove(heat.graphics.viewport(), pos)
    qtbot.waitUntil(lambda: heat.status.text().startswith("[2, 7, 11]"), timeout=WAIT_MS)
    assert heat.status.text() == f"[2, 7, 11] = {a[2, 7, 11]:g}"
    with qtbot.waitSignal(view.cell_selected, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(heat.graphics.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [(2, 7, 11)]
    current = view.table.currentIndex()
    assert (current.row(), current.column()) == (7, 11)
    assert view.table.selectionModel().isSelected(current)


def test_complex_parts(qtbot, view):
    a = np.array([[3 + 4j, -1 - 1j]], np.complex64)
    show(qtbot, view, a)
    heat = view.heatmap
    assert not heat.complex_combo.isHidden()
    np.testing.assert_allclose(heat.image_item.image, [[5, np.sqrt(2)]], rtol=1e-6)
    for part, expected in (
        ("real", [[3, -1]]),
        ("imag", [[4, -1]]),
        ("phase", [[np.angle(3 + 4j), np.angle(-1 - 1j)]]),
    ):
        heat.complex_combo.setCurrentText(part)
        wait_image(qtbot, view)
        np.testing.assert_allclose(heat.image_item.image, expected, rtol=1e-6)


def test_1d_is_a_line_plot_with_gaps(qtbot, view):
    a = np.sin(np.linspace(0, 6, 200)).astype(np.float32)
    a[50:60] = np.nan
    show(qtbot, view, a)
    heat = view.heatmap
    assert heat.curve.isVisible() and not heat.image_item.isVisible()
    x, y = heat.curve.getOriginalDataset()
    assert len(x) == 200 and np.isnan(y[50:60]).all()
    assert heat.curve.opts["connect"] == "finite"
    assert not heat.cmap_combo.isEnabled()  # colour controls do not apply to a line


def test_bool_and_int_draw_as_numbers_and_scalars_as_text(qtbot, view):
    show(qtbot, view, np.array([[True, False]]))
    np.testing.assert_array_equal(view.heatmap.image_item.image, [[1.0, 0.0]])
    show(qtbot, view, np.array(7, np.int64))
    assert view.heatmap.message_label.text() == "Scalar value: 7"


def test_big_plane_is_reduced_off_thread_and_keeps_an_isolated_nan(qtbot, view):
    a = np.ones((6000, 300), np.float32)
    a[1, 1] = np.nan  # not the cell a subsample would pick: "any" must keep it
    show(qtbot, view, a)
    heat = view.heatmap
    assert heat.block_factor() == 3  # 6000 rows onto at most 2048 picture rows
    assert heat.image_item.image.shape == (2000, 100)
    assert np.isnan(heat.image_item.image[0, 0])
    assert heat.mask_item.image[0, 0].tolist() == list(NAN_RGBA)
    assert heat.marks_item.data["x"].tolist() == [1.5] and heat.marks_item.data["y"].tolist() == [1.5]


def test_the_table_cell_is_outlined_on_the_heatmap(qtbot, view):
    show(qtbot, view, np.arange(30, dtype=np.float32).reshape(5, 6))
    wait_image(qtbot, view)
    assert not view.heatmap.marker.isVisible()
    view.table.select_cell(3, 4)
    rect = view.heatmap.marker.rect()
    assert view.heatmap.marker.isVisible() and (rect.x(), rect.y(), rect.width()) == (4, 3, 1)
    show(qtbot, view, np.arange(7, dtype=np.float32))  # 1-D: a line plot, no cell outline
    view.table.select_cell(2, 0)
    assert not view.heatmap.marker.isVisible()
