"""torch.save files (zip and legacy formats): state dicts and nested training checkpoints.

Loaded with ``weights_only=True`` given explicitly (so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
cannot flip it) and, for zip files, ``mmap=True``: the tree appears after reading the
pickle only, and a tensor's pages are read when it is selected.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.base import CorruptFile, Index, InspectorError, Node, NodeKind, TrustRequired
from tensor_inspector.backends.pickles.safe_unpickler import Refused
from tensor_inspector.backends.pickles.tree import ContainerSource
from tensor_inspector.core.errors import first_line


class CheckpointSource(ContainerSource):
    backend_name = "torch"
    format_name = "torch checkpoint"
    writable = True

    def __init__(self, path: Path, is_zip: bool):
        super().__init__(path, device_of=self._device_of_tensor)
        self.is_zip = is_zip
        self.format_name = "torch checkpoint" if is_zip else "torch checkpoint (legacy format)"
        self._locations: dict[int, str] = {}
        self._views: dict[str, str] = {}  # dequantized view id -> quantized tensor id

    def _device_of_tensor(self, tensor: Any) -> str | None:
        """The device the tensor was saved from (its storage location tag)."""
        try:
            ptr = tensor.untyped_storage().data_ptr()
            if ptr in self._locations:
                return self._locations[ptr]
        except Exception:  # sparse / quantized tensors without a plain storage
            pass
        places = set(self._locations.values())
        return places.pop() if len(places) == 1 else None

    def _populate(self, obj: Any) -> None:
        super()._populate(obj)
        # quantized tensors (qint8, quint8, ...): the int representation is the node itself,
        # the values torch computes from it a ``<name>/dequantized`` child (backends/quantized.py)
        for node in list(self._nodes.values()):
            if node.kind is not NodeKind.TENSOR or quantized.QUANTIZATION not in node.metadata:
                continue
            view_id = f"{node.id}/{quantized.DEQUANTIZED}"
            if view_id in self._nodes or node.id not in self._leaves:
                continue
            meta = {**node.metadata, **quantized.views(node.id, view_id, quantized.RAW)}
            self._nodes[node.id] = stored = Node(**{**node.__dict__, "metadata": meta})
            self._add(quantized.dequantized_node(stored))
            self._views[view_id] = node.id

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if node.id in self._views:
            from tensor_inspector.backends.pytorch import convert as torch_convert

            if self._obj is None:
                raise InspectorError("This file has been closed.")
            return torch_convert.dequantized(self._leaves[self._views[node.id]], index)
        return super()._read(node, index)

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        import torch

        for key in replacements:
            if key in self._views:
                quantized.refuse_view_write(self.node(key))

        if _same_file(path, self.path) and self._obj is not None:
            raise InspectorError(
                "Cannot write onto the file that is open (memory-mapped): "
                "write to a new file and rename it after closing."
            )
        obj = self._replaced_object(replacements)
        torch.save(obj, path, _use_new_zipfile_serialization=self.is_zip)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def open_checkpoint(path: Path, trust: bool, is_zip: bool) -> CheckpointSource:
    import torch

    source = CheckpointSource(path, is_zip)
    source.trusted = trust  # a re-open (verification after saving) uses the same trust

    def remember_location(storage: Any, location: str) -> Any:
        source._locations[storage.data_ptr()] = str(location)
        return storage  # keep it on the CPU whatever device it was saved from

    try:
        with warnings.catch_warnings():  # TypedStorage / quantized deprecation chatter
            warnings.simplefilter("ignore")
            try:
                obj = torch.load(path, map_location=remember_location, weights_only=not trust, mmap=is_zip)
            except pickle.UnpicklingError as exc:
                if trust:
                    raise
                refusal = _refusal_or_damage(path, exc, is_zip)
                if isinstance(refusal, TrustRequired):
                    raise refusal from None
                # nothing unsafe named: maybe a pickle protocol torch's checker does not speak
                source._locations.clear()
                obj = _load_with_allow_list(path, remember_location, is_zip)
    except Refused as refused:
        raise TrustRequired(
            f"{path.name} needs {refused.name} to load, which could run code: "
            "open it only if you trust where it came from.",
            [refused.name],
        ) from None
    except InspectorError:
        raise
    except Exception as exc:
        raise _damage(path, exc, is_zip) from None
    source._populate(obj)
    return source


def _load_with_allow_list(path: Path, map_location: Any, is_zip: bool) -> Any:
    """torch.load through our own allow-list unpickler, which reads every pickle protocol."""
    import torch

    from tensor_inspector.backends.pickles.safe_unpickler import TorchPickleModule

    return torch.load(
        path, map_location=map_location, pickle_module=TorchPickleModule, weights_only=False, mmap=is_zip
    )


def _refusal_or_damage(path: Path, exc: Exception, is_zip: bool) -> InspectorError:
    try:
        wanted = unsafe_globals(path, is_zip)
    except Exception:
        wanted = []
    if not wanted:
        return _damage(path, exc, is_zip)
    shown = ", ".join(wanted[:8]) + (" and more" if len(wanted) > 8 else "")
    return TrustRequired(
        f"{path.name} needs {shown} to load, which could run code: "
        "open it only if you trust where it came from.",
        wanted,
    )


def unsafe_globals(path: Path, is_zip: bool) -> list[str]:
    """Globals the file names that ``weights_only=True`` does not allow (nothing is run)."""
    if is_zip:
        import torch

        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except Exception:  # e.g. a data.pkl in a protocol torch's scanner does not speak
            return _zip_unsafe_globals(path)
    return _legacy_unsafe_globals(path)


def _zip_unsafe_globals(path: Path) -> list[str]:
    import zipfile

    from torch._weights_only_unpickler import _get_allowed_globals

    from tensor_inspector.backends.pickles.safe_unpickler import globals_in_pickle

    allowed = set(_get_allowed_globals())
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        data = archive.read(member)
    return [name for name in globals_in_pickle(data) if name not in allowed]


def _legacy_unsafe_globals(path: Path) -> list[str]:
    """Scan the pickles at the start of a legacy file: magic, protocol, sys info, object."""
    from torch._weights_only_unpickler import _get_allowed_globals

    from tensor_inspector.backends.pickles.safe_unpickler import globals_in_pickle

    allowed = set(_get_allowed_globals())
    wanted: list[str] = []
    with open(path, "rb") as fh:
        for _ in range(4):
            start = fh.tell()
            for name in globals_in_pickle(fh):
                if name not in allowed and name not in wanted:
                    wanted.append(name)
            if fh.tell() == start:
                break
    return wanted


def _damage(path: Path, exc: Exception, is_zip: bool) -> InspectorError:
    text = first_line(exc)[:160] or type(exc).__name__
    kind = "zip archive" if is_zip else "legacy-format file"
    return CorruptFile(
        f"{path.name} is a torch {kind} that could not be read; it is probably truncated "
        f"or damaged ({text.rstrip('.')})."
    )
