"""Layer outputs of Keras files: each equals what Keras computes; unsafe models need trust."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras_fixtures
import numpy as np
import pytest

from tensor_inspector.backends.base import NodeKind, NotEvaluable, TrustRequired
from tensor_inspector.backends.keras.backend import KerasBackend
from tensor_inspector.backends.keras.config import trust_problems

BACKEND = KerasBackend()
BUILDERS = {"functional": keras_fixtures.functional, "sequential": keras_fixtures.sequential}
SUFFIXES = [".keras", ".h5"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("keras_outputs")


@pytest.fixture(scope="module")
def built(root) -> dict[tuple[str, str], keras_fixtures.Built]:
    return {(name, suffix): build(root, suffix) for name, build in BUILDERS.items() for suffix in SUFFIXES}


def _outputs(source) -> dict[str, np.ndarray]:
    return {n.id: n for n in source.nodes.values() if n.kind is NodeKind.COMPUTED}


def _check_all_outputs(source, reference: keras_fixtures.Built) -> None:
    nodes = _outputs(source)
    expected_ids = {
        f"{layer}/output" if len(values) == 1 else f"{layer}/output_{i}"
        for layer, values in reference.outputs.items()
        for i in range(len(values))
    }
    assert set(nodes) == expected_ids
    for node_id, node in nodes.items():
        value = source.evaluate(node_id, reference.feeds)
        expected = reference.outputs[node.metadata["layer"]][node.metadata["output"]]
        assert value.shape == expected.shape, node_id
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5, err_msg=node_id)
        if node.shape is not None:  # what the tree says before evaluating matches
            assert len(node.shape) == value.ndim and node.shape[1:] == value.shape[1:], node_id


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_layer_output_equals_keras(built, name, suffix):
    with BACKEND.open(built[(name, suffix)].path) as source:
        _check_all_outputs(source, built[(name, suffix)])


def test_layers_with_several_outputs_list_each(built):
    with BACKEND.open(built[("functional", ".keras")].path) as source:
        assert {"lstm/output_0", "lstm/output_1", "lstm/output_2"} <= set(_outputs(source))
        assert source.node("lstm/output_1").shape == (None, 5)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_feed_specs_from_model_inputs(built, suffix):
    with BACKEND.open(built[("functional", suffix)].path) as source:
        specs = {s.name: s for s in source.feed_specs("dense/output")}
        assert specs.keys() == {"image", "series"}
        assert specs["image"].shape == (None, 6, 6, 2) and specs["image"].dtype == "float32"
        assert specs["series"].shape == (None, 4, 3)
        assert source.feed_specs("dense/kernel") == []
        defaults = source.default_feeds("dense/output")  # what the window uses before the user types
        assert defaults["image"].shape == (1, 6, 6, 2)
        assert source.evaluate("head/output", defaults).shape == (1, 2)
    with BACKEND.open(built[("sequential", suffix)].path) as source:
        [spec] = source.feed_specs()
        assert (spec.name, spec.dtype, spec.shape) == ("features", "float32", (None, 5))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_weights_listed_under_layer_names(built, suffix):
    import keras

    for name in BUILDERS:
        path = built[(name, suffix)].path
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        with BACKEND.open(path) as source:
            tensors = {n.id for n in source.nodes.values() if n.kind is NodeKind.TENSOR}
            for layer in model.layers:
                for weight in layer.weights:
                    # Keras' own path, without a Sequential's model-name prefix
                    node_id = f"{layer.name}/{weight.path.split(layer.name + '/', 1)[-1]}"
                    assert node_id in tensors, (node_id, sorted(tensors))
                    np.testing.assert_array_equal(source.read(node_id), weight.numpy())
                    assert source.node(node_id).metadata["h5_path"]
                    tensors.discard(node_id)
            assert not tensors  # every stored weight got a layer name


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_edited_weight_is_saved_and_used_by_the_outputs(built, tmp_path, suffix):
    reference = built[("sequential", suffix)]
    with BACKEND.open(reference.path) as source:
        before = {n.id: source.read(n.id) for n in source.value_nodes() if n.kind is NodeKind.TENSOR}
        out = tmp_path / f"edited{suffix}"
        source.write(out, {"dense/kernel": np.zeros((5, 8), np.float32)})
    with BACKEND.open(out) as edited:
        for node_id, value in before.items():
            expected = np.zeros((5, 8), np.float32) if node_id == "dense/kernel" else value
            np.testing.assert_array_equal(edited.read(node_id), expected)
        # tanh(0 @ x + bias) = tanh(bias) for every row
        dense = edited.evaluate("dense/output", reference.feeds)
        np.testing.assert_allclose(
            dense, np.tanh(np.broadcast_to(before["dense/bias"], dense.shape)), atol=1e-6
        )


# -- models that run code ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_lambda_model_refused_untrusted_and_evaluated_trusted(tmp_path, suffix):
    directory = tmp_path
    reference = keras_fixtures.with_lambda(directory, suffix)
    canary = directory / keras_fixtures.LAMBDA_CANARY
    with BACKEND.open(reference.path) as source:
        assert "Lambda layer 'lam'" in source.node("lam/output").metadata["needs trust"]
        for node_id in _outputs(source):  # even layers before the Lambda: the model is never built
            with pytest.raises(TrustRequired, match=r"Lambda layer 'lam'.*trust the file") as refused:
                source.evaluate(node_id, reference.feeds)
            assert "Lambda layer 'lam'" in refused.value.globals_needed
        assert source.read("dense/bias").shape == (4,)  # the weights stay readable
    assert not canary.exists()
    with BACKEND.open(reference.path, trust=True) as source:
        _check_all_outputs(source, reference)
    assert canary.exists()  # trusted, the file's own code did run


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_custom_class_refused_untrusted_even_when_registered_here(tmp_path, suffix):
    """The class is registered in this process, which Keras' legacy .h5 loader would use silently."""
    reference = keras_fixtures.with_custom_class(tmp_path, suffix)
    with BACKEND.open(reference.path) as source:
        with pytest.raises(TrustRequired, match=r"custom class 'InspectorTests>Scale'"):
            source.evaluate("dense/output", reference.feeds)
        assert source.read("dense/kernel").shape == (3, 4)
    with BACKEND.open(reference.path, trust=True) as source:
        _check_all_outputs(source, reference)


