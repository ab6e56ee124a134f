"""Tracing Keras files: every layer's output in execution order, and the layer that made NaN.

Expected values come from Keras itself: a sub-model over every layer's output, built from
the in-memory model that was saved (``keras`` for Keras 3 files, ``tf_keras`` for Keras 2).
NaN comes from a known inner op: ``keras.ops.log`` of a negative (Keras 3 functional, the
input decides), or a BatchNormalization whose moving variance is negative (its
``rsqrt(variance + epsilon)``), the way a model with corrupted statistics does it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import keras_fixtures
import numpy as np
import pytest

from tensor_inspector.backends import open_path
from tensor_inspector.cli import main
from tensor_inspector.core.errors import Cancelled, TrustRequired
from tensor_inspector.session.local import LocalSession
from tensor_inspector.session.trace import trace_source

# the functional model's first layer adds 0.5 to x, so a negative x makes log see a negative
X_NAN = np.array([[1.0, 2.0, 3.0], [-2.0, 1.0, 0.5]], np.float32)
X_FINITE = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.5]], np.float32)


@dataclass
class Case:
    path: Path
    feeds: dict[str, np.ndarray]
    layers: dict[str, np.ndarray]  # layer name -> its output, computed by Keras
    producer: str | None  # the node id that first makes NaN, None when all is finite
    producer_inputs: tuple[str, ...] = ()


def _outputs(keras, model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Keras 3 lists ops used on tensors (keras.ops.log) among operations, not layers
    layers = [
        la for la in getattr(model, "operations", model.layers) if la.__class__.__name__ != "InputLayer"
    ]
    probe = keras.Model(model.inputs, [la.output for la in layers])
    values = probe([feeds[t.name.split(":")[0]] for t in model.inputs], training=False)
    return {la.name: np.asarray(v) for la, v in zip(layers, values, strict=True)}


def log_functional(directory: Path, nan: bool) -> Case:
    """Keras 3: x -> Dense lin (x + 0.5, then a sum) -> keras.ops.log -> Dense head -> relu."""
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((3,), name="x")
    lin = keras.layers.Dense(4, name="lin")
    hidden = lin(inputs)
    logged = keras.ops.log(hidden)
    head = keras.layers.Dense(2, name="head")(logged)
    out = keras.layers.Activation("relu", name="act")(head)
    model = keras.Model(inputs, out, name="lognet")
    kernel = np.concatenate([np.eye(3), np.ones((3, 1)) / 3], axis=1).astype(np.float32)
    lin.set_weights([kernel, np.full(4, 0.5, np.float32)])
    path = directory / f"log_{nan}.keras"
    model.save(path)
    feeds = {"x": X_NAN if nan else X_FINITE}
    return Case(path, feeds, _outputs(keras, model, feeds), "log/output" if nan else None, ("lin/output",))


def _negative_variance(bn, nan: bool) -> None:
    variance = np.array([1.0, -0.5, 2.0] if nan else [1.0, 0.5, 2.0], np.float32)
    mean = np.array([0.1, -0.2, 0.3], np.float32)
    weights = bn.get_weights()  # gamma, beta, moving mean, moving variance
    bn.set_weights([*weights[:2], mean, variance])


def bn_sequential(directory: Path, nan: bool) -> Case:
    """Keras 3 Sequential: Dense -> BatchNormalization -> Dropout -> Dense, as .keras."""
    import keras

    keras.utils.set_random_seed(8)
    model = keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(3, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(2, activation="tanh", name="out"),
        ],
        name="bnseq",
    )
    _negative_variance(model.get_layer("bn"), nan)
    path = directory / f"bnseq_{nan}.keras"
    model.save(path)
    feeds = {"features": np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)}
    return Case(path, feeds, _outputs(keras, model, feeds), "bn/output" if nan else None, ("dense/output",))


def keras2_conv(directory: Path, nan: bool, sequential: bool) -> Case:
    """Keras 2 (tf_keras) .h5: Conv2D -> BatchNormalization -> ReLU -> pooling -> Dense."""
    import tf_keras

    tf_keras.utils.set_random_seed(9)
    layers = [
        tf_keras.layers.Conv2D(3, 3, name="conv"),
        tf_keras.layers.BatchNormalization(name="bn"),
        tf_keras.layers.ReLU(name="relu"),
        tf_keras.layers.GlobalAveragePooling2D(name="pool"),
        tf_keras.layers.Dense(2, name="head"),
    ]
    if sequential:
        model = tf_keras.Sequential([tf_keras.Input((6, 6, 2), name="image"), *layers], name="k2seq")
    else:
        image = tf_keras.Input((6, 6, 2), name="image")
        x = image
        for layer in layers:
            x = layer(x)
        model = tf_keras.Model(image, x, name="k2conv")
    _negative_variance(model.get_layer("bn"), nan)
    path = directory / f"k2_{'seq' if sequential else 'fn'}_{nan}.h5"
    model.save(path)
    feeds = {"image": np.random.default_rng(2).normal(size=(2, 6, 6, 2)).astype(np.float32)}
    return Case(path, feeds, _outputs(tf_keras, model, feeds), "bn/output" if nan else None, ("conv/output",))


BUILDERS = {
    "log_functional": log_functional,
    "bn_sequential": bn_sequential,
    "keras2_functional": lambda d, nan: keras2_conv(d, nan, sequential=False),
    "keras2_sequential": lambda d, nan: keras2_conv(d, nan, sequential=True),
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], Case]:
    directory = tmp_path_factory.mktemp("keras_trace")
    return {(name, nan): build(directory, nan) for name, build in BUILDERS.items() for nan in (True, False)}


@pytest.fixture
def session():
    s = LocalSession()
    yield s
    s.close_all()


def _check_values(report, case: Case) -> None:
    """Every traced node equals Keras' own output of its layer, statistics and values."""
    assert [n.id for n in report.nodes] == [f"{name}/output" for name in case.layers]
    for node in report.nodes:
        expected = case.layers[node.id.split("/")[0]]
        assert node.shape == expected.shape, node.id
        np.testing.assert_allclose(report.arrays[node.id], expected, rtol=1e-5, atol=1e-6, equal_nan=True)
        if np.isfinite(expected).all():
            assert node.min == pytest.approx(float(expected.min()), rel=1e-5, abs=1e-6), node.id
            assert node.max == pytest.approx(float(expected.max()), rel=1e-5, abs=1e-6), node.id
            assert node.mean == pytest.approx(float(expected.astype(np.float64).mean()), rel=1e-5, abs=1e-6)
        else:
            assert node.nan == int(np.isnan(expected).sum()), node.id


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_layer_that_makes_nan_is_named(session, cases, name):
    case = cases[(name, True)]
    info = session.open(case.path)
    [entry] = info.trace_entries
    assert any(n.id == entry for n in info.nodes)  # the entry is a node of the tree
    report = session.trace(info.handle, feeds=case.feeds)
    assert report.entry == entry
    assert report.first_nonfinite == case.producer
    assert report.node(case.producer).inputs == case.producer_inputs
    ids = [n.id for n in report.nodes]
    at = ids.index(case.producer)
    assert all(n.finite for n in report.nodes[:at])
    assert report.nodes[at + 1 :] and all(not n.finite for n in report.nodes[at + 1 :])
    _check_values(report, case)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_finite_run_names_no_layer_and_matches_keras(session, cases, name):
    case = cases[(name, False)]
    info = session.open(case.path)
    report = session.trace(info.handle, feeds=case.feeds)
    assert report.first_nonfinite is None
    _check_values(report, case)
    listed = {n.id for n in info.nodes}
    assert {n.id for n in report.nodes} <= listed


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_two_inputs_and_several_outputs_in_execution_order(tmp_path, suffix):
    """Two inputs, an LSTM with three outputs, a merge of four: inputs come before readers."""
    built = keras_fixtures.functional(tmp_path, suffix)
    with open_path(built.path) as source:
        report = trace_source(source, feeds=built.feeds)
        listed = [n.id for n in source.value_nodes() if n.id.split("/")[-1].startswith("output")]
    assert sorted(n.id for n in report.nodes) == sorted(listed)
    order = {n.id: i for i, n in enumerate(report.nodes)}
    for node in report.nodes:
        assert all(order[i] < order[node.id] for i in node.inputs), node.id
        layer, _, which = node.id.partition("/")
        index = int(which.removeprefix("output_")) if "_" in which else 0
        np.testing.assert_allclose(report.arrays[node.id], built.outputs[layer][index], rtol=1e-5, atol=1e-5)
    merge = report.node("merge/output")
    assert set(merge.inputs) == {"flat/output", "pool/output", "lstm/output_1", "lstm/output_2"}
    assert report.node("conv/output").inputs == ()  # read straight from an input


