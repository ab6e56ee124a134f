"""File > Save and Save As, and the "unsaved changes" question on close and quit.

The save itself (session saving: temp file beside the target, fsync, rename, backup,
bit-for-bit verification) runs in the background through the ``Worker``; the window
shows a busy strip and the document refuses edits meanwhile, because the arrays
being written are its live edited copies. Success updates the document (its new
path after Save As, its reopened nodes) and marks its undo stack clean (undo stays
possible); failure, including a reader process that crashed, changes nothing the
user made: the edits and the stack stay as they were.

Questions are attributes (``choose_save_target``, ``ask_unsaved``, ``report_error``)
so tests answer them without a modal loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStatusBar, QWidget

from tensor_inspector.app.documents import Document, Documents
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.actions import BusyIndicator, make_action
from tensor_inspector.app.worker import Worker
from tensor_inspector.session.answers import Saved

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"
SAVE_TIP = "Write the edits into the file (keeps a backup)"
SAVE_AS_TIP = "Write the file with its edits under a new name"


class SaveController(QObject):
    saved = Signal(str)  # path written
    failed = Signal(str)  # message shown

    def __init__(
        self,
        parent: QWidget,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        busy: BusyIndicator,
        status: QStatusBar,
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.documents, self.worker, self.tree, self.busy, self.status = documents, worker, tree, busy, status
        self.choose_save_target: Callable[[Document], Path | None] = self._choose_target_dialog
        self.ask_unsaved: Callable[[list[str]], str] = self._ask_unsaved_dialog
        self.report_error: Callable[[str], None] = self._error_dialog
        self.on_saved_path: Callable[[Path], None] = lambda path: None  # recent files
        self.save_action = make_action(
            parent, "&Save", self.save, QKeySequence.StandardKey.Save, "SP_DialogSaveButton", SAVE_TIP
        )
        self.save_as_action = make_action(
            parent, "Save &As…", self.save_as, "Ctrl+Shift+S", None, SAVE_AS_TIP
        )
        self._rid: int | None = None
        self._saving: tuple[int, Path] | None = None
        self._queue: list[int] = []
        self._after: Callable[[], object] | None = None
        worker.saved.connect(self._on_saved)
        worker.save_failed.connect(self._on_failed)
        self.update_actions(None)

    def is_saving(self) -> bool:
        return self._saving is not None

    # -- actions --------------------------------------------------------------------------------
    def target_document(self, handle: int | None = None) -> Document | None:
        """``handle``'s document, else the selected file's, else the only open file's."""
        if handle is None:
            handle = self.tree.current_handle()
        document = self.documents.get(handle)
        return document if document is not None else self.documents.only()

    def refusal(self, document: Document | None) -> str | None:
        """Why ``document`` cannot be saved now (None: it can)."""
        if document is None:
            return "Select a file to save."
        if not document.writable:
            return f"{document.format_name} files cannot be written back."
        if self.is_saving():
            return "A save is already running."
        return None

    def update_actions(self, handle: int | None) -> None:
        document = self.target_document(handle)
        refusal = self.refusal(document)
        modified = document is not None and document.is_modified()
        self.save_action.setEnabled(refusal is None and modified)
        self.save_as_action.setEnabled(refusal is None)
        for action, tip in ((self.save_action, SAVE_TIP), (self.save_as_action, SAVE_AS_TIP)):
            action.setToolTip(refusal or tip)
            action.setStatusTip(refusal or tip)

    def save(self, handle: int | None = None) -> bool:
        """File > Save: write over the original (the previous version stays as a backup)."""
        document = self.target_document(handle)
        refusal = self.refusal(document)
        if document is None or refusal is not None:
            self.status.showMessage(refusal or "", 8000)
            return False
        if not document.is_modified():
            self.status.showMessage("Nothing to save: the file has no unsaved changes.", 5000)
            return False
        return self._start(document, document.path)

    def save_as(self, handle: int | None = None, target: str | Path | None = None) -> bool:
        """File > Save As: a new file (a new folder for SavedModels, a new prefix for checkpoints)."""
        document = self.target_document(handle)
        refusal = self.refusal(document)
        if document is None or refusal is not None:
            self.status.showMessage(refusal or "", 8000)
            return False
        if target is None:
            target = self.choose_save_target(document)
            if not target:
                return False
        chosen = Path(target).absolute()
        problem = target_problem(document.path, chosen)
        if problem:
            self.status.showMessage(problem, 15000)
            self.failed.emit(problem)
            return False
        return self._start(document, chosen)

    # -- running --------------------------------------------------------------------------------
    def _start(self, document: Document, target: Path) -> bool:
        self._saving = (document.handle, target)
        replacements = document.replacements()
        self.documents.set_saving(document.handle, True)  # the arrays being written must not change
        self.busy.start(f"Saving {target.name}…", cancellable=False)  # a half-done rename cannot stop
        self.status.showMessage(f"Saving {target.name}…")
        self.update_actions(document.handle)
        self._rid = self.worker.save(document.handle, replacements, target)
        return True

    def _finish(self) -> None:
        handle = self._saving[0] if self._saving else None
        self._saving = None
        self._rid = None
        self.busy.stop()
        if handle is not None:
            self.documents.set_saving(handle, False)

    def _on_saved(self, rid: int, outcome: Saved) -> None:
        if rid != self._rid:
            return
        handle = outcome.opened.handle
        self._finish()
        self.documents.update_info(outcome.opened)  # Save As: the document now lives at the target
        self.documents.mark_saved(handle)
        path = Path(outcome.opened.path)
        self.on_saved_path(path)
        backup = f"; the previous version is kept as {outcome.backup.name}" if outcome.backup else ""
        checked = f", {len(outcome.verified)} replaced tensor(s) verified" if outcome.verified else ""
        self.status.showMessage(f"Saved {path.name}{checked}{backup}.", 15000)
        self.update_actions(None)
        self.saved.emit(str(path))
        self._next()

    def _on_failed(self, rid: int, message: str) -> None:
        if rid != self._rid:
            return
        name = self._saving[1].name if self._saving else "the file"
        self._finish()
        self._queue.clear()
        self._after = None  # closing stops: the user must see what failed
        text = f"{name} was not saved: {message} Your edits are kept."
        self.status.showMessage(text, 30000)
        self.update_actions(None)
        self.failed.emit(text)
        self.report_error(text)

    def _next(self) -> None:
        while self._queue:
            document = self.documents.get(self._queue.pop(0))
            if document is not None and document.is_modified():
                self._start(document, document.path)
                return
        after, self._after = self._after, None
        if after is not None:
            after()

    # -- closing --------------------------------------------------------------------------------
    def may_close_file(self, handle: int, then: Callable[[], object]) -> bool:
        """Ask about unsaved edits of ``handle``; False keeps it open (Cancel, or ``then`` after saving)."""
        document = self.documents.get(handle)
        if self._saving is not None and self._saving[0] == handle:
            self.status.showMessage("Wait for the save to finish before closing the file.", 8000)
            return False
        if document is None or not document.is_modified():
            return True
        return self._ask([document], then)

    def may_close_window(self, then: Callable[[], object]) -> bool:
        """Ask about every modified file; False keeps the window open."""
        if self.is_saving():
            self.status.showMessage("Wait for the save to finish before quitting.", 8000)
            return False
        modified = [self.documents[h] for h in self.documents.modified_handles()]
        if not modified:
            return True
        return self._ask(modified, then)

    def _ask(self, documents: list[Document], then: Callable[[], object]) -> bool:
        answer = self.ask_unsaved([document.name for document in documents])
        if answer == DISCARD:
            return True
        if answer == SAVE:
            self._queue = [document.handle for document in documents]
            self._after = then  # runs once every file saved; a failure cancels it
            self._next()
        return False

    # -- dialogs ------------------------------------------------------------------------------
    def _ask_unsaved_dialog(self, names: list[str]) -> str:
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        buttons = QMessageBox.StandardButton
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Unsaved changes",
            f"{listed} {'has' if len(names) == 1 else 'have'} unsaved changes.",
            buttons.Save | buttons.Discard | buttons.Cancel,
            self.parent_widget,
        )
        box.setInformativeText("Save them before closing?")
        box.setDefaultButton(buttons.Save)
        result = box.exec()
        if result == buttons.Save:
            return SAVE
        return DISCARD if result == buttons.Discard else CANCEL

    def _choose_target_dialog(self, document: Document) -> Path | None:
        path, parent = document.path, self.parent_widget
        if path.is_dir():
            chosen = QFileDialog.getExistingDirectory(
                parent, "Save As: choose or create an empty folder for the SavedModel", str(path.parent)
            )
        elif not path.is_file():
            chosen, _ = QFileDialog.getSaveFileName(
                parent, "Save As: a new checkpoint prefix", str(path), "Checkpoint prefix (*)"
            )
        else:
            chosen, _ = QFileDialog.getSaveFileName(
                parent, "Save As", str(path), f"{document.format_name} (*{path.suffix});;All files (*)"
            )
        return Path(chosen) if chosen else None

    def _error_dialog(self, text: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Not saved", text, QMessageBox.StandardButton.Ok, self.parent_widget
        )
        box.open()  # window-modal, never blocks the event loop


def target_problem(source: Path, target: Path) -> str | None:
    """Why ``target`` is not a place to save ``source`` (None: it is)."""
    if target == source.absolute():
        return None
    if source.is_dir():
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            return f"{target.name} is not an empty folder; choose a new or empty folder for the SavedModel."
    elif target.is_dir():
        return f"{target.name} is a folder; choose a file name."
    return None
