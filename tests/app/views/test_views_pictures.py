"""What the heatmap shows, judged on the grabbed pixels: texture, a lone NaN, log scale, sampled tensors."""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QRect
from view_fixtures import WAIT_MS, show

from tensor_inspector.app.views.colormaps import NAN_RGBA
from tensor_inspector.app.views.heatmap_render import ColourSettings
from tensor_inspector.core.sampling import Sampling


def picture_colours(view) -> dict[tuple[int, int, int], int]:
    """Pixel counts per colour inside the image area of the heatmap as grabbed from the screen."""
    heat = view.heatmap
    heat.graphics.repaint()
    rect = heat.plot.vb.sceneBoundingRect().toRect() & heat.image_item.sceneBoundingRect().toRect()
    area = heat.graphics.mapFromScene(rect.topLeft()), heat.graphics.mapFromScene(rect.bottomRight())
    image = heat.graphics.grab(QRect(area[0], area[1]).adjusted(2, 2, -2, -2)).toImage()
    width, height = image.width(), image.height()
    bits = image.convertToFormat(image.Format.Format_RGB32).constBits()
    pixels = np.frombuffer(bits, np.uint8, count=width * height * 4).reshape(height, width, 4)
    keys, counts = np.unique(pixels[:, :, :3].reshape(-1, 3), axis=0, return_counts=True)
    # Format_RGB32 is BGRA in memory on little-endian machines
    return {(int(k[2]), int(k[1]), int(k[0])): int(n) for k, n in zip(keys, counts)}


def test_random_normal_4096_has_texture(qtbot, view):
    a = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    show(qtbot, view, a)
    colours = picture_colours(view)
    assert sum(colours.values()) > 100_000  # the picture really covers an area
    assert len(colours) > 150, len(colours)  # a block mean would be one flat colour


def test_one_nan_among_16m_zeros_is_visible_unzoomed(qtbot, view):
    a = np.zeros((4096, 4096), np.float32)
    a[1234, 3001] = np.nan
    show(qtbot, view, a)
    colours = picture_colours(view)
    assert colours.get(NAN_RGBA[:3], 0) >= 9, "the NaN marker is not on screen"
    assert view.stats_panel.text("NaN", 0).startswith("1 ")


def test_log_scale_renders_with_a_labelled_colour_bar(qtbot, view):
    a = np.logspace(-3, 5, 512 * 512, dtype=np.float64).reshape(512, 512)
    show(qtbot, view, a)
    heat = view.heatmap
    heat.set_settings(ColourSettings(scale="log"))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    lo, hi = heat.levels()
    assert np.isclose(lo, 1e-3) and np.isclose(hi, 1e5)
    assert heat.colorbar.axis.labelText == "log10(value)"
    assert heat.range_label.text() == "colours: 0.001 … 100000, log"
    assert len(picture_colours(view)) > 100  # eight decades spread over the whole colormap
    linear = heat.image_item.image.copy()
    heat.set_settings(ColourSettings(scale="linear"))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    assert not np.allclose(linear, heat.image_item.image)


def test_symlog_and_gamma_change_the_picture_not_the_range(qtbot, view):
    a = np.linspace(-100, 100, 200 * 200, dtype=np.float32).reshape(200, 200)
    show(qtbot, view, a)
    heat = view.heatmap
    heat.set_settings(ColourSettings(scale="symlog"))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    assert np.allclose(heat.levels(), (-100, 100), rtol=1e-5)
    assert np.nanmax(heat.image_item.image) < 10  # log units
    heat.set_settings(ColourSettings(scale="gamma", gamma=2.0))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    assert heat.range_label.text().endswith(", gamma 2")


