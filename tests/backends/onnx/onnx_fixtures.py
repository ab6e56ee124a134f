"""ONNX files made the ways people make them: onnx.helper by hand, torch.onnx.export, external data."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def if_model(path: Path) -> Path:
    """y = relu(x @ w + b); then sum(y) > 0 ? y * 2 (+ a branch constant) : y - 1."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    then_shift = numpy_helper.from_array(np.array([0.5, 0.25, 0.125], np.float32), "then_shift")
    then_branch = helper.make_graph(
        [
            helper.make_node("Mul", ["y", "two"], ["doubled"], name="double"),
            helper.make_node("Add", ["doubled", "then_shift"], ["then_out"], name="shift"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
        initializer=[then_shift],
    )
    else_branch = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["one"], value=numpy_helper.from_array(np.array(1.0, np.float32))
            ),
            helper.make_node("Sub", ["y", "one"], ["else_out"], name="minus_one"),
        ],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "b"], ["pre"], name="add"),
        helper.make_node("Relu", ["pre"], ["y"], name="relu"),
        helper.make_node("ReduceSum", ["y"], ["total"], name="sum", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"], name="gt"),
        helper.make_node(
            "If", ["positive"], ["out"], name="branch", then_branch=then_branch, else_branch=else_branch
        ),
    ]
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    graph = helper.make_graph(
        nodes,
        "with_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3])],
        initializer=[w, b, two, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path


def small_cnn():
    import torch

    torch.manual_seed(0)

    class SmallCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.conv2 = torch.nn.Conv2d(8, 4, 3, stride=2)
            self.fc = torch.nn.Linear(4 * 7 * 7, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.bn(self.conv1(x)))
            h = torch.relu(self.conv2(h))
            return torch.softmax(self.fc(h.flatten(1)), dim=-1)

    model = SmallCNN().eval()
    with torch.no_grad():  # running statistics that are not the defaults
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def export_cnn(path: Path, external: bool = False) -> Path:
    """``torch.onnx.export`` (TorchScript exporter: the dynamo one needs onnxscript), dynamic batch."""
    import torch

    model = small_cnn()
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            input_names=["image"],
            output_names=["probs"],
            dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}},
        )
    if external:  # what people do for models near protobuf's 2 GB limit
        loaded = onnx.load(path)
        path.unlink()
        onnx.save_model(loaded, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path


def ort_values(path: Path, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference: onnxruntime itself, with ``names`` added as graph outputs."""
    model = onnx.load(path)
    declared = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in declared)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, feeds)))


def node_outputs(path: Path) -> list[str]:
    return [o for n in onnx.load(path, load_external_data=False).graph.node for o in n.output if o]


def nested_if_model(path: Path) -> Path:
    """out = sum(relu(x)) > 0 ? (max(-2r) < 0 ? -2r + 1 : -2r - 1) : r, with r = relu(x)."""
    scalar = {n: numpy_helper.from_array(np.array(v, np.float32), n) for n, v in [("zero", 0), ("two", 2)]}
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")

    def branch(name, nodes, out, initializer=()):
        return helper.make_graph(
            nodes,
            name,
            [],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            initializer=list(initializer),
        )

    inner_then = branch(
        "inner_then", [helper.make_node("Add", ["t2", "one"], ["u"], name="plus_one")], "u", [one]
    )
    inner_else = branch(
        "inner_else",
        [helper.make_node("Sub", ["t2", "one_b"], ["v"], name="minus_one")],
        "v",
        [numpy_helper.from_array(np.array(1.0, np.float32), "one_b")],
    )
    outer_then = branch(
        "outer_then",
        [
            helper.make_node("Mul", ["r", "two"], ["t1"], name="times_two"),
            helper.make_node("Neg", ["t1"], ["t2"], name="negate"),
            helper.make_node("ReduceMax", ["t2"], ["m"], name="max", keepdims=0),
            helper.make_node("Less", ["m", "zero"], ["c2"], name="below_zero"),
            helper.make_node(
                "If", ["c2"], ["inner_out"], name="inner", then_branch=inner_then, else_branch=inner_else
            ),
        ],
        "inner_out",
    )
    outer_else = branch("outer_else", [helper.make_node("Identity", ["r"], ["e"], name="same")], "e")
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("ReduceSum", ["r"], ["s"], name="sum", keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"], name="positive"),
            helper.make_node(
                "If", ["c"], ["out"], name="outer", then_branch=outer_then, else_branch=outer_else
            ),
        ],
        "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
        initializer=list(scalar.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path


def loop_model(path: Path) -> Path:
    """A Loop adding ``step`` to an accumulator three times."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["acc_in", "step"], ["acc_out"], name="accumulate"),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2]),
        ],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "", "x"], ["total"], name="repeat", body=body)],
        "looping",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2])],
        initializer=[
            numpy_helper.from_array(np.array(3, np.int64), "trips"),
            numpy_helper.from_array(np.array([1.0, 10.0], np.float32), "step"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save_model(model, path)
    return path
