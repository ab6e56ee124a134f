"""Comparing through the session: streamed chunk by chunk, in-process and inside the reader."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

from tensor_inspector.core.compare_metrics import chunk_metrics
from tensor_inspector.core.errors import Cancelled
from tensor_inspector.session import compare
from tensor_inspector.session.compare import compare_files, plan_files
from tensor_inspector.session.isolated import IsolatedSession
from tensor_inspector.session.local import LocalSession


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    from compare_fixtures import build_ported_model

    return build_ported_model(tmp_path_factory.mktemp("ported"))


@pytest.fixture
def big_pair(tmp_path):
    """A kernel in Keras layout (.npy) and its torch-layout copy (safetensors), two values moved."""
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 40, 64)).astype(np.float32)  # HWIO, 92 KB
    weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)).copy()  # OIHW
    weight[5, 7, 1, 2] += 0.5
    weight[60, 39, 2, 0] -= 0.125
    np.save(tmp_path / "kernel.npy", kernel)
    save_file({"conv.weight": weight}, str(tmp_path / "port.safetensors"))
    expected = chunk_metrics(kernel.transpose(3, 2, 0, 1), weight, atol=0.2)
    return tmp_path / "kernel.npy", tmp_path / "port.safetensors", expected


def test_ported_files_pair_completely_and_compare_equal(ported):
    session = LocalSession()
    for a, b in [(ported.checkpoint, ported.safetensors_file), (ported.keras_file, ported.torch_file)]:
        info_a, info_b = session.open(a), session.open(b)
        report = compare_files(session, info_a, info_b, plan_files(info_a, info_b))
        assert report.ok, report
        assert len(report.pairs) == len(ported.torch_weights)
        for pair in report.pairs:
            torch_name = pair.b.removeprefix("module.")
            assert pair.transform == ported.transposed.get(torch_name), pair
            assert pair.metrics is not None and pair.metrics.max_abs == 0.0 and pair.metrics.equal
    session.close_all()


def test_values_are_streamed_in_chunks_that_line_up(big_pair, monkeypatch):
    a_path, b_path, expected = big_pair
    monkeypatch.setattr(compare, "CHUNK_BYTES", 4096)
    session = LocalSession()
    reads: list[tuple[int, object, int]] = []
    original = session.value

    def recording(handle, node_id, index=None, **kwargs):
        value = original(handle, node_id, index=index, **kwargs)
        reads.append((handle, index, value.array.nbytes))
        return value

    monkeypatch.setattr(session, "value", recording)
    a, b = session.open(a_path), session.open(b_path)
    seen: list[tuple[int, int]] = []
    result = session.compare_pair(
        a.handle,
        a.nodes[0].id,
        b.handle,
        "conv.weight",
        (3, 2, 0, 1),
        atol=0.2,
        progress=lambda d, t: seen.append((d, t)),
    )
    m = result.metrics
    assert m is not None
    assert (m.max_abs, m.beyond, m.worst, m.count) == (0.5, 1, (5, 7, 1, 2), expected.count)
    assert m.sum_sq == pytest.approx(expected.sum_sq) and m.cosine == pytest.approx(expected.cosine)
    assert len(reads) > 20 and all(index is not None for _, index, _ in reads)
    assert max(nbytes for _, _, nbytes in reads) <= 4096  # never a whole side at once
    assert seen[-1] == (expected.count, expected.count) and len(seen) == len(reads) // 2


def test_a_comparison_answered_in_parts_adds_up(big_pair, monkeypatch):
    a_path, b_path, expected = big_pair
    monkeypatch.setattr(compare, "CHUNK_BYTES", 8192)
    session = LocalSession()
    a, b = session.open(a_path), session.open(b_path)
    parts, start, merged = 0, 0, None
    while start is not None:
        part = session.compare_pair(
            a.handle, a.nodes[0].id, b.handle, "conv.weight", (3, 2, 0, 1), 0.2, start=start, budget_s=0
        )
        merged = part if merged is None else compare.merge_parts(merged, part)
        start, parts = part.resume, parts + 1
    assert parts > 5
    assert merged.metrics.max_abs == 0.5 and merged.metrics.beyond == 1 and merged.done == expected.count


def test_cancel_stops_between_chunks(big_pair, monkeypatch):
    a_path, b_path, _ = big_pair
    monkeypatch.setattr(compare, "CHUNK_BYTES", 4096)
    session = LocalSession()
    a, b = session.open(a_path), session.open(b_path)
    cancel = threading.Event()

    def progress(done, total):
        if done > total // 3:
            cancel.set()

    with pytest.raises(Cancelled):
        session.compare_pair(
            a.handle, a.nodes[0].id, b.handle, "conv.weight", (3, 2, 0, 1), cancel=cancel, progress=progress
        )


def test_a_format_without_partial_reads_is_read_once(ported, monkeypatch):
    monkeypatch.setattr(compare, "CHUNK_BYTES", 64)
    session = LocalSession()
    calls: list[tuple[int, object]] = []
    original = session.value
    monkeypatch.setattr(
        session,
        "value",
        lambda h, n, index=None, **k: calls.append((h, index)) or original(h, n, index=index, **k),
    )
    a, b = session.open(ported.checkpoint), session.open(ported.safetensors_file)
    kernel = next(n.id for n in a.nodes if n.metadata.get("full_name") == "fc1/kernel")
    result = session.compare_pair(a.handle, kernel, b.handle, "fc1.weight", (1, 0))
    assert result.metrics.equal
    assert [index for h, index in calls if h == a.handle] == [None]  # TF's reader reads all anyway
    assert len([h for h, _ in calls if h == b.handle]) > 1


def test_the_reader_compares_and_only_metrics_come_back(big_pair, ported):
    a_path, b_path, expected = big_pair
    session = IsolatedSession()
    try:
        a, b = session.open(a_path), session.open(b_path)
        seen = []
        result = session.compare_pair(
            a.handle,
            a.nodes[0].id,
            b.handle,
            "conv.weight",
            (3, 2, 0, 1),
            0.2,
            progress=lambda d, t: seen.append(d),
        )
        local = LocalSession()
        la, lb = local.open(a_path), local.open(b_path)
        assert result == local.compare_pair(
            la.handle, la.nodes[0].id, lb.handle, "conv.weight", (3, 2, 0, 1), 0.2
        )
        assert seen[-1] == expected.count
        # one file trusted, the other not: compared in the trusted reader, the stranger still untrusted
        trusted = session.open(ported.torch_file, trust=True)
        stranger = session.open(ported.keras_file)
        pair = session.compare_pair(
            stranger.handle, "fc1/kernel", trusted.handle, "module.fc1.weight", (1, 0)
        )
        assert pair.metrics.equal and pair.transform == (1, 0)
        assert session.info(stranger.handle) == (ported.keras_file, False)
    finally:
        session.shutdown()
