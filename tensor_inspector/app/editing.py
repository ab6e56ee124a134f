"""Unsaved edits of open files: edited copies, undo commands, one undo stack per file.

Stored tensors are often read-only memory maps; the first edit of a node copies its
value (copy-on-first-edit) and from then on the copy is what the app shows and what
Save writes. Every change is a ``QUndoCommand`` on the file's ``QUndoStack``; the
stacks share one ``QUndoGroup`` whose active stack follows the selected file, so
Edit > Undo names the change it undoes ("Undo edit w[0,1]"). Commands hold the
``FileEdits`` object, not a handle, so they stay valid when Save reopens the file.

Which nodes differ from the file on disk is counted per node (+1 on redo, -1 on
undo, reset by Save); when the clean state can no longer be reached every copied
node counts as modified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ml_dtypes
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoGroup, QUndoStack

from tensor_inspector.core.number_format import parse_value, value_kind

EDITABLE_KINDS = ("bool", "int", "float", "lowfloat", "complex")
MAX_UNDO_CELLS = 1_000_000  # one command never keeps more than this many old values per paste
MAX_EDIT_COPY_BYTES = 4 << 30  # the first edit copies the tensor into memory: bounded


def parse_cell(text: str, dtype: np.dtype):
    """A user's text as a scalar of ``dtype``; ValueError with one sentence when it does not fit.

    Floats are rounded the way numpy/ml_dtypes round a float64 (bf16, fp8 included); a
    finite entry that would become inf or NaN in ``dtype`` is refused, not stored.
    """
    dtype = np.dtype(dtype)
    kind = value_kind(dtype)
    name = dtype.name
    raw = text.strip()
    if kind not in EDITABLE_KINDS:
        raise ValueError(f"{name} values cannot be edited.")
    if not raw:
        raise ValueError(f"An empty entry is not a {name} value.")
    if kind == "int":
        try:
            number = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid {name} value (a whole number).") from None
        info = ml_dtypes.iinfo(dtype) if dtype.kind not in "iu" else np.iinfo(dtype)
        if not int(info.min) <= number <= int(info.max):
            raise ValueError(f"{number} is out of range for {name} ({int(info.min)} to {int(info.max)}).")
        return np.array(number).astype(dtype)[()]
    if kind == "bool" and raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{raw!r} is not a valid bool value (use true or false).")
    try:
        with np.errstate(all="ignore"):
            scalar = parse_value(raw, dtype)
    except ValueError:
        example = "1+2j" if kind == "complex" else "1.5, -2e-3, nan or inf"
        raise ValueError(f"{raw!r} is not a valid {name} value (e.g. {example}).") from None
    if kind in ("float", "lowfloat"):
        _check_range(float(raw), float(scalar), raw, name)
    elif kind == "complex":
        z = complex(raw.replace(" ", ""))
        _check_range(z.real, float(scalar.real), raw, name)
        _check_range(z.imag, float(scalar.imag), raw, name)
    return scalar


def _check_range(given: float, stored: float, raw: str, name: str) -> None:
    if math.isnan(stored) and not math.isnan(given):
        raise ValueError(f"{raw} cannot be stored in {name} (it would become nan).")
    if math.isinf(stored) and not math.isinf(given):
        raise ValueError(f"{raw} is out of range for {name} (it would become inf).")


def format_cell_index(node_id: str, index: Sequence[int]) -> str:
    return f"{node_id}[{','.join(str(i) for i in index)}]"


class FileEdits:
    """The edits of one open file: its undo stack, edited copies and per-node change counts."""

    def __init__(self, handle: int, group: QUndoGroup) -> None:
        self.handle = handle
        self.stack = QUndoStack(group)
        self.copies: dict[str, np.ndarray] = {}
        self.changes: dict[str, int] = {}

    def is_modified(self) -> bool:
        return not self.stack.isClean()

    def modified_nodes(self) -> set[str]:
        if self.stack.isClean():
            return set()
        if self.stack.cleanIndex() < 0:  # the saved state was discarded: compare nothing, trust nothing
            return set(self.copies)
        return {node_id for node_id, count in self.changes.items() if count}

    def replacements(self) -> dict[str, np.ndarray]:
        """What Save writes: the edited copy of every node that differs from the file."""
        return {node_id: self.copies[node_id] for node_id in self.modified_nodes() if node_id in self.copies}

    def count(self, node_id: str, delta: int) -> None:
        self.changes[node_id] = self.changes.get(node_id, 0) + delta


class CellsCommand(QUndoCommand):
    """Set some cells of one node's edited copy (one cell typed, or a pasted block)."""

    def __init__(
        self,
        model: EditModel,
        edits: FileEdits,
        node_id: str,
        indices: list[tuple[int, ...]],
        old: np.ndarray,
        new: np.ndarray,
        text: str,
    ) -> None:
        super().__init__(text)
        self.model, self.edits, self.node_id = model, edits, node_id
        self.indices, self.old, self.new = indices, old, new

    def redo(self) -> None:
        self._apply(self.new, +1)

    def undo(self) -> None:
        self._apply(self.old, -1)

    def _apply(self, values: np.ndarray, delta: int) -> None:
        array = self.edits.copies[self.node_id]
        if array.ndim == 0:
            array[()] = values[-1]
        else:
            array[tuple(np.array(axis) for axis in zip(*self.indices))] = values
        self.edits.count(self.node_id, delta)
        self.model.changed.emit(self.edits.handle, self.node_id)


