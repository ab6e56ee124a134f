"""QDQ ONNX models: an int8/uint8 initializer read by a DequantizeLinear node is a raw view, the
node's output its dequantized view, which evaluates without feeds and equals onnxruntime's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tensor_inspector.backends.base import NodeKind
from tensor_inspector.backends.registry import open_path

RNG = np.random.default_rng(5)


def qdq_model(path: Path) -> dict[str, np.ndarray]:
    """y = x @ dq(w_tensor) + dq(w_axis)[0]: one per-tensor uint8 weight with a zero point, one
    per-axis int8 weight (axis 0, its zero points), as onnxruntime's QDQ quantizer lays them out."""
    arrays = {
        "w_tensor_q": RNG.integers(0, 256, (4, 3), dtype=np.uint8),
        "w_tensor_scale": np.array(0.05, np.float32),
        "w_tensor_zp": np.array(128, np.uint8),
        "w_axis_q": RNG.integers(-128, 128, (3, 5), dtype=np.int8),
        "w_axis_scale": np.array([0.5, 0.01, 0.2], np.float32),
        "w_axis_zp": np.array([0, 3, -2], np.int8),
    }
    nodes = [
        helper.make_node(
            "DequantizeLinear", ["w_tensor_q", "w_tensor_scale", "w_tensor_zp"], ["w_tensor"], name="dq_t"
        ),
        helper.make_node(
            "DequantizeLinear", ["w_axis_q", "w_axis_scale", "w_axis_zp"], ["w_axis"], name="dq_a", axis=0
        ),
        helper.make_node("MatMul", ["x", "w_tensor"], ["xw"], name="matmul"),
        helper.make_node("MatMul", ["xw", "w_axis"], ["y"], name="matmul2"),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])],
        initializer=[numpy_helper.from_array(v, k) for k, v in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return arrays


def ort_dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int) -> np.ndarray:
    """onnxruntime's own DequantizeLinear on the same arrays."""
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["out"], axis=axis)
    elem = helper.np_dtype_to_tensor_dtype(q.dtype)
    graph = helper.make_graph(
        [node],
        "dq",
        [
            helper.make_tensor_value_info("q", elem, q.shape),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, scale.shape),
            helper.make_tensor_value_info("z", elem, zp.shape),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, q.shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["out"], {"q": q, "s": scale, "z": zp})[0]


@pytest.mark.parametrize(
    ("name", "output", "axis", "scheme"),
    [("w_tensor", "w_tensor", 1, "affine per-tensor"), ("w_axis", "w_axis", 0, "affine per-axis")],
)
def test_qdq_weight_has_raw_and_dequantized_views(tmp_path, name, output, axis, scheme):
    arrays = qdq_model(tmp_path / "qdq.onnx")
    q, scale, zp = arrays[f"{name}_q"], arrays[f"{name}_scale"], arrays[f"{name}_zp"]
    with open_path(tmp_path / "qdq.onnx") as source:
        raw = source.node(f"{name}_q")
        view = source.node(output)
        assert raw.kind is NodeKind.TENSOR and view.kind is NodeKind.COMPUTED
        for node in (raw, view):
            assert node.metadata["views"] == {"raw": f"{name}_q", "dequantized": output}
        assert raw.metadata["view"] == "raw" and view.metadata["view"] == "dequantized"
        info = raw.metadata["quantization"]
        assert info["scheme"] == scheme and info["scale_tensor"] == f"{name}_scale"
        np.testing.assert_allclose(np.atleast_1d(info["scale"]), scale.reshape(-1))
        assert np.atleast_1d(info["zero_point"]).tolist() == zp.reshape(-1).tolist()
        if scheme == "affine per-axis":
            assert info["axis"] == 0 and info["channels"] == 3
        else:
            assert "axis" not in info

        codes = source.read(f"{name}_q")
        assert codes.dtype == q.dtype
        np.testing.assert_array_equal(codes, q)
        values = source.get(output)  # no feeds: every input of the node is an initializer
        assert values.dtype == np.float32 and values.shape == q.shape
        grid = scale.reshape(-1, 1) if scale.size > 1 else scale
        zgrid = zp.reshape(-1, 1) if zp.size > 1 else zp
        expected = (q.astype(np.float32) - zgrid.astype(np.float32)) * grid
        np.testing.assert_allclose(values, expected, rtol=1e-6)
        np.testing.assert_array_equal(values, ort_dequantize(q, scale, zp, axis))
    # other nodes are not paired: the float input and the matmul outputs
    with open_path(tmp_path / "qdq.onnx") as source:
        assert "views" not in source.node("xw").metadata
        assert "views" not in source.node(f"{name}_scale").metadata
