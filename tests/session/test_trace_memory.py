"""A trace holds a few activations at a time, not all of them: a model whose activations
add up to ten times what the reader may hold is traced to completion inside that limit.

The reader is the window's: a process that is killed once its resident memory passes
its limit. The limit is set just above the reader's own resting memory (measured, with
the framework imported and a file open), so a backend that held on to its outputs, or
values kept beyond the keep budget, would pass it within a few nodes. The headroom is
what one step of a trace needs: torch holds an op's input and output, TensorFlow the
outputs one Session run returns (``graph_trace.CHUNK_BYTES``) and the values carried
to the next run; with the default keep, a quarter of the limit in kept values too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from trace_fixtures import tf2_saved_model, torch_program

from tensor_inspector.session.isolated import IsolatedSession

# what a trace may use above the reader's resting memory
HEADROOM = {"torch": 320 << 20, "tf": 720 << 20}
ROWS, COLUMNS = 2048, 4096  # float32: 32 MiB per node output
NODE_BYTES = ROWS * COLUMNS * 4
TIMES_THE_LIMIT = 10


def _memory(pid: int, field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) << 10
    raise AssertionError(f"no {field} for process {pid}")


def _chain_program(directory: Path, steps: int) -> Path:
    """``x -> sin(3 x + 0.1)``, ``steps`` times: three 32 MiB outputs a step, no weights.
    (A map that stretches: the values stay spread over [-1, 1] instead of settling.)"""
    import torch

    class Chain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for _ in range(steps):
                x = torch.sin(x * 3.0 + 0.1)
            return x

    # the example input is stored with the program and is what a trace feeds by default
    example = torch.rand(ROWS, COLUMNS, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = directory / "chain.pt2"
    torch.export.save(torch.export.export(Chain(), (example,)), str(path))
    return path


def _chain_saved_model(directory: Path, steps: int) -> Path:
    """The same chain as a TF2 SavedModel signature (its default input: seeded normal values)."""
    import tensorflow as tf

    class Chain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([ROWS, COLUMNS], tf.float32, name="x")])
        def serve(self, x):
            for _ in range(steps):
                x = tf.sin(x * 3.0 + 0.1)
            return {"y": x}

    chain = Chain()
    path = directory / "chain_tf"
    tf.saved_model.save(chain, str(path), signatures={"serving_default": chain.serve})
    return path


# the ops of one step, as each framework names them
_CHAIN_OPS = {
    "torch": ("aten.mul.Tensor", "aten.add.Tensor", "aten.sin.default"),
    "tf": ("Mul", "AddV2", "Sin"),
}
BUILDERS = {
    "torch": (lambda directory: torch_program(directory, nan=False), _chain_program),
    "tf": (tf2_saved_model, _chain_saved_model),
}


@pytest.fixture(scope="module", params=["torch", "tf"])
def bounded(request, tmp_path_factory):
    """(framework, session, handle of the chain, its reader's pid, the limit): the limit is the
    reader's resting memory with the framework loaded plus its HEADROOM; the chain's outputs
    add up to ten times it."""
    framework = request.param
    small, chain = BUILDERS[framework]
    directory = tmp_path_factory.mktemp(f"trace_memory_{framework}")
    session = IsolatedSession()
    try:
        session.open(small(directory))  # the framework imported, a model loaded
        reader = session.untrusted_reader
        pid = reader.pid()
        assert pid is not None
        limit = _memory(pid, "VmRSS") + HEADROOM[framework]
        reader.memory_limit = limit
        steps = math.ceil(TIMES_THE_LIMIT * limit / (3 * NODE_BYTES))
        info = session.open(chain(directory, steps))
        yield framework, session, info.handle, pid, limit
    finally:
        session.shutdown()


@pytest.mark.parametrize("keep_bytes", [0, None], ids=["keep-nothing", "default-keep"])
def test_a_trace_of_ten_times_the_memory_limit_completes_within_it(bounded, keep_bytes):
    framework, session, handle, pid, limit = bounded
    report = session.trace(handle, keep_bytes=keep_bytes)

    assert session.untrusted_reader.pid() == pid  # the same reader: never stopped, never restarted
    assert _memory(pid, "VmHWM") <= limit  # its peak, not only what the watcher sampled
    activations = [n for n in report.nodes if n.op in _CHAIN_OPS[framework]]
    assert all(n.shape == (ROWS, COLUMNS) and n.dtype == "float32" for n in activations)
    assert len(activations) * NODE_BYTES >= TIMES_THE_LIMIT * limit
    assert all(n.finite for n in report.nodes) and report.first_nonfinite is None

    # every output summarised from its real values: the first one checked against numpy,
    # the last one spread over sin's range
    scaled = report.feeds["x"].astype(np.float64) * 3.0
    first = next(n for n in report.nodes if n.op in _CHAIN_OPS[framework][:1])
    assert first.min == pytest.approx(scaled.min(), rel=1e-6)
    assert first.max == pytest.approx(scaled.max(), rel=1e-6)
    assert first.mean == pytest.approx(scaled.mean(), rel=1e-5, abs=1e-7)
    assert first.std == pytest.approx(scaled.std(), rel=1e-6)
    last = activations[-1]
    assert last.op == _CHAIN_OPS[framework][-1] and -1 <= last.min < last.max <= 1 and last.std > 0.1

    kept = [n for n in report.nodes if n.kept]
    if keep_bytes == 0:
        assert not kept and report.kept_bytes == 0
    else:  # the default keep (1 GiB) is more than the reader may hold: held to a share of it
        assert kept and 0 < report.kept_bytes <= limit // 4
