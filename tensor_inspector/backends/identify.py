"""Say what a file is when Tensor Inspector does not read it, by its content alone.

A user who drops a Core ML package or a joblib dump deserves "x is a Core ML package,
which Tensor Inspector does not read." rather than only the list of supported formats.
Everything here sniffs bytes: headers, protobuf field numbers, zip directories, the
first decompressed block of a joblib file. Nothing is unpickled, loaded or run, so it is
safe on any file and needs no framework.

``identify`` returns ``Identified(sentence, definite)``. ``definite`` identifications
are proven by content and win over a weak guess by a backend: a joblib file holding
numpy arrays is a pickle, but its arrays follow the pickle opcodes as raw bytes that
only joblib's own unpickler reads, so the pickle backend cannot open it.
"""

from __future__ import annotations

import bz2
import json
import lzma
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tensor_inspector.backends.base import read_head

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
PICKLE_PROTO = 0x80
JOBLIB_MARKERS = (b"joblib.numpy_pickle", b"NumpyArrayWrapper")
SNIFF_BYTES = 64 * 1024
MAX_FIELDS = 4096  # top-level protobuf fields scanned before giving up (big files have few)
LISTED_MEMBERS = 5

# Core ML's Model message (Model.proto): 1 specificationVersion, 2 description,
# 10 isUpdatable; the model itself is one message field numbered 200 and up
# (pipeline 200-202, neuralNetwork 500, mlProgram 502, ..., serializedModel 3000).
COREML_SMALL_FIELDS = {1: 0, 2: 2, 10: 0}
COREML_FIRST_MODEL_FIELD = 200


@dataclass(frozen=True)
class Identified:
    sentence: str
    definite: bool = False


def protobuf_fields(path: Path, limit: int = MAX_FIELDS) -> list[tuple[int, int]] | None:
    """The (field number, wire type) of each top-level field, or None if ``path`` is not protobuf.

    The walk must end exactly at the end of the file. Long fields are skipped with a seek,
    so a 2 GB model costs a handful of small reads. More than ``limit`` fields: None.
    """
    try:
        fh = open(path, "rb")
    except OSError:
        return None
    with fh:
        try:
            size = fh.seek(0, 2)
            fh.seek(0)
            fields: list[tuple[int, int]] = []
            while fh.tell() < size:
                if len(fields) >= limit:
                    return None
                tag = _varint(fh)
                number, wire = tag >> 3, tag & 7
                if number == 0:
                    return None
                if wire == 0:
                    _varint(fh)
                elif wire == 1:
                    fh.seek(8, 1)
                elif wire == 2:
                    fh.seek(_varint(fh), 1)
                elif wire == 5:
                    fh.seek(4, 1)
                else:  # groups (3, 4) are not used by any format we name; 6, 7 do not exist
                    return None
                fields.append((number, wire))
                if fh.tell() > size:
                    return None
        except (OSError, ValueError):
            return None
    return fields or None


def _varint(fh: BinaryIO) -> int:
    read = fh.read
    value = shift = 0
    while True:
        byte = read(1)
        if not byte:
            raise ValueError("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def is_coreml_spec(path: Path) -> bool:
    """A Core ML ``Model`` protobuf: version, description and one model-type field >= 200."""
    if read_head(path, 1) != b"\x08":  # specificationVersion comes first in every writer's output
        return False
    fields = protobuf_fields(path)
    if not fields:
        return False
    models = [n for n, wire in fields if n >= COREML_FIRST_MODEL_FIELD and wire == 2]
    small_ok = all(COREML_SMALL_FIELDS.get(n) == wire for n, wire in fields if n < COREML_FIRST_MODEL_FIELD)
    return small_ok and len(models) == 1 and fields[0] == (1, 0)


def is_coreml_package(path: Path) -> bool:
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        return False
    try:
        info = json.loads(manifest.read_text(encoding="utf-8", errors="replace")[: SNIFF_BYTES * 16])
    except ValueError:
        return False
    entries = info.get("itemInfoEntries") if isinstance(info, dict) else None
    return isinstance(entries, dict) or (path / "Data" / "com.apple.CoreML").is_dir()


def _decompressed_head(head: bytes) -> bytes:
    """The first bytes of a zlib/gzip/bz2/xz stream (joblib's compressors), else b""."""
    try:
        if head[:1] == b"x" and head[1:2] in (b"\x01", b"\x5e", b"\x9c", b"\xda"):
            return zlib.decompressobj().decompress(head, SNIFF_BYTES)
        if head[:2] == b"\x1f\x8b":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, SNIFF_BYTES)
        if head[:3] == b"BZh":
            return bz2.BZ2Decompressor().decompress(head, SNIFF_BYTES)
        if head[:6] == b"\xfd7zXZ\x00":
            return lzma.LZMADecompressor().decompress(head, SNIFF_BYTES)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return b""
    return b""


def is_joblib_arrays(head: bytes) -> bool:
    """A pickle (maybe compressed) that loads arrays through joblib's NumpyArrayWrapper."""
    if not head:
        return False
    if head[0] != PICKLE_PROTO:
        head = _decompressed_head(head)
    return bool(head) and head[0] == PICKLE_PROTO and all(m in head for m in JOBLIB_MARKERS)


def _zip_sentence(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if not names:
        return f"{path.name} is an empty zip archive, which Tensor Inspector does not read."
    shown = ", ".join(names[:LISTED_MEMBERS]) + (", ..." if len(names) > LISTED_MEMBERS else "")
    count = f"{len(names)} file" + ("s" if len(names) != 1 else "")
    return f"{path.name} is a zip archive ({count}: {shown}) that Tensor Inspector does not read."


def identify(path: str | Path, definite_only: bool = False) -> Identified | None:
    """What ``path`` is, in one sentence, when it is a kind of file we know but do not read.

    ``definite_only``: skip the fallbacks (zip listing, HDF5), which matter only when no
    backend recognises the file, so opening an .npz never lists its archive twice.
    """
    path = Path(path)
    name = path.name
    if path.is_dir():
        if is_coreml_package(path):
            return Identified(f"{name} is a Core ML package, which Tensor Inspector does not read.", True)
        return None
    head = read_head(path, SNIFF_BYTES)
    if is_joblib_arrays(head):
        return Identified(
            f"{name} is a joblib file (a pickle that joblib's own loader reads), "
            "which Tensor Inspector does not read.",
            True,
        )
    if is_coreml_spec(path):
        return Identified(f"{name} is a Core ML model, which Tensor Inspector does not read.", True)
    if definite_only:
        return None
    if head.startswith(ZIP_MAGIC) or (head[:2] == b"PK" and path.suffix.lower() == ".zip"):
        return Identified(_zip_sentence(path) or f"{name} is a damaged zip archive.")
    if head.startswith(HDF5_MAGIC):
        return Identified(
            f"{name} is an HDF5 file; Tensor Inspector reads HDF5 files only when they hold a Keras model."
        )
    if path.suffix.lower() == ".joblib":
        return Identified(f"{name} is a joblib file, which Tensor Inspector does not read.")
    return None
