""".npy and .npz files, never unpickling (``allow_pickle=False`` semantics).

A .npy is memory-mapped, so opening a 20 GB file costs a header read. An .npz is a
zip: members are listed from their .npy headers without decompressing the data,
stored (uncompressed) members are memory-mapped at their offset in the zip, and
compressed members are inflated only when read. Declared sizes are checked
against the file before anything is allocated.

Inflation bombs: zeros deflate about 1000:1, so a few MB of .npz can declare a
member of several GB. A compressed member is inflated only if its array (the size
its .npy header declares, which must also fit in the zip's declared uncompressed
size) is at most half the memory available when it is read (``inflate_limit``);
larger ones are refused with a sentence, before anything is allocated. The declared
size is not trusted either: inflation goes in 16 MiB steps into a buffer of exactly
the declared size and stops there, and a member whose stream disagrees with its
declared size or checksum is reported as damaged.

Memory maps and other programs: the file a map was made from stays open while the
source is open, and its current size is checked (``fstat``) before every read, so a
file truncated by another program since it was opened is reported instead of
killing the process with SIGBUS when the missing pages are touched.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Literal

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
INFLATE_SHARE = 0.5  # of the memory available now: the most one compressed member may take
INFLATE_STEP = 1 << 24


def available_memory() -> int:
    """Bytes of memory available to this process now (Linux: MemAvailable and the cgroup limit)."""
    candidates = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's own limit is lower than what the host has free
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit.isdigit():
            candidates.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4)
        except (ValueError, OSError, AttributeError):
            candidates.append(4 << 30)
    return min(candidates)


def inflate_limit() -> int:
    """The largest array a compressed .npz member may inflate to (see the module docstring)."""
    return int(available_memory() * INFLATE_SHARE)


def _check_size(fh: BinaryIO, end: int, name: str, opened_size: int) -> None:
    """Refuse to touch a map whose file no longer reaches ``end`` (the page would SIGBUS)."""
    if end > opened_size:
        raise CorruptFile(f"{name} is damaged: an array's data lies past the end of the file.")
    if os.fstat(fh.fileno()).st_size < end:
        raise CorruptFile(f"{name} was truncated by another program since it was opened.")


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


def _map(fh: BinaryIO, offset: int, header: NpyHeader, name: str, opened_size: int) -> np.ndarray:
    """A read-only array over the open file ``fh`` at ``offset`` without reading it."""
    if header.nbytes == 0:
        return np.empty(header.shape, header.dtype)
    _check_size(fh, offset + header.nbytes, name, opened_size)
    order: Literal["C", "F"] = "F" if header.fortran_order else "C"
    return np.memmap(fh, dtype=header.dtype, mode="r", offset=offset, shape=header.shape, order=order)


def _reopened(fh: BinaryIO, path: Path) -> BinaryIO:
    """``fh``, or the file at ``path`` again when the source was closed and is read anew."""
    return open(path, "rb") if fh.closed else fh  # noqa: SIM115  (kept until close())


class NpySource(Source):
    backend_name = "numpy"
    format_name = "NumPy .npy"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115  (the mapped file, see module docstring)
        try:
            self._size = size = os.fstat(self._fh.fileno()).st_size
            self.header = read_header(self._fh, path.name)
        except BaseException:
            self._fh.close()
            raise
        if self.header.data_offset + self.header.nbytes > size:
            self._fh.close()
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
        self._fh = _reopened(self._fh, self.path)
        if self._array is None:
            self._array = _map(self._fh, self.header.data_offset, self.header, self.path.name, self._size)
        elif self.header.nbytes:
            end = self.header.data_offset + self.header.nbytes
            _check_size(self._fh, end, self.path.name, self._size)
        return self._array if index is None else self._array[index]

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        value = replacements.get(self.node_id)
        if value is None:
            value = self._read(self.node(self.node_id), None)
        with open(path, "wb") as fh:
            write_npy(fh, np.asarray(value))

    def close(self) -> None:
        self._array = None  # drops our reference to the map; arrays handed out keep theirs
        self._fh.close()


class NpzSource(Source):
    backend_name = "numpy"
    format_name = "NumPy .npz"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        self._fh: BinaryIO = open(path, "rb")  # noqa: SIM115  (stored members are mapped from it)
        self._size = os.fstat(self._fh.fileno()).st_size
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            self._fh.close()
            raise CorruptFile(f"{path.name} is not a readable .npz (zip) archive: {exc}.") from None
        try:
            self._list_members()
        except BaseException:
            self.close()
            raise

    def _list_members(self) -> None:
        path = self.path
        self._headers: dict[str, tuple[zipfile.ZipInfo, NpyHeader]] = {}
        for info in self._zip.infolist():
            if info.is_dir() or not info.filename.endswith(".npy"):
                continue
            node_id = info.filename[:-4]
            try:
                with self._zip.open(info) as member:
                    header = read_header(member, f"{path.name}:{info.filename}")
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
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
        self._fh.seek(info.header_offset)
        local = self._fh.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        return info.header_offset + 30 + name_len + extra_len + header.data_offset

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        info, header = self._headers[node.id]
        self._fh = _reopened(self._fh, self.path)
        if info.compress_type == zipfile.ZIP_STORED:
            array = _map(self._fh, self._data_offset(info, header), header, self.path.name, self._size)
        else:
            array = self._inflate(info, header)
        return array if index is None else array[index]

    def _inflate(self, info: zipfile.ZipInfo, header: NpyHeader) -> np.ndarray:
        """A compressed member's array, within ``inflate_limit`` (see the module docstring)."""
        what = f"{self.path.name}: member {info.filename}"
        limit = inflate_limit()
        if header.nbytes > limit:
            raise InspectorError(
                f"{what} would inflate from {info.compress_size:,} to {header.nbytes:,} bytes, more "
                f"than half the memory available now ({limit:,} bytes), so it is not read."
            )
        if header.nbytes == 0:
            return np.empty(header.shape, header.dtype)
        buffer = np.empty(header.nbytes, np.uint8)
        done = 0
        try:
            with self._zip.open(info) as member:
                member.seek(header.data_offset)
                while done < header.nbytes:  # never more than the declared size
                    chunk = member.read(min(INFLATE_STEP, header.nbytes - done))
                    if not chunk:
                        break
                    buffer[done : done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                    done += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise CorruptFile(f"{what} is damaged ({str(exc).rstrip('.')}).") from None
        if done < header.nbytes:
            raise CorruptFile(f"{what} is truncated.")
        order: Literal["C", "F"] = "F" if header.fortran_order else "C"
        return buffer.view(header.dtype).reshape(header.shape, order=order)

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        # Same members, same order, same compression; only replaced members change.
        # Members are copied in steps, so even a member too big to inflate in memory is kept.
        with zipfile.ZipFile(path, "w", allowZip64=True) as out:
            for info in self._zip.infolist():
                node_id = info.filename[:-4] if info.filename.endswith(".npy") else None
                with out.open(_clone_info(info), "w", force_zip64=True) as dst:
                    if node_id in replacements:
                        write_npy(dst, np.asarray(replacements[node_id]))
                        continue
                    try:
                        with self._zip.open(info) as src:
                            while chunk := src.read(INFLATE_STEP):
                                dst.write(chunk)
                    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
                        raise CorruptFile(
                            f"{self.path.name}: member {info.filename} is damaged and cannot be "
                            f"copied ({str(exc).rstrip('.')})."
                        ) from None

    def close(self) -> None:
        self._zip.close()
        self._fh.close()


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
