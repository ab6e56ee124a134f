"""The window's link to the session: requests go out from the GUI thread, answers come back as signals.

Every backend call runs in a reader process (``session.IsolatedSession``), never in
the GUI process: a crash, a runaway allocation or a hang in a framework stops that
process, and the window shows a sentence. The blocking calls to the session run on
the app's one background mechanism (``app.background.BackgroundRunner``); outcomes
come back on the GUI thread and those of stale evaluations are dropped, so the latest
selection wins. A newer selection, Esc or closing the file cancels a running
evaluation: the session stops the reader if it has not answered within about a second.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from tensor_inspector.app.background import BackgroundRunner
from tensor_inspector.core.errors import InspectorError, TrustRequired, first_line
from tensor_inspector.core.nodes import FeedSpec
from tensor_inspector.session.answers import FileInfo, Saved, SessionFailure, TraceReport, Value
from tensor_inspector.session.isolated import IsolatedSession

log = logging.getLogger(__name__)

# The answer types under the names the window used before the session layer existed.
OpenedFile = FileInfo
EvalResult = Value
SaveOutcome = Saved

_SHUTDOWN_ROUND_MS = 250  # how often closing stops readers that a running job started again


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
    def feed_specs(self, handle: int, node_id: str | None = None) -> list[FeedSpec]: ...
    def trace(
        self,
        handle: int,
        entry: str | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        keep_bytes: int | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TraceReport: ...
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
    text = first_line(exc)
    return f"Unexpected error ({type(exc).__name__}{': ' + text if text else ''})."


def _in_core_terms(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a session failure is raised as the core exception it stands for.

    ``TrustRequired`` thereby keeps the list of what the file needs, for the trust prompt.
    """
    try:
        return fn(*args, **kwargs)
    except SessionFailure as exc:
        error = exc.failure.to_exception()
    except BaseException:
        log.debug("session call failed", exc_info=True)
        raise
    raise error  # outside the handler: no chained traceback holds the failed call's frames


