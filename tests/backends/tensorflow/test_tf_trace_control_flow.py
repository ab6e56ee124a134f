"""Tracing SavedModels whose NaN is made inside a while loop: the loop's output is named.

Freezing lowers a TF2 While into Enter/Merge/Switch/Exit ops; an output no plain op reads
(here, one a tf.cond reads) is found at its Exit. TF1 graphs built by TF 1.x list their
Exit ops themselves. Values inside a loop body run once per iteration and are not traced,
so the loop's output is the honest producer, not the first op after the loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tensor_inspector.backends.registry import open_path
from tensor_inspector.core.errors import NotEvaluable
from tensor_inspector.session.trace import trace_source

NAN_X = np.array([[0.4, 2.0, 0.9, 5.0]], np.float32)  # sqrt of a negative within three steps
FINITE_X = np.array([[10.0, 12.0, 20.0, 30.0]], np.float32)
LOOP = "serving_default/PartitionedCall/while"  # outputs: loop counter, maximum iterations, then ours


def _three_steps(x: np.ndarray) -> np.ndarray:
    """The loop body run by TensorFlow eagerly: y = sqrt(y - 0.5), three times."""
    y = tf.constant(x)
    for _ in range(3):
        y = tf.math.sqrt(y - 0.5)
    return y.numpy()


class _Loop(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        def body(i, acc):
            return i + 1, tf.math.sqrt(acc - 0.5)

        _, y = tf.while_loop(lambda i, a: i < 3, body, (0, x))
        z = tf.cond(tf.reduce_sum(x) > 0, lambda: y * 2.0, lambda: y - 1.0)
        return {"z": tf.math.log(z + 1.0)}


class _TwinLoop(tf.Module):
    """Two loop variables start from the same tensor; only a tf.cond reads the outputs."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        def body(i, a, b):
            return i + 1, tf.math.sqrt(a - 0.5), b * 2.0

        _, a, b = tf.while_loop(lambda i, a, b: i < 3, body, (0, x, x))
        z = tf.cond(tf.reduce_sum(x) > 0, lambda: a - b, lambda: b - a)
        return {"z": z}


