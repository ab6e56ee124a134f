"""Save and Save As from the window: background save, backups, refusals, framework loaders see the edit."""

from __future__ import annotations

import os
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.app.views.tree_model import MODIFIED_ROLE
from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.save_controller import target_problem
from tensor_inspector.backends import open_path


def edit(win: MainWindow, row: int, col: int, text: str) -> None:
    """Through the table model, as the delegate commits a typed value."""
    model = win.view.table.array_model
    assert model.setData(model.index(row, col), text), win.statusBar().currentMessage()


def save(qtbot, win: MainWindow, target: Path | None = None) -> str:
    with qtbot.waitSignal(win.save_controller.saved, timeout=60000) as done:
        assert win.save_controller.save() if target is None else win.save_controller.save_as(target=target)
        assert win.save_controller.is_saving() and not win.save_controller.save_action.isEnabled()
        assert not win.edit_controller.undo_action.isEnabled()  # no edits while the copies are written
        model = win.view.table.array_model
        assert not model.setData(model.index(0, 0), "1")
    return done.args[0]


def test_save_over_an_npz_keeps_a_backup_and_the_edit_survives_reopening(qtbot, window, tmp_path):
    path = tmp_path / "cube.npz"
    np.savez(path, cube=CUBE, other=np.arange(5.0))
    original_bytes = path.read_bytes()
    handle = open_file(qtbot, window, path)
    show(qtbot, window, "cube")
    assert not window.save_controller.save_action.isEnabled()  # nothing to save yet
    with qtbot.waitSignal(window.view.slice_changed):
        window.view.axes.set_position(0, 1)
    edit(window, 0, 2, "-7.25")
    assert window.save_controller.save_action.isEnabled()
    window.edit_controller.undo_action.trigger()
    window.edit_controller.redo_action.trigger()
    assert save(qtbot, window) == str(path)

    assert (tmp_path / "cube.npz.bak").read_bytes() == original_bytes
    expected = CUBE.copy()
    expected[1, 0, 2] = -7.25
    with np.load(path) as data:
        np.testing.assert_array_equal(data["cube"], expected)
        np.testing.assert_array_equal(data["other"], np.arange(5.0))
    assert "cube.npz.bak" in window.statusBar().currentMessage()
    assert not window.isWindowModified()
    model = window.tree.model
    item = model.item_for(handle, "cube")
    assert model.createIndex(item.row, 0, item.uid).data(MODIFIED_ROLE) is None
    assert not window.save_controller.save_action.isEnabled()

    # reopened in place: selecting again shows the saved value, undo still works and re-marks
    show(qtbot, window, "other")
    np.testing.assert_array_equal(show(qtbot, window, "cube"), expected)
    window.edit_controller.undo_action.trigger()
    assert window.isWindowModified() and window.view.array()[1, 0, 2] == CUBE[1, 0, 2]
    with open_path(path) as source:
        np.testing.assert_array_equal(source.read("cube"), expected)


def test_save_as_writes_a_new_file_and_the_tree_follows_it(qtbot, window, tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros((3, 3), np.int16))
    handle = open_file(qtbot, window, path)
    show(qtbot, window, window.files[handle].nodes[0].id)
    edit(window, 2, 1, "-300")
    target = tmp_path / "copy.npy"
    offered = []
    window.save_controller.choose_save_target = lambda opened: offered.append(opened.path) or target
    with qtbot.waitSignal(window.save_controller.saved, timeout=60000) as done:
        assert window.save_controller.save_as_action.isEnabled()
        window.save_controller.save_as_action.trigger()  # File > Save As…, the chooser answered
    assert offered == [path] and done.args[0] == str(target)
    assert np.load(target)[2, 1] == -300 and np.load(path)[2, 1] == 0
    assert not (tmp_path / "w.npy.bak").exists() and not (tmp_path / "copy.npy.bak").exists()
    assert window.files[handle].path == target
    assert window.tree.model.root_for(handle).label == "copy.npy"
    assert window.windowTitle().startswith("copy.npy")
    assert target_problem(path, tmp_path) == f"{tmp_path.name} is a folder; choose a file name."
    saved_model, busy_dir, empty_dir = tmp_path / "sm", tmp_path / "busy", tmp_path / "empty"
    for directory in (saved_model, busy_dir, empty_dir):
        directory.mkdir()
    (busy_dir / "notes.txt").write_text("keep me")
    assert "not an empty folder" in target_problem(saved_model, busy_dir)
    assert (
        target_problem(saved_model, empty_dir) is None
        and target_problem(saved_model, tmp_path / "new") is None
    )


def test_a_safetensors_bf16_edit_is_saved_with_its_exact_bits(qtbot, window, tmp_path):
    import torch
    from safetensors.torch import load_file

    path = tmp_path / "model.safetensors"
    weights = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4).astype(ml_dtypes.bfloat16)
    save_file({"w": weights, "b": np.arange(3, dtype=np.float32)}, str(path), metadata={"note": "kept"})
    open_file(qtbot, window, path)
    show(qtbot, window, "w")
    with qtbot.waitSignal(window.view.slice_changed):
        window.view.axes.set_position(0, 1)
    edit(window, 1, 3, "0.1")
    save(qtbot, window)
    loaded = load_file(str(path))
    assert loaded["w"].dtype == torch.bfloat16
    bits = loaded["w"].view(torch.int16).numpy().view(np.uint16)
    expected = weights.copy()
    expected[1, 1, 3] = np.array(0.1).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(bits, expected.view(np.uint16))
    assert float(loaded["w"][1, 1, 3]) == 0.10009765625
    np.testing.assert_array_equal(loaded["b"].numpy(), np.arange(3, dtype=np.float32))


