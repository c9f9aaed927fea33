"""``create_generator``: a generator backend by model name, from a weights directory or the cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from synthsod.errors import SynthsodError
from synthsod.generators.biggan import BigGANGenerator, load_biggan
from synthsod.names import BUILT_MODELS, MODELS


def create_generator(
    model: str,
    weights: str | None = None,
    taps: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    sha256: str | None = None,
) -> BigGANGenerator:
    """Load generator ``model`` from ``weights`` (a directory; None: the package cache) onto ``device``;
    with ``sha256``, the weights file must have that digest."""
    if model not in MODELS:
        raise SynthsodError(f"unknown generator model '{model}'; choose one of {', '.join(MODELS)}")
    if model in BUILT_MODELS and weights is None:
        raise SynthsodError(
            f"the {model} generator has no published weights: give its weights directory "
            "(the workflow builds it in results/generators/<name>/)"
        )
    return BigGANGenerator(load_biggan(model, weights, sha256), name=model, taps=taps, device=device)
