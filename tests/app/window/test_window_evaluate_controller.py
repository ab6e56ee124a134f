"""What the view shows: latest request wins, edited copies are never re-read, failures are sentences."""

from __future__ import annotations

import numpy as np
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)


def test_an_edited_copy_is_shown_without_a_read(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE, other=np.arange(3.0))
    handle = open_file(qtbot, window, tmp_path / "a.npz")
    show(qtbot, window, "cube")
    model = window.view.table.array_model
    assert model.setData(model.index(2, 3), "-5")
    show(qtbot, window, "other")
    evaluate = window.evaluate_controller
    shown: list[str] = []
    window.value_shown.connect(shown.append)
    assert window.select_node("cube", handle)
    assert shown == ["cube"] and evaluate.pending_request() is None  # synchronous: nothing was asked
    assert window.view.array() is window.documents[handle].copy("cube")
    assert evaluate.shown() == (handle, "cube") and window.export_action.isEnabled()


def test_a_crashed_reader_is_one_sentence_and_the_next_selection_is_served(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE, other=np.arange(3.0))
    np.savez(tmp_path / "b.npz", w=np.ones((2, 2), np.float32))
    handle = open_file(qtbot, window, tmp_path / "a.npz")
    other = open_file(qtbot, window, tmp_path / "b.npz")
    show(qtbot, window, "w", other)
    model = window.view.table.array_model
    assert model.setData(model.index(1, 1), "3")  # unsaved edits in the other file
    evaluate = window.evaluate_controller
    shown: list[str] = []
    window.value_shown.connect(shown.append)
    assert window.select_node("cube", handle)
    rid = evaluate.pending_request()
    assert rid is not None
    sentence = "The file reader stopped unexpectedly (it crashed); it was restarted."
    with qtbot.waitSignal(window.value_failed) as failed:
        window.worker.failed.emit(rid, sentence)  # what the session reports for a killed reader
    assert failed.args == [sentence]
    assert evaluate.is_idle() and evaluate.shown() is None and not window.export_action.isEnabled()
    assert sentence in window.view.message_label.text() and sentence in window.statusBar().currentMessage()
    assert window.documents[other].copy("w")[1, 1] == 3 and window.documents[other].is_modified()
    with qtbot.waitSignal(window.value_shown):
        window.select_node("other", handle)
    qtbot.waitUntil(window.is_idle)
    qtbot.wait(50)  # the crashed request's real answer, if any, is dropped
    assert shown == ["other"]
    np.testing.assert_array_equal(window.view.array(), np.arange(3.0))


def test_auto_select_shows_the_first_value_and_closing_clears_the_view(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", first=np.eye(2), second=np.zeros(2))
    window.auto_select = True
    with qtbot.waitSignal(window.value_shown) as shown:
        handle = open_file(qtbot, window, tmp_path / "a.npz")
    assert shown.args == ["first"] and window.shown() == (handle, "first")
    assert window.reload_action.isEnabled()
    window.close_file(handle)
    assert window.shown() is None and window.view.array() is None
    assert "Select a tensor" in window.view.message_label.text()
    assert not window.export_action.isEnabled()
