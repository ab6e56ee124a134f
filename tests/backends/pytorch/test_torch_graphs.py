"""TorchScript and torch.export programs: stored weights, graph nodes, evaluation, writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fixtures import three_layer

from tensor_inspector.backends import InspectorError, NodeKind, open_path
from tensor_inspector.backends.base import seeded_normal


def hidden_values(model: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Intermediate values computed directly in torch."""
    with torch.no_grad():
        t = torch.from_numpy(x)
        relu = torch.relu(model.fc1(t))
        tanh = torch.tanh(model.fc2(relu))
        return {
            "relu": relu.numpy(),
            "tanh": tanh.numpy(),
            "mul": (tanh * model.scale).numpy(),
            "out": model(t).numpy(),
        }


@pytest.fixture(scope="module")
def export_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    example = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    program = torch.export.export(three_layer(), (example,))
    path = tmp_path_factory.mktemp("export") / "program.pt2"
    torch.export.save(program, str(path))
    return path, example.numpy()


@pytest.fixture(scope="module")
def script_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("script") / "scripted.pt"
    torch.jit.save(torch.jit.script(three_layer()), str(path))
    return path


def test_export_lists_weights_and_graph(export_file: tuple[Path, np.ndarray]) -> None:
    path, _ = export_file
    model = three_layer()
    with open_path(path) as source:
        assert source.format_name == "torch.export program"
        assert source.node("fc1.weight").kind is NodeKind.TENSOR
        assert np.array_equal(source.read("fc2.bias"), model.fc2.bias.detach().numpy())
        assert source.node("scale").metadata["parameter"] is False
        assert np.array_equal(source.read("scale"), model.scale.numpy())
        relu = source.node("graph/relu")
        assert relu.kind is NodeKind.COMPUTED
        assert relu.shape == (3, 6) and relu.dtype == "float32"
        assert relu.metadata["target"] == "aten.relu.default"
        assert [spec.name for spec in source.feed_specs()] == ["x"]


def test_export_evaluates_intermediate_nodes_with_example_inputs(
    export_file: tuple[Path, np.ndarray],
) -> None:
    path, example = export_file
    expected = hidden_values(three_layer(), example)
    with open_path(path) as source:
        assert np.array_equal(source.default_feeds()["x"], example)
        np.testing.assert_allclose(source.evaluate("graph/relu", {}), expected["relu"], rtol=1e-6)
        np.testing.assert_allclose(source.evaluate("graph/mul", {}), expected["mul"], rtol=1e-6)


def test_export_evaluates_with_feeds(export_file: tuple[Path, np.ndarray]) -> None:
    path, _ = export_file
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    expected = hidden_values(three_layer(), x)
    with open_path(path) as source:
        np.testing.assert_allclose(source.evaluate("graph/tanh", {"x": x}), expected["tanh"], rtol=1e-6)
        # a float64 feed (e.g. typed on the command line) is cast to the declared float32
        np.testing.assert_allclose(
            source.evaluate("graph/tanh", {"x": x.astype(np.float64)}), expected["tanh"], rtol=1e-6
        )
        np.testing.assert_allclose(source.get("graph/linear_2", feeds={"x": x}), expected["out"], rtol=1e-5)
        with pytest.raises(InspectorError) as info:
            source.evaluate("graph/relu", {"x": np.ones((3, 5), np.float32)})
        assert "\n" not in str(info.value)


def test_export_without_example_inputs_feeds_seeded_normal_values(tmp_path: Path) -> None:
    program = torch.export.export(three_layer(), (torch.randn(2, 4),))
    program._example_inputs = None
    path = tmp_path / "bare.pt2"
    torch.export.save(program, str(path))
    with open_path(path) as source:
        feeds = source.default_feeds()
        # zeros would make every layer's output its bias: seeded normal values, the same each time
        x = seeded_normal("x", (2, 4), np.dtype(np.float32))
        assert feeds["x"].dtype == np.float32 and np.array_equal(feeds["x"], x) and x.std() > 0.1
        expected = hidden_values(three_layer(), x)
        np.testing.assert_allclose(source.evaluate("graph/relu", {}), expected["relu"], rtol=1e-6)


