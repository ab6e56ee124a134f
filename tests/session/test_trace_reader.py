"""A trace in the reader process: progress on the way, a cancel that spares the reader,
and the kept values served from the reader when a traced node is selected."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from trace_fixtures import TORCH_PRODUCER, torch_program

from tensor_inspector.session.answers import CANCELLED, SessionFailure
from tensor_inspector.session.isolated import IsolatedSession
from tensor_inspector.session.local import LocalSession


def _slow_program(directory):
    """200 chained 256x256 matmuls: long enough that a cancel lands mid-run."""
    import torch

    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.w = torch.nn.Parameter(torch.randn(256, 256) / 16)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(200):
                x = torch.tanh(x @ self.w)
            return x

    import torch.export

    path = directory / "chain.pt2"
    torch.export.save(torch.export.export(Chain(), (torch.ones(256, 256),)), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trace_reader")
    return {"nan": torch_program(directory, nan=True), "slow": _slow_program(directory)}


@pytest.fixture
def session():
    isolated = IsolatedSession()
    yield isolated
    isolated.shutdown()


def test_progress_reaches_the_caller_and_ends_at_the_total(session, files):
    info = session.open(files["slow"])
    calls: list[tuple[int, int]] = []
    report = session.trace(info.handle, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) >= 2  # the first node, then at most every 0.1 s, then the last
    assert calls[-1] == (len(report.nodes), len(report.nodes))
    dones = [done for done, _total in calls]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)


def test_cancel_stops_the_trace_between_nodes_and_the_reader_lives_on(session, files):
    info = session.open(files["slow"])
    pid = session.untrusted_reader.pid()
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        cancel.set()  # at the first report

    with pytest.raises(SessionFailure) as failure:
        session.trace(info.handle, progress=progress, cancel=cancel)
    assert failure.value.failure.kind == CANCELLED
    assert seen and seen[-1] < 400  # stopped well before the ~400 nodes of the run
    assert session.untrusted_reader.pid() == pid  # asked to stop, not killed
    report = session.trace(info.handle, keep_bytes=0)  # the file is still open there
    assert len(report.nodes) > 400


def test_a_traced_node_is_served_from_the_kept_values(session, files):
    info = session.open(files["nan"])
    report = session.trace(info.handle)
    assert report.arrays == {} and report.first_nonfinite == TORCH_PRODUCER
    local = LocalSession()
    local_info = local.open(files["nan"])
    expected = local.trace(local_info.handle).arrays
    for node in report.nodes:
        assert node.kept == (node.op != "placeholder")  # weights and inputs read back at once
        value = session.value(info.handle, node.id, feeds=report.feeds)
        if node.kept:
            np.testing.assert_array_equal(value.array, expected[node.id])
        else:  # evaluated again, with the trace's inputs
            assert (value.array.min(), value.array.max()) == pytest.approx((node.min, node.max))
    sliced = session.value(info.handle, TORCH_PRODUCER, index=(0,), feeds=report.feeds)
    np.testing.assert_array_equal(sliced.array, expected[TORCH_PRODUCER][0])


def test_kept_values_answer_only_for_the_inputs_they_were_traced_with(files):
    session = LocalSession()
    info = session.open(files["nan"])
    report = session.trace(info.handle)
    runs: list[str] = []

    def count_runs() -> None:  # the real backend still answers; this only counts its runs
        source = session._source(info.handle)
        original = source.get

        def counting_get(node_id, index=None, feeds=None):
            runs.append(node_id)
            return original(node_id, index=index, feeds=feeds)

        source.get = counting_get

    count_runs()
    kept = session.value(info.handle, TORCH_PRODUCER, feeds=report.feeds)
    assert runs == [] and np.isnan(kept.array).any()
    (name,) = report.feeds
    other = {name: np.full_like(report.feeds[name], 1000.0)}
    fresh = session.value(info.handle, TORCH_PRODUCER, feeds=other)
    assert runs == [TORCH_PRODUCER]
    assert not np.array_equal(fresh.array, kept.array, equal_nan=True)
    session.reopen(info.handle)  # a reopened file may have changed: its trace is dropped
    count_runs()
    runs.clear()
    session.value(info.handle, TORCH_PRODUCER, feeds=report.feeds)
    assert runs == [TORCH_PRODUCER]
