"""Tracing SavedModel signatures (TF2 frozen functions and TF1 graphs) in Session runs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tensorflow as tf
from trace_fixtures import TF1_FEEDS, TF1_PRODUCER, TF2_FEEDS, TF2_PRODUCER, tf1_saved_model, tf2_saved_model

from tensor_inspector.backends.registry import open_path
from tensor_inspector.backends.tensorflow import graph_trace
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.session.trace import trace_source

CASES = {"tf2": (TF2_PRODUCER, TF2_FEEDS), "tf1": (TF1_PRODUCER, TF1_FEEDS)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tf_trace")
    return {"tf2": tf2_saved_model(directory), "tf1": tf1_saved_model(directory)}


@pytest.mark.parametrize("kind", ["tf2", "tf1"])
def test_the_op_that_makes_nan_is_named_with_its_inputs(models, kind):
    producer, feeds = CASES[kind]
    with open_path(models[kind]) as source:
        report = trace_source(source, "serving_default", {"x": feeds[True]})
    assert report.first_nonfinite == producer
    ids = [n.id for n in report.nodes]
    at = ids.index(producer)
    passed_on = [n for n in report.nodes[at + 1 :] if n.op in ("Mul", "AddV2", "Relu", "Identity") and n.nan]
    assert passed_on  # later ops carry the NaN without being named
    expected_input = {"tf2": "serving_default/StatefulPartitionedCall/mm:0", "tf1": "serving_default/ax:0"}
    assert report.node(producer).inputs == (expected_input[kind],)


@pytest.mark.parametrize("kind", ["tf2", "tf1"])
def test_order_ids_and_values_match_evaluating_each_op(models, kind):
    _producer, feeds = CASES[kind]
    with open_path(models[kind]) as source:
        report = trace_source(source, "serving_default", {"x": feeds[False]})
        listed = {node.id for node in source.value_nodes()}
        own = {n.id: np.asarray(source.evaluate(n.id, {"x": feeds[False]})) for n in report.nodes}
    assert report.first_nonfinite is None
    position = {n.id: i for i, n in enumerate(report.nodes)}
    for node in report.nodes:
        assert node.id in listed
        assert all(position[i] < position[node.id] for i in node.inputs)  # inputs run first
        value = own[node.id].astype(np.float64)
        assert node.min == pytest.approx(value.min()) and node.max == pytest.approx(value.max())
        assert node.mean == pytest.approx(value.mean())
        if node.kept:  # weights, constants and inputs are not kept: they read back at once
            np.testing.assert_array_equal(report.arrays[node.id], own[node.id])
    assert sum(node.kept for node in report.nodes) >= 3


def test_tf2_output_equals_the_signature_run_by_tensorflow(models):
    loaded = tf.saved_model.load(str(models["tf2"]))
    y = loaded.signatures["serving_default"](x=tf.constant(TF2_FEEDS[False]))["y"].numpy()
    with open_path(models["tf2"]) as source:
        report = trace_source(source, feeds={"x": TF2_FEEDS[False]})
    assert "serving_default/Identity:0" in report.arrays, [n.id for n in report.nodes]
    np.testing.assert_array_equal(report.arrays["serving_default/Identity:0"], y)


def test_another_signature_is_traced_by_name(models):
    with open_path(models["tf2"]) as source:
        assert source.trace_entries() == ["serving_default", "double"]  # the default first
        report = trace_source(source, "double", {"x": TF2_FEEDS[True]})
    assert all(n.id.startswith("double/") for n in report.nodes)
    assert report.node("double/PartitionedCall/twice:0").min == -2.0


def test_small_chunks_and_no_kept_values_give_the_same_statistics(models, monkeypatch):
    with open_path(models["tf2"]) as source:
        whole = trace_source(source, feeds={"x": TF2_FEEDS[True]})
        monkeypatch.setattr(graph_trace, "CHUNK_BYTES", 1)  # one op per Session run
        chunked = trace_source(source, feeds={"x": TF2_FEEDS[True]}, keep_bytes=0)
    assert chunked.arrays == {} and not any(n.kept for n in chunked.nodes)
    assert [(n.id, n.min, n.max, n.nan) for n in chunked.nodes] == [
        (n.id, n.min, n.max, n.nan) for n in whole.nodes
    ]
    assert chunked.first_nonfinite == TF2_PRODUCER


def test_cancel_stops_between_runs(models, monkeypatch):
    monkeypatch.setattr(graph_trace, "CHUNK_BYTES", 1)
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        cancel.set()

    with open_path(models["tf1"]) as source, pytest.raises(Cancelled):
        source.trace("serving_default", {"x": TF1_FEEDS[True]}, on_node, cancel)
    assert len(seen) == 1
