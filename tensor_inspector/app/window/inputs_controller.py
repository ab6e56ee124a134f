"""The inputs panel of a selected graph node: shown before evaluating, kept when evaluating fails.

A graph node's inputs (name, dtype, shape from the signature or schema) are asked of
the reader first and shown at once, so a graph whose default inputs fail can still be
given inputs that work. A changed input is evaluated after a short pause, without
pressing Evaluate; the inputs chosen stay with the file, for every node of its graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer

from tensor_inspector.app.documents import Documents
from tensor_inspector.app.views.feeds_panel import FeedsPanel
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.nodes import FeedSpec, Node, NodeKind

DEBOUNCE_MS = 300  # typing "512" evaluates once, after the last key, not three times


class InputsController(QObject):
    """Fetches, shows and applies the inputs of the selected graph node.

    ``evaluate(handle, node)`` is the evaluation controller's request: called once the
    inputs are known (a fetch never delays a node whose inputs were seen before) and
    after the user changed one.
    """

    def __init__(
        self,
        parent: QObject,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        panel: FeedsPanel,
        evaluate: Callable[[int, Node], None],
    ) -> None:
        super().__init__(parent)
        self.documents, self.worker, self.tree, self.panel = documents, worker, tree, panel
        self._evaluate = evaluate
        self._specs: dict[tuple[int, str], list[FeedSpec]] = {}
        self._fetch: tuple[int, int, Node] | None = None  # (request id, handle, node) being asked
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.apply)
        panel.inputs_changed.connect(self._debounce.start)
        panel.evaluate_requested.connect(self.apply)
        worker.feed_specs_ready.connect(self._on_specs)
        worker.feed_specs_failed.connect(self._on_specs_failed)
        documents.document_removed.connect(self._forget)

    def is_fetching(self) -> bool:
        return self._fetch is not None

    # -- selection ------------------------------------------------------------------------------
    def prepare(self, handle: int, node: Node) -> None:
        """Show ``node``'s inputs, then evaluate it: at once when they are known, else once fetched."""
        if self._debounce.isActive():  # a change typed just before this selection is kept for the file
            self._debounce.stop()
            scope = self.panel.scope()
            if isinstance(scope, int):
                self._store(scope)
        if node.kind is not NodeKind.COMPUTED:
            self._fetch = None
            self.hide()
            return
        specs = self._specs.get((handle, node.id))
        if specs is not None:
            self._fetch = None
            self._show(handle, specs)
            self._evaluate(handle, node)
            return
        self._fetch = (self.worker.feed_specs(handle, node.id), handle, node)

    def cancel(self) -> None:
        self._fetch = None
        self._debounce.stop()

    def hide(self) -> None:
        self._debounce.stop()
        self.panel.setVisible(False)

    def _on_specs(self, rid: int, specs: list[FeedSpec]) -> None:
        if self._fetch is None or self._fetch[0] != rid:
            return
        _, handle, node = self._fetch
        self._fetch = None
        self._specs[(handle, node.id)] = list(specs)
        self._show(handle, specs)
        self._evaluate(handle, node)

    def _on_specs_failed(self, rid: int, _message: str) -> None:
        """Evaluate anyway: the evaluation says what is wrong, in the view."""
        if self._fetch is None or self._fetch[0] != rid:
            return
        _, handle, node = self._fetch
        self._fetch = None
        self.hide()
        self._evaluate(handle, node)

    def _show(self, handle: int, specs: list[FeedSpec]) -> None:
        if specs:
            self.panel.set_specs(specs, scope=handle)
        self.panel.setVisible(bool(specs))

    # -- answers --------------------------------------------------------------------------------
    def shown_value(
        self, handle: int, node: Node, specs: list[FeedSpec], used: dict[str, np.ndarray]
    ) -> None:
        """A value is in the view: its inputs stay shown, with what the defaults turned out to be."""
        if node.kind is not NodeKind.COMPUTED:
            self.hide()
            return
        if specs:
            self._specs[(handle, node.id)] = list(specs)
            self.panel.set_specs(specs, used, scope=handle)
        self.panel.setVisible(bool(specs))
        self.panel.show_error("")

    def failed(self, node: Node, message: str) -> None:
        """An evaluation failed: the panel stays, with the reason beside the inputs."""
        if node.kind is NodeKind.COMPUTED and not self.panel.isHidden():
            self.panel.show_error(message)

    # -- user's inputs --------------------------------------------------------------------------
    def apply(self) -> None:
        """Use the panel's inputs for the file and evaluate the selected node with them."""
        self._debounce.stop()
        handle, node = self.tree.current()
        if handle is None or node is None or node.kind is not NodeKind.COMPUTED:
            return
        if self._store(handle):
            self._evaluate(handle, node)

    def _store(self, handle: int) -> bool:
        """Keep the panel's inputs as ``handle``'s feeds; False (and the reason shown) when one is wrong."""
        document = self.documents.get(handle)
        if document is None:
            return False
        try:
            chosen = self.panel.feeds()
        except InspectorError as exc:
            self.panel.show_error(str(exc))
            return False
        self.panel.show_error("")
        # other nodes of the graph may take inputs this one does not: their choices stay
        names = {spec.name for spec in self.panel.specs()}
        feeds = {name: value for name, value in document.feeds.items() if name not in names}
        feeds.update(chosen)
        self.documents.set_feeds(handle, feeds)
        return True

    def _forget(self, handle: int) -> None:
        self._specs = {key: specs for key, specs in self._specs.items() if key[0] != handle}
        if self._fetch is not None and self._fetch[1] == handle:
            self._fetch = None
