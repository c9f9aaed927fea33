"""BigGAN's latent prior: the standard normal truncated to [-2, 2] (the truncation trick draws from it).

The generators sample from it and the scene world draws its codes from it, so a scene code is a latent
the generator can take as it is.
"""

from __future__ import annotations

import numpy as np

TRUNCNORM_BOUND = 2.0  # z is drawn from N(0, I) truncated to [-2, 2], then scaled by the truncation


def truncated_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws from the truncated normal, taken from ``rng`` in a fixed order."""
    # Rejection sampling: redraw values outside the bound; draws are consumed in a fixed order.
    x = rng.standard_normal(size)
    out_of_bound = np.abs(x) > TRUNCNORM_BOUND
    while out_of_bound.any():
        x[out_of_bound] = rng.standard_normal(int(out_of_bound.sum()))
        out_of_bound = np.abs(x) > TRUNCNORM_BOUND
    return x
