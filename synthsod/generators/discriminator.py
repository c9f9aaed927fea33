"""The demo GAN's discriminator: a spectral-norm ResNet with a class projection (Miyato & Koyama 2018).

The same design BigGAN's discriminator follows, at the demo's width: residual blocks that halve the
resolution, a sum over space, a linear output plus the inner product with a class embedding. After
the GAN training it is kept fixed and serves as SODGAN's image discriminator D_r (eq 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


class _DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1))
        self.conv2 = spectral_norm(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        h = F.avg_pool2d(h, 2)
        skip = self.skip(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.skip(x), 2)
        return h + skip


class ProjectionDiscriminator(nn.Module):
    """D(x, y) for images [N, 3, R, R] in [-1, 1] and class ids [N]; one score per image."""

    def __init__(self, num_classes: int, resolution: int = 64, width: int = 32):
        super().__init__()
        self.num_classes, self.resolution, self.width = num_classes, resolution, width
        widths, blocks, c_in = [], [], 3
        size = resolution
        while size > 4:
            c_out = width * min(2 ** len(widths), 8)
            blocks.append(_DownBlock(c_in, c_out, first=not blocks))
            widths.append(c_out)
            c_in, size = c_out, size // 2
        self.blocks = nn.Sequential(*blocks)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, c_in))

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(images)).sum(dim=(2, 3))
        return self.linear(h).squeeze(1) + (self.embed(class_ids) * h).sum(dim=1)

    def hparams(self) -> dict:
        return {"num_classes": self.num_classes, "resolution": self.resolution, "width": self.width}
