"""What every generator backend returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GeneratorOutput:
    """One batch: ``images`` [N, 3, R, R] in [-1, 1] and ``features`` {tap: [N, C, h, w]} (float32)."""

    images: torch.Tensor
    features: dict[int, torch.Tensor]
