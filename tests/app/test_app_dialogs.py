"""Export dialog, feeds panel and trust dialog, driven programmatically (no modal exec)."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from tensor_inspector.app.dialogs.export_dialog import ExportDialog
from tensor_inspector.app.dialogs.trust_dialog import TrustDialog
from tensor_inspector.app.views.feeds_panel import FeedChoice, FeedsPanel, build_feed, parse_shape
from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.settings import settings
from tensor_inspector.backends import FeedSpec, InspectorError, TrustRequired
from tensor_inspector.core.export import export_array


def bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


@pytest.fixture
def cube() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 4, 5)).astype(ml_dtypes.bfloat16)


def test_export_whole_tensor_as_npy_is_bit_identical(qtbot, tmp_path, cube):
    dialog = ExportDialog(cube, (1, slice(None), slice(None)), name="enc/w", directory=tmp_path)
    qtbot.addWidget(dialog)
    assert dialog.fmt() == "npy"  # the default
    assert Path(dialog.path_edit.text()) == tmp_path / "enc_w.npy"
    assert "bfloat16" in dialog.info.text() and "3×4×5" in dialog.info.text()
    with qtbot.waitSignal(dialog.exported):
        dialog.accept()
    back = np.load(tmp_path / "enc_w.npy")
    assert back.dtype == cube.dtype and back.shape == cube.shape
    assert bits(back) == bits(cube)


def test_export_current_slice_to_npz_and_csv(qtbot, tmp_path, cube):
    index = (2, slice(None), slice(None))
    dialog = ExportDialog(cube, index, name="cube", directory=tmp_path)
    qtbot.addWidget(dialog)
    dialog.set_scope(whole=False)
    dialog.set_format("npz")
    assert dialog.path_edit.text().endswith("cube.npz")
    dialog.key_edit.setText("plane")
    dialog.accept()
    with np.load(tmp_path / "cube.npz") as archive:
        assert archive.files == ["plane"]
        assert bits(archive["plane"]) == bits(cube[2])
    dialog = ExportDialog(cube, index, name="cube", directory=tmp_path)
    qtbot.addWidget(dialog)
    dialog.set_path(tmp_path / "plane.csv")  # the suffix picks the format
    assert dialog.fmt() == "csv"
    assert not dialog.save_button.isEnabled()  # 3-D whole tensor cannot be CSV
    dialog.set_scope(whole=False)
    assert dialog.save_button.isEnabled()
    dialog.accept()
    text = np.loadtxt(tmp_path / "plane.csv", delimiter=",")
    np.testing.assert_array_equal(text, cube[2].astype(np.float64))


def test_export_with_a_cast_and_the_size_shown(qtbot, tmp_path):
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    dialog = ExportDialog(array, (), name="ids", directory=tmp_path)
    qtbot.addWidget(dialog)
    assert not dialog.slice_radio.isEnabled()  # a 2-D array has no slice to choose
    dialog.set_dtype("float32")
    assert "float32" in dialog.info.text() and "176 B" in dialog.info.text()  # 128 header + 48 data
    dialog.accept()
    back = np.load(tmp_path / "ids.npy")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, array)


def test_overwriting_asks_first(qtbot, tmp_path):
    target = tmp_path / "x.npy"
    target.write_bytes(b"keep me")
    dialog = ExportDialog(np.ones(3), (), name="x", directory=tmp_path)
    qtbot.addWidget(dialog)
    asked: list[Path] = []
    dialog.confirm_overwrite = lambda parent, path: asked.append(path) or False
    dialog.accept()
    assert asked == [target] and target.read_bytes() == b"keep me"
    assert dialog.result() != ExportDialog.Accepted
    dialog.confirm_overwrite = lambda parent, path: True
    dialog.accept()
    np.testing.assert_array_equal(np.load(target), np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temp file left behind


def test_export_errors_are_sentences_and_leave_no_file(tmp_path):
    with pytest.raises(InspectorError, match="CSV holds at most 2-D"):
        export_array(np.zeros((2, 2, 2)), tmp_path / "a.csv")
    with pytest.raises(InspectorError, match="imaginary"):
        export_array(np.ones(2, np.complex64), tmp_path / "a.npy", dtype="float32")
    with pytest.raises(InspectorError, match=r"\.npy, \.npz or \.csv"):
        export_array(np.zeros(2), tmp_path / "a.txt")
    assert list(tmp_path.iterdir()) == []


def test_window_export_uses_the_shown_tensor_and_its_slice(qtbot, tmp_path):
    settings().clear()
    cube = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "cube.npy", cube)
    window = MainWindow()
    qtbot.addWidget(window)
    window.trust_prompt = lambda path, err: False
    with qtbot.waitSignal(window.value_shown):
        window.open_paths([tmp_path / "cube.npy"])
    window.view.axes.sliders[0].setValue(1)  # show cube[1]
    assert window.view.current_index() == (1, slice(None), slice(None))
    dialog = window.show_export_dialog()
    assert dialog is not None and dialog.isVisible()
    dialog.set_scope(whole=False)
    dialog.set_path(tmp_path / "out" / "slice.npy")
    dialog.accept()
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "slice.npy"), cube[1])
    assert "slice.npy" in window.statusBar().currentMessage()
    window.worker.shutdown()


SPECS = [FeedSpec("x", "float32", (None, 3)), FeedSpec("mask", "bool", (2,)), FeedSpec("h", "bfloat16", ())]


def test_build_feed_fills_and_dtypes(tmp_path):
    spec = SPECS[0]
    assert build_feed(spec, FeedChoice("zeros", (2, 3))).tolist() == [[0.0] * 3] * 2
    ones = build_feed(spec, FeedChoice("ones", (1, 3)))
    assert ones.dtype == np.float32 and ones.tolist() == [[1.0, 1.0, 1.0]]
    a = build_feed(spec, FeedChoice("random normal", (4, 3), seed=7))
    b = build_feed(spec, FeedChoice("random normal", (4, 3), seed=7))
    assert bits(a) == bits(b) and a.std() > 0.1  # seeded: reproducible, not constant
    assert build_feed(SPECS[2], FeedChoice("ones", ())).dtype == np.dtype(ml_dtypes.bfloat16)
    np.save(tmp_path / "x.npy", np.full((5, 3), 2.0))
    loaded = build_feed(spec, FeedChoice(".npy file", npy_path=str(tmp_path / "x.npy")))
    assert loaded.shape == (5, 3) and loaded.dtype == np.float32
    np.save(tmp_path / "bad.npy", np.zeros((5, 4)))
    with pytest.raises(InspectorError, match=r"needs \(\?, 3\)"):
        build_feed(spec, FeedChoice(".npy file", npy_path=str(tmp_path / "bad.npy")))
    assert parse_shape("1, 28x28") == (1, 28, 28) and parse_shape("") == ()
    with pytest.raises(InspectorError):
        parse_shape("two")


def test_feeds_panel_asks_unknown_dims_and_builds_the_dict(qtbot):
    panel = FeedsPanel()
    qtbot.addWidget(panel)
    panel.set_specs(SPECS)
    x = panel.row_widgets("x")
    assert x.shape.isEnabled() and x.shape.text() == "1, 3"  # unknown dim defaults to 1
    assert not panel.row_widgets("mask").shape.isEnabled()  # fully known shape is fixed
    assert panel.feeds() == {}  # every input left to the file's default: nothing to send
    x.fill.setCurrentText("zeros")
    x.shape.setText("4, 3")
    panel.set_choice("mask", FeedChoice("ones", (2,)))
    panel.row_widgets("h").fill.setCurrentText("random normal")
    feeds = panel.feeds()
    assert feeds["x"].shape == (4, 3) and feeds["x"].dtype == np.float32
    assert feeds["mask"].tolist() == [True, True]
    assert feeds["h"].shape == () and feeds["h"].dtype == np.dtype(ml_dtypes.bfloat16)
    # choices survive re-selection of another node of the same graph
    panel.set_specs(SPECS[:1])
    assert panel.row_widgets("x").shape.text() == "4, 3"
    panel.row_widgets("x").shape.setText("4, 5")
    with pytest.raises(InspectorError, match="needs"):
        panel.feeds()
    # a typed value takes the input's dtype and must fit its shape
    panel.set_choice("x", FeedChoice("value", text="[[1, 2, 3]]"))
    assert panel.feeds()["x"].dtype == np.float32 and panel.feeds()["x"].tolist() == [[1, 2, 3]]
    panel.row_widgets("x").value.setText("[1, 2]")
    with pytest.raises(InspectorError, match=r"needs shape \(\?, 3\)"):
        panel.feeds()
    with qtbot.waitSignal(panel.evaluate_requested):
        panel.evaluate_button.click()


def test_trust_dialog_names_the_globals_and_defaults_to_cancel(qtbot, tmp_path):
    error = TrustRequired(
        "model.pt wants to import objects that are not on the safe list.",
        ["__main__.Net", "collections.OrderedDict"],
    )
    dialog = TrustDialog(tmp_path / "model.pt", error)
    qtbot.addWidget(dialog)
    assert dialog.globals_needed() == ["__main__.Net", "collections.OrderedDict"]
    assert "run their code" in dialog.message.text()
    assert dialog.cancel_button.isDefault() and not dialog.trust_button.isDefault()
    dialog.trust_button.click()
    assert dialog.result() == TrustDialog.Accepted


def test_a_large_export_runs_in_the_background_with_progress(qtbot, tmp_path, monkeypatch):
    from tensor_inspector.app.dialogs import export_dialog

    monkeypatch.setattr(export_dialog, "BACKGROUND_BYTES", 1)
    array = np.arange(6 << 20, dtype=np.float32).reshape(3072, -1)  # 24 MiB: two 16 MiB blocks
    dialog = ExportDialog(array, name="big", directory=tmp_path)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.exported, timeout=60_000):
        dialog.accept()
        assert dialog.is_writing() and not dialog.progress.isHidden()
    assert dialog.progress.value() == 1000
    np.testing.assert_array_equal(np.load(tmp_path / "big.npy"), array)


def test_cancelling_a_background_export_leaves_no_file(qtbot, tmp_path, monkeypatch):
    import threading

    from tensor_inspector.app.dialogs import export_dialog

    monkeypatch.setattr(export_dialog, "BACKGROUND_BYTES", 1)
    started, finished = threading.Event(), []

    def slow_export(*args, cancel=None, **kwargs):  # waits for Cancel, then writes for real
        started.set()
        cancel.wait(30)
        try:
            return export_array(*args, cancel=cancel, **kwargs)
        finally:
            finished.append(True)

    monkeypatch.setattr(export_dialog, "export_array", slow_export)
    dialog = ExportDialog(np.zeros((4096, 4096), np.float32), name="big", directory=tmp_path)
    qtbot.addWidget(dialog)
    dialog.accept()
    qtbot.waitUntil(started.is_set)
    dialog.reject()
    qtbot.waitUntil(lambda: finished == [True], timeout=30_000)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp beside it
