"""One reader process seen from the window's side: start, call, watch, kill, restart.

A call sends one request and waits for its answer while watching the process: a
death by signal, memory above the limit, a call longer than the time limit, or a
cancel that the reader does not honour within ``CANCEL_GRACE_S`` all end in killing the
process and a ``SessionFailure`` with one sentence. The next call starts a fresh one
(``generation`` counts them, so callers know their files must be reopened).
"""

from __future__ import annotations

import itertools
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tensor_inspector.session import wire
from tensor_inspector.session.answers import (
    CANCELLED,
    CRASH,
    ERROR,
    MEMORY,
    TIMEOUT,
    Failure,
    SessionFailure,
)

CANCEL_GRACE_S = 1.0  # a cancelled call that has not answered by then is stopped by force
POLL_S = 0.05
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the child imports this same package
_VERBS = {"open": "Opening", "save": "Saving", "value": "Reading", "trace": "Tracing"}
_LINKED = frozenset({"trace"})  # reader.ReaderService.LINKED: they report progress and stop when asked


def default_memory_limit() -> int:
    """Bytes a reader may hold: TENSOR_INSPECTOR_READER_MEMORY_MB, else 60% of physical RAM."""
    configured = os.environ.get("TENSOR_INSPECTOR_READER_MEMORY_MB")
    if configured:
        return int(float(configured) * (1 << 20))
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.6)
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_time_limit() -> float:
    """Seconds one call may take: TENSOR_INSPECTOR_READER_TIMEOUT_S, else 15 minutes."""
    return float(os.environ.get("TENSOR_INSPECTOR_READER_TIMEOUT_S", 900))


class ReaderRestarted(Exception):
    """The reader was restarted after the caller looked up its handles: they are gone."""