def test_a_file_changed_on_disk_is_not_overwritten_and_edits_stay(qtbot, window, tmp_path):
    path = tmp_path / "cube.npz"
    np.savez(path, cube=CUBE)
    handle = open_file(qtbot, window, path)
    show(qtbot, window, "cube")
    edit(window, 0, 0, "99")
    np.savez(path, cube=CUBE + 1000)  # another program rewrote it
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    changed_bytes = path.read_bytes()
    with qtbot.waitSignal(window.save_controller.failed, timeout=60000) as failed:
        window.save_controller.save()
    assert "changed on disk" in failed.args[0] and "edits are kept" in failed.args[0]
    assert window.errors == [failed.args[0]]
    assert "changed on disk" in window.statusBar().currentMessage()
    assert path.read_bytes() == changed_bytes and not (tmp_path / "cube.npz.bak").exists()
    assert window.isWindowModified() and window.view.array()[0, 0, 0] == 99
    assert window.documents[handle].stack.count() == 1
    assert window.edit_controller.undo_action.isEnabled()  # unlocked after the failure


def test_a_failing_write_leaves_the_original_and_the_edits(qtbot, window, tmp_path):
    path = tmp_path / "cube.npz"
    np.savez(path, cube=CUBE)
    original_bytes = path.read_bytes()
    handle = open_file(qtbot, window, path)
    show(qtbot, window, "cube")
    edit(window, 1, 1, "5.5")
    # the save runs in the reader process: a "folder" that is a file makes the write fail there
    (tmp_path / "notes.txt").write_text("not a folder")
    with qtbot.waitSignal(window.save_controller.failed, timeout=60000) as failed:
        assert window.save_controller.save_as(target=tmp_path / "notes.txt" / "copy.npz")
    assert "was not saved" in failed.args[0] and "Traceback" not in failed.args[0]
    assert path.read_bytes() == original_bytes and window.errors == [failed.args[0]]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    assert window.isWindowModified() and window.documents[handle].path == path
    # the file was reopened after the failure: saving again works
    save(qtbot, window)
    with np.load(path) as data:
        assert data["cube"][0, 1, 1] == 5.5


def test_saving_a_torch_checkpoint_from_the_window(qtbot, window, tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save(
        {
            "w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "b": torch.ones(3, dtype=torch.bfloat16),
            "step": 7,
        },
        path,
    )
    open_file(qtbot, window, path)
    show(qtbot, window, "w")
    edit(window, 1, 2, "123.5")
    save(qtbot, window)
    loaded = torch.load(path, weights_only=True)
    expected = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    expected[1, 2] = 123.5
    assert torch.equal(loaded["w"], expected)
    assert loaded["b"].dtype == torch.bfloat16 and torch.equal(
        loaded["b"], torch.ones(3, dtype=torch.bfloat16)
    )
    assert loaded["step"] == 7
    assert (tmp_path / "model.pt.bak").exists()


def test_saving_a_tf_checkpoint_from_the_window(qtbot, window, tmp_path):
    import tensorflow as tf

    prefix = tf.train.Checkpoint(
        v=tf.Variable(np.arange(4, dtype=np.float32)), n=tf.Variable(np.array([1, 2], np.int64))
    ).write(str(tmp_path / "ckpt"))
    open_file(qtbot, window, Path(prefix))
    show(qtbot, window, "v")
    edit(window, 2, 0, "-1.5")
    save(qtbot, window)
    reader = tf.train.load_checkpoint(prefix)
    keys = reader.get_variable_to_shape_map()
    key = next(k for k in keys if k.startswith("v/"))
    np.testing.assert_array_equal(reader.get_tensor(key), np.array([0, 1, -1.5, 3], np.float32))
    n_key = next(k for k in keys if k.startswith("n/"))
    np.testing.assert_array_equal(reader.get_tensor(n_key), np.array([1, 2]))
    assert Path(prefix + ".bak.index").exists()
    assert "ckpt.bak" in window.statusBar().currentMessage()


def test_saving_a_saved_model_as_a_new_directory_serves_the_edit(qtbot, window, tmp_path):
    import tensorflow as tf

    class Scale(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(np.array([1.0, 2.0, 3.0], np.float32))

        @tf.function(input_signature=[tf.TensorSpec([3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * self.w}

    module = Scale()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    open_file(qtbot, window, tmp_path / "sm")
    show(qtbot, window, "variables/w")
    edit(window, 1, 0, "20")
    save(qtbot, window, target=tmp_path / "sm_edited")
    loaded = tf.saved_model.load(str(tmp_path / "sm_edited"))
    y = loaded.signatures["serving_default"](x=tf.constant([1.0, 1.0, 1.0]))["y"].numpy()
    np.testing.assert_array_equal(y, [1.0, 20.0, 3.0])
    original = tf.saved_model.load(str(tmp_path / "sm"))  # Save As leaves the original alone
    np.testing.assert_array_equal(original.w.numpy(), [1.0, 2.0, 3.0])