def test_lambda_model_needs_trust_to_trace(tmp_path):
    built = keras_fixtures.with_lambda(tmp_path, ".keras")
    session = LocalSession()
    try:
        info = session.open(built.path)
        assert info.trace_entries  # offered: the entry is known from the config alone
        with pytest.raises(TrustRequired, match="Lambda layer 'lam'"):
            session.trace(info.handle, feeds=built.feeds)
        assert not (tmp_path / keras_fixtures.LAMBDA_CANARY).exists()
        report = session.trace(info.handle, feeds=built.feeds, trust=True)
    finally:
        session.close_all()
    np.testing.assert_allclose(report.arrays["lam/output"], built.outputs["lam"][0], rtol=1e-5, atol=1e-5)


def test_cancel_stops_the_pass_between_layers(cases):
    case = cases[("keras2_functional", True)]
    cancel = threading.Event()
    seen: list[str] = []

    def on_node(node_id, op, inputs, array):
        seen.append(node_id)
        if len(seen) == 2:
            cancel.set()

    with open_path(case.path) as source:
        [entry] = source.trace_entries()
        with pytest.raises(Cancelled):
            source.trace(entry, case.feeds, on_node, cancel)
        assert seen == ["conv/output", "bn/output"]


def test_keep_nothing_still_summarises_every_layer(session, cases):
    case = cases[("bn_sequential", True)]
    info = session.open(case.path)
    kept = session.trace(info.handle, feeds=case.feeds)
    report = session.trace(info.handle, feeds=case.feeds, keep_bytes=0)
    assert report.arrays == {} and not any(n.kept for n in report.nodes)
    assert report.nodes == [type(n)(**{**n.__dict__, "kept": False}) for n in kept.nodes]
    assert report.first_nonfinite == "bn/output" and report.node("bn/output").nan == 5


