"""Traces and activation exports for the window, off the GUI thread.

A trace is one call to the session (``trace``): the reader runs the graph once and
reports ``progress(done, total)`` nodes on the way; the kept values stay in the
reader, where ``value`` with the trace's inputs answers from them. Exporting the kept
values asks for them one at a time and streams each into the archive
(``core.activation_archive``), so the window holds one activation at a time however
many were kept.

Both run on a ``BackgroundRunner`` of their own, next to the ``Worker``'s: the tree
stays browsable and the reader serves a selection as soon as the trace is done. Each
is cancelled through its own event (not by making the request stale), so a cancelled
run still answers, as ``Cancelled``, and the window knows it is idle again.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.app.worker import _in_core_terms, user_message
from tensor_inspector.core.activation_archive import write_archive
from tensor_inspector.core.errors import Cancelled, TrustRequired
from tensor_inspector.session.answers import TraceReport, Value

Progress = Callable[[int, int], None]
PROGRESS_EVERY_S = 0.05  # progress reaches the GUI at most this often (the last step always)


class TraceSession(Protocol):
    """What tracing needs of a session (``IsolatedSession``, ``LocalSession``)."""

    def trace(
        self,
        handle: int,
        entry: str | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        keep_bytes: int | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
        progress: Progress | None = None,
    ) -> TraceReport: ...

    def value(
        self,
        handle: int,
        node_id: str,
        index: tuple[int | slice, ...] | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
    ) -> Value: ...


def _throttled(progress: Progress) -> Progress:
    """``progress`` called at most every ``PROGRESS_EVERY_S``, and always for the last step."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            progress(done, total)

    return report


def run_trace(
    session: TraceSession,
    handle: int,
    entry: str | None,
    feeds: Mapping[str, np.ndarray] | None,
    trust: bool,
    progress: Progress,
    cancel: threading.Event,
) -> TraceReport:
    """Trace ``entry`` of ``handle`` (worker thread); ``Cancelled`` when ``cancel`` was set."""
    try:
        return session.trace(
            handle, entry, feeds=feeds, trust=trust, cancel=cancel, progress=_throttled(progress)
        )
    except Exception:
        if cancel.is_set():  # whatever stopping the run looked like (a killed reader too)
            raise Cancelled() from None
        raise


def export_activations(
    session: TraceSession,
    handle: int,
    node_ids: Sequence[str],
    feeds: Mapping[str, np.ndarray],
    path: Path,
    progress: Progress,
    cancel: threading.Event,
) -> Path:
    """Fetch each node's value with the trace's ``feeds`` and stream it into an .npz at ``path``.

    The file appears only when every value is in (atomic); cancel or a failure leaves
    whatever was at ``path`` before.
    """
    total = len(node_ids)
    progress(0, total)
    try:
        with write_archive(path, node_ids, cancel) as archive:
            for done, node_id in enumerate(node_ids, 1):
                if cancel.is_set():
                    raise Cancelled()
                value = session.value(handle, node_id, None, dict(feeds), cancel=cancel)
                archive.add(node_id, value.array)
                del value  # one activation at a time in this process
                progress(done, total)
    except Exception:
        if cancel.is_set():
            raise Cancelled() from None
        raise
    return path


class TraceWorker(QObject):
    """Trace and export requests through the window's session, answered by signals.

    One run at a time: a new trace or export cancels the running one, whose answer is
    then dropped.
    """

    progress = Signal(int, int, int)  # request id, done, total (nodes traced or values exported)
    traced = Signal(int, object)  # request id, TraceReport
    exported = Signal(int, str)  # request id, path written
    failed = Signal(int, str)  # request id, one sentence
    trust_needed = Signal(int, object)  # request id, TrustRequired raised by a trace
    cancelled = Signal(int)  # request id

    def __init__(self, session: TraceSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._runner = BackgroundRunner(self, max_threads=1)
        self._ids = itertools.count(1)
        self._cancel: threading.Event | None = None
        self.latest: int | None = None  # the run the window waits for

    def trace(
        self, handle: int, entry: str, feeds: Mapping[str, np.ndarray] | None, trust: bool = False
    ) -> int:
        """Trace ``entry`` with ``feeds`` (None: the file's defaults)."""
        given = dict(feeds) if feeds else None
        return self._start(run_trace, self.session, handle, entry, given, trust)

    def export(
        self, handle: int, node_ids: Sequence[str], feeds: Mapping[str, np.ndarray], path: Path
    ) -> int:
        """Write the values of ``node_ids`` (computed with ``feeds``) into the .npz ``path``."""
        return self._start(export_activations, self.session, handle, list(node_ids), dict(feeds), Path(path))

    def _start(self, fn: Callable[..., Any], *args: Any) -> int:
        self.cancel()
        rid = next(self._ids)
        self.latest = rid
        cancel = self._cancel = threading.Event()

        def report(done: int, total: int) -> None:  # worker thread
            if not cancel.is_set():
                self.progress.emit(rid, done, total)

        def finished(result: object) -> None:
            if self.latest != rid:
                return
            self.latest = None
            if isinstance(result, TraceReport):
                self.traced.emit(rid, result)
            else:
                self.exported.emit(rid, str(result))

        def failed(error: BaseException) -> None:
            if self.latest != rid:
                return
            self.latest = None
            if isinstance(error, Cancelled):
                self.cancelled.emit(rid)
            elif isinstance(error, TrustRequired):
                self.trust_needed.emit(rid, error)
            else:
                self.failed.emit(rid, user_message(error))

        self._runner.submit(
            f"run:{rid}",
            _in_core_terms,
            fn,
            *args,
            report,
            cancel,
            on_done=finished,
            on_exception=failed,
        )
        return rid

    def cancel(self) -> None:
        """Stop the running trace or export; it answers ``cancelled`` once it has stopped."""
        if self._cancel is not None:
            self._cancel.set()

    def is_busy(self) -> bool:
        return self.latest is not None

    def shutdown(self, wait_ms: int = 0) -> bool:
        """Cancel everything; the session's shutdown then ends calls waiting on a reader."""
        self.cancel()
        self.latest = None
        return self._runner.stop(wait_ms)
