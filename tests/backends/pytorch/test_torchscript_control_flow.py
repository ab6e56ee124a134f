"""TorchScript with control flow: values inside if/for blocks and submodules, listed and evaluated.

Expected values come from torch itself: forward hooks on the eager module the script was made
from record every submodule call's inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fixtures import record_calls, repeat, save_scripted, stacked, vad_like

from tensor_inspector.backends import NodeKind, NotEvaluable, open_path
from tensor_inspector.backends.base import Source

SR = 16000


def computed(source: Source) -> dict[str, dict]:
    return {n.id: dict(n.metadata) for n in source.nodes.values() if n.kind is NodeKind.COMPUTED}


def by_op(source: Source, op: str, under: str = "forward") -> list[str]:
    return [i for i, meta in computed(source).items() if meta["op"] == op and i.startswith(under + "/")]


def evaluate_all(
    source: Source, feeds: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    values, refused = {}, {}
    for node_id in computed(source):
        try:
            values[node_id] = source.evaluate(node_id, feeds)
        except NotEvaluable as exc:
            refused[node_id] = str(exc)
    return values, refused


def pool_of(calls: dict, *extra: torch.Tensor) -> list[np.ndarray]:
    tensors = [t for records in calls.values() for r in records for t in r["inputs"] + r["outputs"]]
    return [t.numpy() for t in (*tensors, *extra)]


def matches_some(value: np.ndarray, pool: list[np.ndarray]) -> bool:
    return any(p.shape == value.shape and np.allclose(p, value, rtol=1e-5, atol=1e-6) for p in pool)


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The scripted file, and what the eager model computes for one 512-sample input."""
    model = vad_like()
    path = save_scripted(model, tmp_path_factory.mktemp("vad") / "vad.pt")
    calls = record_calls(model)
    x = torch.randn(2, 512, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x, SR)
    return {"path": path, "x": x.numpy(), "calls": calls, "out": out, "model": model}


def feeds_of(vad: dict) -> dict[str, np.ndarray]:
    return {"x": vad["x"], "sr": np.array(SR)}


def test_layers_inside_if_and_loop_are_listed_under_their_modules(vad: dict) -> None:
    with open_path(vad["path"], trust=True) as source:
        encoder = source.node("forward/encoder")
        assert encoder.kind is NodeKind.GROUP and encoder.metadata["module_type"] == "VadEncoder"
        convs = by_op(source, "aten::conv1d", "forward/encoder")
        assert len(convs) == 2
        assert [source.node(c).metadata["module"] for c in convs] == ["encoder.conv1", "encoder.conv2"]
        assert all(
            "then branch of prim::If 'if x.shape[-1] == 512:'" in m
            for c in convs
            for m in source.node(c).metadata["control_flow"]
        )
        cells = by_op(source, "aten::lstm_cell", "forward/cell")
        assert len(cells) == 2  # h and c of the cell inside the for loop
        assert source.node(cells[0]).metadata["module_type"] == "LSTMCell"
        assert by_op(source, "aten::sigmoid") and by_op(source, "aten::linear")
        # the top-level walk alone found a handful of values; the blocks hold most of them
        inside = [i for i, m in computed(source).items() if m.get("control_flow")]
        assert len(inside) > len(computed(source)) / 2


