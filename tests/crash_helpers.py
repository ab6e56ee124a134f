"""Functions that crash the interpreter on purpose, for testing crash containment."""

import ctypes


def segfault(_path: str) -> None:
    """Read address 0: a real SIGSEGV, like a native reader on a damaged file."""
    ctypes.string_at(0)
