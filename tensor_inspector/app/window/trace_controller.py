"""Tools > Trace: run a graph or signature once, mark every node, chart them, find the first NaN.

The selected node picks what is traced: the graph or signature it is (or is inside),
or the file's default when its root is selected. The trace runs in the session's
reader with the file's current inputs (the ones evaluation uses), reporting nodes done
of total, with Cancel and Esc. Its report marks the tree, fills the trace panel (a
dock below the window) and stays with the document until the file is closed, saved
or reopened. Selecting a traced node is the usual evaluation: with the same inputs,
the reader answers from the values the trace kept instead of running the graph again.

Export writes every kept value into one .npz, fetched one at a time in the background
(``trace_worker.export_activations``); ``choose_export_path`` is replaceable so tests
never block on a file dialog.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QStatusBar

from tensor_inspector.app.documents import Documents
from tensor_inspector.app.trace_worker import TraceWorker
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.actions import make_action
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.core.nodes import Node, NodeKind
from tensor_inspector.session.answers import TraceReport
from tensor_inspector.session.feeds import same_feed

if TYPE_CHECKING:
    from tensor_inspector.app.views.trace_view import TraceView

INPUTS_CHANGED = (
    "The inputs changed since this trace: values shown now are computed with the new inputs; "
    "trace again (Ctrl+Shift+T) to update the marks and the chart."
)
TRACE_TIP = "Run the selected graph or signature once: every node's range, and the first NaN/Inf"
DOCK_HEIGHT = 300


def entry_of(entries: list[str], node: Node | None, nested: bool = True) -> str | None:
    """The trace entry ``node`` is or belongs to (a file root: the default entry), or None.

    ``nested``: the file lists its graph nodes under their entry (SavedModel signatures,
    programs). Where it does not (ONNX, Keras, TFLite list values at the top), every
    graph node belongs to the default entry.
    """
    if not entries:
        return None
    if node is None:
        return entries[0]
    found = next((e for e in entries if node.id == e or node.id.startswith(e + "/")), None)
    if found is None and not nested and node.kind is NodeKind.COMPUTED:
        return entries[0]
    return found


def same_inputs(traced: Mapping[str, np.ndarray], chosen: Mapping[str, np.ndarray]) -> bool:
    """Whether the inputs chosen now are the ones the trace ran with (others do not take part)."""
    return all(same_feed(traced[name], np.asarray(value)) for name, value in chosen.items() if name in traced)


def trace_summary(report: TraceReport) -> str:
    """One sentence for the status bar."""
    count = f"{len(report.nodes)} nodes traced in {report.entry}"
    if report.first_nonfinite is None:
        bad = sum(1 for n in report.nodes if not n.finite)
        return f"{count}; {'NaN or Inf only from inputs outside the trace' if bad else 'no NaN or Inf'}."
    op = report.node(report.first_nonfinite).op
    return f"{count}; first NaN/Inf produced by {report.first_nonfinite} (op {op})."


class TraceController(QObject):
    """Starts, cancels and shows traces and activation exports; owns the trace panel."""

    traced = Signal(int)  # handle whose trace is now marked and charted
    stopped = Signal(str)  # a trace ended without a report: the sentence shown
    exported = Signal(str)  # path of the archive written
    export_stopped = Signal(str)  # an export ended without a file: the sentence shown

    def __init__(
        self,
        window: QMainWindow,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        select: Callable[[str, int], bool],
        status: QStatusBar,
        ask_trust: Callable[[Path, TrustRequired], bool],
    ) -> None:
        super().__init__(window)
        self.window, self.documents, self.tree, self.select = window, documents, tree, select
        self.status, self.ask_trust = status, ask_trust
        self.worker = TraceWorker(worker.session, self)
        self.worker.progress.connect(self._on_progress)
        self.worker.traced.connect(self._on_traced)
        self.worker.exported.connect(self._on_exported)
        self.worker.failed.connect(self._on_failed)
        self.worker.trust_needed.connect(self._on_trust_needed)
        self.worker.cancelled.connect(lambda rid: self._on_cancelled(rid))
        # (Ctrl+T transposes the table)
        self.trace_action = make_action(
            window, "&Trace", self.trace_selected, "Ctrl+Shift+T", None, TRACE_TIP
        )
        self.panel_action = make_action(
            window, "Trace &Results", self.show_panel, None, None, "Show the trace panel"
        )
        # asked for the archive's path (given a suggestion); tests answer directly
        self.choose_export_path: Callable[[Path], Path | None] = self._ask_export_path
        self._view: TraceView | None = None
        self.dock: QDockWidget | None = None
        self._rid: int | None = None
        self._running: tuple[str, int, str] | None = None  # ("trace" | "export", handle, entry or path)
        self._shown: int | None = None  # the handle whose trace is in the panel
        # per file: whether its graph nodes are listed under their trace entry (see entry_of)
        self._nested: dict[int, tuple[object, bool]] = {}
        tree.trace_entry = lambda handle, node: self.entry_for(handle, node)
        tree.trace_requested.connect(lambda handle, node: self.trace(handle, self.entry_for(handle, node)))
        tree.node_selected.connect(self._on_node_selected)
        documents.document_added.connect(lambda _handle: self.update_action())
        documents.document_removed.connect(self._on_removed)
        documents.document_changed.connect(self._on_changed)
        documents.feeds_changed.connect(self._on_feeds_changed)
        self.update_action()

    # -- the panel -------------------------------------------------------------------------------
    @property
    def view(self) -> TraceView:
        """The trace panel, in a dock below the window; built (pyqtgraph loads) on first use."""
        if self._view is None:
            from tensor_inspector.app.views.trace_view import TraceView

            view = TraceView()
            view.node_clicked.connect(self._on_chart_clicked)
            view.go_first_requested.connect(self.go_to_first)
            view.export_requested.connect(self.export)
            view.cancel_requested.connect(self.cancel)
            dock = QDockWidget("Trace", self.window)
            dock.setObjectName("trace_dock")  # saveState needs a name
            dock.setWidget(view)
            self.window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            self.window.restoreDockWidget(dock)
            self.window.resizeDocks([dock], [DOCK_HEIGHT], Qt.Orientation.Vertical)
            self._view, self.dock = view, dock
        return self._view

    def show_panel(self) -> None:
        self.view  # noqa: B018 (builds the dock)
        assert self.dock is not None
        self.dock.show()
        self.dock.raise_()

    # -- what can be traced ------------------------------------------------------------------------
    def entry_for(self, handle: int | None, node: Node | None) -> str | None:
        document = self.documents.get(handle)
        if handle is None or document is None:
            return None
        entries = list(document.info.trace_entries)
        known = self._nested.get(handle)
        if known is None or known[0] is not document.info:  # once per (re)opened file
            nested = any(n.id.startswith(e + "/") for n in document.info.nodes for e in entries)
            known = self._nested[handle] = (document.info, nested)
        return entry_of(entries, node, known[1])

    def _target(self) -> tuple[int, str] | None:
        """(handle, entry) that Trace runs for the current selection (or the only open file)."""
        handle, node = self.tree.current()
        if handle is None:
            only = self.documents.only()
            handle, node = (only.handle, None) if only is not None else (None, None)
        entry = self.entry_for(handle, node)
        return (handle, entry) if handle is not None and entry is not None else None

    def update_action(self) -> None:
        target = self._target()
        self.trace_action.setEnabled(target is not None)
        name = target[1].replace("&", "&&") if target is not None else ""
        self.trace_action.setText(f"&Trace {name}" if name else "&Trace")

    # -- tracing -------------------------------------------------------------------------------------
    def trace_selected(self) -> None:
        """Ctrl+Shift+T: trace what the selection belongs to."""
        target = self._target()
        if target is None:
            self.status.showMessage("Select a graph or signature (or a node of one) to trace it.", 8000)
            return
        self.trace(*target)

    def trace(self, handle: int, entry: str | None, trust: bool = False) -> int | None:
        """Trace ``entry`` of ``handle`` with the file's inputs; a running trace or export stops."""
        document = self.documents.get(handle)
        if document is None or entry is None:
            return None
        self._forget_running()
        self._clear_trace(handle)
        self.show_panel()
        self._shown = handle
        self._running = ("trace", handle, entry)
        self.view.start(f"{entry} of {document.name}")
        self.status.showMessage(f"Tracing {entry}…")
        trust = trust or document.trusted
        self._rid = self.worker.trace(handle, entry, document.feeds or None, trust=trust)
        return self._rid

    def is_running(self) -> bool:
        return self._running is not None

    def cancel(self) -> None:
        """Cancel or Esc: the window is idle at once; the reader stops between two nodes."""
        running = self._running
        if running is None:
            return
        self._forget_running()
        if running[0] == "trace":
            self._stop_trace("Trace cancelled.")
        else:
            self._stop_export("Export cancelled; nothing was written.")

    def _forget_running(self) -> None:
        """Drop the running job's answer (it is cancelled in the reader)."""
        if self._running is not None:
            self.worker.cancel()
        self._rid, self._running = None, None

    # -- answers ---------------------------------------------------------------------------------------
    def _current(self, rid: int) -> tuple[str, int, str] | None:
        return self._running if rid == self._rid else None

    def _on_progress(self, rid: int, done: int, total: int) -> None:
        running = self._current(rid)
        if running is None:
            return
        kind, _handle, what = running
        if kind == "trace":
            text = f"{done} / {total} nodes"
            self.status.showMessage(f"Tracing {what}: {text}")
        else:
            text = f"Exporting {done} / {total} values"
            self.status.showMessage(f"{text} to {Path(what).name}")
        self.view.show_progress(done, total, text)

    def _on_traced(self, rid: int, report: TraceReport) -> None:
        running = self._current(rid)
        if running is None:
            return
        self._rid, self._running = None, None
        handle = running[1]
        document = self.documents.get(handle)
        if document is None:
            return
        document.trace = report
        self.tree.show_trace(handle, report.nodes, report.first_nonfinite)
        self.view.show_report(report, f"{report.entry} of {document.name}")
        current_handle, node = self.tree.current()
        self.view.set_selected(node.id if node is not None and current_handle == handle else None)
        self.status.showMessage(trace_summary(report), 15000)
        self.update_action()
        self.traced.emit(handle)

    def _on_trust_needed(self, rid: int, error: TrustRequired) -> None:
        running = self._current(rid)
        if running is None:
            return
        self._rid, self._running = None, None
        _, handle, entry = running
        document = self.documents.get(handle)
        if document is not None and self.ask_trust(document.path, error):
            self.documents.set_trusted(handle)
            self.trace(handle, entry, trust=True)
            return
        self._stop_trace(f"{entry} was not traced: the file is not trusted. {error}", error=True)

    def _on_failed(self, rid: int, message: str) -> None:
        running = self._current(rid)
        if running is None:
            return
        self._rid, self._running = None, None
        if running[0] == "trace":
            self._stop_trace(f"Tracing {running[2]} failed: {message}", error=True)
        else:
            self._stop_export(f"Export failed: {message}")

    def _on_cancelled(self, rid: int) -> None:
        """The job stopped by itself as cancelled (the window's own cancel answered already)."""
        running = self._current(rid)
        if running is None:
            return
        self._rid, self._running = None, None
        if running[0] == "trace":
            self._stop_trace("Trace cancelled.")
        else:
            self._stop_export("Export cancelled; nothing was written.")

    def _stop_trace(self, text: str, error: bool = False) -> None:
        self.view.show_stopped(text, error=error)
        self.status.showMessage(text, 15000)
        self.update_action()
        self.stopped.emit(text)

    # -- going to nodes ----------------------------------------------------------------------------------
    def go_to_first(self) -> bool:
        """Select the node that first produced NaN/Inf (the tree shows it, the view evaluates it)."""
        document = self.documents.get(self._shown)
        report = document.trace if document is not None else None
        if document is None or report is None or report.first_nonfinite is None:
            return False
        return self.select(report.first_nonfinite, document.handle)

    def _on_chart_clicked(self, node_id: str) -> None:
        if self._shown is not None:
            self.select(node_id, self._shown)

    def _on_node_selected(self, handle: int, node: Node | None) -> None:
        self.update_action()
        if self._view is not None and handle == self._shown and not self.is_running():
            self._view.set_selected(node.id if node is not None else None)

    # -- export -------------------------------------------------------------------------------------------
    def export(self) -> int | None:
        """Export .npz…: every kept value of the shown trace into one archive the user names."""
        document = self.documents.get(self._shown)
        report = document.trace if document is not None else None
        if document is None or report is None or self.is_running():
            return None
        kept = [n.id for n in report.nodes if n.kept]
        if not kept:
            self.status.showMessage(
                "The trace kept no values (over the memory budget): nothing to export.", 8000
            )
            return None
        entry = re.sub(r"[^A-Za-z0-9_.-]+", "_", report.entry)
        path = self.choose_export_path(document.path.parent / f"{document.path.stem}_{entry}_activations.npz")
        if path is None:
            return None
        path = Path(path)
        if path.suffix.lower() != ".npz":
            path = path.with_name(path.name + ".npz")
        self._running = ("export", document.handle, str(path))
        self.view.start_export(len(kept))
        self.status.showMessage(f"Exporting {len(kept)} values to {path.name}…")
        self._rid = self.worker.export(document.handle, kept, report.feeds, path)
        return self._rid

    def _on_exported(self, rid: int, path: str) -> None:
        if self._current(rid) is None:
            return
        self._rid, self._running = None, None
        self.view.end_export()
        self.status.showMessage(f"Exported the kept activations to {path}.", 10000)
        self.exported.emit(path)

    def _stop_export(self, text: str) -> None:
        self.view.end_export()
        self.status.showMessage(text, 15000)
        self.export_stopped.emit(text)

    def _ask_export_path(self, suggested: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export kept activations", str(suggested), "NumPy archive (*.npz)"
        )
        return Path(path) if path else None

    # -- files that go away or change ----------------------------------------------------------------------
    def _clear_trace(self, handle: int) -> None:
        document = self.documents.get(handle)
        if document is not None:
            document.trace = None
        self.tree.clear_trace(handle)

    def _on_removed(self, handle: int) -> None:
        self.tree.clear_trace(handle)
        self._nested.pop(handle, None)
        if self._running is not None and self._running[1] == handle:
            self._forget_running()
        if self._shown == handle:
            self._shown = None
            if self._view is not None:
                self._view.clear("The traced file was closed.")
        self.update_action()

    def _on_changed(self, handle: int) -> None:
        """Saved or reopened: the file may differ from what was traced."""
        self._clear_trace(handle)
        if self._running is not None and self._running[1] == handle:
            self._forget_running()
        if self._shown == handle and self._view is not None:
            self._view.clear("The file was saved since it was traced: trace it again (Ctrl+Shift+T).")
        self.update_action()

    def _on_feeds_changed(self, handle: int) -> None:
        """New inputs: the marks still describe the trace, which no longer matches the values shown."""
        document = self.documents.get(handle)
        if document is None or document.trace is None or handle != self._shown or self._view is None:
            return
        self._view.set_note("" if same_inputs(document.trace.feeds, document.feeds) else INPUTS_CHANGED)

    def shutdown(self) -> None:
        """The window closes: stop the running job (the session's shutdown frees its thread)."""
        self._rid, self._running = None, None
        self.worker.shutdown()
