"""A quantized tensor in the window: the Raw / Dequantized toggle selects the other view's node
(statistics follow), Ctrl+Shift+D toggles, the details line names the quantization, and export
offers the stored codes or the float32 values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from window_helpers import open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.views.stats_panel import WHOLE
from tensor_inspector.backends.base import NodeKind
from tensor_inspector.backends.registry import open_path

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def tflite_file(tmp_path_factory) -> Path:
    """Dense layers converted with full integer quantization, as TFLite users make them."""
    import tensorflow as tf

    inputs = tf.keras.Input((6,))
    hidden = tf.keras.layers.Dense(5, activation="relu")(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(4)(hidden))

    def representative():
        for _ in range(8):
            yield [RNG.standard_normal((1, 6)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tflite") / "dense_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def _kernel(path: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    """(codes id, dequantized id, codes, values) of the first int8 weight matrix, read directly."""
    with open_path(path) as source:
        node = next(
            n
            for n in source.nodes.values()
            if n.kind is NodeKind.TENSOR
            and n.dtype == "int8"
            and n.shape is not None
            and len(n.shape) == 2
            and "views" in n.metadata
        )
        other = node.metadata["views"]["dequantized"]
        return node.id, other, source.read(node.id), source.read(other)


def _whole_stats(qtbot, win):
    qtbot.waitUntil(lambda: win.view.stats_panel.stats(WHOLE) is not None, timeout=30_000)
    return win.view.stats_panel.stats(WHOLE)


def test_toggle_shows_the_other_view_and_statistics_follow(qtbot, window, tflite_file):  # noqa: F811
    raw_id, dequantized_id, codes, values = _kernel(tflite_file)
    handle = open_file(qtbot, window, tflite_file)
    shown = show(qtbot, window, raw_id, handle)
    toggle = window.view.quantized_toggle
    assert shown.dtype == np.int8 and toggle.isVisible() and toggle.current() == "raw"
    assert toggle.buttons["raw"].isChecked() and not toggle.buttons["dequantized"].isChecked()
    details = window.view.details.text()
    assert "quantization: affine per-" in details and "scale " in details and "zero point " in details
    stats = _whole_stats(qtbot, window)
    assert stats.dtype == "int8" and float(stats.min) == float(codes.min())

    with qtbot.waitSignal(window.value_shown, timeout=60_000) as signal:
        qtbot.mouseClick(toggle.buttons["dequantized"], Qt.MouseButton.LeftButton)
    assert signal.args == [dequantized_id] and window.shown() == (handle, dequantized_id)
    shown = window.view.array()
    assert shown.dtype == np.float32
    np.testing.assert_array_equal(shown, values)
    assert toggle.current() == "dequantized" and toggle.buttons["dequantized"].isChecked()
    stats = _whole_stats(qtbot, window)
    assert stats.dtype == "float32"
    assert stats.mean == pytest.approx(float(values.mean()), rel=1e-5)
    assert float(stats.mean) != float(np.round(stats.mean))  # float values, not the codes

    with qtbot.waitSignal(window.value_shown, timeout=60_000) as signal:  # back with the shortcut
        qtbot.keyClick(
            window.tree, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        )
    assert signal.args == [raw_id] and window.view.array().dtype == np.int8


def test_toggle_is_hidden_for_plain_tensors(qtbot, window, tmp_path):  # noqa: F811
    np.save(tmp_path / "plain.npy", np.ones((3, 3), np.float32))
    handle = open_file(qtbot, window, tmp_path / "plain.npy")
    show(qtbot, window, next(n.id for n in window.documents.get(handle).nodes if n.has_value), handle)
    assert not window.view.quantized_toggle.isVisible()
    assert window.evaluate_controller.export_views() is None
    dialog = window.show_export_dialog()
    assert dialog is not None and dialog.view_combo.count() == 0
    dialog.reject()


def test_export_offers_codes_or_dequantized_values(qtbot, window, tflite_file, tmp_path):  # noqa: F811
    raw_id, dequantized_id, codes, values = _kernel(tflite_file)
    handle = open_file(qtbot, window, tflite_file)
    show(qtbot, window, raw_id, handle)
    dialog = window.show_export_dialog()
    assert dialog is not None and dialog.view_combo.count() == 2
    assert dialog.view_combo.currentData() == "raw"
    dialog.set_path(tmp_path / "codes.npy")
    dialog.accept()
    exported = np.load(tmp_path / "codes.npy")
    assert exported.dtype == np.int8
    np.testing.assert_array_equal(exported, codes)

    dialog = window.show_export_dialog()  # the codes shown, the values chosen: read for the export
    assert dialog is not None
    dialog.set_view("dequantized")
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=30_000)
    assert dialog.save_button.isEnabled() and "float32" in dialog.info.text()
    dialog.set_path(tmp_path / "values.npy")
    dialog.accept()
    exported = np.load(tmp_path / "values.npy")
    assert exported.dtype == np.float32
    np.testing.assert_array_equal(exported, values)
