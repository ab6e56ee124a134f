"""The errors every layer shares: ``str(err)`` is one sentence written for the user."""

from __future__ import annotations

from collections.abc import Sequence


class InspectorError(Exception):
    """An error the user should read: ``str(err)`` is one clear sentence."""


class UnsupportedFormat(InspectorError):
    """No backend recognises the file."""


class CorruptFile(InspectorError):
    """The file is recognised but damaged, truncated or inconsistent."""


class MissingFramework(InspectorError):
    """The file needs a framework that is not installed."""

    def __init__(self, framework: str, extra: str):
        self.framework = framework
        self.extra = extra
        super().__init__(
            f"This file needs {framework}, which is not installed: "
            f"install tensor-inspector[{extra}] (pip install 'tensor-inspector[{extra}]')."
        )


class TrustRequired(InspectorError):
    """The file would run code (or load arbitrary objects) to open; the user must trust it."""

    def __init__(self, message: str, globals_needed: Sequence[str] = ()):
        self.globals_needed = list(globals_needed)
        super().__init__(message)


class NodeNotFound(InspectorError):
    def __init__(self, node_id: str):
        self.node_id = node_id
        super().__init__(f"No node named {node_id!r} in this file.")


class NotEvaluable(InspectorError):
    """The node exists but has no value to show (a group, a resource handle, ...)."""


class Cancelled(InspectorError):
    def __init__(self) -> None:
        super().__init__("Cancelled.")


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message ("" when it has none): framework messages run long."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
