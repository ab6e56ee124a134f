"""Background opening and evaluation: the GUI thread never reads a file or runs a framework.

Every request carries an id. Jobs run on a thread pool and post their outcome back
through a queued signal; the GUI-thread slot drops outcomes of stale requests, so
the latest selection always wins. Backends are reached only with plain data (path,
trust flag, source handle, node id, index tuple, feed arrays); results are numpy
arrays, ``Node`` records and message strings. Moving the backends into a worker
process later means replacing only this class.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from tensor_inspector.app.background import error_sentence
from tensor_inspector.backends import Source
from tensor_inspector.core.errors import InspectorError, TrustRequired
from tensor_inspector.core.nodes import FeedSpec, Node, NodeKind
from tensor_inspector.session.opening import open_source as open_path

log = logging.getLogger(__name__)


@dataclass
class OpenedFile:
    """What the GUI learns about an opened file: plain metadata only."""

    handle: int
    path: Path
    format_name: str
    backend_name: str
    writable: bool
    nodes: list[Node]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class SaveOutcome:
    """A finished save: the reopened file (same handle) and where the backup went."""

    opened: OpenedFile
    backup: Path | None
    verified: list[str]


@dataclass
class EvalResult:
    """A value for the GUI: the array, plus the feeds it was computed with (graph nodes)."""

    handle: int
    node_id: str
    index: tuple | None
    array: np.ndarray
    feed_specs: list[FeedSpec] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)


def user_message(exc: BaseException) -> str:
    """One sentence for the user; unexpected exceptions are named but not dumped."""
    if isinstance(exc, InspectorError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "Not enough memory to load this value."
    return f"Unexpected {error_sentence(exc)}"


class _Job:
    """Runs ``fn`` on a pool thread and posts (request id, ok, payload) back."""

    def __init__(
        self, post: Callable[[int, str, bool, object], None], rid: int, kind: str, fn: Callable[[], Any]
    ):
        self._post, self._rid, self._kind, self._fn = post, rid, kind, fn

    def run(self) -> None:
        try:
            payload, ok = self._fn(), True
        except BaseException as exc:  # everything becomes a message, nothing crashes the app
            log.debug("%s job failed", self._kind, exc_info=True)
            payload, ok = exc, False
        self._post(self._rid, self._kind, ok, payload)


class _PythonThreadPool:
    """A few daemon ``threading`` threads that run jobs in order of arrival.

    Not a QThreadPool on purpose: Qt's pool threads get a fresh Python thread state
    for every job, and TensorFlow's pybind11 modules cache the first one per thread,
    so the second TF call on a reused Qt thread crashed (SIGSEGV in
    gil_scoped_acquire). Python threads keep one thread state for life. Daemon
    threads: a framework call stuck in C never blocks quitting the app.
    """

    def __init__(self, max_threads: int):
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._max = max_threads
        self._threads: list[threading.Thread] = []
        self._active = 0
        self._lock = threading.Condition()

    def start(self, job: _Job) -> None:
        with self._lock:
            self._active += 1
            idle = len(self._threads) - (self._active - 1)
            if idle <= 0 and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._loop, daemon=True, name=f"tensor-inspector-worker-{len(self._threads)}"
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put(job)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job.run()
            finally:
                with self._lock:
                    self._active -= 1
                    self._lock.notify_all()

    def wait(self, msecs: int) -> bool:
        """Wait up to ``msecs`` for every queued job to finish; True if they did."""
        with self._lock:
            return self._lock.wait_for(lambda: self._active == 0, timeout=msecs / 1000)


class Worker(QObject):
    """Owns the opened sources; opens, evaluates and closes them off the GUI thread."""

    opened = Signal(int, object)  # request id, OpenedFile
    open_failed = Signal(int, str, object)  # request id, path, exception (TrustRequired carries globals)
    result = Signal(int, object)  # request id, EvalResult
    failed = Signal(int, str)  # request id, message
    trust_needed = Signal(int, object)  # request id, TrustRequired raised by an evaluation
    busy_changed = Signal(bool)  # an evaluation is (no longer) pending
    saved = Signal(int, object)  # request id, SaveOutcome
    save_failed = Signal(int, str)  # request id, message
    _posted = Signal(int, str, bool, object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        # Stale evaluations keep running until their framework call returns; allow a few at once.
        self._pool = _PythonThreadPool(max_threads)
        self._ids = itertools.count(1)
        self._handles = itertools.count(1)
        self._sources: dict[int, Source] = {}
        self._sources_lock = threading.Lock()
        self._latest_eval: int | None = None
        self._pending_opens: set[int] = set()
        self._posted.connect(self._deliver)  # queued: emitted from pool threads

    # -- requests (GUI thread) ------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> int:
        """Open ``path`` in the background; answers with ``opened`` or ``open_failed``."""
        rid = next(self._ids)
        path = Path(path)
        self._pending_opens.add(rid)

        def job() -> OpenedFile:
            source = open_path(path, trust=trust)
            handle = next(self._handles)
            with self._sources_lock:
                self._sources[handle] = source
            return self._describe(handle, source, path)

        self._start(rid, "open", job, path)
        return rid

    def evaluate(
        self,
        handle: int,
        node_id: str,
        index: tuple | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
    ) -> int:
        """Ask for a node's value; any earlier evaluation becomes stale.

        ``trust``: the user vouched for the file after a ``trust_needed``; it is reopened
        with trust first (same handle), then evaluated.
        """
        rid = next(self._ids)
        self._latest_eval = rid
        self.busy_changed.emit(True)
        feeds = dict(feeds) if feeds is not None else None

        def job() -> EvalResult:
            source = self._source(handle)
            if trust and not source.trusted:
                with source.lock:
                    source = self._reopen(handle, source, source.path, trust=True)
            with source.lock:  # feed_specs, default_feeds and get as one framework session
                return evaluate_locked(source)

        def evaluate_locked(source: Source) -> EvalResult:
            node = source.node(node_id)
            specs: list[FeedSpec] = []
            used: dict[str, np.ndarray] = {}
            if node.kind is NodeKind.COMPUTED:
                specs = list(source.feed_specs(node_id))
                used = dict(source.default_feeds(node_id))
                if feeds:  # the user's arrays win; inputs they did not set keep defaults
                    names = {spec.name for spec in specs} or set(feeds)
                    used.update({k: v for k, v in feeds.items() if k in names})
            value = source.get(node_id, index=index, feeds=used or None)
            return EvalResult(handle, node_id, index, _as_array(value), specs, used)

        self._start(rid, "eval", job)
        return rid

    def save(self, handle: int, replacements: Mapping[str, np.ndarray], target: str | Path) -> int:
        """Write ``handle``'s file with ``replacements`` to ``target`` (core.saving: atomic, verified).

        Success reopens ``target`` under the same handle (the save closed the old source).
        On failure the file is reopened from its path unless the save was refused because
        the file changed on disk, so reading goes on; the caller's edits are untouched.
        """
        from tensor_inspector.session.saving import ChangedOnDisk, save

        rid = next(self._ids)
        target = Path(target)

        def job() -> SaveOutcome:
            source = self._source(handle)
            try:
                report = save(source, replacements, target, opened_signature=source.opened_signature)
            except BaseException as exc:
                if not isinstance(exc, ChangedOnDisk):  # a refused save closed nothing
                    try:
                        self._reopen(handle, source, source.path)
                    except Exception:  # the save's own error is the one to report
                        log.debug("reopening after a failed save failed", exc_info=True)
                raise
            try:
                reopened = self._reopen(handle, source, target)
            except InspectorError as exc:
                raise InspectorError(f"{target.name} was saved, but reopening it failed: {exc}") from None
            return SaveOutcome(self._describe(handle, reopened, target), report.backup, report.verified)

        self._start(rid, "save", job)
        return rid

    def _reopen(self, handle: int, old: Source, path: Path, trust: bool | None = None) -> Source:
        try:
            old.close()
        except Exception:
            log.debug("closing before reopen failed", exc_info=True)
        source = open_path(path, trust=old.trusted if trust is None else trust)
        with self._sources_lock:
            still_open = handle in self._sources
            if still_open:
                self._sources[handle] = source
        if not still_open:  # closed by the user meanwhile: stay closed
            source.close()
        return source

    @staticmethod
    def _describe(handle: int, source: Source, path: Path) -> OpenedFile:
        metadata = {str(k): str(v) for k, v in getattr(source, "metadata", {}).items()}
        return OpenedFile(
            handle,
            path,
            source.format_name,
            source.backend_name,
            bool(source.writable),
            list(source.nodes.values()),
            metadata,
        )

    def cancel(self) -> None:
        """Drop the pending evaluation's result; the view returns to idle at once."""
        if self._latest_eval is not None:
            self._latest_eval = None
            self.busy_changed.emit(False)

    def close(self, handle: int) -> None:
        """Forget a source and release its maps in the background (it may be mid-read)."""
        with self._sources_lock:
            source = self._sources.pop(handle, None)
        if source is not None:
            self._pool.start(_Job(lambda *a: None, 0, "close", source.close))

    def is_busy(self) -> bool:
        return self._latest_eval is not None

    def pending_opens(self) -> int:
        return len(self._pending_opens)

    def handles(self) -> list[int]:
        with self._sources_lock:
            return list(self._sources)

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Close every source and wait briefly for running jobs (used when the window closes)."""
        self._latest_eval = None
        for handle in self.handles():
            with self._sources_lock:
                source = self._sources.pop(handle, None)
            if source is not None:
                try:
                    source.close()
                except Exception:
                    pass
        self._pool.wait(wait_ms)

    # -- internals ------------------------------------------------------------------
    def _source(self, handle: int) -> Source:
        with self._sources_lock:
            source = self._sources.get(handle)
        if source is None:
            raise InspectorError("This file has been closed.")
        return source

    def _start(self, rid: int, kind: str, fn: Callable[[], Any], path: Path | None = None) -> None:
        def post(rid_: int, kind_: str, ok: bool, payload: object) -> None:
            self._posted.emit(rid_, kind_ if path is None else f"{kind_}\0{path}", ok, payload)

        self._pool.start(_Job(post, rid, kind, fn))

    @Slot(int, str, bool, object)
    def _deliver(self, rid: int, kind: str, ok: bool, payload: object) -> None:
        kind, _, path = kind.partition("\0")
        if kind == "open":
            self._pending_opens.discard(rid)
            if ok:
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
        self.busy_changed.emit(False)
        if ok:
            self.result.emit(rid, payload)
        elif isinstance(payload, TrustRequired):
            self.trust_needed.emit(rid, payload)
        else:
            self.failed.emit(rid, user_message(payload))  # type: ignore[arg-type]


def _as_array(value: object) -> np.ndarray:
    """Backends return arrays; VALUE leaves may give scalars or lists, shown as arrays."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception:
        return np.asarray(str(value))
