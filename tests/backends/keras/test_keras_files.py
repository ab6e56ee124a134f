"""Keras .keras and .h5 files: weights read with h5py/zipfile only, Lambda flagged and never run."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import CorruptFile, NodeKind, UnsupportedFormat
from tensor_inspector.backends.keras.backend import KerasBackend

BACKEND = KerasBackend()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keras")
    canary = root / "canary.txt"
    keras_path, h5_path = tf_fixtures.keras_models(root, canary)
    return {"keras": keras_path, "h5": h5_path, "canary": canary}


def _reference_weights(path: Path) -> list[np.ndarray]:
    import keras

    model = keras.models.load_model(
        path, safe_mode=False, compile=False, custom_objects={"touch_canary": lambda t: t * 2.0}
    )
    return [w.numpy() for w in model.weights]


def test_detect(files, tmp_path):
    assert BACKEND.detect(files["keras"]) > 0.9
    assert BACKEND.detect(files["h5"]) > 0.8
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("a.txt", "x")
    assert BACKEND.detect(plain) == 0.0
    # any HDF5 is claimed by its magic alone (opening it to look inside happens in `open`,
    # in a child process); a non-Keras one is then refused there with a sentence


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_lambda_listed_flagged_and_never_executed(files, kind):
    with BACKEND.open(files[kind]) as source:
        lam = source.node("lam")
        assert lam.metadata["class_name"] == "Lambda" and lam.metadata["flagged"]
        assert "never executed" in lam.metadata["reason"]
        assert not source.node("d1").metadata["flagged"]
        assert [layer["path"] for layer in source.flagged] == [("lam",)]
        for node in source.value_nodes():
            if node.kind is NodeKind.TENSOR:
                source.read(node.id)
    assert not files["canary"].exists()


def test_weights_equal_keras_loader(files):
    import keras  # noqa: F401  (loaded here only to build the reference values)

    with BACKEND.open(files["keras"]) as source:
        kernel = next(
            n
            for n in source.nodes.values()
            if n.metadata.get("layer") == "d1" and n.kind is NodeKind.TENSOR and len(n.shape) == 2
        )
        values = sorted(
            source.read(n.id).tobytes() for n in source.value_nodes() if n.kind is NodeKind.TENSOR
        )
    assert kernel.shape == (3, 4)
    reference = sorted(w.tobytes() for w in _reference_weights(files["keras"]))
    assert values == reference
    files["canary"].unlink(missing_ok=True)  # the reference loader ran the lambda
    with BACKEND.open(files["h5"]) as source:
        kernel = source.read("d1/kernel")
        assert source.node("d1/kernel").metadata["h5_path"] == "model_weights/d1/d1/kernel"
        assert source.read("d1/kernel", (slice(1, 3), 0)).tolist() == kernel[1:3, 0].tolist()


def test_opening_does_not_import_tensorflow_or_keras(files):
    code = (
        "import sys; from tensor_inspector.backends.keras.backend import KerasBackend as K;"
        f"s = K().open({str(files['keras'])!r}); [s.read(n.id) for n in s.value_nodes() if n.kind.value == 'tensor'];"
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_write_round_trip(files, tmp_path, kind):
    with BACKEND.open(files[kind]) as source:
        target = source.node("d1/kernel")
        assert target.shape == (3, 4)
        before = {n.id: source.read(n.id) for n in source.value_nodes() if n.kind is NodeKind.TENSOR}
        new = np.arange(12, dtype=np.float32).reshape(3, 4)
        out = tmp_path / f"edited.{kind}"
        source.write(out, {target.id: new})
    with BACKEND.open(out) as edited:
        for node_id, value in before.items():
            expected = new if node_id == target.id else value
            assert edited.read(node_id).tobytes() == expected.tobytes()
    reference = _reference_weights(out)
    assert any(w.tobytes() == new.tobytes() for w in reference)
    files["canary"].unlink(missing_ok=True)


def test_damaged_archive(files, tmp_path):
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("model.weights.h5", b"garbage")
    with pytest.raises(CorruptFile):
        BACKEND.open(bad)


def test_a_reader_crash_is_contained_in_a_child_process(files, monkeypatch):
    """h5py can segfault on damaged files: the probe runs first, in another process."""
    from tensor_inspector.backends.keras import backend as keras_backend

    # a real segmentation fault in the child, as a damaged file can cause in h5py
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[2]))
    monkeypatch.setattr(keras_backend, "PROBE", "crash_helpers:segfault")
    with pytest.raises(CorruptFile, match=r"damaged: the reader crashed \(SIGSEGV\).*separate process"):
        BACKEND.open(files["h5"])


def test_hdf5_that_is_not_keras_is_named_as_such(tmp_path):
    import h5py

    with h5py.File(tmp_path / "data.h5", "w") as fh:
        fh["x"] = np.arange(3)
    with pytest.raises(UnsupportedFormat, match="HDF5 file but not a Keras model"):
        BACKEND.open(tmp_path / "data.h5")
