"""safetensors files and sharded ``*.safetensors.index.json`` checkpoints.

The header (8-byte length + JSON) is parsed and validated here; values are read by
memory-mapping the data region with the exact numpy/ml_dtypes dtype. We do not go
through ``safe_open(..., "numpy").get_slice``: with the numpy framework it returns
bf16 as raw integers and cannot represent float8 at all, while a map of the same
bytes is exact for every dtype and still reads only the slice that is indexed.

The header is validated as the reference library validates it (``parse_header``), so a
file it refuses is refused here too, with one sentence. Before each map the file is
checked to be the one that was parsed (same inode) and still long enough: touching a map
of a file another program truncated would kill the process with SIGBUS.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from tensor_inspector.backends import quantized
from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    Index,
    InspectorError,
    Node,
    NodeKind,
    Source,
    read_head,
)
from tensor_inspector.core.dtypes import numpy_dtype

# safetensors dtype code -> numpy dtype name
DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "C64": "complex64",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
}
# Names the reference library knows but numpy/ml_dtypes cannot hold one value per byte.
REFERENCE_ONLY = ("F4", "F6_E2M3", "F6_E3M2")
CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
INDEX_SUFFIX = ".safetensors.index.json"


class Entry(NamedTuple):
    """Where one tensor lives: its file, the data region's start, its span and shape."""

    file: Path
    data_start: int
    begin: int
    end: int
    shape: tuple[int, ...]
    code: str


def parse_header(path: Path, fh: BinaryIO | None = None) -> tuple[dict[str, Any], int, int]:
    """(header dict, data start offset, file size), validated as the reference library does.

    The reference (safetensors 0.8) refuses, and so do we, one sentence each: a header
    that is not UTF-8 JSON of the expected types (``shape`` and ``data_offsets`` lists of
    non-negative integers, ``dtype`` a known name, ``__metadata__`` null or a str -> str
    object), a tensor whose byte span disagrees with its shape and dtype, and tensors
    that do not tile the data region exactly (overlaps, gaps, bytes after the last one).
    """
    if fh is None:
        with open(path, "rb") as own:
            return parse_header(path, own)
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    raw_len = fh.read(8)
    if len(raw_len) < 8:
        raise CorruptFile(f"{path.name} is too short to be a safetensors file ({size} bytes).")
    header_len = struct.unpack("<Q", raw_len)[0]
    if header_len > min(MAX_HEADER, size - 8):
        raise CorruptFile(
            f"{path.name} declares a {header_len:,}-byte safetensors header but the file has "
            f"{size:,} bytes: it is truncated or not a safetensors file."
        )
    try:
        # bytes are decoded as UTF-8 first: json.loads(bytes) would also accept UTF-16/32
        header = json.loads(fh.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CorruptFile(f"{path.name} has a safetensors header that is not valid JSON.") from None
    if not isinstance(header, dict):
        raise CorruptFile(f"{path.name} has a safetensors header that is not a JSON object.")
    _check_metadata(path, header.get("__metadata__"))
    data_start = 8 + header_len
    spans = [
        (*_check_entry(path, key, entry, size - data_start), key)
        for key, entry in header.items()
        if key != "__metadata__"
    ]
    _check_tiling(path, spans, size - data_start)
    return header, data_start, size


def _check_metadata(path: Path, metadata: object) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFile(
            f"{path.name} has a safetensors __metadata__ that is not a map of text to text "
            "(the safetensors library refuses such files)."
        )


def _short(key: str) -> str:
    text = repr(key)
    return text if len(text) <= 80 else text[:77] + "...'"


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _is_size(value: object) -> bool:
    """A JSON non-negative integer that fits the reference's usize (bool is not a number)."""
    return type(value) is int and 0 <= value < 1 << 64


def _check_entry(path: Path, key: str, entry: object, data_size: int) -> tuple[int, int]:
    """(begin, end) of a valid tensor entry, relative to the data region."""
    what = f"{path.name}: tensor {_short(key)}"
    if not isinstance(entry, dict):
        raise CorruptFile(f"{what} is described by a JSON {_json_type(entry)}, not an object.")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in entry:
            raise CorruptFile(f"{what} has no {field} in the header.")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str):
        raise CorruptFile(f"{what} has a dtype that is not text ({str(code)[:40]}).")
    if code not in DTYPES:
        if code in REFERENCE_ONLY:
            raise InspectorError(f"{what} uses dtype {code}, which Tensor Inspector cannot show yet.")
        raise CorruptFile(f"{what} has an unknown dtype {code[:40]!r}.")
    if not isinstance(shape, list) or not all(_is_size(d) for d in shape):
        raise CorruptFile(f"{what} has a shape that is not a list of non-negative integers.")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_size(o) for o in offsets):
        raise CorruptFile(f"{what} has data_offsets that are not two non-negative integers.")
    begin, end = offsets
    expected = math.prod(shape) * numpy_dtype(DTYPES[code]).itemsize
    if begin > end or end - begin != expected:
        raise CorruptFile(f"{what} declares {shape} {code} but spans bytes {begin}..{end}.")
    if end > data_size:
        raise CorruptFile(f"{what} ends past the end of the file (truncated).")
    return begin, end


