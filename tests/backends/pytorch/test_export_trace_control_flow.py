"""torch.export programs with control flow: nodes inside cond branches and loop bodies are
listed, traced where they run, and named when they make the first NaN."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from tensor_inspector.backends.registry import open_path
from tensor_inspector.cli import main
from tensor_inspector.core.errors import Cancelled, NotEvaluable
from tensor_inspector.core.nodes import NodeKind
from tensor_inspector.session.trace import trace_source

PRODUCER = "graph/true_graph_0/sqrt"


class BranchingModel(torch.nn.Module):
    """Takes sqrt(x - 10) when x sums above zero: NaN for every normalised value."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(4)
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def taken(x: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(x - 10.0)

        def other(x: torch.Tensor) -> torch.Tensor:
            return x * 2

        y = torch.cond(x.sum() > 0, taken, other, (self.bn(self.lin(x)),))
        return torch.relu(y) + 1


class NestedModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def inner(x: torch.Tensor) -> torch.Tensor:
            return torch.cond(x.mean() > 5, lambda v: torch.log(v - 100), lambda v: v + 1, (x,))

        return torch.cond(x.sum() > 0, inner, lambda v: v * 3, (x,)) + 1


class LoopModel(torch.nn.Module):
    """Three iterations of x -> sqrt(x - 1): finite from 5, NaN from the second run on from 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def keep_going(i: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return i < 3

        def step(i: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return i + 1, torch.sqrt(x - 1.0)

        _, y = torch._higher_order_ops.while_loop(keep_going, step, (torch.tensor(0), x))
        return y + 1


class NoGradModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = self.lin(x)
        return torch.log(y)


def _save(model: torch.nn.Module, example: torch.Tensor, path) -> str:
    torch.export.save(torch.export.export(model, (example,)), str(path))
    return str(path)


@pytest.fixture(scope="module")
def branching(tmp_path_factory):
    torch.manual_seed(0)
    model = BranchingModel().eval()
    return model, _save(model, torch.ones(3, 4), tmp_path_factory.mktemp("cond") / "cond.pt2")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("control_flow")
    torch.manual_seed(0)
    return {
        "nested": _save(NestedModel(), torch.ones(3), directory / "nested.pt2"),
        "loop": _save(LoopModel(), torch.full((3,), 5.0), directory / "loop.pt2"),
        "no_grad": _save(NoGradModel(), torch.ones(2, 3), directory / "no_grad.pt2"),
    }


def _eager_normalised(model: BranchingModel, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.bn(model.lin(x)).numpy()


def test_the_sqrt_inside_the_taken_branch_is_the_producer(branching):
    _model, path = branching
    with open_path(path) as source:
        report = trace_source(source)
    ids = [n.id for n in report.nodes]
    assert report.first_nonfinite == PRODUCER
    assert report.node(PRODUCER).inputs == ("graph/true_graph_0/sub",)
    assert report.node("graph/true_graph_0/sub").inputs == ("graph/batch_norm",)  # the cond's operand
    assert report.node("graph/getitem").inputs == (PRODUCER,)  # passes the branch's NaN on
    assert ids.index("graph/batch_norm") < ids.index("graph/true_graph_0/sub") < ids.index(PRODUCER)
    assert ids.index(PRODUCER) < ids.index("graph/getitem")
    assert not any(i.startswith("graph/false_graph_0/") for i in ids)  # not taken: nothing reported
    assert report.node("graph/add").nan == 12


def test_the_other_branch_reports_its_own_nodes_and_no_nan(branching):
    model, path = branching
    x = -np.ones((3, 4), np.float32)
    with open_path(path) as source:
        report = trace_source(source, feeds={"x": x})
    ids = [n.id for n in report.nodes]
    assert report.first_nonfinite is None
    assert "graph/false_graph_0/mul" in ids and not any(i.startswith("graph/true_graph_0/") for i in ids)
    assert report.node("graph/false_graph_0/mul").inputs == ("graph/batch_norm",)
    assert report.node("graph/getitem").inputs == ("graph/false_graph_0/mul",)
    doubled = _eager_normalised(model, torch.from_numpy(x)) * 2
    np.testing.assert_allclose(report.arrays["graph/false_graph_0/mul"], doubled, rtol=1e-6)
    with torch.no_grad():
        final = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(report.arrays["graph/add"], final, rtol=1e-6)


def test_branch_statistics_equal_the_eager_models_intermediate_values(branching):
    model, path = branching
    normalised = _eager_normalised(model, torch.ones(3, 4))
    with open_path(path) as source:
        report = trace_source(source)
    shifted = normalised - 10.0
    node = report.node("graph/true_graph_0/sub")
    assert node.shape == (3, 4)
    assert node.min == pytest.approx(float(shifted.min()), rel=1e-6)
    assert node.max == pytest.approx(float(shifted.max()), rel=1e-6)
    assert node.mean == pytest.approx(float(shifted.astype(np.float64).mean()), rel=1e-6)
    np.testing.assert_allclose(report.arrays["graph/true_graph_0/sub"], shifted, rtol=1e-6)
    assert report.node(PRODUCER).nan == int((shifted < 0).sum()) == 12


def test_branch_nodes_are_listed_under_their_subgraph_with_their_op(branching):
    _model, path = branching
    with open_path(path) as source:
        nodes = source.nodes
        listed = [n.id for n in source.value_nodes()]
    for group, run_by in (("graph/true_graph_0", "graph/cond"), ("graph/false_graph_0", "graph/cond")):
        assert nodes[group].kind is NodeKind.GROUP and nodes[group].parent == "graph"
        assert nodes[group].metadata["run by"] == run_by
    sqrt = nodes[PRODUCER]
    assert sqrt.kind is NodeKind.COMPUTED and sqrt.parent == "graph/true_graph_0"
    assert sqrt.metadata["target"] == "aten.sqrt.default" and sqrt.dtype == "float32" and sqrt.shape == (3, 4)
    assert nodes["graph/false_graph_0/mul"].metadata["target"] == "aten.mul.Tensor"
    assert "graph/true_graph_0/batch_norm" not in nodes  # a branch's placeholder is the operand outside
    assert (
        listed.index("graph/batch_norm") < listed.index("graph/true_graph_0/sub") < listed.index("graph/cond")
    )


def test_ls_and_trace_on_the_command_line_agree(branching, capsys):
    import json

    _model, path = branching
    assert main(["ls", path, "--json"]) == 0
    listed = [row["id"] for row in json.loads(capsys.readouterr().out)]
    assert main(["trace", path, "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["first_nonfinite"]["id"] == PRODUCER
    traced = [n["id"] for n in document["nodes"]]
    assert set(traced) <= set(listed) and traced == sorted(traced, key=listed.index)


def test_a_branch_node_evaluates_when_its_branch_runs(branching):
    model, path = branching
    x = -np.ones((3, 4), np.float32)
    with open_path(path) as source:
        taken = source.evaluate("graph/true_graph_0/sub", {})
        doubled = source.evaluate("graph/false_graph_0/mul", {"x": x})
        with pytest.raises(NotEvaluable, match="not taken"):
            source.evaluate("graph/false_graph_0/mul", {})
    np.testing.assert_allclose(taken, _eager_normalised(model, torch.ones(3, 4)) - 10.0, rtol=1e-6)
    np.testing.assert_allclose(doubled, _eager_normalised(model, torch.from_numpy(x)) * 2, rtol=1e-6)


def test_nested_cond_names_the_log_of_the_inner_branch(files):
    with open_path(files["nested"]) as source:
        finite = trace_source(source)  # mean 1: the inner cond takes v + 1
        nan = trace_source(source, feeds={"x": np.array([1.0, 2.0, 300.0], np.float32)})
    assert finite.first_nonfinite is None
    assert finite.node("graph/true_graph_0/false_graph_0/add").inputs == ("graph/x",)
    assert finite.node("graph/true_graph_0/getitem").inputs == ("graph/true_graph_0/false_graph_0/add",)
    np.testing.assert_allclose(finite.arrays["graph/add"], np.full(3, 3.0, np.float32))
    assert nan.first_nonfinite == "graph/true_graph_0/true_graph_0/log"
    assert nan.node("graph/true_graph_0/true_graph_0/sub").inputs == ("graph/x",)
    np.testing.assert_allclose(nan.arrays["graph/true_graph_0/true_graph_0/sub"], [-99.0, -98.0, 200.0])
    assert nan.node("graph/getitem").inputs == ("graph/true_graph_0/getitem",)


def test_a_loop_body_reports_its_first_run_with_nan(files):
    body = "graph/while_loop_body_graph_0"
    with open_path(files["loop"]) as source:
        finite = trace_source(source)  # 5 -> 2 -> 1 -> 0: no NaN, the last run is reported
        nan = trace_source(source, feeds={"x": np.ones(3, np.float32)})  # 1 -> 0 -> NaN on run 2
    assert finite.first_nonfinite is None
    carried = finite.node(f"{body}/arg1_1")  # the last run's input
    assert (carried.min, carried.max) == (1.0, 1.0)
    np.testing.assert_array_equal(finite.arrays[f"{body}/sqrt"], np.zeros(3, np.float32))
    assert finite.node("graph/getitem_1").inputs == (f"{body}/sqrt",)
    np.testing.assert_array_equal(finite.arrays["graph/add"], np.ones(3, np.float32))
    assert nan.first_nonfinite == f"{body}/sqrt"
    np.testing.assert_array_equal(nan.arrays[f"{body}/sub"], -np.ones(3, np.float32))  # run 2: 0 - 1
    assert nan.node(f"{body}/sqrt").inputs == (f"{body}/sub",)
    assert nan.node(f"{body}/arg1_1").inputs == ("graph/x", f"{body}/sqrt")  # carried from the last run


def test_cancel_stops_a_loop(files):
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        cancel.set()

    with open_path(files["loop"]) as source, pytest.raises(Cancelled):
        source.trace("graph", source.default_feeds(), on_node, cancel)
    assert len(seen) == 1


def test_a_no_grad_region_is_traced_inside(files):
    program = torch.export.load(files["no_grad"])
    region = next(n.name for n in program.graph.nodes if n.op == "get_attr")
    weight, bias = program.state_dict["lin.weight"], program.state_dict["lin.bias"]
    with torch.no_grad():
        expected = (torch.ones(2, 3) @ weight.T + bias).numpy()
    with open_path(files["no_grad"]) as source:
        report = trace_source(source)
    linear = f"graph/{region}/linear"
    assert report.node(linear).inputs == ("graph/x", "graph/p_lin_weight", "graph/p_lin_bias")
    np.testing.assert_allclose(report.arrays[linear], expected, rtol=1e-6)
    assert report.node("graph/getitem").inputs == (linear,)
    producer_expected = "graph/log" if (expected <= 0).any() else None
    assert report.first_nonfinite == producer_expected


class LongBranchModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def long(x: torch.Tensor) -> torch.Tensor:
            for _ in range(20):
                x = torch.sin(x) + 1
            return x

        return torch.cond(x.sum() > 0, long, lambda v: v * 2, (x,)) + 1


def test_values_inside_a_branch_are_dropped_after_their_last_use(tmp_path):
    import gc

    shape = (1000, 7)  # a shape nothing else in the process has
    path = _save(LongBranchModel(), torch.ones(shape), tmp_path / "long.pt2")
    live: list[int] = []

    def on_node(node_id, op, inputs, array):
        # real tensors only: the program's fake values of the same shape stay in its node metadata
        live.append(sum(1 for o in gc.get_objects() if type(o) is torch.Tensor and tuple(o.shape) == shape))

    with open_path(path) as source:
        source.trace("graph", source.default_feeds(), on_node, None)
    assert len(live) == 45  # x, sum_1, gt, 20 x (sin, add) in the branch, getitem, add
    assert max(live) <= 6  # the example input, the feed, the operand and one or two values in flight


class MapModel(torch.nn.Module):
    def forward(self, xs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch._higher_order_ops.map(lambda x, y: torch.log(x) + y, xs, y)


def test_a_map_body_reports_the_slice_that_makes_nan(tmp_path):
    path = tmp_path / "map.pt2"
    torch.export.save(torch.export.export(MapModel(), (torch.ones(3, 2), torch.ones(2))), str(path))
    xs = np.array([[1.0, 2.0], [3.0, -1.0], [-2.0, 4.0]], np.float32)
    with open_path(path) as source:
        report = trace_source(source, feeds={"xs": xs})
    body = next(n.id.rsplit("/", 1)[0] for n in report.nodes if n.op == "aten.log.default")
    assert report.first_nonfinite == f"{body}/log"
    sliced = report.node(f"{body}/xs")  # the second slice: the first to make NaN
    assert (sliced.min, sliced.max) == (-1.0, 3.0) and sliced.inputs == ("graph/xs",)
    assert report.node(f"{body}/log").nan == 1
    assert report.node("graph/getitem").inputs == (f"{body}/add",) and report.node("graph/getitem").nan == 2
