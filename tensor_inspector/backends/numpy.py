""".npy and .npz files, never unpickling (``allow_pickle=False`` semantics).

A .npy is memory-mapped, so opening a 20 GB file costs a header read. An .npz is a
zip: members are listed from their .npy headers without decompressing the data,
stored (uncompressed) members are memory-mapped at their offset in the zip, and
compressed members are inflated only when read. Declared sizes are checked
against the file before anything is allocated.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    Index,
    InspectorError,
    Node,
    NodeKind,
    Source,
    read_head,
)
from tensor_inspector.core.npy_format import MAGIC, NpyHeader, read_header, write_npy

NPY_NODE_ID = "array"


def _node_for(node_id: str, header: NpyHeader, **meta: object) -> Node:
    return Node(
        id=node_id,
        name=node_id.rsplit("/", 1)[-1],
        kind=NodeKind.TENSOR,
        dtype=header.dtype.name,
        framework_dtype=str(header.dtype),
        shape=header.shape,
        nbytes=header.nbytes,
        metadata={"fortran_order": header.fortran_order, **meta},
    )


def _map(path: Path, offset: int, header: NpyHeader) -> np.ndarray:
    """A read-only array over ``path`` at ``offset`` without reading it."""
    if header.nbytes == 0:
        return np.empty(header.shape, header.dtype)
    order = "F" if header.fortran_order else "C"
    return np.memmap(path, dtype=header.dtype, mode="r", offset=offset, shape=header.shape, order=order)


class NpySource(Source):
    backend_name = "numpy"
    format_name = "NumPy .npy"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        size = path.stat().st_size
        with open(path, "rb") as fh:
            self.header = read_header(fh, path.name)
        if self.header.data_offset + self.header.nbytes > size:
            raise CorruptFile(
                f"{path.name} is truncated: its header declares {self.header.shape} "
                f"{self.header.dtype} ({self.header.nbytes:,} bytes) but only "
                f"{size - self.header.data_offset:,} bytes of data follow."
            )
        # A fixed id (not the file name) so Save As under another name keeps node ids stable;
        # the tree shows the file name.
        self.node_id = NPY_NODE_ID
        node = _node_for(self.node_id, self.header, file_size=size)
        self._add(Node(**{**node.__dict__, "name": path.stem}))
        self._array: np.ndarray | None = None

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if self._array is None:
            self._array = _map(self.path, self.header.data_offset, self.header)
        return self._array if index is None else self._array[index]

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        value = replacements.get(self.node_id)
        if value is None:
            value = self._read(self.node(self.node_id), None)
        with open(path, "wb") as fh:
            write_npy(fh, np.asarray(value))

    def close(self) -> None:
        self._array = None  # drops our reference to the map; arrays handed out keep theirs


class NpzSource(Source):
    backend_name = "numpy"
    format_name = "NumPy .npz"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CorruptFile(f"{path.name} is not a readable .npz (zip) archive: {exc}.") from None
        self._headers: dict[str, tuple[zipfile.ZipInfo, NpyHeader]] = {}
        for info in self._zip.infolist():
            if info.is_dir() or not info.filename.endswith(".npy"):
                continue
            node_id = info.filename[:-4]
            try:
                with self._zip.open(info) as member:
                    header = read_header(member, f"{path.name}:{info.filename}")
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise CorruptFile(f"{path.name}: member {info.filename} is damaged ({exc}).") from None
            if header.data_offset + header.nbytes > info.file_size:
                raise CorruptFile(
                    f"{path.name}: member {info.filename} declares {header.nbytes:,} bytes of data "
                    f"but holds {max(info.file_size - header.data_offset, 0):,}."
                )
            self._headers[node_id] = (info, header)
            compression = "stored" if info.compress_type == zipfile.ZIP_STORED else "deflated"
            self._add_with_groups(
                _node_for(node_id, header, compression=compression, compressed_size=info.compress_size)
            )
        if not self._headers:
            raise CorruptFile(f"{path.name} is a zip archive with no .npy members.")

    def _data_offset(self, info: zipfile.ZipInfo, header: NpyHeader) -> int:
        """Absolute offset of a stored member's array data (after its local zip header)."""
        with open(self.path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        return info.header_offset + 30 + name_len + extra_len + header.data_offset

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        info, header = self._headers[node.id]
        if info.compress_type == zipfile.ZIP_STORED:
            array = _map(self.path, self._data_offset(info, header), header)
        else:
            with self._zip.open(info) as member:
                member.seek(header.data_offset)
                data = member.read(header.nbytes)
            if len(data) < header.nbytes:
                raise CorruptFile(f"{self.path.name}: member {info.filename} is truncated.")
            order = "F" if header.fortran_order else "C"
            array = np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order=order)
        return array if index is None else array[index]

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        # Same members, same order, same compression; only replaced members change.
        with zipfile.ZipFile(path, "w", allowZip64=True) as out:
            for info in self._zip.infolist():
                node_id = info.filename[:-4] if info.filename.endswith(".npy") else None
                with out.open(_clone_info(info), "w", force_zip64=True) as dst:
                    if node_id in replacements:
                        write_npy(dst, np.asarray(replacements[node_id]))
                    else:
                        with self._zip.open(info) as src:
                            while chunk := src.read(1 << 24):
                                dst.write(chunk)

    def close(self) -> None:
        self._zip.close()


def _clone_info(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    clone = zipfile.ZipInfo(info.filename, date_time=info.date_time)
    clone.compress_type = info.compress_type
    clone.external_attr = info.external_attr
    return clone


class NumpyBackend(Backend):
    name = "numpy"
    description = "NumPy .npy and .npz"
    extensions = (".npy", ".npz")

    def detect(self, path: Path) -> float:
        if not path.is_file():
            return 0.0
        head = read_head(path, 8)
        if head.startswith(MAGIC):
            return 1.0
        if head.startswith(b"PK"):
            if path.suffix.lower() == ".npz":
                return 0.9
            try:
                with zipfile.ZipFile(path) as zf:
                    names = zf.namelist()
            except (zipfile.BadZipFile, OSError):
                return 0.0
            if names and all(n.endswith(".npy") for n in names):
                return 0.8
        return 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        path = Path(path)
        if read_head(path, 6) == MAGIC:
            return NpySource(path)
        if read_head(path, 2) == b"PK":
            return NpzSource(path)
        raise InspectorError(f"{path.name} is neither a .npy nor a .npz file.")
