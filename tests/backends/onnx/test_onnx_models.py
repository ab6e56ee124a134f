"""ONNX models open as a tree; every node output equals onnxruntime's own value for the same input."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_fixtures
import pytest
from onnx import numpy_helper

from tensor_inspector.backends.base import CorruptFile, NodeKind, NotEvaluable, TrustRequired
from tensor_inspector.backends.onnx.backend import OnnxBackend
from tensor_inspector.backends.registry import detect, open_path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_helper_graph_lists_initializers_outputs_and_if_branches(tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    with open_path(path) as source:
        assert source.backend_name == "onnx"
        kinds = {n.id: n.kind for n in source.nodes.values()}
        assert {k for k, v in kinds.items() if v is NodeKind.TENSOR} >= {"w", "b", "two", "zero"}
        assert all(kinds[v] is NodeKind.COMPUTED for v in ["xw", "pre", "y", "total", "positive", "out"])
        assert source.node("w").shape == (4, 3) and source.node("w").dtype == "float32"
        assert source.node("xw").shape == (None, 3) and source.node("xw").metadata["op"] == "MatMul"
        # the If node is a group holding its output and both branches, with their values
        branch = source.node("out").parent
        assert source.node(branch).kind is NodeKind.GROUP and source.node(branch).name == "branch"
        groups = {n.name: n.id for n in source.children(branch) if n.kind is NodeKind.GROUP}
        assert set(groups) == {"then_branch", "else_branch"}
        then_names = {n.name: n for n in source.children(groups["then_branch"])}
        assert set(then_names) == {"then_shift", "doubled", "then_out"}
        assert then_names["then_shift"].kind is NodeKind.TENSOR
        np.testing.assert_array_equal(source.read(then_names["then_shift"].id), [0.5, 0.25, 0.125])
        else_names = {n.name for n in source.children(groups["else_branch"])}
        assert else_names == {"one", "else_out"}
        [spec] = source.feed_specs("out")
        assert (spec.name, spec.dtype, spec.shape) == ("x", "float32", (None, 4))
        assert source.feed_specs("xw")[0].name == "x"


@pytest.mark.parametrize("runs", ["then_branch", "else_branch"])
def test_helper_graph_values_equal_onnxruntime(tmp_path, runs):
    """Top-level values equal onnxruntime's; the branch taken gives its values, the other says why not."""
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    w = numpy_helper.to_array(onnx.load(path).graph.initializer[0])
    # along w's first column x @ w is large and positive; x = 0 leaves relu(b), all zeros here
    x = np.tile(np.sign(w[:, 0]) * (10.0 if runs == "then_branch" else 0.0), (3, 1)).astype(np.float32)
    names = ["xw", "pre", "y", "total", "positive", "out"]
    expected = onnx_fixtures.ort_values(path, names, {"x": x})
    with open_path(path) as source:
        for name in names:
            got = source.get(name, feeds={"x": x})
            assert got.dtype == expected[name].dtype and got.shape == expected[name].shape, name
            np.testing.assert_array_equal(got, expected[name], err_msg=name)
        np.testing.assert_array_equal(
            source.get("y", index=(0, slice(1, 3)), feeds={"x": x}), expected["y"][0, 1:3]
        )
        ids = {n.name: n.id for n in source.nodes.values()}
        y = expected["y"]
        taken, other = (
            ("then_branch", "else_branch") if expected["positive"] else ("else_branch", "then_branch")
        )
        assert taken == runs
        branch_values = {"doubled": y * 2, "then_out": y * 2 + np.float32([0.5, 0.25, 0.125])}
        branch_values.update({"one": np.float32(1.0), "else_out": y - 1})
        for name, want in branch_values.items():
            if taken not in ids[name]:
                with pytest.raises(NotEvaluable, match=f"the {other} of If node 'branch' does not run"):
                    source.get(ids[name], feeds={"x": x})
                continue
            np.testing.assert_array_equal(source.get(ids[name], feeds={"x": x}), want, err_msg=name)
        np.testing.assert_array_equal(source.get("out", feeds={"x": x}), expected["out"])


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_torch_cnn_every_node_equals_onnxruntime_and_torch(tmp_path, external):
    import torch

    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=external)
    assert (tmp_path / "weights.bin").exists() == external
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    names = onnx_fixtures.node_outputs(path)
    expected = onnx_fixtures.ort_values(path, names, {"image": x})
    model = onnx_fixtures.small_cnn()
    with open_path(path) as source:
        computed = [n.id for n in source.nodes.values() if n.kind is NodeKind.COMPUTED]
        assert computed == names
        for name in names:
            np.testing.assert_array_equal(source.get(name, feeds={"image": x}), expected[name], err_msg=name)
        with torch.no_grad():
            np.testing.assert_allclose(
                source.get("probs", feeds={"image": x}),
                model(torch.from_numpy(x)).numpy(),
                rtol=1e-5,
                atol=1e-6,
            )
        # initializers: the module's parameters, read from the file (or its external data) by offset
        state = model.state_dict()
        weight = source.node("conv2.weight")  # conv1 is exported with the batch norm folded in
        assert weight.kind is NodeKind.TENSOR and weight.shape == (4, 8, 3, 3)
        assert ("external: weights.bin" in weight.metadata["storage"]) == external
        np.testing.assert_array_equal(source.read("conv2.weight"), state["conv2.weight"].numpy())
        np.testing.assert_array_equal(
            source.read("fc.weight", (slice(1, 3), slice(10, 20))), state["fc.weight"].numpy()[1:3, 10:20]
        )
        [spec] = source.feed_specs(None)
        assert (spec.name, spec.dtype, spec.shape) == ("image", "float32", (None, 3, 16, 16))


