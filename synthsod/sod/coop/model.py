"""Cooperative training of the LVM and the EBM (Algorithm 1), learning while recovering (Algorithm 2),
and coarse-to-fine prediction with uncertainty maps (cooperative saliency, AAAI 2022).

Saliency maps are probabilities: G(X, h) = sigmoid(LVM logits), and the EBM judges maps in [0, 1].
The LVM's encoder does not see h, so every function below encodes the images once and runs only the
decoder for each latent (:func:`conditioned`).

One training iteration (:func:`coop_step`), for images X with targets Y (full masks, or for
Algorithm 2 the recovered maps of :func:`recover`):

1. ĥ ~ N(0, I_d), Ŷ = G(X, ĥ);
2. Ỹ: K Langevin steps of eq 2 on U_θ(·, X) from Ŷ (step ``ebm_step``);
3. h̃: Langevin steps of eq 7 on the LVM posterior from ĥ (step ``lvm_step``), i.e. on the energy
   mean |O ∘ (Ỹ - G(X, h))|² / (2σ²) + |h|² / 2 (O = 1 here; O = the visibility mask in recovery);
4. θ descends mean U_θ(Y, X) - mean U_θ(Ỹ, X) (eq 5: data energy down, sample energy up);
5. α descends mean |Ỹ - G(X, h̃)|² / (2σ²) (eq 8) plus λ · BCE(G(X, h̃), Y) on the annotated pixels,
   the warm-up term whose λ falls linearly to 0 over training (:func:`warmup_weight`).

The squared residuals of eq 7 and eq 8 are averaged over pixels rather than summed (σ then acts per
pixel): summed over 352² pixels the posterior is so sharp that Langevin steps of 0.1 overshoot, and
λ · BCE would weigh nothing beside eq 8. Revised maps are
clamped to [0, 1], the range of the data the EBM judges.

Prediction (:class:`CoopSaliency`): the mean of ``draws`` LVM samples, then noise-free Langevin on U_θ;
the uncertainty map is the binary entropy of the mean over the draws.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from synthsod.core.settings import from_section
from synthsod.errors import SynthsodError
from synthsod.sod.coop.ebm import EnergyModel, langevin
from synthsod.sod.coop.lvm import LATENT_DIM, LatentSaliencyModel
from synthsod.sod.losses import partial_bce_loss

Decoder = Callable[[torch.Tensor], torch.Tensor]  # h [N, d] -> LVM logits [N, 1, S, S] for fixed images


@dataclass
class CoopConfig:
    sigma: float = 0.3  # the LVM's observation noise ε ~ N(0, σ²)
    ebm_steps: int = 5  # K
    ebm_step: float = 0.4  # δ of eq 2
    temperature: float = 1.0  # the EBM revision's noise is δ·√temperature (1: eq 2; 0: gradient descent)
    lvm_steps: int = 5
    lvm_step: float = 0.1  # δ of eq 7
    ebm_lr: float = 1e-3  # the EBM's Adam learning rate (the LVM's comes from the recipe)
    warmup_weight: float = 1.0  # λ at step 0
    warmup_fraction: float = 1.0  # λ reaches 0 after this fraction of the steps
    draws: int = 5  # latent draws averaged at prediction (the paper: 10)
    scribbles: str | None = None  # training only: a folder of S-DUTS scribble labels (coop.scribbles)


def conditioned(lvm: nn.Module, images: torch.Tensor, *, track: bool = False) -> Decoder:
    """h -> G_α(images, h) logits, encoding ``images`` once (models without ``encode`` run whole).
    ``track`` keeps the encoder in the graph (for the LVM update); otherwise its output is a constant."""
    if not hasattr(lvm, "encode"):
        return lambda h: lvm(images, h)
    with torch.set_grad_enabled(track and torch.is_grad_enabled()):
        levels = lvm.encode(images)
    return lambda h: lvm.decode(levels, h, tuple(images.shape[2:]))


def draw_latents(lvm: nn.Module, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randn(n, lvm.latent_dim, generator=generator).to(device)


def posterior_energy(
    decoder: Decoder, target: torch.Tensor, h: torch.Tensor, sigma: float, visible: torch.Tensor | None = None
) -> torch.Tensor:
    """-log p(Y, h | X) up to a constant, per sample; only ``visible`` pixels (1) count when given."""
    residual = target - torch.sigmoid(decoder(h))
    if visible is not None:
        residual = visible * residual
    return (residual**2).flatten(1).mean(dim=1) / (2 * sigma**2) + 0.5 * (h**2).sum(dim=1)


def infer_latent(
    decoder: Decoder,
    target: torch.Tensor,
    h: torch.Tensor,
    cfg: CoopConfig,
    visible: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """h̃ by eq 7 (Langevin on the posterior), from ``h``; ``visible`` restricts it to annotated pixels."""
    return langevin(
        lambda z: posterior_energy(decoder, target, z, cfg.sigma, visible),
        h,
        cfg.lvm_steps,
        cfg.lvm_step,
        generator=generator,
    )


@contextmanager
def frozen_statistics(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside the block (its batch norms use their running statistics)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def revise(
    ebm: EnergyModel,
    images: torch.Tensor,
    y: torch.Tensor,
    cfg: CoopConfig,
    *,
    noise: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ỹ: K Langevin steps of eq 2 on U_θ(·, X) from ``y``, clamped to [0, 1] (maps are probabilities).
    The EBM's batch norms use their running statistics, so each map's energy is its own (as at prediction)."""
    with frozen_statistics(ebm):
        return langevin(
            lambda s: ebm(s, images),
            y,
            cfg.ebm_steps,
            cfg.ebm_step,
            noise=cfg.temperature if noise else 0.0,
            generator=generator,
        ).clamp(0, 1)


