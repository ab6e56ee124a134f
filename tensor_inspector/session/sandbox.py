"""Confine the reader process: after ``apply_sandbox()`` it can read, compute and talk to its parent, nothing else.

The reader runs framework code on files from strangers. The backends already refuse graphs
and pickles that would write files or run code, but a missed op or a native bug would
still run with the user's rights. This is the second wall, enforced by the kernel on the
reader process and everything it starts:

- Landlock: every file-system access right the running kernel knows is handled, and the
  only rule grants read, list and execute beneath "/". No file or directory can be
  created, written, truncated, renamed, linked or removed anywhere. With ABI >= 4 TCP
  bind/connect are refused too; with ABI >= 6 abstract UNIX sockets and signals outside
  the sandbox are out of reach.
- seccomp-bpf: ``socket()`` fails with EPERM for every family, AF_UNIX included unless
  asked (a UNIX socket path such as the D-Bus session bus could start programs outside
  the sandbox); chmod/chown/utimes/xattr changes fail with EPERM (Landlock does not cover
  metadata); io_uring fails with ENOSYS (it can open sockets without the socket call);
  syscalls of another ABI (i386, x32) fail. ``socketpair()`` stays allowed.

File descriptors opened before keep working: the socket pair to the parent (send, recv,
SCM_RIGHTS), stdout/stderr, and memfd_create + ftruncate + mmap for returning arrays.
Landlock applies to the calling thread and threads it starts later, so call this at the
start of the process, before frameworks start thread pools; seccomp is synchronised to
all threads. Syscall numbers are those of x86_64 and aarch64; elsewhere, and on kernels
without Landlock or seccomp, the report says which wall is missing. It never raises.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial


@dataclass(frozen=True)
class SandboxReport:
    mechanisms: tuple[str, ...]  # e.g. ("landlock", "seccomp"); empty when nothing is active
    description: str  # one line for logs and the about box

    @property
    def active(self) -> bool:
        return bool(self.mechanisms)


# -- Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on both arches.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 2, 1 << 3
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FS_WRITE_FILE, FS_TRUNCATE = 1 << 1, 1 << 14
# Writing into /dev/null discards data; libraries open it read-write for child processes'
# standard streams (subprocess.DEVNULL), so it stays writable.
DISCARD_DEVICES = ("/dev/null",)
# Rights handled (hence denied unless a rule grants them) by ABI version: ABI 1 knows bits
# 0-12 (write, remove, make-*), 2 adds REFER, 3 TRUNCATE, 5 IOCTL_DEV; 4 adds TCP rights
# and 6 scopes; 7 only adds logging flags.
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

# -- seccomp
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
X32_SYSCALL_BIT = 0x40000000
AF_UNIX = 1


@dataclass(frozen=True)
class _Arch:
    audit: int  # AUDIT_ARCH_* value seccomp sees in seccomp_data.arch
    seccomp: int
    socket: int
    metadata: tuple[int, ...]  # chmod/chown/utime/xattr families
    io_uring: tuple[int, ...]
    x32: bool  # x86_64 also accepts x32 syscalls (nr | 0x40000000)


_X86_64 = _Arch(
    audit=0xC000003E,
    seccomp=317,
    socket=41,
    # chmod fchmod chown fchown lchown utime utimes fchownat futimesat fchmodat utimensat
    # setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr fchmodat2
    # setxattrat removexattrat
    metadata=(90, 91, 92, 93, 94, 132, 235, 260, 261, 268, 280, 188, 189, 190, 197, 198, 199, 452, 463, 466),
    io_uring=(425, 426, 427),
    x32=True,
)
_AARCH64 = _Arch(
    audit=0xC00000B7,
    seccomp=277,
    socket=198,
    # fchmod fchmodat fchownat fchown utimensat setxattr lsetxattr fsetxattr removexattr
    # lremovexattr fremovexattr fchmodat2 setxattrat removexattrat
    metadata=(52, 53, 54, 55, 88, 5, 6, 7, 14, 15, 16, 452, 463, 466),
    io_uring=(425, 426, 427),
    x32=False,
)
_ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


class _Unavailable(Exception):
    """A mechanism cannot be applied here; the message says why."""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def _syscall(libc: ctypes.CDLL, number: int, *args: int | ctypes.c_void_p | None) -> int:
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(libc.syscall(ctypes.c_long(number), *converted))
    if result < 0:
        errno = ctypes.get_errno()
        raise _Unavailable(f"syscall {number} failed: {os.strerror(errno)}")
    return result


# -- Landlock ---------------------------------------------------------------------------
def _landlock(libc: ctypes.CDLL) -> str:
    """Apply the read-only ruleset; returns what it covers."""
    abi = _syscall(libc, SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    fs_rights = FS_RIGHTS_BY_ABI[max(v for v in FS_RIGHTS_BY_ABI if v <= abi)]
    net_rights = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scopes = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    # struct landlock_ruleset_attr grew with the ABI; pass the size this kernel knows.
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", fs_rights, net_rights, scopes)[:size], size)
    ruleset = _syscall(libc, SYS_LANDLOCK_CREATE_RULESET, ctypes.cast(attr, ctypes.c_void_p), size, 0)
    try:
        _allow(libc, ruleset, "/", FS_READ)
        discard = FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
        for device in DISCARD_DEVICES:
            if os.path.exists(device):
                _allow(libc, ruleset, device, discard)
        _syscall(libc, SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)
    finally:
        os.close(ruleset)
    extra = " and TCP" if net_rights else ""
    return f"Landlock ABI {abi} (read-only file system{extra})"


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    """Grant ``rights`` beneath ``path`` (or on it, for a file) in ``ruleset``."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        # struct landlock_path_beneath_attr is packed: u64 allowed_access, s32 parent_fd.
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        _syscall(
            libc,
            SYS_LANDLOCK_ADD_RULE,
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            ctypes.cast(rule, ctypes.c_void_p),
            0,
        )
    finally:
        os.close(fd)


