"""Tracing ONNX models: every value of one run in node order, statistics equal to onnxruntime's
own values, the op that first made NaN named, If branches traced where they run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import onnx
import onnx_fixtures
import onnx_trace_fixtures as fx
import pytest

from tensor_inspector.backends.base import Cancelled, NodeKind
from tensor_inspector.backends.onnx import cutting
from tensor_inspector.backends.onnx import trace as onnx_trace
from tensor_inspector.backends.registry import open_path
from tensor_inspector.cli import main
from tensor_inspector.session.local import LocalSession
from tensor_inspector.session.trace import trace_source

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _traced(path, feeds, keep_bytes=1 << 30):
    session = LocalSession()
    try:
        info = session.open(path)
        return info, session.trace(info.handle, feeds=feeds, keep_bytes=keep_bytes)
    finally:
        session.close_all()


def _assert_stats_equal(report, expected):
    """Each traced node's min/max/mean equal those of onnxruntime's own value of it."""
    for node in report.nodes:
        value = expected[node.id].astype(np.float64)
        finite = value[np.isfinite(value)]
        assert node.nan == int(np.isnan(value).sum()), node.id
        if finite.size == value.size and value.size:
            assert node.min == pytest.approx(value.min(), rel=1e-6, abs=1e-6), node.id
            assert node.max == pytest.approx(value.max(), rel=1e-6, abs=1e-6), node.id
            assert node.mean == pytest.approx(value.mean(), rel=1e-5, abs=1e-6), node.id


@pytest.mark.parametrize("nan", [True, False])
def test_chain_names_log_as_the_producer_and_stats_equal_onnxruntime(tmp_path, nan):
    path = fx.chain_model(tmp_path / "chain.onnx")
    feeds = {"x": fx.CHAIN_FEEDS[nan]}
    info, report = _traced(path, feeds)
    ids = [n.id for n in report.nodes]
    assert ids == ["h", "shifted", "logged", "scaled", "act", "out"]  # node order, ids as listed
    assert report.entry == info.trace_entries[0] == "chain"
    assert report.node("logged").op == "Log" and report.node("logged").inputs == ("shifted",)
    assert report.node("h").inputs == ()  # graph inputs and weights are not traced values
    assert report.first_nonfinite == (fx.CHAIN_PRODUCER if nan else None)
    if nan:
        assert report.node("scaled").nan > 0  # passed on, not produced again
    expected = onnx_fixtures.ort_values(path, ids, feeds)
    _assert_stats_equal(report, expected)
    for node_id, kept in report.arrays.items():
        np.testing.assert_array_equal(kept, expected[node_id])


@pytest.mark.parametrize("case", ["nan", "finite", "else"])
def test_the_branch_taken_is_traced_where_it_runs(tmp_path, case):
    path = fx.branch_model(tmp_path / "gated.onnx")
    taken = "else_branch" if case == "else" else "then_branch"
    reference = fx.branch_model(tmp_path / "inlined.onnx", inline=taken)
    feeds = {"x": fx.BRANCH_FEEDS[case]}
    _info, report = _traced(path, feeds)
    inner = ["gate/then_branch/root", "gate/then_branch/doubled"] if taken == "then_branch" else []
    inner = inner or ["gate/else_branch/same"]
    assert [n.id for n in report.nodes] == ["total", "positive", *inner, "out", "final"]
    assert report.node("out").op == "If" and report.node("out").inputs == (inner[-1],)
    assert report.first_nonfinite == (fx.BRANCH_PRODUCER if case == "nan" else None)
    if case == "nan":
        assert report.node(fx.BRANCH_PRODUCER).inputs == ()  # x is a graph input
        assert report.node("final").nan == 1
    names = {n.id: n.id.rsplit("/", 1)[-1] for n in report.nodes}
    values = onnx_fixtures.ort_values(reference, list(names.values()), feeds)
    _assert_stats_equal(report, {node_id: values[name] for node_id, name in names.items()})


def test_nested_ifs_trace_the_inner_branch_taken(tmp_path):
    path = onnx_fixtures.nested_if_model(tmp_path / "nested.onnx")
    feeds = {"x": np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32)}
    with open_path(path) as source:
        report = trace_source(source, feeds=feeds)
        ids = [n.id for n in report.nodes]
        names = [source.node(i).name for i in ids]
        # relu > 0 takes the outer then branch; max(-2r) = 0 is not < 0, so the inner else
        assert names == ["r", "s", "c", "t1", "t2", "m", "c2", "v", "inner_out", "out"]
        assert all(source.node(i).kind is NodeKind.COMPUTED for i in ids)
        for node in report.nodes:  # each equals what evaluating that one node gives
            np.testing.assert_allclose(report.arrays[node.id], source.get(node.id, feeds=feeds))


def test_loop_bodies_are_skipped_and_the_loop_traced_whole(tmp_path):
    path = onnx_fixtures.loop_model(tmp_path / "loop.onnx")
    with open_path(path) as source:
        report = trace_source(source)
        body = [n.id for n in source.nodes.values() if n.parent and n.parent.endswith("/body")]
        traced = [n.id for n in report.nodes]
        assert body and not set(body) & set(traced)
        loop_outputs = [i for i in traced if source.node(i).metadata.get("op") == "Loop"]
        assert loop_outputs and report.first_nonfinite is None


@pytest.mark.parametrize("external", [False, True])
def test_exported_cnn_every_value_equals_onnxruntime(tmp_path, external):
    """torch.onnx.export's graph (dynamic batch, shape ops, BatchNorm folded or not)."""
    path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=external)
    feeds = {"image": np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    _info, report = _traced(path, feeds)
    ids = [n.id for n in report.nodes]
    assert ids == onnx_fixtures.node_outputs(path)
    _assert_stats_equal(report, onnx_fixtures.ort_values(path, ids, feeds))
    assert report.first_nonfinite is None


@pytest.mark.parametrize("model", ["cnn", "external", "branch", "nested", "loop"])
def test_small_chunks_give_the_same_trace(tmp_path, monkeypatch, model):
    """One session per chunk, each cut to its own nodes: chunks of one value each trace
    exactly what one run traces (weights in external files, If branches, Loop bodies)."""
    if model in ("cnn", "external"):
        path = onnx_fixtures.export_cnn(tmp_path / "cnn.onnx", external=model == "external")
        feeds = {"image": np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)}
    elif model == "branch":
        path = fx.branch_model(tmp_path / "gated.onnx")
        feeds = {"x": fx.BRANCH_FEEDS["nan"]}
    elif model == "nested":
        path = onnx_fixtures.nested_if_model(tmp_path / "nested.onnx")
        feeds = {"x": np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.0]], np.float32)}
    else:
        path = onnx_fixtures.loop_model(tmp_path / "loop.onnx")
        with open_path(path) as source:
            feeds = source.default_feeds()
    _info, whole = _traced(path, feeds)
    chunks: list[int] = []
    real = onnx_trace._chunks

    def counted(values, measured):
        for chunk in real(values, measured):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(onnx_trace, "CHUNK_BYTES", 1)
    monkeypatch.setattr(onnx_trace, "_chunks", counted)
    _info, chunked = _traced(path, feeds)
    assert chunks == [1] * len(whole.nodes)
    assert chunked.nodes == whole.nodes
    for node_id, array in whole.arrays.items():
        np.testing.assert_array_equal(chunked.arrays[node_id], array)


