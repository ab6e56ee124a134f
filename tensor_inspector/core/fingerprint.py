"""What a file looked like when it was opened, to refuse saving over a file someone changed since.

A signature covers every file that makes up what was opened (``source_files``): its name,
size and modification time, and a hash of its first and last 64 KiB. Those bytes hold
what a backend read at open for every format we write (.npy and safetensors headers,
zip central directories, HDF5 superblocks, a checkpoint's .index), so a header rewritten
in place with its size and mtime restored is still noticed. Cost is O(metadata): two
64 KiB reads per file, whatever its size, never the whole of a 10 GB checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SHARDED_INDEX = ".safetensors.index.json"
SAMPLE = 64 * 1024


def source_files(path: Path) -> list[Path]:
    """The files that make up ``path``: itself, a directory's files, a checkpoint prefix's,
    or a sharded safetensors index with its shards."""
    path = Path(path)
    if path.is_file() and path.name.endswith(SHARDED_INDEX):
        return [path, *_shards_of(path)]
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return sorted(
        p
        for p in path.parent.glob(path.name + ".*")
        if p.name == path.name + ".index" or p.name.startswith(path.name + ".data-")
    )


def _shards_of(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        names = dict.fromkeys(str(v) for v in weight_map.values())
    except (OSError, ValueError, AttributeError):
        return []
    return [index.parent / name for name in names if (index.parent / name).is_file()]


def file_signature(path: Path) -> str:
    """A fingerprint of ``path``'s files: names, sizes, mtimes and their first and last 64 KiB."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in source_files(path):
        name = os.path.relpath(file, path.parent)
        try:
            with open(file, "rb") as fh:
                st = os.fstat(fh.fileno())
                digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}:".encode())
                digest.update(fh.read(SAMPLE))
                if st.st_size > SAMPLE:
                    fh.seek(max(st.st_size - SAMPLE, SAMPLE))
                    digest.update(fh.read(SAMPLE))
        except OSError as exc:  # gone or unreadable now: that is a difference too
            digest.update(f"{name}:unreadable {exc.errno}".encode())
        digest.update(b";")
    return digest.hexdigest()
