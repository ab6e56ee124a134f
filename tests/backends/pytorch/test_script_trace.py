"""Tracing TorchScript files: every graph value in execution order, and the op that made NaN.

The model is built of one small module per step, so forward hooks on the eager model record
each step's output independently of the TorchScript run; trace nodes carry the module they
come from, which pairs them. Scripted files keep the ``if`` and the ``for`` loop of the model
as ``prim::If`` / ``prim::Loop``; traced ones unroll them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fixtures import record_calls, save_scripted, save_traced, vad_like

from tensor_inspector.backends import NodeKind, open_path
from tensor_inspector.cli import main
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.session.local import LocalSession

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], np.float32)


class Shift(torch.nn.Module):
    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.offset


class Log(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0


class PlusOne(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1.0


class NanNet(torch.nn.Module):
    """linear -> shift -> log (in an if) -> twice (in a loop) -> relu -> plus one.

    ``offset`` 100 makes ``log`` see negatives (NaN, passed on by everything after it);
    -100 keeps every value finite.
    """

    def __init__(self, offset: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3, 4)
        self.shift = Shift(offset)
        self.log = Log()
        self.twice = Double()
        self.act = torch.nn.ReLU()
        self.plus = PlusOne()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x)
        if h.shape[0] > 0:
            y = self.log(self.shift(h))
        else:
            y = h
        for _ in range(2):
            y = self.twice(y)
        return self.plus(self.act(y))


def _build(directory: Path, how: str, nan: bool) -> tuple[Path, dict[str, list[np.ndarray]]]:
    """The saved file and, per module name, the eager model's output of each call."""
    model = NanNet(100.0 if nan else -100.0).eval()
    path = directory / f"{how}_{'nan' if nan else 'finite'}.pt"
    if how == "script":
        save_scripted(model, path)
    else:
        save_traced(model, torch.from_numpy(X), path)
    calls = record_calls(model)  # hooks added after saving: the saved file has none
    with torch.no_grad():
        model(torch.from_numpy(X))
    return path, {name: [r["outputs"][0].numpy() for r in records] for name, records in calls.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("script_trace")
    return {(how, nan): _build(directory, how, nan) for how in ("script", "trace") for nan in (True, False)}


@pytest.fixture
def session():
    s = LocalSession()
    yield s
    s.close_all()


def _trace(session: LocalSession, path: Path, **kwargs):
    info = session.open(path, trust=True)
    return info, session.trace(info.handle, feeds={"x": X}, **kwargs)


def _module_of(info, node_id: str) -> str | None:
    return next(n.metadata.get("module") for n in info.nodes if n.id == node_id)


def _same(actual, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_the_op_that_makes_nan_is_named_not_the_ops_that_pass_it_on(session, files, how):
    path, _calls = files[(how, True)]
    info, report = _trace(session, path)
    assert info.trace_entries == ["forward"] and report.entry == "forward"
    producer = report.first_nonfinite
    assert producer is not None and _module_of(info, producer) == "log"
    assert report.node(producer).op == "aten::log"
    [shift] = [n.id for n in report.nodes if _module_of(info, n.id) == "shift"]
    assert report.node(producer).inputs == (shift,)
    ids = [n.id for n in report.nodes]
    at = ids.index(producer)
    assert all(n.finite for n in report.nodes[:at])
    after = report.nodes[at + 1 :]
    assert after and all(n.nan > 0 for n in after)  # passed on up to the output, not produced again


@pytest.mark.parametrize("how", ["script", "trace"])
def test_finite_inputs_name_no_producer(session, files, how):
    _info, report = _trace(session, files[(how, False)][0])
    assert report.first_nonfinite is None
    assert report.nodes and all(n.finite for n in report.nodes)


@pytest.mark.parametrize("nan", [False, True])
@pytest.mark.parametrize("how", ["script", "trace"])
def test_every_value_equals_the_eager_models_own(session, files, how, nan):
    path, calls = files[(how, nan)]
    info, report = _trace(session, path)
    listed = [n.id for n in info.nodes if n.kind is NodeKind.COMPUTED]
    assert {n.id for n in report.nodes} <= set(listed)
    modules = [_module_of(info, n.id) for n in report.nodes]
    # every step of the model is traced; a traced file unrolls the loop: twice
    steps = ["lin", "shift", "log", "twice", "act", "plus"]
    assert [m for m in modules if m in steps and (m != "twice" or how == "script")] == [
        s for s in steps if s != "twice" or how == "script"
    ]
    assert modules.count("twice") == (1 if how == "script" else 2)
    seen: dict[str, int] = {}
    for node, module in zip(report.nodes, modules, strict=True):
        if module in calls:
            # the k-th value of a module is its k-th call; in a loop, the last iteration
            k = seen.get(module, 0)
            seen[module] = k + 1
            expected = calls[module][-1] if node.op != "aten::mul" or how == "script" else calls[module][k]
        elif node.op == "prim::If":  # what the taken branch returned
            expected = calls["log"][-1]
        elif node.op == "prim::Loop":  # what the last iteration returned
            expected = calls["twice"][-1]
        else:
            raise AssertionError(f"{node.id} ({node.op}) comes from no module of the model")
        assert node.shape == expected.shape, node.id
        _same(report.arrays[node.id], expected)
        if np.isfinite(expected).all():
            assert node.min == pytest.approx(float(expected.min()), rel=1e-6), node.id
            assert node.max == pytest.approx(float(expected.max()), rel=1e-6), node.id
            assert node.mean == pytest.approx(float(expected.astype(np.float64).mean()), rel=1e-6)
        else:
            assert node.nan == int(np.isnan(expected).sum()), node.id
    if how == "script":
        assert {n.op for n in report.nodes} >= {"prim::If", "prim::Loop"}


def test_control_flow_model_traces_what_evaluation_gives(session, tmp_path):
    """A voice-activity-like model: layers in an ``if`` branch and an LSTM cell in a loop."""
    path = save_scripted(vad_like(), tmp_path / "vad.pt")
    x = np.random.default_rng(3).normal(size=(2, 512)).astype(np.float32)
    info = session.open(path, trust=True)
    report = session.trace(info.handle, feeds={"x": x, "sr": np.array(16000)})
    assert report.first_nonfinite is None
    with open_path(path, trust=True) as source:
        for node in report.nodes:  # the loop's values: its last iteration, as evaluation shows
            _same(report.arrays[node.id], source.evaluate(node.id, report.feeds))
        listed = [n.id for n in source.value_nodes() if n.kind is NodeKind.COMPUTED]
        raising = [
            i for i in listed if "else branch" in " ".join(source.node(i).metadata.get("control_flow", []))
        ]
    traced = {n.id for n in report.nodes}
    assert raising and not traced & set(raising)  # the branch not taken is skipped
    assert any(n.op == "aten::lstm_cell" for n in report.nodes)
    # inputs are traced values reported before, except a loop's own previous iteration
    order = {n.id: i for i, n in enumerate(report.nodes)}
    conv = [n for n in report.nodes if n.op == "aten::conv1d"]
    assert conv and all(order[i] < order[n.id] for n in conv for i in n.inputs)


def test_cancel_stops_the_run_between_nodes(files):
    path, _calls = files[("script", True)]
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        if len(seen) == 3:
            cancel.set()

    with open_path(path, trust=True) as source:
        with pytest.raises(Cancelled):
            source.trace("forward", {"x": X}, on_node, cancel)
        assert len(seen) == 3
        seen.clear()
        source.trace("forward", {"x": X}, on_node, None)  # the file traces again after a cancel
        assert len(seen) > 3


def test_keep_nothing_still_summarises_every_node(session, files):
    path, _calls = files[("script", True)]
    _info, kept = _trace(session, path)
    _info, report = _trace(session, path, keep_bytes=0)
    assert report.arrays == {} and not any(n.kept for n in report.nodes)
    assert report.nodes == [type(n)(**{**n.__dict__, "kept": False}) for n in kept.nodes]
    assert report.first_nonfinite == kept.first_nonfinite
    assert report.node(report.first_nonfinite).nan == 8


def test_untrusted_archive_is_not_opened_for_a_trace(files):
    from tensor_inspector.core.errors import TrustRequired

    with pytest.raises(TrustRequired):
        LocalSession().open(files[("script", True)][0])


def test_cli_json_names_the_producer(capsys, files):
    path, _calls = files[("script", True)]
    code = main(["trace", str(path), "--trust", "--feed", "x=" + json.dumps(X.tolist()), "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    doc = json.loads(out)
    assert doc["entry"] == "forward"
    producer = doc["first_nonfinite"]["id"]
    assert main(["ls", str(path), "--trust", "--json"]) == 0
    listed = {row["id"]: row for row in json.loads(capsys.readouterr()[0])}
    assert {n["id"] for n in doc["nodes"]} <= set(listed)
    assert [n["op"] for n in doc["nodes"] if n["id"] == producer] == ["aten::log"]


def test_torch_transformer_layer_runs_with_its_optional_masks_left_none(session, tmp_path):
    """torch's own TransformerEncoderLayer, scripted: masks default to None, not to fed zeros;
    eval mode takes the fused fast path, so the slow path's hundreds of values are skipped."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True).eval()
    path = save_scripted(layer, tmp_path / "encoder_layer.pt")
    src = np.random.default_rng(5).normal(size=(2, 5, 16)).astype(np.float32)
    with torch.no_grad():
        expected = layer(torch.from_numpy(src)).numpy()
    info = session.open(path, trust=True)
    report = session.trace(info.handle, feeds={"src": src})
    assert set(report.feeds) == {"src", "is_causal"}  # src_mask, src_key_padding_mask: None
    assert report.first_nonfinite is None
    listed = [n for n in info.nodes if n.kind is NodeKind.COMPUTED]
    assert 0 < len(report.nodes) < len(listed) / 4
    assert report.nodes[-1].shape == expected.shape
    _same(report.arrays[report.nodes[-1].id], expected)
