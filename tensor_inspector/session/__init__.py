"""The one way to open, read, evaluate, save and close a file (Qt-free).

The CLI runs it in-process; the window runs every backend call in a reader process.
Requests and answers are plain data; failures come back as a kind and a sentence.
"""

from __future__ import annotations


def supported_formats() -> str:
    """One line listing the formats this installation knows (imports no framework)."""
    from tensor_inspector.backends.registry import supported_formats as listing

    return listing()
