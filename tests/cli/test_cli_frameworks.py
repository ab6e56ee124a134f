"""The CLI on framework files: ls, show and export of stored and computed nodes, with --feed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fixtures import three_layer

from tensor_inspector.cli import main

DEMO = Path(__file__).parents[2] / "tensor_inspector" / "resources" / "demo"
SAVED_MODEL = DEMO / "mlp_savedmodel"
RELU = "serving_default/StatefulPartitionedCall/hidden/Relu:0"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def mlp():
    import tensorflow as tf

    return tf.saved_model.load(str(SAVED_MODEL))


def test_ls_saved_model_lists_variables_and_graph_nodes(capsys):
    code, out, _ = run(capsys, "ls", SAVED_MODEL, "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["variables/hidden/kernel"] == {
        "id": "variables/hidden/kernel",
        "kind": "tensor",
        "dtype": "float32",
        "shape": [16, 32],
    }
    assert rows[RELU]["kind"] == "computed" and rows[RELU]["shape"] == [None, 32]


def test_show_graph_node_with_json_feed_equals_tensorflow(capsys, mlp):
    features = np.linspace(-2, 2, 32, dtype=np.float32).reshape(2, 16)
    code, out, err = run(
        capsys, "show", SAVED_MODEL, RELU, "--json", "--feed", f"features={json.dumps(features.tolist())}"
    )
    assert code == 0, err
    hidden = mlp.hidden
    expected = np.maximum(features @ hidden.kernel.numpy() + hidden.bias.numpy(), 0)
    d = json.loads(out)
    assert d["shape"] == [2, 32] and d["zeros"] == int((expected == 0).sum())
    assert d["max"] == pytest.approx(float(expected.max()), rel=1e-6)


def test_export_signature_output_with_npy_feed_equals_calling_the_signature(capsys, tmp_path, mlp):
    features = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", features)
    node = "serving_default/StatefulPartitionedCall/probabilities:0"
    code, _, err = run(
        capsys,
        "export",
        SAVED_MODEL,
        node,
        "-o",
        tmp_path / "p.npy",
        "--feed",
        f"features=@{tmp_path / 'x.npy'}",
    )
    assert code == 0, err
    expected = mlp.signatures["serving_default"](features=features)["probabilities"].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-6)


def test_export_variable_equals_checkpoint_reader(capsys, tmp_path):
    import tensorflow as tf

    code, _, _ = run(capsys, "export", SAVED_MODEL, "variables/logits/kernel", "-o", tmp_path / "k.npy")
    reader = tf.train.load_checkpoint(str(SAVED_MODEL / "variables" / "variables"))
    key = next(k for k in reader.get_variable_to_shape_map() if k.startswith("logits/kernel"))
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), reader.get_tensor(key))


def test_unknown_feed_name_is_one_sentence(capsys):
    code, _, err = run(capsys, "show", SAVED_MODEL, RELU, "--feed", "nope=[1]")
    assert code == 1 and err.count("\n") == 1 and "nope" in err


def test_torch_export_graph_node_with_feed(capsys, tmp_path):
    model = three_layer().eval()
    x = torch.randn(2, 4)
    program = torch.export.export(model, (x,))
    torch.export.save(program, tmp_path / "m.pt2")
    code, out, _ = run(capsys, "ls", tmp_path / "m.pt2", "--json")
    graph_ids = [r["id"] for r in json.loads(out) if r["kind"] == "computed"]
    assert code == 0 and graph_ids
    feed = torch.randn(2, 4)
    out_node = graph_ids[-1]
    code, _, err = run(
        capsys,
        "export",
        tmp_path / "m.pt2",
        out_node,
        "-o",
        tmp_path / "y.npy",
        "--feed",
        f"x=@{_save(tmp_path / 'x.npy', feed.numpy())}",
    )
    assert code == 0, err
    with torch.no_grad():
        expected = model(feed).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)


def test_torchscript_needs_trust_then_evaluates(capsys, tmp_path):
    model = three_layer().eval()
    torch.jit.save(torch.jit.script(model), tmp_path / "s.pt")
    code, _, err = run(capsys, "ls", tmp_path / "s.pt")
    assert code == 1 and "trust" in err.lower()
    code, out, _ = run(capsys, "ls", tmp_path / "s.pt", "--trust", "--json")
    assert code == 0 and any(r["kind"] == "computed" for r in json.loads(out))


def test_torch_checkpoint_ls_show_export(capsys, tmp_path):
    state = {"model": {"w": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)}, "epoch": 7}
    torch.save(state, tmp_path / "c.pt")
    code, out, _ = run(capsys, "ls", tmp_path / "c.pt", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert code == 0 and rows["model/w"]["dtype"] == "bfloat16" and rows["epoch"]["kind"] == "value"
    code, _, _ = run(capsys, "export", tmp_path / "c.pt", "model/w", "-o", tmp_path / "w.npy")
    back = np.load(tmp_path / "w.npy")
    assert code == 0 and back.dtype.name == "bfloat16"
    assert back.tobytes() == state["model"]["w"].view(torch.int16).numpy().tobytes()


def _save(path, array):
    np.save(path, array)
    return path
