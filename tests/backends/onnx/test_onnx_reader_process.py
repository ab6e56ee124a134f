"""ONNX through the window's path: the sandboxed reader process runs onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx_fixtures
import pytest

from tensor_inspector.session.answers import SessionFailure
from tensor_inspector.session.isolated import IsolatedSession

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def session():
    s = IsolatedSession()
    yield s
    s.shutdown()


def test_node_output_evaluated_in_the_reader(session, tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    expected = onnx_fixtures.ort_values(path, ["pre", "out"], {"x": x})
    info = session.open(path)
    assert {"w", "pre", "out"} <= {n.id for n in info.nodes}
    for name in ["pre", "out"]:
        value = session.value(info.handle, name, feeds={"x": x})
        np.testing.assert_array_equal(value.array, expected[name])
    assert [s.name for s in value.feed_specs] == ["x"]
    np.testing.assert_array_equal(session.value(info.handle, "w").array.shape, (4, 3))


def test_if_branch_values_evaluated_in_the_reader(session, tmp_path):
    path = onnx_fixtures.nested_if_model(tmp_path / "nested.onnx")
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1  # positive: both then_branches run
    info = session.open(path)
    ids = {n.name: n.id for n in info.nodes}
    value = session.value(info.handle, ids["u"], feeds={"x": x})
    np.testing.assert_array_equal(value.array, -2 * x + 1)
    with pytest.raises(SessionFailure, match="the else_branch of If node 'inner' does not run"):
        session.value(info.handle, ids["v"], feeds={"x": x})


def test_external_data_read_and_evaluated_in_the_reader(session, tmp_path):
    import torch  # noqa: F401

    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=True)
    x = np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)
    expected = onnx_fixtures.ort_values(path, ["/conv2/Conv_output_0"], {"image": x})
    info = session.open(path)
    value = session.value(info.handle, "/conv2/Conv_output_0", feeds={"image": x})
    np.testing.assert_array_equal(value.array, expected["/conv2/Conv_output_0"])
    assert session.value(info.handle, "fc.weight").array.shape == (5, 196)
