"""The message format between the window and its readers: arrays through shared memory."""

from __future__ import annotations

import socket
import threading

import numpy as np

from tensor_inspector.session import wire


def _round_trip(message):
    left, right = socket.socketpair()
    received: list = []
    with left, right:  # a reader thread: a big inline payload outgrows the socket buffer
        reader = threading.Thread(target=lambda: received.append(wire.receive(right)))
        reader.start()
        wire.send(left, message)
        reader.join()
    return received[0]


def test_more_shared_arrays_than_one_message_can_pass_still_arrive():
    """One sendmsg passes at most 253 descriptors; the arrays beyond travel inline."""
    arrays = [np.full(wire.INLINE_BYTES // 4 + 1, i, np.float32) for i in range(wire.MAX_FDS + 40)]
    received = _round_trip({"arrays": arrays})
    assert len(received["arrays"]) == len(arrays)
    for sent, got in zip(arrays, received["arrays"]):
        np.testing.assert_array_equal(got, sent)


def test_a_shared_array_arrives_read_only():
    array = np.arange(wire.INLINE_BYTES, dtype=np.float64)
    got = _round_trip(array)
    np.testing.assert_array_equal(got, array)
    assert not got.flags.writeable