def test_detection_by_content(tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    renamed = tmp_path / "model.pb"
    renamed.write_bytes(path.read_bytes())
    backend = OnnxBackend()
    assert backend.detect(path) > 0.9 and backend.detect(renamed) > 0.5
    assert detect(renamed)[0][1].name == "onnx"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07not a model at all")
    assert backend.detect(junk) == 0.0
    graph_def = tmp_path / "graph.pb"  # a TensorFlow GraphDef starts with a node message (field 1)
    graph_def.write_bytes(b"\x0a\x05\x0a\x01x\x12\x00")
    assert backend.detect(graph_def) == 0.0


def test_external_data_outside_the_folder_is_refused(tmp_path):
    path = onnx_fixtures.if_model(tmp_path / "if.onnx")
    model = onnx.load(path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 64)
    folder = tmp_path / "model"
    folder.mkdir()
    for location in ["../secret.bin", str(secret), "../../../../etc/passwd", "sub/../../secret.bin"]:
        w = model.graph.initializer[0]
        w.ClearField("raw_data")
        w.data_location = onnx.TensorProto.EXTERNAL
        del w.external_data[:]
        w.external_data.add(key="location", value=location)
        onnx.save_model(model, folder / "evil.onnx")
        with pytest.raises(CorruptFile, match="external data outside its folder"):
            open_path(folder / "evil.onnx")


def test_missing_or_short_external_data_is_named(tmp_path):
    import torch  # noqa: F401

    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=True)
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[:100])
    with open_path(path) as source, pytest.raises(CorruptFile, match="weights.bin is too short"):
        source.read("fc.weight")
    (tmp_path / "weights.bin").unlink()
    with open_path(path) as source, pytest.raises(CorruptFile, match="weights.bin, which is missing"):
        source.read("fc.weight")


def test_custom_domain_ops_need_trust(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Gelu", ["r"], ["g"], domain="com.microsoft"),
        ],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("g", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    onnx.save_model(model, tmp_path / "custom.onnx")
    x = np.array([-1.0, 2.0], np.float32)
    with open_path(tmp_path / "custom.onnx") as source:
        assert source.node("g").metadata["op"] == "com.microsoft::Gelu"
        with pytest.raises(TrustRequired, match=r"outside the standard ONNX sets \(com.microsoft::Gelu\)"):
            source.get("r", feeds={"x": x})
    with open_path(tmp_path / "custom.onnx", trust=True) as source:  # onnxruntime has this contrib op
        np.testing.assert_array_equal(source.get("r", feeds={"x": x}), [0.0, 2.0])


def test_ml_domain_ops_are_allowed(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", offset=[1.0, 2.0], scale=[2.0, 0.5])],
        "ml",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 8
    onnx.save_model(model, tmp_path / "ml.onnx")
    with open_path(tmp_path / "ml.onnx") as source:
        got = source.get("s", feeds={"x": np.array([[3.0, 6.0]], np.float32)})
    np.testing.assert_array_equal(got, [[4.0, 2.0]])


@pytest.mark.parametrize("x_sign", [1.0, -1.0])
def test_nested_if_branches_evaluate_where_taken(tmp_path, x_sign):
    path = onnx_fixtures.nested_if_model(tmp_path / "nested.onnx")
    x = (x_sign * (np.arange(6, dtype=np.float32).reshape(2, 3) + 1)).astype(np.float32)
    r = np.maximum(x, 0)
    t2 = -(r * 2)
    with open_path(path) as source:
        ids = {n.name: n.id for n in source.nodes.values()}
        assert ids["u"] == "outer/then_branch/inner/then_branch/u"
        values = {"t1": r * 2, "t2": t2, "m": t2.max(), "c2": True, "u": t2 + 1, "inner_out": t2 + 1}
        for name, want in values.items():
            if x_sign > 0:
                np.testing.assert_array_equal(source.get(ids[name], feeds={"x": x}), want, err_msg=name)
            else:
                with pytest.raises(NotEvaluable, match="the then_branch of If node 'outer' does not run"):
                    source.get(ids[name], feeds={"x": x})
        if x_sign > 0:
            with pytest.raises(NotEvaluable, match="the else_branch of If node 'inner' does not run"):
                source.get(ids["v"], feeds={"x": x})
        else:
            np.testing.assert_array_equal(source.get(ids["e"], feeds={"x": x}), r)
        np.testing.assert_array_equal(source.get("out", feeds={"x": x}), t2 + 1 if x_sign > 0 else r)


def test_loop_body_values_say_why_they_have_no_value(tmp_path):
    path = onnx_fixtures.loop_model(tmp_path / "loop.onnx")
    with open_path(path) as source:
        body = {n.name: n.id for n in source.nodes.values() if n.parent and n.parent.endswith("/body")}
        assert set(body) == {"acc_out", "cond_out"}
        with pytest.raises(
            NotEvaluable, match="inside the body of Loop node 'repeat', which runs once per step"
        ):
            source.get(body["acc_out"], feeds={"x": np.zeros(2, np.float32)})
        np.testing.assert_array_equal(source.get("total", feeds={"x": np.zeros(2, np.float32)}), [3.0, 30.0])
