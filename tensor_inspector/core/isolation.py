"""Run a risky reader in a separate Python process first, so a crash cannot take the app down.

Native readers can abort the whole process on a damaged file (h5py segfaults or hangs
on some corrupt HDF5; see design.md). ``run_isolated`` calls ``module:function(*args)``
in a fresh interpreter and returns its JSON-able result; a crash (a signal), a hang
(timeout) or an exception becomes an ``IsolatedFailure`` with one sentence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tensor_inspector.core.errors import InspectorError

_RUNNER = (
    "import importlib, json, sys\n"
    "module, _, name = sys.argv[1].partition(':')\n"
    "result = getattr(importlib.import_module(module), name)(*sys.argv[2:])\n"
    "sys.stdout.write(json.dumps(result))\n"
)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # so the child imports this same package


class IsolatedFailure(InspectorError):
    """The isolated call crashed, hung or raised; ``crashed`` tells a signal from an exception."""

    def __init__(self, message: str, crashed: bool):
        self.crashed = crashed
        super().__init__(message)


def run_isolated(target: str, *args: str, timeout: float = 120.0) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, target, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise IsolatedFailure(f"reading it did not finish within {timeout:.0f} s", crashed=True) from None
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        raise IsolatedFailure(f"the reader crashed ({name})", crashed=True)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise IsolatedFailure(lines[-1] if lines else f"exit code {proc.returncode}", crashed=False)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise IsolatedFailure("the reader's answer was unreadable", crashed=False) from None
