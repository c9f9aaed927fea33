"""The energy-based model of cooperative saliency (AAAI 2022) and its Langevin revision.

``EnergyModel``
    U_θ(Y, X): the channel concatenation of the image X [N, 3, S, S] and the saliency map Y
    [N, 1, S, S] through c3s1-32, c4s2-64, c4s2-128, c4s2-256, c4s1-1 (k x k convolution, stride s,
    n filters, each followed by BatchNorm and ReLU, as the paper lists them; the last block's ReLU is
    left out so the map can be negative) and fc-100, then one linear unit to the scalar energy (the
    paper's list stops at fc-100; a scalar needs one more map, and a ReLU after fc-100 keeps it
    nonlinear). 4x4 convolutions pad by 1, so each stride-2 block halves the side exactly.
``langevin``
    Y_{τ+1} = Y_τ - (δ² / 2) ∂U/∂Y (Y_τ, X) + δ √T Δ_τ, Δ_τ ~ N(0, I) (the paper's eq 2 at temperature
    T = 1), K steps; with ``noise=0`` it is gradient descent with step δ² / 2 (prediction: the mode).
    The energy sums over the batch, so every sample moves by its own gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from synthsod.errors import SynthsodError

Energy = Callable[[torch.Tensor], torch.Tensor]  # Y -> energy per sample [N]


def _block(cin: int, cout: int, kernel: int, stride: int, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class EnergyModel(nn.Module):
    def __init__(self, image_size: int = 352, image_channels: int = 3):
        super().__init__()
        if image_size % 8 or image_size < 16:
            raise SynthsodError(f"the EBM needs an image side that is a multiple of 8 and >= 16, got {image_size}")
        self.image_size = image_size
        self.features = nn.Sequential(
            _block(image_channels + 1, 32, 3, 1),
            _block(32, 64, 4, 2),
            _block(64, 128, 4, 2),
            _block(128, 256, 4, 2),
            _block(256, 1, 4, 1, relu=False),
        )
        side = image_size // 8 - 1  # the 4x4, stride-1, pad-1 block shrinks the side by one
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 100), nn.ReLU(inplace=True), nn.Linear(100, 1))

    def forward(self, saliency: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Energies [N] of saliency maps [N, 1, S, S] (in [0, 1]) given images [N, C, S, S]."""
        if saliency.shape[-1] != self.image_size or images.shape[-1] != self.image_size:
            raise SynthsodError(f"the EBM was built for {self.image_size} px inputs, got {tuple(images.shape)}")
        return self.fc(self.features(torch.cat([images, saliency], dim=1)))[:, 0]


def langevin(
    energy: Energy,
    y: torch.Tensor,
    steps: int,
    step_size: float,
    *,
    noise: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """K Langevin steps of eq 2 from ``y`` (detached), the noise scaled by √``noise`` (a temperature:
    1 is eq 2, 0 or False gradient descent); the result carries no graph."""
    if steps < 0 or step_size <= 0:
        raise SynthsodError(f"Langevin needs steps >= 0 and a positive step size, got {steps}, {step_size}")
    y = y.detach().clone()
    for _ in range(steps):
        y.requires_grad_(True)
        with torch.enable_grad():  # also under a caller's no_grad (prediction)
            (grad,) = torch.autograd.grad(energy(y).sum(), y)
        with torch.no_grad():
            y = y - 0.5 * step_size**2 * grad
            if noise:
                y = y + step_size * math.sqrt(noise) * torch.randn(y.shape, generator=generator, dtype=y.dtype).to(
                    y.device
                )
    return y.detach()


__all__ = ["EnergyModel", "langevin"]
