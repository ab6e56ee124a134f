"""Tracing through the session: in-process and in the reader process give the same report."""

from __future__ import annotations

import numpy as np
import pytest
from trace_fixtures import TF1_FEEDS, TF1_PRODUCER, TORCH_PRODUCER, tf1_saved_model, torch_program

from tensor_inspector.session import wire
from tensor_inspector.session.answers import TraceReport
from tensor_inspector.session.isolated import IsolatedSession
from tensor_inspector.session.local import LocalSession


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trace_session")
    return {"torch": torch_program(directory, nan=True), "tf1": tf1_saved_model(directory)}


def _trace(session, path, **kwargs) -> TraceReport:
    info = session.open(path)
    try:
        return session.trace(info.handle, **kwargs)
    finally:
        session.close(info.handle)


@pytest.mark.parametrize(
    ("kind", "feeds", "producer"),
    [("torch", None, TORCH_PRODUCER), ("tf1", {"x": TF1_FEEDS[True]}, TF1_PRODUCER)],
)
def test_the_reader_answers_what_the_local_session_answers(files, kind, feeds, producer):
    local = _trace(LocalSession(), files[kind], feeds=feeds)
    isolated_session = IsolatedSession()
    try:
        isolated = _trace(isolated_session, files[kind], feeds=feeds)
    finally:
        isolated_session.shutdown()
    assert local.first_nonfinite == isolated.first_nonfinite == producer
    assert isolated.as_json() == local.as_json()
    assert [n.kept for n in isolated.nodes] == [n.kept for n in local.nodes]
    assert local.arrays and isolated.arrays == {}  # the reader keeps them (test_trace_reader.py)


def test_progress_counts_every_node_and_the_budget_is_kept(files):
    calls: list[tuple[int, int]] = []
    report = _trace(
        LocalSession(), files["torch"], keep_bytes=0, progress=lambda done, total: calls.append((done, total))
    )
    assert [done for done, _total in calls] == list(range(1, len(report.nodes) + 1))
    assert all(total == len(report.nodes) for _done, total in calls)
    assert report.arrays == {} and report.kept_bytes == 0


def test_a_report_crosses_the_process_boundary_unchanged(files):
    import socket

    report = _trace(LocalSession(), files["torch"])
    left, right = socket.socketpair()
    with left, right:
        wire.send(left, report)
        received = wire.receive(right)
    assert isinstance(received, TraceReport)
    assert received.as_json() == report.as_json() and received.nodes == report.nodes


def test_the_progress_total_is_known_from_the_first_node_where_ids_do_not_nest_under_the_entry():
    """An ONNX graph's values are not listed under its entry: every graph value counts."""
    from tensor_inspector.demo.make_demo import DEMO_DIR

    calls: list[tuple[int, int]] = []
    report = _trace(
        LocalSession(), DEMO_DIR / "tiny_classifier.onnx", progress=lambda d, t: calls.append((d, t))
    )
    assert calls[0] == (1, 13)  # 13 listed graph values; the If branch not taken has 1 of them
    assert len(report.nodes) == 12 and calls[-1] == (12, 13)


def test_an_array_handed_over_twice_is_summarised_once_under_each_name():
    from tensor_inspector.session.trace import _Collector

    collector = _Collector(keep_bytes=1 << 20, total=3, progress=None, cancel=None)
    weight = np.array([[1.0, -2.0], [np.nan, 4.0]], np.float32)
    collector.on_node("w", "Const", [], weight)
    collector.on_node("w/read", "ReadVariableOp", ["w"], weight)  # the same array again
    collector.on_node("y", "Relu", ["w/read"], np.maximum(weight, 0))
    first, second, third = collector.nodes
    assert (second.id, second.op, second.inputs) == ("w/read", "ReadVariableOp", ("w",))
    assert (second.min, second.max, second.mean, second.nan) == (first.min, first.max, first.mean, 1)
    assert (third.min, third.max, third.nan) == (0.0, 4.0, 1)
    assert collector.producer == "w"
