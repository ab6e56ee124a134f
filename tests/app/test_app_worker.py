"""The worker: evaluations are latest-wins and stop the reader they replace; opens and saves never
replace each other; failures keep their kind; closing the window while a read hangs does not hang."""

from __future__ import annotations

import collections
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
from misbehaving_backends import enable, make

from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.settings import settings
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.session.answers import TRUST, Failure, SessionFailure
from tensor_inspector.session.isolated import IsolatedSession

WAIT_MS = 30_000  # far below the reader's 15-minute time limit: only a real cancel gets there
CLOSE_BOUND_S = 10.0  # the session stops a reader within about a second; closing must not wait longer


@pytest.fixture
def worker(qtbot, monkeypatch):
    # before the Worker: it warms its reader up at once, and the reader reads its backends then
    enable(monkeypatch)
    w = Worker()
    yield w
    w.shutdown()


def _opened(qtbot, worker: Worker, path: Path):
    with qtbot.waitSignal(worker.opened, timeout=WAIT_MS) as blocker:
        worker.open(path)
    return blocker.args[1]


def _wait_for_hanging_read(qtbot, session: IsolatedSession):
    """The reader is inside the read that never ends; its process, to see it stopped."""
    reader = session.untrusted_reader
    qtbot.waitUntil(lambda: reader._current is not None, timeout=WAIT_MS)
    assert reader._proc is not None
    return reader._proc


def test_a_new_evaluation_stops_a_hanging_one_and_wins(qtbot, worker, tmp_path, monkeypatch):
    enable(monkeypatch)
    np.save(tmp_path / "good.npy", np.arange(5, dtype=np.int16))
    hang, good = _opened(qtbot, worker, make(tmp_path, "hang")), _opened(qtbot, worker, tmp_path / "good.npy")
    results, failures, busy = [], [], []
    worker.result.connect(lambda rid, value: results.append((rid, value)))
    worker.failed.connect(lambda rid, message: failures.append(message))
    worker.busy_changed.connect(busy.append)

    worker.evaluate(hang.handle, "x")
    stuck = _wait_for_hanging_read(qtbot, worker.session)
    # the reader serves one call at a time: the new value arrives only if the stale read was stopped
    with qtbot.waitSignal(worker.result, timeout=WAIT_MS):
        latest = worker.evaluate(good.handle, good.nodes[0].id)
    assert stuck.poll() is not None
    assert [rid for rid, _ in results] == [latest] and results[0][1].array.tolist() == [0, 1, 2, 3, 4]
    assert failures == [] and busy == [True, True, False] and not worker.is_busy()


def test_cancel_goes_idle_at_once_and_stops_the_reader(qtbot, worker, tmp_path, monkeypatch):
    enable(monkeypatch)
    hang = _opened(qtbot, worker, make(tmp_path, "hang"))
    outcomes = []
    worker.result.connect(lambda *args: outcomes.append(args))
    worker.failed.connect(lambda *args: outcomes.append(args))
    worker.evaluate(hang.handle, "x")
    stuck = _wait_for_hanging_read(qtbot, worker.session)
    with qtbot.waitSignal(worker.busy_changed, timeout=0) as idle:
        worker.cancel()
    assert idle.args == [False] and not worker.is_busy()
    qtbot.waitUntil(lambda: stuck.poll() is not None, timeout=WAIT_MS)
    qtbot.wait(200)  # the cancelled read's outcome, if it were delivered, would be queued by now
    assert outcomes == []


def test_opens_saves_and_an_evaluation_never_replace_each_other(qtbot, worker, tmp_path):
    for name in "abc":
        np.save(tmp_path / f"{name}.npy", np.full(3, ord(name), dtype=np.float32))
    opened = []
    worker.opened.connect(lambda rid, info: opened.append(info.path.name))
    with qtbot.waitSignals([worker.opened, worker.opened], timeout=WAIT_MS):
        first, second = worker.open(tmp_path / "a.npy"), worker.open(tmp_path / "b.npy")
        assert first != second and worker.pending_opens() == 2
    assert sorted(opened) == ["a.npy", "b.npy"] and worker.pending_opens() == 0 and len(worker.handles()) == 2
    a_handle, b_handle = worker.handles()

    with qtbot.waitSignals([worker.saved, worker.saved, worker.result, worker.opened], timeout=WAIT_MS):
        worker.save(a_handle, {"array": np.zeros(3, np.float32)}, tmp_path / "a2.npy")
        worker.save(b_handle, {"array": np.ones(3, np.float32)}, tmp_path / "b2.npy")
        worker.evaluate(b_handle, "array")
        worker.open(tmp_path / "c.npy")
    assert np.load(tmp_path / "a2.npy").tolist() == [0, 0, 0] and np.load(tmp_path / "b2.npy").tolist() == [
        1,
        1,
        1,
    ]
    assert "c.npy" in opened and len(worker.handles()) == 3 and not worker.is_busy()


