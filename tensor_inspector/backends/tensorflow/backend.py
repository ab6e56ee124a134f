"""The TensorFlow backend: checkpoints (TF1 name-based and TF2 object-based) and SavedModels.

Detection reads bytes only (the ``.index`` footer magic, directory entries);
TensorFlow is imported when a file is opened. See tf_checkpoint, tf_savedmodel,
tf_graph, tf_runtime and tf_write for the parts.
"""

from __future__ import annotations

from pathlib import Path

from tensor_inspector.backends.base import Backend, InspectorError, Source, read_head
from tensor_inspector.backends.tensorflow.index import DATA_SUFFIX, has_table_magic, prefix_of

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
STATE_FILE = "checkpoint"


def _is_state_file(path: Path) -> bool:
    return path.is_file() and b"model_checkpoint_path" in read_head(path, 4096)


def _saved_model_dir(path: Path) -> Path | None:
    if path.is_dir() and any((path / name).is_file() for name in SAVED_MODEL_FILES):
        return path
    if path.is_file() and path.name in SAVED_MODEL_FILES:
        return path.parent
    return None


def _lone_prefix(directory: Path) -> Path | None:
    """The one checkpoint in a folder without a state file (a SavedModel's ``variables/``).

    Judged by content: exactly one ``*.index`` file ending with the table magic.
    """
    if not directory.is_dir():
        return None
    try:
        indexes = [p for p in directory.iterdir() if p.name.endswith(".index") and p.is_file()]
    except OSError:
        return None
    tables = [p for p in indexes[:64] if has_table_magic(p)]
    return Path(str(tables[0])[: -len(".index")]) if len(tables) == 1 else None


class TensorFlowBackend(Backend):
    name = "tensorflow"
    description = "TensorFlow checkpoints and SavedModels"
    extensions = (".index", ".pb", ".pbtxt")
    framework = "tensorflow"
    extra = "tensorflow"

    def detect(self, path: Path) -> float:
        path = Path(path)
        if _saved_model_dir(path) is not None:
            return 0.95
        if path.is_dir():
            if _is_state_file(path / STATE_FILE):
                return 0.9
            return 0.85 if _lone_prefix(path) is not None else 0.0
        if path.name == STATE_FILE and _is_state_file(path):
            return 0.85
        prefix = prefix_of(path)
        if prefix is not None and has_table_magic(Path(str(prefix) + ".index")):
            return 0.95 if not DATA_SUFFIX.match(str(path)) else 0.9
        if path.is_file() and has_table_magic(path):
            return 0.6  # a table with another name: probably a renamed index
        return 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        self.require_framework()
        path = Path(path)
        saved_model = _saved_model_dir(path)
        if saved_model is not None:
            from tensor_inspector.backends.tensorflow.savedmodel import SavedModelSource

            return SavedModelSource(saved_model, trust=trust)
        from tensor_inspector.backends.tensorflow.checkpoint import CheckpointSource, resolve_checkpoint_dir

        if path.is_dir() or path.name == STATE_FILE:
            directory = path if path.is_dir() else path.parent
            if not (directory / STATE_FILE).is_file():
                lone = _lone_prefix(directory)
                if lone is not None:
                    return CheckpointSource(path, lone)
                raise InspectorError(
                    f"{directory} holds neither a SavedModel, a checkpoint state file nor a single checkpoint."
                )
            return CheckpointSource(path, resolve_checkpoint_dir(directory))
        prefix = prefix_of(path)
        if prefix is None:
            if path.is_file() and has_table_magic(path):
                raise InspectorError(
                    f"{path.name} looks like a checkpoint index, but checkpoint "
                    "indexes must be named <prefix>.index."
                )
            raise InspectorError(f"{path} is not a TensorFlow checkpoint (no {path.name}.index next to it).")
        return CheckpointSource(path, prefix)
