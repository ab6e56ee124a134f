"""Recursion bombs: deeply nested, self-referencing and shared-container pickles give one
sentence or a finite tree, through the pickle backend and torch's checkpoint path."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tensor_inspector.backends import CorruptFile, InspectorError, NodeKind, open_path
from tensor_inspector.backends.pickles import tree

DEPTH = 100_000


def one_sentence(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith(".") and "Error" not in text, text
    return text


def nested_lists(protocol: int, depth: int = DEPTH) -> bytes:
    """[[[...]]] ``depth`` deep, written opcode by opcode (pickle.dumps itself would recurse)."""
    body = b"]" * depth + b"a" * (depth - 1) + b"."  # EMPTY_LIST ..., APPEND ...
    return bytes([0x80, protocol]) + body


def nested_dicts(depth: int = DEPTH) -> bytes:
    """{"k": {"k": ...}} ``depth`` deep: EMPTY_DICT, key, ..., EMPTY_DICT, SETITEM ..."""
    key = b"X\x01\x00\x00\x00k"  # BINUNICODE "k"
    return b"\x80\x02" + (b"}" + key) * depth + b"}" + b"s" * depth + b"."


def torch_zip_with(path: Path, data_pkl: bytes) -> Path:
    """A torch.save zip archive whose data.pkl is replaced by ``data_pkl``."""
    torch.save({"a": 1}, path)
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data_pkl if name.endswith("data.pkl") else data)
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_deeply_nested_list_pickle_is_one_sentence(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "deep.pkl"
    path.write_bytes(nested_lists(protocol))
    with pytest.raises(CorruptFile) as info:
        open_path(path)
    assert one_sentence(info.value) == (
        f"deep.pkl is nested too deeply to read (more than {tree.MAX_DEPTH} levels)."
    )


@pytest.mark.parametrize("trust", [False, True])
def test_deeply_nested_dict_pickle_is_one_sentence(tmp_path: Path, trust: bool) -> None:
    path = tmp_path / "deep_dict.pkl"
    path.write_bytes(nested_dicts())
    with pytest.raises(CorruptFile, match="nested too deeply") as info:
        open_path(path, trust=trust)
    one_sentence(info.value)


def test_nesting_up_to_the_limit_still_opens(tmp_path: Path) -> None:
    obj: object = np.arange(3.0)
    for _ in range(tree.MAX_DEPTH - 1):
        obj = {"k": obj}
    path = tmp_path / "fine.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with open_path(path) as source:
        node_id = "/".join(["k"] * (tree.MAX_DEPTH - 1))
        np.testing.assert_array_equal(source.read(node_id), [0.0, 1.0, 2.0])


def test_self_referencing_containers_open_as_a_finite_tree(tmp_path: Path) -> None:
    loop: dict[str, object] = {"w": np.ones(2, np.float32)}
    loop["self"] = loop
    inner: list[object] = [np.zeros(1)]
    inner.append(inner)
    loop["inner"] = inner
    path = tmp_path / "cycle.pkl"
    path.write_bytes(pickle.dumps(loop, protocol=4))
    with open_path(path) as source:
        assert source.node("self").kind is NodeKind.GROUP
        assert "contains itself" in source.node("self").metadata["value"]
        assert "the top level" in source.node("self").metadata["value"]
        assert "'inner'" in source.node("inner/1").metadata["value"]
        np.testing.assert_array_equal(source.read("w"), [1, 1])
        np.testing.assert_array_equal(source.read("inner/0"), [0.0])
        with pytest.raises(InspectorError):
            source.read("self")  # a reference, not a value
        source.write(tmp_path / "out.pkl", {"w": np.full(2, 5, np.float32)})
    with open_path(tmp_path / "out.pkl") as saved:  # the path written is replaced, and it opens
        np.testing.assert_array_equal(saved.read("w"), [5, 5])


def test_shared_containers_do_not_multiply_the_tree(tmp_path: Path) -> None:
    # 60 levels of a list holding the same list twice: 2**60 paths in a few hundred bytes
    shared: list[object] = ["leaf", "leaf"]
    for _ in range(60):
        shared = [shared, shared]
    path = tmp_path / "laughs.pkl"
    path.write_bytes(pickle.dumps(shared, protocol=2))
    assert path.stat().st_size < 2000
    with open_path(path) as source:
        assert len(source.nodes) < 500
        assert "shown there" in source.node("1").metadata["value"]
    # a repeated tuple of leaves (pickle memoizes it) is still shown in both places
    pair = ("a", "b")
    path.write_bytes(pickle.dumps({"x": pair, "y": pair}))
    with open_path(path) as source:
        assert source.read("y/1") == np.asarray("b")


def test_too_many_nodes_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree, "MAX_NODES", 1000)
    path = tmp_path / "wide.pkl"
    path.write_bytes(pickle.dumps({f"k{i}": "v" for i in range(5000)}))
    with pytest.raises(CorruptFile, match="more than 1,000 values") as info:
        open_path(path)
    one_sentence(info.value)


@pytest.mark.parametrize("protocol", [2, 4])  # 2: torch's weights-only reader; 4: our allow-list
def test_deeply_nested_torch_checkpoint_is_one_sentence(tmp_path: Path, protocol: int) -> None:
    path = torch_zip_with(tmp_path / "deep.pt", nested_lists(protocol))
    with pytest.raises(CorruptFile, match="nested too deeply") as info:
        open_path(path)
    assert info.value.__class__ is CorruptFile
    one_sentence(info.value)


@pytest.mark.parametrize("protocol", [2, 4])
def test_self_referencing_torch_checkpoint_opens(tmp_path: Path, protocol: int) -> None:
    loop: dict[str, object] = {"w": torch.arange(3.0)}
    loop["self"] = loop
    path = tmp_path / "cycle.pt"
    torch.save(loop, path, pickle_protocol=protocol)
    with open_path(path) as source:
        assert source.backend_name == "torch"
        assert "contains itself" in source.node("self").metadata["value"]
        np.testing.assert_array_equal(source.read("w"), [0.0, 1.0, 2.0])
