"""Plain pickles (.pkl, .pickle, or any pickle by content) of arrays, tensors and containers.

Loaded with an allow-list unpickler (``pickle_safe``); a pickle that names anything
else is refused with the list of globals it wants, unless the user trusts the file.
torch is needed only when the pickle contains torch tensors.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    InspectorError,
    MissingFramework,
    Source,
    TrustRequired,
    read_head,
)
from tensor_inspector.backends.pickles.safe_unpickler import Refused, disallowed_globals, safe_load
from tensor_inspector.backends.pickles.tree import ContainerSource
from tensor_inspector.core.errors import first_line

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".p", ".pck", ".pcl")
# torch's legacy format starts with a pickled magic number; such files belong to torch.
TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def pickle_protocol(head: bytes) -> int | None:
    """The protocol named by a pickle's PROTO opcode (2..5), None without one."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return head[1]
    return None


class PickleSource(ContainerSource):
    backend_name = "pickle"
    format_name = "pickle"
    writable = True

    def __init__(self, path: Path, protocol: int):
        super().__init__(path)
        self._protocol = protocol

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        obj = self._replaced_object(replacements)
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=max(self._protocol, 2))


class PickleBackend(Backend):
    name = "pickle"
    description = "Python pickles of numpy arrays / torch tensors (.pkl, .pickle)"
    extensions = PICKLE_EXTENSIONS
    framework = None
    extra = None

    def detect(self, path: Path) -> float:
        head = read_head(path, 64)
        if not head:
            return 0.0
        if TORCH_LEGACY_MAGIC in head[:32]:
            return 0.0  # a legacy torch.save file: only its first small pickle is plain
        if pickle_protocol(head) is not None:
            return 0.5
        # protocols 0 and 1 have no header; trust the extension plus a plausible first opcode
        if Path(path).suffix.lower() in PICKLE_EXTENSIONS and head[:1] in b"(}]cKJ(NSVX\x80":
            return 0.4
        return 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InspectorError(f"Cannot read {path.name}: {exc.strerror or exc}.") from None
        head = data[:2]
        source = PickleSource(path, pickle_protocol(head) or 2)
        source.trusted = trust  # a re-open (verification after saving) uses the same trust
        source._populate(load_pickle_bytes(data, path.name, trust))
        return source


def load_pickle_bytes(data: bytes, name: str, trust: bool) -> Any:
    """Unpickle ``data``: allow-list unless ``trust``; clear errors for refusals and damage."""
    import io

    try:
        if trust:
            return pickle.loads(data)  # the user trusts this file
        return safe_load(io.BytesIO(data))
    except Refused as refused:
        wanted = disallowed_globals(data) or [refused.name]
        raise TrustRequired(
            f"{name} is a pickle that loads {', '.join(wanted[:8])}"
            f"{' and more' if len(wanted) > 8 else ''}, which could run code: "
            "open it only if you trust where it came from.",
            wanted,
        ) from None
    except (MissingFramework, InspectorError):
        raise
    except RecursionError:  # a trusted object's own __setstate__/__reduce__ recursing
        raise CorruptFile(f"{name} is nested too deeply to read.") from None
    except (
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        AttributeError,
        MemoryError,
        RuntimeError,
        UnicodeDecodeError,
    ) as exc:
        raise CorruptFile(
            f"{name} is not a readable pickle (truncated or damaged: {_one_line(exc)})."
        ) from None
    except Exception as exc:  # a trusted pickle's own code failed
        raise InspectorError(f"Loading {name} failed: {_one_line(exc)}.") from None


def _one_line(exc: BaseException) -> str:
    text = first_line(exc) or type(exc).__name__
    return text[:160].rstrip(".")