class Worker(QObject):
    """Opens, evaluates, saves and closes files through the session, off the GUI thread.

    One ``BackgroundRunner`` carries every call: evaluations share the channel
    ``"eval"`` (a new one makes the earlier stale and sets its cancel event, which
    the session turns into stopping the reader), while each open, save and close has
    a channel of its own, so none of them replaces another.
    """

    opened = Signal(int, object)  # request id, FileInfo
    open_failed = Signal(int, str, object)  # request id, path, exception (TrustRequired carries globals)
    result = Signal(int, object)  # request id, Value
    failed = Signal(int, str)  # request id, message
    trust_needed = Signal(int, object)  # request id, TrustRequired raised by an evaluation
    busy_changed = Signal(bool)  # an evaluation is (no longer) pending
    saved = Signal(int, object)  # request id, Saved
    save_failed = Signal(int, str)  # request id, message
    feed_specs_ready = Signal(int, object)  # request id, list[FeedSpec]
    feed_specs_failed = Signal(int, str)  # request id, message

    def __init__(self, parent: QObject | None = None, max_threads: int = 4, session: Session | None = None):
        super().__init__(parent)
        self.session: Session = session if session is not None else IsolatedSession()
        warm_up = getattr(self.session, "warm_up", None)
        if warm_up is not None:  # Python and numpy start while the user picks a file
            warm_up()
        # Threads spend their time waiting on a reader's socket, not computing: a few are
        # enough for an open or a save to go ahead while an evaluation is running.
        self._runner = BackgroundRunner(self, max_threads=max_threads)
        self._ids = itertools.count(1)
        self._latest_eval: int | None = None
        self._pending_opens: set[int] = set()
        self._open_handles: set[int] = set()

    # -- requests (GUI thread) ------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> int:
        """Open ``path`` in the background; answers with ``opened`` or ``open_failed``."""
        rid = next(self._ids)
        path = Path(path)
        self._pending_opens.add(rid)

        def done(info: FileInfo) -> None:
            self._pending_opens.discard(rid)
            self._open_handles.add(info.handle)
            self.opened.emit(rid, info)

        def failed(error: BaseException) -> None:
            self._pending_opens.discard(rid)
            self.open_failed.emit(rid, str(path), error)

        self._runner.submit(
            f"open:{rid}",
            _in_core_terms,
            self.session.open,
            path,
            trust=trust,
            on_done=done,
            on_exception=failed,
        )
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
        self._latest_eval = rid
        self.busy_changed.emit(True)
        given = dict(feeds) if feeds is not None else None

        def done(value: Value) -> None:
            self._eval_ended()
            self.result.emit(rid, value)

        def failed(error: BaseException) -> None:
            self._eval_ended()
            if isinstance(error, TrustRequired):
                self.trust_needed.emit(rid, error)
            else:
                self.failed.emit(rid, user_message(error))

        # submit() sets the cancel event of the evaluation it replaces: the session then
        # stops a reader that has not answered within about a second. The new one starts
        # after that: sent earlier, it would wait for the same reader and then find it
        # restarted, without the file it asks about.
        self._runner.submit(
            "eval",
            _in_core_terms,
            self.session.value,
            handle,
            node_id,
            index=index,
            feeds=given,
            trust=trust,
            on_done=done,
            on_exception=failed,
            cancellable=True,
            after_previous=True,
        )
        return rid

    def feed_specs(self, handle: int, node_id: str) -> int:
        """Ask for the inputs of a graph node (name, dtype, shape) without evaluating it.

        The window shows them before the first evaluation, which may fail with the
        file's default inputs. The latest request wins; a cancel drops it with the
        evaluation it usually precedes.
        """
        rid = next(self._ids)
        self._runner.submit(
            "specs",
            _in_core_terms,
            self.session.feed_specs,
            handle,
            node_id,
            on_done=lambda specs: self.feed_specs_ready.emit(rid, list(specs)),
            on_exception=lambda error: self.feed_specs_failed.emit(rid, user_message(error)),
        )
        return rid

    def save(self, handle: int, replacements: Mapping[str, np.ndarray], target: str | Path) -> int:
        """Write ``handle``'s file with ``replacements`` to ``target`` (atomic, verified).

        Success reopens ``target`` under the same handle; the caller's edits are untouched
        either way.
        """
        rid = next(self._ids)
        self._runner.submit(
            f"save:{rid}",
            _in_core_terms,
            self.session.save,
            handle,
            dict(replacements),
            Path(target),
            on_done=lambda saved: self.saved.emit(rid, saved),
            on_exception=lambda error: self.save_failed.emit(rid, user_message(error)),
        )
        return rid

    def cancel(self) -> None:
        """Stop the pending evaluation (and its inputs request); the view returns to idle at once."""
        self._runner.cancel("specs")
        self._runner.cancel("eval")
        if self._latest_eval is not None:
            self._eval_ended()

    def close(self, handle: int) -> None:
        """Forget a file; a read of it still running is stopped (in the background)."""
        self._open_handles.discard(handle)
        # in the background: closing waits for the reader to give up a running read
        self._runner.submit(f"close:{next(self._ids)}", self._quietly, self.session.close, handle)

    def is_busy(self) -> bool:
        return self._latest_eval is not None

    def is_fetching_specs(self) -> bool:
        return self._runner.pending("specs")

    def pending_opens(self) -> int:
        return len(self._pending_opens)

    def handles(self) -> list[int]:
        return sorted(self._open_handles)

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Stop the readers and wait briefly for running jobs (used when the window closes).

        The pool's threads are not daemons: Qt waits for them when the pool is destroyed,
        so a call stuck waiting for a reader would block quitting. Stopping the readers
        makes every such call return; a job that started a reader again meanwhile (the
        second call of a save) is stopped by the next round.
        """
        self._latest_eval = None
        self._pending_opens.clear()
        self._open_handles.clear()
        # cancel everything (outcomes that still arrive are dropped) and drop queued work,
        # which must not start a reader again
        self._runner.stop(0)
        deadline = time.monotonic() + max(wait_ms, 0) / 1000
        while True:
            self._quietly(self.session.shutdown)
            left_ms = int((deadline - time.monotonic()) * 1000)
            if self._runner.stop(min(max(left_ms, 0), _SHUTDOWN_ROUND_MS)) or left_ms <= 0:
                return

    # -- internals ------------------------------------------------------------------
    def _eval_ended(self) -> None:
        self._latest_eval = None
        self.busy_changed.emit(False)

    @staticmethod
    def _quietly(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # closing and shutting down report nothing to the user
            log.debug("session call failed", exc_info=True)
