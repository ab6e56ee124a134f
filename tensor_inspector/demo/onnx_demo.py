"""A small ONNX demo model, written with ``onnx.helper`` (no exporter needed, same bytes every run).

A digit-sized classifier: Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax, then an
``If`` that sharpens confident predictions, so the demo shows stored weights, node outputs
to evaluate, and a subgraph listed under its node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DEMO_NAME = "tiny_classifier.onnx"


def build_model() -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(23)
    y, x = np.mgrid[-1:1:3j, -1:1:3j]
    edges = np.stack([x, y, x + y, x * y]).astype(np.float32)[:, None]  # 4 edge-like 3x3 filters

    def tensor(name: str, value: np.ndarray) -> Any:
        return numpy_helper.from_array(value, name)

    initializers = [
        tensor("conv.weight", edges),
        tensor("conv.bias", np.array([0.0, 0.1, -0.1, 0.05], np.float32)),
        tensor("head.weight", (rng.standard_normal((10, 64)) * 0.2).astype(np.float32)),
        tensor("head.bias", (rng.standard_normal(10) * 0.1).astype(np.float32)),
        tensor("confidence", np.array(0.3, np.float32)),
        tensor("sharpness", np.array(2.0, np.float32)),
    ]
    sharpen = helper.make_graph(
        [
            helper.make_node("Pow", ["probs", "sharpness"], ["peaked"], name="peak"),
            helper.make_node("ReduceSum", ["peaked"], ["norm"], name="norm", keepdims=1),
            helper.make_node("Div", ["peaked", "norm"], ["sharpened"], name="renormalize"),
        ],
        "sharpen",
        [],
        [helper.make_tensor_value_info("sharpened", TensorProto.FLOAT, None)],
    )
    keep = helper.make_graph(
        [helper.make_node("Identity", ["probs"], ["kept"], name="keep")],
        "keep",
        [],
        [helper.make_tensor_value_info("kept", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node(
            "Conv", ["image", "conv.weight", "conv.bias"], ["features"], name="conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["features"], ["activations"], name="relu"),
        helper.make_node(
            "MaxPool", ["activations"], ["pooled"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], ["logits"], name="head", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
        helper.make_node("ReduceMax", ["probs"], ["top"], name="top", keepdims=0),
        helper.make_node("Greater", ["top", "confidence"], ["confident"], name="is_confident"),
        helper.make_node(
            "If",
            ["confident"],
            ["prediction"],
            name="sharpen_if_confident",
            then_branch=sharpen,
            else_branch=keep,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [1, 10])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, producer_name="tensor-inspector demo", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return model


def make_demo_onnx(directory: Path) -> list[Path]:
    """Write ``tiny_classifier.onnx`` into ``directory``; return its path (none without onnx)."""
    try:
        import onnx
    except ImportError:
        return []

    model = build_model()
    onnx.checker.check_model(model)
    path = Path(directory) / DEMO_NAME
    path.write_bytes(model.SerializeToString())
    return [path]
