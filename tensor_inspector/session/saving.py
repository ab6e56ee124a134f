"""Saving a source with replaced tensors: atomic, with a backup, verified bit for bit.

Layouts and their backups (``--in-place`` / Save over the original):
- a single file ``w.pt``: the new file is renamed over it; the previous one stays as
  ``w.pt.bak`` (a hard link taken before the rename, so ``w.pt`` always exists).
- a directory (SavedModel): the previous directory becomes ``model.bak/``.
- a TF checkpoint prefix ``ckpt-1``: the previous files become the checkpoint
  ``ckpt-1.bak`` (``ckpt-1.bak.index``, ``ckpt-1.bak.data-...``), itself loadable.
- a sharded safetensors index: the new shards are named after the new index
  (``<stem>-00001-of-00002.safetensors``); each previous file stays as ``<file>.bak``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tensor_inspector.backends import Source
from tensor_inspector.core.atomic import (
    atomic_write,
    clean_stale_temporaries,
    fsync_dir,
    fsync_path,
    give_mode,
    temp_dir,
    write_failure,
)
from tensor_inspector.core.errors import InspectorError
from tensor_inspector.core.fingerprint import SHARDED_INDEX as SHARDED_INDEX
from tensor_inspector.core.fingerprint import file_signature as file_signature
from tensor_inspector.core.fingerprint import source_files as source_files


def _is_multi_file(path: Path) -> bool:
    """Checkpoint prefixes and sharded indexes: several files saved together."""
    return (not path.is_file() and not path.is_dir()) or path.name.endswith(SHARDED_INDEX)


class ChangedOnDisk(InspectorError):
    """Saving over a file that someone else rewrote since it was opened: nothing was written."""


@dataclass
class SaveReport:
    target: Path
    backup: Path | None
    verified: list[str]


def save(
    source: Source,
    replacements: Mapping[str, np.ndarray],
    target: str | Path,
    opened_signature: str | None = None,
    backup: bool = True,
) -> SaveReport:
    """Write ``source`` with ``replacements`` to ``target`` and verify the result.

    Saving onto ``source.path`` needs ``opened_signature`` (from ``file_signature`` at
    open time): if the file changed on disk since, nothing is written.
    """
    target = Path(target).absolute()
    in_place = target == source.path.absolute()
    if in_place and opened_signature is not None and file_signature(target) != opened_signature:
        raise ChangedOnDisk(
            f"{target.name} changed on disk since it was opened; "
            "not overwriting it. Reopen it, or save under another name."
        )
    # what reading back must give, taken before writing closes the source (a quantized
    # format stores the value encoded, so it reads back as encoded and decoded)
    expected = {node_id: source.stored_form(node_id, value) for node_id, value in replacements.items()}
    if _is_multi_file(source.path):
        existed = bool(source_files(target))
        try:
            backup_path = _save_files(source, replacements, target, backup and in_place)
        except OSError as exc:
            raise write_failure(exc, target, existed) from None
    else:
        backup_path = _save_path(source, replacements, target, source.path.is_dir(), backup and in_place)
    verified = verify(source, expected, target)
    return SaveReport(target, backup_path, verified)


def _save_path(
    source: Source, replacements: Mapping[str, np.ndarray], target: Path, is_dir: bool, make_backup: bool
) -> Path | None:
    backup_path = target.with_name(target.name + ".bak") if make_backup else None
    with atomic_write(target, directory=is_dir, backup=backup_path) as tmp:
        source.write(tmp, replacements)
        source.close()  # release memory maps before the file is replaced
    return backup_path


def _save_files(
    source: Source, replacements: Mapping[str, np.ndarray], target: Path, make_backup: bool
) -> Path | None:
    """Several files (checkpoint prefix, sharded index): write all in a temp dir, then move.

    Backups: a checkpoint ``ckpt`` keeps its old files as the checkpoint ``ckpt.bak``
    (``ckpt.bak.index``, ...), loadable as such; a sharded index keeps each old file
    as ``<file>.bak``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(target.parent)
    tmp_dir = temp_dir(target)
    sharded = target.name.endswith(SHARDED_INDEX)
    backup_path = target.with_name(target.name + ".bak") if make_backup else None
    try:
        source.write(tmp_dir / target.name, replacements)
        new_files = source_files(tmp_dir / target.name)
        if not new_files:
            raise InspectorError("The writer produced no files.")
        originals = {f.name: f.stat() for f in source_files(target)}
        for file in new_files:
            fsync_path(file)
            give_mode(file, originals.get(file.name))  # a file saved over keeps its mode
        in_place = target == source.path.absolute()
        clash = {f.name for f in new_files} & {f.name for f in source_files(source.path)}
        if not in_place and target.parent == source.path.absolute().parent and clash:
            raise InspectorError(
                f"Saving as {target.name} would overwrite {sorted(clash)[0]}, which "
                f"belongs to {source.path.name}; choose another name or folder."
            )
        source.close()
        for old in source_files(target):
            if backup_path is None:
                old.unlink()
            elif sharded:
                os.replace(old, old.with_name(old.name + ".bak"))
            else:
                os.replace(old, old.with_name(backup_path.name + old.name[len(target.name) :]))
        # data first, the index last: a reader never sees an index without its data
        for file in sorted(new_files, key=lambda p: p.name.endswith((".index", SHARDED_INDEX))):
            os.replace(file, target.parent / file.name)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return backup_path


def verify(source: Source, replacements: Mapping[str, np.ndarray], target: Path) -> list[str]:
    """Reopen ``target`` with the same backend; every replaced tensor must match bit for bit."""
    from tensor_inspector.backends.registry import get_backend

    if not replacements:
        return []
    backend = get_backend(source.backend_name)
    reopened = backend.open(target, trust=getattr(source, "trusted", False))
    try:
        checked = []
        for node_id, expected in replacements.items():
            got = np.asarray(reopened.read(node_id))
            expected = np.asarray(expected)
            same = (
                got.dtype == expected.dtype
                and got.shape == expected.shape
                and np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()
            )
            if not same:
                raise InspectorError(
                    f"Verification failed: {node_id!r} in the saved file differs from the value "
                    f"written ({got.dtype}{list(got.shape)} vs {expected.dtype}{list(expected.shape)})."
                )
            checked.append(node_id)
        return checked
    finally:
        reopened.close()
