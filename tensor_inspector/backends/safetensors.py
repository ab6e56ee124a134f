"""safetensors files and sharded ``*.safetensors.index.json`` checkpoints.

The header (8-byte length + JSON) is parsed and validated here; values are read by
memory-mapping the data region with the exact numpy/ml_dtypes dtype. We do not go
through ``safe_open(..., "numpy").get_slice``: with the numpy framework it returns
bf16 as raw integers and cannot represent float8 at all, while a map of the same
bytes is exact for every dtype and still reads only the slice that is indexed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

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
}
CODES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's own limit
INDEX_SUFFIX = ".safetensors.index.json"


def parse_header(path: Path) -> tuple[dict, int, int]:
    """(header dict, data start offset, file size), validated against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
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
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CorruptFile(f"{path.name} has a safetensors header that is not valid JSON.") from None
    if not isinstance(header, dict):
        raise CorruptFile(f"{path.name} has a safetensors header that is not a JSON object.")
    data_start = 8 + header_len
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        _check_entry(path, key, entry, size - data_start)
    return header, data_start, size


def _check_entry(path: Path, key: str, entry: object, data_size: int) -> None:
    try:
        dtype = numpy_dtype(DTYPES[entry["dtype"]])  # type: ignore[index]
        shape = [int(d) for d in entry["shape"]]  # type: ignore[index]
        begin, end = (int(o) for o in entry["data_offsets"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        raise CorruptFile(
            f"{path.name}: tensor {key!r} has an invalid or unsupported entry ({str(entry)[:80]})."
        ) from None
    if any(d < 0 for d in shape):
        raise CorruptFile(f"{path.name}: tensor {key!r} has a negative dimension {shape}.")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if not 0 <= begin <= end or end - begin != expected:
        raise CorruptFile(
            f"{path.name}: tensor {key!r} declares {shape} {dtype} but spans bytes {begin}..{end}."
        )
    if end > data_size:
        raise CorruptFile(f"{path.name}: tensor {key!r} ends past the end of the file (truncated).")


class SafetensorsSource(Source):
    backend_name = "safetensors"
    format_name = "safetensors"
    writable = True

    def __init__(self, path: Path):
        super().__init__(path)
        self._entries: dict[str, tuple[Path, int, dict]] = {}  # id -> (file, data start, entry)
        self._shards: list[Path] = []
        self._shard_metadata: dict[Path, dict] = {}
        self._index_metadata: dict | None = None  # the index's own "metadata", values as written
        self.sharded = path.name.endswith(".json")
        if self.sharded:
            self._open_index(path)
        else:
            self._open_file(path, shard=None)

    def _open_index(self, path: Path) -> None:
        try:
            index = json.loads(path.read_text())
            weight_map = index["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CorruptFile(f"{path.name} is not a safetensors index (no weight_map).") from None
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
        header, data_start, _ = parse_header(path)
        self._shards.append(path)
        self._shard_metadata[path] = header.get("__metadata__") or {}
        if shard is None:
            self.metadata = {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}
        entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
        entries.sort(key=lambda kv: kv[1]["data_offsets"][0])  # file order
        for key, entry in entries:
            dtype = DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = entry["data_offsets"]
            meta = {"safetensors_dtype": entry["dtype"], "data_offsets": [begin, end]}
            if shard:
                meta["shard"] = shard
            self._entries[key] = (path, data_start, entry)
            self._add(
                Node(
                    id=key,
                    name=key,
                    kind=NodeKind.TENSOR,
                    dtype=dtype,
                    framework_dtype=entry["dtype"],
                    shape=shape,
                    nbytes=end - begin,
                    metadata=meta,
                )
            )

    def _read(self, node: Node, index: Index | None) -> np.ndarray:
        path, data_start, entry = self._entries[node.id]
        begin, end = entry["data_offsets"]
        dtype = numpy_dtype(node.dtype or "uint8")
        if end == begin:
            array = np.empty(node.shape or (), dtype)
        else:
            array = np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin, shape=node.shape or ())
        return array if index is None else array[index]

    def _write(self, path: Path, replacements: dict[str, np.ndarray]) -> None:
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
            "weight_map": {key: names[shard] for key, (shard, _, _) in self._entries.items()},
        }
        path.write_text(json.dumps(index, indent=2) + "\n")

    def _tensors_of(self, shard: Path, replacements: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tensors stored in ``shard``, in file order, with ``replacements`` applied."""
        return {
            key: replacements[key] if key in replacements else self._read(self.node(key), None)
            for key, (file, _, _) in self._entries.items()
            if file == shard
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
