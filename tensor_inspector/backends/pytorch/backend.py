"""PyTorch files: torch.save checkpoints (zip and legacy), TorchScript, torch.export .pt2.

Detection reads bytes and the zip directory only; torch is imported when a file is
opened. Each kind lives in its own module (torch_checkpoint, torch_script, torch_export).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from tensor_inspector.backends.base import Backend, CorruptFile, Source, read_head

TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
TORCH_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt", ".pt2", ".tar", ".torchscript", ".ptl")

CHECKPOINT, LEGACY, SCRIPT, EXPORT, DAMAGED_ZIP = "checkpoint", "legacy", "script", "export", "damaged"

_CONFIDENCE = {CHECKPOINT: 0.9, LEGACY: 0.9, SCRIPT: 0.95, EXPORT: 0.95, DAMAGED_ZIP: 0.6}


def classify(path: Path) -> str | None:
    """Which torch file ``path`` is, from its first bytes and zip member names."""
    head = read_head(path, 64)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return DAMAGED_ZIP if _first_member_is_torch(path) else None
        return _classify_names(names)
    if TORCH_LEGACY_MAGIC in head[:32]:
        return LEGACY
    return None


def _classify_names(names: list[str]) -> str | None:
    tails = {name.split("/", 1)[1] if "/" in name else name for name in names}
    if "archive_format" in tails or any(t.startswith("models/") and t.endswith(".json") for t in tails):
        return EXPORT
    if "serialized_exported_program.json" in tails:
        return EXPORT
    if "data.pkl" in tails and ("constants.pkl" in tails or any(t.startswith("code/") for t in tails)):
        return SCRIPT
    if "data.pkl" in tails:
        return CHECKPOINT
    return None


def _first_member_is_torch(path: Path) -> bool:
    """For a zip whose directory is gone: does the first local header name a torch member?"""
    head = read_head(path, 30 + 512)
    if len(head) < 30:
        return False
    name_len = struct.unpack("<H", head[26:28])[0]
    name = head[30 : 30 + name_len].decode("utf-8", "replace")
    tail = name.split("/", 1)[1] if "/" in name else name
    return tail in ("data.pkl", "archive_format", "version", "byteorder") or tail.startswith(
        ("data/", ".data/", "code/", "models/")
    )


class TorchBackend(Backend):
    name = "torch"
    description = "PyTorch .pt/.pth/.bin/.ckpt, TorchScript, torch.export .pt2"
    extensions = TORCH_EXTENSIONS
    framework = "torch"
    extra = "torch"

    def detect(self, path: Path) -> float:
        kind = classify(Path(path))
        return _CONFIDENCE.get(kind, 0.0) if kind else 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        path = Path(path)
        kind = classify(path)
        if kind == DAMAGED_ZIP:
            raise CorruptFile(
                f"{path.name} looks like a torch zip archive but is truncated or damaged "
                "(its zip directory cannot be read)."
            )
        self.require_framework()
        if kind == SCRIPT:
            from tensor_inspector.backends.pytorch.script import open_script

            return open_script(path, trust)
        if kind == EXPORT:
            from tensor_inspector.backends.pytorch.export import open_export

            return open_export(path, trust)
        from tensor_inspector.backends.pytorch.checkpoint import open_checkpoint

        if kind is None and not read_head(path, 4).startswith(b"PK"):
            # opened explicitly with this backend: let torch judge the bytes
            return open_checkpoint(path, trust, is_zip=False)
        return open_checkpoint(path, trust, is_zip=kind != LEGACY)
