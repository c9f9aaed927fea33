"""Resumable training: atomic checkpoints of models, optimisers and the step counter.

Trainings draw each step's randomness from ``step_generator(seed, step)`` rather than from a global
RNG stream, so a run resumed from a checkpoint at step k continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from synthsod.core.io import atomic_path
from synthsod.errors import SynthsodError

Stateful = Any  # anything with state_dict() / load_state_dict(): modules, optimisers, schedulers


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch Generator seeded by (seed, step) only."""
    generator = torch.Generator(device=device)
    generator.manual_seed((int(seed) * 1_000_003 + int(step)) % (2**63))
    return generator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside the block torch's CPU generator is seeded by ``seed``; after it, the caller's state is back.
    Models built inside start from weights that depend on the seed alone, not on what ran before."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def save_checkpoint(path: str | os.PathLike, step: int, parts: Mapping[str, Stateful], **extra: Any) -> None:
    """Write ``{step, <name>: state_dict, **extra}`` atomically (a killed save leaves the old file)."""
    payload = {"step": int(step), **{name: part.state_dict() for name, part in parts.items()}, **extra}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(payload, file)


def load_checkpoint(path: str | os.PathLike, parts: Mapping[str, Stateful]) -> dict[str, Any] | None:
    """Restore ``parts`` from ``path`` if it exists; return the payload (None when there is none)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        for name, part in parts.items():
            part.load_state_dict(payload[name])
    except Exception as err:  # a checkpoint from another config or a damaged file
        raise SynthsodError(f"cannot resume from checkpoint {path}: {err}; delete it to start over") from err
    return payload
