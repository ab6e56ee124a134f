"""Builders for torch test files, made with torch itself."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def rewrite_torch_zip(src: Path, dst: Path, patch: Callable[[str, bytes], bytes]) -> Path:
    """Copy a torch zip archive record by record through torch's own writer, patching records.

    torch's writer keeps the 64-byte record alignment that mmap loading relies on.
    """
    with zipfile.ZipFile(src) as archive:
        records = [(name.split("/", 1)[1], archive.read(name)) for name in archive.namelist()]
    writer = torch._C.PyTorchFileWriter(str(dst))
    for record, data in records:
        if record in (".data/serialization_id", ".data/version"):
            continue  # the writer adds these itself
        data = patch(record, data)
        writer.write_record(record, data, len(data))
    writer.write_end_of_file()
    del writer
    return dst


def save_on_gpu(obj: object, path: Path) -> Path:
    """Save on the CPU, then patch every storage location in data.pkl to ``cuda:0``."""
    plain = path.with_name(path.stem + "_cpu.pt")
    torch.save(obj, plain)

    def patch(record: str, data: bytes) -> bytes:
        if record != "data.pkl":
            return data
        patched = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
        assert patched != data
        return patched

    return rewrite_torch_zip(plain, path, patch)


class SystemPayload:
    """Unpickling this runs ``os.system`` to create the canary file."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.canary}'",))


class EvalPayload:
    """Unpickling this runs ``eval`` to create the canary file."""

    def __init__(self, canary: Path):
        self.canary = canary

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (eval, (f"__import__('pathlib').Path({str(self.canary)!r}).touch()",))


def hostile_pickle(canary: Path, protocol: int, kind: str = "system") -> bytes:
    payload = SystemPayload(canary) if kind == "system" else EvalPayload(canary)
    return pickle.dumps({"weight": np.ones(3, np.float32), "evil": payload}, protocol=protocol)


def torch_zip_with_data_pkl(path: Path, data_pkl: bytes) -> Path:
    """A genuine torch.save archive whose data.pkl was replaced by ``data_pkl``."""
    plain = path.with_name(path.stem + "_orig.pt")
    torch.save({"weight": torch.ones(3)}, plain)
    return rewrite_torch_zip(plain, path, lambda r, d: data_pkl if r == "data.pkl" else d)


class ThreeLayer(torch.nn.Module):
    """A small network with an intermediate value worth checking."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 6)
        self.fc2 = torch.nn.Linear(6, 5)
        self.fc3 = torch.nn.Linear(5, 2)
        self.register_buffer("scale", torch.tensor([1.5, 0.5, 2.0, 1.0, 3.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.fc1(x))
        scaled = torch.tanh(self.fc2(hidden)) * self.scale
        return self.fc3(scaled)


def three_layer(seed: int = 0) -> ThreeLayer:
    torch.manual_seed(seed)
    return ThreeLayer().eval()


def all_dtype_state_dict() -> dict[str, torch.Tensor]:
    """One tensor per dtype the backend must show, with awkward values included."""
    base = torch.tensor([[0.0, -1.5, 3.25], [1e-3, 65504.0, -0.0]])
    state = {
        "float32": base.clone(),
        "float16": base.to(torch.float16),
        "float64": base.to(torch.float64) / 3,
        "bfloat16": (base / 7).to(torch.bfloat16),
        "float8_e4m3fn": (base / 300).to(torch.float8_e4m3fn),
        "float8_e5m2": (base / 300).to(torch.float8_e5m2),
        "complex64": torch.complex(base, -base),
        "complex128": torch.complex(base, base).to(torch.complex128),
        "bool": base > 0,
    }
    for name in ("int8", "int16", "int32", "int64", "uint8"):
        state[name] = torch.tensor([[0, 1, -2], [3, 100, -7]]).to(getattr(torch, name))
    for name, np_dtype in (("uint16", np.uint16), ("uint32", np.uint32), ("uint64", np.uint64)):
        state[name] = torch.from_numpy(np.array([[0, 1, 2], [3, 2**15, 7]], dtype=np_dtype))
    return state
