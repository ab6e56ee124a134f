"""The reader process: serves one window's requests with a ``LocalSession``.

Started by ``session.reader_process`` as ``python -m tensor_inspector.session.reader FD
[--sandbox]`` with one end of a Unix socket pair as descriptor FD. Every framework
import, file read and graph evaluation of the window happens here, so a native crash
(TensorFlow's checkpoint reader, h5py), a runaway allocation or a hang takes down this
process only. With ``--sandbox`` the process gives up writing files and opening network
connections before it reads anything (``session.sandbox``).

Requests are ``(request id, method, args, kwargs)``; answers ``(request id, True,
result)`` or ``(request id, False, Failure)``. Only the methods in ``METHODS`` are served.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensor_inspector.session.answers import FileInfo, Saved, TraceReport

# numpy, the backends and the frameworks are imported only after the sandbox is up:
# Landlock confines the calling thread and the threads it starts later, so nothing may
# start threads (numpy's BLAS pool does) before it.
log = logging.getLogger(__name__)


PROGRESS_EVERY_S = 0.1  # a long call's progress messages are sent at most this often


class CallLink:
    """What a long call in the reader has of the window: progress out, cancel in.

    Progress goes out as ``(request id, None, (done, total))`` between answers; the window
    asks to stop with ``("cancel", request id)``, read here without blocking whenever
    progress is reported, so a trace stops between two nodes and the reader (with the
    files it has open) lives on. The window's kill after a grace period remains for
    calls that do not report.
    """

    def __init__(self, sock: socket.socket, rid: int) -> None:
        self.sock, self.rid = sock, rid
        self.cancel = threading.Event()
        self._sent_at = 0.0

    def progress(self, done: int, total: int) -> None:
        from tensor_inspector.session import wire  # numpy: not before the sandbox (see above)

        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable:
            try:
                message = wire.receive(self.sock)
            except wire.WireError:  # the window hung up: stop working for it
                message = ("cancel", self.rid)
            if message == ("cancel", self.rid):
                self.cancel.set()
        now = time.monotonic()
        if now - self._sent_at >= PROGRESS_EVERY_S or done >= total:
            self._sent_at = now
            wire.send(self.sock, (self.rid, None, (int(done), int(total))))


class ReaderService:
    """The methods a reader serves, on top of a ``LocalSession``."""

    # Methods that take ``progress`` and ``cancel`` from a ``CallLink``.
    LINKED = frozenset({"trace"})

    def __init__(self, sandbox: str = "No sandbox: this reader serves trusted files and saves.") -> None:
        from tensor_inspector.session.local import LocalSession

        self.session = LocalSession()
        self.sandbox_description = sandbox

    def trace(self, handle: int, *args: Any, **kwargs: Any) -> TraceReport:
        """The trace without its kept values: they stay here, and ``value`` serves them."""
        import dataclasses

        report = self.session.trace(handle, *args, **kwargs)
        return dataclasses.replace(report, arrays={})

    def open(self, path: str, trust: bool) -> tuple[FileInfo, str | None]:
        info = self.session.open(Path(path), trust=trust)
        return info, self.session.signature(info.handle)

    def save(
        self, handle: int, replacements: dict[str, Any], target: str, signature: str | None
    ) -> tuple[Saved, str | None]:
        saved = self.session.save(handle, replacements, Path(target), opened_signature=signature)
        return saved, self.session.signature(handle)

    def ping(self) -> int:
        return os.getpid()

    def sandbox(self) -> str:
        """What confines this reader (one line), for the About box and diagnostics."""
        return self.sandbox_description

    def methods(self) -> dict[str, Callable[..., Any]]:
        s = self.session
        return {
            "open": self.open,
            "save": self.save,
            "ping": self.ping,
            "sandbox": self.sandbox,
            "value": s.value,
            "feed_specs": s.feed_specs,
            "compare_pair": s.compare_pair,
            "trace": self.trace,
            "close": s.close,
        }


def serve(sock: socket.socket, service: ReaderService) -> None:
    """Answer requests until the window hangs up."""
    from tensor_inspector.session import wire
    from tensor_inspector.session.answers import failure_of

    methods = service.methods()
    while True:
        try:
            request = wire.receive(sock)
        except wire.WireError:
            return  # the window closed its end: nothing left to serve
        if isinstance(request, tuple) and len(request) == 2 and request[0] == "cancel":
            continue  # a cancel that came after its call had answered
        try:
            rid, method, args, kwargs = request
            if method in ReaderService.LINKED:
                link = CallLink(sock, rid)
                kwargs = {**kwargs, "progress": link.progress, "cancel": link.cancel}
            result = methods[method](*args, **kwargs)
            answer: tuple[Any, bool, Any] = (rid, True, result)
        except BaseException as exc:  # every failure goes back as data
            log.debug("request failed", exc_info=True)
            answer = (request[0] if isinstance(request, tuple) and request else 0, False, failure_of(exc))
        try:
            wire.send(sock, answer)
        except OSError:
            return  # the window is gone
        except Exception as exc:  # a result that cannot be sent is a failure to report
            wire.send(sock, (answer[0], False, failure_of(exc)))


def main(argv: list[str]) -> int:
    fd = int(argv[0])
    sock = socket.socket(fileno=fd)
    description = None
    if "--sandbox" in argv[1:]:
        from tensor_inspector.session.sandbox import apply_sandbox

        description = apply_sandbox().description
    if "--debug" in argv[1:]:
        logging.basicConfig(level=logging.DEBUG)
    try:
        serve(sock, ReaderService(description) if description else ReaderService())
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
