"""Messages between the window's process and a reader process, over a Unix socket.

A message is a pickle restricted to an allow-list of plain types (our dataclasses,
containers, numbers, strings, paths, slices): the reader reads files from strangers,
and a reader taken over by a crafted file must not be able to make the window run
code by choosing what it unpickles. Arrays never travel inside the pickle when they
are large: they are copied once into an anonymous shared-memory file (memfd) whose
descriptor is passed alongside (SCM_RIGHTS) and mapped by the receiver without a copy.
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensor_inspector.core.dtypes import ML_DTYPES

INLINE_BYTES = 64 << 10  # smaller arrays travel inside the pickle
_HEADER = struct.Struct("!QI")  # payload length, number of descriptors
MAX_FDS = 253  # Linux's SCM_MAX_FD: one sendmsg passes at most this many descriptors

# (module, name) pairs a message may name. Everything else is refused.
_ALLOWED: set[tuple[str, str]] = {
    ("tensor_inspector.core.nodes", "Node"),
    ("tensor_inspector.core.nodes", "NodeKind"),
    ("tensor_inspector.core.nodes", "FeedSpec"),
    ("tensor_inspector.session.answers", "FileInfo"),
    ("tensor_inspector.session.answers", "Value"),
    ("tensor_inspector.session.answers", "Saved"),
    ("tensor_inspector.session.answers", "Failure"),
    ("tensor_inspector.session.answers", "Compared"),
    ("tensor_inspector.session.answers", "TracedNode"),
    ("tensor_inspector.session.answers", "TraceReport"),
    ("tensor_inspector.core.compare_metrics", "Metrics"),
    ("tensor_inspector.session.wire", "ArrayRef"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PureWindowsPath"),
    ("builtins", "slice"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("builtins", "Ellipsis"),
}


class WireError(Exception):
    """The other side sent something that is not a valid message (or hung up)."""


@dataclass(frozen=True)
class ArrayRef:
    """An array in a message: its bytes inline, or the index of a shared-memory descriptor."""

    dtype: Any  # a dtype name ("bfloat16"), a dtype string ("<f4") or a structured descr list
    shape: tuple[int, ...]
    data: bytes | None = None
    fd_index: int | None = None


def _dtype_spec(dtype: np.dtype) -> Any:
    if dtype.name in ML_DTYPES:
        return dtype.name
    if dtype.fields is not None:
        return dtype.descr
    return dtype.str


def _dtype_of(spec: Any) -> np.dtype:
    dtype: np.dtype = ML_DTYPES[spec] if isinstance(spec, str) and spec in ML_DTYPES else np.dtype(spec)
    if dtype.hasobject:
        raise WireError("object arrays cannot cross the process boundary")
    return dtype


def plain_array(value: np.ndarray) -> np.ndarray:
    """``value`` as an array without Python objects (object arrays become text)."""
    if value.dtype.hasobject:
        return value.astype(str)
    return value


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, fds: list[int]) -> None:
        super().__init__(file, protocol=5)
        self._fds = fds

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.generic):
            obj = np.asarray(obj)
        if not isinstance(obj, np.ndarray):
            return NotImplemented
        obj = plain_array(obj)
        spec = _dtype_spec(obj.dtype)
        # past MAX_FDS shared arrays a message carries the rest inline (a copy, but it arrives)
        inline = obj.nbytes <= INLINE_BYTES or len(self._fds) >= MAX_FDS
        if inline or not hasattr(os, "memfd_create"):
            ref = ArrayRef(spec, tuple(obj.shape), np.ascontiguousarray(obj).tobytes())
        else:
            ref = ArrayRef(spec, tuple(obj.shape), fd_index=len(self._fds))
            self._fds.append(_to_memfd(obj))
        return (_rebuild_placeholder, (ref,))


def _rebuild_placeholder(ref: ArrayRef) -> ArrayRef:  # never called: the Unpickler swaps it
    return ref


def _to_memfd(array: np.ndarray) -> int:
    """Copy ``array`` into a new anonymous shared-memory file; returns its descriptor.

    A contiguous array is written with write(2): the kernel copies into the shared
    pages directly, about twice as fast as filling a fresh mapping page fault by page
    fault. Other layouts are gathered into a mapping in one pass.
    """
    fd = os.memfd_create("tensor-inspector-array", getattr(os, "MFD_CLOEXEC", 0))
    try:
        if array.flags.c_contiguous:
            _write_all(fd, array.reshape(-1).view(np.uint8).data)
        else:
            size = max(array.nbytes, 1)
            os.ftruncate(fd, size)
            with mmap.mmap(fd, size) as mm:
                target: np.ndarray = np.ndarray(array.shape, array.dtype, buffer=mm)
                np.copyto(target, array, casting="no")
                del target
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written : written + (1 << 30)])


def _from_fd(fd: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """Map a received shared-memory file without a copy, read-only (editing makes a copy)."""
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size == 0:
        return np.empty(shape, dtype)
    if os.fstat(fd).st_size < size:
        raise WireError("a shared array is smaller than its shape says")
    # populated at once: the viewer reads every page next (statistics, heatmap)
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    mm = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    return np.ndarray(shape, dtype, buffer=mm)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, fds: list[int]) -> None:
        super().__init__(file)
        self._fds = fds

    def find_class(self, module: str, name: str) -> Any:
        if module == "tensor_inspector.session.wire" and name == "_rebuild_placeholder":
            return self._rebuild
        if (module, name) not in _ALLOWED:
            raise WireError(f"a message named {module}.{name}, which is not allowed")
        return super().find_class(module, name)

    def _rebuild(self, ref: ArrayRef) -> np.ndarray:
        dtype = _dtype_of(ref.dtype)
        shape = tuple(int(d) for d in ref.shape)
        if ref.fd_index is not None:
            if not 0 <= ref.fd_index < len(self._fds):
                raise WireError("a message refers to a missing shared array")
            return _from_fd(self._fds[ref.fd_index], dtype, shape)
        # read-only like a mapped value: whoever edits a value makes a copy first
        return np.frombuffer(ref.data or b"", dtype=dtype).reshape(shape)


def send(sock: socket.socket, message: Any) -> None:
    """Send one message (arrays through shared memory); blocks until it is written."""
    fds: list[int] = []
    try:
        buffer = io.BytesIO()
        _Pickler(buffer, fds).dump(message)
        payload = buffer.getvalue()
        header = _HEADER.pack(len(payload), len(fds))
        if fds:
            socket.send_fds(sock, [header], fds)
        else:
            sock.sendall(header)
        sock.sendall(payload)
    finally:
        for fd in fds:
            os.close(fd)


def receive(sock: socket.socket) -> Any:
    """Receive one message; ``WireError`` if the peer hung up or sent something invalid."""
    header, fds = _receive_header(sock)
    try:
        length, count = _HEADER.unpack(header)
        if count != len(fds):
            raise WireError("a message arrived without its shared arrays")
        payload = _receive_exactly(sock, length)
        try:
            return _Unpickler(io.BytesIO(payload), fds).load()
        except WireError:
            raise
        except Exception as exc:
            raise WireError(f"an unreadable message ({type(exc).__name__}: {exc})") from None
    finally:
        for fd in fds:
            os.close(fd)  # mapped arrays keep their memory after the descriptor closes


def _receive_header(sock: socket.socket) -> tuple[bytes, list[int]]:
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, MAX_FDS)
    except ConnectionError:
        raise WireError("the other process hung up") from None
    if not data:
        for fd in fds:
            os.close(fd)
        raise WireError("the other process hung up")
    if len(data) < _HEADER.size:
        data += _receive_exactly(sock, _HEADER.size - len(data))
    return data, list(fds)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        try:
            n = sock.recv_into(view[received:], size - received)
        except ConnectionError:
            raise WireError("the other process hung up") from None
        if n == 0:
            raise WireError("the other process hung up")
        received += n
    return bytes(buffer)
