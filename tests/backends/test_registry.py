"""Backend registry: detection order, plugins through entry points, missing frameworks."""

from importlib.metadata import EntryPoint

import numpy as np
import pytest

from tensor_inspector.backends import Backend, MissingFramework, Source, registry
from tensor_inspector.backends.base import Node, NodeKind, read_head


class TextTensorSource(Source):
    """A toy format: a file starting with 'TXT1' followed by comma-separated numbers."""

    backend_name = "text-tensor"
    format_name = "text tensor"

    def __init__(self, path):
        super().__init__(path)
        self.values = np.array([float(v) for v in path.read_text()[4:].split(",")], np.float32)
        self._add(
            Node(
                id="values",
                name="values",
                kind=NodeKind.TENSOR,
                dtype="float32",
                shape=self.values.shape,
                nbytes=self.values.nbytes,
            )
        )

    def _read(self, node, index):
        return self.values if index is None else self.values[index]


class TextTensorBackend(Backend):
    name = "text-tensor"
    description = "toy text tensors"

    def detect(self, path):
        return 1.0 if read_head(path, 4) == b"TXT1" else 0.0

    def open(self, path, trust=False):
        return TextTensorSource(path)


class NeedsMissingFramework(TextTensorBackend):
    name = "needs-missing"
    framework = "a_framework_that_is_not_installed"
    extra = "missing"


@pytest.fixture
def plugin(monkeypatch):
    """Register a backend the way a third-party package's entry point would."""

    def fake_entry_points(group=None):
        assert group == registry.ENTRY_POINT_GROUP
        return [EntryPoint("text-tensor", f"{__name__}:TextTensorBackend", group)]

    monkeypatch.setattr("importlib.metadata.entry_points", fake_entry_points)
    registry.available_backends.cache_clear()
    yield
    registry.available_backends.cache_clear()


def test_entry_point_backend_opens_its_files(plugin, tmp_path):
    (tmp_path / "v.txt").write_text("TXT11,2,3.5")
    assert "text-tensor" in registry.available_backends()
    source = registry.open_path(tmp_path / "v.txt")
    np.testing.assert_array_equal(source.read("values"), [1, 2, 3.5])
    assert "toy text tensors" in registry.supported_formats()


def test_builtin_backends_are_all_registered():
    assert set(registry.available_backends()) >= {
        "numpy",
        "safetensors",
        "torch",
        "pickle",
        "tensorflow",
        "keras",
    }


def test_missing_framework_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "v.txt").write_text("TXT11")
    monkeypatch.setattr(registry, "detect", lambda path: [(1.0, NeedsMissingFramework())])
    with pytest.raises(MissingFramework, match=r"install tensor-inspector\[missing\]"):
        registry.open_path(tmp_path / "v.txt")


def test_detection_prefers_content_over_extension(tmp_path):
    with open(tmp_path / "really_npy.safetensors", "wb") as fh:  # np.save(fh) keeps the name
        np.save(fh, np.arange(3))
    best = registry.detect(tmp_path / "really_npy.safetensors")[0][1]
    assert best.name == "numpy"
    source = registry.open_path(tmp_path / "really_npy.safetensors")
    np.testing.assert_array_equal(source.read("array"), [0, 1, 2])
