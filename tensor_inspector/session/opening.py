"""Opening a file: the backend registry plus what the session remembers about it."""

from __future__ import annotations

from pathlib import Path

from tensor_inspector.backends import Source, open_path
from tensor_inspector.core.fingerprint import file_signature


def open_source(path: str | Path, trust: bool = False, backend: str | None = None) -> Source:
    """Open ``path`` with the best backend and note its on-disk signature.

    The signature (``core.fingerprint``: names, sizes, mtimes and each file's first and last
    64 KiB) is taken before opening, so a change made while the file is open, even one that
    restores the size and mtime, is noticed when saving in place.
    """
    signature = file_signature(Path(path)) if Path(path).exists() else None
    source = open_path(path, trust=trust, backend=backend)
    source.opened_signature = signature
    return source