def test_export_write_replaces_a_weight(export_file: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, example = export_file
    new_bias = np.arange(6, dtype=np.float32)
    out = tmp_path / "edited.pt2"
    with open_path(path) as source:
        source.write(out, {"fc1.bias": new_bias})
        assert not np.array_equal(source.read("fc1.bias"), new_bias)  # the open file is unchanged
    program = torch.export.load(str(out))
    assert np.array_equal(program.state_dict["fc1.bias"].detach().numpy(), new_bias)
    assert isinstance(program.state_dict["fc1.bias"], torch.nn.Parameter)
    with open_path(out) as edited:
        x = torch.from_numpy(example)
        model = three_layer()
        with torch.no_grad():
            expected = torch.relu(x @ model.fc1.weight.T + torch.from_numpy(new_bias)).numpy()
        np.testing.assert_allclose(edited.evaluate("graph/relu", {}), expected, rtol=1e-6)


def test_torchscript_parameters_and_graph(script_file: Path) -> None:
    model = three_layer()
    with open_path(script_file, trust=True) as source:
        assert source.format_name == "TorchScript"
        assert np.array_equal(source.read("fc3.weight"), model.fc3.weight.detach().numpy())
        assert source.node("fc3.weight").metadata["parameter"] is True
        assert source.node("scale").metadata["parameter"] is False
        ops = [n.metadata["op"] for n in source.children("forward")]
        assert ops.count("aten::linear") == 3 and "aten::relu" in ops and "aten::tanh" in ops
        assert [spec.name for spec in source.feed_specs()] == ["x"]


def test_torchscript_evaluates_intermediate_nodes(script_file: Path) -> None:
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    expected = hidden_values(three_layer(), x)
    with open_path(script_file, trust=True) as source:
        by_op = {}
        for node in source.children("forward"):
            by_op.setdefault(node.metadata["op"], node.id)
        np.testing.assert_allclose(
            source.evaluate(by_op["aten::relu"], {"x": x}), expected["relu"], rtol=1e-6
        )
        np.testing.assert_allclose(
            source.evaluate(by_op["aten::tanh"], {"x": x}), expected["tanh"], rtol=1e-6
        )
        np.testing.assert_allclose(source.evaluate(by_op["aten::mul"], {"x": x}), expected["mul"], rtol=1e-6)


def test_torchscript_write(script_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "edited.pt"
    new = np.full((2, 5), 0.5, np.float32)
    with open_path(script_file, trust=True) as source:
        source.write(out, {"fc3.weight": new})
    loaded = torch.jit.load(str(out))
    assert np.array_equal(loaded.fc3.weight.detach().numpy(), new)
    assert loaded.fc3.weight.requires_grad
    assert np.array_equal(loaded.fc1.weight.detach().numpy(), three_layer().fc1.weight.detach().numpy())


def test_demo_files(tmp_path: Path) -> None:
    from tensor_inspector.demo.torch_demo import make_demo_torch

    paths = make_demo_torch(tmp_path)
    assert [p.name for p in paths] == ["demo_checkpoint.pt", "demo_program.pt2"]
    assert all(p.stat().st_size < 150 * 1024 for p in paths)
    with open_path(paths[0]) as checkpoint:
        assert checkpoint.read("epoch") == 3
        assert checkpoint.node("ema/head.weight").dtype == "bfloat16"
        assert checkpoint.node("model/head.weight").dtype == "float32"
    with open_path(paths[1]) as program:
        relu = program.evaluate("graph/relu", {})
        assert relu.shape == (1, 4, 8, 8) and (relu >= 0).all()
