"""BackgroundRunner: failures as objects, waiting for the previous request, stopping for close."""

from __future__ import annotations

import threading
import time

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.core.errors import TrustRequired

WAIT_MS = 10_000


def test_a_failure_arrives_as_the_exception_itself_without_its_traceback(qtbot):
    runner = BackgroundRunner()
    sentences, errors = [], []

    def refuse():
        big = bytearray(1 << 20)  # a local of the failed call: must not outlive the failure
        raise TrustRequired(f"Needs trust ({len(big)}).", ["collections.Counter"])

    with qtbot.waitSignal(runner.failed, timeout=WAIT_MS) as failed:
        runner.submit("open:1", refuse, on_error=sentences.append, on_exception=errors.append)
    assert failed.args[2] == "Needs trust (1048576)." and sentences == [failed.args[2]]
    assert isinstance(errors[0], TrustRequired) and errors[0].globals_needed == ["collections.Counter"]
    assert errors[0].__traceback__ is None
    runner.stop(WAIT_MS)


def test_after_previous_starts_once_the_cancelled_request_has_returned(qtbot):
    runner = BackgroundRunner(max_threads=4)
    busy = threading.Event()  # set while the first request holds the one-call-at-a-time resource
    ran = []

    def first(cancel):
        busy.set()
        cancel.wait(WAIT_MS / 1000)
        time.sleep(0.3)  # like a reader that is stopped a while after the cancel
        busy.clear()

    runner.submit("eval", first, cancellable=True, after_previous=True)
    qtbot.waitUntil(busy.is_set, timeout=WAIT_MS)
    runner.submit("eval", ran.append, "stale", after_previous=True)
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS) as finished:
        runner.submit("eval", lambda: busy.is_set(), after_previous=True)
    assert finished.args[2] is False  # it ran only after the first had let go
    assert ran == []  # the stale one was replaced while it waited: it never ran
    runner.stop(WAIT_MS)


def test_stop_drops_queued_work_and_waits_for_the_running(qtbot):
    runner = BackgroundRunner(max_threads=1)
    started = threading.Event()
    ran = []

    def running(cancel):
        started.set()
        cancel.wait(WAIT_MS / 1000)
        ran.append("running")

    runner.submit("a", running, cancellable=True)
    assert started.wait(WAIT_MS / 1000)
    for n in range(3):
        runner.submit(f"queued:{n}", ran.append, n)
    assert runner.stop(WAIT_MS)
    assert ran == ["running"] and not runner.pending()
    # after stop the runner serves again, and waits for nothing that was dropped
    with qtbot.waitSignal(runner.finished, timeout=WAIT_MS):
        runner.submit("queued:0", lambda: "again", after_previous=True)
