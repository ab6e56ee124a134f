"""Opening and closing files: File > Open, Open Folder, Open Recent, drops, the trust question.

Every open runs in the session's reader through the ``Worker``; an opened file
becomes a ``Document`` in the registry (the tree and the other controllers follow
from there). A failure, including a reader process that crashed or was killed, is
one sentence in the status bar and ``open_error``; the files already open stay open
with their edits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtWidgets import QFileDialog, QStatusBar, QWidget

from tensor_inspector.app.documents import Documents
from tensor_inspector.app.views.tree import NodeTree
from tensor_inspector.app.window.settings import add_recent, last_directory
from tensor_inspector.app.worker import Worker
from tensor_inspector.core.errors import TrustRequired
from tensor_inspector.session.answers import Failure, FileInfo, failure_of

TrustPrompt = Callable[[Path, TrustRequired], bool]


def failure_sentence(error: object) -> str:
    """One sentence for whatever the worker reported (an exception, a ``Failure``, a text)."""
    if isinstance(error, Failure):
        return error.message
    if isinstance(error, BaseException):
        return failure_of(error).message
    return str(error) or "Unexpected error."


# What a file's name says about the framework its reader imports first (a guess for the
# "loading …" row only: the reader detects formats by content).
_FRAMEWORK_SUFFIXES = {
    "TensorFlow": (".index", ".pb", ".pbtxt", ".meta", ".tflite"),
    "Keras": (".keras", ".h5", ".hdf5"),
    "PyTorch": (".pt", ".pth", ".pt2", ".ptl", ".bin", ".ckpt", ".tar"),
    "ONNX Runtime": (".onnx",),
}


def opening_text(path: Path) -> str:
    """ "loading TensorFlow…" for a file whose framework the reader imports first, else "opening…"."""
    suffix = path.suffix.lower()
    if path.is_dir():
        tensorflow = (path / "saved_model.pb").exists() or any(path.glob("*.index"))
        return "loading TensorFlow…" if tensorflow else "opening…"
    if suffix.startswith(".data-"):  # a TF checkpoint's data shard
        return "loading TensorFlow…"
    for framework, suffixes in _FRAMEWORK_SUFFIXES.items():
        if suffix in suffixes:
            return f"loading {framework}…"
    return "opening…"


class OpenController(QObject):
    """Turns open requests into documents and closes them again; ``file_opened`` per new document."""

    file_opened = Signal(int)  # handle
    open_error = Signal(str, str)  # path, message

    def __init__(
        self,
        parent: QWidget,
        documents: Documents,
        worker: Worker,
        tree: NodeTree,
        status: QStatusBar,
        ask_trust: TrustPrompt,
    ) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.documents, self.worker, self.tree, self.status = documents, worker, tree, status
        self.ask_trust = ask_trust
        self.persist = True  # False: recent files are not recorded (headless runs, tests)
        # asked before a file closes (unsaved edits); False keeps it open
        self.may_close: Callable[[int], bool] = lambda handle: True
        self._requests: dict[int, tuple[Path, bool]] = {}  # request id -> (path, trust)
        worker.opened.connect(self._on_opened)
        worker.open_failed.connect(self._on_open_failed)
        tree.close_requested.connect(self.close_file)

    # -- opening ------------------------------------------------------------------------------
    def open_paths(self, paths: Iterable[str | Path], trust: bool = False) -> list[int]:
        """Open each path in the background; returns the request ids."""
        rids = []
        for given in paths:
            path = Path(given).expanduser()
            already = self.documents.find_path(path)
            if already is not None and not trust:  # a second copy would only confuse edits
                self.tree.select_file(already.handle)
                self.status.showMessage(f"{path.name} is already open.", 5000)
                continue
            rid = self.worker.open(path, trust=trust)
            self._requests[rid] = (path, trust)
            self.tree.model.add_pending(rid, path, opening_text(path), order=rid)
            self.tree.fit_columns()
            rids.append(rid)
            self.status.showMessage(f"Opening {path.name}…")
        return rids

    def open_urls(self, urls: Iterable[QUrl]) -> bool:
        """A drop: open every local file or folder; False when there was none."""
        paths = [url.toLocalFile() for url in urls if url.isLocalFile()]
        if paths:
            self.open_paths(paths)
        return bool(paths)

    def open_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.parent_widget, "Open tensor files", last_directory())
        self.open_paths(paths)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self.parent_widget, "Open a SavedModel or checkpoint folder", last_directory()
        )
        if path:
            self.open_paths([path])

    def pending(self) -> int:
        return self.worker.pending_opens()

    def _on_opened(self, rid: int, info: FileInfo) -> None:
        self.tree.model.remove_file(-rid)
        _, trust = self._requests.pop(rid, (info.path, False))
        document = self.documents.add(info, order=rid, trusted=trust)
        self.record_recent(document.path)
        self.status.showMessage(
            f"Opened {document.name}: {document.format_name}, {document.value_count()} values.", 8000
        )
        self.file_opened.emit(document.handle)

    def _on_open_failed(self, rid: int, path: str, error: object) -> None:
        self.tree.model.remove_file(-rid)
        requested, _ = self._requests.pop(rid, (Path(path), False))
        if isinstance(error, TrustRequired):
            if self.ask_trust(requested, error):
                self.open_paths([requested], trust=True)
                return
            message = f"{requested.name} was not opened: it is not trusted. {error}"
        else:
            message = f"Could not open {requested.name}: {failure_sentence(error)}"
        self.status.showMessage(message, 15000)
        self.open_error.emit(str(requested), message)

    def record_recent(self, path: Path) -> None:
        if self.persist:
            add_recent(path)

    # -- closing ------------------------------------------------------------------------------
    def close_file(self, handle: int) -> bool:
        """Close ``handle`` once ``may_close`` agrees (unsaved edits are asked about)."""
        if handle not in self.documents or not self.may_close(handle):
            return False
        document = self.documents.remove(handle)
        self.worker.close(handle)
        if document is not None:
            self.status.showMessage(f"Closed {document.name}.", 5000)
        return True

    def close_current_file(self) -> None:
        """Ctrl+W: the file of the current tree row, or the only open file."""
        handle = self.tree.current_handle()
        if handle is None:
            only = self.documents.only()
            handle = only.handle if only is not None else None
        if handle is not None:
            self.close_file(handle)
