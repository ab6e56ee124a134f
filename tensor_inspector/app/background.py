"""Run a function off the GUI thread; deliver only the latest result per channel.

API::

    runner = BackgroundRunner(parent)            # one per widget; uses its own QThreadPool
    rid = runner.submit("stats", compute_stats, array, bins=64,
                        on_done=lambda result: ..., on_error=lambda message: ...,
                        on_exception=lambda err: ...,   # the exception itself, when a sentence is not enough
                        cancellable=True)        # fn also receives cancel=threading.Event
    runner.finished.connect(slot)                # slot(channel: str, request_id: int, result)
    runner.failed.connect(slot)                  # slot(channel: str, request_id: int, message: str)
    runner.is_current("stats", rid); runner.pending("stats"); runner.cancel("stats")
    runner.wait_idle(msecs)                      # for tests
    runner.stop(msecs)                           # on close: cancel all, drop queued work, wait

Each submit on a channel makes every earlier request of that channel stale: its
cancel event is set (if the function takes one) and its result, when it arrives,
is dropped without a signal or callback. Results are delivered on the GUI thread
through a queued signal, so slots and callbacks may touch widgets. Exceptions in
the function arrive as ``failed`` with one sentence: ``str(err)`` for
``InspectorError`` (already written for users), "Type: message" otherwise; callers
that act on the kind of failure (a file that asks to be trusted lists what it needs)
pass ``on_exception`` and get the exception object, its traceback dropped so the
frames of the failed call (and the arrays they hold) are freed at once.

Channels are cheap: work that must never replace other work (each open, each save)
gets a channel of its own.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from tensor_inspector.core.errors import Cancelled, InspectorError, first_line

_PINNED = False


def pin_singletons() -> bool:
    """Keep None/True/False alive despite PySide6's missing references; True if it was needed.

    PySide6 6.12 on CPython 3.11 returns None from every void method (and True from
    ``Signal.emit``) without a new reference, so each call drops the refcount of the
    singleton by one; after a few thousand calls CPython aborts with "deallocating
    None". CPython 3.12+ makes these objects immortal, which hides the bug there; this
    gives them the same immortality on 3.11. Must run before the GUI starts.
    """
    global _PINNED
    if (
        _PINNED
        or sys.version_info >= (3, 12)
        or sys.implementation.name != "cpython"
        or hasattr(sys, "gettotalrefcount")
    ):  # debug builds lay objects out differently
        return _PINNED
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(8):
        probe.setObjectName("probe")  # a void method
    leaked = before - sys.getrefcount(None)
    if leaked <= 0:
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every PyObject in release builds
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40
    _PINNED = True
    return True


def error_sentence(err: BaseException) -> str:
    """One readable sentence for ``err`` (user-facing errors keep their own text)."""
    if isinstance(err, InspectorError):
        return str(err)
    text = first_line(err)
    name = type(err).__name__
    return f"{name}: {text}" if text else f"{name}."


class _Relay(QObject):
    """Lives in the GUI thread; the worker emits on it, so delivery is queued."""

    delivered = Signal(str, int, bool, object)  # channel, id, ok, result-or-_Failure


@dataclass(frozen=True)
class _Failure:
    sentence: str
    error: BaseException


@dataclass
class _Request:
    channel: str
    request_id: int
    cancel: threading.Event = field(default_factory=threading.Event)
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[str], None] | None = None
    on_exception: Callable[[BaseException], None] | None = None
    returned: threading.Event = field(default_factory=threading.Event)  # the function is done (or never ran)
    after: threading.Event | None = None  # the previous request's ``returned``, for ``after_previous``


class _Task(QRunnable):
    def __init__(
        self,
        relay: _Relay,
        request: _Request,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._relay, self._request = relay, request
        self._fn: Callable[..., Any] | None = fn
        self._args: tuple[Any, ...] = args
        self._kwargs: dict[str, Any] = kwargs

    def _send(self, ok: bool, payload: object) -> None:
        try:
            self._relay.delivered.emit(self._request.channel, self._request.request_id, ok, payload)
        except RuntimeError:  # the widget was closed meanwhile: nobody is waiting
            pass

    def run(self) -> None:  # worker thread
        req = self._request
        try:
            if req.after is not None:
                # started in submit order, so the previous request is running, not queued behind us
                req.after.wait()
            if req.cancel.is_set():
                self._send(False, _Failure("Cancelled.", Cancelled()))
                return
            if self._fn is None:
                return
            try:
                result = self._fn(*self._args, **self._kwargs)
            except BaseException as err:  # noqa: BLE001 - everything must come back as a message
                self._send(False, _Failure(error_sentence(err), err.with_traceback(None)))
            else:
                self._send(True, result)
        finally:
            self._fn, self._args, self._kwargs = None, (), {}  # drop references to big arrays early
            req.returned.set()


class BackgroundRunner(QObject):
    """Latest-request-wins execution of plain functions on a thread pool."""

    finished = Signal(str, int, object)
    failed = Signal(str, int, str)

    _ids = itertools.count(1)  # process-wide, so ids never repeat between runners

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._relay = _Relay(self)
        self._relay.delivered.connect(self._deliver)
        self._latest: dict[str, _Request] = {}
        self._last_serial: dict[
            str, _Request
        ] = {}  # last ``after_previous`` request per channel, stale or not
        self.dropped = 0  # stale results ignored so far (tests read it)

    def submit(
        self,
        channel: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_exception: Callable[[BaseException], None] | None = None,
        cancellable: bool = False,
        after_previous: bool = False,
        **kwargs: Any,
    ) -> int:
        """Run ``fn(*args, **kwargs)`` in the pool; returns the request id.

        ``after_previous``: start only once the channel's previous request (stale or not)
        has returned, for work on something that serves one call at a time; the previous
        one is cancelled, so with a function that honours ``cancel`` the wait is short.
        """
        self.cancel(channel)
        request = _Request(
            channel, next(self._ids), on_done=on_done, on_error=on_error, on_exception=on_exception
        )
        if after_previous:
            previous = self._last_serial.get(channel)
            request.after = previous.returned if previous is not None else None
            self._last_serial[channel] = request
        if cancellable:
            kwargs["cancel"] = request.cancel
        self._latest[channel] = request
        self.pool.start(_Task(self._relay, request, fn, args, kwargs))
        return request.request_id

    def cancel(self, channel: str | None = None) -> None:
        """Make the current request of ``channel`` (or of every channel) stale and signal its cancel event."""
        channels = list(self._latest) if channel is None else [channel]
        for name in channels:
            request = self._latest.pop(name, None)
            if request is not None:
                request.cancel.set()

    def is_current(self, channel: str, request_id: int) -> bool:
        request = self._latest.get(channel)
        return request is not None and request.request_id == request_id

    def pending(self, channel: str | None = None) -> bool:
        """True while a current request (of ``channel``, or any) has not delivered yet."""
        if channel is None:
            return bool(self._latest)
        return channel in self._latest

    def wait_idle(self, msecs: int = -1) -> bool:
        """Block until the pool's threads are done (deliveries still need the event loop)."""
        return self.pool.waitForDone(msecs)

    def stop(self, msecs: int = -1) -> bool:
        """Cancel every channel, drop work not started yet, wait up to ``msecs`` for the rest.

        For closing: the pool's destructor waits for running work without limit, so
        whoever owns a runner whose functions may block makes them return (e.g. stops
        what they wait on) and calls this first. True if nothing is running any more.
        """
        self.cancel()
        self.pool.clear()
        self._last_serial.clear()  # dropped requests never return: nothing may wait for them
        return self.pool.waitForDone(msecs)

    @Slot(str, int, bool, object)
    def _deliver(self, channel: str, request_id: int, ok: bool, payload: object) -> None:
        request = self._latest.get(channel)
        if request is None or request.request_id != request_id:
            self.dropped += 1
            return
        del self._latest[channel]
        if ok:
            if request.on_done is not None:
                request.on_done(payload)
            self.finished.emit(channel, request_id, payload)
        else:
            assert isinstance(payload, _Failure)
            if request.on_error is not None:
                request.on_error(payload.sentence)
            if request.on_exception is not None:
                request.on_exception(payload.error)
            self.failed.emit(channel, request_id, payload.sentence)
