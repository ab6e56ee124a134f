"""Atomic writes: a temp file beside the target, fsync, rename. Never a half-written file.

Why beside the target: ``os.replace`` is atomic only within one filesystem.

- Modes: a file saved in place keeps its permission bits (and owner and group where the
  system lets us); a new file gets the mode the umask gives (0644 under umask 022, like
  ``np.save``), not the 0600 ``mkstemp`` creates.
- Temporaries are named ``.<target>.<pid>-<random>.tinspect-tmp``. A save cleans the ones
  of that exact pattern left in its folder by a crashed save: only when older than
  ``STALE_AFTER`` seconds and their process is gone, so a concurrent save is not broken.
- Failures reach the user as one sentence (``write_failure``): a full disk says nothing
  was changed, other errors name the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tensor_inspector.core.errors import InspectorError

TEMP_SUFFIX = ".tinspect-tmp"
# mkstemp's random part: 8 of [a-z0-9_]; our prefix adds the writing process id.
_TEMP_NAME = re.compile(r"\..+\.(?P<pid>\d+)-[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
STALE_AFTER = 60.0  # seconds


def fsync_dir(directory: Path) -> None:
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


def _fsync_file(file: Path) -> None:
    fd = os.open(file, os.O_RDONLY)  # read-only is enough for fsync, and works on 0444 files
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """fsync a file, or every file of a directory tree, so a rename publishes complete data."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        _fsync_file(file)
    if path.is_dir():
        for directory in [path, *(p for p in path.rglob("*") if p.is_dir())]:
            fsync_dir(directory)


def temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}-"


def temp_dir(target: Path) -> Path:
    """A new empty directory beside ``target``, named like every temporary of ours."""
    return Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent))


def _process_alive(pid: int) -> bool:
    """True unless ``pid`` surely is not running here (our own pid counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (someone else's) or cannot tell: keep its files
    return True


def clean_stale_temporaries(directory: Path, now: float | None = None) -> list[Path]:
    """Remove our own leftover temporaries in ``directory`` (see the module docstring)."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if age < STALE_AFTER or _process_alive(int(match["pid"])):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:  # gone already, or not ours to remove: never fail a save over it
            continue
    return removed


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: the only way to read it is to set it, then put it back
    os.umask(mask)
    return mask


def give_mode(tmp: Path, original: os.stat_result | None) -> None:
    """Make ``tmp`` look like ``original`` (saved in place) or like a new file (umask mode)."""
    if original is None:
        base = 0o777 if tmp.is_dir() else 0o666
        os.chmod(tmp, base & ~current_umask())
        return
    with contextlib.suppress(PermissionError):  # only root may give files away
        os.chown(tmp, original.st_uid, original.st_gid)
    os.chmod(tmp, stat.S_IMODE(original.st_mode))  # after chown, which may clear setuid bits


def write_failure(exc: OSError, target: Path, existed: bool) -> InspectorError:
    """One sentence for an OSError while writing ``target`` (nothing was changed)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        if existed:
            return InspectorError("No space left on device: nothing was changed; the original is intact.")
        return InspectorError(f"No space left on device: {target} was not written.")
    unchanged = "nothing was changed" if existed else "nothing was written"
    named = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else None
    if named is not None and Path(named).parent != target.parent:
        # the writer failed on something else (reading the source file, say): name that
        reason = (exc.strerror or str(exc)).rstrip(".")
        return InspectorError(
            f"Cannot write {target}: {named}: {reason[:1].lower()}{reason[1:]}; {unchanged}."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return InspectorError(f"Cannot write {target}: permission denied; {unchanged}.")
    if exc.errno == errno.EROFS:
        return InspectorError(f"Cannot write {target}: the file system is read-only; {unchanged}.")
    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    return InspectorError(f"Cannot write {target}: {reason[:1].lower()}{reason[1:]}; {unchanged}.")


@contextlib.contextmanager
def atomic_write(target: str | Path, directory: bool = False, backup: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync it and rename onto ``target``.

    On any exception the temporary path is removed and ``target`` is untouched; an
    OSError becomes one sentence (``write_failure``). With ``directory=True`` the
    temporary path does not exist yet and may be created as a directory (SavedModels);
    an existing target directory is moved aside and removed only after the new one is
    in place. With ``backup``, the previous target is kept there (a hard link for files,
    so ``target`` never disappears; the moved-aside directory for directories).
    """
    target = Path(target).absolute()
    try:
        original = target.stat() if target.exists() else None
        target.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(target.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise write_failure(exc, target, target.exists()) from None
    os.close(fd)
    tmp = Path(tmp_name)
    if directory:
        tmp.unlink()
    linked = False  # a backup link made here is taken back if the rename fails
    try:
        yield tmp
        if not tmp.exists():
            raise InspectorError(f"Nothing was written for {target.name}; the original is unchanged.")
        fsync_path(tmp)
        give_mode(tmp, original)
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
                linked = True
            os.replace(tmp, target)
            linked = False  # in place: the backup now holds the only copy of the original
        fsync_dir(target.parent)
    except BaseException as exc:
        _remove(tmp)
        if linked and backup is not None:
            _remove(backup)
        if isinstance(exc, OSError):
            raise write_failure(exc, target, original is not None) from None
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
