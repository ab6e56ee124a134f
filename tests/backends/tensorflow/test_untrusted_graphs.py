"""Hostile SavedModels built the way an attacker would: evaluating them untrusted never writes a file.

Each model hides a file-writing op behind a name that looks like TensorFlow's own saver
(``save/...``, ``*_traced_save_*``) or inside a tf.data pipeline. Opening it and
evaluating every computed node without trust must either evaluate or raise
TrustRequired naming the op types; the target file never appears. Real models
(tf.Module, TF1 builder, Keras 3 export, control flow) evaluate without trust.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tf_fixtures

from tensor_inspector.backends.base import InspectorError, NodeKind, TrustRequired
from tensor_inspector.backends.registry import open_path

DEMO = Path(__file__).resolve().parents[3] / "tensor_inspector" / "resources" / "demo" / "mlp_savedmodel"

# attack -> (op types named in the refusal, what the sentence says they do)
EXPECTED = {
    "main_op": (["WriteFile"], "WriteFile (writes files)"),
    "restore_hook": (["WriteFile"], "WriteFile (writes files)"),
    "traced_save": (["WriteFile"], "WriteFile (writes files)"),
    "cache": (["CacheDatasetV2"], "CacheDatasetV2 (writes a cache file)"),
    "checkpoint_io": (["RestoreV2", "SaveV2"], "SaveV2 (writes checkpoints)"),
    "print_to_file": (["PrintV2"], "PrintV2 (writes files)"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """attack name -> (SavedModel, the file it would write)."""
    root = tmp_path_factory.mktemp("hostile")
    targets = {name: root / f"written_by_{name}" for name in EXPECTED}
    return {
        "main_op": (tf_fixtures.tf1_main_op_writer(root, targets["main_op"]), targets["main_op"]),
        "restore_hook": (
            tf_fixtures.tf1_main_op_writer(root, targets["restore_hook"], restore_hook=True),
            targets["restore_hook"],
        ),
        "traced_save": (
            tf_fixtures.tf2_traced_save_writer(root, targets["traced_save"]),
            targets["traced_save"],
        ),
        "cache": (tf_fixtures.tf2_dataset_cache_writer(root, targets["cache"]), targets["cache"]),
        "checkpoint_io": (
            tf_fixtures.checkpoint_io_model(root, targets["checkpoint_io"], str(root / "elsewhere")),
            targets["checkpoint_io"],
        ),
        "print_to_file": (
            tf_fixtures.tf2_print_writer(root, targets["print_to_file"]),
            targets["print_to_file"],
        ),
    }


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("genuine")
    flow_tf2, flow_tf1 = tf_fixtures.control_flow_saved_models(root)
    return {
        "tf2": tf_fixtures.tf2_saved_model(root),
        "tf1": tf_fixtures.tf1_saved_model(root),
        "demo": DEMO,
        "keras_export": tf_fixtures.keras_exported_model(root),
        "flow_tf2": flow_tf2,
        "flow_tf1": flow_tf1,
        "tables": tf_fixtures.tf2_table_model(root),
    }


def _written(target: Path) -> list[Path]:
    """The target and anything named after it (caches and checkpoints add suffixes)."""
    return sorted(target.parent.glob(target.name + "*"))


def _evaluate_every_node(path: Path, trust: bool = False) -> tuple[int, list[TrustRequired]]:
    """Evaluate each computed node with default feeds: (how many evaluated, refusals)."""
    evaluated, refusals = 0, []
    with open_path(path, trust=trust) as source:
        for node in source.value_nodes():
            if node.kind is not NodeKind.COMPUTED or "not_evaluable" in node.metadata:
                continue
            try:
                source.evaluate(node.id, {})
                evaluated += 1
            except TrustRequired as exc:
                refusals.append(exc)
            except InspectorError:
                pass  # a node TensorFlow cannot compute alone (e.g. pruned when frozen)
    return evaluated, refusals


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_hostile_graph_never_writes_untrusted(hostile, attack):
    model, target = hostile[attack]
    op_types, phrase = EXPECTED[attack]
    _evaluated, refusals = _evaluate_every_node(model)
    assert refusals, "a graph that writes files must be refused"
    for refusal in refusals:
        assert sorted(refusal.globals_needed) == op_types
        assert str(refusal).startswith("saved_model.pb would run ")
        assert phrase in str(refusal) and "trusted" in str(refusal)
    assert _written(target) == []


def test_restore_from_elsewhere_is_named(hostile):
    model, _target = hostile["checkpoint_io"]
    _evaluated, refusals = _evaluate_every_node(model)
    assert "RestoreV2 (reads a checkpoint outside the SavedModel)" in str(refusals[0])


def test_trusted_main_op_does_write(hostile):
    """Proves the attack is real: once trusted, loading runs the main_op and writes the file."""
    model, target = hostile["main_op"]
    with open_path(model, trust=True) as source:
        x = np.array([1.0, 2.0], np.float32)
        np.testing.assert_array_equal(source.evaluate("serving_default/y:0", {"x": x}), 2 * x)
    assert target.read_text() == "written"
    target.unlink()


@pytest.mark.parametrize("name", ["tf2", "tf1", "demo", "keras_export", "flow_tf2", "flow_tf1", "tables"])
def test_genuine_models_evaluate_without_trust(genuine, name):
    with open_path(genuine[name]) as source:
        assert source.vetting.findings == []
    evaluated, refusals = _evaluate_every_node(genuine[name])
    assert refusals == [] and evaluated > 3


def test_control_flow_values(genuine):
    x = np.array([1.0, 2.0], np.float32)
    with open_path(genuine["flow_tf2"]) as source:
        outputs = source.node("serving_default").metadata["outputs"]
        np.testing.assert_allclose(source.evaluate(outputs["y"]["node"], {"x": x}), x * 1.5)
        np.testing.assert_allclose(source.evaluate(outputs["acc"]["node"], {"x": x}), 5 * 2.25)
    with open_path(genuine["flow_tf1"]) as source:
        outputs = source.node("serving_default").metadata["outputs"]
        np.testing.assert_allclose(source.evaluate(outputs["acc"]["node"], {"x": x}), 3 * 4.5)


SANDBOXED_EVALUATION = """
import sys
from tensor_inspector.session.sandbox import apply_sandbox
report = apply_sandbox()
assert report.mechanisms, report.description
import numpy as np
from tensor_inspector.backends.tensorflow import savedmodel, vetting
savedmodel.vet_meta_graph = lambda meta: vetting.Vetting()  # the first wall is off
from tensor_inspector.backends.registry import open_path
from tensor_inspector.core.errors import InspectorError
with open_path(sys.argv[1]) as source:
    assert source.vetting.findings == []
    try:
        source.evaluate("serving_default/y:0", {"x": np.ones(2, np.float32)})
        print("EVALUATED")
    except InspectorError as exc:
        print("REFUSED", exc)
"""


def test_sandbox_holds_without_the_allow_list(hostile):
    """With the allow-list check switched off, the main_op runs and the kernel refuses the write."""
    model, target = hostile["main_op"]
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SANDBOXED_EVALUATION), str(model)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert "REFUSED" in child.stdout and "ermission denied" in child.stdout, child.stdout
    assert _written(target) == []
