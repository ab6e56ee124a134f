"""Control flow as users write it: TF1 tf.cond/tf.while_loop (Switch/Merge/Enter/Exit) and TF2
autograph (If/While inside tf.functions). Every listed node that can be evaluated equals what
TensorFlow computes; the others say why in one sentence.
"""

from __future__ import annotations

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import InspectorError, NodeKind, NotEvaluable
from tensor_inspector.backends.registry import open_path
from tensor_inspector.backends.tensorflow.common import tf_error_sentence

X_V1 = {"positive": np.array([1.0, 2.0, 0.5], np.float32), "negative": np.array([-1.0, -2.0], np.float32)}
X_TF2 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], np.float32)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    autograph, net = tf_fixtures.tf2_autograph_model(root)
    return {"v1": tf_fixtures.tf1_control_flow_v1(root), "autograph": autograph, "net": net}


def _computed(source):
    return [n for n in source.value_nodes() if n.kind is NodeKind.COMPUTED]


@pytest.mark.parametrize("case", sorted(X_V1))
def test_tf1_control_flow_nodes_equal_session_fetches(built, case):
    import tensorflow as tf

    x = X_V1[case]
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess, open_path(built["v1"]) as source:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(built["v1"]))
        assert any(op.type == "Switch" for op in graph.get_operations())  # TF 1.x control flow
        compared = in_loop = 0
        for node in _computed(source):
            tensor = node.metadata["tensor"]
            if "not_evaluable" in node.metadata:
                if node.framework_dtype == "resource":
                    continue
                assert "inside the while loop 'loop'" in node.metadata["not_evaluable"]
                assert tensor.startswith("loop/")
                in_loop += 1
                continue
            try:
                want = sess.run(tensor, {"x:0": x})
            except tf.errors.OpError:  # a branch these inputs do not take, or a loop's constant
                if node.metadata["op"] == "Const":
                    continue  # read from the graph: constants need no fetch
                with pytest.raises(NotEvaluable, match="not computed for these inputs"):
                    source.evaluate(node.id, {"x": x})
                continue
            np.testing.assert_array_equal(source.evaluate(node.id, {"x": x}), want)
            compared += 1
        assert compared > 10 and in_loop > 3
        taken = "scaled" if case == "positive" else "shifted"
        branch = next(n for n in _computed(source) if n.metadata["tensor"].endswith(f"/{taken}:0"))
        expected = x * 1.5 if case == "positive" else x - 1.5
        np.testing.assert_allclose(source.evaluate(branch.id, {"x": x}), expected)
        result = source.node("serving_default").metadata["outputs"]["result"]["node"]
        np.testing.assert_allclose(source.evaluate(result, {"x": x}), 4 * expected.mean() + 4, rtol=1e-6)


def test_autograph_branch_ops_are_children_of_their_if(built):
    with open_path(built["autograph"]) as source:
        regions = [n for n in source.nodes.values() if "control_flow" in n.metadata]
        names = {n.name for n in regions}
        assert {"then branch", "else branch", "loop condition", "loop body"} <= names
        for region in regions:
            owner = source.node(region.parent)
            assert owner.kind is NodeKind.COMPUTED and owner.metadata["op"] in (
                "If",
                "StatelessIf",
                "While",
                "StatelessWhile",
            )
            assert owner.id.endswith(":0")


def test_autograph_nodes_equal_the_functions_outputs(built):
    import tensorflow as tf

    net = built["net"]
    features = net.features.get_concrete_function()(tf.constant(X_TF2)).numpy()
    gated = net.gate.get_concrete_function()(tf.constant(features)).numpy()
    assert features.sum() > 1.0  # these inputs take the then branch
    loaded = tf.saved_model.load(str(built["autograph"]))
    outputs = loaded.signatures["serving_default"](x=tf.constant(X_TF2))
    with open_path(built["autograph"]) as source:
        assert source.vetting.findings == []
        feeds = {"x": X_TF2}
        by_tensor = {n.metadata["tensor"]: n for n in _computed(source)}
        relu = next(n for t, n in by_tensor.items() if t.endswith("/Relu:0"))
        np.testing.assert_allclose(source.evaluate(relu.id, feeds), features, rtol=1e-6)
        if_op = next(n for n in by_tensor.values() if n.metadata["op"] in ("If", "StatelessIf"))
        np.testing.assert_allclose(source.evaluate(if_op.id, feeds), gated, rtol=1e-6)
        then_mul = next(n for t, n in by_tensor.items() if "/then/" in t and n.metadata["op"] == "Mul")
        np.testing.assert_allclose(source.evaluate(then_mul.id, feeds), features * 2.0, rtol=1e-6)
        else_sub = next(n for t, n in by_tensor.items() if "/else/" in t and n.metadata["op"] == "Sub")
        with pytest.raises(NotEvaluable, match="not computed for these inputs: it lies in the branch"):
            source.evaluate(else_sub.id, feeds)
        for key in ("h", "total"):
            node = source.node("serving_default").metadata["outputs"][key]["node"]
            np.testing.assert_allclose(source.evaluate(node, feeds), outputs[key].numpy(), rtol=1e-6)
        loop_ops = [n for t, n in by_tensor.items() if "/body/" in t and n.metadata["op"] == "Square"]
        assert (
            loop_ops
            and "TensorFlow cannot fetch it from outside the loop" in loop_ops[0].metadata["not_evaluable"]
        )
        with pytest.raises(NotEvaluable, match="inside the body of .*While"):
            source.evaluate(loop_ops[0].id, feeds)
        # Every other node evaluates, or says in one sentence why not.
        for node in by_tensor.values():
            if "not_evaluable" in node.metadata:
                continue
            try:
                assert isinstance(source.evaluate(node.id, feeds), np.ndarray)
            except InspectorError as exc:
                assert "\n" not in str(exc) and str(exc).endswith(".")


def test_framework_errors_show_their_specific_line():
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError) as eager:
        tf.constant([1.0, 2.0]) + tf.constant([1.0, 2.0, 3.0])
    assert tf_error_sentence(eager.value) == "Incompatible shapes: [2] vs. [3]"
    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, [None])
        total = a + tf.constant([1.0, 2.0, 3.0])
    with tf.compat.v1.Session(graph=graph) as sess, pytest.raises(tf.errors.InvalidArgumentError) as session:
        sess.run(total, {a: np.ones(2, np.float32)})
    assert str(session.value).startswith("Graph execution error")
    assert tf_error_sentence(session.value).startswith("Incompatible shapes: [2] vs. [3]")