def test_entries_come_from_the_config_without_keras(tmp_path):
    """Listing what can be traced happens on every open: it must not load the model."""
    import subprocess
    import sys

    built = keras_fixtures.sequential(tmp_path, ".keras")
    code = (
        "import sys; from tensor_inspector.backends.keras.backend import KerasBackend; "
        f"s = KerasBackend().open({str(built.path)!r}); print(s.trace_entries()); "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["['seq']", "False False"]


def test_cli_json_names_the_producer(capsys, cases):
    case = cases[("log_functional", True)]
    feed = "x=" + json.dumps(case.feeds["x"].tolist())
    code = main(["trace", str(case.path), "--feed", feed, "--json"])
    out, err = capsys.readouterr()
    assert code == 3, err
    doc = json.loads(out)
    assert doc["entry"] == "lognet"
    assert doc["first_nonfinite"]["id"] == "log/output"
    assert doc["first_nonfinite"]["inputs"] == ["lin/output"]
    assert [n["id"] for n in doc["nodes"]] == ["lin/output", "log/output", "head/output", "act/output"]
    code = main(
        ["trace", str(cases[("log_functional", False)].path), "--feed", "x=" + json.dumps(X_FINITE.tolist())]
    )
    assert code == 0 and "All values are finite." in capsys.readouterr()[0]


def test_a_shared_layer_is_reported_for_its_first_call(tmp_path):
    """The tree lists one output per layer; a second call stands for what it was computed from."""
    import keras

    keras.utils.set_random_seed(10)
    inputs = keras.Input((3,), name="x")
    shared = keras.layers.Dense(3, name="shared")
    first = shared(inputs)
    second = shared(keras.layers.ReLU(name="relu")(first))
    out = keras.layers.Add(name="add")([first, second])
    model = keras.Model(inputs, out, name="sharing")
    model.save(tmp_path / "shared.keras")
    x = np.random.default_rng(4).normal(size=(2, 3)).astype(np.float32)
    with open_path(tmp_path / "shared.keras") as source:
        report = trace_source(source, feeds={"x": x})
    assert [n.id for n in report.nodes] == ["shared/output", "relu/output", "add/output"]
    assert report.node("add/output").inputs == ("shared/output", "relu/output")
    expected = keras.Model(inputs, [first, out])(x)
    np.testing.assert_allclose(report.arrays["shared/output"], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(report.arrays["add/output"], expected[1], rtol=1e-5, atol=1e-6)
