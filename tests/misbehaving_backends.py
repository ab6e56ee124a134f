"""Backends that misbehave on purpose, loaded into reader processes through TENSOR_INSPECTOR_BACKENDS.

Each recognises files by a magic first line and opens them fine; reading the one
tensor then crashes the process, hangs, or allocates without end, as a native reader
can on a damaged or hostile file.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

import numpy as np

from tensor_inspector.backends.base import Backend, Node, NodeKind, Source, read_head

MAGIC = b"MISBEHAVE "


class MisbehavingSource(Source):
    backend_name = "misbehaving"
    format_name = "Misbehaving test file"

    def __init__(self, path: Path, how: str):
        super().__init__(path)
        self.how = how
        self._add(Node(id="x", name="x", kind=NodeKind.TENSOR, dtype="float32", shape=(4,), nbytes=16))

    def _read(self, node, index):
        if self.how == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.how == "null":
            ctypes.string_at(0)
        if self.how == "hang":
            while True:
                time.sleep(0.05)
        if self.how == "write":  # what an op the allow-list missed would try
            target = self.path.read_bytes().split()[2].decode()
            Path(target).write_text("written by a file nobody trusted")
        if self.how == "allocate":
            blocks = []
            while True:
                blocks.append(np.ones(64 << 20, dtype=np.uint8))  # touched pages: real memory
        return np.arange(4, dtype=np.float32)


class MisbehavingBackend(Backend):
    name = "misbehaving"
    description = "misbehaving test files"

    def detect(self, path: Path) -> float:
        return 1.0 if read_head(Path(path), len(MAGIC)) == MAGIC else 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        how = Path(path).read_bytes()[len(MAGIC) :].split()[0].decode()
        return MisbehavingSource(Path(path), how)


def make(directory: Path, how: str, target: Path | None = None) -> Path:
    """A file that the misbehaving backend opens, and that crashes/hangs/allocates/writes when read."""
    path = Path(directory) / f"{how}.bad"
    path.write_bytes(MAGIC + how.encode() + b" " + str(target or "").encode() + b"\n")
    return path


def enable(monkeypatch) -> None:
    """Make reader processes started from now on load the misbehaving backend."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("TENSOR_INSPECTOR_BACKENDS", "misbehaving=misbehaving_backends:MisbehavingBackend")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
