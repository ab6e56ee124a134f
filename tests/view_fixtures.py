"""Helpers for ArrayView tests (the ``view`` fixture itself lives in conftest.py)."""

WAIT_MS = 60_000  # generous: other processes may share the two cores


def show(qtbot, view, array, **kwargs):
    """Show ``array`` and wait until its statistics and image are on screen."""
    view.set_array(array, **kwargs)
    qtbot.waitUntil(view.stats_ready, timeout=WAIT_MS)
