"""A tensor above the first-read budget in the window: a strided sample first, its own indices,
the whole value behind it, and a stale picture veiled while the next value is read."""

from __future__ import annotations

import numpy as np
from window_helpers import open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.core.sampling import PREVIEW_BYTES


def test_a_big_npy_is_sampled_first_then_loaded_whole(qtbot, window, tmp_path):
    rows, cols = 4500, 4000  # 72 MB of float32: above the first-read budget, below the whole-load one
    assert rows * cols * 4 > PREVIEW_BYTES
    big = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "small.npy", np.ones((3, 3), np.float32))
    window.auto_select = False
    handle = open_file(qtbot, window, tmp_path / "big.npy")
    other = open_file(qtbot, window, tmp_path / "small.npy")
    view = window.view
    sampled = []
    view.whole_loaded.connect(lambda: sampled.append(view.sampling()))
    with qtbot.waitSignal(view.whole_loaded, timeout=120_000):
        assert window.select_node(window.documents[handle].nodes[0].id, handle)
        qtbot.waitUntil(lambda: view.sampling() is not None, timeout=60_000)
        sampling = view.sampling()
        assert sampling.shape == (rows, cols) and max(sampling.steps) > 1
        assert view.array() is None and "4500×4000" in view.title.text()
        assert view.table.array_model.full_index(1, 1) == sampling.full_index((1, 1))
    assert view.sampling() is None and sampled == [None]
    np.testing.assert_array_equal(view.array(), big)
    # the next selection veils the old picture until its value is shown
    window.select_node(window.documents[other].nodes[0].id, other)
    assert view.heatmap.is_stale() and not view.table.isEnabled()
    show(qtbot, window, window.documents[other].nodes[0].id, other)
    assert not view.heatmap.is_stale() and view.table.isEnabled()


def test_the_title_names_the_file_as_saved_as(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", w=np.arange(6, dtype=np.float32).reshape(2, 3))
    handle = open_file(qtbot, window, tmp_path / "a.npz")
    show(qtbot, window, "w", handle)
    model = window.view.table.array_model
    assert model.setData(model.index(0, 0), "5")
    assert "a.npz › w" in window.view.title.text()
    with qtbot.waitSignal(window.documents.document_changed, timeout=60_000):
        assert window.save_controller.save_as(handle, target=tmp_path / "b.npz")
    assert "b.npz › w" in window.view.title.text() and "a.npz" not in window.view.title.text()
