"""The backend contract: what every format backend provides, in plain data.

Everything crossing this boundary is plain data (paths, node ids, index tuples,
numpy arrays, dicts), so backends can later move into a worker process without
the GUI noticing. Nothing here imports Qt or a framework.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.core.dtypes import is_float_like, numpy_dtype
from tensor_inspector.core.errors import (
    Cancelled,
    CorruptFile,
    InspectorError,
    MissingFramework,
    NodeNotFound,
    NotEvaluable,
    TrustRequired,
    UnsupportedFormat,
)
from tensor_inspector.core.nodes import FeedSpec, Index, Node, NodeKind, check_shape

# The shared vocabulary is re-exported: backends import everything they need from here.
__all__ = [
    "Backend",
    "Cancelled",
    "CorruptFile",
    "FeedSpec",
    "Index",
    "InspectorError",
    "MissingFramework",
    "Node",
    "NodeKind",
    "NodeNotFound",
    "NotEvaluable",
    "OnNode",
    "Source",
    "TrustRequired",
    "UnsupportedFormat",
    "read_head",
    "seeded_normal",
]

# Called by ``Source.trace`` for each node's output: (node id, op, input node ids, value).
# The value may be released once the call returns: a caller that keeps it copies it.
OnNode = Callable[[str, str, list[str], np.ndarray], None]


class Source:
    """An opened file. Holds only the index/header after ``open``; values on demand.

    Subclasses fill ``self._nodes`` (id -> Node, in file order, parents before
    children) and implement ``_read``; graph formats implement ``_evaluate`` and
    ``feed_specs``; writable formats implement ``_write``.

    Quantized tensors (``backends/quantized.py``) are two nodes of the same kind, one per
    view: ``"raw"`` (the stored codes: int8, uint8 GGUF blocks, float8 before its scale) and
    ``"dequantized"`` (float32 in the logical shape). Both carry
    ``metadata["views"] = {"raw": id, "dequantized": id}`` and ``metadata["view"]`` (which one
    they are), so a viewer toggles by selecting the other id (statistics and export follow);
    the stored one carries ``metadata["quantization"]`` (``scheme`` and, as they apply,
    ``scale``, ``zero_point``, ``axis``, ``block_size``, ``scale_tensor``). The second node is
    a child of the first: ``<id>/dequantized``, or ``<id>/raw`` for GGUF, whose main node
    shows values. A computed dequantized view refuses writes (edit the codes instead).
    """

    backend_name: str = "?"
    format_name: str = "?"
    writable: bool = False
    opened_signature: str | None = None  # set by session.opening (see session.saving)
    trusted: bool = False
    # False when reading part of a tensor costs a whole read (TensorFlow's checkpoint reader):
    # the window then reads big tensors whole at once instead of a sample first.
    partial_reads: bool = True

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metadata: dict[str, Any] = {}  # about the whole file (safetensors __metadata__, ...)
        self._nodes: dict[str, Node] = {}
        self._children: dict[str | None, list[str]] | None = None
        # One framework call at a time per source: TensorFlow graphs/sessions and torch
        # programs are not safe to drive from two threads at once. Callers that combine
        # several calls (feed_specs + get) hold ``lock`` around them.
        self.lock = threading.RLock()

    # -- the tree -----------------------------------------------------------------
    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise NodeNotFound(node_id) from None

    def children(self, parent_id: str | None = None) -> list[Node]:
        """Direct children of ``parent_id`` (None: the top level), in file order."""
        if self._children is None:
            children: dict[str | None, list[str]] = {}
            for node in self._nodes.values():
                children.setdefault(node.parent, []).append(node.id)
            self._children = children
        return [self._nodes[i] for i in self._children.get(parent_id, [])]

    def value_nodes(self) -> list[Node]:
        return [n for n in self._nodes.values() if n.has_value]

    def _add(self, node: Node) -> Node:
        self._nodes[node.id] = node
        self._children = None
        return node

    def _add_with_groups(self, node: Node, sep: str = "/") -> Node:
        """Add ``node`` and any missing ``GROUP`` ancestors implied by its ``/``-joined id."""
        parts = node.id.split(sep)
        parent = None
        for depth in range(1, len(parts)):
            gid = sep.join(parts[:depth])
            if gid not in self._nodes:
                self._add(Node(id=gid, name=parts[depth - 1], kind=NodeKind.GROUP, parent=parent))
            parent = gid
        if node.parent is None and parent is not None:
            node = Node(**{**node.__dict__, "parent": parent, "name": parts[-1]})
        return self._add(node)

    # -- values -------------------------------------------------------------------
    def get(
        self, node_id: str, index: Index | None = None, feeds: Mapping[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """The value of any node: stored tensors are read, computed nodes evaluated."""
        node = self.node(node_id)
        if node.kind is NodeKind.COMPUTED:
            value = self.evaluate(node_id, feeds or {})
            return value[index] if index is not None else value
        return self.read(node_id, index)

    def read(self, node_id: str, index: Index | None = None) -> np.ndarray:
        """A stored value, or ``value[index]`` reading only that part where the format allows."""
        node = self.node(node_id)
        if node.kind is NodeKind.GROUP or node.kind is NodeKind.SIGNATURE:
            raise NotEvaluable(f"{node_id!r} is a group; select one of its tensors.")
        if node.kind is NodeKind.COMPUTED:
            raise NotEvaluable(f"{node_id!r} is computed by the graph; evaluate it with feeds.")
        with self.lock:
            return self._read(node, index)

    def evaluate(self, node_id: str, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run the graph up to ``node_id`` with ``feeds`` (input name -> array)."""
        node = self.node(node_id)
        if node.kind is not NodeKind.COMPUTED:
            return self.read(node_id)
        with self.lock:
            return self._evaluate(node, dict(feeds))

    def feed_specs(self, node_id: str | None = None) -> list[FeedSpec]:
        """Inputs that evaluating ``node_id`` (or anything in the file) may need."""
        return []

    def default_feeds(self, node_id: str | None = None) -> dict[str, np.ndarray]:
        """Feeds used when the user gives none.

        Float inputs get seeded normal values: zeros drive many models to all-zero (or
        all-equal) outputs, which look broken. Integers, bools and strings stay zero, since
        they are usually ids, lengths or flags. Backends that know better (example inputs
        saved with the program, defaults in a schema) override this.
        """
        feeds: dict[str, np.ndarray] = {}
        for spec in self.feed_specs(node_id):
            shape = tuple(1 if d is None else d for d in (spec.shape or ()))
            dtype = numpy_dtype(spec.dtype) if spec.dtype else np.dtype(np.float32)
            if is_float_like(dtype):
                feeds[spec.name] = seeded_normal(spec.name, shape, dtype)
            else:
                feeds[spec.name] = np.zeros(shape, dtype=dtype)
        return feeds

    # -- tracing ------------------------------------------------------------------
    def trace_entries(self) -> list[str]:
        """Node ids of what one run can trace (signatures, programs), the default first."""
        return []

    def trace_size(self, entry: str) -> int:
        """About how many outputs one trace of ``entry`` reports: its progress total.

        The graph nodes listed under ``entry``, else every graph node of the file (formats
        whose entry is not the parent of its nodes). An estimate: branches not taken and
        values a format cannot fetch are counted too.
        """
        prefix = entry + "/"
        computed = [node_id for node_id, node in self.nodes.items() if node.kind is NodeKind.COMPUTED]
        inside = sum(1 for node_id in computed if node_id.startswith(prefix))
        return inside or len(computed)

    def trace(
        self,
        entry: str,
        feeds: Mapping[str, np.ndarray],
        on_node: OnNode,
        cancel: threading.Event | None = None,
    ) -> None:
        """Run ``entry`` once with ``feeds``, calling ``on_node`` for every node's output
        in execution order; ``Cancelled`` when ``cancel`` is set. Backends hold no output
        longer than the graph itself needs it, so memory stays bounded by the caller."""
        raise NotEvaluable(f"Tracing is not supported for {self.format_name} files.")

    # -- writing ------------------------------------------------------------------
    def write(self, path: Path, replacements: Mapping[str, np.ndarray]) -> None:
        """Write a new file at ``path`` in this format with ``replacements`` applied.

        ``path`` is a fresh location (``core.saving`` handles temp files, renames and
        backups); everything not replaced is preserved, untouched tensors byte-identical.
        """
        if not self.writable:
            raise InspectorError(f"Writing {self.format_name} files is not supported.")
        for node_id, value in replacements.items():
            self._check_replacement(self.node(node_id), value)
        with self.lock:
            self._write(Path(path), dict(replacements))

    def stored_form(self, node_id: str, value: np.ndarray) -> np.ndarray:
        """What reading ``node_id`` back gives after ``value`` is written (checked after saving).

        The value itself for formats that store what they are given; a format that encodes
        (quantized blocks written from float values) returns the value encoded and decoded.
        """
        return value

    def _check_replacement(self, node: Node, value: np.ndarray) -> None:
        if node.kind is not NodeKind.TENSOR:
            raise InspectorError(f"{node.id!r} is not a stored tensor and cannot be replaced.")
        check_shape(node, value)
        if node.dtype == "str" and value.dtype.kind in "US":
            return  # string tensors: any width of text fits
        if node.dtype is not None and str(value.dtype) != node.dtype:
            raise InspectorError(
                f"Dtype mismatch for {node.id!r}: the file has {node.dtype}, the new value has {value.dtype}."
            )

    def close(self) -> None:
        """Release file handles and memory maps (required before overwriting the file)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- for subclasses -----------------------------------------------------------
    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        raise NotImplementedError

    def _evaluate(self, node: Node, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotEvaluable(f"{node.id!r} cannot be evaluated by the {self.backend_name} backend.")

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


class Backend:
    """A format family. ``detect`` must not import the framework (read bytes only)."""

    name: str = "?"
    description: str = "?"  # shown in "supported formats" messages
    extensions: tuple[str, ...] = ()
    framework: str | None = None  # importable module name the backend needs, e.g. "torch"
    extra: str | None = None  # pip extra that installs it, e.g. "torch"

    def detect(self, path: Path) -> float:
        """Confidence 0..1 that ``path`` is this format, judged by content."""
        raise NotImplementedError

    def open(self, path: Path, trust: bool = False) -> Source:
        """Open ``path`` reading only metadata. ``trust`` allows code-running loads."""
        raise NotImplementedError

    def framework_available(self) -> bool:
        if self.framework is None:
            return True
        import importlib.util

        return importlib.util.find_spec(self.framework) is not None

    def require_framework(self) -> None:
        if not self.framework_available():
            raise MissingFramework(self.framework or "?", self.extra or "all")


def seeded_normal(name: str, shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> np.ndarray:
    """Standard normal values for input ``name``, the same for every node and every run.

    The input's name joins the seed so two inputs of one shape differ (``a - b`` is not
    all zeros), while one input keeps its value whichever node of the graph is evaluated.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    return rng.standard_normal(shape).astype(dtype)


def read_head(path: Path, size: int = 64) -> bytes:
    """The first ``size`` bytes of a regular file (b"" for directories or unreadable files)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except (IsADirectoryError, PermissionError, FileNotFoundError, OSError):
        return b""
