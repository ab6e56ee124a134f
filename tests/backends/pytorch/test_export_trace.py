"""Tracing a torch.export program: every FX node's output in order, and the NaN producer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from trace_fixtures import TORCH_PRODUCER, torch_program

from tensor_inspector.backends.registry import open_path
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.session.trace import trace_source


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("export_trace")
    return {nan: torch_program(directory, nan) for nan in (True, False)}


def test_the_op_that_makes_nan_is_named_not_the_ops_that_pass_it_on(programs):
    with open_path(programs[True]) as source:
        report = trace_source(source)
    assert report.entry == "graph"
    assert report.first_nonfinite == TORCH_PRODUCER
    assert report.node(TORCH_PRODUCER).inputs == ("graph/sub",)
    after = [n for n in report.nodes if n.id in ("graph/mul", "graph/relu", "graph/add")]
    assert len(after) == 3 and all(n.nan > 0 for n in after)  # NaN passed on, not produced there
    assert all(n.finite for n in report.nodes[: [n.id for n in report.nodes].index(TORCH_PRODUCER)])


def test_nodes_come_in_execution_order_with_listed_ids(programs):
    program = torch.export.load(str(programs[True]))
    expected = [f"graph/{n.name}" for n in program.graph.nodes if n.op != "output"]
    with open_path(programs[True]) as source:
        report = trace_source(source)
        listed = {node.id for node in source.value_nodes()}
    assert [n.id for n in report.nodes] == expected
    assert {n.id for n in report.nodes} <= listed


def test_statistics_equal_the_programs_own_intermediate_values(programs):
    program = torch.export.load(str(programs[False]))
    weight, bias = program.state_dict["lin.weight"], program.state_dict["lin.bias"]
    x = torch.ones(2, 3)
    with torch.no_grad():
        hidden = (x @ weight.T + bias).numpy()
    final = program.module()(x).detach().numpy()
    with open_path(programs[False]) as source:
        report = trace_source(source)
    assert report.first_nonfinite is None
    for node_id, value in (("graph/linear", hidden), ("graph/sub", hidden + 100.0), ("graph/add", final)):
        node = report.node(node_id)
        assert node.shape == value.shape
        assert node.min == pytest.approx(float(value.min()), rel=1e-6)
        assert node.max == pytest.approx(float(value.max()), rel=1e-6)
        assert node.mean == pytest.approx(float(value.astype(np.float64).mean()), rel=1e-6)
        np.testing.assert_allclose(report.arrays[node_id], value, rtol=1e-6)


def test_keep_nothing_still_summarises_every_node(programs):
    with open_path(programs[True]) as source:
        report = trace_source(source, keep_bytes=0)
        # two 2x4 float32 activations fit, nothing more; weights and inputs are never kept
        small = trace_source(source, keep_bytes=2 * 8 * 4)
    assert report.arrays == {} and not any(n.kept for n in report.nodes)
    assert report.node("graph/linear").max is not None and report.node(TORCH_PRODUCER).nan == 8
    assert list(small.arrays) == ["graph/linear", "graph/sub"]
    assert [n.id for n in small.nodes if n.kept] == list(small.arrays)


def test_cancel_stops_the_run_between_nodes(programs):
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        if len(seen) == 3:
            cancel.set()

    with open_path(programs[True]) as source, pytest.raises(Cancelled):
        source.trace("graph", source.default_feeds(), on_node, cancel)
    assert len(seen) == 3


def test_feeds_replace_the_example_inputs(programs):
    with open_path(programs[False]) as source:
        report = trace_source(source, feeds={"x": np.full((2, 3), 2.0, np.float32)})
    assert report.node("graph/x").mean == 2.0
    np.testing.assert_array_equal(report.feeds["x"], np.full((2, 3), 2.0, np.float32))
