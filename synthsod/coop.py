"""Cooperative training of the LVM and the EBM (Algorithm 1), learning while recovering (Algorithm 2),
and coarse-to-fine prediction with uncertainty maps (cooperative saliency, AAAI 2022).

Saliency maps are probabilities: G(X, h) = sigmoid(LVM logits), and the EBM judges maps in [0, 1].

One training iteration (:func:`coop_step`), for images X with targets Y (full masks, or for
Algorithm 2 the recovered maps of :func:`recover`):

1. ĥ ~ N(0, I_d), Ŷ = G(X, ĥ);
2. Ỹ: K Langevin steps of eq 2 on U_θ(·, X) from Ŷ (step ``ebm_step``);
3. h̃: K Langevin steps of eq 7 on the LVM posterior from ĥ (step ``lvm_step``), i.e. on the energy
   |O ∘ (Ỹ - G(X, h))|² / (2σ²) + |h|² / 2 (O = 1 here; O = the visibility mask in recovery);
4. θ descends mean U_θ(Y, X) - mean U_θ(Ỹ, X) (eq 5: data energy down, sample energy up);
5. α descends |Ỹ - G(X, h̃)|² / (2σ²) (eq 8) plus λ · BCE(G(X, h̃), Y), the warm-up term whose λ the
   caller lowers linearly to 0 over training.

Prediction (:func:`predict`): the mean of ``draws`` LVM samples, then noise-free Langevin on U_θ;
the uncertainty map is the binary entropy of the mean over the draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .ebm import EnergyModel, langevin
from .errors import SynthsodError


@dataclass
class CoopConfig:
    latent_dim: int = 8
    sigma: float = 0.3            # the LVM's observation noise ε ~ N(0, σ²)
    ebm_steps: int = 5            # K
    ebm_step: float = 0.4         # δ of eq 2
    lvm_steps: int = 5
    lvm_step: float = 0.1         # δ of eq 7


def generate(lvm: nn.Module, images: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(lvm(images, h))


def posterior_energy(lvm: nn.Module, images: torch.Tensor, target: torch.Tensor, h: torch.Tensor, sigma: float,
                     visible: torch.Tensor | None = None) -> torch.Tensor:
    """-log p(Y, h | X) up to a constant, per sample; only ``visible`` pixels (1) count when given."""
    residual = target - generate(lvm, images, h)
    if visible is not None:
        residual = visible * residual
    return (residual**2).flatten(1).sum(dim=1) / (2 * sigma**2) + 0.5 * (h**2).sum(dim=1)


def infer_latent(lvm: nn.Module, images: torch.Tensor, target: torch.Tensor, h: torch.Tensor, cfg: CoopConfig,
                 visible: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """h̃ by eq 7 (Langevin on the posterior), from ``h``; ``visible`` restricts it to annotated pixels."""
    return langevin(lambda z: posterior_energy(lvm, images, target, z, cfg.sigma, visible), h, cfg.lvm_steps,
                    cfg.lvm_step, generator=generator)


def revise(ebm: EnergyModel, images: torch.Tensor, y: torch.Tensor, cfg: CoopConfig, *, noise: bool = True,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Ỹ: K Langevin steps of eq 2 on U_θ(·, X) from ``y``."""
    return langevin(lambda s: ebm(s, images), y, cfg.ebm_steps, cfg.ebm_step, noise=noise, generator=generator)


def coop_step(lvm: nn.Module, ebm: EnergyModel, opt_lvm: torch.optim.Optimizer, opt_ebm: torch.optim.Optimizer,
              images: torch.Tensor, targets: torch.Tensor, cfg: CoopConfig, *, ce_weight: float = 0.0,
              generator: torch.Generator | None = None) -> dict[str, float]:
    """One iteration of Algorithm 1 (module docstring); returns the two losses."""
    h_hat = torch.randn(images.shape[0], cfg.latent_dim, generator=generator).to(images.device)
    with torch.no_grad():
        y_hat = generate(lvm, images, h_hat)
    y_tilde = revise(ebm, images, y_hat, cfg, generator=generator)
    h_tilde = infer_latent(lvm, images, y_tilde, h_hat, cfg, generator=generator)

    ebm_loss = ebm(targets, images).mean() - ebm(y_tilde, images).mean()  # eq 5
    opt_ebm.zero_grad(set_to_none=True)
    ebm_loss.backward()
    opt_ebm.step()

    fitted = generate(lvm, images, h_tilde)
    lvm_loss = ((y_tilde - fitted) ** 2).flatten(1).sum(dim=1).mean() / (2 * cfg.sigma**2)  # eq 8
    if ce_weight > 0:
        lvm_loss = lvm_loss + ce_weight * F.binary_cross_entropy(fitted.clamp(1e-6, 1 - 1e-6), targets)
    opt_lvm.zero_grad(set_to_none=True)
    lvm_loss.backward()
    opt_lvm.step()
    return {"ebm": ebm_loss.item(), "lvm": lvm_loss.item()}


def recover(lvm: nn.Module, ebm: EnergyModel, images: torch.Tensor, partial: torch.Tensor, visible: torch.Tensor,
            cfg: CoopConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Algorithm 2's recovery: h from the visible part of ``partial`` (eq 7 with O), G(X, h), EBM revision."""
    if visible.shape != partial.shape:
        raise SynthsodError(f"visibility mask {tuple(visible.shape)} must match the labels {tuple(partial.shape)}")
    h0 = torch.randn(images.shape[0], cfg.latent_dim, generator=generator).to(images.device)
    h = infer_latent(lvm, images, partial, h0, cfg, visible=visible, generator=generator)
    with torch.no_grad():
        initial = generate(lvm, images, h)
    return revise(ebm, images, initial, cfg, generator=generator)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def predict(lvm: nn.Module, ebm: EnergyModel, images: torch.Tensor, cfg: CoopConfig, draws: int = 5,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(saliency [N, 1, S, S], uncertainty [N, 1, S, S]): mean of ``draws`` LVM samples, noise-free EBM descent."""
    with torch.no_grad():
        samples = torch.stack([generate(lvm, images, torch.randn(images.shape[0], cfg.latent_dim,
                                                                 generator=generator).to(images.device))
                               for _ in range(draws)])
    mean = samples.mean(dim=0)
    refined = revise(ebm, images, mean, cfg, noise=False).clamp(0, 1)
    return refined, binary_entropy(mean)


__all__ = ["CoopConfig", "binary_entropy", "coop_step", "generate", "infer_latent", "posterior_energy", "predict",
           "recover", "revise"]
