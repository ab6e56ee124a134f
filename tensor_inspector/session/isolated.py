"""The session with every backend call in a reader process (the window's; the CLI's ``--isolate``).

Two readers, started on first use: a sandboxed one for files nobody vouched for (it
cannot write files or open connections) and an unrestricted one for trusted files and
for saving (which must write). Handles given to callers stay the same when a reader
is killed and restarted: each file is reopened in the new reader on its next use, so
the other open files stay browsable after one of them crashed a reader.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.core.nodes import FeedSpec
from tensor_inspector.session.answers import (
    CANCELLED,
    CLOSED,
    CRASH,
    DEFAULT_KEEP_BYTES,
    Compared,
    Failure,
    FileInfo,
    Saved,
    SessionFailure,
    TraceReport,
    Value,
)
from tensor_inspector.session.reader_process import ReaderProcess, ReaderRestarted

COMPARE_PART_S = 0.5  # a comparison answers at least this often: progress, and cancel without a kill


@dataclass
class _Record:
    """What the session remembers of an open file, enough to reopen it anywhere."""

    path: Path
    trusted: bool
    signature: str | None  # taken at the first open; saving in place compares it
    reader: ReaderProcess | None = None
    child_handle: int | None = None
    generation: int = 0
    reopening: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class IsolatedSession:
    """Same operations as ``LocalSession``, served by reader processes."""

    def __init__(self, sandbox: bool | None = None, memory_limit: int | None = None) -> None:
        if sandbox is None:  # TENSOR_INSPECTOR_SANDBOX=0 turns it off, for diagnosing a platform
            sandbox = os.environ.get("TENSOR_INSPECTOR_SANDBOX", "1") != "0"
        self.untrusted_reader = ReaderProcess(sandboxed=sandbox, memory_limit=memory_limit)
        self.trusted_reader = ReaderProcess(sandboxed=False, memory_limit=memory_limit)
        self._records: dict[int, _Record] = {}
        self._handles = itertools.count(1)
        self._lock = threading.RLock()

    # -- opening and closing ----------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> FileInfo:
        path = Path(path)
        reader = self._reader_for(trust)
        info: FileInfo
        signature: str | None
        info, signature = reader.call("open", str(path), trust, what=path.name)
        with self._lock:
            handle = next(self._handles)
            self._records[handle] = _Record(path, trust, signature, reader, info.handle, reader.generation)
        return dataclasses.replace(info, handle=handle)

    def close(self, handle: int) -> None:
        """Forget ``handle``; a read of it still running is cancelled."""
        with self._lock:
            record = self._records.pop(handle, None)
        if record is None or record.reader is None:
            return
        record.reader.cancel(tag=handle)
        if record.child_handle is not None:
            self._close_in(record.reader, record.child_handle, record.generation, record.path.name)

    def close_all(self) -> None:
        for handle in self.handles():
            self.close(handle)

    def shutdown(self) -> None:
        """Stop both readers (open files are forgotten)."""
        with self._lock:
            self._records.clear()
        for reader in (self.untrusted_reader, self.trusted_reader):
            reader.cancel()
            reader.stop()

    def warm_up(self) -> None:
        """Start the reader for untrusted files ahead of the first request."""
        self.untrusted_reader.warm_up()

    def handles(self) -> list[int]:
        with self._lock:
            return list(self._records)

    def info(self, handle: int) -> tuple[Path, bool]:
        """The path and trust of an open file."""
        record = self._record(handle)
        return record.path, record.trusted

    # -- values -----------------------------------------------------------------------
    def feed_specs(self, handle: int, node_id: str | None = None) -> list[FeedSpec]:
        specs: list[FeedSpec] = self._call_with_file(handle, "feed_specs", node_id)
        return specs

    def value(
        self,
        handle: int,
        node_id: str,
        index: tuple[int | slice, ...] | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
    ) -> Value:
        """A node's value. ``trust``: move the file to the trusted reader first."""
        if trust:
            self._trust(handle)
        given = dict(feeds) if feeds else None
        value: Value = self._call_with_file(handle, "value", node_id, index, given, cancel=cancel)
        return dataclasses.replace(value, handle=handle)

    def trace(
        self,
        handle: int,
        entry: str | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        keep_bytes: int | None = None,
        trust: bool = False,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TraceReport:
        """``LocalSession.trace`` in the reader, reporting ``progress(done, total)`` nodes.

        The kept values stay in the reader (the report's ``arrays`` is empty): ``value``
        with the trace's feeds answers a traced node from them without running the graph.
        They are held within a quarter of the reader's memory limit, so keeping them never
        gets the reader stopped. ``cancel`` stops the trace between two nodes; a reader
        that does not stop within ``CANCEL_GRACE_S`` is killed.
        """
        if trust:
            self._trust(handle)
        given = dict(feeds) if feeds else None
        keep = DEFAULT_KEEP_BYTES if keep_bytes is None else keep_bytes
        keep = min(keep, self._reader_for(self._record(handle).trusted).memory_limit // 4)
        report: TraceReport = self._call_with_file(
            handle, "trace", entry, given, keep, cancel=cancel, progress=progress
        )
        return report

    def _call_with_file(self, handle: int, method: str, *args: Any, **kwargs: Any) -> Any:
        """``method(child handle, *args)`` in the reader that has the file open.

        A reader restarted between finding the handle and sending the call (a call
        queued before this one crashed it or was cancelled) gets the file reopened and
        the call once more.
        """
        for _attempt in range(3):
            record = self._ready(handle)
            assert record.reader is not None
            try:
                return record.reader.call(
                    method,
                    record.child_handle,
                    *args,
                    what=record.path.name,
                    tag=handle,
                    generation=record.generation,
                    **kwargs,
                )
            except ReaderRestarted:
                continue
        raise SessionFailure(Failure(CRASH, f"The reader kept restarting while reading {record.path.name}."))

    def cancel(self, handle: int | None = None) -> None:
        """Cancel the running call (of ``handle``, when given) in either reader."""
        for reader in (self.untrusted_reader, self.trusted_reader):
            reader.cancel(tag=handle)

    # -- comparing --------------------------------------------------------------------
    def compare_pair(
        self,
        handle_a: int,
        node_a: str,
        handle_b: int,
        node_b: str,
        transform: tuple[int, ...] | None = None,
        atol: float = 0.0,
        rtol: float = 0.0,
        cancel: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Compared:
        """Compare two nodes inside a reader: only the metrics reach this process.

        Both files must be read by one reader: the one they are open in, or, when one
        is trusted and the other not, the trusted reader, where the untrusted file is
        opened for this call still untrusted (allow-lists apply, nothing of it runs), as
        ``save`` does. The reader answers in parts of about ``COMPARE_PART_S``, so
        ``progress(done, total)`` is called and ``cancel`` honoured between parts.
        """
        from tensor_inspector.session.compare import merge_parts

        record_a, record_b = self._ready(handle_a), self._ready(handle_b)
        reader, child_a, child_b = record_a.reader, record_a.child_handle, record_b.child_handle
        guest: tuple[int, int] | None = None  # (handle, generation) opened for this call
        if record_a.reader is not record_b.reader:
            reader = self.trusted_reader
            stranger = record_b if record_a.trusted else record_a
            child = reader.call("open", str(stranger.path), False, what=stranger.path.name)[0].handle
            guest = (child, reader.generation)
            child_a, child_b = (child_a, child) if record_a.trusted else (child, child_b)
        assert reader is not None
        what = f"{record_a.path.name} and {record_b.path.name}"
        try:
            merged: Compared | None = None
            start = 0
            while True:
                part: Compared = reader.call(
                    "compare_pair",
                    child_a,
                    node_a,
                    child_b,
                    node_b,
                    transform,
                    atol,
                    rtol,
                    start=start,
                    budget_s=COMPARE_PART_S,
                    what=what,
                    tag=handle_a,
                    cancel=cancel,
                )
                merged = part if merged is None else merge_parts(merged, part)
                if progress is not None:
                    progress(merged.done, merged.total)
                if part.resume is None:
                    return merged
                if cancel is not None and cancel.is_set():
                    raise SessionFailure(Failure(CANCELLED, "Cancelled."))
                start = part.resume
        finally:
            if guest is not None:
                self._close_in(reader, guest[0], guest[1], what)

    # -- saving -----------------------------------------------------------------------
    def save(self, handle: int, replacements: Mapping[str, np.ndarray], target: str | Path) -> Saved:
        """Write the file with ``replacements`` to ``target`` in the trusted reader (it must write).

        The file is opened there with its own trust (an untrusted file is still loaded
        with the allow-lists, nothing of it runs), and the check for changes on disk
        uses the fingerprint taken when the user first opened it.
        """
        record = self._record(handle)
        target = Path(target)
        writer = self.trusted_reader
        own = self._is_ready(record, writer)
        child: int
        if own and record.child_handle is not None:
            child = record.child_handle
        else:
            child = writer.call("open", str(record.path), record.trusted, what=record.path.name)[0].handle
        saved: Saved
        signature: str | None
        try:
            saved, signature = writer.call(
                "save", child, dict(replacements), str(target), record.signature, what=target.name
            )
        except SessionFailure:
            if not own:
                self._close_in(writer, child, writer.generation, target.name)
            raise
        previous = None if own else (record.reader, record.child_handle, record.generation)
        with self._lock:
            record.path, record.signature = target, signature
            if not own:  # the writer now has the saved file open: keep it only for trusted files
                record.reader, record.child_handle, record.generation = writer, child, writer.generation
        if not own and not record.trusted:
            self._close_in(writer, child, writer.generation, target.name)
            with self._lock:
                record.child_handle = None  # reopened in the sandboxed reader on next use
        if previous is not None and previous[0] is not None and previous[1] is not None:
            self._close_later(previous[0], previous[1], previous[2], target.name)
        return dataclasses.replace(saved, opened=dataclasses.replace(saved.opened, handle=handle))

    # -- internals --------------------------------------------------------------------
    def _reader_for(self, trusted: bool) -> ReaderProcess:
        return self.trusted_reader if trusted else self.untrusted_reader

    def _record(self, handle: int) -> _Record:
        with self._lock:
            record = self._records.get(handle)
        if record is None:
            raise SessionFailure(Failure(CLOSED, "This file has been closed."))
        return record

    def _ready(self, handle: int) -> _Record:
        """The record, its file open in a live reader (reopened after a restart)."""
        record = self._record(handle)
        with record.reopening:  # two threads asking at once reopen it once
            reader = self._reader_for(record.trusted)
            if self._is_ready(record, reader):
                return record
            return self._reopen(handle, record, reader)

    def _reopen(self, handle: int, record: _Record, reader: ReaderProcess) -> _Record:
        info = reader.call("open", str(record.path), record.trusted, what=record.path.name, tag=handle)[0]
        with self._lock:
            record.reader, record.child_handle, record.generation = reader, info.handle, reader.generation
        return record

    def _trust(self, handle: int) -> None:
        record = self._record(handle)
        if record.trusted:
            return
        old_reader, old_child, old_generation = record.reader, record.child_handle, record.generation
        with self._lock:
            record.trusted, record.child_handle = True, None
        if old_reader is not None and old_child is not None:
            self._close_later(old_reader, old_child, old_generation, record.path.name)

    @staticmethod
    def _is_ready(record: _Record, reader: ReaderProcess) -> bool:
        return (
            record.reader is reader
            and record.child_handle is not None
            and record.generation == reader.generation
            and reader.alive()
        )

    def _close_later(self, reader: ReaderProcess, child: int, generation: int, what: str) -> None:
        """Close a stale reader-side handle without waiting for a read running there."""
        threading.Thread(
            target=self._close_in, args=(reader, child, generation, what), daemon=True, name="close-stale"
        ).start()

    @staticmethod
    def _close_in(reader: ReaderProcess, child: int, generation: int, what: str) -> None:
        """Close a reader-side handle, unless that reader has restarted since (nothing open)."""
        if reader.generation != generation or not reader.alive():
            return
        try:
            reader.call("close", child, what=what)
        except SessionFailure:
            pass  # a reader that died meanwhile has nothing open
