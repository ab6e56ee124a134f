"""The session run in this process: opened sources by handle, and every operation on them.

The CLI uses it directly (fast for scripts); the reader process hosts one and serves
the window's requests with it. Callers see handles and plain data (``FileInfo``,
``Value``, ``Saved``); the ``Source`` objects never leave this module.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends import Source
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import FeedSpec, Node, NodeKind
from tensor_inspector.session.answers import (
    DEFAULT_KEEP_BYTES,
    Compared,
    FileInfo,
    Saved,
    TraceReport,
    Value,
)
from tensor_inspector.session.feeds import same_feed
from tensor_inspector.session.opening import open_source

log = logging.getLogger(__name__)

_PLAIN = (str, int, float, bool, type(None))


class LocalSession:
    """Opens, reads, evaluates, saves and closes files in this process."""

    def __init__(self) -> None:
        self._sources: dict[int, Source] = {}
        # The last trace of each file, with the values it kept: selecting a traced node
        # with the trace's inputs shows the kept value instead of running the graph again.
        self._traces: dict[int, TraceReport] = {}
        self._handles = itertools.count(1)
        self._lock = threading.Lock()

    # -- opening and closing ------------------------------------------------------------
    def open(self, path: str | Path, trust: bool = False) -> FileInfo:
        source = open_source(Path(path), trust=trust)
        with self._lock:
            handle = next(self._handles)
            self._sources[handle] = source
        return describe(handle, source)

    def reopen(self, handle: int, path: str | Path | None = None, trust: bool | None = None) -> FileInfo:
        """Open ``path`` (default: the same file) again under the same handle."""
        old = self._source(handle)
        self._traces.pop(handle, None)  # the file may have changed: its trace no longer holds
        _close_quietly(old)
        source = open_source(Path(path or old.path), trust=old.trusted if trust is None else trust)
        with self._lock:
            self._sources[handle] = source
        return describe(handle, source)

    def close(self, handle: int) -> None:
        with self._lock:
            source = self._sources.pop(handle, None)
            self._traces.pop(handle, None)
        if source is not None:
            _close_quietly(source)

    def close_all(self) -> None:
        for handle in self.handles():
            self.close(handle)

    def handles(self) -> list[int]:
        with self._lock:
            return list(self._sources)

    def signature(self, handle: int) -> str | None:
        """The file's fingerprint taken when it was opened (for ``save``'s change check)."""
        return self._source(handle).opened_signature

    # -- values ---------------------------------------------------------------------
    def feed_specs(self, handle: int, node_id: str | None = None) -> list[FeedSpec]:
        source = self._source(handle)
        with source.lock:
            return list(source.feed_specs(node_id))

    def value(
        self,
        handle: int,
        node_id: str,
        index: tuple[int | slice, ...] | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        trust: bool = False,
    ) -> Value:
        """A node's value: stored tensors are read, graph nodes evaluated.

        Graph inputs the caller does not give keep the file's defaults. ``trust``: the
        user vouched for the file after a TrustRequired; it is reopened trusted first.
        """
        source = self._source(handle)
        if trust and not source.trusted:
            self.reopen(handle, trust=True)
            source = self._source(handle)
        with source.lock:  # feed_specs, default_feeds and get as one framework session
            node = source.node(node_id)
            specs: list[FeedSpec] = []
            used: dict[str, np.ndarray] = {}
            if node.kind is NodeKind.COMPUTED:
                specs = list(source.feed_specs(node_id))
                used = dict(source.default_feeds(node_id))
                if feeds:  # inputs the node does not take are ignored, not errors
                    names = {spec.name for spec in specs} or set(feeds)
                    used.update({k: np.asarray(v) for k, v in feeds.items() if k in names})
                kept = self.kept_value(handle, node_id, used)
                if kept is not None:
                    return Value(handle, node_id, index, kept[index] if index else kept, specs, used)
            value = source.get(node_id, index=index, feeds=used or None)
        return Value(handle, node_id, index, as_array(value), specs, used)

    def kept_value(self, handle: int, node_id: str, feeds: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The value the file's last trace kept for ``node_id``, if it was traced with ``feeds``.

        Inputs the node does not take do not matter; the ones it takes must be equal.
        """
        report = self._traces.get(handle)
        kept = report.arrays.get(node_id) if report is not None else None
        if report is None or kept is None:
            return None
        if all(same_feed(report.feeds.get(name), array) for name, array in feeds.items()):
            return kept
        return None

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
        start: int = 0,
        budget_s: float | None = None,
    ) -> Compared:
        """Compare two nodes value by value, reading both chunk by chunk (``session.compare``).

        ``start``/``budget_s`` answer a long comparison in parts (``Compared.resume``).
        """
        from tensor_inspector.session.compare import compare_nodes, reads_slices

        source_a, source_b = self._source(handle_a), self._source(handle_b)
        a, b = source_a.node(node_a), source_b.node(node_b)
        return compare_nodes(
            a,
            b,
            lambda index: self.value(handle_a, node_a, index=index).array,
            lambda index: self.value(handle_b, node_b, index=index).array,
            reads_slices(source_a.backend_name, a),
            reads_slices(source_b.backend_name, b),
            transform,
            atol,
            rtol,
            start=start,
            budget_s=budget_s,
            progress=progress,
            cancel=cancel,
        )

    def trace(
        self,
        handle: int,
        entry: str | None = None,
        feeds: Mapping[str, np.ndarray] | None = None,
        keep_bytes: int | None = None,
        trust: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> TraceReport:
        """One run of ``entry`` (a signature or program; default the first): every node's
        statistics in execution order, values kept up to ``keep_bytes`` (``session.trace``)."""
        from tensor_inspector.session.trace import trace_source

        source = self._source(handle)
        if trust and not source.trusted:
            self.reopen(handle, trust=True)
            source = self._source(handle)
        keep = DEFAULT_KEEP_BYTES if keep_bytes is None else keep_bytes
        self._traces.pop(handle, None)  # the old trace's values are let go before the new run
        with source.lock:
            report = trace_source(source, entry, feeds, keep, progress, cancel)
        self._traces[handle] = report
        return report

    # -- saving ---------------------------------------------------------------------
    def save(
        self,
        handle: int,
        replacements: Mapping[str, np.ndarray],
        target: str | Path,
        opened_signature: str | None | bool = True,
    ) -> Saved:
        """Write the file with ``replacements`` to ``target`` (atomic, verified), reopen it there.

        ``opened_signature``: True uses the one taken when this session opened the file;
        a string is one taken elsewhere (the reader that first opened it). After a
        failure the file is reopened from its old path so reading goes on, unless the
        save was refused before anything was closed.
        """
        from tensor_inspector.session.saving import ChangedOnDisk, save

        source = self._source(handle)
        target = Path(target)
        signature = source.opened_signature if opened_signature is True else opened_signature
        try:
            report = save(source, replacements, target, opened_signature=signature or None)
        except ChangedOnDisk:
            raise  # refused before anything was closed
        except BaseException:
            try:
                self.reopen(handle, source.path)
            except Exception:  # the save's own error is the one to report
                log.debug("reopening after a failed save failed", exc_info=True)
            raise
        try:
            info = self.reopen(handle, target)
        except InspectorError as exc:
            raise InspectorError(f"{target.name} was saved, but reopening it failed: {exc}") from None
        return Saved(info, report.backup, list(report.verified))

    # -- internals ------------------------------------------------------------------
    def _source(self, handle: int) -> Source:
        with self._lock:
            source = self._sources.get(handle)
        if source is None:
            raise InspectorError("This file has been closed.")
        return source


def describe(handle: int, source: Source) -> FileInfo:
    """The plain-data description of an opened source."""
    metadata = {str(k): str(v) for k, v in getattr(source, "metadata", {}).items()}
    nodes = [_plain_node(node) for node in source.nodes.values()]
    return FileInfo(
        handle,
        Path(source.path),
        str(source.format_name),
        str(source.backend_name),
        bool(source.writable),
        bool(source.trusted),
        nodes,
        metadata,
        bool(getattr(source, "partial_reads", True)),
        [str(entry) for entry in source.trace_entries()],
    )


def _plain_node(node: Node) -> Node:
    """``node`` with metadata reduced to plain values, so it can cross a process boundary."""
    if all(isinstance(v, _PLAIN) for v in node.metadata.values()):
        return node
    metadata = {str(k): _plain(v) for k, v in node.metadata.items()}
    return Node(**{**node.__dict__, "metadata": metadata})


def _plain(value: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):  # e.g. a quantized tensor's "views" and "quantization"
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
        return list(value)
    return str(value)


def as_array(value: object) -> np.ndarray:
    """Backends return arrays; VALUE leaves may give scalars or lists, shown as arrays."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception:  # a value numpy cannot hold is shown as its text
        return np.asarray(str(value))


def _close_quietly(source: Source) -> None:
    try:
        source.close()
    except Exception:  # closing must never hide the error being reported
        log.debug("closing %s failed", source.path, exc_info=True)
