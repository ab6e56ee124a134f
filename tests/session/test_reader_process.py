"""The reader process: values cross intact; crashes, hangs and runaway memory stop only the reader."""

from __future__ import annotations

import sys
import threading
import time

import ml_dtypes
import numpy as np
import pytest
from misbehaving_backends import enable, make
from safetensors.numpy import save_file

from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.session.answers import CANCELLED, CRASH, MEMORY, TIMEOUT, SessionFailure
from tensor_inspector.session.isolated import IsolatedSession


@pytest.fixture
def session():
    s = IsolatedSession()
    yield s
    s.shutdown()


def _node(info, node_id):
    return next(n for n in info.nodes if n.id == node_id)


def test_values_cross_exactly_and_read_only(tmp_path, session):
    big = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)  # 2 MiB: shared memory
    np.save(tmp_path / "big.npy", big)
    bf16 = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16).reshape(2, 3)
    save_file({"w": bf16, "s": np.array([1, 2], dtype=np.int8)}, str(tmp_path / "m.safetensors"))

    info = session.open(tmp_path / "big.npy")
    value = session.value(info.handle, info.nodes[0].id)
    assert value.array.dtype == np.float32 and np.array_equal(value.array, big)
    assert not value.array.flags.writeable  # editing makes a copy, never changes what was read
    part = session.value(info.handle, info.nodes[0].id, index=(slice(2, 4), 7))
    assert np.array_equal(part.array, big[2:4, 7])

    st = session.open(tmp_path / "m.safetensors")
    w = session.value(st.handle, "w").array
    assert w.dtype == np.dtype(ml_dtypes.bfloat16) and w.tobytes() == bf16.tobytes()
    assert session.value(st.handle, "s").array.tolist() == [1, 2]
    assert st.handle != info.handle and set(session.handles()) == {info.handle, st.handle}


def test_errors_come_back_as_sentences(tmp_path, session):
    with pytest.raises(SessionFailure, match="does not exist"):
        session.open(tmp_path / "missing.npy")
    (tmp_path / "junk.bin").write_bytes(b"\x00junk" * 10)
    with pytest.raises(SessionFailure, match="not a file any backend recognises"):
        session.open(tmp_path / "junk.bin")
    np.save(tmp_path / "a.npy", np.ones(3))
    info = session.open(tmp_path / "a.npy")
    with pytest.raises(SessionFailure, match="No node named 'nope'"):
        session.value(info.handle, "nope")
    session.close(info.handle)
    with pytest.raises(SessionFailure, match="closed"):
        session.value(info.handle, "array")


def test_a_pickle_needing_trust_is_refused_with_what_it_wants(tmp_path, session):
    import collections
    import pickle

    with open(tmp_path / "c.pkl", "wb") as fh:
        pickle.dump({"w": np.ones(2), "c": collections.Counter("ab")}, fh)
    with pytest.raises(SessionFailure) as refused:
        session.open(tmp_path / "c.pkl")
    err = refused.value.failure.to_exception()
    assert isinstance(err, TrustRequired) and "collections.Counter" in err.globals_needed
    trusted = session.open(tmp_path / "c.pkl", trust=True)
    assert trusted.trusted and any(n.id == "w" for n in trusted.nodes)


@pytest.mark.parametrize("how", ["segfault", "null"])
def test_a_crash_stops_only_the_reader_and_other_files_stay_readable(tmp_path, monkeypatch, how):
    enable(monkeypatch)
    session = IsolatedSession()
    try:
        np.save(tmp_path / "good.npy", np.arange(5.0))
        good = session.open(tmp_path / "good.npy")
        bad = session.open(make(tmp_path, how))
        first_pid = session.untrusted_reader.pid()
        with pytest.raises(SessionFailure) as crashed:
            session.value(bad.handle, "x")
        assert crashed.value.failure.kind == CRASH
        assert str(crashed.value) == (
            f"Reading {how}.bad crashed the reader (SIGSEGV): the file is probably damaged."
        )
        # the next request starts a new reader and reopens the good file by itself
        assert session.value(good.handle, "array").array.tolist() == [0, 1, 2, 3, 4]
        assert session.untrusted_reader.pid() != first_pid
        again = session.open(tmp_path / "good.npy")
        assert session.value(again.handle, "array").array.sum() == 10
    finally:
        session.shutdown()


