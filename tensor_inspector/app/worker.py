"""The window's link to the session: requests go out from the GUI thread, answers come back as signals.

Every backend call runs in a reader process (``session.IsolatedSession``), never in
the GUI process: a crash, a runaway allocation or a hang in a framework stops that
process, and the window shows a sentence. The blocking calls to the session run on a
few Python threads; their outcomes come back through a queued signal, and the
GUI-thread slot drops outcomes of stale requests, so the latest selection wins. A
newer selection, Esc or closing the file cancels a running evaluation: the session
stops the reader if it has not answered within about a second.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from tensor_inspector.core.errors import InspectorError, TrustRequired
from tensor_inspector.session.answers import FileInfo, Saved, SessionFailure, Value
from tensor_inspector.session.isolated import IsolatedSession

log = logging.getLogger(__name__)

# The answer types under the names the window used before the session layer existed.
OpenedFile = FileInfo
EvalResult = Value
SaveOutcome = Saved


class Session(Protocol):
    """What the worker needs of a session (``IsolatedSession``; tests may pass their own)."""

    def open(self, path: str | Path, trust: bool = False) -> FileInfo: ...
    def value(
        self,
        handle: int,
        node_id: str,
        index: tuple[int | slice, ...] | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
    ) -> Value: ...
    def save(self, handle: int, replacements: Mapping[str, np.ndarray], target: str | Path) -> Saved: ...
    def close(self, handle: int) -> None: ...
    def cancel(self, handle: int | None = None) -> None: ...
    def handles(self) -> list[int]: ...
    def shutdown(self) -> None: ...


def user_message(exc: BaseException) -> str:
    """One sentence for the user; unexpected exceptions are named but not dumped."""
    if isinstance(exc, InspectorError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory to load this value."
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Unexpected error ({type(exc).__name__}{': ' + text if text else ''})."


def _as_core_error(exc: BaseException) -> BaseException:
    """A session failure as the core exception it stands for (TrustRequired keeps its list)."""
    if isinstance(exc, SessionFailure):
        return exc.failure.to_exception()
    return exc


class _PythonThreadPool:
    """A few daemon ``threading`` threads that run jobs in order of arrival.

    Daemon threads: a call stuck waiting for a reader never blocks quitting the app.
    """

    def __init__(self, max_threads: int):
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._max = max_threads
        self._threads: list[threading.Thread] = []
        self._active = 0
        self._lock = threading.Condition()

    def start(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._active += 1
            idle = len(self._threads) - (self._active - 1)
            if idle <= 0 and len(self._threads) < self._max:
                name = f"tensor-inspector-worker-{len(self._threads)}"
                thread = threading.Thread(target=self._loop, daemon=True, name=name)
                self._threads.append(thread)
                thread.start()
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            finally:
                with self._lock:
                    self._active -= 1
                    self._lock.notify_all()

    def wait(self, msecs: int) -> bool:
        """Wait up to ``msecs`` for every queued job to finish; True if they did."""
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout=msecs / 1000)


class Worker(QObject):
    """Opens, evaluates, saves and closes files through the session, off the GUI thread."""

    opened = Signal(int, object)  # request id, FileInfo
    open_failed = Signal(int, str, object)  # request id, path, exception (TrustRequired carries globals)
    result = Signal(int, object)  # request id, Value
    failed = Signal(int, str)  # request id, message
    trust_needed = Signal(int, object)  # request id, TrustRequired raised by an evaluation
    busy_changed = Signal(bool)  # an evaluation is (no longer) pending
    saved = Signal(int, object)  # request id, Saved
    save_failed = Signal(int, str)  # request id, message
    _posted = Signal(int, str, bool, object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4, session: Session | None = None):
        super().__init__(parent)
        self.session: Session = session if session is not None else IsolatedSession()
        self._pool = _PythonThreadPool(max_threads)
        self._ids = itertools.count(1)
        self._latest_eval: int | None = None
        self._eval_cancel: threading.Event | None = None
        self._pending_opens: set[int] = set()
        self._open_handles: set[int] = set()
        self._posted.connect(self._deliver)  # queued: emitted from pool threads

    # -- requests (GUI thread) ------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> int:
        """Open ``path`` in the background; answers with ``opened`` or ``open_failed``."""
        rid = next(self._ids)
        path = Path(path)
        self._pending_opens.add(rid)
        self._start(rid, "open", lambda: self.session.open(path, trust=trust), path)
        return rid

    def evaluate(
        self,
        handle: int,
        node_id: str,
        index: tuple[int | slice, ...] | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
    ) -> int:
        """Ask for a node's value; an earlier evaluation becomes stale and is cancelled.

        ``trust``: the user vouched for the file after a ``trust_needed``; it is reopened
        with trust first (same handle), then evaluated.
        """
        rid = next(self._ids)
        self._cancel_running()
        cancel = threading.Event()
        self._latest_eval, self._eval_cancel = rid, cancel
        self.busy_changed.emit(True)
        given = dict(feeds) if feeds is not None else None

        def job() -> Value:
            return self.session.value(handle, node_id, index=index, feeds=given, trust=trust, cancel=cancel)

        self._start(rid, "eval", job)
        return rid

    def save(self, handle: int, replacements: Mapping[str, np.ndarray], target: str | Path) -> int:
        """Write ``handle``'s file with ``replacements`` to ``target`` (atomic, verified).

        Success reopens ``target`` under the same handle; the caller's edits are untouched
        either way.
        """
        rid = next(self._ids)
        values = dict(replacements)
        self._start(rid, "save", lambda: self.session.save(handle, values, Path(target)))
        return rid

    def cancel(self) -> None:
        """Stop the pending evaluation; the view returns to idle at once."""
        self._cancel_running()
        if self._latest_eval is not None:
            self._latest_eval = None
            self.busy_changed.emit(False)

    def close(self, handle: int) -> None:
        """Forget a file; a read of it still running is stopped (in the background)."""
        self._open_handles.discard(handle)
        self._pool.start(lambda: self._quietly(self.session.close, handle))

    def is_busy(self) -> bool:
        return self._latest_eval is not None

    def pending_opens(self) -> int:
        return len(self._pending_opens)

    def handles(self) -> list[int]:
        return sorted(self._open_handles)

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Stop the readers and wait briefly for running jobs (used when the window closes)."""
        self._latest_eval = None
        self._cancel_running()
        self._open_handles.clear()
        self._quietly(self.session.shutdown)
        self._pool.wait(wait_ms)

    # -- internals ------------------------------------------------------------------
    def _cancel_running(self) -> None:
        if self._eval_cancel is not None:
            self._eval_cancel.set()
            self._eval_cancel = None

    @staticmethod
    def _quietly(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # closing and shutting down report nothing to the user
            log.debug("session call failed", exc_info=True)

    def _start(self, rid: int, kind: str, fn: Callable[[], Any], path: Path | None = None) -> None:
        tag = kind if path is None else f"{kind}\0{path}"

        def job() -> None:
            try:
                payload, ok = fn(), True
            except BaseException as exc:  # everything becomes a message, nothing crashes the app
                log.debug("%s job failed", kind, exc_info=True)
                payload, ok = _as_core_error(exc), False
            self._posted.emit(rid, tag, ok, payload)

        self._pool.start(job)

    @Slot(int, str, bool, object)
    def _deliver(self, rid: int, kind: str, ok: bool, payload: object) -> None:
        kind, _, path = kind.partition("\0")
        if kind == "open":
            self._pending_opens.discard(rid)
            if ok:
                assert isinstance(payload, FileInfo)
                self._open_handles.add(payload.handle)
                self.opened.emit(rid, payload)
            else:
                self.open_failed.emit(rid, path, payload)
            return
        if kind == "save":
            if ok:
                self.saved.emit(rid, payload)
            else:
                self.save_failed.emit(rid, user_message(payload))  # type: ignore[arg-type]
            return
        if rid != self._latest_eval:
            return  # a newer selection or a cancel made this stale
        self._latest_eval = None
        self._eval_cancel = None
        self.busy_changed.emit(False)
        if ok:
            self.result.emit(rid, payload)
        elif isinstance(payload, TrustRequired):
            self.trust_needed.emit(rid, payload)
        else:
            self.failed.emit(rid, user_message(payload))  # type: ignore[arg-type]
