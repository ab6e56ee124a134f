"""Atomic writes: a temp file beside the target, fsync, rename. Never a half-written file.

Why beside the target: ``os.replace`` is atomic only within one filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """fsync a file, or every file of a directory tree, so a rename publishes complete data."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        with open(file, "rb+") as fh:
            os.fsync(fh.fileno())
    if path.is_dir():
        for directory in [path, *(p for p in path.rglob("*") if p.is_dir())]:
            _fsync_dir(directory)


@contextlib.contextmanager
def atomic_write(target: str | Path, directory: bool = False, backup: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename onto ``target``.

    On any exception the temporary path is removed and ``target`` is untouched.
    With ``directory=True`` the temporary path does not exist yet and may be
    created as a directory (SavedModels); an existing target directory is moved
    aside and removed only after the new one is in place. With ``backup``, the
    previous target is kept there (a hard link for files, so ``target`` never
    disappears; the moved-aside directory for directories).
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    if directory:
        tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise OSError(f"nothing was written to {tmp}")
        fsync_path(tmp)
        if backup is not None and target.exists():
            _remove(backup)
        if directory and target.exists():
            old = backup or target.with_name(f".{target.name}.old")
            _remove(old)
            os.replace(target, old)
            os.replace(tmp, target)
            if backup is None:
                _remove(old)
        else:
            if backup is not None and target.exists():
                try:
                    os.link(target, backup)
                except OSError:  # filesystems without hard links
                    shutil.copy2(target, backup)
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
