"""A pure-Python reader of TensorFlow's checkpoint ``.index`` table, used to vet files.

TensorFlow's C++ checkpoint reader aborts the whole process (SIGABRT) on some
crafted ``.index`` entries (a negative dimension, an unknown dtype), so every
index is parsed here first: footer magic, block layout, and each entry's
dtype, shape, shard and byte range. Only a file that passes is handed to TF.
Residual risk: the reader may still abort on damage this check does not model
(e.g. inconsistent tensor slices); moving backends into a worker process is the
complete answer. Detection uses only the cheap footer check and imports nothing.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from tensor_inspector.backends.base import CorruptFile

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two block handles padded to 40 bytes + 8 bytes of magic
BLOCK_TRAILER_SIZE = 5  # compression type byte + crc32c
MAX_INDEX_BYTES = 1 << 31
DATA_SUFFIX = re.compile(r"^(?P<prefix>.*)\.data-(?P<shard>\d{5})-of-(?P<count>\d{5})$")


def has_table_magic(path: Path) -> bool:
    """True when ``path`` ends with the table magic number (reads 8 bytes)."""
    try:
        size = os.path.getsize(path)
        if size < FOOTER_SIZE:
            return False
        with open(path, "rb") as fh:
            fh.seek(size - 8)
            return bool(struct.unpack("<Q", fh.read(8))[0] == TABLE_MAGIC)
    except OSError:
        return False


def prefix_of(path: Path) -> Path | None:
    """The checkpoint prefix named by a prefix, its ``.index`` or one of its data shards."""
    text = str(path)
    if text.endswith(".index") and Path(text).is_file():
        return Path(text[: -len(".index")])
    match = DATA_SUFFIX.match(text)
    if match and Path(match.group("prefix") + ".index").is_file():
        return Path(match.group("prefix"))
    if Path(text + ".index").is_file():
        return Path(text)
    return None


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _block(data: bytes, offset: int, size: int) -> bytes:
    if offset < 0 or size < 4 or offset + size + BLOCK_TRAILER_SIZE > len(data):
        raise ValueError("block outside the file")
    if data[offset + size] != 0:
        raise ValueError("compressed block (TensorFlow writes index tables uncompressed)")
    return data[offset : offset + size]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Decode one table block: prefix-compressed keys followed by a restart array."""
    num_restarts = struct.unpack("<I", block[-4:])[0]
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError("bad restart array")
    entries: list[tuple[bytes, bytes]] = []
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise ValueError("entry outside its block")
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def read_table(index_path: Path) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of an ``.index`` table, or CorruptFile with one sentence."""
    try:
        size = os.path.getsize(index_path)
    except OSError as exc:
        raise CorruptFile(f"Cannot read {index_path}: {exc.strerror or exc}.") from None
    if size < FOOTER_SIZE:
        raise CorruptFile(
            f"{index_path} is too short to be a TensorFlow checkpoint index "
            f"({size} bytes); it is probably truncated."
        )
    if size > MAX_INDEX_BYTES:
        raise CorruptFile(f"{index_path} is larger than any checkpoint index should be.")
    data = Path(index_path).read_bytes()
    if struct.unpack("<Q", data[-8:])[0] != TABLE_MAGIC:
        raise CorruptFile(
            f"{index_path} is not a TensorFlow checkpoint index (the footer magic "
            "is missing; the file may be truncated)."
        )
    try:
        footer = data[-FOOTER_SIZE:]
        _meta_off, pos = _varint(footer, 0)
        _meta_size, pos = _varint(footer, pos)
        index_off, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        entries: list[tuple[bytes, bytes]] = []
        for _last_key, handle in _block_entries(_block(data, index_off, index_size)):
            block_off, hpos = _varint(handle, 0)
            block_size, _ = _varint(handle, hpos)
            entries.extend(_block_entries(_block(data, block_off, block_size)))
    except (ValueError, struct.error, IndexError) as exc:
        raise CorruptFile(f"{index_path} is a damaged TensorFlow checkpoint index ({exc}).") from None
    return entries


@dataclass(frozen=True)
class IndexEntry:
    key: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    sliced: bool


def _fixed_size(dtype_enum: int, dims: tuple[int, ...]) -> int | None:
    """Bytes a tensor of fixed-size ``dtype_enum`` and shape ``dims`` occupies; None for strings etc."""
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(dtype_enum)
    if dtype.name in ("string", "resource", "variant"):
        return None
    count = 1
    for dim in dims:
        count *= dim
    return count * int(dtype.size)


def vet_checkpoint(prefix: Path) -> tuple[int, list[IndexEntry]]:
    """Check the index and data shards of ``prefix`` before TensorFlow touches them.

    Returns (number of shards, entries). Raises CorruptFile naming the first problem.
    """
    from tensorflow.core.framework import types_pb2  # protobuf only; TF is imported by now
    from tensorflow.core.protobuf import tensor_bundle_pb2

    index_path = Path(str(prefix) + ".index")
    pairs = read_table(index_path)
    if not pairs or pairs[0][0] != b"":
        raise CorruptFile(f"{index_path} has no checkpoint header; it is not a TF2-format checkpoint.")
    header = tensor_bundle_pb2.BundleHeaderProto()
    try:
        header.ParseFromString(pairs[0][1])
    except Exception:
        raise CorruptFile(f"{index_path} has a damaged checkpoint header.") from None
    num_shards = header.num_shards
    if not 1 <= num_shards <= 99999:
        raise CorruptFile(f"{index_path} declares {num_shards} data shards, which is impossible.")
    shard_sizes = []
    for shard in range(num_shards):
        data_path = Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")
        if not data_path.is_file():
            raise CorruptFile(f"The data shard {data_path.name} of this checkpoint is missing.")
        shard_sizes.append(data_path.stat().st_size)
    valid_dtypes = set(types_pb2.DataType.values()) - {types_pb2.DT_INVALID}
    entries = []
    for raw_key, value in pairs[1:]:
        key = raw_key.decode("utf-8", "replace")
        entry = tensor_bundle_pb2.BundleEntryProto()
        try:
            entry.ParseFromString(value)
        except Exception:
            raise CorruptFile(f"The index entry for {key!r} is damaged.") from None
        if entry.dtype not in valid_dtypes or entry.dtype >= 100:
            raise CorruptFile(f"The index entry for {key!r} has an unknown dtype ({entry.dtype}).")
        dims = tuple(d.size for d in entry.shape.dim)
        if entry.shape.unknown_rank or any(d < 0 for d in dims):
            raise CorruptFile(f"The index entry for {key!r} has an invalid shape {dims}.")
        if not entry.slices:
            expected = _fixed_size(entry.dtype, dims)
            if expected is not None and entry.size != expected:
                # a shape that disagrees with its bytes would make TF allocate for the shape
                raise CorruptFile(
                    f"The index entry for {key!r} declares shape {list(dims)} but "
                    f"{entry.size:,} bytes of data; the index is damaged."
                )
            if entry.shard_id >= num_shards:
                raise CorruptFile(f"The index entry for {key!r} points to a shard that does not exist.")
            if entry.offset < 0 or entry.offset + entry.size > shard_sizes[entry.shard_id]:
                raise CorruptFile(
                    f"The data of {key!r} lies beyond the end of its data shard; the shard is truncated."
                )
        entries.append(
            IndexEntry(key, entry.dtype, dims, entry.shard_id, entry.offset, entry.size, bool(entry.slices))
        )
    return num_shards, entries
