"""A subgraph that a higher-order op runs many times (a while_loop's condition and body, a
map or scan body), reporting one of its runs in a trace.

A trace lists each node once, so a body run a hundred times reports one run: the first
whose outputs hold NaN/Inf (run again, with reports, on the same inputs; bodies of
torch.export programs do not mutate their inputs), else the last run. The other runs use
the original subgraph, without reports, so a loop costs one extra run of its body. Only the
outputs are checked on each run: a NaN made inside the body and masked before it leaves
shows only when it is in the run reported.
"""

from __future__ import annotations

from typing import Any

import torch

from tensor_inspector.backends.base import Cancelled


class RepeatedSubgraph(torch.nn.Module):
    """Stands in for the subgraph in the trace copy; torch's op calls it once per iteration."""

    def __init__(self, plain: torch.nn.Module, reporting: torch.nn.Module):
        super().__init__()
        self.plain = plain
        self.reporting = reporting
        self.reset()

    def reset(self) -> None:
        self.reported = False
        self.last_inputs: tuple[Any, ...] | None = None  # held until the op returns: one run's inputs

    def forward(self, *inputs: Any) -> Any:
        from tensor_inspector.backends.pytorch.export_trace import cancel_requested

        if cancel_requested():
            raise Cancelled()
        outputs = self.plain(*inputs)
        if self.reported:
            return outputs
        if _all_finite(outputs):
            self.last_inputs = inputs
        else:
            self.reporting(*inputs)
            self.reported, self.last_inputs = True, None
        return outputs


def finish_repeated(subgraph: RepeatedSubgraph) -> None:
    """Called by the trace copy after the op: report the last run if no run was reported."""
    inputs, reported = subgraph.last_inputs, subgraph.reported
    subgraph.reset()
    if not reported and inputs is not None:
        subgraph.reporting(*inputs)


def _all_finite(outputs: Any) -> bool:
    values = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    for value in values:
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            if not bool(torch.isfinite(value).all()):
                return False
    return True
