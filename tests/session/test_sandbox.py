"""The reader sandbox, measured in child processes: nothing written, no network, reading and computing still work.

Each check runs in a fresh ``python -c`` child (the sandbox is irreversible), which
prints one JSON object of outcomes; the assertions read it and look at the disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Landlock and seccomp are Linux features")

DEMO = Path(__file__).resolve().parents[2] / "tensor_inspector" / "resources" / "demo" / "mlp_savedmodel"

PRELUDE = """
import json, os, socket, sys
before_a, before_b = socket.socketpair()  # opened before the sandbox, like the reader's link
from tensor_inspector.session.sandbox import apply_sandbox
report = apply_sandbox(**json.loads(sys.argv[2]))
out = {"mechanisms": list(report.mechanisms), "description": report.description}

def attempt(label, action):
    try:
        result = action()
        out[label] = "ok" if result is None else result
    except OSError as exc:
        out[label] = type(exc).__name__ + ":" + str(exc.errno)
"""

FILE_AND_NET_CHECKS = """
import mmap, threading
d = sys.argv[1]
existing = os.path.join(d, "existing.txt")
attempt("create", lambda: open(os.path.join(d, "new.txt"), "x").close())
attempt("write", lambda: open(existing, "w").close())
attempt("append", lambda: open(existing, "a").close())
attempt("rename", lambda: os.rename(existing, os.path.join(d, "renamed.txt")))
attempt("unlink", lambda: os.unlink(existing))
attempt("truncate", lambda: os.truncate(existing, 0))
attempt("mkdir", lambda: os.mkdir(os.path.join(d, "sub")))
attempt("symlink", lambda: os.symlink(existing, os.path.join(d, "link")))
attempt("hardlink", lambda: os.link(existing, os.path.join(d, "hard")))
attempt("chmod", lambda: os.chmod(existing, 0o777))
attempt("read", lambda: open(existing).read())
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())

def pair():
    before_a.sendall(b"ping")
    return before_b.recv(4).decode()
attempt("socketpair_before", pair)

def memfd():
    fd = os.memfd_create("array")
    os.ftruncate(fd, 1 << 20)
    view = mmap.mmap(fd, 1 << 20)
    view[:5] = b"hello"
    socket.send_fds(before_a, [b"fd"], [fd])  # SCM_RIGHTS over the link opened before
    _msg, fds, _flags, _addr = socket.recv_fds(before_b, 2, 1)
    return bytes(mmap.mmap(fds[0], 1 << 20)[:5]).decode()
attempt("memfd", memfd)

def mmap_read():
    with open(existing, "rb") as fh:
        return bytes(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)[:8]).decode()
attempt("mmap_read", mmap_read)

def from_thread():
    results = []
    def create():
        try:
            open(os.path.join(d, "from_thread.txt"), "x").close()
            results.append("ok")
        except OSError as exc:
            results.append(type(exc).__name__ + ":" + str(exc.errno))
    thread = threading.Thread(target=create)
    thread.start()
    thread.join()
    return results[0]
attempt("thread", from_thread)
print(json.dumps(out))
"""

TENSORFLOW_CHECK = """
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
from tensor_inspector.backends.registry import open_path
with open_path(sys.argv[1]) as source:
    node = "serving_default/StatefulPartitionedCall/probabilities:0"
    value = source.evaluate(node, {"features": np.ones((3, 16), np.float32)})
    out["shape"] = list(value.shape)
    out["row_sums"] = value.sum(axis=1).round(4).tolist()
print(json.dumps(out))
"""

TORCH_CHECK = """
import torch
state = torch.load(os.path.join(sys.argv[1], "weights.pt"), mmap=True, weights_only=True)
out["sum"] = float((state["w"] @ state["w"].T).trace())
print(json.dumps(out))
"""


def _run_child(script: str, arg: Path, **options: bool) -> dict:
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(PRELUDE) + textwrap.dedent(script),
            str(arg),
            json.dumps(options),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result: dict = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["mechanisms"] == ["landlock", "seccomp"], result["description"]
    return result


@pytest.fixture(scope="module")
def confined(tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("confined")
    (folder / "existing.txt").write_text("original content")
    return folder, _run_child(FILE_AND_NET_CHECKS, folder)


DENIED = "PermissionError:13"  # EACCES from Landlock
REFUSED = "PermissionError:1"  # EPERM from seccomp


@pytest.mark.parametrize(
    "check",
    ["create", "write", "append", "rename", "unlink", "truncate", "mkdir", "symlink", "hardlink", "thread"],
)
def test_nothing_is_created_or_changed(confined, check):
    folder, result = confined
    assert result[check] == DENIED
    assert sorted(p.name for p in folder.iterdir()) == ["existing.txt"]
    assert (folder / "existing.txt").read_text() == "original content"


def test_metadata_cannot_change(confined):
    folder, result = confined
    mode = (folder / "existing.txt").stat().st_mode
    assert result["chmod"] == REFUSED
    assert (folder / "existing.txt").stat().st_mode == mode


@pytest.mark.parametrize("family", ["inet", "inet6", "unix"])
def test_no_new_sockets(confined, family):
    assert confined[1][family] == REFUSED


def test_open_descriptors_memfd_and_reading_still_work(confined):
    result = confined[1]
    assert result["read"] == "original content"
    assert result["mmap_read"] == "original"
    assert result["socketpair_before"] == "ping"
    assert result["memfd"] == "hello"


def test_unix_sockets_when_asked(tmp_path):
    script = """
    attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
    attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
    print(json.dumps(out))
    """
    result = _run_child(script, tmp_path, allow_unix_sockets=True)
    assert result["unix"] == "ok" and result["inet"] == REFUSED


def test_dev_null_and_child_processes_still_work(tmp_path):
    """Libraries give child processes /dev/null as standard input (opened read-write)."""
    script = """
    attempt("devnull", lambda: open(os.devnull, "w").write("discarded") and None)
    import subprocess
    child = subprocess.run([sys.executable, "-c", "print(6 * 7)"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
    out["child"] = child.stdout.strip()
    attempt("create", lambda: open(os.path.join(sys.argv[1], "new.txt"), "w"))
    print(json.dumps(out))
    """
    result = _run_child(script, tmp_path)
    assert result["devnull"] == "ok" and result["child"] == "42"
    assert result["create"] == DENIED and list(tmp_path.iterdir()) == []


def test_tensorflow_evaluates_the_demo_savedmodel_inside(tmp_path):
    result = _run_child(TENSORFLOW_CHECK, DEMO)
    assert result["shape"] == [3, 10]
    assert result["row_sums"] == [1.0, 1.0, 1.0]


def test_torch_loads_a_checkpoint_with_mmap_inside(tmp_path):
    import torch

    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    torch.save({"w": w}, tmp_path / "weights.pt")
    result = _run_child(TORCH_CHECK, tmp_path)
    assert result["sum"] == float((w @ w.T).trace())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]