def test_failures_keep_their_kind(qtbot, worker, tmp_path):
    path = tmp_path / "counts.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"weights": np.arange(4.0), "counts": collections.Counter("aab")}, fh, protocol=4)
    with qtbot.waitSignal(worker.open_failed, timeout=WAIT_MS) as refused:
        worker.open(path)
    assert refused.args[1] == str(path) and isinstance(refused.args[2], TrustRequired)
    assert "collections.Counter" in refused.args[2].globals_needed and worker.pending_opens() == 0

    with qtbot.waitSignal(worker.open_failed, timeout=WAIT_MS) as missing:
        worker.open(tmp_path / "missing.npy")
    assert "does not exist" in str(missing.args[2])

    np.save(tmp_path / "ok.npy", np.ones(2))
    info = _opened(qtbot, worker, tmp_path / "ok.npy")
    with qtbot.waitSignal(worker.failed, timeout=WAIT_MS) as failed:
        worker.evaluate(info.handle, "nope")
    assert "No node named 'nope'" in failed.args[1]
    (tmp_path / "folder.npy").mkdir()
    with qtbot.waitSignal(worker.save_failed, timeout=WAIT_MS) as save_failed:
        worker.save(info.handle, {"array": np.zeros(2)}, tmp_path / "folder.npy")
    assert save_failed.args[1] and not worker.is_busy()


class _GuardedSession(IsolatedSession):
    """A session whose file turns out, on evaluation, to need trust (as a lazily loaded pickle can)."""

    def value(self, handle, node_id, index=None, feeds=None, trust=False, cancel=None):
        if not trust:
            raise SessionFailure(Failure(TRUST, "Loading w needs trust.", needs=("builtins.eval",)))
        return super().value(handle, node_id, index=index, feeds=feeds, trust=trust, cancel=cancel)


def test_an_evaluation_that_needs_trust_asks_for_it(qtbot, tmp_path):
    worker = Worker(session=_GuardedSession())
    try:
        np.save(tmp_path / "w.npy", np.arange(3.0))
        info = _opened(qtbot, worker, tmp_path / "w.npy")
        with qtbot.waitSignal(worker.trust_needed, timeout=WAIT_MS) as asked:
            worker.evaluate(info.handle, info.nodes[0].id)
        assert isinstance(asked.args[1], TrustRequired) and asked.args[1].globals_needed == ["builtins.eval"]
        with qtbot.waitSignal(worker.result, timeout=WAIT_MS) as trusted:
            worker.evaluate(info.handle, info.nodes[0].id, trust=True)
        assert trusted.args[1].array.tolist() == [0.0, 1.0, 2.0]
    finally:
        worker.shutdown()


def test_closing_the_window_while_a_read_hangs_does_not_wait_for_it(qtbot, tmp_path, monkeypatch):
    enable(monkeypatch)
    settings().clear()
    window = MainWindow(persist=False)
    qtbot.addWidget(window)
    window.auto_select = False
    window.show()
    with qtbot.waitSignal(window.file_opened, timeout=WAIT_MS):
        window.open_paths([make(tmp_path, "hang")])
    assert window.select_node("x")
    stuck = _wait_for_hanging_read(qtbot, window.worker.session)

    started = time.monotonic()
    window.close()
    closed_in = time.monotonic() - started
    # no thread is left waiting: destroying the pool (which waits for its threads) is immediate
    assert window.worker._runner.pool.activeThreadCount() == 0
    assert stuck.poll() is not None and closed_in < CLOSE_BOUND_S