def test_every_listed_node_equals_what_torch_computes(vad: dict) -> None:
    calls = vad["calls"]
    with open_path(vad["path"], trust=True) as source:
        values, refused = evaluate_all(source, feeds_of(vad))
        conv1, conv2 = by_op(source, "aten::conv1d", "forward/encoder")
        h_node, c_node = by_op(source, "aten::lstm_cell", "forward/cell")
        (linear,) = by_op(source, "aten::linear")
        (sigmoid,) = by_op(source, "aten::sigmoid")
    np.testing.assert_allclose(values[conv1], calls["encoder.conv1"][0]["outputs"][0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[conv2], calls["encoder.conv2"][0]["outputs"][0].numpy(), rtol=1e-5)
    last_cell = calls["cell"][-1]
    np.testing.assert_allclose(values[h_node], last_cell["outputs"][0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[c_node], last_cell["outputs"][1].numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[linear], calls["head"][0]["outputs"][0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(values[sigmoid], vad["out"].numpy(), rtol=1e-5)
    # every other value is one torch computed too (a module's input or output, or the result)
    step_input = last_cell["inputs"][0]  # feats[:, :, t * 64] * sr / 16000 with sr = 16000
    pool = pool_of(calls, vad["out"], torch.from_numpy(vad["x"]).unsqueeze(1), step_input * SR)
    unmatched = [i for i, v in values.items() if not matches_some(v, pool)]
    assert unmatched == []
    assert len(values) >= 15
    assert all("not taken for these inputs" in text for text in refused.values())


def test_loop_body_shows_the_last_iteration_and_says_so(vad: dict) -> None:
    calls = vad["calls"]["cell"]
    assert len(calls) == 4
    with open_path(vad["path"], trust=True) as source:
        (h_node, _) = by_op(source, "aten::lstm_cell", "forward/cell")
        note = source.node(h_node).metadata["note"]
        value = source.evaluate(h_node, feeds_of(vad))
    assert "for t in range(feats.shape[-1] // 64):" in note and "last iteration" in note
    np.testing.assert_allclose(value, calls[-1]["outputs"][0].numpy(), rtol=1e-5)
    assert not np.allclose(value, calls[0]["outputs"][0].numpy())


def test_a_branch_not_taken_says_so(tmp_path: Path) -> None:
    model = repeat()
    path = save_scripted(model, tmp_path / "repeat.pt")
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    with open_path(path, trust=True) as source:
        (tanh,) = by_op(source, "aten::tanh")
        (half,) = by_op(source, "aten::mul")
        # n=1: only the even iteration ran, so the else branch never did
        with pytest.raises(NotEvaluable) as info:
            source.evaluate(half, {"x": x, "n": np.array(1)})
        assert str(info.value) == (
            f"{source.node(half).name!r} is in the else branch of prim::If 'if i % 2 == 0:', "
            "not taken for these inputs."
        )
        with torch.no_grad():
            expected = torch.tanh(model.step(torch.from_numpy(x))).numpy()
        np.testing.assert_allclose(source.evaluate(tanh, {"x": x, "n": np.array(1)}), expected, rtol=1e-6)
        # n=0: the loop never ran
        with pytest.raises(
            NotEvaluable, match="body of prim::Loop 'for i in range\\(n\\):', which ran zero times"
        ):
            source.evaluate(tanh, {"x": x, "n": np.array(0)})


def test_inputs_come_from_the_schema_with_its_defaults(tmp_path: Path, vad: dict) -> None:
    path = save_scripted(repeat(), tmp_path / "repeat.pt")
    with open_path(path, trust=True) as source:
        specs = {s.name: s for s in source.feed_specs()}
        assert list(specs) == ["x", "n"]
        assert (specs["x"].dtype, specs["x"].shape) == ("", None)  # a Tensor of any dtype
        assert (specs["n"].dtype, specs["n"].shape) == ("int64", ())
        assert source.default_feeds()["n"] == 2  # forward(x, n: int = 2)
    with open_path(vad["path"], trust=True) as source:
        assert [(s.name, s.dtype) for s in source.feed_specs()] == [("x", ""), ("sr", "int64")]


def test_the_models_own_raise_text_is_the_sentence(vad: dict) -> None:
    with open_path(vad["path"], trust=True) as source:
        node = by_op(source, "aten::sigmoid")[0]
        with pytest.raises(Exception) as info:
            source.evaluate(node, {"x": np.zeros((2, 256), np.float32), "sr": np.array(8000)})
    error = info.value
    assert str(error).startswith(
        "Exception: Provided number of samples is 256 (Supported values: 512 for 8000 sample rate)"
    )
    assert "The following operation failed in the TorchScript interpreter" in error.details
    assert "The following operation failed" in str(error.__cause__)  # what --debug prints


def test_an_ops_own_error_is_the_sentence(vad: dict) -> None:
    with open_path(vad["path"], trust=True) as source:
        node = by_op(source, "aten::conv1d", "forward/encoder")[0]
        with pytest.raises(Exception) as info:
            source.evaluate(node, {"x": np.zeros((2, 3, 512), np.float32), "sr": np.array(SR)})
    assert str(info.value).startswith("RuntimeError: Expected 2D (unbatched) or 3D (batched) input to conv1d")


def test_module_list_entries_are_grouped_by_their_full_path(tmp_path: Path) -> None:
    model = stacked()
    path = save_scripted(model, tmp_path / "stacked.pt")
    calls = record_calls(model)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model(x)
    with open_path(path, trust=True) as source:
        assert source.node("forward/blocks/1").metadata["module_type"] == "Sequential"
        by_module = {m.get("module"): i for i, m in computed(source).items()}
        assert {"blocks.0.0", "blocks.0.1", "blocks.1.0", "blocks.1.1"} <= set(by_module)
        for module in ("blocks.0.0", "blocks.1.1"):
            value = source.evaluate(by_module[module], {"x": x.numpy()})
            np.testing.assert_allclose(value, calls[module][0]["outputs"][0].numpy(), rtol=1e-6)