def test_chunks_follow_the_shapes_of_the_feeds(tmp_path, monkeypatch):
    """Sizes come from shape inference with the fed batch, so a chunk holds about CHUNK_BYTES."""
    path = fx.chain_model(tmp_path / "chain.onnx")
    batch = 4096  # each [batch, 4] float32 value is 64 KiB
    feeds = {"x": np.abs(np.random.default_rng(3).standard_normal((batch, 3))).astype(np.float32) + 1}
    sizes: list[list[int | None]] = []
    real = onnx_trace._chunks

    def recorded(values, measured):
        for chunk in real(values, measured):
            sizes.append([v.nbytes for v in chunk])
            yield chunk

    monkeypatch.setattr(onnx_trace, "CHUNK_BYTES", 2 * batch * 4 * 4)
    monkeypatch.setattr(onnx_trace, "_chunks", recorded)
    _info, report = _traced(path, feeds)
    assert sizes == [[batch * 16] * 2] * 3 and len(report.nodes) == 6


def test_cancel_stops_between_values(tmp_path):
    path = fx.chain_model(tmp_path / "chain.onnx")
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        if len(seen) == 3:
            cancel.set()

    with open_path(path) as source, pytest.raises(Cancelled):
        source.trace(source.trace_entries()[0], {"x": fx.CHAIN_FEEDS[True]}, on_node, cancel)
    assert seen == ["h", "shifted", "logged"]


