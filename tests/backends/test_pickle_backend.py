"""Plain pickles: allow-listed arrays, tensors and containers open; anything else is refused."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from torch_fixtures import SystemPayload, hostile_pickle

from tensor_inspector.backends import CorruptFile, NodeKind, TrustRequired, open_path
from tensor_inspector.backends.pickles.backend import PickleBackend
from tensor_inspector.backends.pickles.safe_unpickler import globals_in_pickle


def sample() -> dict:
    return {
        "weights": np.arange(12, dtype=np.float32).reshape(3, 4),
        "bf16": np.array([1.5, -2.25, 3.0], dtype=ml_dtypes.bfloat16),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "tensor": torch.arange(6, dtype=torch.float64).reshape(2, 3),
        "tensor_bf16": torch.tensor([0.5, 1.25], dtype=torch.bfloat16),
        "nested": OrderedDict(step=3, name="run", shape=(2, 3), scalar=np.float32(1.5)),
        "items": [np.ones(2, np.uint8), {"deep": np.zeros((1, 1), np.complex64)}],
        "flags": {1, 2},
    }


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_allow_listed_pickles_open_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / f"data_p{protocol}.pkl"
    path.write_bytes(pickle.dumps(sample(), protocol=protocol))
    with open_path(path) as source:
        assert source.backend_name == "pickle"
        assert np.array_equal(source.read("weights"), sample()["weights"])
        bf16 = source.read("bf16")
        assert bf16.dtype == np.dtype(ml_dtypes.bfloat16)
        assert bf16.tobytes() == sample()["bf16"].tobytes()
        assert np.array_equal(source.read("fortran", (1,)), [3, 4, 5])
        assert source.node("tensor").framework_dtype == "float64"
        assert np.array_equal(source.read("tensor"), np.arange(6.0).reshape(2, 3))
        tensor_bf16 = source.read("tensor_bf16")
        assert tensor_bf16.dtype == np.dtype(ml_dtypes.bfloat16)
        assert tensor_bf16.tolist() == [0.5, 1.25]
        assert source.node("nested/step").kind is NodeKind.VALUE
        assert source.read("nested/step") == 3
        assert source.read("nested/name") == np.asarray("run")
        assert source.read("nested/shape").tolist() == [2, 3]
        assert source.read("items/1/deep").dtype == np.complex64
        assert source.node("flags").metadata["value"] == "{1, 2}"


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("kind", ["system", "eval"])
def test_hostile_pickles_are_refused(tmp_path: Path, protocol: int, kind: str) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pkl"
    path.write_bytes(hostile_pickle(canary, protocol, kind))
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    message = str(info.value)
    assert "\n" not in message and ("system" in message or "eval" in message)
    assert info.value.globals_needed and all("numpy" not in g for g in info.value.globals_needed)
    assert not canary.exists()


def test_trusted_pickle_runs_and_opens(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pkl"
    path.write_bytes(hostile_pickle(canary, 4))
    with open_path(path, trust=True) as source:
        assert source.read("weight").tolist() == [1.0, 1.0, 1.0]
    assert canary.exists()  # the refusal above is what kept this from happening


def test_hostile_storage_bytes_inside_a_tensor_pickle(tmp_path: Path) -> None:
    """torch pickles storages as torch.save bytes; those are loaded weights-only too."""
    canary = tmp_path / "canary"
    buffer = io.BytesIO()
    torch.save(SystemPayload(canary), buffer)

    class Storage:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            from torch.storage import _load_from_bytes

            return (_load_from_bytes, (buffer.getvalue(),))

    path = tmp_path / "tensor.pkl"
    path.write_bytes(pickle.dumps({"s": Storage()}, protocol=2))
    assert "torch.storage._load_from_bytes" in globals_in_pickle(path.read_bytes())
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert "system" in str(info.value)
    assert not canary.exists()


def test_truncated_pickle_is_a_clear_error(tmp_path: Path) -> None:
    data = pickle.dumps(sample(), protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFile) as info:
        open_path(path)
    assert "\n" not in str(info.value) and "cut.pkl" in str(info.value)


def test_detection(tmp_path: Path) -> None:
    backend = PickleBackend()
    plain = tmp_path / "data.bin"
    plain.write_bytes(pickle.dumps({"a": np.ones(2)}, protocol=4))
    assert backend.detect(plain) == 0.5
    proto0 = tmp_path / "old.pkl"
    proto0.write_bytes(pickle.dumps({"a": 1}, protocol=0))
    assert backend.detect(proto0) > 0
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert backend.detect(text) == 0
    npz = tmp_path / "a.npz"
    np.savez(npz, a=np.ones(2))
    assert backend.detect(npz) == 0


def test_write_replaces_one_array(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(sample(), protocol=4))
    out = tmp_path / "out.pkl"
    new_bf16 = np.array([9.0, 8.0, 7.0], dtype=ml_dtypes.bfloat16)
    new_tensor = np.full((2, 3), -1.0)
    with open_path(path) as source:
        source.write(out, {"bf16": new_bf16, "tensor": new_tensor})
    with open_path(out) as again:
        assert again.read("bf16").tobytes() == new_bf16.tobytes()
        assert np.array_equal(again.read("tensor"), new_tensor)
        assert np.array_equal(again.read("weights"), sample()["weights"])
    loaded = pickle.loads(out.read_bytes())  # our own output, written from allow-listed data
    assert list(loaded) == list(sample())
    assert isinstance(loaded["tensor"], torch.Tensor) and loaded["tensor"].dtype == torch.float64
    assert type(loaded["nested"]) is OrderedDict and loaded["nested"]["name"] == "run"


def test_torch_needed_only_for_torch_tensors(tmp_path: Path) -> None:
    arrays = tmp_path / "arrays.pkl"
    arrays.write_bytes(pickle.dumps({"a": np.ones(2)}, protocol=4))
    tensors = tmp_path / "tensors.pkl"
    tensors.write_bytes(pickle.dumps({"t": torch.ones(2)}, protocol=4))
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "from tensor_inspector.backends import open_path, MissingFramework\n"
        f"assert open_path({str(arrays)!r}).read('a').tolist() == [1.0, 1.0]\n"
        "try:\n"
        f"    open_path({str(tensors)!r})\n"
        "except MissingFramework as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('opened without torch')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "tensor-inspector[torch]" in result.stdout
