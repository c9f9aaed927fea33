"""Sampling with the PyTorch generators: G_mask proposals, direction-shift rendering, D_q scoring.

These plug the BigGAN backend into the backend-neutral core of :mod:`synthsod.synthesis.sampling`:

* :func:`gmask_proposer` generates a batch with its features tapped in the same pass and thresholds
  G_mask's foreground probability (SODGAN);
* :func:`renderer` is the ``render`` of :func:`synthsod.synthesis.sampling.shift_proposer` (E-BigBiGAN's
  direction shift on any BigGAN);
* :func:`dq_scorer` scores kept-so-far pairs with the trained D_q.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from synthsod.core.gpu import autocast
from synthsod.core.images import nhwc_gray, to_uint8_nhwc
from synthsod.generators import BigGANGenerator
from synthsod.generators.latents import LatentSource
from synthsod.sodgan.dq import QualityDiscriminator
from synthsod.sodgan.gmask import GMask, foreground_probability
from synthsod.synthesis.sampling import Candidate, Propose, Score


def _nhwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).float().cpu().numpy()


def renderer(generator: BigGANGenerator, truncation: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``render(z, class_ids)`` -> float images [N, R, R, 3] in [-1, 1] (no feature taps)."""

    def render(z: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        return _nhwc(generator.generate(z, class_ids, truncation, with_features=False).images)

    return render


def gmask_proposer(
    generator: BigGANGenerator, gmask: GMask, latents: LatentSource, truncation: float, threshold: float = 0.5
) -> Propose:
    """Candidates whose mask is G_mask's foreground probability above ``threshold``."""
    gmask = gmask.eval()

    @torch.no_grad()
    def propose(indices: Sequence[int]) -> list[Candidate]:
        z, ids = latents.draw(indices)
        out = generator.generate(z, ids, truncation)
        with autocast(generator.device):
            logits = gmask(out.features)
        masks = (foreground_probability(logits.float())[:, 0] > threshold).cpu().numpy()
        images = _nhwc(out.images)
        grays, uint8 = nhwc_gray(images), to_uint8_nhwc(images)
        return [
            Candidate(
                index=int(i), z=z[n], class_id=int(ids[n]), image=uint8[n], mask=masks[n], histogram_gray=grays[n]
            )
            for n, i in enumerate(indices)
        ]

    return propose


def dq_scorer(dq: QualityDiscriminator, batch_size: int = 64) -> Score:
    """D_q's probability per (uint8 image, bool mask) pair."""

    def score(images: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        m = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
        return dq.score(x, m, batch_size=batch_size).numpy().astype(np.float64)

    return score


__all__ = ["dq_scorer", "gmask_proposer", "renderer"]