def test_keeping_nothing_still_gives_statistics(tmp_path):
    path = fx.chain_model(tmp_path / "chain.onnx")
    feeds = {"x": fx.CHAIN_FEEDS[True]}
    _info, kept = _traced(path, feeds)
    _info, none = _traced(path, feeds, keep_bytes=0)
    assert none.arrays == {} and none.kept_bytes == 0 and not any(n.kept for n in none.nodes)
    assert [(n.id, n.min, n.max, n.mean, n.nan) for n in none.nodes] == [
        (n.id, n.min, n.max, n.mean, n.nan) for n in kept.nodes
    ]
    assert none.first_nonfinite == fx.CHAIN_PRODUCER


def test_cli_json_names_the_producer(tmp_path, capsys):
    path = fx.chain_model(tmp_path / "chain.onnx")
    feed = "x=" + json.dumps(fx.CHAIN_FEEDS[True].tolist())
    code = main(["trace", str(path), "--feed", feed, "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    document = json.loads(out)
    assert document["entry"] == "chain"
    assert document["first_nonfinite"] == {"id": fx.CHAIN_PRODUCER, "inputs": ["shifted"]}
    assert main(["ls", str(path), "--json"]) == 0
    listed = [row["id"] for row in json.loads(capsys.readouterr()[0])]
    assert [n["id"] for n in document["nodes"]] == [
        i for i in listed if i in {"h", "shifted", "logged", "scaled", "act", "out"}
    ]
    code = main(["trace", str(path), "chain", "--feed", "x=" + json.dumps(fx.CHAIN_FEEDS[False].tolist())])
    out, err = capsys.readouterr()
    assert code == 0 and "All values are finite." in out, err


def test_trace_entries_need_no_onnxruntime(tmp_path):
    """Every open asks for the entries: metadata only, no session, no onnxruntime import."""
    path = fx.chain_model(tmp_path / "chain.onnx")
    code = (
        "import sys; from tensor_inspector.backends.registry import open_path\n"
        f"source = open_path({str(path)!r})\n"
        "print(source.trace_entries(), source.node('chain').kind.value, 'onnxruntime' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["['chain']", "signature", "False"], done.stderr


def test_a_model_onnxruntime_refuses_fails_once_with_its_reason(tmp_path, monkeypatch):
    """Not value by value: one refused chunk (cut out, then from the whole model), one check
    of the model as it is, one sentence."""
    from onnx import TensorProto, helper

    from tensor_inspector.backends.onnx import source as onnx_source
    from tensor_inspector.core.errors import InspectorError

    nodes = [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Abs", ["n"], ["a"])]
    nodes.append(helper.make_node("Add", ["a", "x"], ["y"]))
    u16 = [helper.make_tensor_value_info(n, TensorProto.UINT16, [2]) for n in ("x", "y")]
    model = onnx.helper.make_model(
        helper.make_graph(nodes, "unsigned", [u16[0]], [u16[1]]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.save_model(model, tmp_path / "u16.onnx")
    made: list[list[str]] = []

    class Counted(onnx_source.Runner):
        def __init__(self, model, folder, outputs, arena=True):
            made.append(list(outputs))
            super().__init__(model, folder, outputs, arena)

    monkeypatch.setattr(onnx_source, "Runner", Counted)
    with open_path(tmp_path / "u16.onnx") as source, pytest.raises(InspectorError, match="Neg"):
        trace_source(source)
    assert made == [["n", "a", "y"], ["n", "a", "y"], []]  # the chunk's own model, the whole one


def test_a_trace_after_an_evaluation_reuses_its_session(tmp_path, monkeypatch):
    """Values that fit one chunk come from the session evaluating nodes already built."""
    from tensor_inspector.backends.onnx import source as onnx_source

    path = fx.chain_model(tmp_path / "chain.onnx")
    made: list[list[str]] = []

    class Counted(onnx_source.Runner):
        def __init__(self, model, folder, outputs, arena=True):
            made.append(list(outputs))
            super().__init__(model, folder, outputs, arena)

    monkeypatch.setattr(onnx_source, "Runner", Counted)
    feeds = {"x": fx.CHAIN_FEEDS[True]}
    with open_path(path) as source:
        fresh = trace_source(source, feeds=feeds)
        assert len(made) == 1  # a session of its own, released
        logged = source.get("logged", feeds=feeds)
        assert len(made) == 2
        again = trace_source(source, feeds=feeds)
        assert len(made) == 2 and again.nodes == fresh.nodes
        np.testing.assert_array_equal(again.arrays["logged"], logged)


def test_exported_entropy_names_log_not_the_mul_where_nan_shows(tmp_path):
    path, x = fx.entropy_model(tmp_path / "entropy.onnx")
    _info, report = _traced(path, {"x": x})
    assert report.first_nonfinite == "/Log_output_0"
    log = report.node("/Log_output_0")
    assert log.inf > 0 and log.nan == 0 and log.inputs == ("/Softmax_output_0",)
    assert report.node("/Mul_output_0").nan > 0 and report.node("/Mul_output_0").inputs == (
        "/Softmax_output_0",
        "/Log_output_0",
    )
    ids = [n.id for n in report.nodes]
    _assert_stats_equal(report, onnx_fixtures.ort_values(path, ids, {"x": x}))


def test_custom_domain_ops_need_trust_to_trace(tmp_path):
    """A trace runs the model as evaluation does: onnxruntime's contrib ops only when trusted."""
    from onnx import TensorProto, helper

    from tensor_inspector.backends.base import TrustRequired

    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Gelu", ["r"], ["g"], domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes,
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("g", TensorProto.FLOAT, [2])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save_model(model, tmp_path / "custom.onnx")
    feeds = {"x": np.array([-1.0, 2.0], np.float32)}
    session = LocalSession()
    try:
        info = session.open(tmp_path / "custom.onnx")
        with pytest.raises(TrustRequired):
            session.trace(info.handle, feeds=feeds)
        report = session.trace(info.handle, feeds=feeds, trust=True)
    finally:
        session.close_all()
    assert [(n.id, n.op) for n in report.nodes] == [("r", "Relu"), ("g", "com.microsoft::Gelu")]
    assert report.node("g").min == 0.0 and report.node("g").inputs == ("r",)


def test_each_chunk_runs_only_its_own_nodes_fed_what_earlier_chunks_computed(tmp_path, monkeypatch):
    """One-value chunks of a chain: each session holds one node and the weights it reads."""
    from tensor_inspector.backends.onnx import source as onnx_source

    path = fx.chain_model(tmp_path / "chain.onnx")
    models: list[tuple[list[str], list[str], list[str]]] = []

    class Recorded(onnx_source.Runner):
        def __init__(self, model, folder, outputs, arena=True):
            graph = model.graph
            models.append(
                (
                    [n.op_type for n in graph.node],
                    [i.name for i in graph.input],
                    [t.name for t in graph.initializer],
                )
            )
            super().__init__(model, folder, outputs, arena)

    held: list[list[str]] = []  # values kept for later chunks, as each chunk starts
    real_cut = cutting.Cutter.cut

    def cut(self, start, stop):
        found = real_cut(self, start, stop)
        held.append(sorted(self.kept))
        return found

    monkeypatch.setattr(onnx_source, "Runner", Recorded)
    monkeypatch.setattr(cutting.Cutter, "cut", cut)
    monkeypatch.setattr(onnx_trace, "CHUNK_BYTES", 1)
    feeds = {"x": fx.CHAIN_FEEDS[True]}
    _info, chunked = _traced(path, feeds)
    assert held == [[], ["h"], ["shifted"], ["logged"], ["scaled"], ["act"]]  # only what is still read
    assert models == [
        (["MatMul"], ["x"], ["w"]),
        (["Sub"], ["h"], ["offset"]),
        (["Log"], ["shifted"], []),
        (["Mul"], ["logged"], ["two"]),
        (["Relu"], ["scaled"], []),
        (["Add"], ["act"], ["one"]),
    ]
    expected = onnx_fixtures.ort_values(path, [n.id for n in chunked.nodes], feeds)
    _assert_stats_equal(chunked, expected)
    assert chunked.first_nonfinite == fx.CHAIN_PRODUCER
