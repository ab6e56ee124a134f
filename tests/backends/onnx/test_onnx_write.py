"""Edited initializers written back into ONNX files: reopened, compared, run by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_fixtures
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tensor_inspector.backends.base import InspectorError
from tensor_inspector.backends.registry import open_path
from tensor_inspector.session.saving import file_signature, save

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _initializers(path, external_data=True):
    model = onnx.load(path, load_external_data=external_data)
    return {t.name: t for t in model.graph.initializer}


def test_inline_initializers_written_in_place_of_the_old(tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    new_w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    new_shift = np.array([9.0, 8.0, 7.0], np.float32)
    with open_path(path) as source:
        shift_id = next(n.id for n in source.nodes.values() if n.name == "then_shift")
        report = save(source, {"w": new_w, shift_id: new_shift}, tmp_path / "edited.onnx")
    assert sorted(report.verified) == sorted(["w", shift_id])
    before, after = onnx.load(path), onnx.load(tmp_path / "edited.onnx")
    assert [t.name for t in after.graph.initializer] == [t.name for t in before.graph.initializer]
    assert [n.name for n in after.graph.node] == [n.name for n in before.graph.node]
    got = _initializers(tmp_path / "edited.onnx")
    np.testing.assert_array_equal(numpy_helper.to_array(got["w"]), new_w)
    assert got["b"].SerializeToString() == before.graph.initializer[1].SerializeToString()
    # onnxruntime runs the written model with the new weight and the new branch constant
    x = np.ones((1, 4), np.float32)
    session = ort.InferenceSession(str(tmp_path / "edited.onnx"), providers=["CPUExecutionProvider"])
    b = numpy_helper.to_array(before.graph.initializer[1])
    y = np.maximum(x @ new_w + b, 0)
    np.testing.assert_allclose(session.run(["out"], {"x": x})[0], y * 2 + new_shift, rtol=1e-6)
    with open_path(tmp_path / "edited.onnx") as reopened:
        np.testing.assert_array_equal(reopened.read(shift_id), new_shift)


def test_wrong_shape_or_dtype_is_refused(tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    with open_path(path) as source:
        with pytest.raises(InspectorError, match="Shape mismatch for 'w'"):
            source.write(tmp_path / "x.onnx", {"w": np.zeros((3, 4), np.float32)})
        with pytest.raises(InspectorError, match="Dtype mismatch for 'w'"):
            source.write(tmp_path / "x.onnx", {"w": np.zeros((4, 3), np.float64)})
        with pytest.raises(InspectorError, match="not a stored tensor"):
            source.write(tmp_path / "x.onnx", {"xw": np.zeros((1, 3), np.float32)})
    assert not (tmp_path / "x.onnx").exists()


def test_external_data_stays_external(tmp_path):
    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=True)
    weights = (tmp_path / "weights.bin").read_bytes()
    before = {k: numpy_helper.to_array(v) for k, v in _initializers(path).items()}
    new_fc = np.full(before["fc.weight"].shape, 0.01, np.float32)
    with open_path(path) as source:
        save(source, {"fc.weight": new_fc}, tmp_path / "edited.onnx")
    assert (tmp_path / "weights.bin").read_bytes() == weights  # the original still loads as it was
    stored = _initializers(tmp_path / "edited.onnx", external_data=False)
    assert all(t.data_location == onnx.TensorProto.EXTERNAL and not t.raw_data for t in stored.values())
    assert {e.value for t in stored.values() for e in t.external_data if e.key == "location"} == {
        "edited.onnx.data"
    }
    assert (tmp_path / "edited.onnx").stat().st_size < 2000  # the weights are not inline
    after = {k: numpy_helper.to_array(v) for k, v in _initializers(tmp_path / "edited.onnx").items()}
    np.testing.assert_array_equal(after["fc.weight"], new_fc)
    for name in before.keys() - {"fc.weight"}:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    names = onnx_fixtures.node_outputs(path)
    expected = onnx_fixtures.ort_values(tmp_path / "edited.onnx", names, {"image": x})
    with open_path(tmp_path / "edited.onnx") as reopened:
        np.testing.assert_array_equal(
            reopened.get("/fc/Gemm_output_0", feeds={"image": x}), expected["/fc/Gemm_output_0"]
        )
        np.testing.assert_array_equal(reopened.read("fc.weight"), new_fc)


def test_saved_in_place_twice_keeps_a_loadable_backup(tmp_path):
    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=True)
    original_bias = numpy_helper.to_array(_initializers(path)["fc.bias"])
    for step, bias in enumerate([np.arange(5, dtype=np.float32), np.ones(5, np.float32)]):
        with open_path(path) as source:
            report = save(source, {"fc.bias": bias}, path, opened_signature=file_signature(path))
        assert report.verified == ["fc.bias"]
        np.testing.assert_array_equal(numpy_helper.to_array(_initializers(path)["fc.bias"]), bias)
        backup = numpy_helper.to_array(_initializers(tmp_path / "cnn.onnx.bak")["fc.bias"])
        np.testing.assert_array_equal(backup, original_bias if step == 0 else np.arange(5, dtype=np.float32))
    # the two saves wrote two data files, so the backup never reads a file rewritten under it
    locations = {
        e.value for t in _initializers(path, False).values() for e in t.external_data if e.key == "location"
    }
    assert locations == {"cnn.onnx.1.data"}
    assert not list(tmp_path.glob("*.tinspect-tmp"))
