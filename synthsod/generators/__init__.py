"""Generator backends behind one interface: ``create_generator(model, weights, taps, device)``.

Models: the pretrained BigGAN-deep 128 / 256 / 512 and ``tiny`` (a small random-init BigGAN-deep
built by :mod:`synthsod.generators.tiny` for the demo world and tests). All load from the same
``from_pretrained`` layout, so the demo exercises the same loading path as the real weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import SynthsodError
from .base import GeneratorOutput
from .biggan import PRETRAINED_MODELS, BigGANGenerator, load_biggan
from ..latents import resolve_classes, sample_latents

TINY = "tiny"
MODELS = (*PRETRAINED_MODELS, TINY)

__all__ = ["MODELS", "TINY", "BigGANGenerator", "GeneratorOutput", "create_generator",
           "resolve_classes", "sample_latents"]


def create_generator(model: str, weights: str | None = None, taps: Sequence[int] | None = None,
                     device: torch.device | str = "cpu") -> BigGANGenerator:
    """Load generator ``model`` from ``weights`` (a directory; None: the package cache) onto ``device``."""
    if model not in MODELS:
        raise SynthsodError(f"unknown generator model '{model}'; choose one of {', '.join(MODELS)}")
    if model == TINY and weights is None:
        raise SynthsodError("the tiny generator has no published weights: build it with synthsod.generators.tiny")
    return BigGANGenerator(load_biggan(model, weights), name=model, taps=taps, device=device)
