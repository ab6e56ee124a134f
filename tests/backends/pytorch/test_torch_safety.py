"""Hostile and damaged torch files are refused with one clear sentence; nothing runs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
from torch_fixtures import (
    SystemPayload,
    hostile_pickle,
    rewrite_torch_zip,
    three_layer,
    torch_zip_with_data_pkl,
)

from tensor_inspector.backends import CorruptFile, InspectorError, TrustRequired, open_path
from tensor_inspector.backends.pytorch.export_check import expr_allowed, target_allowed


def assert_clear(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text and "Traceback" not in text
    assert len(text) < 400


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("kind", ["system", "eval"])
def test_torch_zip_with_hostile_data_pkl_is_refused(tmp_path: Path, protocol: int, kind: str) -> None:
    canary = tmp_path / "canary"
    path = torch_zip_with_data_pkl(tmp_path / "model.pt", hostile_pickle(canary, protocol, kind))
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert_clear(info.value)
    wanted = "posix.system" if kind == "system" else "builtins.eval"
    assert any(name.endswith(wanted.split(".")[1]) for name in info.value.globals_needed)
    assert wanted.split(".")[1] in str(info.value)
    assert not canary.exists()


def test_env_var_does_not_weaken_safe_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    canary = tmp_path / "canary"
    path = torch_zip_with_data_pkl(tmp_path / "model.pt", hostile_pickle(canary, 2))
    with pytest.raises(TrustRequired):
        open_path(path)
    assert not canary.exists()
    # a safe file still opens normally with the variable set
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    with open_path(good) as source:
        assert source.read("w").tolist() == [1.0, 1.0]


def test_trusting_runs_the_payload(tmp_path: Path) -> None:
    """The canary mechanism works: with trust the same file does run its code."""
    canary = tmp_path / "canary"
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2), "evil": SystemPayload(canary)}, path)
    with pytest.raises(TrustRequired):
        open_path(path)
    assert not canary.exists()
    with open_path(path, trust=True) as source:
        assert source.read("w").tolist() == [1.0, 1.0]
    assert canary.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_legacy_file_with_payload_is_refused(tmp_path: Path, protocol: int) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "legacy.pt"
    torch.save(
        {"w": torch.ones(2), "evil": SystemPayload(canary)},
        path,
        _use_new_zipfile_serialization=False,
        pickle_protocol=protocol,
    )
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert_clear(info.value)
    assert "posix.system" in info.value.globals_needed
    assert not canary.exists()


def test_plain_pickle_named_like_a_torch_file_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(hostile_pickle(canary, 4))
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert_clear(info.value)
    assert not canary.exists()


def test_torchscript_needs_trust(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(three_layer(), torch.randn(1, 4)), path)
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert_clear(info.value)
    assert "TorchScript" in str(info.value)


def test_truncated_zip_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(64, 64)}, good)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptFile) as info:
            open_path(path)
        assert_clear(info.value)
        assert "truncated" in str(info.value)


def test_truncated_legacy_file_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.randn(64, 64), "b": torch.ones(3)}, good, _use_new_zipfile_serialization=False)
    data = good.read_bytes()
    for cut in (60, len(data) // 2, len(data) - 10):
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(InspectorError) as info:
            open_path(path)
        assert isinstance(info.value, CorruptFile), info.value
        assert_clear(info.value)


def _export_archive(tmp_path: Path) -> Path:
    program = torch.export.export(three_layer(), (torch.randn(2, 4),))
    path = tmp_path / "program.pt2"
    torch.export.save(program, str(path))
    return path


def _patch_zip(src: Path, dst: Path, tail: str, patch) -> Path:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(dst, "w") as out:
        for name in archive.namelist():
            data = archive.read(name)
            out.writestr(name, patch(data) if name.endswith(tail) else data)
    return dst


def test_export_archive_with_hostile_sample_inputs_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    evil = tmp_path / "evil_inputs.pt"
    torch.save(((SystemPayload(canary),), {}), evil)
    path = _patch_zip(
        _export_archive(tmp_path),
        tmp_path / "evil.pt2",
        "sample_inputs/model.pt",
        lambda _: evil.read_bytes(),
    )
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert_clear(info.value)
    assert "sample inputs" in str(info.value)
    assert not canary.exists()


def test_export_archive_with_foreign_call_target_is_refused(tmp_path: Path) -> None:
    def patch(data: bytes) -> bytes:
        program = json.loads(data)
        program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.serialization.os.system"
        return json.dumps(program).encode()

    path = _patch_zip(_export_archive(tmp_path), tmp_path / "evil.pt2", "models/model.json", patch)
    with pytest.raises(TrustRequired) as info:
        open_path(path)
    assert "torch.serialization.os.system" in str(info.value)


def test_export_checks() -> None:
    assert target_allowed("torch.ops.aten.linear.default")
    assert target_allowed("_operator.getitem")
    assert not target_allowed("_operator.attrgetter")
    assert not target_allowed("torch.ops.aten.from_file.default")
    assert not target_allowed("builtins.eval")
    assert expr_allowed("s0 + 2*s1") and expr_allowed("Max(1, FloorDiv(s77, 2))")
    assert not expr_allowed("__import__('os').system('x')")
    assert not expr_allowed("s0.__class__")
    assert not expr_allowed("Symbol.mro")


def test_unreadable_tensor_data_in_a_good_zip(tmp_path: Path) -> None:
    """A storage record shorter than its tensor gives an error, not a crash."""
    good = tmp_path / "good.pt"
    torch.save({"w": torch.arange(1000.0)}, good)
    path = rewrite_torch_zip(good, tmp_path / "short.pt", lambda r, d: d[:16] if r.startswith("data/") else d)
    with pytest.raises(InspectorError) as info:
        with open_path(path) as source:
            source.read("w")
    assert_clear(info.value)
