"""SavedModels saved by Keras 2 (tf_keras) with Adam optimizer state, as users bring them.

Every layer's output equals the framework's own sub-model on the same input, through
each way of preparing the signature; without tf_keras (Keras 3 only, where
``tf.saved_model.load`` fails on the optimizer's slots) the model still evaluates.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import InspectorError, NodeKind
from tensor_inspector.backends.registry import open_path
from tensor_inspector.backends.tensorflow.checkpoint import CheckpointSource
from tensor_inspector.backends.tensorflow.freezing import Freezer

X = np.random.default_rng(7).normal(size=(5, 6)).astype(np.float32)
STRATEGIES = [name for name, _ in Freezer(Path("."), [], None).strategies]
WITHOUT_OPTIMIZER = STRATEGIES[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    root = tmp_path_factory.mktemp("keras2")
    return {
        "legacy": tf_fixtures.keras2_saved_model(root, legacy_optimizer=True),
        "adam": tf_fixtures.keras2_saved_model(root, legacy_optimizer=False),
    }


@pytest.fixture(scope="module")
def models(built) -> dict[str, Path]:
    return {name: path for name, (path, _model) in built.items()}


@pytest.fixture(scope="module")
def expected(built) -> dict[str, dict[str, np.ndarray]]:
    """Each layer's output for X, from tf_keras sub-models of the trained model."""
    import tf_keras

    values = {}
    for name, (_path, model) in built.items():
        values[name] = {
            layer: tf_keras.Model(model.input, model.get_layer(layer).output).predict(X, verbose=0)
            for layer in tf_fixtures.KERAS2_LAYERS
        }
    return values


def layer_output(source, layer: str) -> str:
    """The last op listed in the layer's name scope: its output."""
    pattern = re.compile(rf"^serving_default/StatefulPartitionedCall/[^/]+/{layer}/")
    ops = [
        node
        for node in source.value_nodes()
        if node.kind is NodeKind.COMPUTED
        and pattern.match(node.id)
        and node.metadata["op"] not in ("Const", "ReadVariableOp")
    ]
    assert ops, f"no op of layer {layer}"
    return ops[-1].id


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("model", ["legacy", "adam"])
def test_every_layer_equals_the_keras_submodel(models, expected, model, strategy):
    with open_path(models[model]) as source:
        assert source.vetting.findings == []  # evaluates without trust
        source._runner.freezer.prefer(strategy)
        for layer in tf_fixtures.KERAS2_LAYERS:
            value = source.evaluate(layer_output(source, layer), {"inp": X})
            np.testing.assert_allclose(value, expected[model][layer], rtol=1e-5, atol=1e-6)
        assert source._runner.strategy == strategy


def test_captured_inputs_are_named_by_their_variable(models):
    with open_path(models["legacy"]) as source:
        captured = [n for n in source.children("serving_default") if "captured_variable" in n.metadata]
        by_name = {n.name: n for n in captured}
        assert {"d1/kernel", "d1/bias", "bn/gamma", "bn/moving_mean", "d2/kernel"} <= set(by_name)
        kernel = by_name["d1/kernel"]
        assert kernel.id.startswith("serving_default/unknown")  # ids stay the graph's names
        assert kernel.metadata["variable_node"] == "variables/layer_with_weights-0/kernel"
        for node in captured:
            np.testing.assert_array_equal(
                source.evaluate(node.id, {}), source.read(node.metadata["variable_node"])
            )


AS_FOUND = """
import sys
sys.modules["tf_keras"] = None  # Keras 3 only, as most TF 2.16+ users have it
import json
import numpy as np
from tensor_inspector.backends.registry import open_path
path, nodes, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
import tensorflow as tf
try:
    tf.saved_model.load(path)
    print("LOADED")
except Exception as exc:
    print("LOAD FAILED:", exc)
x = np.load(out + ".x.npy")
with open_path(path) as source:
    values = {str(i): source.evaluate(node, {"inp": x}) for i, node in enumerate(nodes)}
    print("STRATEGY:", source._runner.strategy)
np.savez(out, **values)
"""


def test_keras2_model_evaluates_without_tf_keras(models, expected, tmp_path):
    """The real-world case: tf.saved_model.load fails on the optimizer slots; evaluation does not."""
    with open_path(models["legacy"]) as source:
        nodes = [layer_output(source, layer) for layer in tf_fixtures.KERAS2_LAYERS]
    out = tmp_path / "values"
    np.save(str(out) + ".x.npy", X)
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(AS_FOUND), str(models["legacy"]), json.dumps(nodes), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert "LOAD FAILED: '_UserObject' object has no attribute 'add_slot'" in child.stdout
    assert f"STRATEGY: {WITHOUT_OPTIMIZER}" in child.stdout
    values = np.load(str(out) + ".npz")
    for i, layer in enumerate(tf_fixtures.KERAS2_LAYERS):
        np.testing.assert_allclose(values[str(i)], expected["legacy"][layer], rtol=1e-5, atol=1e-6)


def test_failure_names_every_strategy_and_its_reason(models, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(models["legacy"], copy)
    with open_path(copy) as source:
        node = layer_output(source, "d1")
        # Damaged after opening (vetting passed): every loader now fails to restore the variables.
        data = next((copy / "variables").glob("variables.data-*"))
        data.write_bytes(b"\xff" * data.stat().st_size)
        with pytest.raises(InspectorError) as failure:
            source.evaluate(node, {"inp": X})
    message = str(failure.value)
    assert message.startswith("TensorFlow could not prepare signature 'serving_default' for evaluation: ")
    for strategy in STRATEGIES:
        assert f"{strategy} failed (" in message
    assert "\n" not in message and "Graph execution error" not in message


def test_variables_folder_opens_as_its_checkpoint(models):
    folder = models["legacy"] / "variables"
    with (
        open_path(models["legacy"]) as saved,
        open_path(folder) as alone,
        open_path(folder / "variables.index") as index,
    ):
        assert isinstance(alone, CheckpointSource) and isinstance(index, CheckpointSource)
        stored = [n for n in saved.value_nodes() if n.kind is NodeKind.TENSOR]
        assert len(stored) == len(alone.value_nodes()) > 20
        for node in stored:
            np.testing.assert_array_equal(alone.read(node.id.removeprefix("variables/")), saved.read(node.id))


def test_layer_value_through_the_reader_process(models, expected):
    from tensor_inspector.session.isolated import IsolatedSession

    with open_path(models["legacy"]) as source:
        node = layer_output(source, "bn")
    session = IsolatedSession()
    try:
        info = session.open(models["legacy"])
        value = session.value(info.handle, node, feeds={"inp": X})
        np.testing.assert_allclose(value.array, expected["legacy"]["bn"], rtol=1e-5, atol=1e-6)
    finally:
        session.shutdown()


def test_keras2_lstm_evaluates_untrusted(tmp_path):
    """Its saved CuDNN alternative (CudnnRNNV3, on the allow-list) needs no trust; the loop's ops say why not."""
    path, model = tf_fixtures.keras2_lstm_saved_model(tmp_path)
    seq = np.random.default_rng(1).normal(size=(2, 5, 4)).astype(np.float32)
    with open_path(path) as source:
        assert source.vetting.findings == []
        output = source.node("serving_default").metadata["outputs"]["head"]["node"]
        np.testing.assert_allclose(
            source.evaluate(output, {"seq": seq}), model.predict(seq, verbose=0), rtol=1e-5
        )
        in_loop = [
            n for n in source.value_nodes() if "outside the loop" in n.metadata.get("not_evaluable", "")
        ]
        assert in_loop
