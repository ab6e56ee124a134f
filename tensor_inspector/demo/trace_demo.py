"""A demo program whose run produces a NaN: something to try Trace (Ctrl+T) on.

The classic one: the entropy of a softmax, ``-(p * log p).sum()``. With confident logits
float32's softmax rounds small probabilities to exactly 0, ``log`` turns them into -inf,
and ``0 * -inf`` is NaN, which every later op passes on. The trace names ``log`` as the
producer (its inputs are finite, its output is not), not the ``mul`` where NaN first shows.
"""

from __future__ import annotations

from pathlib import Path


def make_demo_trace(directory: Path) -> list[Path]:
    """Write ``entropy_nan.pt2`` into ``directory``; return its path."""
    import torch

    class Entropy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            generator = torch.Generator().manual_seed(3)
            self.proj = torch.nn.Linear(16, 32)
            with torch.no_grad():  # large weights: confident logits, as after long training
                self.proj.weight.copy_(torch.randn(32, 16, generator=generator) * 20)
                self.proj.bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            p = torch.softmax(self.proj(torch.tanh(x)), dim=-1)
            entropy = -(p * torch.log(p)).sum(dim=-1)
            return entropy.mean()

    example = torch.randn(8, 16, generator=torch.Generator().manual_seed(4))  # the default input
    program = torch.export.export(Entropy().eval(), (example,))
    path = Path(directory) / "entropy_nan.pt2"
    torch.export.save(program, str(path))
    return [path]
