"""The main window driven through its real widgets: open, drop, select, stale results, errors, close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from safetensors.numpy import save_file

from tensor_inspector.app.window.launch import _Driver
from tensor_inspector.app.window.main_window import MainWindow
from tensor_inspector.app.window.settings import settings


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    cube = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "cube.npy", cube)
    np.savez(
        tmp_path / "pair.npz", weight=np.full((4, 5), 2.5, np.float64), bias=np.arange(5, dtype=np.int64)
    )
    np.savez(
        tmp_path / "nested.npz", **{"enc/w": np.ones((2, 2), np.float32), "enc/b": np.zeros(2, np.float32)}
    )
    save_file(
        {"layer/kernel": np.eye(3, dtype=np.float32), "layer/scale": np.ones(7, np.float16)},
        str(tmp_path / "model.safetensors"),
    )
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY\x01\x00garbage that is not a header")
    return {p.stem: p for p in tmp_path.iterdir()}


@pytest.fixture
def window(qtbot):
    settings().clear()
    win = MainWindow()
    win.trust_prompt = lambda path, err: pytest.fail(f"unexpected trust prompt for {path}")
    qtbot.addWidget(win)
    win.show()
    yield win
    win.worker.shutdown()


def open_and_wait(qtbot, win: MainWindow, path: Path) -> int:
    with qtbot.waitSignal(win.file_opened) as blocker:
        win.open_paths([path])
    return blocker.args[0]


def wait_idle(qtbot, win: MainWindow) -> None:
    qtbot.waitUntil(win.is_idle)


def test_open_by_path_lists_nodes_and_shows_the_first_value(qtbot, window, files):
    window.auto_select = True
    with qtbot.waitSignal(window.value_shown) as shown:
        open_and_wait(qtbot, window, files["pair"])
    assert shown.args == ["weight"]
    assert window.tree.visible_node_ids() == ["weight", "bias"]
    np.testing.assert_array_equal(window.view.array(), np.full((4, 5), 2.5))
    assert window.windowTitle().startswith("pair.npz")


def test_open_by_drop_event_opens_every_file(qtbot, window, files):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(files["cube"])), QUrl.fromLocalFile(str(files["model"]))])
    event = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    opened = []
    window.file_opened.connect(opened.append)
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    window.dropEvent(event)
    qtbot.waitUntil(lambda: len(opened) == 2)
    # roots keep the dropped order, whichever file finished opening first
    assert [r.path.name for r in window.tree.model.roots()] == ["cube.npy", "model.safetensors"]
    assert "layer/kernel" in window.tree.visible_node_ids()


def test_selecting_nodes_evaluates_in_the_background(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["model"])
    with qtbot.waitSignal(window.value_shown) as shown:
        assert window.select_node("layer/kernel")
    assert shown.args == ["layer/kernel"]
    np.testing.assert_array_equal(window.view.array(), np.eye(3, dtype=np.float32))
    with qtbot.waitSignal(window.value_shown):
        window.select_node("layer/scale")
    assert window.view.array().dtype == np.float16
    assert window.export_action.isEnabled()


def test_a_stale_request_is_discarded_when_two_nodes_are_clicked_quickly(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["pair"])
    shown: list[str] = []
    window.value_shown.connect(shown.append)
    # both clicks happen before any result can be delivered (results arrive through the event loop)
    window.select_node("weight")
    window.select_node("bias")
    with qtbot.waitSignal(window.value_shown):
        pass
    wait_idle(qtbot, window)
    qtbot.wait(50)  # let the stale result, if any, reach the GUI thread
    assert shown == ["bias"]
    np.testing.assert_array_equal(window.view.array(), np.arange(5))


def test_a_corrupt_file_becomes_a_message_and_the_app_keeps_working(qtbot, window, files):
    window.auto_select = True
    with qtbot.waitSignal(window.open_error) as failed:
        window.open_paths([files["broken"]])
    assert "broken.npy" in failed.args[1]
    assert "Traceback" not in failed.args[1]
    assert window.view.array() is None
    assert "broken.npy" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.value_shown):
        open_and_wait(qtbot, window, files["cube"])
    assert window.view.array().shape == (2, 3, 4)


def test_a_read_error_becomes_a_message_and_other_files_stay_open(qtbot, window, files, tmp_path):
    window.auto_select = False
    victim = tmp_path / "victim.npy"
    np.save(victim, np.ones((3, 3)))
    victim_handle = open_and_wait(qtbot, window, victim)
    cube_handle = open_and_wait(qtbot, window, files["cube"])
    victim.write_bytes(victim.read_bytes()[:100])  # another program cuts the data after listing
    with qtbot.waitSignal(window.value_failed) as failed:
        window.select_node("array", victim_handle)
    assert "victim.npy" in failed.args[0]
    assert "Traceback" not in failed.args[0]
    assert window.view.array() is None
    assert len(window.files) == 2
    with qtbot.waitSignal(window.value_shown):
        window.select_node("array", cube_handle)
    np.testing.assert_array_equal(window.view.array(), np.load(files["cube"]))


def test_cancel_drops_the_pending_result_and_returns_to_idle(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["pair"])
    shown: list[str] = []
    window.value_shown.connect(shown.append)
    window.select_node("weight")
    window.evaluate_controller.show_busy()  # what the delay timer does when a read takes long
    assert window.busy.isVisible() and "weight" in window.busy.label.text()
    window.busy.cancel_button.click()
    assert window.is_idle()
    assert not window.busy.isVisible()
    assert "Cancelled" in window.statusBar().currentMessage()
    assert window.view.array() is None
    # the next request is served; the cancelled read's answer, whenever it comes, is dropped
    with qtbot.waitSignal(window.value_shown):
        window.select_node("bias")
    wait_idle(qtbot, window)
    qtbot.wait(50)
    assert shown == ["bias"]


def test_selecting_a_file_root_or_group_shows_a_message(qtbot, window, files):
    window.auto_select = False
    handle = open_and_wait(qtbot, window, files["nested"])
    assert window.tree.select(handle, "enc")
    assert window.view.array() is None
    assert not window.export_action.isEnabled()
    with qtbot.waitSignal(window.value_shown):
        window.select_node("enc/w")
    window.tree.view.setCurrentIndex(window.tree.proxy.index(0, 0))  # the file root
    assert window.view.array() is None


def test_close_file_by_method_and_by_shortcut(qtbot, window, files):
    window.auto_select = False
    first = open_and_wait(qtbot, window, files["cube"])
    open_and_wait(qtbot, window, files["pair"])
    with qtbot.waitSignal(window.value_shown):
        window.select_node("array")
    window.close_file(first)
    assert [r.path.name for r in window.tree.model.roots()] == ["pair.npz"]
    assert window.view.array() is None  # the shown value belonged to the closed file
    with qtbot.waitSignal(window.value_shown):
        window.select_node("bias")
    window.close_action.trigger()  # Ctrl+W closes the file of the current node
    assert window.tree.model.roots() == []
    assert window.files == {}
    assert window.close_action.shortcut().toString() == "Ctrl+W"


def test_recent_files_and_geometry_persist(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["cube"])
    open_and_wait(qtbot, window, files["pair"])
    window.resize(window.width(), 560)
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.recent_files()[:2] == [str(files["pair"].absolute()), str(files["cube"].absolute())]
    assert again.size().height() == 560
    again._fill_recent_menu()
    texts = [a.text() for a in again.recent_menu.actions()]
    assert str(files["cube"].absolute()) in texts
    again.worker.shutdown()


def test_filter_box_narrows_the_tree(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["model"])
    open_and_wait(qtbot, window, files["pair"])
    tree = window.tree
    open_and_wait(qtbot, window, files["nested"])
    tree.set_filter("f16")
    assert tree.visible_node_ids() == ["layer/scale"]
    tree.set_filter("*kern*")
    assert tree.visible_node_ids() == ["layer/kernel"]
    tree.set_filter("4x")
    assert tree.visible_node_ids() == ["weight"]
    tree.set_filter("x5")
    assert tree.visible_node_ids() == ["weight"]
    tree.set_filter("3x3 f32")
    assert tree.visible_node_ids() == ["layer/kernel"]
    tree.set_filter("BIAS")
    assert tree.visible_node_ids() == ["bias"]
    tree.set_filter("w f32")
    assert tree.visible_node_ids() == ["enc", "enc/w"]  # the parent group stays visible
    tree.set_filter("")
    assert len(tree.visible_node_ids()) == 7
    # selecting a hidden node clears the filter rather than failing
    tree.set_filter("bias")
    with qtbot.waitSignal(window.value_shown):
        assert window.select_node("weight")


def test_tree_columns_and_sorting(qtbot, window, files):
    window.auto_select = False
    open_and_wait(qtbot, window, files["pair"])
    proxy = window.tree.proxy
    root = proxy.index(0, 0)
    row = {proxy.index(r, 0, root).data(): r for r in range(proxy.rowCount(root))}
    weight = row["weight"]
    assert [proxy.index(weight, c, root).data() for c in range(4)] == ["weight", "f64", "4×5", "160 B"]
    window.tree.view.sortByColumn(3, Qt.AscendingOrder)
    assert [proxy.index(r, 0, root).data() for r in range(2)] == ["bias", "weight"]
    window.tree.view.sortByColumn(3, Qt.DescendingOrder)
    assert [proxy.index(r, 0, root).data() for r in range(2)] == ["weight", "bias"]


def test_interactive_select_waits_for_the_files(qtbot, window, files):
    window.auto_select = False
    window.open_paths([files["cube"], files["pair"]])
    driver = _Driver(window, "bias", None, select_file="pair.npz", headless=False)
    driver.timer.start()
    with qtbot.waitSignal(window.value_shown) as shown:
        pass
    assert shown.args == ["bias"]
    qtbot.waitUntil(lambda: not driver.timer.isActive())
    assert window.isVisible() and driver.code is None  # the window stays up


def test_file_metadata_and_node_details_are_shown(qtbot, window, tmp_path):
    save_file(
        {"w": np.ones((2, 2), np.float32)},
        str(tmp_path / "m.safetensors"),
        metadata={"format": "pt", "trained_on": "demo data"},
    )
    handle = open_and_wait(qtbot, window, tmp_path / "m.safetensors")
    window.tree.view.setCurrentIndex(window.tree.proxy.mapFromSource(window.tree.model.index(0, 0)))
    page = window.view.message_label.text()
    assert "trained_on: demo data" in page and "safetensors" in page
    with qtbot.waitSignal(window.value_shown):
        window.tree.select(handle, "w")
    details = window.view.details.text()
    assert window.view.details.isVisibleTo(window) and "stored as F32" in details
    assert "data_offsets: [0, 16]" in details


def test_opening_an_open_file_again_selects_it_instead_of_a_second_copy(qtbot, window, files):
    handle = open_and_wait(qtbot, window, files["pair"])
    open_and_wait(qtbot, window, files["cube"])
    window.open_paths([files["pair"]])
    assert len(window.files) == 2 and window.worker.pending_opens() == 0
    assert window.tree.current() == (handle, None)
    assert "already open" in window.statusBar().currentMessage()


def test_a_failed_open_does_not_hide_the_value_being_looked_at(qtbot, window, files):
    window.auto_select = True
    with qtbot.waitSignal(window.value_shown):
        open_and_wait(qtbot, window, files["pair"])
    with qtbot.waitSignal(window.open_error):
        window.open_paths([files["broken"]])
    np.testing.assert_array_equal(window.view.array(), np.full((4, 5), 2.5))
    assert "Could not open broken.npy" in window.statusBar().currentMessage()


def test_a_drop_of_bad_files_gives_one_message_each_and_the_good_one_opens(qtbot, window, files, tmp_path):
    import pickle

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.npy").write_bytes(b"")
    (bad / "noise.safetensors").write_bytes(bytes(range(256)) * 4)
    (bad / "cut.npz").write_bytes(files["pair"].read_bytes()[:100])
    (bad / "fake.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    (bad / "evil.pkl").write_bytes(pickle.dumps(print))  # would call a global: refused, not trusted
    (bad / "nothing_here").mkdir()
    window.trust_prompt = lambda path, exc: False
    paths = sorted(bad.iterdir()) + [files["pair"]]
    errors = []
    window.open_error.connect(lambda path, message: errors.append((Path(path).name, message)))
    with qtbot.waitSignal(window.file_opened, timeout=60_000):
        window.open_paths(paths)
    qtbot.waitUntil(lambda: len(errors) == len(paths) - 1, timeout=60_000)
    assert sorted(name for name, _ in errors) == sorted(p.name for p in paths[:-1])
    for name, message in errors:
        assert message.count("\n") == 0 and "Traceback" not in message, (name, message)
    assert [f.path.name for f in window.files.values()] == ["pair.npz"]
