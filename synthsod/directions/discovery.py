"""Unsupervised discovery of latent directions (Voynov & Babenko, ICML 2020).

A *deformator* holds K unit directions h_1..h_K in the generator's latent space. Each step draws
latents z, a direction index k and a shift ε, renders G(z) and G(z + ε·h_k) with the frozen generator,
and a *reconstructor* looks at the pair and predicts k (cross-entropy) and ε (L1, weighted by
``shift_weight``). Deformator and reconstructor are trained jointly with Adam, so the directions drift
towards changes that are easy to tell apart: interpretable, disentangled factors of the image.

Our choices:

- Deformator ``"ortho"``: the directions are the first K columns of exp(S - Sᵀ), an orthogonal matrix
  (K ≤ z_dim); S starts at 1e-3·N(0, 1), so the initial directions are nearly the coordinate axes.
  ``"linear"``: free columns of a matrix W [z_dim, K] (identity at the start; columns past z_dim start
  as seeded random vectors), each normalised to unit length when used. Both give unit directions, so
  ε alone sets how far a shift goes.
- ε ~ U[-shift_max, shift_max]; values with |ε| < shift_min are pushed out to ±shift_min (sign kept,
  0 goes to +shift_min), as GANLatentDiscovery does: a shift too small to see cannot be classified.
- The reconstructor is a timm ResNet-18 (any timm name) on the 6-channel pair [G(z), G(z + ε·h_k)],
  globally pooled, with a linear head for the K logits and one for ε; it runs in train mode.
- The shifted image keeps the class of the base image; latents come from :class:`LatentSource`
  (truncated normal, class uniform over ``classes``), sample index ``s·B + i`` at step ``s``.
- The generator is frozen (eval mode, no parameter gradients); gradients reach the deformator only
  through the latent z + ε·h_k of the shifted image.
- A direction's sign means nothing here: h and -h are the same direction to the method (ε takes
  both signs). Whoever uses a direction (e.g. the segmenting-direction search) picks the sign.
- Every step's (k, ε) comes from ``step_generator(seed, step)`` and its latents from the step index,
  and the initial weights from ``seed``; a run resumed from a checkpoint therefore ends bit-identical
  to an uninterrupted one on CPU (same thread count; CUDA convolution backward passes need not be
  deterministic, so there it ends equal up to float noise).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.backbones import create_backbone, output_features
from synthsod.core.checkpoint import seeded, step_generator
from synthsod.core.gpu import autocast
from synthsod.core.io import atomic_path, write_csv_atomic
from synthsod.core.training import TrainingLoop, same_settings
from synthsod.directions.files import check_direction_matrix, load_direction_matrix
from synthsod.errors import SynthsodError
from synthsod.generators.latents import LatentSource

log = logging.getLogger(__name__)

DEFORMATORS = ("ortho", "linear")
HISTORY_COLUMNS = ["step", "loss", "accuracy", "shift_error"]
# Settings a checkpoint may be resumed under with a different value (they do not change the steps).
RESUMABLE_CHANGES = ("steps", "checkpoint_every")


# --- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscoveryConfig:
    """Settings of :func:`discover_directions` (the config's ``directions.discover``)."""

    directions: int = 120  # K
    deformator: str = "ortho"  # ortho | linear
    steps: int = 100_000  # GANLatentDiscovery's default
    batch_size: int = 32
    lr: float = 1e-4  # Adam, deformator and reconstructor
    shift_max: float = 6.0
    shift_min: float = 0.5
    shift_weight: float = 0.25  # weight of the L1 shift loss against the cross-entropy
    truncation: float = 0.4
    backbone: str = "resnet18"  # timm name of the reconstructor
    backbone_weights: str | None = None
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.deformator not in DEFORMATORS:
            raise SynthsodError(
                f"directions.discover: deformator must be one of {DEFORMATORS}, got {self.deformator!r}"
            )
        checks = {
            "directions": self.directions >= 1,
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "shift_max": self.shift_max > 0,
            "shift_min": 0 <= self.shift_min <= self.shift_max,
            "shift_weight": self.shift_weight >= 0,
            "truncation": 0 < self.truncation <= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            detail = ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            hint = " (shift_min must be in [0, shift_max])" if "shift_min" in bad else ""
            raise SynthsodError(f"directions.discover: invalid {', '.join(bad)} ({detail}){hint}")


# --- the models ------------------------------------------------------------------------------------
class Deformator(nn.Module):
    """K unit directions in a ``z_dim``-dimensional latent space (module docstring for the kinds)."""

    def __init__(self, z_dim: int, directions: int, kind: str = "ortho", seed: int = 0):
        super().__init__()
        if kind not in DEFORMATORS:
            raise SynthsodError(f"deformator must be one of {DEFORMATORS}, got {kind!r}")
        if directions < 1:
            raise SynthsodError(f"deformator: need at least one direction, got {directions}")
        if kind == "ortho" and directions > z_dim:
            raise SynthsodError(
                f"deformator 'ortho': {directions} directions do not fit in a {z_dim}-dimensional "
                "latent space (orthonormal directions need K <= z_dim; use 'linear' for more)"
            )
        self.z_dim, self.num_directions, self.kind = int(z_dim), int(directions), kind
        rng = torch.Generator().manual_seed(int(seed))
        if kind == "ortho":
            self.S = nn.Parameter(1e-3 * torch.randn(z_dim, z_dim, generator=rng))
        else:
            weight = torch.eye(z_dim, directions)
            if directions > z_dim:  # identity columns run out; zero columns would have no direction
                weight[:, z_dim:] = torch.randn(z_dim, directions - z_dim, generator=rng)
            self.W = nn.Parameter(weight)

    def directions(self) -> torch.Tensor:
        """[K, z_dim], unit rows (orthonormal for ``ortho``)."""
        if self.kind == "ortho":
            rotation = torch.linalg.matrix_exp(self.S - self.S.T)  # skew-symmetric -> orthogonal
            return rotation[:, : self.num_directions].T
        return (self.W / self.W.norm(dim=0, keepdim=True)).T

    def forward(self, indices: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Latent shifts [B, z_dim]: ``shifts[b] * h[indices[b]]``."""
        return shifts[:, None] * self.directions()[indices]


class Reconstructor(nn.Module):
    """Predicts (direction logits [B, K], shift [B]) from the pair (G(z), G(z + ε·h_k)) in [-1, 1]."""

    def __init__(self, directions: int, backbone: str = "resnet18", weights: str | None = None):
        super().__init__()
        self.backbone = create_backbone(backbone, in_chans=6, weights=weights)
        width = output_features(self.backbone)
        self.classify = nn.Linear(width, directions)
        self.shift = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor, shifted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(torch.cat([images, shifted], dim=1))
        return self.classify(features), self.shift(features).squeeze(1)


def random_shifts(
    generator: torch.Generator, batch: int, directions: int, shift_max: float = 6.0, shift_min: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direction indices [B] (uniform over 0..K-1) and shifts [B] with shift_min <= |ε| <= shift_max."""
    indices = torch.randint(0, directions, (batch,), generator=generator)
    shifts = shift_max * (2 * torch.rand(batch, generator=generator) - 1)
    sign = torch.where(shifts < 0, -1.0, 1.0)
    shifts = torch.where(shifts.abs() < shift_min, sign * shift_min, shifts)
    return indices, shifts


# --- training --------------------------------------------------------------------------------------
@dataclass
class DiscoveryResult:
    """``directions`` [K, z_dim] float32 (unit rows), one ``history`` row per step (step, loss,
    accuracy, shift_error; ``step`` counts from 1), and the config that made them."""

    directions: np.ndarray
    history: list[dict[str, float]]
    config: DiscoveryConfig
    resumed_from: int = 0
    seconds: float = field(default=0.0, compare=False)


def _freeze(generator) -> None:
    # Spectral norm updates its vectors in train mode, so eval mode matters as much as no gradients.
    net = getattr(generator, "net", generator)
    if isinstance(net, nn.Module):
        net.eval().requires_grad_(False)


def discover_directions(
    generator,
    cfg: DiscoveryConfig,
    classes: np.ndarray,
    *,
    checkpoint_path: str | os.PathLike | None = None,
    log_path: str | os.PathLike | None = None,
) -> DiscoveryResult:
    """Learn ``cfg.directions`` latent directions of ``generator`` (a :class:`BigGANGenerator` or anything
    with ``z_dim``, ``device``, ``images(z, one_hot, truncation)`` and ``one_hot(ids)``) for images of
    ``classes``.

    Checkpoints (models, optimisers, step, history, config, classes) go to ``checkpoint_path`` every
    ``cfg.checkpoint_every`` steps and at the end; an existing checkpoint is resumed if it was made
    with the same settings (``steps`` and ``checkpoint_every`` may differ); one at or past
    ``cfg.steps`` trains nothing. ``log_path`` receives the history as CSV.
    """
    classes = np.asarray(classes, dtype=np.int64)
    if len(classes) == 0:
        raise SynthsodError("directions.discover: no classes to sample from")
    device = torch.device(generator.device)
    _freeze(generator)
    z_dim, K, B = int(generator.z_dim), cfg.directions, cfg.batch_size
    with seeded(cfg.seed):
        deformator = Deformator(z_dim, K, cfg.deformator, seed=cfg.seed).to(device)
        reconstructor = Reconstructor(K, cfg.backbone, cfg.backbone_weights).to(device)
    deformator.train()
    reconstructor.train()
    deformator_opt = torch.optim.Adam(deformator.parameters(), lr=cfg.lr)
    reconstructor_opt = torch.optim.Adam(reconstructor.parameters(), lr=cfg.lr)
    parts = {
        "deformator": deformator,
        "reconstructor": reconstructor,
        "deformator_optimiser": deformator_opt,
        "reconstructor_optimiser": reconstructor_opt,
    }
    latents = LatentSource(cfg.seed, z_dim, cfg.truncation, classes)

    settings = {"discovery_config": asdict(cfg), "classes": [int(c) for c in classes], "z_dim": z_dim}
    loop = TrainingLoop(
        cfg.steps,
        parts,
        checkpoint_path,
        cfg.checkpoint_every,
        desc="direction discovery",
        settings=settings,
        check=same_settings(settings, free={f"discovery_config.{key}" for key in RESUMABLE_CHANGES}),
        state={"history": []},
    )
    start, history = loop.start, loop.state["history"]

    started = time.perf_counter()
    for step in loop:
        z_np, ids = latents.draw(range(step * B, (step + 1) * B))
        z = torch.from_numpy(z_np).to(device)
        one_hot = generator.one_hot(ids)
        indices, shifts = random_shifts(step_generator(cfg.seed, step), B, K, cfg.shift_max, cfg.shift_min)
        indices, shifts = indices.to(device), shifts.to(device)

        with torch.no_grad():
            base = generator.images(z, one_hot, cfg.truncation)
        shifted = generator.images(z + deformator(indices, shifts), one_hot, cfg.truncation)
        with autocast(device):
            logits, shift_hat = reconstructor(base, shifted)
        logits, shift_hat = logits.float(), shift_hat.float()
        shift_error = (shift_hat - shifts).abs().mean()
        loss = F.cross_entropy(logits, indices) + cfg.shift_weight * shift_error

        deformator_opt.zero_grad(set_to_none=True)
        reconstructor_opt.zero_grad(set_to_none=True)
        loss.backward()
        deformator_opt.step()
        reconstructor_opt.step()

        row = {
            "step": step + 1,
            "loss": loss.item(),
            "accuracy": (logits.argmax(dim=1) == indices).float().mean().item(),
            "shift_error": shift_error.item(),
        }
        history.append(row)
        loop.bar.set_postfix({k: row[k] for k in ("loss", "accuracy", "shift_error")})
    if log_path is not None:
        write_csv_atomic(log_path, history, HISTORY_COLUMNS)
    with torch.no_grad():
        directions = deformator.directions().float().cpu().numpy().astype(np.float32)
    return DiscoveryResult(directions, history, cfg, resumed_from=start, seconds=time.perf_counter() - started)


# --- files -----------------------------------------------------------------------------------------
def save_directions(path: str | os.PathLike, result: DiscoveryResult, generator_name: str) -> None:
    """Write ``{directions, deformator, generator, config, final}`` as a torch file, atomically."""
    payload = {
        "directions": torch.from_numpy(np.ascontiguousarray(result.directions, dtype=np.float32)),
        "deformator": result.config.deformator,
        "generator": str(generator_name),
        "config": asdict(result.config),
        "final": dict(result.history[-1]) if result.history else None,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:  # a file object: no temp name inside the zip
        torch.save(payload, file)


def load_directions(path: str | os.PathLike, z_dim: int | None = None) -> np.ndarray:
    """Directions [K, z_dim] float32 from :func:`save_directions`' ``.pt`` or a ``.npy`` matrix
    (directions found elsewhere). Rows are returned as stored, not normalised. ``z_dim`` given: the
    matrix must have that many columns."""
    if Path(path).suffix.lower() != ".pt":
        return load_direction_matrix(path, z_dim)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        matrix = payload["directions"] if isinstance(payload, dict) else payload
        if not torch.is_tensor(matrix):
            raise ValueError(f"'directions' is a {type(matrix).__name__}, not a tensor")
        matrix = matrix.detach().float().numpy() if matrix.is_floating_point() else matrix.numpy()
    except Exception as err:  # unreadable, not the format, or no 'directions' entry
        raise SynthsodError(f"{path}: cannot read directions ({type(err).__name__}: {err})") from None
    return check_direction_matrix(path, matrix, z_dim)


__all__ = [
    "DEFORMATORS",
    "Deformator",
    "DiscoveryConfig",
    "DiscoveryResult",
    "Reconstructor",
    "discover_directions",
    "load_directions",
    "random_shifts",
    "save_directions",
]
