"""What the session answers: plain frozen data that crosses threads and processes unchanged.

A failure is data too (a kind and one sentence), never a live exception from a backend:
the reader process may have died, and a crafted file must not choose what the window
unpickles.
"""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tensor_inspector.core.compare_metrics import Metrics
from tensor_inspector.core.errors import (
    Cancelled,
    InspectorError,
    TrustRequired,
    first_line,
)
from tensor_inspector.core.nodes import FeedSpec, Node

# Failure kinds. "crash", "memory" and "timeout" mean the reader process was stopped.
ERROR, TRUST, CRASH, MEMORY, TIMEOUT, CANCELLED, CLOSED = (
    "error",
    "trust",
    "crash",
    "memory",
    "timeout",
    "cancelled",
    "closed",
)
READER_STOPPED = (CRASH, MEMORY, TIMEOUT)


@dataclass(frozen=True)
class FileInfo:
    """An opened file as the caller sees it: metadata and the whole node list."""

    handle: int
    path: Path
    format_name: str
    backend_name: str
    writable: bool
    trusted: bool
    nodes: list[Node]
    metadata: dict[str, str] = field(default_factory=dict)
    partial_reads: bool = True  # reading part of a tensor is cheaper than reading it whole
    trace_entries: list[str] = field(default_factory=list)  # what one run can trace, default first


@dataclass(frozen=True)
class Value:
    """A node's value, and for graph nodes the inputs it was computed with."""

    handle: int
    node_id: str
    index: tuple[int | slice, ...] | None
    array: np.ndarray
    feed_specs: list[FeedSpec] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Saved:
    """A finished save: the file reopened from its new content, and where the backup went."""

    opened: FileInfo
    backup: Path | None
    verified: list[str]


@dataclass(frozen=True)
class Compared:
    """Two tensors compared value by value (``session.compare``): A, transposed by
    ``transform`` first, against B.

    ``metrics`` is None when the values cannot be compared, ``note`` says why. A long
    comparison may be answered in parts: ``done`` of ``total`` elements, and ``resume``
    is the chunk to continue from (None when finished).
    """

    a: str
    b: str
    transform: tuple[int, ...] | None
    shape_a: tuple[int | None, ...] | None
    shape_b: tuple[int | None, ...] | None
    dtype_a: str | None
    dtype_b: str | None
    metrics: Metrics | None
    note: str = ""
    done: int = 0
    total: int = 0
    resume: int | None = None


@dataclass(frozen=True)
class TracedNode:
    """One node's output in a trace (``session.trace``): its statistics, not its values.

    Floats are None where undefined (empty, all-NaN, not numeric). ``inputs`` are the
    node ids it reads; ``kept`` says whether its value is in ``TraceReport.arrays``.
    """

    id: str
    op: str
    dtype: str
    shape: tuple[int, ...]
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    nan: int
    inf: int
    zeros: int
    inputs: tuple[str, ...] = ()
    kept: bool = False

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0


# Bytes of values a trace keeps unless told otherwise (the CLI's --keep-mb default). Here,
# not in session.trace, so the window's session reads it without importing the backends.
DEFAULT_KEEP_BYTES = 1024 << 20


@dataclass(frozen=True)
class TraceReport:
    """One run of a graph: every node in execution order, and the first NaN/Inf producer.

    ``first_nonfinite`` is the first node whose output holds NaN or Inf while all its
    traced inputs are finite (None when everything is finite). ``arrays`` holds the values
    kept within the caller's byte budget; the others are re-evaluated on demand.
    """

    entry: str
    nodes: list[TracedNode]
    first_nonfinite: str | None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    kept_bytes: int = 0

    def node(self, node_id: str) -> TracedNode:
        return next(n for n in self.nodes if n.id == node_id)

    def as_json(self) -> dict[str, object]:
        """The ``trace --json`` document (scripts rely on these keys)."""
        first = None
        if self.first_nonfinite is not None:
            first = {"id": self.first_nonfinite, "inputs": list(self.node(self.first_nonfinite).inputs)}
        nodes = [
            {
                "id": n.id,
                "op": n.op,
                "dtype": n.dtype,
                "shape": list(n.shape),
                "min": n.min,
                "max": n.max,
                "mean": n.mean,
                "std": n.std,
                "nan": n.nan,
                "inf": n.inf,
                "zeros": n.zeros,
            }
            for n in self.nodes
        ]
        return {"entry": self.entry, "nodes": nodes, "first_nonfinite": first}


@dataclass(frozen=True)
class Failure:
    """Why a request failed: ``kind`` (one of the constants above) and one sentence.

    ``needs`` lists what a file would import or run, for the trust prompt; ``details``
    the whole story (the framework's full message and the traceback) for ``--debug``.
    """

    kind: str
    message: str
    needs: tuple[str, ...] = ()
    error_type: str = "InspectorError"
    details: str = ""

    def to_exception(self) -> InspectorError:
        """A fresh exception of the matching core type, built from this data."""
        if self.kind == TRUST:
            return TrustRequired(self.message, self.needs)
        if self.kind == CANCELLED:
            return Cancelled()
        return SessionFailure(self)


class SessionFailure(InspectorError):
    """Raised by session calls; ``failure`` holds the data (kind, sentence)."""

    def __init__(self, failure: Failure):
        self.failure = failure
        super().__init__(failure.message)


def failure_of(exc: BaseException) -> Failure:
    """The plain-data form of an exception raised while serving a request."""
    if isinstance(exc, SessionFailure):
        return exc.failure
    failure = _failure_without_details(exc)
    own = getattr(exc, "details", None)
    trace = "".join(traceback.format_exception(exc))
    details = f"{own}\n\n{trace}" if isinstance(own, str) and own else trace
    return dataclasses.replace(failure, details=details)


def _failure_without_details(exc: BaseException) -> Failure:
    if isinstance(exc, TrustRequired):
        return Failure(TRUST, str(exc), tuple(exc.globals_needed), "TrustRequired")
    if isinstance(exc, Cancelled):
        return Failure(CANCELLED, str(exc), (), "Cancelled")
    if isinstance(exc, InspectorError):
        return Failure(ERROR, str(exc), (), type(exc).__name__)
    if isinstance(exc, MemoryError):
        return Failure(MEMORY, "Not enough memory to load this value.", (), "MemoryError")
    if isinstance(exc, RecursionError):
        return Failure(ERROR, "The file is nested too deeply to read.", (), "CorruptFile")
    text = first_line(exc)
    name = type(exc).__name__
    return Failure(ERROR, f"Unexpected error ({name}: {text})." if text else f"Unexpected error ({name}).")
