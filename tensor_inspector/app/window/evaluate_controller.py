"""What the view shows: the selected node's value, read or evaluated in the background.

The latest selection wins: each request has an id and an answer for an older one is
dropped. A node with an edited copy is shown from the copy, never read again. Graph
nodes show the feeds panel; the inputs chosen there stay with the document. A slow
read shows a busy strip after a short delay, with Cancel. A failure (a read error,
an untrusted graph, a reader process that crashed or was killed) is one sentence in
the view; the next selection is served as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QStatusBar

from tensor_inspector.app.dialogs.export_dialog import ViewChoice
from tensor_inspector.app.documents import Document, Documents
from tensor_inspector.app.views.feeds_panel import FeedsPanel
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.actions import BusyIndicator
from tensor_inspector.app.window.inputs_controller import InputsController
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.core.nodes import Index, Node, NodeKind
from tensor_inspector.core.sampling import preview_index, sampling_of
from tensor_inspector.core.text import format_shape
from tensor_inspector.session.answers import Value

if TYPE_CHECKING:
    from tensor_inspector.app.views.array_view import ArrayView

BUSY_DELAY_MS = 200  # fast reads never flash a "Loading" message
QUANTIZATION_FIELDS = (
    ("scale", "scale"),
    ("zero_point", "zero point"),
    ("axis", "axis"),
    ("block_size", "block"),
    ("scale_tensor", "scales in"),
)


def quantization_text(info: Mapping[str, Any]) -> str:
    """``scheme, scale …, zero point …, axis …, block …`` of a quantized tensor, compactly."""
    parts = [str(info.get("scheme", "quantized"))]
    for key, label in QUANTIZATION_FIELDS:
        if key not in info or info[key] is None:
            continue
        value = info[key]
        if isinstance(value, list):
            shown = ", ".join(_number(v) for v in value[:4])
            text = f"[{shown}{', …' if len(value) > 4 else ''}]"
            if len(value) > 4:
                text += f" ({len(value)}{'+' if len(value) >= 64 else ''})"
        else:
            text = _number(value)
        parts.append(f"{label} {text}")
    return ", ".join(parts)


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def node_details(node: Node) -> str:
    """A compact line of what the format says about ``node`` (shown under the view's title)."""
    parts = [f"{node.kind.value}"]
    if node.framework_dtype and node.framework_dtype != node.dtype:
        parts.append(f"stored as {node.framework_dtype}")
    info = node.metadata.get("quantization")
    if isinstance(info, Mapping):
        parts.append(f"quantization: {quantization_text(info)}")
    for key, value in node.metadata.items():
        if key in ("quantization", "views", "view"):  # said above, and by the Raw/Dequantized toggle
            continue
        text = value if isinstance(value, str) else repr(value)
        if key == "type" and text == node.framework_dtype:
            continue  # already said by "stored as"
        parts.append(f"{key}: {text if len(text) <= 80 else text[:77] + '…'}")
    return "  ·  ".join(parts[:12])


def describe_selection(document: Document | None, node: Node | None, children: int) -> str:
    """The view's text for a selection without a value: a file's root or a group."""
    if node is None:
        if document is None:
            return "Select a tensor."
        metadata = list(document.info.metadata.items())[:20]
        about = "".join(f"\n{key}: {value[:200]}" for key, value in metadata)
        return (
            f"{document.name}\n{document.format_name} · {document.value_count()} values\n{about}"
            "\n\nSelect a tensor in the tree."
        )
    what = "a signature" if node.kind is NodeKind.SIGNATURE else "a group"
    return f"{node.id}\n{what} of {children} entries\n\nSelect one of its tensors."


class EvaluateController(QObject):
    """Selection -> request -> value in the view; ``value_displayed`` lets editing configure the table."""

    value_displayed = Signal(int, object, object)  # handle, Node, array now in the view
    value_shown = Signal(str)  # node id whose value is now in the view
    value_failed = Signal(str)  # message
    state_changed = Signal()  # what is shown or pending changed (actions follow it)

    def __init__(
        self,
        parent: QObject,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        view: Callable[[], ArrayView],
        feeds_panel: FeedsPanel,
        busy: BusyIndicator,
        status: QStatusBar,
        ask_trust: Callable[[Path, TrustRequired], bool],
    ) -> None:
        super().__init__(parent)
        self.documents, self.worker, self.tree, self.view = documents, worker, tree, view
        self.feeds_panel, self.busy, self.status, self.ask_trust = feeds_panel, busy, status, ask_trust
        self.auto_select = True  # select the first value of a file opened into an empty view
        self._rid: int | None = None
        self._pending: tuple[int, Node] | None = None  # what is being read
        self._shown: tuple[int, str] | None = None  # (handle, node id) in the view
        self._busy_timer = QTimer(self)
        self._busy_timer.setSingleShot(True)
        self._busy_timer.setInterval(BUSY_DELAY_MS)
        self._busy_timer.timeout.connect(self.show_busy)
        self._toggle_of: object | None = None  # the Raw/Dequantized toggle connected to this
        self._trust_next = False  # the user vouched for the file: the next evaluation is trusted
        self.inputs = InputsController(self, documents, worker, tree, feeds_panel, self._evaluate_now)

        worker.result.connect(self._on_result)
        worker.failed.connect(self._on_failed)
        worker.trust_needed.connect(self._on_trust_needed)
        worker.busy_changed.connect(self._on_busy_changed)
        tree.node_selected.connect(self.on_selection)
        documents.document_added.connect(self._on_document_added)
        documents.document_removed.connect(self._on_document_removed)
        documents.edited.connect(self._on_edited)
        documents.document_changed.connect(self._on_document_changed)

    # -- state ------------------------------------------------------------------------------------
    def shown(self) -> tuple[int, str] | None:
        """(handle, node id) of the value in the view, or None."""
        return self._shown

    def is_idle(self) -> bool:
        return self._pending is None

    def pending_request(self) -> int | None:
        """The id of the request whose answer the view waits for (None: none)."""
        return self._rid

    def is_showing_value(self) -> bool:
        return self._shown is not None or self._pending is not None

    def _set(self, pending: tuple[int, Node] | None, shown: tuple[int, str] | None) -> None:
        self._pending, self._shown = pending, shown
        if pending is None:
            self._rid = None
        self.state_changed.emit()

    # -- selection --------------------------------------------------------------------------------
    def select_node(self, node_id: str, handle: int | None = None) -> bool:
        """Select ``node_id`` (in ``handle``, else the first open file that has it)."""
        handles = [handle] if handle is not None else self.tree.model.handles_with(node_id)
        return any(self.tree.select(h, node_id) for h in handles)

    def on_selection(self, handle: int, node: Node | None) -> None:
        if node is None or not node.has_value:
            self.worker.cancel()
            self.inputs.cancel()
            self._set(None, None)
            self.inputs.hide()
            item = self.tree.model.item_for(handle, node.id) if node is not None else None
            children = len(item.children) if item is not None else 0
            self.view().show_message(describe_selection(self.documents.get(handle), node, children))
            return
        self.request(handle, node)

    def request(self, handle: int, node: Node, trust: bool = False) -> None:
        """Show ``node``: its edited copy at once, else read or evaluate it with the file's feeds."""
        document = self.documents.get(handle)
        if document is None:
            return
        copy = document.copy(node.id)
        if copy is not None:  # edited: the copy is the value, the file is not read again
            self.worker.cancel()
            self._set(None, self._shown)
            self._display(handle, node, Value(handle, node.id, None, copy))
            return
        # a graph node's inputs are shown before it is evaluated (InputsController calls back
        # _evaluate_now); the answer of an earlier request is not for this one
        if self._pending is not None:
            self.worker.cancel()
        self._set((handle, node), self._shown)
        self._rid = None
        self._trust_next = trust
        self._busy_timer.start()
        self.inputs.prepare(handle, node)
        if node.kind is not NodeKind.COMPUTED:
            self._evaluate_now(handle, node)

    def _evaluate_now(self, handle: int, node: Node) -> None:
        """Read or evaluate ``node`` with the inputs chosen for its file."""
        document = self.documents.get(handle)
        if document is None:
            return
        trust, self._trust_next = self._trust_next or document.trusted, False
        self._set((handle, node), self._shown)
        # a big stored tensor is first read as a strided sample: on screen in ~2 s at any size
        # (unless the format reads a whole tensor for any part of it: then one read is faster)
        self.view().mark_stale(f"Reading {node.id}…")  # the old picture is not shown as current
        first = preview_index(node) if document.info.partial_reads else None
        self._rid = self.worker.evaluate(handle, node.id, first, document.feeds or None, trust=trust)
        self._busy_timer.start()

    def reevaluate(self) -> None:
        """F5: read or evaluate the selected node again."""
        handle, node = self.tree.current()
        if handle is not None and node is not None and node.has_value:
            self.request(handle, node)

    def evaluate_with_panel_feeds(self) -> None:
        """The feeds panel's Evaluate: use its inputs for this file and evaluate at once."""
        self.inputs.apply()

    def cancel(self) -> None:
        """Drop the pending read; the view returns to idle at once."""
        if self._pending is None:
            self.view().cancel_work()  # Esc also stops the view's own reads (whole value, statistics)
            return
        name = self._pending[1].id
        self.worker.cancel()
        self.inputs.cancel()
        self._set(None, None)
        self.view().show_message(f"Cancelled reading {name}.\nSelect it again (or press F5) to retry.")
        self.status.showMessage("Cancelled.", 5000)

    # -- answers ----------------------------------------------------------------------------------
    def _on_result(self, rid: int, value: Value) -> None:
        if rid != self._rid or self._pending is None:
            return
        handle, node = self._pending
        self._set(None, self._shown)
        self._display(handle, node, value)

    def _display(self, handle: int, node: Node, value: Value) -> None:
        document = self.documents.get(handle)
        self._set(self._pending, (handle, node.id))
        view = self.view()
        view.set_array(
            value.array,
            title=f"{document.name} › {node.id}" if document else node.id,
            sampling=sampling_of(node.shape, value.index),
            fetch=self._reader_of(handle, node.id),
        )
        view.set_details(node_details(node))
        toggle = view.quantized_toggle
        if self._toggle_of is not toggle:  # the view is built on first use
            self._toggle_of = toggle
            toggle.view_chosen.connect(self._show_other_view)
        toggle.set_views(node.metadata.get("views"), node.metadata.get("view"))
        self.inputs.shown_value(handle, node, value.feed_specs, value.feeds)
        self.status.showMessage(
            f"{node.id}: {format_shape(value.array.shape)} {value.array.dtype.name}", 8000
        )
        self.value_displayed.emit(handle, node, value.array)
        self.value_shown.emit(node.id)

    def _show_other_view(self, node_id: str) -> None:
        """Raw / Dequantized: the other view of a quantized tensor is another node of its file."""
        if self._shown is not None:
            self.select_node(node_id, self._shown[0])

    def export_views(self) -> ViewChoice | None:
        """The views of the shown quantized tensor for the export dialog (None: not quantized)."""
        if self._shown is None:
            return None
        handle, node_id = self._shown
        document = self.documents.get(handle)
        node = document.node(node_id) if document else None
        views = node.metadata.get("views") if node is not None else None
        current = node.metadata.get("view") if node is not None else None
        if document is None or not isinstance(views, Mapping) or current not in views:
            return None
        ids = {str(k): str(v) for k, v in views.items()}
        copies = {i: document.copy(i) for i in ids.values()}  # edited codes export as edited
        feeds, session = document.feeds or None, self.worker.session

        def read(view_id: str) -> np.ndarray:  # in a background thread
            copy = copies.get(view_id)
            return copy if copy is not None else session.value(handle, view_id, None, feeds).array

        return ViewChoice(ids, str(current), read)

    def _reader_of(self, handle: int, node_id: str) -> Callable[[Index, threading.Event | None], np.ndarray]:
        """Reads parts of a node for the view (regions as it zooms, the whole behind a sample)."""
        session = self.worker.session

        def read(index: Index, cancel: threading.Event | None = None) -> np.ndarray:
            return session.value(handle, node_id, index, cancel=cancel).array

        return read

    def _on_failed(self, rid: int, message: str) -> None:
        if rid != self._rid or self._pending is None:
            return
        node = self._pending[1]
        self._set(None, None)
        text = f"{node.id}: {message}"
        self.view().show_message(text, error=True)
        self.status.showMessage(text, 15000)
        self.inputs.failed(node, message)
        self.value_failed.emit(message)

    def _on_trust_needed(self, rid: int, error: TrustRequired) -> None:
        """Evaluating needs code from the file to run: ask, then evaluate trusted."""
        if rid != self._rid or self._pending is None:
            return
        handle, node = self._pending
        document = self.documents.get(handle)
        if document is not None and self.ask_trust(document.path, error):
            self.documents.set_trusted(handle)
            self.request(handle, node, trust=True)
            return
        self._on_failed(rid, f"not evaluated: the file is not trusted. {error}")

    def _on_busy_changed(self, busy: bool) -> None:
        if not busy:
            self._busy_timer.stop()
            self.busy.stop()

    def show_busy(self) -> None:
        """What a read taking longer than ``BUSY_DELAY_MS`` shows: its name, a spinner, Cancel."""
        if self._pending is None or not (self.worker.is_busy() or self.inputs.is_fetching()):
            return
        node = self._pending[1]
        kind = "Evaluating" if node.kind is NodeKind.COMPUTED else "Reading"
        self.busy.start(f"{kind} {node.id}…")
        self.view().show_message(f"{kind} {node.id}…")

    def show_notice(self, text: str, error: bool = False) -> None:
        """A sentence for the view that never hides a value being looked at or read."""
        if not self.is_showing_value():
            self.view().show_message(text, error=error)

    # -- documents ------------------------------------------------------------------------------
    def _on_document_added(self, handle: int) -> None:
        if not self.auto_select or self.is_showing_value():
            return
        document = self.documents.get(handle)
        first = next((n for n in document.nodes if n.has_value), None) if document else None
        if first is not None:
            self.tree.select(handle, first.id)

    def _on_document_removed(self, handle: int) -> None:
        if self._pending is not None and self._pending[0] == handle:
            self.worker.cancel()
            self._set(None, self._shown)
        if self._shown is not None and self._shown[0] == handle:
            self._set(self._pending, None)
            self.view().show_message("Select a tensor.")
            self.inputs.hide()

    def _on_document_changed(self, handle: int) -> None:
        """Saved as, or reopened: the view's title names the file as it is called now."""
        document = self.documents.get(handle)
        if document is not None and self._shown is not None and self._shown[0] == handle:
            self.view().set_title(f"{document.name} › {self._shown[1]}")

    def _on_edited(self, handle: int, node_id: str) -> None:
        """A value changed (edit, paste, replace, undo, redo): show it where the user can see it."""
        document = self.documents.get(handle)
        if document is None:
            return
        if self._shown == (handle, node_id):
            copy = document.copy(node_id)
            if copy is not None:
                self.view().replace_array(copy)
            else:
                self.reevaluate()  # a replace was undone: the file's own value again
        else:
            self.select_node(node_id, handle)
