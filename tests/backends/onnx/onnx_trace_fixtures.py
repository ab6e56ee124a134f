"""ONNX models whose run makes NaN at one known op and passes it on (trace tests).

Built with ``onnx.helper``, as hand-written and converter-patched models are. The
input decides whether the known op sees a value outside its domain, so one file
gives both a NaN run and a finite run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHAIN_PRODUCER = "logged"
# x @ w with w > 0: a negative x makes log see negatives, a positive one keeps it finite.
CHAIN_FEEDS = {
    True: np.array([[-1.0, -2.0, -0.5], [1.0, 2.0, 3.0]], np.float32),
    False: np.array([[1.0, 2.0, 0.5], [1.0, 2.0, 3.0]], np.float32),
}
BRANCH_PRODUCER = "gate/then_branch/root"
# sum(x) > 0 takes the then branch, whose sqrt sees x's negative entries.
BRANCH_FEEDS = {
    "nan": np.array([[4.0, -1.0, 9.0]], np.float32),
    "finite": np.array([[4.0, 1.0, 9.0]], np.float32),
    "else": np.array([[-4.0, 1.0, -9.0]], np.float32),
}


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path


def chain_model(path: Path) -> Path:
    """out = relu(2 * log(x @ w - 0.25)) + 1, every step a node of its own."""
    w = np.array([[0.5, 1.0, 2.0, 0.25], [1.0, 0.5, 0.25, 2.0], [2.0, 0.25, 1.0, 0.5]], np.float32)
    initializers = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array(0.25, np.float32), "offset"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="project"),
        helper.make_node("Sub", ["h", "offset"], ["shifted"], name="shift"),
        helper.make_node("Log", ["shifted"], ["logged"], name="log"),
        helper.make_node("Mul", ["logged", "two"], ["scaled"], name="scale"),
        helper.make_node("Relu", ["scaled"], ["act"], name="relu"),
        helper.make_node("Add", ["act", "one"], ["out"], name="bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 4])],
        initializer=initializers,
    )
    return _save(graph, path)


def _branch_nodes() -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    then_nodes = [
        helper.make_node("Sqrt", ["x"], ["root"], name="sqrt"),
        helper.make_node("Mul", ["root", "two"], ["doubled"], name="double"),
    ]
    else_nodes = [helper.make_node("Neg", ["x"], ["same"], name="negate")]
    return then_nodes, else_nodes


def branch_model(path: Path, inline: str | None = None) -> Path:
    """final = (sum(x) > 0 ? 2 * sqrt(x) : -x) + 1, the branches inside an If named "gate".

    ``inline`` ("then_branch" / "else_branch") writes the same computation with that branch's
    nodes in the main graph instead of the If, value names unchanged: the reference that
    onnxruntime can expose every value of.
    """
    then_nodes, else_nodes = _branch_nodes()
    outputs = {"then_branch": "doubled", "else_branch": "same"}
    branches = {
        "then_branch": helper.make_graph(
            then_nodes, "then", [], [helper.make_tensor_value_info("doubled", TensorProto.FLOAT, None)]
        ),
        "else_branch": helper.make_graph(
            else_nodes, "else", [], [helper.make_tensor_value_info("same", TensorProto.FLOAT, None)]
        ),
    }
    if inline is None:
        gate = [helper.make_node("If", ["positive"], ["out"], name="gate", **branches)]
    else:
        taken = then_nodes if inline == "then_branch" else else_nodes
        gate = [*taken, helper.make_node("Identity", [outputs[inline]], ["out"], name="gate_out")]
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], name="sum", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"], name="gt"),
        *gate,
        helper.make_node("Add", ["out", "one"], ["final"], name="plus_one"),
    ]
    graph = helper.make_graph(
        nodes,
        "gated",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("final", TensorProto.FLOAT, [1, 3])],
        initializer=[
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        ],
    )
    return _save(graph, path)


def entropy_model(path: Path) -> tuple[Path, np.ndarray]:
    """torch.onnx.export of a softmax entropy with confident logits, and its input.

    float32's softmax rounds small probabilities to 0, log makes -inf and 0 * -inf is NaN:
    the exporter's own value names (``/Log_output_0``), as users' exported files have them.
    """
    import warnings

    import torch

    class Entropy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(3)
            self.proj = torch.nn.Linear(16, 32)
            with torch.no_grad():
                self.proj.weight.copy_(torch.randn(32, 16, generator=generator) * 20)
                self.proj.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = torch.softmax(self.proj(torch.tanh(x)), dim=-1)
            return (-(p * torch.log(p)).sum(dim=-1)).mean()

    example = torch.randn(8, 16, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Entropy().eval(), (example,), str(path), dynamo=False, input_names=["x"])
    return path, example.numpy()