def test_levels_from_percentile_and_mean_k_std(qtbot, view):
    a = np.random.default_rng(1).standard_normal((300, 300)).astype(np.float32)
    a[0, 0] = 1e6  # one outlier: min/max levels would make everything else one colour
    show(qtbot, view, a)
    heat = view.heatmap
    assert heat.levels()[1] == 1e6
    heat.set_settings(ColourSettings(levels="percentile", percentile=1.0))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    assert 1.5 < heat.levels()[1] < 3.5
    heat.set_settings(ColourSettings(levels="mean ± k std", k=2.0))
    qtbot.waitUntil(heat.is_ready, timeout=WAIT_MS)
    mean, std = float(a.astype(np.float64).mean()), float(a.astype(np.float64).std())
    assert np.allclose(heat.levels(), (mean - 2 * std, mean + 2 * std), rtol=1e-4)


def test_a_sample_speaks_the_tensors_indices_and_refines_when_zoomed(qtbot, view):
    full = np.arange(1000 * 800, dtype=np.float32).reshape(1000, 800)
    sampling = Sampling((1000, 800), (10, 10))
    reads = []
    release = threading.Event()  # the whole value waits until the sample has been looked at

    def fetch(index, cancel=None):
        if index == (slice(None), slice(None)):
            release.wait(WAIT_MS / 1000)
        else:
            reads.append(index)
        return full[index]

    show(qtbot, view, full[::10, ::10], sampling=sampling, fetch=fetch)
    assert "Sample of a 1000×800 tensor" in view.sample_note.text()
    assert view.array() is None  # nothing may export or edit the sample as if it were the tensor
    assert not view.table.array_model.is_editable()
    model = view.table.array_model
    assert model.headerData(3, 2) == "30"  # Qt.Vertical: row 3 of the sample is row 30
    assert model.full_index(3, 4) == (30, 40)
    heat = view.heatmap
    assert heat.plot.vb.viewRange()[0] == [0, 800]  # the plot covers the tensor's extent
    assert heat.readout(35, 47) == "[35, 47] ≈ 24040  (sampled at [30, 40])"
    heat.plot.setRange(xRange=(100, 200), yRange=(500, 600), padding=0)
    qtbot.waitUntil(lambda: heat._tile is not None, timeout=WAIT_MS)
    request, values, _ = heat._tile
    assert request.step == 1 and reads[-1] == (slice(500, 600, 1), slice(100, 200, 1))
    np.testing.assert_array_equal(values, full[500:600, 100:200])
    assert heat.readout(550, 150) == f"[550, 150] = {full[550, 150]:g}"
    # the whole value (3 MB) follows the sample and takes its place
    release.set()
    qtbot.waitUntil(lambda: view.array() is not None, timeout=WAIT_MS)
    assert view.array().shape == (1000, 800) and view.sampling() is None
    assert view.table.array_model.headerData(3, 2) == "3"


def test_a_sample_of_a_tensor_too_big_to_load_streams_exact_statistics(qtbot, view, monkeypatch):
    from tensor_inspector.app.views import array_sampling, array_stats

    monkeypatch.setattr(array_sampling, "FULL_LOAD_BYTES", 1000)  # stays a sample
    monkeypatch.setattr(array_stats, "SLAB_BYTES", 64 * 4 * 50)  # 50 rows per read
    full = np.random.default_rng(2).standard_normal((600, 64)).astype(np.float32)
    full[123, 45] = np.nan
    sampling = Sampling((600, 64), (4, 1))
    show(qtbot, view, full[::4], sampling=sampling, fetch=lambda index, cancel=None: full[index])
    assert "from a sample of 9,600 values" in view.stats_panel.text("note", 0)
    assert not view.stats_panel.exact_button.isHidden()
    view.stats_panel.exact_button.click()
    qtbot.waitUntil(lambda: view.stats_panel.text("NaN", 0).startswith("1 "), timeout=WAIT_MS)
    assert view.stats_panel.stats(0).count == 600 * 64
    assert np.isclose(view.stats_panel.stats(0).mean, np.nanmean(full.astype(np.float64)))
