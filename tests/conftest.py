"""Test-wide set-up: offscreen Qt, settings in a temp dir, shared fixture builders."""

from __future__ import annotations

import os
import tempfile

# Before any Qt import: no display in CI, and never touch the user's real settings.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="tensor-inspector-test-config-"))
# A user's environment must not weaken torch's safe loading (see the torch backend tests).
os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)


import pytest  # noqa: E402


@pytest.fixture
def view(qtbot):
    """A shown ArrayView (Qt is imported only by the tests that use it)."""
    from tensor_inspector.app.views.array_view import ArrayView

    widget = ArrayView()
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget
