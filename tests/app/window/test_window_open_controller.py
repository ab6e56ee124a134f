"""Opening and closing through the open controller: documents appear, failures are sentences."""

from __future__ import annotations

import pickle

import numpy as np
from window_helpers import CUBE, open_file, show, window  # noqa: F401  (window: fixture)

from tensor_inspector.session.answers import CRASH, Failure, SessionFailure


def test_open_adds_documents_in_request_order_and_a_second_open_selects_the_first(qtbot, window, tmp_path):
    np.save(tmp_path / "a.npy", CUBE)
    np.savez(tmp_path / "b.npz", w=np.ones(3))
    opener = window.open_controller
    rids = opener.open_paths([tmp_path / "a.npy", tmp_path / "b.npz"])
    qtbot.waitUntil(lambda: len(window.documents) == 2)
    a, b = (window.documents.find_path(tmp_path / name) for name in ("a.npy", "b.npz"))
    assert [a.order, b.order] == rids and a.format_name and b.value_count() == 1
    assert [r.handle for r in window.tree.model.roots()] == [a.handle, b.handle]
    assert opener.open_paths([tmp_path / "a.npy"]) == []  # no second copy
    assert window.tree.current() == (a.handle, None) and "already open" in window.statusBar().currentMessage()


def test_a_refused_trust_prompt_and_a_crashed_reader_leave_open_files_and_edits_alone(
    qtbot, window, tmp_path
):
    np.savez(tmp_path / "kept.npz", cube=CUBE)
    handle = open_file(qtbot, window, tmp_path / "kept.npz")
    show(qtbot, window, "cube")
    model = window.view.table.array_model
    assert model.setData(model.index(0, 0), "9")
    (tmp_path / "code.pkl").write_bytes(pickle.dumps(print))
    asked = []
    window.trust_prompt = lambda path, error: asked.append(path.name) or False
    with qtbot.waitSignal(window.open_error) as refused:
        window.open_paths([tmp_path / "code.pkl"])
    assert asked == ["code.pkl"] and "not trusted" in refused.args[1]
    # the reader process died while opening: the session reports it as a failure sentence
    crash = SessionFailure(Failure(CRASH, "The file reader stopped unexpectedly (it crashed)."))
    with qtbot.waitSignal(window.open_error) as failed:
        window.worker.open_failed.emit(999, str(tmp_path / "damaged.ckpt"), crash)
    assert failed.args[1] == "Could not open damaged.ckpt: The file reader stopped unexpectedly (it crashed)."
    assert window.documents.handles() == [handle] and window.documents[handle].is_modified()
    assert window.view.array()[0, 0, 0] == 9  # the value being looked at stays
    np.save(tmp_path / "next.npy", CUBE)
    with qtbot.waitSignal(window.file_opened):  # the next request is served
        window.open_paths([tmp_path / "next.npy"])
    assert len(window.documents) == 2


def test_close_waits_for_the_unsaved_question(qtbot, window, tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE)
    handle = open_file(qtbot, window, tmp_path / "a.npz")
    opener = window.open_controller
    opener.may_close = lambda h: False
    assert opener.close_file(handle) is False and handle in window.documents
    opener.may_close = lambda h: True
    removed: list[int] = []
    window.documents.document_removed.connect(removed.append)
    window.tree.select_file(handle)
    opener.close_current_file()
    assert removed == [handle] and window.tree.model.roots() == []