def test_a_hang_is_stopped_by_cancel_within_two_seconds(tmp_path, monkeypatch):
    enable(monkeypatch)
    session = IsolatedSession()
    try:
        np.save(tmp_path / "good.npy", np.arange(3.0))
        good = session.open(tmp_path / "good.npy")
        hang = session.open(make(tmp_path, "hang"))
        cancel = threading.Event()
        threading.Timer(0.5, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(SessionFailure) as stopped:
            session.value(hang.handle, "x", cancel=cancel)
        assert stopped.value.failure.kind == CANCELLED
        assert time.monotonic() - started < 0.5 + 2.0
        assert session.value(good.handle, "array").array.tolist() == [0, 1, 2]
    finally:
        session.shutdown()


def test_closing_a_file_stops_its_running_read(tmp_path, monkeypatch):
    enable(monkeypatch)
    session = IsolatedSession()
    try:
        hang = session.open(make(tmp_path, "hang"))
        outcome: list[BaseException] = []

        def read() -> None:
            try:
                session.value(hang.handle, "x")
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        time.sleep(0.5)
        session.close(hang.handle)
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(outcome[0], SessionFailure) and outcome[0].failure.kind == CANCELLED
    finally:
        session.shutdown()


def test_memory_and_time_limits_stop_the_reader_with_a_sentence(tmp_path, monkeypatch):
    enable(monkeypatch)
    session = IsolatedSession(memory_limit=400 << 20)
    try:
        hog = session.open(make(tmp_path, "allocate"))
        with pytest.raises(SessionFailure) as stopped:
            session.value(hog.handle, "x")
        assert stopped.value.failure.kind == MEMORY
        assert str(stopped.value) == (
            "Reading allocate.bad needed more than 400 MB of memory (the reader's limit), so it was stopped."
        )
        session.untrusted_reader.time_limit = 1.0
        hang = session.open(make(tmp_path, "hang"))
        with pytest.raises(SessionFailure) as timed_out:
            session.value(hang.handle, "x")
        assert timed_out.value.failure.kind == TIMEOUT
        assert "took longer than 1 s" in str(timed_out.value)
    finally:
        session.shutdown()


def test_saving_writes_through_the_trusted_reader_and_reopens(tmp_path, session):
    np.save(tmp_path / "w.npy", np.zeros((2, 2), dtype=np.float32))
    info = session.open(tmp_path / "w.npy")
    saved = session.save(info.handle, {"array": np.ones((2, 2), dtype=np.float32)}, tmp_path / "w2.npy")
    assert saved.opened.handle == info.handle and saved.opened.path == tmp_path / "w2.npy"
    assert np.load(tmp_path / "w2.npy").tolist() == [[1, 1], [1, 1]]
    assert session.value(info.handle, "array").array.sum() == 4  # the handle now reads the new file
    assert np.load(tmp_path / "w.npy").sum() == 0


def test_the_untrusted_reader_cannot_write_even_when_a_backend_tries(tmp_path, monkeypatch):
    """The second wall: whatever a file makes the reader do, it cannot write a file."""
    enable(monkeypatch)
    session = IsolatedSession()
    try:
        target = tmp_path / "written.txt"
        writer = session.open(make(tmp_path, "write", target))
        with pytest.raises(SessionFailure, match="PermissionError"):
            session.value(writer.handle, "x")
        assert not target.exists()
        assert "Landlock" in session.untrusted_reader.call("sandbox") or sys.platform != "linux"
        # the same file, trusted by the user, runs in the unrestricted reader
        trusted = session.open(make(tmp_path, "write", target), trust=True)
        session.value(trusted.handle, "x")
        assert target.read_text() == "written by a file nobody trusted"
    finally:
        session.shutdown()


def test_a_hostile_saved_model_is_refused_and_writes_nothing(tmp_path):
    import tf_fixtures

    target = tmp_path / "written_by_main_op"
    model = tf_fixtures.tf1_main_op_writer(tmp_path, target)
    session = IsolatedSession()
    try:
        info = session.open(model)
        refusals = []
        for node in (n for n in info.nodes if n.kind.value == "computed"):
            try:
                session.value(info.handle, node.id)
            except SessionFailure as failure:
                refusals.append(failure.failure.to_exception())
        assert any(isinstance(e, TrustRequired) and "WriteFile" in e.globals_needed for e in refusals)
        assert not target.exists()
    finally:
        session.shutdown()


def test_warm_up_starts_the_reader_before_the_first_request(tmp_path, session):
    assert session.untrusted_reader.pid() is None
    session.warm_up()
    pid = session.untrusted_reader.pid()
    assert pid is not None and session.untrusted_reader.alive()
    np.save(tmp_path / "a.npy", np.arange(2))
    info = session.open(tmp_path / "a.npy")
    assert session.value(info.handle, "array").array.tolist() == [0, 1]
    assert session.untrusted_reader.pid() == pid  # the warmed-up process served it


def test_shutdown_ends_a_call_blocked_on_a_hanging_reader(tmp_path, monkeypatch):
    enable(monkeypatch)
    session = IsolatedSession()
    hang = session.open(make(tmp_path, "hang"))
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            session.value(hang.handle, "x")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    time.sleep(0.5)
    session.shutdown()
    thread.join(5)
    assert not thread.is_alive() and isinstance(outcome[0], SessionFailure)


def test_a_call_queued_behind_a_cancelled_one_reopens_its_file(tmp_path, monkeypatch):
    """The cancelled read restarts the reader; the read waiting behind it must not see a stale handle."""
    enable(monkeypatch)
    session = IsolatedSession()
    try:
        np.save(tmp_path / "good.npy", np.arange(4.0))
        good = session.open(tmp_path / "good.npy")
        hang = session.open(make(tmp_path, "hang"))
        cancel = threading.Event()
        results: dict[str, object] = {}

        def read(name: str, handle: int, node: str, stop: threading.Event | None = None) -> None:
            try:
                results[name] = session.value(handle, node, cancel=stop).array.tolist()
            except SessionFailure as failure:
                results[name] = failure.failure.kind

        first = threading.Thread(target=read, args=("hang", hang.handle, "x", cancel))
        first.start()
        time.sleep(0.3)
        second = threading.Thread(target=read, args=("good", good.handle, "array"))
        second.start()  # waits for the reader behind the hanging read
        time.sleep(0.3)
        cancel.set()
        first.join(10)
        second.join(10)
        assert results == {"hang": CANCELLED, "good": [0.0, 1.0, 2.0, 3.0]}
    finally:
        session.shutdown()


def test_files_say_whether_a_part_of_a_tensor_reads_faster_than_all_of_it(tmp_path, session):
    """TensorFlow's checkpoint reader reads a whole variable for any part: the window skips the sample."""
    import tf_fixtures

    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    assert session.open(tmp_path / "a.npy").partial_reads
    prefix = tf_fixtures.tf1_checkpoint(tmp_path)
    assert not session.open(prefix).partial_reads
