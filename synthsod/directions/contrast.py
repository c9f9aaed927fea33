"""Latent directions for E-BigBiGAN's direction-shift masks on PyTorch generators.

:func:`contrast_direction` finds, without labels, the latent direction whose shift changes the
image's lighting most unevenly across the image: the top eigenvector of

    M = mean_i J_i^T P J_i,

with ``J_i`` the Jacobian of the grey-scaled image G(z_i) with respect to z and ``P`` the removal of
each image's mean. A direction that brightens the whole image uniformly scores zero, one that lights
some regions and darkens others scores high, and that split is what the mask rule
``gray(G(z + h)) > gray(G(z))`` reads out; to keep whole-image brightening out entirely, the search
runs in the complement of the samples' mean-brightness gradients. Power iteration needs only
products with ``M``: ``J v`` by a central finite difference (two forward passes) and ``J^T u`` by one
backward pass. The sign is chosen so that the shift brightens less than half of the image on
average (the object, not the background, is foreground). It stands in for E-BigBiGAN's hand-picked
h_bg until a direction search has run.
"""

from __future__ import annotations

import numpy as np
import torch

from synthsod.core.images import LUMA
from synthsod.core.progress import progress
from synthsod.generators import BigGANGenerator
from synthsod.generators.latents import LatentSource

FINITE_DIFFERENCE_STEP = 1e-2


def _gray(generator: BigGANGenerator, z: torch.Tensor, one_hot: torch.Tensor, truncation: float) -> torch.Tensor:
    luma = torch.tensor(LUMA, dtype=torch.float32, device=z.device)[None, :, None, None]
    return (generator.images(z, one_hot, truncation) * luma).sum(dim=1)


def _centred_gray(generator, z, one_hot, truncation) -> torch.Tensor:
    gray = _gray(generator, z, one_hot, truncation)
    return gray - gray.mean(dim=(1, 2), keepdim=True)


def contrast_direction(
    generator: BigGANGenerator,
    truncation: float,
    classes: np.ndarray,
    *,
    samples: int = 32,
    iterations: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Unit vector [z_dim]: the top eigenvector of the mean centred-grey Jacobian Gram matrix."""
    z_np, ids = LatentSource(seed, generator.z_dim, truncation, classes).draw(range(samples))
    z = torch.from_numpy(z_np).to(generator.device)
    one_hot = generator.one_hot(ids)
    # Directions that change a sample's mean grey level (to first order) are excluded: per-sample
    # gradients of the mean grey level span them (each image depends on its own z only).
    z_var = z.clone().requires_grad_(True)
    _gray(generator, z_var, one_hot, truncation).mean(dim=(1, 2)).sum().backward()
    basis = torch.linalg.qr(z_var.grad.T).Q  # [z_dim, samples], orthonormal columns

    def project(x: torch.Tensor) -> torch.Tensor:
        x = x - basis @ (basis.T @ x)
        return x / x.norm()

    v = project(torch.from_numpy(np.random.default_rng(seed).standard_normal(generator.z_dim)).float().to(z.device))
    for _ in progress(range(iterations), desc="contrast direction", unit="iteration"):
        with torch.no_grad():  # J v by a central difference
            step = FINITE_DIFFERENCE_STEP * v
            jv = (
                _centred_gray(generator, z + step, one_hot, truncation)
                - _centred_gray(generator, z - step, one_hot, truncation)
            ) / (2 * FINITE_DIFFERENCE_STEP)
        z_var = z.clone().requires_grad_(True)
        (_centred_gray(generator, z_var, one_hot, truncation) * jv).sum().backward()  # J^T (J v), summed
        v = project(z_var.grad.sum(dim=0))
    with torch.no_grad():  # orient: the shift brightens the smaller part of the image
        brighter = _gray(generator, z + 5 * v, one_hot, truncation) > _gray(generator, z, one_hot, truncation)
        if brighter.float().mean() > 0.5:
            v = -v
    return v.cpu().numpy().astype(np.float32)


__all__ = ["contrast_direction"]
