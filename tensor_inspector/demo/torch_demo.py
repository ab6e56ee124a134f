"""Small demo torch files: a nested training checkpoint and a tiny torch.export program.

Used by the demo builder so a new user has something real to click on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _demo_model() -> type[torch.nn.Module]:
    import torch

    class TinyNet(torch.nn.Module):
        """Three layers: enough for a graph with intermediate values worth evaluating."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, kernel_size=3, padding=1)
            self.norm = torch.nn.BatchNorm2d(4)
            self.head = torch.nn.Linear(4 * 8 * 8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.norm(self.conv(x)))
            logits: torch.Tensor = self.head(y.flatten(1))
            return logits

    return TinyNet


def make_demo_torch(directory: Path) -> list[Path]:
    """Write ``demo_checkpoint.pt`` and ``demo_program.pt2`` into ``directory``; return their paths."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = _demo_model()().eval()

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(4, 1, 8, 8, generator=generator)
    model.train()
    model(x).square().mean().backward()
    optimizer.step()
    model.eval()

    checkpoint = {
        "model": model.state_dict(),
        "ema": {k: v.to(torch.bfloat16) for k, v in model.state_dict().items() if v.is_floating_point()},
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "global_step": 1200,
        "config": {"lr": 1e-3, "layers": [1, 4, 10], "name": "tiny-net"},
    }
    checkpoint_path = directory / "demo_checkpoint.pt"
    torch.save(checkpoint, checkpoint_path)

    program = torch.export.export(model, (torch.randn(1, 1, 8, 8, generator=generator),))
    program_path = directory / "demo_program.pt2"
    torch.export.save(program, str(program_path))
    return [checkpoint_path, program_path]
