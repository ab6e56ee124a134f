"""File > Save and Save As, and the "unsaved changes" question on close and quit.

The save itself (``core.saving.save``: temp file beside the target, fsync, rename,
backup, bit-for-bit verification) runs on the worker's pool; the window shows a
busy indicator and accepts no edits meanwhile, because the arrays being written
are the live edited copies. Success reopens the file under the same handle and
marks the undo stack clean (undo stays possible); failure changes nothing the user
made: the edits and the stack stay as they were.

Questions are attributes (``choose_save_target``, ``ask_unsaved``, ``report_error``)
so tests answer them without a modal loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from tensor_inspector.app.editing import EditModel
from tensor_inspector.app.worker import OpenedFile, SaveOutcome

if TYPE_CHECKING:
    from tensor_inspector.app.window.main_window import MainWindow

SAVE, DISCARD, CANCEL = "save", "discard", "cancel"


class SaveFlow(QObject):
    saved = Signal(str)  # path written
    failed = Signal(str)  # message shown

    def __init__(self, window: MainWindow, edits: EditModel) -> None:
        super().__init__(window)
        self.window, self.edits = window, edits
        self.choose_save_target: Callable[[OpenedFile], Path | None] = self._choose_target_dialog
        self.ask_unsaved: Callable[[list[str]], str] = self._ask_unsaved_dialog
        self.report_error: Callable[[str], None] = self._error_dialog
        self.save_action = window._action(
            "&Save",
            self.save,
            QKeySequence.StandardKey.Save,
            "SP_DialogSaveButton",
            "Write the edits into the file (keeps a backup)",
        )
        self.save_as_action = window._action(
            "Save &As…", self.save_as, "Ctrl+Shift+S", None, "Write the file with its edits under a new name"
        )
        self._rid: int | None = None
        self._saving: tuple[int, Path] | None = None
        self._queue: list[int] = []
        self._after: Callable[[], None] | None = None
        window.worker.saved.connect(self._on_saved)
        window.worker.save_failed.connect(self._on_failed)
        self.update_actions(None)

    def is_saving(self) -> bool:
        return self._saving is not None

    # -- actions --------------------------------------------------------------------------------
    def _handle(self, handle: int | bool | None) -> int | None:
        if isinstance(handle, bool):  # QAction.triggered passes "checked"
            handle = None
        if handle is None:
            handle = self.window.tree.current_handle()
        if handle is None and len(self.window.files) == 1:
            handle = next(iter(self.window.files))
        return handle if handle in self.window.files else None

    def refusal(self, handle: int | None) -> str | None:
        """Why ``handle`` cannot be saved now (None: it can)."""
        if handle is None:
            return "Select a file to save."
        opened = self.window.files[handle]
        if not opened.writable:
            return f"{opened.format_name} files cannot be written back."
        if self.is_saving():
            return "A save is already running."
        return None

    def update_actions(self, handle: int | None) -> None:
        handle = self._handle(handle)
        refusal = self.refusal(handle)
        modified = handle is not None and self.edits.is_modified(handle)
        self.save_action.setEnabled(refusal is None and modified)
        self.save_as_action.setEnabled(refusal is None)
        for action, tip in (
            (self.save_action, "Write the edits into the file (keeps a backup)"),
            (self.save_as_action, "Write the file with its edits under a new name"),
        ):
            action.setToolTip(refusal or tip)
            action.setStatusTip(refusal or tip)

    def save(self, handle: int | bool | None = None) -> bool:
        """File > Save: write over the original (the previous version stays as a backup)."""
        handle = self._handle(handle)
        refusal = self.refusal(handle)
        if refusal is not None:
            self.window.statusBar().showMessage(refusal, 8000)
            return False
        if not self.edits.is_modified(handle):
            self.window.statusBar().showMessage("Nothing to save: the file has no unsaved changes.", 5000)
            return False
        return self._start(handle, self.window.files[handle].path)

    def save_as(self, handle: int | bool | None = None, target: str | Path | None = None) -> bool:
        """File > Save As: write a new file (a new folder for SavedModels, a new prefix for checkpoints)."""
        handle = self._handle(handle)
        refusal = self.refusal(handle)
        if refusal is not None:
            self.window.statusBar().showMessage(refusal, 8000)
            return False
        opened = self.window.files[handle]
        if target is None:
            target = self.choose_save_target(opened)
            if not target:
                return False
        target = Path(target).absolute()
        problem = target_problem(opened.path, target)
        if problem:
            self.window.statusBar().showMessage(problem, 15000)
            self.failed.emit(problem)
            return False
        return self._start(handle, target)

    # -- running --------------------------------------------------------------------------------
    def _start(self, handle: int, target: Path) -> bool:
        window = self.window
        replacements = self.edits.replacements(handle)
        self.edits.locked = True  # the arrays being written must not change under the writer
        self.edits.set_active(None)
        self._saving = (handle, target)
        window.busy.start(f"Saving {target.name}…")
        window.busy.cancel_button.setVisible(False)  # a half-done rename cannot be cancelled
        window.statusBar().showMessage(f"Saving {target.name}…")
        self.update_actions(handle)
        window.update_edit_state()
        self._rid = window.worker.save(handle, replacements, target)
        return True

    def _finish(self) -> None:
        self._saving = None
        self._rid = None
        self.edits.locked = False
        self.window.busy.stop()
        self.window.busy.cancel_button.setVisible(True)
        self.edits.set_active(self.window.tree.current_handle())

    def _on_saved(self, rid: int, outcome: SaveOutcome) -> None:
        if rid != self._rid:
            return
        window = self.window
        self._finish()
        opened = outcome.opened
        if opened.handle in window.files:
            window.files[opened.handle] = opened
            window.tree.refresh_file(opened.handle, opened.path, opened.format_name, opened.nodes)
            self.edits.mark_saved(opened.handle)
        window.add_recent(opened.path)
        backup = f"; the previous version is kept as {outcome.backup.name}" if outcome.backup else ""
        checked = f", {len(outcome.verified)} replaced tensor(s) verified" if outcome.verified else ""
        window.statusBar().showMessage(f"Saved {opened.path.name}{checked}{backup}.", 15000)
        window.update_edit_state()
        self.saved.emit(str(opened.path))
        self._next()

    def _on_failed(self, rid: int, message: str) -> None:
        if rid != self._rid:
            return
        name = self._saving[1].name if self._saving else "the file"
        self._finish()
        self._queue.clear()
        self._after = None  # closing stops: the user must see what failed
        text = f"{name} was not saved: {message} Your edits are kept."
        self.window.statusBar().showMessage(text, 30000)
        self.window.update_edit_state()
        self.failed.emit(text)
        self.report_error(text)

    def _next(self) -> None:
        while self._queue:
            handle = self._queue.pop(0)
            if handle in self.window.files and self.edits.is_modified(handle):
                self._start(handle, self.window.files[handle].path)
                return
        after, self._after = self._after, None
        if after is not None:
            after()

    # -- closing --------------------------------------------------------------------------------
    def may_close_file(self, handle: int) -> bool:
        """Ask about unsaved edits of ``handle``; False keeps it open (Cancel, or saving first)."""
        if self._saving is not None and self._saving[0] == handle:
            self.window.statusBar().showMessage("Wait for the save to finish before closing the file.", 8000)
            return False
        if not self.edits.is_modified(handle):
            return True
        return self._ask([handle], lambda: self.window.close_file(handle))

    def may_close_window(self) -> bool:
        """Ask about every modified file; False keeps the window open."""
        if self.is_saving():
            self.window.statusBar().showMessage("Wait for the save to finish before quitting.", 8000)
            return False
        handles = [h for h in self.edits.modified_handles() if h in self.window.files]
        if not handles:
            return True
        return self._ask(handles, self.window.close)

    def _ask(self, handles: list[int], then: Callable[[], None]) -> bool:
        answer = self.ask_unsaved([self.window.files[h].path.name for h in handles])
        if answer == DISCARD:
            return True
        if answer == SAVE:
            self._queue = list(handles)
            self._after = then  # runs once every file saved; a failure cancels it
            self._next()
        return False

    # -- dialogs ------------------------------------------------------------------------------
    def _ask_unsaved_dialog(self, names: list[str]) -> str:
        listed = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Unsaved changes",
            f"{listed} {'has' if len(names) == 1 else 'have'} unsaved changes.",
            QMessageBox.StandardButton.Save
            | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel,
            self.window,
        )
        box.setInformativeText("Save them before closing?")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        result = box.exec()
        if result == QMessageBox.StandardButton.Save:
            return SAVE
        return DISCARD if result == QMessageBox.StandardButton.Discard else CANCEL

    def _choose_target_dialog(self, opened: OpenedFile) -> Path | None:
        path = opened.path
        if path.is_dir():
            chosen = QFileDialog.getExistingDirectory(
                self.window, "Save As: choose or create an empty folder for the SavedModel", str(path.parent)
            )
        elif not path.is_file():
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "Save As: a new checkpoint prefix", str(path), "Checkpoint prefix (*)"
            )
        else:
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "Save As", str(path), f"{opened.format_name} (*{path.suffix});;All files (*)"
            )
        return Path(chosen) if chosen else None

    def _error_dialog(self, text: str) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Not saved", text, QMessageBox.StandardButton.Ok, self.window
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