# -- seccomp ----------------------------------------------------------------------------
def _filter(arch: _Arch, allow_unix_sockets: bool) -> list[tuple[int, int, int, int]]:
    """The BPF program: (code, jt, jf, k) rows; jumps are relative and forward only."""
    rows: list[tuple[int, int | str, int | str, int]] = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 0, "eperm", arch.audit),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if arch.x32:
        rows.append((BPF_JGE_K, "eperm", 0, X32_SYSCALL_BIT))
    rows += [(BPF_JEQ_K, "eperm", 0, nr) for nr in arch.metadata]
    rows += [(BPF_JEQ_K, "enosys", 0, nr) for nr in arch.io_uring]
    if allow_unix_sockets:
        rows.append((BPF_JEQ_K, 0, "allow", arch.socket))
        rows.append((BPF_LD_W_ABS, 0, 0, 16))  # low word of args[0]: the address family
        rows.append((BPF_JEQ_K, "allow", "eperm", AF_UNIX))
    else:
        rows.append((BPF_JEQ_K, "eperm", 0, arch.socket))
    labels = {"allow": len(rows), "eperm": len(rows) + 1, "enosys": len(rows) + 2}
    rows.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    rows.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM))
    rows.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS))

    def target(index: int, jump: int | str) -> int:
        return labels[jump] - index - 1 if isinstance(jump, str) else jump

    return [(code, target(i, jt), target(i, jf), k) for i, (code, jt, jf, k) in enumerate(rows)]


def _seccomp(libc: ctypes.CDLL, arch: _Arch, allow_unix_sockets: bool) -> str:
    rows = _filter(arch, allow_unix_sockets)
    program = b"".join(struct.pack("=HBBI", *row) for row in rows)
    filters = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog: unsigned short len; (padding) struct sock_filter *filter.
    fprog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(rows), ctypes.addressof(filters)), 16)
    try:
        _syscall(
            libc,
            arch.seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_TSYNC,
            ctypes.cast(fprog, ctypes.c_void_p),
        )
    except _Unavailable:
        # Kernels before 3.17 have no seccomp(); prctl filters only the calling thread.
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.cast(fprog, ctypes.c_void_p), 0, 0) != 0:
            raise _Unavailable(f"seccomp failed: {os.strerror(ctypes.get_errno())}") from None
    unix = "" if allow_unix_sockets else ", UNIX included"
    return f"seccomp (no new sockets{unix}; no chmod/chown/xattr; no io_uring)"


# -- entry point ------------------------------------------------------------------------
def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def apply_sandbox(*, allow_unix_sockets: bool = False) -> SandboxReport:
    """Confine this process for good (there is no way back); call before opening any file."""
    if sys.platform != "linux":
        return SandboxReport((), f"No sandbox: {sys.platform} has neither Landlock nor seccomp.")
    arch = _ARCHES.get(platform.machine().lower())
    if arch is None:
        return SandboxReport((), f"No sandbox: syscall numbers for {platform.machine()} are not known.")
    try:
        libc = _libc()
        # Landlock and seccomp filters without CAP_SYS_ADMIN require no_new_privs.
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return SandboxReport((), f"No sandbox: no_new_privs failed ({os.strerror(ctypes.get_errno())}).")
    except (OSError, AttributeError) as exc:
        return SandboxReport((), f"No sandbox: the C library cannot be reached ({exc}).")
    # tempfile probes its candidate directories by creating a file, and raises when none is
    # writable; TensorFlow asks for the directory at import (absl). Probe once now, so later
    # calls get the cached answer (creating a temporary file there still fails).
    try:
        tempfile.gettempdir()
    except OSError:
        pass
    mechanisms: list[str] = []
    parts: list[str] = []
    threads = _thread_count()
    steps: list[tuple[str, Callable[[], str]]] = [
        ("landlock", partial(_landlock, libc)),
        ("seccomp", partial(_seccomp, libc, arch, allow_unix_sockets)),
    ]
    for name, apply in steps:
        try:
            parts.append(apply())
            mechanisms.append(name)
        except Exception as exc:  # never raise: a missing wall is reported, not fatal
            parts.append(f"no {name} ({exc})")
    if not mechanisms:
        return SandboxReport((), "No sandbox: " + "; ".join(parts) + ".")
    note = f"; {threads - 1} thread(s) started earlier keep file-system access" if threads > 1 else ""
    return SandboxReport(tuple(mechanisms), "Sandboxed: " + "; ".join(parts) + note + ".")