class ReaderProcess:
    """A child process serving ``session.reader`` requests, one call at a time."""

    def __init__(
        self,
        sandboxed: bool,
        memory_limit: int | None = None,
        time_limit: float | None = None,
    ) -> None:
        self.sandboxed = sandboxed
        self.memory_limit = memory_limit or default_memory_limit()
        self.time_limit = time_limit or default_time_limit()
        self.generation = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # one call in flight
        self._ids = itertools.count(1)
        self._current: tuple[Any, threading.Event] | None = None  # (tag, cancel) of the call in flight

    # -- life -----------------------------------------------------------------------
    def _start(self) -> None:
        parent, child = socket.socketpair()
        args = [sys.executable, "-m", "tensor_inspector.session.reader", str(child.fileno())]
        if self.sandboxed:
            args.append("--sandbox")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # Framework notices (TensorFlow's CUDA probing, oneDNN, deprecation warnings) are not
        # for users; the CLI's --debug sets TENSOR_INSPECTOR_DEBUG=1 to let them through.
        if env.get("TENSOR_INSPECTOR_DEBUG") != "1":
            env["TF_CPP_MIN_LOG_LEVEL"] = "3"
            env.setdefault("PYTHONWARNINGS", "ignore")
        env.setdefault("CUDA_VISIBLE_DEVICES", "")  # reading weights needs no GPU; leave its memory alone
        try:
            self._proc = subprocess.Popen(
                args, pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, env=env, close_fds=True
            )
        finally:
            child.close()
        self._sock = parent
        self.generation += 1

    def warm_up(self) -> None:
        """Start the process now, so the first request does not wait for Python to start.

        Never blocks: a reader busy with a call is running already.
        """
        if not self._lock.acquire(blocking=False):
            return
        try:
            if not self.alive():
                self.stop(0)
                self._start()
        finally:
            self._lock.release()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, wait_s: float = 1.0) -> None:
        """End the process: hang up (it exits by itself), kill if it does not."""
        proc, sock = self._proc, self._sock
        self._proc = self._sock = None
        if sock is not None:
            sock.close()
        if proc is not None:
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.stop(0)

    # -- calls ----------------------------------------------------------------------
    def cancel(self, tag: Any = None) -> bool:
        """Cancel the call in flight (only if its tag is ``tag``, when given); True if one was."""
        current = self._current
        if current is None or (tag is not None and current[0] != tag):
            return False
        current[1].set()
        return True

    def call(
        self,
        method: str,
        *args: Any,
        what: str = "the file",
        tag: Any = None,
        cancel: threading.Event | None = None,
        generation: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``method`` in the reader and return its result, or raise ``SessionFailure``.

        ``progress(done, total)`` receives what a long call (``reader.ReaderService.LINKED``)
        reports on the way, in this thread; cancelling such a call asks the reader to stop
        before it is killed.

        ``generation``: the process the caller's handles belong to; if it was restarted
        meanwhile (by a call queued before this one), ``ReaderRestarted`` is raised
        instead of sending handles the new process never gave out.
        """
        cancel = cancel or threading.Event()
        with self._lock:
            if cancel.is_set():
                raise SessionFailure(Failure(CANCELLED, "Cancelled."))
            if not self.alive():
                self.stop(0)
                self._start()
            if generation is not None and generation != self.generation:
                raise ReaderRestarted()
            assert self._sock is not None
            rid = next(self._ids)
            self._current = (tag, cancel)
            try:
                wire.send(self._sock, (rid, method, args, kwargs))
                answer = self._wait(rid, method, what, cancel, progress)
            except OSError:  # the socket broke: the process died while we were sending
                answer = (rid, False, self._death(method, what))
            finally:
                self._current = None
        _rid, ok, payload = answer
        if ok:
            return payload
        raise SessionFailure(payload if isinstance(payload, Failure) else Failure(ERROR, str(payload)))

    def _wait(
        self,
        rid: int,
        method: str,
        what: str,
        cancel: threading.Event,
        progress: Callable[[int, int], None] | None = None,
    ) -> Any:
        started = time.monotonic()
        cancelled_at: float | None = None
        sock = self._sock
        assert sock is not None
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], POLL_S)
            except (OSError, ValueError):  # closed by stop(): the session is shutting down
                return (rid, False, Failure(CANCELLED, "Cancelled."))
            if readable:
                try:
                    answer = wire.receive(sock)
                except (wire.WireError, OSError):
                    return (rid, False, self._death(method, what))
                if isinstance(answer, tuple) and len(answer) == 3 and answer[0] == rid:
                    if answer[1] is not None:
                        return answer
                    if progress is not None:  # (rid, None, (done, total)) on the way
                        progress(*answer[2])
                # else: the answer of a call abandoned earlier. Either way the checks
                # below still run, so a stream of progress cannot hold off a kill.
            now = time.monotonic()
            if not self.alive():
                return (rid, False, self._death(method, what))
            if cancel.is_set():
                if cancelled_at is None and method in _LINKED:
                    try:  # the reader stops between two steps and keeps its open files
                        wire.send(sock, ("cancel", rid))
                    except OSError:
                        pass
                cancelled_at = cancelled_at or now
                if now - cancelled_at >= CANCEL_GRACE_S:
                    self._kill()
                    return (rid, False, Failure(CANCELLED, "Cancelled."))
            if now - started > self.time_limit:
                self._kill()
                message = (
                    f"{_VERBS.get(method, 'Reading')} {what} took longer than "
                    f"{self.time_limit:.0f} s, so the reader was stopped."
                )
                return (rid, False, Failure(TIMEOUT, message))
            used = _resident_bytes(self._proc.pid if self._proc else None)
            if used is not None and used > self.memory_limit:
                self._kill()
                message = (
                    f"{_VERBS.get(method, 'Reading')} {what} needed more than "
                    f"{_gb(self.memory_limit)} of memory (the reader's limit), so it was stopped."
                )
                return (rid, False, Failure(MEMORY, message))

    def _death(self, method: str, what: str) -> Failure:
        """Wait for the dead (or dying) process and describe how it ended."""
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self.stop(0)
        verb = _VERBS.get(method, "Reading")
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            if name == "SIGKILL":
                return Failure(
                    MEMORY,
                    f"{verb} {what} stopped the reader (SIGKILL, usually the system running out of memory).",
                )
            return Failure(CRASH, f"{verb} {what} crashed the reader ({name}): the file is probably damaged.")
        return Failure(CRASH, f"{verb} {what} stopped the reader unexpectedly (exit code {code}).")


def _resident_bytes(pid: int | None) -> int | None:
    """Resident memory of ``pid`` (Linux /proc); None where it cannot be read."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _gb(n: int) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"
