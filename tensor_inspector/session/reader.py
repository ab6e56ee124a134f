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
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tensor_inspector.session.answers import FileInfo, Saved

# numpy, the backends and the frameworks are imported only after the sandbox is up:
# Landlock confines the calling thread and the threads it starts later, so nothing may
# start threads (numpy's BLAS pool does) before it.
log = logging.getLogger(__name__)


class ReaderService:
    """The methods a reader serves, on top of a ``LocalSession``."""

    def __init__(self, sandbox: str = "No sandbox: this reader serves trusted files and saves.") -> None:
        from tensor_inspector.session.local import LocalSession

        self.session = LocalSession()
        self.sandbox_description = sandbox

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
            "trace": s.trace,
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
        try:
            rid, method, args, kwargs = request
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