class ReplaceCommand(QUndoCommand):
    """Replace a node's whole value (Replace from .npy); undo restores the previous copy or the file's."""

    def __init__(self, model: EditModel, edits: FileEdits, node_id: str, new: np.ndarray, text: str) -> None:
        super().__init__(text)
        self.model, self.edits, self.node_id = model, edits, node_id
        self.old: np.ndarray | None = edits.copies.get(node_id)
        self.new = new

    def redo(self) -> None:
        self.edits.copies[self.node_id] = self.new
        self.edits.count(self.node_id, +1)
        self.model.changed.emit(self.edits.handle, self.node_id)

    def undo(self) -> None:
        if self.old is None:
            self.edits.copies.pop(self.node_id, None)  # back to the value in the file
        else:
            self.edits.copies[self.node_id] = self.old
        self.edits.count(self.node_id, -1)
        self.model.changed.emit(self.edits.handle, self.node_id)


class EditModel(QObject):
    """Edits of every open file, one undo group; no widgets (the window shows what changes)."""

    changed = Signal(int, str)  # handle, node id: a value changed (edit, replace, undo, redo)
    state_changed = Signal(int)  # handle: its modified state or undo position changed

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.group = QUndoGroup(self)
        self._files: dict[int, FileEdits] = {}
        self.locked = False  # True while a save runs: its arrays must not change under it
        self._active: int | None = None

    # -- files ------------------------------------------------------------------------------
    def file(self, handle: int) -> FileEdits:
        edits = self._files.get(handle)
        if edits is None:
            edits = FileEdits(handle, self.group)
            # bound slots (not lambdas): Qt drops them when this object goes away
            edits.stack.cleanChanged.connect(self._on_stack_changed)
            edits.stack.indexChanged.connect(self._on_stack_changed)
            self._files[handle] = edits
            if handle == self._active:
                self.set_active(handle)
        return edits

    def _on_stack_changed(self, *_args) -> None:
        stack = self.sender()
        for edits in list(self._files.values()):
            if edits.stack is stack:
                self.state_changed.emit(edits.handle)

    def remove_file(self, handle: int) -> None:
        edits = self._files.pop(handle, None)
        if edits is not None:
            self.group.removeStack(edits.stack)
            edits.stack.deleteLater()

    def set_active(self, handle: int | None) -> None:
        """Edit > Undo/Redo act on ``handle``'s stack (None, or while locked: nothing)."""
        self._active = handle
        if self.locked or handle is None or handle not in self._files:
            self.group.setActiveStack(None)
        else:
            self.group.setActiveStack(self._files[handle].stack)

    def is_modified(self, handle: int) -> bool:
        edits = self._files.get(handle)
        return edits is not None and edits.is_modified()

    def modified_handles(self) -> list[int]:
        return [h for h, e in self._files.items() if e.is_modified()]

    def modified_nodes(self, handle: int) -> set[str]:
        edits = self._files.get(handle)
        return edits.modified_nodes() if edits is not None else set()

    def copy(self, handle: int, node_id: str) -> np.ndarray | None:
        edits = self._files.get(handle)
        return edits.copies.get(node_id) if edits is not None else None

    def replacements(self, handle: int) -> dict[str, np.ndarray]:
        edits = self._files.get(handle)
        return edits.replacements() if edits is not None else {}

    def mark_saved(self, handle: int) -> None:
        """The file on disk now holds every copy: nothing is modified, undo stays possible."""
        edits = self._files.get(handle)
        if edits is not None:
            edits.changes.clear()
            edits.stack.setClean()
            self.state_changed.emit(handle)

    # -- changes ----------------------------------------------------------------------------
    def edit_cells(
        self, handle: int, node_id: str, shown: np.ndarray, cells: list[tuple[tuple[int, ...], str]]
    ) -> str | None:
        """Parse and apply typed or pasted cells of ``node_id`` (shown as ``shown``) as one command.

        Returns None when applied (or nothing changed), else the sentence saying why not.
        """
        if self.locked:
            return "A save is running; edit again when it has finished."
        if len(cells) > MAX_UNDO_CELLS:
            return f"Too many cells at once ({len(cells):,}; limit {MAX_UNDO_CELLS:,})."
        values = []
        for _number, (index, text) in enumerate(cells):
            try:
                values.append(parse_cell(text, shown.dtype))
            except ValueError as exc:
                where = format_cell_index(node_id, index)
                prefix = "Paste rejected" if len(cells) > 1 else "Edit rejected"
                return f"{prefix}: {where}: {exc}"
        edits = self.file(handle)
        array = edits.copies.get(node_id)
        if array is None:
            if shown.nbytes > MAX_EDIT_COPY_BYTES:
                return (
                    f"Edit rejected: {node_id} holds {shown.nbytes / 2**30:.1f} GiB; editing copies "
                    f"the whole tensor into memory, which is limited to "
                    f"{MAX_EDIT_COPY_BYTES / 2**30:.0f} GiB."
                )
            try:
                array = np.array(shown, copy=True)  # copy-on-first-edit: never write into a file's map
            except MemoryError:
                return f"Edit rejected: not enough memory to copy {node_id} for editing."
            edits.copies[node_id] = array
        indices = [tuple(int(i) for i in index) for index, _ in cells]
        old = np.array([array[i] for i in indices], dtype=array.dtype)
        new = np.array(values, dtype=array.dtype)
        if old.tobytes() == new.tobytes():
            self.changed.emit(handle, node_id)  # the copy may be new: show it
            return None
        if len(cells) == 1:
            text = f"edit {format_cell_index(node_id, indices[0])}"
        else:
            text = f"paste {len(cells)} values into {node_id}"
        edits.stack.push(CellsCommand(self, edits, node_id, indices, old, new, text))
        return None

    def replace(self, handle: int, node_id: str, value: np.ndarray) -> str | None:
        """Replace ``node_id``'s whole value (already checked for shape and dtype) as one command."""
        if self.locked:
            return "A save is running; replace the value when it has finished."
        edits = self.file(handle)
        edits.stack.push(
            ReplaceCommand(self, edits, node_id, np.array(value, copy=True), f"replace {node_id}")
        )
        return None
