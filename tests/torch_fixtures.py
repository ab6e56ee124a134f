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


# -- TorchScript with control flow, made the way voice-activity and streaming models are ------


class VadEncoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv1d(4, 4, 3, padding=1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))


class VadLike(torch.nn.Module):
    """Checks the input length in an ``if`` (raising otherwise), encodes inside the branch,
    then steps an LSTM cell over time in a ``for`` loop: all layers live in control flow."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = VadEncoder()
        self.cell = torch.nn.LSTMCell(4, 3)
        self.head = torch.nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, sr: int) -> torch.Tensor:
        if x.shape[-1] == 512:
            feats = self.encoder(x.unsqueeze(1))
        else:
            raise Exception(
                f"Provided number of samples is {x.shape[-1]} (Supported values: 512 for {sr} sample rate)"
            )
        h = torch.zeros(x.shape[0], 3)
        c = torch.zeros(x.shape[0], 3)
        for t in range(feats.shape[-1] // 64):
            h, c = self.cell(feats[:, :, t * 64] * float(sr) / 16000.0, (h, c))
        return torch.sigmoid(self.head(h))


def vad_like(seed: int = 0) -> VadLike:
    torch.manual_seed(seed)
    return VadLike().eval()


class Repeat(torch.nn.Module):
    """A loop whose count is an ``int`` input with a default, and a branch inside the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.step = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, n: int = 2) -> torch.Tensor:
        for i in range(n):
            if i % 2 == 0:
                x = torch.tanh(self.step(x))
            else:
                x = x * 0.5
        return x + 1.0


def repeat(seed: int = 0) -> Repeat:
    torch.manual_seed(seed)
    return Repeat().eval()


class TracedNet(torch.nn.Module):
    """Submodules and an in-place op after them, for torch.jit.trace."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = VadEncoder()
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encoder(x)
        y.mul_(2.0)  # changes the encoder's output in place
        return self.head(y.mean(-1))


def traced_net(seed: int = 0) -> TracedNet:
    torch.manual_seed(seed)
    return TracedNet().eval()


def save_scripted(model: torch.nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(model), str(path))
    return path


def save_traced(model: torch.nn.Module, example: torch.Tensor, path: Path) -> Path:
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(model, (example,)), str(path))
    return path


def record_calls(model: torch.nn.Module) -> dict[str, list[dict[str, list[torch.Tensor]]]]:
    """Forward hooks on every submodule: per module name, one record of inputs/outputs per call.

    Values are cloned when the hook runs, so a later in-place op does not change them.
    """
    calls: dict[str, list[dict[str, list[torch.Tensor]]]] = {}

    def flat(value: object) -> list[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            return [value.detach().clone()]
        if isinstance(value, (tuple, list)):
            return [t for item in value for t in flat(item)]
        return []

    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m: torch.nn.Module, args: object, out: object, name: str = name) -> None:
            calls.setdefault(name, []).append({"inputs": flat(args), "outputs": flat(out)})

        module.register_forward_hook(hook)
    return calls


class Stacked(torch.nn.Module):
    """Residual blocks in a ModuleList iterated by a for loop (unrolled by TorchScript)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            [torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()) for _ in range(2)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x) + x
        return x


def stacked(seed: int = 0) -> Stacked:
    torch.manual_seed(seed)
    return Stacked().eval()