def test_custom_class_from_a_missing_module_is_refused_even_trusted(tmp_path):
    path = keras_fixtures.with_missing_module(tmp_path)
    for trust in (False, True):
        with BACKEND.open(path, trust=trust) as source:
            with pytest.raises(
                NotEvaluable, match=r"module inspector_absent_package\.layers, which is not installed"
            ):
                source.evaluate("head/output", {"inp": np.zeros((1, 3), np.float32)})
            assert source.read("head/kernel").shape == (4, 2)


def test_keras2_h5_outputs_and_weights(tmp_path):
    import tf_keras  # noqa: F401

    reference = keras_fixtures.keras2_h5(tmp_path)
    with BACKEND.open(reference.path) as source:
        _check_all_outputs(source, reference)
        assert source.node("dense/kernel").metadata["h5_path"] == "model_weights/dense/dense/kernel:0"
        assert source.read("bn/moving_variance").shape == (6,)
        assert any(n.startswith("optimizer_weights/") for n in source.nodes)  # Adam slots kept, readable
        [spec] = source.feed_specs()
        assert (spec.name, spec.shape) == ("x", (None, 4))


def test_keras2_depthwise_convolutions_rebuild(tmp_path):
    """Keras 2 wrote ``groups: 1`` into DepthwiseConv2D configs, which Keras 3 refuses by itself."""
    reference = keras_fixtures.keras2_depthwise_h5(tmp_path)
    assert b'"groups": 1' in reference.path.read_bytes()  # the file holds what Keras 3 rejects
    with BACKEND.open(reference.path) as source:
        _check_all_outputs(source, reference)


# -- what the config check refuses before Keras sees it ---------------------------------------


def _layer(class_name: str, module: str | None = "keras.layers", **config) -> dict:
    return {
        "module": module,
        "class_name": class_name,
        "config": {"name": "l", **config},
        "registered_name": None,
    }


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        # a Lambda whose function is a Keras API with effects (the CVE-2025-9906 gadget)
        (
            _layer(
                "Lambda",
                function={"module": "keras.models", "class_name": "function", "config": "load_model"},
            ),
            "Lambda layer 'l'",
        ),
        (_layer("TFSMLayer", module="keras.layers", filepath="/elsewhere/model"), "loads another model"),
        (_layer("StringLookup", vocabulary="/etc/passwd"), "reads the vocabulary file '/etc/passwd'"),
        (
            _layer(
                "Dense", activation={"module": "keras.utils", "class_name": "function", "config": "get_file"}
            ),
            "get_file",
        ),
        (_layer("Scale", module="evil.layers"), "custom class 'Scale' from module 'evil.layers'"),
    ],
)
def test_configs_that_run_or_read_things_are_problems(entry, said):
    config = {"class_name": "Functional", "config": {"layers": [entry]}}
    assert any(said in p.what for p in trust_problems(config))


def test_plain_keras_configs_have_no_problems(built):
    with zipfile.ZipFile(built[("functional", ".keras")].path) as archive:
        assert trust_problems(json.loads(archive.read("config.json"))) == []