def _check_tiling(path: Path, spans: list[tuple[int, int, str]], data_size: int) -> None:
    """Tensors, in offset order, must cover the data region back to back, as the reference
    requires: an overlap would let a write through one tensor change another."""
    position = 0
    for begin, end, key in sorted(spans):
        if begin < position:
            raise CorruptFile(f"{path.name}: tensor {_short(key)} overlaps the bytes of another tensor.")
        if begin > position:
            raise CorruptFile(
                f"{path.name}: tensor {_short(key)} starts at byte {begin} of the data, leaving "
                f"{begin - position:,} bytes that belong to no tensor."
            )
        position = end
    if position != data_size:
        raise CorruptFile(
            f"{path.name} has {data_size - position:,} bytes after its last tensor that no "
            "tensor covers (the safetensors library refuses such files)."
        )


class SafetensorsSource(Source):
    backend_name = "safetensors"
    format_name = "safetensors"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        self._entries: dict[str, Entry] = {}
        self._shards: list[Path] = []
        self._shard_metadata: dict[Path, dict[str, str]] = {}
        self._index_metadata: dict[str, Any] | None = None  # the index's own "metadata", as written
        # (device, inode) of each file as parsed: a read maps the file only if it is still
        # that file and still long enough (touching a map past the end of a file is SIGBUS).
        # No file stays open between reads: a sharded checkpoint may have hundreds.
        self._identity: dict[Path, tuple[int, int]] = {}
        self.sharded = path.name.endswith(".json")
        if self.sharded:
            self._open_index(path)
        else:
            self._open_file(path, shard=None)
        self._fp8: dict[str, tuple[str, str, tuple[int, ...], tuple[int, ...]]] = {}
        self._pair_fp8_scales()

    def _open_index(self, path: Path) -> None:
        try:
            index = json.loads(path.read_text())
            weight_map = index["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CorruptFile(f"{path.name} is not a safetensors index (no weight_map).") from None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CorruptFile(f"{path.name} has a weight_map that is not a map of tensor names to files.")
        if not isinstance(index.get("metadata") or {}, dict):
            raise CorruptFile(f"{path.name} has a metadata entry that is not a JSON object.")
        self._index_metadata = index.get("metadata")
        self.metadata = {str(k): str(v) for k, v in (self._index_metadata or {}).items()}
        shards = list(dict.fromkeys(weight_map.values()))
        for shard in shards:
            shard_path = path.parent / shard
            if not shard_path.is_file():
                raise CorruptFile(f"{path.name} names shard {shard}, which does not exist.")
            self._open_file(shard_path, shard=shard)
        missing = set(weight_map) - set(self._entries)
        if missing:
            raise CorruptFile(
                f"{path.name} lists tensors missing from their shards: {', '.join(sorted(missing)[:5])}."
            )

    def _open_file(self, path: Path, shard: str | None) -> None:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            self._identity[path] = (st.st_dev, st.st_ino)
            header, data_start, _ = parse_header(path, fh)
        self._shards.append(path)
        self._shard_metadata[path] = header.get("__metadata__") or {}
        if shard is None:
            self.metadata = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
        entries = {
            key: Entry(
                path, data_start, v["data_offsets"][0], v["data_offsets"][1], tuple(v["shape"]), v["dtype"]
            )
            for key, v in header.items()
            if key != "__metadata__"
        }
        for key, entry in sorted(entries.items(), key=lambda item: item[1].begin):  # file order
            meta: dict[str, Any] = {"safetensors_dtype": entry.code, "data_offsets": [entry.begin, entry.end]}
            if shard:
                meta["shard"] = shard
            self._entries[key] = entry
            self._add(
                Node(
                    id=key,
                    name=key,
                    kind=NodeKind.TENSOR,
                    dtype=DTYPES[entry.code],
                    framework_dtype=entry.code,
                    shape=entry.shape,
                    nbytes=entry.end - entry.begin,
                    metadata=meta,
                )
            )

    def _pair_fp8_scales(self) -> None:
        """float8 weights stored with a scale tensor get a ``<name>/dequantized`` view."""
        pairs = quantized.fp8_pairs(list(self._nodes.values()), self.metadata)
        for key, (scale_key, grid_shape, block) in pairs.items():
            view_id = f"{key}/{quantized.DEQUANTIZED}"
            if view_id in self._nodes:
                continue
            node = self._nodes[key]
            info = {
                "scheme": "float8 times scale tensor",
                "scale_tensor": scale_key,
                "block_size": list(block),
            }
            meta = {
                **node.metadata,
                quantized.QUANTIZATION: info,
                **quantized.views(key, view_id, quantized.RAW),
            }
            self._nodes[key] = Node(**{**node.__dict__, "metadata": meta})
            self._add(quantized.dequantized_node(self._nodes[key]))
            self._fp8[view_id] = (key, scale_key, grid_shape, block)

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        if node.id in self._fp8:
            key, scale_key, grid_shape, block = self._fp8[node.id]
            raw = self.node(key)
            scale = self._read(self.node(scale_key), None).astype(np.float32).reshape(grid_shape)
            shape = self._entries[key].shape
            return quantized.dequantize(lambda i: self._read(raw, i), shape, index, scale, block)
        entry = self._entries[node.id]
        path = entry.file
        dtype = numpy_dtype(DTYPES[entry.code])
        array: np.ndarray
        if entry.end == entry.begin:
            array = np.empty(entry.shape, dtype)
        else:
            try:
                fh = open(path, "rb")  # noqa: SIM115  (closed below; the map keeps its own handle)
            except OSError as exc:
                raise CorruptFile(f"{path.name} can no longer be read ({exc.strerror or exc}).") from None
            with fh:
                st = os.fstat(fh.fileno())
                if (st.st_dev, st.st_ino) != self._identity[path]:
                    raise CorruptFile(f"{path.name} was replaced by another program since it was opened.")
                if st.st_size < entry.data_start + entry.end:
                    raise CorruptFile(f"{path.name} was truncated by another program since it was opened.")
                offset = entry.data_start + entry.begin
                array = np.memmap(fh, dtype=dtype, mode="r", offset=offset, shape=entry.shape)
        return array if index is None else array[index]

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
        for key in replacements:
            if key in self._fp8:
                quantized.refuse_view_write(self.node(key))
        if not self.sharded:
            write_safetensors(path, self._tensors_of(self.path, replacements), self.metadata)
            return
        # Sharded: new shards beside the new index, named after it the way the Hugging Face
        # convention does ("<stem>-00001-of-00003.safetensors"), so a Save As next to the
        # original never overwrites the original's shards.
        if not path.name.endswith(INDEX_SUFFIX):
            raise InspectorError(
                f"A sharded checkpoint is saved as an index named *{INDEX_SUFFIX}, not {path.name}."
            )
        stem = path.name[: -len(INDEX_SUFFIX)]
        count = len(self._shards)
        names = {
            shard: f"{stem}-{i + 1:05d}-of-{count:05d}.safetensors" for i, shard in enumerate(self._shards)
        }
        for shard, name in names.items():
            write_safetensors(
                path.parent / name, self._tensors_of(shard, replacements), self._shard_metadata[shard]
            )
        index = {
            "metadata": self._index_metadata or {},
            "weight_map": {key: names[entry.file] for key, entry in self._entries.items()},
        }
        path.write_text(json.dumps(index, indent=2) + "\n")

    def _tensors_of(self, shard: Path, replacements: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tensors stored in ``shard``, in file order, with ``replacements`` applied."""
        return {
            key: replacements[key] if key in replacements else self._read(self.node(key), None)
            for key, entry in self._entries.items()
            if entry.file == shard
        }


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write tensors in the given order with exact dtypes (bf16/fp8 included)."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for key, array in tensors.items():
        name = np.dtype(array.dtype).name
        if name not in CODES:
            raise InspectorError(f"safetensors cannot store dtype {name} (tensor {key!r}).")
        header[key] = {
            "dtype": CODES[name],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data to 8 bytes, as the reference writer does
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for array in tensors.values():
            flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
            for start in range(0, flat.size, 1 << 24):
                fh.write(flat[start : start + (1 << 24)].tobytes())


class SafetensorsBackend(Backend):
    name = "safetensors"
    description = "safetensors (.safetensors, sharded *.safetensors.index.json)"
    extensions = (".safetensors",)

    def detect(self, path: Path) -> float:
        if path.is_file() and path.name.endswith(".safetensors.index.json"):
            return 1.0
        if path.is_dir():
            return 0.0
        head = read_head(path, 10)
        if len(head) >= 10 and head[8:9] == b"{":
            header_len = struct.unpack("<Q", head[:8])[0]
            return 1.0 if header_len < MAX_HEADER else 0.0
        if path.suffix == ".safetensors":
            return 0.5  # claim it so the error names this format's problem
        return 0.0

    def open(self, path: Path, trust: bool = False) -> Source:
        return SafetensorsSource(Path(path))
