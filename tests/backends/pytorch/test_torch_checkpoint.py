"""torch.save files: dtypes, nesting, legacy format, GPU locations, laziness, detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from torch_fixtures import all_dtype_state_dict, save_on_gpu

from tensor_inspector.backends import NodeKind, open_path
from tensor_inspector.backends.pytorch.backend import TorchBackend
from tensor_inspector.backends.registry import detect


def expected_numpy(tensor: torch.Tensor) -> np.ndarray:
    """The bits of ``tensor`` as the numpy dtype the backend must return."""
    views = {
        torch.bfloat16: (torch.int16, ml_dtypes.bfloat16),
        torch.float8_e4m3fn: (torch.uint8, ml_dtypes.float8_e4m3fn),
        torch.float8_e5m2: (torch.uint8, ml_dtypes.float8_e5m2),
    }
    if tensor.dtype in views:
        int_dtype, np_dtype = views[tensor.dtype]
        return tensor.view(int_dtype).numpy().view(np_dtype)
    return tensor.numpy()


@pytest.fixture(scope="module")
def dtype_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dtypes") / "all_dtypes.pt"
    torch.save(all_dtype_state_dict(), path)
    return path


def test_every_dtype_reads_with_identical_bits(dtype_file: Path) -> None:
    state = all_dtype_state_dict()
    with open_path(dtype_file) as source:
        assert [n.id for n in source.value_nodes()] == list(state)
        for name, tensor in state.items():
            node = source.node(name)
            assert node.kind is NodeKind.TENSOR
            assert node.framework_dtype == name
            assert node.dtype == name
            assert node.shape == (2, 3)
            value = source.read(name)
            expected = expected_numpy(tensor)
            assert value.dtype == expected.dtype
            assert value.tobytes() == expected.tobytes(), name


def test_slices_read_only_the_selection(dtype_file: Path) -> None:
    with open_path(dtype_file) as source:
        value = source.read("bfloat16", (1, slice(None, None, -1)))
        expected = expected_numpy(all_dtype_state_dict()["bfloat16"])[1, ::-1]
        assert value.dtype == np.dtype(ml_dtypes.bfloat16)
        assert value.tobytes() == expected.tobytes()


def test_nested_training_checkpoint(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 7,
        "name": "run-1",
        "betas": [0.9, 0.999],
        "history": [],
        "trunk": {"inner": {"w": torch.arange(6.0).reshape(2, 3)}},
    }
    path = tmp_path / "train.ckpt"
    torch.save(checkpoint, path)
    with open_path(path) as source:
        assert source.node("model").kind is NodeKind.GROUP
        assert [n.id for n in source.children("model")][:2] == ["model/0.weight", "model/0.bias"]
        assert source.read("model/0.weight").tobytes() == model[0].weight.detach().numpy().tobytes()
        epoch = source.node("epoch")
        assert epoch.kind is NodeKind.VALUE and epoch.metadata["value"] == "7"
        assert source.read("epoch") == 7
        assert source.read("name") == np.asarray("run-1")
        assert source.read("betas").tolist() == [0.9, 0.999]
        assert source.node("history").kind is NodeKind.GROUP
        step = optimizer.state_dict()["state"][0]["exp_avg"]
        assert np.array_equal(source.read("optimizer/state/0/exp_avg"), step.numpy())
        assert source.read("trunk/inner/w", (1,)).tolist() == [3.0, 4.0, 5.0]
        assert source.node("model/1.num_batches_tracked").dtype == "int64"


def test_parameters_and_requires_grad(tmp_path: Path) -> None:
    path = tmp_path / "params.pt"
    torch.save(
        {
            "p": torch.nn.Parameter(torch.ones(2)),
            "g": torch.zeros(2, requires_grad=True),
            "plain": torch.zeros(2),
        },
        path,
    )
    with open_path(path) as source:
        assert source.node("p").metadata["parameter"] is True
        assert source.node("p").metadata["requires_grad"] is True
        assert source.node("g").metadata == {
            **source.node("g").metadata,
            "parameter": False,
            "requires_grad": True,
        }
        assert source.node("plain").metadata["requires_grad"] is False
        assert source.read("p").tolist() == [1.0, 1.0]


def test_legacy_format(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pth"
    state = {
        "w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "b": torch.ones(3, dtype=torch.bfloat16),
        "step": 3,
    }
    torch.save(state, path, _use_new_zipfile_serialization=False)
    with open_path(path) as source:
        assert "legacy" in source.format_name
        assert source.read("w", (slice(1, 3), 0)).tolist() == [4.0, 8.0]
        assert source.read("b").dtype == np.dtype(ml_dtypes.bfloat16)
        assert source.read("step") == 3


def test_gpu_storage_opens_on_cpu_and_shows_device(tmp_path: Path) -> None:
    weight = torch.randn(3, 2)
    path = save_on_gpu({"w": weight, "half": torch.ones(2, dtype=torch.float16)}, tmp_path / "gpu.pt")
    with pytest.raises(RuntimeError):  # proves the file really names a CUDA device
        torch.load(path, weights_only=True)
    with open_path(path) as source:
        assert source.node("w").metadata["device"] == "cuda:0"
        assert source.read("w").tobytes() == weight.numpy().tobytes()


def test_views_and_shared_storage(tmp_path: Path) -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"base": base, "column": base[:, 2], "transposed": base.t(), "tail": base[2:]}
    path = tmp_path / "views.pt"
    torch.save(state, path)
    with open_path(path) as source:
        for name, tensor in state.items():
            assert np.array_equal(source.read(name), tensor.numpy()), name
        assert source.node("column").metadata["stride"] == (6,)
        assert source.node("column").metadata["storage_offset"] == 2
        assert source.node("transposed").metadata["contiguous"] is False


def test_quantized_and_sparse(tmp_path: Path) -> None:
    q = torch.quantize_per_tensor(torch.tensor([0.0, 0.5, 1.0]), 0.25, 2, torch.quint8)
    qc = torch.quantize_per_channel(
        torch.randn(2, 3), torch.tensor([0.1, 0.2]), torch.tensor([0, 1]), 0, torch.qint8
    )
    sparse = torch.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse()
    path = tmp_path / "q.pt"
    torch.save({"q": q, "qc": qc, "sparse": sparse}, path)
    with open_path(path) as source:
        node = source.node("q")
        assert node.dtype == "uint8" and node.framework_dtype == "quint8"
        assert node.metadata["quantization"] == {
            "scheme": "per_tensor_affine",
            "scale": 0.25,
            "zero_point": 2,
        }
        assert source.read("q").tolist() == [2, 4, 6]
        assert source.node("qc").metadata["quantization"]["axis"] == 0
        assert np.array_equal(source.read("qc"), qc.int_repr().numpy())
        assert source.node("sparse").metadata["layout"] == "sparse_coo"
        assert source.read("sparse").tolist() == [[0.0, 2.0], [3.0, 0.0]]


def test_zip_checkpoint_is_memory_mapped_and_close_unmaps(tmp_path: Path) -> None:
    """Opening maps the file instead of reading it; one slice reads; close releases the map."""
    path = tmp_path / "big.pt"
    big = torch.arange(4 * 1024 * 1024, dtype=torch.float32).reshape(1024, 4096)
    torch.save({"big": big, "small": torch.ones(2)}, path)
    del big
    source = open_path(path)
    maps = Path("/proc/self/maps").read_text()
    assert str(path) in maps
    assert source.node("big").nbytes == 16 * 1024 * 1024
    assert source.read("big", (1000, slice(0, 3))).tolist() == [4096000.0, 4096001.0, 4096002.0]
    source.close()
    assert str(path) not in Path("/proc/self/maps").read_text()


def test_detection_is_specific(tmp_path: Path) -> None:
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.ones(3))
    assert TorchBackend().detect(npz) == 0.0
    pt = tmp_path / "model.bin"
    torch.save({"a": torch.ones(1)}, pt)
    legacy = tmp_path / "legacy.pt"
    torch.save({"a": torch.ones(1)}, legacy, _use_new_zipfile_serialization=False)
    for path in (pt, legacy):
        ranked = detect(path)
        assert ranked[0][1].name == "torch"
        assert all(b.name != "pickle" for _, b in ranked)


def test_importing_and_detecting_do_not_import_torch(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"a": torch.ones(1)}, path)
    code = (
        "import sys\n"
        "from tensor_inspector.backends.pytorch import backend as torch_backend\n"
        "from tensor_inspector.backends.pickles import backend as pickle_backend\n"
        f"assert torch_backend.TorchBackend().detect({str(path)!r}) > 0.5\n"
        f"assert pickle_backend.PickleBackend().detect({str(path)!r}) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_pickled_module_needs_trust_and_shows_its_state(tmp_path: Path) -> None:
    from torch_fixtures import three_layer

    from tensor_inspector.backends import InspectorError, TrustRequired

    model = three_layer()
    path = tmp_path / "full_model.pt"
    torch.save({"model": model, "epoch": 1}, path)
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert "torch_fixtures.ThreeLayer" in info.value.globals_needed
    with open_path(path, trust=True) as source:
        assert np.array_equal(source.read("model/fc1.bias"), model.fc1.bias.detach().numpy())
        assert source.node("model/fc1.bias").metadata["parameter"] is True
        with pytest.raises(InspectorError):
            source.write(tmp_path / "out.pt", {"model/fc1.bias": np.zeros(6, np.float32)})


def test_lightning_style_checkpoint(tmp_path: Path) -> None:
    checkpoint = {
        "epoch": 4,
        "global_step": 800,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": {"net.weight": torch.ones(2, 2)},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.01, "params": [0]}]}],
        "lr_schedulers": [{"last_epoch": 4, "_last_lr": [0.01]}],
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25)}},
        "hyper_parameters": {"hidden": 32, "dropout": 0.1},
    }
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    with open_path(path) as source:
        assert source.read("state_dict/net.weight").tolist() == [[1.0, 1.0], [1.0, 1.0]]
        assert source.read("optimizer_states/0/param_groups/0/lr") == 0.01
        assert source.read("pytorch-lightning_version") == np.asarray("2.4.0")
        score = "callbacks/ModelCheckpoint{'monitor': 'val_loss'}/best_model_score"
        assert source.read(score) == np.float32(0.25)
        assert source.node("optimizer_states/0/state").kind is NodeKind.GROUP


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_protocol_4_checkpoints_open_safely(tmp_path: Path, zip_format: bool) -> None:
    """torch's weights-only unpickler speaks protocol 2 only; our allow-list reads the rest."""
    path = tmp_path / "p4.pt"
    state = {"w": torch.arange(4.0), "b": torch.ones(2, dtype=torch.bfloat16), "step": 9}
    torch.save(state, path, pickle_protocol=4, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(Exception, match="Weights only load failed|Unsupported operand"):
        torch.load(path, weights_only=True)  # why the fallback exists
    with open_path(path) as source:
        assert source.read("w").tolist() == [0.0, 1.0, 2.0, 3.0]
        assert source.read("b").dtype == np.dtype(ml_dtypes.bfloat16)
        assert source.read("step") == 9
