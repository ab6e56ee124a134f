"""A minimal reader of the TFLite flatbuffer: the fields the tree needs, no framework.

Opening a model must not import TensorFlow (seconds) nor copy the weights, so the
schema's few tables are read here with ``struct`` over a memory map, every offset
checked against the file size: a damaged file gives one sentence, not a crash. Field
numbers are those of TensorFlow's ``schema.fbs`` (vtable slot = 4 + 2 * field).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tensor_inspector.backends.base import CorruptFile

# TensorType enum -> numpy dtype name (None: no numpy equivalent, shown without values)
TENSOR_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("FLOAT32", "float32"),
    1: ("FLOAT16", "float16"),
    2: ("INT32", "int32"),
    3: ("UINT8", "uint8"),
    4: ("INT64", "int64"),
    5: ("STRING", None),
    6: ("BOOL", "bool"),
    7: ("INT16", "int16"),
    8: ("COMPLEX64", "complex64"),
    9: ("INT8", "int8"),
    10: ("FLOAT64", "float64"),
    11: ("COMPLEX128", "complex128"),
    12: ("UINT64", "uint64"),
    13: ("RESOURCE", None),
    14: ("VARIANT", None),
    15: ("UINT32", "uint32"),
    16: ("UINT16", "uint16"),
    17: ("INT4", None),
    18: ("BFLOAT16", "bfloat16"),
    19: ("INT2", None),
    20: ("UINT4", None),
}


@dataclass
class Quantization:
    scale: list[float] = field(default_factory=list)
    zero_point: list[int] = field(default_factory=list)
    quantized_dimension: int = 0
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    type: int
    buffer: int
    quantization: Quantization | None
    is_variable: bool


@dataclass
class SubGraph:
    name: str
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    operators: list[tuple[int, list[int], list[int]]]  # (opcode index, inputs, outputs)


@dataclass
class Signature:
    key: str
    subgraph: int
    inputs: dict[str, int]  # signature name -> tensor index
    outputs: dict[str, int]


@dataclass
class Model:
    version: int
    description: str
    operator_codes: list[tuple[int, str]]  # (builtin code, custom code)
    subgraphs: list[SubGraph]
    buffers: list[tuple[int, int]]  # (absolute file offset, size); size 0 = no data
    signatures: list[Signature]


class _Reader:
    def __init__(self, data: bytes | memoryview, name: str):
        self.data = data
        self.name = name

    def _bad(self) -> CorruptFile:
        return CorruptFile(f"{self.name} is a damaged TFLite model (an offset points outside the file).")

    def u(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            raise self._bad()
        value: int = struct.unpack_from(fmt, self.data, pos)[0]
        return value

    def field(self, table: int, slot: int) -> int:
        """Absolute position of field ``slot`` of ``table``, 0 when absent."""
        vtable = table - self.u("<i", table)
        vsize = self.u("<H", vtable)
        where = 4 + 2 * slot
        if where + 2 > vsize:
            return 0
        rel = self.u("<H", vtable + where)
        return table + rel if rel else 0

    def scalar(self, table: int, slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, slot)
        return self.u(fmt, pos) if pos else default

    def ref(self, table: int, slot: int) -> int:
        pos = self.field(table, slot)
        return pos + self.u("<I", pos) if pos else 0

    def vector(self, table: int, slot: int) -> tuple[int, int]:
        """(start of elements, count) of a vector field; (0, 0) when absent."""
        pos = self.ref(table, slot)
        if not pos:
            return 0, 0
        count = self.u("<I", pos)
        if count > len(self.data):
            raise self._bad()
        return pos + 4, count

    def numbers(self, table: int, slot: int, fmt: str) -> list[int]:
        start, count = self.vector(table, slot)
        size = struct.calcsize(fmt)
        if start + count * size > len(self.data):
            raise self._bad()
        return list(struct.unpack_from(f"<{count}{fmt}", self.data, start)) if count else []

    def tables(self, table: int, slot: int) -> list[int]:
        start, count = self.vector(table, slot)
        return [start + 4 * i + self.u("<I", start + 4 * i) for i in range(count)]

    def string(self, table: int, slot: int) -> str:
        start, count = self.vector(table, slot)
        if start + count > len(self.data):
            raise self._bad()
        return bytes(self.data[start : start + count]).decode("utf-8", "replace") if count else ""


def parse(data: bytes | memoryview, name: str) -> Model:
    """The model's structure; buffer contents stay in the file (offsets only)."""
    r = _Reader(data, name)
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise CorruptFile(f"{name} is not a TFLite model (no TFL3 identifier).")
    root = r.u("<I", 0)
    codes = []
    for t in r.tables(root, 1):
        # builtin_code (field 3) replaced the byte-wide field 0 once ops passed 127
        code = max(r.scalar(t, 0, "<b"), r.scalar(t, 3, "<i"))
        codes.append((code, r.string(t, 1)))
    buffers = []
    for b in r.tables(root, 4):
        start, count = r.vector(b, 0)
        offset, size = r.scalar(b, 1, "<Q"), r.scalar(b, 2, "<Q")
        if count:
            buffers.append((start, count))
        elif offset > 1 and size:  # >2 GB models keep data after the flatbuffer
            buffers.append((offset, size))
        else:
            buffers.append((0, 0))
    subgraphs = [_subgraph(r, s) for s in r.tables(root, 2)]
    signatures = []
    for s in r.tables(root, 7):
        signatures.append(
            Signature(
                key=r.string(s, 2),
                subgraph=r.scalar(s, 4, "<I"),
                inputs={r.string(m, 0): r.scalar(m, 1, "<I") for m in r.tables(s, 0)},
                outputs={r.string(m, 0): r.scalar(m, 1, "<I") for m in r.tables(s, 1)},
            )
        )
    for begin, size in buffers:
        if begin + size > len(data):
            raise CorruptFile(f"{name} is truncated: a weight buffer ends past the end of the file.")
    return Model(
        version=r.scalar(root, 0, "<I"),
        description=r.string(root, 3),
        operator_codes=codes,
        subgraphs=subgraphs,
        buffers=buffers,
        signatures=signatures,
    )


def _subgraph(r: _Reader, s: int) -> SubGraph:
    tensors = []
    for i, t in enumerate(r.tables(s, 0)):
        quant = None
        q = r.ref(t, 4)
        if q:
            quant = Quantization(
                scale=[float(v) for v in r.numbers(q, 2, "f")],
                zero_point=r.numbers(q, 3, "q"),
                quantized_dimension=r.scalar(q, 6, "<i"),
                min=[float(v) for v in r.numbers(q, 0, "f")],
                max=[float(v) for v in r.numbers(q, 1, "f")],
            )
        signature = r.numbers(t, 7, "i")
        tensors.append(
            Tensor(
                index=i,
                name=r.string(t, 3),
                shape=tuple(r.numbers(t, 0, "i")),
                shape_signature=tuple(signature) if signature else None,
                type=r.scalar(t, 1, "<b"),
                buffer=r.scalar(t, 2, "<I"),
                quantization=quant,
                is_variable=bool(r.scalar(t, 5, "<B")),
            )
        )
    operators = [(r.scalar(o, 0, "<I"), r.numbers(o, 1, "i"), r.numbers(o, 2, "i")) for o in r.tables(s, 3)]
    return SubGraph(
        name=r.string(s, 4),
        tensors=tensors,
        inputs=r.numbers(s, 1, "i"),
        outputs=r.numbers(s, 2, "i"),
        operators=operators,
    )
