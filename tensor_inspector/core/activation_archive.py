"""Many arrays into one .npz, one at a time: the activations of a trace, exported.

A trace keeps up to a gigabyte of activations; they are written as they are fetched,
so the exporting process never holds more than one of them. The archive is a plain
.npz (``np.load`` reads it): each array a stored (uncompressed) ``<member>.npy``, plus
``node_ids.json`` mapping each member name back to the node id it came from.

Node ids are not usable member names as they are: ``StatefulPartitionedCall/mm:0``
would become a folder inside the zip and ``np.load`` keys with ``/`` and ``:`` are
awkward in scripts. Names are sanitised to ``[A-Za-z0-9_.-]`` and made unique, also
ignoring case (archives get unpacked on case-insensitive file systems).

Written atomically (``core.atomic``): a cancelled or failed export leaves no file.
"""

from __future__ import annotations

import json
import re
import threading
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tensor_inspector.core.atomic import atomic_write
from tensor_inspector.core.errors import Cancelled, InspectorError
from tensor_inspector.core.npy_format import write_npy

INDEX_MEMBER = "node_ids.json"  # {member name (the np.load key): node id}
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def member_names(node_ids: Iterable[str]) -> dict[str, str]:
    """A sanitised, unique archive key for each node id, in the given order: {node id: key}.

    ``graph/log`` -> ``graph_log``; ``a/b:0`` -> ``a_b_0``; a second id that sanitises to
    a name already taken (in any case) gets ``_2``, ``_3``…
    """
    taken: set[str] = {INDEX_MEMBER.removesuffix(".json").lower()}
    names: dict[str, str] = {}
    for node_id in node_ids:
        if node_id in names:
            continue
        base = _UNSAFE.sub("_", node_id).strip("._") or "node"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name.lower())
        names[node_id] = name
    return names


class ActivationArchive:
    """An .npz being written; ``add`` one array at a time, the index is written at the end.

    Made by ``write_archive``, which publishes the file only when everything is in.
    """

    def __init__(self, zf: zipfile.ZipFile, names: dict[str, str], cancel: threading.Event | None):
        self._zf, self._names, self._cancel = zf, names, cancel
        self.written: dict[str, str] = {}  # member name -> node id, in the order written

    def add(self, node_id: str, array: np.ndarray) -> str:
        """Stream ``array`` into the archive under ``node_id``'s member name; returns that name."""
        name = self._names.get(node_id)
        if name is None:
            raise InspectorError(f"{node_id} is not one of the nodes this archive was planned for.")
        if name in self.written:
            raise InspectorError(f"{node_id} is already in the archive.")
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise InspectorError(f"{node_id} holds Python objects, which cannot be exported without pickle.")
        with self._zf.open(name + ".npy", "w", force_zip64=True) as entry:
            write_npy(entry, array, self._check)
        self.written[name] = node_id
        return name

    def _check(self, _done: int, _total: int) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled()

    def _write_index(self) -> None:
        with self._zf.open(INDEX_MEMBER, "w") as entry:
            entry.write(json.dumps(self.written, indent=1, ensure_ascii=False).encode("utf-8"))


@contextmanager
def write_archive(
    path: str | Path, node_ids: Iterable[str], cancel: threading.Event | None = None
) -> Iterator[ActivationArchive]:
    """Yield an archive for ``node_ids``; on a clean exit it is completed and renamed onto ``path``.

    An exception inside the block (``Cancelled`` included) removes the temporary file:
    ``path`` is either the complete new archive or untouched.
    """
    names = member_names(node_ids)
    with atomic_write(Path(path)) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            archive = ActivationArchive(zf, names, cancel)
            yield archive
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            archive._write_index()


def read_index(path: str | Path) -> dict[str, str]:
    """{member name: node id} of an archive written by ``write_archive``."""
    with zipfile.ZipFile(path) as zf:
        mapping = json.loads(zf.read(INDEX_MEMBER).decode("utf-8"))
    if not isinstance(mapping, dict):
        raise InspectorError(f"{Path(path).name} has no valid {INDEX_MEMBER}.")
    return {str(k): str(v) for k, v in mapping.items()}
