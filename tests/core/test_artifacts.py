"""Model files and checkpoints load without unpickling code: every loader uses torch.load(weights_only=True)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from synthsod.core.checkpoint import load_checkpoint, save_checkpoint

PACKAGE = Path(__file__).resolve().parents[2] / "synthsod"


def test_no_loader_unpickles_arbitrary_objects():
    loads = {}
    for path in PACKAGE.rglob("*.py"):
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            loads[f"{path.relative_to(PACKAGE)}: {call}"] = "weights_only=True" in call
    assert len(loads) >= 7, loads  # G, D, checkpoints, DEN, G_mask, D_q, SOD models, directions
    assert all(loads.values()), [call for call, safe in loads.items() if not safe]


def test_a_checkpoint_round_trips_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimiser = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimiser.step()
    save_checkpoint(
        tmp_path / "c.pt",
        7,
        {"model": model, "opt": optimiser},
        log=[{"step": 1, "loss": 0.5}],
        config={"lr": 1e-3, "sizes": [64], "name": None},
    )
    other, other_opt = torch.nn.Linear(3, 2), torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    payload = load_checkpoint(tmp_path / "c.pt", {"model": other, "opt": other_opt})
    assert payload["step"] == 7 and payload["log"] == [{"step": 1, "loss": 0.5}]
    assert torch.equal(other.weight, model.weight)
    torch.load(tmp_path / "c.pt", weights_only=True)  # nothing but tensors and plain values