class _IfIntoLoop(tf.Module):
    """An If only a while loop reads, lowered by freezing (as tf.cond's are): its outputs
    are found at the lowered If's Merges. tf.cond itself wraps its outputs in Identity ops,
    which makes them plain reads; converters emit bare If ops."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        from tensorflow.core.framework import attr_value_pb2

        spec = tf.TensorSpec([None, 4], tf.float32)
        then_fn = tf.function(lambda v: (v - 0.25, v * 3.0)).get_concrete_function(spec)
        else_fn = tf.function(lambda v: (v + 0.25, v * 5.0)).get_concrete_function(spec)
        up, down = tf.raw_ops.StatelessIf(
            cond=tf.reduce_sum(x) > 0,
            input=[x],
            Tout=[tf.float32, tf.float32],
            then_branch=then_fn,
            else_branch=else_fn,
        )
        up.op._set_attr("_lower_using_switch_merge", attr_value_pb2.AttrValue(b=True))
        _, a, b = tf.while_loop(
            lambda i, a, b: i < 3, lambda i, a, b: (i + 1, tf.math.sqrt(a - 0.5), b), (0, up, down)
        )
        return {"z": a + b}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tf_loops")
    tf.saved_model.save(_Loop(), str(directory / "loop"))
    tf.saved_model.save(_TwinLoop(), str(directory / "twin"))
    tf.saved_model.save(_IfIntoLoop(), str(directory / "if_loop"))
    paths = {name: directory / name for name in ("loop", "twin", "if_loop")}
    return {**paths, "tf1": _tf1_loop(directory)}


def _tf1_loop(directory):
    """The same computation as TF 1.x built it: Enter/Merge/Switch/Exit in the saved graph."""
    from tensorflow.python.ops import control_flow_util

    out = directory / "tf1_loop"
    was_v2 = control_flow_util.ENABLE_CONTROL_FLOW_V2
    control_flow_util.ENABLE_CONTROL_FLOW_V2 = False
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
            _, y = tf.compat.v1.while_loop(
                lambda i, a: i < 3,
                lambda i, a: (i + 1, tf.math.sqrt(a - 0.5)),
                [tf.constant(0), x],
                name="loop",
            )
            z = tf.math.log(y * 2.0 + 1.0, name="z")
            with tf.compat.v1.Session(graph=graph) as sess:
                builder = tf.compat.v1.saved_model.Builder(str(out))
                signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"z": z})
                builder.add_meta_graph_and_variables(
                    sess, ["serve"], signature_def_map={"serving_default": signature}
                )
                builder.save()
    finally:
        control_flow_util.ENABLE_CONTROL_FLOW_V2 = was_v2
    return out


def test_a_nan_made_in_a_tf2_loop_is_named_at_the_loop_output(models):
    with open_path(models["loop"]) as source:
        report = trace_source(source, "serving_default", {"x": NAN_X})
        evaluated = np.asarray(source.evaluate(f"{LOOP}:3", {"x": NAN_X}))
    expected = _three_steps(NAN_X)
    assert np.isnan(expected).any() and not np.isnan(NAN_X).any()
    assert report.first_nonfinite == f"{LOOP}:3"
    traced = report.node(f"{LOOP}:3")
    assert traced.nan == int(np.isnan(expected).sum())
    finite = expected[np.isfinite(expected)].astype(np.float64)
    assert traced.min == pytest.approx(finite.min()) and traced.max == pytest.approx(finite.max())
    np.testing.assert_array_equal(report.arrays[f"{LOOP}:3"], expected)
    np.testing.assert_array_equal(evaluated, expected)
    # The op after the loop reads the loop's output (through the lowered tf.cond), not the loop's inputs.
    mul = report.node("serving_default/PartitionedCall/cond/then/cond/mul:0")
    assert f"{LOOP}:3" in mul.inputs
    assert "serving_default/PartitionedCall/Const:0" not in mul.inputs


def test_finite_inputs_name_no_producer_and_the_loop_output_is_traced(models):
    with open_path(models["loop"]) as source:
        report = trace_source(source, "serving_default", {"x": FINITE_X})
    assert report.first_nonfinite is None
    np.testing.assert_allclose(report.arrays[f"{LOOP}:3"], _three_steps(FINITE_X), rtol=1e-6)
    ids = [n.id for n in report.nodes]
    assert ids.index(f"{LOOP}:3") < ids.index("serving_default/PartitionedCall/cond/then/cond/mul:0")


def test_loop_outputs_nothing_reads_say_so(models):
    with open_path(models["loop"]) as source:
        with pytest.raises(NotEvaluable, match="freezing drops"):
            source.evaluate(f"{LOOP}:0", {"x": FINITE_X})


def test_loop_variables_starting_alike_keep_their_order(models):
    with open_path(models["twin"]) as source:
        a = np.asarray(source.evaluate(f"{LOOP}:3", {"x": FINITE_X}))
        b = np.asarray(source.evaluate(f"{LOOP}:4", {"x": FINITE_X}))
        report = trace_source(source, "serving_default", {"x": NAN_X})
    np.testing.assert_allclose(a, _three_steps(FINITE_X), rtol=1e-6)
    np.testing.assert_array_equal(b, FINITE_X * 8.0)
    assert report.first_nonfinite == f"{LOOP}:3"
    np.testing.assert_array_equal(report.arrays[f"{LOOP}:4"], NAN_X * 8.0)


def test_if_outputs_only_a_loop_reads_are_traced(models):
    if_op = "serving_default/PartitionedCall/StatelessIf"
    with open_path(models["if_loop"]) as source:
        up = np.asarray(source.evaluate(f"{if_op}:0", {"x": FINITE_X}))
        down = np.asarray(source.evaluate(f"{if_op}:1", {"x": FINITE_X}))
        report = trace_source(source, "serving_default", {"x": FINITE_X})
    np.testing.assert_array_equal(up, FINITE_X - 0.25)
    np.testing.assert_array_equal(down, FINITE_X * 3.0)
    np.testing.assert_array_equal(report.arrays[f"{if_op}:1"], FINITE_X * 3.0)
    assert f"{if_op}:0" in report.node(f"{LOOP}:3").inputs


def test_a_nan_made_in_a_tf1_loop_is_named_at_its_exit(models):
    with open_path(models["tf1"]) as source:
        report = trace_source(source, "serving_default", {"x": NAN_X})
        finite = trace_source(source, "serving_default", {"x": FINITE_X})
    producer = report.node(report.first_nonfinite)
    assert producer.op == "Exit"
    np.testing.assert_array_equal(report.arrays[producer.id], _three_steps(NAN_X))
    assert finite.first_nonfinite is None
    np.testing.assert_allclose(finite.arrays[producer.id], _three_steps(FINITE_X), rtol=1e-6)


def test_a_second_trace_with_another_batch_reuses_nothing_stale(models):
    """The fetch plan and Session callables are kept between traces: a new batch size (other
    shapes, other chunk sizes) and new values still give this trace's values."""
    bigger = np.concatenate([FINITE_X, NAN_X, FINITE_X * 2.0])
    with open_path(models["loop"]) as source:
        first = trace_source(source, "serving_default", {"x": FINITE_X})
        second = trace_source(source, "serving_default", {"x": bigger})
    assert first.first_nonfinite is None and second.first_nonfinite == f"{LOOP}:3"
    np.testing.assert_array_equal(second.arrays[f"{LOOP}:3"], _three_steps(bigger))
    assert [n.id for n in first.nodes] == [n.id for n in second.nodes]