def warmup_weight(cfg: CoopConfig, step: int, steps: int) -> float:
    """λ of the warm-up loss: ``warmup_weight`` at step 0, falling linearly to 0 at ``warmup_fraction`` x steps."""
    span = cfg.warmup_fraction * steps
    return cfg.warmup_weight * max(0.0, 1.0 - step / span) if span > 0 else 0.0


def coop_step(
    lvm: nn.Module,
    ebm: EnergyModel,
    opt_lvm: torch.optim.Optimizer,
    opt_ebm: torch.optim.Optimizer,
    images: torch.Tensor,
    targets: torch.Tensor,
    cfg: CoopConfig,
    *,
    ce_weight: float = 0.0,
    visible: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One iteration of Algorithm 1 (module docstring); returns the two losses. ``visible`` limits the
    warm-up term to annotated pixels (``targets`` are then recovered maps, the labels sit under ``visible``)."""
    fixed = conditioned(lvm, images)
    h_hat = draw_latents(lvm, images.shape[0], generator, images.device)
    with torch.no_grad():
        y_hat = torch.sigmoid(fixed(h_hat))
    y_tilde = revise(ebm, images, y_hat, cfg, generator=generator)
    h_tilde = infer_latent(fixed, y_tilde, h_hat, cfg, generator=generator)

    # eq 5 on one batch of data and samples: with separate batches, batch norm would let the EBM tell
    # them apart by batch statistics alone, which no single map at prediction has
    energies = ebm(torch.cat([targets, y_tilde]), torch.cat([images, images]))
    ebm_loss = energies[: len(images)].mean() - energies[len(images) :].mean()
    opt_ebm.zero_grad(set_to_none=True)
    ebm_loss.backward()
    opt_ebm.step()

    logits = conditioned(lvm, images, track=True)(h_tilde)
    lvm_loss = ((y_tilde - torch.sigmoid(logits)) ** 2).mean() / (2 * cfg.sigma**2)  # eq 8 (per-pixel mean)
    if ce_weight > 0:
        lvm_loss = lvm_loss + ce_weight * partial_bce_loss(logits, targets, visible)
    opt_lvm.zero_grad(set_to_none=True)
    lvm_loss.backward()
    opt_lvm.step()
    return {"ebm": ebm_loss.item(), "lvm": lvm_loss.item()}


def recover(
    lvm: nn.Module,
    ebm: EnergyModel,
    images: torch.Tensor,
    partial: torch.Tensor,
    visible: torch.Tensor,
    cfg: CoopConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Algorithm 2's recovery: h from the visible part of ``partial`` (eq 7 with O), G(X, h), EBM revision.
    Visible pixels keep their annotation in the recovered map."""
    if visible.shape != partial.shape:
        raise SynthsodError(f"visibility mask {tuple(visible.shape)} must match the labels {tuple(partial.shape)}")
    fixed = conditioned(lvm, images)
    h = infer_latent(
        fixed,
        partial,
        draw_latents(lvm, images.shape[0], generator, images.device),
        cfg,
        visible=visible,
        generator=generator,
    )
    with torch.no_grad():
        initial = torch.sigmoid(fixed(h))
    revised = revise(ebm, images, initial, cfg, generator=generator)
    return visible * partial + (1 - visible) * revised


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def predict(
    lvm: nn.Module, ebm: EnergyModel, images: torch.Tensor, cfg: CoopConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(saliency [N, 1, S, S], uncertainty [N, 1, S, S]): mean of ``cfg.draws`` LVM samples, then
    noise-free EBM descent; the uncertainty is the entropy of the mean."""
    with torch.no_grad():
        fixed = conditioned(lvm, images)
        samples = torch.stack(
            [
                torch.sigmoid(fixed(draw_latents(lvm, images.shape[0], generator, images.device)))
                for _ in range(cfg.draws)
            ]
        )
    mean = samples.mean(dim=0)
    return revise(ebm, images, mean, cfg, noise=False), binary_entropy(mean)


class CoopSaliency(nn.Module):
    """The trained pair behind the SOD-model interface: ``forward`` gives [logit of the refined prediction]
    for ImageNet-normalised images at ``image_size`` (the EBM's size); draws use a fixed seed, so
    predictions are deterministic. :meth:`predict` adds the uncertainty map, :meth:`refine` runs the
    EBM's noise-free revision on another model's maps."""

    def __init__(
        self,
        image_size: int = 352,
        backbone: str = "resnet50",
        backbone_weights: str | None = None,
        latent_dim: int = LATENT_DIM,
        channels: int = 64,
        config: dict | None = None,
    ):
        super().__init__()
        self.config = from_section(CoopConfig, config, where="sod.coop")
        self.lvm = LatentSaliencyModel(backbone, backbone_weights, latent_dim, channels)
        self.ebm = EnergyModel(image_size)

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return predict(self.lvm, self.ebm, images, self.config, generator=torch.Generator().manual_seed(0))

    def refine(self, images: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
        """Maps [N, 1, S, S] in [0, 1] after K noise-free Langevin steps on U_θ(·, images)."""
        return revise(self.ebm, images, saliency, self.config, noise=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [torch.logit(self.predict(images)[0], eps=1e-6)]


__all__ = [
    "CoopConfig",
    "CoopSaliency",
    "binary_entropy",
    "conditioned",
    "coop_step",
    "infer_latent",
    "posterior_energy",
    "predict",
    "recover",
    "revise",
    "warmup_weight",
]
